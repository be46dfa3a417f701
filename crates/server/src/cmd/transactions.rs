//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, with Redis's semantics.
//!
//! Commands after MULTI are checked (name, arity) and queued; a refused one makes EXEC answer
//! EXECABORT. EXEC holds the keyspace's isolation gate exclusively while the queue runs, so no
//! other connection sees it half done, and logs the writes to the AOF as one record, so a replay
//! applies all of them or none. WATCHed keys carry a version bumped by every change to them
//! (writes, deletion, expiry, FLUSHDB); EXEC answers a null array if one moved.

use super::{Args, CmdError, CmdResult, Ctx};
use crate::server::client::{Client, Multi, Watched};
use crate::server::reply::Reply;
use crate::server::Server;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The reply of RedisAI commands that run later, in a transaction (RedisAI's own text).
pub const ERR_AI_IN_MULTI: &str =
    "ERR Cannot run RedisAI command within a transaction or a LUA script";

/// RedisAI refuses the commands that answer later inside MULTI/EXEC or a script before it
/// reads any argument.
pub fn refuse_in_exec(ctx: &super::Ctx) -> Result<(), CmdError> {
    if ctx.in_exec {
        return Err(CmdError::new(ERR_AI_IN_MULTI));
    }
    Ok(())
}

pub fn multi(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::new("ERR MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Multi::default());
    Ok(Reply::OK)
}

pub fn discard(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    if ctx.client.multi.take().is_none() {
        return Err(CmdError::new("ERR DISCARD without MULTI"));
    }
    unwatch_all(ctx.server, ctx.client);
    Ok(Reply::OK)
}

pub fn watch(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::new("ERR WATCH inside MULTI is not allowed"));
    }
    let db = ctx.client.db;
    let now = ctx.now();
    for key in args.rest() {
        if ctx
            .client
            .watched
            .iter()
            .any(|w| w.db == db && w.key == key)
        {
            continue;
        }
        let key = super::own(key);
        let mut shard = ctx.db().write(&key);
        let expired = shard.holds_expired(&key, now);
        let version = shard.watch(&key, now);
        drop(shard);
        ctx.client.watched.push(Watched {
            db,
            key,
            version,
            expired,
        });
    }
    Ok(Reply::OK)
}

pub fn unwatch(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    unwatch_all(ctx.server, ctx.client);
    Ok(Reply::OK)
}

/// Forgets every key the client watches (EXEC, DISCARD, UNWATCH, RESET, disconnect).
pub fn unwatch_all(server: &Server, client: &mut Client) {
    for w in client.watched.drain(..) {
        server.store.db(w.db).write(&w.key).unwatch(&w.key);
    }
}

/// Whether a watched key changed, or expired, since WATCH.
fn watch_broken(server: &Server, client: &Client, now: u64) -> bool {
    client.watched.iter().any(|w| {
        let shard = server.store.db(w.db).read(&w.key);
        shard.watch_version(&w.key) != w.version || (!w.expired && shard.holds_expired(&w.key, now))
    })
}

