//! Tensors: a dtype, a shape, and one contiguous 64-byte-aligned buffer that model execution
//! reads in place and `AI.TENSORGET … BLOB` returns as is. Knows nothing of sockets or RESP; the
//! error texts are RedisAI's so the command layer can pass them through.

mod aligned;
pub mod ops;

pub use aligned::{AlignedBuf, TENSOR_BYTES};

use bytes::Bytes;
use std::fmt;

/// Element types: RedisAI's set plus the other ONNX tensor types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    Float,
    Double,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Bool,
    String,
    Float16,
    BFloat16,
}

impl DType {
    pub const ALL: [DType; 14] = [
        DType::Float,
        DType::Double,
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::Uint8,
        DType::Uint16,
        DType::Uint32,
        DType::Uint64,
        DType::Bool,
        DType::String,
        DType::Float16,
        DType::BFloat16,
    ];

    /// Parses a type name, case-insensitively, as RedisAI does.
    pub fn parse(name: &[u8]) -> Option<DType> {
        let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
        DType::ALL.into_iter().find(|t| t.name() == upper)
    }

    /// The name RedisAI prints.
    pub fn name(self) -> &'static str {
        match self {
            DType::Float => "FLOAT",
            DType::Double => "DOUBLE",
            DType::Int8 => "INT8",
            DType::Int16 => "INT16",
            DType::Int32 => "INT32",
            DType::Int64 => "INT64",
            DType::Uint8 => "UINT8",
            DType::Uint16 => "UINT16",
            DType::Uint32 => "UINT32",
            DType::Uint64 => "UINT64",
            DType::Bool => "BOOL",
            DType::String => "STRING",
            DType::Float16 => "FLOAT16",
            DType::BFloat16 => "BFLOAT16",
        }
    }

    /// Bytes per element; `None` for variable-length strings.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DType::Int8 | DType::Uint8 | DType::Bool => 1,
            DType::Int16 | DType::Uint16 | DType::Float16 | DType::BFloat16 => 2,
            DType::Float | DType::Int32 | DType::Uint32 => 4,
            DType::Double | DType::Int64 | DType::Uint64 => 8,
            DType::String => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor-level failure, carrying the text the client sees.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorError(pub String);

impl TensorError {
    fn new(s: impl Into<String>) -> Self {
        TensorError(s.into())
    }
}

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const ERR_BLOB_LEN: &str = "ERR data length does not match tensor shape and type";
pub const ERR_VALUE: &str = "ERR invalid value";
pub const ERR_SHAPE: &str = "ERR invalid or negative value found in tensor shape";
pub const ERR_STRINGS: &str =
    "ERR Number of string elements in data blob does not match tensor length";
pub const ERR_BOOL_BLOB: &str = "ERR BOOL tensor elements must be 0 or 1";
pub const ERR_NUL_IN_STRING: &str = "ERR C-string value contains null character";

/// One element, widened, for VALUES replies and arithmetic.
#[derive(Clone, Debug, PartialEq)]
pub enum Element {
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Bytes),
}

/// A tensor value. Immutable once built: stored behind an `Arc` so that readers (model runs,
/// TENSORGET) share it while a writer replaces the key with a new one.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    dtype: DType,
    shape: Box<[usize]>,
    /// Element data, little-endian; for STRING, NUL-terminated UTF-8 strings back to back.
    data: Bytes,
}

/// Checks a shape and returns its element count and byte size, refusing overflow and anything
/// above `max_bytes` before a single byte is allocated.
pub fn checked_size(
    dtype: DType,
    shape: &[usize],
    max_bytes: usize,
) -> Result<(usize, usize), TensorError> {
    let mut n: usize = 1;
    for &d in shape {
        if d == 0 {
            return Err(TensorError::new(ERR_SHAPE));
        }
        n = n
            .checked_mul(d)
            .ok_or_else(|| too_big(usize::MAX, max_bytes))?;
    }
    let bytes = n
        .checked_mul(dtype.size().unwrap_or(1))
        .ok_or_else(|| too_big(usize::MAX, max_bytes))?;
    if bytes > max_bytes {
        return Err(too_big(bytes, max_bytes));
    }
    Ok((n, bytes))
}

