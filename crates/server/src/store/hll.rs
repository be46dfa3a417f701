//! Redis 7.0.15 HyperLogLog (hyperloglog.c), ported byte for byte.
//!
//! Every function works on the string value exactly as Redis stores it under the key, so a
//! `GET` of a value produced here equals a `GET` of the value Redis would have produced from
//! the same commands, and values written by Redis (RDB, `SET` of a dumped string) are read as
//! Redis reads them.
//!
//! Layout (16 byte header, then the registers):
//!
//! ```text
//! +------+---+-----+----------+
//! | HYLL | E | N/U | Cardin.  |   E: 0 dense, 1 sparse; N/U: 3 unused bytes (never checked)
//! +------+---+-----+----------+   Cardin.: cached cardinality, little endian; the MSB of its
//!                                 last byte set means "stale, recompute".
//! ```
//!
//! Dense: 16384 registers of 6 bits, packed from the LSB of each byte (12288 bytes).
//! Sparse: run-length opcodes ZERO `00xxxxxx` (1..64 zeros), XZERO `01xxxxxx yyyyyyyy`
//! (1..16384 zeros) and VAL `1vvvvvxx` (value 1..32 repeated 1..4 times).
//!
//! C reads one byte past the end of the value in two places: the last dense register's "next
//! byte" (masked out, so harmless) and the second byte of an XZERO opcode that is the last
//! byte of a corrupt sparse value. That byte is the sds terminator slot, normally 0, but
//! hllSparseSet can leave an opcode byte there when it splits such a truncated XZERO. The
//! sparse code therefore decodes with an explicit "byte after the end" (`Sds`) and keeps it
//! across the registers one PFADD or PFMERGE sets, so corrupt values come out as Redis makes
//! them, without any out-of-bounds access. Only that slot's value is not kept between
//! commands: every call starts from 0 (see `Sds`).
//!
//! Corrupt-value checks follow the 7.0.15 builds that carry the CVE-2025-32023 fix (for
//! example Debian's 7.0.15-1~deb12u*): sparse opcodes are valid only when they cover exactly
//! 16384 registers. See `walk_vals`.

use std::fmt;

/// Number of bits of the hash used to pick the register.
const HLL_P: u32 = 14;
/// Bits of the hash left for the run of zeros (64 - P).
const HLL_Q: usize = 64 - HLL_P as usize;
/// Number of registers (16384).
pub const HLL_REGISTERS: usize = 1 << HLL_P;
/// Mask selecting the register index from the hash.
const HLL_P_MASK: u64 = (HLL_REGISTERS - 1) as u64;
/// Width of a dense register.
const HLL_BITS: usize = 6;
/// Largest value a dense register holds.
const HLL_REGISTER_MAX: u32 = (1 << HLL_BITS) - 1;
/// Size of the header shared by both encodings.
pub const HLL_HDR_SIZE: usize = 16;
/// Exact length of a dense value (header plus 12288 register bytes).
pub const HLL_DENSE_SIZE: usize = HLL_HDR_SIZE + (HLL_REGISTERS * HLL_BITS).div_ceil(8);
/// Encoding byte of a dense value.
const HLL_DENSE: u8 = 0;
/// Encoding byte of a sparse value.
const HLL_SPARSE: u8 = 1;
/// Highest encoding byte isHLLObjectOrReply accepts.
const HLL_MAX_ENCODING: u8 = 1;
/// Offset of the encoding byte in the header.
const ENCODING_AT: usize = 4;
/// Offset of the cached cardinality in the header.
const CARD_AT: usize = 8;
/// Offset of the cached cardinality's last byte, whose MSB flags a stale cache.
const CARD_FLAG_AT: usize = CARD_AT + 7;
/// Largest register value the sparse VAL opcode can hold.
const SPARSE_VAL_MAX_VALUE: u8 = 32;
/// Longest run a VAL opcode can hold.
const SPARSE_VAL_MAX_LEN: usize = 4;
/// Longest run a ZERO opcode can hold.
const SPARSE_ZERO_MAX_LEN: usize = 64;
/// Longest run an XZERO opcode can hold.
const SPARSE_XZERO_MAX_LEN: usize = 16384;
/// 0.5 / ln(2), the estimator's alpha for m → infinity.
const HLL_ALPHA_INF: f64 = 0.721_347_520_444_481_7;
/// Seed hllPatLen passes to MurmurHash64A.
const HASH_SEED: u32 = 0xadc8_3b19;
/// Opcode tag bits.
const SPARSE_XZERO_BIT: u8 = 0x40;
const SPARSE_VAL_BIT: u8 = 0x80;

/// One byte per register, as hllMerge and the multi-key PFCOUNT use them (HLL_RAW).
pub type Registers = [u8; HLL_REGISTERS];

/// Errors with Redis's reply texts (without the leading `-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HllError {
    /// isHLLObjectOrReply rejected the string (bad length, magic or encoding).
    WrongType,
    /// The sparse opcodes do not describe exactly 16384 registers (`invalid_hll_err`).
    Corrupt,
}

impl HllError {
    /// The error reply text, as Redis sends it after the `-`.
    pub fn message(&self) -> &'static str {
        match self {
            HllError::WrongType => "WRONGTYPE Key is not a valid HyperLogLog string value.",
            HllError::Corrupt => "INVALIDOBJ Corrupted HLL object detected",
        }
    }
}

impl fmt::Display for HllError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HllError {}

// ================================ Hashing ================================

