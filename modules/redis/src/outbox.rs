//! What the embedded server writes on its own, applied to Redis: request-log entries and
//! alerts (`locus::outbox`). The embedded server runs each call in a stand-in database; its
//! per-database settings (AI.LOG, AI.MONITOR) belong to the Redis database the call came
//! from, and the streams it appends to (a key's request log, the alert stream) live in
//! Redis's keyspace, where clients read them with XREAD and consumer groups.
//!
//! Entries are added with XADD on the main thread: after every call, before its answer (a
//! client that reads the stream once answered finds the entry, as on locus-server), and at
//! each cron tick (alerts raised between calls). Each XADD replicates with the id it got, so
//! replicas and the AOF hold the same entry. In a cluster, a stream whose slot another node
//! serves is not written (Redis refuses the call): request logs are checked to share their
//! key's slot when set, and alerts always reach `__locus__:alerts` subscribers.

use crate::ffi::RString;
use crate::host::host;
use bytes::Bytes;
use locus::outbox::Forward;
use locus::server::reply::Reply;
use redis_module::raw;
use std::os::raw::c_int;

/// A context of the module's own for the writes (selects each entry's database); used on the
/// main thread only.
struct Writer(*mut raw::RedisModuleCtx);
unsafe impl Send for Writer {}
unsafe impl Sync for Writer {}
static WRITER: std::sync::OnceLock<Writer> = std::sync::OnceLock::new();

/// Turns the embedded server's outbox on.
///
/// # Safety
/// `ctx` is the module's load context.
pub unsafe fn start(ctx: *mut raw::RedisModuleCtx) {
    let own = raw::RedisModule_GetDetachedThreadSafeContext.unwrap()(ctx);
    let _ = WRITER.set(Writer(own));
    host().server.outbox.enable(crate::host::POOL);
}

/// Applies the queued writes.
///
/// # Safety
/// Called on Redis's main thread, inside a module callback (whose context's release
/// propagates what was replicated).
pub unsafe fn apply() {
    let server = &host().server;
    if !server.outbox.pending() {
        return;
    }
    let Some(w) = WRITER.get() else {
        return;
    };
    for f in server.outbox.drain() {
        match f {
            Forward::Entry {
                db,
                key,
                maxlen,
                fields,
            } => append(w.0, db, key, maxlen, fields),
            Forward::Publish { channel, message } => {
                let (c, m) = (RString::new(w.0, &channel), RString::new(w.0, &message));
                raw::RedisModule_PublishMessage.unwrap()(w.0, c.ptr, m.ptr);
            }
        }
    }
}

/// XADD of one entry in Redis's database `db`, replicated with the id it was given.
unsafe fn append(
    ctx: *mut raw::RedisModuleCtx,
    db: usize,
    key: Bytes,
    maxlen: u64,
    fields: Vec<Bytes>,
) {
    raw::RedisModule_SelectDb.unwrap()(ctx, db as c_int);
    let bound: Vec<Bytes> = if maxlen > 0 {
        vec![
            Bytes::from_static(b"MAXLEN"),
            Bytes::from(maxlen.to_string()),
        ]
    } else {
        Vec::new()
    };
    let mut args = vec![key.clone()];
    args.extend(bound.iter().cloned());
    args.push(Bytes::from_static(b"*"));
    args.extend(fields.iter().cloned());
    let Some(id) = call(ctx, c"XADD", &args).and_then(|r| r.string()) else {
        // Another type under the stream's name, or (in a cluster) another node's slot.
        return;
    };
    if crate::propagation::needed(ctx) {
        let mut argv = vec![Bytes::from_static(b"XADD"), key];
        argv.extend(bound);
        argv.push(id);
        argv.extend(fields);
        crate::commands::replicate(ctx, &argv);
    }
}

/// A reply of `RedisModule_Call`, freed when dropped.
struct CallReply(*mut raw::RedisModuleCallReply);

impl Drop for CallReply {
    fn drop(&mut self) {
        unsafe { raw::RedisModule_FreeCallReply.unwrap()(self.0) }
    }
}

impl CallReply {
    unsafe fn kind(&self) -> isize {
        raw::RedisModule_CallReplyType.unwrap()(self.0) as isize
    }

    /// The reply's bytes when it is a string.
    unsafe fn string(&self) -> Option<Bytes> {
        if self.kind() != raw::REDISMODULE_REPLY_STRING {
            return None;
        }
        Some(Bytes::copy_from_slice(element_bytes(self.0)))
    }
}

unsafe fn element_bytes<'a>(r: *mut raw::RedisModuleCallReply) -> &'a [u8] {
    let mut len = 0usize;
    let p = raw::RedisModule_CallReplyStringPtr.unwrap()(r, &mut len);
    if p.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(p.cast::<u8>(), len)
}

/// Runs a Redis command (without replicating it); `None` when Redis refused the call.
unsafe fn call(
    ctx: *mut raw::RedisModuleCtx,
    name: &std::ffi::CStr,
    args: &[Bytes],
) -> Option<CallReply> {
    let strings: Vec<RString> = args.iter().map(|a| RString::new(ctx, a)).collect();
    let mut ptrs: Vec<*mut raw::RedisModuleString> = strings.iter().map(|s| s.ptr).collect();
    let reply = raw::RedisModule_Call.unwrap()(
        ctx,
        name.as_ptr(),
        c"v".as_ptr(),
        ptrs.as_mut_ptr(),
        ptrs.len(),
    );
    (!reply.is_null()).then_some(CallReply(reply))
}

/// AI.ALERTS [COUNT n]: the latest entries of the alert stream in the caller's database,
/// newest first, as locus-server answers (read from Redis's stream with XREVRANGE).
///
/// # Safety
/// `ctx` is a live command context.
pub unsafe fn alerts(ctx: *mut raw::RedisModuleCtx, args: &[Bytes]) -> c_int {
    let count = match locus::cmd::routers::alerts_count(&args[1..]) {
        Ok(n) => n,
        Err(e) => return crate::commands::error(ctx, &e.0),
    };
    let key = host().server.config.live.alert_stream.read().clone();
    let mut out = Vec::new();
    if !key.is_empty() {
        let words = [
            key,
            Bytes::from_static(b"+"),
            Bytes::from_static(b"-"),
            Bytes::from_static(b"COUNT"),
            Bytes::from(count.to_string()),
        ];
        if let Some(r) = call(ctx, c"XREVRANGE", &words) {
            if r.kind() == raw::REDISMODULE_REPLY_ARRAY {
                out = entries(r.0);
            }
        }
    }
    crate::reply::send(ctx, &Reply::Array(out));
    raw::REDISMODULE_OK as c_int
}

/// XREVRANGE's entries as AI.ALERTS gives them.
unsafe fn entries(r: *mut raw::RedisModuleCallReply) -> Vec<Reply> {
    let len = raw::RedisModule_CallReplyLength.unwrap()(r);
    let element = raw::RedisModule_CallReplyArrayElement.unwrap();
    let bytes = |e| Bytes::copy_from_slice(element_bytes(e));
    (0..len)
        .filter_map(|i| {
            let e = element(r, i);
            let (id, fields) = (element(e, 0), element(e, 1));
            if id.is_null() || fields.is_null() {
                return None;
            }
            let n = raw::RedisModule_CallReplyLength.unwrap()(fields);
            let fields: Vec<Bytes> = (0..n).map(|j| bytes(element(fields, j))).collect();
            Some(locus::cmd::routers::alert_entry(bytes(id), &fields))
        })
        .collect()
}
