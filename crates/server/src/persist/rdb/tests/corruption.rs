//! Corrupted input: truncated and altered payloads are refused by the footer check; bodies
//! altered behind a recomputed checksum, and files altered likewise, decode to an error or a
//! value but never panic. Against redis-server (with deep sanitization), altered payloads are
//! accepted or refused as Redis accepts or refuses them, and read alike when accepted.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::super::codec::put_string;
use super::super::{
    crc64, decode_object, dump_payload, encode_object, read_rdb, restore_payload, RdbError,
    RdbValue,
};
use super::legacy_payloads::{legacy_objects, with_footer};
use super::redis::{read_value, RedisServer, Reply};
use super::{canonical, sample_values, Rng};

/// Every object the tests know how to make: sample values and hand-built legacy ones.
fn objects() -> Vec<Vec<u8>> {
    let mut objects: Vec<Vec<u8>> = sample_values().iter().map(encode_object).collect();
    objects.extend(legacy_objects().into_iter().map(|(_, object, _)| object));
    objects
}

/// Where to cut an object of `len` bytes: everywhere in small ones; in large ones about 1000
/// places spread over it, and every place near its end.
fn cut_points(len: usize) -> impl Iterator<Item = usize> {
    let stride = (len / 1000).max(1);
    (0..len).filter(move |&cut| cut % stride == 0 || cut + 64 >= len)
}

/// Decodes `object`, turning a panic into a test failure that shows the input.
fn decode_without_panic(object: &[u8]) -> Result<RdbValue, RdbError> {
    catch_unwind(AssertUnwindSafe(|| decode_object(object)))
        .unwrap_or_else(|_| panic!("decode_object panicked on {object:02x?}"))
}

#[test]
fn truncated_or_altered_payloads_fail_the_footer_check() {
    let mut checked = 0;
    for object in objects() {
        let payload = with_footer(object);
        for len in 0..payload.len() {
            assert!(
                restore_payload(&payload[..len]).is_err(),
                "truncated to {len}"
            );
            checked += 1;
        }
        for pos in 0..payload.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut altered = payload.clone();
                altered[pos] ^= mask;
                let result = catch_unwind(|| restore_payload(&altered));
                assert!(
                    matches!(result, Ok(Err(_))),
                    "byte {pos} ^ {mask:#x} accepted or panicked"
                );
                checked += 1;
            }
        }
    }
    eprintln!("corruption: {checked} truncated or altered payloads refused");
}

#[test]
fn altered_bodies_never_panic() {
    let (mut ok, mut err) = (0usize, 0usize);
    let mut tally = |result: Result<RdbValue, RdbError>| match result {
        Ok(_) => ok += 1,
        Err(_) => err += 1,
    };
    let mut rng = Rng::new(2024);
    for object in objects() {
        for len in cut_points(object.len()) {
            tally(decode_without_panic(&object[..len]));
        }
        // Every byte (in large objects, about 150 spread over them), altered in a few ways.
        let small = object.len() <= 1024;
        let stride = if small { 1 } else { object.len() / 150 };
        for pos in (0..object.len()).step_by(stride) {
            for alter in [0x01u8, 0x02, 0x40, 0x80, 0xff] {
                let mut altered = object.clone();
                altered[pos] ^= alter;
                tally(decode_without_panic(&altered));
            }
            for value in [0x00u8, 0x3f, 0x40, 0x7f, 0x80, 0x81, 0xc3, 0xfe, 0xff] {
                let mut altered = object.clone();
                altered[pos] = value;
                tally(decode_without_panic(&altered));
            }
        }
        // Random edits: a few bytes changed, a range removed or duplicated.
        let rounds = if small { 3000 } else { 200 };
        for _ in 0..rounds {
            let mut altered = object.clone();
            for _ in 0..1 + rng.below(4) {
                let pos = rng.below(altered.len());
                altered[pos] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                let from = rng.below(altered.len());
                let to = (from + rng.below(16)).min(altered.len());
                if rng.below(2) == 0 {
                    altered.drain(from..to);
                } else {
                    let copy = altered[from..to].to_vec();
                    altered.splice(from..from, copy);
                }
            }
            tally(decode_without_panic(&altered));
        }
    }
    eprintln!(
        "corruption: {} altered bodies decoded without panic ({ok} to a value, {err} refused)",
        ok + err
    );
}

