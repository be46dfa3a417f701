//! The AOF record reader on arbitrary bytes: records are read until the end or the first bad
//! one, which must be an error, not a panic or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for r in locus::persist::aof::records(data) {
        if r.is_err() {
            break;
        }
    }
});
