//! Sorted set commands. Scores are doubles, replied as Redis 7.0 prints them (`%.17g` bulk
//! strings in RESP2, doubles in RESP3); members with equal scores order by their bytes.

use super::{own, typed, typed_mut, Args, CmdError, CmdResult, Ctx, NOT_FLOAT_ERR};
use crate::notify;
use crate::server::reply::Reply;
use crate::store::zset::ZSet;
use crate::store::{Entry, Shard, Value};
use bytes::Bytes;

fn zset_in<'s>(shard: &'s Shard, key: &[u8], now: u64) -> Result<Option<&'s ZSet>, CmdError> {
    typed(shard, key, now)
}

fn zset_mut<'s>(
    shard: &'s mut Shard,
    key: &Bytes,
    now: u64,
    create: bool,
) -> Result<Option<&'s mut ZSet>, CmdError> {
    typed_mut(shard, key, now, create)
}

fn drop_if_empty(shard: &mut Shard, key: &[u8], now: u64) {
    super::drop_if_empty::<ZSet>(shard, key, now)
}

fn score_reply(s: f64) -> Reply {
    Reply::Double(s)
}

fn parse_score(b: &[u8]) -> Result<f64, CmdError> {
    crate::util::parse_f64(b).ok_or_else(|| CmdError::new(NOT_FLOAT_ERR))
}

