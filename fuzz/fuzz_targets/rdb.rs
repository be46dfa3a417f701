//! Redis's serialization on arbitrary bytes: RESTORE payloads (the footer's CRC64 set right
//! before decoding, so the fuzzer reaches the object decoders instead of stopping at the
//! checksum) and whole RDB files as `--import-rdb` reads them. Either is refused with an error
//! or decoded; never a panic, a hang, or an allocation the input does not hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use locus::persist::{migrate, rdb};

fuzz_target!(|data: &[u8]| {
    let mut payload = data.to_vec();
    if payload.len() >= 10 {
        let body = payload.len() - 8;
        let crc = rdb::crc64(0, &payload[..body]);
        payload[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let _ = migrate::restore(&payload);
    let _ = migrate::import_rdb(data, true, 0, |_, _, _, _, _, _| Ok(()));
});
