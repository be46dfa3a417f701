//! The append-only file: every type survives a crash and a replay, acknowledged writes survive
//! SIGKILL under `appendfsync always`, rewrites compact while clients write, and torn or
//! damaged files are handled as `aof-load-truncated` and `locus-check` say.

use crate::common;

use common::{config_set, dump_dbs, failed_start, locus_check as check, TestServer};
use proptest::prelude::*;
use redis::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ALWAYS: &[&str] = &[
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
];

/// Kills the server (SIGKILL: nothing is flushed on the way out) and starts it again in the
/// same directory.
fn crash_and_restart(s: TestServer, args: &[&str]) -> TestServer {
    let dir = s.dir.clone();
    drop(s);
    TestServer::start_in(&dir, args)
}

fn info_field(c: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn wait_rewrite_done(c: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(c, "aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline, "rewrite did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the AOF writer has written every buffered record to the file.
fn wait_buffer_written(c: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(c, "aof_buffer_length") != "0" {
        assert!(Instant::now() < deadline, "the AOF buffer was not written");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn incr_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    v.sort();
    v
}

#[derive(Debug, Clone)]
enum Cmd {
    Select(u8),
    Set(u8, Vec<u8>),
    SetPx(u8, u8),
    SetEx(u8, Vec<u8>),
    Incr(u8),
    IncrByFloat(u8, i16),
    Append(u8, Vec<u8>),
    Expire(u8),
    Persist(u8),
    Del(u8),
    MSet(u8, u8),
    Rename(u8, u8),
    HSet(u8, u8, Vec<u8>),
    HDel(u8, u8),
    HIncrByFloat(u8, u8, i16),
    RPush(u8, Vec<u8>),
    LPop(u8),
    SAdd(u8, u8),
    SPop(u8),
    ZAdd(u8, u8, i16),
    ZPopMin(u8),
    Tensor(u8, Vec<u8>),
    XAdd(u8, Vec<u8>, u8),
    XGroup(u8),
    XReadGroup(u8, u8),
    XAck(u8, u8),
    XClaim(u8, u8),
    XTrim(u8, u8),
    FlushDb,
    Rewrite,
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let v = prop::collection::vec(any::<u8>(), 0..24);
    let k = 0u8..10;
    prop_oneof![
        (0u8..3).prop_map(Cmd::Select),
        (k.clone(), v.clone()).prop_map(|(k, v)| Cmd::Set(k, v)),
        (k.clone(), 1u8..4).prop_map(|(k, ms)| Cmd::SetPx(k, ms)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Cmd::SetEx(k, v)),
        k.clone().prop_map(Cmd::Incr),
        (k.clone(), any::<i16>()).prop_map(|(k, d)| Cmd::IncrByFloat(k, d)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Cmd::Append(k, v)),
        k.clone().prop_map(Cmd::Expire),
        k.clone().prop_map(Cmd::Persist),
        k.clone().prop_map(Cmd::Del),
        (k.clone(), k.clone()).prop_map(|(a, b)| Cmd::MSet(a, b)),
        (k.clone(), k.clone()).prop_map(|(a, b)| Cmd::Rename(a, b)),
        (k.clone(), 0u8..4, v.clone()).prop_map(|(k, f, v)| Cmd::HSet(k, f, v)),
        (k.clone(), 0u8..4).prop_map(|(k, f)| Cmd::HDel(k, f)),
        (k.clone(), 0u8..4, any::<i16>()).prop_map(|(k, f, d)| Cmd::HIncrByFloat(k, f, d)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Cmd::RPush(k, v)),
        k.clone().prop_map(Cmd::LPop),
        (k.clone(), 0u8..8).prop_map(|(k, m)| Cmd::SAdd(k, m)),
        k.clone().prop_map(Cmd::SPop),
        (k.clone(), 0u8..6, any::<i16>()).prop_map(|(k, m, s)| Cmd::ZAdd(k, m, s)),
        k.clone().prop_map(Cmd::ZPopMin),
        (k.clone(), prop::collection::vec(any::<u8>(), 8..=8)).prop_map(|(k, v)| Cmd::Tensor(k, v)),
        (k.clone(), v.clone(), 0u8..8).prop_map(|(k, v, t)| Cmd::XAdd(k, v, t)),
        k.clone().prop_map(Cmd::XGroup),
        (k.clone(), 0u8..3).prop_map(|(k, c)| Cmd::XReadGroup(k, c)),
        (k.clone(), 0u8..4).prop_map(|(k, i)| Cmd::XAck(k, i)),
        (k.clone(), 0u8..3).prop_map(|(k, c)| Cmd::XClaim(k, c)),
        (k.clone(), 0u8..6).prop_map(|(k, n)| Cmd::XTrim(k, n)),
        Just(Cmd::FlushDb),
        Just(Cmd::Rewrite),
    ]
}

/// Runs one command; type errors and the like are expected with random keys and ignored (they
/// are not logged either).
fn apply(c: &mut redis::Connection, cmd: &Cmd) {
    let key = |k: &u8| format!("k{k}");
    let r = match cmd {
        Cmd::Select(db) => redis::cmd("SELECT").arg(*db).to_owned(),
        Cmd::Set(k, v) => redis::cmd("SET").arg(key(k)).arg(v).to_owned(),
        Cmd::SetPx(k, ms) => redis::cmd("SET")
            .arg(key(k))
            .arg("short")
            .arg("PX")
            .arg(*ms)
            .to_owned(),
        Cmd::SetEx(k, v) => redis::cmd("SET")
            .arg(key(k))
            .arg(v)
            .arg("EX")
            .arg(5000)
            .to_owned(),
        Cmd::Incr(k) => redis::cmd("INCR").arg(key(k)).to_owned(),
        Cmd::IncrByFloat(k, d) => redis::cmd("INCRBYFLOAT")
            .arg(key(k))
            .arg(*d as f64 / 7.0)
            .to_owned(),
        Cmd::Append(k, v) => redis::cmd("APPEND").arg(key(k)).arg(v).to_owned(),
        Cmd::Expire(k) => redis::cmd("EXPIRE").arg(key(k)).arg(9000).to_owned(),
        Cmd::Persist(k) => redis::cmd("PERSIST").arg(key(k)).to_owned(),
        Cmd::Del(k) => redis::cmd("DEL").arg(key(k)).to_owned(),
        Cmd::MSet(a, b) => redis::cmd("MSET")
            .arg(key(a))
            .arg("m1")
            .arg(key(b))
            .arg("m2")
            .to_owned(),
        Cmd::Rename(a, b) => redis::cmd("RENAME").arg(key(a)).arg(key(b)).to_owned(),
        Cmd::HSet(k, f, v) => redis::cmd("HSET")
            .arg(key(k))
            .arg(format!("f{f}"))
            .arg(v)
            .to_owned(),
        Cmd::HDel(k, f) => redis::cmd("HDEL")
            .arg(key(k))
            .arg(format!("f{f}"))
            .to_owned(),
        Cmd::HIncrByFloat(k, f, d) => redis::cmd("HINCRBYFLOAT")
            .arg(key(k))
            .arg(format!("f{f}"))
            .arg(*d as f64 / 3.0)
            .to_owned(),
        Cmd::RPush(k, v) => redis::cmd("RPUSH").arg(key(k)).arg(v).to_owned(),
        Cmd::LPop(k) => redis::cmd("LPOP").arg(key(k)).to_owned(),
        Cmd::SAdd(k, m) => redis::cmd("SADD")
            .arg(key(k))
            .arg(format!("m{m}"))
            .to_owned(),
        Cmd::SPop(k) => redis::cmd("SPOP").arg(key(k)).to_owned(),
        Cmd::ZAdd(k, m, s) => redis::cmd("ZADD")
            .arg(key(k))
            .arg(*s as f64 / 4.0)
            .arg(format!("m{m}"))
            .to_owned(),
        Cmd::ZPopMin(k) => redis::cmd("ZPOPMIN").arg(key(k)).to_owned(),
        Cmd::Tensor(k, v) => redis::cmd("AI.TENSORSET")
            .arg(key(k))
            .arg("UINT8")
            .arg(2)
            .arg(4)
            .arg("BLOB")
            .arg(v)
            .to_owned(),
        // Automatic ids (the clock at the write, replayed at its logged time), with and without
        // approximate trimming.
        Cmd::XAdd(k, v, t) => {
            let mut x = redis::cmd("XADD");
            x.arg(key(k));
            if *t < 3 {
                x.arg("MAXLEN").arg("~").arg(*t);
            }
            x.arg("*").arg("f").arg(v).to_owned()
        }
        Cmd::XGroup(k) => redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key(k))
            .arg("g")
            .arg("0")
            .arg("MKSTREAM")
            .to_owned(),
        Cmd::XReadGroup(k, consumer) => redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg(format!("c{consumer}"))
            .arg("COUNT")
            .arg(2)
            .arg("STREAMS")
            .arg(key(k))
            .arg(">")
            .to_owned(),
        Cmd::XAck(k, i) => {
            let pending: redis::RedisResult<Vec<(String, String, u64, u64)>> =
                redis::cmd("XPENDING")
                    .arg(key(k))
                    .arg("g")
                    .arg("-")
                    .arg("+")
                    .arg(10)
                    .query(c);
            match pending.ok().and_then(|p| p.get(*i as usize).cloned()) {
                Some((id, ..)) => redis::cmd("XACK").arg(key(k)).arg("g").arg(id).to_owned(),
                None => redis::cmd("PING").to_owned(),
            }
        }
        Cmd::XClaim(k, consumer) => redis::cmd("XAUTOCLAIM")
            .arg(key(k))
            .arg("g")
            .arg(format!("c{consumer}"))
            .arg(0)
            .arg("0-0")
            .arg("COUNT")
            .arg(2)
            .to_owned(),
        Cmd::XTrim(k, n) => redis::cmd("XTRIM")
            .arg(key(k))
            .arg("MAXLEN")
            .arg(*n)
            .to_owned(),
        Cmd::FlushDb => redis::cmd("FLUSHDB").to_owned(),
        Cmd::Rewrite => redis::cmd("BGREWRITEAOF").to_owned(),
    };
    let _: redis::RedisResult<Value> = r.query(c);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// The state after a SIGKILL and an AOF replay equals the state before, for random command
    /// sequences over every type, three databases, relative and millisecond expiries, random
    /// pops, float increments, and rewrites running in between.
    #[test]
    fn aof_round_trip(cmds in prop::collection::vec(cmd(), 1..120)) {
        let s = TestServer::start(ALWAYS);
        let mut c = s.conn();
        for cmd in &cmds {
            apply(&mut c, cmd);
        }
        // Let millisecond expiries pass, so that both dumps see them gone.
        std::thread::sleep(Duration::from_millis(10));
        wait_rewrite_done(&mut c);
        let before = dump_dbs(&mut c, 3);
        let s = crash_and_restart(s, ALWAYS);
        let after = dump_dbs(&mut s.conn(), 3);
        prop_assert_eq!(before, after);
    }
}

/// 20 times: clients write under `appendfsync always`, the server is SIGKILLed at a random
/// moment, and after the restart every acknowledged write of every round is there. Some
/// rounds also rewrite the AOF while the writes go on, so crashes land mid-rewrite too.
#[test]
fn acknowledged_writes_survive_sigkill() {
    let mut s = TestServer::start(ALWAYS);
    // (round, thread) -> number of acknowledged INCRs and SETs.
    let mut acked: Vec<(usize, usize, u64)> = Vec::new();
    for round in 0..20 {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for t in 0..4 {
            let client = s.client();
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut c = client.get_connection().unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r: redis::RedisResult<i64> = redis::cmd("INCR")
                        .arg(format!("ctr:{round}:{t}"))
                        .query(&mut c);
                    if r.is_err() {
                        break;
                    }
                    let r: redis::RedisResult<()> = redis::cmd("SET")
                        .arg(format!("k:{round}:{t}:{n}"))
                        .arg(n)
                        .query(&mut c);
                    if r.is_err() {
                        break;
                    }
                    n += 1;
                }
                (t, n)
            }));
        }
        if round % 4 == 1 {
            let _: redis::RedisResult<Value> = redis::cmd("BGREWRITEAOF").query(&mut s.conn());
        }
        std::thread::sleep(Duration::from_millis(80 + (round as u64 * 37) % 200));
        let dir = s.dir.clone();
        unsafe {
            libc::kill(s.pid() as i32, libc::SIGKILL);
        }
        for th in threads {
            let (t, n) = th.join().unwrap();
            acked.push((round, t, n));
        }
        stop.store(true, Ordering::Relaxed);
        drop(s);
        s = TestServer::start_in(&dir, ALWAYS);
        let mut c = s.conn();
        for &(r, t, n) in &acked {
            let ctr: Option<u64> = redis::cmd("GET")
                .arg(format!("ctr:{r}:{t}"))
                .query(&mut c)
                .unwrap();
            let ctr = ctr.unwrap_or(0);
            // Every acknowledged INCR is there; one more may have reached the disk unanswered.
            assert!(
                ctr >= n && ctr <= n + 1,
                "round {r} thread {t}: {n} INCRs acknowledged, {ctr} after the restart"
            );
            if n > 0 {
                let keys: Vec<String> = (0..n).map(|i| format!("k:{r}:{t}:{i}")).collect();
                let vals: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
                for (i, v) in vals.iter().enumerate() {
                    assert_eq!(*v, Some(i as u64), "round {r} thread {t}: SET {i} lost");
                }
            }
        }
    }
    let total: u64 = acked.iter().map(|a| a.2).sum();
    assert!(
        total > 100,
        "the load wrote too little to mean anything: {total}"
    );
}

