//! Small helpers of the server's layers. Number parsing and the clocks live in the engine crate,
//! which the server and the Redis module share; they are re-exported here under their old names.

pub use locus_engine::clock::*;
pub use locus_engine::numbers::*;

/// ASCII-uppercases into a stack buffer for case-insensitive lookups without allocating.
pub fn upper<'a>(s: &[u8], buf: &'a mut [u8; 64]) -> Option<&'a [u8]> {
    if s.len() > buf.len() {
        return None;
    }
    for (d, c) in buf.iter_mut().zip(s) {
        *d = c.to_ascii_uppercase();
    }
    Some(&buf[..s.len()])
}

/// Redis's CRC-64 (Jones polynomial, reflected, as in crc64.c), which ends DUMP payloads.
pub fn crc64_jones(mut crc: u64, data: &[u8]) -> u64 {
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x95ac_9329_ac4b_c9b5
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    for &b in data {
        crc = table[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod crc64_tests {
    #[test]
    fn redis_check_value() {
        // crc64.c's own test vector.
        assert_eq!(super::crc64_jones(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }
}
