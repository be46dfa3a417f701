//! Hash commands: field maps under one key, the usual home of raw features.

use super::{own, typed, typed_mut, Args, CmdError, CmdResult, Ctx};
use crate::notify;
use crate::server::reply::Reply;
use crate::store::{HashValue, Shard};
use bytes::Bytes;

/// The hash at `key` in a locked shard: `Ok(None)` when missing, WRONGTYPE for other types.
pub fn hash_in<'s>(
    shard: &'s Shard,
    key: &[u8],
    now: u64,
) -> Result<Option<&'s HashValue>, CmdError> {
    typed(shard, key, now)
}

/// The hash at `key` for update, created empty when missing.
fn hash_mut<'s>(
    shard: &'s mut Shard,
    key: &Bytes,
    now: u64,
) -> Result<&'s mut HashValue, CmdError> {
    Ok(typed_mut(shard, key, now, true)?.expect("created"))
}

/// A field or value as a reply (copied: a packed hash keeps its entries in one buffer).
fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(b))
}

/// Reads a hash under a shared lock.
fn read<R>(ctx: &Ctx, key: &[u8], f: impl FnOnce(Option<&HashValue>) -> R) -> Result<R, CmdError> {
    let shard = ctx.db().read(key);
    Ok(f(hash_in(&shard, key, ctx.now())?))
}

fn set_pairs(ctx: &mut Ctx, args: &mut Args, name: &str) -> Result<i64, CmdError> {
    let key = args.next()?;
    if args.remaining() == 0 || !args.remaining().is_multiple_of(2) {
        return Err(CmdError::new(format!(
            "ERR wrong number of arguments for '{name}' command"
        )));
    }
    let pairs = args.rest();
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let h = hash_mut(&mut shard, &key, now)?;
    let mut added = 0;
    for p in pairs.chunks(2) {
        if h.insert(own(p[0].clone()), own(p[1].clone())) {
            added += 1;
        }
    }
    drop(shard);
    ctx.notify(notify::HASH, "hset", &key);
    ctx.dirty(1);
    Ok(added)
}

pub fn hset(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    Ok(Reply::Int(set_pairs(ctx, args, "hset")?))
}

pub fn hmset(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    set_pairs(ctx, args, "hmset")?;
    Ok(Reply::OK)
}

pub fn hsetnx(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (key, field, value) = (args.next()?, args.next()?, args.next()?);
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    if hash_in(&shard, &key, now)?.is_some_and(|h| h.contains_key(&field)) {
        return Ok(Reply::Int(0));
    }
    hash_mut(&mut shard, &key, now)?.insert(own(field), own(value));
    drop(shard);
    ctx.notify(notify::HASH, "hset", &key);
    ctx.dirty(1);
    Ok(Reply::Int(1))
}

pub fn hget(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (key, field) = (args.next()?, args.next()?);
    read(ctx, &key, |h| h.and_then(|h| h.get_bytes(&field)).into())
}

pub fn hmget(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let fields = args.rest();
    read(ctx, &key, |h| {
        Reply::Array(
            fields
                .iter()
                .map(|f| h.and_then(|h| h.get_bytes(f)).into())
                .collect(),
        )
    })
}

pub fn hgetall(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    read(ctx, &key, |h| {
        Reply::Map(h.map_or_else(Vec::new, |h| {
            h.iter().map(|(k, v)| (bulk(k), bulk(v))).collect()
        }))
    })
}

pub fn hkeys(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    read(ctx, &key, |h| {
        Reply::Array(h.map_or_else(Vec::new, |h| h.keys().map(bulk).collect()))
    })
}

pub fn hvals(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    read(ctx, &key, |h| {
        Reply::Array(h.map_or_else(Vec::new, |h| h.values().map(bulk).collect()))
    })
}

pub fn hlen(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    read(ctx, &key, |h| Reply::Int(h.map_or(0, |h| h.len() as i64)))
}

pub fn hexists(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (key, field) = (args.next()?, args.next()?);
    read(ctx, &key, |h| {
        Reply::Int(h.is_some_and(|h| h.contains_key(&field)) as i64)
    })
}

pub fn hstrlen(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (key, field) = (args.next()?, args.next()?);
    read(ctx, &key, |h| {
        Reply::Int(h.and_then(|h| h.get(&field)).map_or(0, |v| v.len() as i64))
    })
}

pub fn hdel(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let fields = args.rest();
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    if hash_in(&shard, &key, now)?.is_none() {
        return Ok(Reply::Int(0));
    }
    let h = hash_mut(&mut shard, &key, now)?;
    let removed = fields.iter().filter(|f| h.remove(f)).count();
    let emptied = h.is_empty();
    if removed > 0 {
        ctx.notify(notify::HASH, "hdel", &key);
    }
    if emptied {
        shard.remove(&key, now);
        ctx.notify(notify::GENERIC, "del", &key);
    }
    if removed > 0 {
        ctx.dirty(removed as u64);
    }
    Ok(Reply::Int(removed as i64))
}

