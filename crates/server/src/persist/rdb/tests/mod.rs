//! Tests of the RDB codec: unit tests of each encoding, differential tests against a real
//! redis-server 7.0 (DUMP/RESTORE both ways, and RDB files it saves), hand-built payloads of
//! the encodings only older versions write, and corrupted input.

mod corruption;
mod differential;
mod files;
mod legacy_payloads;
mod redis;
mod unit;

use super::{
    ModuleValue, PendingEntry, RdbConsumer, RdbGroup, RdbStream, RdbValue, StreamFields, StreamId,
};

/// The value with its unordered parts sorted (set members, hash fields, sorted-set members,
/// groups, consumers, PELs), so values read through different encodings compare equal.
pub(super) fn canonical(value: &RdbValue) -> RdbValue {
    match value {
        RdbValue::Set(members) => {
            let mut members = members.clone();
            members.sort();
            RdbValue::Set(members)
        }
        RdbValue::ZSet(members) => {
            let mut members = members.clone();
            members.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            RdbValue::ZSet(members)
        }
        RdbValue::Hash(fields) => {
            let mut fields = fields.clone();
            fields.sort();
            RdbValue::Hash(fields)
        }
        RdbValue::Stream(s) => {
            let mut s = s.clone();
            s.groups.sort_by(|a, b| a.name.cmp(&b.name));
            for group in &mut s.groups {
                group.pel.sort_by_key(|p| p.id);
                group.consumers.sort_by(|a, b| a.name.cmp(&b.name));
                for consumer in &mut group.consumers {
                    consumer.pending.sort();
                }
            }
            RdbValue::Stream(s)
        }
        other => other.clone(),
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Bytes that do not compress.
    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn strings(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| b(s)).collect()
}

/// A stream with entries of differing fields, metadata and two consumer groups.
pub(super) fn sample_stream(entries: usize) -> RdbStream {
    let entries: Vec<(StreamId, StreamFields)> = (0..entries as u64)
        .map(|i| {
            let mut fields = vec![
                (b("field"), b(&format!("value-{i}"))),
                (b("n"), b(&i.to_string())),
            ];
            if i % 7 == 3 {
                fields.push((b("extra"), vec![b'x'; (i % 90) as usize]));
            }
            (StreamId::new(1_700_000_000_000 + i / 3, i % 3), fields)
        })
        .collect();
    let last = entries.last().map_or(StreamId::new(5, 5), |e| e.0);
    let pel: Vec<PendingEntry> = entries
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, (id, _))| PendingEntry {
            id: *id,
            delivery_time_ms: 1_700_000_000_123 + i as i64,
            delivery_count: i as u64 + 1,
        })
        .collect();
    let groups = if pel.len() == 4 {
        vec![
            RdbGroup {
                name: b("readers"),
                last_id: pel[3].id,
                entries_read: 4,
                pel: pel.clone(),
                consumers: vec![
                    RdbConsumer {
                        name: b("alice"),
                        seen_time_ms: 1_700_000_000_500,
                        pending: vec![pel[0].id, pel[2].id],
                    },
                    RdbConsumer {
                        name: b("bob"),
                        seen_time_ms: 1_700_000_000_600,
                        pending: vec![pel[1].id, pel[3].id],
                    },
                    RdbConsumer {
                        name: b("idle"),
                        seen_time_ms: 1_700_000_000_700,
                        pending: vec![],
                    },
                ],
            },
            RdbGroup {
                name: b("7"),
                last_id: StreamId::new(0, 0),
                entries_read: -1,
                pel: vec![],
                consumers: vec![],
            },
        ]
    } else {
        vec![]
    };
    RdbStream {
        first_id: entries.first().map_or(StreamId::default(), |e| e.0),
        entries,
        last_id: last,
        max_deleted_id: StreamId::new(1, 1),
        entries_added: 1000,
        groups,
    }
}

/// Values of every type in small and large forms, built without a server: for round trips
/// and as material for corruption.
pub(super) fn sample_values() -> Vec<RdbValue> {
    let mut rng = Rng::new(7);
    let mut values = vec![
        RdbValue::String(vec![]),
        RdbValue::String(b("hello")),
        RdbValue::String(b("-129")),
        RdbValue::String(b("2147483648")),
        RdbValue::String(b("007")),
        RdbValue::String(b("abc").repeat(40)),
        RdbValue::String(rng.bytes(300)),
        RdbValue::List(strings(&["a", "1", "-5000", "9223372036854775807", ""])),
        RdbValue::List((0..3000).map(|i| b(&format!("item-{i}"))).collect()),
        RdbValue::List(vec![vec![b'z'; 9000], b("tail")]),
        RdbValue::Set(strings(&["3", "-1", "70000", "-9223372036854775808"])),
        RdbValue::Set(strings(&["x", "y", "1"])),
        RdbValue::Set((0..600).map(|i| b(&i.to_string())).collect()),
        RdbValue::ZSet(vec![
            (b("a"), 1.5),
            (b("b"), f64::INFINITY),
            (b("c"), f64::NEG_INFINITY),
            (b("d"), -0.1),
            (b("e"), 3e20),
            (b("f"), 42.0),
        ]),
        RdbValue::ZSet(
            (0..300)
                .map(|i| (b(&format!("m{i}")), i as f64 / 7.0))
                .collect(),
        ),
        RdbValue::Hash(vec![
            (b("f"), b("v")),
            (b("1"), b("2")),
            (b("long"), vec![b'q'; 100]),
        ]),
        RdbValue::Hash(vec![(b("a"), b("1")), (b("b"), b("-70000"))]),
        RdbValue::Hash(
            (0..700)
                .map(|i| (b(&format!("f{i}")), b(&format!("v{i}"))))
                .collect(),
        ),
        RdbValue::Stream(sample_stream(10)),
        RdbValue::Stream(sample_stream(0)),
        RdbValue::Stream(sample_stream(350)),
    ];
    let body = {
        let mut body = vec![1, 0x2a, 5, 3];
        body.extend_from_slice(b"abc");
        body.extend_from_slice(&[3, 0, 0, 0xc0, 0x3f, 4]);
        body.extend_from_slice(&1.25f64.to_le_bytes());
        body.push(0);
        body
    };
    values.push(RdbValue::Module(ModuleValue {
        type_id: ModuleValue::type_id_of("test__rdb", 1).expect("valid module name"),
        body,
    }));
    values
}