/// Redis's MurmurHash64A (64-bit MurmurHash2), reading 8-byte blocks little endian as on
/// x86, so register positions match a Redis server on any host.
pub fn murmurhash64a(key: &[u8], seed: u32) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = u64::from(seed) ^ (key.len() as u64).wrapping_mul(M);
    let blocks = key.chunks_exact(8);
    let tail = blocks.remainder();
    for block in blocks {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(block);
        let mut k = u64::from_le_bytes(buf).wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// hllPatLen: the register an element maps to and the length of its `000..1` pattern
/// (1..=51), which is the value that register must reach.
fn pat_len(element: &[u8]) -> (usize, u8) {
    let hash = murmurhash64a(element, HASH_SEED);
    let index = (hash & HLL_P_MASK) as usize;
    // The forced bit Q bounds the count at Q + 1 even for an all-zero hash.
    let rest = (hash >> HLL_P) | (1u64 << HLL_Q);
    (index, (rest.trailing_zeros() + 1) as u8)
}

// ============================ Header helpers =============================

/// The byte at `i`, or 0 past the end: the sds terminator C reads there when it fetches the
/// "next byte" of the last dense register (whose bits are masked out anyway).
fn byte_at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// The encoding byte, if the value is long enough to have one.
fn encoding(v: &[u8]) -> Option<u8> {
    v.get(ENCODING_AT).copied()
}

/// Whether `v` passes isHLLObjectOrReply's checks: header present, magic `HYLL`, a known
/// encoding, and exactly [`HLL_DENSE_SIZE`] bytes when dense. Sparse opcodes are not checked
/// here (Redis only notices corruption while walking them).
pub fn is_valid(v: &[u8]) -> bool {
    v.len() >= HLL_HDR_SIZE
        && v.starts_with(b"HYLL")
        && v[ENCODING_AT] <= HLL_MAX_ENCODING
        && (v[ENCODING_AT] != HLL_DENSE || v.len() == HLL_DENSE_SIZE)
}

/// Whether `v` is a valid dense HLL (PFMERGE's `use_dense` test).
pub fn is_dense(v: &[u8]) -> bool {
    is_valid(v) && encoding(v) == Some(HLL_DENSE)
}

/// Whether `v` is a valid sparse HLL.
pub fn is_sparse(v: &[u8]) -> bool {
    is_valid(v) && encoding(v) == Some(HLL_SPARSE)
}

/// HLL_INVALIDATE_CACHE: mark the cached cardinality stale, keeping its other bits (Redis
/// never clears them, so they stay visible in the stored bytes).
pub fn invalidate_cache(v: &mut [u8]) {
    if let Some(b) = v.get_mut(CARD_FLAG_AT) {
        *b |= 0x80;
    }
}

/// The cached cardinality when the header holds a valid one (HLL_VALID_CACHE).
pub fn cached_cardinality(v: &[u8]) -> Option<u64> {
    let card: [u8; 8] = v.get(CARD_AT..CARD_AT + 8)?.try_into().ok()?;
    (card[7] & 0x80 == 0).then(|| u64::from_le_bytes(card))
}

/// createHLLObject: a sparse HLL of one XZERO per 16384 registers, cache valid and zero.
/// PFADD and PFMERGE invalidate the cache of a key they create, so their stored bytes end in
/// `0x80` in the cache's last byte; this function itself does not.
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HLL_HDR_SIZE + 2);
    v.extend_from_slice(b"HYLL");
    v.push(HLL_SPARSE);
    v.resize(HLL_HDR_SIZE, 0);
    let mut left = HLL_REGISTERS;
    while left > 0 {
        let run = left.min(SPARSE_XZERO_MAX_LEN);
        v.extend_from_slice(&xzero_bytes(run));
        left -= run;
    }
    v
}

// ========================= Dense representation ==========================

/// HLL_DENSE_GET_REGISTER over the register bytes (header excluded).
fn dense_get(regs: &[u8], index: usize) -> u8 {
    let byte = index * HLL_BITS / 8;
    let fb = (index * HLL_BITS) & 7;
    let b0 = u32::from(byte_at(regs, byte));
    let b1 = u32::from(byte_at(regs, byte + 1));
    (((b0 >> fb) | (b1 << (8 - fb))) & HLL_REGISTER_MAX) as u8
}

/// HLL_DENSE_SET_REGISTER. The byte after the last register is only the terminator in C and
/// receives no bits there, so skipping it when absent changes nothing.
fn dense_put(regs: &mut [u8], index: usize, value: u8) {
    let byte = index * HLL_BITS / 8;
    let fb = (index * HLL_BITS) & 7;
    let fb8 = 8 - fb;
    let v = u32::from(value);
    if let Some(b) = regs.get_mut(byte) {
        *b &= !(HLL_REGISTER_MAX << fb) as u8;
        *b |= (v << fb) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !(HLL_REGISTER_MAX >> fb8) as u8;
        *b |= (v >> fb8) as u8;
    }
}

/// hllDenseSet: raise a register to `count` if it is lower; says whether it changed.
fn dense_raise(regs: &mut [u8], index: usize, count: u8) -> bool {
    if count > dense_get(regs, index) {
        dense_put(regs, index, count);
        true
    } else {
        false
    }
}

/// hllDenseRegHisto: 4 registers per 3 bytes, as the unrolled C loop reads them.
fn dense_histogram(regs: &[u8]) -> Histogram {
    let mut h = [0u64; 256];
    for c in regs.chunks_exact(3) {
        h[usize::from(c[0] & 63)] += 1;
        h[usize::from((c[0] >> 6 | c[1] << 2) & 63)] += 1;
        h[usize::from((c[1] >> 4 | c[2] << 4) & 63)] += 1;
        h[usize::from(c[2] >> 2)] += 1;
    }
    h
}

/// A dense value with the given registers, a stale cache of 0 and zeroed unused bytes:
/// the bytes PFMERGE stores when its destination did not exist and an input was dense.
pub fn dense_from_raw(registers: &Registers) -> Vec<u8> {
    let mut v = vec![0u8; HLL_DENSE_SIZE];
    v[..4].copy_from_slice(b"HYLL");
    v[ENCODING_AT] = HLL_DENSE;
    for (i, &r) in registers.iter().enumerate() {
        dense_put(&mut v[HLL_HDR_SIZE..], i, r);
    }
    invalidate_cache(&mut v);
    v
}

// ========================= Sparse representation =========================

/// One decoded sparse opcode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    /// ZERO or XZERO: `len` registers at 0.
    Zeros { len: usize, xzero: bool },
    /// VAL: `len` registers at `value`.
    Val { value: u8, len: usize },
}

