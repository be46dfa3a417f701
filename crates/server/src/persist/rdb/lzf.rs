//! LZF, the compression RDB uses for strings longer than 20 bytes (liblzf 3.6 as Redis
//! vendors it in lzf_c.c and lzf_d.c).
//!
//! The compressor is a faithful port of Redis's build (HLOG 16, VERY_FAST, no ULTRA_FAST), so
//! that a compressed string comes out byte for byte as Redis writes it: a payload made here
//! can then be compared with Redis's own.
//!
//! Format: `000LLLLL` + L+1 literal bytes; `LLLooooo oooooooo` copies L+2 bytes from
//! offset o+1 back; `111ooooo LLLLLLLL oooooooo` copies L+9 bytes.

use std::cell::RefCell;

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// The most output one input byte can produce: a three-byte back reference copies 264.
const MAX_EXPANSION: usize = 88;

/// The compressor's hash table of recent positions, kept per thread so that compressing many
/// short strings does not allocate and clear 65536 slots each time. A slot holds
/// `(generation << 32) | position`; a slot of another generation counts as empty.
struct HashTable {
    slots: Vec<u64>,
    generation: u64,
}

thread_local! {
    static TABLE: RefCell<HashTable> = const {
        RefCell::new(HashTable { slots: Vec::new(), generation: 0 })
    };
}

impl HashTable {
    /// Starts a new compression: older entries become invisible.
    fn begin(&mut self) {
        if self.slots.len() != HSIZE || self.generation >= u64::from(u32::MAX) {
            self.slots = vec![0; HSIZE];
            self.generation = 0;
        }
        self.generation += 1;
    }

    fn get(&self, slot: usize) -> Option<usize> {
        let entry = self.slots[slot];
        (entry >> 32 == self.generation).then_some((entry & 0xffff_ffff) as usize)
    }

    fn set(&mut self, slot: usize, pos: usize) {
        self.slots[slot] = (self.generation << 32) | pos as u64;
    }
}

fn first_hash(input: &[u8], p: usize) -> u32 {
    (u32::from(input[p]) << 8) | u32::from(input[p + 1])
}

fn next_hash(hval: u32, input: &[u8], p: usize) -> u32 {
    (hval << 8) | u32::from(input[p + 2])
}

fn slot_of(hval: u32) -> usize {
    ((hval >> (3 * 8 - HLOG)).wrapping_sub(hval.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `input` into at most `out_len` bytes, or None when it does not fit (Redis then
/// stores the string as it is). Redis asks for `len - 4`: compression must save 4 bytes.
pub(super) fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    if input.is_empty() || out_len == 0 || u32::try_from(input.len()).is_err() {
        return None;
    }
    TABLE.with(|table| {
        let mut table = table.borrow_mut();
        table.begin();
        compress_with(&mut table, input, out_len)
    })
}

/// The body of `lzf_compress`, with indexes for pointers. `out` has slack past `out_len` so
/// that the few writes liblzf makes before its bound checks cannot index out of range; the
/// checks themselves are liblzf's, so the decision to give up is the same.
fn compress_with(htab: &mut HashTable, input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let in_end = input.len();
    let mut out = vec![0u8; out_len + 8];
    let mut op = 1usize; // The first literal run's header goes at 0.
    let mut lit = 0usize;
    let mut ip = 0usize;
    let mut hval = if in_end >= 2 { first_hash(input, 0) } else { 0 };

    while ip + 2 < in_end {
        hval = next_hash(hval, input, ip);
        let slot = slot_of(hval);
        let candidate = htab.get(slot);
        htab.set(slot, ip);

        let matched = candidate.filter(|&r| {
            r > 0
                && r < ip
                && ip - r - 1 < MAX_OFF
                && input[r + 2] == input[ip + 2]
                && input[r] == input[ip]
                && input[r + 1] == input[ip + 1]
        });
        let Some(reference) = matched else {
            if op >= out_len {
                return None;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
            continue;
        };

        let off = ip - reference - 1;
        let maxlen = (in_end - ip - 2).min(MAX_REF);
        let run_open = usize::from(lit == 0);
        if op + 3 + 1 >= out_len && op - run_open + 3 + 1 >= out_len {
            return None;
        }
        out[op - lit - 1] = (lit as u8).wrapping_sub(1);
        op -= run_open;

        let len = match_length(input, reference, ip, maxlen) - 2;
        ip += 1;
        if len < 7 {
            out[op] = ((off >> 8) + (len << 5)) as u8;
            op += 1;
        } else {
            out[op] = ((off >> 8) + (7 << 5)) as u8;
            out[op + 1] = (len - 7) as u8;
            op += 2;
        }
        out[op] = off as u8;
        op += 1;
        lit = 0;
        op += 1;
        ip += len + 1;
        if ip + 2 >= in_end {
            break;
        }
        // VERY_FAST: hash the two positions before the new one.
        ip -= 2;
        hval = first_hash(input, ip);
        hval = next_hash(hval, input, ip);
        htab.set(slot_of(hval), ip);
        ip += 1;
        hval = next_hash(hval, input, ip);
        htab.set(slot_of(hval), ip);
        ip += 1;
    }

    if op + 3 > out_len {
        return None;
    }
    while ip < in_end {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    if op > out_len {
        return None;
    }
    out.truncate(op);
    Some(out)
}

/// How many bytes at `ip` repeat those at `reference`, as liblzf counts them: 16 bytes are
/// compared unrolled first when more than 16 may match, then one at a time up to `maxlen`.
fn match_length(input: &[u8], reference: usize, ip: usize, maxlen: usize) -> usize {
    let mut len = 2;
    if maxlen > 16 {
        for _ in 0..16 {
            len += 1;
            if input[reference + len] != input[ip + len] {
                return len;
            }
        }
    }
    loop {
        len += 1;
        if !(len < maxlen && input[reference + len] == input[ip + len]) {
            return len;
        }
    }
}

/// Decompresses `input`, which must expand to exactly `expected_len` bytes. The output grows
/// as it is produced (reserved no further than `input` could expand), so a false length
/// costs nothing.
pub(super) fn decompress(input: &[u8], expected_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(expected_len.min(input.len().saturating_mul(MAX_EXPANSION)));
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if out.len() + run > expected_len {
                return None;
            }
            out.extend_from_slice(input.get(ip..ip + run)?);
            ip += run;
            continue;
        }
        let mut len = ctrl >> 5;
        if len == 7 {
            len += usize::from(*input.get(ip)?);
            ip += 1;
        }
        let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(ip)?) + 1;
        ip += 1;
        if out.len() + len + 2 > expected_len || back > out.len() {
            return None;
        }
        let start = out.len() - back;
        for k in 0..len + 2 {
            let byte = out[start + k];
            out.push(byte);
        }
    }
    (out.len() == expected_len).then_some(out)
}
