//! RedisAI 1.2 module values inside a Redis RDB file: decoding (to import a RedisAI
//! deployment's `dump.rdb`) and encoding (for tests and a future export).
//!
//! # Where the bytes sit
//!
//! Redis stores a module value under the type byte `RDB_TYPE_MODULE_2` (7): after the key comes
//! a 64-bit module id written as an RDB length (`rdbSaveLen`; RedisAI's ids always take the
//! `0x81` + 8-byte big-endian form), then the *body*: the items the module's `rdb_save` callback
//! wrote, each behind an opcode, closed by `RDB_MODULE_OPCODE_EOF`. The id's top 54 bits spell the 9-character
//! type name, 6 bits a character; its low 10 bits are the encoding version ("encver") the module
//! saved with (Redis `moduleTypeEncodeId`, `moduleTypeNameByID`).
//!
//! Body items, as Redis's module API writes them (`RM_SaveUnsigned` and friends):
//! - `SaveUnsigned`: opcode `UINT` (2), then the value as an RDB length.
//! - `SaveSigned`: the same bytes; it reinterprets the `i64` as a `u64` and calls `SaveUnsigned`.
//!   The `SINT` opcode (1) is defined but never written, and `RM_LoadSigned` refuses it.
//! - `SaveString`/`SaveStringBuffer`: opcode `STRING` (5), then an RDB string
//!   (`rdbSaveRawString`): a length and the bytes, an integer encoding (strings of at most
//!   11 bytes that spell an integer, e.g. a one-byte INT8 tensor holding `b'5'`), or LZF
//!   (strings over 20 bytes while `rdbcompression` is on, the default).
//! - `SaveDouble`: opcode `DOUBLE` (4) + 8 bytes little-endian; `SaveFloat`: `FLOAT` (3) + 4.
//!
//! # RedisAI 1.2's types and layouts
//!
//! RedisAI registers `AI_TENSOR`, `AI__MODEL` and `AI_SCRIPT` with `REDISAI_ENC_VER`: 1 in
//! 1.2.1–1.2.2 (and the 1.2 milestone), 2 in 1.2.3, 3 in 1.2.4 and 4 in 1.2.5–1.2.7; RedisAI
//! 0.99–1.0 wrote 0. RedisAI 1.2.7 loads every encver up to 4 (`Decode_PreviousTensor`,
//! `Decode_PreviousModel`), and so does this decoder. (RedisAI before 0.99 also wrote 0, but
//! models without tag and batch sizes; neither RedisAI 1.2 nor this decoder reads those.)
//! `U` is an unsigned item, `I` a signed one, `S` a string:
//!
//! - Tensor, encver 0–3 (`RAI_RDBLoadTensor_v0`): device type U (must be 1, CPU), device id U,
//!   dtype bits U, dtype code U, lanes U, ndims U, ndims × dim U, ndims × stride U, byte offset U,
//!   data S. Strides and byte offset are ignored: RedisAI recomputes row-major strides.
//! - Tensor, encver 4 (`RAI_RDBSaveTensor_v4`): dtype code U, dtype bits U, ndims I,
//!   ndims × dim I, data S; then, for STRING tensors only, one U per element: its byte offset in
//!   the data, which holds the elements as consecutive NUL-terminated strings.
//! - Model, encver 0 (`RAI_RDBLoadModel_v0`): backend U, device S (NUL-terminated), tag S
//!   (NUL-terminated), batchsize U, minbatchsize U, ninputs U, ninputs × name S
//!   (NUL-terminated), noutputs U, noutputs × name S, blob S.
//! - Model, encver 1 (`RAI_RDBLoadModel_v1`): as 0, but the tag is a plain string (no NUL) and
//!   the blob is chunked: total length U, chunk count U, chunks S.
//! - Model, encver 2–4 (`RAI_RDBLoadModel_v2`/`_v3`, `RAI_RDBSaveModel_v4`): as 1 with
//!   minbatchtimeout U after minbatchsize.
//! - Script (`RAI_RDBLoadScript_v0`–`_v3`): device, tag, source and (encver ≥ 3) entry points;
//!   never imported, see [`decode_redisai`].
//!
//! dtypes are DLPack (code, bits) pairs from RedisAI's DLPack fork: INT 0, UINT 1, FLOAT 2,
//! BOOL 6, STRING 7. Backends are RedisAI 1.2's `RAI_Backend`: 0 TF, 1 TFLITE, 2 TORCH, 3 ONNX.

/// Redis's RDB value type of a module value with opcodes (`RDB_TYPE_MODULE_2`).
pub const RDB_TYPE_MODULE_2: u8 = 7;
/// Ends a module value's body (`RDB_MODULE_OPCODE_EOF`).
pub const RDB_MODULE_OPCODE_EOF: u64 = 0;
/// Defined by Redis for signed integers but never written: `RM_SaveSigned` writes `UINT`.
pub const RDB_MODULE_OPCODE_SINT: u64 = 1;
/// Precedes an integer saved by `RM_SaveUnsigned` or `RM_SaveSigned`.
pub const RDB_MODULE_OPCODE_UINT: u64 = 2;
/// Precedes a float saved by `RM_SaveFloat`.
pub const RDB_MODULE_OPCODE_FLOAT: u64 = 3;
/// Precedes a double saved by `RM_SaveDouble`.
pub const RDB_MODULE_OPCODE_DOUBLE: u64 = 4;
/// Precedes a string saved by `RM_SaveString` or `RM_SaveStringBuffer`.
pub const RDB_MODULE_OPCODE_STRING: u64 = 5;

/// RedisAI's tensor type name (9 characters, as every module type name).
pub const TENSOR_TYPE_NAME: &str = "AI_TENSOR";
/// RedisAI's model type name.
pub const MODEL_TYPE_NAME: &str = "AI__MODEL";
/// RedisAI's TorchScript script type name; such values are recognised but not imported.
pub const SCRIPT_TYPE_NAME: &str = "AI_SCRIPT";
/// The newest encver RedisAI 1.2 writes (`REDISAI_ENC_VER` of 1.2.5–1.2.7).
pub const REDISAI_ENCVER: u32 = 4;
/// RedisAI's default `MODEL_CHUNK_SIZE`: model blobs are saved in chunks of this many bytes.
pub const DEFAULT_MODEL_CHUNK_SIZE: usize = 511 * 1024 * 1024;

/// Redis's `ModuleTypeNameCharSet`: a character's index is its 6-bit code in a module id.
const MODULE_TYPE_NAME_CHARSET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const MODULE_TYPE_NAME_LEN: usize = 9;
const ENCVER_BITS: u32 = 10;
const ENCVER_MASK: u64 = (1 << ENCVER_BITS) - 1;

/// Length-encoding kinds from Redis's `rdb.h`, in the top two bits of a length's first byte.
const RDB_6BITLEN: u8 = 0;
const RDB_14BITLEN: u8 = 1;
const RDB_ENCVAL: u8 = 3;
/// Whole first bytes announcing a 32-bit or 64-bit big-endian length.
const RDB_32BITLEN: u8 = 0x80;
const RDB_64BITLEN: u8 = 0x81;
/// Special string encodings, announced by an `RDB_ENCVAL` first byte.
const RDB_ENC_INT8: u8 = 0;
const RDB_ENC_INT16: u8 = 1;
const RDB_ENC_INT32: u8 = 2;
const RDB_ENC_LZF: u8 = 3;

/// LZF's densest item, a 3-byte back reference, yields 264 bytes: an LZF string declaring more
/// than 88 bytes per compressed byte is corrupt, and is refused before anything is allocated.
const LZF_MAX_EXPANSION: u64 = 88;
/// The smallest body item: an opcode byte and a one-byte length. A count read from the input
/// can't exceed the remaining bytes divided by this, which bounds what a count may allocate.
const MIN_ITEM_BYTES: usize = 2;

/// DLPack type codes (`DLDataTypeCode` in RedisAI's DLPack fork, branch v0.5_RAI).
const DL_INT: u64 = 0;
const DL_UINT: u64 = 1;
const DL_FLOAT: u64 = 2;
const DL_BOOL: u64 = 6;
const DL_STRING: u64 = 7;
/// DLPack's `kDLCPU`: the only device RedisAI's tensor loader accepts (it asserts on others).
const DL_CPU: u64 = 1;

/// The dtype name RedisAI's `AI.TENSORGET META` reports, with its DLPack (code, bits).
const DTYPES: [(&str, u64, u64); 10] = [
    ("FLOAT", DL_FLOAT, 32),
    ("DOUBLE", DL_FLOAT, 64),
    ("INT8", DL_INT, 8),
    ("INT16", DL_INT, 16),
    ("INT32", DL_INT, 32),
    ("INT64", DL_INT, 64),
    ("UINT8", DL_UINT, 8),
    ("UINT16", DL_UINT, 16),
    ("BOOL", DL_BOOL, 8),
    ("STRING", DL_STRING, 8),
];
const STRING_DTYPE: &str = "STRING";

/// RedisAI 1.2's `RAI_Backend` values, by index, under the names `RAI_GetBackendName` gives.
const BACKENDS: [&str; 4] = ["TF", "TFLITE", "TORCH", "ONNX"];

/// A RedisAI value this server can import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisAiValue {
    /// A dense tensor. `data` holds the little-endian elements, row-major, exactly as RedisAI
    /// keeps them; for STRING tensors, the elements as consecutive NUL-terminated strings.
    Tensor {
        dtype: String,
        shape: Vec<i64>,
        data: Vec<u8>,
    },
    /// A model: the backend's serialized graph (`blob`) with RedisAI's metadata. Encvers 0 and
    /// 1 predate minbatchtimeout, which then reads 0 (RedisAI's default too).
    Model {
        backend: String,
        device: String,
        tag: String,
        batchsize: u64,
        minbatchsize: u64,
        minbatchtimeout: u64,
        inputs: Vec<String>,
        outputs: Vec<String>,
        blob: Vec<u8>,
    },
}

impl RedisAiValue {
    /// Checks what RedisAI guarantees of a live value: a known dtype and backend, no negative
    /// dimension, and data that fits the shape (for STRING tensors, one NUL-terminated string
    /// per element). Decoding checks this; encoding assumes it.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            RedisAiValue::Tensor { dtype, shape, data } => {
                check_tensor(dtype, shape, data).map(|_| ())
            }
            RedisAiValue::Model { backend, .. } => {
                backend_code(backend).map(|_| ()).ok_or_else(|| {
                    format!("unknown backend {backend:?} (expected one of {BACKENDS:?})")
                })
            }
        }
    }
}

/// Splits a module id into its 9-character type name and encver, as Redis's
/// `moduleTypeNameByID` does (every id maps to some name; whether it is RedisAI's is the
/// caller's question).
pub fn module_type_name(module_id: u64) -> (String, u32) {
    let encver = (module_id & ENCVER_MASK) as u32;
    let mut name = [0u8; MODULE_TYPE_NAME_LEN];
    let mut rest = module_id >> ENCVER_BITS;
    for slot in name.iter_mut().rev() {
        *slot = MODULE_TYPE_NAME_CHARSET[(rest & 63) as usize];
        rest >>= 6;
    }
    (name.iter().map(|&b| char::from(b)).collect(), encver)
}

/// Builds a module id from a type name and encver, as Redis's `moduleTypeEncodeId` does:
/// `None` unless the name has 9 characters from the module charset and encver is below 1024.
pub fn module_type_id(name: &str, encver: u32) -> Option<u64> {
    if name.len() != MODULE_TYPE_NAME_LEN || u64::from(encver) > ENCVER_MASK {
        return None;
    }
    let name_bits = name.bytes().try_fold(0u64, |id, c| {
        let index = MODULE_TYPE_NAME_CHARSET.iter().position(|&x| x == c)?;
        Some((id << 6) | index as u64)
    })?;
    Some((name_bits << ENCVER_BITS) | u64::from(encver))
}

/// Whether `type_name` is one of the data types RedisAI 1.2 registers.
pub fn is_redisai_type_name(type_name: &str) -> bool {
    [TENSOR_TYPE_NAME, MODEL_TYPE_NAME, SCRIPT_TYPE_NAME].contains(&type_name)
}

/// An RDB length as `rdbLoadLenByRef` reads it: a number, or the marker of a special string
/// encoding.
enum RdbLen {
    Len(u64),
    Encoded(u8),
}

