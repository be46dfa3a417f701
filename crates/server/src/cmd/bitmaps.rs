//! Bitmap commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and
//! BITFIELD_RO, with Redis 7.0's semantics and error texts (bitops.c). Bit 0 is the most
//! significant bit of the first byte.

use super::{own, Args, CmdError, CmdResult, Ctx};
use crate::server::reply::Reply;
use crate::store::{Entry, Value};
use bytes::{Bytes, BytesMut};

const ERR_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const ERR_BIT: &str = "ERR bit is not an integer or out of range";
const ERR_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

fn max_bytes(ctx: &Ctx) -> u64 {
    ctx.server
        .config
        .live
        .proto_max_bulk_len
        .load(std::sync::atomic::Ordering::Relaxed) as u64
}

/// A bit offset, as getBitOffsetFromArgument reads it: `#n` means n × `bits` when `bits` is
/// given (BITFIELD), and the byte it lands in must be below proto-max-bulk-len.
fn bit_offset(ctx: &Ctx, arg: &[u8], bits: Option<u32>) -> Result<u64, CmdError> {
    let (hash, digits) = match (arg.first(), bits) {
        (Some(b'#'), Some(_)) => (true, &arg[1..]),
        _ => (false, arg),
    };
    let mut v = crate::util::parse_i64(digits).ok_or_else(|| CmdError::new(ERR_OFFSET))?;
    if hash {
        v = v.wrapping_mul(bits.unwrap_or(1) as i64);
    }
    if v < 0 || (v as u64 >> 3) >= max_bytes(ctx) {
        return Err(CmdError::new(ERR_OFFSET));
    }
    Ok(v as u64)
}

/// The string at `key` made writable and at least `len` bytes long (zero padded), created if
/// missing. Returns whether it was created or grew.
fn with_bits<T>(
    ctx: &Ctx,
    key: &Bytes,
    len: usize,
    f: impl FnOnce(&mut [u8], bool) -> T,
) -> Result<T, CmdError> {
    let now = ctx.now();
    let mut shard = ctx.db().write(key);
    let created = match shard.get_mut(key, now) {
        Some(e) => {
            let Value::Str(b) = &mut e.value else {
                return Err(CmdError::wrong_type());
            };
            let mut m = match std::mem::take(b).try_into_mut() {
                Ok(m) => m,
                Err(shared) => BytesMut::from(&shared[..]),
            };
            let grew = m.len() < len;
            if grew {
                m.resize(len, 0);
            }
            let out = f(&mut m, grew);
            *b = m.freeze();
            e.mark_modified();
            return Ok(out);
        }
        None => true,
    };
    let mut m = BytesMut::zeroed(len);
    let out = f(&mut m, created);
    shard.insert(own(key.clone()), Entry::new(Value::Str(m.freeze())), now);
    Ok(out)
}

pub fn setbit(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let offset = bit_offset(ctx, &args.next()?, None)?;
    let on = crate::util::parse_i64(&args.next()?).ok_or_else(|| CmdError::new(ERR_BIT))?;
    if on & !1 != 0 {
        return Err(CmdError::new(ERR_BIT));
    }
    let byte = (offset >> 3) as usize;
    let shift = 7 - (offset & 7);
    let (old, changed) = with_bits(ctx, &key, byte + 1, |b, grew| {
        let old = (b[byte] >> shift) & 1;
        b[byte] = (b[byte] & !(1 << shift)) | ((on as u8) << shift);
        (old, grew || old as i64 != on)
    })?;
    if changed {
        ctx.notify(crate::notify::STRING, "setbit", &key);
        ctx.dirty(1);
    }
    Ok(Reply::Int(old as i64))
}

pub fn getbit(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let offset = bit_offset(ctx, &args.next()?, None)?;
    let v = ctx.get_string(&key)?.unwrap_or_default();
    let byte = (offset >> 3) as usize;
    let bit = v.get(byte).map_or(0, |b| (b >> (7 - (offset & 7))) & 1);
    Ok(Reply::Int(bit as i64))
}

