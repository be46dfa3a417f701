//! Set commands: membership, algebra (inter / union / diff and their STORE forms), random picks.

use super::{own, typed, typed_mut, Args, CmdError, CmdResult, Ctx};
use crate::notify;
use crate::server::reply::Reply;
use crate::store::{Entry, Shard, Value};
use ahash::RandomState;
use bytes::Bytes;
use std::collections::HashSet;

pub type SetValue = HashSet<Bytes, RandomState>;

fn set_in<'s>(shard: &'s Shard, key: &[u8], now: u64) -> Result<Option<&'s SetValue>, CmdError> {
    typed(shard, key, now)
}

fn set_mut<'s>(
    shard: &'s mut Shard,
    key: &Bytes,
    now: u64,
    create: bool,
) -> Result<Option<&'s mut SetValue>, CmdError> {
    typed_mut(shard, key, now, create)
}

fn drop_if_empty(shard: &mut Shard, key: &[u8], now: u64) {
    super::drop_if_empty::<SetValue>(shard, key, now)
}

fn members(v: impl IntoIterator<Item = Bytes>) -> Reply {
    Reply::Set(v.into_iter().map(Reply::Bulk).collect())
}

pub fn sadd(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let vals = args.rest();
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let s = set_mut(&mut shard, &key, now, true)?.expect("created");
    let added = vals
        .into_iter()
        .filter(|v| s.insert(own(v.clone())))
        .count();
    if added > 0 {
        drop(shard);
        ctx.notify(notify::SET, "sadd", &key);
        ctx.dirty(added as u64);
    }
    Ok(Reply::Int(added as i64))
}

pub fn srem(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let vals = args.rest();
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(s) = set_mut(&mut shard, &key, now, false)? else {
        return Ok(Reply::Int(0));
    };
    let removed = vals.iter().filter(|v| s.remove(*v)).count();
    if removed > 0 {
        ctx.notify(notify::SET, "srem", &key);
    }
    drop_if_empty(&mut shard, &key, now);
    if removed > 0 {
        ctx.dirty(removed as u64);
    }
    Ok(Reply::Int(removed as i64))
}

fn read<R>(ctx: &Ctx, key: &[u8], f: impl FnOnce(Option<&SetValue>) -> R) -> Result<R, CmdError> {
    let shard = ctx.db().read(key);
    Ok(f(set_in(&shard, key, ctx.now())?))
}

pub fn smembers(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    read(ctx, &key, |s| {
        members(s.into_iter().flat_map(|s| s.iter().cloned()))
    })
}

pub fn sismember(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (key, v) = (args.next()?, args.next()?);
    read(ctx, &key, |s| {
        Reply::Int(s.is_some_and(|s| s.contains(&v)) as i64)
    })
}

pub fn smismember(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let vals = args.rest();
    read(ctx, &key, |s| {
        Reply::Array(
            vals.iter()
                .map(|v| Reply::Int(s.is_some_and(|s| s.contains(v)) as i64))
                .collect(),
        )
    })
}

pub fn scard(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    read(ctx, &key, |s| Reply::Int(s.map_or(0, |s| s.len() as i64)))
}

fn count_arg(args: &mut Args) -> Result<Option<i64>, CmdError> {
    if args.is_empty() {
        return Ok(None);
    }
    let n = args.next_i64()?;
    args.finish()?;
    Ok(Some(n))
}

pub fn spop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    use rand::seq::IteratorRandom;
    let key = args.next()?;
    let count = count_arg(args)?;
    if count.is_some_and(|c| c < 0) {
        return Err(CmdError::new("ERR value is out of range, must be positive"));
    }
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(s) = set_mut(&mut shard, &key, now, false)? else {
        return Ok(if count.is_some() {
            Reply::Set(vec![])
        } else {
            Reply::Null
        });
    };
    let n = count.unwrap_or(1) as usize;
    let picked: Vec<Bytes> = s
        .iter()
        .cloned()
        .choose_multiple(&mut rand::thread_rng(), n);
    for p in &picked {
        s.remove(p);
    }
    if !picked.is_empty() {
        ctx.notify(notify::SET, "spop", &key);
    }
    drop_if_empty(&mut shard, &key, now);
    if !picked.is_empty() {
        ctx.dirty(picked.len() as u64);
    }
    // The pick is random: the AOF gets the members that went.
    let mut srem = vec![Bytes::from_static(b"SREM"), key.clone()];
    srem.extend(picked.iter().cloned());
    ctx.propagate = Some(if picked.is_empty() {
        vec![]
    } else {
        vec![srem]
    });
    Ok(match count {
        None => picked.into_iter().next().map_or(Reply::Null, Reply::Bulk),
        Some(_) => members(picked),
    })
}