fn too_big(bytes: usize, max: usize) -> TensorError {
    if bytes == usize::MAX {
        TensorError::new(format!(
            "ERR tensor is too large: its size overflows (tensor-max-bytes is {max})"
        ))
    } else {
        TensorError::new(format!(
            "ERR tensor is too large: {bytes} bytes (tensor-max-bytes is {max})"
        ))
    }
}

impl Tensor {
    /// Wraps already-validated parts.
    fn from_parts(dtype: DType, shape: &[usize], data: Bytes) -> Tensor {
        Tensor {
            dtype,
            shape: shape.into(),
            data,
        }
    }

    /// A zero-filled tensor (AI.TENSORSET with no data). STRING tensors hold empty strings.
    pub fn zeros(dtype: DType, shape: &[usize], max_bytes: usize) -> Result<Tensor, TensorError> {
        let (n, bytes) = checked_size(dtype, shape, max_bytes)?;
        let bytes = if dtype == DType::String { n } else { bytes };
        Ok(Tensor::from_parts(
            dtype,
            shape,
            AlignedBuf::zeroed(bytes).into_bytes(),
        ))
    }

    /// Builds a tensor from a blob given as one or more chunks, copied once into an aligned
    /// buffer.
    pub fn from_blob(
        dtype: DType,
        shape: &[usize],
        chunks: &[&[u8]],
        max_bytes: usize,
    ) -> Result<Tensor, TensorError> {
        let (n, bytes) = checked_size(dtype, shape, max_bytes)?;
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        match dtype {
            DType::String if total > max_bytes => return Err(too_big(total, max_bytes)),
            DType::String => {}
            _ if total != bytes => return Err(TensorError::new(ERR_BLOB_LEN)),
            _ => {}
        }
        let buf = AlignedBuf::filled(total, |w| chunks.iter().for_each(|c| w.put(c)));
        match dtype {
            DType::String => {
                let nuls = buf.as_slice().iter().filter(|&&b| b == 0).count();
                if nuls != n || buf.as_slice().last() != Some(&0) {
                    return Err(TensorError::new(ERR_STRINGS));
                }
            }
            DType::Bool if buf.as_slice().iter().any(|&b| b > 1) => {
                return Err(TensorError::new(ERR_BOOL_BLOB))
            }
            _ => {}
        }
        Ok(Tensor::from_parts(dtype, shape, buf.into_bytes()))
    }

    /// Builds a tensor from textual values, parsed per type with range checks.
    pub fn from_values<V: AsRef<[u8]>>(
        dtype: DType,
        shape: &[usize],
        values: &[V],
        max_bytes: usize,
    ) -> Result<Tensor, TensorError> {
        let (n, bytes) = checked_size(dtype, shape, max_bytes)?;
        if values.len() != n {
            return Err(TensorError::new(
                "ERR wrong number of values was given in 'AI.TENSORSET' command",
            ));
        }
        if dtype == DType::String {
            // As RedisAI reads C strings: a value may end with one NUL (dropped); a NUL
            // anywhere else is refused. (An empty value is an empty string.)
            let values: Vec<&[u8]> = values
                .iter()
                .map(|v| {
                    let v = v.as_ref();
                    v.strip_suffix(&[0]).unwrap_or(v)
                })
                .collect();
            let total: usize = values.iter().map(|v| v.len() + 1).sum();
            if total > max_bytes {
                return Err(too_big(total, max_bytes));
            }
            if values.iter().any(|v| v.contains(&0)) {
                return Err(TensorError::new(ERR_NUL_IN_STRING));
            }
            let buf = AlignedBuf::filled(total, |w| {
                for v in values {
                    w.put(v.as_ref());
                    w.put(&[0]);
                }
            });
            return Ok(Tensor::from_parts(dtype, shape, buf.into_bytes()));
        }
        let mut buf = AlignedBuf::zeroed(bytes);
        let size = dtype.size().expect("fixed-size type");
        let out = buf.as_mut_slice();
        for (i, v) in values.iter().enumerate() {
            encode_value(dtype, v.as_ref(), &mut out[i * size..(i + 1) * size])?;
        }
        Ok(Tensor::from_parts(dtype, shape, buf.into_bytes()))
    }

