//! Model tests for the aggregate types: random command sequences over hashes, lists, sets,
//! sorted sets and streams get the same replies from the server as from a plain in-memory reference model of
//! Redis 7.0's semantics, and leave the same keyspace behind.
//!
//! Each type has a `Cmd` enum and a strategy over a few keys and a small alphabet of
//! members, fields and values, so that collisions, duplicates and emptied aggregates are common.
//! Every sequence also runs generic commands (SET of a string value, DEL, EXISTS, TYPE), so the
//! type's commands meet string keys (WRONGTYPE) and missing keys. After every command the reply
//! is compared with the model's (in any order only where Redis leaves the order unspecified:
//! SMEMBERS, SINTER/SUNION/SDIFF, HGETALL, HKEYS, HVALS) and DBSIZE with the model's key count,
//! so an emptied aggregate that is not deleted shows at once; at the end of each case TYPE and
//! the full contents of every key are compared.
//!
//! Scores are multiples of 0.5 in a small range, so that their text is unambiguous ("1", "1.5",
//! "-0.5") and no -0 is ever produced.
//!
//! Streams use explicit `ms-*` ids, so that every id is known to the model; consumer groups are
//! modelled with their last delivered id and pending entries (owner per id). Streams are never
//! deleted when emptied.

// `argv!` builds the Vec that most commands extend; the ones sent as they are borrow it.
#![allow(clippy::useless_vec)]

use crate::common;

use common::TestServer;
use proptest::prelude::*;
use redis::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// Servers, replies and the comparison loop
// ---------------------------------------------------------------------------------------------

/// One server per test function, so that each case's FLUSHALL only touches its own test.
const HASHES: usize = 0;
const LISTS: usize = 1;
const SETS: usize = 2;
const ZSETS: usize = 3;
const STREAMS: usize = 4;

/// The server of `slot`, started once.
fn server(slot: usize) -> &'static TestServer {
    static SERVERS: [OnceLock<&'static TestServer>; 5] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    SERVERS[slot].get_or_init(common::process_server)
}

macro_rules! argv {
    ($($x:expr),* $(,)?) => {
        vec![$($x.to_string()),*]
    };
}

/// A reply, as compared: bulk strings as text (every test value is ASCII), errors as the line
/// the server sent ("WRONGTYPE Operation against ...", "ERR index out of range").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum R {
    Nil,
    Ok,
    Int(i64),
    Bulk(String),
    Status(String),
    Arr(Vec<R>),
    Err(String),
}

fn reply(v: Value) -> R {
    match v {
        Value::Nil => R::Nil,
        Value::Okay => R::Ok,
        Value::SimpleString(s) if s == "OK" => R::Ok,
        Value::SimpleString(s) => R::Status(s),
        Value::Int(i) => R::Int(i),
        Value::BulkString(b) => R::Bulk(String::from_utf8_lossy(&b).into_owned()),
        Value::Array(items) => R::Arr(items.into_iter().map(reply).collect()),
        other => R::Err(format!("unexpected reply {other:?}")),
    }
}

/// Sends one command and returns its reply; a server error becomes `R::Err` with the error line
/// as sent (code and message).
fn run(c: &mut redis::Connection, args: &[String]) -> R {
    let mut cmd = redis::cmd(&args[0]);
    for a in &args[1..] {
        cmd.arg(a.as_str());
    }
    match cmd.query::<Value>(c) {
        Ok(v) => reply(v),
        Err(e) => match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => R::Err(format!("{code} {detail}")),
            (Some(code), None) => R::Err(code.to_string()),
            _ => R::Err(format!("client error: {e}")),
        },
    }
}

/// What the model expects of a reply.
#[derive(Debug, Clone)]
enum Exp {
    /// Exactly this.
    Is(R),
    /// An array of these elements, in any order.
    AnyOrder(Vec<R>),
    /// A flat array of these (field, value) pairs, the pairs in any order.
    AnyOrderPairs(Vec<(R, R)>),
}

impl Exp {
    fn matches(&self, got: &R) -> bool {
        match self {
            Exp::Is(r) => got == r,
            Exp::AnyOrder(want) => match got {
                R::Arr(items) => sorted(items.clone()) == sorted(want.clone()),
                _ => false,
            },
            Exp::AnyOrderPairs(want) => match got {
                R::Arr(items) if items.len() % 2 == 0 => {
                    let pairs: Vec<(R, R)> = items
                        .chunks(2)
                        .map(|p| (p[0].clone(), p[1].clone()))
                        .collect();
                    sorted(pairs) == sorted(want.clone())
                }
                _ => false,
            },
        }
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

fn ok() -> Exp {
    Exp::Is(R::Ok)
}

fn nil() -> Exp {
    Exp::Is(R::Nil)
}

fn int(n: i64) -> Exp {
    Exp::Is(R::Int(n))
}

fn err(msg: &str) -> Exp {
    Exp::Is(R::Err(msg.to_string()))
}

fn bulk(s: &str) -> R {
    R::Bulk(s.to_string())
}

fn arr<I: IntoIterator<Item = R>>(items: I) -> Exp {
    Exp::Is(R::Arr(items.into_iter().collect()))
}

/// The reference model: the keyspace of one database.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Hash(BTreeMap<String, String>),
    List(VecDeque<String>),
    Set(BTreeSet<String>),
    /// Member -> score.
    ZSet(BTreeMap<String, f64>),
    Stream(MStream),
}

impl Val {
    fn type_name(&self) -> &'static str {
        match self {
            Val::Str(_) => "string",
            Val::Hash(_) => "hash",
            Val::List(_) => "list",
            Val::Set(_) => "set",
            Val::ZSet(_) => "zset",
            Val::Stream(_) => "stream",
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Val::Str(_) => false,
            Val::Hash(h) => h.is_empty(),
            Val::List(l) => l.is_empty(),
            Val::Set(s) => s.is_empty(),
            Val::ZSet(z) => z.is_empty(),
            Val::Stream(_) => false,
        }
    }
}

type Db = BTreeMap<String, Val>;

/// A command of one type's test: its arguments, and what it does to the model and replies.
/// `model` returns `Err` for an error reply (which leaves the model unchanged) so that checks
/// can use `?`.
trait Model: std::fmt::Debug {
    fn args(&self) -> Vec<String>;
    fn model(&self, db: &mut Db) -> Result<Exp, Exp>;
}

/// Err(WRONGTYPE) when `k` holds a value of another type than `t`; a missing key is fine.
fn expect_type(db: &Db, k: &str, t: &str) -> Result<(), Exp> {
    match db.get(k) {
        Some(v) if v.type_name() != t => Err(err(WRONGTYPE)),
        _ => Ok(()),
    }
}

/// Writes `v` at `k`; an empty aggregate deletes the key instead, as Redis does.
fn store(db: &mut Db, k: &str, v: Val) {
    if v.is_empty() {
        db.remove(k);
    } else {
        db.insert(k.to_string(), v);
    }
}

// Copies of the value at a key whose type was checked (empty when the key is missing).

fn get_hash(db: &Db, k: &str) -> BTreeMap<String, String> {
    match db.get(k) {
        Some(Val::Hash(h)) => h.clone(),
        _ => BTreeMap::new(),
    }
}

fn get_list(db: &Db, k: &str) -> VecDeque<String> {
    match db.get(k) {
        Some(Val::List(l)) => l.clone(),
        _ => VecDeque::new(),
    }
}

fn get_set(db: &Db, k: &str) -> BTreeSet<String> {
    match db.get(k) {
        Some(Val::Set(s)) => s.clone(),
        _ => BTreeSet::new(),
    }
}

fn get_zset(db: &Db, k: &str) -> BTreeMap<String, f64> {
    match db.get(k) {
        Some(Val::ZSet(z)) => z.clone(),
        _ => BTreeMap::new(),
    }
}

/// The keyspace as (type, contents) per key: hash fields and values by field, lists in order,
/// set members sorted, sorted-set members and scores in rank order.
type State = BTreeMap<String, (String, Vec<String>)>;

