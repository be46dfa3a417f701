//! Per-connection state: the part only the connection touches ([`Client`]) and the part other
//! connections read or signal through CLIENT LIST / KILL and MONITOR ([`ClientInfo`]).

use super::reply::Reply;
use crate::cmd::Command;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Messages other parts of the server send to a connection.
#[derive(Debug)]
pub enum Control {
    /// Close the connection (CLIENT KILL, output limit, shutdown).
    Kill,
    /// Deliver an out-of-band reply (MONITOR lines).
    Push(Reply),
    /// A pub/sub message and the bytes it was counted as against the output limit.
    Message(Reply, usize),
    /// A client-side caching invalidation. A connection waiting for a reply sends it after
    /// the reply, as Redis answers a command before the invalidations it caused.
    Invalidate(Reply),
}

/// CLIENT REPLY modes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReplyMode {
    On,
    Off,
    /// Suppress the reply of the next command only.
    Skip,
    /// The command running now is the one SKIP applies to (CLIENT REPLY ON in it still
    /// answers, as in Redis).
    Skipping,
}

/// What other connections can see of a client.
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    pub created_ms: u64,
    pub name: Mutex<Bytes>,
    /// The ACL user the connection is authenticated as (CLIENT LIST `user=`).
    pub user: Mutex<Bytes>,
    pub lib_name: Mutex<Bytes>,
    pub lib_ver: Mutex<Bytes>,
    pub db: AtomicUsize,
    pub last_ms: AtomicU64,
    /// `Command::id + 1` of the last command, 0 before the first.
    pub last_cmd: AtomicUsize,
    pub resp: AtomicU8,
    pub qbuf: AtomicUsize,
    pub monitor: AtomicBool,
    pub no_evict: AtomicBool,
    pub unix: bool,
    /// Channels and patterns subscribed to (CLIENT LIST sub / psub).
    pub subs: AtomicUsize,
    pub psubs: AtomicUsize,
    /// Pub/sub bytes queued for this connection and not yet written out.
    pub pending_out: AtomicUsize,
    /// When the pending bytes went over the soft output limit (0: they are not).
    pub soft_since_ms: AtomicU64,
    /// CLIENT TRACKING flags (`crate::tracking::ON` …; 0: off) and the client invalidations
    /// are redirected to (0: none).
    pub tracking: AtomicU32,
    pub tracking_redirect: AtomicU64,
    killed: AtomicBool,
    /// Wakes a connection stuck writing to a client that does not read, when it is killed.
    pub kill_signal: tokio::sync::Notify,
    ctrl: mpsc::UnboundedSender<Control>,
}

impl ClientInfo {
    pub fn send(&self, c: Control) {
        if matches!(c, Control::Kill) {
            self.killed.store(true, Ordering::Relaxed);
            self.kill_signal.notify_one();
        }
        let _ = self.ctrl.send(c);
    }

    /// The client class CLIENT LIST / KILL TYPE use: `pubsub` while subscribed.
    pub fn client_type(&self) -> &'static str {
        if self.subs.load(Ordering::Relaxed) + self.psubs.load(Ordering::Relaxed) > 0 {
            "pubsub"
        } else {
            "normal"
        }
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// The connection is closing (QUIT): nothing more is sent to it, though its last reply
    /// still goes out.
    pub fn mark_closing(&self) {
        self.killed.store(true, Ordering::Relaxed);
    }

    /// One CLIENT LIST / CLIENT INFO line, in Redis 7's field order.
    pub fn describe(&self, server: &super::Server) -> String {
        let now = crate::util::now_ms();
        let cmd = match self.last_cmd.load(Ordering::Relaxed) {
            0 => "NULL".to_string(),
            n => server
                .commands
                .by_id(n - 1)
                .map(|c| c.name.clone())
                .unwrap_or_else(|| "NULL".into()),
        };
        let mut flags = String::new();
        // Redis's order: O P t R B U e.
        if self.monitor.load(Ordering::Relaxed) {
            flags.push('O');
        }
        if self.client_type() == "pubsub" {
            flags.push('P');
        }
        let tracking = self.tracking.load(Ordering::Relaxed);
        if tracking & crate::tracking::ON != 0 {
            flags.push('t');
        }
        if tracking & crate::tracking::BROKEN_REDIRECT != 0 {
            flags.push('R');
        }
        if tracking & crate::tracking::BCAST != 0 {
            flags.push('B');
        }
        if self.unix {
            flags.push('U');
        }
        if self.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let qbuf = self.qbuf.load(Ordering::Relaxed);
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi=-1 qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem=0 tot-mem={} events=r cmd={} user={} redir={} resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            String::from_utf8_lossy(&self.name.lock()),
            now.saturating_sub(self.created_ms) / 1000,
            now.saturating_sub(self.last_ms.load(Ordering::Relaxed)) / 1000,
            flags,
            self.db.load(Ordering::Relaxed),
            self.subs.load(Ordering::Relaxed),
            self.psubs.load(Ordering::Relaxed),
            qbuf,
            16384usize.saturating_sub(qbuf),
            qbuf + 16384 * 2,
            cmd,
            String::from_utf8_lossy(&self.user.lock()),
            match tracking & crate::tracking::ON {
                0 => -1,
                _ => self.tracking_redirect.load(Ordering::Relaxed) as i64,
            },
            self.resp.load(Ordering::Relaxed),
            String::from_utf8_lossy(&self.lib_name.lock()),
            String::from_utf8_lossy(&self.lib_ver.lock()),
        )
    }
}

