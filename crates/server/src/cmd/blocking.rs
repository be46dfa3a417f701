//! Clients blocked on keys (BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP).
//!
//! A blocked client holds no thread: its connection awaits a future that sleeps until the head
//! of a key's queue is woken. Every write command wakes the first waiter of each key it names
//! (after it finished, so the waiter sees its result); the waiter retries its pop as an ordinary
//! command (logged to the AOF, isolated from EXEC like any other) and, once served, wakes the
//! next waiter if data is left. Waiters of one key are served in arrival order.

use super::{Args, CmdResult, Command, Ctx};
use crate::server::protocol::Request;
use crate::server::reply::Reply;
use crate::server::Server;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

pub struct Waiter {
    id: u64,
    /// The blocked connection's client id (CLIENT UNBLOCK names it).
    client: u64,
    pub notify: Notify,
    /// Set by CLIENT UNBLOCK before it wakes the waiter.
    unblocked: Mutex<Option<Unblock>>,
}

/// How CLIENT UNBLOCK ends a wait.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unblock {
    /// As if the timeout had passed.
    Timeout,
    /// With an UNBLOCKED error.
    Error,
}

/// The waiters of one key, first come first served.
type Queue = VecDeque<Arc<Waiter>>;

#[derive(Default)]
pub struct Registry {
    /// Registered waiters; lets writes skip the registry when nobody waits.
    waiting: AtomicUsize,
    next_id: AtomicU64,
    queues: Mutex<HashMap<(usize, Bytes), Queue>>,
    /// Blocked clients by client id, for CLIENT UNBLOCK.
    by_client: Mutex<HashMap<u64, Arc<Waiter>>>,
}

