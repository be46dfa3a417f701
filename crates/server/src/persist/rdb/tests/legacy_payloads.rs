//! Payloads in the encodings Redis 7.0 reads but no longer writes (ziplists, zipmaps, plain
//! lists, sorted sets with text scores, quicklists of ziplists, version 1 streams, plain
//! quicklist nodes, module values), built here from the format description. Each is decoded
//! here and, when a redis-server is available, also RESTOREd there, which proves the
//! hand-built payload is one Redis accepts and that both read the same value from it.

use super::super::codec::{parse_canonical_i64, put_len, put_string};
use super::super::stream::build_nodes;
use super::super::{
    crc64, dump_payload, restore_payload, ModuleValue, RdbError, RdbStream, RdbValue, StreamId,
    RDB_VERSION,
};
use super::redis::{read_value, RedisServer, Reply};
use super::{canonical, sample_stream};

/// Appends the DUMP footer (version and CRC64) to an object.
pub(super) fn with_footer(mut object: Vec<u8>) -> Vec<u8> {
    object.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &object);
    object.extend_from_slice(&crc.to_le_bytes());
    object
}

/// A ziplist of `items`, each stored as ziplist.c `ziplistPush` would: as an integer in the
/// smallest encoding when it spells one, else as a string.
pub(super) fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev_len = 0usize;
    let mut last_offset = 10;
    for item in items {
        let start = body.len();
        last_offset = 10 + start;
        if prev_len < 254 {
            body.push(prev_len as u8);
        } else {
            body.push(0xfe);
            body.extend_from_slice(&(prev_len as u32).to_le_bytes());
        }
        match parse_canonical_i64(item) {
            Some(v) => ziplist_int(&mut body, v),
            None => ziplist_str(&mut body, item),
        }
        prev_len = body.len() - start;
    }
    let mut zl = Vec::new();
    zl.extend_from_slice(&((body.len() + 11) as u32).to_le_bytes());
    zl.extend_from_slice(&(last_offset as u32).to_le_bytes());
    zl.extend_from_slice(&(items.len().min(65535) as u16).to_le_bytes());
    zl.extend_from_slice(&body);
    zl.push(0xff);
    zl
}

