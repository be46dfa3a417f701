//! Lua scripting as Redis 7.0 has it: EVAL / EVALSHA and their `_RO` forms, the SCRIPT
//! commands, and FUNCTION libraries called with FCALL.
//!
//! One Lua 5.1 interpreter serves the whole server, as in Redis. A script runs off the event
//! loops (on a blocking thread) while it holds the keyspace's isolation gate exclusively, so it
//! is atomic: other clients' commands wait for it, and once it has run longer than
//! `busy-reply-threshold` they get `BUSY` at once, while SCRIPT KILL, FUNCTION KILL and SHUTDOWN
//! NOSAVE still get through. Commands a script calls run through the same table, checks and
//! statistics as a client's, see the time the script started at, and are logged to the AOF as
//! one record of their effects.

pub mod convert;
pub mod functions;
mod libs;
mod vm;

use crate::server::reply::Reply;
use crate::server::Server;
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use vm::Vm;

/// What is running, for BUSY replies and SCRIPT KILL / FUNCTION KILL.
#[derive(Default)]
pub struct Busy {
    running: AtomicBool,
    /// When the running script started (Unix ms).
    started_ms: AtomicU64,
    /// A kill was asked for; the interpreter's hook stops the script.
    pub kill: AtomicBool,
    /// The running script wrote: it can no longer be killed.
    pub wrote: AtomicBool,
    /// The running code is a function (FCALL), not an EVAL script.
    pub function: AtomicBool,
    /// While FUNCTION LOAD runs a library's code: when it must have finished (Unix ms; 0:
    /// no limit).
    pub load_deadline_ms: AtomicU64,
}

pub const BUSY_SCRIPT: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

impl Busy {
    fn start(&self, function: bool) {
        self.kill.store(false, Ordering::Relaxed);
        self.wrote.store(false, Ordering::Relaxed);
        self.function.store(function, Ordering::Relaxed);
        self.started_ms
            .store(crate::util::now_ms(), Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
    }

    fn stop(&self) {
        self.running.store(false, Ordering::Release);
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Whether a script has been running longer than `threshold_ms`.
    pub fn timed_out(&self, threshold_ms: u64) -> bool {
        self.is_running()
            && crate::util::now_ms().saturating_sub(self.started_ms.load(Ordering::Relaxed))
                >= threshold_ms
    }

    /// The BUSY error text for the code running now.
    pub fn busy_error(&self) -> &'static str {
        if self.function.load(Ordering::Relaxed) {
            BUSY_FUNCTION
        } else {
            BUSY_SCRIPT
        }
    }
}

/// The server's scripting state: the interpreter (made on first use) and what runs on it.
#[derive(Default)]
pub struct Scripting {
    vm: Mutex<Option<Vm>>,
    pub busy: Arc<Busy>,
    /// (libraries, functions), kept outside the interpreter for FUNCTION STATS.
    counts: Mutex<(usize, usize)>,
    /// The function running now and the command that called it, for FUNCTION STATS.
    running: Mutex<Option<(String, Vec<Bytes>)>>,
}

/// What to run.
pub enum Target {
    /// EVAL: the body (cached under its SHA1).
    Body(Bytes),
    /// EVALSHA: a cached script's SHA1, lower-case hex.
    Sha(String),
    /// FCALL: a registered function's name.
    Function(Bytes),
}

/// A call of a script or function by a client.
pub struct Invocation {
    pub target: Target,
    pub keys: Vec<Bytes>,
    pub args: Vec<Bytes>,
    /// The caller's database (a script's SELECT does not change the caller's).
    pub db: usize,
    /// EVAL_RO, EVALSHA_RO, FCALL_RO.
    pub read_only: bool,
    /// The caller's time for this command: every command the script calls sees it.
    pub now: u64,
    /// The command as the client sent it (FUNCTION STATS shows it).
    pub command: Vec<Bytes>,
    /// The caller's ACL user and rules: the script's commands are checked against them.
    pub user: (
        std::sync::Arc<crate::acl::User>,
        std::sync::Arc<crate::acl::rules::UserRules>,
    ),
    /// The calling client, and its CLIENT TRACKING flags when it called: a tracking caller
    /// remembers the script's keys if the script read anything.
    pub caller: std::sync::Arc<crate::server::client::ClientInfo>,
    pub tracking: u32,
}

/// What a run left for the caller: the reply, and the commands to log to the AOF.
pub struct Outcome {
    pub reply: Reply,
    pub effects: Vec<Vec<Bytes>>,
    /// The reply is an error a command gave the script, counted already.
    pub error_counted: bool,
}

impl Scripting {
    /// Runs `f` on the interpreter, creating it first if needed. The caller holds the
    /// isolation gate exclusively.
    pub fn with_vm<R>(&self, server: &Arc<Server>, f: impl FnOnce(&mut Vm) -> R) -> R {
        let mut slot = self.vm.lock();
        let vm = slot.get_or_insert_with(|| {
            Vm::new(Arc::downgrade(server), self.busy.clone()).expect("the Lua interpreter")
        });
        f(vm)
    }

