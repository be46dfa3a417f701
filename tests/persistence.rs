//! Snapshots: every value type survives a restart, BGSAVE is a point-in-time image under write
//! load, and damaged files are refused with the offset of the problem.

use crate::common;

use common::{dump, TestServer};
use proptest::prelude::*;
use redis::Value;
use std::path::Path;
use std::time::Duration;

fn restart(s: TestServer, args: &[&str]) -> TestServer {
    let dir = s.dir.clone();
    drop(s);
    TestServer::start_in(&dir, args)
}

#[derive(Debug, Clone)]
enum Cmd {
    Set(u8, Vec<u8>),
    SetEx(u8, Vec<u8>),
    HSet(u8, u8, Vec<u8>),
    Tensor(u8, Vec<u8>),
    RPush(u8, Vec<u8>),
    SAdd(u8, Vec<u8>),
    ZAdd(u8, Vec<u8>, i32),
    XAdd(u8, Vec<u8>, bool),
    XGroup(u8, u8),
    XReadGroup(u8, u8, u8),
    XDel(u8, u8),
    Del(u8),
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let v = prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        (0u8..12, v.clone()).prop_map(|(k, v)| Cmd::Set(k, v)),
        (0u8..12, v.clone()).prop_map(|(k, v)| Cmd::SetEx(k, v)),
        (12u8..16, 0u8..4, v.clone()).prop_map(|(k, f, v)| Cmd::HSet(k, f, v)),
        (16u8..20, prop::collection::vec(any::<u8>(), 4..=4)).prop_map(|(k, v)| Cmd::Tensor(k, v)),
        (20u8..24, v.clone()).prop_map(|(k, v)| Cmd::RPush(k, v)),
        (24u8..28, v.clone()).prop_map(|(k, v)| Cmd::SAdd(k, v)),
        (28u8..32, v.clone(), any::<i32>()).prop_map(|(k, v, s)| Cmd::ZAdd(k, v, s)),
        (32u8..35, v.clone(), any::<bool>()).prop_map(|(k, v, t)| Cmd::XAdd(k, v, t)),
        (32u8..35, 0u8..2).prop_map(|(k, g)| Cmd::XGroup(k, g)),
        (32u8..35, 0u8..2, 0u8..3).prop_map(|(k, g, c)| Cmd::XReadGroup(k, g, c)),
        (32u8..35, 0u8..20).prop_map(|(k, i)| Cmd::XDel(k, i)),
        (0u8..35).prop_map(Cmd::Del),
    ]
}

