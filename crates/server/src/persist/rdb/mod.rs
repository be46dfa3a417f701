//! Redis 7.0's serialization format (RDB version 10): DUMP/RESTORE payloads and whole RDB
//! files.
//!
//! The value model here ([`RdbValue`]) is neutral: it knows nothing of the server's store, so
//! one decoder serves RESTORE, loading an RDB file made by Redis, and tools. Decoding accepts
//! every object type Redis 7.0.15's `rdbLoadObject` accepts, including the encodings only
//! older versions wrote (zipmaps, ziplists, quicklists of ziplists, plain lists, sorted sets
//! with doubles written as text, version 1 streams). Malformed input is an error, never a
//! panic: every length is checked against the bytes that remain before anything is allocated
//! for it, so a hostile payload cannot make the decoder reserve memory for data it did not
//! send. What a value may legitimately take stays proportional to the input: LZF can expand
//! a string at most 88 times, and every element takes at least a byte of the (expanded)
//! input.
//!
//! Encoding writes what Redis 7.0 itself writes for the value under its default encoding
//! limits (listpacks for small hashes and sorted sets, intsets for small integer sets,
//! quicklists of 8 KB listpack nodes, streams in nodes of 100 entries or 4 KB, strings
//! integer-encoded or LZF-compressed as `rdbSaveRawString` does), so that a payload made here
//! is in most cases byte for byte the one Redis would make, and Redis loads it into the same
//! encodings it would have chosen itself.

pub(crate) mod codec;
mod crc64;
mod file;
mod legacy;
mod listpack;
mod lzf;
mod object;
mod stream;

#[cfg(test)]
mod tests;

use std::fmt;

pub use crc64::crc64;
pub use file::{read_rdb, ModuleAux, RdbEntry, RdbFileReader, RdbSummary};

/// The RDB format version Redis 7.0 writes, and the newest one it (and this module) reads.
pub const RDB_VERSION: u16 = 10;

/// Bytes after the serialized object in a DUMP payload: the RDB version (2) and CRC64 (8).
const DUMP_FOOTER_LEN: usize = 10;

/// One value of the keyspace, as the RDB format sees it.
///
/// Collections are plain vectors in the order the encoding held them (insertion order for
/// lists and small hashes, score order for small sorted sets, hash-table order otherwise):
/// the caller builds whatever structure its store uses. Decoding refuses duplicate members,
/// fields and sorted-set members, and NaN scores, as Redis does.
#[derive(Debug, Clone, PartialEq)]
pub enum RdbValue {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    /// Members with their scores, in any order.
    ZSet(Vec<(Vec<u8>, f64)>),
    /// Fields with their values.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    Stream(RdbStream),
    /// A value of a module data type, kept opaque so that a server with the module can parse
    /// the body, and one without it can name the type when it refuses the value as Redis
    /// does ("Bad data format" for RESTORE; `no matching module type '<name>'` for a file).
    Module(ModuleValue),
}

/// A stream entry ID: milliseconds and sequence number. Ordered as Redis orders IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// Builds an ID from its two parts.
    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The 128-bit big-endian form Redis uses as radix-tree key and in PELs, so that byte
    /// order is ID order.
    fn to_be_bytes(self) -> [u8; 16] {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&self.ms.to_be_bytes());
        raw[8..].copy_from_slice(&self.seq.to_be_bytes());
        raw
    }

    fn from_be_bytes(raw: [u8; 16]) -> Self {
        let (ms, seq) = raw.split_at(8);
        let mut ms_bytes = [0u8; 8];
        let mut seq_bytes = [0u8; 8];
        ms_bytes.copy_from_slice(ms);
        seq_bytes.copy_from_slice(seq);
        StreamId::new(u64::from_be_bytes(ms_bytes), u64::from_be_bytes(seq_bytes))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The field-value pairs of one stream entry, in the order they were added.
pub type StreamFields = Vec<(Vec<u8>, Vec<u8>)>;

/// A stream with its metadata and consumer groups (what XINFO STREAM FULL shows).
///
/// Only live entries are kept: entries Redis marked deleted inside its listpacks are gone by
/// the time a value is decoded, and their trace is `max_deleted_id`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RdbStream {
    /// Live entries in ID order.
    pub entries: Vec<(StreamId, StreamFields)>,
    /// The last ID ever generated (XADD refuses IDs at or below it).
    pub last_id: StreamId,
    /// The first live entry's ID when the value was saved ("recorded-first-entry-id").
    pub first_id: StreamId,
    /// The greatest ID ever deleted; consumer-group lag is exact only while no deleted ID
    /// lies after a group's position.
    pub max_deleted_id: StreamId,
    /// How many entries were ever added, deleted ones included.
    pub entries_added: u64,
    /// Consumer groups ordered by name.
    pub groups: Vec<RdbGroup>,
}

