//! The RESP framer (RESP2 multibulk and inline commands; RESP3 clients send the same framing)
//! on arbitrary bytes, as an authenticated and an unauthenticated client: every complete
//! request is taken off the buffer until it is incomplete or a protocol error ends it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use locus::server::protocol::{frame_request, Framed, Limits};

fuzz_target!(|data: &[u8]| {
    for authenticated in [true, false] {
        let mut buf = bytes::BytesMut::from(data);
        let limits = Limits {
            max_bulk: 1 << 20,
            authenticated,
        };
        let mut before = buf.len() + 1;
        while let Ok(Framed::Request(_)) = frame_request(&mut buf, &limits) {
            // Each request consumes input: the framer never loops in place.
            assert!(buf.len() < before || buf.is_empty());
            before = buf.len();
        }
    }
});