/// A start/end range over bytes or bits resolved as Redis does: negative values count from
/// the end, then clamped. Returns (start byte, end byte, mask of the first byte's bits
/// outside the range, mask of the last byte's), or None for an empty range.
fn byte_range(start: i64, end: i64, len: usize, bits: bool) -> Option<(usize, usize, u8, u8)> {
    let total = if bits { (len as i64) << 3 } else { len as i64 };
    let (mut start, mut end) = (start, end);
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    if start > end {
        return None;
    }
    let (mut first, mut last) = (0u8, 0u8);
    if bits {
        first = (!((1u32 << (8 - (start & 7))) - 1) & 0xff) as u8;
        last = ((1u32 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    Some((start as usize, end as usize, first, last))
}

fn unit(arg: &[u8]) -> Result<bool, CmdError> {
    if arg.eq_ignore_ascii_case(b"BIT") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"BYTE") {
        Ok(false)
    } else {
        Err(CmdError::syntax())
    }
}

fn popcount(b: &[u8]) -> i64 {
    let words = b.chunks_exact(8);
    let tail = words.remainder();
    words
        .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")).count_ones() as i64)
        .sum::<i64>()
        + tail.iter().map(|x| x.count_ones() as i64).sum::<i64>()
}

pub fn bitcount(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let argc = args.argc();
    let Some(v) = ctx.get_string(&key)? else {
        return Ok(Reply::Int(0));
    };
    let (start, end, first, last) = match argc {
        2 => {
            if v.is_empty() {
                return Ok(Reply::Int(0));
            }
            (0, v.len() - 1, 0, 0)
        }
        4 | 5 => {
            let start = args.next_i64()?;
            let end = args.next_i64()?;
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Int(0));
            }
            let bits = if argc == 5 {
                unit(&args.next()?)?
            } else {
                false
            };
            match byte_range(start, end, v.len(), bits) {
                Some(r) => r,
                None => return Ok(Reply::Int(0)),
            }
        }
        _ => return Err(CmdError::syntax()),
    };
    let mut count = popcount(&v[start..=end]);
    if first != 0 {
        count -= (v[start] & first).count_ones() as i64;
    }
    if last != 0 {
        count -= (v[end] & last).count_ones() as i64;
    }
    Ok(Reply::Int(count))
}

/// The first bit equal to `bit` in `b` (redisBitpos): for 0 bits past the end, the first
/// bit after it; for 1 bits, -1.
fn first_bit(b: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0u8 } else { 0xff };
    match b.iter().position(|&x| x != skip) {
        Some(i) => {
            let x = if bit { b[i] } else { !b[i] };
            (i as i64) * 8 + x.leading_zeros() as i64
        }
        None if bit => -1,
        None => (b.len() as i64) * 8,
    }
}

