//! Whole RDB files (rdb.c `rdbLoadRioWithLoadingCtx`): "REDIS" and a four-digit version,
//! then opcodes and key-value pairs up to the EOF opcode, then (from version 5) the CRC64 of
//! everything before it.
//!
//! The reader hands out one key at a time with its database, expiry and eviction hints, and
//! collects what is not keyspace (AUX fields, function libraries, module AUX data) in a
//! summary. Keys already expired are handed out like the others: whether to drop them is the
//! caller's decision, as it is Redis's (a replica keeps them).

use super::codec::Reader;
use super::{crc64, module_type_name, object, RdbError, RdbValue};

const OPCODE_FUNCTION2: u8 = 245;
const OPCODE_FUNCTION: u8 = 246;
const OPCODE_MODULE_AUX: u8 = 247;
const OPCODE_IDLE: u8 = 248;
const OPCODE_FREQ: u8 = 249;
const OPCODE_AUX: u8 = 250;
const OPCODE_RESIZEDB: u8 = 251;
const OPCODE_EXPIRETIME_MS: u8 = 252;
const OPCODE_EXPIRETIME: u8 = 253;
const OPCODE_SELECTDB: u8 = 254;
const OPCODE_EOF: u8 = 255;

/// The module opcode that must precede the `when` of module AUX data.
const MODULE_OPCODE_UINT: u64 = 2;

/// The first version whose files end with a checksum.
const FIRST_CHECKSUMMED_VERSION: u32 = 5;

const MAGIC: &[u8; 5] = b"REDIS";

/// One key of an RDB file.
#[derive(Debug, Clone, PartialEq)]
pub struct RdbEntry {
    /// The database the key belongs to (the last SELECTDB before it; 0 without one).
    pub db: u64,
    pub key: Vec<u8>,
    pub value: RdbValue,
    /// Absolute expiry, Unix time in milliseconds.
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds (saved under an LRU maxmemory policy).
    pub idle: Option<u64>,
    /// LFU access frequency counter (saved under an LFU maxmemory policy).
    pub freq: Option<u8>,
}

/// Module data that is not a key (RDB_OPCODE_MODULE_AUX), kept raw for the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleAux {
    /// The module type ID (see [`super::ModuleValue`]).
    pub type_id: u64,
    /// When the module asked for it to be saved: before (1) or after (2) the keyspace.
    pub when: u64,
    /// The opcode-tagged data, up to and including its EOF opcode.
    pub body: Vec<u8>,
}

impl ModuleAux {
    /// The module type's 9-character name.
    pub fn name(&self) -> String {
        module_type_name(self.type_id)
    }
}

/// What a file holds besides its keys, complete once the reader has reached the end.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RdbSummary {
    /// The file's RDB version.
    pub version: u32,
    /// AUX fields in file order ("redis-ver", "ctime", "used-mem", "repl-id", ...).
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// Function libraries' code, as FUNCTION LOAD takes it. Libraries of the 7.0 release
    /// candidates' format come back with the "#!engine name=..." line Redis prefixes.
    pub functions: Vec<Vec<u8>>,
    pub module_aux: Vec<ModuleAux>,
    /// Keys handed out.
    pub keys: u64,
    /// Keys skipped because their value was an empty collection, as Redis skips them.
    pub empty_keys_skipped: u64,
    /// The CRC64 stored at the end (None before version 5); 0 means the file was written
    /// with checksums off and was not checked.
    pub checksum: Option<u64>,
}

/// Expiry and eviction hints given by opcodes before a key.
#[derive(Default)]
struct KeyAttributes {
    expire_ms: Option<i64>,
    idle: Option<u64>,
    freq: Option<u8>,
}

/// Reads an RDB file one key at a time. Also an iterator of `Result<RdbEntry, RdbError>`
/// that stops after the first error.
pub struct RdbFileReader<'a> {
    bytes: &'a [u8],
    reader: Reader<'a>,
    db: u64,
    summary: RdbSummary,
    done: bool,
}

impl<'a> RdbFileReader<'a> {
    /// Checks the signature and version (1..=10) of a whole file held in memory.
    pub fn new(bytes: &'a [u8]) -> Result<Self, RdbError> {
        let version = parse_header(bytes)?;
        let mut reader = Reader::new(bytes);
        reader.take(9)?;
        Ok(RdbFileReader {
            bytes,
            reader,
            db: 0,
            summary: RdbSummary {
                version,
                ..RdbSummary::default()
            },
            done: false,
        })
    }

