//! Parquet input and output for `locus-score`, through the `parquet` crate's column readers and
//! file writer (without Arrow: values go from the column pages straight into feature rows).
//!
//! Input: flat (top-level, non-repeated) columns; features may be BOOLEAN, INT32, INT64, FLOAT
//! or DOUBLE, and a null feature fails its row. The id column may be of any flat type. Output:
//! the id column (INT64 when the input's is an integer column or rows are numbered, else a
//! UTF-8 string) and one DOUBLE column per output value, a row group per chunk of rows.

use super::{Chunk, Source};
use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, DataType};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use std::fs::File;
use std::sync::Arc;

/// One column the source reads: its index among the file's leaf columns, and its reader in
/// the current row group.
struct Column {
    index: usize,
    name: String,
    nullable: bool,
    /// An INT32 or INT64 column.
    integer: bool,
    reader: Option<ColumnReader>,
}

pub struct ParquetSource {
    file: SerializedFileReader<File>,
    features: Vec<Column>,
    id: Option<Column>,
    /// The next row group to open, and the rows left in the open one.
    group: usize,
    left: usize,
    row: u64,
    rows: u64,
    bytes: u64,
    /// Each feature's values for the rows being read, those rows row-major (when some have
    /// a null), and each row's first null feature.
    columns: Vec<Vec<f32>>,
    block: Vec<f32>,
    nulls: Vec<Option<usize>>,
}

fn err(e: parquet::errors::ParquetError) -> String {
    format!("the Parquet file does not read: {e}")
}

impl ParquetSource {
    pub fn new(
        file: File,
        columns: Option<&[String]>,
        id_column: Option<&str>,
    ) -> Result<Self, String> {
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let file = SerializedFileReader::new(file).map_err(err)?;
        let meta = file.metadata();
        let schema = meta.file_metadata().schema_descr();
        // Flat columns by name; a nested or repeated column is only refused when it is named.
        let flat: Vec<(usize, String, bool, Physical)> = (0..schema.num_columns())
            .map(|i| schema.column(i))
            .enumerate()
            .filter(|(_, c)| c.path().parts().len() == 1 && c.max_rep_level() == 0)
            .map(|(i, c)| {
                (
                    i,
                    c.name().to_string(),
                    c.max_def_level() > 0,
                    c.physical_type(),
                )
            })
            .collect();
        let find = |name: &str| {
            flat.iter()
                .find(|c| c.1 == name)
                .cloned()
                .ok_or_else(|| format!("the Parquet file has no flat column '{name}'"))
        };
        let column = |(index, name, nullable, kind): (usize, String, bool, Physical)| Column {
            index,
            name,
            nullable,
            integer: matches!(kind, Physical::INT32 | Physical::INT64),
            reader: None,
        };
        let numeric = |c: &(usize, String, bool, Physical)| {
            matches!(
                c.3,
                Physical::BOOLEAN
                    | Physical::INT32
                    | Physical::INT64
                    | Physical::FLOAT
                    | Physical::DOUBLE
            )
        };
        let id = id_column.map(find).transpose()?;
        let chosen: Vec<(usize, String, bool, Physical)> = match columns {
            Some(names) => names.iter().map(|n| find(n)).collect::<Result<_, _>>()?,
            None => flat
                .iter()
                .filter(|c| id.as_ref().is_none_or(|i| i.0 != c.0))
                .cloned()
                .collect(),
        };
        if let Some(c) = chosen.iter().find(|c| !numeric(c)) {
            return Err(format!(
                "column '{}' is {}, not a number: name the feature columns with --columns",
                c.1, c.3
            ));
        }
        let rows = meta.file_metadata().num_rows().max(0) as u64;
        Ok(ParquetSource {
            features: chosen.into_iter().map(column).collect(),
            id: id.map(column),
            file,
            group: 0,
            left: 0,
            row: 0,
            rows,
            bytes,
            columns: Vec::new(),
            block: Vec::new(),
            nulls: Vec::new(),
        })
    }