pub fn bitpos(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let argc = args.argc();
    let bit = args.next_i64()?;
    if bit != 0 && bit != 1 {
        return Err(CmdError::new("ERR The bit argument must be 1 or 0."));
    }
    let bit = bit == 1;
    let Some(p) = ctx.get_string(&key)? else {
        return Ok(Reply::Int(if bit { -1 } else { 0 }));
    };
    let len = p.len();
    let mut end_given = false;
    let range = match argc {
        3 => (len > 0).then(|| (0, len - 1, 0u8, 0u8)),
        4..=6 => {
            let start = args.next_i64()?;
            let mut end = None;
            let bits = if argc == 6 {
                // The unit comes after the end, but is read first, as Redis does.
                let u = unit(args.request().arg(5))?;
                end = Some(args.next_i64()?);
                args.next()?;
                u
            } else {
                false
            };
            if argc == 5 {
                end = Some(args.next_i64()?);
            }
            end_given = end.is_some();
            let end = end.unwrap_or(if bits {
                ((len as i64) << 3) + 7
            } else {
                len as i64 - 1
            });
            byte_range(start, end, len, bits)
        }
        _ => return Err(CmdError::syntax()),
    };
    let Some((mut start, end, first, last)) = range else {
        return Ok(Reply::Int(-1));
    };
    let mut bytes = end - start + 1;
    let pos = 'found: {
        if first != 0 {
            let mut t = if bit {
                p[start] & !first
            } else {
                p[start] | first
            };
            if last != 0 && bytes == 1 {
                t = if bit { t & !last } else { t | last };
            }
            let pos = first_bit(&[t], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'found pos;
            }
            start += 1;
            bytes -= 1;
        }
        let cur = bytes - usize::from(last != 0);
        if cur > 0 {
            let pos = first_bit(&p[start..start + cur], bit);
            if bytes == cur || (pos != -1 && pos != (cur as i64) << 3) {
                break 'found pos;
            }
            start += cur;
            bytes -= cur;
        }
        let t = if bit { p[end] & !last } else { p[end] | last };
        first_bit(&[t], bit)
    };
    if end_given && !bit && pos == (bytes as i64) << 3 {
        return Ok(Reply::Int(-1));
    }
    Ok(Reply::Int(if pos != -1 {
        pos + ((start as i64) << 3)
    } else {
        pos
    }))
}

pub fn bitop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let op = args.next()?;
    let op = match op.to_ascii_uppercase().as_slice() {
        b"AND" => 0,
        b"OR" => 1,
        b"XOR" => 2,
        b"NOT" => 3,
        _ => return Err(CmdError::syntax()),
    };
    let dest = args.next()?;
    let keys = args.rest();
    if op == 3 && keys.len() != 1 {
        return Err(CmdError::new(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let mut srcs: Vec<Bytes> = Vec::with_capacity(keys.len());
    for k in &keys {
        srcs.push(ctx.get_string(k)?.unwrap_or_default());
    }
    let maxlen = srcs.iter().map(|s| s.len()).max().unwrap_or(0);
    let now = ctx.now();
    if maxlen == 0 {
        if ctx.db().write(&dest).remove(&dest, now).is_some() {
            ctx.notify(crate::notify::GENERIC, "del", &dest);
            ctx.dirty(1);
        }
        return Ok(Reply::Int(0));
    }
    let mut res = vec![0u8; maxlen];
    let at = |s: &Bytes, j: usize| s.get(j).copied().unwrap_or(0);
    match op {
        3 => res
            .iter_mut()
            .enumerate()
            .for_each(|(j, r)| *r = !at(&srcs[0], j)),
        _ => {
            res[..srcs[0].len()].copy_from_slice(&srcs[0]);
            for s in &srcs[1..] {
                for (j, r) in res.iter_mut().enumerate() {
                    let b = at(s, j);
                    match op {
                        0 => *r &= b,
                        1 => *r |= b,
                        _ => *r ^= b,
                    }
                }
            }
        }
    }
    ctx.db().write(&dest).insert(
        own(dest.clone()),
        Entry::new(Value::Str(Bytes::from(res))),
        now,
    );
    ctx.notify(crate::notify::STRING, "set", &dest);
    ctx.dirty(1);
    Ok(Reply::Int(maxlen as i64))
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum FieldOp {
    Get,
    Set,
    IncrBy,
}

struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

fn field_type(arg: &[u8]) -> Result<(bool, u32), CmdError> {
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(CmdError::new(ERR_TYPE)),
    };
    let bits = crate::util::parse_i64(&arg[1..]).ok_or_else(|| CmdError::new(ERR_TYPE))?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(CmdError::new(ERR_TYPE));
    }
    Ok((signed, bits as u32))
}

fn get_unsigned(p: &[u8], offset: u64, bits: u32) -> u64 {
    let mut value = 0u64;
    for j in 0..bits as u64 {
        let o = offset + j;
        let byte = (o >> 3) as usize;
        let bit = p.get(byte).map_or(0, |b| (b >> (7 - (o & 7))) & 1);
        value = (value << 1) | bit as u64;
    }
    value
}

fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_unsigned(p, offset, bits);
    if bits < 64 && v & (1u64 << (bits - 1)) != 0 {
        v |= u64::MAX << bits;
    }
    v as i64
}