    /// The next key, or None at the end of the file (after checking its checksum).
    pub fn next_entry(&mut self) -> Result<Option<RdbEntry>, RdbError> {
        if self.done {
            return Ok(None);
        }
        let mut attributes = KeyAttributes::default();
        loop {
            let opcode = self.reader.u8()?;
            match opcode {
                OPCODE_EXPIRETIME => {
                    attributes.expire_ms = Some(i64::from(self.reader.i32_le()?) * 1000);
                }
                OPCODE_EXPIRETIME_MS => attributes.expire_ms = Some(self.reader.i64_le()?),
                OPCODE_FREQ => attributes.freq = Some(self.reader.u8()?),
                OPCODE_IDLE => attributes.idle = Some(self.reader.read_len()?),
                OPCODE_EOF => {
                    self.finish()?;
                    return Ok(None);
                }
                OPCODE_SELECTDB => self.db = self.reader.read_len()?,
                OPCODE_RESIZEDB => {
                    self.reader.read_len()?;
                    self.reader.read_len()?;
                }
                OPCODE_AUX => {
                    let key = self.reader.string()?;
                    let value = self.reader.string()?;
                    self.summary.aux.push((key, value));
                }
                OPCODE_MODULE_AUX => self.read_module_aux()?,
                OPCODE_FUNCTION2 => {
                    let code = self.reader.string()?;
                    self.summary.functions.push(code);
                }
                OPCODE_FUNCTION => self.read_old_function()?,
                rdb_type if object::is_object_type(rdb_type) => {
                    let key = self.reader.string()?;
                    match object::read_object(rdb_type, &mut self.reader) {
                        Ok(value) => {
                            self.summary.keys += 1;
                            return Ok(Some(RdbEntry {
                                db: self.db,
                                key,
                                value,
                                expire_ms: attributes.expire_ms,
                                idle: attributes.idle,
                                freq: attributes.freq,
                            }));
                        }
                        Err(RdbError::EmptyValue) => {
                            self.summary.empty_keys_skipped += 1;
                            attributes = KeyAttributes::default();
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ => return Err(RdbError::Corrupt("unknown RDB opcode or object type")),
            }
        }
    }

    /// What the file held besides keys (complete once [`Self::next_entry`] returned None).
    pub fn summary(&self) -> &RdbSummary {
        &self.summary
    }

    /// The summary, giving up the reader.
    pub fn into_summary(self) -> RdbSummary {
        self.summary
    }

    /// After the EOF opcode: the checksum, verified unless it is 0 (saved with
    /// `rdbchecksum no`). Bytes after it are ignored, as Redis ignores them.
    fn finish(&mut self) -> Result<(), RdbError> {
        if self.summary.version >= FIRST_CHECKSUMMED_VERSION {
            let covered = self.reader.position();
            let stored = self.reader.u64_le()?;
            let computed = crc64(0, &self.bytes[..covered]);
            if stored != 0 && stored != computed {
                return Err(RdbError::ChecksumMismatch { stored, computed });
            }
            self.summary.checksum = Some(stored);
        }
        self.done = true;
        Ok(())
    }

    /// Module AUX data: module type ID, the UINT opcode, `when`, then opcode-tagged data.
    fn read_module_aux(&mut self) -> Result<(), RdbError> {
        let type_id = self.reader.read_len()?;
        let when_opcode = self.reader.read_len()?;
        let when = self.reader.read_len()?;
        if when_opcode != MODULE_OPCODE_UINT {
            return Err(RdbError::Corrupt("bad when_opcode in module aux data"));
        }
        let body = object::read_module_body(&mut self.reader)?.to_vec();
        self.summary.module_aux.push(ModuleAux {
            type_id,
            when,
            body,
        });
        Ok(())
    }

    /// A library in the format of the 7.0 release candidates (name, engine, optional
    /// description, code), turned into the code FUNCTION LOAD takes as `rdbFunctionLoad` does.
    fn read_old_function(&mut self) -> Result<(), RdbError> {
        let name = self.reader.string()?;
        let engine = self.reader.string()?;
        if self.reader.read_len()? != 0 {
            self.reader.string()?;
        }
        let code = self.reader.string()?;
        let mut payload = Vec::with_capacity(code.len() + name.len() + engine.len() + 10);
        payload.extend_from_slice(b"#!");
        payload.extend_from_slice(&engine);
        payload.extend_from_slice(b" name=");
        payload.extend_from_slice(&name);
        payload.push(b'\n');
        payload.extend_from_slice(&code);
        self.summary.functions.push(payload);
        Ok(())
    }
}

/// The version of a file starting "REDIS" and four digits.
fn parse_header(bytes: &[u8]) -> Result<u32, RdbError> {
    let header = bytes.get(..9).ok_or(RdbError::NotRdb)?;
    if &header[..5] != MAGIC {
        return Err(RdbError::NotRdb);
    }
    let digits = &header[5..];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(RdbError::NotRdb);
    }
    let version = digits
        .iter()
        .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
    if !(1..=u32::from(super::RDB_VERSION)).contains(&version) {
        return Err(RdbError::UnsupportedVersion(version));
    }
    Ok(version)
}

impl Iterator for RdbFileReader<'_> {
    type Item = Result<RdbEntry, RdbError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads a whole RDB file, handing each key to `visit`, and returns what else it held. An
/// error from `visit` stops the reading and is returned.
pub fn read_rdb(
    bytes: &[u8],
    mut visit: impl FnMut(RdbEntry) -> Result<(), RdbError>,
) -> Result<RdbSummary, RdbError> {
    let mut reader = RdbFileReader::new(bytes)?;
    while let Some(entry) = reader.next_entry()? {
        visit(entry)?;
    }
    Ok(reader.into_summary())
}