/// The time base of one batch of pipelined requests: the wall clock read once for the batch
/// (what commands see as "now", as Redis caches its clock) and the monotonic instant the
/// previous command ended, so that timing a command costs one clock reading.
pub struct BatchClock {
    pub now_ms: u64,
    pub last: quanta::Instant,
}

impl BatchClock {
    pub fn new() -> Self {
        let last = crate::util::instant();
        BatchClock {
            now_ms: crate::util::wall_ms_at(last),
            last,
        }
    }
}

impl Default for BatchClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Statistics gathered by one connection and published once per batch, so that pipelined
/// commands on many cores do not contend on shared counters.
#[derive(Default)]
pub struct LocalStats {
    pub processed: u64,
    pub errors: u64,
    /// (command id, calls, nanoseconds, failures, calls not timed one by one)
    per_command: Vec<(usize, u64, u64, u64, u64)>,
    /// Time spent in individually timed commands this batch.
    timed_ns: u64,
    untimed: u64,
}

impl LocalStats {
    /// Records a call; `nanos` is `None` for a fast command not timed on its own (it gets a
    /// share of its batch's time in [`LocalStats::share_batch_time`]). A timed call goes into
    /// its command's latency histogram at once (its thread's own shard).
    pub fn record(&mut self, cmd: &Command, nanos: Option<u64>, failed: bool) {
        if let Some(ns) = nanos {
            if crate::cmd::table::latency_tracking() {
                cmd.stats.latency.observe(ns);
            }
        }
        self.count(cmd, nanos, failed);
    }

    /// Records a call that answers later (a script, a model run): its time is added when
    /// it answers (see `Server::execute_inner`).
    pub fn record_later(&mut self, cmd: &Command) {
        self.count(cmd, Some(0), false);
    }

    fn count(&mut self, cmd: &Command, nanos: Option<u64>, failed: bool) {
        let untimed = nanos.is_none() as u64;
        let ns = nanos.unwrap_or(0);
        self.timed_ns += ns;
        self.untimed += untimed;
        match self.per_command.iter_mut().find(|e| e.0 == cmd.id) {
            Some(e) => {
                e.1 += 1;
                e.2 += ns;
                e.3 += failed as u64;
                e.4 += untimed;
            }
            None => self
                .per_command
                .push((cmd.id, 1, ns, failed as u64, untimed)),
        }
    }

    /// Spreads a batch's time, less what timed commands took, over its untimed commands;
    /// each of them is recorded in its command's histogram at that share.
    pub fn share_batch_time(&mut self, batch_ns: u64, server: &super::Server) {
        let rest = batch_ns.saturating_sub(self.timed_ns);
        let each = rest.checked_div(self.untimed).unwrap_or(0);
        let histograms = crate::cmd::table::latency_tracking();
        for e in self.per_command.iter_mut().filter(|e| e.4 > 0) {
            e.2 += each * e.4;
            if histograms {
                if let Some(cmd) = server.commands.by_id(e.0) {
                    cmd.stats.latency.observe_n(each, e.4);
                }
            }
            e.4 = 0;
        }
        self.timed_ns = 0;
        self.untimed = 0;
    }

    /// Adds what was gathered to the server-wide counters.
    pub fn flush(&mut self, server: &super::Server) {
        if self.processed > 0 {
            server
                .stats
                .commands_processed
                .fetch_add(self.processed, Ordering::Relaxed);
            self.processed = 0;
        }
        if self.errors > 0 {
            server
                .stats
                .error_replies
                .fetch_add(self.errors, Ordering::Relaxed);
            self.errors = 0;
        }
        for (id, calls, ns, failed, _) in self.per_command.drain(..) {
            let Some(cmd) = server.commands.by_id(id) else {
                continue;
            };
            cmd.stats.calls.fetch_add(calls, Ordering::Relaxed);
            cmd.stats.add_nanos(ns);
            if failed > 0 {
                cmd.stats.failed.fetch_add(failed, Ordering::Relaxed);
            }
        }
        self.timed_ns = 0;
        self.untimed = 0;
    }
}

