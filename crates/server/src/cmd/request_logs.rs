//! AI.LOG SET / GET / DEL: request logging settings of a model or router key (see
//! `crate::request_log`).

use super::{Args, CmdError, CmdResult, Ctx};
use crate::request_log::LogSpec;
use crate::server::reply::Reply;
use crate::store::{Entry, Value};

/// The key must hold a model or a router.
fn check_target(ctx: &Ctx, key: &[u8]) -> Result<(), CmdError> {
    let shard = ctx.db().read(key);
    match shard.get(key, ctx.now()) {
        None => Err(CmdError::new(super::models::ERR_MODEL_EMPTY)),
        Some(Entry {
            value: Value::Model(_) | Value::Router(_),
            ..
        }) => Ok(()),
        Some(_) => Err(CmdError::wrong_type()),
    }
}

/// `AI.LOG SET key STREAM stream [SAMPLE p] [MAXLEN n] [PAYLOAD NONE|DIGEST|FULL]`.
pub fn log_set(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let spec = LogSpec::parse(&args.rest()).map_err(CmdError)?;
    check_target(ctx, &key)?;
    let live = &ctx.server.config.live;
    for (name, what) in [(&live.audit_stream, "audit"), (&live.alert_stream, "alert")] {
        if *name.read() == spec.stream {
            return Err(CmdError::new(format!(
                "ERR '{}' is the {what} stream: log to another stream",
                String::from_utf8_lossy(&spec.stream)
            )));
        }
    }
    {
        let shard = ctx.db().read(&spec.stream);
        if shard
            .get(&spec.stream, ctx.now())
            .is_some_and(|e| !matches!(e.value, Value::Stream(_)))
        {
            return Err(CmdError::new(format!(
                "ERR log stream '{}' holds another type of value",
                String::from_utf8_lossy(&spec.stream)
            )));
        }
    }
    ctx.server
        .store
        .request_logs
        .set(ctx.server.outbox.home(ctx.client.db), key, spec);
    ctx.dirty(1);
    Ok(Reply::OK)
}

/// `AI.LOG GET key`: the settings, or null when the key's runs are not logged.
pub fn log_get(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let Some(spec) = ctx
        .server
        .store
        .request_logs
        .get(ctx.server.outbox.home(ctx.client.db), &key)
    else {
        return Ok(Reply::Null);
    };
    let words = spec.to_words();
    Ok(Reply::Map(
        words
            .chunks(2)
            .map(|kv| {
                (
                    Reply::Bulk(bytes::Bytes::from(
                        String::from_utf8_lossy(&kv[0]).to_lowercase(),
                    )),
                    Reply::Bulk(kv[1].clone()),
                )
            })
            .collect(),
    ))
}

/// `AI.LOG DEL key`: 1 when the key's runs were logged, else 0.
pub fn log_del(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let removed = ctx
        .server
        .store
        .request_logs
        .remove(ctx.server.outbox.home(ctx.client.db), &key);
    if removed {
        ctx.dirty(1);
    }
    Ok(Reply::Int(removed as i64))
}