fn set_unsigned(p: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..bits as u64 {
        let bit = (value >> (bits as u64 - 1 - j)) & 1;
        let o = offset + j;
        let byte = (o >> 3) as usize;
        let shift = 7 - (o & 7);
        p[byte] = (p[byte] & !(1 << shift)) | ((bit as u8) << shift);
    }
}

/// checkUnsignedBitfieldOverflow: Some(value to store) on overflow (None under FAIL).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> Option<Option<u64>> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = (value as i64).wrapping_neg();
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (incr > 0 && incr > maxincr) {
        return Some(match ow {
            Overflow::Wrap => Some(wrap()),
            Overflow::Sat => Some(max),
            Overflow::Fail => None,
        });
    }
    if incr < 0 && incr < minincr {
        return Some(match ow {
            Overflow::Wrap => Some(wrap()),
            Overflow::Sat => Some(0),
            Overflow::Fail => None,
        });
    }
    None
}

/// checkSignedBitfieldOverflow, likewise.
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> Option<Option<i64>> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        return Some(match ow {
            Overflow::Wrap => Some(wrap()),
            Overflow::Sat => Some(max),
            Overflow::Fail => None,
        });
    }
    if value < min || (bits != 64 && incr < minincr) || (value < 0 && incr < 0 && incr < minincr) {
        return Some(match ow {
            Overflow::Wrap => Some(wrap()),
            Overflow::Sat => Some(min),
            Overflow::Fail => None,
        });
    }
    None
}

fn parse_fields(ctx: &Ctx, args: &mut Args) -> Result<Vec<Field>, CmdError> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    while let Some(word) = args.peek() {
        let word = word.to_ascii_uppercase();
        let left = args.remaining() - 1;
        let op = match word.as_slice() {
            b"GET" if left >= 2 => FieldOp::Get,
            b"SET" if left >= 3 => FieldOp::Set,
            b"INCRBY" if left >= 3 => FieldOp::IncrBy,
            b"OVERFLOW" if left >= 1 => {
                args.next()?;
                overflow = match args.next()?.to_ascii_uppercase().as_slice() {
                    b"WRAP" => Overflow::Wrap,
                    b"SAT" => Overflow::Sat,
                    b"FAIL" => Overflow::Fail,
                    _ => return Err(CmdError::new("ERR Invalid OVERFLOW type specified")),
                };
                continue;
            }
            _ => return Err(CmdError::syntax()),
        };
        args.next()?;
        let (signed, bits) = field_type(&args.next()?)?;
        let offset = bit_offset(ctx, &args.next()?, Some(bits))?;
        let value = if op == FieldOp::Get {
            0
        } else {
            args.next_i64()?
        };
        ops.push(Field {
            op,
            signed,
            bits,
            offset,
            value,
            overflow,
        });
    }
    Ok(ops)
}

