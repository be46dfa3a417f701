//! Server commands: INFO, CONFIG, COMMAND, SLOWLOG, LATENCY, MEMORY, MONITOR, TIME, SHUTDOWN,
//! DBSIZE, FLUSHDB, FLUSHALL.

use super::connection::help;
use super::{Args, CmdError, CmdResult, Ctx};
use crate::server::reply::Reply;
use crate::server::Server;

use bytes::Bytes;
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn dbsize(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Int(ctx.db().len() as i64))
}

/// Parses FLUSHDB / FLUSHALL's optional ASYNC | SYNC.
fn flush_mode(args: &mut Args) -> Result<bool, CmdError> {
    if args.is_empty() {
        return Ok(false);
    }
    if args.remaining() > 1 {
        return Err(CmdError::syntax());
    }
    let mode = args.next_upper()?;
    match mode.as_str() {
        "ASYNC" => Ok(true),
        "SYNC" => Ok(false),
        _ => Err(CmdError::syntax()),
    }
}

/// Keys handed to a thread to be freed and not freed yet, and freed so far that way (INFO's
/// lazyfree_pending_objects and lazyfreed_objects).
static LAZYFREE_PENDING: AtomicUsize = AtomicUsize::new(0);
static LAZYFREED: AtomicUsize = AtomicUsize::new(0);

fn drop_maps(maps: Vec<crate::store::KeyMap>, asynchronous: bool) {
    if asynchronous {
        let n: usize = maps.iter().map(|m| m.len()).sum();
        LAZYFREE_PENDING.fetch_add(n, Ordering::Relaxed);
        std::thread::spawn(move || {
            drop(maps);
            LAZYFREE_PENDING.fetch_sub(n, Ordering::Relaxed);
            LAZYFREED.fetch_add(n, Ordering::Relaxed);
        });
    } else {
        drop(maps);
    }
}

pub fn flushdb(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let asynchronous = flush_mode(args)?;
    ctx.server.store.request_logs.clear(Some(ctx.client.db));
    ctx.server.store.monitors.clear(Some(ctx.client.db));
    crate::jobs::clear(ctx.server, Some(ctx.client.db));
    let maps = ctx.db().clear();
    crate::tracking::flushed();
    // Blocked clients look again: a consumer group's reader learns its stream is gone.
    ctx.server.blocking.wake_db(ctx.client.db);
    ctx.dirty(maps.iter().map(|m| m.len() as u64).sum());
    drop_maps(maps, asynchronous);
    Ok(Reply::OK)
}

pub fn flushall(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let asynchronous = flush_mode(args)?;
    ctx.server.store.request_logs.clear(None);
    ctx.server.store.monitors.clear(None);
    crate::jobs::clear(ctx.server, None);
    let maps: Vec<_> = ctx
        .server
        .store
        .dbs()
        .iter()
        .flat_map(|db| db.clear())
        .collect();
    crate::tracking::flushed();
    for db in 0..ctx.server.store.db_count() {
        ctx.server.blocking.wake_db(db);
    }
    ctx.dirty(maps.iter().map(|m| m.len() as u64).sum::<u64>().max(1));
    drop_maps(maps, asynchronous);
    Ok(Reply::OK)
}

pub fn time(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let us = crate::util::now_us();
    Ok(Reply::Array(vec![
        Reply::bulk(Bytes::from((us / 1_000_000).to_string())),
        Reply::bulk(Bytes::from((us % 1_000_000).to_string())),
    ]))
}

pub fn shutdown(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (mut abort, mut save, mut nosave, mut other) = (false, false, false, false);
    while !args.is_empty() {
        match args.next_upper()?.as_str() {
            "NOSAVE" => nosave = true,
            "SAVE" => save = true,
            "NOW" | "FORCE" => other = true,
            "ABORT" => abort = true,
            _ => return Err(CmdError::syntax()),
        }
    }
    if (abort && (save || nosave || other)) || (save && nosave) {
        return Err(CmdError::syntax());
    }
    if abort {
        return Err(CmdError::new("ERR No shutdown in progress."));
    }
    let mode = if save {
        1
    } else if nosave {
        2
    } else {
        0
    };
    ctx.server.shutdown_save.store(mode, Ordering::Relaxed);
    tracing::warn!("User requested shutdown...");
    ctx.server.shutdown.trigger();
    // Redis closes the connection without a reply when the shutdown goes ahead.
    ctx.client.reply_mode = crate::server::client::ReplyMode::Skip;
    ctx.client.close_after_reply = true;
    Ok(Reply::OK)
}

pub fn save(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    ctx.server.save_now().map_err(CmdError)?;
    Ok(Reply::OK)
}

pub fn bgsave(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    if !args.is_empty() && !args.eat("SCHEDULE") {
        return Err(CmdError::syntax());
    }
    if ctx.server.bgsave() {
        Ok(Reply::Status("Background saving started"))
    } else {
        Err(CmdError::new("ERR Background save already in progress"))
    }
}

