//! The command table, built at start-up from the specs in `commands/*.json` (embedded by the
//! build script). It drives lookup, arity checks, `COMMAND INFO` / `COMMAND DOCS`, key
//! extraction and per-command statistics.

use super::Handler;
use crate::server::reply::Reply;
use ahash::RandomState;
use serde_json::Value as Json;
use smallvec::SmallVec;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One spec file as the build script embedded it.
pub struct SpecSource {
    pub file: &'static str,
    pub json: &'static str,
    pub handler: Option<Handler>,
}

include!(concat!(env!("OUT_DIR"), "/command_specs.rs"));

/// Call statistics for INFO commandstats and latencystats, and for `/metrics`.
pub struct CommandStats {
    pub calls: AtomicU64,
    nanos: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    /// Each call's time in nanoseconds, per thread (see `locus_engine`'s histograms); kept
    /// while `latency-tracking` is on, as Redis keeps its per-command histograms.
    pub latency: crate::engine::histogram::Histogram,
}

impl Default for CommandStats {
    fn default() -> Self {
        CommandStats {
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency: crate::engine::histogram::Histogram::fine_latency(),
        }
    }
}

impl CommandStats {
    pub fn reset(&self) {
        for c in [&self.calls, &self.nanos, &self.rejected, &self.failed] {
            c.store(0, Ordering::Relaxed);
        }
        self.latency.reset();
    }

    pub fn add_nanos(&self, ns: u64) {
        if ns > 0 {
            self.nanos.fetch_add(ns, Ordering::Relaxed);
        }
    }

    /// Microseconds spent in the command (INFO commandstats' `usec`).
    pub fn usec(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed) / 1000
    }
}

/// `latency-tracking`: whether commands' latency histograms record.
static LATENCY_TRACKING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

pub fn latency_tracking() -> bool {
    LATENCY_TRACKING.load(Ordering::Relaxed)
}

pub fn set_latency_tracking(on: bool) {
    LATENCY_TRACKING.store(on, Ordering::Relaxed);
}

/// Where a key spec starts looking and how it finds keys (Redis's key-spec model).
#[derive(Clone, Debug)]
pub enum BeginSearch {
    Index(i64),
    Keyword { keyword: String, startfrom: i64 },
    Unknown,
}

#[derive(Clone, Debug)]
pub enum FindKeys {
    Range {
        lastkey: i64,
        step: i64,
        limit: i64,
    },
    Keynum {
        keynumidx: i64,
        firstkey: i64,
        step: i64,
    },
    Unknown,
}

#[derive(Clone, Debug)]
pub struct KeySpec {
    pub flags: Vec<String>,
    /// KEY_READ and KEY_WRITE bits from the flags, as ACL checks keys.
    pub access: u8,
    pub begin: BeginSearch,
    pub find: FindKeys,
}

pub struct Command {
    /// Lowercase name; for subcommands `container|sub`.
    pub name: String,
    pub id: usize,
    pub arity: i64,
    pub flags: Vec<String>,
    pub acl_categories: Vec<String>,
    /// The categories as bits (`acl::CATEGORIES` order), for ACL rules.
    pub acl_mask: u32,
    pub key_proc: KeyProc,
    /// Whether it names pub/sub channels (PUBLISH, SUBSCRIBE …), which ACL rules check too.
    pub channels: bool,
    /// A subcommand (its first argument for ACL first-arg rules is the one after it).
    pub is_sub: bool,
    /// DENYOOM: refused over `maxmemory` when eviction cannot make room.
    pub denyoom: bool,
    /// A model run or tensor op whose outputs are checked against `maxmemory` when stored,
    /// not before it runs (their size is known only then).
    pub oom_at_store: bool,
    pub tips: Vec<String>,
    pub key_specs: Vec<KeySpec>,
    /// One key at a fixed position and its access (GET, SET without GET, INCR …): what ACL
    /// checks read without walking the specs, for the commands most traffic is made of.
    pub single_key: Option<(usize, u8)>,
    /// Redis's legacy (first, last, step) key positions.
    pub legacy_keys: (i64, i64, i64),
    pub movable_keys: bool,
    pub handler: Option<Handler>,
    pub subcommands: BTreeMap<String, Arc<Command>>,
    /// The spec body, for COMMAND DOCS.
    pub spec: Json,
    pub stats: CommandStats,
    pub no_auth: bool,
    pub write: bool,
    /// Runs while a script is busy (ALLOW_BUSY).
    pub allow_busy: bool,
    pub admin: bool,
    pub fast: bool,
    /// Server and connection commands (INFO, CLIENT LIST, CONFIG RESETSTAT …) read or reset the
    /// statistics that connections gather per batch, so those are flushed before they run.
    pub reads_stats: bool,
    /// Allowed in RESP2 while subscribed.
    pub pubsub_ok: bool,
    /// A read whose keys a tracking client has remembered (READONLY, but not the read-only
    /// script commands: a script's reads count through the commands it calls).
    pub tracks_reads: bool,
    /// EVAL, EVALSHA, FCALL and their read-only forms.
    pub runs_script: bool,
}

