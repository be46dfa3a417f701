//! The AI.* commands: registered from locus-server's command table (its `commands/*.json`, so
//! names, arity, flags and key specs are the same), run through its handlers over the bridge.

use crate::ffi::{self, bytes_of, RString, SendPtr};
use crate::host::{self, host, Imported};
use crate::{reply, slots, types};
use bytes::Bytes;
use locus::cmd::table::{BeginSearch, Command, FindKeys, KeyProc};
use locus::cmd::{Args, Ctx};
use locus::server::protocol::Request;
use locus::server::reply::Reply;
use redis_module::raw;
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::Arc;

const OK: c_int = raw::REDISMODULE_OK as c_int;

/// Whether `cmd` is registered with the rest: every AI command but the containers (AI.JOB,
/// AI.LOG, AI.MONITOR), which are registered with their subcommands.
fn in_module(cmd: &Command) -> bool {
    cmd.name.starts_with("ai.")
        && cmd.subcommands.is_empty()
        && !cmd.name.contains('|')
        && !CONTAINERS.iter().any(|family| cmd.name.starts_with(family))
}

/// Commands registered as a container and its subcommands.
const CONTAINERS: &[&str] = &["ai.job", "ai.log", "ai.monitor"];

/// A container command and its subcommands (AI.JOB's are answered over Redis's keyspace by
/// the module's own handler, the others through the embedded keyspace as any command).
unsafe fn register_container(ctx: *mut raw::RedisModuleCtx, name: &str) -> Result<(), String> {
    let server = &host().server;
    let Some(container) = server.commands.get(name.as_bytes()) else {
        return Ok(());
    };
    let c_name = CString::new(name).unwrap_or_default();
    let done =
        raw::RedisModule_CreateCommand.unwrap()(ctx, c_name.as_ptr(), None, c"".as_ptr(), 0, 0, 0);
    if done != OK {
        return Err(format!("cannot register {name}"));
    }
    let parent = get_command(ctx, name);
    for sub in container.subcommands.values() {
        let short = sub.name.rsplit('|').next().unwrap_or_default();
        let n = CString::new(short).unwrap_or_default();
        let fl = CString::new(module_flags(sub)).unwrap_or_default();
        let done = raw::RedisModule_CreateSubcommand.unwrap()(
            parent,
            n.as_ptr(),
            Some(on_command),
            fl.as_ptr(),
            0,
            0,
            0,
        );
        if done != OK {
            return Err(format!("cannot register {}", sub.name));
        }
        set_info(ctx, sub)?;
    }
    Ok(())
}

/// Registers every AI command and the AOF rewrite's restore command.
///
/// # Safety
/// `ctx` is the module's load context.
pub unsafe fn register(ctx: *mut raw::RedisModuleCtx) -> Result<(), String> {
    let server = &host().server;
    let detached = raw::RedisModule_GetDetachedThreadSafeContext.unwrap()(ctx);
    let _ = DETACHED.set(Detached(detached));
    for cmd in server.commands.commands() {
        if !in_module(cmd) {
            continue;
        }
        create(ctx, &cmd.name, &module_flags(cmd), Some(on_command))?;
        set_info(ctx, cmd)?;
    }
    for name in CONTAINERS {
        register_container(ctx, name)?;
    }
    create(
        ctx,
        &types::RESTORE_COMMAND.to_lowercase(),
        "write deny-oom",
        Some(on_restore),
    )?;
    let restore = get_command(ctx, &types::RESTORE_COMMAND.to_lowercase());
    let mut specs = [
        KeySpecC {
            notes: std::ptr::null(),
            flags: KEY_OW | KEY_UPDATE,
            begin_search_type: BS_INDEX,
            bs: [1, 0],
            find_keys_type: FK_RANGE,
            fk: [0, 1, 0],
        },
        KeySpecC::zeroed(),
    ];
    info_call(restore, 3, specs.as_mut_ptr())?;
    Ok(())
}