pub fn lastsave(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Int(
        ctx.server.saves.last_save.load(Ordering::Relaxed) as i64,
    ))
}

pub fn monitor(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    ctx.server.clients.start_monitor(ctx.client.info.clone());
    Ok(Reply::OK)
}

// ---- SLOWLOG ----

pub fn slowlog_get(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let count = if args.is_empty() {
        10
    } else {
        let n = args
            .next_i64()
            .map_err(|_| CmdError::new("ERR count should be greater than or equal to -1"))?;
        if n < -1 {
            return Err(CmdError::new(
                "ERR count should be greater than or equal to -1",
            ));
        }
        if n == -1 {
            usize::MAX
        } else {
            n as usize
        }
    };
    let log = ctx.server.slowlog.lock();
    Ok(Reply::Array(
        log.entries
            .iter()
            .take(count)
            .map(|e| {
                Reply::Array(vec![
                    Reply::Int(e.id as i64),
                    Reply::Int(e.time as i64),
                    Reply::Int(e.micros as i64),
                    Reply::Array(e.argv.iter().cloned().map(Reply::Bulk).collect()),
                    Reply::bulk_str(&e.addr),
                    Reply::Bulk(e.name.clone()),
                ])
            })
            .collect(),
    ))
}

pub fn slowlog_len(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Int(ctx.server.slowlog.lock().entries.len() as i64))
}

pub fn slowlog_reset(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    ctx.server.slowlog.lock().entries.clear();
    Ok(Reply::OK)
}

pub fn slowlog_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(help(
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    ))
}

// ---- LATENCY: Locus records no latency events (latency-monitor-threshold 0 in Redis terms),
// so these answer as Redis does with the monitor disabled.

pub fn latency_doctor(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Verbatim(Bytes::from_static(
        b"I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.
",
    )))
}

pub fn latency_latest(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Array(vec![]))
}

pub fn latency_history(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Array(vec![]))
}

pub fn latency_reset(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Int(0))
}

pub fn latency_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(help(
        "LATENCY",
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
        ],
    ))
}

// ---- CONFIG ----

pub fn config_get(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let patterns = args.rest();
    let pats: Vec<&[u8]> = patterns.iter().map(|p| p.as_ref()).collect();
    let pairs = ctx.server.config.matching(&pats);
    Ok(Reply::Map(
        pairs
            .into_iter()
            .map(|(k, v)| {
                // Redis 7.0 prints the event flags without `n` (new keys) though it keeps
                // the class; Locus keeps it too and shows what Redis shows.
                let v = if k == "notify-keyspace-events" {
                    v.replace('n', "")
                } else {
                    v
                };
                (Reply::bulk_str(&k), Reply::bulk_str(&v))
            })
            .collect(),
    ))
}

pub fn config_set(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    if !args.remaining().is_multiple_of(2) {
        return Err(CmdError::new(
            "ERR wrong number of arguments for 'config|set' command",
        ));
    }
    let rest = args.rest();
    let pairs: Vec<(String, String)> = rest
        .chunks(2)
        .map(|p| {
            (
                String::from_utf8_lossy(&p[0]).to_ascii_lowercase(),
                String::from_utf8_lossy(&p[1]).into_owned(),
            )
        })
        .collect();
    let aof_before = ctx.server.config.get("appendonly");
    let port_before = ctx.server.config.get("port");
    // What every named parameter held, to put back if applying the new values fails.
    let before: Vec<(String, String)> = pairs
        .iter()
        .filter_map(|(n, _)| crate::config::find(n))
        .map(|p| (p.name.to_string(), ctx.server.config.get(p.name)))
        .collect();
    // TLS files that fail to load leave the previous ones in place.
    let before_tls: Vec<(String, String)> = pairs
        .iter()
        .filter(|(n, _)| n.starts_with("tls-"))
        .map(|(n, _)| (n.clone(), ctx.server.config.get(n)))
        .collect();
    ctx.server.config.set_many(&pairs).map_err(CmdError)?;
    let port = ctx.server.config.get("port");
    if port != port_before {
        // The listeners move first; a port that cannot be bound leaves the old one in place.
        if ctx.server.rebind_tcp(port.parse().unwrap_or(0)).is_err() {
            // The whole CONFIG SET is undone, as Redis rolls back on an apply failure.
            let _ = ctx.server.config.set_many(&before);
            return Err(CmdError::new(
                "ERR CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port",
            ));
        }
    }
    apply_aof_settings(ctx, &pairs, &aof_before)?;
    apply_acl_settings(ctx, &pairs);
    if let Some((name, _)) = pairs.iter().find(|(n, _)| n.starts_with("tls-")) {
        if crate::server::tls::wanted(&ctx.server.config) {
            if let Err(e) = ctx.server.reload_tls() {
                tracing::warn!("{e}");
                ctx.server.config.set_many(&before_tls).ok();
                return Err(CmdError::new(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - Unable to update TLS configuration. Check server logs."
                )));
            }
        }
    }
    // Redis changes its working directory on CONFIG SET dir: snapshots go there.
    if let Some((_, dir)) = pairs.iter().find(|(n, _)| n == "dir") {
        std::env::set_current_dir(dir).map_err(|e| {
            CmdError::new(format!(
                "ERR CONFIG SET failed (possibly related to argument 'dir') - {e}"
            ))
        })?;
    }
    ctx.server.sync_engine_config();
    // A lower limit evicts at once, as Redis's does, not at the next command.
    if pairs.iter().any(|(n, _)| n == "maxmemory") {
        let _ = crate::memory::reclaim(ctx.server);
    }
    Ok(Reply::OK)
}