pub fn hincrby(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (key, field) = (args.next()?, args.next()?);
    let by = args.next_i64()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    // Compute first, so that a failed increment never leaves an empty hash behind.
    let current = match hash_in(&shard, &key, now)?.and_then(|h| h.get(&field)) {
        None => 0,
        Some(v) => crate::util::parse_i64(v)
            .ok_or_else(|| CmdError::new("ERR hash value is not an integer"))?,
    };
    let next = current
        .checked_add(by)
        .ok_or_else(|| CmdError::new("ERR increment or decrement would overflow"))?;
    hash_mut(&mut shard, &key, now)?.insert(own(field), Bytes::from(next.to_string()));
    drop(shard);
    ctx.notify(notify::HASH, "hincrby", &key);
    ctx.dirty(1);
    Ok(Reply::Int(next))
}

pub fn hincrbyfloat(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (key, field) = (args.next()?, args.next()?);
    let by = args.next_f64()?;
    if !by.is_finite() {
        return Err(CmdError::new("ERR value is NaN or Infinity"));
    }
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let current = match hash_in(&shard, &key, now)?.and_then(|h| h.get(&field)) {
        None => 0.0,
        Some(v) => crate::util::parse_f64(v)
            .ok_or_else(|| CmdError::new("ERR hash value is not a float"))?,
    };
    let next = current + by;
    if !next.is_finite() {
        return Err(CmdError::new("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(crate::util::format_f64_human(next));
    hash_mut(&mut shard, &key, now)?.insert(own(field), text.clone());
    drop(shard);
    ctx.notify(notify::HASH, "hincrbyfloat", &key);
    ctx.dirty(1);
    Ok(Reply::Bulk(text))
}

pub fn hrandfield(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    use rand::seq::SliceRandom;
    let key = args.next()?;
    let count = if args.is_empty() {
        None
    } else {
        Some(args.next_i64()?)
    };
    // Redis's checks in Redis's order: the count's range (-LONG_MAX..LONG_MAX), the syntax,
    // then a count whose field-value pairs would overflow the reply's length.
    if count == Some(i64::MIN) {
        return Err(CmdError::new(format!(
            "ERR value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        )));
    }
    let with_values = args.eat("WITHVALUES");
    if with_values && count.is_none() {
        return Err(CmdError::syntax());
    }
    args.finish()?;
    if with_values && count.is_some_and(|n| !(-i64::MAX / 2..=i64::MAX / 2).contains(&n)) {
        return Err(CmdError::new("ERR value is out of range"));
    }
    let proto = ctx.client.proto;
    read(ctx, &key, |h| {
        let pairs: Vec<(&[u8], &[u8])> = h.map(|h| h.iter().collect()).unwrap_or_default();
        let mut rng = rand::thread_rng();
        let Some(count) = count else {
            return Ok(pairs.choose(&mut rng).map_or(Reply::Null, |(f, _)| bulk(f)));
        };
        // A positive count gives distinct fields; a negative one may repeat them.
        let picked: Vec<&(&[u8], &[u8])> = if count >= 0 {
            let mut v: Vec<_> = pairs.iter().collect();
            v.shuffle(&mut rng);
            v.truncate(count as usize);
            v
        } else if pairs.is_empty() {
            Vec::new()
        } else {
            (0..super::bounded_reply_len(count.unsigned_abs())?)
                .map(|_| pairs.choose(&mut rng).expect("non-empty"))
                .collect()
        };
        let out = picked.into_iter().map(|(f, v)| {
            match (with_values, proto >= 3) {
                (false, _) => vec![bulk(f)],
                // RESP3 pairs each field with its value in a two-element array.
                (true, true) => vec![Reply::Array(vec![bulk(f), bulk(v)])],
                (true, false) => vec![bulk(f), bulk(v)],
            }
        });
        Ok(Reply::Array(out.flatten().collect()))
    })?
}

/// HSCAN returns the whole hash in one call (cursor 0), as Redis does for compact hashes:
/// every field present for the whole scan is returned, which is SCAN's guarantee.
pub fn hscan(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let cursor = args.next()?;
    crate::util::parse_u64(&cursor).ok_or_else(|| CmdError::new("ERR invalid cursor"))?;
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
    read(ctx, &key, |h| {
        let mut items = Vec::new();
        for (f, v) in h.into_iter().flat_map(|h| h.iter()) {
            if matcher.as_ref().is_none_or(|p| p.matches(f)) {
                items.push(bulk(f));
                items.push(bulk(v));
            }
        }
        Reply::Array(vec![Reply::bulk_str("0"), Reply::Array(items)])
    })
}