    /// Builds a tensor from elements (tensor ops, feature assembly). Floats are cast to the
    /// dtype; integers are range-checked.
    pub fn from_elements(
        dtype: DType,
        shape: &[usize],
        elems: &[Element],
        max_bytes: usize,
    ) -> Result<Tensor, TensorError> {
        let texts: Vec<Vec<u8>> = elems
            .iter()
            .map(|e| match e {
                Element::Int(i) => i.to_string().into_bytes(),
                Element::UInt(u) => u.to_string().into_bytes(),
                Element::Float(f) => format!("{f:?}").into_bytes(),
                Element::Str(s) => s.to_vec(),
            })
            .collect();
        Tensor::from_values(dtype, shape, &texts, max_bytes)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw data: what `BLOB` returns and what model execution reads.
    pub fn blob(&self) -> &Bytes {
        &self.data
    }

    /// Heap bytes held (for MEMORY USAGE and accounting).
    pub fn memory_usage(&self) -> usize {
        self.data.len() + self.shape.len() * 8 + 96
    }

    /// The string elements of a STRING tensor, without their terminators.
    pub fn strings(&self) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.len());
        let mut start = 0;
        for (i, &b) in self.data.iter().enumerate() {
            if b == 0 {
                out.push(self.data.slice(start..i));
                start = i + 1;
            }
        }
        out
    }

    /// Every element, widened.
    pub fn elements(&self) -> Vec<Element> {
        let d = &self.data[..];
        macro_rules! read {
            ($t:ty, $wrap:expr) => {
                d.chunks_exact(std::mem::size_of::<$t>())
                    .map(|c| $wrap(<$t>::from_le_bytes(c.try_into().expect("element size"))))
                    .collect()
            };
        }
        match self.dtype {
            DType::Float => read!(f32, |v: f32| Element::Float(v as f64)),
            DType::Double => read!(f64, Element::Float),
            DType::Int8 => read!(i8, |v: i8| Element::Int(v as i64)),
            DType::Int16 => read!(i16, |v: i16| Element::Int(v as i64)),
            DType::Int32 => read!(i32, |v: i32| Element::Int(v as i64)),
            DType::Int64 => read!(i64, Element::Int),
            DType::Uint8 | DType::Bool => d.iter().map(|&v| Element::Int(v as i64)).collect(),
            DType::Uint16 => read!(u16, |v: u16| Element::Int(v as i64)),
            DType::Uint32 => read!(u32, |v: u32| Element::Int(v as i64)),
            DType::Uint64 => read!(u64, Element::UInt),
            DType::Float16 => read!(u16, |v: u16| Element::Float(
                half::f16::from_bits(v).to_f64()
            )),
            DType::BFloat16 => read!(u16, |v: u16| Element::Float(
                half::bf16::from_bits(v).to_f64()
            )),
            DType::String => self.strings().into_iter().map(Element::Str).collect(),
        }
    }

    /// A copy with another shape of the same element count.
    pub fn reshaped(&self, shape: &[usize]) -> Result<Tensor, TensorError> {
        if shape.iter().product::<usize>() != self.len() || shape.contains(&0) {
            return Err(TensorError::new(
                "ERR reshape must keep the number of elements",
            ));
        }
        Ok(Tensor::from_parts(self.dtype, shape, self.data.clone()))
    }

    /// Concatenates tensors along dimension 0: same dtype, same dimensions after the first.
    /// This is how batches are assembled (AI.TENSORSTACK, dynamic batching).
    pub fn concat_batch(parts: &[&Tensor], max_bytes: usize) -> Result<Tensor, TensorError> {
        let first = parts
            .first()
            .ok_or_else(|| TensorError::new("ERR no tensors to stack"))?;
        for t in parts {
            if t.dtype != first.dtype {
                return Err(TensorError::new(
                    "ERR all tensors must have the same data type",
                ));
            }
            if t.shape.len() != first.shape.len() || t.shape[1..] != first.shape[1..] {
                return Err(TensorError::new(
                    "ERR all tensors must have the same shape after dimension 0",
                ));
            }
        }
        let total: usize = parts.iter().map(|t| t.data.len()).sum();
        if total > max_bytes {
            return Err(too_big(total, max_bytes));
        }
        let mut shape = first.shape.to_vec();
        shape[0] = parts.iter().map(|t| t.shape[0]).sum();
        if parts.len() == 1 {
            return Ok((*first).clone());
        }
        let buf = AlignedBuf::filled(total, |w| parts.iter().for_each(|t| w.put(&t.data)));
        Ok(Tensor::from_parts(first.dtype, &shape, buf.into_bytes()))
    }

    /// Rows `[offset, offset + len)` along dimension 0, sharing this tensor's buffer when the
    /// slice starts on an aligned boundary (batch splitting), copying otherwise.
    pub fn slice_batch(&self, offset: usize, len: usize) -> Tensor {
        let mut shape = self.shape.to_vec();
        shape[0] = len;
        if self.dtype == DType::String {
            let strings = self.strings();
            let row: usize = self.shape[1..].iter().product();
            let mut buf = Vec::new();
            for s in &strings[offset * row..(offset + len) * row] {
                buf.extend_from_slice(s);
                buf.push(0);
            }
            let aligned = AlignedBuf::filled(buf.len(), |w| w.put(&buf));
            return Tensor::from_parts(self.dtype, &shape, aligned.into_bytes());
        }
        let row_bytes = self.data.len() / self.shape[0].max(1);
        let range = offset * row_bytes..(offset + len) * row_bytes;
        if (offset * row_bytes).is_multiple_of(64) {
            return Tensor::from_parts(self.dtype, &shape, self.data.slice(range));
        }
        let aligned = AlignedBuf::filled(range.len(), |w| w.put(&self.data[range.clone()]));
        Tensor::from_parts(self.dtype, &shape, aligned.into_bytes())
    }

    /// Wraps data that already lives somewhere suitable (a memory-mapped snapshot), without
    /// copying when it is 64-byte aligned. The length must match the shape.
    pub fn from_shared(dtype: DType, shape: &[usize], data: Bytes) -> Result<Tensor, TensorError> {
        if let Some(size) = dtype.size() {
            // Shapes read from a file may be anything: an overflowing product is a mismatch.
            let bytes = shape.iter().try_fold(size, |acc, &d| acc.checked_mul(d));
            if bytes != Some(data.len()) {
                return Err(TensorError::new(ERR_BLOB_LEN));
            }
        }
        if (data.as_ptr() as usize).is_multiple_of(aligned::ALIGN) {
            return Ok(Tensor::from_parts(dtype, shape, data));
        }
        Ok(Tensor::from_raw(dtype, shape, &data))
    }

    /// Builds a tensor over data produced elsewhere (model outputs), copied into an aligned
    /// buffer.
    pub fn from_raw(dtype: DType, shape: &[usize], data: &[u8]) -> Tensor {
        let buf = AlignedBuf::filled(data.len(), |w| w.put(data));
        Tensor::from_parts(dtype, shape, buf.into_bytes())
    }
}

