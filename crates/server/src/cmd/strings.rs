//! String commands: GET/SET and friends, counters, ranges.

use super::{own, string_in, Args, CmdError, CmdResult, Ctx, NOT_FLOAT_ERR};
use crate::notify;
use crate::server::reply::Reply;
use crate::store::{Entry, Value};
use bytes::{Bytes, BytesMut};

/// An expiry option as written by the client, resolved against the command's clock.
#[derive(Clone, Copy, PartialEq)]
enum Expiry {
    None,
    Keep,
    Persist,
    At(u64),
}

/// Resolves EX/PX/EXAT/PXAT values with Redis's checks; `cmd` names the command in the error.
fn expire_at(kind: &str, v: i64, now: u64, cmd: &str) -> Result<u64, CmdError> {
    let bad = || CmdError::new(format!("ERR invalid expire time in '{cmd}' command"));
    if v <= 0 {
        return Err(bad());
    }
    let ms = match kind {
        "EX" | "EXAT" => v.checked_mul(1000).ok_or_else(bad)?,
        _ => v,
    };
    let at = match kind {
        "EX" | "PX" => ms.checked_add(now as i64).ok_or_else(bad)?,
        _ => ms,
    };
    Ok(at as u64)
}

/// The key's name for the events a command announces, only when a class of `classes` is on:
/// writes that nobody listens to do not copy it.
fn event_key(key: &Bytes, classes: u32) -> Option<Bytes> {
    notify::wanted(classes).then(|| key.clone())
}

/// Stores a string, keeping or replacing the expiry.
fn put(ctx: &Ctx, key: &Bytes, value: Bytes, expiry: Expiry) {
    let now = ctx.now();
    let mut shard = ctx.db().write(key);
    let at = match expiry {
        Expiry::Keep => shard.get(key, now).map_or(0, |e| e.expire_at()),
        Expiry::At(t) => t,
        Expiry::None | Expiry::Persist => 0,
    };
    shard.insert(
        own(key.clone()),
        Entry::with_expiry(Value::Str(own(value)), at),
        now,
    );
    drop(shard);
    ctx.notify(notify::STRING, "set", key);
    if let Expiry::At(_) = expiry {
        ctx.notify(notify::GENERIC, "expire", key);
    }
    ctx.dirty(1);
}

pub fn get(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    Ok(ctx.get_string(&args.next()?)?.into())
}

