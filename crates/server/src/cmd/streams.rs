//! Stream commands (XADD … XAUTOCLAIM), with Redis 7.0's replies, error texts and consumer
//! group bookkeeping (pending entries lists, `entries-read`, `lag`).
//!
//! XREAD and XREADGROUP with BLOCK wait through [`super::blocking`]: the wait retries the same
//! read without BLOCK (and with `$` resolved to the id it stood for), which is also what the
//! append-only file logs. Commands that read the clock (`*` ids, delivery and seen times) are
//! deterministic given the time the AOF records with them, so they replay as they ran.

use super::blocking::{self, Blocking};
use super::{own, typed, typed_mut, Args, CmdError, CmdResult, Ctx};
use crate::notify;
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::stream::{Fields, Group, Stream, StreamId, Trim, ENTRIES_READ_UNKNOWN};
use crate::store::{Entry, Shard, Value};
use bytes::Bytes;

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const XADD_ID_TOO_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
const KEY_MUST_EXIST: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";

fn stream_in<'s>(shard: &'s Shard, key: &[u8], now: u64) -> Result<Option<&'s Stream>, CmdError> {
    typed(shard, key, now)
}

fn stream_mut<'s>(
    shard: &'s mut Shard,
    key: &Bytes,
    now: u64,
) -> Result<Option<&'s mut Stream>, CmdError> {
    typed_mut(shard, key, now, false)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn no_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::new(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        text(key),
        text(group)
    ))
}

fn no_group_to_read(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::new(format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        text(key),
        text(group)
    ))
}

fn no_group_for_key(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::new(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        text(group),
        text(key)
    ))
}

// ------------------------------------------------------------------ id parsing

/// Redis's string2ull: a canonical integer, or what C's strtoull accepts (leading blanks, a
/// sign, digits to the end; a minus sign wraps around, as strtoull does).
fn parse_u64_redis(b: &[u8]) -> Option<u64> {
    if let Some(v) = crate::util::parse_i64(b) {
        return u64::try_from(v).ok();
    }
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let negative = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = &b[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if negative { v.wrapping_neg() } else { v })
}

/// Parses `ms[-seq]` (and `-` / `+` unless `strict`); a missing sequence is `missing_seq`.
/// With `allow_auto_seq`, `ms-*` parses and the second value says whether a sequence was
/// given.
fn parse_id_ext(
    b: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_auto_seq: bool,
) -> Result<(StreamId, bool), CmdError> {
    let invalid = || CmdError::new(INVALID_ID);
    if b.len() > 127 {
        return Err(invalid());
    }
    match b {
        b"-" if !strict => return Ok((StreamId::MIN, true)),
        b"+" if !strict => return Ok((StreamId::MAX, true)),
        b"-" | b"+" => return Err(invalid()),
        _ => {}
    }
    match b.iter().position(|&c| c == b'-') {
        None => Ok((
            StreamId::new(parse_u64_redis(b).ok_or_else(invalid)?, missing_seq),
            true,
        )),
        Some(dash) => {
            let ms = parse_u64_redis(&b[..dash]).ok_or_else(invalid)?;
            let rest = &b[dash + 1..];
            if allow_auto_seq && rest == b"*" {
                return Ok((StreamId::new(ms, 0), false));
            }
            Ok((
                StreamId::new(ms, parse_u64_redis(rest).ok_or_else(invalid)?),
                true,
            ))
        }
    }
}

fn parse_id(b: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
    parse_id_ext(b, missing_seq, false, false).map(|(id, _)| id)
}

fn parse_strict_id(b: &[u8]) -> Result<StreamId, CmdError> {
    parse_id_ext(b, 0, true, false).map(|(id, _)| id)
}

/// A range bound: `-`, `+`, `ms[-seq]` or an exclusive `(ms[-seq]`.
fn parse_interval(b: &[u8], missing_seq: u64) -> Result<(StreamId, bool), CmdError> {
    if b.len() > 1 && b[0] == b'(' {
        Ok((parse_id_ext(&b[1..], missing_seq, true, false)?.0, true))
    } else {
        Ok((parse_id(b, missing_seq)?, false))
    }
}

fn range_start(b: &[u8]) -> Result<StreamId, CmdError> {
    match parse_interval(b, 0)? {
        (id, false) => Ok(id),
        (id, true) => id
            .next()
            .ok_or_else(|| CmdError::new("ERR invalid start ID for the interval")),
    }
}

fn range_end(b: &[u8]) -> Result<StreamId, CmdError> {
    match parse_interval(b, u64::MAX)? {
        (id, false) => Ok(id),
        (id, true) => id
            .prev()
            .ok_or_else(|| CmdError::new("ERR invalid end ID for the interval")),
    }
}

fn parse_i64_or(b: &[u8], msg: &str) -> Result<i64, CmdError> {
    crate::util::parse_i64(b).ok_or_else(|| CmdError::new(msg))
}

// ------------------------------------------------------------------ replies

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}

fn entry_reply(id: StreamId, fields: &Fields) -> Reply {
    Reply::Array(vec![
        id_reply(id),
        Reply::Array(fields.iter().map(|f| Reply::Bulk(f.clone())).collect()),
    ])
}

fn opt_entry_reply(e: Option<(StreamId, &Fields)>) -> Reply {
    e.map_or(Reply::Null, |(id, f)| entry_reply(id, f))
}

fn kv(k: &str, v: Reply) -> (Reply, Reply) {
    (Reply::bulk_str(k), v)
}

// ------------------------------------------------------------------ XADD / XTRIM

/// Trimming options shared by XADD and XTRIM.
struct TrimArgs {
    how: Option<Trim>,
    approx: bool,
    limit: u64,
}