fn apply(c: &mut redis::Connection, cmd: &Cmd) {
    let key = |k: &u8| format!("k{k}");
    let r: redis::RedisResult<Value> = match cmd {
        Cmd::Set(k, v) => redis::cmd("SET").arg(key(k)).arg(v).query(c),
        Cmd::SetEx(k, v) => redis::cmd("SET")
            .arg(key(k))
            .arg(v)
            .arg("EX")
            .arg(1000)
            .query(c),
        Cmd::HSet(k, f, v) => redis::cmd("HSET")
            .arg(key(k))
            .arg(format!("f{f}"))
            .arg(v)
            .query(c),
        Cmd::Tensor(k, v) => redis::cmd("AI.TENSORSET")
            .arg(key(k))
            .arg("UINT8")
            .arg(2)
            .arg(2)
            .arg("BLOB")
            .arg(v)
            .query(c),
        Cmd::RPush(k, v) => redis::cmd("RPUSH").arg(key(k)).arg(v).query(c),
        Cmd::SAdd(k, v) => redis::cmd("SADD").arg(key(k)).arg(v).query(c),
        Cmd::ZAdd(k, v, s) => redis::cmd("ZADD")
            .arg(key(k))
            .arg(*s as f64 / 3.0)
            .arg(v)
            .query(c),
        Cmd::XAdd(k, v, trim) => {
            let mut x = redis::cmd("XADD");
            x.arg(key(k));
            if *trim {
                x.arg("MAXLEN").arg("~").arg(3);
            }
            x.arg("*").arg("f").arg(v).query(c)
        }
        Cmd::XGroup(k, g) => {
            // The group may exist already (BUSYGROUP): that error is expected.
            let _: redis::RedisResult<Value> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(key(k))
                .arg(format!("g{g}"))
                .arg("0")
                .arg("MKSTREAM")
                .query(c);
            Ok(Value::Nil)
        }
        Cmd::XReadGroup(k, g, consumer) => {
            // NOGROUP is expected when the group was never created.
            let _: redis::RedisResult<Value> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(format!("g{g}"))
                .arg(format!("c{consumer}"))
                .arg("COUNT")
                .arg(2)
                .arg("STREAMS")
                .arg(key(k))
                .arg(">")
                .query(c);
            Ok(Value::Nil)
        }
        Cmd::XDel(k, i) => {
            let ids: Vec<(String, Vec<u8>)> = match redis::cmd("XRANGE")
                .arg(key(k))
                .arg("-")
                .arg("+")
                .query::<Vec<(String, Vec<Vec<u8>>)>>(c)
            {
                Ok(v) => v.into_iter().map(|(id, _)| (id, vec![])).collect(),
                Err(_) => vec![],
            };
            match ids.get(*i as usize) {
                Some((id, _)) => redis::cmd("XDEL").arg(key(k)).arg(id).query(c),
                None => Ok(Value::Nil),
            }
        }
        Cmd::Del(k) => redis::cmd("DEL").arg(key(k)).query(c),
    };
    r.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// State after a SAVE and a restart equals the state before, for random command sequences.
    #[test]
    fn snapshot_round_trip(cmds in prop::collection::vec(cmd(), 1..80)) {
        let s = TestServer::start(&["--save", ""]);
        let mut c = s.conn();
        for cmd in &cmds {
            apply(&mut c, cmd);
        }
        let before = dump(&mut c);
        let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
        let s = restart(s, &["--save", ""]);
        let after = dump(&mut s.conn());
        prop_assert_eq!(before, after);
    }
}

#[test]
fn models_and_shutdown_save() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let blob = std::fs::read(format!(
        "{}/../../redis-tests/models/add.onnx",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let _: () = redis::cmd("AI.MODELSTORE")
        .arg("m")
        .arg("ONNX")
        .arg("CPU")
        .arg("TAG")
        .arg("v7")
        .arg("BATCHSIZE")
        .arg(4)
        .arg("BLOB")
        .arg(&blob)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("AI.TENSORSET")
        .arg("a")
        .arg("FLOAT")
        .arg(1)
        .arg(2)
        .arg("VALUES")
        .arg(1)
        .arg(2)
        .query(&mut c)
        .unwrap();
    // SHUTDOWN saves (save rules are configured by default), and the model comes back runnable.
    let _ = redis::cmd("SHUTDOWN").query::<Value>(&mut c);
    let mut s = s;
    s.wait_exit(Duration::from_secs(10)).expect("exited");
    let s = restart(s, &[]);
    let mut c = s.conn();
    let meta: Vec<Value> = redis::cmd("AI.MODELGET")
        .arg("m")
        .arg("META")
        .query(&mut c)
        .unwrap();
    assert!(format!("{meta:?}").contains("v7"), "{meta:?}");
    let _: () = redis::cmd("AI.MODELEXECUTE")
        .arg("m")
        .arg("INPUTS")
        .arg(2)
        .arg("a")
        .arg("a")
        .arg("OUTPUTS")
        .arg(1)
        .arg("b")
        .query(&mut c)
        .unwrap();
    let v: Vec<String> = redis::cmd("AI.TENSORGET")
        .arg("b")
        .arg("VALUES")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, vec!["2", "4"]);
}