/// Key access as ACL checks it: read (the ACCESS flag), write (INSERT, DELETE, UPDATE).
pub const KEY_READ: u8 = crate::acl::rules::KEY_READ;
pub const KEY_WRITE: u8 = crate::acl::rules::KEY_WRITE;

/// How a command's keys are found: its key specs, or, where those cannot tell (or cannot
/// tell the access), the command's own reading of its arguments, as Redis's getkeys procs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyProc {
    Specs,
    Sort,
    Set,
    Bitfield,
    ModelRun,
    /// The key specs, plus the models the DAG's ops run.
    Dag,
    /// AI.TENSOROP: its destination (the key spec), then its sources and TOPK's values
    /// output, where the op's syntax puts them.
    TensorOp,
}

impl KeyProc {
    fn of(name: &str) -> KeyProc {
        match name {
            "sort" => KeyProc::Sort,
            "set" => KeyProc::Set,
            "bitfield" => KeyProc::Bitfield,
            "ai.modelrun" => KeyProc::ModelRun,
            "ai.tensorop" => KeyProc::TensorOp,
            n if n.starts_with("ai.dag") => KeyProc::Dag,
            _ => KeyProc::Specs,
        }
    }
}

/// Keys with the access each needs, as a command's arguments name them.
pub type KeyRefs = SmallVec<[(usize, u8); 4]>;

/// SORT's keys as Redis's sortGetKeys finds them: the source, and the last STORE's target
/// (LIMIT takes two words, BY and GET one, so their arguments are never mistaken for STORE).
fn sort_keys<A: super::ArgList + ?Sized>(argv: &A) -> KeyRefs {
    let mut keys: KeyRefs = smallvec::smallvec![(1, KEY_READ)];
    let mut store = None;
    let mut i = 2;
    while i < argv.argc() {
        let skip = match argv.arg(i).to_ascii_uppercase().as_slice() {
            b"LIMIT" => 2,
            b"GET" | b"BY" => 1,
            b"STORE" => {
                if i + 1 < argv.argc() {
                    store = Some(i + 1);
                }
                1
            }
            _ => 0,
        };
        i += skip + 1;
    }
    keys.extend(store.map(|s| (s, KEY_WRITE)));
    keys
}

/// BITFIELD reads only when every subcommand is a GET (Redis's bitfieldGetKeys).
fn bitfield_access<A: super::ArgList + ?Sized>(argv: &A) -> u8 {
    let n = argv.argc();
    let mut i = 2;
    while i < n {
        let rem = n - i - 1;
        let a = argv.arg(i);
        if a.eq_ignore_ascii_case(b"GET") && rem >= 2 {
            i += 2;
        } else if (a.eq_ignore_ascii_case(b"SET") || a.eq_ignore_ascii_case(b"INCRBY")) && rem >= 3
            || !(a.eq_ignore_ascii_case(b"OVERFLOW") && rem >= 1)
        {
            return KEY_READ | KEY_WRITE;
        } else {
            i += 1;
        }
        i += 1;
    }
    KEY_READ
}

/// AI.MODELRUN's keys (RedisAI 1.0 syntax, no counts): the model, the words between INPUTS
/// and OUTPUTS, and those after OUTPUTS up to TIMEOUT.
fn modelrun_keys<A: super::ArgList + ?Sized>(argv: &A) -> KeyRefs {
    let mut keys: KeyRefs = smallvec::smallvec![(1, KEY_READ)];
    let mut access = None;
    let mut i = 2;
    while i < argv.argc() {
        let w = argv.arg(i);
        if w.eq_ignore_ascii_case(b"INPUTS") {
            access = Some(KEY_READ);
        } else if w.eq_ignore_ascii_case(b"OUTPUTS") {
            access = Some(KEY_WRITE);
        } else if w.eq_ignore_ascii_case(b"TIMEOUT") {
            access = None;
            i += 1;
        } else if let Some(a) = access {
            keys.push((i, a));
        }
        i += 1;
    }
    keys
}

/// AI.TENSOROP's keys, as its parser reads them: the destination (written), the sources
/// (read) and TOPK's VALUES output (written). A call the parser refuses names its destination
/// only.
fn tensorop_keys<A: super::ArgList + ?Sized>(argv: &A) -> KeyRefs {
    let mut keys: KeyRefs = smallvec::smallvec![(1, KEY_WRITE)];
    let words: Vec<bytes::Bytes> = (0..argv.argc())
        .map(|i| bytes::Bytes::copy_from_slice(argv.arg(i)))
        .collect();
    let mut args = super::Args::new(crate::server::protocol::Request::from_args(&words), 1);
    let Ok(spec) = super::tensorops::parse(&mut args) else {
        return keys;
    };
    // Each name at its first position after the op's name.
    let mut taken = vec![false; words.len()];
    let mut place = |name: &bytes::Bytes, access: u8, keys: &mut KeyRefs| {
        if let Some(i) = (3..words.len()).find(|&i| !taken[i] && words[i] == *name) {
            taken[i] = true;
            keys.push((i, access));
        }
    };
    for src in &spec.srcs {
        place(src, KEY_READ, &mut keys);
    }
    if let Some(values) = &spec.values_dst {
        place(values, KEY_WRITE, &mut keys);
    }
    keys.sort_unstable();
    keys
}