/// A version 10 RDB file of the sample values, across two databases, with a valid checksum.
fn sample_file(body: &[u8]) -> Vec<u8> {
    let mut bytes = b"REDIS0010".to_vec();
    bytes.extend_from_slice(body);
    bytes.push(255);
    let crc = crc64(0, &bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

fn sample_body() -> Vec<u8> {
    let mut body = vec![250];
    put_string(&mut body, b"redis-ver");
    put_string(&mut body, b"7.0.15");
    body.extend_from_slice(&[254, 0, 251, 2, 0]);
    for (i, value) in sample_values().iter().enumerate().take(12) {
        if i == 6 {
            body.extend_from_slice(&[254, 3]);
        }
        let object = encode_object(value);
        body.push(object[0]);
        put_string(&mut body, format!("key{i}").as_bytes());
        body.extend_from_slice(&object[1..]);
    }
    body
}

#[test]
fn altered_files_never_panic() {
    let body = sample_body();
    let file = sample_file(&body);
    assert!(read_rdb(&file, |_| Ok(())).is_ok());
    let mut rng = Rng::new(77);
    let mut runs = 0;
    for round in 0..4000 {
        let mut altered = body.clone();
        for _ in 0..1 + rng.below(3) {
            let pos = rng.below(altered.len());
            altered[pos] = rng.next() as u8;
        }
        if round % 5 == 0 {
            altered.truncate(rng.below(altered.len()));
        }
        let altered = sample_file(&altered);
        let result = catch_unwind(|| read_rdb(&altered, |_| Ok(())));
        assert!(result.is_ok(), "read_rdb panicked on {altered:02x?}");
        runs += 1;
    }
    let mut truncated = 0;
    for len in cut_points(file.len()) {
        assert!(
            read_rdb(&file[..len], |_| Ok(())).is_err(),
            "file truncated to {len}"
        );
        truncated += 1;
    }
    eprintln!("corruption: {runs} altered files and {truncated} truncated ones read without panic");
}

/// Payloads Redis makes, for altering and sending back to it.
fn redis_payloads(c: &mut super::redis::Client) -> Vec<Vec<u8>> {
    let setup: &[&[&str]] = &[
        &[
            "SET",
            "s",
            "a string of some length, compressible compressible",
        ],
        &["RPUSH", "l", "a", "1", "-300", "bb"],
        &["SADD", "is", "1", "-2", "300"],
        &["SADD", "ss", "x", "yy"],
        &["ZADD", "z", "1.5", "a", "2", "b"],
        &["HSET", "h", "f", "v", "g", "12"],
        &["XADD", "x", "1-1", "f", "v", "g", "w"],
        &["XADD", "x", "1-2", "f", "u", "g", "t"],
        &["XGROUP", "CREATE", "x", "grp", "0"],
        &[
            "XREADGROUP",
            "GROUP",
            "grp",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            "x",
            ">",
        ],
    ];
    for cmd in setup {
        c.ok(cmd);
    }
    ["s", "l", "is", "ss", "z", "h", "x"]
        .iter()
        .map(|key| c.call(&["DUMP", key]).bytes())
        .collect()
}

/// Re-signs an altered payload so that only its body is wrong.
fn resign(mut payload: Vec<u8>) -> Vec<u8> {
    let n = payload.len();
    let crc = crc64(0, &payload[..n - 8]);
    payload[n - 8..].copy_from_slice(&crc.to_le_bytes());
    payload
}

#[test]
fn altered_payloads_are_judged_as_redis_judges_them() {
    let Some(server) = RedisServer::start(&["--sanitize-dump-payload", "yes"]) else {
        return;
    };
    let mut c = server.client();
    let payloads = redis_payloads(&mut c);
    let (mut both_ok, mut both_refuse, mut stricter) = (0, 0, Vec::new());
    for payload in &payloads {
        let body_len = payload.len() - 10;
        for pos in 0..body_len {
            for mask in [0x01u8, 0x10, 0x80, 0xff] {
                let mut altered = payload.clone();
                altered[pos] ^= mask;
                let altered = resign(altered);
                let ours = restore_payload(&altered);
                let reply = c.cmd(&[b"RESTORE", b"probe", b"0", &altered, b"REPLACE"]);
                match (reply, ours) {
                    (Reply::Status(_), Ok(value)) => {
                        let theirs = read_value(&mut c, b"probe");
                        assert_eq!(
                            canonical(&theirs),
                            canonical(&value),
                            "byte {pos} ^ {mask:#x}"
                        );
                        both_ok += 1;
                    }
                    (Reply::Error(e), Err(ours)) => {
                        assert_eq!(ours.restore_reply(), e, "byte {pos} ^ {mask:#x}");
                        both_refuse += 1;
                    }
                    (reply, Ok(value)) => {
                        panic!("byte {pos} ^ {mask:#x}: Redis answers {reply:?} to what decodes to {value:?}")
                    }
                    (reply, Err(ours)) => stricter.push(format!(
                        "payload {} byte {pos} ^ {mask:#x}: {ours} ({reply:?})",
                        payload[0]
                    )),
                }
            }
        }
    }
    eprintln!(
        "corruption vs Redis: {both_ok} accepted alike, {both_refuse} refused alike, {} refused only here",
        stricter.len()
    );
    for line in stricter.iter().take(60) {
        eprintln!("  refused only here: {line}");
    }
}

#[test]
fn empty_and_unknown_objects_get_redis_error_texts() {
    let Some(server) = RedisServer::start(&[]) else {
        return;
    };
    let mut c = server.client();
    let mut cases = vec![
        dump_payload(&RdbValue::Set(vec![])),
        with_footer(vec![8, 0]),
        with_footer(vec![0, 0x45]),
    ];
    let mut bad_version = dump_payload(&RdbValue::String(b"v".to_vec()));
    let n = bad_version.len();
    bad_version[n - 10] = 11;
    cases.push(resign(bad_version));
    let mut bad_crc = dump_payload(&RdbValue::String(b"v".to_vec()));
    bad_crc[n - 1] ^= 1;
    cases.push(bad_crc);
    cases.push(vec![1, 2, 3]);
    for payload in cases {
        let reply = c.cmd(&[b"RESTORE", b"k", b"0", &payload]);
        let ours = restore_payload(&payload).expect_err("refused");
        assert_eq!(
            reply,
            Reply::Error(ours.restore_reply().to_string()),
            "{payload:02x?}"
        );
    }
}
