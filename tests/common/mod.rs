//! Starts a real `locus-server` process on a free loopback port for integration tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestServer {
    pub port: u16,
    child: Child,
    pub dir: std::path::PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestServer {
    pub fn start(args: &[&str]) -> TestServer {
        let dir =
            std::env::temp_dir().join(format!("locus-test-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        Self::start_in(&dir, args)
    }

    pub fn start_in(dir: &std::path::Path, args: &[&str]) -> TestServer {
        Self::start_env(dir, args, &[])
    }

    /// Starts a server with extra environment variables (for it alone).
    pub fn start_env(
        dir: &std::path::Path,
        args: &[&str],
        envs: &[(&str, &std::path::Path)],
    ) -> TestServer {
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_locus-server"));
            // The server dies with the test process, even when a static fixture is never dropped.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            for (k, v) in envs {
                cmd.env(k, v);
            }
            let child = cmd
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    dir.to_str().unwrap(),
                    // Servers run side by side: no shared default HTTP or gRPC port.
                    "--http-port",
                    "0",
                    "--grpc-port",
                    "0",
                ])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn locus-server");
            let mut server = TestServer {
                port,
                child,
                dir: dir.to_path_buf(),
            };
            if server.wait_ready() {
                return server;
            }
            let _ = server.child.kill();
        }
        panic!("locus-server did not start");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    pub fn conn(&self) -> redis::Connection {
        self.client().get_connection().unwrap()
    }

    /// A connection to the server on `port`, for threads that do not hold the server.
    pub fn conn_to(port: u16) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn raw(&self) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit (after SHUTDOWN or a signal) and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends raw bytes and reads until `expect_len` bytes arrived or the peer closed.
pub fn roundtrip_raw(s: &mut std::net::TcpStream, data: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    s.write_all(data).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// The bytes of a test model in redis-tests/models/.
pub fn model_file(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../redis-tests/models/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// AI.MODELSTORE `key` ONNX CPU BLOB <redis-tests/models/file>.
pub fn store_model(c: &mut redis::Connection, key: &str, file: &str) {
    let _: () = redis::cmd("AI.MODELSTORE")
        .arg(key)
        .arg("ONNX")
        .arg("CPU")
        .arg("BLOB")
        .arg(model_file(file))
        .query(c)
        .unwrap();
}

/// Every key of the selected database with its type, value and absolute expiry time, for
/// comparing a keyspace before and after a restart.
pub fn dump(c: &mut redis::Connection) -> std::collections::BTreeMap<Vec<u8>, String> {
    use redis::Value;
    use std::collections::{BTreeMap, BTreeSet};
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(c).unwrap();
    keys.into_iter()
        .map(|k| {
            let t: String = redis::cmd("TYPE").arg(&k).query(c).unwrap();
            let v = match t.as_str() {
                "string" => format!(
                    "{:?}",
                    redis::cmd("GET").arg(&k).query::<Vec<u8>>(c).unwrap()
                ),
                "hash" => format!(
                    "{:?}",
                    redis::cmd("HGETALL")
                        .arg(&k)
                        .query::<BTreeMap<Vec<u8>, Vec<u8>>>(c)
                        .unwrap()
                ),
                "AI__TENSOR" => format!(
                    "{:?}",
                    redis::cmd("AI.TENSORGET")
                        .arg(&k)
                        .arg("META")
                        .arg("BLOB")
                        .query::<Value>(c)
                        .unwrap()
                ),
                "set" => format!(
                    "{:?}",
                    redis::cmd("SMEMBERS")
                        .arg(&k)
                        .query::<BTreeSet<Vec<u8>>>(c)
                        .unwrap()
                ),
                "list" => format!(
                    "{:?}",
                    redis::cmd("LRANGE")
                        .arg(&k)
                        .arg(0)
                        .arg(-1)
                        .query::<Vec<Vec<u8>>>(c)
                        .unwrap()
                ),
                "zset" => format!(
                    "{:?}",
                    redis::cmd("ZRANGE")
                        .arg(&k)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query::<Vec<Vec<u8>>>(c)
                        .unwrap()
                ),
                // Entries, counters, groups, consumers and pending entries (with their times).
                "stream" => format!(
                    "{:?}",
                    redis::cmd("XINFO")
                        .arg("STREAM")
                        .arg(&k)
                        .arg("FULL")
                        .arg("COUNT")
                        .arg(0)
                        .query::<Value>(c)
                        .unwrap()
                ),
                other => other.to_string(),
            };
            let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(c).unwrap();
            (k, format!("{t} {v} expires {at}"))
        })
        .collect()
}

/// [`dump`] over databases `0..n` (leaves database 0 selected).
pub fn dump_dbs(
    c: &mut redis::Connection,
    n: usize,
) -> Vec<std::collections::BTreeMap<Vec<u8>, String>> {
    let out = (0..n)
        .map(|db| {
            let _: () = redis::cmd("SELECT").arg(db).query(c).unwrap();
            dump(c)
        })
        .collect();
    let _: () = redis::cmd("SELECT").arg(0).query(c).unwrap();
    out
}

/// Starts a server that must refuse to start (bad data files); returns its log.
pub fn failed_start(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_locus-server"))
        .args([
            "--port",
            "0",
            "--unixsocket",
            dir.join("s").to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the server started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `locus-check` with `args`: (success, report).
pub fn locus_check(args: &[&std::path::Path]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_locus-check"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub fn config_set(c: &mut redis::Connection, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(c)
        .unwrap();
}

/// A server that lives as long as the test process, for tests that share one across cases. It
/// is started from a thread that never ends, because a server dies with the thread that
/// spawned it.
pub fn process_server() -> &'static TestServer {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server: &'static TestServer = Box::leak(Box::new(TestServer::start(&[])));
        tx.send(server).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap()
}