/// The models and scripts a DAG's ops run (after each `|>`): RedisAI's DAG commands touch
/// those keys besides LOAD, PERSIST and KEYS, which their key specs find.
fn dag_op_keys<A: super::ArgList + ?Sized>(argv: &A, out: &mut KeyRefs) {
    for i in 1..argv.argc().saturating_sub(2) {
        if argv.arg(i) != b"|>" {
            continue;
        }
        let op = argv.arg(i + 1);
        if [
            &b"AI.MODELEXECUTE"[..],
            b"AI.MODELRUN",
            b"AI.EXPLAIN",
            b"AI.SCRIPTEXECUTE",
            b"AI.SCRIPTRUN",
        ]
        .iter()
        .any(|o| op.eq_ignore_ascii_case(o))
        {
            out.push((i + 2, KEY_READ));
        }
    }
}

impl Command {
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    /// Whether `argc` words (name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity > 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// The name Redis uses in arity errors and stats: `get`, `client|list`.
    pub fn full_name(&self) -> &str {
        &self.name
    }

    /// `COMMAND INFO` entry.
    pub fn info_reply(&self) -> Reply {
        let set = |v: &[String], prefix: &str| {
            Reply::Set(
                v.iter()
                    .map(|f| Reply::StatusOwned(format!("{prefix}{}", f.to_lowercase())))
                    .collect(),
            )
        };
        let mut flags = self.flags.clone();
        if self.movable_keys {
            flags.push("MOVABLEKEYS".into());
        }
        Reply::Array(vec![
            Reply::bulk_str(&self.name),
            Reply::Int(self.arity),
            set(&flags, ""),
            Reply::Int(self.legacy_keys.0),
            Reply::Int(self.legacy_keys.1),
            Reply::Int(self.legacy_keys.2),
            set(&self.acl_categories, "@"),
            Reply::Set(
                self.tips
                    .iter()
                    .map(|t| Reply::bulk_str(&t.to_lowercase()))
                    .collect(),
            ),
            Reply::Set(
                self.spec["key_specs"]
                    .as_array()
                    .map(|a| a.iter().map(key_spec_reply).collect())
                    .unwrap_or_default(),
            ),
            Reply::Set(self.subcommands.values().map(|c| c.info_reply()).collect()),
        ])
    }

    /// `COMMAND DOCS` entry (the value; the caller pairs it with the name).
    pub fn docs_reply(&self) -> Reply {
        let s = &self.spec;
        let mut m = Vec::new();
        for field in ["summary", "since", "group", "complexity"] {
            if let Some(v) = s[field].as_str() {
                m.push((Reply::bulk_str(field), Reply::bulk_str(v)));
            }
        }
        if let Some(flags) = s["doc_flags"].as_array() {
            let v = flags
                .iter()
                .filter_map(|f| f.as_str())
                .map(|f| Reply::StatusOwned(f.to_lowercase()))
                .collect();
            m.push((Reply::bulk_str("doc_flags"), Reply::Set(v)));
        }
        for field in ["deprecated_since", "replaced_by"] {
            if let Some(v) = s[field].as_str() {
                m.push((Reply::bulk_str(field), Reply::bulk_str(v)));
            }
        }
        if let Some(h) = s["history"].as_array() {
            let v = h
                .iter()
                .filter_map(|e| e.as_array())
                .map(|e| {
                    Reply::Array(
                        e.iter()
                            .map(|x| Reply::bulk_str(x.as_str().unwrap_or("")))
                            .collect(),
                    )
                })
                .collect();
            m.push((Reply::bulk_str("history"), Reply::Array(v)));
        }
        if let Some(args) = s["arguments"].as_array() {
            m.push((
                Reply::bulk_str("arguments"),
                Reply::Array(args.iter().map(arg_doc).collect()),
            ));
        }
        if self.is_container() {
            let subs = self
                .subcommands
                .values()
                .map(|c| (Reply::bulk_str(&c.name), c.docs_reply()))
                .collect();
            m.push((Reply::bulk_str("subcommands"), Reply::Map(subs)));
        }
        Reply::Map(m)
    }

    /// Positions of key arguments in `argv` (COMMAND GETKEYS, cluster routing later).
    pub fn key_positions(&self, argv: &[bytes::Bytes]) -> Vec<usize> {
        self.keys_with_access(argv).iter().map(|k| k.0).collect()
    }

