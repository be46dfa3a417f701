//! Property tests on the protocol layer: random valid command sequences give the same answers as
//! a simple in-memory model, and arbitrary bytes never take the server down for others.

use crate::common;

use common::TestServer;
use proptest::prelude::*;
use std::collections::HashMap;
use std::io::Write;

#[derive(Debug, Clone)]
enum Op {
    Set(Vec<u8>, Vec<u8>),
    Get(Vec<u8>),
    Del(Vec<u8>),
    Append(Vec<u8>, Vec<u8>),
    Exists(Vec<u8>),
    Strlen(Vec<u8>),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![b'a', b'b', 0u8, b'\r', b'\n', 0xff]),
        1..4,
    )
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), value()).prop_map(|(k, v)| Op::Set(k, v)),
        key().prop_map(Op::Get),
        key().prop_map(Op::Del),
        (key(), value()).prop_map(|(k, v)| Op::Append(k, v)),
        key().prop_map(Op::Exists),
        key().prop_map(Op::Strlen),
    ]
}

#[derive(Debug, PartialEq)]
enum Expect {
    Ok,
    Bulk(Option<Vec<u8>>),
    Int(i64),
}

fn apply(model: &mut HashMap<Vec<u8>, Vec<u8>>, op: &Op) -> Expect {
    match op {
        Op::Set(k, v) => {
            model.insert(k.clone(), v.clone());
            Expect::Ok
        }
        Op::Get(k) => Expect::Bulk(model.get(k).cloned()),
        Op::Del(k) => Expect::Int(model.remove(k).is_some() as i64),
        Op::Append(k, v) => {
            let e = model.entry(k.clone()).or_default();
            e.extend_from_slice(v);
            Expect::Int(e.len() as i64)
        }
        Op::Exists(k) => Expect::Int(model.contains_key(k) as i64),
        Op::Strlen(k) => Expect::Int(model.get(k).map_or(0, |v| v.len() as i64)),
    }
}

fn to_cmd(op: &Op) -> redis::Cmd {
    let (name, args): (&str, Vec<&[u8]>) = match op {
        Op::Set(k, v) => ("SET", vec![k, v]),
        Op::Get(k) => ("GET", vec![k]),
        Op::Del(k) => ("DEL", vec![k]),
        Op::Append(k, v) => ("APPEND", vec![k, v]),
        Op::Exists(k) => ("EXISTS", vec![k]),
        Op::Strlen(k) => ("STRLEN", vec![k]),
    };
    let mut c = redis::cmd(name);
    for a in args {
        c.arg(a);
    }
    c
}

fn decode(v: redis::Value) -> Expect {
    match v {
        redis::Value::Okay => Expect::Ok,
        redis::Value::SimpleString(s) if s == "OK" => Expect::Ok,
        redis::Value::Nil => Expect::Bulk(None),
        redis::Value::BulkString(b) => Expect::Bulk(Some(b)),
        redis::Value::Int(i) => Expect::Int(i),
        other => panic!("unexpected reply {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A random sequence, sent as one pipeline, answers exactly like the model.
    #[test]
    fn command_sequences_match_model(ops in prop::collection::vec(op(), 1..120)) {
        let s = shared_server();
        let mut c = s.conn();
        let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
        let mut model = HashMap::new();
        let mut pipe = redis::pipe();
        for op in &ops {
            pipe.add_command(to_cmd(op));
        }
        let replies: Vec<redis::Value> = pipe.query(&mut c).unwrap();
        for (op, reply) in ops.iter().zip(replies) {
            prop_assert_eq!(decode(reply), apply(&mut model, op), "op {:?}", op);
        }
    }

    /// Arbitrary bytes on one connection never stop the server from serving another.
    #[test]
    fn garbage_never_hurts_other_clients(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..512), 1..6)) {
        let s = shared_server();
        let mut bystander = s.conn();
        let mut raw = s.raw();
        for chunk in &chunks {
            if raw.write_all(chunk).is_err() {
                break;
            }
        }
        drop(raw);
        let pong: String = redis::cmd("PING").query(&mut bystander).unwrap();
        prop_assert_eq!(pong, "PONG");
    }

    /// Valid requests split at arbitrary points still frame correctly.
    #[test]
    fn split_writes_frame_correctly(value in prop::collection::vec(any::<u8>(), 0..3000), cut in 1usize..100) {
        let s = shared_server();
        let mut raw = s.raw();
        let mut req = format!("*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n${}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n*2\r\n$3\r\nGET\r\n$5\r\nsplit\r\n");
        for piece in req.chunks(cut) {
            raw.write_all(piece).unwrap();
        }
        let mut expected = b"+OK\r\n".to_vec();
        expected.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b"\r\n");
        let got = read_exact_len(&mut raw, expected.len());
        prop_assert_eq!(got, expected);
    }
}

fn read_exact_len(s: &mut std::net::TcpStream, n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// One server for all cases.
fn shared_server() -> &'static TestServer {
    static SERVER: std::sync::OnceLock<&'static TestServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(common::process_server)
}
