//! Server configuration: redis.conf syntax, `--name value` overrides, and the parameter table
//! behind CONFIG GET / SET / REWRITE. Values are kept as canonical strings; the ones read on
//! hot paths are mirrored into atomics in [`Live`].

use crate::store::glob::glob_match;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// Integer within bounds.
    Int(i64, i64),
    /// Byte size with optional unit suffix (`1gb`, `512mb`, `64k`).
    Memory,
    Bool,
    Str,
    Enum(&'static [&'static str]),
    /// Free-form, validated by a custom check in [`validate`].
    Special,
}

pub struct Param {
    pub name: &'static str,
    pub default: &'static str,
    pub kind: Kind,
    /// Whether CONFIG SET may change it while running.
    pub mutable: bool,
}

const fn p(name: &'static str, default: &'static str, kind: Kind, mutable: bool) -> Param {
    Param {
        name,
        default,
        kind,
        mutable,
    }
}

/// Every parameter Locus understands. Redis parameters keep Redis's names and defaults.
pub static PARAMS: &[Param] = &[
    p("port", "6379", Kind::Int(0, 65535), true),
    p("bind", "127.0.0.1 -::1", Kind::Str, false),
    p("unixsocket", "", Kind::Str, false),
    p("unixsocketperm", "0", Kind::Int(0, 0o777), false),
    p("requirepass", "", Kind::Str, true),
    p("aclfile", "", Kind::Str, false),
    // TLS, as Redis names it (see server/tls.rs); certificates reload on CONFIG SET.
    p("tls-port", "0", Kind::Int(0, 65535), false),
    p("tls-cert-file", "", Kind::Str, true),
    p("tls-key-file", "", Kind::Str, true),
    p("tls-ca-cert-file", "", Kind::Str, true),
    p("tls-ca-cert-dir", "", Kind::Str, true),
    p(
        "tls-auth-clients",
        "yes",
        Kind::Enum(&["yes", "no", "optional"]),
        true,
    ),
    p("tls-protocols", "", Kind::Str, true),
    p("tls-ciphersuites", "", Kind::Str, true),
    p("tls-ciphers", "", Kind::Str, true),
    p("tls-prefer-server-ciphers", "no", Kind::Bool, true),
    p("tls-session-caching", "yes", Kind::Bool, true),
    p(
        "tls-session-cache-size",
        "20480",
        Kind::Int(1, i32::MAX as i64),
        true,
    ),
    p(
        "tls-session-cache-timeout",
        "300",
        Kind::Int(1, i32::MAX as i64),
        true,
    ),
    // The HTTP and gRPC ports serve TLS only, with the same certificates.
    p("tls-http", "no", Kind::Bool, false),
    p("acllog-max-len", "128", Kind::Int(0, i32::MAX as i64), true),
    p(
        "acl-pubsub-default",
        "resetchannels",
        Kind::Enum(&["allchannels", "resetchannels"]),
        true,
    ),
    p("databases", "16", Kind::Int(1, i32::MAX as i64), false),
    p("maxclients", "10000", Kind::Int(1, i32::MAX as i64), true),
    p("timeout", "0", Kind::Int(0, i32::MAX as i64), true),
    p("tcp-keepalive", "300", Kind::Int(0, i32::MAX as i64), true),
    p(
        "loglevel",
        "notice",
        Kind::Enum(&["debug", "verbose", "notice", "warning", "nothing"]),
        true,
    ),
    p("logfile", "", Kind::Str, false),
    p("dir", ".", Kind::Special, true),
    p("dbfilename", "dump.locus", Kind::Str, true),
    // A Redis 7.0 (or RedisAI 1.2) RDB file whose keys are loaded at start, over the data the
    // server loaded itself; values of module types other than RedisAI's stop the start unless
    // import-skip-unknown is on.
    p("import-rdb", "", Kind::Str, false),
    p("import-skip-unknown", "no", Kind::Bool, false),
    p("appendfilename", "appendonly.aof", Kind::Str, false),
    p("appenddirname", "appendonlydir", Kind::Str, false),
    p(
        "auto-aof-rewrite-percentage",
        "100",
        Kind::Int(0, i32::MAX as i64),
        true,
    ),
    p("auto-aof-rewrite-min-size", "67108864", Kind::Memory, true),
    p("aof-load-truncated", "yes", Kind::Bool, true),
    p("aof-use-rdb-preamble", "yes", Kind::Bool, true),
    p("appendonly", "no", Kind::Bool, true),
    p(
        "appendfsync",
        "everysec",
        Kind::Enum(&["always", "everysec", "no"]),
        true,
    ),
    p("save", "3600 1 300 100 60 10000", Kind::Special, true),
    p("proto-max-bulk-len", "536870912", Kind::Memory, true),
    p(
        "client-query-buffer-limit",
        "1073741824",
        Kind::Memory,
        true,
    ),
    p(
        "slowlog-log-slower-than",
        "10000",
        Kind::Int(-1, i64::MAX),
        true,
    ),
    p("slowlog-max-len", "128", Kind::Int(0, i64::MAX), true),
    p(
        "latency-monitor-threshold",
        "0",
        Kind::Int(0, i64::MAX),
        true,
    ),
    p("hz", "10", Kind::Int(1, 500), true),
    p("stream-node-max-bytes", "4096", Kind::Memory, true),
    p(
        "stream-node-max-entries",
        "100",
        Kind::Int(0, i64::MAX),
        true,
    ),
    p("maxmemory", "0", Kind::Memory, true),
    p("maxmemory-samples", "5", Kind::Int(1, 64), true),
    // A HyperLogLog stays sparse up to this many bytes, then turns dense (Redis's default).
    p("hll-sparse-max-bytes", "3000", Kind::Int(0, i64::MAX), true),
    // Locus has no replicas: any value above 0 refuses writes with NOREPLICAS, as Redis does
    // when too few replicas are connected.
    p("min-replicas-to-write", "0", Kind::Int(0, i64::MAX), true),
    p("min-replicas-max-lag", "10", Kind::Int(0, i64::MAX), true),
    p(
        "maxmemory-policy",
        "noeviction",
        Kind::Enum(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ]),
        true,
    ),
    p("protected-mode", "yes", Kind::Bool, true),
    p("daemonize", "no", Kind::Bool, false),
    p("pidfile", "", Kind::Str, false),
    p("io-threads", "0", Kind::Int(0, 128), false),
    p("busy-poll-us", "20", Kind::Int(0, 1000), true),
    p("busy-reply-threshold", "5000", Kind::Int(0, i64::MAX), true),
    p(
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        Kind::Special,
        true,
    ),
    p("tensor-max-bytes", "536870912", Kind::Memory, true),
    // RedisAI's load-time settings.
    p("threads-per-queue", "1", Kind::Int(1, 1024), false),
    p("intra-op-parallelism", "1", Kind::Int(0, 1024), false),
    p("inter-op-parallelism", "0", Kind::Int(0, 1024), false),
    p(
        "model-execution-timeout",
        "5000",
        Kind::Int(0, i64::MAX),
        true,
    ),
    p("backend-memory-limit", "0", Kind::Int(0, i64::MAX), false),
    p(
        "model-chunk-size",
        "535822336",
        Kind::Int(1, i64::MAX),
        true,
    ),
    p("backendspath", "", Kind::Str, true),
    p("onnxruntime-library", "", Kind::Str, false),
    // Model lifecycle: versions kept per model key, and the audit stream.
    p("model-versions-max", "10", Kind::Int(1, 100_000), true),
    p("audit-stream", "locus:audit", Kind::Str, true),
    p("audit-maxlen", "10000", Kind::Int(0, i64::MAX), true),
    // The HTTP face: /metrics and /healthz (0 turns it off).
    p("http-port", "8080", Kind::Int(0, 65535), false),
    // The KServe V2 gRPC service (0 turns it off), and the largest V2 request body or message.
    p("grpc-port", "8081", Kind::Int(0, 65535), false),
    p("http-max-body", "67108864", Kind::Memory, true),
    p("http-threads", "0", Kind::Int(0, 1024), false),
    p("metrics-public", "no", Kind::Bool, true),
    p("metrics-max-models", "1000", Kind::Int(0, i64::MAX), true),
    // Routers: guard breaches and other alerts, also published on `__locus__:alerts`.
    p("alert-stream", "locus:alerts", Kind::Str, true),
    p("alert-maxlen", "10000", Kind::Int(0, i64::MAX), true),
    p("alert-queue-depth", "1000", Kind::Int(0, i64::MAX), true),
    // A model version failing more than this share of its requests over the window alerts.
    p("alert-error-rate", "0.05", Kind::Special, true),
    p("alert-error-window", "60", Kind::Int(1, 86_400), true),
    // The rest of Redis 7.0's parameters: accepted, stored and reported as Redis does,
    // though Locus's own representation ignores those about Redis's encodings and replicas.
    p("rdbchecksum", "yes", Kind::Bool, false),
    p("io-threads-do-reads", "no", Kind::Bool, false),
    p("always-show-logo", "no", Kind::Bool, false),
    p("rdbcompression", "yes", Kind::Bool, true),
    p("rdb-del-sync-files", "no", Kind::Bool, true),
    p("activerehashing", "yes", Kind::Bool, true),
    p("stop-writes-on-bgsave-error", "yes", Kind::Bool, true),
    p("set-proc-title", "yes", Kind::Bool, false),
    p("dynamic-hz", "yes", Kind::Bool, true),
    p("lazyfree-lazy-eviction", "no", Kind::Bool, true),
    p("lazyfree-lazy-expire", "no", Kind::Bool, true),
    p("lazyfree-lazy-server-del", "no", Kind::Bool, true),
    p("lazyfree-lazy-user-del", "no", Kind::Bool, true),
    p("lazyfree-lazy-user-flush", "no", Kind::Bool, true),
    p("repl-disable-tcp-nodelay", "no", Kind::Bool, true),
    p("repl-diskless-sync", "yes", Kind::Bool, true),
    p("aof-rewrite-incremental-fsync", "yes", Kind::Bool, true),
    p("no-appendfsync-on-rewrite", "no", Kind::Bool, true),
    p("cluster-require-full-coverage", "yes", Kind::Bool, true),
    p("rdb-save-incremental-fsync", "yes", Kind::Bool, true),
    p("aof-timestamp-enabled", "no", Kind::Bool, true),
    p("cluster-replica-no-failover", "no", Kind::Bool, true),
    p("replica-lazy-flush", "no", Kind::Bool, true),
    p("replica-serve-stale-data", "yes", Kind::Bool, true),
    p("replica-read-only", "yes", Kind::Bool, true),
    p("replica-ignore-maxmemory", "yes", Kind::Bool, true),
    p("jemalloc-bg-thread", "yes", Kind::Bool, true),
    p("activedefrag", "no", Kind::Bool, true),
    p("syslog-enabled", "no", Kind::Bool, false),
    p("cluster-enabled", "no", Kind::Bool, false),
    p("cluster-allow-reads-when-down", "no", Kind::Bool, true),
    p(
        "cluster-allow-pubsubshard-when-down",
        "yes",
        Kind::Bool,
        true,
    ),
    p("crash-log-enabled", "yes", Kind::Bool, true),
    p("crash-memcheck-enabled", "yes", Kind::Bool, true),
    p("use-exit-on-panic", "no", Kind::Bool, true),
    p("disable-thp", "yes", Kind::Bool, false),
    p("cluster-allow-replica-migration", "yes", Kind::Bool, true),
    p("replica-announced", "yes", Kind::Bool, true),
    p("latency-tracking", "yes", Kind::Bool, true),
    p("aof-disable-auto-gc", "no", Kind::Bool, true),
    p("replica-ignore-disk-write-errors", "no", Kind::Bool, true),
    p("replica-announce-ip", "", Kind::Str, true),
    p("masteruser", "", Kind::Str, true),
    p("cluster-announce-ip", "", Kind::Str, true),
    p("cluster-config-file", "nodes.conf", Kind::Str, false),
    p("cluster-announce-hostname", "", Kind::Str, true),
    p("syslog-ident", "redis", Kind::Str, false),
    p("server_cpulist", "", Kind::Str, false),
    p("bio_cpulist", "", Kind::Str, false),
    p("aof_rewrite_cpulist", "", Kind::Str, false),
    p("bgsave_cpulist", "", Kind::Str, false),
    p("ignore-warnings", "", Kind::Str, true),
    p(
        "proc-title-template",
        "{title} {listen-addr} {server-mode}",
        Kind::Str,
        true,
    ),
    p("bind-source-addr", "", Kind::Str, true),
    p("masterauth", "", Kind::Str, true),
    p(
        "supervised",
        "no",
        Kind::Enum(&["upstart", "systemd", "auto", "no"]),
        false,
    ),
    p(
        "syslog-facility",
        "local0",
        Kind::Enum(&[
            "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
        ]),
        false,
    ),
    p(
        "repl-diskless-load",
        "disabled",
        Kind::Enum(&["disabled", "on-empty-db", "swapdb"]),
        true,
    ),
    p(
        "oom-score-adj",
        "no",
        Kind::Enum(&["no", "yes", "relative", "absolute"]),
        true,
    ),
    p(
        "sanitize-dump-payload",
        "no",
        Kind::Enum(&["no", "yes", "clients"]),
        true,
    ),
    p(
        "enable-protected-configs",
        "no",
        Kind::Enum(&["no", "yes", "local"]),
        false,
    ),
    p(
        "enable-debug-command",
        "no",
        Kind::Enum(&["no", "yes", "local"]),
        false,
    ),
    p(
        "enable-module-command",
        "no",
        Kind::Enum(&["no", "yes", "local"]),
        false,
    ),
    p(
        "cluster-preferred-endpoint-type",
        "ip",
        Kind::Enum(&["ip", "hostname", "unknown-endpoint"]),
        true,
    ),
    p(
        "propagation-error-behavior",
        "ignore",
        Kind::Enum(&["ignore", "panic", "panic-on-replicas"]),
        true,
    ),
    p("shutdown-on-sigint", "default", Kind::Str, true),
    p("shutdown-on-sigterm", "default", Kind::Str, true),
    p(
        "cluster-replica-validity-factor",
        "10",
        Kind::Int(0, 2147483647),
        true,
    ),
    p(
        "list-max-listpack-size",
        "-2",
        Kind::Int(-2147483648, 2147483647),
        true,
    ),
    p(
        "cluster-migration-barrier",
        "1",
        Kind::Int(0, 2147483647),
        true,
    ),
    p("active-defrag-cycle-min", "1", Kind::Int(1, 99), true),
    p("active-defrag-cycle-max", "25", Kind::Int(1, 99), true),
    p(
        "active-defrag-threshold-lower",
        "10",
        Kind::Int(0, 1000),
        true,
    ),
    p(
        "active-defrag-threshold-upper",
        "100",
        Kind::Int(0, 1000),
        true,
    ),
    p("lfu-log-factor", "10", Kind::Int(0, 2147483647), true),
    p("lfu-decay-time", "1", Kind::Int(0, 2147483647), true),
    p("replica-priority", "100", Kind::Int(0, 2147483647), true),
    p(
        "repl-diskless-sync-delay",
        "5",
        Kind::Int(0, 2147483647),
        true,
    ),
    p("maxmemory-eviction-tenacity", "10", Kind::Int(0, 100), true),
    p("replica-announce-port", "0", Kind::Int(0, 65535), true),
    p("tcp-backlog", "511", Kind::Int(0, 2147483647), false),
    p("cluster-port", "0", Kind::Int(0, 65535), false),
    p("cluster-announce-bus-port", "0", Kind::Int(0, 65535), true),
    p("cluster-announce-port", "0", Kind::Int(0, 65535), true),
    p("cluster-announce-tls-port", "0", Kind::Int(0, 65535), true),
    p("repl-timeout", "60", Kind::Int(1, 2147483647), true),
    p(
        "repl-ping-replica-period",
        "10",
        Kind::Int(1, 2147483647),
        true,
    ),
    p("list-compress-depth", "0", Kind::Int(0, 2147483647), true),
    p(
        "rdb-key-save-delay",
        "0",
        Kind::Int(-2147483648, 2147483647),
        true,
    ),
    p(
        "key-load-delay",
        "0",
        Kind::Int(-2147483648, 2147483647),
        true,
    ),
    p("active-expire-effort", "1", Kind::Int(1, 10), true),
    p("watchdog-period", "0", Kind::Int(0, 2147483647), true),
    p("shutdown-timeout", "10", Kind::Int(0, 2147483647), true),
    p(
        "repl-diskless-sync-max-replicas",
        "0",
        Kind::Int(0, 2147483647),
        true,
    ),
    p("socket-mark-id", "0", Kind::Int(0, 4294967295), false),
    p(
        "active-defrag-max-scan-fields",
        "1000",
        Kind::Int(1, i64::MAX),
        true,
    ),
    p(
        "cluster-node-timeout",
        "15000",
        Kind::Int(0, i64::MAX),
        true,
    ),
    p("repl-backlog-size", "1048576", Kind::Memory, true),
    p("cluster-link-sendbuf-limit", "0", Kind::Memory, true),
    p(
        "hash-max-listpack-entries",
        "512",
        Kind::Int(0, i64::MAX),
        true,
    ),
    p(
        "set-max-intset-entries",
        "512",
        Kind::Int(0, i64::MAX),
        true,
    ),
    p(
        "zset-max-listpack-entries",
        "128",
        Kind::Int(0, i64::MAX),
        true,
    ),
    p(
        "active-defrag-ignore-bytes",
        "104857600",
        Kind::Memory,
        true,
    ),
    p("hash-max-listpack-value", "64", Kind::Memory, true),
    p("zset-max-listpack-value", "64", Kind::Memory, true),
    p(
        "tracking-table-max-keys",
        "1000000",
        Kind::Int(0, i64::MAX),
        true,
    ),
    p("maxmemory-clients", "0", Kind::Str, true),
    p("repl-backlog-ttl", "3600", Kind::Int(0, i64::MAX), true),
    p(
        "loading-process-events-interval-bytes",
        "2097152",
        Kind::Int(1024, 2147483647),
        true,
    ),
    p("tls-cluster", "no", Kind::Bool, true),
    p("tls-replication", "no", Kind::Bool, true),
    p("tls-key-file-pass", "", Kind::Str, true),
    p("tls-client-cert-file", "", Kind::Str, true),
    p("tls-client-key-file", "", Kind::Str, true),
    p("tls-client-key-file-pass", "", Kind::Str, true),
    p("tls-dh-params-file", "", Kind::Str, true),
    p("oom-score-adj-values", "0 200 800", Kind::Str, true),
    p("notify-keyspace-events", "", Kind::Special, true),
    p("replicaof", "", Kind::Str, false),
    p(
        "latency-tracking-info-percentiles",
        "50 99 99.9",
        Kind::Special,
        true,
    ),
];