fn ziplist_int(out: &mut Vec<u8>, v: i64) {
    if (0..=12).contains(&v) {
        out.push(0xf1 + v as u8);
    } else if let Ok(v8) = i8::try_from(v) {
        out.push(0xfe);
        out.extend_from_slice(&v8.to_le_bytes());
    } else if let Ok(v16) = i16::try_from(v) {
        out.push(0xc0);
        out.extend_from_slice(&v16.to_le_bytes());
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        out.push(0xf0);
        out.extend_from_slice(&v.to_le_bytes()[..3]);
    } else if let Ok(v32) = i32::try_from(v) {
        out.push(0xd0);
        out.extend_from_slice(&v32.to_le_bytes());
    } else {
        out.push(0xe0);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn ziplist_str(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len <= 63 {
        out.push(len as u8);
    } else if len <= 16383 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// A zipmap of `pairs`, each value followed by `free` unused bytes.
pub(super) fn zipmap(pairs: &[(&[u8], &[u8])], free: u8) -> Vec<u8> {
    let mut zm = vec![pairs.len().min(254) as u8];
    let put_len = |zm: &mut Vec<u8>, len: usize| {
        if len < 254 {
            zm.push(len as u8);
        } else {
            zm.push(254);
            zm.extend_from_slice(&(len as u32).to_le_bytes());
        }
    };
    for (field, value) in pairs {
        put_len(&mut zm, field.len());
        zm.extend_from_slice(field);
        put_len(&mut zm, value.len());
        zm.push(free);
        zm.extend_from_slice(value);
        zm.extend(std::iter::repeat_n(b'!', usize::from(free)));
    }
    zm.push(0xff);
    zm
}

/// An object of type `rdb_type` whose body is one string (the encoded blob types).
fn blob_object(rdb_type: u8, blob: &[u8]) -> Vec<u8> {
    let mut object = vec![rdb_type];
    put_string(&mut object, blob);
    object
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    items.iter().map(|(f, v)| (b(f), b(v))).collect()
}

/// A stream in the version 1 layout (RDB_TYPE_STREAM_LISTPACKS): no first ID, deleted ID,
/// entry count or group read counters.
fn stream_v1(s: &RdbStream) -> Vec<u8> {
    let mut object = vec![15u8];
    let nodes = build_nodes(&s.entries);
    put_len(&mut object, nodes.len() as u64);
    for (master, lp) in &nodes {
        let mut key = Vec::new();
        key.extend_from_slice(&master.ms.to_be_bytes());
        key.extend_from_slice(&master.seq.to_be_bytes());
        put_string(&mut object, &key);
        put_string(&mut object, lp);
    }
    put_len(&mut object, s.entries.len() as u64);
    put_len(&mut object, s.last_id.ms);
    put_len(&mut object, s.last_id.seq);
    put_len(&mut object, s.groups.len() as u64);
    for group in &s.groups {
        put_string(&mut object, &group.name);
        put_len(&mut object, group.last_id.ms);
        put_len(&mut object, group.last_id.seq);
        put_len(&mut object, group.pel.len() as u64);
        for p in &group.pel {
            object.extend_from_slice(&p.id.ms.to_be_bytes());
            object.extend_from_slice(&p.id.seq.to_be_bytes());
            object.extend_from_slice(&p.delivery_time_ms.to_le_bytes());
            put_len(&mut object, p.delivery_count);
        }
        put_len(&mut object, group.consumers.len() as u64);
        for consumer in &group.consumers {
            put_string(&mut object, &consumer.name);
            object.extend_from_slice(&consumer.seen_time_ms.to_le_bytes());
            put_len(&mut object, consumer.pending.len() as u64);
            for id in &consumer.pending {
                object.extend_from_slice(&id.ms.to_be_bytes());
                object.extend_from_slice(&id.seq.to_be_bytes());
            }
        }
    }
    object
}

/// Hand-built objects with the value each holds.
pub(super) fn legacy_objects() -> Vec<(&'static str, Vec<u8>, RdbValue)> {
    let mut cases = Vec::new();

    let fields: &[&[u8]] = &[
        b"name",
        b"redis",
        b"year",
        b"2009",
        b"neg",
        b"-70000",
        b"big",
        b"9223372036854775807",
    ];
    let hash = RdbValue::Hash(pairs(&[
        ("name", "redis"),
        ("year", "2009"),
        ("neg", "-70000"),
        ("big", "9223372036854775807"),
    ]));
    cases.push(("hash ziplist", blob_object(13, &ziplist(fields)), hash));

    let long_value = vec![b'v'; 300];
    let zipmap_pairs: &[(&[u8], &[u8])] =
        &[(b"a", b"1"), (b"field", &long_value), (b"", b"empty field")];
    let zipmap_hash = RdbValue::Hash(vec![
        (b("a"), b("1")),
        (b("field"), long_value.clone()),
        (b(""), b("empty field")),
    ]);
    cases.push((
        "zipmap",
        blob_object(9, &zipmap(zipmap_pairs, 2)),
        zipmap_hash,
    ));

    let list_items = [
        b("plain"),
        b("12"),
        b("-40000"),
        b("compress me ").repeat(10),
        b(""),
    ];
    let mut old_list = vec![1u8];
    put_len(&mut old_list, list_items.len() as u64);
    for item in &list_items {
        put_string(&mut old_list, item);
    }
    cases.push(("old list", old_list, RdbValue::List(list_items.to_vec())));

    let zl_items: Vec<Vec<u8>> = [
        "0",
        "12",
        "13",
        "-1",
        "127",
        "-128",
        "300",
        "-32768",
        "40000",
        "-8388608",
        "8388608",
        "2147483647",
        "-2147483649",
        "text",
    ]
    .iter()
    .map(|s| b(s))
    .chain([vec![b'm'; 100], vec![b'l'; 20_000]])
    .collect();
    let zl_refs: Vec<&[u8]> = zl_items.iter().map(Vec::as_slice).collect();
    cases.push((
        "list ziplist",
        blob_object(10, &ziplist(&zl_refs)),
        RdbValue::List(zl_items.clone()),
    ));

    let mut old_zset = vec![3u8, 5];
    for (member, score) in [("a", "1.5"), ("b", "-3"), ("c", "1e10")] {
        put_string(&mut old_zset, member.as_bytes());
        old_zset.push(score.len() as u8);
        old_zset.extend_from_slice(score.as_bytes());
    }
    put_string(&mut old_zset, b"up");
    old_zset.push(254);
    put_string(&mut old_zset, b"down");
    old_zset.push(255);
    let zset = RdbValue::ZSet(vec![
        (b("a"), 1.5),
        (b("b"), -3.0),
        (b("c"), 1e10),
        (b("up"), f64::INFINITY),
        (b("down"), f64::NEG_INFINITY),
    ]);
    cases.push(("zset with text scores", old_zset, zset));

    let zset_zl: &[&[u8]] = &[b"low", b"-5", b"mid", b"2.5", b"high", b"100000"];
    let zset = RdbValue::ZSet(vec![
        (b("low"), -5.0),
        (b("mid"), 2.5),
        (b("high"), 100000.0),
    ]);
    cases.push(("zset ziplist", blob_object(12, &ziplist(zset_zl)), zset));

    let node_a: &[&[u8]] = &[b"a", b"b", b"7"];
    let node_b: &[&[u8]] = &[b"c"];
    let mut quicklist = vec![14u8, 3];
    put_string(&mut quicklist, &ziplist(node_a));
    put_string(&mut quicklist, &ziplist(&[]));
    put_string(&mut quicklist, &ziplist(node_b));
    cases.push((
        "quicklist of ziplists",
        quicklist,
        RdbValue::List(vec![b("a"), b("b"), b("7"), b("c")]),
    ));

    let mut plain = vec![18u8, 2, 1];
    put_string(&mut plain, b"a plain node");
    plain.push(2);
    let mut lp = super::super::listpack::Builder::new();
    lp.push_bytes(b"packed");
    put_string(&mut plain, &lp.finish());
    cases.push((
        "quicklist plain node",
        plain,
        RdbValue::List(vec![b("a plain node"), b("packed")]),
    ));

    let mut stream = sample_stream(30);
    let v1 = stream_v1(&stream);
    stream.max_deleted_id = StreamId::default();
    stream.entries_added = stream.entries.len() as u64;
    stream.groups[0].entries_read = -1; // The last delivered ID is neither first nor last.
    stream.groups[1].entries_read = 0; // Before the first entry, and nothing deleted.
    cases.push(("stream v1", v1, RdbValue::Stream(stream)));

    cases
}

#[test]
fn legacy_encodings_decode() {
    for (name, object, expected) in legacy_objects() {
        let decoded =
            restore_payload(&with_footer(object)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(canonical(&decoded), canonical(&expected), "{name}");
    }
}

#[test]
fn legacy_encodings_are_read_as_redis_reads_them() {
    let Some(server) = RedisServer::start(&["--sanitize-dump-payload", "yes"]) else {
        return;
    };
    let mut c = server.client();
    let cases = legacy_objects();
    for (name, object, _) in &cases {
        let payload = with_footer(object.clone());
        let key = format!("legacy:{name}");
        let reply = c.cmd(&[b"RESTORE", key.as_bytes(), b"0", &payload]);
        assert_eq!(
            reply,
            Reply::Status("OK".into()),
            "{name}: Redis RESTORE of the hand-built payload"
        );
        let ours = restore_payload(&payload).expect("decodes");
        assert_eq!(
            canonical(&read_value(&mut c, key.as_bytes())),
            canonical(&ours),
            "{name}"
        );
        let copy = format!("{key}:copy");
        let reply = c.cmd(&[b"RESTORE", copy.as_bytes(), b"0", &dump_payload(&ours)]);
        assert_eq!(
            reply,
            Reply::Status("OK".into()),
            "{name}: RESTORE of the re-encoded value"
        );
        assert_eq!(
            canonical(&read_value(&mut c, copy.as_bytes())),
            canonical(&ours),
            "{name}: re-encoded"
        );
    }
    eprintln!(
        "legacy: {} hand-built payloads read alike by Redis and here",
        cases.len()
    );
}

/// A module value's body: SINT 42, STRING "abc", FLOAT 1.5, DOUBLE 1.25, EOF.
fn module_body() -> Vec<u8> {
    let mut body = vec![1, 42, 5, 3];
    body.extend_from_slice(b"abc");
    body.push(3);
    body.extend_from_slice(&1.5f32.to_le_bytes());
    body.push(4);
    body.extend_from_slice(&1.25f64.to_le_bytes());
    body.push(0);
    body
}

#[test]
fn module_values_pass_through_raw() {
    let type_id = ModuleValue::type_id_of("mytype-AZ", 3).expect("valid name");
    let mut object = vec![7u8];
    put_len(&mut object, type_id);
    object.extend_from_slice(&module_body());
    let payload = with_footer(object);
    let RdbValue::Module(value) = restore_payload(&payload).expect("decodes") else {
        panic!("not a module value");
    };
    assert_eq!((value.name().as_str(), value.encver()), ("mytype-AZ", 3));
    assert_eq!(value.body, module_body());
    assert_eq!(dump_payload(&RdbValue::Module(value)), payload);

    let mut unterminated = vec![7u8];
    put_len(&mut unterminated, type_id);
    unterminated.extend_from_slice(&module_body()[..module_body().len() - 1]);
    assert_eq!(
        restore_payload(&with_footer(unterminated)),
        Err(RdbError::Truncated)
    );

    let mut version1 = vec![6u8];
    put_len(&mut version1, type_id);
    version1.push(0);
    assert_eq!(
        restore_payload(&with_footer(version1)),
        Err(RdbError::UnparsableModule {
            name: "mytype-AZ".into()
        })
    );
}
