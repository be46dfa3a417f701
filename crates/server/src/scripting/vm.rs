//! The Lua interpreter: Redis's libraries and `redis.*` API, the script cache, and running a
//! script or function with its keys and arguments.

use super::convert::{error_table, lua_to_reply, reply_to_lua};
use super::functions::Registry;
use super::{sha1_hex, Busy, Invocation, Outcome, Target};
use crate::cmd::transactions::{run_inline, EffectLog};
use crate::server::client::Client;
use crate::server::reply::Reply;
use crate::server::Server;
use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// What a killed script raises (for FUNCTION KILL too, as in Redis); the error handler adds
/// the code and where the script was.
pub const KILLED: &str = "Script killed by user with SCRIPT KILL...";
const ERR_RO_SCRIPT: &str = "ERR Write commands are not allowed from read-only scripts.";
const ERR_NOSCRIPT_CMD: &str = "ERR This Redis command is not allowed from script";
const ERR_UNKNOWN_CMD: &str = "ERR Unknown Redis command called from script";
const ERR_ARITY: &str = "ERR Wrong number of args calling Redis command from script";
const ERR_NO_ARGS: &str = "ERR Please specify at least one argument for this redis lib call";
const ERR_ARG_TYPE: &str = "ERR Lua redis lib command arguments must be strings or integers";

/// How long a library's code may run at FUNCTION LOAD (Redis's LOAD_TIMEOUT_MS).
const LOAD_TIMEOUT_MS: u64 = 500;

/// How often (in VM instructions) the interpreter checks whether it was asked to stop.
const HOOK_EVERY: u32 = 100_000;

/// State the `redis.*` functions read while a script runs (the interpreter's app data).
pub(super) struct RunCtx {
    pub server: Arc<Server>,
    /// The client the script's commands run as (Redis's Lua client), in the script's database.
    pub client: Client,
    pub now: u64,
    pub read_only: bool,
    /// The server was over `maxmemory` when the script started and the script did not
    /// declare `allow-oom`: commands that may grow memory are refused inside it (Redis's
    /// scriptVerifyOOM, judged by the state before the script ran).
    pub oom: bool,
    /// `redis.setresp(3)` was called.
    pub resp3: bool,
    /// Commands to log to the AOF, with SELECTs where the script changed database.
    pub effects: EffectLog,
    pub busy: Arc<Busy>,
    /// Errors commands gave the script, already counted in the error statistics.
    pub counted_errors: Vec<String>,
}

pub struct Vm {
    pub lua: Lua,
    /// EVAL's cache: SHA1 → (body, compiled function).
    scripts: HashMap<String, (Bytes, Function)>,
    pub functions: Registry,
    busy: Arc<Busy>,
    /// Redis's Lua client, made on first use.
    client: Option<Client>,
    /// Scripts and functions run so far.
    runs: u64,
    /// `pcall(f, ...)` in Lua: runs code so that the error object it raises (an `{err = …}`
    /// table from `redis.call`, a string from `error`) reaches us intact.
    trampoline: Function,
}