pub fn set(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next_owned()?;
    let value = args.next_owned()?;
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut expiry = Expiry::None;
    while !args.is_empty() {
        let opt = args.next_upper()?;
        match opt.as_str() {
            "NX" if !xx => nx = true,
            "XX" if !nx => xx = true,
            "GET" => get = true,
            "KEEPTTL" if expiry == Expiry::None => expiry = Expiry::Keep,
            "EX" | "PX" | "EXAT" | "PXAT" if expiry == Expiry::None => {
                if args.is_empty() {
                    return Err(CmdError::syntax());
                }
                let v = args.next_i64()?;
                expiry = Expiry::At(expire_at(&opt, v, ctx.now(), "set")?);
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let old = if get {
        string_in(&shard, &key, now)?.cloned()
    } else {
        None
    };
    if nx || xx {
        let exists = shard.contains(&key, now);
        if (nx && exists) || (xx && !exists) {
            return Ok(if get { old.into() } else { Reply::Null });
        }
    }
    let at = match expiry {
        Expiry::Keep => shard.get(&key, now).map_or(0, |e| e.expire_at()),
        Expiry::At(t) => t,
        _ => 0,
    };
    let name = event_key(&key, notify::STRING | notify::GENERIC);
    shard.insert(key, Entry::with_expiry(Value::Str(value), at), now);
    drop(shard);
    if let Some(key) = name {
        ctx.notify(notify::STRING, "set", &key);
        if let Expiry::At(_) = expiry {
            ctx.notify(notify::GENERIC, "expire", &key);
        }
    }
    ctx.dirty(1);
    Ok(if get { old.into() } else { Reply::OK })
}

pub fn setnx(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let value = args.next()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    if shard.contains(&key, now) {
        return Ok(Reply::Int(0));
    }
    let name = event_key(&key, notify::STRING);
    shard.insert(own(key), Entry::new(Value::Str(own(value))), now);
    drop(shard);
    if let Some(key) = name {
        ctx.notify(notify::STRING, "set", &key);
    }
    ctx.dirty(1);
    Ok(Reply::Int(1))
}

fn setex_generic(ctx: &mut Ctx, args: &mut Args, unit: &str, name: &str) -> CmdResult {
    let key = args.next()?;
    let t = args.next_i64()?;
    let value = args.next()?;
    let at = expire_at(unit, t, ctx.now(), name)?;
    put(ctx, &key, value, Expiry::At(at));
    Ok(Reply::OK)
}

pub fn setex(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    setex_generic(ctx, args, "EX", "setex")
}

pub fn psetex(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    setex_generic(ctx, args, "PX", "psetex")
}

pub fn mget(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let keys = args.rest();
    let now = ctx.now();
    let guard = ctx.db().read_many(&keys);
    let replies = keys
        .iter()
        .map(|k| match guard.shard(k).get(k, now) {
            Some(Entry {
                value: Value::Str(b),
                ..
            }) => Reply::Bulk(b.clone()),
            _ => Reply::Null,
        })
        .collect();
    Ok(Reply::Array(replies))
}

fn mset_generic(ctx: &mut Ctx, args: &mut Args, nx: bool, name: &str) -> Result<bool, CmdError> {
    if !args.remaining().is_multiple_of(2) {
        return Err(CmdError::new(format!(
            "ERR wrong number of arguments for '{name}' command"
        )));
    }
    let rest = args.rest();
    let keys: Vec<&Bytes> = rest.iter().step_by(2).collect();
    let now = ctx.now();
    let mut guard = ctx.db().write_many(&keys);
    if nx && keys.iter().any(|k| guard.shard(k).contains(k, now)) {
        return Ok(false);
    }
    for pair in rest.chunks(2) {
        guard.shard(&pair[0]).insert(
            own(pair[0].clone()),
            Entry::new(Value::Str(own(pair[1].clone()))),
            now,
        );
        ctx.notify(notify::STRING, "set", &pair[0]);
    }
    drop(guard);
    ctx.dirty(keys.len() as u64);
    Ok(true)
}

pub fn mset(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    mset_generic(ctx, args, false, "mset")?;
    Ok(Reply::OK)
}

pub fn msetnx(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    Ok(Reply::Int(mset_generic(ctx, args, true, "msetnx")? as i64))
}

pub fn getset(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let value = args.next()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let old = string_in(&shard, &key, now)?.cloned();
    let name = event_key(&key, notify::STRING);
    shard.insert(own(key), Entry::new(Value::Str(own(value))), now);
    drop(shard);
    if let Some(key) = name {
        ctx.notify(notify::STRING, "set", &key);
    }
    ctx.dirty(1);
    Ok(old.into())
}

pub fn getdel(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let old = string_in(&shard, &key, now)?.cloned();
    if old.is_some() {
        shard.remove(&key, now);
        ctx.notify(notify::GENERIC, "del", &key);
        ctx.dirty(1);
    }
    Ok(old.into())
}

pub fn getex(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let mut expiry = Expiry::None;
    while !args.is_empty() {
        let opt = args.next_upper()?;
        match opt.as_str() {
            "PERSIST" if expiry == Expiry::None => expiry = Expiry::Persist,
            "EX" | "PX" | "EXAT" | "PXAT" if expiry == Expiry::None && !args.is_empty() => {
                let v = args.next_i64()?;
                expiry = Expiry::At(expire_at(&opt, v, ctx.now(), "getex")?);
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(v) = string_in(&shard, &key, now)?.cloned() else {
        return Ok(Reply::Null);
    };
    match expiry {
        Expiry::Persist => {
            // Redis announces a persist only when there was a TTL to remove.
            if shard.get(&key, now).is_some_and(|e| e.expire_at() != 0) {
                ctx.notify(notify::GENERIC, "persist", &key);
            }
            shard.set_expire(&key, 0, now);
        }
        Expiry::At(t) if t <= now => {
            shard.remove(&key, now);
            ctx.notify(notify::GENERIC, "del", &key);
        }
        Expiry::At(t) => {
            shard.set_expire(&key, t, now);
            ctx.notify(notify::GENERIC, "expire", &key);
        }
        _ => {}
    }
    if expiry != Expiry::None {
        ctx.dirty(1);
    }
    Ok(Reply::Bulk(v))
}

fn max_size(ctx: &Ctx) -> usize {
    ctx.server
        .config
        .live
        .proto_max_bulk_len
        .load(std::sync::atomic::Ordering::Relaxed)
}

const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

pub fn append(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let tail = args.next()?;
    let now = ctx.now();
    let max = max_size(ctx);
    let mut shard = ctx.db().write(&key);
    let len = match shard.get_mut(&key, now) {
        None => {
            shard.insert(
                own(key.clone()),
                Entry::new(Value::Str(own(tail.clone()))),
                now,
            );
            tail.len()
        }
        Some(e) => {
            let Value::Str(b) = &mut e.value else {
                return Err(CmdError::wrong_type());
            };
            if b.len() + tail.len() > max {
                return Err(CmdError::new(TOO_BIG));
            }
            // Reuse the buffer when nothing else holds it, so repeated appends stay amortised.
            let mut m = match std::mem::take(b).try_into_mut() {
                Ok(m) => m,
                Err(shared) => BytesMut::from(&shared[..]),
            };
            m.extend_from_slice(&tail);
            *b = m.freeze();
            let len = b.len();
            e.mark_modified();
            len
        }
    };
    drop(shard);
    ctx.notify(notify::STRING, "append", &key);
    ctx.dirty(1);
    Ok(Reply::Int(len as i64))
}

pub fn strlen(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    Ok(Reply::Int(
        ctx.get_string(&args.next()?)?.map_or(0, |b| b.len() as i64),
    ))
}

pub fn getrange(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let (mut start, mut end) = (args.next_i64()?, args.next_i64()?);
    let Some(v) = ctx.get_string(&key)? else {
        return Ok(Reply::bulk(Bytes::new()));
    };
    let len = v.len() as i64;
    // Redis: both negative and start > end, or empty string -> empty.
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::bulk(Bytes::new()));
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Ok(Reply::bulk(Bytes::new()));
    }
    Ok(Reply::Bulk(v.slice(start as usize..=end as usize)))
}

pub fn setrange(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let offset = args.next_i64()?;
    let value = args.next()?;
    if offset < 0 {
        return Err(CmdError::new("ERR offset is out of range"));
    }
    let offset = offset as usize;
    let now = ctx.now();
    let max = max_size(ctx);
    let mut shard = ctx.db().write(&key);
    let current = string_in(&shard, &key, now)?.cloned();
    if value.is_empty() {
        return Ok(Reply::Int(current.map_or(0, |c| c.len() as i64)));
    }
    if offset + value.len() > max {
        return Err(CmdError::new(TOO_BIG));
    }
    let mut buf = current.map(|c| c.to_vec()).unwrap_or_default();
    if buf.len() < offset + value.len() {
        buf.resize(offset + value.len(), 0);
    }
    buf[offset..offset + value.len()].copy_from_slice(&value);
    let len = buf.len();
    match shard.get_mut(&key, now) {
        Some(e) => {
            e.value = Value::Str(Bytes::from(buf));
            e.mark_modified();
        }
        None => {
            shard.insert(
                own(key.clone()),
                Entry::new(Value::Str(Bytes::from(buf))),
                now,
            );
        }
    }
    drop(shard);
    ctx.notify(notify::STRING, "setrange", &key);
    ctx.dirty(1);
    Ok(Reply::Int(len as i64))
}

fn incr_generic(ctx: &mut Ctx, key: Bytes, by: i64) -> CmdResult {
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let current = match string_in(&shard, &key, now)? {
        None => 0,
        Some(b) => crate::util::parse_i64(b).ok_or_else(CmdError::not_int)?,
    };
    let next = current
        .checked_add(by)
        .ok_or_else(|| CmdError::new("ERR increment or decrement would overflow"))?;
    let bytes = Bytes::from(next.to_string());
    match shard.get_mut(&key, now) {
        Some(e) => e.value = Value::Str(bytes),
        None => {
            shard.insert(own(key.clone()), Entry::new(Value::Str(bytes)), now);
        }
    }
    drop(shard);
    ctx.notify(notify::STRING, "incrby", &key);
    ctx.dirty(1);
    Ok(Reply::Int(next))
}

pub fn incr(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    incr_generic(ctx, key, 1)
}

pub fn decr(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    incr_generic(ctx, key, -1)
}

pub fn incrby(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let by = args.next_i64()?;
    incr_generic(ctx, key, by)
}

pub fn decrby(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let by = args.next_i64()?;
    let neg = by
        .checked_neg()
        .ok_or_else(|| CmdError::new("ERR decrement would overflow"))?;
    incr_generic(ctx, key, neg)
}

pub fn incrbyfloat(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let by = args.next_f64()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let current = match string_in(&shard, &key, now)? {
        None => 0.0,
        Some(b) => crate::util::parse_f64(b).ok_or_else(|| CmdError::new(NOT_FLOAT_ERR))?,
    };
    let next = current + by;
    if !next.is_finite() {
        return Err(CmdError::new("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(crate::util::format_f64_human(next));
    match shard.get_mut(&key, now) {
        Some(e) => e.value = Value::Str(text.clone()),
        None => {
            shard.insert(own(key.clone()), Entry::new(Value::Str(text.clone())), now);
        }
    }
    drop(shard);
    ctx.notify(notify::STRING, "incrbyfloat", &key);
    ctx.dirty(1);
    Ok(Reply::Bulk(text))
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest common
/// subsequence by Redis 7.0's dynamic programming table (bounded by proto-max-bulk-len, as
/// Redis bounds it), its ranges walked back from the end as Redis emits them.
pub fn lcs(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (ka, kb) = (args.next()?, args.next()?);
    let read = |k: &[u8]| -> Result<Bytes, CmdError> {
        match ctx.get_string(k) {
            Ok(v) => Ok(v.unwrap_or_default()),
            Err(_) => Err(CmdError::new(
                "ERR The specified keys must contain string values",
            )),
        }
    };
    let (a, b) = (read(&ka)?, read(&kb)?);
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen = 0i64;
    while let Some(opt) = args.peek() {
        let opt = opt.to_ascii_uppercase();
        let more = args.remaining() > 1;
        args.next()?;
        match opt.as_slice() {
            b"IDX" => getidx = true,
            b"LEN" => getlen = true,
            b"WITHMATCHLEN" => withmatchlen = true,
            b"MINMATCHLEN" if more => minmatchlen = args.next_i64()?.max(0),
            _ => return Err(CmdError::syntax()),
        }
    }
    if getlen && getidx {
        return Err(CmdError::new(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    if a.len() >= u32::MAX as usize - 1 || b.len() >= u32::MAX as usize - 1 {
        return Err(CmdError::new("ERR String too long for LCS"));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells * 4 > max_size(ctx) as u64 {
        return Err(CmdError::new(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let w = blen + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    if getlen {
        return Ok(Reply::Int(total as i64));
    }
    let mut result = vec![0u8; total as usize];
    let mut matches = Vec::new();
    let (mut i, mut j, mut idx) = (alen, blen, total as usize);
    // `alen` as the start marks "no range open", as in Redis.
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0usize, 0usize, 0usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == alen {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        let match_len = a_end.wrapping_sub(a_start).wrapping_add(1);
        if emit {
            if getidx && (minmatchlen == 0 || match_len as i64 >= minmatchlen) {
                let mut m = vec![
                    Reply::Array(vec![Reply::Int(a_start as i64), Reply::Int(a_end as i64)]),
                    Reply::Array(vec![Reply::Int(b_start as i64), Reply::Int(b_end as i64)]),
                ];
                if withmatchlen {
                    m.push(Reply::Int(match_len as i64));
                }
                matches.push(Reply::Array(m));
            }
            a_start = alen;
        }
    }
    if getidx {
        return Ok(Reply::Map(vec![
            (
                Reply::bulk(Bytes::from_static(b"matches")),
                Reply::Array(matches),
            ),
            (
                Reply::bulk(Bytes::from_static(b"len")),
                Reply::Int(total as i64),
            ),
        ]));
    }
    Ok(Reply::bulk(Bytes::from(result)))
}