pub fn zadd(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    loop {
        match args.peek().map(|a| a.to_ascii_uppercase()) {
            Some(a) if a == b"NX" => nx = true,
            Some(a) if a == b"XX" => xx = true,
            Some(a) if a == b"GT" => gt = true,
            Some(a) if a == b"LT" => lt = true,
            Some(a) if a == b"CH" => ch = true,
            Some(a) if a == b"INCR" => incr = true,
            _ => break,
        }
        args.next_slice()?;
    }
    let rest = args.rest();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::syntax());
    }
    if nx && xx {
        return Err(CmdError::new(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if ((gt || lt) && nx) || (gt && lt) {
        return Err(CmdError::new(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && rest.len() > 2 {
        return Err(CmdError::new(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let pairs: Vec<(f64, Bytes)> = rest
        .chunks(2)
        .map(|p| Ok((parse_score(&p[0])?, p[1].clone())))
        .collect::<Result<_, CmdError>>()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    zset_in(&shard, &key, now)?;
    if xx && shard.get(&key, now).is_none() {
        return Ok(if incr { Reply::Null } else { Reply::Int(0) });
    }
    let z = zset_mut(&mut shard, &key, now, true)?.expect("created");
    let (mut added, mut changed) = (0i64, 0i64);
    let mut incr_result = None;
    for (score, member) in pairs {
        let old = z.score(&member);
        let mut new = score;
        if incr {
            // A new member takes the increment itself (so -0 stays -0, as in Redis).
            new = old.map_or(score, |o| o + score);
            if new.is_nan() {
                drop_if_empty(&mut shard, &key, now);
                return Err(CmdError::new("ERR resulting score is not a number (NaN)"));
            }
        }
        match old {
            Some(_) if nx => continue,
            None if xx => continue,
            Some(o) => {
                if (gt && new <= o) || (lt && new >= o) {
                    continue;
                }
                if o != new {
                    z.insert(member, new);
                    changed += 1;
                }
                incr_result = Some(new);
            }
            None => {
                z.insert(own(member), new);
                added += 1;
                incr_result = Some(new);
            }
        }
    }
    if added + changed > 0 {
        ctx.notify(notify::ZSET, if incr { "zincr" } else { "zadd" }, &key);
    }
    drop_if_empty(&mut shard, &key, now);
    ctx.dirty((added + changed) as u64);
    if incr {
        return Ok(incr_result.map_or(Reply::Null, score_reply));
    }
    Ok(Reply::Int(if ch { added + changed } else { added }))
}

pub fn zincrby(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let by = parse_score(args.next_slice()?)?;
    let member = args.next()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let z = zset_mut(&mut shard, &key, now, true)?.expect("created");
    let new = z.score(&member).map_or(by, |o| o + by);
    if new.is_nan() {
        drop_if_empty(&mut shard, &key, now);
        return Err(CmdError::new("ERR resulting score is not a number (NaN)"));
    }
    z.insert(own(member), new);
    drop(shard);
    ctx.notify(notify::ZSET, "zincr", &key);
    ctx.dirty(1);
    Ok(score_reply(new))
}

pub fn zrem(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let members = args.rest();
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(z) = zset_mut(&mut shard, &key, now, false)? else {
        return Ok(Reply::Int(0));
    };
    let n = members.iter().filter(|m| z.remove(m).is_some()).count();
    if n > 0 {
        ctx.notify(notify::ZSET, "zrem", &key);
    }
    drop_if_empty(&mut shard, &key, now);
    ctx.dirty(n as u64);
    Ok(Reply::Int(n as i64))
}

fn read<R>(ctx: &Ctx, key: &[u8], f: impl FnOnce(Option<&ZSet>) -> R) -> Result<R, CmdError> {
    let shard = ctx.db().read(key);
    Ok(f(zset_in(&shard, key, ctx.now())?))
}

pub fn zscore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (key, member) = (args.next()?, args.next()?);
    read(ctx, &key, |z| {
        z.and_then(|z| z.score(&member))
            .map_or(Reply::Null, score_reply)
    })
}

pub fn zmscore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let members = args.rest();
    read(ctx, &key, |z| {
        Reply::Array(
            members
                .iter()
                .map(|m| z.and_then(|z| z.score(m)).map_or(Reply::Null, score_reply))
                .collect(),
        )
    })
}

pub fn zcard(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    read(ctx, &key, |z| Reply::Int(z.map_or(0, |z| z.len()) as i64))
}

fn rank_generic(ctx: &mut Ctx, args: &mut Args, rev: bool) -> CmdResult {
    let (key, member) = (args.next()?, args.next()?);
    let withscore = args.eat("WITHSCORE");
    args.finish()?;
    read(ctx, &key, |z| {
        let Some(z) = z else {
            return Reply::Null;
        };
        match (z.rank(&member), z.score(&member)) {
            (Some(r), Some(s)) => {
                let r = if rev { z.len() - 1 - r } else { r } as i64;
                if withscore {
                    Reply::Array(vec![Reply::Int(r), score_reply(s)])
                } else {
                    Reply::Int(r)
                }
            }
            _ => Reply::Null,
        }
    })
}

pub fn zrank(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    rank_generic(ctx, args, false)
}

pub fn zrevrank(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    rank_generic(ctx, args, true)
}

/// A score bound: `1.5`, `(1.5` (exclusive), `-inf`, `+inf`.
#[derive(Clone, Copy)]
struct ScoreBound {
    v: f64,
    excl: bool,
}

fn parse_score_bound(b: &[u8]) -> Result<ScoreBound, CmdError> {
    let bad = || CmdError::new("ERR min or max is not a float");
    let (excl, num) = match b.first() {
        Some(b'(') => (true, &b[1..]),
        _ => (false, b),
    };
    let v = crate::util::parse_f64(num).ok_or_else(bad)?;
    Ok(ScoreBound { v, excl })
}

impl ScoreBound {
    fn above_min(self, s: f64) -> bool {
        if self.excl {
            s > self.v
        } else {
            s >= self.v
        }
    }
    fn below_max(self, s: f64) -> bool {
        if self.excl {
            s < self.v
        } else {
            s <= self.v
        }
    }
}

/// A lexicographic bound: `[a`, `(a`, `-`, `+`.
#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

fn parse_lex_bound(b: &Bytes) -> Result<LexBound, CmdError> {
    let bad = || CmdError::new("ERR min or max not valid string range item");
    match b.first() {
        Some(b'-') if b.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if b.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::Incl(b.slice(1..))),
        Some(b'(') => Ok(LexBound::Excl(b.slice(1..))),
        _ => Err(bad()),
    }
}

impl LexBound {
    fn above_min(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(v) => m >= v.as_ref(),
            LexBound::Excl(v) => m > v.as_ref(),
        }
    }
    fn below_max(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(v) => m <= v.as_ref(),
            LexBound::Excl(v) => m < v.as_ref(),
        }
    }
}

enum By {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

struct Range {
    by: By,
    rev: bool,
    limit: Option<(i64, i64)>,
}

/// The members a range selects, in reply order.
fn select(z: &ZSet, r: &Range) -> Vec<(Bytes, f64)> {
    let (offset, count) = r.limit.unwrap_or((0, -1));
    if offset < 0 {
        return Vec::new();
    }
    let take = if count < 0 {
        usize::MAX
    } else {
        count as usize
    };
    let out: Box<dyn Iterator<Item = (&Bytes, f64)>> = match &r.by {
        By::Rank(start, stop) => {
            let len = z.len() as i64;
            let s = if *start < 0 {
                (len + start).max(0)
            } else {
                *start
            };
            let e = if *stop < 0 { len + stop } else { *stop }.min(len - 1);
            if e < 0 || s > e || s >= len {
                return Vec::new();
            }
            let n = (e - s + 1) as usize;
            if r.rev {
                Box::new(z.iter().rev().skip(s as usize).take(n))
            } else {
                Box::new(z.iter().skip(s as usize).take(n))
            }
        }
        By::Score(min, max) => {
            let (min, max) = (*min, *max);
            if r.rev {
                Box::new(
                    z.to_score_rev(max.v)
                        .skip_while(move |(_, s)| !max.below_max(*s))
                        .take_while(move |(_, s)| min.above_min(*s)),
                )
            } else {
                Box::new(
                    z.from_score(min.v)
                        .skip_while(move |(_, s)| !min.above_min(*s))
                        .take_while(move |(_, s)| max.below_max(*s)),
                )
            }
        }
        By::Lex(min, max) => {
            let (min, max) = (min.clone(), max.clone());
            if r.rev {
                Box::new(
                    z.iter()
                        .rev()
                        .skip_while({
                            let max = max.clone();
                            move |(m, _)| !max.below_max(m)
                        })
                        .take_while(move |(m, _)| min.above_min(m)),
                )
            } else {
                Box::new(
                    z.iter()
                        .skip_while({
                            let min = min.clone();
                            move |(m, _)| !min.above_min(m)
                        })
                        .take_while(move |(m, _)| max.below_max(m)),
                )
            }
        }
    };
    out.skip(offset as usize)
        .take(take)
        .map(|(m, s)| (m.clone(), s))
        .collect()
}

fn range_reply(items: Vec<(Bytes, f64)>, withscores: bool, proto: u8) -> Reply {
    if !withscores {
        return Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect());
    }
    if proto >= 3 {
        return Reply::Array(
            items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), score_reply(s)]))
                .collect(),
        );
    }
    let mut v = Vec::with_capacity(items.len() * 2);
    for (m, s) in items {
        v.push(Reply::Bulk(m));
        v.push(score_reply(s));
    }
    Reply::Array(v)
}

