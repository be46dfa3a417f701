//! Records in, batches out, predictions back: a hash's fields become one row, a tensor key's
//! rows are its dimension 0; a batch is one model run; each key gets its rows' outputs back.

use super::spec::OutputSpec;
use crate::tensor::{DType, Tensor};
use bytes::Bytes;
use std::sync::Arc;

/// One key's input as the host read it.
pub enum Record {
    /// The named fields' values, in the definition's order (`None`: the field is missing).
    Fields(Vec<Option<Bytes>>),
    Tensor(Arc<Tensor>),
}

/// A batch ready to run: the keys in it, the rows each has, and the rows as one tensor.
pub struct Batch {
    pub keys: Vec<Bytes>,
    pub rows: Vec<usize>,
    pub input: Tensor,
}

impl Batch {
    pub fn row_count(&self) -> usize {
        self.rows.iter().sum()
    }
}

/// Builds a batch key by key. A key whose record does not parse is refused with the reason
/// and leaves the batch as it was.
pub struct BatchBuilder<'a> {
    fields: &'a [Bytes],
    /// Field name -> position in the row, for hosts that walk a hash's entries once instead
    /// of looking every field up (a walk reads the hash's memory in order).
    index: std::collections::HashMap<&'a [u8], usize, ahash::RandomState>,
    dtype: DType,
    buf: Vec<u8>,
    keys: Vec<Bytes>,
    rows: Vec<usize>,
    tensors: Vec<Arc<Tensor>>,
    max_bytes: usize,
    /// What a tensor record's rows must be: the model input's type and its dimensions after
    /// the first (-1 where any size goes). `None`: the first tensor decides.
    row_shape: Option<(DType, Vec<i64>)>,
}

impl<'a> BatchBuilder<'a> {
    /// Tensor records must have rows of this type and these dimensions after the first.
    pub fn expect_rows(&mut self, dtype: DType, dims: Vec<i64>) {
        self.row_shape = Some((dtype, dims));
    }

    /// A builder for hash rows of `fields` parsed as `dtype` (or for tensor records, where
    /// `fields` is empty and the first tensor sets the type).
    pub fn new(fields: &'a [Bytes], dtype: DType, capacity: usize, max_bytes: usize) -> Self {
        let size = dtype.size().unwrap_or(1);
        BatchBuilder {
            fields,
            index: fields
                .iter()
                .enumerate()
                .map(|(i, f)| (&f[..], i))
                .collect(),
            dtype,
            buf: Vec::with_capacity(capacity * fields.len() * size),
            keys: Vec::with_capacity(capacity),
            rows: Vec::with_capacity(capacity),
            tensors: Vec::new(),
            max_bytes,
            row_shape: None,
        }
    }