/// A rewrite while four clients keep incrementing: after it, and after a restart, every
/// counter equals its number of acknowledged increments (nothing lost, nothing twice).
#[test]
fn rewrite_under_write_load_loses_and_doubles_nothing() {
    let s = TestServer::start(&["--appendonly", "yes", "--save", ""]);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let client = s.client();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = client.get_connection().unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _: i64 = redis::cmd("INCR")
                        .arg(format!("c{t}"))
                        .query(&mut c)
                        .unwrap();
                    let _: i64 = redis::cmd("RPUSH")
                        .arg(format!("l{t}"))
                        .arg(n)
                        .query(&mut c)
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut c = s.conn();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(100));
        let r: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
        assert_eq!(r, "Background append only file rewriting started");
        wait_rewrite_done(&mut c);
    }
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(info_field(&mut c, "aof_rewrites"), "3");
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    // Only the newest base and incremental file remain.
    let files: Vec<String> = std::fs::read_dir(s.dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    // A clean SHUTDOWN under everysec flushes what is pending.
    let _ = redis::cmd("SHUTDOWN").query::<Value>(&mut c);
    let mut s = s;
    s.wait_exit(Duration::from_secs(10)).expect("exited");
    let s = crash_and_restart(s, &["--appendonly", "yes", "--save", ""]);
    let mut c = s.conn();
    for (t, n) in counts.iter().enumerate() {
        let v: u64 = redis::cmd("GET")
            .arg(format!("c{t}"))
            .query(&mut c)
            .unwrap();
        assert_eq!(v, *n);
        let l: Vec<u64> = redis::cmd("LRANGE")
            .arg(format!("l{t}"))
            .arg(0)
            .arg(-1)
            .query(&mut c)
            .unwrap();
        assert_eq!(l, (0..*n).collect::<Vec<_>>());
    }
}