impl Op {
    /// Registers the opcode covers.
    fn len(self) -> usize {
        match self {
            Op::Zeros { len, .. } | Op::Val { len, .. } => len,
        }
    }

    /// Bytes the opcode occupies (2 for XZERO even when truncated, as C steps by 2).
    fn width(self) -> usize {
        match self {
            Op::Zeros { xzero: true, .. } => 2,
            _ => 1,
        }
    }
}

/// Decode the opcode at `pos` of the sparse body (`pos` must be in bounds). An XZERO cut off
/// by the end takes `after`, the byte C finds in the terminator slot, as its second byte.
fn decode(body: &[u8], pos: usize, after: u8) -> Op {
    let b = body[pos];
    if let Some((value, len)) = val_parts(b) {
        Op::Val { value, len }
    } else if b & 0xc0 == SPARSE_XZERO_BIT {
        let low = body.get(pos + 1).copied().unwrap_or(after);
        let len = (usize::from(b & 0x3f) << 8 | usize::from(low)) + 1;
        Op::Zeros { len, xzero: true }
    } else {
        Op::Zeros {
            len: usize::from(b & 0x3f) + 1,
            xzero: false,
        }
    }
}

/// The (value, run length) of a VAL opcode byte, None for the zero opcodes.
fn val_parts(b: u8) -> Option<(u8, usize)> {
    (b & SPARSE_VAL_BIT != 0).then(|| (((b >> 2) & 0x1f) + 1, usize::from(b & 3) + 1))
}

/// HLL_SPARSE_VAL_SET.
fn val_byte(value: u8, len: usize) -> u8 {
    ((value - 1) << 2 | (len as u8 - 1)) | SPARSE_VAL_BIT
}

/// HLL_SPARSE_XZERO_SET.
fn xzero_bytes(len: usize) -> [u8; 2] {
    let l = len - 1;
    [(l >> 8) as u8 | SPARSE_XZERO_BIT, (l & 0xff) as u8]
}

/// The shortest zero opcode for `len` registers, as hllSparseSet's split writes it.
fn push_zeros(seq: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        seq.extend_from_slice(&xzero_bytes(len));
    } else {
        seq.push((len - 1) as u8);
    }
}

/// The walk shared by hllSparseToDense and hllMerge: calls `f(index, value)` for every
/// register a VAL opcode sets and says whether the opcodes cover exactly 16384 registers.
///
/// Any opcode running past the last register fails the walk. Stock 7.0.15 only stopped at a
/// VAL running past the end, and accepted the value when exactly 16384 registers preceded
/// it; the CVE-2025-32023 fix bounds-checks every opcode and rejects that case too (verified
/// against Debian's patched 7.0.15). As run lengths are positive, "no opcode overflows and
/// the total is 16384" is the same as "the total is 16384", PFCOUNT's histogram test.
fn walk_vals(body: &[u8], after: u8, mut f: impl FnMut(usize, u8)) -> bool {
    let mut idx = 0usize;
    let mut pos = 0usize;
    while pos < body.len() {
        let op = decode(body, pos, after);
        if idx + op.len() > HLL_REGISTERS {
            return false;
        }
        if let Op::Val { value, len } = op {
            for i in idx..idx + len {
                f(i, value);
            }
        }
        idx += op.len();
        pos += op.width();
    }
    idx == HLL_REGISTERS
}

/// hllSparseRegHisto: the histogram plus whether the opcodes covered exactly 16384
/// registers (PFCOUNT's `invalid` flag).
fn sparse_histogram(body: &[u8], after: u8) -> (Histogram, bool) {
    let mut h = [0u64; 256];
    let mut idx = 0usize;
    let mut pos = 0usize;
    while pos < body.len() {
        let op = decode(body, pos, after);
        let value = match op {
            Op::Zeros { .. } => 0,
            Op::Val { value, .. } => value,
        };
        h[usize::from(value)] += op.len() as u64;
        idx += op.len();
        pos += op.width();
    }
    (h, idx == HLL_REGISTERS)
}

/// hllSparseToDense of a sparse value (header included): the dense value, or None when the
/// opcodes are corrupt. The header (magic, unused bytes, cached cardinality and its stale
/// flag) is copied; only the encoding changes.
fn sparse_to_dense(v: &[u8], after: u8) -> Option<Vec<u8>> {
    let mut dense = vec![0u8; HLL_DENSE_SIZE];
    dense[..HLL_HDR_SIZE].copy_from_slice(v.get(..HLL_HDR_SIZE)?);
    dense[ENCODING_AT] = HLL_DENSE;
    let (_, regs) = dense.split_at_mut(HLL_HDR_SIZE);
    walk_vals(&v[HLL_HDR_SIZE..], after, |i, value| {
        dense_put(regs, i, value)
    })
    .then_some(dense)
}

/// A value being modified by one command, as C holds it: the bytes plus the byte after them
/// (the sds terminator slot). hllSparseSet reads that slot as the second byte of a final
/// truncated XZERO and, when it splits such an opcode, copies the last byte of the new
/// opcodes there; later registers of the same command then see it.
///
/// Redis keeps the slot with the allocation, so a later command on the same key could see
/// it too. Values here are plain bytes, so each command starts with the slot at 0; this only
/// differs from Redis for corrupt sparse values ending in a lone XZERO byte that a previous
/// PFADD/PFMERGE split.
struct Sds {
    /// The value followed by the terminator slot (always at least one byte).
    mem: Vec<u8>,
}

impl Sds {
    /// Start a command on `v`, with the terminator slot at 0.
    fn new(mut v: Vec<u8>) -> Self {
        v.push(0);
        Sds { mem: v }
    }

    /// The stored value once the command is done.
    fn into_value(mut self) -> Vec<u8> {
        self.mem.pop();
        self.mem
    }

    /// Length of the value (sdslen).
    fn len(&self) -> usize {
        self.mem.len() - 1
    }

    /// The value's bytes.
    fn value(&self) -> &[u8] {
        &self.mem[..self.len()]
    }