/// A consumer group of a stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RdbGroup {
    pub name: Vec<u8>,
    /// The last ID delivered to the group ("last-delivered-id").
    pub last_id: StreamId,
    /// The group's logical read counter ("entries-read"); -1 when Redis could not know it.
    pub entries_read: i64,
    /// Delivered but unacknowledged entries, in ID order.
    pub pel: Vec<PendingEntry>,
    /// Consumers ordered by name; every PEL entry belongs to exactly one of them.
    pub consumers: Vec<RdbConsumer>,
}

/// One entry of a group's pending entries list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingEntry {
    pub id: StreamId,
    /// Unix time in milliseconds of the last delivery.
    pub delivery_time_ms: i64,
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RdbConsumer {
    pub name: Vec<u8>,
    /// Unix time in milliseconds the consumer was last seen.
    pub seen_time_ms: i64,
    /// IDs of the group PEL entries this consumer owns, in ID order.
    pub pending: Vec<StreamId>,
}

/// A module data type's value (RDB_TYPE_MODULE_2).
///
/// The body is the module's serialization as Redis annotates it: opcode-tagged integers,
/// floats, doubles and strings, through the terminating EOF opcode. Keeping it raw lets the
/// value pass through a server that does not know the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleValue {
    /// The 64-bit type ID: nine 6-bit characters of the type name, then a 10-bit encoding
    /// version.
    pub type_id: u64,
    /// The value's serialization, up to and including its `RDB_MODULE_OPCODE_EOF`.
    pub body: Vec<u8>,
}

/// The 64 characters a module type name may use; a name character's index is its 6 bits in
/// the type ID (module.c `ModuleTypeNameCharSet`).
const MODULE_NAME_CHARSET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl ModuleValue {
    /// The 9-character type name, as Redis names it in "no matching module type" errors.
    pub fn name(&self) -> String {
        module_type_name(self.type_id)
    }

    /// The encoding version the module wrote the value with (the ID's low 10 bits).
    pub fn encver(&self) -> u16 {
        (self.type_id & 1023) as u16
    }

    /// The type ID for a 9-character name and 10-bit encoding version, or None when the name
    /// has another length or a character outside the module charset, or `encver` > 1023.
    pub fn type_id_of(name: &str, encver: u16) -> Option<u64> {
        if name.len() != 9 || encver > 1023 {
            return None;
        }
        let mut id = 0u64;
        for byte in name.bytes() {
            let pos = MODULE_NAME_CHARSET.iter().position(|&c| c == byte)?;
            id = (id << 6) | pos as u64;
        }
        Some((id << 10) | u64::from(encver))
    }
}

/// Decodes a module type name from its ID (module.c `moduleTypeNameByID`).
fn module_type_name(type_id: u64) -> String {
    let mut chars = [0u8; 9];
    let mut bits = type_id >> 10;
    for slot in chars.iter_mut().rev() {
        *slot = MODULE_NAME_CHARSET[(bits & 63) as usize];
        bits >>= 6;
    }
    chars.iter().map(|&c| char::from(c)).collect()
}