/// BGSAVE while another client keeps updating two keys together (MSET): the image holds the
/// pair from one instant, never one updated and the other not.
#[test]
fn bgsave_is_point_in_time_under_writes() {
    let s = TestServer::start(&["--save", ""]);
    let client = s.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = client.get_connection().unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _: () = redis::cmd("MSET")
                    .arg("x")
                    .arg(i)
                    .arg("y")
                    .arg(i)
                    .query(&mut c)
                    .unwrap();
                i += 1;
            }
        })
    };
    let mut c = s.conn();
    for i in 0..2000 {
        let _: () = redis::cmd("SET")
            .arg(format!("fill{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let r: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(r, "Background saving started");
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        if info.contains("rdb_bgsave_in_progress:0") && info.contains("rdb_saves:1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let s = restart(s, &["--save", ""]);
    let mut c = s.conn();
    let x: u64 = redis::cmd("GET").arg("x").query(&mut c).unwrap();
    let y: u64 = redis::cmd("GET").arg("y").query(&mut c).unwrap();
    assert_eq!(x, y);
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(), 2002);
}

fn check(path: &Path) -> (bool, String) {
    common::locus_check(&[path])
}

#[test]
fn damaged_snapshots_are_refused() {
    let s = TestServer::start(&["--save", ""]);
    let mut c = s.conn();
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
    let _: () = redis::cmd("AI.TENSORSET")
        .arg("t")
        .arg("FLOAT")
        .arg(64)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    let dir = s.dir.clone();
    drop(s);
    let good = dir.join("dump.locus");
    assert!(check(&good).0);
    let data = std::fs::read(&good).unwrap();
    // A flipped byte inside tensor data: only the checksum can tell.
    let mut flipped = data.clone();
    let n = flipped.len();
    flipped[n - 40] ^= 0x55;
    std::fs::write(&good, &flipped).unwrap();
    let (ok, text) = check(&good);
    assert!(!ok && text.contains("checksum mismatch"), "{text}");
    let log = common::failed_start(&dir, &[]);
    assert!(log.contains("Bad snapshot file 'dump.locus'"), "{log}");
    // A torn file (cut in the middle).
    std::fs::write(&good, &data[..data.len() / 2]).unwrap();
    let (ok, text) = check(&good);
    assert!(!ok && text.contains("offset"), "{text}");
}

/// A stream keeps its entries, counters, consumer groups and pending entries across a restart,
/// and the node boundaries too: approximate trimming afterwards removes what Redis would have
/// removed before (whole nodes of 100 entries, counted from the first entry ever placed).
#[test]
fn streams_keep_groups_and_node_layout() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 1..=250 {
        p.cmd("XADD").arg("s").arg(i).arg("f").arg(i).ignore();
    }
    for i in 1..=50 {
        p.cmd("XDEL").arg("s").arg(i).ignore();
    }
    p.cmd("XGROUP")
        .arg("CREATE")
        .arg("s")
        .arg("g")
        .arg("0")
        .ignore();
    p.cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("alice")
        .arg("COUNT")
        .arg(3)
        .arg("STREAMS")
        .arg("s")
        .arg(">")
        .ignore();
    p.cmd("XACK").arg("s").arg("g").arg("52-0").ignore();
    let _: () = p.query(&mut c).unwrap();
    let before = dump(&mut c);
    assert!(before[&b"s".to_vec()].contains("alice"), "{before:?}");
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    let s = restart(s, &[]);
    let mut c = s.conn();
    assert_eq!(dump(&mut c), before);
    // Nodes [1-100] (50 alive), [101-200], [201-250]: `~ 100` drops only the first.
    let trimmed: i64 = redis::cmd("XTRIM")
        .arg("s")
        .arg("MAXLEN")
        .arg("~")
        .arg(100)
        .query(&mut c)
        .unwrap();
    assert_eq!(trimmed, 50);
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg("s")
        .arg("g")
        .arg("-")
        .arg("+")
        .arg(10)
        .query(&mut c)
        .unwrap();
    let ids: Vec<&str> = pending.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(ids, ["51-0", "53-0"]);
}