#[test]
fn torn_tails_and_flipped_bytes() {
    let s = TestServer::start(ALWAYS);
    let mut c = s.conn();
    for i in 0..50 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let dir = s.dir.clone();
    drop(s);
    let incr = incr_files(&dir).pop().unwrap();
    let good = std::fs::read(&incr).unwrap();
    let good_len = good.len() as u64;
    let name = incr.file_name().unwrap().to_string_lossy().into_owned();

    // A torn tail: half a record at the end.
    let mut torn = good.clone();
    torn.extend_from_slice(b"#0 1764000000000 1 0a0b0c0d\r\n*3\r\n$3\r\nSET\r\n$2\r\nk9");
    std::fs::write(&incr, &torn).unwrap();
    let (ok, text) = check(&[&incr]);
    assert!(
        !ok && text.contains(&format!("offset {good_len}")),
        "{text}"
    );
    let log = failed_start(&dir, &["--appendonly", "yes", "--aof-load-truncated", "no"]);
    assert!(
        log.contains(&name) && log.contains(&format!("offset {good_len}")),
        "{log}"
    );
    // aof-load-truncated yes (the default): the torn record is cut off and the rest loads.
    let s = TestServer::start_in(&dir, ALWAYS);
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), good_len);
    let v: i64 = redis::cmd("GET").arg("k49").query(&mut s.conn()).unwrap();
    assert_eq!(v, 49);
    drop(s);

    // locus-check --fix cuts a torn tail too.
    let good = std::fs::read(&incr).unwrap();
    let mut torn = good.clone();
    torn.extend_from_slice(b"#0 17");
    std::fs::write(&incr, &torn).unwrap();
    let manifest = dir.join("appendonlydir");
    let (ok, _) = check(&[&manifest]);
    assert!(!ok);
    let (ok, text) = check(&[Path::new("--fix"), &manifest]);
    assert!(ok && text.contains("Successfully truncated"), "{text}");
    assert_eq!(std::fs::read(&incr).unwrap(), good);
    let (ok, text) = check(&[&manifest]);
    assert!(ok, "{text}");

    // A flipped byte inside a value: only the record checksum tells; the server refuses to
    // start and names the file and the record's offset.
    let at = good
        .windows(4)
        .position(|w| w == b"\r\n25")
        .expect("value 25 in the file")
        + 2;
    let mut flipped = good.clone();
    flipped[at] ^= 0x01;
    std::fs::write(&incr, &flipped).unwrap();
    let record = good[..at].iter().rposition(|&b| b == b'#').unwrap();
    let log = failed_start(&dir, &["--appendonly", "yes"]);
    assert!(
        log.contains(&name)
            && log.contains(&format!("offset {record}"))
            && log.contains("checksum mismatch"),
        "{log}"
    );
    let (ok, text) = check(&[&incr]);
    assert!(!ok && text.contains(&format!("offset {record}")), "{text}");
    // A damaged manifest is refused as well.
    std::fs::write(&incr, &good).unwrap();
    let mpath = dir.join("appendonlydir/appendonly.aof.manifest");
    let m = std::fs::read_to_string(&mpath).unwrap();
    std::fs::write(&mpath, m.replace("type i", "type x")).unwrap();
    let log = failed_start(&dir, &["--appendonly", "yes"]);
    assert!(log.contains("bad manifest"), "{log}");
}