    /// Opens the next row group's readers; false at the end of the file.
    fn open_group(&mut self) -> Result<bool, String> {
        while self.left == 0 {
            if self.group >= self.file.num_row_groups() {
                return Ok(false);
            }
            let group = self.file.get_row_group(self.group).map_err(err)?;
            self.left = group.metadata().num_rows().max(0) as usize;
            for c in self.features.iter_mut().chain(self.id.iter_mut()) {
                c.reader = Some(group.get_column_reader(c.index).map_err(err)?);
            }
            self.group += 1;
        }
        Ok(true)
    }
}

/// Reads `n` records of a flat column, converting each value: `put(row, value)` for a value,
/// `null(row)` for a null.
fn read_typed<T: DataType, X>(
    r: &mut ColumnReaderImpl<T>,
    n: usize,
    nullable: bool,
    conv: impl Fn(&T::T) -> X,
    mut put: impl FnMut(usize, X),
    mut null: impl FnMut(usize),
) -> Result<(), String> {
    let mut values: Vec<T::T> = Vec::with_capacity(n);
    let mut defs: Vec<i16> = Vec::with_capacity(if nullable { n } else { 0 });
    let (records, _, _) = r
        .read_records(n, nullable.then_some(&mut defs), None, &mut values)
        .map_err(err)?;
    if records != n {
        return Err(format!(
            "the Parquet file ends early: {records} of {n} rows in a row group"
        ));
    }
    if nullable {
        let mut it = values.iter();
        for (row, d) in defs.iter().enumerate() {
            // A null has a definition level of 0 and no value.
            match (*d > 0).then(|| it.next()).flatten() {
                Some(v) => put(row, conv(v)),
                None => null(row),
            }
        }
    } else {
        for (row, v) in values.iter().enumerate() {
            put(row, conv(v));
        }
    }
    Ok(())
}

/// Reads `n` values of feature `j` into `out` (column-major: one feature's values),
/// noting in `nulls` the first null feature of each row.
fn read_numbers(
    c: &mut Column,
    n: usize,
    j: usize,
    out: &mut Vec<f32>,
    nulls: &mut [Option<usize>],
) -> Result<(), String> {
    let nullable = c.nullable;
    let reader = c.reader.as_mut().expect("an open row group");
    if let ColumnReader::FloatColumnReader(r) = &mut *reader {
        // The common case: the values are the column as they come, spread out around the
        // nulls if there are any.
        out.clear();
        let mut defs: Vec<i16> = Vec::new();
        let (records, values, _) = r
            .read_records(n, nullable.then_some(&mut defs), None, out)
            .map_err(err)?;
        if records != n {
            return Err(format!(
                "the Parquet file ends early: {records} of {n} rows in a row group"
            ));
        }
        if values < n {
            out.resize(n, 0.0);
            let mut k = values;
            for row in (0..n).rev() {
                if defs[row] > 0 {
                    k -= 1;
                    out[row] = out[k];
                } else {
                    out[row] = 0.0;
                    nulls[row].get_or_insert(j);
                }
            }
        }
        return Ok(());
    }
    out.clear();
    out.resize(n, 0.0);
    let put = |row: usize, v: f32| out[row] = v;
    let null = |row: usize| {
        nulls[row].get_or_insert(j);
    };
    match reader {
        ColumnReader::FloatColumnReader(r) => read_typed(r, n, nullable, |v| *v, put, null),
        ColumnReader::DoubleColumnReader(r) => read_typed(r, n, nullable, |v| *v as f32, put, null),
        ColumnReader::Int32ColumnReader(r) => read_typed(r, n, nullable, |v| *v as f32, put, null),
        ColumnReader::Int64ColumnReader(r) => read_typed(r, n, nullable, |v| *v as f32, put, null),
        ColumnReader::BoolColumnReader(r) => {
            read_typed(r, n, nullable, |v| u8::from(*v) as f32, put, null)
        }
        _ => Err(format!("column '{}' is not a number", c.name)),
    }
}