/// Reads opcode-prefixed items from a module value's body, the way Redis's `RM_Load*`
/// functions do, but never panicking or allocating more than the remaining bytes allow.
/// Errors describe the problem and the byte offset within the body.
#[derive(Debug, Clone)]
pub struct ModuleCursor<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> ModuleCursor<'a> {
    /// A cursor at the start of `body` (the bytes right after the module id).
    pub fn new(body: &'a [u8]) -> Self {
        ModuleCursor { body, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.body.len().saturating_sub(self.pos)
    }

    /// Reads an `RM_SaveUnsigned` item.
    pub fn read_unsigned(&mut self) -> Result<u64, String> {
        self.expect_opcode(RDB_MODULE_OPCODE_UINT)?;
        self.read_plain_len("unsigned integer")
    }

    /// Reads an `RM_SaveSigned` item: an unsigned item whose bits are the `i64`, as
    /// `RM_LoadSigned` takes it.
    pub fn read_signed(&mut self) -> Result<i64, String> {
        let bits = self.read_unsigned()?;
        Ok(i64::from_le_bytes(bits.to_le_bytes()))
    }

    /// Reads an `RM_SaveString`/`RM_SaveStringBuffer` item, undoing integer and LZF encodings.
    pub fn read_string(&mut self) -> Result<Vec<u8>, String> {
        self.expect_opcode(RDB_MODULE_OPCODE_STRING)?;
        self.read_rdb_string()
    }

    /// Reads an `RM_SaveFloat` item.
    pub fn read_float(&mut self) -> Result<f32, String> {
        self.expect_opcode(RDB_MODULE_OPCODE_FLOAT)?;
        Ok(f32::from_le_bytes(self.read_array("float")?))
    }

    /// Reads an `RM_SaveDouble` item.
    pub fn read_double(&mut self) -> Result<f64, String> {
        self.expect_opcode(RDB_MODULE_OPCODE_DOUBLE)?;
        Ok(f64::from_le_bytes(self.read_array("double")?))
    }

    /// Reads the EOF marker that closes every body (Redis checks it after `rdb_load`).
    pub fn read_eof(&mut self) -> Result<(), String> {
        self.expect_opcode(RDB_MODULE_OPCODE_EOF)
    }

    /// Skips one item of any kind, as redis-check-rdb's `rdbLoadCheckModuleValue` does;
    /// `Ok(false)` once the EOF marker has been consumed. Lets a caller step over values it
    /// can't decode (scripts, other modules' types).
    pub fn skip_item(&mut self) -> Result<bool, String> {
        let start = self.pos;
        match self.read_plain_len("opcode")? {
            RDB_MODULE_OPCODE_EOF => Ok(false),
            RDB_MODULE_OPCODE_SINT | RDB_MODULE_OPCODE_UINT => {
                self.read_plain_len("integer").map(|_| true)
            }
            RDB_MODULE_OPCODE_STRING => self.skip_rdb_string().map(|_| true),
            RDB_MODULE_OPCODE_FLOAT => self.take(4, "float").map(|_| true),
            RDB_MODULE_OPCODE_DOUBLE => self.take(8, "double").map(|_| true),
            other => Err(format!("unknown module opcode {other} at byte {start}")),
        }
    }

    /// Fails unless `count` items of at least `min_bytes_each` bytes could still follow, so a
    /// count read from hostile input never sizes an allocation beyond the input.
    pub fn check_count(&self, count: u64, min_bytes_each: usize) -> Result<usize, String> {
        let most = self.remaining() / min_bytes_each.max(1);
        usize::try_from(count)
            .ok()
            .filter(|&n| n <= most)
            .ok_or_else(|| {
                format!(
                    "count {count} at byte {} is more than the {} bytes left could hold",
                    self.pos,
                    self.remaining()
                )
            })
    }

    fn truncated(&self, what: &str, needed: u64) -> String {
        format!(
            "truncated {what} at byte {}: needs {needed} bytes, {} left",
            self.pos,
            self.remaining()
        )
    }

    fn take(&mut self, len: u64, what: &str) -> Result<&'a [u8], String> {
        let end = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.remaining())
            .map(|n| self.pos + n)
            .ok_or_else(|| self.truncated(what, len))?;
        let bytes = self.body.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(bytes)
    }

    fn read_array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N as u64, what)?);
        Ok(array)
    }

    fn read_byte(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.read_array::<1>(what)?[0])
    }

    /// Redis's `rdbLoadLenByRef`.
    fn read_rdb_len(&mut self, what: &str) -> Result<RdbLen, String> {
        let start = self.pos;
        let first = self.read_byte(what)?;
        match first >> 6 {
            RDB_ENCVAL => Ok(RdbLen::Encoded(first & 0x3f)),
            RDB_6BITLEN => Ok(RdbLen::Len(u64::from(first & 0x3f))),
            RDB_14BITLEN => {
                let second = self.read_byte(what)?;
                Ok(RdbLen::Len(
                    (u64::from(first & 0x3f) << 8) | u64::from(second),
                ))
            }
            _ if first == RDB_32BITLEN => {
                let len = u32::from_be_bytes(self.read_array(what)?);
                Ok(RdbLen::Len(u64::from(len)))
            }
            _ if first == RDB_64BITLEN => {
                Ok(RdbLen::Len(u64::from_be_bytes(self.read_array(what)?)))
            }
            _ => Err(format!(
                "corrupt {what} at byte {start}: unknown length encoding 0x{first:02x}"
            )),
        }
    }

    /// A length where Redis never writes a string-encoding marker (opcodes, integers, LZF
    /// sizes). Redis's own loader would misread such a marker as a small number; refusing it
    /// catches corruption earlier.
    fn read_plain_len(&mut self, what: &str) -> Result<u64, String> {
        let start = self.pos;
        match self.read_rdb_len(what)? {
            RdbLen::Len(len) => Ok(len),
            RdbLen::Encoded(kind) => Err(format!(
                "corrupt {what} at byte {start}: string encoding marker {kind} where a number \
                 belongs"
            )),
        }
    }

    fn expect_opcode(&mut self, expected: u64) -> Result<(), String> {
        let start = self.pos;
        let what = opcode_name(expected);
        let found = self.read_plain_len(&format!("{what} opcode"))?;
        if found == expected {
            return Ok(());
        }
        let hint = if found == RDB_MODULE_OPCODE_SINT {
            " (Redis never writes it and its loader refuses it)"
        } else {
            ""
        };
        Err(format!(
            "expected {what} (opcode {expected}) at byte {start}, found {} (opcode {found}){hint}",
            opcode_name(found)
        ))
    }

    /// Redis's `rdbGenericLoadStringObject` with `RDB_LOAD_PLAIN`.
    fn read_rdb_string(&mut self) -> Result<Vec<u8>, String> {
        let start = self.pos;
        match self.read_rdb_len("string length")? {
            RdbLen::Len(len) => Ok(self.take(len, "string")?.to_vec()),
            RdbLen::Encoded(RDB_ENC_INT8) => {
                let value = i8::from_le_bytes(self.read_array("8-bit integer string")?);
                Ok(value.to_string().into_bytes())
            }
            RdbLen::Encoded(RDB_ENC_INT16) => {
                let value = i16::from_le_bytes(self.read_array("16-bit integer string")?);
                Ok(value.to_string().into_bytes())
            }
            RdbLen::Encoded(RDB_ENC_INT32) => {
                let value = i32::from_le_bytes(self.read_array("32-bit integer string")?);
                Ok(value.to_string().into_bytes())
            }
            RdbLen::Encoded(RDB_ENC_LZF) => self.read_lzf_string(),
            RdbLen::Encoded(kind) => Err(format!(
                "corrupt string at byte {start}: unknown string encoding {kind}"
            )),
        }
    }

    /// Redis's `rdbLoadLzfStringObject`: compressed length, plain length, compressed bytes.
    fn read_lzf_string(&mut self) -> Result<Vec<u8>, String> {
        let start = self.pos;
        let compressed_len = self.read_plain_len("LZF compressed length")?;
        let plain_len = self.read_plain_len("LZF uncompressed length")?;
        let compressed = self.take(compressed_len, "LZF string")?;
        let plain_len = usize::try_from(plain_len)
            .ok()
            .filter(|_| plain_len <= compressed_len.saturating_mul(LZF_MAX_EXPANSION))
            .ok_or_else(|| {
                format!(
                    "corrupt LZF string at byte {start}: {compressed_len} compressed bytes \
                     can't hold the {plain_len} bytes it declares"
                )
            })?;
        lzf_decompress(compressed, plain_len)
            .map_err(|e| format!("corrupt LZF string at byte {start}: {e}"))
    }

    fn skip_rdb_string(&mut self) -> Result<(), String> {
        let start = self.pos;
        match self.read_rdb_len("string length")? {
            RdbLen::Len(len) => self.take(len, "string").map(|_| ()),
            RdbLen::Encoded(RDB_ENC_INT8) => self.take(1, "integer string").map(|_| ()),
            RdbLen::Encoded(RDB_ENC_INT16) => self.take(2, "integer string").map(|_| ()),
            RdbLen::Encoded(RDB_ENC_INT32) => self.take(4, "integer string").map(|_| ()),
            RdbLen::Encoded(RDB_ENC_LZF) => {
                let compressed_len = self.read_plain_len("LZF compressed length")?;
                self.read_plain_len("LZF uncompressed length")?;
                self.take(compressed_len, "LZF string").map(|_| ())
            }
            RdbLen::Encoded(kind) => Err(format!(
                "corrupt string at byte {start}: unknown string encoding {kind}"
            )),
        }
    }
}

fn opcode_name(opcode: u64) -> &'static str {
    match opcode {
        RDB_MODULE_OPCODE_EOF => "EOF marker",
        RDB_MODULE_OPCODE_SINT => "signed integer",
        RDB_MODULE_OPCODE_UINT => "unsigned integer",
        RDB_MODULE_OPCODE_FLOAT => "float",
        RDB_MODULE_OPCODE_DOUBLE => "double",
        RDB_MODULE_OPCODE_STRING => "string",
        _ => "an unknown opcode",
    }
}

/// LZF decompression as Redis's `lzf_decompress` (built with `CHECK_INPUT`) does it, with
/// every bound checked: the output must come to exactly `plain_len` bytes.
///
/// The output grows with what the data actually produces (beyond a first guess), so a string
/// that merely declares a big length costs nothing before it fails.
fn lzf_decompress(input: &[u8], plain_len: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(plain_len.min(input.len().saturating_mul(4)));
    let mut ip = 0;
    while let Some(&ctrl) = input.get(ip) {
        ip += 1;
        let ctrl = usize::from(ctrl);
        if ctrl < 32 {
            let run = ctrl + 1;
            let literal = input
                .get(ip..ip + run)
                .ok_or("literal run past the end of the data")?;
            if out.len() + run > plain_len {
                return Err(format!("output exceeds the declared {plain_len} bytes"));
            }
            out.extend_from_slice(literal);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(ip).ok_or("back reference cut short")?);
                ip += 1;
            }
            let low = usize::from(*input.get(ip).ok_or("back reference cut short")?);
            ip += 1;
            let distance = ((ctrl & 0x1f) << 8) + low + 1;
            let len = len + 2;
            if out.len() + len > plain_len {
                return Err(format!("output exceeds the declared {plain_len} bytes"));
            }
            let from = out
                .len()
                .checked_sub(distance)
                .ok_or("back reference before the start of the output")?;
            copy_back_reference(&mut out, from, len);
        }
    }
    if out.len() != plain_len {
        return Err(format!(
            "decompressed to {} bytes, not the declared {plain_len}",
            out.len()
        ));
    }
    Ok(out)
}

/// Appends `len` bytes copied from `from` onwards; the source may overlap what is being
/// appended (a run), in which case it is copied byte by byte, as LZF requires.
fn copy_back_reference(out: &mut Vec<u8>, from: usize, len: usize) {
    if from + len <= out.len() {
        out.extend_from_within(from..from + len);
    } else {
        for index in from..from + len {
            let byte = out.get(index).copied().unwrap_or_default();
            out.push(byte);
        }
    }
}

