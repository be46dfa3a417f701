//! A lone client's run answered without a wake-up.
//!
//! A run that answers later costs Redis's main thread a wake-up: it sleeps in epoll until the
//! finishing thread writes to the module's pipe, and on a virtual machine that wake-up is a good
//! part of a short run's latency. locus-server's event loop watches for a result for a moment
//! after submitting a run; the module does the same, but only when no other client is
//! connected, because Redis's main thread cannot see other clients' requests arrive while it
//! watches: with a second client connected, the call blocks and the main thread goes back to
//! serving.

use redis_module::raw;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// How long the main thread watches for a lone client's result (as locus-server's loop).
pub const WATCH: Duration = Duration::from_micros(100);

/// Clients connected now (from Redis's client-change events).
static CLIENTS: AtomicI64 = AtomicI64::new(0);

unsafe extern "C" fn on_client_change(
    _ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut std::os::raw::c_void,
) {
    // REDISMODULE_SUBEVENT_CLIENT_CHANGE_CONNECTED (0) and _DISCONNECTED (1).
    match subevent {
        0 => CLIENTS.fetch_add(1, Ordering::Relaxed),
        _ => CLIENTS.fetch_sub(1, Ordering::Relaxed),
    };
}

/// Counts the clients already connected (a module loaded at run time) and follows the changes.
///
/// # Safety
/// `ctx` is the module's load context.
pub unsafe fn start(ctx: *mut raw::RedisModuleCtx) -> Result<(), String> {
    let info = raw::RedisModule_GetServerInfo.unwrap()(ctx, c"clients".as_ptr());
    if !info.is_null() {
        let mut err = 0;
        let n = raw::RedisModule_ServerInfoGetFieldUnsigned.unwrap()(
            info,
            c"connected_clients".as_ptr(),
            &mut err,
        );
        if err == 0 {
            CLIENTS.store(n as i64, Ordering::Relaxed);
        }
        raw::RedisModule_FreeServerInfo.unwrap()(ctx, info);
    }
    // REDISMODULE_EVENT_CLIENT_CHANGE, data version 1.
    let event = raw::RedisModuleEvent { id: 4, dataver: 1 };
    if raw::RedisModule_SubscribeToServerEvent.unwrap()(ctx, event, Some(on_client_change))
        != raw::REDISMODULE_OK as i32
    {
        return Err("cannot follow client connections".into());
    }
    Ok(())
}

/// Whether the caller is the only client connected.
pub fn alone() -> bool {
    CLIENTS.load(Ordering::Relaxed) <= 1
}

/// Spins until `ready()` or [`WATCH`] has passed; whether it became ready.
pub fn watch(ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if start.elapsed() >= WATCH {
            return false;
        }
        std::hint::spin_loop();
    }
}
