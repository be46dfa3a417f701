//! The network side: listeners, connections, RESP framing, client registry, slow log, and
//! orderly shutdown. Commands are executed through [`Server::execute`].

pub mod client;
pub mod connection;
pub mod io_pool;
pub mod protocol;
pub mod pubsub;
pub mod reply;
pub mod tls;

use crate::cmd::{Args, CommandTable, Ctx, Deferred};
use crate::config::Config;
use crate::store::Store;
use bytes::Bytes;
use client::{Client, ClientRegistry, ReplyMode};
use parking_lot::Mutex;
use protocol::Request;
use reply::Reply;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

/// Server-wide counters for INFO stats.
#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub commands_processed: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub error_replies: AtomicU64,
}

impl Stats {
    pub fn reset(&self) {
        for c in [
            &self.connections_received,
            &self.commands_processed,
            &self.rejected_connections,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.error_replies,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

pub struct SlowLogEntry {
    pub id: u64,
    pub time: u64,
    pub micros: u64,
    pub argv: Vec<Bytes>,
    pub addr: String,
    pub name: Bytes,
}

#[derive(Default)]
pub struct SlowLog {
    pub entries: VecDeque<SlowLogEntry>,
    pub next_id: u64,
}

/// Shutdown signal shared by listeners, connections and the SHUTDOWN command.
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }
}

pub struct Server {
    pub config: Config,
    pub store: Store,
    pub commands: CommandTable,
    pub clients: ClientRegistry,
    pub stats: Stats,
    pub slowlog: Mutex<SlowLog>,
    pub shutdown: Shutdown,
    pub run_id: String,
    pub started: Instant,
    /// The TCP port actually bound (differs from the config with `--port 0`… which disables TCP).
    pub tcp_port: AtomicU16,
    /// The accept loops of the TCP listeners, replaced when CONFIG SET port rebinds them.
    tcp_listeners: Mutex<Option<Listeners>>,
    /// Error replies by kind (first word), for INFO errorstats.
    pub error_kinds: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Highest allocator figure seen (INFO used_memory_peak).
    pub memory_peak: std::sync::atomic::AtomicUsize,
    /// (Unix ms, commands processed) samples for INFO instantaneous_ops_per_sec.
    pub ops_samples: Mutex<VecDeque<(u64, u64)>>,
    pub engine: Arc<crate::engine::Engine>,
    pub saves: crate::persist::SaveState,
    /// What SHUTDOWN asked for: 0 follow the save rules, 1 save, 2 do not save.
    pub shutdown_save: std::sync::atomic::AtomicU8,
    pub aof: Arc<crate::persist::aof::Aof>,
    /// MULTI/EXEC isolation: commands hold it shared, EXEC exclusively.
    pub gate: crate::store::gate::Gate,
    /// Clients blocked on keys.
    pub blocking: crate::cmd::blocking::Registry,
    pub pubsub: pubsub::PubSub,
    /// Set while the dataset is being loaded (INFO loading).
    pub loading: std::sync::atomic::AtomicBool,
    /// Lua scripts and functions.
    pub scripting: crate::scripting::Scripting,
    /// ACL users and the ACL log.
    pub acl: crate::acl::Acl,
    /// The TLS port's handshake settings (replaced when CONFIG SET changes a `tls-*` file).
    pub tls: parking_lot::RwLock<Option<tokio_rustls::TlsAcceptor>>,
    /// Writes for a host running commands in stand-in databases (off in locus-server).
    pub outbox: crate::outbox::Outbox,
}

/// Redis 7.0's reply to a connection refused by protected mode, word for word.
pub const PROTECTED_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// What the HTTP and gRPC faces answer a request protected mode refuses.
pub const PROTECTED_HTTP: &str = "Locus is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode requests are only accepted from the loopback interface. Set a password for the default user (requirepass or ACL SETUSER default), or send CONFIG SET protected-mode no from the loopback interface after making sure the server is not publicly reachable.";

/// Whether a peer counts as local for protected mode: a Unix socket (no address), or exactly
/// 127.0.0.1 or ::1, as Redis's islocalClient compares them.
pub fn is_local_peer(ip: Option<std::net::IpAddr>) -> bool {
    match ip {
        None => true,
        Some(std::net::IpAddr::V4(v4)) => v4 == std::net::Ipv4Addr::LOCALHOST,
        Some(std::net::IpAddr::V6(v6)) => {
            v6 == std::net::Ipv6Addr::LOCALHOST
                || v6.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

impl Server {
    /// Protected mode (Redis's): with `protected-mode yes` and no password for the default
    /// user, only local peers are served, on every face (RESP, HTTP, gRPC).
    pub fn protected_refuses(&self, peer: Option<std::net::IpAddr>) -> bool {
        self.config.live.protected_mode.load(Ordering::Relaxed)
            && !is_local_peer(peer)
            && self.acl.default_nopass()
    }

    pub fn new(config: Config) -> Arc<Server> {
        let databases = config.get_i64("databases") as usize;
        let run_id: String = (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() % 16))
            .collect();
        let commands = CommandTable::load();
        let acl = crate::acl::Acl::new(&commands);
        acl.pubsub_allchannels.store(
            config.get("acl-pubsub-default") == "allchannels",
            Ordering::Relaxed,
        );
        acl.set_default_password(&commands, config.get("requirepass").as_bytes());
        Arc::new(Server {
            store: Store::new(databases),
            commands,
            acl,
            tls: parking_lot::RwLock::new(None),
            outbox: Default::default(),
            clients: ClientRegistry::default(),
            stats: Stats::default(),
            slowlog: Mutex::new(SlowLog::default()),
            shutdown: Shutdown {
                tx: watch::channel(false).0,
            },
            run_id,
            started: Instant::now(),
            tcp_port: AtomicU16::new(0),
            tcp_listeners: Mutex::new(None),
            error_kinds: Mutex::new(Default::default()),
            memory_peak: Default::default(),
            ops_samples: Mutex::new(VecDeque::new()),
            engine: crate::engine::Engine::new(engine_config(&config)),
            saves: crate::persist::SaveState::default(),
            shutdown_save: Default::default(),
            aof: Arc::new(crate::persist::aof::Aof::new(
                config.get("appenddirname").into(),
                config.get("appendfilename"),
                crate::persist::aof::Fsync::parse(&config.get("appendfsync")),
            )),
            loading: Default::default(),
            gate: Default::default(),
            blocking: Default::default(),
            pubsub: Default::default(),
            scripting: Default::default(),
            config,
        })
    }

    /// Runs one request: resolves the command, checks authentication, executes it and records
    /// statistics, the slow log and MONITOR output. Returns `None` when no reply is to be sent.
    pub fn execute(self: &Arc<Self>, client: &mut Client, argv: Request) -> Option<Outcome> {
        let _current = crate::tracking::enter(client.id);
        let before = client.reply_mode;
        if before == ReplyMode::Skip {
            client.reply_mode = ReplyMode::Skipping;
        }
        let outcome = self.execute_inner(client, argv);
        let early = if crate::tracking::active() {
            crate::tracking::broadcast();
            crate::tracking::take_early()
        } else {
            Vec::new()
        };
        // CLIENT REPLY OFF / SKIP are not answered, CLIENT REPLY ON is, and so is every command
        // run while replies are on. Pub/sub notices are pushed whatever the mode, as Redis's
        // are (its CLIENT_PUSHING).
        let sent = match (before, client.reply_mode) {
            (_, ReplyMode::On) => Some(outcome),
            _ if outcome.is_push() => Some(outcome),
            _ => None,
        };
        if client.reply_mode == ReplyMode::Skipping {
            client.reply_mode = ReplyMode::On;
        }
        if early.is_empty() {
            return sent;
        }
        // Invalidations of keys evicted before the command ran precede its reply.
        match sent {
            Some(Outcome::Reply(r)) => {
                let mut all = early;
                all.push(r);
                Some(Outcome::Reply(Reply::Many(all)))
            }
            other => {
                for p in early {
                    client.info.send(client::Control::Invalidate(p));
                }
                other
            }
        }
    }

    fn execute_inner(self: &Arc<Self>, client: &mut Client, argv: Request) -> Outcome {
        client.stats.processed += 1;
        // Pipelines repeat the same command: try the connection's last one before the table.
        let cached = client
            .last_command
            .as_ref()
            .filter(|c| {
                c.name.as_bytes().eq_ignore_ascii_case(argv.arg(0)) && c.arity_ok(argv.len())
            })
            .cloned();
        let from_cache = cached.is_some();
        let resolved = match cached {
            Some(c) => Ok((c, 1)),
            None => self.commands.resolve(&argv),
        };
        let (cmd, skip) = match resolved {
            Ok(found) => {
                if !from_cache && found.1 == 1 && !found.0.is_container() {
                    client.last_command = Some(found.0.clone());
                }
                found
            }
            Err(e) => {
                // A known command refused for its arity counts as a rejected call, as in Redis.
                if e.contains("wrong number of arguments") {
                    if let Some(c) = self.commands.get(argv.arg(0)) {
                        let c = match (c.is_container(), argv.len() >= 2) {
                            (true, true) => c
                                .subcommands
                                .get(&String::from_utf8_lossy(argv.arg(1)).to_uppercase())
                                .unwrap_or(c),
                            _ => c,
                        };
                        c.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // A command refused while queueing dooms the transaction (EXECABORT); a
                // malformed EXEC ends it at once.
                if argv.arg(0).eq_ignore_ascii_case(b"exec") && client.multi.take().is_some() {
                    crate::cmd::transactions::unwatch_all(self, client);
                    let why = e.strip_prefix("ERR ").unwrap_or(&e).to_string();
                    return Outcome::Reply(self.error_reply(
                        client,
                        format!("EXECABORT Transaction discarded because of: {why}"),
                    ));
                }
                if let Some(m) = client.multi.as_mut() {
                    m.failed = true;
                }
                return Outcome::Reply(self.error_reply(client, e));
            }
        };
        if !client.authenticated && !cmd.no_auth && self.acl.auth_required.load(Ordering::Relaxed) {
            cmd.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Outcome::Reply(self.reject(
                client,
                &cmd,
                "NOAUTH Authentication required.".into(),
            ));
        }
        if !client.refresh_perms(&self.acl) {
            // The user was deleted: its connections close (Redis frees them).
            client.close_after_reply = true;
            return Outcome::Reply(
                self.error_reply(client, "NOAUTH Authentication required.".into()),
            );
        }
        if !client.perms.unrestricted {
            if let Err(denied) = crate::acl::check(&client.perms, &cmd, &argv) {
                let context = if client.multi.is_some() {
                    crate::acl::log::Context::Multi
                } else {
                    crate::acl::log::Context::Toplevel
                };
                crate::cmd::acl::log_denial(
                    self,
                    client,
                    denied.log_reason(),
                    context,
                    denied.object(&cmd, &argv),
                    None,
                );
                cmd.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return Outcome::Reply(self.reject(client, &cmd, denied.error(&cmd)));
            }
        }
        let Some(handler) = cmd.handler else {
            return Outcome::Reply(Reply::err(format!(
                "ERR wrong number of arguments for '{}' command",
                cmd.name
            )));
        };
        if client.proto == 2 && !cmd.pubsub_ok && client.subscribed() {
            return Outcome::Reply(self.error_reply(
                client,
                format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    cmd.full_name()
                ),
            ));
        }
        if cmd.write
            && self
                .config
                .live
                .writes_need_replicas
                .load(Ordering::Relaxed)
        {
            if let Some(m) = client.multi.as_mut() {
                m.failed = true;
            }
            return Outcome::Reply(self.error_reply(client, crate::cmd::NOREPLICAS_ERR.into()));
        }
        let maxmemory = self.config.live.maxmemory.load(Ordering::Relaxed) > 0;
        if crate::tracking::active() {
            let max = self.config.get_i64("tracking-table-max-keys").max(0) as usize;
            crate::tracking::early(|| crate::tracking::limit_table(max));
        }
        if let Some(m) = client.multi.as_mut() {
            if !matches!(
                cmd.name.as_str(),
                "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
            ) {
                // While a script runs past busy-reply-threshold, a command that may not run
                // then is refused, and its transaction with it (as Redis rejects it).
                if !cmd.allow_busy
                    && self
                        .scripting
                        .busy
                        .timed_out(self.config.get_i64("busy-reply-threshold").max(0) as u64)
                {
                    m.failed = true;
                    let busy = self.scripting.busy.busy_error();
                    return Outcome::Reply(self.error_reply(client, busy.into()));
                }
                // Queueing takes memory too: over the limit nothing is queued (as in Redis).
                if maxmemory
                    && crate::memory::counted(self)
                        > self.config.live.maxmemory.load(Ordering::Relaxed)
                {
                    m.failed = true;
                    return Outcome::Reply(self.error_reply(client, crate::memory::OOM_ERR.into()));
                }
                if cmd.has_flag("NO_MULTI") {
                    m.failed = true;
                    return Outcome::Reply(self.error_reply(
                        client,
                        "ERR Command not allowed inside a transaction".into(),
                    ));
                }
                m.queue.push((cmd, argv, skip));
                return Outcome::Reply(Reply::Status("QUEUED"));
            }
        }
        if cmd.reads_stats {
            // INFO, CLIENT LIST and the like see every earlier command's statistics.
            client.settle_stats(self);
        }
        client.last_cmd = cmd.id + 1;
        client.info.last_cmd.store(cmd.id + 1, Ordering::Relaxed);
        // EXEC shows after the commands it ran (each shown as it runs), as in Redis, where a
        // command reaches MONITOR once it has run.
        let monitored =
            self.clients.monitor_count.load(Ordering::Relaxed) > 0 && cmd.name != "monitor";
        if monitored && cmd.name != "exec" {
            self.feed_monitors(client, &argv, &cmd.name);
        }
        // Fast commands are not timed one by one (a clock reading can cost more than the
        // command): they share their batch's time. Others, and every command when the slow
        // log threshold is low, are timed on their own.
        let slower_than = self.config.live.slowlog_slower_than.load(Ordering::Relaxed);
        let timed = !cmd.fast || (0..=1000).contains(&slower_than);
        // Every command runs inside the isolation gate, which EXEC and scripts hold
        // exclusively; a script that has run past busy-reply-threshold gets BUSY answered for
        // it, except to the commands allowed then (SCRIPT KILL, SHUTDOWN NOSAVE …).
        let gate = match self.enter_gate(&cmd) {
            Ok(g) => g,
            // EXEC refused discards its transaction, naming why (Redis's execCommandAbort).
            Err(busy) if cmd.name == "exec" && client.multi.is_some() => {
                client.multi = None;
                crate::cmd::transactions::unwatch_all(self, client);
                let text = format!("EXECABORT Transaction discarded because of: {busy}");
                return Outcome::Reply(self.error_reply(client, text));
            }
            Err(busy) => return Outcome::Reply(self.error_reply(client, busy.into())),
        };
        // Over `maxmemory`, every command evicts first (as far as the policy allows); one
        // that may grow memory is refused if that leaves the server over the limit.
        if maxmemory && crate::tracking::early(|| crate::memory::reclaim(self)).is_err() {
            let grows = match client.multi.as_ref() {
                Some(m) if cmd.name == "exec" => m.queue.iter().any(|(c, _, _)| c.denyoom),
                _ => cmd.denyoom && !cmd.oom_at_store,
            };
            if grows {
                drop(gate);
                cmd.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return Outcome::Reply(self.reject(client, &cmd, crate::memory::OOM_ERR.into()));
            }
        }
        // With the AOF on, a write holds the AOF lock while it runs and logs itself, so the
        // file's order is the keyspace's order.
        let mut txn = if cmd.write { self.aof.begin() } else { None };
        if txn.is_some() {
            if let Some(e) = self.aof.write_error() {
                return Outcome::Reply(self.error_reply(client, e));
            }
        }
        let db = client.db;
        let start = timed.then(crate::util::instant);
        // A tracking client's read registers its keys before it runs too (see `tracking`).
        let tracking = client.info.tracking.load(Ordering::Relaxed);
        let read_keys =
            (tracking != 0 && cmd.tracks_reads && crate::tracking::remembers_reads(tracking))
                .then(|| crate::tracking::read_keys(&cmd, &argv));
        if let Some(keys) = &read_keys {
            crate::tracking::reading(client.id, keys);
        }
        let mut args = Args::new(argv, skip);
        let mut ctx = Ctx::new(self, client, &cmd);
        let now = ctx.now();
        let result = handler(&mut ctx, &mut args);
        let deferred = ctx.deferred.take();
        // A command answering later that is not blocked (a script, a model run) is timed to
        // its answer: that is its latency, as a script's is in Redis, where it runs inline.
        let answers_later = deferred.is_some() && !ctx.logs_when_done;
        let propagate = ctx.propagate.take();
        let wrote = ctx.wrote.get();
        // A blocked command is logged when its wait ends; a blocked client's retries are not
        // logged at all (they are the server's, not a client's).
        let slowlogged =
            !(ctx.logs_when_done && deferred.is_some()) && client_is_external(ctx.client);
        // A refused command logs only what it says it wrote (`propagate`: the audit entry of a
        // refused model management action).
        let logs = (result.is_ok() || propagate.is_some()) && deferred.is_none();
        if let (Some(t), true) = (txn.as_mut(), logs) {
            // Commands that answer later (model runs) log what they wrote when they finish.
            let req = args.request();
            client.aof_seq = match &propagate {
                Some(cmds) => t.record(db, now, cmds.iter().map(|c| c.iter())),
                None => t.record(db, now, [(0..req.len()).map(|i| req.arg(i))]),
            };
        }
        drop(txn);
        drop(gate);
        if wrote {
            self.blocking.touched_by(&cmd, db, args.request());
        }
        if monitored && cmd.name == "exec" {
            self.feed_monitors(client, args.request(), &cmd.name);
        }
        if client.info.tracking.load(Ordering::Relaxed) != 0 {
            let ends_caching = client.multi.is_none();
            crate::tracking::after_command(
                &client.info,
                &cmd,
                || read_keys.unwrap_or_else(|| crate::tracking::read_keys(&cmd, args.request())),
                ends_caching,
            );
        }
        let nanos = start.map(|s| crate::util::instant().duration_since(s).as_nanos() as u64);
        let micros = nanos.map(|ns| ns / 1000);
        let failed = result.is_err();
        if answers_later {
            client.stats.record_later(&cmd);
        } else {
            client.stats.record(&cmd, nanos, failed);
        }
        if let Some(micros) = micros {
            if slowlogged
                && !answers_later
                && slower_than >= 0
                && micros >= slower_than as u64
                && !cmd.has_flag("SKIP_SLOWLOG")
            {
                self.slowlog_push(&client.info, &args.request().to_vec(), micros);
            }
        }
        let deferred = match (deferred, slowlogged, micros) {
            (Some(d), _, _) if answers_later => {
                let began = start.unwrap_or_else(crate::util::instant);
                let server = self.clone();
                let info = client.info.clone();
                let cmd = cmd.clone();
                // The request itself (a shared buffer and its ranges), copied out only if the
                // run turns out slow.
                let request = (slowlogged && slower_than >= 0 && !cmd.has_flag("SKIP_SLOWLOG"))
                    .then(|| args.request().clone());
                let timed: Deferred = Box::pin(async move {
                    let r = d.await;
                    let ns = crate::util::instant().duration_since(began).as_nanos() as u64;
                    cmd.stats.add_nanos(ns);
                    if crate::cmd::table::latency_tracking() {
                        cmd.stats.latency.observe(ns);
                    }
                    let slowlog = server
                        .config
                        .live
                        .slowlog_slower_than
                        .load(Ordering::Relaxed);
                    if let Some(request) = request {
                        if slowlog >= 0 && ns / 1000 >= slowlog as u64 {
                            server.slowlog_push(&info, &request.to_vec(), ns / 1000);
                        }
                    }
                    r
                });
                Some(timed)
            }
            // A blocked command reaches the slow log once its wait is over, with the time its
            // execution took (not the time it waited), as Redis logs it on unblocking.
            (Some(d), false, Some(micros))
                if client_is_external(client)
                    && slower_than >= 0
                    && micros >= slower_than as u64 =>
            {
                let server = self.clone();
                let info = client.info.clone();
                let argv = args.request().to_vec();
                let logged: Deferred = Box::pin(async move {
                    let r = d.await;
                    server.slowlog_push(&info, &argv, micros);
                    r
                });
                Some(logged)
            }
            (d, _, _) => d,
        };
        match (result, deferred) {
            (Ok(_), Some(d)) => Outcome::Deferred(d),
            (Ok(r), None) => Outcome::Reply(r),
            (Err(e), _) => Outcome::Reply(self.error_reply(client, e.0)),
        }
    }

    /// Takes the command's stripe of the isolation gate (EXEC takes the whole gate itself).
    /// While a script holds the gate the command waits, and once the script has run longer
    /// than `busy-reply-threshold` it is refused with BUSY, or, if it is allowed while busy,
    /// runs without the gate.
    fn enter_gate(
        &self,
        cmd: &crate::cmd::Command,
    ) -> Result<Option<parking_lot::RwLockReadGuard<'_, ()>>, &'static str> {
        let exec = cmd.name == "exec";
        if !exec {
            if let Some(g) = self.gate.try_shared() {
                return Ok(Some(g));
            }
        }
        let busy = &self.scripting.busy;
        loop {
            let threshold = self.config.get_i64("busy-reply-threshold").max(0) as u64;
            if busy.timed_out(threshold) {
                if cmd.allow_busy {
                    return Ok(None);
                }
                return Err(busy.busy_error());
            }
            if exec {
                if !busy.is_running() {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            if let Some(g) = self.gate.shared_within(std::time::Duration::from_millis(1)) {
                return Ok(Some(g));
            }
        }
    }

    /// Loads the users of the config file's `user` lines, or of `aclfile` (not both, as in
    /// Redis). Errs with the reason the server refuses to start.
    pub fn load_acl(&self) -> Result<(), String> {
        let file = self.config.get("aclfile");
        if !file.is_empty() && !self.config.users.is_empty() {
            return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
        }
        if !self.config.users.is_empty() {
            let origin = self
                .config
                .file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let lines: Vec<_> = self
                .config
                .users
                .iter()
                .map(|(n, w)| (origin.clone(), *n, w.clone()))
                .collect();
            let users = self
                .acl
                .parse_users(&self.commands, &lines)
                .map_err(|e| format!("Error loading ACL users from the config file: {e}"))?;
            self.acl.add_users(users);
        }
        if !file.is_empty() {
            crate::cmd::acl::load_file(self, &file)
                .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
        }
        Ok(())
    }

    /// Builds the TLS port's settings from the `tls-*` parameters (at start and on CONFIG
    /// SET); on error the old settings stay.
    pub fn reload_tls(&self) -> Result<(), String> {
        let cfg = tls::server_config(&self.config, &[])?;
        *self.tls.write() = Some(tokio_rustls::TlsAcceptor::from(cfg));
        Ok(())
    }

    /// Runs a command on the server's own behalf (a blocked client's retry) in database `db`,
    /// through the same path as a client's: isolation, AOF, statistics, wake-ups.
    pub fn execute_detached(self: &Arc<Self>, db: usize, argv: &[Bytes]) -> Reply {
        let mut client = self.clients.detached(db);
        match self.execute_inner(&mut client, Request::from_args(argv)) {
            Outcome::Reply(r) => r,
            Outcome::Deferred(_) => Reply::err("ERR command cannot run on the server's behalf"),
        }
    }

    /// Runs one command read back from the AOF, at its original time `now`, in the client's
    /// database. Returns the future of a command that finishes later (a model being stored).
    fn replay(
        self: &Arc<Self>,
        client: &mut Client,
        now: u64,
        argv: Request,
    ) -> Result<Option<Deferred>, String> {
        let name = String::from_utf8_lossy(argv.arg(0)).into_owned();
        let (cmd, skip) = self
            .commands
            .resolve(&argv)
            .map_err(|e| format!("can't replay '{name}': {e}"))?;
        let handler = cmd
            .handler
            .ok_or_else(|| format!("can't replay '{name}': not a command"))?;
        let mut args = Args::new(argv, skip);
        let mut ctx = Ctx::at(self, client, &cmd, now);
        let result = handler(&mut ctx, &mut args);
        let deferred = ctx.deferred.take();
        match result {
            Ok(_) => Ok(deferred),
            // A logged command succeeded when it ran; the same command failing now means the
            // state differs, which is worth a warning but not worth refusing the data.
            Err(e) => {
                tracing::warn!("replayed '{name}' failed: {}", e.0);
                Ok(None)
            }
        }
    }

    /// Records the samples INFO derives rates and peaks from (called on every cron tick).
    pub fn sample_metrics(&self) {
        let (allocated, _) = crate::cmd::server::allocator_stats();
        self.memory_peak.fetch_max(allocated, Ordering::Relaxed);
        let mut s = self.ops_samples.lock();
        s.push_back((
            crate::util::now_ms(),
            self.stats.commands_processed.load(Ordering::Relaxed),
        ));
        while s.len() > 16 {
            s.pop_front();
        }
    }

    /// Commands per second over the last samples.
    pub fn ops_per_sec(&self) -> u64 {
        let s = self.ops_samples.lock();
        match (s.front(), s.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1.saturating_sub(a.1)) * 1000 / (b.0 - a.0),
            _ => 0,
        }
    }

    /// A command refused before it ran (Redis's `rejectCommand`): an open transaction is
    /// doomed, and a refused EXEC discards it with EXECABORT.
    fn reject(&self, client: &mut Client, cmd: &crate::cmd::Command, e: String) -> Reply {
        if cmd.name == "exec" {
            if client.multi.take().is_some() {
                crate::cmd::transactions::unwatch_all(self, client);
            }
            return self.error_reply(
                client,
                format!("EXECABORT Transaction discarded because of: {e}"),
            );
        }
        if let Some(m) = client.multi.as_mut() {
            m.failed = true;
        }
        self.error_reply(client, e)
    }

    /// An error reply, counted in INFO errorstats by its first word.
    fn error_reply(&self, client: &mut Client, e: String) -> Reply {
        // A blocked client's retries count nothing: its final reply is counted once, when
        // the wait ends (`cmd::blocking::block`).
        if client_is_external(client) {
            client.stats.errors += 1;
            self.count_error_kind(&e);
        }
        Reply::Error(e)
    }

    /// Counts an error reply in INFO errorstats by its first word (for replies that reach the
    /// client later, such as a script's).
    pub fn count_error_kind(&self, e: &str) {
        let kind = e.split(' ').next().unwrap_or("ERR").to_string();
        *self.error_kinds.lock().entry(kind).or_default() += 1;
    }

    pub fn feed_monitors(&self, client: &Client, argv: &Request, name: &str) {
        self.feed_monitors_as(client.db, &client.info.addr, argv, name);
    }

    /// Shows a command on MONITOR as run from `origin` (a client's address, or `lua` for a
    /// script's calls) in database `db`.
    pub fn feed_monitors_as<A: crate::cmd::ArgList + ?Sized>(
        &self,
        db: usize,
        origin: &str,
        argv: &A,
        name: &str,
    ) {
        let now = crate::util::now_us();
        let mut line = format!(
            "{}.{:06} [{} {}]",
            now / 1_000_000,
            now % 1_000_000,
            db,
            origin
        );
        // Credentials never reach MONITOR: Redis shows them as "(redacted)".
        let redact_from = match name {
            "auth" => 1,
            "hello" => (0..argv.argc())
                .find(|&i| argv.arg(i).eq_ignore_ascii_case(b"AUTH"))
                .map_or(usize::MAX, |i| i + 1),
            _ => usize::MAX,
        };
        for i in 0..argv.argc() {
            let a = if i >= redact_from {
                &b"(redacted)"[..]
            } else {
                argv.arg(i)
            };
            line.push_str(" \"");
            for &c in a.iter() {
                match c {
                    b'\\' => line.push_str("\\\\"),
                    b'"' => line.push_str("\\\""),
                    b'\n' => line.push_str("\\n"),
                    b'\r' => line.push_str("\\r"),
                    b'\t' => line.push_str("\\t"),
                    0x20..=0x7e => line.push(c as char),
                    _ => line.push_str(&format!("\\x{c:02x}")),
                }
            }
            line.push('"');
        }
        self.clients.feed_monitors(&line);
    }

    pub fn slowlog_push(&self, client: &client::ClientInfo, argv: &[Bytes], micros: u64) {
        let max_len = self.config.live.slowlog_max_len.load(Ordering::Relaxed);
        let mut kept: Vec<Bytes> = Vec::new();
        for (i, a) in argv.iter().enumerate() {
            if i == 31 && argv.len() > 32 {
                kept.push(Bytes::from(format!(
                    "... ({} more arguments)",
                    argv.len() - 31
                )));
                break;
            }
            if a.len() > 128 {
                let mut v = a[..128].to_vec();
                v.extend_from_slice(format!("... ({} more bytes)", a.len() - 128).as_bytes());
                kept.push(Bytes::from(v));
            } else {
                kept.push(a.clone());
            }
        }
        let mut log = self.slowlog.lock();
        let id = log.next_id;
        log.next_id += 1;
        log.entries.push_front(SlowLogEntry {
            id,
            time: crate::util::now_ms() / 1000,
            micros,
            argv: kept,
            addr: client.addr.clone(),
            name: client.name.lock().clone(),
        });
        log.entries.truncate(max_len);
    }
}

impl Server {
    fn snapshot_path(&self) -> std::path::PathBuf {
        crate::persist::snapshot_path(&self.config.get("dbfilename"))
    }

    fn finish_save(
        &self,
        result: std::io::Result<()>,
        dirty_before: u64,
        started: Instant,
        entries: usize,
    ) -> Result<(), String> {
        let s = &self.saves;
        s.last_duration_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.store.dirty.fetch_sub(
                    dirty_before.min(self.store.dirty.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                s.last_save
                    .store(crate::util::now_ms() / 1000, Ordering::Relaxed);
                s.last_ok.store(true, Ordering::Relaxed);
                s.saves.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "DB saved on disk ({entries} keys, {} ms)",
                    started.elapsed().as_millis()
                );
                Ok(())
            }
            Err(e) => {
                s.last_ok.store(false, Ordering::Relaxed);
                tracing::warn!("Failed saving the DB: {e}");
                Err(format!("ERR {e}"))
            }
        }
    }

    /// SAVE: writes the snapshot now, on the caller's thread.
    pub fn save_now(&self) -> Result<(), String> {
        if self.saves.in_progress.load(Ordering::Relaxed) {
            return Err("ERR Background save already in progress".into());
        }
        let dirty_before = self.store.dirty.load(Ordering::Relaxed);
        let started = Instant::now();
        let image = crate::persist::Image::capture(&self.store, crate::util::now_ms());
        let r = crate::persist::write(&image, &self.snapshot_path());
        self.finish_save(r, dirty_before, started, image.len())
    }

    /// BGSAVE: captures the keyspace (shared references, no data copied) and writes it on a
    /// background thread. False if a save is already running.
    pub fn bgsave(self: &Arc<Self>) -> bool {
        if self.saves.in_progress.swap(true, Ordering::AcqRel) {
            return false;
        }
        let dirty_before = self.store.dirty.load(Ordering::Relaxed);
        let started = Instant::now();
        let image = crate::persist::Image::capture(&self.store, crate::util::now_ms());
        let server = self.clone();
        std::thread::spawn(move || {
            let r = crate::persist::write(&image, &server.snapshot_path());
            let _ = server.finish_save(r, dirty_before, started, image.len());
            server.saves.in_progress.store(false, Ordering::Release);
        });
        true
    }

    /// The `save` rules: (seconds, changes) pairs.
    fn save_rules(&self) -> Vec<(u64, u64)> {
        let v: Vec<u64> = self
            .config
            .get("save")
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        v.chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0], c[1]))
            .collect()
    }

    /// Closes subscribers that stayed over the soft pub/sub output limit for its seconds, even
    /// when nothing more is published to them.
    fn enforce_soft_output_limits(&self) {
        let (_, soft, secs) = self.config.pubsub_output_limit();
        if soft == 0 {
            return;
        }
        let now = crate::util::now_ms();
        for c in self.clients.snapshot() {
            let since = c.soft_since_ms.load(Ordering::Relaxed);
            if since != 0
                && c.pending_out.load(Ordering::Relaxed) > soft
                && now.saturating_sub(since) >= secs * 1000
                && !c.is_killed()
            {
                tracing::warn!(
                    "Client id={} addr={} closed for overcoming of output buffer limits.",
                    c.id,
                    c.addr
                );
                c.send(client::Control::Kill);
            }
        }
    }

    /// Starts an AOF rewrite when the file has grown past the `auto-aof-rewrite-*` thresholds.
    fn check_aof_rewrite(&self) {
        let pct = self.config.get_i64("auto-aof-rewrite-percentage").max(0) as u64;
        let min = self.config.get_i64("auto-aof-rewrite-min-size").max(0) as u64;
        if self.aof.rewrite_due(pct, min) {
            let base = self.aof.stats.base_size.load(Ordering::Relaxed).max(1);
            let size = self.aof.stats.current_size.load(Ordering::Relaxed);
            tracing::info!(
                "Starting automatic rewriting of AOF on {}% growth",
                size.saturating_sub(base) * 100 / base
            );
            let _ = self.aof.start_rewrite(&self.store, false);
        }
    }

    /// Starts a background save when a `save <seconds> <changes>` rule is due.
    fn check_save_rules(self: &Arc<Self>) {
        let dirty = self.store.dirty.load(Ordering::Relaxed);
        if dirty == 0 || self.saves.in_progress.load(Ordering::Relaxed) {
            return;
        }
        let since = (crate::util::now_ms() / 1000)
            .saturating_sub(self.saves.last_save.load(Ordering::Relaxed));
        if self
            .save_rules()
            .iter()
            .any(|&(secs, changes)| dirty >= changes && since >= secs)
        {
            tracing::info!("{dirty} changes in {since} seconds. Saving...");
            self.bgsave();
        }
    }

    /// Loads the dataset at start-up: the AOF when `appendonly` is on and one exists, else the
    /// snapshot (and, with `appendonly` on, a first AOF is made from it). A bad file stops the
    /// start with its name and the offset of the problem; nothing is half-loaded silently.
    pub async fn load_data(self: &Arc<Self>) -> Result<(), String> {
        self.loading.store(true, Ordering::Relaxed);
        let mut r = self.load_data_inner().await;
        if r.is_ok() && !self.config.get("import-rdb").is_empty() {
            r = self.import_rdb();
        }
        self.loading.store(false, Ordering::Relaxed);
        if r.is_ok() {
            // Jobs that were running when the data was saved go on from their checkpoints.
            crate::jobs::resume_all(self);
        }
        r
    }

    async fn load_data_inner(self: &Arc<Self>) -> Result<(), String> {
        self.saves
            .last_save
            .store(crate::util::now_ms() / 1000, Ordering::Relaxed);
        self.saves.last_ok.store(true, Ordering::Relaxed);
        let aof_on = self.config.get("appendonly") == "yes";
        let manifest_path = self.aof.manifest_path();
        if aof_on && manifest_path.exists() {
            let manifest = crate::persist::aof::load_manifest(&manifest_path)?;
            self.load_aof(&manifest).await?;
            return self
                .aof
                .resume(manifest)
                .map_err(|e| format!("Can't open the append only file for appending: {e}"));
        }
        self.load_snapshot()?;
        if aof_on {
            // The first start with the AOF on: its base is the data just loaded.
            let writer = self.aof.start_rewrite(&self.store, true)?;
            let _ = writer.join();
            // Creating the file is not one of the rewrites INFO counts.
            let _ =
                self.aof
                    .stats
                    .rewrites
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            if !self.aof.stats.last_rewrite_ok.load(Ordering::Relaxed) {
                return Err(format!(
                    "Can't create the append only file in '{}'",
                    self.aof.dir().display()
                ));
            }
        }
        Ok(())
    }

    /// Loads the keys of the RDB file `import-rdb` names over the data loaded so far (Redis's
    /// types, RedisAI's tensors and models, function libraries), then makes them durable: a
    /// rewrite of the AOF when it is on, else a snapshot.
    fn import_rdb(self: &Arc<Self>) -> Result<(), String> {
        use crate::persist::migrate::{self, Restored};
        let path = std::path::PathBuf::from(self.config.get("import-rdb"));
        let started = Instant::now();
        let bad = |e: String| format!("Can't import the RDB file '{}': {e}", path.display());
        let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
        let skip = self.config.get("import-skip-unknown") == "yes";
        let now = crate::util::now_ms();
        let report = migrate::import_rdb(
            &bytes,
            skip,
            now,
            |db, key, restored, expire_at, idle, freq| {
                if db >= self.store.db_count() {
                    return Err(format!(
                        "the file uses database {db} but only {} are configured",
                        self.store.db_count()
                    ));
                }
                let value = match restored {
                    Restored::Value(v) => v,
                    Restored::Model(loaded) => {
                        match crate::persist::materialize(&self.store, &self.engine, loaded)? {
                            Some((_, _, entry)) => entry.value,
                            None => return Err("not a key".into()),
                        }
                    }
                };
                let entry = crate::store::Entry::with_expiry(value, expire_at);
                entry.set_lru_or_lfu(freq, idle);
                self.store
                    .db(db)
                    .write(&key)
                    .insert(key.clone(), entry, now);
                Ok(())
            },
        )
        .map_err(bad)?;
        if !report.functions.is_empty() {
            self.store
                .function_libraries
                .write()
                .extend(report.functions.iter().map(|c| Bytes::from(c.clone())));
            self.scripting.restore_saved(self).map_err(bad)?;
        }
        for (name, count) in &report.skipped {
            tracing::warn!("import: left out {count} keys of the unknown module type '{name}'");
        }
        tracing::info!(
            "Imported {} keys ({} models, {} functions; {} expired left out) from RDB version {} file '{}' in {:.3} seconds",
            report.keys,
            report.models,
            report.functions.len(),
            report.expired,
            report.rdb_version,
            path.display(),
            started.elapsed().as_secs_f64()
        );
        self.store.add_dirty(report.keys);
        if self.config.get("appendonly") == "yes" {
            let writer = self.aof.start_rewrite(&self.store, false)?;
            let _ = writer.join();
        } else if self.config.get("save").is_empty() {
            tracing::warn!("import: saving is off; the imported keys live in memory only");
        } else {
            let image = crate::persist::Image::capture(&self.store, now);
            crate::persist::write(&image, &self.snapshot_path()).map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }

    /// Loads the snapshot file, if there is one.
    fn load_snapshot(self: &Arc<Self>) -> Result<(), String> {
        let path = self.snapshot_path();
        if !path.exists() {
            return Ok(());
        }
        let started = Instant::now();
        let records = crate::persist::read(&path)
            .map_err(|e| format!("Bad snapshot file '{}': {e}", path.display()))?;
        let n = crate::persist::apply(&self.store, &self.engine, records, false)
            .map_err(|e| format!("Bad snapshot file '{}': {e}", path.display()))?;
        self.scripting
            .restore_saved(self)
            .map_err(|e| format!("Bad snapshot file '{}': {e}", path.display()))?;
        tracing::info!(
            "DB loaded from disk: {n} keys in {:.3} seconds",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Loads the base snapshot and replays the incremental files the manifest names. A record
    /// cut short at the end of the last file is cut off when `aof-load-truncated` is on.
    async fn load_aof(
        self: &Arc<Self>,
        manifest: &crate::persist::aof::Manifest,
    ) -> Result<(), String> {
        use crate::persist::aof::{self, ReadError};
        let started = Instant::now();
        let dir = self.aof.dir();
        if let Some(base) = &manifest.base {
            let path = dir.join(&base.file);
            let records = crate::persist::read(&path)
                .map_err(|e| format!("Bad AOF base file '{}': {e}", path.display()))?;
            crate::persist::apply(&self.store, &self.engine, records, true)
                .map_err(|e| format!("Bad AOF base file '{}': {e}", path.display()))?;
            self.scripting
                .restore_saved(self)
                .map_err(|e| format!("Bad AOF base file '{}': {e}", path.display()))?;
        }
        let (mut client, _ctrl) = self.clients.register(
            "aof-loader".into(),
            String::new(),
            -1,
            false,
            crate::acl::internal_user(),
            true,
        );
        client.perms_epoch = client::INTERNAL;
        let mut replayed = 0u64;
        let result = async {
            for (i, part) in manifest.incrs.iter().enumerate() {
                let last = i + 1 == manifest.incrs.len();
                let path = dir.join(&part.file);
                let data = aof::map_file(&path).map_err(|e| {
                    format!("Can't open the append only file '{}': {e}", path.display())
                })?;
                let mut torn = None;
                for record in aof::records(&data) {
                    let record = match record {
                        Ok(r) => r,
                        Err(ReadError::Truncated { offset }) if last => {
                            torn = Some(offset);
                            break;
                        }
                        Err(e) => {
                            return Err(format!(
                                "Bad file format reading the append only file '{}': {e}",
                                path.display()
                            ))
                        }
                    };
                    if record.db >= self.store.db_count() {
                        return Err(format!(
                            "Bad record at offset {} of the append only file '{}': database {} but only {} are configured",
                            record.offset,
                            path.display(),
                            record.db,
                            self.store.db_count()
                        ));
                    }
                    // A record starts in its database; SELECTs inside it (from EXEC) move on.
                    client.select(record.db);
                    for ranges in &record.commands {
                        let req = Request::from_ranges(data.clone(), ranges);
                        let deferred = self
                            .replay(&mut client, record.now, req)
                            .map_err(|e| {
                                format!(
                                    "Bad record at offset {} of the append only file '{}': {e}",
                                    record.offset,
                                    path.display()
                                )
                            })?;
                        if let Some(fut) = deferred {
                            if let Reply::Error(e) = fut.await {
                                return Err(format!(
                                    "Replaying the record at offset {} of '{}' failed: {e}",
                                    record.offset,
                                    path.display()
                                ));
                            }
                        }
                        replayed += 1;
                    }
                }
                drop(data);
                if let Some(offset) = torn {
                    if self.config.get("aof-load-truncated") != "yes" {
                        return Err(format!(
                            "Bad file format reading the append only file '{}': truncated record at offset {offset}. Run 'locus-check --fix {}' to cut it off, or set aof-load-truncated yes",
                            path.display(),
                            path.display()
                        ));
                    }
                    tracing::warn!(
                        "!!! Warning: short read while loading the AOF file '{}' at offset {offset}! AOF loaded anyway because aof-load-truncated is enabled; the torn record is cut off.",
                        path.display()
                    );
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(offset))
                        .map_err(|e| format!("Can't truncate '{}': {e}", path.display()))?;
                }
            }
            Ok(())
        }
        .await;
        self.clients.unregister(client.id);
        result?;
        tracing::info!(
            "DB loaded from append only file: {replayed} commands replayed in {:.3} seconds",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// The engine's settings from the server configuration.
pub fn engine_config(config: &Config) -> crate::engine::EngineConfig {
    let path = |name: &str| {
        Some(config.get(name))
            .filter(|s| !s.is_empty())
            .map(std::path::PathBuf::from)
    };
    crate::engine::EngineConfig {
        threads_per_queue: config.get_i64("threads-per-queue").max(1) as usize,
        intra_op_parallelism: config.get_i64("intra-op-parallelism").max(0) as usize,
        inter_op_parallelism: config.get_i64("inter-op-parallelism").max(0) as usize,
        model_execution_timeout_ms: config.get_i64("model-execution-timeout").max(0) as u64,
        backend_memory_limit_mb: config.get_i64("backend-memory-limit").max(0) as u64,
        model_chunk_size: config.get_i64("model-chunk-size").max(1) as usize,
        backends_path: path("backendspath"),
        library: path("onnxruntime-library"),
    }
}

impl Server {
    /// Applies CONFIG SET changes of engine settings that may change at run time.
    pub fn sync_engine_config(&self) {
        let fresh = engine_config(&self.config);
        let mut c = self.engine.config.write();
        c.model_execution_timeout_ms = fresh.model_execution_timeout_ms;
        c.model_chunk_size = fresh.model_chunk_size;
        if fresh.backends_path.is_some() {
            c.backends_path = fresh.backends_path;
        }
    }
}

/// The result of executing one request.
pub enum Outcome {
    Reply(Reply),
    Deferred(Deferred),
}

impl Outcome {
    /// Whether the reply is pub/sub pushes (SUBSCRIBE's notices and the like).
    fn is_push(&self) -> bool {
        match self {
            Outcome::Reply(Reply::Push(_)) => true,
            Outcome::Reply(Reply::Many(v)) => {
                !v.is_empty() && v.iter().all(|r| matches!(r, Reply::Push(_)))
            }
            _ => false,
        }
    }
}

/// The TCP accept loops and what starting new ones needs.
struct Listeners {
    runtime: tokio::runtime::Handle,
    pool: Arc<io_pool::IoPool>,
    accept: Vec<tokio::task::AbortHandle>,
}

/// Binds `port` on every address of a `bind` setting (`-addr` is optional: skipped when it
/// cannot be bound, as Redis does).
fn bind_tcp(bind: &str, port: u16) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::new();
    for addr in bind.split_whitespace() {
        let (optional, addr) = match addr.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, addr),
        };
        let addr = if addr == "*" { "0.0.0.0" } else { addr };
        let sock = if addr.contains(':') {
            format!("[{addr}]:{port}")
        } else {
            format!("{addr}:{port}")
        };
        let bound = sock
            .parse::<std::net::SocketAddr>()
            .map_err(std::io::Error::other)
            .and_then(|a| {
                let s = socket2::Socket::new(
                    socket2::Domain::for_address(a),
                    socket2::Type::STREAM,
                    None,
                )?;
                s.set_reuse_address(true)?;
                if a.is_ipv6() {
                    s.set_only_v6(true)?;
                }
                s.bind(&a.into())?;
                s.listen(511)?;
                s.set_nonblocking(true)?;
                Ok(std::net::TcpListener::from(s))
            });
        match bound {
            Ok(l) => {
                tracing::info!("Ready to accept connections tcp on {sock}");
                out.push(l)
            }
            Err(e) if optional => tracing::debug!("optional bind {sock} skipped: {e}"),
            Err(e) => {
                tracing::error!("Could not create server TCP listening socket {sock}: {e}");
                return Err(e);
            }
        }
    }
    Ok(out)
}

impl Server {
    /// Starts accept loops on `listeners` (bound to `port`) and stops the previous ones.
    fn listen_tcp(self: &Arc<Self>, listeners: Vec<std::net::TcpListener>, port: u16) {
        let mut guard = self.tcp_listeners.lock();
        let Some(l) = guard.as_mut() else {
            return;
        };
        let mut accept = Vec::new();
        for std_listener in listeners {
            let (server, pool) = (self.clone(), l.pool.clone());
            let task = l.runtime.spawn(async move {
                match TcpListener::from_std(std_listener) {
                    Ok(listener) => connection::accept_tcp(server, pool, listener).await,
                    Err(e) => tracing::error!("listener: {e}"),
                }
            });
            accept.push(task.abort_handle());
        }
        for old in std::mem::replace(&mut l.accept, accept) {
            old.abort();
        }
        self.tcp_port.store(port, Ordering::Relaxed);
    }

    /// CONFIG SET port: binds the new port on every `bind` address first, and only then closes
    /// the old listeners, so a port that cannot be bound leaves the server as it was. Connected
    /// clients stay connected. Port 0 closes TCP.
    pub fn rebind_tcp(self: &Arc<Self>, port: u16) -> Result<(), String> {
        let listeners = if port == 0 {
            Vec::new()
        } else {
            let l = bind_tcp(&self.config.get("bind"), port).map_err(|e| e.to_string())?;
            if l.is_empty() {
                return Err("no address could be bound".into());
            }
            l
        };
        self.listen_tcp(listeners, port);
        Ok(())
    }
}

/// Binds the configured listeners and serves until shutdown. Returns when every listener has
/// stopped and connections have drained (or a grace period passed).
pub async fn serve(server: Arc<Server>, pool: Arc<io_pool::IoPool>) -> std::io::Result<()> {
    // Take over SIGTERM and SIGINT before any socket is bound: a client that can connect may
    // signal at once, and the default action would kill the process without its final save.
    let terminate = signal(tokio::signal::unix::SignalKind::terminate());
    let interrupt = signal(tokio::signal::unix::SignalKind::interrupt());
    let port = server.config.get_i64("port") as u16;
    let tcp = if port != 0 {
        bind_tcp(&server.config.get("bind"), port)?
    } else {
        Vec::new()
    };
    let unix_path = server.config.get("unixsocket");
    let unix = if unix_path.is_empty() {
        None
    } else {
        let _ = std::fs::remove_file(&unix_path);
        let l = UnixListener::bind(&unix_path)?;
        let perm = server.config.get_i64("unixsocketperm");
        if perm != 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&unix_path, std::fs::Permissions::from_mode(perm as u32))?;
        }
        tracing::info!("Ready to accept connections unix on {unix_path}");
        Some(l)
    };
    let tls_port = server.config.get_i64("tls-port") as u16;
    if tls::wanted(&server.config) {
        server.reload_tls().map_err(std::io::Error::other)?;
    }
    let tls_listeners = if tls_port != 0 {
        bind_tcp(&server.config.get("bind"), tls_port)?
    } else {
        Vec::new()
    };
    if tcp.is_empty() && unix.is_none() && tls_listeners.is_empty() {
        return Err(std::io::Error::other(
            "no listening sockets (port 0 and no unixsocket)",
        ));
    }

    crate::http::start(&server).map_err(std::io::Error::other)?;
    let mut tasks = Vec::new();
    let has_tcp = !tcp.is_empty();
    *server.tcp_listeners.lock() = Some(Listeners {
        runtime: tokio::runtime::Handle::current(),
        pool: pool.clone(),
        accept: Vec::new(),
    });
    if has_tcp {
        server.listen_tcp(tcp, port);
    }
    for l in tls_listeners {
        tasks.push(tokio::spawn(connection::accept_tls(
            server.clone(),
            pool.clone(),
            TcpListener::from_std(l)?,
        )));
    }
    if tls_port != 0 {
        tracing::info!("Ready to accept TLS connections on port {tls_port}");
    }
    if let Some(l) = unix {
        tasks.push(tokio::spawn(connection::accept_unix(
            server.clone(),
            pool.clone(),
            l,
        )));
    }
    tokio::spawn(cron(server.clone()));
    let writer = {
        let server = server.clone();
        std::thread::Builder::new()
            .name("aof-writer".into())
            .spawn(move || aof_writer(&server))?
    };
    // Find (or provision) ONNX Runtime now, so the first MODELSTORE does not wait for it and
    // the log says where it came from.
    let engine = server.engine.clone();
    std::thread::spawn(move || {
        if let Err(e) = engine.onnx(None) {
            tracing::warn!("{e}");
        }
    });

    let mut stop = server.shutdown.subscribe();
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {}
        _ = terminate.recv() => tracing::warn!("Received SIGTERM scheduling shutdown..."),
        _ = interrupt.recv() => tracing::warn!("Received SIGINT scheduling shutdown..."),
    }
    server.shutdown.trigger();
    for t in tasks {
        t.abort();
    }
    if let Some(l) = server.tcp_listeners.lock().take() {
        for t in l.accept {
            t.abort();
        }
    }
    // Save on the way out when asked to, or when save rules are configured (as Redis does).
    let save = match server.shutdown_save.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => !server.save_rules().is_empty(),
    };
    if save {
        tracing::warn!("Saving the final snapshot before exiting.");
        while server.saves.in_progress.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(e) = server.save_now() {
            tracing::error!("Error trying to save the DB, can't exit: {e}");
        }
    }
    // Let connections answer what they are processing, then close them.
    server.clients.kill_all();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.clients.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !unix_path.is_empty() {
        let _ = std::fs::remove_file(&unix_path);
    }
    let _ = writer.join();
    if server.aof.is_enabled() {
        if let Err(e) = server.aof.flush(true) {
            tracing::error!("Error writing the append only file on exit: {e}");
        }
    }
    tracing::warn!("Locus is now ready to exit, bye bye...");
    Ok(())
}