/// CONFIG SET appendonly yes at run time creates the AOF from the data already there; writes
/// after it are logged; CONFIG SET appendonly no stops logging.
#[test]
fn appendonly_switched_on_at_run_time() {
    let s = TestServer::start(&["--save", ""]);
    let mut c = s.conn();
    let _: () = redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query(&mut c)
        .unwrap();
    assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    config_set(&mut c, "appendonly", "yes");
    config_set(&mut c, "appendfsync", "always");
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("2")
        .query(&mut c)
        .unwrap();
    wait_rewrite_done(&mut c);
    let s = crash_and_restart(s, &["--appendonly", "yes", "--save", ""]);
    let mut c = s.conn();
    let v: Vec<Option<String>> = redis::cmd("MGET")
        .arg("before")
        .arg("after")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, vec![Some("1".into()), Some("2".into())]);
    config_set(&mut c, "appendonly", "no");
    let _: () = redis::cmd("SET")
        .arg("unlogged")
        .arg("3")
        .query(&mut c)
        .unwrap();
    let s = crash_and_restart(s, &["--appendonly", "yes", "--save", ""]);
    let n: i64 = redis::cmd("EXISTS")
        .arg("unlogged")
        .query(&mut s.conn())
        .unwrap();
    assert_eq!(n, 0);
}

