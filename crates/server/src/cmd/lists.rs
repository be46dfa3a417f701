//! List commands: pushes, pops, ranges, edits, moves, and the blocking pops and moves.

use super::{own, typed, typed_mut, Args, CmdError, CmdResult, Ctx, NO_SUCH_KEY_ERR};
use crate::notify;
use crate::server::reply::Reply;
use crate::store::Shard;
use bytes::Bytes;
use std::collections::VecDeque;

pub type ListValue = VecDeque<Bytes>;

fn list_in<'s>(shard: &'s Shard, key: &[u8], now: u64) -> Result<Option<&'s ListValue>, CmdError> {
    typed(shard, key, now)
}

fn list_mut<'s>(
    shard: &'s mut Shard,
    key: &Bytes,
    now: u64,
    create: bool,
) -> Result<Option<&'s mut ListValue>, CmdError> {
    typed_mut(shard, key, now, create)
}

fn drop_if_empty(shard: &mut Shard, key: &[u8], now: u64) {
    super::drop_if_empty::<ListValue>(shard, key, now)
}

#[derive(Clone, Copy, PartialEq)]
enum End {
    Left,
    Right,
}

fn end(args: &mut Args) -> Result<End, CmdError> {
    match args.next_upper()?.as_str() {
        "LEFT" => Ok(End::Left),
        "RIGHT" => Ok(End::Right),
        _ => Err(CmdError::syntax()),
    }
}

fn push(ctx: &mut Ctx, args: &mut Args, at: End, only_existing: bool) -> CmdResult {
    let key = args.next()?;
    let values = args.rest();
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(l) = list_mut(&mut shard, &key, now, !only_existing)? else {
        return Ok(Reply::Int(0));
    };
    for v in values {
        match at {
            End::Left => l.push_front(own(v)),
            End::Right => l.push_back(own(v)),
        }
    }
    let len = l.len();
    drop(shard);
    ctx.notify(
        notify::LIST,
        if at == End::Left { "lpush" } else { "rpush" },
        &key,
    );
    ctx.dirty(1);
    Ok(Reply::Int(len as i64))
}

pub fn lpush(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    push(ctx, args, End::Left, false)
}

pub fn rpush(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    push(ctx, args, End::Right, false)
}

pub fn lpushx(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    push(ctx, args, End::Left, true)
}

pub fn rpushx(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    push(ctx, args, End::Right, true)
}

/// Pops up to `count` elements from one end of the list at `key` in a locked shard.
fn pop_n(
    shard: &mut Shard,
    key: &Bytes,
    now: u64,
    at: End,
    count: usize,
) -> Result<Option<Vec<Bytes>>, CmdError> {
    let Some(l) = list_mut(shard, key, now, false)? else {
        return Ok(None);
    };
    let n = count.min(l.len());
    let out = match at {
        End::Left => l.drain(..n).collect(),
        End::Right => {
            let mut v: Vec<Bytes> = l.drain(l.len() - n..).collect();
            v.reverse();
            v
        }
    };
    if n > 0 {
        let event = if at == End::Left { "lpop" } else { "rpop" };
        notify::emit(notify::LIST, event, key, shard.db_index());
    }
    drop_if_empty(shard, key, now);
    Ok(Some(out))
}

fn pop(ctx: &mut Ctx, args: &mut Args, at: End) -> CmdResult {
    super::check_arity(args, 2..=3)?;
    let key = args.next()?;
    let count = if args.is_empty() {
        None
    } else {
        let n = args.next_i64()?;
        if n < 0 {
            return Err(CmdError::new("ERR value is out of range, must be positive"));
        }
        Some(n as usize)
    };
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let popped = pop_n(&mut shard, &key, now, at, count.unwrap_or(1))?;
    if popped.as_ref().is_some_and(|p| !p.is_empty()) {
        ctx.dirty(1);
    }
    Ok(match (popped, count) {
        (None, None) => Reply::Null,
        (None, Some(_)) => Reply::NullArray,
        (Some(mut v), None) => v.pop().map_or(Reply::Null, Reply::Bulk),
        (Some(v), Some(_)) => Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
    })
}

