//! SORT and SORT_RO with Redis 7.0's semantics (sortCommandGeneric in sort.c): lists, sets and
//! sorted sets, sorted numerically or with ALPHA, by their own values or BY an external key or
//! hash field, with LIMIT, GET patterns (`#` is the element itself), DESC and STORE.

use super::{own, Args, CmdError, CmdResult, Ctx};
use crate::server::reply::Reply;
use crate::store::{Entry, Value};
use bytes::Bytes;
use std::cmp::Ordering;

const ERR_NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// The value a BY or GET pattern names for `element`: a string key, or a hash field with
/// `key->field`; `None` when it does not exist. `#` is the element itself.
fn lookup(ctx: &Ctx, pattern: &[u8], element: &Bytes) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(element.clone());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    // A hash field: the last "->" after the star, with something after it.
    let arrow = pattern
        .windows(2)
        .rposition(|w| w == b"->")
        .filter(|&a| a > star && a + 2 < pattern.len());
    let key_pattern = arrow.map_or(pattern, |a| &pattern[..a]);
    let mut key = Vec::with_capacity(key_pattern.len() + element.len());
    key.extend_from_slice(&key_pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(&key_pattern[star + 1..]);
    let shard = ctx.db().read(&key);
    let entry = shard.get(&key, ctx.now())?;
    match (arrow, &entry.value) {
        (None, Value::Str(s)) => Some(s.clone()),
        (Some(a), Value::Hash(h)) => h.get_bytes(&pattern[a + 2..]),
        _ => None,
    }
}

struct Options {
    by: Option<Bytes>,
    /// BY a pattern without `*`: keep the source's order.
    dont_sort: bool,
    limit: Option<(i64, i64)>,
    gets: Vec<Bytes>,
    desc: bool,
    alpha: bool,
    store: Option<Bytes>,
}

fn parse(args: &mut Args, read_only: bool) -> Result<Options, CmdError> {
    let mut o = Options {
        by: None,
        dont_sort: false,
        limit: None,
        gets: Vec::new(),
        desc: false,
        alpha: false,
        store: None,
    };
    while !args.is_empty() {
        let left = args.remaining() - 1;
        match args.next_upper()?.as_str() {
            "ASC" => o.desc = false,
            "DESC" => o.desc = true,
            "ALPHA" => o.alpha = true,
            "LIMIT" if left >= 2 => {
                let start = args.next_i64()?;
                let count = args.next_i64()?;
                o.limit = Some((start, count));
            }
            "STORE" if left >= 1 && !read_only => o.store = Some(args.next()?),
            "BY" if left >= 1 => {
                let p = args.next()?;
                o.dont_sort = !p.contains(&b'*');
                o.by = Some(p);
            }
            "GET" if left >= 1 => o.gets.push(args.next()?),
            _ => return Err(CmdError::syntax()),
        }
    }
    Ok(o)
}

/// The source's elements in their own order (a sorted set's by score).
fn elements(ctx: &Ctx, key: &[u8]) -> Result<(Vec<Bytes>, bool, bool), CmdError> {
    let shard = ctx.db().read(key);
    let now = ctx.now();
    match shard.get(key, now) {
        None => Ok((Vec::new(), false, false)),
        Some(Entry { value, .. }) => match value {
            Value::List(l) => Ok((l.iter().cloned().collect(), false, false)),
            Value::Set(s) => Ok((s.iter().cloned().collect(), true, false)),
            Value::ZSet(z) => Ok((z.iter().map(|(m, _)| m.clone()).collect(), false, true)),
            _ => Err(CmdError::wrong_type()),
        },
    }
}

fn sort_generic(ctx: &mut Ctx, args: &mut Args, read_only: bool) -> CmdResult {
    let key = args.next()?;
    let mut o = parse(args, read_only)?;
    let (mut items, is_set, is_zset) = elements(ctx, &key)?;
    // A set sorted "by nothing" is still sorted (ALPHA) when stored or run from a script, so
    // the result does not depend on the set's internal order.
    if o.dont_sort && is_set && (o.store.is_some() || ctx.in_exec) {
        o.dont_sort = false;
        o.alpha = true;
        o.by = None;
    }
    let len = items.len() as i64;
    let (mut start, mut count) = o.limit.unwrap_or((0, -1));
    if start < 0 {
        start = 0;
    }
    if count < 0 || start + count > len {
        count = (len - start).max(0);
    }
    if start >= len {
        count = 0;
    }
    if !o.dont_sort {
        // Each element with what it is compared by.
        enum Key {
            Num(f64),
            Text(Option<Bytes>),
        }
        let mut keyed = Vec::with_capacity(items.len());
        for e in items {
            let by = match &o.by {
                Some(p) => lookup(ctx, p, &e),
                None => Some(e.clone()),
            };
            let k = if o.alpha {
                Key::Text(by)
            } else {
                let v = match by {
                    Some(b) => {
                        crate::util::parse_f64(&b).ok_or_else(|| CmdError::new(ERR_NOT_DOUBLE))?
                    }
                    None => 0.0,
                };
                if v.is_nan() {
                    return Err(CmdError::new(ERR_NOT_DOUBLE));
                }
                Key::Num(v)
            };
            keyed.push((e, k));
        }
        let by_given = o.by.is_some();
        keyed.sort_by(|(ea, ka), (eb, kb)| {
            let cmp = match (ka, kb) {
                (Key::Num(a), Key::Num(b)) => a
                    .partial_cmp(b)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| ea.cmp(eb)),
                (Key::Text(a), Key::Text(b)) if by_given => match (a, b) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(a), Some(b)) => a.cmp(b),
                },
                (Key::Text(_), Key::Text(_)) => ea.cmp(eb),
                _ => Ordering::Equal,
            };
            if o.desc {
                cmp.reverse()
            } else {
                cmp
            }
        });
        items = keyed.into_iter().map(|(e, _)| e).collect();
    } else if o.desc && is_zset {
        items.reverse();
    }
    let page = items.into_iter().skip(start as usize).take(count as usize);
    let mut out: Vec<Option<Bytes>> = Vec::new();
    for e in page {
        if o.gets.is_empty() {
            out.push(Some(e));
        } else {
            for g in &o.gets {
                out.push(lookup(ctx, g, &e));
            }
        }
    }
    match o.store {
        None => Ok(Reply::Array(
            out.into_iter()
                .map(|v| v.map_or(Reply::Null, Reply::Bulk))
                .collect(),
        )),
        Some(dst) => {
            let n = out.len();
            let now = ctx.now();
            let mut shard = ctx.db().write(&dst);
            if n == 0 {
                if shard.remove(&dst, now).is_some() {
                    ctx.dirty(1);
                }
            } else {
                let list: super::lists::ListValue =
                    out.into_iter().map(|v| v.unwrap_or_default()).collect();
                shard.insert(own(dst), Entry::new(Value::List(Box::new(list))), now);
                ctx.dirty(n as u64);
            }
            Ok(Reply::Int(n as i64))
        }
    }
}

pub fn sort(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    sort_generic(ctx, args, false)
}

pub fn sort_ro(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    sort_generic(ctx, args, true)
}
