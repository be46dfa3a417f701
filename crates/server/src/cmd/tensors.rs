//! Tensor commands: AI.TENSORSET / AI.TENSORGET with RedisAI 1.2's syntax, replies and errors,
//! plus AI.TENSORSTACK and AI.TENSORFROMHASH to assemble model inputs inside the server.

use super::hashes::hash_in;
use super::{own, Args, CmdError, CmdResult, Ctx};
use crate::server::reply::Reply;
use crate::store::{Entry, Value};
use crate::tensor::{DType, Element, Tensor, TensorError};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const ERR_EMPTY_KEY: &str = "ERR tensor key is empty or in a different shard";

impl From<TensorError> for CmdError {
    fn from(e: TensorError) -> Self {
        CmdError(e.0)
    }
}

fn max_bytes(ctx: &Ctx) -> usize {
    ctx.server
        .config
        .live
        .tensor_max_bytes
        .load(Ordering::Relaxed)
}

/// Reads the tensor at `key`: RedisAI's "empty key" error when missing, WRONGTYPE otherwise.
pub fn get_tensor(ctx: &Ctx, key: &[u8]) -> Result<Arc<Tensor>, CmdError> {
    let shard = ctx.db().read(key);
    match shard.get(key, ctx.now()) {
        None => Err(CmdError::new(ERR_EMPTY_KEY)),
        Some(Entry {
            value: Value::Tensor(t),
            ..
        }) => Ok(t.clone()),
        Some(_) => Err(CmdError::wrong_type()),
    }
}

/// Fails with WRONGTYPE if `key` holds something other than a tensor.
fn check_tensor_slot(ctx: &Ctx, key: &[u8]) -> Result<(), CmdError> {
    let shard = ctx.db().read(key);
    match shard.get(key, ctx.now()) {
        None
        | Some(Entry {
            value: Value::Tensor(_),
            ..
        }) => Ok(()),
        Some(_) => Err(CmdError::wrong_type()),
    }
}

/// Stores a tensor at `key` (replacing a tensor, never another type; any TTL is cleared).
pub fn put_tensor(ctx: &Ctx, key: &Bytes, t: Tensor) -> Result<(), CmdError> {
    let now = ctx.now();
    let mut shard = ctx.db().write(key);
    if let Some(e) = shard.get(key, now) {
        if !matches!(e.value, Value::Tensor(_)) {
            return Err(CmdError::wrong_type());
        }
    }
    shard.insert(
        own(key.clone()),
        Entry::new(Value::Tensor(Arc::new(t))),
        now,
    );
    ctx.dirty(1);
    Ok(())
}

/// Stores tensors from outside a command's context (a finished model run, a DAG's PERSIST):
/// same rules as [`put_tensor`], all or none, and logged to the AOF as one record of
/// `AI.TENSORSET … BLOB` commands, so a replay restores the results without running anything.
pub fn put_tensors_in(
    server: &crate::server::Server,
    db: usize,
    tensors: Vec<(Bytes, Tensor)>,
) -> Result<(), CmdError> {
    // The outputs are in memory already: they may be kept when the server is under
    // `maxmemory` once the policy has evicted what it may.
    if !crate::memory::outputs_fit(server) {
        return Err(CmdError::new(crate::memory::OOM_ERR));
    }
    let mut txn = server.aof.begin();
    let now = crate::util::now_ms();
    let store = server.store.db(db);
    let keys: Vec<&Bytes> = tensors.iter().map(|(k, _)| k).collect();
    let mut guard = store.write_many(&keys);
    for (key, _) in &tensors {
        if guard
            .shard(key)
            .get(key, now)
            .is_some_and(|e| !matches!(e.value, Value::Tensor(_)))
        {
            return Err(CmdError::wrong_type());
        }
    }
    if let Some(txn) = txn.as_mut() {
        let cmds: Vec<Vec<Bytes>> = tensors
            .iter()
            .map(|(key, t)| tensorset_command(key, t))
            .collect();
        txn.record(db, now, cmds.iter().map(|c| c.iter()));
    }
    server.store.add_dirty(tensors.len() as u64);
    for (key, t) in tensors {
        guard.shard(&key).insert(
            own(key.clone()),
            Entry::new(Value::Tensor(Arc::new(t))),
            now,
        );
    }
    Ok(())
}

/// `AI.TENSORSET key type dims… BLOB data`: the command that re-creates `t`.
pub fn tensorset_command(key: &Bytes, t: &Tensor) -> Vec<Bytes> {
    let mut cmd = vec![
        Bytes::from_static(b"AI.TENSORSET"),
        key.clone(),
        Bytes::from_static(t.dtype().name().as_bytes()),
    ];
    cmd.extend(t.shape().iter().map(|d| Bytes::from(d.to_string())));
    cmd.push(Bytes::from_static(b"BLOB"));
    cmd.push(t.blob().clone());
    cmd
}

enum Data {
    None,
    Blob,
    Values,
}

