//! Whether what the module replicates can reach anyone.
//!
//! A run's outputs replicate as one AI.TENSORSET each, built on Redis's main thread (the
//! command, its strings, the tensor's blob). Redis drops a replicated command unless the AOF
//! is on or replication has begun (a replica asked to sync, or this server is or was a
//! replica); building them for nobody cost the main thread about a twentieth of a batched
//! run's time. So the module builds them only when they can reach someone.
//!
//! Replication, once begun, counts as begun for good: Redis keeps its backlog for replicas that
//! come back. It is seen beginning at the fork that makes a new replica's snapshot (writes from
//! then on reach it through its buffer), when a replica or the master link changes, and when
//! the role changes; and, for a module loaded at run time, in INFO at load.

use redis_module::raw;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};

static BEGUN: AtomicBool = AtomicBool::new(false);

/// Reads INFO replication: a replica, a connected replica or a backlog means replication began.
unsafe fn check(ctx: *mut raw::RedisModuleCtx) {
    let info = raw::RedisModule_GetServerInfo.unwrap()(ctx, c"replication".as_ptr());
    if info.is_null() {
        // Nothing to read: assume the worst.
        BEGUN.store(true, Ordering::Relaxed);
        return;
    }
    let number = |field: &CStr| {
        let mut err = 0;
        let n =
            raw::RedisModule_ServerInfoGetFieldUnsigned.unwrap()(info, field.as_ptr(), &mut err);
        if err == 0 {
            n
        } else {
            1
        }
    };
    let role = raw::RedisModule_ServerInfoGetFieldC.unwrap()(info, c"role".as_ptr());
    let master = !role.is_null() && CStr::from_ptr(role).to_bytes() == b"master";
    if !master || number(c"connected_slaves") > 0 || number(c"repl_backlog_active") > 0 {
        BEGUN.store(true, Ordering::Relaxed);
    }
    raw::RedisModule_FreeServerInfo.unwrap()(ctx, info);
}

unsafe extern "C" fn on_replication(
    _ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut std::os::raw::c_void,
) {
    BEGUN.store(true, Ordering::Relaxed);
}

unsafe extern "C" fn on_fork(
    ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut std::os::raw::c_void,
) {
    // REDISMODULE_SUBEVENT_FORK_CHILD_BORN: a snapshot for a new replica starts here (a
    // replica that asked to sync is already among the connected ones).
    if subevent == 0 {
        check(ctx);
    }
}

/// Reads where replication stands and follows it.
///
/// # Safety
/// `ctx` is the module's load context.
pub unsafe fn start(ctx: *mut raw::RedisModuleCtx) -> Result<(), String> {
    check(ctx);
    // REPLICATION_ROLE_CHANGED (0), REPLICA_CHANGE (6), MASTER_LINK_CHANGE (7), FORK_CHILD (13).
    let events: [(u64, raw::RedisModuleEventCallback); 4] = [
        (0, Some(on_replication)),
        (6, Some(on_replication)),
        (7, Some(on_replication)),
        (13, Some(on_fork)),
    ];
    for (id, callback) in events {
        let event = raw::RedisModuleEvent { id, dataver: 1 };
        if raw::RedisModule_SubscribeToServerEvent.unwrap()(ctx, event, callback)
            != raw::REDISMODULE_OK as i32
        {
            return Err("cannot follow replication".into());
        }
    }
    Ok(())
}

/// Whether a command replicated now reaches an AOF or a replica.
///
/// # Safety
/// `ctx` is a live module context.
pub unsafe fn needed(ctx: *mut raw::RedisModuleCtx) -> bool {
    BEGUN.load(Ordering::Relaxed)
        || crate::ffi::context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_AOF != 0
}
