//! Races between connections, with the `redis` crate: blocking pops and stream reads woken by
//! another client, WATCH invalidated by another client, EXEC isolated from concurrent writers
//! and readers, and pub/sub between connections.

use crate::common;

use common::TestServer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap()
}

/// Waits until `n` clients are blocked (INFO clients).
fn wait_blocked(c: &mut redis::Connection, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info: String = q(c, &["INFO", "clients"]);
        let blocked = info
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if blocked >= n {
            return;
        }
        assert!(Instant::now() < deadline, "clients never blocked");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn blocked_pops_and_reads_are_woken_by_another_client_in_order() {
    let s = TestServer::start(&[]);
    let port = s.port;
    // Two BLPOP clients on one list are served in arrival order, one element each.
    let waiters: Vec<_> = (0..2)
        .map(|i| {
            let h = thread::spawn(move || {
                let mut c = TestServer::conn_to(port);
                let r: (String, String) =
                    redis::cmd("BLPOP").arg("l").arg(5).query(&mut c).unwrap();
                r.1
            });
            // The first must be queued before the second.
            wait_blocked(&mut TestServer::conn_to(port), i + 1);
            h
        })
        .collect();
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["RPUSH", "l", "first", "second"]);
    let got: Vec<String> = waiters.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, ["first", "second"]);

    // BZPOPMIN woken by ZADD from a transaction.
    let h = thread::spawn(move || {
        let mut c = TestServer::conn_to(port);
        let r: (String, String, String) = redis::cmd("BZPOPMIN")
            .arg("z")
            .arg(5)
            .query(&mut c)
            .unwrap();
        r
    });
    wait_blocked(&mut c, 1);
    let _: () = redis::pipe()
        .atomic()
        .cmd("ZADD")
        .arg("z")
        .arg(2)
        .arg("b")
        .ignore()
        .cmd("ZADD")
        .arg("z")
        .arg(1)
        .arg("a")
        .ignore()
        .query(&mut c)
        .unwrap();
    assert_eq!(h.join().unwrap(), ("z".into(), "a".into(), "1".into()));

    // XREAD BLOCK with `$` sees only what another client adds afterwards.
    let _: String = q(&mut c, &["XADD", "s", "1-1", "old", "x"]);
    let h = thread::spawn(move || {
        let mut c = TestServer::conn_to(port);
        let r: redis::Value = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(5000)
            .arg("STREAMS")
            .arg("s")
            .arg("$")
            .query(&mut c)
            .unwrap();
        r
    });
    wait_blocked(&mut c, 1);
    let _: String = q(&mut c, &["XADD", "s", "2-1", "new", "y"]);
    let text = format!("{:?}", h.join().unwrap());
    assert!(text.contains("2-1") && !text.contains("1-1"), "{text}");
}

#[test]
fn watch_is_invalidated_by_another_client() {
    let s = TestServer::start(&[]);
    let mut a = s.conn();
    let mut b = s.conn();
    let _: () = q(&mut a, &["SET", "k", "1"]);
    let _: () = q(&mut a, &["WATCH", "k"]);
    let _: () = q(&mut b, &["SET", "k", "2"]);
    let _: () = q(&mut a, &["MULTI"]);
    let _: String = q(&mut a, &["SET", "k", "from-a"]);
    let r: redis::Value = q(&mut a, &["EXEC"]);
    assert_eq!(
        r,
        redis::Value::Nil,
        "EXEC must abort after another client's write"
    );
    let v: String = q(&mut a, &["GET", "k"]);
    assert_eq!(v, "2");
    // Untouched, the same transaction goes through.
    let _: () = q(&mut a, &["WATCH", "k"]);
    let _: () = q(&mut a, &["MULTI"]);
    let _: String = q(&mut a, &["SET", "k", "from-a"]);
    let r: Vec<String> = q(&mut a, &["EXEC"]);
    assert_eq!(r, ["OK"]);
}

/// Transactions move one unit between two counters while other clients read both in one
/// MULTI and write elsewhere: no reader ever sees the sum change, so no transaction is seen
/// half done.
#[test]
fn exec_is_isolated_from_concurrent_clients() {
    let s = TestServer::start(&[]);
    let port = s.port;
    let mut c = s.conn();
    let _: () = q(&mut c, &["MSET", "a", "1000", "b", "0"]);
    let stop = Arc::new(AtomicBool::new(false));
    let movers: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                let mut c = TestServer::conn_to(port);
                for _ in 0..300 {
                    let _: () = redis::pipe()
                        .atomic()
                        .cmd("DECR")
                        .arg("a")
                        .ignore()
                        .cmd("INCR")
                        .arg("b")
                        .ignore()
                        .query(&mut c)
                        .unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut c = TestServer::conn_to(port);
                let mut checks = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (a, b) = read_a_and_b(&mut c);
                    assert_eq!(a + b, 1000, "a transaction was seen half done");
                    // Writes elsewhere from the same clients interleave freely.
                    let _: i64 = redis::cmd("INCR").arg("noise").query(&mut c).unwrap();
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    for m in movers {
        m.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let checks: i32 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checks > 0);
    let (a, b) = read_a_and_b(&mut c);
    assert_eq!((a, b), (400, 600));
}

/// Reads `a` and `b` in one transaction.
fn read_a_and_b(c: &mut redis::Connection) -> (i64, i64) {
    redis::pipe()
        .atomic()
        .cmd("GET")
        .arg("a")
        .cmd("GET")
        .arg("b")
        .query(c)
        .unwrap()
}

#[test]
fn pubsub_between_connections() {
    let s = TestServer::start(&[]);
    let mut sub_conn = s.conn();
    let mut publisher = s.conn();
    let mut sub = sub_conn.as_pubsub();
    sub.subscribe("news").unwrap();
    sub.psubscribe("alerts.*").unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n: i64 = q(&mut publisher, &["PUBLISH", "news", "hello"]);
    assert_eq!(n, 1);
    let n: i64 = q(&mut publisher, &["PUBLISH", "alerts.fire", "hot"]);
    assert_eq!(n, 1);
    let m = sub.get_message().unwrap();
    assert_eq!(m.get_channel_name(), "news");
    assert_eq!(m.get_payload::<String>().unwrap(), "hello");
    let m = sub.get_message().unwrap();
    assert_eq!(m.get_channel_name(), "alerts.fire");
    assert_eq!(m.get_pattern::<String>().unwrap(), "alerts.*");
    assert_eq!(m.get_payload::<String>().unwrap(), "hot");
    let n: Vec<(String, i64)> = q(&mut publisher, &["PUBSUB", "NUMSUB", "news", "other"]);
    assert_eq!(n, [("news".to_string(), 1), ("other".to_string(), 0)]);
}
