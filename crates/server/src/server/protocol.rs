//! Request framing: RESP multibulk requests (decoded by `redis-protocol`) and inline commands,
//! with Redis's limits and its exact `Protocol error: …` texts.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::{decode::decode_range, types::RangeFrame};
use smallvec::SmallVec;

/// Longest inline request or length line Redis accepts before the terminating newline.
pub const INLINE_MAX: usize = 64 * 1024;
/// Redis's multibulk element cap (INT_MAX).
const MULTIBULK_MAX: i64 = i32::MAX as i64;

/// Limits that apply to one connection's requests.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bulk: usize,
    /// Before AUTH succeeds Redis accepts only tiny requests, so that an unauthenticated peer
    /// cannot make the server buffer large amounts.
    pub authenticated: bool,
}

/// One request's arguments as ranges of a single frozen buffer: framing a request allocates one
/// range list rather than a shared handle per argument, and commands slice out (or copy) only
/// the arguments they keep.
#[derive(Clone, Debug, Default)]
pub struct Request {
    buf: Bytes,
    /// Argument ranges; most requests have few arguments, kept inline without an allocation.
    ranges: SmallVec<[(usize, usize); 6]>,
}

impl Request {
    /// Builds a request from separate arguments (inline commands, tests, internal calls).
    pub fn from_args<I, A>(args: I) -> Request
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let mut buf = Vec::new();
        let mut ranges = SmallVec::new();
        for a in args {
            let start = buf.len();
            buf.extend_from_slice(a.as_ref());
            ranges.push((start, buf.len()));
        }
        Request {
            buf: Bytes::from(buf),
            ranges,
        }
    }

    /// Arguments `from..to` of this request as a request of their own, sharing the buffer (a
    /// DAG's ops).
    pub fn sub(&self, from: usize, to: usize) -> Request {
        Request {
            buf: self.buf.clone(),
            ranges: self.ranges[from..to].iter().copied().collect(),
        }
    }

    /// A request whose arguments are `ranges` of `buf` (no copy): commands read back from a
    /// mapped AOF file.
    pub fn from_ranges(buf: Bytes, ranges: &[(usize, usize)]) -> Request {
        Request {
            buf,
            ranges: ranges.iter().copied().collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i` as a byte slice.
    pub fn arg(&self, i: usize) -> &[u8] {
        let (s, e) = self.ranges[i];
        &self.buf[s..e]
    }

    /// Argument `i` as a shared handle on the request buffer.
    pub fn bytes(&self, i: usize) -> Bytes {
        let (s, e) = self.ranges[i];
        self.buf.slice(s..e)
    }

    pub fn to_vec(&self) -> Vec<Bytes> {
        (0..self.len()).map(|i| self.bytes(i)).collect()
    }
}

/// Requests are equal when their arguments are, wherever the bytes live.
impl PartialEq for Request {
    fn eq(&self, other: &Request) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.arg(i) == other.arg(i))
    }
}

/// The outcome of trying to frame one request.
#[derive(Debug, PartialEq)]
pub enum Framed {
    /// A request's arguments (possibly empty: Redis ignores `*0` and blank inline lines).
    Request(Request),
    /// More bytes are needed; nothing is worth retrying until the buffer holds `need` bytes.
    Incomplete { need: usize },
}

/// A protocol violation; the text follows `Protocol error: ` in the reply.
#[derive(Debug, PartialEq)]
pub struct ProtocolError(pub String);

pub fn frame_request(buf: &mut BytesMut, limits: &Limits) -> Result<Framed, ProtocolError> {
    if buf.is_empty() {
        return Ok(Framed::Incomplete { need: 1 });
    }
    if buf[0] != b'*' {
        return frame_inline(buf);
    }
    match decode_range(&buf[..]) {
        Ok(Some((frame, amt))) => request_args(frame, buf.split_to(amt).freeze(), limits),
        Ok(None) | Err(_) => check_partial(buf, limits),
    }
}

/// Turns a decoded multibulk into arguments, enforcing the element rules Redis enforces.
fn request_args(frame: RangeFrame, buf: Bytes, limits: &Limits) -> Result<Framed, ProtocolError> {
    let items = match frame {
        RangeFrame::Array(items) => items,
        RangeFrame::Null => return Ok(Framed::Request(Request::default())),
        _ => return Err(ProtocolError("invalid multibulk length".into())),
    };
    if !limits.authenticated && items.len() > 10 {
        return Err(ProtocolError("unauthenticated multibulk length".into()));
    }
    let mut ranges = SmallVec::with_capacity(items.len());
    for item in items {
        match item {
            RangeFrame::BulkString((s, e)) => {
                let len = e - s;
                if !limits.authenticated && len > 16384 {
                    return Err(ProtocolError("unauthenticated bulk length".into()));
                }
                if len > limits.max_bulk {
                    return Err(ProtocolError("invalid bulk length".into()));
                }
                ranges.push((s, e))
            }
            // A null bulk (`$-1`) is a negative length to Redis.
            RangeFrame::Null => return Err(ProtocolError("invalid bulk length".into())),
            other => {
                let c = match other {
                    RangeFrame::SimpleString(_) => '+',
                    RangeFrame::Error(_) => '-',
                    RangeFrame::Integer(_) => ':',
                    _ => '*',
                };
                return Err(ProtocolError(format!("expected '$', got '{c}'")));
            }
        }
    }
    Ok(Framed::Request(Request { buf, ranges }))
}

/// Reads one `\r\n`-terminated number line starting at `pos` (just after the type byte).
fn read_len(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = &buf[pos.min(buf.len())..];
    let end = rest.iter().position(|&c| c == b'\r')?;
    if rest.len() < end + 2 {
        return None;
    }
    Some((&rest[..end], pos + end + 2))
}

/// Walks an incomplete (or undecodable) multibulk header so that bad lengths are refused before
/// their bytes arrive, and tells how many bytes the request needs at least, so that a large
/// bulk is read into one reserved buffer instead of being re-parsed on every read.
fn check_partial(buf: &mut BytesMut, limits: &Limits) -> Result<Framed, ProtocolError> {
    let Some((count, mut pos)) = read_len(buf, 1) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError("too big mbulk count string".into()));
        }
        return Ok(Framed::Incomplete {
            need: buf.len() + 1,
        });
    };
    let count = match crate::util::parse_i64(count) {
        Some(n) if n <= MULTIBULK_MAX => n,
        _ => return Err(ProtocolError("invalid multibulk length".into())),
    };
    if count <= 0 {
        // Redis skips a multibulk of no (or a negative number of) elements, as an empty request.
        let _ = buf.split_to(pos);
        return Ok(Framed::Request(Request::default()));
    }
    if !limits.authenticated && count > 10 {
        return Err(ProtocolError("unauthenticated multibulk length".into()));
    }
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(Framed::Incomplete { need: pos + 1 });
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError(format!(
                "expected '$', got '{}'",
                buf[pos] as char
            )));
        }
        let Some((len, body)) = read_len(buf, pos + 1) else {
            if buf.len() - pos > INLINE_MAX {
                return Err(ProtocolError("too big bulk count string".into()));
            }
            return Ok(Framed::Incomplete {
                need: buf.len() + 1,
            });
        };
        let len = match crate::util::parse_i64(len) {
            Some(n) if n >= 0 && (n as usize) <= limits.max_bulk => n as usize,
            _ => return Err(ProtocolError("invalid bulk length".into())),
        };
        if !limits.authenticated && len > 16384 {
            return Err(ProtocolError("unauthenticated bulk length".into()));
        }
        let end = body + len + 2;
        if end > buf.len() {
            if len >= 32 * 1024 {
                buf.reserve(end - buf.len());
            }
            return Ok(Framed::Incomplete { need: end });
        }
        pos = end;
    }
    // Every element is complete yet the decoder refused the request.
    Err(ProtocolError("invalid multibulk format".into()))
}

fn frame_inline(buf: &mut BytesMut) -> Result<Framed, ProtocolError> {
    let Some(nl) = buf.iter().position(|&c| c == b'\n') else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(Framed::Incomplete {
            need: buf.len() + 1,
        });
    };
    let line = buf.split_to(nl + 1);
    let mut line = &line[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    split_args(line)
        .map(|v| Framed::Request(Request::from_args(v)))
        .ok_or_else(|| ProtocolError("unbalanced quotes in request".into()))
}

/// Redis's `sdssplitargs`: whitespace-separated words, "double quotes" with C escapes and
/// `\xHH`, 'single quotes' with `\'`. A closing quote must be followed by space or the end.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let h = std::str::from_utf8(&line[i + 2..i + 4]).ok()?;
                    cur.push(u8::from_str_radix(h, 16).ok()?);
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_bulk: 512 * 1024 * 1024,
        authenticated: true,
    };

    fn frame(s: &[u8]) -> Result<Framed, ProtocolError> {
        frame_request(&mut BytesMut::from(s), &L)
    }

    fn req(words: &[&str]) -> Framed {
        Framed::Request(Request::from_args(words.iter().map(|w| w.as_bytes())))
    }

    #[test]
    fn multibulk_and_inline() {
        assert_eq!(
            frame(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap(),
            req(&["GET", "k"])
        );
        assert_eq!(frame(b"PING\r\n").unwrap(), req(&["PING"]));
        assert_eq!(
            frame(b"set k \"a b\\x41\"\n").unwrap(),
            req(&["set", "k", "a bA"])
        );
        assert_eq!(frame(b"\r\n").unwrap(), req(&[]));
        assert!(matches!(
            frame(b"*2\r\n$3\r\nGET\r\n").unwrap(),
            Framed::Incomplete { .. }
        ));
    }

    #[test]
    fn redis_protocol_errors() {
        let e = |s: &[u8]| frame(s).unwrap_err().0;
        assert_eq!(e(b"*abc\r\n"), "invalid multibulk length");
        assert_eq!(frame(b"*-5\r\n").unwrap(), req(&[]));
        assert_eq!(e(b"*1\r\n:1\r\n"), "expected '$', got ':'");
        assert_eq!(e(b"*1\r\n$-5\r\n"), "invalid bulk length");
        assert_eq!(e(b"*1\r\n$99999999999\r\n"), "invalid bulk length");
        assert_eq!(e(b"set k \"abc\n"), "unbalanced quotes in request");
        assert_eq!(e(&vec![b'a'; INLINE_MAX + 1]), "too big inline request");
    }

    proptest::proptest! {
        /// Any argv encoded as a multibulk frames back to exactly that argv, whatever follows.
        #[test]
        fn multibulk_round_trip(argv in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 1..8)) {
            let mut wire = format!("*{}\r\n", argv.len()).into_bytes();
            for a in &argv {
                wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"*1\r\n$4\r\nPI");
            let mut buf = BytesMut::from(&wire[..]);
            proptest::prop_assert_eq!(frame_request(&mut buf, &L).unwrap(), Framed::Request(Request::from_args(&argv)));
            let rest = frame_request(&mut buf, &L).unwrap();
            proptest::prop_assert!(matches!(rest, Framed::Incomplete { .. }), "{:?}", rest);
        }

        /// Arbitrary bytes never panic the framer.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let mut buf = BytesMut::from(&data[..]);
            for _ in 0..8 {
                match frame_request(&mut buf, &L) {
                    Ok(Framed::Request(_)) => continue,
                    _ => break,
                }
            }
        }
    }

    #[test]
    fn large_bulk_reserves_once() {
        let mut b = BytesMut::from(&b"*1\r\n$1000000\r\nxx"[..]);
        match frame_request(&mut b, &L).unwrap() {
            Framed::Incomplete { need } => assert_eq!(need, 14 + 1_000_000 + 2),
            other => panic!("{other:?}"),
        }
        assert!(b.capacity() >= 1_000_000);
    }
}