    /// Runs a script or function to completion (the caller holds the gate exclusively).
    pub fn invoke(&self, server: &Arc<Server>, inv: Invocation) -> Outcome {
        if let Target::Function(name) = &inv.target {
            *self.running.lock() = Some((
                String::from_utf8_lossy(name).into_owned(),
                inv.command.clone(),
            ));
        }
        let caller = inv.caller.clone();
        let _current = crate::tracking::enter(caller.id);
        let tracked = (inv.tracking != 0).then(|| (inv.tracking, inv.keys.clone()));
        let out = self.with_vm(server, |vm| vm.invoke(server, inv));
        *self.running.lock() = None;
        if let Some((flags, keys)) = tracked {
            crate::tracking::after_script(caller.id, flags, &keys);
        }
        out
    }

    /// The function running now: (name, command, milliseconds so far).
    pub fn running(&self) -> Option<(String, Vec<Bytes>, u64)> {
        let r = self.running.lock().clone()?;
        if !self.busy.is_running() {
            return None;
        }
        let ms = crate::util::now_ms().saturating_sub(self.busy.started_ms.load(Ordering::Relaxed));
        Some((r.0, r.1, ms))
    }

    /// After FUNCTION LOAD, DELETE, FLUSH, RESTORE: updates the counts FUNCTION STATS shows
    /// and the copy of the libraries' code that snapshots and AOF rewrites save.
    pub fn refresh_counts(&self, server: &Arc<Server>) {
        let (c, codes) = self.with_vm(server, |vm| {
            let reg = &vm.functions;
            (
                (reg.libraries.len(), reg.function_count()),
                reg.libraries.values().map(|l| l.code.clone()).collect(),
            )
        });
        *self.counts.lock() = c;
        *server.store.function_libraries.write() = codes;
    }

    /// Loads the libraries a snapshot or AOF base brought into the store's copy.
    pub fn restore_saved(&self, server: &Arc<Server>) -> Result<(), String> {
        let codes = std::mem::take(&mut *server.store.function_libraries.write());
        if codes.is_empty() {
            return Ok(());
        }
        self.with_vm(server, |vm| {
            let lua = vm.lua.clone();
            for code in codes {
                functions::load_library(&lua, &mut vm.functions, code, true)?;
            }
            Ok::<(), String>(())
        })?;
        self.refresh_counts(server);
        Ok(())
    }

    /// (libraries, functions).
    pub fn counts(&self) -> (usize, usize) {
        *self.counts.lock()
    }

    /// SCRIPT LOAD: compiles and caches a body, returning its SHA1.
    pub fn load(&self, server: &Arc<Server>, body: &Bytes) -> Result<String, String> {
        self.with_vm(server, |vm| vm.load_script(body))
    }

    /// SCRIPT EXISTS.
    pub fn exists(&self, server: &Arc<Server>, sha: &[u8]) -> bool {
        self.with_vm(server, |vm| vm.has_script(sha))
    }

    /// SCRIPT FLUSH: forgets every cached script (a fresh interpreter, as Redis makes one).
    /// As Redis resets its scripts' Lua VM, the interpreter is made anew, so nothing a script
    /// left behind survives; the function libraries are loaded into the new one.
    pub fn flush_scripts(&self, server: &Arc<Server>) {
        let mut slot = self.vm.lock();
        let codes: Vec<Bytes> = slot
            .as_ref()
            .map(|vm| {
                vm.functions
                    .libraries
                    .values()
                    .map(|l| l.code.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut vm =
            Vm::new(Arc::downgrade(server), self.busy.clone()).expect("the Lua interpreter");
        let lua = vm.lua.clone();
        for code in codes {
            if let Err(e) = functions::load_library(&lua, &mut vm.functions, code, true) {
                tracing::warn!("SCRIPT FLUSH: a function library could not be reloaded: {e}");
            }
        }
        *slot = Some(vm);
    }

    /// The number of cached scripts (INFO).
    pub fn cached_scripts(&self) -> usize {
        self.vm.lock().as_ref().map_or(0, |vm| vm.script_count())
    }

    /// Memory the interpreter uses, in bytes (INFO used_memory_lua).
    pub fn memory(&self) -> usize {
        self.vm.lock().as_ref().map_or(0, |vm| vm.memory())
    }
}

/// SHA1 of a script body, lower-case hex, as EVALSHA names scripts.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}