    /// The value's bytes, writable.
    fn value_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        &mut self.mem[..len]
    }

    /// The terminator slot.
    fn after(&self) -> u8 {
        self.mem[self.len()]
    }

    /// sdsIncrLen's side effect: the terminator slot becomes 0.
    fn clear_after(&mut self) {
        let len = self.len();
        self.mem[len] = 0;
    }

    /// The encoding byte.
    fn encoding(&self) -> Option<u8> {
        encoding(self.value())
    }
}

/// Where hllSparseSet's step 1 found the opcode covering a register.
struct Found {
    /// Absolute offset of the opcode.
    at: usize,
    /// Absolute offset of the opcode before it, if any (where the merge pass starts).
    prev: Option<usize>,
    /// First register the opcode covers.
    first: usize,
    op: Op,
}

/// hllSparseSet step 1: the opcode covering `index`, or None when the opcodes end first.
fn locate(o: &Sds, index: usize) -> Option<Found> {
    let body = &o.value()[HLL_HDR_SIZE..];
    let mut pos = 0usize;
    let mut first = 0usize;
    let mut prev = None;
    while pos < body.len() {
        let op = decode(body, pos, o.after());
        if index < first + op.len() {
            let at = HLL_HDR_SIZE + pos;
            return Some(Found {
                at,
                prev: prev.map(|p| HLL_HDR_SIZE + p),
                first,
                op,
            });
        }
        prev = Some(pos);
        pos += op.width();
        first += op.len();
    }
    None
}

/// hllSparseSet step 2, general case: the opcodes replacing `found.op` once register
/// `index` is set to `count` (at most 5 bytes: XZERO VAL XZERO).
fn split_sequence(found: &Found, index: usize, count: u8) -> Vec<u8> {
    let last = found.first + found.op.len() - 1;
    let mut seq = Vec::with_capacity(5);
    match found.op {
        Op::Zeros { .. } => {
            if index != found.first {
                push_zeros(&mut seq, index - found.first);
            }
            seq.push(val_byte(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
        Op::Val { value, .. } => {
            if index != found.first {
                seq.push(val_byte(value, index - found.first));
            }
            seq.push(val_byte(count, 1));
            if index != last {
                seq.push(val_byte(value, last - index));
            }
        }
    }
    seq
}

/// hllSparseSet step 3: put `seq` where the opcode at `at` (of nominal `width`) was, the
/// length becoming `len + seq.len() - width`. C zeroes the terminator slot, then copies
/// `seq`; when the opcode was an XZERO cut short by the end, the copy's last byte lands in
/// the slot (one past the new length) rather than in the value.
fn replace_opcode(o: &mut Sds, at: usize, width: usize, seq: &[u8]) {
    let next = at + width;
    if next < o.len() {
        o.mem.splice(at..next, seq.iter().copied());
        o.clear_after();
    } else {
        let new_len = o.len() + seq.len() - width;
        o.mem.truncate(at);
        o.mem.extend_from_slice(seq);
        // One byte longer than the value when truncated: the slot holds seq's last byte.
        o.mem.resize(new_len + 1, 0);
    }
}

/// hllSparseSet step 4: merge adjacent VAL opcodes of equal value, scanning at most 5
/// opcodes from `start`, exactly as C does (a merge re-examines the same position, and
/// zeroes the terminator slot when it shortens the value).
fn merge_adjacent_vals(o: &mut Sds, start: usize) {
    let mut p = start;
    let mut scan = 5;
    while p < o.len() && scan > 0 {
        scan -= 1;
        let b = o.mem[p];
        if b & 0xc0 == SPARSE_XZERO_BIT {
            p += 2;
            continue;
        }
        if b & 0xc0 == 0 {
            p += 1;
            continue;
        }
        let next = o.value().get(p + 1).copied().and_then(val_parts);
        if let (Some((v1, l1)), Some((v2, l2))) = (val_parts(b), next) {
            if v1 == v2 && l1 + l2 <= SPARSE_VAL_MAX_LEN {
                o.mem[p + 1] = val_byte(v1, l1 + l2);
                o.mem.remove(p);
                o.clear_after();
                continue;
            }
        }
        p += 1;
    }
}

/// hllSparseToDense on the working value: a no-op when dense; on corruption `o` is
/// unchanged. The dense value gets a fresh terminator slot.
fn promote(o: &mut Sds) -> Result<(), HllError> {
    if o.encoding() == Some(HLL_DENSE) {
        return Ok(());
    }
    let dense = sparse_to_dense(o.value(), o.after()).ok_or(HllError::Corrupt)?;
    *o = Sds::new(dense);
    Ok(())
}

/// hllSparseSet's `promote` label: go dense, then raise the register there.
fn promote_and_set(o: &mut Sds, index: usize, count: u8) -> Result<bool, HllError> {
    promote(o)?;
    // Redis asserts this is 1: a promotion only happens when the register must grow.
    Ok(dense_raise(
        &mut o.value_mut()[HLL_HDR_SIZE..],
        index,
        count,
    ))
}

/// hllSparseSet: raise register `index` to `count` in a sparse value, in place, promoting
/// to dense when `count` exceeds 32 or the split would grow the value past
/// `sparse_max_bytes`. `Ok(true)` when the register changed; `Err(Corrupt)` when the opcodes
/// end before `index` or the promotion finds them corrupt (`o` unchanged then).
fn sparse_set(
    o: &mut Sds,
    index: usize,
    count: u8,
    sparse_max_bytes: usize,
) -> Result<bool, HllError> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote_and_set(o, index, count);
    }
    let found = locate(o, index).ok_or(HllError::Corrupt)?;
    match found.op {
        // Case A: a VAL already high enough.
        Op::Val { value, .. } if value >= count => return Ok(false),
        // Cases B and C: a one-register VAL or ZERO becomes a VAL in place.
        Op::Val { len: 1, .. }
        | Op::Zeros {
            len: 1,
            xzero: false,
        } => {
            o.mem[found.at] = val_byte(count, 1);
        }
        // Case D: split the opcode.
        op => {
            let seq = split_sequence(&found, index, count);
            let width = op.width();
            if seq.len() > width && o.len() + (seq.len() - width) > sparse_max_bytes {
                return promote_and_set(o, index, count);
            }
            replace_opcode(o, found.at, width, &seq);
        }
    }
    merge_adjacent_vals(o, found.prev.unwrap_or(HLL_HDR_SIZE));
    invalidate_cache(o.value_mut());
    Ok(true)
}

/// hllAdd on the working value (already validated).
fn add_element(o: &mut Sds, element: &[u8], sparse_max_bytes: usize) -> Result<bool, HllError> {
    let (index, count) = pat_len(element);
    if o.encoding() == Some(HLL_DENSE) {
        Ok(dense_raise(
            &mut o.value_mut()[HLL_HDR_SIZE..],
            index,
            count,
        ))
    } else {
        sparse_set(o, index, count, sparse_max_bytes)
    }
}

// ================================ Counting ===============================

/// Register value histogram. Sized for any byte so raw registers above 63 (impossible from
/// Redis data, undefined behaviour in C) cannot index out of bounds.
type Histogram = [u64; 256];

/// hllSigma from Ertl, "New cardinality estimation algorithms for HyperLogLog sketches".
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_prev = z;
        z += x * y;
        y += y;
        if z_prev == z {
            return z;
        }
    }
}

