//! Differential tests against redis-server 7.0: values are built there with ordinary
//! commands, DUMPed, decoded here and compared with what Redis returns for them; then
//! re-encoded here, RESTOREd there and read back. Where Redis's own encoding decisions can be
//! reproduced, the re-encoded payload must equal Redis's DUMP byte for byte.

use super::super::{dump_payload, restore_payload, RdbValue};
use super::redis::{read_value, Client, RedisServer, Reply};
use super::{canonical, sample_values, Rng};

/// A key built by commands.
struct Case {
    key: String,
    commands: Vec<Vec<Vec<u8>>>,
    /// Whether re-encoding the decoded value must reproduce Redis's DUMP exactly.
    exact: bool,
    /// Whether RESTORE of the re-encoded value must give the original's OBJECT ENCODING.
    same_encoding: bool,
}

fn words(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

fn command(name: &str, key: &str, args: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut cmd = words(&[name, key]);
    cmd.extend(args);
    cmd
}

fn case(key: &str, exact: bool, commands: Vec<Vec<Vec<u8>>>) -> Case {
    Case {
        key: key.to_string(),
        commands,
        exact,
        same_encoding: true,
    }
}

fn texts(items: impl IntoIterator<Item = String>) -> Vec<Vec<u8>> {
    items.into_iter().map(String::into_bytes).collect()
}

fn string_cases() -> Vec<Case> {
    let mut rng = Rng::new(99);
    let mut values: Vec<Vec<u8>> = [
        "",
        "a",
        "hello world",
        "0",
        "-1",
        "127",
        "128",
        "-128",
        "-129",
        "32767",
        "32768",
        "-32768",
        "-32769",
        "2147483647",
        "2147483648",
        "-2147483648",
        "-2147483649",
        "12345678901",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "007",
        "+5",
        "-0",
        "1.5",
        " 1",
        "aaaaaaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaa",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    values.push(b"redis ".repeat(20));
    values.push(b"0123456789".repeat(10_000));
    values.push(rng.bytes(300));
    values.push(rng.bytes(20_000));
    values.push(vec![0, 255, 0, 13, 10, 0]);
    values.push(vec![0; 64]);
    let mut cases: Vec<Case> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let key = format!("str:{i}");
            case(&key, true, vec![command("SET", &key, [v])])
        })
        .collect();
    cases.push(case(
        "str:incr",
        true,
        vec![
            words(&["SET", "str:incr", "99"]),
            words(&["INCRBY", "str:incr", "1000000000000"]),
        ],
    ));
    // APPEND leaves "1234" raw; RESTORE (of Redis's own DUMP too) makes it an integer.
    let mut appended = case(
        "str:append",
        true,
        vec![
            words(&["SET", "str:append", "12"]),
            words(&["APPEND", "str:append", "34"]),
        ],
    );
    appended.same_encoding = false;
    cases.push(appended);
    cases
}

fn list_cases() -> Vec<Case> {
    let ints = [
        "0",
        "127",
        "128",
        "-1",
        "-4096",
        "4095",
        "4096",
        "-4097",
        "32767",
        "-32768",
        "32768",
        "8388607",
        "-8388608",
        "8388608",
        "2147483647",
        "-2147483648",
        "2147483648",
        "9223372036854775807",
        "-9223372036854775808",
        "01",
        "-0",
    ];
    let sizes: Vec<Vec<u8>> = [63usize, 64, 4095, 4096, 5000, 200]
        .iter()
        .map(|&n| vec![b'a' + (n % 26) as u8; n])
        .collect();
    vec![
        case(
            "list:small",
            true,
            vec![command("RPUSH", "list:small", words(&["a", "b", "", "c"]))],
        ),
        case(
            "list:ints",
            true,
            vec![command("RPUSH", "list:ints", words(&ints))],
        ),
        case(
            "list:big",
            true,
            vec![command(
                "RPUSH",
                "list:big",
                texts((0..10_000).map(|i| format!("item-{i}"))),
            )],
        ),
        case(
            "list:numbers",
            true,
            vec![command(
                "RPUSH",
                "list:numbers",
                texts((-1500..1500).map(|i| (i * 7919).to_string())),
            )],
        ),
        case(
            "list:sizes",
            true,
            vec![command("RPUSH", "list:sizes", sizes)],
        ),
        case(
            "list:huge",
            true,
            vec![command(
                "RPUSH",
                "list:huge",
                [vec![b'x'; 9000], b"mid".to_vec(), vec![b'y'; 20_000]],
            )],
        ),
        case(
            "list:lpush",
            false,
            vec![command(
                "LPUSH",
                "list:lpush",
                texts((0..2000).map(|i| format!("e{i}"))),
            )],
        ),
        case(
            "list:edited",
            false,
            vec![
                command(
                    "RPUSH",
                    "list:edited",
                    texts((0..3000).map(|i| format!("v{}", i % 10))),
                ),
                words(&["LREM", "list:edited", "500", "v3"]),
                words(&["LINSERT", "list:edited", "BEFORE", "v5", "inserted"]),
                words(&["LSET", "list:edited", "100", "changed"]),
            ],
        ),
    ]
}

