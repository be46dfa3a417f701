//! A throwaway redis-server for differential tests, and a minimal RESP2 client to talk to it.
//!
//! The server binary is `$REDIS_SERVER` or `redis-server` from the PATH; tests that need one
//! are skipped (with a note on stderr) when it cannot be started.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::super::{PendingEntry, RdbConsumer, RdbGroup, RdbStream, RdbValue, StreamId};

/// A reply, RESP2.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// A bulk or status reply's bytes.
    pub(super) fn bytes(&self) -> Vec<u8> {
        match self {
            Reply::Bulk(Some(b)) => b.clone(),
            Reply::Status(s) => s.clone().into_bytes(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    pub(super) fn int(&self) -> i64 {
        match self {
            Reply::Int(v) => *v,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    pub(super) fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(items)) => items,
            other => panic!("expected an array reply, got {other:?}"),
        }
    }

    pub(super) fn is_nil(&self) -> bool {
        matches!(self, Reply::Bulk(None) | Reply::Array(None))
    }
}

/// A connection to the test server.
pub(super) struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let writer = stream.try_clone()?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends a command of binary arguments and reads its reply.
    pub(super) fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("write to redis-server");
        self.read_reply()
    }

    /// Sends a command of text arguments.
    pub(super) fn call(&mut self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd(&args)
    }

    /// Sends a command and panics unless the reply is a success.
    pub(super) fn ok(&mut self, args: &[&str]) -> Reply {
        let reply = self.call(args);
        if let Reply::Error(e) = &reply {
            panic!("{args:?} failed: {e}");
        }
        reply
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read from redis-server");
        line.trim_end_matches("\r\n").to_string()
    }

    fn read_reply(&mut self) -> Reply {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(rest.parse().expect("integer reply")),
            "$" => {
                let len: i64 = rest.parse().expect("bulk length");
                if len < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0u8; len as usize + 2];
                self.reader.read_exact(&mut buf).expect("bulk body");
                buf.truncate(len as usize);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let len: i64 = rest.parse().expect("array length");
                if len < 0 {
                    return Reply::Array(None);
                }
                Reply::Array(Some((0..len).map(|_| self.read_reply()).collect()))
            }
            _ => panic!("unexpected reply line {line:?}"),
        }
    }
}

/// A redis-server process on a free port, in a directory of its own; killed and cleaned up
/// when dropped.
pub(super) struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

impl RedisServer {
    /// Starts a server with persistence off and `extra` arguments, or returns None (and says
    /// so) when no redis-server can be started.
    pub(super) fn start(extra: &[&str]) -> Option<RedisServer> {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let dir = std::env::temp_dir().join(format!(
            "rdb-test-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).ok()?;
        for _attempt in 0..5 {
            let port = free_port()?;
            let spawned = Command::new(&binary)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) => {
                    eprintln!("skipping: cannot start {binary}: {e}");
                    let _ = std::fs::remove_dir_all(&dir);
                    return None;
                }
            };
            if wait_ready(&mut child, port) {
                return Some(RedisServer { child, port, dir });
            }
            // Lost the port to another process, or failed: try another port.
            let _ = child.kill();
            let _ = child.wait();
        }
        eprintln!("skipping: {binary} did not come up");
        let _ = std::fs::remove_dir_all(&dir);
        None
    }

    pub(super) fn client(&self) -> Client {
        Client::connect(self.port).expect("connect to redis-server")
    }

    /// The server's working directory (where SAVE writes).
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until the server answers PING, or has exited, or 10 seconds have passed.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut client) = Client::connect(port) {
            if client.call(&["PING"]) == Reply::Status("PONG".into()) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn free_port() -> Option<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).ok()?;
    Some(listener.local_addr().ok()?.port())
}

