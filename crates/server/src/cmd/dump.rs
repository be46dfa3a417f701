//! DUMP and RESTORE in Redis 7.0's serialization (RDB version 10 payloads with their CRC64),
//! so values move between Redis and Locus; tensors travel as RedisAI's own values and the
//! other AI types as Locus's (see `persist::migrate`).

use super::{own, Args, CmdError, CmdResult, Ctx};
use crate::persist::migrate::{self, Restored};
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::{Entry, Value};
use bytes::Bytes;
use std::sync::Arc;

const BUSYKEY: &str = "BUSYKEY Target key name already exists.";

pub fn dump(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let now = ctx.now();
    let shard = ctx.db().read(&key);
    Ok(match shard.get(&key, now) {
        Some(e) => Reply::Bulk(Bytes::from(migrate::dump(&key, e))),
        None => Reply::Null,
    })
}

/// RESTORE's options.
struct Options {
    replace: bool,
    absttl: bool,
    idle: Option<u64>,
    freq: Option<u8>,
}

/// Parses the options after the payload, in Redis's order of checks (IDLETIME and FREQ
/// exclude each other).
fn options(args: &mut Args) -> Result<Options, CmdError> {
    let mut o = Options {
        replace: false,
        absttl: false,
        idle: None,
        freq: None,
    };
    while !args.is_empty() {
        let more = args.remaining() > 1;
        match args.next_upper()?.as_str() {
            "REPLACE" => o.replace = true,
            "ABSTTL" => o.absttl = true,
            "IDLETIME" if more && o.freq.is_none() => {
                let v = crate::util::parse_i64(args.next_slice()?).ok_or_else(CmdError::not_int)?;
                if v < 0 {
                    return Err(CmdError::new("ERR Invalid IDLETIME value, must be >= 0"));
                }
                o.idle = Some(v as u64);
            }
            "FREQ" if more && o.idle.is_none() => {
                let v = crate::util::parse_i64(args.next_slice()?).ok_or_else(CmdError::not_int)?;
                if !(0..=255).contains(&v) {
                    return Err(CmdError::new(
                        "ERR Invalid FREQ value, must be >= 0 and <= 255",
                    ));
                }
                o.freq = Some(v as u8);
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    Ok(o)
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
pub fn restore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let ttl_arg = args.next()?;
    let payload = args.next()?;
    let o = options(args)?;
    let now = ctx.now();
    if !o.replace && ctx.db().read(&key).get(&key, now).is_some() {
        return Err(CmdError::new(BUSYKEY));
    }
    let ttl = crate::util::parse_i64(&ttl_arg).ok_or_else(CmdError::not_int)?;
    if ttl < 0 {
        return Err(CmdError::new("ERR Invalid TTL value, must be >= 0"));
    }
    let expire_at = match (ttl, o.absttl) {
        (0, _) => 0,
        (t, true) => t as u64,
        (t, false) => now.saturating_add(t as u64),
    };
    // Logged with an absolute expiry, as Redis propagates it, so a replay restores the same
    // instant.
    let mut logged = vec![
        Bytes::from_static(b"RESTORE"),
        key.clone(),
        Bytes::from(expire_at.to_string()),
        payload.clone(),
    ];
    if expire_at != 0 {
        logged.push(Bytes::from_static(b"ABSTTL"));
    }
    if o.replace {
        logged.push(Bytes::from_static(b"REPLACE"));
    }
    match migrate::restore(&payload).map_err(CmdError)? {
        Restored::Value(value) => {
            let reply = install(ctx.server, ctx.client.db, &key, value, expire_at, &o, now)?;
            ctx.propagate = Some(vec![logged]);
            ctx.dirty(1);
            Ok(reply)
        }
        Restored::Model(loaded) => {
            let server = ctx.server.clone();
            if ctx.in_exec {
                let value = load_model(&server, loaded).map_err(CmdError)?;
                let reply = install(&server, ctx.client.db, &key, value, expire_at, &o, now)?;
                ctx.propagate = Some(vec![logged]);
                ctx.dirty(1);
                return Ok(reply);
            }
            let db = ctx.client.db;
            ctx.propagate = Some(vec![]);
            ctx.defer(async move {
                // Loading a graph takes a while: never on an I/O thread.
                let loading = server.clone();
                let value = tokio::task::spawn_blocking(move || load_model(&loading, loaded))
                    .await
                    .unwrap_or_else(|e| Err(format!("ERR model loading failed: {e}")));
                let value = match value {
                    Ok(v) => v,
                    Err(e) => return Reply::Error(e),
                };
                let mut txn = server.aof.begin();
                let now = crate::util::now_ms();
                match install(&server, db, &key, value, expire_at, &o, now) {
                    Ok(reply) => {
                        if let Some(txn) = txn.as_mut() {
                            txn.record(db, now, [logged.iter()]);
                        }
                        server.store.add_dirty(1);
                        reply
                    }
                    Err(e) => Reply::Error(e.0),
                }
            })
        }
    }
}

/// A model value from its loaded record, the engine parsing its graph.
fn load_model(server: &Arc<Server>, loaded: crate::persist::Loaded) -> Result<Value, String> {
    match crate::persist::materialize(&server.store, &server.engine, loaded)? {
        Some((_, _, entry)) => Ok(entry.value),
        None => Err("ERR Bad data format".into()),
    }
}

/// Stores the restored value (BUSYKEY checked again: a model's load let other commands run).
fn install(
    server: &Server,
    db: usize,
    key: &Bytes,
    value: Value,
    expire_at: u64,
    o: &Options,
    now: u64,
) -> Result<Reply, CmdError> {
    let mut shard = server.store.db(db).write(key);
    if shard.get(key, now).is_some() {
        if !o.replace {
            return Err(CmdError::new(BUSYKEY));
        }
        shard.remove(key, now);
    }
    // A TTL already in the past deletes the key (done above when REPLACE found one).
    if expire_at != 0 && expire_at <= now {
        return Ok(Reply::OK);
    }
    let entry = Entry::with_expiry(value, expire_at);
    entry.set_lru_or_lfu(o.freq, o.idle);
    shard.insert(own(key.clone()), entry, now);
    drop(shard);
    crate::notify::notify(server, crate::notify::GENERIC, "restore", key, db);
    Ok(Reply::OK)
}