impl Vm {
    pub fn new(server: Weak<Server>, busy: Arc<Busy>) -> mlua::Result<Vm> {
        // The debug library is loaded only for Redis's error handler, which keeps its own
        // reference; it is removed from the globals before any script runs.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::default(),
            )
        };
        install_api(&lua)?;
        let trampoline: Function = lua.named_registry_value("locus_trampoline")?;
        let hook_busy = busy.clone();
        let hook_server = server.clone();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                // A shutdown stops a running script too, whatever it wrote.
                let shutting_down = hook_server
                    .upgrade()
                    .is_some_and(|s| s.shutdown.is_triggered());
                if hook_busy.kill.load(Ordering::Relaxed) || shutting_down {
                    return Err(mlua::Error::runtime(killed_text(&hook_busy)));
                }
                let deadline = hook_busy.load_deadline_ms.load(Ordering::Relaxed);
                if deadline != 0 && crate::util::now_ms() > deadline {
                    return Err(mlua::Error::runtime("FUNCTION LOAD timeout"));
                }
                Ok(VmState::Continue)
            },
        )?;
        Ok(Vm {
            lua,
            scripts: HashMap::new(),
            functions: Registry::default(),
            busy,
            client: None,
            runs: 0,
            trampoline,
        })
    }

    /// FUNCTION LOAD: runs a library's code, which has 500 ms to register its functions (as in
    /// Redis), and adds it to the registry.
    pub fn load_library(&mut self, code: Bytes, replace: bool) -> Result<String, String> {
        self.busy
            .load_deadline_ms
            .store(crate::util::now_ms() + LOAD_TIMEOUT_MS, Ordering::Relaxed);
        let lua = self.lua.clone();
        let result = super::functions::load_library(&lua, &mut self.functions, code, replace);
        self.busy.load_deadline_ms.store(0, Ordering::Relaxed);
        result
    }

    pub fn has_script(&self, sha: &[u8]) -> bool {
        std::str::from_utf8(sha)
            .map(|s| self.scripts.contains_key(&s.to_ascii_lowercase()))
            .unwrap_or(false)
    }

    pub fn script_count(&self) -> usize {
        self.scripts.len()
    }

    pub fn memory(&self) -> usize {
        self.lua.used_memory()
    }

    /// Compiles a body and caches it under its SHA1 (SCRIPT LOAD, EVAL).
    pub fn load_script(&mut self, body: &Bytes) -> Result<String, String> {
        let sha = sha1_hex(body);
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let code = strip_shebang(body).map_err(|e| e.to_string())?;
        let f = self
            .lua
            .load(&code[..])
            .set_name("@user_script")
            .into_function()
            .map_err(|e| {
                format!(
                    "ERR Error compiling script (new function): {}",
                    lua_error_message(&e)
                )
            })?;
        self.scripts.insert(sha.clone(), (body.clone(), f));
        Ok(sha)
    }

    /// Runs a script or function to completion. The caller holds the isolation gate
    /// exclusively.
    pub fn invoke(&mut self, server: &Arc<Server>, inv: Invocation) -> Outcome {
        let fail = |e: String| Outcome {
            reply: Reply::Error(e),
            effects: Vec::new(),
            error_counted: false,
        };
        let (f, flags, function) = match &inv.target {
            Target::Body(body) => match self.load_script(body) {
                Ok(sha) => {
                    let (body, f) = &self.scripts[&sha];
                    (f.clone(), script_flags(body), false)
                }
                Err(e) => return fail(e),
            },
            Target::Sha(sha) => match self.scripts.get(sha) {
                Some((body, f)) => (f.clone(), script_flags(body), false),
                None => return fail("NOSCRIPT No matching script. Please use EVAL.".into()),
            },
            Target::Function(name) => match self.functions.get(name) {
                Some(f) => (f.callback.clone(), Ok(f.flags), true),
                None => return fail("ERR Function not found".into()),
            },
        };
        let flags = match flags {
            Ok(f) => f,
            Err(e) => return fail(e),
        };
        if inv.read_only && function && !flags.no_writes {
            return fail("ERR Can not execute a script with write flag using *_ro command.".into());
        }
        let read_only = inv.read_only || flags.no_writes;
        // A script that declares its flags and may write is refused before it starts when
        // writes would be (Redis's scriptPrepareForRun).
        if flags.declared
            && !read_only
            && server
                .config
                .live
                .writes_need_replicas
                .load(Ordering::Relaxed)
        {
            return fail(crate::cmd::NOREPLICAS_ERR.into());
        }
        let limit = server.config.live.maxmemory.load(Ordering::Relaxed);
        let over = limit > 0 && crate::memory::counted(server) > limit;
        // Over maxmemory, a script that declares it may write but not allow-oom does not
        // start (scriptPrepareForRun).
        if over && flags.declared && !read_only && !flags.allow_oom {
            return fail(
                "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'"
                    .into(),
            );
        }
        let mut client = self
            .client
            .take()
            .unwrap_or_else(|| server.clients.detached(inv.db));
        client.select(inv.db);
        client.proto = 2;
        client.user = inv.user.0.clone();
        client.perms = inv.user.1.clone();
        crate::tracking::script_started();
        self.lua.set_app_data(RunCtx {
            server: server.clone(),
            client,
            now: inv.now,
            read_only,
            oom: over && !flags.allow_oom,
            resp3: false,
            effects: EffectLog::new(inv.db),
            busy: self.busy.clone(),
            counted_errors: Vec::new(),
        });
        let result = self.call(&f, &inv, function);
        let ctx = self
            .lua
            .remove_app_data::<RunCtx>()
            .expect("the run's context");
        let RunCtx {
            mut client,
            resp3,
            effects,
            counted_errors,
            ..
        } = ctx;
        client.stats.flush(server);
        self.client = Some(client);
        // Collect garbage every 50 scripts (Redis steps its collector as often): a full
        // collection of this small heap costs tens of microseconds.
        self.runs += 1;
        if self.runs.is_multiple_of(50) {
            let _ = self.lua.gc_collect();
        }
        let reply = match result {
            Ok(v) => lua_to_reply(&v, resp3),
            Err(e) => Reply::Error(e),
        };
        // An error the script passes on (raised by redis.call, or a pcall's error returned)
        // was counted when the command gave it.
        let error_counted = match &reply {
            Reply::Error(e) => counted_errors.iter().any(|c| e.starts_with(c.as_str())),
            _ => false,
        };
        Outcome {
            reply,
            effects: effects.cmds,
            error_counted,
        }
    }

    fn call(&self, f: &Function, inv: &Invocation, function: bool) -> Result<Value, String> {
        let name = match &inv.target {
            Target::Body(b) => sha1_hex(b),
            Target::Sha(s) => s.clone(),
            Target::Function(n) => String::from_utf8_lossy(n).into_owned(),
        };
        let lua = &self.lua;
        let strings = |v: &[Bytes]| -> mlua::Result<Table> {
            let t = lua.create_table_with_capacity(v.len(), 0)?;
            for (i, s) in v.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(s)?)?;
            }
            Ok(t)
        };
        let keys = strings(&inv.keys).map_err(|e| e.to_string())?;
        let args = strings(&inv.args).map_err(|e| e.to_string())?;
        self.busy.start(function);
        let result = if function {
            self.trampoline.call::<MultiValue>((f.clone(), keys, args))
        } else {
            if let Ok(g) = lua.named_registry_value::<Table>("locus_globals") {
                let _ = g.raw_set("KEYS", keys);
                let _ = g.raw_set("ARGV", args);
            }
            self.trampoline.call::<MultiValue>(f.clone())
        };
        self.busy.stop();
        let mut values = result.map_err(|e| format!("ERR {}", lua_error_message(&e)))?;
        let ok = matches!(values.pop_front(), Some(Value::Boolean(true)));
        let value = values.pop_front().unwrap_or(Value::Nil);
        if ok {
            return Ok(value);
        }
        // As luaCallFunction words it: the message, and where the error was raised.
        Err(match &value {
            Value::Table(t) => {
                let field = |k: &str| match t.raw_get::<Value>(k) {
                    Ok(Value::String(s)) => Some(s.to_string_lossy()),
                    Ok(Value::Number(n)) => Some((n as i64).to_string()),
                    Ok(Value::Integer(n)) => Some(n.to_string()),
                    _ => None,
                };
                let mut msg = field("err").unwrap_or_default();
                if let (Some(source), Some(line)) = (field("source"), field("line")) {
                    msg.push_str(&format!(" script: {name}, on {source}:{line}."));
                }
                msg
            }
            Value::String(s) => format!("ERR {}", s.to_string_lossy()),
            other => format!("ERR Error running script {name}, {other:?}"),
        }
        .replace(['\r', '\n'], " "))
    }
}