    /// Rows so far.
    pub fn row_count(&self) -> usize {
        self.rows.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds `key`'s record, or says why it cannot be scored.
    pub fn push(&mut self, key: Bytes, record: Record) -> Result<(), String> {
        match record {
            Record::Fields(values) => self.push_fields(key, &values),
            Record::Tensor(t) => self.push_tensor(key, t),
        }
    }

    fn push_fields(&mut self, key: Bytes, values: &[Option<Bytes>]) -> Result<(), String> {
        let mut row = self.hash_row();
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                row.set_at(i, v);
            }
        }
        row.finish(key)
    }

    /// Starts a hash's row, for a host to fill field by field (see [`HashRow`]).
    pub fn hash_row(&mut self) -> HashRow<'_, 'a> {
        let size = self.dtype.size().expect("numeric row type");
        let start = self.buf.len();
        self.buf.resize(start + self.fields.len() * size, 0);
        HashRow {
            seen: 0,
            error: None,
            set: vec![false; self.fields.len()],
            next: 0,
            start,
            size,
            builder: self,
        }
    }

    pub(crate) fn push_tensor(&mut self, key: Bytes, t: Arc<Tensor>) -> Result<(), String> {
        let Some(&n) = t.shape().first() else {
            return Err("tensor has no dimension to take rows from".into());
        };
        if let Some((dtype, dims)) = &self.row_shape {
            let fits = t.dtype() == *dtype
                && t.shape().len() == dims.len() + 1
                && dims
                    .iter()
                    .zip(&t.shape()[1..])
                    .all(|(&d, &n)| d < 0 || d as usize == n);
            if !fits {
                let want: Vec<String> = dims
                    .iter()
                    .map(|&d| if d < 0 { "?".into() } else { d.to_string() })
                    .collect();
                return Err(format!(
                    "tensor is {} {:?}; the model takes rows of {} [{}]",
                    t.dtype().name(),
                    &t.shape()[1..],
                    dtype.name(),
                    want.join(", ")
                ));
            }
        }
        if let Some(first) = self.tensors.first() {
            if t.dtype() != first.dtype() || t.shape()[1..] != first.shape()[1..] {
                return Err(format!(
                    "tensor is {} {:?}; the batch's rows are {} {:?}",
                    t.dtype().name(),
                    &t.shape()[1..],
                    first.dtype().name(),
                    &first.shape()[1..]
                ));
            }
        }
        self.tensors.push(t);
        self.keys.push(key);
        self.rows.push(n);
        Ok(())
    }

    /// Appends what another builder (of the same definition) gathered: hosts read a batch's
    /// keys in parallel, one builder per thread.
    pub fn append(&mut self, other: BatchBuilder) {
        self.buf.extend_from_slice(&other.buf);
        self.keys.extend(other.keys);
        self.rows.extend(other.rows);
        self.tensors.extend(other.tensors);
    }

    /// The same definition, empty (for another reader thread).
    pub fn sibling(&self, capacity: usize) -> BatchBuilder<'a> {
        let mut b = BatchBuilder::new(self.fields, self.dtype, capacity, self.max_bytes);
        b.row_shape = self.row_shape.clone();
        b
    }

    /// The batch, or `None` when no key was added.
    pub fn finish(self) -> Result<Option<Batch>, String> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let input = if self.tensors.is_empty() {
            let shape = [self.keys.len(), self.fields.len()];
            Tensor::from_raw(self.dtype, &shape, &self.buf)
        } else {
            let parts: Vec<&Tensor> = self.tensors.iter().map(|t| &**t).collect();
            Tensor::concat_batch(&parts, self.max_bytes).map_err(|e| e.0)?
        };
        Ok(Some(Batch {
            keys: self.keys,
            rows: self.rows,
            input,
        }))
    }
}

/// A hash's row being filled: the host hands it the hash's entries (or the named fields it
/// looked up), and [`HashRow::finish`] adds the row or says why it cannot be scored. Values
/// are parsed straight from the hash's memory.
pub struct HashRow<'b, 'a> {
    builder: &'b mut BatchBuilder<'a>,
    start: usize,
    size: usize,
    /// Fields set so far, and which.
    seen: usize,
    set: Vec<bool>,
    error: Option<String>,
    /// The field the next entry is guessed to be: hashes written by the same code hold their
    /// fields in the same order, and comparing one name is cheaper than hashing it.
    next: usize,
}

impl HashRow<'_, '_> {
    /// Whether walking a hash of `len` entries beats looking the fields up one by one.
    pub fn walk_beats_lookup(&self, len: usize) -> bool {
        len <= 4 * self.builder.fields.len()
    }

    /// The fields to look up, in row order (for [`HashRow::set_at`]).
    pub fn fields(&self) -> &[Bytes] {
        self.builder.fields
    }

    /// One entry of the hash: kept when it is a named field, ignored otherwise.
    #[inline]
    pub fn entry(&mut self, name: &[u8], value: &[u8]) {
        let fields = self.builder.fields;
        let i = match fields.get(self.next) {
            Some(guess) if same_name(guess, name) => self.next,
            _ => match self.builder.index.get(name) {
                Some(&i) => i,
                None => return,
            },
        };
        self.next = i + 1;
        self.set_at(i, value);
    }

    /// The value of field `i` (in [`HashRow::fields`] order).
    #[inline]
    pub fn set_at(&mut self, i: usize, value: &[u8]) {
        if self.error.is_some() || self.set[i] {
            return;
        }
        let at = self.start + i * self.size;
        let out = &mut self.builder.buf[at..at + self.size];
        match crate::tensor::encode_value(self.builder.dtype, value, out) {
            Ok(()) => {
                self.set[i] = true;
                self.seen += 1;
            }
            Err(_) => {
                self.error = Some(format!(
                    "field '{}' is not a {} value: '{}'",
                    String::from_utf8_lossy(&self.builder.fields[i]),
                    self.builder.dtype.name(),
                    String::from_utf8_lossy(&value[..value.len().min(64)])
                ))
            }
        }
    }