/// hllTau from the same paper. `pow(1 - x, 2)` is written as a product: GCC folds it to
/// exactly that, and the product is correctly rounded.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_prev = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if z_prev == z {
            return z / 3.0;
        }
    }
}

/// `(uint64_t)(double)llroundl(e)` as compiled for x86-64: halves round away from zero, and
/// an out-of-range or NaN estimate becomes LLONG_MIN, which the cast turns into 2^63.
fn llround_as_u64(e: f64) -> u64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    let r = if e.is_nan() || e.abs() >= LIMIT {
        i64::MIN
    } else {
        e.round() as i64
    };
    r as u64
}

/// hllCount's estimator (Ertl's improved raw estimator) over a register histogram.
fn estimate(h: &Histogram) -> u64 {
    let m = HLL_REGISTERS as f64;
    let mut z = m * tau((m - h[HLL_Q + 1] as f64) / m);
    for &c in h[1..=HLL_Q].iter().rev() {
        z += c as f64;
        z *= 0.5;
    }
    z += m * sigma(h[0] as f64 / m);
    llround_as_u64(HLL_ALPHA_INF * m * m / z)
}

/// hllCount over a valid dense or sparse value; `Err(Corrupt)` for sparse opcodes that do
/// not cover exactly 16384 registers.
fn compute(v: &[u8]) -> Result<u64, HllError> {
    let body = &v[HLL_HDR_SIZE..];
    let h = if encoding(v) == Some(HLL_DENSE) {
        dense_histogram(body)
    } else {
        let (h, complete) = sparse_histogram(body, 0);
        if !complete {
            return Err(HllError::Corrupt);
        }
        h
    };
    Ok(estimate(&h))
}

/// The HLL_RAW count multi-key PFCOUNT uses on the merged registers.
pub fn count_raw(registers: &Registers) -> u64 {
    let mut h = [0u64; 256];
    for &r in registers {
        h[usize::from(r)] += 1;
    }
    estimate(&h)
}

/// PFCOUNT on a single key: the cached cardinality when valid, otherwise hllCount, written
/// back into the cache bytes. The flag says whether the bytes changed (Redis then signals the
/// key as modified and bumps `dirty` so the new cache propagates). Errors leave `v` as is.
pub fn count_and_cache(v: &mut [u8]) -> Result<(u64, bool), HllError> {
    if !is_valid(v) {
        return Err(HllError::WrongType);
    }
    if let Some(card) = cached_cardinality(v) {
        return Ok((card, false));
    }
    let card = compute(v)?;
    v[CARD_AT..CARD_AT + 8].copy_from_slice(&card.to_le_bytes());
    Ok((card, true))
}

/// PFCOUNT on a single key (see [`count_and_cache`]; Redis writes the cache back, so the
/// stored bytes change when the cache was stale).
///
/// Redis replies with `addReplyLongLong`, i.e. the value as an `i64`. That only shows for
/// the one out-of-range result, 2^63 (a crafted dense value with every register >= 52),
/// which Redis replies as -9223372036854775808 (and, its top bit being the stale flag, never
/// caches). The same holds for [`pfcount_multi`].
pub fn count(v: &mut [u8]) -> Result<u64, HllError> {
    count_and_cache(v).map(|(card, _)| card)
}

// ========================= Adding and merging ===========================

/// hllAdd plus pfaddCommand's cache invalidation: add one element, saying whether a register
/// changed. Sparse values are promoted to dense as hllSparseSet does (value over 32, or the
/// value would grow past `sparse_max_bytes`, Redis's `hll-sparse-max-bytes`).
///
/// On `Err(Corrupt)` `v` is unchanged by this call; earlier calls of the same PFADD stay
/// applied, as Redis modifies the stored value in place. Prefer [`pfadd`] for a whole
/// command: it also reproduces the terminator-slot effects between elements (see `Sds`).
pub fn add(v: &mut Vec<u8>, element: &[u8], sparse_max_bytes: usize) -> Result<bool, HllError> {
    if !is_valid(v) {
        return Err(HllError::WrongType);
    }
    let mut o = Sds::new(std::mem::take(v));
    let result = add_element(&mut o, element, sparse_max_bytes);
    if let Ok(true) = result {
        invalidate_cache(o.value_mut());
    }
    *v = o.into_value();
    result
}