/// The file is rewritten by itself once it has grown past auto-aof-rewrite-percentage over
/// its size after the last rewrite, and auto-aof-rewrite-min-size.
#[test]
fn automatic_rewrite() {
    let args = [
        "--appendonly",
        "yes",
        "--save",
        "",
        "--auto-aof-rewrite-min-size",
        "64kb",
        "--auto-aof-rewrite-percentage",
        "100",
    ];
    let s = TestServer::start(&args);
    let mut c = s.conn();
    let value = "x".repeat(100);
    for i in 0..3000 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{}", i % 100))
            .arg(&value)
            .query(&mut c)
            .unwrap();
    }
    // Rewrites run while the file grows. Once writing stops it settles where no further
    // rewrite is due (under 64 KB, or grown less than 100% over its size after the last
    // rewrite, which counts what was written while that rewrite ran), with at least one
    // rewrite, and far smaller than the ~450 KB of records written.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        wait_rewrite_done(&mut c);
        let field =
            |c: &mut redis::Connection, f: &str| -> u64 { info_field(c, f).parse().unwrap() };
        let size = field(&mut c, "aof_current_size");
        let base = field(&mut c, "aof_base_size").max(1);
        let rewrites = field(&mut c, "aof_rewrites");
        let due = size >= 64 * 1024 && (size.saturating_sub(base)) * 100 / base >= 100;
        if rewrites > 0 && !due && size < 300 * 1024 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no compacting rewrite: {size} bytes, base {base}, {rewrites} rewrites"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Under `everysec` a kill may lose what is still buffered, as in Redis: let the writer catch
    // up first (a loaded machine can delay it past the millisecond it usually takes).
    wait_rewrite_done(&mut c);
    wait_buffer_written(&mut c);
    let before = dump_dbs(&mut c, 1);
    let s = crash_and_restart(s, &args);
    assert_eq!(dump_dbs(&mut s.conn(), 1), before);
}