/// Parses options from `argv[i..]` as Redis's streamParseAddOrTrimArgsOrReply does. For XADD
/// it stops at the id (returning its index and the parsed id); for XTRIM it consumes all.
#[allow(clippy::type_complexity)]
fn parse_trim_args(
    argv: &[Bytes],
    xadd: bool,
) -> Result<(TrimArgs, bool, usize, Option<(StreamId, bool)>), CmdError> {
    let mut t = TrimArgs {
        how: None,
        approx: false,
        limit: 0,
    };
    let mut nomkstream = false;
    let mut limit_given = None;
    let mut i = 0;
    let mut id = None;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = &argv[i];
        if xadd && opt.as_ref() == b"*" {
            break;
        } else if (opt.eq_ignore_ascii_case(b"MAXLEN") || opt.eq_ignore_ascii_case(b"MINID"))
            && more > 0
        {
            if t.how.is_some() {
                return Err(CmdError::new(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            t.approx = false;
            let next = &argv[i + 1];
            if more >= 2 && next.as_ref() == b"~" {
                t.approx = true;
                i += 1;
            } else if more >= 2 && next.as_ref() == b"=" {
                i += 1;
            }
            let threshold = &argv[i + 1];
            t.how = Some(if opt.eq_ignore_ascii_case(b"MAXLEN") {
                let n = crate::util::parse_i64(threshold).ok_or_else(CmdError::not_int)?;
                if n < 0 {
                    return Err(CmdError::new("ERR The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(parse_strict_id(threshold)?)
            });
            i += 1;
        } else if opt.eq_ignore_ascii_case(b"LIMIT") && more > 0 {
            let n = crate::util::parse_i64(&argv[i + 1]).ok_or_else(CmdError::not_int)?;
            if n < 0 {
                return Err(CmdError::new("ERR The LIMIT argument must be >= 0."));
            }
            limit_given = Some(n as u64);
            i += 1;
        } else if xadd && opt.eq_ignore_ascii_case(b"NOMKSTREAM") {
            nomkstream = true;
        } else if xadd {
            id = Some(parse_id_ext(opt, 0, true, true)?);
            break;
        } else {
            return Err(CmdError::syntax());
        }
        i += 1;
    }
    if limit_given.is_some_and(|l| l > 0) && t.how.is_none() {
        return Err(CmdError::new(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && t.how.is_none() {
        return Err(CmdError::new(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    match limit_given {
        Some(_) if !t.approx => {
            return Err(CmdError::new(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ))
        }
        Some(l) => t.limit = l,
        None if t.approx => t.limit = crate::store::stream::default_trim_limit(),
        None => t.limit = 0,
    }
    Ok((t, nomkstream, i, id))
}

pub fn xadd(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    crate::audit::refuse_client_write(ctx.server, &key)?;
    let argv = args.rest();
    let (trim, nomkstream, idpos, given) = parse_trim_args(&argv, true)?;
    let fields = &argv[(idpos + 1).min(argv.len())..];
    if idpos >= argv.len() || fields.len() < 2 || !fields.len().is_multiple_of(2) {
        return Err(CmdError::new(
            "ERR wrong number of arguments for 'xadd' command",
        ));
    }
    if let Some((id, true)) = given {
        if id.is_zero() {
            return Err(CmdError::new(
                "ERR The ID specified in XADD must be greater than 0-0",
            ));
        }
    }
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    stream_in(&shard, &key, now)?;
    if shard.get(&key, now).is_none() {
        if nomkstream {
            return Ok(Reply::Null);
        }
        shard.insert(
            own(key.clone()),
            Entry::new(Value::Stream(Box::default())),
            now,
        );
    }
    let s = stream_mut(&mut shard, &key, now)?.expect("created");
    if s.last_id == StreamId::MAX {
        return Err(CmdError::new(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    let id = match given {
        None => s.next_auto_id(now),
        Some((id, true)) => Some(id),
        Some((id, false)) if id.ms == s.last_id.ms => {
            if s.last_id.seq == u64::MAX {
                return Err(CmdError::new("ERR Elements are too large to be stored"));
            }
            Some(StreamId::new(id.ms, s.last_id.seq + 1))
        }
        Some((id, false)) => Some(id),
    };
    let id = match id {
        Some(id) if id > s.last_id => id,
        _ => return Err(CmdError::new(XADD_ID_TOO_SMALL)),
    };
    let fields: Fields = fields.iter().cloned().map(own).collect();
    s.append(id, fields);
    let trimmed = match trim.how {
        Some(how) => s.trim(how, trim.approx, trim.limit),
        None => 0,
    };
    ctx.notify(notify::STREAM, "xadd", &key);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", &key);
    }
    ctx.dirty(1);
    Ok(id_reply(id))
}

pub fn xtrim(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    crate::audit::refuse_client_write(ctx.server, &key)?;
    let argv = args.rest();
    let (trim, ..) = parse_trim_args(&argv, false)?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(s) = stream_mut(&mut shard, &key, now)? else {
        return Ok(Reply::Int(0));
    };
    let deleted = s.trim(trim.how.expect("strategy"), trim.approx, trim.limit);
    if deleted > 0 {
        ctx.notify(notify::STREAM, "xtrim", &key);
    }
    ctx.dirty(deleted);
    Ok(Reply::Int(deleted as i64))
}

pub fn xdel(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    crate::audit::refuse_client_write(ctx.server, &key)?;
    let raw = args.rest();
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(s) = stream_mut(&mut shard, &key, now)? else {
        return Ok(Reply::Int(0));
    };
    let ids = raw
        .iter()
        .map(|b| parse_strict_id(b))
        .collect::<Result<Vec<_>, _>>()?;
    let deleted = s.delete(&ids);
    if deleted > 0 {
        ctx.notify(notify::STREAM, "xdel", &key);
    }
    ctx.dirty(deleted as u64);
    Ok(Reply::Int(deleted as i64))
}

pub fn xlen(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let now = ctx.now();
    let shard = ctx.db().read(&key);
    Ok(Reply::Int(
        stream_in(&shard, &key, now)?.map_or(0, |s| s.len() as i64),
    ))
}

// ------------------------------------------------------------------ XRANGE / XREVRANGE

fn range_cmd(ctx: &mut Ctx, args: &mut Args, rev: bool) -> CmdResult {
    let key = args.next()?;
    let a = args.next()?;
    let b = args.next()?;
    let (start_arg, end_arg) = if rev { (b, a) } else { (a, b) };
    let start = range_start(&start_arg)?;
    let end = range_end(&end_arg)?;
    let mut count: i64 = -1;
    while !args.is_empty() {
        if args.eat("COUNT") && args.remaining() >= 1 {
            count = args.next_i64()?.max(0);
        } else {
            return Err(CmdError::syntax());
        }
    }
    let now = ctx.now();
    let shard = ctx.db().read(&key);
    let Some(s) = stream_in(&shard, &key, now)? else {
        return Ok(Reply::Array(vec![]));
    };
    if count == 0 {
        return Ok(Reply::NullArray);
    }
    let limit = if count < 0 {
        usize::MAX
    } else {
        count as usize
    };
    Ok(Reply::Array(
        s.range(start, end, rev)
            .take(limit)
            .map(|(id, f)| entry_reply(id, f))
            .collect(),
    ))
}

pub fn xrange(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    range_cmd(ctx, args, false)
}

pub fn xrevrange(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    range_cmd(ctx, args, true)
}

// ------------------------------------------------------------------ XREAD / XREADGROUP

/// What a read asks for on one stream.
#[derive(Clone, Copy)]
enum ReadFrom {
    /// Entries after this id.
    After(StreamId),
    /// XREADGROUP's `>`: entries never delivered to the group.
    New,
}

struct ReadArgs {
    count: usize,
    block_ms: Option<u64>,
    noack: bool,
    group: Option<(Bytes, Bytes)>,
    keys: Vec<Bytes>,
    ids: Vec<Bytes>,
}

fn parse_read_args(args: &mut Args, xreadgroup: bool) -> Result<ReadArgs, CmdError> {
    let argv = args.rest();
    let mut r = ReadArgs {
        count: 0,
        block_ms: None,
        noack: false,
        group: None,
        keys: vec![],
        ids: vec![],
    };
    let mut streams_at = None;
    let mut i = 0;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let o = &argv[i];
        if o.eq_ignore_ascii_case(b"BLOCK") && more > 0 {
            i += 1;
            let t = parse_i64_or(&argv[i], "ERR timeout is not an integer or out of range")?;
            if t < 0 {
                return Err(CmdError::new("ERR timeout is negative"));
            }
            r.block_ms = Some(t as u64);
        } else if o.eq_ignore_ascii_case(b"COUNT") && more > 0 {
            i += 1;
            r.count = crate::util::parse_i64(&argv[i])
                .ok_or_else(CmdError::not_int)?
                .max(0) as usize;
        } else if o.eq_ignore_ascii_case(b"STREAMS") && more > 0 {
            let n = argv.len() - i - 1;
            if !n.is_multiple_of(2) {
                return Err(CmdError::new(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            streams_at = Some(i + 1);
            break;
        } else if o.eq_ignore_ascii_case(b"GROUP") && more >= 2 {
            if !xreadgroup {
                return Err(CmdError::new(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.group = Some((argv[i + 1].clone(), argv[i + 2].clone()));
            i += 2;
        } else if o.eq_ignore_ascii_case(b"NOACK") {
            if !xreadgroup {
                return Err(CmdError::new(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.noack = true;
        } else {
            return Err(CmdError::syntax());
        }
        i += 1;
    }
    let Some(at) = streams_at else {
        return Err(CmdError::syntax());
    };
    if xreadgroup && r.group.is_none() {
        return Err(CmdError::new("ERR Missing GROUP option for XREADGROUP"));
    }
    let n = (argv.len() - at) / 2;
    r.keys = argv[at..at + n].to_vec();
    r.ids = argv[at + n..].to_vec();
    Ok(r)
}

/// Resolves each stream's id (`$`, `>`, an id), checking types and groups first, as Redis
/// does before serving anything.
fn resolve_ids(ctx: &Ctx, r: &ReadArgs) -> Result<Vec<ReadFrom>, CmdError> {
    let now = ctx.now();
    let mut out = Vec::with_capacity(r.keys.len());
    for (key, id) in r.keys.iter().zip(&r.ids) {
        let shard = ctx.db().read(key);
        let s = stream_in(&shard, key, now)?;
        if let Some((group, _)) = &r.group {
            if !s.is_some_and(|s| s.groups.contains_key(group)) {
                return Err(no_group_to_read(key, group));
            }
        }
        let from = match id.as_ref() {
            b"$" => {
                if r.group.is_some() {
                    return Err(CmdError::new(
                        "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                    ));
                }
                ReadFrom::After(s.map_or(StreamId::MIN, |s| s.last_id))
            }
            b">" => {
                if r.group.is_none() {
                    return Err(CmdError::new(
                        "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                    ));
                }
                ReadFrom::New
            }
            other => ReadFrom::After(parse_strict_id(other)?),
        };
        out.push(from);
    }
    Ok(out)
}

/// Whether `group` of `s` has `consumer` (a command that creates it announces it).
fn has_consumer(s: &Stream, group: &Bytes, consumer: &Bytes) -> bool {
    s.groups
        .get(group)
        .is_some_and(|g| g.consumers.contains_key(consumer))
}

/// Serves one stream of an XREADGROUP; `None` when there is nothing to serve (only possible
/// for `>`).
fn serve_group(
    s: &mut Stream,
    group_name: &Bytes,
    consumer: &Bytes,
    from: ReadFrom,
    count: usize,
    noack: bool,
    now: u64,
) -> Option<Vec<Reply>> {
    let limit = if count == 0 { usize::MAX } else { count };
    match from {
        ReadFrom::After(after) => {
            // History: this consumer's pending entries after `after`.
            let g = s.groups.get_mut(group_name).expect("group");
            g.touch_consumer(consumer, now);
            let Some(start) = after.next() else {
                return Some(vec![]);
            };
            let ids: Vec<StreamId> = g.consumers[consumer]
                .pending
                .range(start..)
                .take(limit)
                .copied()
                .collect();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                match s.get(id) {
                    Some(f) => {
                        out.push(entry_reply(id, f));
                        let p = s
                            .groups
                            .get_mut(group_name)
                            .and_then(|g| g.pel.get_mut(&id))
                            .expect("pending");
                        p.delivery_time = now;
                        p.delivery_count += 1;
                    }
                    None => out.push(Reply::Array(vec![id_reply(id), Reply::NullArray])),
                }
            }
            Some(out)
        }
        ReadFrom::New => {
            let last = s.groups[group_name].last_id;
            let ids: Vec<StreamId> = s.after(last, limit).map(|(id, _)| id).collect();
            if ids.is_empty() {
                return None;
            }
            s.groups
                .get_mut(group_name)
                .expect("group")
                .touch_consumer(consumer, now);
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                s.advance_group(group_name, id);
                out.push(entry_reply(id, s.get(id).expect("entry")));
                if !noack {
                    let g = s.groups.get_mut(group_name).expect("group");
                    g.assign(id, consumer, now, 1);
                }
            }
            Some(out)
        }
    }
}

fn read_reply(served: Vec<(Bytes, Vec<Reply>)>) -> Reply {
    if served.is_empty() {
        return Reply::NullArray;
    }
    // A map of key → entries in RESP3, an array of [key, entries] in RESP2.
    Reply::Pairs(
        served
            .into_iter()
            .map(|(k, e)| (Reply::Bulk(k), Reply::Array(e)))
            .collect(),
    )
}

fn xread_inner(ctx: &mut Ctx, r: &ReadArgs, from: &[ReadFrom]) -> CmdResult {
    let now = ctx.now();
    let mut served = vec![];
    let mut changed = 0u64;
    for (key, &from) in r.keys.iter().zip(from) {
        match &r.group {
            None => {
                let shard = ctx.db().read(key);
                let Some(s) = stream_in(&shard, key, now)? else {
                    continue;
                };
                let ReadFrom::After(after) = from else {
                    continue;
                };
                let limit = if r.count == 0 { usize::MAX } else { r.count };
                let entries: Vec<Reply> = s
                    .after(after, limit)
                    .map(|(id, f)| entry_reply(id, f))
                    .collect();
                if !entries.is_empty() {
                    served.push((key.clone(), entries));
                }
            }
            Some((group, consumer)) => {
                let mut shard = ctx.db().write(key);
                let s = stream_mut(&mut shard, key, now)?
                    .filter(|s| s.groups.contains_key(group))
                    .ok_or_else(|| no_group_to_read(key, group))?;
                let had_consumer = has_consumer(s, group, consumer);
                let entries = serve_group(s, group, consumer, from, r.count, r.noack, now);
                if !had_consumer && has_consumer(s, group, consumer) {
                    ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
                }
                if let Some(entries) = entries {
                    changed += 1;
                    served.push((key.clone(), entries));
                }
            }
        }
    }
    ctx.dirty(changed);
    Ok(read_reply(served))
}

/// The blocking form's retry: the same read without BLOCK, ids resolved.
fn attempt_argv(name: &'static str, r: &ReadArgs, from: &[ReadFrom]) -> Vec<Bytes> {
    let mut v = vec![Bytes::from_static(name.as_bytes())];
    if let Some((g, c)) = &r.group {
        v.extend([Bytes::from_static(b"GROUP"), g.clone(), c.clone()]);
    }
    if r.count > 0 {
        v.extend([
            Bytes::from_static(b"COUNT"),
            Bytes::from(r.count.to_string()),
        ]);
    }
    if r.noack {
        v.push(Bytes::from_static(b"NOACK"));
    }
    v.push(Bytes::from_static(b"STREAMS"));
    v.extend(r.keys.iter().cloned());
    for f in from {
        v.push(match f {
            ReadFrom::After(id) => id.to_bytes(),
            ReadFrom::New => Bytes::from_static(b">"),
        });
    }
    v
}

fn read_cmd(ctx: &mut Ctx, args: &mut Args, grouped: bool) -> CmdResult {
    let r = parse_read_args(args, grouped)?;
    let from = resolve_ids(ctx, &r)?;
    // A history read (an explicit id in XREADGROUP) always answers at once.
    let history = r.group.is_some() && from.iter().any(|f| matches!(f, ReadFrom::After(_)));
    match r.block_ms {
        Some(timeout_ms) if !history => {
            let (name, handler): (&'static str, super::Handler) = if grouped {
                ("XREADGROUP", xreadgroup)
            } else {
                ("XREAD", xread)
            };
            let attempt = attempt_argv(name, &r, &from);
            blocking::block(
                ctx,
                Blocking {
                    keys: r.keys.clone(),
                    timeout_ms,
                    attempt,
                    handler,
                    shape: |r| r,
                    timed_out: Reply::NullArray,
                    on_error: Some(if grouped {
                        group_wait_failed
                    } else {
                        read_wait_failed
                    }),
                },
            )
        }
        _ => xread_inner(ctx, &r, &from),
    }
}

/// A blocked XREAD ignores its key turning into another type (a later XADD may still serve
/// it), as Redis does.
fn read_wait_failed(_: &Server, _: usize, _: &[Bytes], _: Reply) -> Option<Reply> {
    None
}

/// A blocked XREADGROUP whose stream or group went away gets Redis's texts for each case.
fn group_wait_failed(server: &Server, db: usize, keys: &[Bytes], _: Reply) -> Option<Reply> {
    let now = crate::util::now_ms();
    let gone = keys.iter().any(|k| {
        let shard = server.store.db(db).read(k);
        !matches!(stream_in(&shard, k, now), Ok(Some(_)))
    });
    Some(Reply::err(if gone {
        "UNBLOCKED the stream key no longer exists"
    } else {
        "NOGROUP the consumer group this client was blocked on no longer exists"
    }))
}

pub fn xread(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    read_cmd(ctx, args, false)
}

pub fn xreadgroup(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    read_cmd(ctx, args, true)
}

// ------------------------------------------------------------------ XACK / XPENDING

pub fn xack(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let group = args.next()?;
    let raw = args.rest();
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(s) = stream_mut(&mut shard, &key, now)? else {
        return Ok(Reply::Int(0));
    };
    let Some(g) = s.groups.get_mut(&group) else {
        return Ok(Reply::Int(0));
    };
    let ids = raw
        .iter()
        .map(|b| parse_strict_id(b))
        .collect::<Result<Vec<_>, _>>()?;
    let acked = ids.into_iter().filter(|id| g.ack(*id)).count();
    ctx.dirty(acked as u64);
    Ok(Reply::Int(acked as i64))
}

pub fn xpending(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let group = args.next()?;
    let rest = args.rest();
    let argc = rest.len() + 3;
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(CmdError::syntax());
    }
    struct Extended {
        start: StreamId,
        end: StreamId,
        count: usize,
        min_idle: i64,
        consumer: Option<Bytes>,
    }
    let mut ext = None;
    if argc >= 6 {
        let mut at = 0;
        let mut min_idle = 0;
        if rest[0].eq_ignore_ascii_case(b"IDLE") {
            min_idle = crate::util::parse_i64(&rest[1]).ok_or_else(CmdError::not_int)?;
            if argc < 8 {
                return Err(CmdError::syntax());
            }
            at = 2;
        }
        let count = crate::util::parse_i64(&rest[at + 2])
            .ok_or_else(CmdError::not_int)?
            .max(0) as usize;
        let start = range_start(&rest[at])?;
        let end = range_end(&rest[at + 1])?;
        let consumer = rest.get(at + 3).cloned();
        if rest.len() > at + 4 {
            return Err(CmdError::syntax());
        }
        ext = Some(Extended {
            start,
            end,
            count,
            min_idle,
            consumer,
        });
    }
    let now = ctx.now();
    let shard = ctx.db().read(&key);
    let g = stream_in(&shard, &key, now)?
        .and_then(|s| s.groups.get(&group))
        .ok_or_else(|| no_group(&key, &group))?;
    let Some(x) = ext else {
        if g.pel.is_empty() {
            return Ok(Reply::Array(vec![
                Reply::Int(0),
                Reply::Null,
                Reply::Null,
                Reply::NullArray,
            ]));
        }
        let first = *g.pel.keys().next().expect("pending");
        let last = *g.pel.keys().next_back().expect("pending");
        let consumers = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .map(|(n, c)| {
                Reply::Array(vec![
                    Reply::Bulk(n.clone()),
                    Reply::bulk(c.pending.len().to_string()),
                ])
            })
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Int(g.pel.len() as i64),
            id_reply(first),
            id_reply(last),
            Reply::Array(consumers),
        ]));
    };
    let ids: Box<dyn Iterator<Item = StreamId>> = match &x.consumer {
        Some(c) => match g.consumers.get(c) {
            None => return Ok(Reply::Array(vec![])),
            Some(c) if x.start <= x.end => Box::new(c.pending.range(x.start..=x.end).copied()),
            Some(_) => Box::new(std::iter::empty()),
        },
        None if x.start <= x.end => Box::new(g.pel.range(x.start..=x.end).map(|(k, _)| *k)),
        None => Box::new(std::iter::empty()),
    };
    let mut out = vec![];
    for id in ids {
        if out.len() >= x.count {
            break;
        }
        let p = &g.pel[&id];
        let idle = now as i64 - p.delivery_time as i64;
        if x.min_idle != 0 && idle < x.min_idle {
            continue;
        }
        out.push(Reply::Array(vec![
            id_reply(id),
            Reply::Bulk(p.consumer.clone()),
            Reply::Int(idle.max(0)),
            Reply::Int(p.delivery_count as i64),
        ]));
    }
    Ok(Reply::Array(out))
}

// ------------------------------------------------------------------ XCLAIM / XAUTOCLAIM

/// The stream at `key` for a command on its group `group` (XCLAIM, XAUTOCLAIM): NOGROUP when
/// either is missing.
fn stream_with_group<'s>(
    shard: &'s mut Shard,
    key: &Bytes,
    group: &Bytes,
    now: u64,
) -> Result<&'s mut Stream, CmdError> {
    stream_mut(shard, key, now)?
        .filter(|s| s.groups.contains_key(group))
        .ok_or_else(|| no_group(key, group))
}

/// Moves pending entries to one consumer, as XCLAIM and XAUTOCLAIM do: the consumer is
/// created by its first claim, and each claim answers with the entry or, with JUSTID, its id.
struct Claim<'a> {
    group: &'a Bytes,
    consumer: &'a Bytes,
    justid: bool,
    now: u64,
    consumer_ready: bool,
}

impl<'a> Claim<'a> {
    fn new(group: &'a Bytes, consumer: &'a Bytes, justid: bool, now: u64) -> Self {
        Claim {
            group,
            consumer,
            justid,
            now,
            consumer_ready: false,
        }
    }

    /// Gives live pending entry `id` to the consumer with this delivery time and count.
    fn claim(&mut self, s: &mut Stream, id: StreamId, delivery_time: u64, count: u64) -> Reply {
        let g = s.groups.get_mut(self.group).expect("checked");
        if !self.consumer_ready {
            g.touch_consumer(self.consumer, self.now);
            self.consumer_ready = true;
        }
        g.assign(id, self.consumer, delivery_time, count);
        if self.justid {
            id_reply(id)
        } else {
            entry_reply(id, s.get(id).expect("alive"))
        }
    }

    /// Drops a pending entry whose stream entry was deleted; true if there was one.
    fn drop_deleted(&self, s: &mut Stream, id: StreamId) -> bool {
        s.groups.get_mut(self.group).expect("checked").ack(id)
    }
}

pub fn xclaim(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let group = args.next()?;
    let consumer = args.next()?;
    let rest = args.rest();
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let s = stream_with_group(&mut shard, &key, &group, now)?;
    let min_idle = parse_i64_or(&rest[0], "ERR Invalid min-idle-time argument for XCLAIM")?.max(0);
    // Ids until the first argument that is not one; options after.
    let ids: Vec<StreamId> = rest[1..]
        .iter()
        .map_while(|a| parse_strict_id(a).ok())
        .collect();
    let (mut force, mut justid) = (false, false);
    let mut retrycount: i64 = -1;
    let mut delivery: i64 = -1;
    let mut last_id = StreamId::MIN;
    let mut j = 1 + ids.len();
    while j < rest.len() {
        let more = rest.len() - 1 - j;
        let opt = &rest[j];
        if opt.eq_ignore_ascii_case(b"FORCE") {
            force = true;
        } else if opt.eq_ignore_ascii_case(b"JUSTID") {
            justid = true;
        } else if opt.eq_ignore_ascii_case(b"IDLE") && more > 0 {
            j += 1;
            let idle = parse_i64_or(&rest[j], "ERR Invalid IDLE option argument for XCLAIM")?;
            delivery = now as i64 - idle;
        } else if opt.eq_ignore_ascii_case(b"TIME") && more > 0 {
            j += 1;
            delivery = parse_i64_or(&rest[j], "ERR Invalid TIME option argument for XCLAIM")?;
        } else if opt.eq_ignore_ascii_case(b"RETRYCOUNT") && more > 0 {
            j += 1;
            retrycount = parse_i64_or(
                &rest[j],
                "ERR Invalid RETRYCOUNT option argument for XCLAIM",
            )?;
        } else if opt.eq_ignore_ascii_case(b"LASTID") && more > 0 {
            j += 1;
            last_id = parse_strict_id(&rest[j])?;
        } else {
            return Err(CmdError::new(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                text(opt)
            )));
        }
        j += 1;
    }
    let mut changed = 0u64;
    let g = s.groups.get_mut(&group).expect("checked");
    if last_id > g.last_id {
        g.last_id = last_id;
        changed += 1;
    }
    // A bogus IDLE or TIME (in the future, negative) means now, as in Redis.
    let delivery = if delivery < 0 || delivery > now as i64 {
        now
    } else {
        delivery as u64
    };
    let had_consumer = has_consumer(s, &group, &consumer);
    let mut claim = Claim::new(&group, &consumer, justid, now);
    let mut out = vec![];
    for id in ids {
        if !s.contains(id) {
            changed += claim.drop_deleted(s, id) as u64;
            continue;
        }
        let count = match s.groups[&group].pel.get(&id) {
            Some(p) if min_idle > 0 && (now as i64 - p.delivery_time as i64) < min_idle => continue,
            Some(p) => p.delivery_count,
            // FORCE creates the pending entry: owned by nobody yet, one delivery so far.
            None if force => 1,
            None => continue,
        };
        let count = match retrycount {
            r if r >= 0 => r as u64,
            _ if justid => count,
            _ => count + 1,
        };
        out.push(claim.claim(s, id, delivery, count));
        changed += 1;
    }
    if !had_consumer && has_consumer(s, &group, &consumer) {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", &key);
    }
    ctx.dirty(changed);
    Ok(Reply::Array(out))
}

pub fn xautoclaim(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let group = args.next()?;
    let consumer = args.next()?;
    let min_idle = parse_i64_or(
        args.next_slice()?,
        "ERR Invalid min-idle-time argument for XAUTOCLAIM",
    )?
    .max(0);
    let start = range_start(args.next_slice()?)?;
    let mut count: u64 = 100;
    let mut justid = false;
    while !args.is_empty() {
        if args.remaining() >= 2 && args.eat("COUNT") {
            let max = (i64::MAX / 16) as u64;
            count = crate::util::parse_i64(args.next_slice()?)
                .filter(|&c| c >= 1 && c as u64 <= max)
                .ok_or_else(|| CmdError::new("ERR COUNT must be > 0"))? as u64;
        } else if args.eat("JUSTID") {
            justid = true;
        } else {
            return Err(CmdError::syntax());
        }
    }
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let s = stream_with_group(&mut shard, &key, &group, now)?;
    let had_consumer = has_consumer(s, &group, &consumer);
    let mut claim = Claim::new(&group, &consumer, justid, now);
    // Redis looks at up to ten pending entries per entry it may claim.
    let mut attempts = count * 10;
    let (mut claimed, mut deleted) = (vec![], vec![]);
    let mut changed = 0u64;
    let mut last_seen = None;
    let next = loop {
        use std::ops::Bound::{Excluded, Unbounded};
        let pel = &s.groups[&group].pel;
        let candidate = match last_seen {
            None => pel.range(start..).next(),
            Some(seen) => pel.range((Excluded(seen), Unbounded)).next(),
        };
        let Some((&id, p)) = candidate else {
            break StreamId::MIN;
        };
        if attempts == 0 || count == 0 {
            break id;
        }
        attempts -= 1;
        last_seen = Some(id);
        let (idle, delivered) = (now as i64 - p.delivery_time as i64, p.delivery_count);
        if !s.contains(id) {
            claim.drop_deleted(s, id);
            deleted.push(id_reply(id));
            changed += 1;
            count -= 1;
        } else if min_idle == 0 || idle >= min_idle {
            let delivered = if justid { delivered } else { delivered + 1 };
            claimed.push(claim.claim(s, id, now, delivered));
            changed += 1;
            count -= 1;
        }
    };
    if !had_consumer && has_consumer(s, &group, &consumer) {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", &key);
    }
    ctx.dirty(changed);
    Ok(Reply::Array(vec![
        id_reply(next),
        Reply::Array(claimed),
        Reply::Array(deleted),
    ]))
}

// ------------------------------------------------------------------ XGROUP

fn subcommand_error(sub: &[u8], container: &str) -> CmdError {
    CmdError::new(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {container} HELP.",
        text(sub)
    ))
}

/// Reads `ENTRIESREAD n` (and, for CREATE, `MKSTREAM`) after the id.
fn group_options(args: &mut Args, create: bool, sub: &[u8]) -> Result<(bool, i64), CmdError> {
    let mut mkstream = false;
    let mut entries_read = ENTRIES_READ_UNKNOWN;
    while !args.is_empty() {
        if create && args.eat("MKSTREAM") {
            mkstream = true;
        } else if args.remaining() >= 2 && args.eat("ENTRIESREAD") {
            entries_read = args.next_i64()?;
            if entries_read < 0 && entries_read != ENTRIES_READ_UNKNOWN {
                return Err(CmdError::new(
                    "ERR value for ENTRIESREAD must be positive or -1",
                ));
            }
        } else {
            return Err(subcommand_error(sub, "XGROUP"));
        }
    }
    Ok((mkstream, entries_read))
}

pub fn xgroup_create(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let sub = Bytes::copy_from_slice(args.request().arg(1));
    let key = args.next()?;
    let group = args.next()?;
    let id_arg = args.next()?;
    let (mkstream, entries_read) = group_options(args, true, &sub)?;
    if args.argc() > 8 {
        return Err(subcommand_error(&sub, "XGROUP"));
    }
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let existing = stream_in(&shard, &key, now)?.map(|s| s.last_id);
    if existing.is_none() && !mkstream {
        return Err(CmdError::new(KEY_MUST_EXIST));
    }
    let id = if id_arg.as_ref() == b"$" {
        existing.unwrap_or(StreamId::MIN)
    } else {
        parse_strict_id(&id_arg)?
    };
    if existing.is_none() {
        shard.insert(
            own(key.clone()),
            Entry::new(Value::Stream(Box::default())),
            now,
        );
    }
    let s = stream_mut(&mut shard, &key, now)?.expect("exists");
    if s.groups.contains_key(&group) {
        if existing.is_none() {
            ctx.dirty(1);
        }
        return Err(CmdError::new(
            "BUSYGROUP Consumer Group name already exists",
        ));
    }
    s.groups.insert(own(group), Group::new(id, entries_read));
    ctx.notify(notify::STREAM, "xgroup-create", &key);
    ctx.dirty(1);
    Ok(Reply::OK)
}

/// The stream and group an XGROUP subcommand (other than CREATE) works on.
fn group_of<'s>(
    shard: &'s mut Shard,
    key: &Bytes,
    group: &Bytes,
    now: u64,
    must_exist: bool,
) -> Result<(&'s mut Stream, bool), CmdError> {
    let s = stream_mut(shard, key, now)?.ok_or_else(|| CmdError::new(KEY_MUST_EXIST))?;
    let has = s.groups.contains_key(group);
    if must_exist && !has {
        return Err(no_group_for_key(key, group));
    }
    Ok((s, has))
}

pub fn xgroup_setid(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let sub = Bytes::copy_from_slice(args.request().arg(1));
    if args.argc() != 5 && args.argc() != 7 {
        return Err(subcommand_error(&sub, "XGROUP"));
    }
    let key = args.next()?;
    let group = args.next()?;
    let id_arg = args.next()?;
    let (_, entries_read) = group_options(args, false, &sub)?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let (s, _) = group_of(&mut shard, &key, &group, now, true)?;
    let id = if id_arg.as_ref() == b"$" {
        s.last_id
    } else {
        parse_id(&id_arg, 0)?
    };
    let g = s.groups.get_mut(&group).expect("checked");
    g.last_id = id;
    g.entries_read = entries_read;
    ctx.notify(notify::STREAM, "xgroup-setid", &key);
    ctx.dirty(1);
    Ok(Reply::OK)
}

/// XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]: sets a stream's last generated ID
/// and its counters (what replicas and AOF rewrites restore), with Redis's checks in Redis's
/// order: the arguments first, then the key.
pub fn xsetid(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let id = parse_strict_id(&args.next()?)?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::default();
    while !args.is_empty() {
        let opt = args.next_upper()?;
        let more = !args.is_empty();
        match opt.as_str() {
            "ENTRIESADDED" if more => {
                let n = args.next_i64()?;
                if n < 0 {
                    return Err(CmdError::new("ERR entries_added must be positive"));
                }
                entries_added = Some(n as u64);
            }
            "MAXDELETEDID" if more => {
                max_deleted = parse_strict_id(&args.next()?)?;
                if id < max_deleted {
                    return Err(CmdError::new("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
                }
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let Some(s) = stream_mut(&mut shard, &key, now)? else {
        return Err(CmdError::new("ERR no such key"));
    };
    if let Some((top, _)) = s.last() {
        if id < top {
            return Err(CmdError::new(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if entries_added.is_some_and(|n| (s.len() as u64) > n) {
            return Err(CmdError::new("ERR The entries_added specified in XSETID is smaller than the target stream length"));
        }
    }
    s.last_id = id;
    if let Some(n) = entries_added {
        s.entries_added = n;
    }
    if !max_deleted.is_zero() {
        s.max_deleted_id = max_deleted;
    }
    drop(shard);
    ctx.notify(notify::STREAM, "xsetid", &key);
    ctx.dirty(1);
    Ok(Reply::OK)
}

pub fn xgroup_destroy(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let group = args.next()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let (s, _) = group_of(&mut shard, &key, &group, now, false)?;
    if s.groups.remove(&group).is_some() {
        ctx.notify(notify::STREAM, "xgroup-destroy", &key);
        ctx.dirty(1);
        Ok(Reply::Int(1))
    } else {
        Ok(Reply::Int(0))
    }
}

/// CREATECONSUMER / DELCONSUMER: `change` returns the reply's number, or `None` when it
/// changed nothing (the reply is then 0).
fn change_consumer(
    ctx: &mut Ctx,
    args: &mut Args,
    event: &str,
    change: fn(&mut Group, Bytes, u64) -> Option<i64>,
) -> CmdResult {
    let key = args.next()?;
    let group = args.next()?;
    let consumer = args.next()?;
    let now = ctx.now();
    let mut shard = ctx.db().write(&key);
    let (s, _) = group_of(&mut shard, &key, &group, now, true)?;
    let g = s.groups.get_mut(&group).expect("checked");
    match change(g, consumer, now) {
        Some(n) => {
            ctx.notify(notify::STREAM, event, &key);
            ctx.dirty(1);
            Ok(Reply::Int(n))
        }
        None => Ok(Reply::Int(0)),
    }
}

pub fn xgroup_createconsumer(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    change_consumer(ctx, args, "xgroup-createconsumer", |g, consumer, now| {
        (!g.consumers.contains_key(&consumer)).then(|| {
            g.touch_consumer(&own(consumer), now);
            1
        })
    })
}

/// Answers how many pending entries the consumer had (they leave the group's list too).
pub fn xgroup_delconsumer(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    change_consumer(ctx, args, "xgroup-delconsumer", |g, consumer, _| {
        g.consumers
            .contains_key(&consumer)
            .then(|| g.remove_consumer(&consumer) as i64)
    })
}

pub fn xgroup_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(super::connection::help(
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    ))
}

// ------------------------------------------------------------------ XINFO

fn group_info(s: &Stream, name: &Bytes, g: &Group) -> Reply {
    Reply::Map(vec![
        kv("name", Reply::Bulk(name.clone())),
        kv("consumers", Reply::Int(g.consumers.len() as i64)),
        kv("pending", Reply::Int(g.pel.len() as i64)),
        kv("last-delivered-id", id_reply(g.last_id)),
        kv("entries-read", entries_read_reply(g.entries_read)),
        kv("lag", s.lag(g).map_or(Reply::Null, Reply::Int)),
    ])
}

fn entries_read_reply(n: i64) -> Reply {
    if n == ENTRIES_READ_UNKNOWN {
        Reply::Null
    } else {
        Reply::Int(n)
    }
}

pub fn xinfo_stream(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let sub = Bytes::copy_from_slice(args.request().arg(1));
    let key = args.next()?;
    let rest = args.rest();
    let now = ctx.now();
    let shard = ctx.db().read(&key);
    let s = stream_in(&shard, &key, now)?.ok_or_else(|| CmdError::new(super::NO_SUCH_KEY_ERR))?;
    let bad = || subcommand_error(&sub, "XINFO");
    let mut count = 10usize;
    let full = !rest.is_empty();
    if full {
        if !rest[0].eq_ignore_ascii_case(b"FULL") {
            return Err(bad());
        }
        match rest.len() {
            1 => {}
            3 if rest[1].eq_ignore_ascii_case(b"COUNT") => {
                count = crate::util::parse_i64(&rest[2])
                    .ok_or_else(CmdError::not_int)?
                    .max(0) as usize;
            }
            _ => return Err(bad()),
        }
    }
    let nodes = s.nodes().count() as i64;
    let mut m = vec![
        kv("length", Reply::Int(s.len() as i64)),
        kv("radix-tree-keys", Reply::Int(nodes)),
        kv("radix-tree-nodes", Reply::Int(nodes + 1)),
        kv("last-generated-id", id_reply(s.last_id)),
        kv("max-deleted-entry-id", id_reply(s.max_deleted_id)),
        kv("entries-added", Reply::Int(s.entries_added as i64)),
        kv("recorded-first-entry-id", id_reply(s.first_id)),
    ];
    if !full {
        m.push(kv("groups", Reply::Int(s.groups.len() as i64)));
        m.push(kv("first-entry", opt_entry_reply(s.first())));
        m.push(kv("last-entry", opt_entry_reply(s.last())));
        return Ok(Reply::Map(m));
    }
    let limit = if count == 0 { usize::MAX } else { count };
    m.push(kv(
        "entries",
        Reply::Array(
            s.iter()
                .take(limit)
                .map(|(id, f)| entry_reply(id, f))
                .collect(),
        ),
    ));
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| {
            let pending = g
                .pel
                .iter()
                .take(limit)
                .map(|(id, p)| {
                    Reply::Array(vec![
                        id_reply(*id),
                        Reply::Bulk(p.consumer.clone()),
                        Reply::Int(p.delivery_time as i64),
                        Reply::Int(p.delivery_count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    Reply::Map(vec![
                        kv("name", Reply::Bulk(cname.clone())),
                        kv("seen-time", Reply::Int(c.seen_time as i64)),
                        kv("pel-count", Reply::Int(c.pending.len() as i64)),
                        kv(
                            "pending",
                            Reply::Array(
                                c.pending
                                    .iter()
                                    .take(limit)
                                    .map(|id| {
                                        let p = &g.pel[id];
                                        Reply::Array(vec![
                                            id_reply(*id),
                                            Reply::Int(p.delivery_time as i64),
                                            Reply::Int(p.delivery_count as i64),
                                        ])
                                    })
                                    .collect(),
                            ),
                        ),
                    ])
                })
                .collect();
            Reply::Map(vec![
                kv("name", Reply::Bulk(name.clone())),
                kv("last-delivered-id", id_reply(g.last_id)),
                kv("entries-read", entries_read_reply(g.entries_read)),
                kv("lag", s.lag(g).map_or(Reply::Null, Reply::Int)),
                kv("pel-count", Reply::Int(g.pel.len() as i64)),
                kv("pending", Reply::Array(pending)),
                kv("consumers", Reply::Array(consumers)),
            ])
        })
        .collect();
    m.push(kv("groups", Reply::Array(groups)));
    Ok(Reply::Map(m))
}

pub fn xinfo_groups(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let now = ctx.now();
    let shard = ctx.db().read(&key);
    let s = stream_in(&shard, &key, now)?.ok_or_else(|| CmdError::new(super::NO_SUCH_KEY_ERR))?;
    Ok(Reply::Array(
        s.groups
            .iter()
            .map(|(name, g)| group_info(s, name, g))
            .collect(),
    ))
}

pub fn xinfo_consumers(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let group = args.next()?;
    let now = ctx.now();
    let shard = ctx.db().read(&key);
    let s = stream_in(&shard, &key, now)?.ok_or_else(|| CmdError::new(super::NO_SUCH_KEY_ERR))?;
    let g = s
        .groups
        .get(&group)
        .ok_or_else(|| no_group_for_key(&key, &group))?;
    Ok(Reply::Array(
        g.consumers
            .iter()
            .map(|(name, c)| {
                Reply::Map(vec![
                    kv("name", Reply::Bulk(name.clone())),
                    kv("pending", Reply::Int(c.pending.len() as i64)),
                    kv("idle", Reply::Int((now as i64 - c.seen_time as i64).max(0))),
                ])
            })
            .collect(),
    ))
}

pub fn xinfo_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(super::connection::help(
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    ))
}