    /// Adds the row under `key`, or takes it back and says why it cannot be scored.
    pub fn finish(self, key: Bytes) -> Result<(), String> {
        let missing = (self.seen < self.builder.fields.len())
            .then(|| self.set.iter().position(|&s| !s))
            .flatten();
        let error = self.error.or_else(|| {
            missing.map(|i| {
                format!(
                    "field '{}' is missing",
                    String::from_utf8_lossy(&self.builder.fields[i])
                )
            })
        });
        if let Some(e) = error {
            self.builder.buf.truncate(self.start);
            return Err(e);
        }
        self.builder.keys.push(key);
        self.builder.rows.push(1);
        Ok(())
    }

    /// Takes the row back (the key turned out not to be scorable).
    pub fn abandon(self) {
        self.builder.buf.truncate(self.start);
    }
}

/// Byte equality without a call into `memcmp` for the short names fields usually have.
#[inline(always)]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && if a.len() <= 16 {
            a.iter().zip(b).all(|(x, y)| x == y)
        } else {
            a == b
        }
}

/// `t` (dimension 0 of size 1) repeated `n` times along dimension 0: a CONST input for a
/// batch of `n` rows.
pub fn tile(t: &Tensor, n: usize) -> Tensor {
    let mut shape = t.shape().to_vec();
    shape[0] = n;
    let row = t.blob();
    let mut data = Vec::with_capacity(row.len() * n);
    for _ in 0..n {
        data.extend_from_slice(row);
    }
    Tensor::from_raw(t.dtype(), &shape, &data)
}

/// What a key gets back.
#[derive(Debug, PartialEq)]
pub enum Prediction {
    /// A hash field's new value.
    Field(Bytes),
    /// A tensor key's new value.
    Tensor(Tensor),
}

/// Splits a batch's outputs into one prediction per key, as `output` asks.
pub fn predictions(
    batch: &Batch,
    outputs: &[Tensor],
    output: &OutputSpec,
) -> Result<Vec<Prediction>, String> {
    let total = batch.row_count();
    let rows_of = |t: &Tensor| t.shape().first().copied().unwrap_or(0);
    for (i, t) in outputs.iter().enumerate() {
        if rows_of(t) != total {
            return Err(format!(
                "model output {i} has {} rows for a batch of {total}",
                rows_of(t)
            ));
        }
    }
    match output {
        OutputSpec::Tensor { index, .. } => {
            let t = outputs.get(*index).ok_or_else(|| {
                format!(
                    "the model has {} outputs; INDEX {index} is past them",
                    outputs.len()
                )
            })?;
            let mut offset = 0;
            Ok(batch
                .rows
                .iter()
                .map(|&n| {
                    let p = Prediction::Tensor(t.slice_batch(offset, n));
                    offset += n;
                    p
                })
                .collect())
        }
        OutputSpec::Field { index, .. } => {
            // Column `index` counts every output's columns in order.
            let mut column = *index;
            for t in outputs {
                let cols: usize = t.shape()[1..].iter().product();
                if column < cols {
                    return Ok((0..total)
                        .map(|r| Prediction::Field(format_element(t, r * cols + column)))
                        .collect());
                }
                column -= cols;
            }
            Err(format!(
                "the model's outputs have {} columns per row; INDEX {index} is past them",
                index - column
            ))
        }
    }
}

/// Element `i` of `t` as text: integers as integers, floats in their shortest exact form,
/// strings as they are.
pub fn format_element(t: &Tensor, i: usize) -> Bytes {
    let d = &t.blob()[..];
    macro_rules! at {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            <$t>::from_le_bytes(d[i * N..(i + 1) * N].try_into().expect("element"))
        }};
    }
    let text = match t.dtype() {
        DType::Float => format_float(at!(f32) as f64, at!(f32).to_string()),
        DType::Double => format_float(at!(f64), at!(f64).to_string()),
        DType::Float16 => half::f16::from_bits(at!(u16)).to_f32().to_string(),
        DType::BFloat16 => half::bf16::from_bits(at!(u16)).to_f32().to_string(),
        DType::Int8 => at!(i8).to_string(),
        DType::Int16 => at!(i16).to_string(),
        DType::Int32 => at!(i32).to_string(),
        DType::Int64 => at!(i64).to_string(),
        DType::Uint8 | DType::Bool => d[i].to_string(),
        DType::Uint16 => at!(u16).to_string(),
        DType::Uint32 => at!(u32).to_string(),
        DType::Uint64 => at!(u64).to_string(),
        DType::String => return t.strings().swap_remove(i),
    };
    Bytes::from(text)
}