pub fn lpop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    pop(ctx, args, End::Left)
}

pub fn rpop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    pop(ctx, args, End::Right)
}

fn read<R>(ctx: &Ctx, key: &[u8], f: impl FnOnce(Option<&ListValue>) -> R) -> Result<R, CmdError> {
    let shard = ctx.db().read(key);
    Ok(f(list_in(&shard, key, ctx.now())?))
}

pub fn llen(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    read(ctx, &key, |l| Reply::Int(l.map_or(0, |l| l.len() as i64)))
}

/// Redis's index normalisation: negative counts from the end.
fn index(i: i64, len: usize) -> i64 {
    if i < 0 {
        i + len as i64
    } else {
        i
    }
}

pub fn lrange(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let (start, stop) = (args.next_i64()?, args.next_i64()?);
    read(ctx, &key, |l| {
        let Some(l) = l else {
            return Reply::Array(vec![]);
        };
        let len = l.len();
        let s = index(start, len).max(0);
        let e = index(stop, len).min(len as i64 - 1);
        if s > e || s >= len as i64 {
            return Reply::Array(vec![]);
        }
        Reply::Array(
            l.range(s as usize..=e as usize)
                .cloned()
                .map(Reply::Bulk)
                .collect(),
        )
    })
}

pub fn lindex(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let i = args.next_i64()?;
    read(ctx, &key, |l| {
        let Some(l) = l else { return Reply::Null };
        let i = index(i, l.len());
        if i < 0 {
            return Reply::Null;
        }
        l.get(i as usize).cloned().map_or(Reply::Null, Reply::Bulk)
    })
}

pub fn lset(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let i = args.next_i64()?;
    let v = args.next()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(l) = list_mut(&mut shard, &key, now, false)? else {
        return Err(CmdError::new(NO_SUCH_KEY_ERR));
    };
    let i = index(i, l.len());
    if i < 0 || i as usize >= l.len() {
        return Err(CmdError::new("ERR index out of range"));
    }
    l[i as usize] = own(v);
    drop(shard);
    ctx.notify(notify::LIST, "lset", &key);
    ctx.dirty(1);
    Ok(Reply::OK)
}

