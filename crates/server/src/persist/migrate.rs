//! Values in Redis's own serialization, for DUMP/RESTORE and for importing Redis and RedisAI
//! RDB files: the keyspace's types to and from [`RdbValue`].
//!
//! Redis's types map one to one. The AI types travel as module values, so a Redis without
//! them refuses the payload cleanly ("Bad data format") instead of misreading it:
//! - tensors of the dtypes RedisAI 1.2 has are RedisAI's own `AI_TENSOR` values, so payloads
//!   move between RedisAI and Locus both ways;
//! - RedisAI's `AI__MODEL` values are read as a model with one version;
//! - everything else (models with their versions, routers, tensors RedisAI lacks) is a
//!   `locus-key` value whose body is this server's snapshot record of the key, so nothing of
//!   it is lost.

use super::rdb::{self, ModuleValue, RdbStream, RdbValue};
use super::redisai_rdb::{self, RedisAiValue};
use super::{Image, Loaded};
use crate::engine::model::{Device, ModelSpec};
use crate::store::stream::{Consumer, Group, Pending, Stream, StreamId};
use crate::store::{Entry, Value};
use crate::tensor::{DType, Tensor};
use bytes::Bytes;
use std::sync::Arc;

/// The module type name of Locus's own values (nine characters of Redis's module charset).
const LOCUS_TYPE: &str = "locus-key";
const LOCUS_ENCVER: u16 = 1;

/// RDB_MODULE_OPCODE_STRING and RDB_MODULE_OPCODE_EOF, each a one-byte RDB length.
const OPCODE_STRING: u8 = 5;
const OPCODE_EOF: u8 = 0;

/// A payload decoded: a value ready to store, or a model still to be loaded by the engine
/// (parsing and optimising a graph takes a while, so the caller chooses the thread).
pub enum Restored {
    Value(Value),
    Model(Loaded),
}

/// DUMP's payload for a key's entry.
pub fn dump(key: &Bytes, entry: &Entry) -> Vec<u8> {
    rdb::dump_payload(&to_rdb(key, entry))
}

/// The RDB form of a key's value.
pub fn to_rdb(key: &Bytes, entry: &Entry) -> RdbValue {
    let bytes = |b: &Bytes| b.to_vec();
    match &entry.value {
        Value::Str(s) => RdbValue::String(s.to_vec()),
        Value::List(l) => RdbValue::List(l.iter().map(bytes).collect()),
        Value::Set(s) => RdbValue::Set(s.iter().map(bytes).collect()),
        Value::ZSet(z) => RdbValue::ZSet(z.iter().map(|(m, s)| (m.to_vec(), s)).collect()),
        Value::Hash(h) => RdbValue::Hash(h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()),
        Value::Stream(s) => RdbValue::Stream(stream_to_rdb(s)),
        Value::Tensor(t) => match redisai_tensor(t) {
            Some(v) => {
                let (type_id, body) = redisai_rdb::encode_redisai(&v, None);
                RdbValue::Module(ModuleValue { type_id, body })
            }
            None => locus_value(key, entry),
        },
        Value::Model(_) | Value::Router(_) => locus_value(key, entry),
    }
}

/// A `locus-key` module value: the key's snapshot record as one module string.
fn locus_value(key: &Bytes, entry: &Entry) -> RdbValue {
    // The record carries no expiry: RESTORE's TTL argument sets it, as for every type.
    let entry = Entry::new(entry.value.clone());
    let snapshot = super::to_bytes(&Image::single(key.clone(), entry));
    let mut body = Vec::with_capacity(snapshot.len() + 12);
    body.push(OPCODE_STRING);
    rdb::codec::put_len(&mut body, snapshot.len() as u64);
    body.extend_from_slice(&snapshot);
    body.push(OPCODE_EOF);
    RdbValue::Module(ModuleValue {
        type_id: ModuleValue::type_id_of(LOCUS_TYPE, LOCUS_ENCVER).expect("a valid type name"),
        body,
    })
}

/// A tensor as RedisAI 1.2 stores it, when RedisAI has its dtype.
fn redisai_tensor(t: &Tensor) -> Option<RedisAiValue> {
    let dtype = match t.dtype() {
        DType::Float16 | DType::BFloat16 | DType::Uint32 | DType::Uint64 => return None,
        d => d.name().to_string(),
    };
    Some(RedisAiValue::Tensor {
        dtype,
        shape: t.shape().iter().map(|&d| d as i64).collect(),
        data: t.blob().to_vec(),
    })
}

fn stream_id(id: StreamId) -> rdb::StreamId {
    rdb::StreamId::new(id.ms, id.seq)
}

