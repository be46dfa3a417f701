//! Listpacks (listpack.c), Redis 7.0's compact encoding of small hashes and sorted sets, of
//! list nodes and of stream nodes.
//!
//! Layout: total bytes (u32 LE), element count (u16 LE, 65535 when unknown), the elements,
//! and 0xFF. An element is an encoding byte (with the length or a small integer in it), the
//! data, then its own length again, written backwards, so the list can be walked from the
//! end ("backlen").

use super::codec::{decimal, parse_canonical_i64};
use super::RdbError;

const HEADER_SIZE: usize = 6;
const EOF: u8 = 0xFF;
const NUMELE_UNKNOWN: u16 = u16::MAX;

const ENC_16BIT_INT: u8 = 0xF1;
const ENC_24BIT_INT: u8 = 0xF2;
const ENC_32BIT_INT: u8 = 0xF3;
const ENC_64BIT_INT: u8 = 0xF4;
const ENC_32BIT_STR: u8 = 0xF0;

const CORRUPT: RdbError = RdbError::Corrupt("listpack integrity check failed");

/// One element of a listpack or ziplist: both store integers apart from strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Element<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Element<'_> {
    /// The element as the string Redis would hand out (integers in decimal).
    pub(super) fn to_vec(self) -> Vec<u8> {
        match self {
            Element::Int(v) => decimal(v),
            Element::Bytes(b) => b.to_vec(),
        }
    }

    /// The element as an integer, accepting a string that spells one exactly, as stream
    /// code reads its integer fields (`lpGetIntegerIfValid`).
    pub(super) fn as_i64(self) -> Option<i64> {
        match self {
            Element::Int(v) => Some(v),
            Element::Bytes(b) => parse_canonical_i64(b),
        }
    }
}

/// Parses and validates a whole listpack, as `lpValidateIntegrity` does in deep mode: the
/// header's byte count, the terminator, every element's encoding, bounds and backlen, and
/// the header's element count.
pub(super) fn parse(lp: &[u8]) -> Result<Vec<Element<'_>>, RdbError> {
    if lp.len() < HEADER_SIZE + 1 || lp[lp.len() - 1] != EOF {
        return Err(CORRUPT);
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]);
    if total as usize != lp.len() {
        return Err(CORRUPT);
    }
    let numele = u16::from_le_bytes([lp[4], lp[5]]);
    let end = lp.len() - 1;
    let mut elements = Vec::new();
    let mut p = HEADER_SIZE;
    while p < end && lp[p] != EOF {
        let (element, entry_len) = decode_element(&lp[p..end])?;
        let mut backlen = [0u8; 5];
        let backlen_len = encode_backlen(entry_len, &mut backlen);
        let next = p + entry_len + backlen_len;
        if next > end || lp[p + entry_len..next] != backlen[..backlen_len] {
            return Err(CORRUPT);
        }
        elements.push(element);
        p = next;
    }
    if p != end || (numele != NUMELE_UNKNOWN && usize::from(numele) != elements.len()) {
        return Err(CORRUPT);
    }
    Ok(elements)
}

/// Decodes the element at the start of `s` (which is not empty), returning it with the
/// length of its encoding byte(s) and data (the backlen excluded).
fn decode_element(s: &[u8]) -> Result<(Element<'_>, usize), RdbError> {
    let first = s[0];
    let at = |range: std::ops::Range<usize>| s.get(range).ok_or(CORRUPT);
    let int_bytes = |n: usize| -> Result<u64, RdbError> {
        let mut raw = [0u8; 8];
        raw[..n].copy_from_slice(at(1..1 + n)?);
        Ok(u64::from_le_bytes(raw))
    };
    Ok(if first & 0x80 == 0 {
        (Element::Int(i64::from(first)), 1)
    } else if first & 0xC0 == 0x80 {
        let len = usize::from(first & 0x3f);
        (Element::Bytes(at(1..1 + len)?), 1 + len)
    } else if first & 0xE0 == 0xC0 {
        let raw = (i64::from(first & 0x1f) << 8) | i64::from(at(1..2)?[0]);
        (Element::Int(sign_extend(raw, 13)), 2)
    } else if first == ENC_16BIT_INT {
        (Element::Int(sign_extend(int_bytes(2)? as i64, 16)), 3)
    } else if first == ENC_24BIT_INT {
        (Element::Int(sign_extend(int_bytes(3)? as i64, 24)), 4)
    } else if first == ENC_32BIT_INT {
        (Element::Int(sign_extend(int_bytes(4)? as i64, 32)), 5)
    } else if first == ENC_64BIT_INT {
        (Element::Int(int_bytes(8)? as i64), 9)
    } else if first & 0xF0 == 0xE0 {
        let len = (usize::from(first & 0x0f) << 8) | usize::from(at(1..2)?[0]);
        (Element::Bytes(at(2..2 + len)?), 2 + len)
    } else if first == ENC_32BIT_STR {
        let len = int_bytes(4)? as usize;
        (Element::Bytes(at(5..5 + len)?), 5 + len)
    } else {
        return Err(CORRUPT);
    })
}

