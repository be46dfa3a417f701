//! Locus inside redis-server: the AI.* commands as a Redis module, so that tensors, models and
//! routers scale out on Redis Cluster with its replication and failover.
//!
//! The module is a thin host. The commands are locus-server's own (its command table, parsers,
//! replies and errors, over the same engine): for each call the module copies the keys the
//! command names from Redis's keyspace into a private database of an embedded Locus keyspace
//! (a reference count each, no data is copied), runs the command there, and writes back what
//! changed. Model runs answer later: the client is blocked (`RedisModule_BlockClient`), the run
//! goes to the engine's queues, and its outputs are written and replicated from Redis's main
//! thread when it unblocks the client, so nothing runs under Redis's lock but the copy-in and
//! copy-out.
//!
//! Loaded with `redis-server --loadmodule liblocus_redis.so [NAME VALUE …]`, where the names
//! are RedisAI's (THREADS_PER_QUEUE, MODEL_EXECUTION_TIMEOUT, BACKEND_MEMORY_LIMIT, …) or any
//! locus-server setting that concerns the engine.

mod commands;
mod ffi;
mod host;
mod outbox;
mod propagation;
mod reply;
mod score;
mod slots;
mod task;
mod types;
mod watch;

use redis_module::{redis_module, Context, RedisString, Status};

/// RedisAI's own loadmodule arguments that name backend libraries: Locus runs ONNX models
/// through the ONNX Runtime it finds or provisions, so these are accepted and ignored.
const BACKEND_PATHS: &[&str] = &["BACKENDSPATH", "TF", "TFLITE", "TORCH", "ONNX"];

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    let words: Vec<String> = args.iter().map(|a| a.to_string_lossy()).collect();
    if !words.len().is_multiple_of(2) {
        ctx.log_warning("Locus: module arguments come in NAME VALUE pairs");
        return Status::Err;
    }
    let mut overrides = Vec::new();
    for pair in words.chunks(2) {
        if BACKEND_PATHS
            .iter()
            .any(|b| b.eq_ignore_ascii_case(&pair[0]))
        {
            ctx.log_notice(&format!(
                "Locus: {} is ignored (ONNX Runtime is found as locus-server finds it)",
                pair[0]
            ));
            continue;
        }
        overrides.push((pair[0].clone(), pair[1].clone()));
    }
    if let Err(e) = host::Host::start(&overrides) {
        ctx.log_warning(&format!("Locus: {e}"));
        return Status::Err;
    }
    unsafe { outbox::start(ctx.ctx) };
    if let Err(e) = unsafe { watch::start(ctx.ctx) } {
        ctx.log_warning(&format!("Locus: {e}"));
        return Status::Err;
    }
    if let Err(e) = unsafe { follow_clock(ctx.ctx) } {
        ctx.log_warning(&format!("Locus: {e}"));
        return Status::Err;
    }
    if let Err(e) = unsafe { propagation::start(ctx.ctx) } {
        ctx.log_warning(&format!("Locus: {e}"));
        return Status::Err;
    }
    if let Err(e) = unsafe { score::init(ctx.ctx) } {
        ctx.log_warning(&format!("Locus: {e}"));
        return Status::Err;
    }
    if let Err(e) = unsafe { commands::register(ctx.ctx) } {
        ctx.log_warning(&format!("Locus: {e}"));
        return Status::Err;
    }
    Status::Ok
}

unsafe extern "C" fn on_cron(
    _ctx: *mut redis_module::raw::RedisModuleCtx,
    _eid: redis_module::raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut std::os::raw::c_void,
) {
    locus::util::resync_clock();
    // Alerts raised between calls (a router's guard, a shadow's run).
    unsafe { outbox::apply() };
}

/// Re-anchors the engine's fast wall clock (read through the CPU's counter) on the OS clock at
/// each of Redis's cron ticks, as locus-server does from its own: left alone, it drifts by a
/// tenth of a second within minutes, and model versions record their store time with it.
///
/// # Safety
/// `ctx` is the module's load context.
unsafe fn follow_clock(ctx: *mut redis_module::raw::RedisModuleCtx) -> Result<(), String> {
    use redis_module::raw;
    // REDISMODULE_EVENT_CRON_LOOP (8).
    let event = raw::RedisModuleEvent { id: 8, dataver: 1 };
    if raw::RedisModule_SubscribeToServerEvent.unwrap()(ctx, event, Some(on_cron))
        != raw::REDISMODULE_OK as i32
    {
        return Err("cannot follow Redis's cron".into());
    }
    Ok(())
}

redis_module! {
    name: "ai",
    version: 10207,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [
        TENSOR_TYPE,
        MODEL_TYPE,
        ROUTER_TYPE,
    ],
    init: init,
}

use types::{MODEL_TYPE, ROUTER_TYPE, TENSOR_TYPE};
