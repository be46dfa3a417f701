//! Scripting commands (Redis 7.0): EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT LOAD / EXISTS /
//! FLUSH / KILL, FCALL, FCALL_RO and FUNCTION LOAD / DELETE / LIST / FLUSH / DUMP / RESTORE /
//! STATS / KILL. The interpreter and its API live in [`crate::scripting`].

use super::{Args, CmdError, CmdResult, Ctx};
use crate::scripting::{functions, Invocation, Target};
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::glob::GlobPattern;
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// Reads `numkeys key… arg…` with Redis's errors.
fn keys_and_args(args: &mut Args) -> Result<(Vec<Bytes>, Vec<Bytes>), CmdError> {
    let n = args.next_i64()?;
    if n < 0 {
        return Err(CmdError::new("ERR Number of keys can't be negative"));
    }
    if n as usize > args.remaining() {
        return Err(CmdError::new(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let mut keys = Vec::with_capacity(n as usize);
    for _ in 0..n {
        keys.push(args.next()?);
    }
    Ok((keys, args.rest()))
}

/// Runs a script or function: in place inside EXEC (which already holds the isolation gate),
/// otherwise on a blocking thread holding the gate exclusively, so the event loop stays free to
/// answer BUSY and SCRIPT KILL.
fn invoke(ctx: &mut Ctx, target: Target, args: &mut Args, read_only: bool) -> CmdResult {
    let (keys, argv) = keys_and_args(args)?;
    let inv = Invocation {
        target,
        keys,
        args: argv,
        db: ctx.client.db,
        read_only,
        now: ctx.now(),
        command: args.request().to_vec(),
        user: (ctx.client.user.clone(), ctx.client.perms.clone()),
        caller: ctx.client.info.clone(),
        tracking: ctx
            .client
            .info
            .tracking
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    let server = ctx.server.clone();
    if ctx.in_exec {
        let out = server.scripting.invoke(&server, inv);
        ctx.propagate = Some(out.effects);
        if !ctx.propagate.as_ref().is_some_and(|e| e.is_empty()) {
            ctx.dirty(1);
        }
        return Ok(out.reply);
    }
    let (db, now) = (inv.db, inv.now);
    let command = ctx.command.clone();
    ctx.defer(async move {
        let s = server.clone();
        tokio::task::spawn_blocking(move || {
            let _gate = s.gate.exclusive();
            let out = s.scripting.invoke(&s, inv);
            // Keys the script changed under BCAST prefixes go out now, not with the next
            // command.
            crate::tracking::broadcast();
            if let Reply::Error(e) = &out.reply {
                // The script failed: EVAL's failed call; its error reply counts unless a
                // command gave it and it was counted then.
                command
                    .stats
                    .failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if !out.error_counted {
                    s.count_error_kind(e);
                    s.stats
                        .error_replies
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            if !out.effects.is_empty() {
                s.store.add_dirty(1);
                if let Some(mut t) = s.aof.begin() {
                    t.record(db, now, out.effects.iter().map(|c| c.iter()));
                }
            }
            out.reply
        })
        .await
        .unwrap_or_else(|e| Reply::err(format!("ERR script failed: {e}")))
    })
}

pub fn eval(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let body = args.next()?;
    invoke(ctx, Target::Body(body), args, false)
}

pub fn eval_ro(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let body = args.next()?;
    invoke(ctx, Target::Body(body), args, true)
}

fn sha_target(args: &mut Args) -> Result<Target, CmdError> {
    let sha = args.next()?;
    Ok(Target::Sha(
        String::from_utf8_lossy(&sha).to_ascii_lowercase(),
    ))
}

pub fn evalsha(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let t = sha_target(args)?;
    invoke(ctx, t, args, false)
}

pub fn evalsha_ro(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let t = sha_target(args)?;
    invoke(ctx, t, args, true)
}

/// FCALL checks that the function exists before it reads numkeys, and words a bad numkeys
/// its own way.
fn fcall_generic(ctx: &mut Ctx, args: &mut Args, read_only: bool) -> CmdResult {
    let name = args.next()?;
    let server = ctx.server;
    if !server
        .scripting
        .with_vm(server, |vm| vm.functions.get(&name).is_some())
    {
        return Err(CmdError::new("ERR Function not found"));
    }
    if args.peek().and_then(crate::util::parse_i64).is_none() {
        return Err(CmdError::new("ERR Bad number of keys provided"));
    }
    invoke(ctx, Target::Function(name), args, read_only)
}

pub fn fcall(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    fcall_generic(ctx, args, false)
}

pub fn fcall_ro(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    fcall_generic(ctx, args, true)
}

pub fn script_load(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let body = args.next()?;
    let sha = ctx
        .server
        .scripting
        .load(ctx.server, &body)
        .map_err(CmdError)?;
    Ok(Reply::bulk(Bytes::from(sha)))
}

pub fn script_exists(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let server = ctx.server;
    Ok(Reply::Array(
        args.rest()
            .iter()
            .map(|sha| Reply::Int(server.scripting.exists(server, sha) as i64))
            .collect(),
    ))
}

/// `[ASYNC|SYNC]` of the FLUSH subcommands.
fn flush_mode(args: &mut Args) -> Result<(), CmdError> {
    if args.is_empty() {
        return Ok(());
    }
    let mode = args.next_upper()?;
    if !args.is_empty() || (mode != "ASYNC" && mode != "SYNC") {
        return Err(CmdError::new(
            "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
        ));
    }
    Ok(())
}

pub fn script_flush(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    flush_mode(args)?;
    ctx.server.scripting.flush_scripts(ctx.server);
    Ok(Reply::OK)
}

/// SCRIPT KILL (`function` false) and FUNCTION KILL, checked in Redis's order.
fn kill(server: &Server, function: bool) -> CmdResult {
    let busy = &server.scripting.busy;
    if !busy.is_running() {
        return Err(CmdError::new("NOTBUSY No scripts in execution right now."));
    }
    if busy.wrote.load(Ordering::Relaxed) {
        return Err(CmdError::new("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command."));
    }
    // The other kind of code is running: the BUSY text says which KILL to use.
    if busy.function.load(Ordering::Relaxed) != function {
        return Err(CmdError::new(busy.busy_error()));
    }
    busy.kill.store(true, Ordering::Relaxed);
    Ok(Reply::OK)
}

pub fn script_kill(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    kill(ctx.server, false)
}

pub fn function_kill(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    kill(ctx.server, true)
}

fn help(lines: &[&str]) -> CmdResult {
    Ok(Reply::Array(
        lines
            .iter()
            .map(|l| Reply::StatusOwned(l.to_string()))
            .collect(),
    ))
}

pub fn script_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    help(&[
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DEBUG (YES|SYNC|NO)",
        "    Set the debug mode for subsequent scripts executed.",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache. Very dangerous on replicas.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the scripts cache.",
        "    * SYNC: Synchronously flush the scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "HELP",
        "    Prints this help.",
    ])
}

pub fn function_load(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let replace = args.remaining() > 1 && args.eat("REPLACE");
    if args.remaining() != 1 {
        return Err(CmdError::new(
            "ERR Unknown option given: ".to_string()
                + &String::from_utf8_lossy(args.peek().unwrap_or(b"")),
        ));
    }
    let code = args.next()?;
    let server = ctx.server;
    let name = server
        .scripting
        .with_vm(server, |vm| vm.load_library(code, replace))
        .map_err(CmdError)?;
    server.scripting.refresh_counts(server);
    ctx.dirty(1);
    Ok(Reply::bulk(Bytes::from(name)))
}

pub fn function_delete(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let name = String::from_utf8_lossy(&args.next()?).into_owned();
    let server = ctx.server;
    server
        .scripting
        .with_vm(server, |vm| vm.functions.delete(&name))
        .map_err(CmdError)?;
    server.scripting.refresh_counts(server);
    ctx.dirty(1);
    Ok(Reply::OK)
}

pub fn function_flush(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    if args.remaining() > 1 {
        return Err(CmdError::new(
            "ERR unknown subcommand or wrong number of arguments for 'flush'. Try FUNCTION HELP.",
        ));
    }
    if !args.is_empty() {
        let mode = args.next_upper()?;
        if !args.is_empty() || (mode != "ASYNC" && mode != "SYNC") {
            return Err(CmdError::new(
                "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
            ));
        }
    }
    let server = ctx.server;
    server.scripting.with_vm(server, |vm| vm.functions.clear());
    server.scripting.refresh_counts(server);
    ctx.dirty(1);
    Ok(Reply::OK)
}

pub fn function_list(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (mut pattern, mut with_code) = (None, false);
    while !args.is_empty() {
        match args.next_upper()?.as_str() {
            "WITHCODE" if !with_code => with_code = true,
            "LIBRARYNAME" if pattern.is_none() => {
                if args.is_empty() {
                    return Err(CmdError::new("ERR library name argument was not given"));
                }
                pattern = Some(GlobPattern::new(&args.next()?, true));
            }
            _ => {
                return Err(CmdError::new(format!(
                    "ERR Unknown argument {}",
                    String::from_utf8_lossy(args.request().arg(args.argc() - args.remaining() - 1))
                )))
            }
        }
    }
    let server = ctx.server;
    let s = Reply::bulk_str;
    Ok(server.scripting.with_vm(server, |vm| {
        let reg = &vm.functions;
        let libs = reg
            .libraries
            .values()
            .filter(|l| {
                pattern
                    .as_ref()
                    .is_none_or(|p| p.matches(l.name.as_bytes()))
            })
            .map(|lib| {
                let funcs = lib
                    .functions
                    .iter()
                    .filter_map(|f| reg.function(f))
                    .map(|f| {
                        Reply::Map(vec![
                            (s("name"), s(&f.name)),
                            (
                                s("description"),
                                f.description.as_deref().map_or(Reply::Null, s),
                            ),
                            (
                                s("flags"),
                                Reply::Set(
                                    f.flag_names
                                        .iter()
                                        .map(|n| Reply::StatusOwned(n.clone()))
                                        .collect(),
                                ),
                            ),
                        ])
                    })
                    .collect();
                let mut fields = vec![
                    (s("library_name"), s(&lib.name)),
                    (s("engine"), s("LUA")),
                    (s("functions"), Reply::Array(funcs)),
                ];
                if with_code {
                    fields.push((s("library_code"), Reply::Bulk(lib.code.clone())));
                }
                Reply::Map(fields)
            })
            .collect();
        Reply::Array(libs)
    }))
}

pub fn function_dump(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let server = ctx.server;
    let payload = server
        .scripting
        .with_vm(server, |vm| functions::dump(&vm.functions));
    Ok(Reply::bulk(Bytes::from(payload)))
}

pub fn function_restore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let payload = args.next()?;
    if args.remaining() > 1 {
        return Err(CmdError::new(
            "ERR unknown subcommand or wrong number of arguments for 'restore'. Try FUNCTION HELP.",
        ));
    }
    let policy = if args.is_empty() {
        "APPEND".to_string()
    } else {
        args.next_upper()?
    };
    if !args.is_empty() || !matches!(policy.as_str(), "APPEND" | "REPLACE" | "FLUSH") {
        return Err(CmdError::new(
            "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
        ));
    }
    let codes = functions::parse_dump(&payload).map_err(CmdError)?;
    let server = ctx.server;
    server
        .scripting
        .with_vm(server, |vm| {
            let lua = vm.lua.clone();
            let mut loaded = functions::Registry::default();
            for code in codes {
                functions::load_library(&lua, &mut loaded, code, false)?;
            }
            match policy.as_str() {
                "FLUSH" => {
                    vm.functions = loaded;
                    Ok(())
                }
                "REPLACE" => vm.functions.merge(loaded, true),
                _ => vm.functions.merge(loaded, false),
            }
        })
        .map_err(CmdError)?;
    server.scripting.refresh_counts(server);
    ctx.dirty(1);
    Ok(Reply::OK)
}

/// FUNCTION STATS answers while a script runs (it may be asked during BUSY), so it reads only
/// what [`crate::scripting::Scripting`] keeps outside the interpreter.
pub fn function_stats(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let sc = &ctx.server.scripting;
    if sc.busy.is_running() && !sc.busy.function.load(Ordering::Relaxed) {
        return Err(CmdError::new(crate::scripting::BUSY_SCRIPT));
    }
    let s = Reply::bulk_str;
    let running = match sc.running() {
        Some((name, command, ms)) => Reply::Map(vec![
            (s("name"), s(&name)),
            (
                s("command"),
                Reply::Array(command.into_iter().map(Reply::Bulk).collect()),
            ),
            (s("duration_ms"), Reply::Int(ms as i64)),
        ]),
        None => Reply::Null,
    };
    let (libraries, functions) = sc.counts();
    Ok(Reply::Map(vec![
        (s("running_script"), running),
        (
            s("engines"),
            Reply::Map(vec![(
                s("LUA"),
                Reply::Map(vec![
                    (s("libraries_count"), Reply::Int(libraries as i64)),
                    (s("functions_count"), Reply::Int(functions as i64)),
                ]),
            )]),
        ),
    ]))
}

pub fn function_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    help(&[
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Library description",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the libraries.",
        "    * SYNC: Synchronously flush the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
        "HELP",
        "    Prints this help.",
    ])
}