/// Flags a script declares in its shebang (`#!lua flags=no-writes,…`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    pub no_writes: bool,
    pub allow_oom: bool,
    /// The code declares its flags (a shebang, or a function): it is judged by them.
    pub declared: bool,
}

/// Parses an EVAL body's shebang line, if any.
fn script_flags(body: &[u8]) -> Result<Flags, String> {
    if !body.starts_with(b"#!") {
        return Ok(Flags::default());
    }
    let line_end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[2..line_end]).into_owned();
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or("");
    if engine != "lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = Flags {
        declared: true,
        ..Flags::default()
    };
    for p in parts {
        let Some(list) = p.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {p}"));
        };
        for f in list.split(',').filter(|f| !f.is_empty()) {
            match f {
                "no-writes" => flags.no_writes = true,
                "allow-oom" => flags.allow_oom = true,
                "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                other => return Err(format!("ERR Unexpected flag in script shebang: {other}")),
            }
        }
    }
    Ok(flags)
}

/// The code of a body without its shebang line (kept as an empty line, so line numbers hold).
fn strip_shebang(body: &[u8]) -> Result<Vec<u8>, String> {
    script_flags(body)?;
    if !body.starts_with(b"#!") {
        return Ok(body.to_vec());
    }
    let line_end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    Ok(body[line_end..].to_vec())
}