/// pfaddCommand over one key's value (`None` when the key is missing): creates it, adds the
/// elements, and returns PFADD's reply (creating the key counts as an update, so
/// `PFADD newkey` with no elements replies 1 and stores a stale-cache empty HLL).
///
/// On `Err(WrongType)` nothing changed. On `Err(Corrupt)` the value keeps the elements added
/// before the failing one, exactly what Redis leaves under the key; the caller should store
/// it back (Redis does not count it as a write, so no propagation or keyspace event).
pub fn pfadd<I, T>(
    value: &mut Option<Vec<u8>>,
    elements: I,
    sparse_max_bytes: usize,
) -> Result<bool, HllError>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    if value.as_deref().is_some_and(|v| !is_valid(v)) {
        return Err(HllError::WrongType);
    }
    let created = value.is_none();
    let mut o = Sds::new(value.take().unwrap_or_else(new_sparse));
    let mut updated = created;
    let mut result = Ok(());
    for e in elements {
        match add_element(&mut o, e.as_ref(), sparse_max_bytes) {
            Ok(changed) => updated |= changed,
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }
    if updated && result.is_ok() {
        invalidate_cache(o.value_mut());
    }
    *value = Some(o.into_value());
    result.map(|()| updated)
}

/// hllMerge: `max[i] = MAX(max[i], register i of v)`. `Err(WrongType)` when `v` fails
/// [`is_valid`]; `Err(Corrupt)` when sparse opcodes do not cover exactly 16384 registers
/// (`max` may then be partly updated, as in C, where the caller discards it).
pub fn merge_into(max: &mut Registers, v: &[u8]) -> Result<(), HllError> {
    if !is_valid(v) {
        return Err(HllError::WrongType);
    }
    let body = &v[HLL_HDR_SIZE..];
    if encoding(v) == Some(HLL_DENSE) {
        // Four 6-bit registers in every 3 bytes, least significant bits first: read them a
        // group at a time (is_valid checked the dense length).
        for (regs, bytes) in max.chunks_exact_mut(4).zip(body.chunks_exact(3)) {
            let w = u32::from(bytes[0]) | u32::from(bytes[1]) << 8 | u32::from(bytes[2]) << 16;
            for (k, m) in regs.iter_mut().enumerate() {
                *m = (*m).max(((w >> (6 * k)) & HLL_REGISTER_MAX) as u8);
            }
        }
        return Ok(());
    }
    let complete = walk_vals(body, 0, |i, value| {
        if value > max[i] {
            max[i] = value;
        }
    });
    if complete {
        Ok(())
    } else {
        Err(HllError::Corrupt)
    }
}

/// Multi-key PFCOUNT: merge the existing keys' values in argument order (missing keys are
/// `None` and count as empty) and count the union; no cache is read or written.
pub fn pfcount_multi(values: &[Option<&[u8]>]) -> Result<u64, HllError> {
    let mut max = [0u8; HLL_REGISTERS];
    for v in values.iter().flatten() {
        merge_into(&mut max, v)?;
    }
    Ok(count_raw(&max))
}

/// pfmergeCommand's write step: `dest` is the destination's current value (`None` when
/// missing, then createHLLObject's), `max` the merged registers of all inputs including the
/// destination, and `use_dense` whether any input was dense. Like Redis, it converts the
/// destination to dense when `use_dense`, otherwise raises registers one by one through
/// hllSparseSet in index order (which may promote midway), then invalidates the cache.
/// The header's unused bytes and old cache bits survive, as in Redis.
pub fn pfmerge_store(
    dest: Option<Vec<u8>>,
    max: &Registers,
    use_dense: bool,
    sparse_max_bytes: usize,
) -> Result<Vec<u8>, HllError> {
    if dest.as_deref().is_some_and(|d| !is_valid(d)) {
        return Err(HllError::WrongType);
    }
    let mut o = Sds::new(dest.unwrap_or_else(new_sparse));
    if use_dense {
        promote(&mut o)?;
    }
    for (j, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        if o.encoding() == Some(HLL_DENSE) {
            dense_raise(&mut o.value_mut()[HLL_HDR_SIZE..], j, m);
        } else {
            // Redis ignores hllSparseSet's result here; a destination that merged cleanly
            // cannot fail.
            let _ = sparse_set(&mut o, j, m, sparse_max_bytes);
        }
    }
    invalidate_cache(o.value_mut());
    Ok(o.into_value())
}

