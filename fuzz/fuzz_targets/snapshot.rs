//! The snapshot loader on arbitrary files: it must refuse what is not a whole snapshot with an
//! error, never panic or allocate what the file does not hold. The trailing checksum is set
//! right before the file is read, so that the fuzzer reaches the body parser instead of
//! stopping at the checksum every time. The bytes go to the loader in memory (`read_bytes`,
//! what `read` calls on the file's mapping), so no file is written per input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = data.to_vec();
    if file.len() >= 4 {
        let body = file.len() - 4;
        let crc = crc32fast::hash(&file[..body]);
        file[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let _ = locus::persist::read_bytes(bytes::Bytes::from(file));
});