/// A registered signal stream, or none when the handler cannot be installed (then the signal
/// keeps its default action and `recv` never completes).
struct Signal(Option<tokio::signal::unix::Signal>);

impl Signal {
    async fn recv(mut self) {
        match self.0.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Signal {
    Signal(tokio::signal::unix::signal(kind).ok())
}

/// Writes AOF records out every millisecond (fsyncing once a second under `everysec`), so the
/// command path only appends to memory.
fn aof_writer(server: &Server) {
    while !server.shutdown.is_triggered() {
        let idle = if server.aof.is_enabled() { 1 } else { 20 };
        std::thread::sleep(Duration::from_millis(idle));
        server.aof.tick();
    }
}

/// Background housekeeping at `hz`: active expiry in small steps so that no client waits long.
async fn cron(server: Arc<Server>) {
    let mut cursor = 0usize;
    loop {
        let hz = server.config.get_i64("hz").clamp(1, 500) as u64;
        tokio::time::sleep(Duration::from_millis(1000 / hz)).await;
        if server.shutdown.is_triggered() {
            return;
        }
        // Sweep a slice of all shards each tick: the whole keyspace every ~second at hz 10.
        let budget = (server.store.db_count() * crate::store::SHARDS / hz as usize).max(16);
        crate::util::resync_clock();
        server.sample_metrics();
        server.check_save_rules();
        server.check_aof_rewrite();
        server.enforce_soft_output_limits();
        crate::cmd::routers::check_queue_depths(&server);
        crate::error_alerts::check(&server);
        cursor = server
            .store
            .active_expire_step(cursor, budget, crate::util::now_ms());
        if crate::tracking::active() {
            let max = server.config.get_i64("tracking-table-max-keys").max(0) as usize;
            crate::tracking::limit_table(max);
            crate::tracking::broadcast();
        }
    }
}

/// A connection's client, not one the server runs commands with on its own behalf (a blocked
/// client's retries).
fn client_is_external(client: &Client) -> bool {
    client.perms_epoch != client::INTERNAL
}
