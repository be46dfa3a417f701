//! Replies as commands produce them, independent of protocol version, and their encoding to
//! RESP2 or RESP3 through the `redis-protocol` crate.
//!
//! Commands build RESP3-shaped replies (maps, doubles, booleans, nulls); under RESP2 they are
//! lowered the way Redis lowers them: maps and sets become flat arrays, doubles bulk strings,
//! booleans integers.

use bytes::{BufMut, Bytes, BytesMut};
use redis_protocol::bytes_utils::Str;
use redis_protocol::{resp2, resp3};

#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`-style status.
    Status(&'static str),
    /// A status built at run time.
    StatusOwned(String),
    /// A full error line without the leading `-`, e.g. `ERR syntax error` or `WRONGTYPE …`.
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// Missing value: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// Missing aggregate: `*-1` in RESP2, `_` in RESP3.
    NullArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    /// A map in RESP3 but an array of `[key, value]` pairs in RESP2, as XREAD answers.
    Pairs(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    /// A double with its text given (GEOPOS's 17 decimals): a bulk string in RESP2, a double
    /// (`,text`) in RESP3, as Redis's addReplyHumanLongDouble sends it.
    HumanDouble(Bytes),
    Bool(bool),
    /// Verbatim text (`=txt:` in RESP3, a bulk string in RESP2), e.g. INFO and CLIENT LIST.
    Verbatim(Bytes),
    /// Out-of-band message (pub/sub, MONITOR-style pushes): `>` in RESP3, an array in RESP2.
    Push(Vec<Reply>),
    /// Several replies to one command, sent one after the other (SUBSCRIBE a b answers twice).
    Many(Vec<Reply>),
}

impl Reply {
    pub const OK: Reply = Reply::Status("OK");

    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn bulk_str(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Name/value pairs as one flat array, in RESP3 too: the shape RedisAI's replies keep
    /// (it never answers with maps).
    pub fn flat_pairs(pairs: Vec<(Reply, Reply)>) -> Reply {
        Reply::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
    }

    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends this reply's wire form for protocol version `proto` (2 or 3).
    pub fn encode(&self, proto: u8, out: &mut BytesMut) {
        // The replies nearly every request gets have one wire form in both protocol versions
        // (or a trivial one): write them directly, which the crate's frame building cannot
        // match on the hot path. Everything else goes through redis-protocol.
        match self {
            Reply::Bulk(b) => {
                let mut len = itoa::Buffer::new();
                out.reserve(b.len() + 16);
                out.put_u8(b'$');
                out.put_slice(len.format(b.len()).as_bytes());
                out.put_slice(b"\r\n");
                out.put_slice(b);
                out.put_slice(b"\r\n");
                return;
            }
            Reply::Status(s) => {
                out.put_u8(b'+');
                out.put_slice(s.as_bytes());
                out.put_slice(b"\r\n");
                return;
            }
            Reply::Int(i) => {
                let mut n = itoa::Buffer::new();
                out.put_u8(b':');
                out.put_slice(n.format(*i).as_bytes());
                out.put_slice(b"\r\n");
                return;
            }
            Reply::Null => {
                out.put_slice(if proto >= 3 { b"_\r\n" } else { b"$-1\r\n" });
                return;
            }
            Reply::Many(replies) => {
                for r in replies {
                    r.encode(proto, out);
                }
                return;
            }
            _ => {}
        }
        if proto >= 3 {
            if self.needs_manual_resp3() {
                self.encode_resp3_special(out);
                return;
            }
            let frame = self.to_resp3();
            // Encoding an in-memory frame into a growable buffer cannot fail.
            let _ = resp3::encode::complete::extend_encode(out, &frame, false);
        } else if let Some(frame) = self.to_resp2() {
            let _ = resp2::encode::extend_encode(out, &frame, false);
        } else {
            self.encode_resp2_special(out);
        }
    }

    /// redis-protocol's RESP3 sets hold only hashable (scalar) frames, but Redis sends sets of
    /// maps (COMMAND INFO key specs): such replies are laid out here, scalars still encoded by
    /// the crate.
    fn needs_manual_resp3(&self) -> bool {
        match self {
            Reply::Set(items) => items
                .iter()
                .any(|i| i.is_aggregate() || i.needs_manual_resp3()),
            Reply::Array(items) | Reply::Push(items) => items.iter().any(Reply::needs_manual_resp3),
            Reply::Map(pairs) => pairs
                .iter()
                .any(|(k, v)| k.needs_manual_resp3() || v.needs_manual_resp3()),
            // Doubles are written as Redis writes them (%.17g, exponent for extremes).
            Reply::Double(_) | Reply::HumanDouble(_) => true,
            // A key may stand twice (XREAD of one stream twice), which the crate's maps merge.
            Reply::Pairs(_) => true,
            _ => false,
        }
    }

    fn is_aggregate(&self) -> bool {
        matches!(
            self,
            Reply::Array(_) | Reply::Map(_) | Reply::Pairs(_) | Reply::Set(_) | Reply::Push(_)
        )
    }

    fn encode_resp3_special(&self, out: &mut BytesMut) {
        let (prefix, items): (u8, Vec<&Reply>) = match self {
            Reply::Set(items) => (b'~', items.iter().collect()),
            Reply::Array(items) => (b'*', items.iter().collect()),
            Reply::Push(items) => (b'>', items.iter().collect()),
            Reply::Map(pairs) | Reply::Pairs(pairs) => {
                out.put_slice(format!("%{}\r\n", pairs.len()).as_bytes());
                for (k, v) in pairs {
                    k.encode(3, out);
                    v.encode(3, out);
                }
                return;
            }
            Reply::Double(d) => {
                out.put_slice(format!(",{}\r\n", crate::util::format_f64_g17(*d)).as_bytes());
                return;
            }
            Reply::HumanDouble(text) => {
                out.put_u8(b',');
                out.put_slice(text);
                out.put_slice(b"\r\n");
                return;
            }
            other => return other.encode(3, out),
        };
        out.put_u8(prefix);
        out.put_slice(format!("{}\r\n", items.len()).as_bytes());
        for it in items {
            it.encode(3, out);
        }
    }

    /// Forms that redis-protocol's RESP2 frames cannot express (`*-1`), or nested ones containing them.
    fn encode_resp2_special(&self, out: &mut BytesMut) {
        match self {
            Reply::NullArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
                out.put_slice(format!("*{}\r\n", items.len()).as_bytes());
                for it in items {
                    it.encode(2, out);
                }
            }
            Reply::Map(pairs) => {
                out.put_slice(format!("*{}\r\n", pairs.len() * 2).as_bytes());
                for (k, v) in pairs {
                    k.encode(2, out);
                    v.encode(2, out);
                }
            }
            Reply::Pairs(pairs) => {
                out.put_slice(format!("*{}\r\n", pairs.len()).as_bytes());
                for (k, v) in pairs {
                    out.put_slice(b"*2\r\n");
                    k.encode(2, out);
                    v.encode(2, out);
                }
            }
            _ => {}
        }
    }

    fn to_resp2(&self) -> Option<resp2::types::BytesFrame> {
        use resp2::types::BytesFrame as F;
        Some(match self {
            Reply::Status(s) => F::SimpleString(Bytes::from_static(s.as_bytes())),
            Reply::StatusOwned(s) => F::SimpleString(Bytes::copy_from_slice(s.as_bytes())),
            Reply::Error(e) => F::Error(error_str(e)),
            Reply::Int(i) => F::Integer(*i),
            Reply::Bulk(b) | Reply::Verbatim(b) | Reply::HumanDouble(b) => F::BulkString(b.clone()),
            Reply::Null => F::Null,
            // Several replies only ever stand at the top (handled by `encode`).
            Reply::NullArray | Reply::Many(_) => return None,
            Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => F::Array(
                items
                    .iter()
                    .map(|r| r.to_resp2())
                    .collect::<Option<Vec<_>>>()?,
            ),
            Reply::Map(pairs) => {
                let mut v = Vec::with_capacity(pairs.len() * 2);
                for (k, val) in pairs {
                    v.push(k.to_resp2()?);
                    v.push(val.to_resp2()?);
                }
                F::Array(v)
            }
            Reply::Pairs(pairs) => F::Array(
                pairs
                    .iter()
                    .map(|(k, v)| Some(F::Array(vec![k.to_resp2()?, v.to_resp2()?])))
                    .collect::<Option<Vec<_>>>()?,
            ),
            Reply::Double(d) => F::BulkString(Bytes::from(crate::util::format_f64_g17(*d))),
            Reply::Bool(b) => F::Integer(*b as i64),
        })
    }

    fn to_resp3(&self) -> resp3::types::BytesFrame {
        use resp3::types::BytesFrame as F;
        match self {
            Reply::Status(s) => F::SimpleString {
                data: Bytes::from_static(s.as_bytes()),
                attributes: None,
            },
            Reply::StatusOwned(s) => F::SimpleString {
                data: Bytes::copy_from_slice(s.as_bytes()),
                attributes: None,
            },
            Reply::Error(e) => F::SimpleError {
                data: error_str(e),
                attributes: None,
            },
            Reply::Int(i) => F::Number {
                data: *i,
                attributes: None,
            },
            Reply::Bulk(b) => F::BlobString {
                data: b.clone(),
                attributes: None,
            },
            Reply::Null | Reply::NullArray | Reply::Many(_) => F::Null,
            Reply::Array(items) => F::Array {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Push(items) => F::Push {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Set(items) => F::Set {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Map(pairs) | Reply::Pairs(pairs) => F::Map {
                data: pairs
                    .iter()
                    .map(|(k, v)| (k.to_resp3(), v.to_resp3()))
                    .collect(),
                attributes: None,
            },
            Reply::Double(d) => F::Double {
                data: *d,
                attributes: None,
            },
            Reply::HumanDouble(t) => F::Double {
                data: crate::util::parse_f64(t).unwrap_or(0.0),
                attributes: None,
            },
            Reply::Bool(b) => F::Boolean {
                data: *b,
                attributes: None,
            },
            Reply::Verbatim(b) => F::VerbatimString {
                data: b.clone(),
                format: resp3::types::VerbatimStringFormat::Text,
                attributes: None,
            },
        }
    }
}

/// Error lines must be one line of UTF-8: Redis replaces CR/LF with spaces.
fn error_str(e: &str) -> Str {
    let clean: String = e
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    Str::from(clean)
}

impl From<i64> for Reply {
    fn from(v: i64) -> Self {
        Reply::Int(v)
    }
}

impl From<Bytes> for Reply {
    fn from(v: Bytes) -> Self {
        Reply::Bulk(v)
    }
}

impl From<Option<Bytes>> for Reply {
    fn from(v: Option<Bytes>) -> Self {
        v.map_or(Reply::Null, Reply::Bulk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, proto: u8) -> String {
        let mut b = BytesMut::new();
        r.encode(proto, &mut b);
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn lowering_to_resp2() {
        assert_eq!(enc(&Reply::OK, 2), "+OK\r\n");
        assert_eq!(enc(&Reply::Null, 2), "$-1\r\n");
        assert_eq!(enc(&Reply::NullArray, 2), "*-1\r\n");
        assert_eq!(
            enc(&Reply::Array(vec![Reply::NullArray, Reply::Int(1)]), 2),
            "*2\r\n*-1\r\n:1\r\n"
        );
        assert_eq!(
            enc(&Reply::Map(vec![(Reply::bulk_str("a"), Reply::Int(1))]), 2),
            "*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(enc(&Reply::Bool(true), 2), ":1\r\n");
        assert_eq!(enc(&Reply::err("ERR x\r\ny"), 2), "-ERR x  y\r\n");
    }

    #[test]
    fn resp3_forms() {
        assert_eq!(enc(&Reply::Null, 3), "_\r\n");
        assert_eq!(
            enc(&Reply::Map(vec![(Reply::bulk_str("a"), Reply::Int(1))]), 3),
            "%1\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(enc(&Reply::Bool(false), 3), "#f\r\n");
    }
}