fn set_cases() -> Vec<Case> {
    vec![
        case(
            "set:int16",
            true,
            vec![command(
                "SADD",
                "set:int16",
                words(&["1", "2", "3", "-5", "300"]),
            )],
        ),
        case(
            "set:int32",
            true,
            vec![command(
                "SADD",
                "set:int32",
                words(&["70000", "-70000", "1"]),
            )],
        ),
        case(
            "set:int64",
            true,
            vec![command(
                "SADD",
                "set:int64",
                words(&["9223372036854775807", "-9223372036854775808", "0"]),
            )],
        ),
        case(
            "set:512",
            true,
            vec![command(
                "SADD",
                "set:512",
                texts((0..512).map(|i| i.to_string())),
            )],
        ),
        case(
            "set:513",
            true,
            vec![command(
                "SADD",
                "set:513",
                texts((0..513).map(|i| i.to_string())),
            )],
        ),
        case(
            "set:strings",
            true,
            vec![command(
                "SADD",
                "set:strings",
                words(&["a", "b", "c", "007"]),
            )],
        ),
        case(
            "set:big",
            true,
            vec![command(
                "SADD",
                "set:big",
                texts((0..1000).map(|i| format!("member:{i}"))),
            )],
        ),
        case(
            "set:converted",
            true,
            vec![
                command("SADD", "set:converted", words(&["1", "2", "3"])),
                words(&["SADD", "set:converted", "not-a-number"]),
            ],
        ),
    ]
}

fn zset_cases() -> Vec<Case> {
    let scores = [
        ("1", "one"),
        ("1.5", "one-and-half"),
        ("-2.5", "neg"),
        ("0.1", "tenth"),
        ("1e-300", "tiny"),
        ("3.14159", "pi"),
        ("-2.5e20", "huge-neg"),
        ("inf", "plus-inf"),
        ("-inf", "minus-inf"),
        ("100000000000000000", "1e17"),
        ("4611686018427387904", "2^62"),
        ("9300000000000000000", "9.3e18"),
        ("0", "zero"),
        ("-0", "neg-zero"),
        ("1", "one-again"),
    ];
    let zadd = |key: &str, pairs: &[(&str, &str)]| {
        command("ZADD", key, pairs.iter().flat_map(|(s, m)| words(&[s, m])))
    };
    let mut shrunk = case(
        "zset:shrunk",
        false,
        vec![
            command(
                "ZADD",
                "zset:shrunk",
                texts((0..200).flat_map(|i| [i.to_string(), format!("m{i}")])),
            ),
            words(&["ZREMRANGEBYRANK", "zset:shrunk", "10", "-1"]),
        ],
    );
    shrunk.same_encoding = false;
    vec![
        case("zset:small", true, vec![zadd("zset:small", &scores)]),
        case(
            "zset:big",
            true,
            vec![command(
                "ZADD",
                "zset:big",
                texts((0..300).flat_map(|i| [format!("{}", i as f64 / 7.0), format!("m{i}")])),
            )],
        ),
        case(
            "zset:bigscores",
            true,
            vec![zadd("zset:bigscores", &scores), {
                let mut cmd = words(&["ZADD", "zset:bigscores"]);
                cmd.extend(texts(
                    (0..200).flat_map(|i| [format!("{i}e10"), format!("x{i}")]),
                ));
                cmd
            }],
        ),
        case(
            "zset:longmember",
            true,
            vec![command(
                "ZADD",
                "zset:longmember",
                [b"5".to_vec(), vec![b'm'; 65], b"6".to_vec(), b"s".to_vec()],
            )],
        ),
        shrunk,
    ]
}

