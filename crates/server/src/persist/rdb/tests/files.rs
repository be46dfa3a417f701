//! RDB files: files redis-server SAVEs, read back and compared key by key with what the
//! server holds; hand-built files with the opcodes Redis 7.0 no longer writes; and module
//! data, when a build of Redis's own test module is at hand.

use std::collections::BTreeMap;

use super::super::codec::{put_len, put_string};
use super::super::{
    crc64, encode_object, read_rdb, RdbEntry, RdbError, RdbFileReader, RdbSummary, RdbValue,
};
use super::redis::{read_value, Client, RedisServer, Reply};
use super::{canonical, sample_values};

const LIBRARY: &str =
    "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 1 end)";

/// Fills three databases with every type, with and without expiries.
fn populate(c: &mut Client) {
    let far_future_ms = "4102444800123"; // 2100-01-01, milliseconds.
    c.ok(&["SELECT", "0"]);
    c.ok(&["SET", "plain", "value"]);
    c.ok(&["SET", "number", "12345"]);
    c.ok(&["SET", "long", &"compressible ".repeat(30)]);
    c.ok(&["RPUSH", "list", "a", "b", "3"]);
    c.ok(&["SADD", "intset", "1", "2", "3"]);
    c.ok(&["SADD", "set", "x", "y"]);
    c.ok(&["ZADD", "zset", "1.5", "a", "-inf", "b"]);
    c.ok(&["HSET", "hash", "f", "v", "g", "1"]);
    c.ok(&["XADD", "stream", "1-1", "f", "v"]);
    c.ok(&["XGROUP", "CREATE", "stream", "g", "0"]);
    c.ok(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "stream", ">"]);
    for i in 0..600 {
        c.ok(&["SADD", "bigset", &format!("m{i}")]);
        c.ok(&["HSET", "bighash", &format!("f{i}"), &format!("v{i}")]);
    }
    c.ok(&["SET", "expiring", "soon", "PXAT", far_future_ms]);
    c.ok(&["SELECT", "1"]);
    c.ok(&["SET", "plain", "db1"]);
    c.ok(&["RPUSH", "expiring-list", "x"]);
    c.ok(&["PEXPIREAT", "expiring-list", "4102444800999"]);
    c.ok(&["SELECT", "5"]);
    c.ok(&["HSET", "h5", "a", "b"]);
    c.ok(&["EXPIREAT", "h5", "4102444800"]);
    c.ok(&["ZADD", "z5", "1", "one"]);
    c.ok(&["SELECT", "0"]);
    c.ok(&["FUNCTION", "LOAD", LIBRARY]);
}

/// SAVEs and reads the file back.
fn save_and_read(server: &RedisServer, c: &mut Client) -> (Vec<RdbEntry>, RdbSummary) {
    c.ok(&["SAVE"]);
    let bytes = std::fs::read(server.dir().join("dump.rdb")).expect("the saved file");
    let mut entries = Vec::new();
    let summary = read_rdb(&bytes, |entry| {
        entries.push(entry);
        Ok(())
    })
    .expect("Redis's file reads");
    (entries, summary)
}

/// Every key read from the file holds what the server holds, with the same expiry, and
/// every key the server holds is in the file.
fn compare_with_server(c: &mut Client, entries: &[RdbEntry]) {
    let mut per_db: BTreeMap<u64, i64> = BTreeMap::new();
    for entry in entries {
        c.ok(&["SELECT", &entry.db.to_string()]);
        let key = String::from_utf8_lossy(&entry.key).into_owned();
        assert_eq!(
            canonical(&entry.value),
            canonical(&read_value(c, &entry.key)),
            "value of {key}"
        );
        let expected_expiry = c.call(&["PEXPIRETIME", &key]).int();
        assert_eq!(
            entry.expire_ms.unwrap_or(-1),
            expected_expiry,
            "expiry of {key}"
        );
        *per_db.entry(entry.db).or_default() += 1;
    }
    for (db, count) in &per_db {
        c.ok(&["SELECT", &db.to_string()]);
        assert_eq!(c.call(&["DBSIZE"]).int(), *count, "keys in db {db}");
    }
    c.ok(&["SELECT", "0"]);
}