impl Registry {
    /// Queues a waiter behind the others on each of `keys`.
    pub fn register(&self, client: u64, db: usize, keys: &[Bytes]) -> Arc<Waiter> {
        let w = Arc::new(Waiter {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            client,
            notify: Notify::new(),
            unblocked: Mutex::new(None),
        });
        self.by_client.lock().insert(client, w.clone());
        let mut q = self.queues.lock();
        for k in keys {
            let queue = q.entry((db, k.clone())).or_default();
            if !queue.iter().any(|x| x.id == w.id) {
                queue.push_back(w.clone());
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        w
    }

    /// Removes a waiter (served, timed out or disconnected) and wakes the new head of each of
    /// its keys: data it was woken for, or that arrived meanwhile, goes to the next in line.
    pub fn unregister(&self, db: usize, keys: &[Bytes], w: &Arc<Waiter>) {
        {
            let mut by_client = self.by_client.lock();
            if by_client.get(&w.client).is_some_and(|x| x.id == w.id) {
                by_client.remove(&w.client);
            }
        }
        let mut q = self.queues.lock();
        for k in keys {
            let slot = (db, k.clone());
            if let Some(queue) = q.get_mut(&slot) {
                queue.retain(|x| x.id != w.id);
                match queue.front() {
                    Some(head) => head.notify.notify_one(),
                    None => {
                        q.remove(&slot);
                    }
                }
            }
        }
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// Wakes the first waiter of `key`.
    pub fn key_ready(&self, db: usize, key: &[u8]) {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let q = self.queues.lock();
        if let Some(head) = q
            .get(&(db, Bytes::copy_from_slice(key)))
            .and_then(|queue| queue.front())
        {
            head.notify.notify_one();
        }
    }

    /// Wakes the first waiter of every key of database `db` (SWAPDB brought it other data).
    pub fn wake_db(&self, db: usize) {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        for ((d, _), queue) in self.queues.lock().iter() {
            if *d == db {
                if let Some(head) = queue.front() {
                    head.notify.notify_one();
                }
            }
        }
    }

    /// Called after every write command: wakes the waiters of the keys it names.
    pub fn touched_by(&self, cmd: &Command, db: usize, req: &Request) {
        if self.waiting.load(Ordering::Relaxed) == 0 || !cmd.write {
            return;
        }
        let argv = req.to_vec();
        for pos in cmd.key_positions(&argv) {
            self.key_ready(db, &argv[pos]);
        }
    }

    /// CLIENT UNBLOCK: ends the wait of client `client` if it is blocked on keys.
    pub fn unblock(&self, client: u64, how: Unblock) -> bool {
        let Some(w) = self.by_client.lock().get(&client).cloned() else {
            return false;
        };
        *w.unblocked.lock() = Some(how);
        w.notify.notify_one();
        true
    }

    /// Clients blocked right now (INFO blocked_clients).
    pub fn blocked(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// Parses a blocking timeout in seconds (fractions allowed), as Redis does: negative is an
/// error, 0 waits forever. Returns milliseconds.
pub fn parse_timeout(arg: &[u8]) -> Result<u64, super::CmdError> {
    let v = crate::util::parse_f64(arg)
        .filter(|v| v.is_finite())
        .ok_or_else(|| super::CmdError::new("ERR timeout is not a float or out of range"))?;
    if v < 0.0 {
        return Err(super::CmdError::new("ERR timeout is negative"));
    }
    if v * 1000.0 > i64::MAX as f64 / 2.0 {
        return Err(super::CmdError::new("ERR timeout is out of range"));
    }
    Ok((v * 1000.0).ceil() as u64)
}

/// Decides what a retry's error means for a blocked client: (server, database, keys, error).
pub type RetryError = fn(&Server, usize, &[Bytes], Reply) -> Option<Reply>;

/// A blocking command, described by the non-blocking command it retries.
pub struct Blocking {
    pub keys: Vec<Bytes>,
    /// Milliseconds; 0 waits forever.
    pub timeout_ms: u64,
    /// The non-blocking command that serves it (LMPOP for BLPOP, LMOVE for BLMOVE, …); it is
    /// also what the AOF logs.
    pub attempt: Vec<Bytes>,
    pub handler: super::Handler,
    /// The blocking command's reply from the attempt's.
    pub shape: fn(Reply) -> Reply,
    /// The reply on timeout (and inside MULTI, where nothing blocks).
    pub timed_out: Reply,
    /// What an error from a retry becomes: `None` keeps waiting, `Some` ends the wait with that
    /// reply. Without it the error itself ends the wait.
    pub on_error: Option<RetryError>,
}

fn served(r: &Reply) -> bool {
    !matches!(r, Reply::Null | Reply::NullArray)
}

/// Leaves the queues when the wait ends, however it ends (served, timed out, disconnected).
struct Registration {
    server: Arc<Server>,
    db: usize,
    keys: Vec<Bytes>,
    waiter: Arc<Waiter>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.server
            .blocking
            .unregister(self.db, &self.keys, &self.waiter);
    }
}

/// Runs a blocking command: tries at once; if nothing is there, queues the client on its keys
/// and answers when a write serves it or the timeout passes.
pub fn block(ctx: &mut Ctx, b: Blocking) -> CmdResult {
    let server = ctx.server.clone();
    let db = ctx.client.db;
    // Queued before the first try, so that a push landing in between still wakes it.
    let registration = (!ctx.in_exec).then(|| Registration {
        waiter: server.blocking.register(ctx.client.id, db, &b.keys),
        server: server.clone(),
        db,
        keys: b.keys.clone(),
    });
    let mut args = Args::new(Request::from_args(&b.attempt), 1);
    let r = (b.handler)(ctx, &mut args)?;
    if served(&r) {
        ctx.propagate = Some(vec![b.attempt]);
        return Ok((b.shape)(r));
    }
    ctx.propagate = Some(vec![]);
    let Some(reg) = registration else {
        // Inside MULTI nothing blocks: the attempt's own empty reply.
        return Ok(r);
    };
    let deadline = (b.timeout_ms > 0)
        .then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(b.timeout_ms));
    let command = ctx.command.clone();
    ctx.logs_when_done = true;
    ctx.defer(async move {
        let reply = wait(&server, db, &b, &reg, deadline).await;
        // The wait ended with an error (the stream or group went away, CLIENT UNBLOCK ERROR):
        // it counts as an error reply and a failed call, as Redis counts it on unblocking.
        if let Reply::Error(e) = &reply {
            server.count_error_kind(e);
            server.stats.error_replies.fetch_add(1, Ordering::Relaxed);
            command.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        reply
    })
}

/// Waits until a write serves the blocked command, its timeout passes or it is unblocked.
async fn wait(
    server: &Arc<Server>,
    db: usize,
    b: &Blocking,
    reg: &Registration,
    deadline: Option<tokio::time::Instant>,
) -> Reply {
    {
        loop {
            let woken = match deadline {
                Some(d) => tokio::time::timeout_at(d, reg.waiter.notify.notified())
                    .await
                    .is_ok(),
                None => {
                    reg.waiter.notify.notified().await;
                    true
                }
            };
            if !woken {
                return b.timed_out.clone();
            }
            match *reg.waiter.unblocked.lock() {
                Some(Unblock::Timeout) => return b.timed_out.clone(),
                Some(Unblock::Error) => {
                    return Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
                }
                None => {}
            }
            let r = server.execute_detached(db, &b.attempt);
            match r {
                Reply::Error(_) => match b.on_error {
                    None => return r,
                    Some(f) => match f(server, db, &b.keys, r) {
                        Some(r) => return r,
                        None => continue,
                    },
                },
                r if served(&r) => return (b.shape)(r),
                _ => {}
            }
        }
    }
}

/// The retry error of a list blocker: a watched key that now holds another type does not
/// serve it, as in Redis (it waits on for a list there); other errors (BLMOVE's destination of
/// the wrong type) end the wait.
pub fn list_retry_error(server: &Server, db: usize, keys: &[Bytes], r: Reply) -> Option<Reply> {
    retry_error_unless_retyped(server, db, keys, r, "list")
}

/// [`list_retry_error`] for sorted-set blockers.
pub fn zset_retry_error(server: &Server, db: usize, keys: &[Bytes], r: Reply) -> Option<Reply> {
    retry_error_unless_retyped(server, db, keys, r, "zset")
}

fn retry_error_unless_retyped(
    server: &Server,
    db: usize,
    keys: &[Bytes],
    r: Reply,
    type_name: &str,
) -> Option<Reply> {
    let now = crate::util::now_ms();
    let retyped = keys.iter().any(|k| {
        let shard = server.store.db(db).read(k);
        shard
            .get(k, now)
            .is_some_and(|e| e.value.type_name() != type_name)
    });
    (!retyped).then_some(r)
}

/// BLMPOP / BZMPOP: `timeout numkeys key [key ...] <side> [COUNT n]`, served by `pop` (LMPOP
/// or ZMPOP) over the same arguments.
pub fn block_mpop(
    ctx: &mut Ctx,
    args: &mut Args,
    pop: &'static str,
    handler: super::Handler,
) -> CmdResult {
    let timeout_ms = parse_timeout(args.next_slice()?)?;
    let rest = args.rest();
    let n = rest
        .first()
        .and_then(|n| crate::util::parse_i64(n))
        .filter(|n| *n > 0)
        .ok_or_else(|| super::CmdError::new("ERR numkeys should be greater than 0"))?;
    let keys: Vec<Bytes> = rest.iter().skip(1).take(n as usize).cloned().collect();
    let mut attempt = vec![Bytes::from_static(pop.as_bytes())];
    attempt.extend(rest);
    block(
        ctx,
        Blocking {
            keys,
            timeout_ms,
            attempt,
            handler,
            shape: |r| r,
            timed_out: Reply::NullArray,
            on_error: Some(retry_error_of(pop)),
        },
    )
}

/// The retry-error rule of a blocker served by `pop`.
fn retry_error_of(pop: &str) -> RetryError {
    if pop == "ZMPOP" {
        zset_retry_error
    } else {
        list_retry_error
    }
}

/// BLPOP / BRPOP / BZPOPMIN / BZPOPMAX: `key [key ...] timeout`, served by `<pop> numkeys
/// keys... <side>` (LMPOP or ZMPOP), the reply reshaped by `shape`.
pub fn block_pop(
    ctx: &mut Ctx,
    args: &mut Args,
    pop: &'static str,
    side: &'static str,
    handler: super::Handler,
    shape: fn(Reply) -> Reply,
) -> CmdResult {
    let mut keys = args.rest();
    let timeout = keys.pop().ok_or_else(super::CmdError::syntax)?;
    let timeout_ms = parse_timeout(&timeout)?;
    let mut attempt = vec![
        Bytes::from_static(pop.as_bytes()),
        Bytes::from(keys.len().to_string()),
    ];
    attempt.extend(keys.iter().cloned());
    attempt.push(Bytes::from_static(side.as_bytes()));
    block(
        ctx,
        Blocking {
            keys,
            timeout_ms,
            attempt,
            handler,
            shape,
            timed_out: Reply::NullArray,
            on_error: Some(retry_error_of(pop)),
        },
    )
}