/// CONFIG SET requirepass sets the default user's password (or makes it nopass), as Redis's
/// `ACLUpdateDefaultUserPassword`; the ACL log's length and new users' channels follow too.
fn apply_acl_settings(ctx: &Ctx, pairs: &[(String, String)]) {
    let server = ctx.server;
    for (name, _) in pairs {
        match name.as_str() {
            "requirepass" => server.acl.set_default_password(
                &server.commands,
                server.config.get("requirepass").as_bytes(),
            ),
            "acl-pubsub-default" => server.acl.pubsub_allchannels.store(
                server.config.get("acl-pubsub-default") == "allchannels",
                std::sync::atomic::Ordering::Relaxed,
            ),
            "acllog-max-len" => server
                .acl
                .log
                .trim(server.config.get_i64("acllog-max-len").max(0) as usize),
            _ => {}
        }
    }
}

/// CONFIG SET appendfsync / appendonly take effect at once: `appendonly yes` starts a rewrite
/// that creates the AOF from the current data, `no` flushes and closes it.
fn apply_aof_settings(ctx: &Ctx, pairs: &[(String, String)], before: &str) -> Result<(), CmdError> {
    let server = ctx.server;
    if pairs.iter().any(|(n, _)| n == "appendfsync") {
        server.aof.set_fsync(crate::persist::aof::Fsync::parse(
            &server.config.get("appendfsync"),
        ));
    }
    if !pairs.iter().any(|(n, _)| n == "appendonly") {
        return Ok(());
    }
    let now = server.config.get("appendonly");
    match (before, now.as_str()) {
        ("no", "yes") if !server.aof.is_enabled() => {
            if let Err(e) = server.aof.start_rewrite(&server.store, true) {
                let _ = server
                    .config
                    .set_many(&[("appendonly".into(), "no".into())]);
                return Err(CmdError::new(format!(
                    "ERR CONFIG SET failed (possibly related to argument 'appendonly') - {}",
                    e.trim_start_matches("ERR ")
                )));
            }
        }
        ("yes", "no") => server.aof.disable(),
        _ => {}
    }
    Ok(())
}

/// BGREWRITEAOF: compacts the AOF into a new base snapshot while clients keep writing.
pub fn bgrewriteaof(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    ctx.server
        .aof
        .start_rewrite(&ctx.server.store, false)
        .map_err(CmdError)?;
    Ok(Reply::Status(
        "Background append only file rewriting started",
    ))
}

pub fn config_resetstat(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    ctx.server.stats.reset();
    ctx.server.error_kinds.lock().clear();
    for c in ctx.server.commands.all() {
        c.stats.reset();
    }
    let store = &ctx.server.store;
    for c in [
        &store.keyspace_hits,
        &store.keyspace_misses,
        &crate::store::EXPIRED_KEYS,
    ] {
        c.store(0, Ordering::Relaxed);
    }
    Ok(Reply::OK)
}

pub fn config_rewrite(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let server = ctx.server;
    let users = server.config.get("aclfile").is_empty().then(|| {
        // The config file is text: a user whose patterns hold other bytes is written as
        // UTF-8 would show them (an aclfile keeps them exactly).
        server
            .acl
            .list(&server.commands)
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
    });
    server.config.rewrite(users.as_deref()).map_err(CmdError)?;
    Ok(Reply::OK)
}

pub fn config_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(help(
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    ))
}

// ---- COMMAND ----

/// Finds a command by name, accepting `container|sub` for subcommands.
fn lookup<'a>(server: &'a Server, name: &[u8]) -> Option<&'a std::sync::Arc<super::Command>> {
    let text = String::from_utf8_lossy(name);
    match text.split_once('|') {
        Some((top, sub)) => server
            .commands
            .get(top.as_bytes())?
            .subcommands
            .get(&sub.to_uppercase()),
        None => server.commands.get(name),
    }
}

pub fn command(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Array(
        ctx.server
            .commands
            .commands()
            .map(|c| c.info_reply())
            .collect(),
    ))
}

pub fn command_count(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Int(ctx.server.commands.len() as i64))
}

