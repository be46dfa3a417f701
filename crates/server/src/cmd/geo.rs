//! Geo commands on sorted sets whose scores are Redis's 52-bit geohashes (geo.c): GEOADD,
//! GEODIST, GEOHASH, GEOPOS, GEOSEARCH, GEOSEARCHSTORE, GEORADIUS and GEORADIUSBYMEMBER (and
//! their _RO forms), with Redis's arguments, error texts and number formats. The arithmetic is
//! in [`crate::store::geohash`].

use super::{own, typed, Args, CmdError, CmdResult, Ctx};
use crate::server::protocol::Request;
use crate::server::reply::Reply;
use crate::store::geohash::{self as core, Shape};
use crate::store::zset::ZSet;
use crate::store::{Entry, Value};
use bytes::Bytes;

const ERR_MEMBER: &str = "ERR could not decode requested zset member";

/// A coordinate as addReplyHumanLongDouble prints it.
fn human(v: f64) -> Bytes {
    Bytes::from(core::format_coord(v))
}

/// A distance as addReplyDoubleDistance prints it.
fn distance_text(d: f64) -> Bytes {
    Bytes::from(core::format_distance(d))
}

fn unit(arg: &[u8]) -> Result<f64, CmdError> {
    core::unit_factor(arg).ok_or_else(|| CmdError::new(core::UNSUPPORTED_UNIT_ERR))
}

fn double(arg: &[u8], err: Option<&str>) -> Result<f64, CmdError> {
    crate::util::parse_f64(arg).ok_or_else(|| {
        CmdError::new(err.map_or_else(
            || "ERR value is not a valid float".to_string(),
            |e| format!("ERR {e}"),
        ))
    })
}

/// extractLongLatOrReply.
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), CmdError> {
    let (x, y) = (double(lon, None)?, double(lat, None)?);
    if !(core::LON_MIN..=core::LON_MAX).contains(&x)
        || !(core::LAT_MIN..=core::LAT_MAX).contains(&y)
    {
        return Err(CmdError::new(core::invalid_lonlat_error(x, y)));
    }
    Ok((x, y))
}

/// GEOADD key [NX|XX] [CH] lon lat member …: ZADD with the encoded scores, as Redis does.
pub fn geoadd(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let argv = args.request().to_vec();
    let mut first = 2;
    let (mut nx, mut xx) = (false, false);
    while first < argv.len() {
        match argv[first].to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"CH" => {}
            _ => break,
        }
        first += 1;
    }
    if !(argv.len() - first).is_multiple_of(3) || (xx && nx) || argv.len() == first {
        return Err(CmdError::syntax());
    }
    let mut zadd: Vec<Bytes> = vec![Bytes::from_static(b"ZADD")];
    zadd.extend(argv[1..first].iter().cloned());
    for triple in argv[first..].chunks(3) {
        let (x, y) = lon_lat(&triple[0], &triple[1])?;
        let bits =
            core::encode(x, y).ok_or_else(|| CmdError::new(core::invalid_lonlat_error(x, y)))?;
        zadd.push(Bytes::from(bits.to_string()));
        zadd.push(triple[2].clone());
    }
    let mut zargs = Args::new(Request::from_args(zadd), 1);
    super::zsets::zadd(ctx, &mut zargs)
}

fn with_zset<T>(ctx: &Ctx, key: &[u8], f: impl FnOnce(Option<&ZSet>) -> T) -> Result<T, CmdError> {
    let shard = ctx.db().read(key);
    let z = typed::<ZSet>(&shard, key, ctx.now())?;
    Ok(f(z))
}

/// One reply per member named after the key: `found` of its decoded position, or `missing`.
fn per_member(
    ctx: &mut Ctx,
    args: &mut Args,
    found: impl Fn(f64, f64) -> Reply,
    missing: Reply,
) -> CmdResult {
    let key = args.next()?;
    let members = args.rest();
    with_zset(ctx, &key, |z| {
        Reply::Array(
            members
                .iter()
                .map(|m| match z.and_then(|z| z.score(m)) {
                    Some(score) => {
                        let (x, y) = core::decode_score(score);
                        found(x, y)
                    }
                    None => missing.clone(),
                })
                .collect(),
        )
    })
}

pub fn geopos(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    per_member(
        ctx,
        args,
        |x, y| {
            Reply::Array(vec![
                Reply::HumanDouble(human(x)),
                Reply::HumanDouble(human(y)),
            ])
        },
        Reply::NullArray,
    )
}

pub fn geohash(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    per_member(
        ctx,
        args,
        |x, y| Reply::Bulk(Bytes::from(core::geohash_string(x, y))),
        Reply::Null,
    )
}