/// Why a payload or file could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RdbError {
    /// A DUMP payload shorter than its footer, of an RDB version newer than 10, or whose
    /// CRC64 does not match (Redis's `verifyDumpPayload`).
    VersionOrChecksum,
    /// The input ends inside a structure.
    Truncated,
    /// The bytes are not a valid encoding; the text says which check failed.
    Corrupt(&'static str),
    /// A collection with no elements: Redis refuses it in RESTORE and skips it when loading a
    /// file, as this module's file reader does.
    EmptyValue,
    /// A module value in the version 1 format (RDB_TYPE_MODULE), whose end cannot be found
    /// without the module that wrote it.
    UnparsableModule { name: String },
    /// The file does not start with "REDIS" and a four-digit version.
    NotRdb,
    /// An RDB file version outside 1..=10.
    UnsupportedVersion(u32),
    /// The RDB file's CRC64 does not match its contents.
    ChecksumMismatch { stored: u64, computed: u64 },
    /// The caller's visitor stopped reading a file.
    Visitor(String),
}

impl RdbError {
    /// The error reply Redis 7.0 gives RESTORE for this error.
    pub fn restore_reply(&self) -> &'static str {
        match self {
            RdbError::VersionOrChecksum => "ERR DUMP payload version or checksum are wrong",
            _ => "ERR Bad data format",
        }
    }
}

impl fmt::Display for RdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RdbError::VersionOrChecksum => {
                f.write_str("DUMP payload version or checksum are wrong")
            }
            RdbError::Truncated => f.write_str("unexpected end of RDB data"),
            RdbError::Corrupt(what) => write!(f, "corrupt RDB data: {what}"),
            RdbError::EmptyValue => f.write_str("empty collection value"),
            RdbError::UnparsableModule { name } => {
                write!(
                    f,
                    "module data I can't load: no matching module type '{name}'"
                )
            }
            RdbError::NotRdb => f.write_str("wrong signature trying to load DB from file"),
            RdbError::UnsupportedVersion(v) => write!(f, "can't handle RDB format version {v}"),
            RdbError::ChecksumMismatch { stored, computed } => write!(
                f,
                "wrong RDB checksum expected: ({computed:x}) but got ({stored:x})"
            ),
            RdbError::Visitor(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for RdbError {}

/// Serializes a value as it appears in an RDB file after its key: the object type byte, then
/// the object.
pub fn encode_object(value: &RdbValue) -> Vec<u8> {
    let mut out = Vec::new();
    object::write_object(value, &mut out);
    out
}

/// Decodes an object type byte and the object after it (the inverse of [`encode_object`]).
/// Bytes after the object are ignored, as RESTORE ignores them.
pub fn decode_object(bytes: &[u8]) -> Result<RdbValue, RdbError> {
    let mut reader = codec::Reader::new(bytes);
    let rdb_type = reader.u8()?;
    if !object::is_object_type(rdb_type) {
        return Err(RdbError::Corrupt("unknown object type"));
    }
    object::read_object(rdb_type, &mut reader)
}

/// The DUMP payload Redis 7.0 produces for a value, which RESTORE accepts: the object type
/// byte and the object, the RDB version (little-endian u16) and the CRC64 of all of that
/// (little-endian u64).
pub fn dump_payload(value: &RdbValue) -> Vec<u8> {
    let mut out = encode_object(value);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a DUMP payload's footer as Redis's `verifyDumpPayload` does: at least the 10 footer
/// bytes, an RDB version no newer than 10, and a matching CRC64 (a zero CRC is no exception).
pub fn verify_dump_payload(payload: &[u8]) -> Result<(), RdbError> {
    let body_len = payload
        .len()
        .checked_sub(DUMP_FOOTER_LEN)
        .ok_or(RdbError::VersionOrChecksum)?;
    let footer = &payload[body_len..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return Err(RdbError::VersionOrChecksum);
    }
    let crc = crc64(0, &payload[..body_len + 2]);
    if crc.to_le_bytes()[..] != footer[2..] {
        return Err(RdbError::VersionOrChecksum);
    }
    Ok(())
}

/// Decodes a DUMP payload for RESTORE: verifies the footer ([`verify_dump_payload`]), then
/// decodes the object. [`RdbError::restore_reply`] gives the reply Redis would send for an
/// error.
pub fn restore_payload(payload: &[u8]) -> Result<RdbValue, RdbError> {
    verify_dump_payload(payload)?;
    decode_object(&payload[..payload.len() - DUMP_FOOTER_LEN])
}