/// Parses one textual value into its little-endian bytes.
pub(crate) fn encode_value(dtype: DType, text: &[u8], out: &mut [u8]) -> Result<(), TensorError> {
    let bad = || TensorError::new(ERR_VALUE);
    let int = || crate::numbers::parse_i64(text).ok_or_else(bad);
    let float = || crate::numbers::parse_f64(text).ok_or_else(bad);
    macro_rules! put_int {
        ($t:ty) => {{
            let v = <$t>::try_from(int()?).map_err(|_| bad())?;
            out.copy_from_slice(&v.to_le_bytes());
        }};
    }
    match dtype {
        DType::Float => out.copy_from_slice(&(float()? as f32).to_le_bytes()),
        DType::Double => out.copy_from_slice(&float()?.to_le_bytes()),
        DType::Float16 => {
            out.copy_from_slice(&half::f16::from_f64(float()?).to_bits().to_le_bytes())
        }
        DType::BFloat16 => {
            out.copy_from_slice(&half::bf16::from_f64(float()?).to_bits().to_le_bytes())
        }
        DType::Int8 => put_int!(i8),
        DType::Int16 => put_int!(i16),
        DType::Int32 => put_int!(i32),
        DType::Int64 => put_int!(i64),
        DType::Uint8 => put_int!(u8),
        DType::Uint16 => put_int!(u16),
        DType::Uint32 => put_int!(u32),
        DType::Uint64 => {
            let v = crate::numbers::parse_u64(text).ok_or_else(bad)?;
            out.copy_from_slice(&v.to_le_bytes());
        }
        DType::Bool => match int()? {
            0 | 1 => out[0] = int()? as u8,
            _ => return Err(bad()),
        },
        DType::String => unreachable!("strings are variable-length"),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
