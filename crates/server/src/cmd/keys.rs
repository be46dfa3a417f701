//! Generic keyspace commands: existence, deletion, expiry, iteration, renaming and moving.

use super::{own, Args, CmdError, CmdResult, Ctx, DB_RANGE_ERR, NO_SUCH_KEY_ERR};
use crate::notify;
use crate::server::reply::Reply;
use crate::store::{glob::GlobPattern, Entry, PairGuard, Value, SHARDS};
use bytes::Bytes;

pub fn del(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let keys = args.rest();
    let now = ctx.now();
    let mut guard = ctx.db().write_many(&keys);
    let n = keys
        .iter()
        .filter(|k| guard.shard(k).remove(k, now).is_some())
        .inspect(|k| ctx.notify(notify::GENERIC, "del", k))
        .count();
    ctx.dirty(n as u64);
    Ok(Reply::Int(n as i64))
}

/// UNLINK frees large values off the client's thread, as Redis's lazy free does.
pub fn unlink(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let keys = args.rest();
    let now = ctx.now();
    let mut guard = ctx.db().write_many(&keys);
    let removed: Vec<Entry> = keys
        .iter()
        .filter_map(|k| {
            let e = guard.shard(k).remove(k, now)?;
            ctx.notify(notify::GENERIC, "del", k);
            Some(e)
        })
        .collect();
    drop(guard);
    let n = removed.len();
    ctx.dirty(n as u64);
    if removed.iter().any(|e| e.value.memory_usage() > 64 * 1024) {
        std::thread::spawn(move || drop(removed));
    }
    Ok(Reply::Int(n as i64))
}

pub fn exists(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let now = ctx.now();
    let db = ctx.db();
    let n = args
        .rest()
        .iter()
        .filter(|k| db.read(k).contains(k, now))
        .count();
    Ok(Reply::Int(n as i64))
}

pub fn touch(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let now = ctx.now();
    let db = ctx.db();
    let n = args
        .rest()
        .iter()
        .filter(|k| {
            let s = db.read(k);
            s.get(k, now).map(|e| e.touch(now)).is_some()
        })
        .count();
    Ok(Reply::Int(n as i64))
}