/// PFMERGE: the new bytes of the destination. `dest` is its current value (`None` when
/// missing) and is merged first, as Redis merges `argv[1]` too; `sources` are the other keys in
/// argument order (`None` for missing ones). Errors come from the first bad input in that
/// order, and the destination must then be left unchanged.
pub fn pfmerge(
    dest: Option<&[u8]>,
    sources: &[Option<&[u8]>],
    sparse_max_bytes: usize,
) -> Result<Vec<u8>, HllError> {
    let mut max = [0u8; HLL_REGISTERS];
    let mut use_dense = false;
    for v in std::iter::once(dest)
        .chain(sources.iter().copied())
        .flatten()
    {
        merge_into(&mut max, v)?;
        use_dense |= is_dense(v);
    }
    pfmerge_store(dest.map(<[u8]>::to_vec), &max, use_dense, sparse_max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 3000;

    fn empty_regs() -> Registers {
        [0u8; HLL_REGISTERS]
    }

    #[test]
    fn murmur_known_values() {
        // Computed with hyperloglog.c's MurmurHash64A compiled by gcc on x86-64.
        let cases: [(&[u8], u64, u64); 6] = [
            (b"", 0xd8df_ea65_85bc_9732, 0),
            (b"a", 0x53d2_470a_9b43_b1a7, 0x0717_17d2_d36b_6b11),
            (b"hello", 0x0f65_6f01_eecf_e400, 0x1e68_d17c_457b_f117),
            (b"12345678", 0x95eb_b863_8913_2953, 0x758f_67d1_62b2_d202),
            (
                b"123456789abcdef",
                0x0a29_5e58_95af_07b9,
                0xffda_8e09_1774_14c3,
            ),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x5160_6c5c_5b56_1ace,
                0x5589_ca33_042a_861b,
            ),
        ];
        for (key, with_seed, zero_seed) in cases {
            assert_eq!(murmurhash64a(key, HASH_SEED), with_seed, "{key:?}");
            assert_eq!(murmurhash64a(key, 0), zero_seed, "{key:?}");
        }
    }

    #[test]
    fn new_sparse_layout() {
        let v = new_sparse();
        assert_eq!(
            v,
            [b'H', b'Y', b'L', b'L', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff]
        );
        assert!(is_valid(&v) && is_sparse(&v) && !is_dense(&v));
        assert_eq!(cached_cardinality(&v), Some(0));
    }

    #[test]
    fn validity_checks() {
        assert!(!is_valid(b"HYLL"));
        assert!(!is_valid(b"HYLX\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"));
        assert!(!is_valid(b"HYLL\x02\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"));
        assert!(!is_valid(b"HYLL\0\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"));
        assert!(is_valid(&dense_from_raw(&empty_regs())));
        assert_eq!(dense_from_raw(&empty_regs()).len(), HLL_DENSE_SIZE);
    }

    #[test]
    fn dense_registers_round_trip() {
        let mut regs = empty_regs();
        for (i, r) in regs.iter_mut().enumerate() {
            *r = ((i * 7 + 3) % 64) as u8;
        }
        let v = dense_from_raw(&regs);
        let mut back = empty_regs();
        merge_into(&mut back, &v).expect("valid dense");
        assert_eq!(back, regs);
        let h = dense_histogram(&v[HLL_HDR_SIZE..]);
        assert_eq!(h.iter().sum::<u64>(), HLL_REGISTERS as u64);
    }

    #[test]
    fn empty_counts_zero() {
        let mut v = new_sparse();
        assert_eq!(count(&mut v), Ok(0));
        assert_eq!(count_raw(&empty_regs()), 0);
        let mut d = dense_from_raw(&empty_regs());
        assert_eq!(count(&mut d), Ok(0));
    }

    #[test]
    fn pfadd_creates_with_stale_cache() {
        let mut slot = None;
        assert_eq!(pfadd(&mut slot, Vec::<&[u8]>::new(), MAX), Ok(true));
        let v = slot.expect("created");
        assert_eq!(v[CARD_FLAG_AT], 0x80);
        assert_eq!(&v[HLL_HDR_SIZE..], &[0x7f, 0xff]);
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut sparse = new_sparse();
        let mut dense = dense_from_raw(&empty_regs());
        for i in 0..3000u32 {
            let e = i.to_le_bytes();
            let a = add(&mut sparse, &e, usize::MAX).expect("sparse add");
            let b = add(&mut dense, &e, MAX).expect("dense add");
            assert_eq!(a, b, "element {i}");
        }
        assert!(is_sparse(&sparse));
        let mut rs = empty_regs();
        let mut rd = empty_regs();
        merge_into(&mut rs, &sparse).expect("sparse");
        merge_into(&mut rd, &dense).expect("dense");
        assert_eq!(rs, rd);
        assert_eq!(count(&mut sparse), count(&mut dense));
        let promoted = sparse_to_dense(&sparse, 0).expect("valid");
        assert_eq!(&promoted[HLL_HDR_SIZE..], &dense[HLL_HDR_SIZE..]);
    }

    #[test]
    fn duplicates_do_not_change() {
        let mut v = new_sparse();
        assert_eq!(add(&mut v, b"x", MAX), Ok(true));
        assert_eq!(add(&mut v, b"x", MAX), Ok(false));
        assert_eq!(count(&mut v), Ok(1));
        assert_eq!(cached_cardinality(&v), Some(1));
        assert_eq!(add(&mut v, b"x", MAX), Ok(false));
        assert_eq!(cached_cardinality(&v), Some(1));
    }

    #[test]
    fn promotes_past_max_bytes() {
        let mut v = new_sparse();
        let mut i = 0u32;
        while is_sparse(&v) {
            add(&mut v, &i.to_le_bytes(), 300).expect("add");
            assert!(v.len() <= 300 || is_dense(&v));
            i += 1;
        }
        assert_eq!(v.len(), HLL_DENSE_SIZE);
    }

    #[test]
    fn accuracy_is_reasonable() {
        let mut v = new_sparse();
        for i in 0..100_000u32 {
            add(&mut v, format!("e{i}").as_bytes(), MAX).expect("add");
        }
        let c = count(&mut v).expect("count") as f64;
        assert!((c - 100_000.0).abs() < 100_000.0 * 0.05, "{c}");
    }

    #[test]
    fn corrupt_sparse_errors() {
        let hdr = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80".to_vec();
        let with = |ops: &[u8]| [hdr.as_slice(), ops].concat();
        // (value, whether it is valid: its opcodes cover exactly 16384 registers, an XZERO
        // cut short by the end reading 0 as its second byte).
        let cases = [
            (hdr.clone(), false),                     // no opcodes
            (with(&[0x7f]), false),                   // truncated XZERO
            (with(&[0x7f, 0xff, 0x80]), false),       // VAL past 16384
            (with(&[0x7f, 0xff, 0x00]), false),       // ZERO past 16384
            (with(&[0x7f, 0xfe]), false),             // one register short
            (with(&[0xff; 40]), false),               // VALs only
            (with(&[0x7f, 0xff, 0x7f, 0xff]), false), // covered twice
            (
                with(
                    &[0x80; 255]
                        .iter()
                        .chain(&[0x7f])
                        .copied()
                        .collect::<Vec<_>>(),
                ),
                true,
            ),
        ];
        for (c, valid) in cases {
            let mut v = c.clone();
            assert_eq!(count(&mut v).is_ok(), valid, "{c:?}");
            if !valid {
                assert_eq!(count(&mut v), Err(HllError::Corrupt));
                assert_eq!(v, c);
            }
            let mut max = empty_regs();
            assert_eq!(merge_into(&mut max, &c).is_ok(), valid, "{c:?}");
            assert_eq!(pfmerge(Some(&c), &[], MAX).is_ok(), valid, "{c:?}");
            let mut v = c.clone();
            for i in 0..200u32 {
                let _ = add(&mut v, &i.to_le_bytes(), MAX);
                let _ = add(&mut v, &i.to_le_bytes(), 0);
            }
        }
        let mut bad = new_sparse();
        bad[0] = b'X';
        assert_eq!(add(&mut bad, b"a", MAX), Err(HllError::WrongType));
        assert_eq!(count(&mut bad), Err(HllError::WrongType));
        assert_eq!(
            HllError::Corrupt.to_string(),
            "INVALIDOBJ Corrupted HLL object detected"
        );
    }

    #[test]
    fn pfmerge_sparse_and_dense() {
        let mut a = None;
        let mut b = None;
        pfadd(&mut a, (0..50u32).map(|i| i.to_le_bytes()), MAX).expect("a");
        pfadd(&mut b, (25..80u32).map(|i| i.to_le_bytes()), MAX).expect("b");
        let (a, b) = (a.expect("a"), b.expect("b"));
        let merged = pfmerge(None, &[Some(&a), Some(&b)], MAX).expect("merge");
        assert!(is_sparse(&merged));
        let mut both = None;
        pfadd(&mut both, (0..80u32).map(|i| i.to_le_bytes()), MAX).expect("both");
        let mut r1 = empty_regs();
        let mut r2 = empty_regs();
        merge_into(&mut r1, &merged).expect("m");
        merge_into(&mut r2, both.as_deref().expect("both")).expect("b");
        assert_eq!(r1, r2);
        let d = dense_from_raw(&r2);
        let merged = pfmerge(None, &[Some(&a), Some(&d)], MAX).expect("merge");
        assert_eq!(merged, d);
        assert_eq!(
            pfcount_multi(&[Some(&a), None, Some(&b)]),
            Ok(count_raw(&r2))
        );
    }

    #[test]
    fn estimator_edges() {
        assert_eq!(llround_as_u64(f64::INFINITY), 1u64 << 63);
        assert_eq!(llround_as_u64(2.5), 3);
        let mut regs = empty_regs();
        regs.fill(60);
        assert_eq!(count_raw(&regs), 1u64 << 63);
    }

    /// FNV-1a, to compare dense values with digests taken from redis-server.
    fn fnv(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    }

    fn elements(prefix: &str, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .collect()
    }

    /// Values and replies captured from redis-server 7.0.15 (Debian 7.0.15-1~deb12u10).
    #[test]
    fn golden_values_from_redis() {
        let mut g1 = None;
        assert_eq!(pfadd(&mut g1, [b"a", b"b", b"c"], MAX), Ok(true));
        let mut g1 = g1.expect("g1");
        assert_eq!(
            g1,
            unhex("48594c4c01000000000000000000008060f38050b1844bfb80425a")
        );
        assert_eq!(count_and_cache(&mut g1), Ok((3, true)));
        assert_eq!(
            g1,
            unhex("48594c4c01000000030000000000000060f38050b1844bfb80425a")
        );
        assert_eq!(count_and_cache(&mut g1), Ok((3, false)));

        let mut g2 = None;
        pfadd(&mut g2, elements("e", 20000), MAX).expect("g2");
        let mut g2 = g2.expect("g2");
        assert_eq!(
            (g2.len(), fnv(&g2)),
            (HLL_DENSE_SIZE, 0x075d_2639_6862_b2bf)
        );
        let g2_before_count = g2.clone();
        assert_eq!(count(&mut g2), Ok(19901));
        assert_eq!(fnv(&g2), 0x5b77_6629_ffcd_d575);

        let mut g3 = None;
        pfadd(&mut g3, elements("e", 1500), MAX).expect("g3");
        let mut g3 = g3.expect("g3");
        assert_eq!((g3.len(), fnv(&g3)), (2719, 0xd67e_e50b_81f2_a28c));
        let mut g4 = None;
        pfadd(&mut g4, elements("f", 1500), MAX).expect("g4");
        let g4 = g4.expect("g4");
        assert_eq!(pfcount_multi(&[Some(&g3), Some(&g4)]), Ok(3004));
        let g5 = pfmerge(None, &[Some(&g3), Some(&g4)], MAX).expect("g5");
        assert_eq!(
            (g5.len(), fnv(&g5)),
            (HLL_DENSE_SIZE, 0xb8bd_874f_b853_8dad)
        );
        let g6 = pfmerge(None, &[Some(&g3), Some(&g2)], MAX).expect("g6");
        assert_eq!(g6, g2_before_count);
        assert_eq!(count(&mut g3), Ok(1509));

        // A lone XZERO byte at the end reads the terminator slot as its second byte.
        let hdr = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0";
        let truncated = [&hdr[..], &[0x80; 255], &[0x7f]].concat();
        let mut g7 = Some(truncated.clone());
        assert_eq!(pfadd(&mut g7, elements("x", 6), MAX), Ok(true));
        let g7 = g7.expect("g7");
        assert_eq!(g7.len(), 289);
        assert_eq!(
            g7[16 + 255..],
            unhex("4d45844295b44d088c4e578c476d884bed88")[..]
        );
        let mut g8 = Some(truncated);
        assert_eq!(pfadd(&mut g8, Vec::<Vec<u8>>::new(), MAX), Ok(false));
    }

    /// Random garbage behind a valid header never panics, whatever the command.
    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let len = (next() % 64) as usize;
            let mut v = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80".to_vec();
            v.extend((0..len).map(|_| next() as u8));
            let max_bytes = [0, 30, 3000][round % 3];
            let mut slot = Some(v.clone());
            let _ = pfadd(
                &mut slot,
                (0..20u32).map(|i| (i + 20 * round as u32).to_le_bytes()),
                max_bytes,
            );
            let _ = count(&mut v.clone());
            let mut max = empty_regs();
            let _ = merge_into(&mut max, &v);
            let _ = pfmerge(Some(&v), &[], max_bytes);
            let mut raw = empty_regs();
            for _ in 0..8 {
                raw[(next() % HLL_REGISTERS as u64) as usize] = (next() % 40) as u8;
            }
            let _ = pfmerge_store(Some(v.clone()), &raw, false, max_bytes);
        }
    }
}