/// Values read on every request, kept in atomics so reading them takes no lock.
#[derive(Default)]
pub struct Live {
    pub proto_max_bulk_len: AtomicUsize,
    pub client_query_buffer_limit: AtomicUsize,
    pub slowlog_slower_than: AtomicI64,
    pub slowlog_max_len: AtomicUsize,
    pub timeout_secs: AtomicU64,
    pub maxclients: AtomicUsize,
    /// `maxmemory` in bytes (0: no limit): read on every command that may grow memory.
    pub maxmemory: AtomicUsize,
    pub tensor_max_bytes: AtomicUsize,
    /// `protected-mode`: read at each accepted connection and HTTP or gRPC request.
    pub protected_mode: AtomicBool,
    /// `min-replicas-to-write` above 0: writes are refused (there are no replicas).
    pub writes_need_replicas: AtomicBool,
    /// `audit-stream`, read by every XADD/XDEL/XTRIM (empty: no audit).
    pub audit_stream: RwLock<bytes::Bytes>,
    /// `alert-stream`, as protected from clients as the audit stream.
    pub alert_stream: RwLock<bytes::Bytes>,
}

pub struct Config {
    values: RwLock<BTreeMap<&'static str, String>>,
    /// The config file the server started with, for CONFIG REWRITE.
    pub file: Option<PathBuf>,
    pub live: Live,
    /// The `user <name> <rules…>` lines of the config file: (line number, words after `user`).
    pub users: Vec<(usize, Vec<bytes::Bytes>)>,
}