    /// Whether the command names keys at all (ACL key checks skip those that do not).
    pub fn has_keys(&self) -> bool {
        !self.key_specs.is_empty() || self.key_proc == KeyProc::ModelRun
    }

    /// The key arguments with the access each needs, found through the key specs (and, for
    /// the commands whose keys specs cannot describe, as their parsers read them).
    pub fn keys_with_access<A: super::ArgList + ?Sized>(&self, argv: &A) -> KeyRefs {
        match self.key_proc {
            KeyProc::Specs | KeyProc::Dag => {}
            KeyProc::Sort => return sort_keys(argv),
            KeyProc::ModelRun => return modelrun_keys(argv),
            KeyProc::TensorOp => return tensorop_keys(argv),
            // Key specs with VARIABLE_FLAGS: the access depends on the arguments (Redis's
            // setGetKeys and bitfieldGetKeys).
            KeyProc::Set => {
                let get = (3..argv.argc()).any(|i| argv.arg(i).eq_ignore_ascii_case(b"GET"));
                let access = if get { KEY_READ | KEY_WRITE } else { KEY_WRITE };
                return smallvec::smallvec![(1, access)];
            }
            KeyProc::Bitfield => return smallvec::smallvec![(1, bitfield_access(argv))],
        }
        let mut out = KeyRefs::new();
        self.walk_specs(argv, |i, ks| out.push((i, ks.access)));
        if self.key_proc == KeyProc::Dag {
            dag_op_keys(argv, &mut out);
        }
        out
    }

    /// COMMAND GETKEYSANDFLAGS: each key argument with its key spec's flags as Redis names
    /// them (or, for the commands whose keys are found by reading them, the flags Redis's
    /// getkeys procs give).
    pub fn keys_with_flags<A: super::ArgList + ?Sized>(
        &self,
        argv: &A,
    ) -> Vec<(usize, Vec<String>)> {
        let named = |flags: &[&str]| flags.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        let by_access = |access: u8| match (access & KEY_READ != 0, access & KEY_WRITE != 0) {
            (true, true) => named(&["RW", "ACCESS", "UPDATE"]),
            (false, true) => named(&["OW", "UPDATE"]),
            _ => named(&["RO", "ACCESS"]),
        };
        let mut out: Vec<(usize, Vec<String>)> = match self.key_proc {
            KeyProc::Specs | KeyProc::Dag => {
                let mut v = Vec::new();
                if !self.walk_specs(argv, |i, ks| v.push((i, ks.flags.clone()))) {
                    return Vec::new();
                }
                v
            }
            KeyProc::Sort => sort_keys(argv)
                .into_iter()
                .map(|(i, access)| {
                    // The sorted key's spec, or the STORE destination's (the spec that writes).
                    let spec = if i == 1 {
                        self.key_specs.first()
                    } else {
                        self.key_specs.iter().find(|k| k.access & KEY_WRITE != 0)
                    };
                    (
                        i,
                        spec.map_or_else(|| by_access(access), |k| k.flags.clone()),
                    )
                })
                .collect(),
            _ => self
                .keys_with_access(argv)
                .into_iter()
                .map(|(i, a)| (i, by_access(a)))
                .collect(),
        };
        if self.key_proc == KeyProc::Dag {
            let mut extra = KeyRefs::new();
            dag_op_keys(argv, &mut extra);
            out.extend(extra.into_iter().map(|(i, a)| (i, by_access(a))));
        }
        // Redis's order and spelling: RO RW OW RM, then lowercase access, update, insert, …
        const ORDER: [&str; 11] = [
            "RO",
            "RW",
            "OW",
            "RM",
            "ACCESS",
            "UPDATE",
            "INSERT",
            "DELETE",
            "NOT_KEY",
            "INCOMPLETE",
            "VARIABLE_FLAGS",
        ];
        for (_, flags) in out.iter_mut() {
            *flags = ORDER
                .iter()
                .filter(|o| flags.iter().any(|f| f == *o))
                .map(|o| {
                    if o.len() == 2 {
                        o.to_string()
                    } else {
                        o.to_ascii_lowercase()
                    }
                })
                .collect();
        }
        out
    }