/// The connection's own state.
pub struct Client {
    pub clock: BatchClock,
    pub stats: LocalStats,
    /// `Command::id + 1` of the last command, published to [`ClientInfo`] once per batch.
    pub last_cmd: usize,
    /// The last top-level command run, tried first when resolving the next request.
    pub last_command: Option<Arc<Command>>,
    pub id: u64,
    pub db: usize,
    pub proto: u8,
    pub authenticated: bool,
    /// The ACL user, and its rules as of `perms_epoch` (re-read when the ACL epoch moves).
    pub user: Arc<crate::acl::User>,
    pub perms: Arc<crate::acl::rules::UserRules>,
    /// `INTERNAL` for the server's own clients, which no ACL restricts.
    pub perms_epoch: u64,
    pub close_after_reply: bool,
    pub reply_mode: ReplyMode,
    pub info: Arc<ClientInfo>,
    /// The AOF record of this client's last write: under `appendfsync always` its replies wait
    /// until that record is on disk.
    pub aof_seq: u64,
    /// Commands queued since MULTI.
    pub multi: Option<Multi>,
    /// Keys under WATCH: (database, key, version when watched, whether it was expired then).
    pub watched: Vec<Watched>,
    /// Pub/sub channels and patterns subscribed to.
    pub channels: std::collections::HashSet<Bytes, ahash::RandomState>,
    pub patterns: std::collections::HashSet<Bytes, ahash::RandomState>,
}

/// A transaction being queued.
#[derive(Default)]
pub struct Multi {
    pub queue: Vec<(Arc<Command>, super::protocol::Request, usize)>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub failed: bool,
}

pub struct Watched {
    pub db: usize,
    pub key: Bytes,
    pub version: u64,
    pub expired: bool,
}

impl Client {
    /// Starts a batch of requests: reads the clocks once; the batch's time is the client's
    /// last interaction (CLIENT LIST's idle).
    pub fn begin_batch(&mut self) {
        self.clock = BatchClock::new();
        self.info
            .last_ms
            .store(self.clock.now_ms, Ordering::Relaxed);
    }

    /// Ends a batch: publishes statistics and what CLIENT LIST shows. Returns the clock
    /// reading it took, for the event loop's own bookkeeping.
    pub fn end_batch(&mut self, server: &super::Server) -> quanta::Instant {
        let now = crate::util::instant();
        let batch_ns = now.duration_since(self.clock.last).as_nanos() as u64;
        self.stats.share_batch_time(batch_ns, server);
        self.stats.flush(server);
        self.info.last_cmd.store(self.last_cmd, Ordering::Relaxed);
        now
    }

    /// Publishes the batch's statistics so far, its untimed commands sharing the time since
    /// the batch began (for a command that reads statistics mid-batch: INFO, CLIENT LIST).
    pub fn settle_stats(&mut self, server: &super::Server) {
        let now = crate::util::instant();
        let ns = now.duration_since(self.clock.last).as_nanos() as u64;
        self.clock.last = now;
        self.stats.share_batch_time(ns, server);
        self.stats.flush(server);
    }

    /// Subscribed to a channel or a pattern (RESP2 then allows only pub/sub commands).
    /// Runs as `user` from now on (AUTH, HELLO AUTH, an HTTP request's credentials).
    pub fn set_user(&mut self, user: Arc<crate::acl::User>) {
        *self.info.user.lock() = user.name.clone();
        self.perms = user.rules();
        self.user = user;
        self.perms_epoch = 0;
    }

    /// Re-reads the user's rules when any user changed since the last look. Returns false
    /// when the user was deleted: the connection is to be closed.
    pub fn refresh_perms(&mut self, acl: &crate::acl::Acl) -> bool {
        if self.perms_epoch == INTERNAL {
            return true;
        }
        let epoch = acl.epoch.load(Ordering::Acquire);
        if epoch != self.perms_epoch {
            self.perms_epoch = epoch;
            if self.user.removed.load(Ordering::Relaxed) {
                return false;
            }
            self.perms = self.user.rules();
        }
        true
    }

    pub fn subscribed(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty()
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.info.db.store(db, Ordering::Relaxed);
    }