fn strs(r: &R) -> Vec<String> {
    match r {
        R::Arr(items) => items
            .iter()
            .map(|x| match x {
                R::Bulk(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect(),
        R::Bulk(s) => vec![s.clone()],
        other => vec![format!("{other:?}")],
    }
}

fn server_state(c: &mut redis::Connection) -> State {
    let keys = strs(&run(c, &argv!["KEYS", "*"]));
    let mut state = State::new();
    for k in keys {
        let t = match run(c, &argv!["TYPE", k]) {
            R::Status(t) => t,
            other => format!("{other:?}"),
        };
        let contents = match t.as_str() {
            "string" => strs(&run(c, &argv!["GET", k])),
            "hash" => {
                let flat = strs(&run(c, &argv!["HGETALL", k]));
                let pairs: Vec<(String, String)> = flat
                    .chunks(2)
                    .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default()))
                    .collect();
                sorted(pairs)
                    .into_iter()
                    .flat_map(|(f, v)| [f, v])
                    .collect()
            }
            "list" => strs(&run(c, &argv!["LRANGE", k, "0", "-1"])),
            "set" => sorted(strs(&run(c, &argv!["SMEMBERS", k]))),
            "zset" => strs(&run(c, &argv!["ZRANGE", k, "0", "-1", "WITHSCORES"])),
            "stream" => server_stream(c, &k),
            _ => Vec::new(),
        };
        state.insert(k, (t, contents));
    }
    state
}

fn model_state(db: &Db) -> State {
    db.iter()
        .map(|(k, v)| {
            let contents: Vec<String> = match v {
                Val::Str(s) => vec![s.clone()],
                Val::Hash(h) => h.iter().flat_map(|(f, v)| [f.clone(), v.clone()]).collect(),
                Val::List(l) => l.iter().cloned().collect(),
                Val::Set(s) => s.iter().cloned().collect(),
                Val::ZSet(z) => zsorted(z)
                    .into_iter()
                    .flat_map(|(m, s)| [m, score_str(s)])
                    .collect(),
                Val::Stream(st) => st.state(),
            };
            (k.clone(), (v.type_name().to_string(), contents))
        })
        .collect()
}

/// Runs one case: FLUSHALL, then each command against the server and the model, comparing the
/// reply and DBSIZE after each, then the whole keyspace.
fn check_sequence<C: Model>(slot: usize, cmds: &[C]) -> Result<(), TestCaseError> {
    let mut c = server(slot).conn();
    prop_assert_eq!(run(&mut c, &argv!["FLUSHALL"]), R::Ok);
    let mut db = Db::new();
    for (i, cmd) in cmds.iter().enumerate() {
        let args = cmd.args();
        let before = model_state(&db);
        let got = run(&mut c, &args);
        let want = match cmd.model(&mut db) {
            Ok(e) | Err(e) => e,
        };
        prop_assert!(
            want.matches(&got),
            "command #{} `{}`: the server replied {:?}, the model expects {:?}\nmodel keyspace before it: {:?}",
            i,
            args.join(" "),
            got,
            want,
            before
        );
        let size = run(&mut c, &argv!["DBSIZE"]);
        prop_assert_eq!(
            &size,
            &R::Int(db.len() as i64),
            "DBSIZE after command #{} `{}`; model keyspace: {:?}",
            i,
            args.join(" "),
            model_state(&db)
        );
    }
    prop_assert_eq!(
        server_state(&mut c),
        model_state(&db),
        "the keyspace at the end (left: server, right: model)"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Keys and the generic commands every sequence mixes in
// ---------------------------------------------------------------------------------------------

fn key(k: u8) -> String {
    format!("k{k}")
}

/// One of three keys, k0 the busiest, so that aggregates grow and multi-key commands meet.
fn anykey() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)]
}

fn pick(xs: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(xs.to_vec())
}

fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

#[derive(Debug, Clone)]
enum Gen {
    /// SET k str: the key becomes a string, for WRONGTYPE.
    SetStr(u8),
    Del(u8),
    Exists(u8),
    Type(u8),
}

fn gen_cmd() -> impl Strategy<Value = Gen> {
    prop_oneof![
        1 => anykey().prop_map(Gen::SetStr),
        2 => anykey().prop_map(Gen::Del),
        2 => anykey().prop_map(Gen::Exists),
        1 => anykey().prop_map(Gen::Type),
    ]
}

impl Gen {
    fn args(&self) -> Vec<String> {
        match self {
            Gen::SetStr(k) => argv!["SET", key(*k), "str"],
            Gen::Del(k) => argv!["DEL", key(*k)],
            Gen::Exists(k) => argv!["EXISTS", key(*k)],
            Gen::Type(k) => argv!["TYPE", key(*k)],
        }
    }