    /// Calls `f` with each key argument's position and the key spec that found it. Returns
    /// false when a key count in the arguments is not a count (Redis's invalid spec: COMMAND
    /// GETKEYS then refuses the arguments).
    fn walk_specs<A: super::ArgList + ?Sized>(
        &self,
        argv: &A,
        mut f: impl FnMut(usize, &KeySpec),
    ) -> bool {
        let argc = argv.argc() as i64;
        let mut valid = true;
        for ks in &self.key_specs {
            let start = match &ks.begin {
                BeginSearch::Index(p) => *p,
                BeginSearch::Keyword { keyword, startfrom } => {
                    let found = if *startfrom >= 0 {
                        (*startfrom..argc).find(|&i| {
                            argv.arg(i as usize)
                                .eq_ignore_ascii_case(keyword.as_bytes())
                        })
                    } else {
                        (1..=(argc + startfrom).max(0)).rev().find(|&i| {
                            argv.arg(i as usize)
                                .eq_ignore_ascii_case(keyword.as_bytes())
                        })
                    };
                    match found {
                        Some(i) => i + 1,
                        None => continue,
                    }
                }
                BeginSearch::Unknown => continue,
            };
            match &ks.find {
                FindKeys::Range {
                    lastkey,
                    step,
                    limit,
                } => {
                    let last = if *lastkey >= 0 {
                        start + lastkey
                    } else if *limit > 1 {
                        start + (argc - start) / limit - 1
                    } else {
                        argc + lastkey
                    };
                    let mut i = start;
                    while i <= last.min(argc - 1) {
                        f(i as usize, ks);
                        i += (*step).max(1);
                    }
                }
                FindKeys::Keynum {
                    keynumidx,
                    firstkey,
                    step,
                } => {
                    let Some(n) = (start + keynumidx < argc)
                        .then(|| crate::util::parse_i64(argv.arg((start + keynumidx) as usize)))
                        .flatten()
                        .filter(|n| *n >= 0)
                    else {
                        valid = false;
                        continue;
                    };
                    let first = start + firstkey;
                    for k in 0..n.max(0) {
                        let i = first + k * step.max(&1);
                        if i < argc {
                            f(i as usize, ks);
                        }
                    }
                }
                FindKeys::Unknown => {}
            }
        }
        valid
    }
}

fn json_reply(v: &Json) -> Reply {
    match v {
        Json::Null => Reply::Null,
        Json::Bool(b) => Reply::Bool(*b),
        Json::Number(n) => Reply::Int(n.as_i64().unwrap_or(0)),
        Json::String(s) => Reply::bulk_str(s),
        Json::Array(a) => Reply::Array(a.iter().map(json_reply).collect()),
        Json::Object(o) => Reply::Map(
            o.iter()
                .map(|(k, v)| (Reply::bulk_str(k), json_reply(v)))
                .collect(),
        ),
    }
}

/// COMMAND INFO renders key specs as Redis does: lowercase-free keys, flags as a set.
fn key_spec_reply(ks: &Json) -> Reply {
    let mut m = Vec::new();
    if let Some(notes) = ks["notes"].as_str() {
        m.push((Reply::bulk_str("notes"), Reply::bulk_str(notes)));
    }
    let flags = ks["flags"].as_array().map(|a| {
        a.iter()
            .map(|f| {
                // Redis prints the access-type flags upper case and the rest lower case.
                let f = f.as_str().unwrap_or("");
                let f = if ["RO", "RW", "OW", "RM"].contains(&f) {
                    f.to_string()
                } else {
                    f.to_lowercase()
                };
                Reply::StatusOwned(f)
            })
            .collect()
    });
    m.push((
        Reply::bulk_str("flags"),
        Reply::Set(flags.unwrap_or_default()),
    ));
    for (field, json) in [
        ("begin_search", &ks["begin_search"]),
        ("find_keys", &ks["find_keys"]),
    ] {
        let (kind, spec) = json
            .as_object()
            .and_then(|o| o.iter().next())
            .map(|(k, v)| (k.as_str(), v))
            .unwrap_or(("unknown", &Json::Null));
        m.push((
            Reply::bulk_str(field),
            Reply::Map(vec![
                (Reply::bulk_str("type"), Reply::bulk_str(kind)),
                (Reply::bulk_str("spec"), key_spec_detail(kind, spec)),
            ]),
        ));
    }
    Reply::Map(m)
}

/// The `spec` map of a key spec, with the field names COMMAND INFO uses (`index`, `keystep`).
fn key_spec_detail(kind: &str, spec: &Json) -> Reply {
    let field = |name: &str, json: &str| (Reply::bulk_str(name), json_reply(&spec[json]));
    match kind {
        "index" => Reply::Map(vec![field("index", "pos")]),
        "keyword" => Reply::Map(vec![
            field("keyword", "keyword"),
            field("startfrom", "startfrom"),
        ]),
        "range" => Reply::Map(vec![
            field("lastkey", "lastkey"),
            field("keystep", "step"),
            field("limit", "limit"),
        ]),
        "keynum" => Reply::Map(vec![
            field("keynumidx", "keynumidx"),
            field("firstkey", "firstkey"),
            field("keystep", "step"),
        ]),
        _ => json_reply(spec),
    }
}