pub fn command_info(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    if args.is_empty() {
        return command(ctx, args);
    }
    Ok(Reply::Array(
        args.rest()
            .iter()
            .map(|n| lookup(ctx.server, n).map_or(Reply::Null, |c| c.info_reply()))
            .collect(),
    ))
}

pub fn command_docs(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let docs = if args.is_empty() {
        ctx.server
            .commands
            .commands()
            .map(|c| (Reply::bulk_str(&c.name), c.docs_reply()))
            .collect()
    } else {
        args.rest()
            .iter()
            .filter_map(|n| lookup(ctx.server, n))
            .map(|c| (Reply::bulk_str(&c.name), c.docs_reply()))
            .collect()
    };
    Ok(Reply::Map(docs))
}

pub fn command_list(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let mut filter: Option<(String, Bytes)> = None;
    if !args.is_empty() {
        if !args.eat("FILTERBY") || args.remaining() != 2 {
            return Err(CmdError::syntax());
        }
        let kind = args.next_upper()?;
        if !["MODULE", "ACLCAT", "PATTERN"].contains(&kind.as_str()) {
            return Err(CmdError::syntax());
        }
        filter = Some((kind, args.next()?));
    }
    let mut names = Vec::new();
    for c in ctx.server.commands.commands() {
        for cmd in std::iter::once(c).chain(c.subcommands.values()) {
            let keep = match &filter {
                None => true,
                Some((k, _)) if k == "MODULE" => false,
                Some((k, v)) if k == "ACLCAT" => {
                    let cat = String::from_utf8_lossy(v).to_ascii_uppercase();
                    cmd.acl_categories.contains(&cat)
                }
                Some((_, p)) => crate::store::glob::glob_match(p, cmd.name.as_bytes(), true),
            };
            if keep {
                names.push(Reply::bulk_str(&cmd.name));
            }
        }
    }
    Ok(Reply::Array(names))
}

pub fn command_getkeys(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    getkeys(ctx, args, false)
}

pub fn command_getkeysandflags(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    getkeys(ctx, args, true)
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS, with Redis's checks in Redis's order
/// (getKeysSubcommandImpl).
fn getkeys(ctx: &mut Ctx, args: &mut Args, with_flags: bool) -> CmdResult {
    let argv = args.rest();
    let cmd = match ctx.server.commands.resolve(&argv[..]) {
        Ok((c, _)) => c,
        Err(e) if e.contains("wrong number") => ctx
            .server
            .commands
            .get(&argv[0])
            .cloned()
            .ok_or_else(|| CmdError::new("ERR Invalid command specified"))?,
        Err(_) => return Err(CmdError::new("ERR Invalid command specified")),
    };
    if !cmd.has_keys() {
        return Err(CmdError::new("ERR The command has no key arguments"));
    }
    if !cmd.arity_ok(argv.len()) {
        return Err(CmdError::new(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    let keys = cmd.keys_with_flags(&argv[..]);
    if keys.is_empty() {
        if cmd.has_flag("NO_MANDATORY_KEYS") {
            return Ok(Reply::Array(vec![]));
        }
        return Err(CmdError::new("ERR Invalid arguments specified for command"));
    }
    Ok(Reply::Array(
        keys.into_iter()
            .map(|(i, flags)| {
                let key = Reply::Bulk(argv[i].clone());
                if with_flags {
                    Reply::Array(vec![
                        key,
                        Reply::Set(flags.into_iter().map(Reply::StatusOwned).collect()),
                    ])
                } else {
                    key
                }
            })
            .collect(),
    ))
}

pub fn command_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(help(
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    ))
}

// ---- MEMORY ----

pub fn memory_usage(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    if !args.is_empty() {
        if !args.eat("SAMPLES") || args.remaining() != 1 {
            return Err(CmdError::syntax());
        }
        args.next_i64()?;
    }
    let shard = ctx.db().read(&key);
    // Key bytes + value + the map slot and entry header.
    Ok(shard.get(&key, ctx.now()).map_or(Reply::Null, |e| {
        Reply::Int((key.len() + e.value.memory_usage() + 72) as i64)
    }))
}

pub fn memory_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(help(
        "MEMORY",
        &[
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    ))
}

// ---- INFO ----

/// Where the allocator's statistics come from: locus-server installs jemalloc's (its
/// allocator, set in its `main`); elsewhere (the Redis module, inside redis-server's process)
/// the C heap's figures stand in.
static ALLOCATOR_STATS: std::sync::OnceLock<fn() -> (usize, usize)> = std::sync::OnceLock::new();

/// Installs the allocator's (allocated, resident) reader; the first call wins.
pub fn set_allocator_stats(read: fn() -> (usize, usize)) {
    let _ = ALLOCATOR_STATS.set(read);
}

/// Allocator statistics (allocated, resident bytes), refreshed on each call.
pub fn allocator_stats() -> (usize, usize) {
    match ALLOCATOR_STATS.get() {
        Some(read) => read(),
        None => {
            let heap = crate::memory::native_bytes();
            (heap, heap)
        }
    }
}

fn human_bytes(n: usize) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}G", n / (1024.0 * 1024.0 * 1024.0))
    } else if n >= 1024.0 * 1024.0 {
        format!("{:.2}M", n / (1024.0 * 1024.0))
    } else if n >= 1024.0 {
        format!("{:.2}K", n / 1024.0)
    } else {
        format!("{n}B")
    }
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
    "ai",
];
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
    "ai",
];