    pub fn set_proto(&mut self, proto: u8) {
        self.proto = proto;
        self.info.resp.store(proto, Ordering::Relaxed);
    }
}

/// `Client::perms_epoch` of the server's own clients (blocked retries, jobs, scripts run on
/// the server's behalf): no ACL check applies to them.
pub const INTERNAL: u64 = u64::MAX;

/// Every live connection, by id (CLIENT LIST order).
#[derive(Default)]
pub struct ClientRegistry {
    clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    next_id: AtomicU64,
    /// MONITOR subscribers; the counter lets the hot path skip the lock when there are none.
    monitors: Mutex<Vec<Arc<ClientInfo>>>,
    pub monitor_count: AtomicUsize,
}

impl ClientRegistry {
    /// Registers a new connection and returns its state and control channel.
    pub fn register(
        &self,
        addr: String,
        laddr: String,
        fd: i32,
        unix: bool,
        user: Arc<crate::acl::User>,
        authenticated: bool,
    ) -> (Client, mpsc::UnboundedReceiver<Control>) {
        let (client, rx) = self.new_client(addr, laddr, fd, unix, user, authenticated);
        self.clients.lock().insert(client.id, client.info.clone());
        (client, rx)
    }

    /// A client that is not listed (CLIENT LIST), for commands the server runs on its own
    /// behalf: a blocked client's retries.
    pub fn detached(&self, db: usize) -> Client {
        let mut c = self
            .new_client(
                "internal".into(),
                String::new(),
                -1,
                false,
                crate::acl::internal_user(),
                true,
            )
            .0;
        c.perms_epoch = INTERNAL;
        c.select(db);
        c
    }

    fn new_client(
        &self,
        addr: String,
        laddr: String,
        fd: i32,
        unix: bool,
        user: Arc<crate::acl::User>,
        authenticated: bool,
    ) -> (Client, mpsc::UnboundedReceiver<Control>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let now = crate::util::now_ms();
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            fd,
            created_ms: now,
            name: Mutex::new(Bytes::new()),
            user: Mutex::new(user.name.clone()),
            lib_name: Mutex::new(Bytes::new()),
            lib_ver: Mutex::new(Bytes::new()),
            db: AtomicUsize::new(0),
            last_ms: AtomicU64::new(now),
            last_cmd: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            qbuf: AtomicUsize::new(0),
            monitor: AtomicBool::new(false),
            no_evict: AtomicBool::new(false),
            unix,
            subs: AtomicUsize::new(0),
            psubs: AtomicUsize::new(0),
            pending_out: AtomicUsize::new(0),
            soft_since_ms: AtomicU64::new(0),
            tracking: AtomicU32::new(0),
            tracking_redirect: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            kill_signal: tokio::sync::Notify::new(),
            ctrl: tx,
        });
        let client = Client {
            clock: BatchClock::new(),
            stats: LocalStats::default(),
            last_cmd: 0,
            last_command: None,
            id,
            db: 0,
            proto: 2,
            authenticated,
            perms: user.rules(),
            user,
            perms_epoch: 0,
            close_after_reply: false,
            reply_mode: ReplyMode::On,
            info,
            aof_seq: 0,
            multi: None,
            watched: Vec::new(),
            channels: Default::default(),
            patterns: Default::default(),
        };
        (client, rx)
    }

    pub fn unregister(&self, id: u64) {
        if let Some(info) = self.clients.lock().remove(&id) {
            if info.monitor.load(Ordering::Relaxed) {
                self.stop_monitor(id);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn snapshot(&self) -> Vec<Arc<ClientInfo>> {
        self.clients.lock().values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.clients.lock().get(&id).cloned()
    }

    pub fn start_monitor(&self, info: Arc<ClientInfo>) {
        info.monitor.store(true, Ordering::Relaxed);
        let mut m = self.monitors.lock();
        m.push(info);
        self.monitor_count.store(m.len(), Ordering::Relaxed);
    }

    fn stop_monitor(&self, id: u64) {
        let mut m = self.monitors.lock();
        m.retain(|c| c.id != id);
        self.monitor_count.store(m.len(), Ordering::Relaxed);
    }

    /// Sends one MONITOR line to every monitoring client.
    pub fn feed_monitors(&self, line: &str) {
        for m in self.monitors.lock().iter() {
            m.send(Control::Push(Reply::StatusOwned(line.to_string())));
        }
    }

    /// Asks every connection to close (shutdown).
    pub fn kill_all(&self) {
        for c in self.clients.lock().values() {
            c.send(Control::Kill);
        }
    }
}