/// Parses `type dim [dim …] [BLOB data … | VALUES v …]` (everything after the key).
pub fn parse_tensor(args: &mut Args, max: usize) -> Result<Tensor, CmdError> {
    let dtype =
        DType::parse(args.next_slice()?).ok_or_else(|| CmdError::new("ERR invalid data type"))?;
    let mut shape = Vec::new();
    let mut data = Data::None;
    while let Some(a) = args.peek() {
        if a.eq_ignore_ascii_case(b"BLOB") {
            data = Data::Blob;
        } else if a.eq_ignore_ascii_case(b"VALUES") {
            data = Data::Values;
        } else {
            let d = crate::util::parse_i64(a)
                .filter(|d| *d > 0)
                .ok_or_else(|| CmdError::new(crate::tensor::ERR_SHAPE))?;
            shape.push(d as usize);
            args.next_slice()?;
            continue;
        }
        args.next_slice()?;
        break;
    }
    let t = match data {
        Data::None => Tensor::zeros(dtype, &shape, max)?,
        Data::Blob => {
            let chunks = args.rest();
            if chunks.len() != 1 {
                return Err(CmdError::new(
                    "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command",
                ));
            }
            Tensor::from_blob(dtype, &shape, &[chunks[0].as_ref()], max)?
        }
        Data::Values => {
            // Checked before parsing so that a huge count is refused without work.
            let (n, _) = crate::tensor::checked_size(dtype, &shape, max)?;
            if args.remaining() != n {
                return Err(CmdError::new(
                    "ERR wrong number of values was given in 'AI.TENSORSET' command",
                ));
            }
            Tensor::from_values(dtype, &shape, &args.rest(), max)?
        }
    };
    Ok(t)
}

pub fn tensorset(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 4..)?;
    let key = args.next()?;
    check_tensor_slot(ctx, &key)?;
    let t = parse_tensor(args, max_bytes(ctx))?;
    put_tensor(ctx, &key, t)?;
    ctx.notify(crate::notify::MODULE, "ai.tensorset", &key);
    Ok(Reply::OK)
}

/// The reply formats of AI.TENSORGET.
#[derive(Clone, Copy, Default)]
pub struct Format {
    pub meta: bool,
    pub blob: bool,
    pub values: bool,
}

/// Parses `[META] [BLOB | VALUES]` with RedisAI's defaults and errors.
pub fn parse_format(args: &mut Args) -> Result<Format, CmdError> {
    if args.is_empty() {
        return Ok(Format {
            meta: true,
            blob: true,
            values: false,
        });
    }
    let mut f = Format::default();
    while !args.is_empty() {
        match args.next_upper()?.as_str() {
            "META" => f.meta = true,
            "BLOB" => f.blob = true,
            "VALUES" => f.values = true,
            _ => return Err(CmdError::new("ERR unsupported data format")),
        }
    }
    if f.blob && f.values {
        return Err(CmdError::new("ERR both BLOB and VALUES specified"));
    }
    Ok(f)
}

fn element_reply(e: Element) -> Reply {
    match e {
        Element::Int(i) => Reply::Int(i),
        Element::UInt(u) => {
            i64::try_from(u).map_or_else(|_| Reply::Bulk(Bytes::from(u.to_string())), Reply::Int)
        }
        Element::Float(f) => Reply::Double(f),
        Element::Str(s) => Reply::Bulk(s),
    }
}

/// The AI.TENSORGET reply for `t`: RedisAI's flat name/value array (in RESP3 too); a bare blob
/// or value list when META is not asked for.
pub fn tensor_reply(t: &Tensor, f: Format) -> Reply {
    let data = if f.values {
        Some((
            "values",
            Reply::Array(t.elements().into_iter().map(element_reply).collect()),
        ))
    } else if f.blob {
        Some(("blob", Reply::Bulk(t.blob().clone())))
    } else {
        None
    };
    if !f.meta {
        return data.map_or(Reply::Array(vec![]), |(_, r)| r);
    }
    let mut m = vec![
        (Reply::bulk_str("dtype"), Reply::bulk_str(t.dtype().name())),
        (
            Reply::bulk_str("shape"),
            Reply::Array(t.shape().iter().map(|&d| Reply::Int(d as i64)).collect()),
        ),
    ];
    if let Some((name, r)) = data {
        m.push((Reply::bulk_str(name), r));
    }
    Reply::flat_pairs(m)
}

pub fn tensorget(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 2..=4)?;
    let key = args.next()?;
    // RedisAI looks the key up before it reads the format words.
    let t = get_tensor(ctx, &key)?;
    let f = parse_format(args)?;
    Ok(tensor_reply(&t, f))
}

pub fn tensorstack(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let dst = args.next()?;
    let srcs = args.rest();
    let tensors = srcs
        .iter()
        .map(|k| get_tensor(ctx, k))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&Tensor> = tensors.iter().map(|t| t.as_ref()).collect();
    let batch = Tensor::concat_batch(&refs, max_bytes(ctx))?;
    put_tensor(ctx, &dst, batch)?;
    Ok(Reply::OK)
}

pub fn tensorfromhash(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let dst = args.next()?;
    let dtype =
        DType::parse(args.next_slice()?).ok_or_else(|| CmdError::new("ERR invalid data type"))?;
    let key = args.next()?;
    let fields = args.rest();
    let values: Vec<Bytes> = {
        let shard = ctx.db().read(&key);
        let Some(h) = hash_in(&shard, &key, ctx.now())? else {
            return Err(CmdError::new("ERR hash key is empty"));
        };
        fields
            .iter()
            .map(|f| {
                h.get_bytes(f).ok_or_else(|| {
                    CmdError::new(format!(
                        "ERR hash field '{}' is missing",
                        String::from_utf8_lossy(f)
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let t =
        Tensor::from_values(dtype, &[1, values.len()], &values, max_bytes(ctx)).map_err(|e| {
            if e.0 == crate::tensor::ERR_VALUE {
                CmdError::new("ERR invalid value in hash field for the tensor type")
            } else {
                e.into()
            }
        })?;
    put_tensor(ctx, &dst, t)?;
    Ok(Reply::OK)
}