fn arg_doc(a: &Json) -> Reply {
    let mut m = Vec::new();
    for field in ["name", "type"] {
        m.push((
            Reply::bulk_str(field),
            Reply::bulk_str(a[field].as_str().unwrap_or("")),
        ));
    }
    if let Some(display) = a["display"].as_str() {
        m.push((Reply::bulk_str("display_text"), Reply::bulk_str(display)));
    }
    if let Some(i) = a["key_spec_index"].as_i64() {
        m.push((Reply::bulk_str("key_spec_index"), Reply::Int(i)));
    }
    for field in ["token", "summary", "since", "deprecated_since"] {
        if let Some(v) = a[field].as_str() {
            m.push((Reply::bulk_str(field), Reply::bulk_str(v)));
        }
    }
    let flags: Vec<Reply> = ["optional", "multiple", "multiple_token"]
        .iter()
        .filter(|f| a[**f].as_bool() == Some(true))
        .map(|f| Reply::Status(f))
        .collect();
    if !flags.is_empty() {
        m.push((Reply::bulk_str("flags"), Reply::Set(flags)));
    }
    if let Some(sub) = a["arguments"].as_array() {
        m.push((
            Reply::bulk_str("arguments"),
            Reply::Array(sub.iter().map(arg_doc).collect()),
        ));
    }
    Reply::Map(m)
}

/// ACL categories Redis derives from command flags, in Redis's category order.
const ACL_ORDER: &[&str] = &[
    "KEYSPACE",
    "READ",
    "WRITE",
    "SET",
    "SORTEDSET",
    "LIST",
    "HASH",
    "STRING",
    "BITMAP",
    "HYPERLOGLOG",
    "GEO",
    "STREAM",
    "PUBSUB",
    "ADMIN",
    "FAST",
    "SLOW",
    "BLOCKING",
    "DANGEROUS",
    "CONNECTION",
    "TRANSACTION",
    "SCRIPTING",
    "AI",
    "AI-RUN",
    "AI-MANAGE",
];