/// Interprets the low `bits` bits of `raw` as a two's complement number.
fn sign_extend(raw: i64, bits: u32) -> i64 {
    let shift = 64 - bits;
    (raw << shift) >> shift
}

/// Writes the backlen of an element whose encoding and data take `len` bytes into `buf`,
/// returning how many bytes it takes (`lpEncodeBacklen`): 7 bits a byte, most significant
/// first, every byte but the first flagged with 0x80.
fn encode_backlen(len: usize, buf: &mut [u8; 5]) -> usize {
    let size = if len <= 127 {
        1
    } else if len < 16383 {
        2
    } else if len < 2_097_151 {
        3
    } else if len < 268_435_455 {
        4
    } else {
        5
    };
    for (i, slot) in buf.iter_mut().take(size).enumerate() {
        let shift = 7 * (size - 1 - i);
        let bits = ((len >> shift) & 127) as u8;
        *slot = if i == 0 {
            (len >> shift) as u8
        } else {
            bits | 128
        };
    }
    size
}

/// Builds a listpack element by element, encoding each as `lpAppend` / `lpAppendInteger`
/// would, so the bytes match Redis's.
#[derive(Debug, Default)]
pub(super) struct Builder {
    body: Vec<u8>,
    count: usize,
}

impl Builder {
    pub(super) fn new() -> Self {
        Builder::default()
    }

    /// Appends a string; one that spells an integer exactly is stored as that integer.
    pub(super) fn push_bytes(&mut self, s: &[u8]) {
        match parse_canonical_i64(s) {
            Some(v) => self.push_int(v),
            None => self.push_str(s),
        }
    }

    /// Appends an integer in the smallest encoding that holds it.
    pub(super) fn push_int(&mut self, v: i64) {
        let start = self.body.len();
        let body = &mut self.body;
        if (0..=127).contains(&v) {
            body.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let raw = (v & 0x1fff) as u16;
            body.push(0xC0 | (raw >> 8) as u8);
            body.push(raw as u8);
        } else if let Ok(v16) = i16::try_from(v) {
            body.push(ENC_16BIT_INT);
            body.extend_from_slice(&v16.to_le_bytes());
        } else if (-8_388_608..=8_388_607).contains(&v) {
            body.push(ENC_24BIT_INT);
            body.extend_from_slice(&v.to_le_bytes()[..3]);
        } else if let Ok(v32) = i32::try_from(v) {
            body.push(ENC_32BIT_INT);
            body.extend_from_slice(&v32.to_le_bytes());
        } else {
            body.push(ENC_64BIT_INT);
            body.extend_from_slice(&v.to_le_bytes());
        }
        self.finish_element(start);
    }

    fn push_str(&mut self, s: &[u8]) {
        let start = self.body.len();
        let len = s.len();
        if len < 64 {
            self.body.push(0x80 | len as u8);
        } else if len < 4096 {
            self.body.push(0xE0 | (len >> 8) as u8);
            self.body.push(len as u8);
        } else {
            self.body.push(ENC_32BIT_STR);
            let len32 = u32::try_from(len).unwrap_or(u32::MAX);
            self.body.extend_from_slice(&len32.to_le_bytes());
        }
        self.body.extend_from_slice(s);
        self.finish_element(start);
    }

    fn finish_element(&mut self, start: usize) {
        let mut backlen = [0u8; 5];
        let n = encode_backlen(self.body.len() - start, &mut backlen);
        self.body.extend_from_slice(&backlen[..n]);
        self.count += 1;
    }

    /// Appends every element of `other`.
    pub(super) fn append(&mut self, other: &Builder) {
        self.body.extend_from_slice(&other.body);
        self.count += other.count;
    }

    /// The bytes the elements take: [`Builder::total_bytes`] less header and terminator.
    pub(super) fn elements_bytes(&self) -> usize {
        self.body.len()
    }

    /// The size the listpack has so far (`lpBytes`), header and terminator included.
    pub(super) fn total_bytes(&self) -> usize {
        HEADER_SIZE + self.body.len() + 1
    }

    /// The finished listpack.
    pub(super) fn finish(self) -> Vec<u8> {
        let total = u32::try_from(self.total_bytes()).unwrap_or(u32::MAX);
        let numele = u16::try_from(self.count).unwrap_or(NUMELE_UNKNOWN);
        let mut lp = Vec::with_capacity(self.total_bytes());
        lp.extend_from_slice(&total.to_le_bytes());
        lp.extend_from_slice(&numele.to_le_bytes());
        lp.extend_from_slice(&self.body);
        lp.push(EOF);
        lp
    }
}