pub fn r#type(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let shard = ctx.db().read(&key);
    Ok(Reply::Status(
        shard
            .get(&key, ctx.now())
            .map_or("none", |e| e.value.type_name()),
    ))
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT with NX, XX, GT, LT.
fn expire_generic(
    ctx: &mut Ctx,
    args: &mut Args,
    unit_ms: i64,
    absolute: bool,
    name: &str,
) -> CmdResult {
    let key = args.next()?;
    let when = args.next_i64()?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    while !args.is_empty() {
        let opt = args.next()?;
        match String::from_utf8_lossy(&opt).to_ascii_uppercase().as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => {
                return Err(CmdError::new(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(&opt)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::new(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::new(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let now = ctx.now();
    let bad = || CmdError::new(format!("ERR invalid expire time in '{name}' command"));
    let mut at = when.checked_mul(unit_ms).ok_or_else(bad)?;
    if !absolute {
        at = at.checked_add(now as i64).ok_or_else(bad)?;
    }
    let mut shard = ctx.db().write(&key);
    let Some(e) = shard.get(&key, now) else {
        return Ok(Reply::Int(0));
    };
    let current = e.expire_at();
    let ok = if nx {
        current == 0
    } else if xx {
        current != 0
    } else {
        true
    };
    // A persistent key counts as an infinite TTL for GT / LT.
    let ok = ok
        && (!gt || (current != 0 && at > current as i64))
        && (!lt || current == 0 || at < current as i64);
    if !ok {
        return Ok(Reply::Int(0));
    }
    if at <= now as i64 {
        shard.remove(&key, now);
        ctx.notify(notify::GENERIC, "del", &key);
    } else {
        shard.set_expire(&key, at as u64, now);
        ctx.notify(notify::GENERIC, "expire", &key);
    }
    ctx.dirty(1);
    Ok(Reply::Int(1))
}

pub fn expire(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    expire_generic(ctx, args, 1000, false, "expire")
}

pub fn pexpire(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    expire_generic(ctx, args, 1, false, "pexpire")
}

pub fn expireat(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    expire_generic(ctx, args, 1000, true, "expireat")
}

pub fn pexpireat(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    expire_generic(ctx, args, 1, true, "pexpireat")
}

/// TTL-style answers: -2 missing, -1 persistent, else relative or absolute time.
fn ttl_generic(ctx: &mut Ctx, args: &mut Args, ms: bool, absolute: bool) -> CmdResult {
    let key = args.next()?;
    let now = ctx.now();
    let shard = ctx.db().read(&key);
    let Some(e) = shard.get(&key, now) else {
        return Ok(Reply::Int(-2));
    };
    let at = e.expire_at();
    if at == 0 {
        return Ok(Reply::Int(-1));
    }
    Ok(Reply::Int(match (absolute, ms) {
        (true, true) => at as i64,
        (true, false) => (at / 1000) as i64,
        (false, true) => (at - now) as i64,
        (false, false) => ((at - now + 500) / 1000) as i64,
    }))
}

pub fn ttl(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    ttl_generic(ctx, args, false, false)
}

pub fn pttl(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    ttl_generic(ctx, args, true, false)
}

pub fn expiretime(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    ttl_generic(ctx, args, false, true)
}

pub fn pexpiretime(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    ttl_generic(ctx, args, true, true)
}

pub fn persist(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let volatile = shard.get(&key, now).is_some_and(|e| e.expire_at() != 0);
    if volatile {
        shard.set_expire(&key, 0, now);
        ctx.notify(notify::GENERIC, "persist", &key);
        ctx.dirty(1);
    }
    Ok(Reply::Int(volatile as i64))
}

pub fn keys(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let pattern = args.next()?;
    let now = ctx.now();
    let db = ctx.db();
    let matcher = GlobPattern::new(&pattern, false);
    let mut out = Vec::new();
    for i in 0..SHARDS {
        let shard = db.shard(i).read();
        for (k, _) in shard.iter(now) {
            if matcher.is_match_all() || matcher.matches(k) {
                out.push(Reply::Bulk(k.clone()));
            }
        }
    }
    Ok(Reply::Array(out))
}

/// SCAN's cursor is a shard index: each call returns whole shards, so a key present for the
/// whole iteration is always returned, whatever is added or removed meanwhile.
pub fn scan(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let cursor = args.next()?;
    let cursor =
        crate::util::parse_u64(&cursor).ok_or_else(|| CmdError::new("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut type_filter) = (None, 10usize, None);
    while !args.is_empty() {
        let opt = args.next_upper()?;
        match opt.as_str() {
            "MATCH" if !args.is_empty() => pattern = Some(args.next()?),
            "COUNT" if !args.is_empty() => {
                let n = args.next_i64()?;
                if n < 1 {
                    return Err(CmdError::syntax());
                }
                count = n as usize;
            }
            "TYPE" if !args.is_empty() => {
                type_filter = Some(String::from_utf8_lossy(&args.next()?).to_string())
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    let matcher = pattern.as_ref().map(|p| GlobPattern::new(p, false));
    let now = ctx.now();
    let db = ctx.db();
    let mut shard_idx = cursor as usize;
    let mut out = Vec::new();
    let mut examined = 0;
    while shard_idx < SHARDS && examined < count {
        let shard = db.shard(shard_idx).read();
        for (k, e) in shard.iter(now) {
            examined += 1;
            if matcher
                .as_ref()
                .is_some_and(|p| !p.is_match_all() && !p.matches(k))
            {
                continue;
            }
            if type_filter
                .as_ref()
                .is_some_and(|t| !t.eq_ignore_ascii_case(e.value.type_name()))
            {
                continue;
            }
            out.push(Reply::Bulk(k.clone()));
        }
        shard_idx += 1;
    }
    let next = if shard_idx >= SHARDS { 0 } else { shard_idx };
    Ok(Reply::Array(vec![
        Reply::bulk(Bytes::from(next.to_string())),
        Reply::Array(out),
    ]))
}

pub fn randomkey(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let now = ctx.now();
    let db = ctx.db();
    let start = rand::random::<usize>() % SHARDS;
    for i in 0..SHARDS {
        let shard = db.shard((start + i) % SHARDS).read();
        let n = shard.len();
        if n == 0 {
            continue;
        }
        let skip = rand::random::<usize>() % n;
        let live: Vec<&Bytes> = shard.iter(now).map(|(k, _)| k).collect();
        if let Some(k) = live.get(skip % live.len().max(1)) {
            return Ok(Reply::Bulk((*k).clone()));
        }
    }
    Ok(Reply::Null)
}

fn rename_generic(ctx: &mut Ctx, args: &mut Args, nx: bool) -> CmdResult {
    let src = args.next()?;
    let dst = args.next()?;
    let now = ctx.now();
    let keys = [src.clone(), dst.clone()];
    let mut guard = ctx.db().write_many(&keys);
    if !guard.shard(&src).contains(&src, now) {
        return Err(CmdError::new(NO_SUCH_KEY_ERR));
    }
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::OK });
    }
    if nx && guard.shard(&dst).contains(&dst, now) {
        return Ok(Reply::Int(0));
    }
    let entry = guard.shard(&src).remove(&src, now).expect("checked above");
    guard.shard(&dst).insert(own(dst.clone()), entry, now);
    ctx.notify(notify::GENERIC, "rename_from", &src);
    ctx.notify(notify::GENERIC, "rename_to", &dst);
    ctx.dirty(1);
    Ok(if nx { Reply::Int(1) } else { Reply::OK })
}

pub fn rename(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    rename_generic(ctx, args, false)
}

pub fn renamenx(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    rename_generic(ctx, args, true)
}

fn db_index(ctx: &Ctx, arg: &[u8]) -> Result<usize, CmdError> {
    let n = crate::util::parse_i64(arg).ok_or_else(CmdError::not_int)?;
    if n < 0 || n as usize >= ctx.server.store.db_count() {
        return Err(CmdError::new(DB_RANGE_ERR));
    }
    Ok(n as usize)
}

pub fn copy(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let src = args.next()?;
    let dst = args.next()?;
    let mut target_db = ctx.client.db;
    let mut replace = false;
    while !args.is_empty() {
        let opt = args.next_upper()?;
        match opt.as_str() {
            "REPLACE" => replace = true,
            "DB" if !args.is_empty() => target_db = db_index(ctx, &args.next()?)?,
            _ => return Err(CmdError::syntax()),
        }
    }
    if target_db == ctx.client.db && src == dst {
        return Err(CmdError::new(
            "ERR source and destination objects are the same",
        ));
    }
    let now = ctx.now();
    let mut guard = ctx
        .server
        .store
        .write_pair((ctx.client.db, &src), (target_db, &dst));
    let (a, b) = guard.split();
    let Some(mut entry) = a.get(&src, now).cloned() else {
        return Ok(Reply::Int(0));
    };
    // A copied router starts its own statistics (and guard windows, bandit arms).
    if let Value::Router(r) = &entry.value {
        entry.value = Value::Router(std::sync::Arc::new(r.duplicate()));
    }
    let dst_shard = b.unwrap_or(a);
    if dst_shard.contains(&dst, now) && !replace {
        return Ok(Reply::Int(0));
    }
    dst_shard.insert(own(dst.clone()), entry, now);
    drop(guard);
    notify::notify(ctx.server, notify::GENERIC, "copy_to", &dst, target_db);
    ctx.dirty(1);
    Ok(Reply::Int(1))
}

pub fn r#move(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let target = db_index(ctx, &args.next()?)?;
    if target == ctx.client.db {
        return Err(CmdError::new(
            "ERR source and destination objects are the same",
        ));
    }
    let now = ctx.now();
    let mut guard = ctx
        .server
        .store
        .write_pair((ctx.client.db, &key), (target, &key));
    let PairGuard::Two(src, dst) = &mut guard else {
        unreachable!("different databases never share a shard")
    };
    if !src.contains(&key, now) || dst.contains(&key, now) {
        return Ok(Reply::Int(0));
    }
    let entry = src.remove(&key, now).expect("checked above");
    dst.insert(key.clone(), entry, now);
    drop(guard);
    ctx.notify(notify::GENERIC, "move_from", &key);
    notify::notify(ctx.server, notify::GENERIC, "move_to", &key, target);
    ctx.dirty(1);
    Ok(Reply::Int(1))
}

/// OBJECT subcommands look at a key's metadata.
fn with_entry<R>(ctx: &Ctx, key: &[u8], f: impl FnOnce(&Entry) -> R) -> Option<R> {
    let shard = ctx.db().read(key);
    shard.get(key, ctx.now()).map(f)
}

pub fn object_encoding(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    Ok(with_entry(ctx, &key, |e| Reply::bulk_str(e.encoding())).unwrap_or(Reply::Null))
}

pub fn object_refcount(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    // Redis shares the integers 0..10000 and reports them with the shared refcount.
    Ok(with_entry(ctx, &key, |e| match &e.value {
        crate::store::Value::Str(b)
            if crate::util::parse_i64(b).is_some_and(|n| (0..10000).contains(&n)) =>
        {
            Reply::Int(i32::MAX as i64)
        }
        _ => Reply::Int(1),
    })
    .unwrap_or(Reply::Null))
}

pub fn object_idletime(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    Ok(with_entry(ctx, &key, |e| Reply::Int(e.idle_secs() as i64)).unwrap_or(Reply::Null))
}

pub fn object_freq(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    if !ctx.server.config.get("maxmemory-policy").contains("lfu") {
        return Err(CmdError::new(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    let now = crate::util::clock_secs();
    Ok(with_entry(ctx, &key, |e| Reply::Int(e.freq(now) as i64)).unwrap_or(Reply::Null))
}

pub fn object_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(super::connection::help(
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    ))
}

pub fn swapdb(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let index = |arg: Bytes, what: &str| {
        crate::util::parse_i64(&arg)
            .filter(|v| i32::try_from(*v).is_ok())
            .ok_or_else(|| CmdError::new(format!("ERR invalid {what} DB index")))
    };
    let a = index(args.next()?, "first")?;
    let b = index(args.next()?, "second")?;
    let dbs = ctx.server.store.db_count() as i64;
    if !(0..dbs).contains(&a) || !(0..dbs).contains(&b) {
        return Err(CmdError::new(DB_RANGE_ERR));
    }
    let (a, b) = (a as usize, b as usize);
    let store = &ctx.server.store;
    store.swap_dbs(a, b);
    // What is attached to key names goes with the keys.
    store.request_logs.swap(a, b);
    store.monitors.swap(a, b);
    // Clients blocked on a key of either database may find data there now.
    ctx.server.blocking.wake_db(a);
    ctx.server.blocking.wake_db(b);
    ctx.dirty(1);
    Ok(Reply::OK)
}