/// Models, model outputs and a DAG's persisted tensors come back from the AOF without the
/// model being run again: the log holds the results.
#[test]
fn models_and_results_replay() {
    let s = TestServer::start(ALWAYS);
    let mut c = s.conn();
    common::store_model(&mut c, "m", "add.onnx");
    let _: () = redis::cmd("AI.TENSORSET")
        .arg("a")
        .arg("FLOAT")
        .arg(1)
        .arg(2)
        .arg("VALUES")
        .arg(1.5)
        .arg(2)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("AI.MODELEXECUTE")
        .arg("m")
        .arg("INPUTS")
        .arg(2)
        .arg("a")
        .arg("a")
        .arg("OUTPUTS")
        .arg(1)
        .arg("out")
        .query(&mut c)
        .unwrap();
    let _: Value = redis::cmd("AI.DAGEXECUTE")
        .arg("LOAD")
        .arg(1)
        .arg("a")
        .arg("PERSIST")
        .arg(1)
        .arg("dagout")
        .arg("|>")
        .arg("AI.MODELEXECUTE")
        .arg("m")
        .arg("INPUTS")
        .arg(2)
        .arg("a")
        .arg("a")
        .arg("OUTPUTS")
        .arg(1)
        .arg("dagout")
        .query(&mut c)
        .unwrap();
    let before = dump_dbs(&mut c, 1);
    let s = crash_and_restart(s, ALWAYS);
    let mut c = s.conn();
    assert_eq!(dump_dbs(&mut c, 1), before);
    let v: Vec<String> = redis::cmd("AI.TENSORGET")
        .arg("dagout")
        .arg("VALUES")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, vec!["3", "4"]);
    // The model is back and runs.
    let _: () = redis::cmd("AI.MODELEXECUTE")
        .arg("m")
        .arg("INPUTS")
        .arg(2)
        .arg("out")
        .arg("a")
        .arg("OUTPUTS")
        .arg(1)
        .arg("out2")
        .query(&mut c)
        .unwrap();
    let v: Vec<String> = redis::cmd("AI.TENSORGET")
        .arg("out2")
        .arg("VALUES")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, vec!["4.5", "6"]);
}

/// A transaction is one AOF record (SELECTs inside it included), and a blocked pop served
/// later is logged as the pop that served it: both come back exactly after a crash.
#[test]
fn transactions_and_blocked_pops_replay() {
    let s = TestServer::start(ALWAYS);
    let mut c = s.conn();
    let (n, v): (i64, String) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("t")
        .cmd("SELECT")
        .arg(2)
        .ignore()
        .cmd("SET")
        .arg("in2")
        .arg("x")
        .ignore()
        .cmd("SELECT")
        .arg(0)
        .ignore()
        .cmd("SET")
        .arg("in0")
        .arg("y")
        .ignore()
        .cmd("GET")
        .arg("in0")
        .query(&mut c)
        .unwrap();
    assert_eq!((n, v.as_str()), (1, "y"));
    let client = s.client();
    let blocked = std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        let r: (String, String) = redis::cmd("BLPOP").arg("q").arg(5).query(&mut c).unwrap();
        r
    });
    std::thread::sleep(Duration::from_millis(200));
    let _: () = redis::cmd("RPUSH")
        .arg("q")
        .arg("a")
        .arg("b")
        .query(&mut c)
        .unwrap();
    assert_eq!(blocked.join().unwrap(), ("q".into(), "a".into()));
    let before = dump_dbs(&mut c, 3);
    let s = crash_and_restart(s, ALWAYS);
    assert_eq!(dump_dbs(&mut s.conn(), 3), before);
}