/// Decodes a RedisAI module value's whole body (from right after the module id through the
/// EOF marker, nothing more). `type_name` and `encver` come from [`module_type_name`].
///
/// Scripts (`AI_SCRIPT`) and non-RedisAI types are refused by name; step over such a value
/// with [`module_value_len`].
pub fn decode_redisai(type_name: &str, encver: u32, body: &[u8]) -> Result<RedisAiValue, String> {
    let (value, used) = decode_redisai_prefix(type_name, encver, body)?;
    let extra = body.len() - used;
    if extra > 0 {
        return Err(format!(
            "{type_name} encver {encver}: {extra} unexpected bytes after the module EOF marker"
        ));
    }
    Ok(value)
}

/// Like [`decode_redisai`], but `bytes` may continue past the value (e.g. the rest of the RDB
/// file); also returns how many bytes the value took, EOF marker included.
pub fn decode_redisai_prefix(
    type_name: &str,
    encver: u32,
    bytes: &[u8],
) -> Result<(RedisAiValue, usize), String> {
    let kind = RedisAiKind::from_type_name(type_name)?;
    if encver > REDISAI_ENCVER {
        return Err(format!(
            "{type_name} encver {encver}: written by a RedisAI newer than 1.2, whose newest \
             encoding is {REDISAI_ENCVER}"
        ));
    }
    let mut reader = FieldReader {
        cursor: ModuleCursor::new(bytes),
        context: format!("{type_name} encver {encver}"),
    };
    let value = match kind {
        RedisAiKind::Tensor if encver >= 4 => decode_tensor_v4(&mut reader)?,
        RedisAiKind::Tensor => decode_tensor_v0(&mut reader)?,
        RedisAiKind::Model => decode_model(&mut reader, encver)?,
    };
    reader.eof()?;
    Ok((value, reader.cursor.position()))
}

/// The length of a module value's body, EOF marker included, whatever module wrote it: walks
/// the opcodes as redis-check-rdb does. For skipping values that aren't decoded.
pub fn module_value_len(bytes: &[u8]) -> Result<usize, String> {
    let mut cursor = ModuleCursor::new(bytes);
    while cursor.skip_item()? {}
    Ok(cursor.position())
}

enum RedisAiKind {
    Tensor,
    Model,
}

impl RedisAiKind {
    fn from_type_name(type_name: &str) -> Result<Self, String> {
        match type_name {
            TENSOR_TYPE_NAME => Ok(RedisAiKind::Tensor),
            MODEL_TYPE_NAME => Ok(RedisAiKind::Model),
            SCRIPT_TYPE_NAME => Err(format!(
                "{SCRIPT_TYPE_NAME}: RedisAI TorchScript scripts can't be imported; \
                 re-create them with this server's commands"
            )),
            other => Err(format!(
                "module type {other:?} is not a RedisAI 1.2 tensor ({TENSOR_TYPE_NAME}) or \
                 model ({MODEL_TYPE_NAME})"
            )),
        }
    }
}

/// A cursor that names the value and field in its errors, e.g.
/// "AI_TENSOR encver 3: shape: truncated unsigned integer at byte 40: ...".
struct FieldReader<'a> {
    cursor: ModuleCursor<'a>,
    context: String,
}

impl FieldReader<'_> {
    fn fail(&self, field: &str, detail: &str) -> String {
        format!("{}: {field}: {detail}", self.context)
    }

    fn unsigned(&mut self, field: &str) -> Result<u64, String> {
        let read = self.cursor.read_unsigned();
        read.map_err(|e| self.fail(field, &e))
    }

    fn signed(&mut self, field: &str) -> Result<i64, String> {
        let read = self.cursor.read_signed();
        read.map_err(|e| self.fail(field, &e))
    }

    fn string(&mut self, field: &str) -> Result<Vec<u8>, String> {
        let read = self.cursor.read_string();
        read.map_err(|e| self.fail(field, &e))
    }

    /// Item `index` of a list, named in the error only when there is one.
    fn unsigned_item(&mut self, list: &str, index: usize) -> Result<u64, String> {
        let read = self.cursor.read_unsigned();
        read.map_err(|e| self.fail(&item_field(list, index), &e))
    }

    fn signed_item(&mut self, list: &str, index: usize) -> Result<i64, String> {
        let read = self.cursor.read_signed();
        read.map_err(|e| self.fail(&item_field(list, index), &e))
    }

    fn string_item(&mut self, list: &str, index: usize) -> Result<Vec<u8>, String> {
        let read = self.cursor.read_string();
        read.map_err(|e| self.fail(&item_field(list, index), &e))
    }

    fn eof(&mut self) -> Result<(), String> {
        let read = self.cursor.read_eof();
        read.map_err(|e| self.fail("end of value", &e))
    }

    /// A count of items that follow, checked against the bytes left before anything is sized
    /// by it.
    fn count(&self, field: &str, count: u64, min_bytes_each: usize) -> Result<usize, String> {
        self.cursor
            .check_count(count, min_bytes_each)
            .map_err(|e| self.fail(field, &e))
    }

    /// A string RedisAI saved with its NUL (`strlen + 1`) and reads back as a C string: the
    /// text ends at the first NUL.
    fn c_string(&mut self, field: &str) -> Result<String, String> {
        let bytes = self.string(field)?;
        c_string_text(&bytes).ok_or_else(|| self.fail(field, "not valid UTF-8"))
    }

    /// A count-prefixed list of C strings (model input or output names).
    fn c_string_list(&mut self, field: &str) -> Result<Vec<String>, String> {
        let count = self.unsigned(field)?;
        let count = self.count(field, count, MIN_ITEM_BYTES)?;
        (0..count)
            .map(|index| {
                let bytes = self.string_item(field, index)?;
                c_string_text(&bytes)
                    .ok_or_else(|| self.fail(&item_field(field, index), "not valid UTF-8"))
            })
            .collect()
    }

    fn dtype(&self, code: u64, bits: u64) -> Result<&'static str, String> {
        dtype_name(code, bits).ok_or_else(|| {
            self.fail(
                "dtype",
                &format!("unknown DLPack type code {code} with {bits} bits"),
            )
        })
    }
}

fn item_field(list: &str, index: usize) -> String {
    format!("{list}[{index}]")
}

/// The text before the first NUL, as C reads a string RedisAI saved with `strlen + 1`.
fn c_string_text(bytes: &[u8]) -> Option<String> {
    let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8(text.to_vec()).ok()
}

fn dtype_name(code: u64, bits: u64) -> Option<&'static str> {
    DTYPES
        .iter()
        .find(|&&(_, c, b)| c == code && b == bits)
        .map(|&(name, _, _)| name)
}

fn dtype_code_bits(dtype: &str) -> Option<(u64, u64)> {
    DTYPES
        .iter()
        .find(|(name, _, _)| name.eq_ignore_ascii_case(dtype))
        .map(|&(_, code, bits)| (code, bits))
}

fn backend_code(backend: &str) -> Option<u64> {
    BACKENDS
        .iter()
        .position(|name| name.eq_ignore_ascii_case(backend))
        .map(|index| index as u64)
}

/// `RAI_RDBLoadTensor_v0`, shared by encvers 0–3.
fn decode_tensor_v0(r: &mut FieldReader) -> Result<RedisAiValue, String> {
    let device_type = r.unsigned("device type")?;
    if device_type != DL_CPU {
        return Err(r.fail(
            "device type",
            &format!("{device_type} is not the CPU (1); RedisAI only loads CPU tensors"),
        ));
    }
    r.unsigned("device id")?;
    let bits = r.unsigned("dtype bits")?;
    let code = r.unsigned("dtype code")?;
    let lanes = r.unsigned("dtype lanes")?;
    if lanes != 1 {
        return Err(r.fail("dtype lanes", &format!("{lanes} (RedisAI only makes 1)")));
    }
    let dtype = r.dtype(code, bits)?;
    if dtype == STRING_DTYPE {
        return Err(r.fail("dtype", "STRING tensors only exist from encver 4 on"));
    }
    let ndims = r.unsigned("ndims")?;
    // Each dimension has a shape and a stride item.
    let ndims = r.count("ndims", ndims, 2 * MIN_ITEM_BYTES)?;
    let mut shape = Vec::with_capacity(ndims);
    for index in 0..ndims {
        let dim = r.unsigned_item("shape", index)?;
        let dim = i64::try_from(dim)
            .map_err(|_| r.fail(&item_field("shape", index), &format!("{dim} is too big")))?;
        shape.push(dim);
    }
    for index in 0..ndims {
        r.unsigned_item("strides", index)?;
    }
    r.unsigned("byte offset")?;
    let data = r.string("data")?;
    check_tensor(dtype, &shape, &data).map_err(|e| r.fail("data", &e))?;
    Ok(tensor_value(dtype, shape, data))
}

/// `RAI_RDBLoadTensor_v4`.
fn decode_tensor_v4(r: &mut FieldReader) -> Result<RedisAiValue, String> {
    let code = r.unsigned("dtype code")?;
    let bits = r.unsigned("dtype bits")?;
    let dtype = r.dtype(code, bits)?;
    let ndims = r.signed("ndims")?;
    let ndims =
        u64::try_from(ndims).map_err(|_| r.fail("ndims", &format!("{ndims} is negative")))?;
    let ndims = r.count("ndims", ndims, MIN_ITEM_BYTES)?;
    let mut shape = Vec::with_capacity(ndims);
    for index in 0..ndims {
        let dim = r.signed_item("shape", index)?;
        if dim < 0 {
            return Err(r.fail(&item_field("shape", index), &format!("{dim} is negative")));
        }
        shape.push(dim);
    }
    let data = r.string("data")?;
    let offsets = check_tensor(dtype, &shape, &data).map_err(|e| r.fail("data", &e))?;
    if let Some(offsets) = offsets {
        check_saved_string_offsets(r, &offsets)?;
    }
    Ok(tensor_value(dtype, shape, data))
}

/// RedisAI saves each STRING element's offset after the data; they must be the ones the data's
/// NULs imply, or RedisAI's copy of the tensor would disagree with ours.
fn check_saved_string_offsets(r: &mut FieldReader, offsets: &[u64]) -> Result<(), String> {
    r.count("string offsets", offsets.len() as u64, MIN_ITEM_BYTES)?;
    for (index, &expected) in offsets.iter().enumerate() {
        let saved = r.unsigned_item("string offset", index)?;
        if saved != expected {
            return Err(r.fail(
                &item_field("string offset", index),
                &format!("{saved}, but element {index} starts at byte {expected} of the data"),
            ));
        }
    }
    Ok(())
}

fn tensor_value(dtype: &str, shape: Vec<i64>, data: Vec<u8>) -> RedisAiValue {
    RedisAiValue::Tensor {
        dtype: dtype.to_string(),
        shape,
        data,
    }
}

/// Checks a tensor as RedisAI would have built it; for STRING tensors, returns each element's
/// start offset in the data.
fn check_tensor(dtype: &str, shape: &[i64], data: &[u8]) -> Result<Option<Vec<u64>>, String> {
    let (code, bits) = dtype_code_bits(dtype).ok_or_else(|| format!("unknown dtype {dtype:?}"))?;
    let elements = element_count(shape)?;
    if code == DL_STRING {
        return string_offsets(data, elements).map(Some);
    }
    let expected = elements
        .checked_mul(bits / 8)
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    if data.len() as u64 != expected {
        return Err(format!(
            "{} bytes, but shape {shape:?} of {dtype} needs {expected}",
            data.len()
        ));
    }
    Ok(None)
}

/// The product of the dimensions (1 for a scalar), as RedisAI's `RAI_TensorLength`.
fn element_count(shape: &[i64]) -> Result<u64, String> {
    shape.iter().try_fold(1u64, |count, &dim| {
        let dim = u64::try_from(dim).map_err(|_| format!("negative dimension {dim}"))?;
        count
            .checked_mul(dim)
            .ok_or_else(|| format!("shape {shape:?} is too large"))
    })
}

/// Start offsets of the NUL-terminated strings a STRING tensor's data holds, which must be
/// exactly `elements` strings (RedisAI's `_RAI_TensorParseStringsBlob` rule).
fn string_offsets(data: &[u8], elements: u64) -> Result<Vec<u64>, String> {
    if data.last().is_some_and(|&b| b != 0) {
        return Err("STRING data doesn't end with a NUL".to_string());
    }
    let mut offsets = Vec::new();
    let mut start = 0u64;
    for (index, _) in data.iter().enumerate().filter(|(_, &b)| b == 0) {
        offsets.push(start);
        start = index as u64 + 1;
    }
    if offsets.len() as u64 != elements {
        return Err(format!(
            "STRING data holds {} strings, but the shape has {elements} elements",
            offsets.len()
        ));
    }
    Ok(offsets)
}