type CommandFn = unsafe extern "C" fn(
    *mut raw::RedisModuleCtx,
    *mut *mut raw::RedisModuleString,
    c_int,
) -> c_int;

unsafe fn create(
    ctx: *mut raw::RedisModuleCtx,
    name: &str,
    flags: &str,
    f: Option<CommandFn>,
) -> Result<(), String> {
    let n = CString::new(name).unwrap_or_default();
    let fl = CString::new(flags).unwrap_or_default();
    let done = raw::RedisModule_CreateCommand.unwrap()(ctx, n.as_ptr(), f, fl.as_ptr(), 0, 0, 0);
    if done != OK {
        return Err(format!("cannot register {name}"));
    }
    Ok(())
}

unsafe fn get_command(ctx: *mut raw::RedisModuleCtx, name: &str) -> *mut raw::RedisModuleCommand {
    let n = CString::new(name).unwrap_or_default();
    raw::RedisModule_GetCommand.unwrap()(ctx, n.as_ptr())
}

/// Redis's command flags for a Locus command. Commands naming keys find them through the
/// module (`getkeys-api`) where their key specs cannot say (DAGs, the models a run names).
fn module_flags(cmd: &Command) -> String {
    let mut out = Vec::new();
    for f in &cmd.flags {
        let mapped = match f.as_str() {
            "WRITE" => "write",
            "READONLY" => "readonly",
            "DENYOOM" => "deny-oom",
            "ADMIN" => "admin",
            "FAST" => "fast",
            "NOSCRIPT" => "deny-script",
            "ALLOW_BUSY" => "allow-busy",
            _ => continue,
        };
        out.push(mapped);
    }
    if cmd.has_keys() {
        out.push("getkeys-api");
    }
    out.join(" ")
}

// Redis's key spec flags and search types (redismodule.h).
const KEY_RO: u64 = 1 << 0;
const KEY_RW: u64 = 1 << 1;
const KEY_OW: u64 = 1 << 2;
const KEY_RM: u64 = 1 << 3;
const KEY_ACCESS: u64 = 1 << 4;
const KEY_UPDATE: u64 = 1 << 5;
const KEY_INSERT: u64 = 1 << 6;
const KEY_DELETE: u64 = 1 << 7;
const KEY_NOT_KEY: u64 = 1 << 8;
const KEY_INCOMPLETE: u64 = 1 << 9;
const KEY_VARIABLE_FLAGS: u64 = 1 << 10;
const BS_UNKNOWN: c_int = 1;
const BS_INDEX: c_int = 2;
const BS_KEYWORD: c_int = 3;
const FK_UNKNOWN: c_int = 1;
const FK_RANGE: c_int = 2;
const FK_KEYNUM: c_int = 3;

/// `RedisModuleCommandKeySpec`, laid out as the C header has it (its unions as the widest
/// member: a pointer and an int, three ints).
#[repr(C)]
struct KeySpecC {
    notes: *const c_char,
    flags: u64,
    begin_search_type: c_int,
    bs: [usize; 2],
    find_keys_type: c_int,
    fk: [c_int; 3],
}

impl KeySpecC {
    fn zeroed() -> KeySpecC {
        KeySpecC {
            notes: std::ptr::null(),
            flags: 0,
            begin_search_type: 0,
            bs: [0, 0],
            find_keys_type: 0,
            fk: [0; 3],
        }
    }
}

#[repr(C)]
struct InfoVersionC {
    version: c_int,
    sizeof_historyentry: usize,
    sizeof_keyspec: usize,
    sizeof_arg: usize,
}

#[repr(C)]
struct InfoC {
    version: *const InfoVersionC,
    summary: *const c_char,
    complexity: *const c_char,
    since: *const c_char,
    history: *mut c_void,
    tips: *const c_char,
    arity: c_int,
    key_specs: *mut KeySpecC,
    args: *mut c_void,
}