fn stream_to_rdb(s: &Stream) -> RdbStream {
    RdbStream {
        entries: s
            .iter()
            .map(|(id, fields)| {
                let pairs = fields
                    .chunks(2)
                    .map(|p| {
                        (
                            p[0].to_vec(),
                            p.get(1).map_or_else(Vec::new, |v| v.to_vec()),
                        )
                    })
                    .collect();
                (stream_id(id), pairs)
            })
            .collect(),
        last_id: stream_id(s.last_id),
        first_id: stream_id(s.first_id),
        max_deleted_id: stream_id(s.max_deleted_id),
        entries_added: s.entries_added,
        groups: s
            .groups
            .iter()
            .map(|(name, g)| rdb::RdbGroup {
                name: name.to_vec(),
                last_id: stream_id(g.last_id),
                entries_read: g.entries_read,
                pel: g
                    .pel
                    .iter()
                    .map(|(id, p)| rdb::PendingEntry {
                        id: stream_id(*id),
                        delivery_time_ms: p.delivery_time as i64,
                        delivery_count: p.delivery_count,
                    })
                    .collect(),
                consumers: g
                    .consumers
                    .iter()
                    .map(|(cname, c)| rdb::RdbConsumer {
                        name: cname.to_vec(),
                        seen_time_ms: c.seen_time as i64,
                        pending: c.pending.iter().map(|id| stream_id(*id)).collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn store_id(id: rdb::StreamId) -> StreamId {
    StreamId::new(id.ms, id.seq)
}

fn stream_from_rdb(r: RdbStream) -> Result<Stream, String> {
    let mut s = Stream::default();
    let mut last: Option<StreamId> = None;
    for (id, pairs) in r.entries {
        let id = store_id(id);
        if last.is_some_and(|l| id <= l) {
            return Err("stream entries out of order".into());
        }
        last = Some(id);
        let fields: Vec<Bytes> = pairs
            .into_iter()
            .flat_map(|(f, v)| [Bytes::from(f), Bytes::from(v)])
            .collect();
        s.append(id, fields.into_boxed_slice());
    }
    s.last_id = store_id(r.last_id);
    s.first_id = store_id(r.first_id);
    s.max_deleted_id = store_id(r.max_deleted_id);
    s.entries_added = r.entries_added;
    for g in r.groups {
        let mut group = Group::new(store_id(g.last_id), g.entries_read);
        let mut owner = std::collections::HashMap::new();
        for c in g.consumers {
            let name = Bytes::from(c.name);
            let pending = c.pending.iter().map(|id| store_id(*id)).collect();
            for id in &c.pending {
                owner.insert(store_id(*id), name.clone());
            }
            group.consumers.insert(
                name,
                Consumer {
                    seen_time: c.seen_time_ms.max(0) as u64,
                    pending,
                },
            );
        }
        for p in g.pel {
            let id = store_id(p.id);
            let consumer = owner
                .get(&id)
                .cloned()
                .ok_or("a pending entry without a consumer")?;
            group.pel.insert(
                id,
                Pending {
                    consumer,
                    delivery_time: p.delivery_time_ms.max(0) as u64,
                    delivery_count: p.delivery_count,
                },
            );
        }
        s.groups.insert(Bytes::from(g.name), group);
    }
    Ok(s)
}

/// RESTORE's payload decoded (version, checksum and format checked): Redis's error texts.
pub fn restore(payload: &[u8]) -> Result<Restored, String> {
    let value = rdb::restore_payload(payload).map_err(|e| e.restore_reply().to_string())?;
    from_rdb(value).map_err(|_| "ERR Bad data format".to_string())
}

/// A value read from Redis's serialization as this server's.
pub fn from_rdb(v: RdbValue) -> Result<Restored, String> {
    let value = match v {
        RdbValue::String(s) => Value::Str(Bytes::from(s)),
        RdbValue::List(l) => Value::List(Box::new(l.into_iter().map(Bytes::from).collect())),
        RdbValue::Set(s) => Value::Set(Box::new(s.into_iter().map(Bytes::from).collect())),
        RdbValue::ZSet(items) => {
            let mut z = crate::store::zset::ZSet::default();
            for (m, s) in items {
                z.insert_exact(Bytes::from(m), s);
            }
            Value::ZSet(Box::new(z))
        }
        RdbValue::Hash(pairs) => Value::Hash(Box::new(
            pairs
                .into_iter()
                .map(|(f, v)| (Bytes::from(f), Bytes::from(v)))
                .collect(),
        )),
        RdbValue::Stream(s) => Value::Stream(Box::new(stream_from_rdb(s)?)),
        RdbValue::Module(m) => return from_module(m),
    };
    Ok(Restored::Value(value))
}

fn from_module(m: ModuleValue) -> Result<Restored, String> {
    let (name, encver) = (m.name(), m.encver() as u32);
    if name == LOCUS_TYPE {
        return from_locus_value(&m.body);
    }
    if !redisai_rdb::is_redisai_type_name(&name) {
        return Err(format!("no module type '{name}' here"));
    }
    match redisai_rdb::decode_redisai(&name, encver, &m.body)? {
        RedisAiValue::Tensor { dtype, shape, data } => {
            let dtype = DType::parse(dtype.as_bytes()).ok_or("unknown tensor type")?;
            let shape: Vec<usize> = shape
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| "negative dimension".to_string()))
                .collect::<Result<_, _>>()?;
            let t = Tensor::from_shared(dtype, &shape, Bytes::from(data)).map_err(|e| e.0)?;
            Ok(Restored::Value(Value::Tensor(Arc::new(t))))
        }
        RedisAiValue::Model {
            backend,
            device,
            tag,
            batchsize,
            minbatchsize,
            minbatchtimeout,
            inputs,
            outputs,
            blob,
        } => {
            if backend != "ONNX" {
                return Err(format!("RedisAI {backend} models are not supported"));
            }
            let spec = ModelSpec {
                backend,
                device: Device::parse(device.as_bytes()).ok_or("unknown device")?,
                device_name: device,
                tag: Bytes::from(tag),
                batchsize: batchsize as usize,
                minbatchsize: minbatchsize as usize,
                minbatchtimeout,
                inputs,
                outputs,
            };
            Ok(Restored::Model(Loaded::single_model(
                0,
                Bytes::new(),
                0,
                spec,
                Bytes::from(blob),
            )))
        }
    }
}

/// A `locus-key` body: one module string holding a snapshot of one key.
fn from_locus_value(body: &[u8]) -> Result<Restored, String> {
    let mut cursor = redisai_rdb::ModuleCursor::new(body);
    let snapshot = cursor.read_string()?;
    cursor.read_eof()?;
    let mut records = super::read_bytes(Bytes::from(snapshot)).map_err(|e| e.message)?;
    if records.len() != 1 {
        return Err("a locus-key value holds one key".into());
    }
    match records.pop().expect("one record") {
        Loaded::Value(_, _, entry) => Ok(Restored::Value(entry.value)),
        m @ Loaded::Model { .. } => Ok(Restored::Model(m)),
        _ => Err("a locus-key value holds a key".into()),
    }
}

/// What an RDB import brought in.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub keys: u64,
    /// Keys whose expiry had passed: not loaded, as Redis does not load them.
    pub expired: u64,
    pub models: u64,
    /// Values of module types this server does not have, by type name, with their counts.
    pub skipped: Vec<(String, u64)>,
    /// FUNCTION libraries the file held.
    pub functions: Vec<Vec<u8>>,
    pub rdb_version: u32,
}

/// Whether a module type is one this server reads.
pub fn known_module_type(name: &str) -> bool {
    name == LOCUS_TYPE || name == "AI_TENSOR" || name == "AI__MODEL"
}

/// Reads a Redis RDB file, handing each key it holds to `put` (database, key, value, expiry
/// in Unix ms or 0, idle seconds, LFU frequency). Values of unknown module types stop the
/// import naming the type and key, unless `skip_unknown`. Keys already expired are left out.
pub fn import_rdb(
    bytes: &[u8],
    skip_unknown: bool,
    now_ms: u64,
    mut put: impl FnMut(usize, Bytes, Restored, u64, Option<u64>, Option<u8>) -> Result<(), String>,
) -> Result<ImportReport, String> {
    let mut report = ImportReport::default();
    let summary = rdb::read_rdb(bytes, |e| {
        if let RdbValue::Module(m) = &e.value {
            let name = m.name();
            if !known_module_type(&name) {
                if !skip_unknown {
                    return Err(rdb::RdbError::Visitor(format!(
                        "key '{}' holds a value of module type '{name}', which this server \
                         does not have (start with import-skip-unknown yes to leave such keys out)",
                        String::from_utf8_lossy(&e.key)
                    )));
                }
                match report.skipped.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, count)) => *count += 1,
                    None => report.skipped.push((name, 1)),
                }
                return Ok(());
            }
        }
        let expire_at = e.expire_ms.map_or(0, |ms| ms.max(1) as u64);
        if expire_at != 0 && expire_at <= now_ms {
            report.expired += 1;
            return Ok(());
        }
        let key = String::from_utf8_lossy(&e.key).into_owned();
        let restored =
            from_rdb(e.value).map_err(|m| rdb::RdbError::Visitor(format!("key '{key}': {m}")))?;
        if matches!(restored, Restored::Model(_)) {
            report.models += 1;
        }
        put(
            e.db as usize,
            Bytes::from(e.key),
            restored,
            expire_at,
            e.idle,
            e.freq,
        )
        .map_err(|m| rdb::RdbError::Visitor(format!("key '{key}': {m}")))?;
        report.keys += 1;
        Ok(())
    })
    .map_err(|e| match e {
        rdb::RdbError::Visitor(m) => m,
        other => format!("{other}"),
    })?;
    report.functions = summary.functions;
    report.rdb_version = summary.version;
    Ok(report)
}
