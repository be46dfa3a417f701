//! Integration tests against a live locus-server with the `redis` crate.

use crate::common;

use common::TestServer;
use redis::{Commands, RedisResult, Value};
use std::time::Duration;

#[test]
fn strings_and_keys() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let _: () = c.set("k", "v").unwrap();
    assert_eq!(c.get::<_, String>("k").unwrap(), "v");
    assert_eq!(c.incr::<_, _, i64>("n", 5).unwrap(), 5);
    assert_eq!(c.append::<_, _, i64>("k", "w").unwrap(), 2);
    assert_eq!(c.strlen::<_, i64>("k").unwrap(), 2);
    assert_eq!(
        redis::cmd("TYPE").arg("k").query::<String>(&mut c).unwrap(),
        "string"
    );
    let v: Vec<Option<String>> = c.mget(&["k", "missing", "n"]).unwrap();
    assert_eq!(v, vec![Some("vw".into()), None, Some("5".into())]);
    assert_eq!(c.del::<_, i64>(&["k", "n", "missing"]).unwrap(), 2);
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(), 0);
}

#[test]
fn binary_safe_keys_and_values() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let key = b"k\x00\r\n\xff".to_vec();
    let val: Vec<u8> = (0..=255u8).collect();
    let _: () = c.set(&key, &val).unwrap();
    assert_eq!(c.get::<_, Vec<u8>>(&key).unwrap(), val);
    let keys: Vec<Vec<u8>> = c.keys("*").unwrap();
    assert_eq!(keys, vec![key]);
}

#[test]
fn millisecond_expiry_lazy_and_active() {
    let s = TestServer::start(&["--hz", "50"]);
    let mut c = s.conn();
    let _: () = redis::cmd("SET")
        .arg("short")
        .arg(1)
        .arg("PX")
        .arg(60)
        .query(&mut c)
        .unwrap();
    let pttl: i64 = c.pttl("short").unwrap();
    assert!(pttl > 0 && pttl <= 60, "{pttl}");
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(c.get::<_, Option<String>>("short").unwrap(), None);
    // Active expiry removes keys nobody touches.
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("v{i}"))
            .arg(i)
            .arg("PX")
            .arg(50)
            .query(&mut c)
            .unwrap();
    }
    let _: () = c.set("keep", 1).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        if n == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "active expiry left {n} keys"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn errors_use_redis_texts() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let e = redis::cmd("GET").query::<Value>(&mut c).unwrap_err();
    assert!(
        e.to_string()
            .contains("wrong number of arguments for 'get' command"),
        "{e}"
    );
    let e = redis::cmd("NOSUCH")
        .arg("a")
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown command 'NOSUCH', with args beginning with: 'a'"),
        "{e}"
    );
    let _: () = c.set("s", "abc").unwrap();
    let e = c.incr::<_, _, i64>("s", 1).unwrap_err();
    assert!(
        e.to_string()
            .contains("value is not an integer or out of range"),
        "{e}"
    );
    let _: () = c.set("max", i64::MAX).unwrap();
    let e = c.incr::<_, _, i64>("max", 1).unwrap_err();
    assert!(
        e.to_string()
            .contains("increment or decrement would overflow"),
        "{e}"
    );
    let e = redis::cmd("SELECT")
        .arg(99)
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("DB index is out of range"), "{e}");
}