fn hash_cases() -> Vec<Case> {
    vec![
        case(
            "hash:small",
            true,
            vec![command(
                "HSET",
                "hash:small",
                words(&["f", "v", "n", "12", "neg", "-70000", "e", ""]),
            )],
        ),
        case(
            "hash:1000",
            true,
            vec![command(
                "HSET",
                "hash:1000",
                texts((0..1000).flat_map(|i| [format!("field:{i}"), format!("value:{i}")])),
            )],
        ),
        case(
            "hash:longvalue",
            true,
            vec![command(
                "HSET",
                "hash:longvalue",
                [
                    b"f".to_vec(),
                    b"xy".repeat(40),
                    b"g".to_vec(),
                    b"1".to_vec(),
                ],
            )],
        ),
        case(
            "hash:binary",
            true,
            vec![command(
                "HSET",
                "hash:binary",
                [vec![0, 1, 2], vec![255, 0], b"k".to_vec(), vec![]],
            )],
        ),
    ]
}

fn xadd(key: &str, id: &str, fields: &[&str]) -> Vec<Vec<u8>> {
    let mut cmd = words(&["XADD", key, id]);
    cmd.extend(words(fields));
    cmd
}

fn stream_cases() -> Vec<Case> {
    let many: Vec<Vec<Vec<u8>>> = (0..250)
        .map(|i| xadd("xs:many", "*", &["n", &i.to_string(), "k", "v"]))
        .collect();
    let fields: Vec<Vec<Vec<u8>>> = (0..30)
        .map(|i| match i % 3 {
            0 => xadd("xs:fields", &format!("{}-1", i + 1), &["a", "1", "b", "2"]),
            1 => xadd("xs:fields", &format!("{}-1", i + 1), &["a", "1"]),
            _ => xadd(
                "xs:fields",
                &format!("{}-1", i + 1),
                &["b", "2", "a", &i.to_string()],
            ),
        })
        .collect();
    let big: Vec<Vec<Vec<u8>>> = (0..40)
        .map(|i| {
            let mut cmd = words(&["XADD", "xs:big", "*", "payload"]);
            cmd.push(vec![b'a' + (i % 26) as u8; 100 + 37 * i]);
            cmd
        })
        .collect();
    let mut groups = vec![];
    for i in 0..12 {
        groups.push(xadd(
            "xs:groups",
            &format!("{}-0", 100 + i),
            &["i", &i.to_string()],
        ));
    }
    groups.extend([
        words(&["XGROUP", "CREATE", "xs:groups", "g1", "0"]),
        words(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "3",
            "STREAMS",
            "xs:groups",
            ">",
        ]),
        words(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "bob",
            "COUNT",
            "2",
            "STREAMS",
            "xs:groups",
            ">",
        ]),
        words(&["XACK", "xs:groups", "g1", "101-0"]),
        words(&["XCLAIM", "xs:groups", "g1", "bob", "0", "100-0"]),
        words(&["XGROUP", "CREATE", "xs:groups", "g2", "$"]),
        words(&["XGROUP", "CREATECONSUMER", "xs:groups", "g2", "carol"]),
        words(&["XGROUP", "CREATE", "xs:groups", "7", "105-0"]),
        words(&[
            "XGROUP",
            "CREATE",
            "xs:groups",
            "late",
            "0",
            "ENTRIESREAD",
            "5",
        ]),
    ]);
    let mut deleted = vec![];
    for i in 0..20 {
        deleted.push(xadd("xs:deleted", "*", &["i", &i.to_string()]));
    }
    let mut empty = vec![
        xadd("xs:empty", "5-5", &["a", "b"]),
        words(&["XGROUP", "CREATE", "xs:empty", "g", "0"]),
        words(&["XDEL", "xs:empty", "5-5"]),
    ];
    empty.push(words(&["XGROUP", "CREATECONSUMER", "xs:empty", "g", "c"]));
    vec![
        case(
            "xs:simple",
            true,
            (0..5)
                .map(|i| xadd("xs:simple", "*", &["a", &i.to_string(), "b", "text"]))
                .collect(),
        ),
        case("xs:many", true, many),
        case("xs:fields", true, fields),
        case("xs:big", true, big),
        case("xs:groups", true, groups),
        case("xs:empty", true, empty),
        case(
            "xs:deleted",
            false,
            deleted
                .into_iter()
                .chain([
                    words(&["XGROUP", "CREATE", "xs:deleted", "g", "0"]),
                    words(&[
                        "XREADGROUP",
                        "GROUP",
                        "g",
                        "c",
                        "COUNT",
                        "5",
                        "STREAMS",
                        "xs:deleted",
                        ">",
                    ]),
                ])
                .collect(),
        ),
        case(
            "xs:setid",
            true,
            vec![
                xadd("xs:setid", "10-1", &["f", "v"]),
                xadd("xs:setid", "20-1", &["f", "w"]),
                words(&[
                    "XSETID",
                    "xs:setid",
                    "99999-0",
                    "ENTRIESADDED",
                    "500",
                    "MAXDELETEDID",
                    "50-0",
                ]),
            ],
        ),
        case(
            "xs:trimmed",
            false,
            (0..300)
                .map(|i| xadd("xs:trimmed", "*", &["i", &i.to_string()]))
                .chain([words(&["XTRIM", "xs:trimmed", "MAXLEN", "150"])])
                .collect(),
        ),
    ]
}

