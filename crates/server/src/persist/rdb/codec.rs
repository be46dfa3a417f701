//! The RDB primitives: lengths, strings (verbatim, integer-encoded or LZF-compressed), doubles
//! and fixed-width integers, read from a bounds-checked cursor and written to a byte vector
//! (rdb.c `rdbLoadLen`, `rdbGenericLoadStringObject`, `rdbSaveRawString` and friends).

use super::{lzf, RdbError};

/// A length byte whose top two bits are set announces a special string encoding.
const ENCVAL: u8 = 3;
const LEN_6BIT: u8 = 0;
const LEN_14BIT: u8 = 1;
const LEN_32BIT: u8 = 0x80;
const LEN_64BIT: u8 = 0x81;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Redis only tries LZF above this length: shorter strings never shrink by the 4 bytes it
/// demands.
const LZF_MIN_LEN: usize = 21;

/// Integer encoding is only tried on strings this short (an int32 has at most 11 chars).
const INT_ENCODING_MAX_LEN: usize = 11;

/// What a length field holds: a length, or the code of a special string encoding.
pub(super) enum Length {
    Plain(u64),
    Encoded(u8),
}

/// A cursor over RDB bytes. Every read checks the bytes remain, so a short or lying input is
/// an error and never a panic or an oversized allocation.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(super) fn position(&self) -> usize {
        self.pos
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes read since `start` (a value of [`Reader::position`]).
    pub(super) fn consumed_since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or_default()
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: u64) -> Result<&'a [u8], RdbError> {
        let n = usize::try_from(n).map_err(|_| RdbError::Truncated)?;
        if n > self.remaining() {
            return Err(RdbError::Truncated);
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self) -> Result<u8, RdbError> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn i32_le(&mut self) -> Result<i32, RdbError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub(super) fn i64_le(&mut self) -> Result<i64, RdbError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(super) fn u64_le(&mut self) -> Result<u64, RdbError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(super) fn f64_le(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A length field (`rdbLoadLenByRef`).
    pub(super) fn length(&mut self) -> Result<Length, RdbError> {
        let first = self.u8()?;
        match first >> 6 {
            ENCVAL => Ok(Length::Encoded(first & 0x3f)),
            LEN_6BIT => Ok(Length::Plain(u64::from(first & 0x3f))),
            LEN_14BIT => {
                let low = self.u8()?;
                Ok(Length::Plain(
                    (u64::from(first & 0x3f) << 8) | u64::from(low),
                ))
            }
            _ => match first {
                LEN_32BIT => Ok(Length::Plain(u64::from(u32::from_be_bytes(self.array()?)))),
                LEN_64BIT => Ok(Length::Plain(u64::from_be_bytes(self.array()?))),
                _ => Err(RdbError::Corrupt("unknown length encoding")),
            },
        }
    }

    /// A plain length (`rdbLoadLen` without `isencoded`, which, like Redis, takes an encoding
    /// marker's code as the length).
    pub(super) fn read_len(&mut self) -> Result<u64, RdbError> {
        Ok(match self.length()? {
            Length::Plain(n) => n,
            Length::Encoded(code) => u64::from(code),
        })
    }

    /// A count of items that each take at least `min_item_bytes` bytes, refused when the
    /// bytes left could not hold that many: a count may then size an allocation.
    pub(super) fn count(&mut self, min_item_bytes: u64) -> Result<usize, RdbError> {
        let n = self.read_len()?;
        if n.saturating_mul(min_item_bytes) > self.remaining() as u64 {
            return Err(RdbError::Truncated);
        }
        usize::try_from(n).map_err(|_| RdbError::Truncated)
    }

    /// A string in any of its encodings (`rdbGenericLoadStringObject`); integer encodings
    /// come back as their decimal text.
    pub(super) fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        match self.length()? {
            Length::Plain(n) => Ok(self.take(n)?.to_vec()),
            Length::Encoded(ENC_INT8) => Ok(decimal(i64::from(self.u8()? as i8))),
            Length::Encoded(ENC_INT16) => Ok(decimal(i64::from(i16::from_le_bytes(self.array()?)))),
            Length::Encoded(ENC_INT32) => Ok(decimal(i64::from(i32::from_le_bytes(self.array()?)))),
            Length::Encoded(ENC_LZF) => self.lzf_string(),
            Length::Encoded(_) => Err(RdbError::Corrupt("unknown string encoding")),
        }
    }

    fn lzf_string(&mut self) -> Result<Vec<u8>, RdbError> {
        let compressed_len = self.read_len()?;
        let len = self.read_len()?;
        let compressed = self.take(compressed_len)?;
        let len = usize::try_from(len).map_err(|_| RdbError::Corrupt("LZF length"))?;
        lzf::decompress(compressed, len).ok_or(RdbError::Corrupt("invalid LZF compressed string"))
    }

    /// A double written as text (`rdbLoadDoubleValue`, RDB_TYPE_ZSET): a length byte, with
    /// 253, 254 and 255 standing for NaN, +inf and -inf.
    pub(super) fn text_double(&mut self) -> Result<f64, RdbError> {
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            len => parse_double(self.take(u64::from(len))?)
                .ok_or(RdbError::Corrupt("invalid double text")),
        }
    }
}