/// Which range form a command uses.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// ZRANGE / ZRANGESTORE: BYSCORE / BYLEX / REV options.
    Generic,
    Score,
    Lex,
    Rank,
}

/// Parses `min max [options]` for a range command; `rev` is the command's own direction.
fn parse_range(
    args: &mut Args,
    form: Form,
    rev: bool,
    store: bool,
) -> Result<(Range, bool), CmdError> {
    let (a, b) = (args.next()?, args.next()?);
    let mut by_score = form == Form::Score;
    let mut by_lex = form == Form::Lex;
    let mut rev = rev;
    let mut withscores = false;
    let mut limit = None;
    while !args.is_empty() {
        let opt = args.next_upper()?;
        match opt.as_str() {
            "WITHSCORES" if !store => withscores = true,
            "LIMIT" if form != Form::Rank => {
                let off = args.next_i64()?;
                let cnt = args.next_i64()?;
                limit = Some((off, cnt));
            }
            "BYSCORE" if form == Form::Generic => by_score = true,
            "BYLEX" if form == Form::Generic => by_lex = true,
            "REV" if form == Form::Generic => rev = true,
            _ => return Err(CmdError::syntax()),
        }
    }
    if by_score && by_lex {
        return Err(CmdError::syntax());
    }
    if limit.is_some() && !by_score && !by_lex {
        return Err(CmdError::new(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && by_lex {
        return Err(CmdError::new(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // With REV the first bound is the high one.
    let (lo, hi) = if rev && (by_score || by_lex) {
        (b, a)
    } else {
        (a, b)
    };
    let by = if by_score {
        By::Score(parse_score_bound(&lo)?, parse_score_bound(&hi)?)
    } else if by_lex {
        By::Lex(parse_lex_bound(&lo)?, parse_lex_bound(&hi)?)
    } else {
        let p = |x: &[u8]| crate::util::parse_i64(x).ok_or_else(CmdError::not_int);
        By::Rank(p(&lo)?, p(&hi)?)
    };
    Ok((Range { by, rev, limit }, withscores))
}

fn range_cmd(ctx: &mut Ctx, args: &mut Args, form: Form, rev: bool) -> CmdResult {
    let key = args.next()?;
    let (range, withscores) = parse_range(args, form, rev, false)?;
    let proto = ctx.client.proto;
    read(ctx, &key, |z| {
        range_reply(
            z.map(|z| select(z, &range)).unwrap_or_default(),
            withscores,
            proto,
        )
    })
}

pub fn zrange(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    range_cmd(ctx, args, Form::Generic, false)
}

pub fn zrevrange(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    range_cmd(ctx, args, Form::Rank, true)
}

pub fn zrangebyscore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    range_cmd(ctx, args, Form::Score, false)
}

pub fn zrevrangebyscore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    range_cmd(ctx, args, Form::Score, true)
}

pub fn zrangebylex(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    range_cmd(ctx, args, Form::Lex, false)
}

pub fn zrevrangebylex(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    range_cmd(ctx, args, Form::Lex, true)
}

pub fn zrangestore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (dst, src) = (args.next()?, args.next()?);
    let (range, _) = parse_range(args, Form::Generic, false, true)?;
    let now = ctx.now();
    let keys = [dst.clone(), src.clone()];
    let mut guard = ctx.db().write_many(&keys);
    let items = zset_in(guard.shard(&src), &src, now)?
        .map(|z| select(z, &range))
        .unwrap_or_default();
    let n = items.len();
    let shard = guard.shard(&dst);
    if items.is_empty() {
        if shard.remove(&dst, now).is_some() {
            ctx.notify(notify::GENERIC, "del", &dst);
        }
    } else {
        let mut z = ZSet::default();
        for (m, s) in items {
            z.insert(m, s);
        }
        shard.insert(own(dst.clone()), Entry::new(Value::ZSet(Box::new(z))), now);
        ctx.notify(notify::ZSET, "zrangestore", &dst);
    }
    ctx.dirty(1);
    Ok(Reply::Int(n as i64))
}

pub fn zcount(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let (min, max) = (
        parse_score_bound(args.next_slice()?)?,
        parse_score_bound(args.next_slice()?)?,
    );
    let range = Range {
        by: By::Score(min, max),
        rev: false,
        limit: None,
    };
    read(ctx, &key, |z| {
        Reply::Int(z.map_or(0, |z| select(z, &range).len()) as i64)
    })
}

pub fn zlexcount(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let (min, max) = (
        parse_lex_bound(&args.next()?)?,
        parse_lex_bound(&args.next()?)?,
    );
    let range = Range {
        by: By::Lex(min, max),
        rev: false,
        limit: None,
    };
    read(ctx, &key, |z| {
        Reply::Int(z.map_or(0, |z| select(z, &range).len()) as i64)
    })
}

fn remrange(ctx: &mut Ctx, key: Bytes, range: Range) -> CmdResult {
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(z) = zset_mut(&mut shard, &key, now, false)? else {
        return Ok(Reply::Int(0));
    };
    let gone = select(z, &range);
    for (m, _) in &gone {
        z.remove(m);
    }
    if !gone.is_empty() {
        let event = match range.by {
            By::Rank(..) => "zremrangebyrank",
            By::Score(..) => "zremrangebyscore",
            By::Lex(..) => "zremrangebylex",
        };
        ctx.notify(notify::ZSET, event, &key);
    }
    drop_if_empty(&mut shard, &key, now);
    ctx.dirty(gone.len() as u64);
    Ok(Reply::Int(gone.len() as i64))
}

pub fn zremrangebyscore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let (min, max) = (
        parse_score_bound(args.next_slice()?)?,
        parse_score_bound(args.next_slice()?)?,
    );
    remrange(
        ctx,
        key,
        Range {
            by: By::Score(min, max),
            rev: false,
            limit: None,
        },
    )
}

pub fn zremrangebylex(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let (min, max) = (
        parse_lex_bound(&args.next()?)?,
        parse_lex_bound(&args.next()?)?,
    );
    remrange(
        ctx,
        key,
        Range {
            by: By::Lex(min, max),
            rev: false,
            limit: None,
        },
    )
}

pub fn zremrangebyrank(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let (a, b) = (args.next_i64()?, args.next_i64()?);
    remrange(
        ctx,
        key,
        Range {
            by: By::Rank(a, b),
            rev: false,
            limit: None,
        },
    )
}

/// Pops up to `count` lowest (or highest) members.
fn pop_from(z: &mut ZSet, max: bool, count: usize) -> Vec<(Bytes, f64)> {
    let picked: Vec<(Bytes, f64)> = if max {
        z.iter()
            .rev()
            .take(count)
            .map(|(m, s)| (m.clone(), s))
            .collect()
    } else {
        z.iter().take(count).map(|(m, s)| (m.clone(), s)).collect()
    };
    for (m, _) in &picked {
        z.remove(m);
    }
    picked
}

fn pop_cmd(ctx: &mut Ctx, args: &mut Args, max: bool) -> CmdResult {
    let key = args.next()?;
    let count = match args.peek() {
        Some(c) => match crate::util::parse_i64(c) {
            Some(c) if c >= 0 => {
                args.next_slice()?;
                Some(c as usize)
            }
            _ => return Err(CmdError::new("ERR value is out of range, must be positive")),
        },
        None => None,
    };
    args.finish()?;
    let now = ctx.now();
    let proto = ctx.client.proto;
    let mut shard = ctx.db().write(&key);
    let popped = match zset_mut(&mut shard, &key, now, false)? {
        Some(z) => pop_from(z, max, count.unwrap_or(1)),
        None => Vec::new(),
    };
    if !popped.is_empty() {
        ctx.notify(notify::ZSET, if max { "zpopmax" } else { "zpopmin" }, &key);
    }
    drop_if_empty(&mut shard, &key, now);
    ctx.dirty(popped.len() as u64);
    // Without a count the reply is flat even in RESP3; with one RESP3 nests the pairs.
    if count.is_none() {
        return Ok(range_reply(popped, true, 2));
    }
    Ok(range_reply(popped, true, proto))
}

pub fn zpopmin(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    pop_cmd(ctx, args, false)
}

pub fn zpopmax(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    pop_cmd(ctx, args, true)
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
pub fn zmpop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let n = crate::util::parse_i64(args.next_slice()?).unwrap_or(0);
    if n <= 0 {
        return Err(CmdError::new("ERR numkeys should be greater than 0"));
    }
    let keys: Vec<Bytes> = (0..n).map(|_| args.next()).collect::<Result<_, _>>()?;
    let max = match args.next_upper()?.as_str() {
        "MIN" => false,
        "MAX" => true,
        _ => return Err(CmdError::syntax()),
    };
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
        if let Some(z) = zset_mut(&mut shard, &key, now, false)? {
            let popped = pop_from(z, max, count);
            if !popped.is_empty() {
                ctx.notify(notify::ZSET, if max { "zpopmax" } else { "zpopmin" }, &key);
            }
            drop_if_empty(&mut shard, &key, now);
            ctx.dirty(popped.len() as u64);
            let items = popped
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), score_reply(s)]))
                .collect();
            return Ok(Reply::Array(vec![Reply::Bulk(key), Reply::Array(items)]));
        }
    }
    Ok(Reply::NullArray)
}