fn bitfield_generic(ctx: &mut Ctx, args: &mut Args, read_only: bool) -> CmdResult {
    let key = args.next()?;
    let ops = parse_fields(ctx, args)?;
    let writes = ops.iter().any(|f| f.op != FieldOp::Get);
    let run = |p: &mut [u8], dirty: bool| -> (Vec<Reply>, u64) {
        let mut changes = 0;
        let replies = ops
            .iter()
            .map(|f| match (f.op, f.signed) {
                (FieldOp::Get, true) => Reply::Int(get_signed(p, f.offset, f.bits)),
                (FieldOp::Get, false) => Reply::Int(get_unsigned(p, f.offset, f.bits) as i64),
                (op, true) => {
                    let old = get_signed(p, f.offset, f.bits);
                    let (new, ret, over) = if op == FieldOp::IncrBy {
                        let over = signed_overflow(old, f.value, f.bits, f.overflow);
                        let new = match over {
                            Some(Some(w)) => w,
                            _ => old.wrapping_add(f.value),
                        };
                        (new, new, over)
                    } else {
                        let over = signed_overflow(f.value, 0, f.bits, f.overflow);
                        let new = match over {
                            Some(Some(w)) => w,
                            _ => f.value,
                        };
                        (new, old, over)
                    };
                    if matches!(over, Some(None)) {
                        return Reply::Null;
                    }
                    set_unsigned(p, f.offset, f.bits, new as u64);
                    if dirty || old != new {
                        changes += 1;
                    }
                    Reply::Int(ret)
                }
                (op, false) => {
                    let old = get_unsigned(p, f.offset, f.bits);
                    let (new, ret, over) = if op == FieldOp::IncrBy {
                        let over = unsigned_overflow(old, f.value, f.bits, f.overflow);
                        let new = match over {
                            Some(Some(w)) => w,
                            _ => old.wrapping_add(f.value as u64),
                        };
                        (new, new, over)
                    } else {
                        let over = unsigned_overflow(f.value as u64, 0, f.bits, f.overflow);
                        let new = match over {
                            Some(Some(w)) => w,
                            _ => f.value as u64,
                        };
                        (new, old, over)
                    };
                    if matches!(over, Some(None)) {
                        return Reply::Null;
                    }
                    set_unsigned(p, f.offset, f.bits, new);
                    if dirty || old != new {
                        changes += 1;
                    }
                    Reply::Int(ret as i64)
                }
            })
            .collect();
        (replies, changes)
    };
    if !writes {
        let v = ctx.get_string(&key)?.unwrap_or_default();
        let mut copy = v.to_vec();
        return Ok(Reply::Array(run(&mut copy, false).0));
    }
    if read_only {
        return Err(CmdError::new(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let highest = ops
        .iter()
        .filter(|f| f.op != FieldOp::Get)
        .map(|f| f.offset + f.bits as u64 - 1)
        .max()
        .unwrap_or(0);
    let (replies, changes) = with_bits(ctx, &key, (highest >> 3) as usize + 1, run)?;
    if changes > 0 {
        ctx.notify(crate::notify::STRING, "setbit", &key);
        ctx.dirty(changes);
    }
    Ok(Reply::Array(replies))
}

pub fn bitfield(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    bitfield_generic(ctx, args, false)
}

pub fn bitfield_ro(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    bitfield_generic(ctx, args, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfield_values_round_trip() {
        let mut p = vec![0u8; 16];
        set_unsigned(&mut p, 5, 13, 0x1abc);
        assert_eq!(get_unsigned(&p, 5, 13), 0x1abc);
        set_unsigned(&mut p, 60, 64, (-5i64) as u64);
        assert_eq!(get_signed(&p, 60, 64), -5);
        set_unsigned(&mut p, 3, 4, 0b1001);
        assert_eq!(get_signed(&p, 3, 4), -7);
    }

    #[test]
    fn overflow_rules_match_redis() {
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), Some(Some(4)));
        assert_eq!(
            unsigned_overflow(250, 10, 8, Overflow::Sat),
            Some(Some(255))
        );
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Sat), Some(Some(0)));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Fail), Some(None));
        assert_eq!(
            signed_overflow(120, 10, 8, Overflow::Wrap),
            Some(Some(-126))
        );
        assert_eq!(
            signed_overflow(-120, -10, 8, Overflow::Sat),
            Some(Some(-128))
        );
        assert_eq!(signed_overflow(1, 1, 8, Overflow::Wrap), None);
        assert_eq!(
            signed_overflow(i64::MAX, 1, 64, Overflow::Wrap),
            Some(Some(i64::MIN))
        );
    }

    #[test]
    fn bit_positions() {
        assert_eq!(first_bit(&[0, 0x10], true), 11);
        assert_eq!(first_bit(&[0xff, 0xff], false), 16);
        assert_eq!(first_bit(&[0, 0], true), -1);
        assert_eq!(popcount(&[0xff; 19]), 152);
    }
}