fn implied_acl(flags: &[String], explicit: &[String]) -> Vec<String> {
    let mut cats: Vec<String> = explicit.to_vec();
    let has = |f: &str| flags.iter().any(|x| x == f);
    let add = |c: &str, cats: &mut Vec<String>| {
        if !cats.iter().any(|x| x == c) {
            cats.push(c.to_string());
        }
    };
    if has("WRITE") {
        add("WRITE", &mut cats);
    }
    if has("READONLY") && !explicit.iter().any(|c| c == "SCRIPTING") {
        add("READ", &mut cats);
    }
    if has("ADMIN") {
        add("ADMIN", &mut cats);
        add("DANGEROUS", &mut cats);
    }
    if has("PUBSUB") {
        add("PUBSUB", &mut cats);
    }
    if has("FAST") {
        add("FAST", &mut cats);
    }
    if has("BLOCKING") {
        add("BLOCKING", &mut cats);
    }
    if !cats.iter().any(|c| c == "FAST") {
        add("SLOW", &mut cats);
    }
    cats.sort_by_key(|c| ACL_ORDER.iter().position(|o| o == c).unwrap_or(usize::MAX));
    cats
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_key_spec(ks: &Json) -> KeySpec {
    let bs = &ks["begin_search"];
    let begin = if let Some(i) = bs["index"]["pos"].as_i64() {
        BeginSearch::Index(i)
    } else if let Some(kw) = bs["keyword"]["keyword"].as_str() {
        BeginSearch::Keyword {
            keyword: kw.to_string(),
            startfrom: bs["keyword"]["startfrom"].as_i64().unwrap_or(1),
        }
    } else {
        BeginSearch::Unknown
    };
    let fk = &ks["find_keys"];
    let find = if fk["range"].is_object() {
        let r = &fk["range"];
        FindKeys::Range {
            lastkey: r["lastkey"].as_i64().unwrap_or(0),
            step: r["step"].as_i64().unwrap_or(1),
            limit: r["limit"].as_i64().unwrap_or(0),
        }
    } else if fk["keynum"].is_object() {
        let k = &fk["keynum"];
        FindKeys::Keynum {
            keynumidx: k["keynumidx"].as_i64().unwrap_or(0),
            firstkey: k["firstkey"].as_i64().unwrap_or(1),
            step: k["step"].as_i64().unwrap_or(1),
        }
    } else {
        FindKeys::Unknown
    };
    let flags = strings(&ks["flags"]);
    let mut access = 0;
    for f in &flags {
        match f.as_str() {
            "ACCESS" => access |= KEY_READ,
            "INSERT" | "DELETE" | "UPDATE" => access |= KEY_WRITE,
            _ => {}
        }
    }
    KeySpec {
        flags,
        access,
        begin,
        find,
    }
}

/// Redis's `populateCommandLegacyRangeSpec`: the (first, last, step) triple older clients read.
fn legacy_range(specs: &[KeySpec]) -> ((i64, i64, i64), bool) {
    let mut movable = false;
    if specs.is_empty() {
        return ((0, 0, 0), false);
    }
    let abs = |pos: i64, last: i64| if last >= 0 { pos + last } else { last };
    if let [KeySpec {
        begin: BeginSearch::Index(pos),
        find: FindKeys::Range { lastkey, step, .. },
        flags,
        ..
    }] = specs
    {
        movable = flags.iter().any(|f| f == "INCOMPLETE");
        return ((*pos, abs(*pos, *lastkey), *step), movable);
    }
    let (mut first, mut last, mut prev_last) = (i64::MAX, 0i64, 0i64);
    for ks in specs {
        let (BeginSearch::Index(pos), FindKeys::Range { lastkey, step, .. }) =
            (&ks.begin, &ks.find)
        else {
            movable = true;
            continue;
        };
        if *step != 1 || (prev_last != 0 && prev_last != pos - 1) {
            movable = true;
            continue;
        }
        if ks.flags.iter().any(|f| f == "INCOMPLETE") {
            movable = true;
        }
        first = first.min(*pos);
        let l = abs(*pos, *lastkey);
        // Unsigned comparison, as Redis does, so that negative (relative) ends win.
        last = if (l as u64) > (last as u64) { l } else { last };
        prev_last = last;
    }
    if first == i64::MAX {
        return ((0, 0, 0), movable);
    }
    ((first, last, 1), movable)
}

/// The table: top-level commands by uppercase name.
pub struct CommandTable {
    by_name: HashMap<Box<[u8]>, Arc<Command>, RandomState>,
    all: Vec<Arc<Command>>,
    /// Top-level commands sorted by name, once (ACL descriptions walk them on every ACL LIST,
    /// GETUSER and SAVE).
    sorted: Vec<Arc<Command>>,
    /// For each ACL category bit, the ids of the commands and subcommands in it (what ACL
    /// descriptions count over and over).
    category_members: Vec<Vec<usize>>,
}

impl CommandTable {
    /// Builds the table from the embedded specs. Panics on a malformed spec: the build script
    /// already parsed them, so this only fires on a broken tree.
    pub fn load() -> Self {
        let mut tops: BTreeMap<String, Json> = BTreeMap::new();
        let mut subs: BTreeMap<String, Vec<(String, Json, Option<Handler>)>> = BTreeMap::new();
        let mut handlers: HashMap<String, Option<Handler>> = HashMap::new();
        for src in SPEC_SOURCES {
            let json: Json =
                serde_json::from_str(src.json).unwrap_or_else(|e| panic!("{}: {e}", src.file));
            let (name, body) = json
                .as_object()
                .and_then(|o| o.iter().next())
                .expect("one command per file");
            match body["container"].as_str() {
                Some(container) => subs.entry(container.to_uppercase()).or_default().push((
                    name.to_uppercase(),
                    body.clone(),
                    src.handler,
                )),
                None => {
                    handlers.insert(name.to_uppercase(), src.handler);
                    tops.insert(name.to_uppercase(), body.clone());
                }
            }
        }
        let mut all = Vec::new();
        let mut by_name = HashMap::default();
        for (name, body) in tops {
            let mut subcommands = BTreeMap::new();
            for (sub, sbody, h) in subs.remove(&name).unwrap_or_default() {
                let full = format!("{}|{}", name.to_lowercase(), sub.to_lowercase());
                let c = Arc::new(build(&full, sbody, h, all.len()));
                all.push(c.clone());
                subcommands.insert(sub, c);
            }
            let mut c = build(&name.to_lowercase(), body, handlers[&name], all.len());
            c.subcommands = subcommands;
            let c = Arc::new(c);
            all.push(c.clone());
            by_name.insert(name.into_bytes().into_boxed_slice(), c);
        }
        assert!(
            subs.is_empty(),
            "subcommands without a container spec: {:?}",
            subs.keys().collect::<Vec<_>>()
        );
        let mut sorted: Vec<_> = by_name.values().cloned().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let mut category_members = vec![Vec::new(); 32];
        for cmd in &sorted {
            for c in std::iter::once(cmd).chain(cmd.subcommands.values()) {
                for (j, m) in category_members.iter_mut().enumerate() {
                    if c.acl_mask & (1 << j) != 0 {
                        m.push(c.id);
                    }
                }
            }
        }
        CommandTable {
            by_name,
            all,
            sorted,
            category_members,
        }
    }

    /// Looks a top-level command up by name, case-insensitively, without allocating.
    pub fn get(&self, name: &[u8]) -> Option<&Arc<Command>> {
        let mut buf = [0u8; 64];
        self.by_name.get(crate::util::upper(name, &mut buf)?)
    }

    /// Top-level commands, sorted by name.
    pub fn commands(&self) -> impl Iterator<Item = &Arc<Command>> {
        self.sorted.iter()
    }

    /// The commands and subcommands in ACL category bit `bit`, in name order.
    pub fn category_members(&self, bit: usize) -> &[usize] {
        self.category_members.get(bit).map_or(&[], |m| m.as_slice())
    }

    /// Every command and subcommand, indexed by `Command::id`.
    pub fn all(&self) -> &[Arc<Command>] {
        &self.all
    }

    pub fn by_id(&self, id: usize) -> Option<&Arc<Command>> {
        self.all.get(id)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Resolves `argv` to the command to run and how many leading words name it, checking the
    /// name, the subcommand and the arity with Redis's error texts.
    pub fn resolve<A: super::ArgList + ?Sized>(
        &self,
        argv: &A,
    ) -> Result<(Arc<Command>, usize), String> {
        let argc = argv.argc();
        let Some(cmd) = self.get(argv.arg(0)) else {
            let mut args = String::new();
            for i in 1..argc {
                let s: String = String::from_utf8_lossy(argv.arg(i))
                    .chars()
                    .take(128)
                    .collect();
                args.push_str(&format!("'{s}' "));
            }
            let name: String = String::from_utf8_lossy(argv.arg(0))
                .chars()
                .take(128)
                .collect();
            return Err(format!(
                "ERR unknown command '{name}', with args beginning with: {args}"
            ));
        };
        if cmd.is_container() && argc >= 2 {
            let sub = String::from_utf8_lossy(argv.arg(1)).to_uppercase();
            let Some(sc) = cmd.subcommands.get(&sub) else {
                let s: String = String::from_utf8_lossy(argv.arg(1))
                    .chars()
                    .take(128)
                    .collect();
                return Err(format!(
                    "ERR unknown subcommand '{s}'. Try {} HELP.",
                    cmd.name.to_uppercase()
                ));
            };
            check_arity(sc, argc)?;
            return Ok((sc.clone(), 2));
        }
        check_arity(cmd, argc)?;
        Ok((cmd.clone(), 1))
    }
}

fn check_arity(cmd: &Command, argc: usize) -> Result<(), String> {
    let argc = argc as i64;
    if (cmd.arity > 0 && argc != cmd.arity) || argc < -cmd.arity {
        return Err(format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.name
        ));
    }
    Ok(())
}

fn build(name: &str, body: Json, handler: Option<Handler>, id: usize) -> Command {
    let flags: Vec<String> = strings(&body["command_flags"]);
    let key_specs: Vec<KeySpec> = body["key_specs"]
        .as_array()
        .map(|a| a.iter().map(parse_key_spec).collect())
        .unwrap_or_default();
    let (legacy_keys, movable_keys) = legacy_range(&key_specs);
    let single_key = match (KeyProc::of(name), key_specs.as_slice()) {
        (
            KeyProc::Specs,
            [KeySpec {
                begin: BeginSearch::Index(i),
                find: FindKeys::Range { lastkey: 0, .. },
                access,
                ..
            }],
        ) if *i > 0 => Some((*i as usize, *access)),
        _ => None,
    };
    let has = |f: &str| flags.iter().any(|x| x == f);
    let acl_categories = implied_acl(&flags, &strings(&body["acl_categories"]));
    Command {
        name: name.to_string(),
        id,
        arity: body["arity"].as_i64().unwrap_or(-1),
        key_proc: KeyProc::of(name),
        channels: matches!(
            name,
            "publish" | "spublish" | "subscribe" | "ssubscribe" | "psubscribe"
        ),
        is_sub: name.contains('|'),
        denyoom: has("DENYOOM"),
        oom_at_store: matches!(
            name,
            "ai.modelexecute" | "ai.modelrun" | "ai.dagexecute" | "ai.dagrun" | "ai.tensorop"
        ),
        acl_categories: acl_categories.clone(),
        acl_mask: acl_categories
            .iter()
            .filter_map(|c| crate::acl::category_mask(c))
            .fold(0, |m, b| m | b),
        tips: strings(&body["command_tips"]),
        no_auth: has("NO_AUTH"),
        write: has("WRITE"),
        allow_busy: has("ALLOW_BUSY"),
        admin: has("ADMIN"),
        fast: has("FAST"),
        reads_stats: matches!(body["group"].as_str(), Some("server" | "connection")),
        pubsub_ok: matches!(
            name,
            "subscribe"
                | "ssubscribe"
                | "sunsubscribe"
                | "unsubscribe"
                | "psubscribe"
                | "punsubscribe"
                | "ping"
                | "quit"
                | "reset"
        ),
        tracks_reads: has("READONLY")
            && !has("PUBSUB")
            && !matches!(name, "eval_ro" | "evalsha_ro" | "fcall_ro"),
        runs_script: matches!(
            name,
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
        ),
        flags,
        key_specs,
        single_key,
        legacy_keys,
        movable_keys,
        handler,
        subcommands: BTreeMap::new(),
        spec: body,
        stats: CommandStats::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_loads_and_runnable_commands_have_handlers() {
        let t = CommandTable::load();
        assert!(t.len() > 50);
        for c in t.all() {
            assert!(
                c.handler.is_some() || c.is_container(),
                "{} has no handler",
                c.name
            );
        }
        let get = t.get(b"get").unwrap();
        assert_eq!((get.arity, get.legacy_keys), (2, (1, 1, 1)));
        assert_eq!(t.get(b"MSET").unwrap().legacy_keys, (1, -1, 2));
        assert_eq!(t.get(b"rename").unwrap().legacy_keys, (1, 2, 1));
    }
}