pub fn srandmember(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    use rand::seq::{IteratorRandom, SliceRandom};
    let key = args.next()?;
    let count = count_arg(args)?;
    if count == Some(i64::MIN) {
        return Err(CmdError::new(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    read(ctx, &key, |s| {
        let mut rng = rand::thread_rng();
        let all: Vec<&Bytes> = s.map(|s| s.iter().collect()).unwrap_or_default();
        Ok(match count {
            None => all
                .choose(&mut rng)
                .map_or(Reply::Null, |b| Reply::Bulk((*b).clone())),
            // Positive: distinct members; negative: may repeat.
            Some(c) if c >= 0 => Reply::Array(
                all.into_iter()
                    .choose_multiple(&mut rng, c as usize)
                    .into_iter()
                    .cloned()
                    .map(Reply::Bulk)
                    .collect(),
            ),
            Some(_) if all.is_empty() => Reply::Array(vec![]),
            Some(c) => Reply::Array(
                (0..super::bounded_reply_len(c.unsigned_abs())?)
                    .map(|_| Reply::Bulk((*all.choose(&mut rng).expect("non-empty")).clone()))
                    .collect(),
            ),
        })
    })?
}

pub fn smove(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (src, dst, v) = (args.next()?, args.next()?, args.next()?);
    let now = ctx.now();
    let keys = [src.clone(), dst.clone()];
    let mut guard = ctx.db().write_many(&keys);
    let Some(has) = set_in(guard.shard(&src), &src, now)?.map(|s| s.contains(&v)) else {
        return Ok(Reply::Int(0));
    };
    set_in(guard.shard(&dst), &dst, now)?;
    if !has {
        return Ok(Reply::Int(0));
    }
    if src == dst {
        return Ok(Reply::Int(1));
    }
    set_mut(guard.shard(&src), &src, now, false)?
        .expect("exists")
        .remove(&v);
    ctx.notify(notify::SET, "srem", &src);
    drop_if_empty(guard.shard(&src), &src, now);
    // A destination that has the member already is left untouched (its watchers see no
    // change), as in Redis.
    let present = set_in(guard.shard(&dst), &dst, now)?.is_some_and(|d| d.contains(&v));
    if !present {
        set_mut(guard.shard(&dst), &dst, now, true)?
            .expect("created")
            .insert(own(v));
        ctx.notify(notify::SET, "sadd", &dst);
    }
    ctx.dirty(1);
    Ok(Reply::Int(1))
}

#[derive(Clone, Copy)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

/// Computes the set algebra over `keys` under one consistent lock of their shards.
fn algebra(ctx: &Ctx, keys: &[Bytes], op: Algebra) -> Result<SetValue, CmdError> {
    let now = ctx.now();
    let guard = ctx.db().read_many(keys);
    let sets: Vec<Option<&SetValue>> = keys
        .iter()
        .map(|k| set_in(guard.shard(k), k, now))
        .collect::<Result<_, _>>()?;
    let mut out = SetValue::default();
    match op {
        Algebra::Union => sets
            .iter()
            .flatten()
            .for_each(|s| out.extend(s.iter().cloned())),
        Algebra::Inter => {
            if sets.iter().all(|s| s.is_some()) {
                let mut ordered: Vec<&SetValue> = sets.iter().flatten().copied().collect();
                ordered.sort_by_key(|s| s.len());
                if let Some((first, rest)) = ordered.split_first() {
                    out.extend(
                        first
                            .iter()
                            .filter(|m| rest.iter().all(|s| s.contains(*m)))
                            .cloned(),
                    );
                }
            }
        }
        Algebra::Diff => {
            if let Some(Some(first)) = sets.first() {
                out.extend(
                    first
                        .iter()
                        .filter(|m| sets[1..].iter().flatten().all(|s| !s.contains(*m)))
                        .cloned(),
                );
            }
        }
    }
    Ok(out)
}

fn algebra_cmd(ctx: &mut Ctx, args: &mut Args, op: Algebra) -> CmdResult {
    let keys = args.rest();
    Ok(members(algebra(ctx, &keys, op)?))
}

fn algebra_store(ctx: &mut Ctx, args: &mut Args, op: Algebra) -> CmdResult {
    let dst = args.next()?;
    let keys = args.rest();
    let result = algebra(ctx, &keys, op)?;
    let n = result.len();
    let now = ctx.now();
    let mut shard = ctx.db().write(&dst);
    if n == 0 {
        if shard.remove(&dst, now).is_some() {
            ctx.notify(notify::GENERIC, "del", &dst);
        }
    } else {
        shard.insert(
            own(dst.clone()),
            Entry::new(Value::Set(Box::new(result))),
            now,
        );
        let event = match op {
            Algebra::Inter => "sinterstore",
            Algebra::Union => "sunionstore",
            Algebra::Diff => "sdiffstore",
        };
        ctx.notify(notify::SET, event, &dst);
    }
    ctx.dirty(1);
    Ok(Reply::Int(n as i64))
}

pub fn sinter(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    algebra_cmd(ctx, args, Algebra::Inter)
}

pub fn sunion(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    algebra_cmd(ctx, args, Algebra::Union)
}

pub fn sdiff(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    algebra_cmd(ctx, args, Algebra::Diff)
}

pub fn sinterstore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    algebra_store(ctx, args, Algebra::Inter)
}

pub fn sunionstore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    algebra_store(ctx, args, Algebra::Union)
}

pub fn sdiffstore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    algebra_store(ctx, args, Algebra::Diff)
}