pub fn geodist(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let (a, b) = (args.next()?, args.next()?);
    let to_meter = match args.argc() {
        4 => 1.0,
        5 => unit(&args.next()?)?,
        _ => return Err(CmdError::syntax()),
    };
    with_zset(ctx, &key, |z| {
        let (Some(sa), Some(sb)) = (z.and_then(|z| z.score(&a)), z.and_then(|z| z.score(&b)))
        else {
            return Reply::Null;
        };
        let (x1, y1) = core::decode_score(sa);
        let (x2, y2) = core::decode_score(sb);
        Reply::Bulk(distance_text(core::distance(x1, y1, x2, y2) / to_meter))
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// GEORADIUS lon lat radius unit.
    Coords,
    /// GEORADIUSBYMEMBER member radius unit.
    Member,
    /// GEOSEARCH / GEOSEARCHSTORE.
    Search,
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    None,
    Asc,
    Desc,
}

/// A match: member, distance from the centre (meters), score, position.
struct Point {
    member: Bytes,
    dist: f64,
    score: f64,
    lon: f64,
    lat: f64,
}

/// georadiusGeneric: `src` is the index of the source key; `store_ok` whether STORE and
/// STOREDIST are accepted (not for the _RO forms); `search_store` for GEOSEARCHSTORE.
fn radius_generic(
    ctx: &mut Ctx,
    args: &mut Args,
    kind: Kind,
    store_ok: bool,
    search_store: bool,
) -> CmdResult {
    let argv = args.request().to_vec();
    let name = String::from_utf8_lossy(&argv[0]).into_owned();
    let src = if search_store { 2 } else { 1 };
    let key = argv[src].clone();
    let now = ctx.now();
    // The source is read under its shard's lock until the search is done; the store (if
    // any) is written after.
    let shard = ctx.db().read(&key);
    let zset = typed::<ZSet>(&shard, &key, now)?;
    let score_of = |m: &[u8]| -> Option<f64> { zset.and_then(|z| z.score(m)) };
    let mut center = (0.0, 0.0);
    let mut shape: Option<Shape> = None;
    let mut conversion = 1.0;
    let base = match kind {
        Kind::Coords => {
            center = lon_lat(&argv[2], &argv[3])?;
            let r = double(&argv[4], Some("need numeric radius"))?;
            if r < 0.0 {
                return Err(CmdError::new("ERR radius cannot be negative"));
            }
            conversion = unit(&argv[5])?;
            shape = Some(Shape::Radius(r * conversion));
            6
        }
        Kind::Member => {
            if zset.is_some() {
                let s = score_of(&argv[2]).ok_or_else(|| CmdError::new(ERR_MEMBER))?;
                center = core::decode_score(s);
                let r = double(&argv[3], Some("need numeric radius"))?;
                if r < 0.0 {
                    return Err(CmdError::new("ERR radius cannot be negative"));
                }
                conversion = unit(&argv[4])?;
                shape = Some(Shape::Radius(r * conversion));
            }
            5
        }
        Kind::Search => src + 1,
    };
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut order = Order::None;
    let mut count = 0i64;
    let mut store: Option<Bytes> = search_store.then(|| argv[1].clone());
    let mut storedist = false;
    let search = kind == Kind::Search;
    let remaining = argv.len() - base;
    let mut i = 0;
    while i < remaining {
        let at = base + i;
        let arg = argv[at].to_ascii_uppercase();
        let more = |n: usize| i + n < remaining;
        match arg.as_slice() {
            b"WITHDIST" => withdist = true,
            b"WITHHASH" => withhash = true,
            b"WITHCOORD" => withcoord = true,
            b"ANY" => any = true,
            b"ASC" => order = Order::Asc,
            b"DESC" => order = Order::Desc,
            b"COUNT" if more(1) => {
                count = crate::util::parse_i64(&argv[at + 1]).ok_or_else(CmdError::not_int)?;
                if count <= 0 {
                    return Err(CmdError::new("ERR COUNT must be > 0"));
                }
                i += 1;
            }
            b"STORE" | b"STOREDIST" if more(1) && store_ok && !search => {
                store = Some(argv[at + 1].clone());
                storedist = arg == b"STOREDIST";
                i += 1;
            }
            b"STOREDIST" if search && search_store => storedist = true,
            b"FROMMEMBER" if more(1) && search && !fromloc => {
                if zset.is_some() {
                    let s = score_of(&argv[at + 1]).ok_or_else(|| CmdError::new(ERR_MEMBER))?;
                    center = core::decode_score(s);
                }
                frommember = true;
                i += 1;
            }
            b"FROMLONLAT" if more(2) && search && !frommember => {
                center = lon_lat(&argv[at + 1], &argv[at + 2])?;
                fromloc = true;
                i += 2;
            }
            b"BYRADIUS" if more(2) && search && !bybox => {
                let r = double(&argv[at + 1], Some("need numeric radius"))?;
                if r < 0.0 {
                    return Err(CmdError::new("ERR radius cannot be negative"));
                }
                conversion = unit(&argv[at + 2])?;
                shape = Some(Shape::Radius(r * conversion));
                byradius = true;
                i += 2;
            }
            b"BYBOX" if more(3) && search && !byradius => {
                let w = double(&argv[at + 1], Some("need numeric width"))?;
                let h = double(&argv[at + 2], Some("need numeric height"))?;
                if w < 0.0 || h < 0.0 {
                    return Err(CmdError::new("ERR height or width cannot be negative"));
                }
                conversion = unit(&argv[at + 3])?;
                // In the request's unit: Redis sizes the search from w and h times the unit.
                shape = Some(Shape::BoxInUnit {
                    width: w,
                    height: h,
                    unit: conversion,
                });
                bybox = true;
                i += 3;
            }
            _ => return Err(CmdError::syntax()),
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        return Err(CmdError::new(format!(
            "ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if search_store {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    if search && !(frommember || fromloc) {
        return Err(CmdError::new(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search && !(byradius || bybox) {
        return Err(CmdError::new(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(CmdError::new(
            "ERR the ANY argument requires COUNT argument",
        ));
    }
    let Some(zset) = zset else {
        drop(shard);
        return Ok(match store {
            Some(dst) => {
                if ctx.db().write(&dst).remove(&dst, now).is_some() {
                    ctx.notify(crate::notify::GENERIC, "del", &dst);
                    ctx.dirty(1);
                }
                Reply::Int(0)
            }
            None => Reply::Array(Vec::new()),
        });
    };
    let shape = shape.expect("a shape was parsed");
    if count != 0 && order == Order::None && !any {
        order = Order::Asc;
    }
    let limit = if any { count as usize } else { 0 };
    let mut found = search_points(zset, center, &shape, limit);
    drop(shard);
    match order {
        Order::Asc => found.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Order::Desc => found.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
        Order::None => {}
    }
    let returned = if count == 0 {
        found.len()
    } else {
        found.len().min(count as usize)
    };
    found.truncate(returned);
    match store {
        None => {
            let options = withdist as usize + withcoord as usize + withhash as usize;
            Ok(Reply::Array(
                found
                    .into_iter()
                    .map(|p| {
                        let member = Reply::Bulk(p.member);
                        if options == 0 {
                            return member;
                        }
                        let mut item = vec![member];
                        if withdist {
                            item.push(Reply::Bulk(distance_text(p.dist / conversion)));
                        }
                        if withhash {
                            item.push(Reply::Int(p.score as i64));
                        }
                        if withcoord {
                            item.push(Reply::Array(vec![
                                Reply::HumanDouble(human(p.lon)),
                                Reply::HumanDouble(human(p.lat)),
                            ]));
                        }
                        Reply::Array(item)
                    })
                    .collect(),
            ))
        }
        Some(dst) => {
            let mut shard = ctx.db().write(&dst);
            if returned == 0 {
                if shard.remove(&dst, now).is_some() {
                    ctx.notify(crate::notify::GENERIC, "del", &dst);
                    ctx.dirty(1);
                }
                return Ok(Reply::Int(0));
            }
            let mut z = ZSet::default();
            for p in found {
                let score = if storedist {
                    p.dist / conversion
                } else {
                    p.score
                };
                z.insert(p.member, score);
            }
            shard.insert(own(dst.clone()), Entry::new(Value::ZSet(Box::new(z))), now);
            let event = if search_store {
                "geosearchstore"
            } else {
                "georadiusstore"
            };
            ctx.notify(crate::notify::ZSET, event, &dst);
            ctx.dirty(returned as u64);
            Ok(Reply::Int(returned as i64))
        }
    }
}

/// membersOfAllNeighbors: the points of each score range Redis scans, in its order, kept
/// when inside the shape; with `limit` (ANY) it stops once that many are found.
fn search_points(zset: &ZSet, center: (f64, f64), shape: &Shape, limit: usize) -> Vec<Point> {
    let mut out = Vec::new();
    for (min, max) in core::search_ranges(center.0, center.1, shape) {
        if limit > 0 && out.len() >= limit {
            break;
        }
        for (m, s) in zset.from_score(min as f64) {
            if !core::range_contains((min, max), s) {
                break;
            }
            if let Some((lon, lat, dist)) = core::score_in_shape(shape, center, s) {
                out.push(Point {
                    member: m.clone(),
                    dist,
                    score: s,
                    lon,
                    lat,
                });
            }
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
    }
    out
}

pub fn georadius(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    radius_generic(ctx, args, Kind::Coords, true, false)
}

pub fn georadius_ro(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    radius_generic(ctx, args, Kind::Coords, false, false)
}

pub fn georadiusbymember(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    radius_generic(ctx, args, Kind::Member, true, false)
}

pub fn georadiusbymember_ro(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    radius_generic(ctx, args, Kind::Member, false, false)
}

pub fn geosearch(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    radius_generic(ctx, args, Kind::Search, false, false)
}

pub fn geosearchstore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    radius_generic(ctx, args, Kind::Search, false, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_redis_prints_them() {
        assert_eq!(&human(13.361389338970184)[..], b"13.36138933897018433");
        assert_eq!(&human(2.0)[..], b"2");
        assert_eq!(&distance_text(166274.1516)[..], b"166274.1516");
        assert_eq!(&distance_text(0.0)[..], b"0.0000");
        assert_eq!(&distance_text(0.00004)[..], b"0.0000");
    }
}