/// Rows per tile of the transposition: a tile of rows (64 × features) stays in the L1 cache
/// while each feature's values are read in order.
const TILE: usize = 64;

/// Writes `n` rows of the column-major `cols` row-major into `out`.
fn transpose(cols: &[Vec<f32>], n: usize, out: &mut [f32]) {
    let w = cols.len();
    for r0 in (0..n).step_by(TILE) {
        let r1 = (r0 + TILE).min(n);
        for (j, col) in cols.iter().enumerate() {
            for (r, v) in col[r0..r1].iter().enumerate() {
                out[(r0 + r) * w + j] = *v;
            }
        }
    }
}

fn read_ids(c: &mut Column, n: usize, out: &mut Vec<String>) -> Result<(), String> {
    let nullable = c.nullable;
    out.clear();
    out.resize(n, String::new());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let put = |row: usize, v: String| out[row] = v;
    let null = |_: usize| {};
    match c.reader.as_mut().expect("an open row group") {
        ColumnReader::ByteArrayColumnReader(r) => {
            read_typed(r, n, nullable, |v: &ByteArray| text(v.data()), put, null)
        }
        ColumnReader::FixedLenByteArrayColumnReader(r) => {
            read_typed(r, n, nullable, |v| text(v.data()), put, null)
        }
        ColumnReader::Int32ColumnReader(r) => {
            read_typed(r, n, nullable, |v| v.to_string(), put, null)
        }
        ColumnReader::Int64ColumnReader(r) => {
            read_typed(r, n, nullable, |v| v.to_string(), put, null)
        }
        ColumnReader::FloatColumnReader(r) => {
            read_typed(r, n, nullable, |v| v.to_string(), put, null)
        }
        ColumnReader::DoubleColumnReader(r) => {
            read_typed(r, n, nullable, |v| v.to_string(), put, null)
        }
        ColumnReader::BoolColumnReader(r) => {
            read_typed(r, n, nullable, |v| v.to_string(), put, null)
        }
        ColumnReader::Int96ColumnReader(r) => {
            read_typed(r, n, nullable, |v| format!("{:?}", v.data()), put, null)
        }
    }
}

impl Source for ParquetSource {
    fn width(&self) -> usize {
        self.features.len()
    }

    fn id_name(&self) -> String {
        self.id.as_ref().map_or("row".into(), |c| c.name.clone())
    }

    fn integer_ids(&self) -> bool {
        self.id.as_ref().is_none_or(|c| c.integer)
    }

    fn next(&mut self, max: usize) -> Result<Option<Chunk>, String> {
        let mut c = Chunk::default();
        let mut ids: Vec<String> = Vec::new();
        let w = self.features.len();
        while (c.consumed as usize) < max && self.open_group()? {
            let n = self.left.min(max - c.consumed as usize);
            self.nulls.clear();
            self.nulls.resize(n, None);
            self.columns.resize_with(w, Vec::new);
            for (j, (col, out)) in self.features.iter_mut().zip(&mut self.columns).enumerate() {
                read_numbers(col, n, j, out, &mut self.nulls)?;
            }
            if let Some(col) = self.id.as_mut() {
                read_ids(col, n, &mut ids)?;
            }
            let mut ids = ids.drain(..);
            if self.nulls.iter().all(Option::is_none) {
                // Every row is whole: straight into the chunk.
                let start = c.x.len();
                c.x.resize(start + n * w, 0.0);
                transpose(&self.columns, n, &mut c.x[start..]);
                for r in 0..n {
                    let row = self.row + r as u64;
                    c.ids.push(ids.next().unwrap_or_else(|| row.to_string()));
                }
            } else {
                self.block.clear();
                self.block.resize(n * w, 0.0);
                transpose(&self.columns, n, &mut self.block);
                for r in 0..n {
                    let row = self.row + r as u64;
                    let id = ids.next().unwrap_or_else(|| row.to_string());
                    match self.nulls[r] {
                        None => {
                            c.x.extend_from_slice(&self.block[r * w..(r + 1) * w]);
                            c.ids.push(id);
                        }
                        Some(j) => c
                            .failures
                            .push((row, format!("column '{}' is null", self.features[j].name))),
                    }
                }
            }
            self.left -= n;
            self.row += n as u64;
            c.consumed += n as u64;
        }
        Ok((c.consumed > 0).then_some(c))
    }

