//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE on string values in Redis's own sparse and
//! dense encodings, byte for byte (the structure is in [`crate::store::hll`]), so a value moves
//! between Redis and Locus with GET/SET or DUMP/RESTORE and counts the same.

use super::{own, string_in, Args, CmdError, CmdResult, Ctx};
use crate::server::reply::Reply;
use crate::store::hll::{self, HllError};
use crate::store::{Entry, Value};
use bytes::Bytes;

fn err(e: HllError) -> CmdError {
    CmdError::new(e.message())
}

/// Stores `v` as the string at `key`, in place of the old value or as a new key.
fn put(shard: &mut crate::store::Shard, key: &Bytes, v: Vec<u8>, now: u64) {
    match shard.get_mut(key, now) {
        Some(e) => {
            e.value = Value::Str(Bytes::from(v));
            e.mark_modified();
        }
        None => {
            shard.insert(
                own(key.clone()),
                Entry::new(Value::Str(Bytes::from(v))),
                now,
            );
        }
    }
}

fn sparse_max(ctx: &Ctx) -> usize {
    ctx.server.config.get_i64("hll-sparse-max-bytes").max(0) as usize
}

pub fn pfadd(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let elements = args.rest();
    let max = sparse_max(ctx);
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let mut value = string_in(&shard, &key, now)?.map(|b| b.to_vec());
    let existed = value.is_some();
    let result = hll::pfadd(&mut value, &elements, max);
    // A corrupt value keeps what was added before the error, as in Redis.
    let changed = match &result {
        Ok(updated) => *updated,
        Err(HllError::Corrupt) => existed,
        Err(HllError::WrongType) => false,
    };
    if changed {
        if let Some(v) = value {
            put(&mut shard, &key, v, now);
            ctx.notify(crate::notify::STRING, "pfadd", &key);
            ctx.dirty(1);
        }
    }
    let updated = result.map_err(err)?;
    Ok(Reply::Int(updated as i64))
}

pub fn pfcount(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let keys = args.rest();
    let now = ctx.now();
    if keys.len() > 1 {
        let mut registers = [0u8; hll::HLL_REGISTERS];
        for k in &keys {
            let shard = ctx.db().read(k);
            if let Some(v) = string_in(&shard, k, now)? {
                hll::merge_into(&mut registers, v).map_err(err)?;
            }
        }
        return Ok(Reply::Int(hll::count_raw(&registers) as i64));
    }
    let key = &keys[0];
    let mut shard = ctx.db().write(key);
    let Some(v) = string_in(&shard, key, now)? else {
        return Ok(Reply::Int(0));
    };
    let mut bytes = v.to_vec();
    let (card, wrote) = hll::count_and_cache(&mut bytes).map_err(err)?;
    if wrote {
        // The cardinality is cached in the value, as Redis caches it.
        if let Some(e) = shard.get_mut(key, now) {
            e.value = Value::Str(Bytes::from(bytes));
        }
    }
    Ok(Reply::Int(card as i64))
}

pub fn pfmerge(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let dest = args.next()?;
    let sources = args.rest();
    let max = sparse_max(ctx);
    let now = ctx.now();
    let mut all = vec![dest.clone()];
    all.extend(sources.iter().cloned());
    let mut guard = ctx.db().write_many(&all);
    let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(all.len());
    for k in &all {
        values.push(string_in(guard.shard(k), k, now)?.map(|b| b.to_vec()));
    }
    let refs: Vec<Option<&[u8]>> = values[1..].iter().map(|v| v.as_deref()).collect();
    let merged = hll::pfmerge(values[0].as_deref(), &refs, max).map_err(err)?;
    put(guard.shard(&dest), &dest, merged, now);
    ctx.notify(crate::notify::STRING, "pfadd", &dest);
    ctx.dirty(1);
    Ok(Reply::OK)
}