/// The message of an error raised inside Lua, without mlua's decorations.
pub(super) fn lua_error_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_error_message(cause),
        mlua::Error::MemoryError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Installs Redis's libraries and API: `redis.*`, `bit`, `cjson`, globals protection.
fn install_api(lua: &Lua) -> mlua::Result<()> {
    let redis = lua.create_table()?;
    // redis.pcall returns errors as {err = …} tables; redis.call raises them. It is a Rust
    // function (as Redis's is a C one) so that `return redis.call(…)` is no tail call and the
    // error handler still sees the script's line; its error carries the text after a marker
    // byte, which the handler and pcall turn back into the table Redis raises.
    redis.raw_set(
        "pcall",
        lua.create_function(|lua, args: MultiValue| -> mlua::Result<Value> {
            let (reply, resp3) = call_from_lua(lua, &args)?;
            reply_to_lua(lua, reply, resp3)
        })?,
    )?;
    redis.raw_set(
        "call",
        lua.create_function(|lua, args: MultiValue| -> mlua::Result<Value> {
            match call_from_lua(lua, &args)? {
                (Reply::Error(e), _) => Err(mlua::Error::runtime(format!("{ERROR_MARK}{e}"))),
                (reply, resp3) => reply_to_lua(lua, reply, resp3),
            }
        })?,
    )?;
    redis.raw_set(
        "error_reply",
        lua.create_function(|lua, msg: mlua::LuaString| {
            let m = msg.to_string_lossy();
            let m = if m.starts_with('-') {
                m
            } else {
                format!("-{m}")
            };
            error_table(lua, &lua_error_string(&m))
        })?,
    )?;
    redis.raw_set(
        "status_reply",
        lua.create_function(|lua, msg: mlua::LuaString| {
            let t = lua.create_table()?;
            t.raw_set("ok", msg)?;
            Ok(t)
        })?,
    )?;
    redis.raw_set(
        "sha1hex",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(mlua::Error::runtime("wrong number of arguments"));
            }
            let s = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Number(n) => crate::util::format_f64_g17(*n).into_bytes(),
                Value::Integer(i) => i.to_string().into_bytes(),
                _ => Vec::new(),
            };
            Ok(sha1_hex(&s))
        })?,
    )?;
    redis.raw_set(
        "log",
        lua.create_function(|_, args: MultiValue| {
            if args.len() < 2 {
                return Err(mlua::Error::runtime(
                    "redis.log() requires two arguments or more.",
                ));
            }
            let level = match &args[0] {
                Value::Number(n) => *n as i64,
                Value::Integer(i) => *i,
                _ => {
                    return Err(mlua::Error::runtime(
                        "First argument must be a number (log level).",
                    ))
                }
            };
            if !(0..=3).contains(&level) {
                return Err(mlua::Error::runtime("Invalid debug level."));
            }
            let text: Vec<String> = args
                .iter()
                .skip(1)
                .map(|v| match v {
                    Value::String(s) => s.to_string_lossy(),
                    Value::Number(n) => n.to_string(),
                    Value::Integer(i) => i.to_string(),
                    _ => String::new(),
                })
                .collect();
            let text = text.join(" ");
            match level {
                0 => tracing::debug!(target: "lua", "{text}"),
                1 => tracing::info!(target: "lua", "{text}"),
                2 => tracing::info!(target: "lua", "{text}"),
                _ => tracing::warn!(target: "lua", "{text}"),
            }
            Ok(())
        })?,
    )?;
    redis.raw_set(
        "setresp",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(mlua::Error::runtime(
                    "redis.setresp() requires one argument.",
                ));
            }
            let v = match &args[0] {
                Value::Number(n) => *n as i64,
                Value::Integer(i) => *i,
                _ => 0,
            };
            if v != 2 && v != 3 {
                return Err(mlua::Error::runtime("RESP version must be 2 or 3."));
            }
            if let Some(mut ctx) = lua.app_data_mut::<RunCtx>() {
                ctx.resp3 = v == 3;
            }
            Ok(())
        })?,
    )?;
    // Whether the script's user may run a command (Redis's redis.acl_check_cmd).
    redis.raw_set(
        "acl_check_cmd",
        lua.create_function(|lua, args: MultiValue| -> mlua::Result<bool> {
            let argv = lua_args(&args).map_err(mlua::Error::runtime)?;
            let ctx = lua
                .app_data_ref::<RunCtx>()
                .ok_or_else(|| mlua::Error::runtime("no script is running"))?;
            let cmd = match ctx.server.commands.resolve(&argv[..]) {
                Ok((c, _)) => Some(c),
                Err(e) if e.contains("wrong number") => ctx.server.commands.get(&argv[0]).cloned(),
                Err(_) => None,
            };
            let Some(cmd) = cmd else {
                return Err(mlua::Error::runtime(format!(
                    "{ERROR_MARK}ERR Invalid command passed to redis.acl_check_cmd()"
                )));
            };
            Ok(crate::acl::check(&ctx.client.perms, &cmd, &argv[..]).is_ok())
        })?,
    )?;
    for (name, level) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.raw_set(name, level)?;
    }
    redis.raw_set("REDIS_VERSION", crate::REDIS_VERSION)?;
    redis.raw_set("REDIS_VERSION_NUM", redis_version_num())?;
    // Effects replication is the only kind since Redis 7.0: these are accepted and ignored.
    redis.raw_set("set_repl", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.raw_set(
        "replicate_commands",
        lua.create_function(|_, _: MultiValue| Ok(true))?,
    )?;
    redis.raw_set(
        "breakpoint",
        lua.create_function(|_, _: MultiValue| Ok(false))?,
    )?;
    redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    lua.globals().raw_set("redis", redis)?;
    lua.globals()
        .raw_set("bit", super::libs::bit_library(lua)?)?;
    lua.globals()
        .raw_set("cjson", super::libs::cjson_library(lua)?)?;
    lua.globals()
        .raw_set("cmsgpack", super::libs::cmsgpack_library(lua)?)?;
    // redis.call and redis.pcall in Lua, over the primitive, which stays out of reach of
    // scripts; then the globals are protected as Redis protects them.
    lua.load(
        r#"
        local error, type, pcall, xpcall, select = error, type, pcall, xpcall, select
        local pairs, ipairs, rawset, setmetatable, unpack, tostring = pairs, ipairs, rawset, setmetatable, unpack, tostring
        local dbg = debug
        local G = _G
        -- The text of an error a Rust function raised (mlua hands such errors over as
        -- userdata), and whether it carries its own code (redis.call's, see ERROR_MARK).
        local function call_error(e)
            if type(e) == 'userdata' then
                local s = tostring(e)
                local coded = s:match('\1([^\n]*)')
                if coded then
                    return coded, true
                end
                return s:match('^runtime error: ([^\n]*)') or s:match('^([^\n]*)'), false
            end
        end
        -- Redis 7's pcall gives the message of an {err = ...} error, as older versions did.
        G.pcall = function(f, ...)
            local res = {pcall(f, ...)}
            if not res[1] then
                local e = res[2]
                local text = call_error(e)
                -- A kill is not for the script to catch.
                if text and text:find('Script killed by user', 1, true) then
                    error(e, 0)
                end
                if text then
                    res[2] = text
                elseif type(e) == 'table' and type(e.err) == 'string' then
                    res[2] = e.err
                end
            end
            return unpack(res, 1, table.maxn(res))
        end
        -- Redis's __redis__err__handler: every uncaught error becomes {err, source, line},
        -- the place being the script's own code (not this file's wrappers, nor C).
        local function handler(err)
            local level = 2
            local i = dbg.getinfo(level, 'nSl')
            while i and (i.what == 'C' or i.source == '=init') do
                level = level + 1
                i = dbg.getinfo(level, 'nSl')
            end
            local text, coded = call_error(err)
            if text then
                err = {err = coded and text or ('ERR ' .. text)}
            elseif type(err) ~= 'table' then
                err = {err = 'ERR ' .. tostring(err)}
            end
            if i then
                err['source'] = i.source
                err['line'] = i.currentline
            end
            return err
        end
        local function trampoline(f, ...)
            local args = {...}
            local n = select('#', ...)
            return xpcall(function() return f(unpack(args, 1, n)) end, handler)
        end
        dofile = nil
        loadfile = nil
        debug = nil
        setfenv = nil
        getfenv = nil
        newproxy = nil
        -- Globals and the libraries' tables are read-only, as Redis 7 makes them: each
        -- library table is reached through an empty proxy that refuses writes, and the
        -- globals move to a table behind _G; reading a missing global is an error.
        local function readonly(t, n, v)
            error("Attempt to modify a readonly table", 2)
        end
        local sealed = setmetatable({}, {__newindex = readonly, __metatable = false})
        local protected = {}
        local function proxy(real)
            local p = setmetatable({}, {__index = real, __newindex = readonly, __metatable = sealed})
            protected[p] = true
            return p
        end
        local real_loadstring = loadstring
        G.loadstring = function(s, name)
            -- Precompiled chunks are refused, as in Redis.
            if type(s) == 'string' and s:byte(1) == 27 then
                return nil, 'binary code is not allowed'
            end
            return real_loadstring(s, name)
        end
        G.setmetatable = function(t, mt)
            if protected[t] then
                error("Attempt to modify a readonly table", 2)
            end
            return setmetatable(t, mt)
        end
        G.rawset = function(t, k, v)
            if protected[t] then
                error("Attempt to modify a readonly table", 2)
            end
            return rawset(t, k, v)
        end
        for _, lib in ipairs({'redis', 'bit', 'cjson', 'cmsgpack', 'string', 'math', 'table'}) do
            G[lib] = proxy(G[lib])
        end
        G.print = nil
        local backing = {}
        for k, v in pairs(G) do backing[k] = v end
        for k in pairs(backing) do rawset(G, k, nil) end
        setmetatable(backing, {
            __index = function(t, n)
                error("Script attempted to access nonexistent global variable '" .. tostring(n) .. "'", 2)
            end,
            __newindex = readonly,
            __metatable = sealed,
        })
        setmetatable(G, {__index = backing, __newindex = readonly, __metatable = sealed})
        protected[G] = true
        protected[backing] = true
        return trampoline
        "#,
    )
    .set_name("=init")
    .call::<Function>(())
    .and_then(|t| lua.set_named_registry_value("locus_trampoline", t))?;
    // KEYS and ARGV are set where the other globals live.
    let backing: Table = lua
        .globals()
        .metatable()
        .ok_or_else(|| mlua::Error::runtime("no metatable"))?
        .raw_get("__index")?;
    lua.set_named_registry_value("locus_globals", backing)?;
    Ok(())
}