#[test]
fn files_saved_by_redis_read_back() {
    let Some(server) = RedisServer::start(&["--dbfilename", "dump.rdb"]) else {
        return;
    };
    let mut c = server.client();
    populate(&mut c);
    let (entries, summary) = save_and_read(&server, &mut c);
    assert_eq!(entries.len(), 16);
    compare_with_server(&mut c, &entries);
    assert_eq!(summary.version, 10);
    assert_eq!(summary.functions, vec![LIBRARY.as_bytes().to_vec()]);
    assert!(summary.checksum.is_some_and(|crc| crc != 0));
    let version = c.call(&["INFO", "server"]).text();
    let aux: BTreeMap<String, String> = summary
        .aux
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into(),
                String::from_utf8_lossy(v).into(),
            )
        })
        .collect();
    assert!(version.contains(&format!("redis_version:{}", aux["redis-ver"])));
    assert!(entries.iter().all(|e| e.idle.is_none() && e.freq.is_none()));

    c.ok(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]);
    let (entries, _) = save_and_read(&server, &mut c);
    assert!(
        entries.iter().all(|e| e.freq.is_some() && e.idle.is_none()),
        "LFU counters"
    );
    c.ok(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    let (entries, _) = save_and_read(&server, &mut c);
    assert!(
        entries.iter().all(|e| e.idle.is_some() && e.freq.is_none()),
        "LRU idle times"
    );
    eprintln!(
        "files: {} keys of a Redis RDB file read back alike",
        entries.len()
    );
}

#[test]
fn files_saved_without_checksum_read_back() {
    let args = ["--dbfilename", "dump.rdb", "--rdbchecksum", "no"];
    let Some(server) = RedisServer::start(&args) else {
        return;
    };
    let mut c = server.client();
    populate(&mut c);
    let (entries, summary) = save_and_read(&server, &mut c);
    assert_eq!(summary.checksum, Some(0));
    assert_eq!(entries.len(), 16);
    compare_with_server(&mut c, &entries);
}

/// A hand-built file: header, then `body`, then EOF and (from version 5) the CRC64.
fn file(version: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("REDIS{version:04}").into_bytes();
    bytes.extend_from_slice(body);
    bytes.push(255);
    if version >= 5 {
        let crc = crc64(0, &bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
    }
    bytes
}

fn key_value(out: &mut Vec<u8>, key: &str, value: &RdbValue) {
    let object = encode_object(value);
    out.push(object[0]);
    put_string(out, key.as_bytes());
    out.extend_from_slice(&object[1..]);
}

fn string(s: &str) -> RdbValue {
    RdbValue::String(s.as_bytes().to_vec())
}

#[test]
fn every_opcode_of_a_hand_built_file_is_read() {
    let mut body = vec![250];
    put_string(&mut body, b"redis-ver");
    put_string(&mut body, b"7.0.0-rc1");
    body.push(246); // A library in the 7.0 release candidates' format.
    put_string(&mut body, b"oldlib");
    put_string(&mut body, b"LUA");
    put_len(&mut body, 1);
    put_string(&mut body, b"a description");
    put_string(
        &mut body,
        b"redis.register_function('f', function() return 1 end)",
    );
    body.push(245);
    put_string(&mut body, LIBRARY.as_bytes());
    body.push(247); // Module AUX data: type ID, UINT opcode, when, SINT 0, EOF.
    put_len(&mut body, 12345);
    body.extend_from_slice(&[2, 1, 1, 0, 0]);
    body.extend_from_slice(&[254, 0, 251, 3, 1]);
    body.push(253);
    body.extend_from_slice(&2_000_000_000i32.to_le_bytes());
    key_value(&mut body, "seconds", &string("a"));
    body.extend_from_slice(&[248, 0x40, 200]);
    key_value(&mut body, "idle", &string("b"));
    body.extend_from_slice(&[249, 7]);
    key_value(&mut body, "freq", &string("c"));
    body.extend_from_slice(&[252]);
    body.extend_from_slice(&123i64.to_le_bytes());
    body.extend_from_slice(&[2]); // An empty set, which Redis skips ...
    put_string(&mut body, b"empty");
    body.push(0);
    key_value(&mut body, "after-empty", &string("d")); // ... with its expiry.
    body.extend_from_slice(&[254, 9]);
    for (i, value) in sample_values().iter().enumerate() {
        key_value(&mut body, &format!("sample{i}"), value);
    }
    let bytes = file(9, &body);

    let mut reader = RdbFileReader::new(&bytes).expect("header");
    let entries: Vec<RdbEntry> = reader
        .by_ref()
        .collect::<Result<_, _>>()
        .expect("file reads");
    let summary = reader.into_summary();
    assert_eq!(summary.version, 9);
    assert_eq!(summary.functions.len(), 2);
    assert_eq!(
        summary.functions[0],
        b"#!LUA name=oldlib\nredis.register_function('f', function() return 1 end)".to_vec()
    );
    assert_eq!(summary.module_aux.len(), 1);
    assert_eq!(
        (summary.module_aux[0].type_id, summary.module_aux[0].when),
        (12345, 1)
    );
    assert_eq!(summary.module_aux[0].body, vec![1, 0, 0]);
    assert_eq!(summary.empty_keys_skipped, 1);
    assert_eq!(summary.keys, entries.len() as u64);
    type KeyAttributes<'a> = (u64, &'a [u8], Option<i64>, Option<u64>, Option<u8>);
    let first: Vec<KeyAttributes<'_>> = entries[..4]
        .iter()
        .map(|e| (e.db, e.key.as_slice(), e.expire_ms, e.idle, e.freq))
        .collect();
    assert_eq!(
        first,
        vec![
            (0, &b"seconds"[..], Some(2_000_000_000_000), None, None),
            (0, &b"idle"[..], None, Some(200), None),
            (0, &b"freq"[..], None, None, Some(7)),
            (0, &b"after-empty"[..], None, None, None),
        ]
    );
    for (entry, value) in entries[4..].iter().zip(sample_values()) {
        assert_eq!(entry.db, 9);
        assert_eq!(canonical(&entry.value), canonical(&value));
    }
}