/// `RAI_RDBLoadModel_v0` (encver 0), `_v1` (1) and `_v2`/`_v3` (2–4, which also
/// `RAI_RDBLoadModel_v4` reuses).
fn decode_model(r: &mut FieldReader, encver: u32) -> Result<RedisAiValue, String> {
    let code = r.unsigned("backend")?;
    let backend = usize::try_from(code)
        .ok()
        .and_then(|index| BACKENDS.get(index))
        .ok_or_else(|| {
            r.fail(
                "backend",
                &format!("unknown code {code} (RedisAI 1.2: 0 TF, 1 TFLITE, 2 TORCH, 3 ONNX)"),
            )
        })?;
    let device = r.c_string("device")?;
    let tag = if encver == 0 {
        decode_v0_tag(r)?
    } else {
        String::from_utf8_lossy(&r.string("tag")?).into_owned()
    };
    let batchsize = r.unsigned("batchsize")?;
    let minbatchsize = r.unsigned("minbatchsize")?;
    let minbatchtimeout = if encver >= 2 {
        r.unsigned("minbatchtimeout")?
    } else {
        0
    };
    let inputs = r.c_string_list("inputs")?;
    let outputs = r.c_string_list("outputs")?;
    let blob = if encver == 0 {
        r.string("blob")?
    } else {
        decode_chunked_blob(r)?
    };
    Ok(RedisAiValue::Model {
        backend: backend.to_string(),
        device,
        tag,
        batchsize,
        minbatchsize,
        minbatchtimeout,
        inputs,
        outputs,
        blob,
    })
}

/// Encver 0 saved the tag as a C string with its NUL; `RAI_RDBLoadModel_v0` keeps all bytes but
/// the last. The tag is free text, so bytes that aren't UTF-8 are replaced, not refused.
fn decode_v0_tag(r: &mut FieldReader) -> Result<String, String> {
    let bytes = r.string("tag")?;
    let text = bytes
        .split_last()
        .map(|(_, text)| text)
        .ok_or_else(|| r.fail("tag", "empty, not even the NUL RedisAI saves"))?;
    Ok(String::from_utf8_lossy(text).into_owned())
}

/// The blob as encvers 1–4 save it: total length, chunk count, then the chunks (each at most
/// `MODEL_CHUNK_SIZE`; RedisAI writes `len / chunk + 1` of them, so the last may be empty).
fn decode_chunked_blob(r: &mut FieldReader) -> Result<Vec<u8>, String> {
    let total = r.unsigned("blob length")?;
    let chunks = r.unsigned("blob chunk count")?;
    let chunks = r.count("blob chunk count", chunks, MIN_ITEM_BYTES)?;
    // Sized by the bytes present, not the declared total: a lie can't reserve memory.
    let capacity = usize::try_from(total).map_or(0, |total| total.min(r.cursor.remaining()));
    let mut blob = Vec::with_capacity(capacity);
    for index in 0..chunks {
        let chunk = r.string_item("blob chunk", index)?;
        if (blob.len() + chunk.len()) as u64 > total {
            return Err(r.fail(
                "blob",
                &format!("chunks hold more than the declared {total} bytes"),
            ));
        }
        blob.extend_from_slice(&chunk);
    }
    if blob.len() as u64 != total {
        return Err(r.fail(
            "blob",
            &format!("chunks hold {} bytes, not the declared {total}", blob.len()),
        ));
    }
    Ok(blob)
}

/// Writes items as Redis's `RM_Save*` functions do. Strings are always written plainly
/// (length + bytes), never integer-encoded or LZF-compressed: Redis loads either form.
#[derive(Default)]
struct ModuleWriter {
    out: Vec<u8>,
}

impl ModuleWriter {
    /// Redis's `rdbSaveLen`.
    fn len(&mut self, len: u64) {
        if len < 1 << 6 {
            self.out.push(len as u8);
        } else if len < 1 << 14 {
            self.out.push((RDB_14BITLEN << 6) | (len >> 8) as u8);
            self.out.push(len as u8);
        } else if let Ok(len) = u32::try_from(len) {
            self.out.push(RDB_32BITLEN);
            self.out.extend_from_slice(&len.to_be_bytes());
        } else {
            self.out.push(RDB_64BITLEN);
            self.out.extend_from_slice(&len.to_be_bytes());
        }
    }

    fn unsigned(&mut self, value: u64) {
        self.len(RDB_MODULE_OPCODE_UINT);
        self.len(value);
    }

    fn signed(&mut self, value: i64) {
        self.unsigned(u64::from_le_bytes(value.to_le_bytes()));
    }

    fn string(&mut self, bytes: &[u8]) {
        self.len(RDB_MODULE_OPCODE_STRING);
        self.len(bytes.len() as u64);
        self.out.extend_from_slice(bytes);
    }

    /// A string saved with its NUL, as RedisAI saves device and tensor names.
    fn c_string(&mut self, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
        self.string(&bytes);
    }

    fn finish(mut self) -> Vec<u8> {
        self.len(RDB_MODULE_OPCODE_EOF);
        self.out
    }
}

/// Encodes a value as RedisAI 1.2.7 saves it (encver 4 unless `encver` asks for an older
/// layout), with RedisAI's default model chunk size. Returns the module id and the body, EOF
/// marker included. See [`encode_redisai_with_chunk_size`].
pub fn encode_redisai(value: &RedisAiValue, encver: Option<u32>) -> (u64, Vec<u8>) {
    encode_redisai_with_chunk_size(value, encver, DEFAULT_MODEL_CHUNK_SIZE)
}

/// Like [`encode_redisai`], with model blobs cut into `chunk_size`-byte chunks (RedisAI's
/// `MODEL_CHUNK_SIZE`).
///
/// An encver above 4 is written as 4, and STRING tensors always as 4 (older encodings can't
/// carry them); the returned id holds the encver actually used. The value should pass
/// [`RedisAiValue::validate`]: an unknown dtype or backend is written as code `u64::MAX`, which
/// the decoder then refuses rather than misreads.
pub fn encode_redisai_with_chunk_size(
    value: &RedisAiValue,
    encver: Option<u32>,
    chunk_size: usize,
) -> (u64, Vec<u8>) {
    let mut encver = encver.unwrap_or(REDISAI_ENCVER).min(REDISAI_ENCVER);
    let mut writer = ModuleWriter::default();
    let type_name = match value {
        RedisAiValue::Tensor { dtype, shape, data } => {
            let (code, bits) = dtype_code_bits(dtype).unwrap_or((u64::MAX, u64::MAX));
            if code == DL_STRING {
                encver = REDISAI_ENCVER;
            }
            if encver >= 4 {
                encode_tensor_v4(&mut writer, (code, bits), shape, data);
            } else {
                encode_tensor_v0(&mut writer, (code, bits), shape, data);
            }
            TENSOR_TYPE_NAME
        }
        RedisAiValue::Model { .. } => {
            encode_model(&mut writer, value, encver, chunk_size.max(1));
            MODEL_TYPE_NAME
        }
    };
    let id = module_type_id(type_name, encver).expect("RedisAI's type names are valid");
    (id, writer.finish())
}

/// The layout `RAI_RDBLoadTensor_v0` reads (RedisAI 1.0's to 1.2.4's writers): a CPU
/// device with id 0, lanes 1, row-major strides in elements and a zero byte offset.
fn encode_tensor_v0(w: &mut ModuleWriter, (code, bits): (u64, u64), shape: &[i64], data: &[u8]) {
    w.unsigned(DL_CPU);
    w.unsigned(0);
    w.unsigned(bits);
    w.unsigned(code);
    w.unsigned(1);
    w.unsigned(shape.len() as u64);
    for &dim in shape {
        w.signed(dim);
    }
    for stride in row_major_strides(shape) {
        w.signed(stride);
    }
    w.unsigned(0);
    w.string(data);
}

fn row_major_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![1i64; shape.len()];
    for index in (0..shape.len().saturating_sub(1)).rev() {
        strides[index] = strides[index + 1].wrapping_mul(shape[index + 1]);
    }
    strides
}

/// `RAI_RDBSaveTensor_v4`.
fn encode_tensor_v4(w: &mut ModuleWriter, (code, bits): (u64, u64), shape: &[i64], data: &[u8]) {
    w.unsigned(code);
    w.unsigned(bits);
    w.signed(shape.len() as i64);
    for &dim in shape {
        w.signed(dim);
    }
    w.string(data);
    if code == DL_STRING {
        let elements = element_count(shape).unwrap_or_default();
        for offset in string_offsets(data, elements).unwrap_or_default() {
            w.unsigned(offset);
        }
    }
}

/// `RAI_RDBSaveModel_v4` and its predecessors (see the module docs for what each encver has).
fn encode_model(w: &mut ModuleWriter, value: &RedisAiValue, encver: u32, chunk_size: usize) {
    let RedisAiValue::Model {
        backend,
        device,
        tag,
        batchsize,
        minbatchsize,
        minbatchtimeout,
        inputs,
        outputs,
        blob,
    } = value
    else {
        return;
    };
    w.unsigned(backend_code(backend).unwrap_or(u64::MAX));
    w.c_string(device);
    if encver == 0 {
        w.c_string(tag);
    } else {
        w.string(tag.as_bytes());
    }
    w.unsigned(*batchsize);
    w.unsigned(*minbatchsize);
    if encver >= 2 {
        w.unsigned(*minbatchtimeout);
    }
    for names in [inputs, outputs] {
        w.unsigned(names.len() as u64);
        for name in names {
            w.c_string(name);
        }
    }
    if encver == 0 {
        w.string(blob);
    } else {
        encode_chunked_blob(w, blob, chunk_size);
    }
}

