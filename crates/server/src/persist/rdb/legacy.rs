//! The compact encodings besides listpacks: ziplists (lists, hashes, sorted sets and
//! quicklist nodes before Redis 7.0), zipmaps (hashes before 2.6), both still loaded by 7.0,
//! and intsets (small integer sets, still written by 7.0).

use super::listpack::Element;
use super::RdbError;

const ZIPLIST_HEADER_SIZE: usize = 10;
const ZIP_END: u8 = 0xFF;
const ZIP_BIG_PREVLEN: u8 = 0xFE;
const ZIP_INT_16B: u8 = 0xC0;
const ZIP_INT_32B: u8 = 0xD0;
const ZIP_INT_64B: u8 = 0xE0;
const ZIP_INT_24B: u8 = 0xF0;
const ZIP_INT_8B: u8 = 0xFE;

const ZIPMAP_BIGLEN: u8 = 254;
const ZIPMAP_END: u8 = 255;

/// A field and its value, borrowed from the encoding.
type FieldValue<'a> = (&'a [u8], &'a [u8]);

const BAD_ZIPLIST: RdbError = RdbError::Corrupt("ziplist integrity check failed");
const BAD_ZIPMAP: RdbError = RdbError::Corrupt("zipmap integrity check failed");
const BAD_INTSET: RdbError = RdbError::Corrupt("intset integrity check failed");

/// Parses and validates a ziplist as `ziplistValidateIntegrity` does in deep mode.
///
/// Layout: total bytes (u32 LE), offset of the last entry (u32 LE), entry count (u16 LE,
/// 65535 when unknown), entries, 0xFF. An entry is the previous entry's length (1 byte, or
/// 0xFE and a u32 LE), an encoding (string length in 1, 2 or 5 bytes, big-endian, or an
/// integer type), then the data.
pub(super) fn parse_ziplist(zl: &[u8]) -> Result<Vec<Element<'_>>, RdbError> {
    if zl.len() < ZIPLIST_HEADER_SIZE + 1 || zl[zl.len() - 1] != ZIP_END {
        return Err(BAD_ZIPLIST);
    }
    let u32_at = |p: usize| u32::from_le_bytes([zl[p], zl[p + 1], zl[p + 2], zl[p + 3]]);
    let tail = u32_at(4) as usize;
    let header_count = u16::from_le_bytes([zl[8], zl[9]]);
    let end = zl.len() - 1;
    if u32_at(0) as usize != zl.len() || tail > end {
        return Err(BAD_ZIPLIST);
    }
    let mut elements = Vec::new();
    let mut p = ZIPLIST_HEADER_SIZE;
    let mut prev_len = 0usize;
    let mut last = None;
    while zl[p] != ZIP_END {
        let (element, entry_len, declared_prev) = ziplist_entry(&zl[p..end])?;
        if declared_prev != prev_len {
            return Err(BAD_ZIPLIST);
        }
        elements.push(element);
        last = Some(p);
        prev_len = entry_len;
        p += entry_len;
    }
    let tail_ok = last.is_none_or(|l| l == tail);
    let count_ok = header_count == u16::MAX || usize::from(header_count) == elements.len();
    if p != end || !tail_ok || !count_ok {
        return Err(BAD_ZIPLIST);
    }
    Ok(elements)
}

/// Decodes the ziplist entry at the start of `s` (which runs up to the terminator),
/// returning the element, the entry's whole length and the previous-entry length it
/// declares.
fn ziplist_entry(s: &[u8]) -> Result<(Element<'_>, usize, usize), RdbError> {
    let at = |range: std::ops::Range<usize>| s.get(range).ok_or(BAD_ZIPLIST);
    let (prev_len, prev_size) = if s[0] == ZIP_BIG_PREVLEN {
        let raw = at(1..5)?;
        (
            u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize,
            5,
        )
    } else {
        (usize::from(s[0]), 1)
    };
    let enc = at(prev_size..prev_size + 1)?[0];
    let after = prev_size + 1;
    let (header, data_len) = match enc >> 6 {
        0 => (after, usize::from(enc & 0x3f)),
        1 => {
            let low = at(after..after + 1)?[0];
            (after + 1, (usize::from(enc & 0x3f) << 8) | usize::from(low))
        }
        2 => {
            let raw = at(after..after + 4)?;
            (
                after + 4,
                u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize,
            )
        }
        _ => (after, ziplist_int_size(enc)?),
    };
    let data = at(header..header + data_len)?;
    let element = if enc >> 6 == 3 {
        Element::Int(ziplist_int(enc, data))
    } else {
        Element::Bytes(data)
    };
    Ok((element, header + data_len, prev_len))
}

