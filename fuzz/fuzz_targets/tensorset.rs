//! AI.TENSORSET's arguments (type, shape, BLOB or VALUES) as the command parses them: words
//! split on spaces, with a 1 MiB tensor limit, so a shape that overflows or exceeds it must be
//! refused before anything is allocated.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use locus::cmd::tensors::parse_tensor;
use locus::cmd::Args;
use locus::server::protocol::Request;

fuzz_target!(|data: &[u8]| {
    let mut words = vec![Bytes::from_static(b"AI.TENSORSET"), Bytes::from_static(b"k")];
    words.extend(data.split(|&b| b == b' ').map(Bytes::copy_from_slice));
    let mut args = Args::new(Request::from_args(&words), 2);
    if let Ok(t) = parse_tensor(&mut args, 1 << 20) {
        assert!(t.memory_usage() <= (1 << 20) + 4096);
    }
});