/// Looks a parameter up case-insensitively, `_` and `-` alike (so RedisAI's THREADS_PER_QUEUE
/// style works too).
/// Redis's hidden parameters: CONFIG GET answers them when asked by name, never for a pattern.
const HIDDEN: &[&str] = &[
    "use-exit-on-panic",
    "rdb-key-save-delay",
    "key-load-delay",
    "watchdog-period",
    "loading-process-events-interval-bytes",
];

/// Parameters read only at start that Redis either lacks or can change while running (`bind`):
/// CONFIG SET accepts their current value, so a tool writing back all of CONFIG GET * gets
/// through, and refuses any other as immutable. Redis's own immutable parameters refuse both,
/// as Redis does.
const START_ONLY: &[&str] = &[
    "bind",
    "tls-http",
    "import-rdb",
    "import-skip-unknown",
    "threads-per-queue",
    "intra-op-parallelism",
    "inter-op-parallelism",
    "backend-memory-limit",
    "onnxruntime-library",
    "http-port",
    "grpc-port",
    "http-threads",
];

pub fn find(name: &str) -> Option<&'static Param> {
    let name = name.replace('_', "-");
    let name = ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(&name))
        .map_or(name.as_str(), |(_, real)| real);
    PARAMS
        .iter()
        .find(|p| p.name.replace('_', "-").eq_ignore_ascii_case(name))
}