    fn position(&self) -> u64 {
        if self.rows == 0 {
            return self.bytes;
        }
        (self.bytes as u128 * self.row as u128 / self.rows as u128) as u64
    }
}

/// The Parquet output being written: the id column (INT64 or a UTF-8 string), then one
/// DOUBLE column per name; one row group per [`ParquetWriter::write_rows`].
pub struct ParquetWriter {
    writer: SerializedFileWriter<File>,
    integer_ids: bool,
    width: usize,
}

fn werr(e: parquet::errors::ParquetError) -> String {
    format!("cannot write the Parquet file: {e}")
}

impl ParquetWriter {
    pub fn new(
        out: File,
        id_name: &str,
        names: &[String],
        integer_ids: bool,
    ) -> Result<Self, String> {
        // Integer ids may be null (an input's null id); string ids are never null.
        let id_type = if integer_ids {
            Type::primitive_type_builder(id_name, Physical::INT64)
                .with_repetition(Repetition::OPTIONAL)
        } else {
            Type::primitive_type_builder(id_name, Physical::BYTE_ARRAY)
                .with_logical_type(Some(LogicalType::String))
                .with_repetition(Repetition::REQUIRED)
        };
        let mut fields = vec![Arc::new(id_type.build().map_err(werr)?)];
        for name in names {
            fields.push(Arc::new(
                Type::primitive_type_builder(name, Physical::DOUBLE)
                    .with_repetition(Repetition::REQUIRED)
                    .build()
                    .map_err(werr)?,
            ));
        }
        let schema = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .map_err(werr)?;
        // Snappy, as pyarrow writes by default; no dictionaries (ids and scores rarely repeat).
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .build();
        let writer =
            SerializedFileWriter::new(out, Arc::new(schema), Arc::new(props)).map_err(werr)?;
        Ok(ParquetWriter {
            writer,
            integer_ids,
            width: names.len(),
        })
    }

    /// Writes rows (`ids`, and `values` row-major) as one row group.
    pub fn write_rows(&mut self, ids: &[String], values: &[f64]) -> Result<(), String> {
        let n = ids.len();
        if n == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group().map_err(werr)?;
        let mut index = 0;
        while let Some(mut col) = group.next_column().map_err(werr)? {
            if index == 0 {
                if self.integer_ids {
                    let parsed: Vec<Option<i64>> = ids.iter().map(|s| s.parse().ok()).collect();
                    let defs: Vec<i16> = parsed.iter().map(|v| i16::from(v.is_some())).collect();
                    let v: Vec<i64> = parsed.into_iter().flatten().collect();
                    col.typed::<parquet::data_type::Int64Type>()
                        .write_batch(&v, Some(&defs), None)
                        .map_err(werr)?;
                } else {
                    let v: Vec<ByteArray> =
                        ids.iter().map(|s| ByteArray::from(s.as_str())).collect();
                    col.typed::<parquet::data_type::ByteArrayType>()
                        .write_batch(&v, None, None)
                        .map_err(werr)?;
                }
            } else {
                let j = index - 1;
                let v: Vec<f64> = (0..n).map(|r| values[r * self.width + j]).collect();
                col.typed::<parquet::data_type::DoubleType>()
                    .write_batch(&v, None, None)
                    .map_err(werr)?;
            }
            col.close().map_err(werr)?;
            index += 1;
        }
        group.close().map_err(werr)?;
        Ok(())
    }

    /// Writes the footer.
    pub fn close(self) -> Result<(), String> {
        self.writer.close().map_err(werr)?;
        Ok(())
    }
}