/// Reads a key's value through ordinary commands, as the neutral model.
pub(super) fn read_value(c: &mut Client, key: &[u8]) -> RdbValue {
    let kind = c.cmd(&[b"TYPE", key]).text();
    let strings =
        |reply: Reply| -> Vec<Vec<u8>> { reply.array().iter().map(Reply::bytes).collect() };
    match kind.as_str() {
        "string" => RdbValue::String(c.cmd(&[b"GET", key]).bytes()),
        "list" => RdbValue::List(strings(c.cmd(&[b"LRANGE", key, b"0", b"-1"]))),
        "set" => RdbValue::Set(strings(c.cmd(&[b"SMEMBERS", key]))),
        "zset" => {
            let flat = strings(c.cmd(&[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]));
            RdbValue::ZSet(
                flat.chunks(2)
                    .map(|p| (p[0].clone(), parse_score(&p[1])))
                    .collect(),
            )
        }
        "hash" => {
            let flat = strings(c.cmd(&[b"HGETALL", key]));
            RdbValue::Hash(
                flat.chunks(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect(),
            )
        }
        "stream" => RdbValue::Stream(read_stream(c, key)),
        other => panic!(
            "unexpected type {other} of {:?}",
            String::from_utf8_lossy(key)
        ),
    }
}

fn parse_score(text: &[u8]) -> f64 {
    let text = std::str::from_utf8(text).expect("score text");
    match text {
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        _ => text.parse().expect("score"),
    }
}

/// An ID as XINFO prints it.
pub(super) fn parse_id(reply: &Reply) -> StreamId {
    let text = reply.text();
    let (ms, seq) = text.split_once('-').expect("stream ID");
    StreamId::new(ms.parse().expect("ms"), seq.parse().expect("seq"))
}

/// XINFO STREAM FULL as a map from field name to reply.
pub(super) fn info_map(reply: &Reply) -> Vec<(String, Reply)> {
    reply
        .array()
        .chunks(2)
        .map(|p| (p[0].text(), p[1].clone()))
        .collect()
}

fn field<'a>(map: &'a [(String, Reply)], name: &str) -> &'a Reply {
    &map.iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in XINFO reply"))
        .1
}

/// A stream's whole state, from XINFO STREAM key FULL COUNT 0.
pub(super) fn read_stream(c: &mut Client, key: &[u8]) -> RdbStream {
    let info = c.cmd(&[b"XINFO", b"STREAM", key, b"FULL", b"COUNT", b"0"]);
    let map = info_map(&info);
    let entries = field(&map, "entries")
        .array()
        .iter()
        .map(|entry| {
            let parts = entry.array();
            let flat = parts[1].array();
            let fields = flat
                .chunks(2)
                .map(|p| (p[0].bytes(), p[1].bytes()))
                .collect();
            (parse_id(&parts[0]), fields)
        })
        .collect();
    let groups = field(&map, "groups")
        .array()
        .iter()
        .map(read_group)
        .collect();
    RdbStream {
        entries,
        last_id: parse_id(field(&map, "last-generated-id")),
        first_id: parse_id(field(&map, "recorded-first-entry-id")),
        max_deleted_id: parse_id(field(&map, "max-deleted-entry-id")),
        entries_added: field(&map, "entries-added").int() as u64,
        groups,
    }
}

fn read_group(reply: &Reply) -> RdbGroup {
    let map = info_map(reply);
    let entries_read = match field(&map, "entries-read") {
        r if r.is_nil() => -1,
        r => r.int(),
    };
    let pel = field(&map, "pending")
        .array()
        .iter()
        .map(|p| {
            let p = p.array();
            PendingEntry {
                id: parse_id(&p[0]),
                delivery_time_ms: p[2].int(),
                delivery_count: p[3].int() as u64,
            }
        })
        .collect();
    let consumers = field(&map, "consumers")
        .array()
        .iter()
        .map(|consumer| {
            let cmap = info_map(consumer);
            RdbConsumer {
                name: field(&cmap, "name").bytes(),
                seen_time_ms: field(&cmap, "seen-time").int(),
                pending: field(&cmap, "pending")
                    .array()
                    .iter()
                    .map(|p| parse_id(&p.array()[0]))
                    .collect(),
            }
        })
        .collect();
    RdbGroup {
        name: field(&map, "name").bytes(),
        last_id: parse_id(field(&map, "last-delivered-id")),
        entries_read,
        pel,
        consumers,
    }
}