pub fn lrem(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let count = args.next_i64()?;
    let v = args.next()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(l) = list_mut(&mut shard, &key, now, false)? else {
        return Ok(Reply::Int(0));
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let mut removed = 0;
    if count >= 0 {
        let mut i = 0;
        while i < l.len() && removed < limit {
            if l[i] == v {
                l.remove(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
    } else {
        let mut i = l.len();
        while i > 0 && removed < limit {
            i -= 1;
            if l[i] == v {
                l.remove(i);
                removed += 1;
            }
        }
    }
    if removed > 0 {
        ctx.notify(notify::LIST, "lrem", &key);
    }
    drop_if_empty(&mut shard, &key, now);
    if removed > 0 {
        ctx.dirty(removed as u64);
    }
    Ok(Reply::Int(removed as i64))
}

pub fn ltrim(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let (start, stop) = (args.next_i64()?, args.next_i64()?);
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(l) = list_mut(&mut shard, &key, now, false)? else {
        return Ok(Reply::OK);
    };
    let len = l.len();
    let s = index(start, len).max(0) as usize;
    let e = index(stop, len);
    if e < 0 || s as i64 > e || s >= len {
        l.clear();
    } else {
        let e = (e as usize).min(len - 1);
        l.truncate(e + 1);
        l.drain(..s);
    }
    ctx.notify(notify::LIST, "ltrim", &key);
    drop_if_empty(&mut shard, &key, now);
    ctx.dirty(1);
    Ok(Reply::OK)
}

pub fn linsert(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let after = match args.next_upper()?.as_str() {
        "BEFORE" => false,
        "AFTER" => true,
        _ => return Err(CmdError::syntax()),
    };
    let (pivot, v) = (args.next()?, args.next()?);
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(l) = list_mut(&mut shard, &key, now, false)? else {
        return Ok(Reply::Int(0));
    };
    let Some(i) = l.iter().position(|x| *x == pivot) else {
        return Ok(Reply::Int(-1));
    };
    l.insert(if after { i + 1 } else { i }, own(v));
    let len = l.len();
    drop(shard);
    ctx.notify(notify::LIST, "linsert", &key);
    ctx.dirty(1);
    Ok(Reply::Int(len as i64))
}

pub fn lpos(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let v = args.next()?;
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    while !args.is_empty() {
        match args.next_upper()?.as_str() {
            "RANK" => {
                rank = args.next_i64()?;
                if rank == 0 {
                    return Err(CmdError::new("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
                }
                if rank == i64::MIN {
                    return Err(CmdError::new("ERR value is out of range"));
                }
            }
            "COUNT" => {
                let n = args.next_i64()?;
                if n < 0 {
                    return Err(CmdError::new("ERR COUNT can't be negative"));
                }
                count = Some(n as usize);
            }
            "MAXLEN" => {
                let n = args.next_i64()?;
                if n < 0 {
                    return Err(CmdError::new("ERR MAXLEN can't be negative"));
                }
                maxlen = n as usize;
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    read(ctx, &key, |l| {
        let Some(l) = l else {
            return if count.is_some() {
                Reply::Array(vec![])
            } else {
                Reply::Null
            };
        };
        let want = match count {
            Some(0) => usize::MAX,
            Some(n) => n,
            None => 1,
        };
        let limit = if maxlen == 0 {
            l.len()
        } else {
            maxlen.min(l.len())
        };
        let mut skip = rank.unsigned_abs() as usize - 1;
        let mut found = Vec::new();
        let indices: Box<dyn Iterator<Item = usize>> = if rank > 0 {
            Box::new(0..limit)
        } else {
            Box::new((l.len() - limit..l.len()).rev())
        };
        for i in indices {
            if l[i] == v {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                found.push(Reply::Int(i as i64));
                if found.len() >= want {
                    break;
                }
            }
        }
        match count {
            Some(_) => Reply::Array(found),
            None => found.pop().unwrap_or(Reply::Null),
        }
    })
}

pub fn lmove(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (src, dst) = (args.next()?, args.next()?);
    let (from, to) = (end(args)?, end(args)?);
    move_one(ctx, src, dst, from, to)
}

/// RPOPLPUSH (deprecated, still used): LMOVE src dst RIGHT LEFT.
pub fn rpoplpush(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (src, dst) = (args.next()?, args.next()?);
    move_one(ctx, src, dst, End::Right, End::Left)
}

/// Moves one element from an end of `src` to an end of `dst` (LMOVE, RPOPLPUSH).
fn move_one(ctx: &mut Ctx, src: Bytes, dst: Bytes, from: End, to: End) -> CmdResult {
    let now = ctx.now();
    let keys = [src.clone(), dst.clone()];
    let mut guard = ctx.db().write_many(&keys);
    // As Redis: a missing source answers nil before the destination's type is looked at;
    // otherwise both types are checked before anything moves.
    if list_in(guard.shard(&src), &src, now)?.is_none() {
        return Ok(Reply::Null);
    }
    list_in(guard.shard(&dst), &dst, now)?;
    let source = list_mut(guard.shard(&src), &src, now, false)?.expect("checked above");
    let Some(v) = (match from {
        End::Left => source.pop_front(),
        End::Right => source.pop_back(),
    }) else {
        return Ok(Reply::Null);
    };
    let l = list_mut(guard.shard(&dst), &dst, now, true)?.expect("created");
    match to {
        End::Left => l.push_front(v.clone()),
        End::Right => l.push_back(v.clone()),
    }
    // Redis's order: the push, the pop, then the source's deletion if it emptied.
    ctx.notify(
        notify::LIST,
        if to == End::Left { "lpush" } else { "rpush" },
        &dst,
    );
    ctx.notify(
        notify::LIST,
        if from == End::Left { "lpop" } else { "rpop" },
        &src,
    );
    drop_if_empty(guard.shard(&src), &src, now);
    ctx.dirty(1);
    Ok(Reply::Bulk(v))
}

pub fn lmpop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let n = crate::util::parse_i64(args.next_slice()?)
        .filter(|n| *n > 0)
        .ok_or_else(|| CmdError::new("ERR numkeys should be greater than 0"))?;
    let keys: Vec<Bytes> = (0..n).map(|_| args.next()).collect::<Result<_, _>>()?;
    let at = end(args)?;
    let mut count = 1usize;
    if args.eat("COUNT") {
        let c = crate::util::parse_i64(args.next_slice()?).unwrap_or(0);
        if c <= 0 {
            return Err(CmdError::new("ERR count should be greater than 0"));
        }
        count = c as usize;
    }
    args.finish()?;
    let now = ctx.now();
    for key in keys {
        let mut shard = ctx.db().write(&key);
        if let Some(v) = pop_n(&mut shard, &key, now, at, count)? {
            if !v.is_empty() {
                ctx.dirty(1);
                return Ok(Reply::Array(vec![
                    Reply::Bulk(key),
                    Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
                ]));
            }
        }
    }
    Ok(Reply::NullArray)
}

/// BLPOP / BRPOP: LMPOP over the keys, answered as `[key, element]`.
fn bpop(ctx: &mut Ctx, args: &mut Args, side: &'static str) -> CmdResult {
    super::blocking::block_pop(ctx, args, "LMPOP", side, lmpop, |r| match r {
        Reply::Array(mut v) if v.len() == 2 => {
            let first = match v.pop() {
                Some(Reply::Array(mut items)) if !items.is_empty() => items.remove(0),
                _ => Reply::Null,
            };
            v.push(first);
            Reply::Array(v)
        }
        other => other,
    })
}

pub fn blpop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    bpop(ctx, args, "LEFT")
}

pub fn brpop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    bpop(ctx, args, "RIGHT")
}

/// BRPOPLPUSH (deprecated, still used): BLMOVE src dst RIGHT LEFT timeout.
pub fn brpoplpush(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (src, dst) = (args.next()?, args.next()?);
    let attempt = vec![Bytes::from_static(b"RPOPLPUSH"), src, dst];
    block_move(ctx, args, attempt, rpoplpush)
}

/// Blocks until the source of a move (`attempt`, run by `handler`) has an element.
fn block_move(
    ctx: &mut Ctx,
    args: &mut Args,
    attempt: Vec<Bytes>,
    handler: super::Handler,
) -> CmdResult {
    let timeout_ms = super::blocking::parse_timeout(args.next_slice()?)?;
    args.finish()?;
    super::blocking::block(
        ctx,
        super::blocking::Blocking {
            keys: vec![attempt[1].clone()],
            timeout_ms,
            attempt,
            handler,
            shape: |r| r,
            // Redis 7.0 answers a timed-out BLMOVE or BRPOPLPUSH with a null array.
            timed_out: Reply::NullArray,
            on_error: Some(super::blocking::list_retry_error),
        },
    )
}

pub fn blmove(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (src, dst) = (args.next()?, args.next()?);
    let (from, to) = (args.next()?, args.next()?);
    let attempt = vec![Bytes::from_static(b"LMOVE"), src, dst, from, to];
    block_move(ctx, args, attempt, lmove)
}

pub fn blmpop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::blocking::block_mpop(ctx, args, "LMPOP", lmpop)
}