unsafe fn info_call(
    command: *mut raw::RedisModuleCommand,
    arity: c_int,
    specs: *mut KeySpecC,
) -> Result<(), String> {
    let version = InfoVersionC {
        version: 1,
        sizeof_historyentry: 2 * std::mem::size_of::<usize>(),
        sizeof_keyspec: std::mem::size_of::<KeySpecC>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    let info = InfoC {
        version: &version,
        summary: std::ptr::null(),
        complexity: std::ptr::null(),
        since: std::ptr::null(),
        history: std::ptr::null_mut(),
        tips: std::ptr::null(),
        arity,
        key_specs: specs,
        args: std::ptr::null_mut(),
    };
    let set = raw::RedisModule_SetCommandInfo.unwrap();
    if set(command, (&info as *const InfoC).cast()) != OK {
        return Err("cannot declare a command's key specs".into());
    }
    Ok(())
}

/// Declares the command's arity and its key specs (from its JSON spec) to Redis, which routes
/// and checks ACL key patterns with them. Specs that cannot find every key (a DAG's models) are
/// marked INCOMPLETE, so Redis asks the module for those commands' keys.
unsafe fn set_info(ctx: *mut raw::RedisModuleCtx, cmd: &Command) -> Result<(), String> {
    let command = get_command(ctx, &cmd.name);
    let mut keywords: Vec<CString> = Vec::new();
    let mut specs: Vec<KeySpecC> = Vec::new();
    let incomplete = matches!(
        cmd.key_proc,
        KeyProc::Dag | KeyProc::ModelRun | KeyProc::TensorOp
    );
    for ks in &cmd.key_specs {
        let mut flags = 0u64;
        for f in &ks.flags {
            flags |= match f.as_str() {
                "RO" => KEY_RO,
                "RW" => KEY_RW,
                "OW" => KEY_OW,
                "RM" => KEY_RM,
                "ACCESS" => KEY_ACCESS,
                "UPDATE" => KEY_UPDATE,
                "INSERT" => KEY_INSERT,
                "DELETE" => KEY_DELETE,
                "NOT_KEY" => KEY_NOT_KEY,
                "INCOMPLETE" => KEY_INCOMPLETE,
                "VARIABLE_FLAGS" => KEY_VARIABLE_FLAGS,
                _ => 0,
            };
        }
        if incomplete {
            flags |= KEY_INCOMPLETE;
        }
        let mut spec = KeySpecC::zeroed();
        spec.flags = flags;
        match &ks.begin {
            BeginSearch::Index(pos) => {
                spec.begin_search_type = BS_INDEX;
                spec.bs = [*pos as c_int as u32 as usize, 0];
            }
            BeginSearch::Keyword { keyword, startfrom } => {
                let k = CString::new(keyword.as_str()).unwrap_or_default();
                spec.begin_search_type = BS_KEYWORD;
                // keyword pointer, then the int `startfrom` in the next word.
                spec.bs = [k.as_ptr() as usize, *startfrom as c_int as u32 as usize];
                keywords.push(k);
            }
            BeginSearch::Unknown => spec.begin_search_type = BS_UNKNOWN,
        }
        match &ks.find {
            FindKeys::Range {
                lastkey,
                step,
                limit,
            } => {
                spec.find_keys_type = FK_RANGE;
                spec.fk = [*lastkey as c_int, *step as c_int, *limit as c_int];
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                step,
            } => {
                spec.find_keys_type = FK_KEYNUM;
                spec.fk = [*keynumidx as c_int, *firstkey as c_int, *step as c_int];
            }
            FindKeys::Unknown => spec.find_keys_type = FK_UNKNOWN,
        }
        specs.push(spec);
    }
    specs.push(KeySpecC::zeroed());
    let ptr = if specs.len() > 1 {
        specs.as_mut_ptr()
    } else {
        std::ptr::null_mut()
    };
    let result = info_call(command, cmd.arity as c_int, ptr);
    drop(keywords);
    result
}

/// The call's arguments, copied once into one buffer that every argument shares.
fn request_of(argv: *mut *mut raw::RedisModuleString, argc: c_int) -> Request {
    Request::from_args((0..argc as usize).map(|i| unsafe { bytes_of(*argv.add(i)) }))
}

/// The distinct keys a call names, in order.
fn keys_of(cmd: &Command, args: &[Bytes]) -> Vec<Bytes> {
    let mut keys: Vec<Bytes> = Vec::new();
    for i in cmd.key_positions(args) {
        if let Some(k) = args.get(i) {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys
}

/// Whether the keys of a run or DAG span slots in a cluster: such a call reports only its
/// first key to Redis, so that it reaches a node that can say which key lives where.
fn spans_slots(cmd: &Command, keys: &[Bytes]) -> Option<String> {
    if !matches!(cmd.key_proc, KeyProc::Dag | KeyProc::ModelRun) && !cmd.name.contains("execute") {
        return None;
    }
    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
    slots::cross_slot_error(&refs)
}

unsafe fn in_cluster(ctx: *mut raw::RedisModuleCtx) -> bool {
    ffi::context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_CLUSTER != 0
}

/// Answers Redis's question about a call's keys (COMMAND GETKEYS, cluster routing, ACL).
unsafe fn report_keys(ctx: *mut raw::RedisModuleCtx, args: &[Bytes]) {
    let server = &host().server;
    let Ok((cmd, _)) = server.commands.resolve(args) else {
        return;
    };
    let mut positions: Vec<usize> = cmd.key_positions(args).into_iter().collect();
    if in_cluster(ctx) && spans_slots(&cmd, &keys_of(&cmd, args)).is_some() {
        positions.truncate(1);
    }
    for p in positions {
        raw::RedisModule_KeyAtPos.unwrap()(ctx, p as c_int);
    }
}

pub(crate) unsafe fn error(ctx: *mut raw::RedisModuleCtx, text: &str) -> c_int {
    reply::send(ctx, &Reply::Error(text.to_string()));
    OK
}

/// A call waiting for its answer: what it needs to write back its outputs and replicate.
struct Pending {
    imported: Imported,
    cmd: Arc<Command>,
    args: Vec<Bytes>,
    /// The Redis database the call's keys are in.
    redis_db: c_int,
}

/// A context of the module's own, not tied to a client, for writing back the outputs of a
/// call whose client left before its answer (Redis frees such a call's data with a context
/// that has no database). Used on the main thread only.
struct Detached(*mut raw::RedisModuleCtx);
unsafe impl Send for Detached {}
unsafe impl Sync for Detached {}
static DETACHED: std::sync::OnceLock<Detached> = std::sync::OnceLock::new();

/// Handed from the engine's side to Redis's main thread when a call answers.
struct Slot {
    done: Option<(Pending, Reply)>,
    /// The blocked client it answers, when the call is in [`CANCELLABLE`].
    cancellable: Option<usize>,
}

/// Calls that stop when their client goes away, by blocked client: explanations, which
/// locus-server drops with their client (a run's outputs are stored all the same). Touched
/// on the main thread only.
static CANCELLABLE: parking_lot::Mutex<
    std::collections::BTreeMap<usize, std::sync::Weak<crate::task::Task>>,
> = parking_lot::Mutex::new(std::collections::BTreeMap::new());

/// A blocked client left: its explanation stops, and the client is unblocked (Redis asks
/// that of every blocked client, gone or not).
unsafe extern "C" fn on_disconnect(
    _ctx: *mut raw::RedisModuleCtx,
    bc: *mut raw::RedisModuleBlockedClient,
) {
    let task = CANCELLABLE
        .lock()
        .get(&(bc as usize))
        .and_then(|t| t.upgrade());
    if let Some(task) = task {
        task.cancel(Reply::Error("ERR the client went away".into()));
    }
}

unsafe extern "C" fn on_command(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    let request = request_of(argv, argc);
    let args = request.to_vec();
    if raw::RedisModule_IsKeysPositionRequest.unwrap()(ctx) != 0 {
        report_keys(ctx, &args);
        return OK;
    }
    let h = host();
    let server = &h.server;
    let (cmd, skip) = match server.commands.resolve(&args[..]) {
        Ok(found) => found,
        Err(e) => return error(ctx, &e),
    };
    let Some(handler) = cmd.handler else {
        return error(ctx, "ERR unknown command");
    };
    // Answered here, not through the embedded keyspace: these read or run over Redis's own.
    match cmd.name.as_str() {
        "ai._modelscan" => return model_scan(ctx, &args),
        "ai.score" => return crate::score::score(ctx, &args),
        "ai.alerts" => return crate::outbox::alerts(ctx, &args),
        name if name.starts_with("ai.job|") => return crate::score::job_command(ctx, &args),
        _ => {}
    }
    // The call's key arguments, found once: with the call's own strings for the copy-in.
    let mut named: Vec<(Bytes, *mut raw::RedisModuleString)> = Vec::new();
    for i in cmd.key_positions(&args) {
        if let Some(k) = args.get(i) {
            named.push((k.clone(), *argv.add(i)));
        }
    }
    if in_cluster(ctx) {
        let keys: Vec<Bytes> = named.iter().map(|(k, _)| k.clone()).collect();
        if let Some(e) = spans_slots(&cmd, &keys) {
            return error(ctx, &e);
        }
    }
    let flags = ffi::context_flags(ctx);
    // Inside MULTI, a script, a replica's stream or a load, a call cannot block: commands that
    // would answer later refuse (as in RedisAI) or, storing a model, load it in place.
    let in_place = flags
        & (raw::REDISMODULE_CTX_FLAGS_MULTI
            | raw::REDISMODULE_CTX_FLAGS_LUA
            | raw::REDISMODULE_CTX_FLAGS_REPLICATED
            | raw::REDISMODULE_CTX_FLAGS_LOADING
            | raw::REDISMODULE_CTX_FLAGS_DENY_BLOCKING)
        != 0;
    let Some(db) = h.take_db() else {
        return error(ctx, "ERR too many AI commands in flight");
    };
    let redis_db = raw::RedisModule_GetSelectedDb.unwrap()(ctx);
    // The call's settings (AI.LOG, AI.MONITOR) and streams are those of its Redis database.
    server.outbox.lend(db, redis_db as usize);
    if cmd.name == "ai.routerset" && args.len() > 2 {
        // A router's targets are checked when it is set: they come in with it.
        if let Ok(def) = locus_engine::router::RouterDef::parse(&args[2..]) {
            named.extend(
                def.targets
                    .into_iter()
                    .map(|t| (t.key, std::ptr::null_mut())),
            );
        }
    }
    let mut imported = host::import(ctx, db, named);
    match cmd.name.as_str() {
        "ai.tensorfromhash" => {
            if let (Some(key), Some(fields)) = (args.get(3), args.get(4..)) {
                host::import_hash_fields(ctx, &imported, key, *argv.add(3), fields);
            }
        }
        "ai.modellist" => host::import_models(ctx, &mut imported),
        _ => {}
    }
    let mut client = h.client(db);
    client.proto = if flags & raw::REDISMODULE_CTX_FLAGS_RESP3 != 0 {
        3
    } else {
        2
    };
    ffi::identify(ctx, &mut client);
    let runtime = h.runtime.enter();
    let mut a = Args::new(request, skip);
    let mut c = Ctx::new(server, &mut client, &cmd);
    c.in_exec = in_place;
    let result = handler(&mut c, &mut a);
    let deferred = c.deferred.take();
    drop(c);
    drop(a);
    h.put_client(db, client);
    if deferred.is_some() && !in_place && runs_models(&cmd) {
        host::release_models(&mut imported);
    }
    let pending = Pending {
        imported,
        cmd: Arc::clone(&cmd),
        args,
        redis_db,
    };
    match (result, deferred) {
        (Err(e), _) => {
            finish(ctx, pending, false);
            error(ctx, &e.0)
        }
        (Ok(r), None) => {
            let ok = !r.is_error();
            finish(ctx, pending, ok);
            reply::send(ctx, &r);
            OK
        }
        (Ok(_), Some(fut)) if in_place => {
            drop(runtime);
            let r = h.runtime.block_on(fut);
            finish(ctx, pending, !r.is_error());
            reply::send(ctx, &r);
            OK
        }
        (Ok(_), Some(fut)) => {
            later(ctx, pending, fut);
            OK
        }
    }
}

/// Whether the command runs models: a model execution or a DAG.
fn runs_models(cmd: &Command) -> bool {
    matches!(cmd.key_proc, KeyProc::Dag | KeyProc::ModelRun) || cmd.name == "ai.modelexecute"
}

/// Whether the command replicates as its effects: runs, and explanations (KernelSHAP samples
/// coalitions at random, and a replica should not pay for the model calls again).
fn replicates_effects(cmd: &Command) -> bool {
    cmd.oom_at_store || runs_models(cmd) || cmd.name == "ai.explain"
}

/// AI._MODELSCAN (RedisAI's): every model of every database with its tag. Answered here, not
/// by locus-server's handler, which would scan the embedded keyspace's call databases.
unsafe fn model_scan(ctx: *mut raw::RedisModuleCtx, args: &[Bytes]) -> c_int {
    if args.len() != 1 {
        return error(
            ctx,
            "ERR wrong number of arguments for 'ai._modelscan' command",
        );
    }
    let select = raw::RedisModule_SelectDb.unwrap();
    let start = raw::RedisModule_GetSelectedDb.unwrap()(ctx);
    let mut out = Vec::new();
    let mut db = 0;
    while select(ctx, db) == OK {
        for (key, value) in host::models_in_db(ctx) {
            if let locus::store::Value::Model(m) = value {
                out.push(locus::cmd::models::modelscan_entry(key, &m));
            }
        }
        db += 1;
    }
    select(ctx, start);
    reply::send(ctx, &Reply::Array(out));
    OK
}

/// Where a call answering later stands: its answer arrives on the engine's side, while the
/// main thread either still watches for it (a lone client) or has blocked the client.
struct Later {
    pending: Option<Pending>,
    answer: Option<Reply>,
    blocked: Option<SendPtr>,
}

/// Answers a call that finishes later: at once when its answer comes while a lone client's
/// call is watched (see `watch`), else through a blocked client.
unsafe fn later(ctx: *mut raw::RedisModuleCtx, pending: Pending, fut: locus::cmd::Deferred) {
    // Explanations stop when their client leaves (see `on_disconnect`).
    let cancellable = pending.cmd.name == "ai.explain";
    let h = host();
    let state = Arc::new(parking_lot::Mutex::new(Later {
        pending: Some(pending),
        answer: None,
        blocked: None,
    }));
    let answered = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (shared, flag) = (Arc::clone(&state), Arc::clone(&answered));
    let task = crate::task::Task::start(fut, h.runtime.handle().clone(), move |r| {
        let mut s = shared.lock();
        match s.blocked.take() {
            Some(bc) => {
                let slot = Box::new(Slot {
                    done: s.pending.take().map(|p| (p, r)),
                    cancellable: cancellable.then_some(bc.0 as usize),
                });
                raw::RedisModule_UnblockClient.unwrap()(bc.0.cast(), Box::into_raw(slot).cast());
            }
            None => {
                s.answer = Some(r);
                flag.store(true, std::sync::atomic::Ordering::Release);
            }
        }
    });
    let done = || answered.load(std::sync::atomic::Ordering::Acquire);
    if !done() && crate::watch::alone() {
        crate::watch::watch(done);
    }
    let mut s = state.lock();
    if let Some(r) = s.answer.take() {
        let pending = s.pending.take().expect("an unanswered call");
        drop(s);
        finish(ctx, pending, !r.is_error());
        reply::send(ctx, &r);
        return;
    }
    let bc =
        raw::RedisModule_BlockClient.unwrap()(ctx, Some(on_unblocked), None, Some(free_slot), 0);
    s.blocked = Some(SendPtr(bc.cast()));
    drop(s);
    if cancellable {
        CANCELLABLE
            .lock()
            .insert(bc as usize, Arc::downgrade(&task));
        raw::RedisModule_SetDisconnectCallback.unwrap()(bc, Some(on_disconnect));
    }
}

/// Writes back what the call changed and replicates it: a call answered at once as itself
/// (stores, deletes, router changes), a run as its effects, one AI.TENSORSET per output (a
/// replica never runs a model to reproduce an output), a model stored later as itself.
unsafe fn finish(ctx: *mut raw::RedisModuleCtx, pending: Pending, ok: bool) {
    let changes = host::export(ctx, pending.imported, &pending.cmd.name);
    // Request-log entries and alerts of the call, before its answer.
    crate::outbox::apply();
    if !ok || !pending.cmd.write || !crate::propagation::needed(ctx) {
        return;
    }
    let replaced_other = changes.any && changes.tensors.is_empty() && changes.deleted.is_empty();
    if replicates_effects(&pending.cmd) && !replaced_other {
        for (key, t) in &changes.tensors {
            let argv = locus::cmd::tensors::tensorset_command(key, t);
            replicate(ctx, &argv);
        }
        for key in &changes.deleted {
            replicate(ctx, &[Bytes::from_static(b"DEL"), key.clone()]);
        }
    } else {
        replicate(ctx, &pending.args);
    }
}

/// Replicates `argv` to the AOF and the replicas (from a command, an unblocked client or a
/// job's thread-safe context).
pub(crate) unsafe fn replicate(ctx: *mut raw::RedisModuleCtx, argv: &[Bytes]) {
    let Some((name, rest)) = argv.split_first() else {
        return;
    };
    let name = CString::new(name.to_vec()).unwrap_or_default();
    let strings: Vec<RString> = rest.iter().map(|a| RString::new(ctx, a)).collect();
    let mut ptrs: Vec<*mut raw::RedisModuleString> = strings.iter().map(|s| s.ptr).collect();
    raw::RedisModule_Replicate.unwrap()(
        ctx,
        name.as_ptr(),
        c"v".as_ptr(),
        ptrs.as_mut_ptr(),
        ptrs.len(),
    );
}

unsafe extern "C" fn on_unblocked(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let slot = raw::RedisModule_GetBlockedClientPrivateData.unwrap()(ctx).cast::<Slot>();
    if let Some((pending, r)) = slot.as_mut().and_then(|s| s.done.take()) {
        finish(ctx, pending, !r.is_error());
        reply::send(ctx, &r);
    }
    OK
}

/// Frees a call's slot; when its client left before the answer, its outputs are still
/// stored (the run happened), as they would be on locus-server.
unsafe extern "C" fn free_slot(_ctx: *mut raw::RedisModuleCtx, p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let slot = Box::from_raw(p.cast::<Slot>());
    if let Some(bc) = slot.cancellable {
        CANCELLABLE.lock().remove(&bc);
    }
    if let (Some((pending, r)), Some(detached)) = (slot.done, DETACHED.get()) {
        raw::RedisModule_SelectDb.unwrap()(detached.0, pending.redis_db);
        finish(detached.0, pending, !r.is_error());
    }
}

/// AI._RESTORE key payload: what an AOF rewrite logs for each value (its serialization).
unsafe extern "C" fn on_restore(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    if raw::RedisModule_IsKeysPositionRequest.unwrap()(ctx) != 0 {
        raw::RedisModule_KeyAtPos.unwrap()(ctx, 1);
        return OK;
    }
    if argc != 3 {
        return raw::RedisModule_WrongArity.unwrap()(ctx);
    }
    let key = bytes_of(*argv.add(1)).to_vec();
    match types::restore(bytes_of(*argv.add(2))) {
        Ok(value) => {
            types::write(ctx, &key, value);
            raw::RedisModule_ReplicateVerbatim.unwrap()(ctx);
            reply::send(ctx, &Reply::OK);
            OK
        }
        Err(e) => error(ctx, &e),
    }
}