/// Redis's older names for parameters, accepted wherever the current name is.
const ALIASES: &[(&str, &str)] = &[
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slave-read-only", "replica-read-only"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("slave-announce-ip", "replica-announce-ip"),
    (
        "cluster-slave-validity-factor",
        "cluster-replica-validity-factor",
    ),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("slave-priority", "replica-priority"),
    ("slave-announce-port", "replica-announce-port"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("lua-time-limit", "busy-reply-threshold"),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("slaveof", "replicaof"),
];

/// Parses `1gb`, `64mb`, `100k`, `12345` (Redis's memtoull).
pub fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mul) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n.to_string(), *m)))
    .unwrap_or((s.clone(), 1));
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// Checks and canonicalises a value for `param`, returning the stored form or Redis's reason.
pub fn validate(param: &Param, value: &str) -> Result<String, String> {
    if param.name == "maxmemory-clients" {
        // A memory value or a percentage of maxmemory, as Redis's PERCENT_CONFIG reads it.
        if let Some(n) = value.strip_suffix('%') {
            let n: i64 = n
                .parse()
                .map_err(|_| "argument must be a memory or percent value".to_string())?;
            if n > 100 {
                return Err("percentage argument must be less or equal to 100".into());
            }
            if n < 0 {
                return Err("argument must be a memory or percent value".into());
            }
            return Ok(format!("{n}%"));
        }
        return parse_memory(value)
            .map(|v| v.to_string())
            .ok_or_else(|| "argument must be a memory or percent value".to_string());
    }
    match param.kind {
        Kind::Int(lo, hi) => {
            let v: i64 = value
                .parse()
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
            if v < lo || v > hi {
                return Err(format!("argument must be between {lo} and {hi} inclusive"));
            }
            Ok(v.to_string())
        }
        Kind::Memory => {
            let v =
                parse_memory(value).ok_or_else(|| "argument must be a memory value".to_string())?;
            // Redis refuses a bulk limit below 1 MB.
            if param.name == "proto-max-bulk-len" && v < 1 << 20 {
                return Err(format!(
                    "argument must be between {} and {} inclusive",
                    1 << 20,
                    i64::MAX
                ));
            }
            Ok(v.to_string())
        }
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Enum(opts) => {
            let v = value.to_ascii_lowercase();
            if opts.contains(&v.as_str()) {
                Ok(v)
            } else {
                Err("argument(s) must be one of the following: ".to_string() + &opts.join(", "))
            }
        }
        Kind::Str => Ok(value.to_string()),
        Kind::Special => match param.name {
            "save" => {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if !parts.len().is_multiple_of(2) || parts.iter().any(|p| p.parse::<u64>().is_err())
                {
                    return Err("Invalid save parameters".into());
                }
                Ok(parts.join(" "))
            }
            "client-output-buffer-limit" => output_limits(value),
            "alert-error-rate" => match value.parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => Ok(value.to_string()),
                _ => Err("argument must be a rate between 0 and 1 (0: never)".into()),
            },
            "notify-keyspace-events" => crate::notify::parse(value)
                .map(crate::notify::to_string)
                .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
            "latency-tracking-info-percentiles" => percentiles(value).map(|ps| {
                ps.iter()
                    .map(|p| trim_double(*p))
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
            "dir" => {
                if value.is_empty() {
                    return Err("dir must not be empty".into());
                }
                Ok(value.to_string())
            }
            _ => Ok(value.to_string()),
        },
    }
}

/// `latency-tracking-info-percentiles`: numbers from 0 to 100, with Redis's errors.
pub fn percentiles(value: &str) -> Result<Vec<f64>, String> {
    value
        .split_whitespace()
        .map(|w| match w.parse::<f64>() {
            Ok(p) if p.is_nan() => {
                Err("Invalid latency-tracking-info-percentiles parameters".into())
            }
            Ok(p) if !(0.0..=100.0).contains(&p) => Err(
                "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                    .into(),
            ),
            Ok(p) => Ok(p),
            Err(_) => Err("Invalid latency-tracking-info-percentiles parameters".into()),
        })
        .collect()
}

/// A number as Redis prints it with `%f` and trimDoubleString: six decimals, trailing zeros
/// and a trailing point dropped.
pub fn trim_double(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Validates `<class> <hard> <soft> <seconds>` groups and merges them over the defaults, as
/// Redis prints the setting: every class, sizes in bytes.
fn output_limits(value: &str) -> Result<String, String> {
    let mut classes: Vec<(String, [u64; 3])> = vec![
        ("normal".into(), [0, 0, 0]),
        ("slave".into(), [268435456, 67108864, 60]),
        ("pubsub".into(), [33554432, 8388608, 60]),
    ];
    let words: Vec<&str> = value.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    for g in words.chunks(4) {
        let class = match g[0].to_ascii_lowercase().as_str() {
            "replica" | "slave" => "slave".to_string(),
            c @ ("normal" | "pubsub") => c.to_string(),
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        };
        let hard = parse_memory(g[1]);
        let soft = parse_memory(g[2]);
        let secs = g[3].parse::<u64>().ok();
        let (Some(hard), Some(soft), Some(secs)) = (hard, soft, secs) else {
            return Err(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".into(),
            );
        };
        if let Some(c) = classes.iter_mut().find(|(n, _)| *n == class) {
            c.1 = [hard, soft, secs];
        }
    }
    Ok(classes
        .iter()
        .map(|(n, v)| format!("{n} {} {} {}", v[0], v[1], v[2]))
        .collect::<Vec<_>>()
        .join(" "))
}

impl Config {
    /// The pub/sub class of `client-output-buffer-limit`: (hard bytes, soft bytes, seconds).
    pub fn pubsub_output_limit(&self) -> (usize, usize, u64) {
        let v = self.get("client-output-buffer-limit");
        let w: Vec<&str> = v.split_whitespace().collect();
        w.chunks(4)
            .find(|g| g.len() == 4 && g[0] == "pubsub")
            .map(|g| {
                (
                    g[1].parse().unwrap_or(0),
                    g[2].parse().unwrap_or(0),
                    g[3].parse().unwrap_or(0),
                )
            })
            .unwrap_or((0, 0, 0))
    }

    /// Builds a configuration from an optional file and `--name value` overrides (later wins).
    pub fn load(file: Option<&Path>, overrides: &[(String, String)]) -> Result<Config, String> {
        let mut values: BTreeMap<&'static str, String> = PARAMS
            .iter()
            .map(|p| (p.name, p.default.to_string()))
            .collect();
        let mut pairs: Vec<(String, String, String)> = Vec::new();
        let mut users = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "Fatal error, can't open config file '{}': {e}",
                    path.display()
                )
            })?;
            for (lineno, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let words =
                    crate::server::protocol::split_args(line.as_bytes()).ok_or_else(|| {
                        config_error(lineno + 1, line, "Unbalanced quotes in configuration line")
                    })?;
                // ACL users keep their words as written (passwords may be any bytes).
                if words[0].eq_ignore_ascii_case(b"user") {
                    if words.len() < 2 {
                        return Err(config_error(
                            lineno + 1,
                            line,
                            "Error in user declaration 'Syntax error'",
                        ));
                    }
                    users.push((
                        lineno + 1,
                        words.into_iter().map(bytes::Bytes::from).collect(),
                    ));
                    continue;
                }
                let words: Vec<String> = words
                    .into_iter()
                    .map(|w| String::from_utf8_lossy(&w).into_owned())
                    .collect();
                let (name, rest) = words.split_first().expect("non-empty line");
                pairs.push((
                    name.to_ascii_lowercase(),
                    rest.join(" "),
                    format!("line {}: {line}", lineno + 1),
                ));
            }
        }
        for (n, v) in overrides {
            pairs.push((n.to_ascii_lowercase(), v.clone(), format!("--{n} {v}")));
        }
        for (name, value, origin) in pairs {
            let param = find(&name).ok_or_else(|| format!("*** FATAL CONFIG FILE ERROR ***\n>>> '{origin}'\nBad directive or wrong number of arguments"))?;
            let v = validate(param, &value)
                .map_err(|e| format!("*** FATAL CONFIG FILE ERROR ***\n>>> '{origin}'\n{e}"))?;
            values.insert(param.name, v);
        }
        let cfg = Config {
            values: RwLock::new(values),
            file: file.map(Path::to_path_buf),
            live: Live::default(),
            users,
        };
        for p in PARAMS {
            cfg.refresh_live(p.name);
        }
        Ok(cfg)
    }

    pub fn get(&self, name: &str) -> String {
        self.values.read().get(name).cloned().unwrap_or_default()
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    /// CONFIG GET: every (name, value) matching any of the glob patterns.
    pub fn matching(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        let values = self.values.read();
        let matches = |n: &str| {
            patterns.iter().any(|p| {
                let pattern = p.iter().any(|c| b"[*?".contains(c));
                (!pattern || !HIDDEN.contains(&n)) && glob_match(p, n.as_bytes(), true)
            })
        };
        let mut out: Vec<(String, String)> = values
            .iter()
            .filter(|(n, _)| matches(n))
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        // Old names answer too, under the name asked for, as Redis 7.0's CONFIG GET does.
        for (alias, real) in ALIASES {
            if matches(alias) {
                if let Some(v) = values.get(real) {
                    out.push((alias.to_string(), v.clone()));
                }
            }
        }
        out
    }

    /// CONFIG SET of several pairs, all-or-nothing, with Redis's error texts.
    pub fn set_many(&self, pairs: &[(String, String)]) -> Result<(), String> {
        let mut staged = Vec::new();
        for (name, value) in pairs {
            let Some(param) = find(name) else {
                return Err(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ));
            };
            if !param.mutable {
                let unchanged = START_ONLY.contains(&param.name)
                    && validate(param, value).is_ok_and(|v| v == self.get(param.name));
                if unchanged {
                    continue;
                }
                return Err(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"));
            }
            let v = validate(param, value).map_err(|e| {
                format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {e}")
            })?;
            if param.name == "dir" && !Path::new(&v).is_dir() {
                return Err(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - No such file or directory"));
            }
            if staged.iter().any(|(n, _)| *n == param.name) {
                return Err(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter"));
            }
            staged.push((param.name, v));
        }
        let mut values = self.values.write();
        for (n, v) in &staged {
            values.insert(n, v.clone());
        }
        drop(values);
        for (n, _) in staged {
            self.refresh_live(n);
        }
        Ok(())
    }

    fn refresh_live(&self, name: &str) {
        let l = &self.live;
        let num = || self.get(name).parse::<u64>().unwrap_or(0);
        match name {
            "proto-max-bulk-len" => l
                .proto_max_bulk_len
                .store(num() as usize, Ordering::Relaxed),
            "client-query-buffer-limit" => l
                .client_query_buffer_limit
                .store(num() as usize, Ordering::Relaxed),
            "slowlog-log-slower-than" => l
                .slowlog_slower_than
                .store(self.get_i64(name), Ordering::Relaxed),
            "slowlog-max-len" => l.slowlog_max_len.store(num() as usize, Ordering::Relaxed),
            "timeout" => l.timeout_secs.store(num(), Ordering::Relaxed),
            "maxclients" => l.maxclients.store(num() as usize, Ordering::Relaxed),
            "maxmemory" => l.maxmemory.store(num() as usize, Ordering::Relaxed),
            "tensor-max-bytes" => l.tensor_max_bytes.store(num() as usize, Ordering::Relaxed),
            "min-replicas-to-write" => l.writes_need_replicas.store(num() > 0, Ordering::Relaxed),
            "audit-stream" => *l.audit_stream.write() = bytes::Bytes::from(self.get(name)),
            "alert-stream" => *l.alert_stream.write() = bytes::Bytes::from(self.get(name)),
            "maxmemory-policy" => {
                crate::store::LFU.store(self.get(name).contains("lfu"), Ordering::Relaxed)
            }
            "stream-node-max-bytes" => crate::store::stream::NODE_MAX_BYTES
                .store(num().min(usize::MAX as u64) as usize, Ordering::Relaxed),
            "stream-node-max-entries" => {
                crate::store::stream::NODE_MAX_ENTRIES.store(num(), Ordering::Relaxed)
            }
            "busy-poll-us" => crate::server::io_pool::BUSY_POLL_US.store(num(), Ordering::Relaxed),
            "hash-max-listpack-entries" => crate::store::value::HASH_MAX_LISTPACK_ENTRIES
                .store(num() as usize, Ordering::Relaxed),
            "hash-max-listpack-value" => crate::store::value::HASH_MAX_LISTPACK_VALUE
                .store(num() as usize, Ordering::Relaxed),
            "set-max-intset-entries" => {
                crate::store::value::SET_MAX_INTSET_ENTRIES.store(num() as usize, Ordering::Relaxed)
            }
            "zset-max-listpack-entries" => crate::store::value::ZSET_MAX_LISTPACK_ENTRIES
                .store(num() as usize, Ordering::Relaxed),
            "zset-max-listpack-value" => crate::store::value::ZSET_MAX_LISTPACK_VALUE
                .store(num() as usize, Ordering::Relaxed),
            "latency-tracking" => crate::cmd::table::set_latency_tracking(self.get(name) == "yes"),
            "protected-mode" => l
                .protected_mode
                .store(self.get(name) == "yes", Ordering::Relaxed),
            "notify-keyspace-events" => crate::notify::FLAGS.store(
                crate::notify::parse(&self.get(name)).unwrap_or(0),
                Ordering::Relaxed,
            ),
            _ => {}
        }
    }

    /// CONFIG REWRITE: rewrites the file the server started with, keeping comments and the
    /// order of existing lines, updating changed values and appending non-default ones.
    /// CONFIG REWRITE. `users`: the ACL users as `user …` lines, which replace the file's
    /// (Redis keeps users in the config file when no `aclfile` is set).
    pub fn rewrite(&self, users: Option<&[String]>) -> Result<(), String> {
        let Some(path) = &self.file else {
            return Err("ERR The server is running without a config file".into());
        };
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let values = self.values.read().clone();
        let mut written = std::collections::HashSet::new();
        let mut out = String::new();
        for line in old.lines() {
            let t = line.trim();
            let name = t
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if name == "user" && users.is_some() {
                continue;
            }
            match find(&name) {
                Some(p) if !t.starts_with('#') => {
                    if written.insert(p.name) {
                        out.push_str(&format_line(p.name, &values[p.name]));
                    }
                }
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        for p in PARAMS {
            if !written.contains(p.name) && values[p.name] != p.default {
                out.push_str(&format_line(p.name, &values[p.name]));
            }
        }
        for u in users.unwrap_or_default() {
            out.push_str(u);
            out.push('\n');
        }
        let tmp = path.with_extension("rewrite.tmp");
        std::fs::write(&tmp, out)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("ERR Rewriting config file: {e}"))
    }
}

fn format_line(name: &str, value: &str) -> String {
    // Memory values are written back with Redis's units when they divide evenly.
    if find(name).is_some_and(|p| p.kind == Kind::Memory) {
        if let Ok(v) = value.parse::<u64>() {
            let text = match v {
                0 => "0".to_string(),
                v if v % (1 << 30) == 0 => format!("{}gb", v >> 30),
                v if v % (1 << 20) == 0 => format!("{}mb", v >> 20),
                v if v % (1 << 10) == 0 => format!("{}kb", v >> 10),
                v => v.to_string(),
            };
            return format!("{name} {text}\n");
        }
    }
    if value.is_empty() || value.contains(' ') && name != "save" && name != "bind" {
        format!("{name} \"{value}\"\n")
    } else {
        format!("{name} {value}\n")
    }
}

fn config_error(line: usize, text: &str, why: &str) -> String {
    format!("*** FATAL CONFIG FILE ERROR ***\nReading the configuration file, at line {line}\n>>> '{text}'\n{why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_overrides() {
        let dir = std::env::temp_dir().join(format!("locus-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("locus.conf");
        std::fs::write(
            &f,
            "# comment\nport 7000\nsave 900 1 300 10\nproto-max-bulk-len 1mb\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), &[("port".into(), "7001".into())]).unwrap();
        assert_eq!(c.get("port"), "7001");
        assert_eq!(c.get("save"), "900 1 300 10");
        assert_eq!(c.live.proto_max_bulk_len.load(Ordering::Relaxed), 1 << 20);
        assert!(Config::load(Some(&f), &[("nosuch".into(), "1".into())]).is_err());
        c.set_many(&[("maxclients".into(), "50".into())]).unwrap();
        c.rewrite(None).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.contains("# comment")
                && text.contains("port 7001")
                && text.contains("maxclients 50")
        );
        assert!(c
            .set_many(&[("databases".into(), "3".into())])
            .unwrap_err()
            .contains("immutable"));
    }
}