/// The error a killed script stops with.
fn killed_text(_busy: &Busy) -> &'static str {
    KILLED
}

/// Marks the text of an error `redis.call` raises inside mlua's error value.
const ERROR_MARK: char = '\u{1}';

/// Runs a command for `redis.call` / `redis.pcall`: (reply, whether the script chose RESP3).
fn call_from_lua(lua: &Lua, args: &MultiValue) -> mlua::Result<(Reply, bool)> {
    let argv = match lua_args(args) {
        Ok(a) => a,
        Err(e) => return Ok((Reply::err(e), false)),
    };
    let mut ctx = lua.app_data_mut::<RunCtx>().ok_or_else(|| {
        mlua::Error::runtime("redis.call/pcall can only be called inside a script invocation")
    })?;
    if ctx.busy.kill.load(Ordering::Relaxed) {
        return Err(mlua::Error::runtime(killed_text(&ctx.busy)));
    }
    let reply = run_command(&mut ctx, argv);
    Ok((reply, ctx.resp3))
}

/// An error text as Redis stores it in an `{err = …}` table (luaPushErrorBuff): `-CODE msg`
/// keeps its code, a text without one gets `ERR`.
fn lua_error_string(e: &str) -> String {
    let e = e.trim_end_matches(['\r', '\n']);
    match e.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some(_) => rest.to_string(),
            None => format!("ERR {rest}"),
        },
        None => format!("ERR {e}"),
    }
}