/// Marks the deleted-entries case's XDELs (they need the IDs XADD generated).
fn delete_some_entries(c: &mut Client, key: &str) {
    let ids: Vec<Vec<u8>> = c
        .call(&["XRANGE", key, "-", "+"])
        .array()
        .iter()
        .map(|e| e.array()[0].bytes())
        .collect();
    for id in ids.iter().step_by(3) {
        c.cmd(&[b"XDEL", key.as_bytes(), id]);
    }
}

fn object_encoding(c: &mut Client, key: &str) -> String {
    c.call(&["OBJECT", "ENCODING", key]).text()
}

/// Runs one case; returns whether the bytes were compared.
fn check_case(c: &mut Client, case: &Case) -> bool {
    let key = case.key.as_str();
    c.call(&["DEL", key]);
    for cmd in &case.commands {
        let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
        if let Reply::Error(e) = c.cmd(&args) {
            panic!("{key}: setup command failed: {e}");
        }
    }
    if key == "xs:deleted" {
        delete_some_entries(c, key);
    }
    let payload = c.call(&["DUMP", key]).bytes();
    let decoded =
        restore_payload(&payload).unwrap_or_else(|e| panic!("{key}: Redis's DUMP refused: {e}"));
    let expected = read_value(c, key.as_bytes());
    assert_eq!(
        canonical(&decoded),
        canonical(&expected),
        "{key}: decoded value"
    );

    let ours = dump_payload(&decoded);
    if case.exact {
        assert_eq!(
            ours, payload,
            "{key}: re-encoded payload differs from Redis's DUMP"
        );
    }
    let copy = format!("{key}:copy");
    let reply = c.cmd(&[b"RESTORE", copy.as_bytes(), b"0", &ours, b"REPLACE"]);
    assert_eq!(
        reply,
        Reply::Status("OK".into()),
        "{key}: RESTORE of our payload"
    );
    let restored = read_value(c, copy.as_bytes());
    assert_eq!(
        canonical(&restored),
        canonical(&expected),
        "{key}: value restored from our payload"
    );
    if case.same_encoding {
        assert_eq!(
            object_encoding(c, &copy),
            object_encoding(c, key),
            "{key}: encoding after RESTORE"
        );
    }
    case.exact
}

#[test]
fn values_made_by_redis_decode_and_restore() {
    let Some(server) = RedisServer::start(&[]) else {
        return;
    };
    let mut c = server.client();
    let cases: Vec<Case> = [
        string_cases(),
        list_cases(),
        set_cases(),
        zset_cases(),
        hash_cases(),
        stream_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let exact = cases.iter().filter(|case| check_case(&mut c, case)).count();
    eprintln!(
        "differential: {} keys checked, {exact} byte for byte",
        cases.len()
    );
}

#[test]
fn values_made_here_restore_into_redis() {
    let Some(server) = RedisServer::start(&[]) else {
        return;
    };
    let mut c = server.client();
    let (mut checked, mut identical) = (0, 0);
    for (i, value) in sample_values().into_iter().enumerate() {
        if matches!(value, RdbValue::Module(_)) {
            continue;
        }
        let key = format!("sample:{i}");
        let payload = dump_payload(&value);
        let reply = c.cmd(&[b"RESTORE", key.as_bytes(), b"0", &payload]);
        assert_eq!(reply, Reply::Status("OK".into()), "{key}: RESTORE");
        assert_eq!(
            canonical(&read_value(&mut c, key.as_bytes())),
            canonical(&value),
            "{key}"
        );
        // Redis re-dumps what we wrote unchanged, except hash tables, which it iterates
        // in its own order.
        let redis_payload = c.call(&["DUMP", &key]).bytes();
        if redis_payload == payload {
            identical += 1;
        } else {
            assert!(
                matches!(value, RdbValue::Set(_) | RdbValue::Hash(_)),
                "{key}: Redis's DUMP differs"
            );
            let redis_value = restore_payload(&redis_payload).expect("Redis's DUMP decodes");
            assert_eq!(
                canonical(&redis_value),
                canonical(&value),
                "{key}: Redis's DUMP"
            );
        }
        checked += 1;
    }
    eprintln!(
        "differential: {checked} values made here restored, {identical} re-dumped identically"
    );
}