/// BZPOPMIN / BZPOPMAX: ZMPOP over the keys, answered as `[key, member, score]`.
fn bzpop(ctx: &mut Ctx, args: &mut Args, side: &'static str) -> CmdResult {
    super::blocking::block_pop(ctx, args, "ZMPOP", side, zmpop, |r| match r {
        Reply::Array(mut v) if v.len() == 2 => match v.pop() {
            Some(Reply::Array(mut items)) if !items.is_empty() => match items.remove(0) {
                Reply::Array(pair) => {
                    v.extend(pair);
                    Reply::Array(v)
                }
                other => other,
            },
            _ => Reply::NullArray,
        },
        other => other,
    })
}

pub fn bzpopmin(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    bzpop(ctx, args, "MIN")
}

pub fn bzpopmax(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    bzpop(ctx, args, "MAX")
}

/// Which combination of sorted sets a command computes.
#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

/// Where a combination's result goes.
#[derive(Clone, Copy, PartialEq)]
enum Output {
    /// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: a key, answering its size.
    Store,
    /// ZUNION, ZINTER, ZDIFF: the members, WITHSCORES optional.
    Reply,
    /// ZINTERCARD: the size only, LIMIT optional.
    Cardinality,
}

/// Redis's zunionInterDiffGenericCommand: `[dst] numkeys key [key ...]` then, by command,
/// WEIGHTS, AGGREGATE, WITHSCORES or LIMIT. Sets count as sorted sets whose scores are all 1.
/// The inputs are looked up before the options are parsed, as in Redis (a wrong type is
/// reported before a syntax error).
fn combine(ctx: &mut Ctx, args: &mut Args, op: SetOp, output: Output, name: &str) -> CmdResult {
    let dst = if output == Output::Store {
        Some(args.next()?)
    } else {
        None
    };
    let n = crate::util::parse_i64(args.next_slice()?).ok_or_else(CmdError::not_int)?;
    if n < 1 {
        return Err(CmdError::new(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if n as u64 > args.remaining() as u64 {
        return Err(CmdError::syntax());
    }
    let keys: Vec<Bytes> = (0..n).map(|_| args.next()).collect::<Result<_, _>>()?;
    let now = ctx.now();
    let mut all = keys.clone();
    all.extend(dst.iter().cloned());
    let mut guard = ctx.db().write_many(&all);
    let mut inputs: Vec<(Vec<(Bytes, f64)>, f64)> = Vec::with_capacity(keys.len());
    for k in &keys {
        let items = match guard.shard(k).get(k, now).map(|e| &e.value) {
            None => Vec::new(),
            Some(Value::ZSet(z)) => z.iter().map(|(m, s)| (m.clone(), s)).collect(),
            Some(Value::Set(s)) => s.iter().map(|m| (m.clone(), 1.0)).collect(),
            Some(_) => return Err(CmdError::wrong_type()),
        };
        inputs.push((items, 1.0));
    }
    let mut aggregate = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let combining = op != SetOp::Diff && output != Output::Cardinality;
    while !args.is_empty() {
        let remaining = args.remaining();
        let word = args.next_upper()?;
        match word.as_str() {
            "WEIGHTS" if combining && remaining > inputs.len() => {
                for (_, w) in inputs.iter_mut() {
                    *w = crate::util::parse_f64(args.next_slice()?)
                        .ok_or_else(|| CmdError::new("ERR weight value is not a float"))?;
                }
            }
            "AGGREGATE" if combining && remaining >= 2 => {
                aggregate = match args.next_upper()?.as_str() {
                    "SUM" => Aggregate::Sum,
                    "MIN" => Aggregate::Min,
                    "MAX" => Aggregate::Max,
                    _ => return Err(CmdError::syntax()),
                }
            }
            "WITHSCORES" if output == Output::Reply => withscores = true,
            "LIMIT" if output == Output::Cardinality && remaining >= 2 => {
                limit = crate::util::parse_i64(args.next_slice()?)
                    .filter(|l| *l >= 0)
                    .ok_or_else(|| CmdError::new("ERR LIMIT can't be negative"))?
                    as usize;
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    // Union and intersection walk the inputs from the smallest, as Redis's do (glibc's qsort
    // is a stable merge sort here), which decides which of 0 and -0 a tie keeps.
    if op != SetOp::Diff {
        inputs.sort_by_key(|(items, _)| items.len());
    }
    let result = match op {
        SetOp::Union => union(&inputs, aggregate),
        SetOp::Inter => {
            let stop = (output == Output::Cardinality && limit > 0).then_some(limit);
            inter(&inputs, aggregate, stop)
        }
        SetOp::Diff => diff(&inputs),
    };
    match (output, dst) {
        (Output::Store, Some(dst)) => {
            let shard = guard.shard(&dst);
            if result.is_empty() {
                if shard.remove(&dst, now).is_some() {
                    ctx.notify(notify::GENERIC, "del", &dst);
                    ctx.dirty(1);
                }
                return Ok(Reply::Int(0));
            }
            // Redis keeps a computed -0 in a skiplist but writes a small result as a listpack,
            // whose integer-valued scores are stored as integers: -0 comes back as 0 there.
            let listpack = result.len() as i64
                <= ctx.server.config.get_i64("zset-max-listpack-entries")
                && result.iter().all(|(m, _)| {
                    m.len() as i64 <= ctx.server.config.get_i64("zset-max-listpack-value")
                });
            let mut z = ZSet::default();
            for (m, s) in result {
                if listpack {
                    z.insert(m, s);
                } else {
                    z.insert_exact(m, s);
                }
            }
            let len = z.len();
            shard.insert(own(dst.clone()), Entry::new(Value::ZSet(Box::new(z))), now);
            ctx.notify(notify::ZSET, name, &dst);
            ctx.dirty(1);
            Ok(Reply::Int(len as i64))
        }
        (Output::Cardinality, _) => Ok(Reply::Int(result.len() as i64)),
        _ => {
            let mut items = result;
            // Scores compare as doubles (-0 equals 0; NaN never comes out of an aggregate),
            // ties by member, as Redis's skiplist orders them.
            items.sort_by(|a, b| {
                a.1.partial_cmp(&b.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.0.cmp(&b.0))
            });
            Ok(range_reply(items, withscores, ctx.client.proto))
        }
    }
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// Redis's zunionInterAggregate: +inf plus -inf makes 0, not NaN.
    fn fold(self, target: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *target += value;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            // Strict comparisons: between 0 and -0 the score already there stays.
            Aggregate::Min if value < *target => *target = value,
            Aggregate::Max if value > *target => *target = value,
            Aggregate::Min | Aggregate::Max => {}
        }
    }
}

/// A member's weighted score; NaN (0 times infinity) counts as 0.
fn weighted(score: f64, weight: f64) -> f64 {
    let s = score * weight;
    if s.is_nan() {
        0.0
    } else {
        s
    }
}

fn union(inputs: &[(Vec<(Bytes, f64)>, f64)], aggregate: Aggregate) -> Vec<(Bytes, f64)> {
    let mut acc: std::collections::HashMap<Bytes, f64> = Default::default();
    for (items, w) in inputs {
        for (m, s) in items {
            let v = weighted(*s, *w);
            match acc.get_mut(m) {
                Some(t) => aggregate.fold(t, v),
                None => {
                    acc.insert(m.clone(), v);
                }
            }
        }
    }
    acc.into_iter().collect()
}

/// Members present in every input, walking the first (the smallest); `stop` ends the walk
/// after that many (ZINTERCARD's LIMIT).
fn inter(
    inputs: &[(Vec<(Bytes, f64)>, f64)],
    aggregate: Aggregate,
    stop: Option<usize>,
) -> Vec<(Bytes, f64)> {
    let Some(((first, w0), rest)) = inputs.split_first() else {
        return Vec::new();
    };
    let lookups: Vec<(std::collections::HashMap<&Bytes, f64>, f64)> = rest
        .iter()
        .map(|(items, w)| (items.iter().map(|(m, s)| (m, *s)).collect(), *w))
        .collect();
    let mut out = Vec::new();
    'members: for (m, s) in first {
        let mut score = weighted(*s, *w0);
        for (lookup, w) in &lookups {
            match lookup.get(m) {
                Some(v) => aggregate.fold(&mut score, v * w),
                None => continue 'members,
            }
        }
        out.push((m.clone(), score));
        if stop.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    out
}

/// Members of the first input in none of the others, with their scores in the first.
fn diff(inputs: &[(Vec<(Bytes, f64)>, f64)]) -> Vec<(Bytes, f64)> {
    let Some(((first, _), rest)) = inputs.split_first() else {
        return Vec::new();
    };
    let others: std::collections::HashSet<&Bytes> = rest
        .iter()
        .flat_map(|(items, _)| items.iter().map(|(m, _)| m))
        .collect();
    first
        .iter()
        .filter(|(m, _)| !others.contains(m))
        .cloned()
        .collect()
}

pub fn zunionstore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    combine(ctx, args, SetOp::Union, Output::Store, "zunionstore")
}

pub fn zinterstore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    combine(ctx, args, SetOp::Inter, Output::Store, "zinterstore")
}

pub fn zdiffstore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    combine(ctx, args, SetOp::Diff, Output::Store, "zdiffstore")
}

pub fn zunion(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    combine(ctx, args, SetOp::Union, Output::Reply, "zunion")
}

pub fn zinter(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    combine(ctx, args, SetOp::Inter, Output::Reply, "zinter")
}

pub fn zdiff(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    combine(ctx, args, SetOp::Diff, Output::Reply, "zdiff")
}

pub fn zintercard(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    combine(ctx, args, SetOp::Inter, Output::Cardinality, "zintercard")
}

/// ZRANDMEMBER key [count [WITHSCORES]]: a positive count gives distinct members, a negative
/// one may repeat them (and its reply is as long as asked, so it is bounded like Redis's
/// `-LONG_MAX/2` check with scores).
pub fn zrandmember(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    use rand::seq::IteratorRandom;
    use rand::Rng;
    let key = args.next()?;
    let mut count = None;
    let mut withscores = false;
    if !args.is_empty() {
        let c = crate::util::parse_i64(args.next_slice()?).ok_or_else(CmdError::not_int)?;
        if c == i64::MIN {
            return Err(CmdError::new(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ));
        }
        if !args.is_empty() {
            if args.remaining() > 1 || !args.eat("WITHSCORES") {
                return Err(CmdError::syntax());
            }
            withscores = true;
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&c) {
                return Err(CmdError::new("ERR value is out of range"));
            }
        }
        count = Some(c);
    }
    let proto = ctx.client.proto;
    read(ctx, &key, |z| {
        let mut rng = rand::thread_rng();
        let Some(count) = count else {
            return Ok(z
                .and_then(|z| z.iter().choose(&mut rng))
                .map_or(Reply::Null, |(m, _)| Reply::Bulk(m.clone())));
        };
        let Some(z) = z.filter(|z| !z.is_empty() && count != 0) else {
            return Ok(Reply::Array(Vec::new()));
        };
        let items: Vec<(Bytes, f64)> = if count > 0 {
            let mut picked: Vec<(Bytes, f64)> = z
                .iter()
                .choose_multiple(&mut rng, count as usize)
                .into_iter()
                .map(|(m, s)| (m.clone(), s))
                .collect();
            // A partial pick comes in no particular order; the whole set comes from the
            // highest score down, the order Redis's set-operation iterator walks it in.
            if picked.len() < z.len() {
                use rand::seq::SliceRandom;
                picked.shuffle(&mut rng);
            } else {
                picked.reverse();
            }
            picked
        } else {
            let all: Vec<(&Bytes, f64)> = z.iter().collect();
            let wanted = super::bounded_reply_len(count.unsigned_abs())?;
            (0..wanted)
                .map(|_| {
                    let (m, s) = all[rng.gen_range(0..all.len())];
                    (m.clone(), s)
                })
                .collect()
        };
        Ok(range_reply(items, withscores, proto))
    })?
}

pub fn zscan(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let cursor = crate::util::parse_u64(args.next_slice()?)
        .ok_or_else(|| CmdError::new("ERR invalid cursor"))?;
    let mut pattern: Option<Bytes> = None;
    let mut count = 10usize;
    while !args.is_empty() {
        match args.next_upper()?.as_str() {
            "MATCH" => pattern = Some(args.next()?),
            "COUNT" => {
                let c = args.next_i64()?;
                if c < 1 {
                    return Err(CmdError::syntax());
                }
                count = c as usize;
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    let matcher = pattern
        .as_ref()
        .map(|p| crate::store::glob::GlobPattern::new(p, false));
    read(ctx, &key, |z| {
        let Some(z) = z else {
            return Reply::Array(vec![Reply::bulk_str("0"), Reply::Array(vec![])]);
        };
        let start = cursor as usize;
        let page: Vec<(&Bytes, f64)> = z.iter().skip(start).take(count).collect();
        let next = if start + page.len() >= z.len() {
            0
        } else {
            start + page.len()
        };
        let mut items = Vec::new();
        for (m, s) in page {
            if matcher.as_ref().is_none_or(|p| p.matches(m)) {
                items.push(Reply::Bulk(m.clone()));
                items.push(Reply::Bulk(Bytes::from(crate::util::format_f64_g17(s))));
            }
        }
        Reply::Array(vec![
            Reply::Bulk(Bytes::from(next.to_string())),
            Reply::Array(items),
        ])
    })
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: ZMPOP, blocking while every
/// key is empty.
pub fn bzmpop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::blocking::block_mpop(ctx, args, "ZMPOP", zmpop)
}