    fn apply(&self, db: &mut Db) -> Exp {
        match self {
            Gen::SetStr(k) => {
                db.insert(key(*k), Val::Str("str".to_string()));
                ok()
            }
            Gen::Del(k) => int(db.remove(&key(*k)).is_some() as i64),
            Gen::Exists(k) => int(db.contains_key(&key(*k)) as i64),
            Gen::Type(k) => Exp::Is(R::Status(
                db.get(&key(*k)).map_or("none", Val::type_name).to_string(),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hashes
// ---------------------------------------------------------------------------------------------

const FIELDS: &[&str] = &["a", "b", "c", "d"];
/// Some are integers (for HINCRBY), some are not, one is empty.
const HVALUES: &[&str] = &["", "x", "yy", "1", "-3", "12"];

#[derive(Debug, Clone)]
enum HCmd {
    G(Gen),
    HSet(u8, Vec<(&'static str, &'static str)>),
    HDel(u8, Vec<&'static str>),
    HGet(u8, &'static str),
    HMGet(u8, Vec<&'static str>),
    HLen(u8),
    HExists(u8, &'static str),
    HIncrBy(u8, &'static str, i64),
    HGetAll(u8),
    HSetNx(u8, &'static str, &'static str),
    HStrLen(u8, &'static str),
    HKeys(u8),
    HVals(u8),
}

fn hash_cmd() -> impl Strategy<Value = HCmd> {
    prop_oneof![
        4 => gen_cmd().prop_map(HCmd::G),
        6 => (anykey(), prop::collection::vec((pick(FIELDS), pick(HVALUES)), 1..4))
            .prop_map(|(k, p)| HCmd::HSet(k, p)),
        3 => (anykey(), prop::collection::vec(pick(FIELDS), 1..4))
            .prop_map(|(k, f)| HCmd::HDel(k, f)),
        2 => (anykey(), pick(FIELDS)).prop_map(|(k, f)| HCmd::HGet(k, f)),
        1 => (anykey(), prop::collection::vec(pick(FIELDS), 1..5))
            .prop_map(|(k, f)| HCmd::HMGet(k, f)),
        1 => anykey().prop_map(HCmd::HLen),
        1 => (anykey(), pick(FIELDS)).prop_map(|(k, f)| HCmd::HExists(k, f)),
        3 => (anykey(), pick(FIELDS), -5i64..=5).prop_map(|(k, f, n)| HCmd::HIncrBy(k, f, n)),
        2 => anykey().prop_map(HCmd::HGetAll),
        2 => (anykey(), pick(FIELDS), pick(HVALUES)).prop_map(|(k, f, v)| HCmd::HSetNx(k, f, v)),
        1 => (anykey(), pick(FIELDS)).prop_map(|(k, f)| HCmd::HStrLen(k, f)),
        1 => anykey().prop_map(HCmd::HKeys),
        1 => anykey().prop_map(HCmd::HVals),
    ]
}

/// A hash value as HINCRBY reads it: a canonical 64-bit integer ("1", "-3"), not "", "+1" or
/// "01".
fn redis_int(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|n| n.to_string() == s)
}

impl Model for HCmd {
    fn args(&self) -> Vec<String> {
        match self {
            HCmd::G(g) => g.args(),
            HCmd::HSet(k, pairs) => {
                let mut a = argv!["HSET", key(*k)];
                for (f, v) in pairs {
                    a.push(f.to_string());
                    a.push(v.to_string());
                }
                a
            }
            HCmd::HDel(k, fs) => with(argv!["HDEL", key(*k)], fs),
            HCmd::HGet(k, f) => argv!["HGET", key(*k), f],
            HCmd::HMGet(k, fs) => with(argv!["HMGET", key(*k)], fs),
            HCmd::HLen(k) => argv!["HLEN", key(*k)],
            HCmd::HExists(k, f) => argv!["HEXISTS", key(*k), f],
            HCmd::HIncrBy(k, f, n) => argv!["HINCRBY", key(*k), f, n],
            HCmd::HGetAll(k) => argv!["HGETALL", key(*k)],
            HCmd::HSetNx(k, f, v) => argv!["HSETNX", key(*k), f, v],
            HCmd::HStrLen(k, f) => argv!["HSTRLEN", key(*k), f],
            HCmd::HKeys(k) => argv!["HKEYS", key(*k)],
            HCmd::HVals(k) => argv!["HVALS", key(*k)],
        }
    }

    fn model(&self, db: &mut Db) -> Result<Exp, Exp> {
        let k = match self {
            HCmd::G(g) => return Ok(g.apply(db)),
            HCmd::HSet(k, _)
            | HCmd::HDel(k, _)
            | HCmd::HGet(k, _)
            | HCmd::HMGet(k, _)
            | HCmd::HLen(k)
            | HCmd::HExists(k, _)
            | HCmd::HIncrBy(k, _, _)
            | HCmd::HGetAll(k)
            | HCmd::HSetNx(k, _, _)
            | HCmd::HStrLen(k, _)
            | HCmd::HKeys(k)
            | HCmd::HVals(k) => key(*k),
        };
        // Every hash command answers WRONGTYPE on another type before anything else.
        expect_type(db, &k, "hash")?;
        let mut h = get_hash(db, &k);
        Ok(match self {
            HCmd::G(_) => unreachable!(),
            HCmd::HSet(_, pairs) => {
                let mut added = 0;
                for (f, v) in pairs {
                    if h.insert(f.to_string(), v.to_string()).is_none() {
                        added += 1;
                    }
                }
                store(db, &k, Val::Hash(h));
                int(added)
            }
            HCmd::HDel(_, fs) => {
                let mut removed = 0;
                for f in fs {
                    if h.remove(*f).is_some() {
                        removed += 1;
                    }
                }
                store(db, &k, Val::Hash(h));
                int(removed)
            }
            HCmd::HGet(_, f) => Exp::Is(h.get(*f).map_or(R::Nil, |v| bulk(v))),
            HCmd::HMGet(_, fs) => arr(fs.iter().map(|f| h.get(*f).map_or(R::Nil, |v| bulk(v)))),
            HCmd::HLen(_) => int(h.len() as i64),
            HCmd::HExists(_, f) => int(h.contains_key(*f) as i64),
            HCmd::HIncrBy(_, f, n) => {
                let cur = match h.get(*f) {
                    None => 0,
                    Some(v) => match redis_int(v) {
                        Some(i) => i,
                        None => return Err(err("ERR hash value is not an integer")),
                    },
                };
                let Some(new) = cur.checked_add(*n) else {
                    return Err(err("ERR increment or decrement would overflow"));
                };
                h.insert(f.to_string(), new.to_string());
                store(db, &k, Val::Hash(h));
                int(new)
            }
            HCmd::HGetAll(_) => {
                Exp::AnyOrderPairs(h.iter().map(|(f, v)| (bulk(f), bulk(v))).collect())
            }
            HCmd::HSetNx(_, f, v) => {
                if h.contains_key(*f) {
                    int(0)
                } else {
                    h.insert(f.to_string(), v.to_string());
                    store(db, &k, Val::Hash(h));
                    int(1)
                }
            }
            HCmd::HStrLen(_, f) => int(h.get(*f).map_or(0, |v| v.len() as i64)),
            HCmd::HKeys(_) => Exp::AnyOrder(h.keys().map(|f| bulk(f)).collect()),
            HCmd::HVals(_) => Exp::AnyOrder(h.values().map(|v| bulk(v)).collect()),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------

const LVALUES: &[&str] = &["a", "b", "c"];

#[derive(Debug, Clone)]
enum LCmd {
    G(Gen),
    LPush(u8, Vec<&'static str>),
    RPush(u8, Vec<&'static str>),
    /// LPOP key [count]; a count of -1 is an error.
    LPop(u8, Option<i64>),
    RPop(u8, Option<i64>),
    LLen(u8),
    LRange(u8, i64, i64),
    LIndex(u8, i64),
    LSet(u8, i64, &'static str),
    LRem(u8, i64, &'static str),
    LTrim(u8, i64, i64),
    /// LINSERT key BEFORE|AFTER pivot element (true: BEFORE).
    LInsert(u8, bool, &'static str, &'static str),
    /// LMOVE source destination LEFT|RIGHT LEFT|RIGHT (true: LEFT).
    LMove(u8, u8, bool, bool),
}

fn pop_count() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        3 => Just(None),
        4 => (0i64..4).prop_map(Some),
        1 => Just(Some(-1)),
    ]
}

fn index() -> std::ops::Range<i64> {
    -5..5
}

/// A start and stop for LRANGE, LTRIM, ZRANGE, ZREMRANGEBYRANK: mostly ranges that select
/// something (forward, or up to -1), sometimes any two indexes.
fn rank_pair() -> impl Strategy<Value = (i64, i64)> {
    prop_oneof![
        3 => (index(), index()),
        2 => (index(), Just(-1i64)),
        2 => (0i64..3, 0i64..6),
    ]
}

fn list_cmd() -> impl Strategy<Value = LCmd> {
    prop_oneof![
        4 => gen_cmd().prop_map(LCmd::G),
        5 => (anykey(), prop::collection::vec(pick(LVALUES), 1..5))
            .prop_map(|(k, v)| LCmd::LPush(k, v)),
        5 => (anykey(), prop::collection::vec(pick(LVALUES), 1..5))
            .prop_map(|(k, v)| LCmd::RPush(k, v)),
        2 => (anykey(), pop_count()).prop_map(|(k, n)| LCmd::LPop(k, n)),
        2 => (anykey(), pop_count()).prop_map(|(k, n)| LCmd::RPop(k, n)),
        1 => anykey().prop_map(LCmd::LLen),
        3 => (anykey(), rank_pair()).prop_map(|(k, (a, b))| LCmd::LRange(k, a, b)),
        2 => (anykey(), index()).prop_map(|(k, i)| LCmd::LIndex(k, i)),
        2 => (anykey(), index(), pick(LVALUES)).prop_map(|(k, i, v)| LCmd::LSet(k, i, v)),
        2 => (anykey(), -3i64..=3, pick(LVALUES)).prop_map(|(k, n, v)| LCmd::LRem(k, n, v)),
        1 => (anykey(), rank_pair()).prop_map(|(k, (a, b))| LCmd::LTrim(k, a, b)),
        2 => (anykey(), any::<bool>(), pick(LVALUES), pick(LVALUES))
            .prop_map(|(k, before, p, v)| LCmd::LInsert(k, before, p, v)),
        3 => (anykey(), anykey(), any::<bool>(), any::<bool>())
            .prop_map(|(s, d, from, to)| LCmd::LMove(s, d, from, to)),
    ]
}

/// Redis's clamping of a rank range (LRANGE, LTRIM, ZRANGE, ZREMRANGEBYRANK): the inclusive
/// index range that `start`..`stop` selects in a sequence of `len`, or None when it selects
/// nothing.
fn rank_range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { start + len } else { start };
    let mut stop = if stop < 0 { stop + len } else { stop };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return None;
    }
    if stop >= len {
        stop = len - 1;
    }
    Some((start as usize, stop as usize))
}

/// LINDEX/LSET's index: negative counts from the end; None when out of range.
fn list_index(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { i + len as i64 } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

fn side(left: bool) -> &'static str {
    if left {
        "LEFT"
    } else {
        "RIGHT"
    }
}

fn pop_args(name: &str, k: u8, count: Option<i64>) -> Vec<String> {
    let mut a = argv![name, key(k)];
    if let Some(n) = count {
        a.push(n.to_string());
    }
    a
}

/// LPOP/RPOP: the count is checked first, then the type; a missing key is nil (a null array with
/// a count); without a count one element, with one an array of up to count elements.
fn model_pop(db: &mut Db, k: u8, count: Option<i64>, left: bool) -> Result<Exp, Exp> {
    if matches!(count, Some(n) if n < 0) {
        return Err(err(NOT_POSITIVE));
    }
    let k = key(k);
    expect_type(db, &k, "list")?;
    if !db.contains_key(&k) {
        return Ok(nil());
    }
    let mut l = get_list(db, &k);
    let n = count.map_or(1, |n| n as usize).min(l.len());
    let mut popped = Vec::new();
    for _ in 0..n {
        let v = if left { l.pop_front() } else { l.pop_back() };
        popped.push(bulk(&v.unwrap()));
    }
    store(db, &k, Val::List(l));
    Ok(match count {
        None => Exp::Is(popped.pop().unwrap_or(R::Nil)),
        Some(_) => arr(popped),
    })
}

impl Model for LCmd {
    fn args(&self) -> Vec<String> {
        match self {
            LCmd::G(g) => g.args(),
            LCmd::LPush(k, vs) => with(argv!["LPUSH", key(*k)], vs),
            LCmd::RPush(k, vs) => with(argv!["RPUSH", key(*k)], vs),
            LCmd::LPop(k, n) => pop_args("LPOP", *k, *n),
            LCmd::RPop(k, n) => pop_args("RPOP", *k, *n),
            LCmd::LLen(k) => argv!["LLEN", key(*k)],
            LCmd::LRange(k, a, b) => argv!["LRANGE", key(*k), a, b],
            LCmd::LIndex(k, i) => argv!["LINDEX", key(*k), i],
            LCmd::LSet(k, i, v) => argv!["LSET", key(*k), i, v],
            LCmd::LRem(k, n, v) => argv!["LREM", key(*k), n, v],
            LCmd::LTrim(k, a, b) => argv!["LTRIM", key(*k), a, b],
            LCmd::LInsert(k, before, p, v) => argv![
                "LINSERT",
                key(*k),
                if *before { "BEFORE" } else { "AFTER" },
                p,
                v
            ],
            LCmd::LMove(s, d, from, to) => {
                argv!["LMOVE", key(*s), key(*d), side(*from), side(*to)]
            }
        }
    }

    fn model(&self, db: &mut Db) -> Result<Exp, Exp> {
        Ok(match self {
            LCmd::G(g) => g.apply(db),
            LCmd::LPush(k, vs) | LCmd::RPush(k, vs) => {
                let k = key(*k);
                expect_type(db, &k, "list")?;
                let mut l = get_list(db, &k);
                for v in vs {
                    if matches!(self, LCmd::LPush(..)) {
                        l.push_front(v.to_string());
                    } else {
                        l.push_back(v.to_string());
                    }
                }
                let n = l.len();
                store(db, &k, Val::List(l));
                int(n as i64)
            }
            LCmd::LPop(k, n) => return model_pop(db, *k, *n, true),
            LCmd::RPop(k, n) => return model_pop(db, *k, *n, false),
            LCmd::LLen(k) => {
                let k = key(*k);
                expect_type(db, &k, "list")?;
                int(get_list(db, &k).len() as i64)
            }
            LCmd::LRange(k, a, b) => {
                let k = key(*k);
                expect_type(db, &k, "list")?;
                let l = get_list(db, &k);
                match rank_range(l.len(), *a, *b) {
                    None => arr(Vec::new()),
                    Some((s, e)) => arr(l.range(s..=e).map(|v| bulk(v))),
                }
            }
            LCmd::LIndex(k, i) => {
                let k = key(*k);
                expect_type(db, &k, "list")?;
                let l = get_list(db, &k);
                match list_index(l.len(), *i) {
                    None => nil(),
                    Some(i) => Exp::Is(bulk(&l[i])),
                }
            }
            LCmd::LSet(k, i, v) => {
                let k = key(*k);
                expect_type(db, &k, "list")?;
                if !db.contains_key(&k) {
                    return Err(err("ERR no such key"));
                }
                let mut l = get_list(db, &k);
                let Some(i) = list_index(l.len(), *i) else {
                    return Err(err("ERR index out of range"));
                };
                l[i] = v.to_string();
                store(db, &k, Val::List(l));
                ok()
            }
            LCmd::LRem(k, n, v) => {
                let k = key(*k);
                expect_type(db, &k, "list")?;
                let l = get_list(db, &k);
                let limit = if *n == 0 {
                    usize::MAX
                } else {
                    n.unsigned_abs() as usize
                };
                let mut removed = 0;
                let mut kept = VecDeque::new();
                if *n >= 0 {
                    for x in l {
                        if x == *v && removed < limit {
                            removed += 1;
                        } else {
                            kept.push_back(x);
                        }
                    }
                } else {
                    for x in l.into_iter().rev() {
                        if x == *v && removed < limit {
                            removed += 1;
                        } else {
                            kept.push_front(x);
                        }
                    }
                }
                store(db, &k, Val::List(kept));
                int(removed as i64)
            }
            LCmd::LTrim(k, a, b) => {
                let k = key(*k);
                expect_type(db, &k, "list")?;
                let l = get_list(db, &k);
                let kept: VecDeque<String> = match rank_range(l.len(), *a, *b) {
                    None => VecDeque::new(),
                    Some((s, e)) => l.range(s..=e).cloned().collect(),
                };
                store(db, &k, Val::List(kept));
                ok()
            }
            LCmd::LInsert(k, before, p, v) => {
                let k = key(*k);
                expect_type(db, &k, "list")?;
                if !db.contains_key(&k) {
                    return Ok(int(0));
                }
                let mut l = get_list(db, &k);
                match l.iter().position(|x| x == p) {
                    None => int(-1),
                    Some(i) => {
                        l.insert(if *before { i } else { i + 1 }, v.to_string());
                        let n = l.len();
                        store(db, &k, Val::List(l));
                        int(n as i64)
                    }
                }
            }
            LCmd::LMove(s, d, from_left, to_left) => {
                let (s, d) = (key(*s), key(*d));
                // The source first: missing is nil whatever the destination holds.
                expect_type(db, &s, "list")?;
                if !db.contains_key(&s) {
                    return Ok(nil());
                }
                expect_type(db, &d, "list")?;
                let mut src = get_list(db, &s);
                let v = if *from_left {
                    src.pop_front()
                } else {
                    src.pop_back()
                };
                let v = v.unwrap();
                store(db, &s, Val::List(src));
                // Read the destination after writing the source: they may be the same list.
                let mut dst = get_list(db, &d);
                if *to_left {
                    dst.push_front(v.clone());
                } else {
                    dst.push_back(v.clone());
                }
                store(db, &d, Val::List(dst));
                Exp::Is(bulk(&v))
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Sets
// ---------------------------------------------------------------------------------------------

const MEMBERS: &[&str] = &["a", "b", "c", "d", "e"];

#[derive(Debug, Clone, Copy)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

impl SetOp {
    fn name(self) -> &'static str {
        match self {
            SetOp::Inter => "SINTER",
            SetOp::Union => "SUNION",
            SetOp::Diff => "SDIFF",
        }
    }
}

#[derive(Debug, Clone)]
enum SCmd {
    G(Gen),
    SAdd(u8, Vec<&'static str>),
    SRem(u8, Vec<&'static str>),
    SIsMember(u8, &'static str),
    SCard(u8),
    SMembers(u8),
    /// SINTER/SUNION/SDIFF key [key ...]
    Op(SetOp, Vec<u8>),
    /// SINTERSTORE/SUNIONSTORE/SDIFFSTORE destination key [key ...]
    Store(SetOp, u8, Vec<u8>),
    SMove(u8, u8, &'static str),
}

fn set_op() -> impl Strategy<Value = SetOp> {
    prop_oneof![Just(SetOp::Inter), Just(SetOp::Union), Just(SetOp::Diff)]
}

fn set_cmd() -> impl Strategy<Value = SCmd> {
    prop_oneof![
        4 => gen_cmd().prop_map(SCmd::G),
        6 => (anykey(), prop::collection::vec(pick(MEMBERS), 1..4))
            .prop_map(|(k, m)| SCmd::SAdd(k, m)),
        3 => (anykey(), prop::collection::vec(pick(MEMBERS), 1..3))
            .prop_map(|(k, m)| SCmd::SRem(k, m)),
        2 => (anykey(), pick(MEMBERS)).prop_map(|(k, m)| SCmd::SIsMember(k, m)),
        1 => anykey().prop_map(SCmd::SCard),
        2 => anykey().prop_map(SCmd::SMembers),
        3 => (set_op(), prop::collection::vec(anykey(), 1..4)).prop_map(|(op, ks)| SCmd::Op(op, ks)),
        3 => (set_op(), anykey(), prop::collection::vec(anykey(), 1..4))
            .prop_map(|(op, d, ks)| SCmd::Store(op, d, ks)),
        3 => (anykey(), anykey(), pick(MEMBERS)).prop_map(|(s, d, m)| SCmd::SMove(s, d, m)),
    ]
}

/// SINTER/SUNION/SDIFF over `keys`: every key's type is checked (a missing one is an empty set).
fn model_set_op(db: &Db, op: SetOp, keys: &[u8]) -> Result<BTreeSet<String>, Exp> {
    for k in keys {
        expect_type(db, &key(*k), "set")?;
    }
    let mut sets = keys.iter().map(|k| get_set(db, &key(*k)));
    let first = sets.next().unwrap_or_default();
    Ok(sets.fold(first, |acc, s| match op {
        SetOp::Inter => acc.intersection(&s).cloned().collect(),
        SetOp::Union => acc.union(&s).cloned().collect(),
        SetOp::Diff => acc.difference(&s).cloned().collect(),
    }))
}

impl Model for SCmd {
    fn args(&self) -> Vec<String> {
        match self {
            SCmd::G(g) => g.args(),
            SCmd::SAdd(k, ms) => with(argv!["SADD", key(*k)], ms),
            SCmd::SRem(k, ms) => with(argv!["SREM", key(*k)], ms),
            SCmd::SIsMember(k, m) => argv!["SISMEMBER", key(*k), m],
            SCmd::SCard(k) => argv!["SCARD", key(*k)],
            SCmd::SMembers(k) => argv!["SMEMBERS", key(*k)],
            SCmd::Op(op, ks) => {
                let mut a = argv![op.name()];
                a.extend(ks.iter().map(|k| key(*k)));
                a
            }
            SCmd::Store(op, d, ks) => {
                let mut a = argv![format!("{}STORE", op.name()), key(*d)];
                a.extend(ks.iter().map(|k| key(*k)));
                a
            }
            SCmd::SMove(s, d, m) => argv!["SMOVE", key(*s), key(*d), m],
        }
    }

    fn model(&self, db: &mut Db) -> Result<Exp, Exp> {
        Ok(match self {
            SCmd::G(g) => g.apply(db),
            SCmd::SAdd(k, ms) => {
                let k = key(*k);
                expect_type(db, &k, "set")?;
                let mut s = get_set(db, &k);
                let added = ms.iter().filter(|m| s.insert(m.to_string())).count();
                store(db, &k, Val::Set(s));
                int(added as i64)
            }
            SCmd::SRem(k, ms) => {
                let k = key(*k);
                expect_type(db, &k, "set")?;
                let mut s = get_set(db, &k);
                let removed = ms.iter().filter(|m| s.remove(**m)).count();
                store(db, &k, Val::Set(s));
                int(removed as i64)
            }
            SCmd::SIsMember(k, m) => {
                let k = key(*k);
                expect_type(db, &k, "set")?;
                int(get_set(db, &k).contains(*m) as i64)
            }
            SCmd::SCard(k) => {
                let k = key(*k);
                expect_type(db, &k, "set")?;
                int(get_set(db, &k).len() as i64)
            }
            SCmd::SMembers(k) => {
                let k = key(*k);
                expect_type(db, &k, "set")?;
                Exp::AnyOrder(get_set(db, &k).iter().map(|m| bulk(m)).collect())
            }
            SCmd::Op(op, ks) => {
                let r = model_set_op(db, *op, ks)?;
                Exp::AnyOrder(r.iter().map(|m| bulk(m)).collect())
            }
            SCmd::Store(op, d, ks) => {
                // The destination's type does not matter: it is overwritten, or deleted when
                // the result is empty.
                let r = model_set_op(db, *op, ks)?;
                let n = r.len();
                store(db, &key(*d), Val::Set(r));
                int(n as i64)
            }
            SCmd::SMove(s, d, m) => {
                let (s, d) = (key(*s), key(*d));
                // A missing source is 0 whatever the destination holds.
                if !db.contains_key(&s) {
                    return Ok(int(0));
                }
                expect_type(db, &s, "set")?;
                expect_type(db, &d, "set")?;
                let mut src = get_set(db, &s);
                if s == d {
                    return Ok(int(src.contains(*m) as i64));
                }
                if !src.remove(*m) {
                    return Ok(int(0));
                }
                store(db, &s, Val::Set(src));
                let mut dst = get_set(db, &d);
                dst.insert(m.to_string());
                store(db, &d, Val::Set(dst));
                int(1)
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Sorted sets
// ---------------------------------------------------------------------------------------------

/// Scores are generated in half units: `n` stands for `n / 2`.
fn half(n: i32) -> f64 {
    n as f64 / 2.0
}

/// A score as Redis writes it, for the values these tests make: "2", "-0.5", "10.5".
fn score_str(s: f64) -> String {
    format!("{s}")
}

/// Members in rank order: by score, then by member.
fn zsorted(z: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = z.iter().map(|(m, s)| (m.clone(), *s)).collect();
    v.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
    v
}

/// Members, each followed by its score when `withscores`.
fn zreply(entries: &[(String, f64)], withscores: bool) -> Vec<R> {
    let mut out = Vec::new();
    for (m, s) in entries {
        out.push(bulk(m));
        if withscores {
            out.push(R::Bulk(score_str(*s)));
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
struct ZFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
}

fn zflags() -> impl Strategy<Value = ZFlags> {
    // Mostly plain adds, so that the sets fill up; XX on a missing key adds nothing.
    let options = pick(&["NX", "XX", "GT", "LT", "XX GT", "XX LT"]);
    let invalid = pick(&["NX XX", "GT LT", "NX GT", "NX LT", "NX XX GT"]);
    let flags = prop_oneof![10 => Just(""), 8 => options, 1 => invalid];
    (flags, any::<bool>()).prop_map(|(f, ch)| ZFlags {
        nx: f.contains("NX"),
        xx: f.contains("XX"),
        gt: f.contains("GT"),
        lt: f.contains("LT"),
        ch,
    })
}

/// A ZRANGEBYSCORE/ZCOUNT bound.
#[derive(Debug, Clone, Copy)]
enum Bound {
    NegInf,
    PosInf,
    Incl(i32),
    Excl(i32),
}

impl Bound {
    fn arg(self) -> String {
        match self {
            Bound::NegInf => "-inf".to_string(),
            Bound::PosInf => "+inf".to_string(),
            Bound::Incl(n) => score_str(half(n)),
            Bound::Excl(n) => format!("({}", score_str(half(n))),
        }
    }

    fn above_min(self, s: f64) -> bool {
        match self {
            Bound::NegInf => true,
            Bound::PosInf => false,
            Bound::Incl(n) => s >= half(n),
            Bound::Excl(n) => s > half(n),
        }
    }

    fn below_max(self, s: f64) -> bool {
        match self {
            Bound::NegInf => false,
            Bound::PosInf => true,
            Bound::Incl(n) => s <= half(n),
            Bound::Excl(n) => s < half(n),
        }
    }
}

fn bound() -> impl Strategy<Value = Bound> {
    prop_oneof![
        1 => Just(Bound::NegInf),
        1 => Just(Bound::PosInf),
        3 => (-6i32..=6).prop_map(Bound::Incl),
        3 => (-6i32..=6).prop_map(Bound::Excl),
    ]
}

/// A min and max: mostly min <= max with each end inclusive or exclusive, sometimes any two
/// bounds (infinities, reversed).
fn score_range() -> impl Strategy<Value = (Bound, Bound)> {
    let end = |n: i32, excl: bool| if excl { Bound::Excl(n) } else { Bound::Incl(n) };
    prop_oneof![
        5 => (-6i32..=6, 0i32..=6, any::<bool>(), any::<bool>())
            .prop_map(move |(lo, w, xl, xh)| (end(lo, xl), end(lo + w, xh))),
        1 => Just((Bound::NegInf, Bound::PosInf)),
        2 => (bound(), bound()),
    ]
}

/// Scores from -3 to 3 in steps of 0.5 (in half units), so that ties are common.
fn zscore() -> std::ops::RangeInclusive<i32> {
    -6..=6
}

#[derive(Debug, Clone)]
enum ZCmd {
    G(Gen),
    /// ZADD key [NX|XX] [GT|LT] [CH] score member [score member ...]
    ZAdd(u8, ZFlags, Vec<(i32, &'static str)>),
    ZIncrBy(u8, i32, &'static str),
    ZRem(u8, Vec<&'static str>),
    ZScore(u8, &'static str),
    ZCard(u8),
    /// ZRANK (false) or ZREVRANK (true).
    ZRank(u8, &'static str, bool),
    /// ZRANGE key start stop [WITHSCORES]
    ZRange(u8, i64, i64, bool),
    /// ZRANGEBYSCORE key min max [WITHSCORES]
    ZRangeByScore(u8, Bound, Bound, bool),
    ZCount(u8, Bound, Bound),
    /// ZPOPMIN (false) or ZPOPMAX (true), with an optional count (-1 is an error).
    ZPop(u8, bool, Option<i64>),
    ZRemRangeByRank(u8, i64, i64),
}

fn zset_cmd() -> impl Strategy<Value = ZCmd> {
    prop_oneof![
        4 => gen_cmd().prop_map(ZCmd::G),
        9 => (anykey(), zflags(), prop::collection::vec((zscore(), pick(MEMBERS)), 1..5))
            .prop_map(|(k, f, p)| ZCmd::ZAdd(k, f, p)),
        2 => (anykey(), zscore(), pick(MEMBERS)).prop_map(|(k, n, m)| ZCmd::ZIncrBy(k, n, m)),
        2 => (anykey(), prop::collection::vec(pick(MEMBERS), 1..3))
            .prop_map(|(k, m)| ZCmd::ZRem(k, m)),
        2 => (anykey(), pick(MEMBERS)).prop_map(|(k, m)| ZCmd::ZScore(k, m)),
        1 => anykey().prop_map(ZCmd::ZCard),
        2 => (anykey(), pick(MEMBERS), any::<bool>()).prop_map(|(k, m, r)| ZCmd::ZRank(k, m, r)),
        3 => (anykey(), rank_pair(), any::<bool>())
            .prop_map(|(k, (a, b), w)| ZCmd::ZRange(k, a, b, w)),
        3 => (anykey(), score_range(), any::<bool>())
            .prop_map(|(k, (a, b), w)| ZCmd::ZRangeByScore(k, a, b, w)),
        2 => (anykey(), score_range()).prop_map(|(k, (a, b))| ZCmd::ZCount(k, a, b)),
        3 => (anykey(), any::<bool>(), pop_count()).prop_map(|(k, max, n)| ZCmd::ZPop(k, max, n)),
        1 => (anykey(), rank_pair()).prop_map(|(k, (a, b))| ZCmd::ZRemRangeByRank(k, a, b)),
    ]
}

impl Model for ZCmd {
    fn args(&self) -> Vec<String> {
        match self {
            ZCmd::G(g) => g.args(),
            ZCmd::ZAdd(k, f, pairs) => {
                let mut a = argv!["ZADD", key(*k)];
                for (on, flag) in [
                    (f.nx, "NX"),
                    (f.xx, "XX"),
                    (f.gt, "GT"),
                    (f.lt, "LT"),
                    (f.ch, "CH"),
                ] {
                    if on {
                        a.push(flag.to_string());
                    }
                }
                for (n, m) in pairs {
                    a.push(score_str(half(*n)));
                    a.push(m.to_string());
                }
                a
            }
            ZCmd::ZIncrBy(k, n, m) => argv!["ZINCRBY", key(*k), score_str(half(*n)), m],
            ZCmd::ZRem(k, ms) => with(argv!["ZREM", key(*k)], ms),
            ZCmd::ZScore(k, m) => argv!["ZSCORE", key(*k), m],
            ZCmd::ZCard(k) => argv!["ZCARD", key(*k)],
            ZCmd::ZRank(k, m, rev) => {
                argv![if *rev { "ZREVRANK" } else { "ZRANK" }, key(*k), m]
            }
            ZCmd::ZRange(k, a, b, w) => {
                let mut v = argv!["ZRANGE", key(*k), a, b];
                if *w {
                    v.push("WITHSCORES".to_string());
                }
                v
            }
            ZCmd::ZRangeByScore(k, min, max, w) => {
                let mut v = argv!["ZRANGEBYSCORE", key(*k), min.arg(), max.arg()];
                if *w {
                    v.push("WITHSCORES".to_string());
                }
                v
            }
            ZCmd::ZCount(k, min, max) => argv!["ZCOUNT", key(*k), min.arg(), max.arg()],
            ZCmd::ZPop(k, max, n) => pop_args(if *max { "ZPOPMAX" } else { "ZPOPMIN" }, *k, *n),
            ZCmd::ZRemRangeByRank(k, a, b) => argv!["ZREMRANGEBYRANK", key(*k), a, b],
        }
    }

    fn model(&self, db: &mut Db) -> Result<Exp, Exp> {
        Ok(match self {
            ZCmd::G(g) => g.apply(db),
            ZCmd::ZAdd(k, f, pairs) => {
                // Option conflicts are reported before the key is looked at.
                if f.nx && f.xx {
                    return Err(err(
                        "ERR XX and NX options at the same time are not compatible",
                    ));
                }
                if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
                    return Err(err(
                        "ERR GT, LT, and/or NX options at the same time are not compatible",
                    ));
                }
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                let mut z = get_zset(db, &k);
                let (mut added, mut changed) = (0, 0);
                // Pairs apply in order: a member given twice is added, then updated.
                for (n, m) in pairs {
                    let s = half(*n);
                    match z.get(*m).copied() {
                        Some(cur) => {
                            if f.nx || (f.gt && s <= cur) || (f.lt && s >= cur) {
                                continue;
                            }
                            if s != cur {
                                z.insert(m.to_string(), s);
                                changed += 1;
                            }
                        }
                        None => {
                            if f.xx {
                                continue;
                            }
                            z.insert(m.to_string(), s);
                            added += 1;
                        }
                    }
                }
                // XX on a missing key adds nothing and creates no key.
                store(db, &k, Val::ZSet(z));
                int(if f.ch { added + changed } else { added })
            }
            ZCmd::ZIncrBy(k, n, m) => {
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                let mut z = get_zset(db, &k);
                let new = z.get(*m).copied().unwrap_or(0.0) + half(*n);
                z.insert(m.to_string(), new);
                store(db, &k, Val::ZSet(z));
                Exp::Is(R::Bulk(score_str(new)))
            }
            ZCmd::ZRem(k, ms) => {
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                let mut z = get_zset(db, &k);
                let removed = ms.iter().filter(|m| z.remove(**m).is_some()).count();
                store(db, &k, Val::ZSet(z));
                int(removed as i64)
            }
            ZCmd::ZScore(k, m) => {
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                Exp::Is(
                    get_zset(db, &k)
                        .get(*m)
                        .map_or(R::Nil, |s| R::Bulk(score_str(*s))),
                )
            }
            ZCmd::ZCard(k) => {
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                int(get_zset(db, &k).len() as i64)
            }
            ZCmd::ZRank(k, m, rev) => {
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                let sorted = zsorted(&get_zset(db, &k));
                match sorted.iter().position(|(x, _)| x == m) {
                    None => nil(),
                    Some(i) if *rev => int((sorted.len() - 1 - i) as i64),
                    Some(i) => int(i as i64),
                }
            }
            ZCmd::ZRange(k, a, b, w) => {
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                let sorted = zsorted(&get_zset(db, &k));
                match rank_range(sorted.len(), *a, *b) {
                    None => arr(Vec::new()),
                    Some((s, e)) => arr(zreply(&sorted[s..=e], *w)),
                }
            }
            ZCmd::ZRangeByScore(k, min, max, w) => {
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                let hits: Vec<(String, f64)> = zsorted(&get_zset(db, &k))
                    .into_iter()
                    .filter(|(_, s)| min.above_min(*s) && max.below_max(*s))
                    .collect();
                arr(zreply(&hits, *w))
            }
            ZCmd::ZCount(k, min, max) => {
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                let n = get_zset(db, &k)
                    .values()
                    .filter(|s| min.above_min(**s) && max.below_max(**s))
                    .count();
                int(n as i64)
            }
            ZCmd::ZPop(k, max, count) => {
                // The count is checked before the type; a missing key is an empty array.
                if matches!(count, Some(n) if *n < 0) {
                    return Err(err(NOT_POSITIVE));
                }
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                let mut z = get_zset(db, &k);
                let mut sorted = zsorted(&z);
                if *max {
                    sorted.reverse();
                }
                let n = count.map_or(1, |n| n as usize).min(sorted.len());
                let popped = &sorted[..n];
                for (m, _) in popped {
                    z.remove(m);
                }
                store(db, &k, Val::ZSet(z));
                arr(zreply(popped, true))
            }
            ZCmd::ZRemRangeByRank(k, a, b) => {
                let k = key(*k);
                expect_type(db, &k, "zset")?;
                let mut z = get_zset(db, &k);
                let sorted = zsorted(&z);
                let removed = match rank_range(sorted.len(), *a, *b) {
                    None => 0,
                    Some((s, e)) => {
                        for (m, _) in &sorted[s..=e] {
                            z.remove(m);
                        }
                        e - s + 1
                    }
                };
                store(db, &k, Val::ZSet(z));
                int(removed as i64)
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// HSET, HDEL, HGET, HMGET, HLEN, HEXISTS, HINCRBY, HGETALL, HSETNX, HSTRLEN, HKEYS, HVALS.
    #[test]
    fn hashes_match_model(cmds in prop::collection::vec(hash_cmd(), 1..60)) {
        check_sequence(HASHES, &cmds)?;
    }

    /// LPUSH, RPUSH, LPOP/RPOP with and without a count, LLEN, LRANGE, LINDEX, LSET, LREM,
    /// LTRIM, LINSERT, LMOVE.
    #[test]
    fn lists_match_model(cmds in prop::collection::vec(list_cmd(), 1..60)) {
        check_sequence(LISTS, &cmds)?;
    }

    /// SADD, SREM, SISMEMBER, SCARD, SMEMBERS, SINTER/SUNION/SDIFF and their STORE forms, SMOVE.
    #[test]
    fn sets_match_model(cmds in prop::collection::vec(set_cmd(), 1..60)) {
        check_sequence(SETS, &cmds)?;
    }

    /// ZADD with NX/XX/GT/LT/CH, ZINCRBY, ZREM, ZSCORE, ZCARD, ZRANK/ZREVRANK, ZRANGE
    /// [WITHSCORES], ZRANGEBYSCORE, ZCOUNT, ZPOPMIN/ZPOPMAX, ZREMRANGEBYRANK.
    #[test]
    fn sorted_sets_match_model(cmds in prop::collection::vec(zset_cmd(), 1..60)) {
        check_sequence(ZSETS, &cmds)?;
    }

    /// XADD (ms-* ids), XLEN, XRANGE/XREVRANGE with COUNT, XDEL, XTRIM MAXLEN, XGROUP CREATE,
    /// XREADGROUP >, XACK, XPENDING.
    #[test]
    fn streams_match_model(cmds in prop::collection::vec(stream_cmd(), 1..60)) {
        check_sequence(STREAMS, &cmds)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

type Id = (u64, u64);

fn id_str(id: Id) -> String {
    format!("{}-{}", id.0, id.1)
}

#[derive(Debug, Clone, PartialEq, Default)]
struct MGroup {
    last: Id,
    /// Pending entry → the consumer it was delivered to.
    pel: BTreeMap<Id, String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct MStream {
    /// Entry → its flat field/value list.
    entries: BTreeMap<Id, Vec<String>>,
    last: Id,
    groups: BTreeMap<String, MGroup>,
}

fn entry_r(id: Id, fields: &[String]) -> R {
    R::Arr(vec![
        bulk(&id_str(id)),
        R::Arr(fields.iter().map(|f| bulk(f)).collect()),
    ])
}

impl MStream {
    /// Entries as lines, then each group as name, last delivered id and pending entries.
    fn state(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .map(|(id, f)| format!("{} {}", id_str(*id), f.join(" ")))
            .collect();
        for (name, g) in &self.groups {
            let pel: Vec<String> = g
                .pel
                .iter()
                .map(|(id, c)| format!("{}:{c}", id_str(*id)))
                .collect();
            out.push(format!(
                "group {name} {} [{}]",
                id_str(g.last),
                pel.join(" ")
            ));
        }
        out
    }
}

/// The server's view of a stream in the shape of [`MStream::state`].
fn server_stream(c: &mut redis::Connection, k: &str) -> Vec<String> {
    let mut out = vec![];
    if let R::Arr(entries) = run(c, &argv!["XRANGE", k, "-", "+"]) {
        for e in entries {
            if let R::Arr(parts) = e {
                let fields = strs(&parts[1]);
                out.push(format!("{} {}", strs(&parts[0])[0], fields.join(" ")));
            }
        }
    }
    if let R::Arr(groups) = run(c, &argv!["XINFO", "GROUPS", k]) {
        for g in groups {
            let flat = strs(&g);
            let field = |name: &str| {
                flat.iter()
                    .position(|x| x == name)
                    .map(|i| flat[i + 1].clone())
                    .unwrap_or_default()
            };
            let (name, last) = (field("name"), field("last-delivered-id"));
            let mut pel = vec![];
            if let R::Arr(items) = run(c, &argv!["XPENDING", k, name, "-", "+", "1000"]) {
                for p in items {
                    if let R::Arr(x) = p {
                        pel.push(format!("{}:{}", strs(&x[0])[0], strs(&x[1])[0]));
                    }
                }
            }
            out.push(format!("group {name} {last} [{}]", pel.join(" ")));
        }
    }
    out
}

const GROUPS: &[&str] = &["g1", "g2"];
const CONSUMERS: &[&str] = &["alice", "bob"];
const STREAM_FIELDS: &[&str] = &["f", "g"];

#[derive(Debug, Clone)]
enum XCmd {
    G(Gen),
    /// XADD k ms-* field value [field value]
    XAdd(u8, u64, Vec<(&'static str, &'static str)>),
    XLen(u8),
    /// XRANGE / XREVRANGE k start end [COUNT n]; bounds are ms values or - / +.
    XRange(u8, Option<u64>, Option<u64>, Option<i64>, bool),
    XDel(u8, Vec<Id>),
    XTrim(u8, u64),
    /// XGROUP CREATE k g 0|$ MKSTREAM
    XGroupCreate(u8, &'static str, bool),
    /// XREADGROUP GROUP g c [COUNT n] STREAMS k >
    XReadGroup(u8, &'static str, &'static str, Option<u64>),
    XAck(u8, &'static str, Vec<Id>),
    /// XPENDING k g (the summary)
    XPending(u8, &'static str),
}

fn ms() -> std::ops::Range<u64> {
    0..12
}

fn some_id() -> impl Strategy<Value = Id> {
    (ms(), 0u64..3)
}

fn stream_cmd() -> impl Strategy<Value = XCmd> {
    let fields = prop::collection::vec((pick(STREAM_FIELDS), pick(MEMBERS)), 1..3);
    prop_oneof![
        3 => gen_cmd().prop_map(XCmd::G),
        8 => (anykey(), ms(), fields).prop_map(|(k, m, f)| XCmd::XAdd(k, m, f)),
        1 => anykey().prop_map(XCmd::XLen),
        3 => (
            anykey(),
            prop::option::of(ms()),
            prop::option::of(ms()),
            prop::option::of(-1i64..4),
            any::<bool>()
        )
            .prop_map(|(k, a, b, n, rev)| XCmd::XRange(k, a, b, n, rev)),
        2 => (anykey(), prop::collection::vec(some_id(), 1..3)).prop_map(|(k, ids)| XCmd::XDel(k, ids)),
        1 => (anykey(), 0u64..5).prop_map(|(k, n)| XCmd::XTrim(k, n)),
        2 => (anykey(), pick(GROUPS), any::<bool>()).prop_map(|(k, g, d)| XCmd::XGroupCreate(k, g, d)),
        4 => (anykey(), pick(GROUPS), pick(CONSUMERS), prop::option::of(1u64..3))
            .prop_map(|(k, g, c, n)| XCmd::XReadGroup(k, g, c, n)),
        2 => (anykey(), pick(GROUPS), prop::collection::vec(some_id(), 1..3))
            .prop_map(|(k, g, ids)| XCmd::XAck(k, g, ids)),
        2 => (anykey(), pick(GROUPS)).prop_map(|(k, g)| XCmd::XPending(k, g)),
    ]
}

fn get_stream(db: &Db, k: &str) -> Option<MStream> {
    match db.get(k) {
        Some(Val::Stream(s)) => Some(s.clone()),
        _ => None,
    }
}

fn no_group(k: &str, g: &str) -> Exp {
    err(&format!(
        "NOGROUP No such key '{k}' or consumer group '{g}' in XREADGROUP with GROUP option"
    ))
}

impl Model for XCmd {
    fn args(&self) -> Vec<String> {
        match self {
            XCmd::G(g) => g.args(),
            XCmd::XAdd(k, ms, fields) => {
                let mut a = argv!["XADD", key(*k), format!("{ms}-*")];
                for (f, v) in fields {
                    a.extend([f.to_string(), v.to_string()]);
                }
                a
            }
            XCmd::XLen(k) => argv!["XLEN", key(*k)],
            XCmd::XRange(k, a, b, n, rev) => {
                let lo = a.map_or("-".to_string(), |m| m.to_string());
                let hi = b.map_or("+".to_string(), |m| m.to_string());
                let mut v = if *rev {
                    argv!["XREVRANGE", key(*k), hi, lo]
                } else {
                    argv!["XRANGE", key(*k), lo, hi]
                };
                if let Some(n) = n {
                    v.extend(argv!["COUNT", n]);
                }
                v
            }
            XCmd::XDel(k, ids) => {
                let mut a = argv!["XDEL", key(*k)];
                a.extend(ids.iter().map(|id| id_str(*id)));
                a
            }
            XCmd::XTrim(k, n) => argv!["XTRIM", key(*k), "MAXLEN", n],
            XCmd::XGroupCreate(k, g, dollar) => {
                argv![
                    "XGROUP",
                    "CREATE",
                    key(*k),
                    g,
                    if *dollar { "$" } else { "0" },
                    "MKSTREAM"
                ]
            }
            XCmd::XReadGroup(k, g, c, n) => {
                let mut a = argv!["XREADGROUP", "GROUP", g, c];
                if let Some(n) = n {
                    a.extend(argv!["COUNT", n]);
                }
                a.extend(argv!["STREAMS", key(*k), ">"]);
                a
            }
            XCmd::XAck(k, g, ids) => {
                let mut a = argv!["XACK", key(*k), g];
                a.extend(ids.iter().map(|id| id_str(*id)));
                a
            }
            XCmd::XPending(k, g) => argv!["XPENDING", key(*k), g],
        }
    }

    fn model(&self, db: &mut Db) -> Result<Exp, Exp> {
        Ok(match self {
            XCmd::G(g) => g.apply(db),
            XCmd::XAdd(k, ms, fields) => {
                let k = key(*k);
                expect_type(db, &k, "stream")?;
                let mut s = get_stream(db, &k).unwrap_or_default();
                let id = match *ms {
                    m if m < s.last.0 => {
                        return Err(err("ERR The ID specified in XADD is equal or smaller than the target stream top item"))
                    }
                    m if m == s.last.0 => (m, s.last.1 + 1),
                    m => (m, 0),
                };
                let flat = fields
                    .iter()
                    .flat_map(|(f, v)| [f.to_string(), v.to_string()])
                    .collect();
                s.entries.insert(id, flat);
                s.last = id;
                db.insert(k, Val::Stream(s));
                Exp::Is(bulk(&id_str(id)))
            }
            XCmd::XLen(k) => {
                let k = key(*k);
                expect_type(db, &k, "stream")?;
                int(get_stream(db, &k).map_or(0, |s| s.entries.len() as i64))
            }
            XCmd::XRange(k, a, b, n, rev) => {
                let k = key(*k);
                expect_type(db, &k, "stream")?;
                let Some(s) = get_stream(db, &k) else {
                    return Ok(arr([]));
                };
                let count = n.map(|n| n.max(0));
                if count == Some(0) {
                    return Ok(nil());
                }
                let lo = a.map_or((0, 0), |m| (m, 0));
                let hi = b.map_or((u64::MAX, u64::MAX), |m| (m, u64::MAX));
                if lo > hi {
                    return Ok(arr([]));
                }
                let it: Box<dyn Iterator<Item = (&Id, &Vec<String>)>> = if *rev {
                    Box::new(s.entries.range(lo..=hi).rev())
                } else {
                    Box::new(s.entries.range(lo..=hi))
                };
                let take = count.map_or(usize::MAX, |c| c as usize);
                arr(it.take(take).map(|(id, f)| entry_r(*id, f)))
            }
            XCmd::XDel(k, ids) => {
                let k = key(*k);
                expect_type(db, &k, "stream")?;
                let Some(mut s) = get_stream(db, &k) else {
                    return Ok(int(0));
                };
                let mut n = 0;
                for id in ids {
                    if s.entries.remove(id).is_some() {
                        n += 1;
                    }
                }
                db.insert(k, Val::Stream(s));
                int(n)
            }
            XCmd::XTrim(k, max) => {
                let k = key(*k);
                expect_type(db, &k, "stream")?;
                let Some(mut s) = get_stream(db, &k) else {
                    return Ok(int(0));
                };
                let mut n = 0;
                while s.entries.len() as u64 > *max {
                    s.entries.pop_first();
                    n += 1;
                }
                db.insert(k, Val::Stream(s));
                int(n)
            }
            XCmd::XGroupCreate(k, g, dollar) => {
                let k = key(*k);
                expect_type(db, &k, "stream")?;
                let mut s = get_stream(db, &k).unwrap_or_default();
                if s.groups.contains_key(*g) {
                    return Err(err("BUSYGROUP Consumer Group name already exists"));
                }
                let last = if *dollar { s.last } else { (0, 0) };
                s.groups.insert(
                    g.to_string(),
                    MGroup {
                        last,
                        pel: BTreeMap::new(),
                    },
                );
                db.insert(k, Val::Stream(s));
                ok()
            }
            XCmd::XReadGroup(kn, g, c, n) => {
                let k = key(*kn);
                expect_type(db, &k, "stream")?;
                let Some(mut s) = get_stream(db, &k) else {
                    return Err(no_group(&k, g));
                };
                let Some(group) = s.groups.get(*g).cloned() else {
                    return Err(no_group(&k, g));
                };
                let take = n.map_or(usize::MAX, |n| n as usize);
                let new: Vec<(Id, Vec<String>)> = s
                    .entries
                    .range((
                        std::ops::Bound::Excluded(group.last),
                        std::ops::Bound::Unbounded,
                    ))
                    .take(take)
                    .map(|(id, f)| (*id, f.clone()))
                    .collect();
                if new.is_empty() {
                    return Ok(nil());
                }
                let grp = s.groups.get_mut(*g).unwrap();
                for (id, _) in &new {
                    grp.last = *id;
                    grp.pel.insert(*id, c.to_string());
                }
                let reply = R::Arr(vec![R::Arr(vec![
                    bulk(&k),
                    R::Arr(new.iter().map(|(id, f)| entry_r(*id, f)).collect()),
                ])]);
                db.insert(k, Val::Stream(s));
                Exp::Is(reply)
            }
            XCmd::XAck(k, g, ids) => {
                let k = key(*k);
                expect_type(db, &k, "stream")?;
                let Some(mut s) = get_stream(db, &k) else {
                    return Ok(int(0));
                };
                let Some(grp) = s.groups.get_mut(*g) else {
                    return Ok(int(0));
                };
                let n = ids.iter().filter(|id| grp.pel.remove(id).is_some()).count();
                db.insert(k, Val::Stream(s));
                int(n as i64)
            }
            XCmd::XPending(k, g) => {
                let k = key(*k);
                expect_type(db, &k, "stream")?;
                let group = get_stream(db, &k).and_then(|s| s.groups.get(*g).cloned());
                let Some(group) = group else {
                    return Err(err(&format!(
                        "NOGROUP No such key '{k}' or consumer group '{g}'"
                    )));
                };
                if group.pel.is_empty() {
                    return Ok(arr([R::Int(0), R::Nil, R::Nil, R::Nil]));
                }
                let mut per: BTreeMap<&str, usize> = BTreeMap::new();
                for c in group.pel.values() {
                    *per.entry(c.as_str()).or_default() += 1;
                }
                arr([
                    R::Int(group.pel.len() as i64),
                    bulk(&id_str(*group.pel.keys().next().unwrap())),
                    bulk(&id_str(*group.pel.keys().next_back().unwrap())),
                    R::Arr(
                        per.into_iter()
                            .map(|(c, n)| R::Arr(vec![bulk(c), bulk(&n.to_string())]))
                            .collect(),
                    ),
                ])
            }
        })
    }
}