#[test]
fn many_connections_in_parallel() {
    let s = TestServer::start(&[]);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let client = s.client();
            std::thread::spawn(move || {
                let mut c = client.get_connection().unwrap();
                for i in 0..500 {
                    let _: () = c.set(format!("t{t}:{i}"), i).unwrap();
                    let _: i64 = c.incr("counter", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = s.conn();
    assert_eq!(c.get::<_, i64>("counter").unwrap(), 16 * 500);
    assert_eq!(
        redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(),
        16 * 500 + 1
    );
}

#[test]
fn deep_pipeline_keeps_order() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 0..20_000 {
        p.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
        p.cmd("GET").arg(format!("p{i}"));
    }
    let got: Vec<i64> = p.query(&mut c).unwrap();
    assert_eq!(got, (0..20_000).collect::<Vec<i64>>());
}

#[test]
fn resp3_hello_and_maps() {
    let s = TestServer::start(&[]);
    let mut raw = s.raw();
    let out = common::roundtrip_raw(&mut raw, b"HELLO 3\r\nCONFIG GET port\r\n");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with('%'), "HELLO 3 replies with a map: {text}");
    assert!(
        text.contains("%1\r\n$4\r\nport\r\n"),
        "CONFIG GET is a map under RESP3: {text}"
    );
}

#[test]
fn requirepass_gates_commands() {
    let s = TestServer::start(&["--requirepass", "sekret"]);
    let mut raw = s.raw();
    let out = common::roundtrip_raw(&mut raw, b"GET a\r\nAUTH wrong\r\nAUTH sekret\r\nGET a\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n$-1\r\n"
    );
    let c = redis::Client::open(format!("redis://:sekret@127.0.0.1:{}/", s.port)).unwrap();
    let mut c = c.get_connection().unwrap();
    let _: () = c.set("x", 1).unwrap();
}

#[test]
fn protocol_errors_close_connection_and_server_survives() {
    let s = TestServer::start(&[]);
    let mut raw = s.raw();
    let out = common::roundtrip_raw(&mut raw, b"*1\r\n:1\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-ERR Protocol error: expected '$', got ':'\r\n"
    );
    let mut raw = s.raw();
    let out = common::roundtrip_raw(&mut raw, b"*1\r\n$99999999999\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    let mut c = s.conn();
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
}

#[test]
fn inline_commands() {
    let s = TestServer::start(&[]);
    let mut raw = s.raw();
    let out = common::roundtrip_raw(&mut raw, b"PING\r\nset k \"a b\"\r\nget k\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "+PONG\r\n+OK\r\n$3\r\na b\r\n"
    );
}

#[test]
fn large_bulk_round_trip() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let big: Vec<u8> = (0..(64 << 20)).map(|i| (i % 251) as u8).collect();
    let _: () = c.set("big", &big).unwrap();
    let back: Vec<u8> = c.get("big").unwrap();
    assert!(back == big);
    let e: RedisResult<()> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("proto-max-bulk-len")
        .arg("1mb")
        .query(&mut c);
    e.unwrap();
    let mut raw = s.raw();
    let out = common::roundtrip_raw(&mut raw, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
}

#[test]
fn shutdown_command_exits_cleanly() {
    let mut s = TestServer::start(&[]);
    let mut c = s.conn();
    let _ = redis::cmd("SHUTDOWN").query::<Value>(&mut c);
    let st = s.wait_exit(Duration::from_secs(10)).expect("server exited");
    assert!(st.success(), "{st:?}");
}

#[test]
fn sigterm_exits_cleanly() {
    let mut s = TestServer::start(&[]);
    unsafe { libc::kill(s.pid() as i32, libc::SIGTERM) };
    let st = s.wait_exit(Duration::from_secs(10)).expect("server exited");
    assert!(st.success(), "{st:?}");
}

#[test]
fn config_file_and_overrides() {
    let dir = std::env::temp_dir().join(format!("locus-cfgtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("locus.conf");
    std::fs::write(&conf, "databases 4\nslowlog-max-len 7\n").unwrap();
    let port = common::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_locus-server"))
        .arg(&conf)
        .args([
            "--port",
            &port.to_string(),
            "--slowlog-max-len",
            "9",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut c = None;
    for _ in 0..200 {
        if let Ok(conn) = client.get_connection() {
            c = Some(conn);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = c.expect("connect");
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("databases")
        .arg("slowlog-max-len")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, vec!["databases", "4", "slowlog-max-len", "9"]);
    let e = redis::cmd("SELECT")
        .arg(4)
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("out of range"));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg("77")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("CONFIG").arg("REWRITE").query(&mut c).unwrap();
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.contains("maxclients 77") && text.contains("databases 4"),
        "{text}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