/// The decimal text of an integer, as Redis's `ll2string` writes it.
pub(super) fn decimal(v: i64) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Parses a double written as text, as `strtod` would read Redis's own output ("%.17g",
/// "inf", "-inf"); surrounding blanks are allowed, other trailing text is not.
pub(super) fn parse_double(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// The integer a string spells when it is exactly that integer's canonical decimal text: no
/// sign but a leading '-', no leading zeros, no blanks, in the i64 range (Redis's
/// `string2ll`, which decides integer encodings in RDB strings and listpacks).
pub(super) fn parse_canonical_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Writes a length field (`rdbSaveLen`).
pub(crate) fn put_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push((len >> 8) as u8 | (LEN_14BIT << 6));
        out.push(len as u8);
    } else if let Ok(len32) = u32::try_from(len) {
        out.push(LEN_32BIT);
        out.extend_from_slice(&len32.to_be_bytes());
    } else {
        out.push(LEN_64BIT);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Writes a string as `rdbSaveRawString` does with compression on: as an 8, 16 or 32-bit
/// integer when it is the canonical text of one, LZF-compressed when longer than 20 bytes
/// and compression saves at least 4 bytes, else verbatim.
pub(super) fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= INT_ENCODING_MAX_LEN {
        if let Some(v) = parse_canonical_i64(s) {
            if put_int_encoded(out, v) {
                return;
            }
        }
    }
    if s.len() >= LZF_MIN_LEN {
        if let Some(compressed) = lzf::compress(s, s.len() - 4) {
            out.push((ENCVAL << 6) | ENC_LZF);
            put_len(out, compressed.len() as u64);
            put_len(out, s.len() as u64);
            out.extend_from_slice(&compressed);
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Writes `v` in the smallest of the 8, 16 and 32-bit string encodings, or returns false
/// when it needs more (`rdbEncodeInteger`).
fn put_int_encoded(out: &mut Vec<u8>, v: i64) -> bool {
    if let Ok(v8) = i8::try_from(v) {
        out.push((ENCVAL << 6) | ENC_INT8);
        out.extend_from_slice(&v8.to_le_bytes());
    } else if let Ok(v16) = i16::try_from(v) {
        out.push((ENCVAL << 6) | ENC_INT16);
        out.extend_from_slice(&v16.to_le_bytes());
    } else if let Ok(v32) = i32::try_from(v) {
        out.push((ENCVAL << 6) | ENC_INT32);
        out.extend_from_slice(&v32.to_le_bytes());
    } else {
        return false;
    }
    true
}