pub fn info(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let requested: Vec<String> = args
        .rest()
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_lowercase())
        .collect();
    // The union of what is asked for, each section once, in Redis's order: `default`, `all`
    // and `everything` add their sets, other words the section they name.
    let asked = |name: &str| requested.iter().any(|r| r == name);
    let everything = asked("all") || asked("everything");
    let defaults = requested.is_empty() || asked("default");
    let sections: Vec<&str> = ALL_SECTIONS
        .iter()
        .copied()
        .filter(|s| everything || (defaults && DEFAULT_SECTIONS.contains(s)) || asked(s))
        .collect();
    let mut out = String::new();
    for s in sections {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        info_section(ctx.server, s, &mut out);
    }
    // RedisAI's own sections, printed as Redis prints a module's: for INFO modules,
    // everything, ai, or one of them by name, never in the default INFO.
    for s in REDISAI_SECTIONS {
        let wanted = requested.iter().any(|r| {
            r == s || r == "modules" || r == "everything" || (r == "ai" && s.starts_with("ai_"))
        });
        if wanted {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            redisai_section(ctx.server, s, &mut out);
        }
    }
    Ok(Reply::Verbatim(Bytes::from(out)))
}

/// The sections RedisAI 1.2.7 adds to INFO (RAI_moduleInfoFunc), with its field names.
const REDISAI_SECTIONS: &[&str] = &[
    "ai_versions",
    "ai_git",
    "ai_load_time_configs",
    "ai_backends_info",
    "ai_cpu",
];

/// The engine settings RedisAI reports under `ai_load_time_configs`.
fn load_time_configs(out: &mut String, c: &crate::engine::EngineConfig) {
    kv(out, "ai_threads_per_queue", &c.threads_per_queue);
    kv(out, "ai_inter_op_parallelism", &c.inter_op_parallelism);
    kv(out, "ai_intra_op_parallelism", &c.intra_op_parallelism);
    kv(
        out,
        "ai_model_execution_timeout",
        &c.model_execution_timeout_ms,
    );
    kv(out, "ai_backend_memory_limit", &c.backend_memory_limit_mb);
}

fn redisai_section(server: &Server, section: &str, out: &mut String) {
    let engine = &server.engine;
    let _ = write!(out, "# {section}\r\n");
    match section {
        "ai_versions" => {
            kv(out, "ai_RedisAI_version", &"1.2.7");
            kv(out, "ai_low_level_API_version", &1);
            kv(out, "ai_rdb_version", &4);
        }
        "ai_git" => kv(out, "ai_git_sha", &crate::LOCUS_VERSION),
        "ai_load_time_configs" => load_time_configs(out, &engine.config.read()),
        "ai_backends_info" => {
            if let Some(b) = engine.loaded_backend() {
                kv(out, "ai_onnxruntime_version", &b.version);
                kv(
                    out,
                    "ai_onnxruntime_memory",
                    &crate::engine::model::MODEL_BYTES.load(Ordering::Relaxed),
                );
                kv(
                    out,
                    "ai_onnxruntime_memory_access_num",
                    &engine.stats.runs.load(Ordering::Relaxed),
                );
                kv(
                    out,
                    "ai_onnxruntime_maximum_run_sessions_number",
                    &engine.config.read().threads_per_queue,
                );
            }
        }
        "ai_cpu" => {
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
            let t = |tv: libc::timeval| format!("{}.{:06}", tv.tv_sec, tv.tv_usec);
            kv(out, "ai_self_used_cpu_sys", &t(ru.ru_stime));
            kv(out, "ai_self_used_cpu_user", &t(ru.ru_utime));
            let mut ch: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ch) };
            kv(out, "ai_children_used_cpu_sys", &t(ch.ru_stime));
            kv(out, "ai_children_used_cpu_user", &t(ch.ru_utime));
        }
        _ => {}
    }
}

fn kv(out: &mut String, k: &str, v: &dyn std::fmt::Display) {
    let _ = write!(out, "{k}:{v}\r\n");
}