#[test]
fn versions_signatures_and_checksums() {
    let mut body = Vec::new();
    key_value(&mut body, "k", &string("v"));
    let old = file(4, &body);
    let mut keys = 0;
    let summary = read_rdb(&old, |_| {
        keys += 1;
        Ok(())
    })
    .expect("a version 4 file has no checksum");
    assert_eq!((keys, summary.checksum), (1, None));

    let mut zeroed = file(10, &body);
    let n = zeroed.len();
    zeroed[n - 8..].fill(0);
    assert_eq!(
        read_rdb(&zeroed, |_| Ok(())).map(|s| s.checksum),
        Ok(Some(0))
    );

    let mut flipped = file(10, &body);
    flipped[n - 1] ^= 1;
    assert!(matches!(
        read_rdb(&flipped, |_| Ok(())),
        Err(RdbError::ChecksumMismatch { .. })
    ));

    assert_eq!(
        RdbFileReader::new(&file(11, &body)).err(),
        Some(RdbError::UnsupportedVersion(11))
    );
    assert_eq!(
        RdbFileReader::new(&file(0, &body)).err(),
        Some(RdbError::UnsupportedVersion(0))
    );
    assert_eq!(
        RdbFileReader::new(b"RUBIS0010\xff").err(),
        Some(RdbError::NotRdb)
    );
    assert_eq!(RdbFileReader::new(b"REDIS00").err(), Some(RdbError::NotRdb));
    let stopped = read_rdb(&file(10, &body), |_| {
        Err(RdbError::Visitor("enough".into()))
    });
    assert_eq!(stopped, Err(RdbError::Visitor("enough".into())));
    let without_eof = &file(10, &body)[..n - 9];
    assert_eq!(read_rdb(without_eof, |_| Ok(())), Err(RdbError::Truncated));
}

/// With `REDIS_TESTRDB_MODULE` naming a build of Redis's tests/modules/testrdb.c, module
/// values and module AUX data made by a real module are read, passed through and restored.
#[test]
fn module_data_made_by_a_real_module() {
    let Ok(module) = std::env::var("REDIS_TESTRDB_MODULE") else {
        eprintln!("skipping: REDIS_TESTRDB_MODULE is not set");
        return;
    };
    let args = ["--loadmodule", &module, "2", "--dbfilename", "dump.rdb"];
    let Some(server) = RedisServer::start(&args) else {
        return;
    };
    let mut c = server.client();
    c.ok(&["testrdb.set.before", "before-value"]);
    c.ok(&["testrdb.set.after", "after-value"]);
    c.ok(&["testrdb.set.key", "mkey", "module string value"]);
    let payload = c.call(&["DUMP", "mkey"]).bytes();
    let value = super::super::restore_payload(&payload).expect("module payload decodes");
    let RdbValue::Module(module_value) = &value else {
        panic!("not a module value: {value:?}");
    };
    assert_eq!(
        (module_value.name().as_str(), module_value.encver()),
        ("test__rdb", 1)
    );
    assert_eq!(super::super::dump_payload(&value), payload);
    let reply = c.cmd(&[
        b"RESTORE",
        b"copy",
        b"0",
        &super::super::dump_payload(&value),
    ]);
    assert_eq!(reply, Reply::Status("OK".into()));
    assert_eq!(
        c.call(&["testrdb.get.key", "copy"]).bytes(),
        b"module string value".to_vec()
    );

    let (entries, summary) = save_and_read(&server, &mut c);
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e.value == value));
    let whens: Vec<(String, u64)> = summary
        .module_aux
        .iter()
        .map(|a| (a.name(), a.when))
        .collect();
    assert_eq!(
        whens,
        vec![("test__rdb".to_string(), 1), ("test__rdb".to_string(), 2)]
    );
    eprintln!(
        "files: module value and {} module AUX records read",
        summary.module_aux.len()
    );
}