pub fn exec(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let Some(multi) = ctx.client.multi.take() else {
        return Err(CmdError::new("ERR EXEC without MULTI"));
    };
    let server: &Arc<Server> = ctx.server;
    if multi.failed {
        unwatch_all(server, ctx.client);
        return Err(CmdError::new(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    // From here to the end no other command runs anywhere.
    let _gate = server.gate.exclusive();
    let now = ctx.now();
    let broken = watch_broken(server, ctx.client, now);
    unwatch_all(server, ctx.client);
    if broken {
        return Ok(Reply::NullArray);
    }
    // Scripts (EVAL, FCALL) log what they wrote, so they count as writes here.
    let mut txn = if multi
        .queue
        .iter()
        .any(|(c, _, _)| c.write || c.has_flag("MAY_REPLICATE"))
    {
        server.aof.begin()
    } else {
        None
    };
    if txn.is_some() {
        if let Some(e) = server.aof.write_error() {
            return Err(CmdError(e));
        }
    }
    let first_db = ctx.client.db;
    let mut log = EffectLog::new(first_db);
    let mut replies = Vec::with_capacity(multi.queue.len());
    ctx.client.refresh_perms(&server.acl);
    for (cmd, req, skip) in multi.queue {
        // The rules may have changed since the command was queued (Redis checks again).
        if let Err(denied) = crate::acl::check(&ctx.client.perms, &cmd, &req) {
            super::acl::log_denial(
                server,
                ctx.client,
                denied.log_reason(),
                crate::acl::log::Context::Multi,
                denied.object(&cmd, &req),
                None,
            );
            replies.push(Reply::err(format!(
                "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {}",
                denied.exec_reason()
            )));
            continue;
        }
        let log = txn.is_some().then_some(&mut log);
        let shown = (server.clients.monitor_count.load(Ordering::Relaxed) > 0).then(|| req.clone());
        // Each command of the transaction may reach the slow log on its own (EXEC does not).
        let slower_than = server
            .config
            .live
            .slowlog_slower_than
            .load(Ordering::Relaxed);
        let timed = (slower_than >= 0).then(|| (req.to_vec(), crate::util::instant()));
        replies.push(run_inline(server, ctx.client, &cmd, req, skip, now, log).0);
        if let Some((argv, started)) = timed {
            let micros = crate::util::instant().duration_since(started).as_micros() as u64;
            if micros >= slower_than as u64 {
                server.slowlog_push(&ctx.client.info, &argv, micros);
            }
        }
        if let Some(req) = shown {
            server.feed_monitors(ctx.client, &req, &cmd.name);
        }
    }
    if let Some(t) = txn.as_mut() {
        if !log.cmds.is_empty() {
            ctx.client.aof_seq = t.record(first_db, now, log.cmds.iter().map(|c| c.iter()));
        }
    }
    Ok(Reply::Array(replies))
}

/// Commands' effects to log to the AOF as one record, with a SELECT wherever the database
/// changes from the record's first one.
pub struct EffectLog {
    pub cmds: Vec<Vec<Bytes>>,
    db: usize,
}

impl EffectLog {
    pub fn new(db: usize) -> EffectLog {
        EffectLog {
            cmds: Vec::new(),
            db,
        }
    }

    fn push(&mut self, db: usize, cmds: Vec<Vec<Bytes>>) {
        if !cmds.is_empty() && db != self.db {
            self.cmds.push(vec![
                Bytes::from_static(b"SELECT"),
                Bytes::from(db.to_string()),
            ]);
            self.db = db;
        }
        self.cmds.extend(cmds);
    }
}

/// Runs one command as EXEC and scripts run theirs: nothing waits (blocking commands do not
/// block; commands that would answer later refuse with RedisAI's text), statistics are
/// counted, blocked clients are woken, and what the command wrote goes to `log`. Returns the
/// reply and whether the command changed the keyspace.
pub fn run_inline(
    server: &Arc<Server>,
    client: &mut Client,
    cmd: &Arc<super::Command>,
    req: crate::server::protocol::Request,
    skip: usize,
    now: u64,
    log: Option<&mut EffectLog>,
) -> (Reply, bool) {
    let db = client.db;
    let Some(handler) = cmd.handler else {
        return (Reply::err("ERR unknown command"), false);
    };
    let argv = (log.is_some() && cmd.write).then(|| req.to_vec());
    let mut args = Args::new(req, skip);
    let mut inner = Ctx::at(server, client, cmd, now);
    inner.in_exec = true;
    let start = crate::util::instant();
    let result = handler(&mut inner, &mut args);
    let nanos = crate::util::instant().duration_since(start).as_nanos() as u64;
    let deferred = inner.deferred.take();
    let propagate = inner.propagate.take();
    let wrote = inner.wrote.get();
    // Timed one by one, as Redis times each command of a transaction or script.
    client.stats.record(cmd, Some(nanos), result.is_err());
    let reply = match (result, deferred) {
        (Ok(_), Some(_)) => Reply::err(ERR_AI_IN_MULTI),
        (Ok(r), None) => {
            if let Some(log) = log {
                // A script's effects come as `propagate` though EVAL itself is no write.
                match (propagate, argv) {
                    (Some(cmds), _) => log.push(db, cmds),
                    (None, Some(argv)) => log.push(db, vec![argv]),
                    (None, None) => {}
                }
            }
            r
        }
        (Err(e), _) => {
            // A refused command may still have written (the audit entry of a refused model
            // management action): it says so with `propagate`.
            if let (Some(log), Some(cmds)) = (log, propagate) {
                log.push(db, cmds);
            }
            Reply::Error(e.0)
        }
    };
    if wrote {
        server.blocking.touched_by(cmd, db, args.request());
    }
    if client.info.tracking.load(Ordering::Relaxed) != 0 {
        // Inside EXEC or a script nothing else runs: remembering after the read is enough,
        // and CLIENT CACHING lasts to the end of the transaction.
        crate::tracking::after_command(
            &client.info,
            cmd,
            || crate::tracking::read_keys(cmd, args.request()),
            false,
        );
    }
    (reply, wrote)
}