/// The data size of an integer encoding, or an error for a byte that is none.
fn ziplist_int_size(enc: u8) -> Result<usize, RdbError> {
    match enc {
        ZIP_INT_16B => Ok(2),
        ZIP_INT_32B => Ok(4),
        ZIP_INT_64B => Ok(8),
        ZIP_INT_24B => Ok(3),
        ZIP_INT_8B => Ok(1),
        0xF1..=0xFD => Ok(0),
        _ => Err(BAD_ZIPLIST),
    }
}

/// The value of an integer entry whose data (of the size `ziplist_int_size` gave) is `data`.
fn ziplist_int(enc: u8, data: &[u8]) -> i64 {
    let mut raw = [0u8; 8];
    raw[..data.len()].copy_from_slice(data);
    let unsigned = i64::from_le_bytes(raw);
    match enc {
        0xF1..=0xFD => i64::from(enc & 0x0f) - 1,
        _ => {
            let shift = 64 - 8 * data.len() as u32;
            (unsigned << shift) >> shift
        }
    }
}

/// Parses and validates a zipmap as `zipmapValidateIntegrity` does in deep mode, returning
/// its field-value pairs.
///
/// Layout: a count byte (254 when unknown), then per pair a key length, the key, a value
/// length, a byte of free space after the value, the value and the free bytes; then 0xFF.
/// A length is one byte below 254, or 254 and a u32 LE.
pub(super) fn parse_zipmap(zm: &[u8]) -> Result<Vec<FieldValue<'_>>, RdbError> {
    if zm.len() < 2 || zm[zm.len() - 1] != ZIPMAP_END {
        return Err(BAD_ZIPMAP);
    }
    let end = zm.len() - 1;
    let mut pairs = Vec::new();
    let mut p = 1;
    while zm[p] != ZIPMAP_END {
        let (key, after_key) = zipmap_string(zm, p, 0)?;
        if zm[after_key] == ZIPMAP_END {
            return Err(BAD_ZIPMAP);
        }
        let (value, after_value) = zipmap_string(zm, after_key, 1)?;
        pairs.push((key, value));
        p = after_value;
    }
    let count_ok = zm[0] == ZIPMAP_BIGLEN || usize::from(zm[0]) == pairs.len();
    if pairs.is_empty() || !count_ok || p != end {
        return Err(BAD_ZIPMAP);
    }
    Ok(pairs)
}

/// Reads the length-prefixed string at `p` of a zipmap; values (`free_byte` 1) have a byte
/// counting unused bytes after them. Returns the string and the position after it, which is
/// never past the terminator.
fn zipmap_string(zm: &[u8], p: usize, free_byte: usize) -> Result<(&[u8], usize), RdbError> {
    let end = zm.len() - 1;
    let (len, len_size) = if zm[p] < ZIPMAP_BIGLEN {
        (usize::from(zm[p]), 1)
    } else {
        let raw = zm.get(p + 1..p + 5).ok_or(BAD_ZIPMAP)?;
        (
            u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize,
            5,
        )
    };
    let mut start = p + len_size;
    let mut free = 0;
    if free_byte == 1 {
        free = usize::from(*zm.get(start).ok_or(BAD_ZIPMAP)?);
        start += 1;
    }
    let after = start + len + free;
    if after > end {
        return Err(BAD_ZIPMAP);
    }
    Ok((&zm[start..start + len], after))
}

/// Parses and validates an intset: encoding width (u32 LE: 2, 4 or 8), count (u32 LE),
/// then the values, little-endian, strictly ascending, at least one.
pub(super) fn parse_intset(blob: &[u8]) -> Result<Vec<i64>, RdbError> {
    let header = blob.get(..8).ok_or(BAD_INTSET)?;
    let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as u64;
    if !matches!(width, 2 | 4 | 8) || count == 0 || 8 + count * width as u64 != blob.len() as u64 {
        return Err(BAD_INTSET);
    }
    let values: Vec<i64> = blob[8..]
        .chunks_exact(width)
        .map(|chunk| {
            let mut raw = [0u8; 8];
            raw[..width].copy_from_slice(chunk);
            let shift = 64 - 8 * width as u32;
            (i64::from_le_bytes(raw) << shift) >> shift
        })
        .collect();
    if values.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(BAD_INTSET);
    }
    Ok(values)
}

/// Builds an intset of `values` (sorted ascending, distinct) in the narrowest width that
/// holds them all, as Redis's intset would be after adding them.
pub(super) fn build_intset(values: &[i64]) -> Vec<u8> {
    let fits = |lo: i64, hi: i64| values.iter().all(|v| (lo..=hi).contains(v));
    let width: usize = if fits(i16::MIN.into(), i16::MAX.into()) {
        2
    } else if fits(i32::MIN.into(), i32::MAX.into()) {
        4
    } else {
        8
    };
    let mut blob = Vec::with_capacity(8 + values.len() * width);
    blob.extend_from_slice(&(width as u32).to_le_bytes());
    blob.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        blob.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    blob
}