/// RedisAI writes `len / chunk_size + 1` chunks, the last holding `len % chunk_size` bytes: a
/// blob that is an exact multiple of the chunk size ends with an empty chunk.
fn encode_chunked_blob(w: &mut ModuleWriter, blob: &[u8], chunk_size: usize) {
    let chunks = blob.len() / chunk_size + 1;
    w.unsigned(blob.len() as u64);
    w.unsigned(chunks as u64);
    for index in 0..chunks {
        let start = index * chunk_size;
        let end = (start + chunk_size).min(blob.len());
        w.string(blob.get(start..end).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- helpers ----------------------------------------------------------------------------

    /// Builds bodies item by item, independently of the encoder's layout code.
    fn uint(out: &mut Vec<u8>, value: u64) {
        let mut w = ModuleWriter::default();
        w.unsigned(value);
        out.extend_from_slice(&w.out);
    }

    fn string(out: &mut Vec<u8>, bytes: &[u8]) {
        let mut w = ModuleWriter::default();
        w.string(bytes);
        out.extend_from_slice(&w.out);
    }

    fn eof(out: &mut Vec<u8>) {
        out.push(0);
    }

    fn tensor(dtype: &str, shape: &[i64], data: &[u8]) -> RedisAiValue {
        RedisAiValue::Tensor {
            dtype: dtype.to_string(),
            shape: shape.to_vec(),
            data: data.to_vec(),
        }
    }

    fn model(backend: &str, inputs: &[&str], outputs: &[&str], blob: Vec<u8>) -> RedisAiValue {
        RedisAiValue::Model {
            backend: backend.to_string(),
            device: "CPU".to_string(),
            tag: "my tag".to_string(),
            batchsize: 8,
            minbatchsize: 2,
            minbatchtimeout: 1000,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            blob,
        }
    }

    fn round_trip(value: &RedisAiValue, encver: Option<u32>, chunk_size: usize) -> RedisAiValue {
        let (id, body) = encode_redisai_with_chunk_size(value, encver, chunk_size);
        let (name, version) = module_type_name(id);
        assert_eq!(module_value_len(&body), Ok(body.len()));
        decode_redisai(&name, version, &body).unwrap()
    }

    /// Deterministic pseudo-random bytes (xorshift64*), so tests need no crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// A plain greedy LZF compressor, to feed the decompressor back references of every kind.
    fn lzf_compress(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut literals: Vec<u8> = Vec::new();
        let flush = |out: &mut Vec<u8>, literals: &mut Vec<u8>| {
            for run in literals.chunks(32) {
                out.push((run.len() - 1) as u8);
                out.extend_from_slice(run);
            }
            literals.clear();
        };
        let mut pos = 0;
        while pos < input.len() {
            let (mut best_len, mut best_dist) = (0, 0);
            for dist in 1..=pos.min(8192) {
                let mut len = 0;
                while pos + len < input.len()
                    && len < 264
                    && input[pos + len - dist] == input[pos + len]
                {
                    len += 1;
                }
                if len > best_len {
                    (best_len, best_dist) = (len, dist);
                }
            }
            if best_len >= 3 {
                flush(&mut out, &mut literals);
                let (len, off) = (best_len - 2, best_dist - 1);
                if len < 7 {
                    out.push(((len << 5) | (off >> 8)) as u8);
                } else {
                    out.push(((7 << 5) | (off >> 8)) as u8);
                    out.push((len - 7) as u8);
                }
                out.push(off as u8);
                pos += best_len;
            } else {
                literals.push(input[pos]);
                pos += 1;
            }
        }
        flush(&mut out, &mut literals);
        out
    }

    /// A string item in RDB's LZF form (`rdbSaveLzfBlob`).
    fn lzf_string(out: &mut Vec<u8>, plain: &[u8]) {
        let compressed = lzf_compress(plain);
        let mut w = ModuleWriter::default();
        w.len(RDB_MODULE_OPCODE_STRING);
        w.out.push(0xc0 | RDB_ENC_LZF);
        w.len(compressed.len() as u64);
        w.len(plain.len() as u64);
        w.out.extend_from_slice(&compressed);
        out.extend_from_slice(&w.out);
    }

    /// Redis's CRC-64 (Jones polynomial, reflected) that ends a DUMP payload.
    fn crc64(data: &[u8]) -> u64 {
        let mut crc = 0u64;
        for &byte in data {
            crc ^= u64::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    /// Splits a DUMP payload (type byte, module id, body, RDB version, CRC) into the id and
    /// body, checking the CRC so the vectors are known to be RedisAI's bytes untouched.
    fn dump_body(payload: &[u8]) -> (u64, &[u8]) {
        let (rest, crc) = payload.split_at(payload.len() - 8);
        assert_eq!(crc64(rest), u64::from_le_bytes(crc.try_into().unwrap()));
        assert_eq!(rest[0], RDB_TYPE_MODULE_2);
        assert_eq!(rest[1], RDB_64BITLEN);
        let id = u64::from_be_bytes(rest[2..10].try_into().unwrap());
        (id, &rest[10..rest.len() - 2])
    }

    fn decode_dump(payload: &[u8]) -> Result<RedisAiValue, String> {
        let (id, body) = dump_body(payload);
        let (name, encver) = module_type_name(id);
        decode_redisai(&name, encver, body)
    }

    /// Every truncation must fail, and no corruption may panic.
    fn assert_robust(type_name: &str, encver: u32, body: &[u8]) {
        for len in 0..body.len() {
            assert!(
                decode_redisai(type_name, encver, &body[..len]).is_err(),
                "{type_name} v{encver} truncated to {len} decoded"
            );
            let _ = module_value_len(&body[..len]);
        }
        let mut corrupt = body.to_vec();
        for pos in 0..body.len() {
            for value in [
                0x00,
                0x01,
                0x3f,
                0x40,
                0x7f,
                0x80,
                0x81,
                0xc0,
                0xc3,
                0xff,
                body[pos] ^ 0x01,
            ] {
                corrupt[pos] = value;
                let _ = decode_redisai(type_name, encver, &corrupt);
                let _ = module_value_len(&corrupt);
            }
            corrupt[pos] = body[pos];
        }
    }

    // ---- module ids -------------------------------------------------------------------------

    /// `moduleTypeEncodeId`, spelled out differently from the implementation.
    fn redis_encode_id(name: &str, encver: u64) -> u64 {
        let mut id = 0u64;
        for c in name.chars() {
            let index = match c {
                'A'..='Z' => c as u64 - 'A' as u64,
                'a'..='z' => 26 + c as u64 - 'a' as u64,
                '0'..='9' => 52 + c as u64 - '0' as u64,
                '-' => 62,
                '_' => 63,
                _ => panic!("bad char"),
            };
            id = id * 64 + index;
        }
        id * 1024 + encver
    }

    #[test]
    fn module_ids_match_redis() {
        for (name, encver, literal) in [
            (TENSOR_TYPE_NAME, 0, 0x008f_d310_d48e_4400u64),
            (TENSOR_TYPE_NAME, 4, 0x008f_d310_d48e_4404),
            (MODEL_TYPE_NAME, 0, 0x008f_ff30_e0c4_2c00),
            (MODEL_TYPE_NAME, 4, 0x008f_ff30_e0c4_2c04),
            (SCRIPT_TYPE_NAME, 3, 0x008f_d209_120f_4c03),
        ] {
            assert_eq!(redis_encode_id(name, u64::from(encver)), literal);
            assert_eq!(module_type_id(name, encver), Some(literal));
            assert_eq!(module_type_name(literal), (name.to_string(), encver));
        }
        assert_eq!(module_type_name(u64::MAX), ("_________".to_string(), 1023));
        assert_eq!(module_type_id("AI__TENSOR", 4), None, "10 characters");
        assert_eq!(
            module_type_id("AI_TENS R", 4),
            None,
            "space not in the charset"
        );
        assert_eq!(module_type_id(TENSOR_TYPE_NAME, 1024), None);
        assert!(is_redisai_type_name(SCRIPT_TYPE_NAME) && !is_redisai_type_name("ReJSON-RL"));
    }

    // ---- cursor primitives ------------------------------------------------------------------

    #[test]
    fn cursor_reads_every_length_form() {
        let body = [
            0x02, 0x05, // 6-bit
            0x02, 0x41, 0x02, // 14-bit: 0x102
            0x02, 0x80, 0x00, 0x01, 0x00, 0x00, // 32-bit: 65536
            0x02, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, // 64-bit: 2^56
            0x02, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, // signed -2
            0x00,
        ];
        let mut c = ModuleCursor::new(&body);
        assert_eq!(c.read_unsigned(), Ok(5));
        assert_eq!(c.read_unsigned(), Ok(0x102));
        assert_eq!(c.read_unsigned(), Ok(65536));
        assert_eq!(c.read_unsigned(), Ok(1 << 56));
        assert_eq!(c.read_signed(), Ok(-2));
        assert_eq!(c.read_eof(), Ok(()));
        assert_eq!(c.remaining(), 0);
        for value in [
            0,
            63,
            64,
            16383,
            16384,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            let mut w = ModuleWriter::default();
            w.unsigned(value);
            assert_eq!(ModuleCursor::new(&w.out).read_unsigned(), Ok(value));
        }
    }

    #[test]
    fn cursor_reads_strings_in_every_encoding() {
        let mut body = vec![0x05, 0x03, b'a', b'b', b'c'];
        // Integer encodings: INT8 -5, INT16 12345, INT32 minimum.
        body.extend_from_slice(&[0x05, 0xc0, 0xfb]);
        body.extend_from_slice(&[0x05, 0xc1, 0x39, 0x30]);
        body.extend_from_slice(&[0x05, 0xc2, 0x00, 0x00, 0x00, 0x80]);
        // LZF, 5 bytes making 6: literal run "ab", then 4 bytes back from distance 2.
        body.extend_from_slice(&[0x05, 0xc3, 0x05, 0x06, 0x01, b'a', b'b', 0x40, 0x01]);
        // Float 1.5, then double -0.25.
        body.extend_from_slice(&[0x03, 0x00, 0x00, 0xc0, 0x3f]);
        body.extend_from_slice(&[0x04]);
        body.extend_from_slice(&(-0.25f64).to_le_bytes());
        body.push(0x00);
        let mut c = ModuleCursor::new(&body);
        assert_eq!(c.read_string().unwrap(), b"abc");
        assert_eq!(c.read_string().unwrap(), b"-5");
        assert_eq!(c.read_string().unwrap(), b"12345");
        assert_eq!(c.read_string().unwrap(), b"-2147483648");
        assert_eq!(c.read_string().unwrap(), b"ababab");
        assert_eq!(c.read_float(), Ok(1.5));
        assert_eq!(c.read_double(), Ok(-0.25));
        assert_eq!(c.read_eof(), Ok(()));
        assert_eq!(module_value_len(&body), Ok(body.len()));
    }

    #[test]
    fn cursor_refuses_what_redis_refuses() {
        let err = ModuleCursor::new(&[0x01, 0x05]).read_signed().unwrap_err();
        assert!(
            err.contains("opcode 1") && err.contains("never writes"),
            "{err}"
        );
        let err = ModuleCursor::new(&[0x05, 0x03])
            .read_unsigned()
            .unwrap_err();
        assert!(err.contains("found string"), "{err}");
        let err = ModuleCursor::new(&[0x02, 0x90])
            .read_unsigned()
            .unwrap_err();
        assert!(err.contains("unknown length encoding 0x90"), "{err}");
        let err = ModuleCursor::new(&[0x05, 0xc4]).read_string().unwrap_err();
        assert!(err.contains("unknown string encoding 4"), "{err}");
        let err = ModuleCursor::new(&[0x05, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
            .read_string()
            .unwrap_err();
        assert!(err.contains("truncated string"), "{err}");
        // An LZF string declaring a huge plain length is refused before allocating.
        let err = ModuleCursor::new(&[0x05, 0xc3, 0x01, 0x81, 0, 0, 0, 0x10, 0, 0, 0, 0, 0x00])
            .read_string()
            .unwrap_err();
        assert!(err.contains("can't hold"), "{err}");
        // A back reference before the output's start.
        let err = ModuleCursor::new(&[0x05, 0xc3, 0x02, 0x03, 0x20, 0x05])
            .read_string()
            .unwrap_err();
        assert!(err.contains("before the start"), "{err}");
        let err = ModuleCursor::new(&[0x07]).skip_item().unwrap_err();
        assert!(err.contains("unknown module opcode 7"), "{err}");
        assert!(ModuleCursor::new(&[0x02]).check_count(1, 2).is_err());
        assert!(ModuleCursor::new(&[0x02, 0x02])
            .check_count(u64::MAX, 2)
            .is_err());
    }

    #[test]
    fn lzf_decompresses_its_own_compression() {
        let mut rng = Rng(7);
        let mut samples = vec![
            Vec::new(),
            b"a".to_vec(),
            vec![0u8; 5000],
            b"abcabcabcabcabcabcabcabcabc-xyz-abcabc".repeat(40),
        ];
        samples.push(rng.bytes(3000));
        let mut mixed = rng.bytes(100);
        mixed.extend(mixed.clone());
        mixed.extend(vec![9u8; 600]);
        mixed.extend(rng.bytes(9000));
        mixed.extend_from_within(50..5000);
        samples.push(mixed);
        for plain in samples {
            let compressed = lzf_compress(&plain);
            assert_eq!(lzf_decompress(&compressed, plain.len()).unwrap(), plain);
            assert!(lzf_decompress(&compressed, plain.len() + 1).is_err());
            if !plain.is_empty() {
                assert!(lzf_decompress(&compressed, plain.len() - 1).is_err());
            }
        }
    }

    // ---- round trips ------------------------------------------------------------------------

    fn sample_data(dtype: &str, elements: usize) -> Vec<u8> {
        if dtype == STRING_DTYPE {
            return (0..elements)
                .flat_map(|i| format!("s{i}\0").into_bytes())
                .collect();
        }
        let (_, bits) = dtype_code_bits(dtype).unwrap();
        let mut rng = Rng(elements as u64 + 1);
        let mut data = rng.bytes(elements * bits as usize / 8);
        if dtype == "BOOL" {
            data.iter_mut().for_each(|b| *b &= 1);
        }
        data
    }

    #[test]
    fn tensors_round_trip_every_dtype_shape_and_encver() {
        let shapes: [&[i64]; 6] = [&[], &[1], &[5], &[2, 3], &[2, 0, 4], &[1, 2, 3, 4]];
        for (dtype, _, _) in DTYPES {
            for shape in shapes {
                let elements = element_count(shape).unwrap() as usize;
                let value = tensor(dtype, shape, &sample_data(dtype, elements));
                assert_eq!(value.validate(), Ok(()));
                for encver in [None, Some(0), Some(1), Some(2), Some(3), Some(4), Some(9)] {
                    assert_eq!(
                        round_trip(&value, encver, 16),
                        value,
                        "{dtype} {shape:?} {encver:?}"
                    );
                }
                let (id, _) = encode_redisai(&value, Some(1));
                let expected = if dtype == STRING_DTYPE { 4 } else { 1 };
                assert_eq!(
                    module_type_name(id),
                    (TENSOR_TYPE_NAME.to_string(), expected)
                );
            }
        }
    }

    #[test]
    fn large_tensor_round_trips() {
        let data = sample_data("FLOAT", 300 * 400);
        let value = tensor("FLOAT", &[300, 400], &data);
        assert_eq!(round_trip(&value, None, 16), value);
    }

    #[test]
    fn models_round_trip_with_many_chunks() {
        let blob = Rng(3).bytes(10_000);
        let value = model("ONNX", &["x", "mask", "ids"], &["logits", "probs"], blob);
        for encver in 2..=4 {
            for chunk_size in [1000, 3333, 10_000, 20_000, DEFAULT_MODEL_CHUNK_SIZE] {
                assert_eq!(round_trip(&value, Some(encver), chunk_size), value);
            }
        }
        // Encvers 0 and 1 have no minbatchtimeout.
        let mut old = value.clone();
        if let RedisAiValue::Model {
            minbatchtimeout, ..
        } = &mut old
        {
            *minbatchtimeout = 0;
        }
        assert_eq!(round_trip(&value, Some(0), 1000), old);
        assert_eq!(round_trip(&value, Some(1), 1000), old);
        for backend in BACKENDS {
            let value = model(backend, &[], &[""], b"graph".to_vec());
            assert_eq!(round_trip(&value, None, 2), value);
        }
    }

    #[test]
    fn chunking_follows_redisai() {
        // 10 bytes in chunks of 5: RedisAI writes 10 / 5 + 1 = 3 chunks, the last one empty.
        let value = model("TF", &["a"], &["b"], b"0123456789".to_vec());
        let (_, body) = encode_redisai_with_chunk_size(&value, None, 5);
        let mut c = ModuleCursor::new(&body);
        for _ in 0..6 {
            c.skip_item().unwrap(); // backend, device, tag, batch sizes, timeout
        }
        for _ in 0..4 {
            c.skip_item().unwrap(); // input and output counts and names
        }
        assert_eq!(c.read_unsigned(), Ok(10));
        assert_eq!(c.read_unsigned(), Ok(3));
        assert_eq!(c.read_string().unwrap(), b"01234");
        assert_eq!(c.read_string().unwrap(), b"56789");
        assert_eq!(c.read_string().unwrap(), b"");
        assert_eq!(c.read_eof(), Ok(()));
    }

    // ---- hand-built bodies of every encver ----------------------------------------------------

    #[test]
    fn tensor_encver_0_to_3_from_literal_bytes() {
        // RAI_RDBLoadTensor_v0: CPU, id 0, 16 bits, UINT, 1 lane, 2 dims [2, 1], strides
        // [1, 1], byte offset 0, data 4 bytes.
        let body = [
            0x02, 0x01, 0x02, 0x00, 0x02, 0x10, 0x02, 0x01, 0x02, 0x01, 0x02, 0x02, 0x02, 0x02,
            0x02, 0x01, 0x02, 0x01, 0x02, 0x01, 0x02, 0x00, 0x05, 0x04, 0x01, 0x00, 0xff, 0xff,
            0x00,
        ];
        let expected = tensor("UINT16", &[2, 1], &[1, 0, 0xff, 0xff]);
        for encver in 0..=3 {
            assert_eq!(
                decode_redisai(TENSOR_TYPE_NAME, encver, &body),
                Ok(expected.clone())
            );
            assert_robust(TENSOR_TYPE_NAME, encver, &body);
        }
        assert!(decode_redisai(TENSOR_TYPE_NAME, 4, &body).is_err());
    }

    #[test]
    fn tensor_encver_4_from_literal_bytes() {
        // RAI_RDBSaveTensor_v4: BOOL (6, 8 bits), ndims 1, [3], data "\x01\x00\x01".
        let body = [
            0x02, 0x06, 0x02, 0x08, 0x02, 0x01, 0x02, 0x03, 0x05, 0x03, 1, 0, 1, 0x00,
        ];
        assert_eq!(
            decode_redisai(TENSOR_TYPE_NAME, 4, &body),
            Ok(tensor("BOOL", &[3], &[1, 0, 1]))
        );
        assert_robust(TENSOR_TYPE_NAME, 4, &body);
    }

    #[test]
    fn integer_encoded_and_lzf_tensor_data() {
        // A one-byte INT8 tensor holding b'5' is the string "5": Redis integer-encodes it.
        let body = [
            0x02, 0x00, 0x02, 0x08, 0x02, 0x01, 0x02, 0x01, 0x05, 0xc0, 0x05, 0x00,
        ];
        assert_eq!(
            decode_redisai(TENSOR_TYPE_NAME, 4, &body),
            Ok(tensor("INT8", &[1], b"5"))
        );
        // Larger data is LZF-compressed by Redis's default rdbcompression.
        let data: Vec<u8> = (0..4096u32)
            .flat_map(|i| ((i % 7) as f32).to_le_bytes())
            .collect();
        let mut body = Vec::new();
        for value in [DL_FLOAT, 32, 2, 64, 64] {
            uint(&mut body, value);
        }
        lzf_string(&mut body, &data);
        eof(&mut body);
        assert!(body.len() < data.len() / 4);
        let decoded = decode_redisai(TENSOR_TYPE_NAME, 4, &body);
        assert!(decoded == Ok(tensor("FLOAT", &[64, 64], &data)));
    }

    fn model_body(encver: u32, blob_chunks: &[&[u8]]) -> Vec<u8> {
        let total: usize = blob_chunks.iter().map(|c| c.len()).sum();
        model_body_declaring(encver, blob_chunks, total as u64)
    }

    /// A model body following the RAI_RDBLoadModel_v* layouts, its blob length declared as
    /// `total` (encvers 1-4).
    fn model_body_declaring(encver: u32, blob_chunks: &[&[u8]], total: u64) -> Vec<u8> {
        let mut body = Vec::new();
        uint(&mut body, 3); // ONNX
        string(&mut body, b"GPU:1\0");
        if encver == 0 {
            string(&mut body, b"v0 tag\0");
        } else {
            string(&mut body, b"tag");
        }
        uint(&mut body, 16);
        uint(&mut body, 4);
        if encver >= 2 {
            uint(&mut body, 250);
        }
        uint(&mut body, 2);
        string(&mut body, b"in0\0");
        string(&mut body, b"in1\0");
        uint(&mut body, 1);
        string(&mut body, b"out\0");
        if encver == 0 {
            string(&mut body, &blob_chunks.concat());
        } else {
            uint(&mut body, total);
            uint(&mut body, blob_chunks.len() as u64);
            for chunk in blob_chunks {
                string(&mut body, chunk);
            }
        }
        eof(&mut body);
        body
    }

    #[test]
    fn models_of_every_encver_from_hand_built_bodies() {
        let chunks: [&[u8]; 3] = [b"onnx-", b"graph-", b"bytes"];
        for encver in 0..=4 {
            let body = model_body(encver, &chunks);
            let value = decode_redisai(MODEL_TYPE_NAME, encver, &body).unwrap();
            assert_eq!(
                value,
                RedisAiValue::Model {
                    backend: "ONNX".to_string(),
                    device: "GPU:1".to_string(),
                    tag: if encver == 0 { "v0 tag" } else { "tag" }.to_string(),
                    batchsize: 16,
                    minbatchsize: 4,
                    minbatchtimeout: if encver >= 2 { 250 } else { 0 },
                    inputs: vec!["in0".to_string(), "in1".to_string()],
                    outputs: vec!["out".to_string()],
                    blob: b"onnx-graph-bytes".to_vec(),
                }
            );
            assert_robust(MODEL_TYPE_NAME, encver, &body);
        }
    }

    #[test]
    fn model_blob_must_match_its_length() {
        let chunks: [&[u8]; 2] = [b"abc", b"def"];
        assert!(decode_redisai(MODEL_TYPE_NAME, 4, &model_body_declaring(4, &chunks, 6)).is_ok());
        let err =
            decode_redisai(MODEL_TYPE_NAME, 4, &model_body_declaring(4, &chunks, 7)).unwrap_err();
        assert!(
            err.contains("blob: chunks hold 6 bytes, not the declared 7"),
            "{err}"
        );
        let err =
            decode_redisai(MODEL_TYPE_NAME, 3, &model_body_declaring(3, &chunks, 5)).unwrap_err();
        assert!(err.contains("more than the declared 5"), "{err}");
        let err = decode_redisai(
            MODEL_TYPE_NAME,
            2,
            &model_body_declaring(2, &chunks, u64::MAX),
        )
        .unwrap_err();
        assert!(err.contains("not the declared"), "{err}");
    }

    // ---- RedisAI's own test vectors ---------------------------------------------------------

    #[test]
    fn redisai_tensor_vectors_decode() {
        for payload in [
            vectors::TENSOR_V0,
            vectors::TENSOR_V1,
            vectors::TENSOR_V3,
            vectors::TENSOR_V4,
        ] {
            let data = [1u8, 0, 0, 0, 2, 0, 0, 0];
            assert_eq!(decode_dump(payload), Ok(tensor("INT32", &[2, 1], &data)));
            let (id, body) = dump_body(payload);
            let (name, encver) = module_type_name(id);
            assert_robust(&name, encver, body);
            let (re_id, re_body) = encode_redisai(&decode_dump(payload).unwrap(), Some(encver));
            assert_eq!(
                (re_id, re_body.as_slice()),
                (id, body),
                "byte-identical re-encoding"
            );
        }
        let strings = tensor(STRING_DTYPE, &[2], b"str_val1\0str_val2\0");
        assert_eq!(decode_dump(vectors::STRING_TENSOR_V4), Ok(strings.clone()));
        let (id, body) = dump_body(vectors::STRING_TENSOR_V4);
        assert_eq!(encode_redisai(&strings, None), (id, body.to_vec()));
        assert_robust(TENSOR_TYPE_NAME, 4, body);
    }

    #[test]
    fn redisai_model_vectors_decode() {
        let tf = [
            (
                vectors::TF_MODEL_V0,
                "TF_GRAPH_V0",
                (0, 0, 0),
                vec![],
                vec![],
            ),
            (
                vectors::TF_MODEL_V1,
                "TF_GRAPH_V1",
                (0, 0, 0),
                vec!["a", "b"],
                vec!["c"],
            ),
            (
                vectors::TF_MODEL_V2,
                "TF_GRAPH_V2",
                (4, 2, 1000),
                vec!["a", "b"],
                vec!["mul"],
            ),
            (
                vectors::TF_MODEL_V3,
                "TF_GRAPH_V3",
                (4, 2, 1000),
                vec!["a", "b"],
                vec!["mul"],
            ),
            (
                vectors::TF_MODEL_V4,
                "TF_GRAPH_V4",
                (4, 2, 1000),
                vec!["a", "b"],
                vec!["mul"],
            ),
        ];
        let onnx = (0..5).map(|v| {
            let batching = if v >= 2 { (4, 2, 1000) } else { (0, 0, 0) };
            let payload = [
                vectors::ONNX_MODEL_V0,
                vectors::ONNX_MODEL_V1,
                vectors::ONNX_MODEL_V2,
                vectors::ONNX_MODEL_V3,
                vectors::ONNX_MODEL_V4,
            ][v];
            // RedisAI 1.0 to 1.2.2 saved ONNX models without input and output names
            // (the backend reads them from the graph).
            let (inputs, outputs) = if v >= 2 {
                (vec!["float_input"], vec!["variable"])
            } else {
                (vec![], vec![])
            };
            (
                payload,
                [
                    "ONNX_LINEAR_IRIS_V0",
                    "ONNX_LINEAR_IRIS_V1",
                    "ONNX_LINEAR_IRIS_V2",
                    "ONNX_LINEAR_IRIS_V3",
                    "ONNX_LINEAR_IRIS_V4",
                ][v],
                batching,
                inputs,
                outputs,
            )
        });
        let mut tf_blob = None;
        for (payload, expected_tag, batching, expected_inputs, expected_outputs) in
            tf.into_iter().chain(onnx)
        {
            let Ok(RedisAiValue::Model {
                backend,
                device,
                tag,
                batchsize,
                minbatchsize,
                minbatchtimeout,
                inputs,
                outputs,
                blob,
            }) = decode_dump(payload)
            else {
                panic!("{expected_tag} didn't decode: {:?}", decode_dump(payload));
            };
            let expected_backend = if expected_tag.starts_with("TF") {
                "TF"
            } else {
                "ONNX"
            };
            assert_eq!(backend, expected_backend);
            assert_eq!((device.as_str(), tag.as_str()), ("CPU", expected_tag));
            assert_eq!((batchsize, minbatchsize, minbatchtimeout), batching);
            assert_eq!(
                (inputs, outputs),
                (
                    expected_inputs
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                    expected_outputs
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                )
            );
            // A TF GraphDef starts with field 1 (node, length-delimited), an ONNX ModelProto
            // with field 1 (ir_version, varint).
            let first_tag = if backend == "TF" { 0x0a } else { 0x08 };
            assert_eq!(blob.first(), Some(&first_tag));
            if expected_tag == "TF_GRAPH_V4" {
                tf_blob = Some(blob);
            }
            let (id, body) = dump_body(payload);
            let (name, encver) = module_type_name(id);
            assert_eq!(module_value_len(body), Ok(body.len()));
            assert_robust(&name, encver, body);
            // Our encoding of the same encver (plain strings instead of LZF) reads back equal.
            let value = decode_dump(payload).unwrap();
            assert_eq!(round_trip(&value, Some(encver), 64), value);
        }
        assert!(tf_blob.is_some_and(|blob| blob.windows(8).any(|w| w == b"Identity")));
    }

    #[test]
    fn scripts_are_refused_by_name_but_skippable() {
        for payload in [vectors::SCRIPT_V0, vectors::SCRIPT_V4] {
            let (id, body) = dump_body(payload);
            let (name, encver) = module_type_name(id);
            assert_eq!(name, SCRIPT_TYPE_NAME);
            let err = decode_redisai(&name, encver, body).unwrap_err();
            assert!(err.starts_with("AI_SCRIPT"), "{err}");
            assert_eq!(module_value_len(body), Ok(body.len()));
        }
    }

    // ---- refusals -----------------------------------------------------------------------------

    #[test]
    fn refuses_unknown_types_newer_encvers_and_trailing_bytes() {
        let (_, body) = encode_redisai(&tensor("INT8", &[1], &[7]), None);
        let err = decode_redisai("ReJSON-RL", 3, &body).unwrap_err();
        assert!(err.contains("not a RedisAI"), "{err}");
        let err = decode_redisai(TENSOR_TYPE_NAME, 5, &body).unwrap_err();
        assert!(err.contains("newer than 1.2"), "{err}");
        let mut longer = body.clone();
        longer.extend_from_slice(b"next key");
        let err = decode_redisai(TENSOR_TYPE_NAME, 4, &longer).unwrap_err();
        assert!(err.contains("8 unexpected bytes"), "{err}");
        let (value, used) = decode_redisai_prefix(TENSOR_TYPE_NAME, 4, &longer).unwrap();
        assert_eq!((value, used), (tensor("INT8", &[1], &[7]), body.len()));
    }

    #[test]
    fn refuses_inconsistent_tensors() {
        let refuse = |body: &[u8], encver: u32, needle: &str| {
            let err = decode_redisai(TENSOR_TYPE_NAME, encver, body).unwrap_err();
            assert!(
                err.starts_with(&format!("AI_TENSOR encver {encver}: ")),
                "{err}"
            );
            assert!(err.contains(needle), "{err} lacks {needle}");
        };
        let build = |items: &[u64], data: &[u8], extra: &[u64]| {
            let mut body = Vec::new();
            items.iter().for_each(|&v| uint(&mut body, v));
            string(&mut body, data);
            extra.iter().for_each(|&v| uint(&mut body, v));
            eof(&mut body);
            body
        };
        refuse(
            &build(&[2, 32, 1, 3], &[0; 8], &[]),
            4,
            "8 bytes, but shape [3] of FLOAT needs 12",
        );
        refuse(
            &build(&[2, 16, 1, 3], &[0; 6], &[]),
            4,
            "unknown DLPack type code 2 with 16 bits",
        );
        refuse(
            &build(&[2, 32, u64::MAX, 3], &[], &[]),
            4,
            "ndims: -1 is negative",
        );
        refuse(
            &build(&[2, 32, 1, u64::MAX - 1], &[], &[]),
            4,
            "shape[0]: -2 is negative",
        );
        refuse(&build(&[2, 32, 1_000_000], &[], &[]), 4, "more than the");
        refuse(
            &build(&[0, 64, 2, 1 << 40, 1 << 40], &[], &[]),
            4,
            "too large",
        );
        refuse(
            &build(&[7, 8, 1, 2], b"a\0b\0", &[0, 3]),
            4,
            "string offset[1]: 3, but element 1 starts at byte 2",
        );
        refuse(
            &build(&[7, 8, 1, 2], b"a\0b", &[0, 2]),
            4,
            "doesn't end with a NUL",
        );
        refuse(
            &build(&[7, 8, 1, 3], b"a\0b\0", &[0, 2, 4]),
            4,
            "holds 2 strings, but the shape has 3",
        );
        refuse(
            &build(&[2, 0, 8, 0, 1, 0, 0], &[], &[]),
            0,
            "2 is not the CPU",
        );
        refuse(&build(&[1, 0, 8, 0, 4, 0, 0], &[], &[]), 1, "lanes: 4");
        refuse(
            &build(&[1, 0, 8, 7, 1, 0, 0], &[], &[]),
            2,
            "STRING tensors only exist from encver 4",
        );
        refuse(
            &build(&[1, 0, 8, 0, 1, 1, u64::MAX, 1, 0], &[], &[]),
            3,
            "is too big",
        );
    }

    #[test]
    fn refuses_inconsistent_models() {
        let mut body = Vec::new();
        uint(&mut body, 4);
        eof(&mut body);
        let err = decode_redisai(MODEL_TYPE_NAME, 4, &body).unwrap_err();
        assert!(err.contains("backend: unknown code 4"), "{err}");
        let mut body = Vec::new();
        uint(&mut body, 3);
        string(&mut body, b"\xff\xfe\0");
        let err = decode_redisai(MODEL_TYPE_NAME, 4, &body).unwrap_err();
        assert!(err.contains("device: not valid UTF-8"), "{err}");
        let mut body = Vec::new();
        uint(&mut body, 3);
        string(&mut body, b"CPU\0");
        string(&mut body, b"");
        let err = decode_redisai(MODEL_TYPE_NAME, 0, &body).unwrap_err();
        assert!(err.contains("tag: empty"), "{err}");
        assert!(model("PYTORCH", &[], &[], vec![]).validate().is_err());
    }

    #[test]
    fn random_bodies_never_panic() {
        let mut rng = Rng(0x5eed);
        let seeds = [
            encode_redisai(&tensor("STRING", &[3], b"x\0yy\0\0"), None).1,
            encode_redisai(&tensor("INT64", &[2, 2], &[3; 32]), Some(2)).1,
            model_body(4, &[b"abc", b"def"]),
            model_body(0, &[b"abc"]),
        ];
        for round in 0..4000 {
            let mut body = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.next() % 4 {
                let pos = (rng.next() as usize) % body.len();
                body[pos] = rng.next() as u8;
            }
            if round % 5 == 0 {
                let len = (rng.next() % 64) as usize;
                body = rng.bytes(len);
            }
            for name in [TENSOR_TYPE_NAME, MODEL_TYPE_NAME] {
                for encver in 0..=4 {
                    let _ = decode_redisai(name, encver, &body);
                }
            }
            let _ = module_value_len(&body);
        }
    }

    /// DUMP payloads from RedisAI 1.2.7's own serialization tests (`test_serializations.py`):
    /// written by RedisAI 1.0 (encver 0) through 1.2.7 (encver 4), each ending with the RDB
    /// version and Redis's CRC-64.
    mod vectors {
        pub const TF_MODEL_V0: &[u8] =
            b"\x07\x81\x00\x8f\xff0\xe0\xc4,\x00\x02\x00\x05\x04CPU\x00\x05\x0cTF_GRAPH_V0\x00\x02\
            \x00\x02\x00\x02\x00\x02\x00\x05\xc3@j@\x96\x1f\x0a,\x0a\x01a\x12\x0bPlaceholder*\
            \x0b\x0a\x05dtype\x12\x020\x01*\x05\x0d\x0a\x05sha \x0c\x05\x04:\x02\x18\x01\x0a -\
            \x00b\xe0!-\x15\x19\x0a\x03mul\x12\x03Mul\x1a\x01a\x1a\x01b*\x07\x0a\x01T@W\x0f\x0a\
            \x1b\x0a\x01c\x12\x08Identity\x1a@'\xe0\x00\x1c\x01\x12\x00\x00\x09\x00*\x00\x94\x92\
            Xg\x86\xc8";
        pub const SCRIPT_V0: &[u8] =
            b"\x07\x81\x00\x8f\xd2\x09\x12\x0fL\x00\x05\x04CPU\x00\x05\x10TORCH_SCRIPT_V0\x00\x05\
            \xc3@W@i\x0fdef bar(a, b):\x0a  \x00\x0ereturn a + b\x0a\x0ad\x80 \x08_variadic@)\
            \x12args : List[Tensor]\xe0\x06;  \x02[0] A`\x09\x031]\x0a\x00\x00\x09\x00\x0b\xee\
            \x04\xe7\x11\xaez\x91";
        pub const ONNX_MODEL_V0: &[u8] =
            b"\x07\x81\x00\x8f\xff0\xe0\xc4,\x00\x02\x03\x05\x04CPU\x00\x05\x14ONNX_LINEAR_IRIS_V0\
            \x00\x02\x00\x02\x00\x02\x00\x02\x00\x05\xc3@\xe6A\x15\x17\x08\x05\x12\x08skl2onnx\
            \x1a\x051.4.9\x22\x07ai.@\x0f\x1f(\x002\x00:\xe2\x01\x0a\x82\x01\x0a\x0bfloat_input\
            \x12\x08variabl\x12e\x1a\x0fLinearRegressor\x22\xe0\x07\x10\x1f*%\x0a\x0ccoefficient\
            s=K\xfe\xc2\xbd=\xf7\xbe\x1c\xbd=/ii>=\x12\xe81\x1a?\xa0\x01\x06*\x14\x0a\x0ainterce\
            p $\x03\xa8\x1d\xb7= \x15\x01:\x0a\xa0\x88\x1f.ml\x12 2d76caf265cd4138a74199640a1\
            \x06fc408Z\x1d\xe0\x05\xa5\x0a\x0e\x0a\x0c\x08\x01\x12\x08\x0a\x02\x08\x01 \x03\x03\
            \x04b\x1a\x0a\xe0\x00\xb7\xe0\x06\x1b\x03\x01B\x0e\x0a\xe0\x02j\x01\x10\x01\x00\x09\
            \x00\x04EU\x04\xd8\x5c\xdb\x99";
        pub const TENSOR_V0: &[u8] =
            b"\x07\x81\x00\x8f\xd3\x10\xd4\x8eD\x00\x02\x01\x02\x00\x02 \x02\x00\x02\x01\x02\x02\
            \x02\x02\x02\x01\x02\x01\x02\x01\x02\x00\x05\x08\x01\x00\x00\x00\x02\x00\x00\x00\x00\
            \x09\x00^p\x94ty\xf8\xd7y";
        pub const TF_MODEL_V1: &[u8] =
            b"\x07\x81\x00\x8f\xff0\xe0\xc4,\x01\x02\x00\x05\x04CPU\x00\x05\x0bTF_GRAPH_V1\x02\x00\
            \x02\x00\x02\x02\x05\x02a\x00\x05\x02b\x00\x02\x01\x05\x02c\x00\x02@\x96\x02\x01\x05\
            \xc3@j@\x96\x1f\x0a,\x0a\x01a\x12\x0bPlaceholder*\x0b\x0a\x05dtype\x12\x020\x01*\x05\
            \x0d\x0a\x05sha \x0c\x05\x04:\x02\x18\x01\x0a -\x00b\xe0!-\x15\x19\x0a\x03mul\x12\
            \x03Mul\x1a\x01a\x1a\x01b*\x07\x0a\x01T@W\x0f\x0a\x1b\x0a\x01c\x12\x08Identity\x1a@'\
            \xe0\x00\x1c\x01\x12\x00\x00\x09\x00\xe6\xfa&\xf2'Q\x88V";
        pub const ONNX_MODEL_V1: &[u8] =
            b"\x07\x81\x00\x8f\xff0\xe0\xc4,\x01\x02\x03\x05\x04CPU\x00\x05\x13ONNX_LINEAR_IRIS_V1\
            \x02\x00\x02\x00\x02\x00\x02\x00\x02A\x15\x02\x01\x05\xc3@\xe6A\x15\x17\x08\x05\x12\
            \x08skl2onnx\x1a\x051.4.9\x22\x07ai.@\x0f\x1f(\x002\x00:\xe2\x01\x0a\x82\x01\x0a\x0b\
            float_input\x12\x08variabl\x12e\x1a\x0fLinearRegressor\x22\xe0\x07\x10\x1f*%\x0a\x0c\
            coefficients=K\xfe\xc2\xbd=\xf7\xbe\x1c\xbd=/ii>=\x12\xe81\x1a?\xa0\x01\x06*\x14\x0a\
            \x0aintercep $\x03\xa8\x1d\xb7= \x15\x01:\x0a\xa0\x88\x1f.ml\x12 2d76caf265cd4138a74\
            199640a1\x06fc408Z\x1d\xe0\x05\xa5\x0a\x0e\x0a\x0c\x08\x01\x12\x08\x0a\x02\x08\x01 \
            \x03\x03\x04b\x1a\x0a\xe0\x00\xb7\xe0\x06\x1b\x03\x01B\x0e\x0a\xe0\x02j\x01\x10\x01\
            \x00\x09\x00\xd4\x0f\xa0F\x851\xdb\xa0";
        pub const TENSOR_V1: &[u8] =
            b"\x07\x81\x00\x8f\xd3\x10\xd4\x8eD\x01\x02\x01\x02\x00\x02 \x02\x00\x02\x01\x02\x02\
            \x02\x02\x02\x01\x02\x01\x02\x01\x02\x00\x05\x08\x01\x00\x00\x00\x02\x00\x00\x00\x00\
            \x09\x00\x94\x04\xfd\xf0\x89\x0b(\x03";
        pub const TF_MODEL_V2: &[u8] =
            b"\x07\x81\x00\x8f\xff0\xe0\xc4,\x02\x02\x00\x05\x04CPU\x00\x05\x0bTF_GRAPH_V2\x02\x04\
            \x02\x02\x02C\xe8\x02\x02\x05\x02a\x00\x05\x02b\x00\x02\x01\x05\x04mul\x00\x02@\x96\
            \x02\x01\x05\xc3@j@\x96\x1f\x0a,\x0a\x01a\x12\x0bPlaceholder*\x0b\x0a\x05dtype\x12\
            \x020\x01*\x05\x0d\x0a\x05sha \x0c\x05\x04:\x02\x18\x01\x0a -\x00b\xe0!-\x15\x19\x0a\
            \x03mul\x12\x03Mul\x1a\x01a\x1a\x01b*\x07\x0a\x01T@W\x0f\x0a\x1b\x0a\x01c\x12\x08Ide\
            ntity\x1a@'\xe0\x00\x1c\x01\x12\x00\x00\x09\x00+\xee\x10\x0a\xf1\x1c\x1a\x0c";
        pub const ONNX_MODEL_V2: &[u8] =
            b"\x07\x81\x00\x8f\xff0\xe0\xc4,\x02\x02\x03\x05\x04CPU\x00\x05\x13ONNX_LINEAR_IRIS_V2\
            \x02\x04\x02\x02\x02C\xe8\x02\x01\x05\x0cfloat_input\x00\x02\x01\x05\x09variable\x00\
            \x02A\x15\x02\x01\x05\xc3@\xe6A\x15\x17\x08\x05\x12\x08skl2onnx\x1a\x051.4.9\x22\x07\
            ai.@\x0f\x1f(\x002\x00:\xe2\x01\x0a\x82\x01\x0a\x0bfloat_input\x12\x08variabl\x12e\
            \x1a\x0fLinearRegressor\x22\xe0\x07\x10\x1f*%\x0a\x0ccoefficients=K\xfe\xc2\xbd=\xf7\
            \xbe\x1c\xbd=/ii>=\x12\xe81\x1a?\xa0\x01\x06*\x14\x0a\x0aintercep $\x03\xa8\x1d\xb7=\
            \x20\x15\x01:\x0a\xa0\x88\x1f.ml\x12 2d76caf265cd4138a74199640a1\x06fc408Z\x1d\xe0\x05\
            \xa5\x0a\x0e\x0a\x0c\x08\x01\x12\x08\x0a\x02\x08\x01 \x03\x03\x04b\x1a\x0a\xe0\x00\
            \xb7\xe0\x06\x1b\x03\x01B\x0e\x0a\xe0\x02j\x01\x10\x01\x00\x09\x00\x8c\xe4d?\x81I_S";
        pub const TF_MODEL_V3: &[u8] =
            b"\x07\x81\x00\x8f\xff0\xe0\xc4,\x03\x02\x00\x05\x04CPU\x00\x05\x0bTF_GRAPH_V3\x02\x04\
            \x02\x02\x02C\xe8\x02\x02\x05\x02a\x00\x05\x02b\x00\x02\x01\x05\x04mul\x00\x02@\x96\
            \x02\x01\x05\xc3@j@\x96\x1f\x0a,\x0a\x01a\x12\x0bPlaceholder*\x0b\x0a\x05dtype\x12\
            \x020\x01*\x05\x0d\x0a\x05sha \x0c\x05\x04:\x02\x18\x01\x0a -\x00b\xe0!-\x15\x19\x0a\
            \x03mul\x12\x03Mul\x1a\x01a\x1a\x01b*\x07\x0a\x01T@W\x0f\x0a\x1b\x0a\x01c\x12\x08Ide\
            ntity\x1a@'\xe0\x00\x1c\x01\x12\x00\x00\x09\x00\x80T\xc7\x8aM\x88\x94\xd1";
        pub const ONNX_MODEL_V3: &[u8] =
            b"\x07\x81\x00\x8f\xff0\xe0\xc4,\x03\x02\x03\x05\x04CPU\x00\x05\x13ONNX_LINEAR_IRIS_V3\
            \x02\x04\x02\x02\x02C\xe8\x02\x01\x05\x0cfloat_input\x00\x02\x01\x05\x09variable\x00\
            \x02A\x15\x02\x01\x05\xc3@\xe6A\x15\x17\x08\x05\x12\x08skl2onnx\x1a\x051.4.9\x22\x07\
            ai.@\x0f\x1f(\x002\x00:\xe2\x01\x0a\x82\x01\x0a\x0bfloat_input\x12\x08variabl\x12e\
            \x1a\x0fLinearRegressor\x22\xe0\x07\x10\x1f*%\x0a\x0ccoefficients=K\xfe\xc2\xbd=\xf7\
            \xbe\x1c\xbd=/ii>=\x12\xe81\x1a?\xa0\x01\x06*\x14\x0a\x0aintercep $\x03\xa8\x1d\xb7=\
            \x20\x15\x01:\x0a\xa0\x88\x1f.ml\x12 2d76caf265cd4138a74199640a1\x06fc408Z\x1d\xe0\x05\
            \xa5\x0a\x0e\x0a\x0c\x08\x01\x12\x08\x0a\x02\x08\x01 \x03\x03\x04b\x1a\x0a\xe0\x00\
            \xb7\xe0\x06\x1b\x03\x01B\x0e\x0a\xe0\x02j\x01\x10\x01\x00\x09\x00x\xf2\xe7be\x8b\
            \xc1\xdc";
        pub const TENSOR_V3: &[u8] =
            b"\x07\x81\x00\x8f\xd3\x10\xd4\x8eD\x03\x02\x01\x02\x00\x02 \x02\x00\x02\x01\x02\x02\
            \x02\x02\x02\x01\x02\x01\x02\x01\x02\x00\x05\x08\x01\x00\x00\x00\x02\x00\x00\x00\x00\
            \x09\x00\x00\xed/\xf8h\xec\xd7\xf6";
        pub const TF_MODEL_V4: &[u8] =
            b"\x07\x81\x00\x8f\xff0\xe0\xc4,\x04\x02\x00\x05\x04CPU\x00\x05\x0bTF_GRAPH_V4\x02\x04\
            \x02\x02\x02C\xe8\x02\x02\x05\x02a\x00\x05\x02b\x00\x02\x01\x05\x04mul\x00\x02@\x96\
            \x02\x01\x05\xc3@j@\x96\x1f\x0a,\x0a\x01a\x12\x0bPlaceholder*\x0b\x0a\x05dtype\x12\
            \x020\x01*\x05\x0d\x0a\x05sha \x0c\x05\x04:\x02\x18\x01\x0a -\x00b\xe0!-\x15\x19\x0a\
            \x03mul\x12\x03Mul\x1a\x01a\x1a\x01b*\x07\x0a\x01T@W\x0f\x0a\x1b\x0a\x01c\x12\x08Ide\
            ntity\x1a@'\xe0\x00\x1c\x01\x12\x00\x00\x09\x00\x07W\xce\xb9\xdc+\x8f\x97";
        pub const SCRIPT_V4: &[u8] =
            b"\x07\x81\x00\x8f\xd2\x09\x12\x0fL\x04\x05\x04CPU\x00\x05\x0fTORCH_SCRIPT_V4\x05\xc3@\
            |A\x01\x16def bar(tensors: List[T`\x0d\x05], key\xc0\x13\x01st@\x10\x02arg\xe0\x03\
            \x10\x03):\x0a  \x00\x03a = \xa0A\x02[0]`\x12\x00b\xe0\x02\x12\x001\x80\x12\x05retur\
            n ,\x05+ b\x0a\x0ad\x80y\x08_variadic\xe0I\x82\x00l\xe0\x03\x82\x00:\xe0\x08\x83\x00\
            l \xaa\x01\x0a\x00\x02\x02\x05\x04bar\x00\x05\x0dbar_variadic\x00\x00\x09\x00\xad\
            \xbe\xd5\xb3d\x05\xb8\xe8";
        pub const ONNX_MODEL_V4: &[u8] =
            b"\x07\x81\x00\x8f\xff0\xe0\xc4,\x04\x02\x03\x05\x04CPU\x00\x05\x13ONNX_LINEAR_IRIS_V4\
            \x02\x04\x02\x02\x02C\xe8\x02\x01\x05\x0cfloat_input\x00\x02\x01\x05\x09variable\x00\
            \x02A\x15\x02\x01\x05\xc3@\xe6A\x15\x17\x08\x05\x12\x08skl2onnx\x1a\x051.4.9\x22\x07\
            ai.@\x0f\x1f(\x002\x00:\xe2\x01\x0a\x82\x01\x0a\x0bfloat_input\x12\x08variabl\x12e\
            \x1a\x0fLinearRegressor\x22\xe0\x07\x10\x1f*%\x0a\x0ccoefficients=K\xfe\xc2\xbd=\xf7\
            \xbe\x1c\xbd=/ii>=\x12\xe81\x1a?\xa0\x01\x06*\x14\x0a\x0aintercep $\x03\xa8\x1d\xb7=\
            \x20\x15\x01:\x0a\xa0\x88\x1f.ml\x12 2d76caf265cd4138a74199640a1\x06fc408Z\x1d\xe0\x05\
            \xa5\x0a\x0e\x0a\x0c\x08\x01\x12\x08\x0a\x02\x08\x01 \x03\x03\x04b\x1a\x0a\xe0\x00\
            \xb7\xe0\x06\x1b\x03\x01B\x0e\x0a\xe0\x02j\x01\x10\x01\x00\x09\x00\x09'\xd6\x1b-\xad\
            \xf2\x0f";
        pub const TENSOR_V4: &[u8] =
            b"\x07\x81\x00\x8f\xd3\x10\xd4\x8eD\x04\x02\x00\x02 \x02\x02\x02\x02\x02\x01\x05\x08\
            \x01\x00\x00\x00\x02\x00\x00\x00\x00\x09\x00Viy\xab4\xbe\xdd\x82";
        pub const STRING_TENSOR_V4: &[u8] =
            b"\x07\x81\x00\x8f\xd3\x10\xd4\x8eD\x04\x02\x07\x02\x08\x02\x01\x02\x02\x05\x12str_val\
            1\x00str_val2\x00\x02\x00\x02\x09\x00\x09\x00\x8b\x05Z\x0f:\x877O";
    }
}