pub(crate) fn info_section(server: &Server, section: &str, out: &mut String) {
    let uptime = server.started.elapsed().as_secs();
    match section {
        "server" => {
            out.push_str("# Server\r\n");
            kv(out, "redis_version", &crate::REDIS_VERSION);
            kv(out, "locus_version", &crate::LOCUS_VERSION);
            kv(out, "redis_mode", &"standalone");
            kv(out, "os", &std::env::consts::OS);
            kv(out, "arch_bits", &64);
            kv(out, "multiplexing_api", &"epoll");
            kv(out, "process_id", &std::process::id());
            kv(out, "run_id", &server.run_id);
            kv(out, "tcp_port", &server.tcp_port.load(Ordering::Relaxed));
            kv(out, "server_time_usec", &crate::util::now_us());
            kv(out, "uptime_in_seconds", &uptime);
            kv(out, "uptime_in_days", &(uptime / 86400));
            kv(out, "hz", &server.config.get("hz"));
            kv(out, "configured_hz", &server.config.get("hz"));
            kv(
                out,
                "executable",
                &std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
            kv(
                out,
                "config_file",
                &server
                    .config
                    .file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
        }
        "clients" => {
            out.push_str("# Clients\r\n");
            kv(out, "connected_clients", &server.clients.len());
            kv(out, "maxclients", &server.config.get("maxclients"));
            kv(out, "blocked_clients", &server.blocking.blocked());
            kv(out, "tracking_clients", &crate::tracking::stats().0);
        }
        "memory" => {
            let (allocated, resident) = allocator_stats();
            // What maxmemory counts: the allocator's bytes and the native libraries'.
            let native = crate::memory::native_bytes();
            let allocated = allocated + native;
            out.push_str("# Memory\r\n");
            kv(out, "used_memory", &allocated);
            kv(out, "used_memory_human", &human_bytes(allocated));
            kv(out, "used_memory_rss", &resident);
            kv(out, "used_memory_rss_human", &human_bytes(resident));
            let peak = server
                .memory_peak
                .fetch_max(allocated, Ordering::Relaxed)
                .max(allocated);
            kv(out, "used_memory_peak", &peak);
            kv(out, "used_memory_peak_human", &human_bytes(peak));
            let maxmemory = server.config.get_i64("maxmemory").max(0) as usize;
            kv(out, "maxmemory", &maxmemory);
            kv(out, "maxmemory_human", &human_bytes(maxmemory));
            let ratio = if allocated > 0 {
                resident as f64 / allocated as f64
            } else {
                0.0
            };
            kv(out, "mem_fragmentation_ratio", &format!("{ratio:.2}"));
            kv(
                out,
                "maxmemory_policy",
                &server.config.get("maxmemory-policy"),
            );
            kv(out, "mem_allocator", &"jemalloc");
            // Not held against maxmemory: eviction cannot shrink the AOF's buffers.
            let aof_buffers = server.aof.buffer_bytes();
            kv(out, "mem_not_counted_for_evict", &aof_buffers);
            kv(out, "mem_aof_buffer", &aof_buffers);
            kv(
                out,
                "lazyfree_pending_objects",
                &LAZYFREE_PENDING.load(Ordering::Relaxed),
            );
            kv(out, "lazyfreed_objects", &LAZYFREED.load(Ordering::Relaxed));
            // The AI side of it: tensor data, model blobs and sessions, and the native
            // runtime's heap (ONNX Runtime's sessions and arenas, Lua).
            let tensors = crate::tensor::TENSOR_BYTES.load(Ordering::Relaxed);
            kv(out, "used_memory_tensors", &tensors);
            kv(out, "used_memory_tensors_human", &human_bytes(tensors));
            let models = crate::engine::model::MODEL_HELD_BYTES.load(Ordering::Relaxed) as usize;
            kv(out, "used_memory_models", &models);
            kv(out, "used_memory_models_human", &human_bytes(models));
            kv(out, "used_memory_native", &native);
            kv(out, "used_memory_native_human", &human_bytes(native));
            let lua = server.scripting.memory();
            kv(out, "used_memory_lua", &lua);
            kv(out, "used_memory_lua_human", &human_bytes(lua));
            kv(
                out,
                "number_of_cached_scripts",
                &server.scripting.cached_scripts(),
            );
        }
        "persistence" => {
            out.push_str("# Persistence\r\n");
            kv(
                out,
                "loading",
                &(server.loading.load(Ordering::Relaxed) as u8),
            );
            kv(
                out,
                "rdb_changes_since_last_save",
                &server.store.dirty.load(Ordering::Relaxed),
            );
            let s = &server.saves;
            kv(
                out,
                "rdb_bgsave_in_progress",
                &(s.in_progress.load(Ordering::Relaxed) as u8),
            );
            kv(
                out,
                "rdb_last_save_time",
                &s.last_save.load(Ordering::Relaxed),
            );
            kv(
                out,
                "rdb_last_bgsave_status",
                &if s.last_ok.load(Ordering::Relaxed) {
                    "ok"
                } else {
                    "err"
                },
            );
            kv(
                out,
                "rdb_last_bgsave_time_sec",
                &(s.last_duration_ms.load(Ordering::Relaxed) / 1000),
            );
            kv(out, "rdb_saves", &s.saves.load(Ordering::Relaxed));
            let a = &server.aof;
            let st = &a.stats;
            let rewriting = st.rewrite_in_progress.load(Ordering::Relaxed);
            let status = |ok: bool| if ok { "ok" } else { "err" };
            kv(out, "aof_enabled", &(a.is_enabled() as u8));
            kv(out, "aof_rewrite_in_progress", &(rewriting as u8));
            kv(out, "aof_rewrite_scheduled", &0);
            kv(
                out,
                "aof_last_rewrite_time_sec",
                &st.last_rewrite_secs.load(Ordering::Relaxed),
            );
            let current = if rewriting {
                (crate::util::now_ms()
                    .saturating_sub(st.rewrite_started_ms.load(Ordering::Relaxed))
                    / 1000) as i64
            } else {
                -1
            };
            kv(out, "aof_current_rewrite_time_sec", &current);
            kv(
                out,
                "aof_last_bgrewrite_status",
                &status(st.last_rewrite_ok.load(Ordering::Relaxed)),
            );
            kv(out, "aof_rewrites", &st.rewrites.load(Ordering::Relaxed));
            kv(
                out,
                "aof_last_write_status",
                &status(st.last_write_ok.load(Ordering::Relaxed)),
            );
            if a.is_enabled() {
                kv(
                    out,
                    "aof_current_size",
                    &st.current_size.load(Ordering::Relaxed),
                );
                kv(out, "aof_base_size", &st.base_size.load(Ordering::Relaxed));
                kv(out, "aof_pending_rewrite", &0);
                kv(out, "aof_buffer_length", &a.buffer_len());
                kv(out, "aof_pending_bio_fsync", &0);
                kv(
                    out,
                    "aof_delayed_fsync",
                    &st.delayed_fsync.load(Ordering::Relaxed),
                );
            }
        }
        "stats" => {
            let s = &server.stats;
            out.push_str("# Stats\r\n");
            kv(
                out,
                "total_connections_received",
                &s.connections_received.load(Ordering::Relaxed),
            );
            kv(
                out,
                "total_commands_processed",
                &s.commands_processed.load(Ordering::Relaxed),
            );
            kv(out, "instantaneous_ops_per_sec", &server.ops_per_sec());
            kv(
                out,
                "total_net_input_bytes",
                &s.net_input_bytes.load(Ordering::Relaxed),
            );
            kv(
                out,
                "total_net_output_bytes",
                &s.net_output_bytes.load(Ordering::Relaxed),
            );
            kv(
                out,
                "rejected_connections",
                &s.rejected_connections.load(Ordering::Relaxed),
            );
            kv(
                out,
                "expired_keys",
                &crate::store::EXPIRED_KEYS.load(Ordering::Relaxed),
            );
            kv(
                out,
                "evicted_keys",
                &crate::memory::EVICTED.load(Ordering::Relaxed),
            );
            kv(
                out,
                "keyspace_hits",
                &server.store.keyspace_hits.load(Ordering::Relaxed),
            );
            kv(
                out,
                "keyspace_misses",
                &server.store.keyspace_misses.load(Ordering::Relaxed),
            );
            kv(out, "pubsub_channels", &server.pubsub.channel_count());
            kv(out, "pubsub_patterns", &server.pubsub.numpat());
            // Locus never forks (snapshots are written by a thread), and has no MIGRATE to
            // cache connections for.
            kv(out, "latest_fork_usec", &0);
            kv(out, "total_forks", &0);
            kv(out, "migrate_cached_sockets", &0);
            let (_, keys, items, prefixes) = crate::tracking::stats();
            kv(out, "tracking_total_keys", &keys);
            kv(out, "tracking_total_items", &items);
            kv(out, "tracking_total_prefixes", &prefixes);
            kv(
                out,
                "total_error_replies",
                &s.error_replies.load(Ordering::Relaxed),
            );
        }
        "replication" => {
            out.push_str("# Replication\r\n");
            kv(out, "role", &"master");
            kv(out, "connected_slaves", &0);
            // A primary without replicas, as Redis reports one: its replication offsets never
            // move since nothing is ever sent to a replica.
            kv(out, "master_failover_state", &"no-failover");
            kv(out, "master_replid", &server.run_id);
            kv(
                out,
                "master_replid2",
                &"0000000000000000000000000000000000000000",
            );
            kv(out, "master_repl_offset", &0);
            kv(out, "second_repl_offset", &-1);
            kv(out, "repl_backlog_active", &0);
            kv(
                out,
                "repl_backlog_size",
                &server.config.get("repl-backlog-size"),
            );
            kv(out, "repl_backlog_first_byte_offset", &0);
            kv(out, "repl_backlog_histlen", &0);
        }
        "cpu" => {
            out.push_str("# CPU\r\n");
            // SAFETY: getrusage only writes into the struct we pass.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
            let t = |tv: libc::timeval| format!("{}.{:06}", tv.tv_sec, tv.tv_usec);
            kv(out, "used_cpu_sys", &t(ru.ru_stime));
            kv(out, "used_cpu_user", &t(ru.ru_utime));
        }
        "modules" => {
            // RedisAI's commands are built in; the module line is what its clients look for.
            out.push_str("# Modules\r\n");
            out.push_str("module:name=ai,ver=10207,api=1,filters=0,usedby=[],using=[],options=[handle-io-errors]\r\n");
        }
        "errorstats" => {
            out.push_str("# Errorstats\r\n");
            for (kind, count) in server.error_kinds.lock().iter() {
                let _ = write!(out, "errorstat_{kind}:count={count}\r\n");
            }
        }
        "latencystats" => {
            // Redis's format: the configured percentiles of each command's latency, in
            // microseconds, each the upper bound of its histogram bucket (as HdrHistogram's
            // value-at-percentile is), so a reading never understates.
            out.push_str("# Latencystats\r\n");
            if crate::cmd::table::latency_tracking() {
                let wanted = crate::config::percentiles(
                    &server.config.get("latency-tracking-info-percentiles"),
                )
                .unwrap_or_default();
                for c in server.commands.all() {
                    let snap = c.stats.latency.snapshot();
                    if snap.count == 0 {
                        continue;
                    }
                    let fields: Vec<String> = wanted
                        .iter()
                        .map(|p| {
                            let us = snap.upper_at(p / 100.0) as f64 / 1000.0;
                            format!("p{}={us:.3}", crate::config::trim_double(*p))
                        })
                        .collect();
                    let _ = write!(
                        out,
                        "latency_percentiles_usec_{}:{}\r\n",
                        c.name,
                        fields.join(",")
                    );
                }
            }
        }
        "cluster" => {
            out.push_str("# Cluster\r\n");
            kv(out, "cluster_enabled", &0);
        }
        "commandstats" => {
            out.push_str("# Commandstats\r\n");
            for c in server.commands.all() {
                let calls = c.stats.calls.load(Ordering::Relaxed);
                let rejected = c.stats.rejected.load(Ordering::Relaxed);
                let failed = c.stats.failed.load(Ordering::Relaxed);
                if calls == 0 && rejected == 0 {
                    continue;
                }
                let usec = c.stats.usec();
                let per = if calls > 0 {
                    usec as f64 / calls as f64
                } else {
                    0.0
                };
                let _ = write!(
                    out,
                    "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rejected},failed_calls={failed}\r\n",
                    c.name
                );
            }
        }
        "ai" => {
            let engine = &server.engine;
            let c = engine.config.read().clone();
            out.push_str("# AI\r\n");
            match engine.loaded_backend() {
                Some(b) => {
                    kv(out, "ai_onnxruntime_version", &b.version);
                    kv(out, "ai_onnxruntime_library", &b.path.display());
                    kv(out, "ai_onnxruntime_cuda", &(b.has_cuda as u8));
                }
                None => kv(out, "ai_onnxruntime_version", &"not loaded"),
            }
            load_time_configs(out, &c);
            kv(out, "ai_model_chunk_size", &c.model_chunk_size);
            kv(out, "ai_runs", &engine.stats.runs.load(Ordering::Relaxed));
            kv(
                out,
                "ai_batched_runs",
                &engine.stats.batches.load(Ordering::Relaxed),
            );
            kv(
                out,
                "ai_terminated_runs",
                &engine.stats.terminated.load(Ordering::Relaxed),
            );
            for (device, len) in engine.queue_lengths() {
                kv(
                    out,
                    &format!("ai_queue_{}_length", device.replace(':', "_")),
                    &len,
                );
            }
        }
        "keyspace" => {
            out.push_str("# Keyspace\r\n");
            for (i, db) in server.store.dbs().iter().enumerate() {
                let keys = db.len();
                if keys > 0 {
                    let _ = write!(
                        out,
                        "db{i}:keys={keys},expires={},avg_ttl=0\r\n",
                        db.volatile()
                    );
                }
            }
        }
        _ => {}
    }
}

/// WAIT numreplicas timeout: Locus has no replicas, so nothing is ever acknowledged. Asked for
/// none (or inside EXEC or a script) it answers 0 at once; asked for some, it waits out the
/// timeout (forever for 0) as Redis does when too few replicas answer, then answers 0.
pub fn wait(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let numreplicas = args.next_i64()?;
    let ms = crate::util::parse_i64(&args.next()?)
        .ok_or_else(|| CmdError::new("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::new("ERR timeout is negative"));
    }
    if numreplicas <= 0 || ctx.in_exec {
        return Ok(Reply::Int(0));
    }
    ctx.defer(async move {
        if ms == 0 {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(ms as u64)).await;
        Reply::Int(0)
    })
}