/// Floats as Redis writes them (`inf`, `-inf`, `nan`), otherwise Rust's shortest exact form.
fn format_float(v: f64, shortest: String) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        shortest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn hash_rows_make_one_batch_and_bad_rows_leave_it_intact() {
        let fields = [b("a"), b("b")];
        let mut bb = BatchBuilder::new(&fields, DType::Float, 4, 1 << 20);
        bb.push(b("k1"), Record::Fields(vec![Some(b("1.5")), Some(b("2"))]))
            .unwrap();
        let e = bb
            .push(b("k2"), Record::Fields(vec![Some(b("1")), Some(b("x"))]))
            .unwrap_err();
        assert!(e.contains("field 'b' is not a FLOAT value: 'x'"), "{e}");
        let e = bb
            .push(b("k3"), Record::Fields(vec![None, Some(b("1"))]))
            .unwrap_err();
        assert_eq!(e, "field 'a' is missing");
        bb.push(b("k4"), Record::Fields(vec![Some(b("-3")), Some(b("1e2"))]))
            .unwrap();
        let batch = bb.finish().unwrap().unwrap();
        assert_eq!(batch.keys, vec![b("k1"), b("k4")]);
        assert_eq!(batch.input.shape(), &[2, 2]);
        let vals: Vec<f32> = batch
            .input
            .blob()
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(vals, vec![1.5, 2.0, -3.0, 100.0]);
    }

    #[test]
    fn tensor_records_concatenate_and_split_back() {
        let t1 = Arc::new(Tensor::from_raw(DType::Float, &[2, 1], &[0u8; 8]));
        let t2 = Arc::new(Tensor::from_raw(DType::Float, &[1, 1], &[0u8; 4]));
        let odd = Arc::new(Tensor::from_raw(DType::Float, &[1, 2], &[0u8; 8]));
        let mut bb = BatchBuilder::new(&[], DType::Float, 4, 1 << 20);
        bb.push(b("a"), Record::Tensor(t1)).unwrap();
        assert!(bb.push(b("odd"), Record::Tensor(odd)).is_err());
        bb.push(b("b"), Record::Tensor(t2)).unwrap();
        let batch = bb.finish().unwrap().unwrap();
        assert_eq!(batch.row_count(), 3);
        let out = Tensor::from_raw(
            DType::Int64,
            &[3, 1],
            &[7i64, 8, 9]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        );
        let spec = OutputSpec::Tensor {
            suffix: b(":o"),
            index: 0,
        };
        let p = predictions(&batch, &[out], &spec).unwrap();
        match &p[..] {
            [Prediction::Tensor(a), Prediction::Tensor(b)] => {
                assert_eq!(a.shape(), &[2, 1]);
                assert_eq!(b.shape(), &[1, 1]);
                assert_eq!(format_element(b, 0), Bytes::from("9"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn field_index_counts_columns_across_outputs() {
        let batch = Batch {
            keys: vec![b("x"), b("y")],
            rows: vec![1, 1],
            input: Tensor::from_raw(DType::Float, &[2, 1], &[0u8; 8]),
        };
        let label = Tensor::from_raw(
            DType::Int64,
            &[2],
            &[1i64, 0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        );
        let probs = Tensor::from_raw(
            DType::Float,
            &[2, 2],
            &[0.25f32, 0.75, 0.5, 0.5]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        );
        let outs = [label, probs];
        let field = |index| OutputSpec::Field {
            name: b("s"),
            index,
        };
        let p = predictions(&batch, &outs, &field(0)).unwrap();
        assert_eq!(p[0], Prediction::Field(b("1")));
        let p = predictions(&batch, &outs, &field(2)).unwrap();
        assert_eq!(p[0], Prediction::Field(b("0.75")));
        assert_eq!(p[1], Prediction::Field(b("0.5")));
        let e = predictions(&batch, &outs, &field(3)).unwrap_err();
        assert!(e.contains("3 columns"), "{e}");
    }

    #[test]
    fn tile_repeats_the_row() {
        let t = Tensor::from_raw(DType::Float, &[1, 2], &[1u8; 8]);
        let tiled = tile(&t, 3);
        assert_eq!(tiled.shape(), &[3, 2]);
        assert_eq!(tiled.blob().len(), 24);
    }
}