pub fn sintercard(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    // Redis's texts: a numkeys that is not a positive integer, more keys than arguments, a
    // LIMIT that is not a non-negative integer; anything else after the keys is a syntax error.
    let n = crate::util::parse_i64(&args.next()?)
        .filter(|n| *n > 0)
        .ok_or_else(|| CmdError::new("ERR numkeys should be greater than 0"))?;
    if n as u64 > args.remaining() as u64 {
        return Err(CmdError::new(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let keys: Vec<Bytes> = (0..n).map(|_| args.next()).collect::<Result<_, _>>()?;
    let mut limit = 0usize;
    while let Some(word) = args.peek() {
        if !(word.eq_ignore_ascii_case(b"LIMIT") && args.remaining() >= 2) {
            return Err(CmdError::syntax());
        }
        args.next()?;
        limit = crate::util::parse_i64(&args.next()?)
            .filter(|l| *l >= 0)
            .ok_or_else(|| CmdError::new("ERR LIMIT can't be negative"))? as usize;
    }
    let n = algebra(ctx, &keys, Algebra::Inter)?.len();
    Ok(Reply::Int(if limit > 0 { n.min(limit) } else { n } as i64))
}

/// SSCAN returns the whole set in one call (cursor 0), which meets SCAN's guarantee.
pub fn sscan(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    crate::util::parse_u64(&args.next()?).ok_or_else(|| CmdError::new("ERR invalid cursor"))?;
    let mut pattern = None;
    while !args.is_empty() {
        match args.next_upper()?.as_str() {
            "MATCH" if !args.is_empty() => pattern = Some(args.next()?),
            "COUNT" if !args.is_empty() => {
                if args.next_i64()? < 1 {
                    return Err(CmdError::syntax());
                }
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    let matcher = pattern
        .as_ref()
        .map(|p| crate::store::glob::GlobPattern::new(p, false));
    read(ctx, &key, |s| {
        let items = s
            .into_iter()
            .flat_map(|s| s.iter())
            .filter(|m| matcher.as_ref().is_none_or(|p| p.matches(m)))
            .cloned()
            .map(Reply::Bulk)
            .collect();
        Reply::Array(vec![Reply::bulk_str("0"), Reply::Array(items)])
    })
}