/// `7.0.15` → 0x00070f, as Redis encodes REDIS_VERSION_NUM.
fn redis_version_num() -> i64 {
    let mut n = 0i64;
    for part in crate::REDIS_VERSION.split('.').take(3) {
        n = (n << 8) | part.parse::<i64>().unwrap_or(0);
    }
    n
}

/// A call's arguments as command words: strings, and numbers written as Redis writes them.
fn lua_args(args: &MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if args.is_empty() {
        return Err(ERR_NO_ARGS);
    }
    args.iter()
        .map(|v| match v {
            Value::String(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => Ok(Bytes::from(i.to_string())),
            Value::Number(n) => Ok(Bytes::from(if n.fract() == 0.0 && n.abs() < 1e17 {
                (*n as i64).to_string()
            } else {
                format!("{n}")
            })),
            _ => Err(ERR_ARG_TYPE),
        })
        .collect()
}

/// Runs one command for a script: Redis's checks for scripts, then the command itself as EXEC
/// runs queued commands (no waiting; commands that answer later refuse).
fn run_command(ctx: &mut RunCtx, argv: Vec<Bytes>) -> Reply {
    let server = ctx.server.clone();
    let (cmd, skip) = match server.commands.resolve(&argv[..]) {
        Ok(found) => found,
        Err(e) if e.contains("wrong number of arguments") => return Reply::err(ERR_ARITY),
        Err(_) => return Reply::err(ERR_UNKNOWN_CMD),
    };
    if let Err(refused) = check_command(ctx, &cmd, &argv) {
        // A refused call counts as the command's rejected call and as an error reply, once:
        // not again if the script passes the error on.
        cmd.stats.rejected.fetch_add(1, Ordering::Relaxed);
        count_script_error(ctx, &refused);
        return refused;
    }
    run_checked(ctx, cmd, skip, argv)
}

/// Redis's checks of a command a script calls (scriptCall's), with their error replies.
fn check_command(
    ctx: &RunCtx,
    cmd: &Arc<crate::cmd::Command>,
    argv: &[Bytes],
) -> Result<(), Reply> {
    let server = &ctx.server;
    if cmd.has_flag("NOSCRIPT") {
        return Err(Reply::err(ERR_NOSCRIPT_CMD));
    }
    if (cmd.name == "xread" || cmd.name == "xreadgroup")
        && argv.iter().any(|a| a.eq_ignore_ascii_case(b"BLOCK"))
    {
        return Err(Reply::err(format!(
            "ERR {} command is not allowed with BLOCK option from scripts",
            cmd.name
        )));
    }
    if ctx.oom && cmd.denyoom {
        return Err(Reply::err(crate::memory::OOM_ERR));
    }
    if cmd.write {
        if ctx.read_only {
            return Err(Reply::err(ERR_RO_SCRIPT));
        }
        if server
            .config
            .live
            .writes_need_replicas
            .load(Ordering::Relaxed)
        {
            return Err(Reply::err(crate::cmd::NOREPLICAS_ERR));
        }
        if let Some(e) = server.aof.write_error() {
            return Err(Reply::Error(e));
        }
    }
    if cmd.handler.is_none() {
        return Err(Reply::err(ERR_UNKNOWN_CMD));
    }
    // The script runs with its caller's permissions.
    if let Err(denied) = crate::acl::check(&ctx.client.perms, cmd, argv) {
        crate::cmd::acl::log_denial(
            server,
            &ctx.client,
            denied.log_reason(),
            crate::acl::log::Context::Lua,
            denied.object(cmd, argv),
            None,
        );
        return Err(Reply::err(format!(
            "ERR The user executing the script {}",
            denied.script_reason()
        )));
    }
    Ok(())
}

/// Runs a command a script called once its checks passed.
fn run_checked(
    ctx: &mut RunCtx,
    cmd: Arc<crate::cmd::Command>,
    skip: usize,
    argv: Vec<Bytes>,
) -> Reply {
    let server = ctx.server.clone();
    let db = ctx.client.db;
    if server.clients.monitor_count.load(Ordering::Relaxed) > 0 {
        server.feed_monitors_as(db, "lua", &argv[..], &cmd.name);
    }
    if cmd.tracks_reads {
        // A tracking caller remembers the script's declared keys (as Redis does).
        crate::tracking::script_read();
    }
    let request = crate::server::protocol::Request::from_args(&argv);
    let now = ctx.now;
    let (reply, wrote) = run_inline(
        &server,
        &mut ctx.client,
        &cmd,
        request,
        skip,
        now,
        Some(&mut ctx.effects),
    );
    if wrote {
        ctx.busy.wrote.store(true, Ordering::Relaxed);
    }
    if reply.is_error() {
        count_script_error(ctx, &reply);
    }
    reply
}

/// Counts an error a command gave a script (INFO errorstats, total_error_replies) and notes it,
/// so that the script's own error reply, if it passes this one on, is not counted twice.
fn count_script_error(ctx: &mut RunCtx, reply: &Reply) {
    if let Reply::Error(e) = reply {
        ctx.server.count_error_kind(e);
        ctx.server
            .stats
            .error_replies
            .fetch_add(1, Ordering::Relaxed);
        ctx.counted_errors.push(e.clone());
    }
}
