//! Parquet input and output for `locus-score`, through the `parquet` crate's column readers and
//! file writer (without Arrow: values go from the column pages straight into feature rows).
//!
//! Input: flat (top-level, non-repeated) columns; features may be BOOLEAN, INT32, INT64, FLOAT
//! or DOUBLE, and a null feature fails its row. The id column may be of any flat type. Output:
//! the id column (INT64 when every id is an integer, else a UTF-8 string) and one DOUBLE column
//! per output value, written at the end from the rows the partial file kept.

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
    /// Per-column scratch, kept between chunks.
    values: Vec<Vec<Option<f32>>>,
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
        let column = |(index, name, nullable, _): (usize, String, bool, Physical)| Column {
            index,
            name,
            nullable,
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
            values: Vec::new(),
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

/// Reads `n` records of a flat column into `out` (None for a null), converting each value.
fn read_typed<T: DataType, X>(
    r: &mut ColumnReaderImpl<T>,
    n: usize,
    nullable: bool,
    out: &mut Vec<Option<X>>,
    conv: impl Fn(&T::T) -> X,
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
    out.clear();
    if nullable {
        let mut it = values.iter();
        for d in defs {
            out.push(if d > 0 { it.next().map(&conv) } else { None });
        }
    } else {
        out.extend(values.iter().map(|v| Some(conv(v))));
    }
    Ok(())
}

fn read_numbers(c: &mut Column, n: usize, out: &mut Vec<Option<f32>>) -> Result<(), String> {
    let nullable = c.nullable;
    match c.reader.as_mut().expect("an open row group") {
        ColumnReader::FloatColumnReader(r) => read_typed(r, n, nullable, out, |v| *v),
        ColumnReader::DoubleColumnReader(r) => read_typed(r, n, nullable, out, |v| *v as f32),
        ColumnReader::Int32ColumnReader(r) => read_typed(r, n, nullable, out, |v| *v as f32),
        ColumnReader::Int64ColumnReader(r) => read_typed(r, n, nullable, out, |v| *v as f32),
        ColumnReader::BoolColumnReader(r) => {
            read_typed(r, n, nullable, out, |v| u8::from(*v) as f32)
        }
        _ => Err(format!("column '{}' is not a number", c.name)),
    }
}

fn read_ids(c: &mut Column, n: usize, out: &mut Vec<Option<String>>) -> Result<(), String> {
    let nullable = c.nullable;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match c.reader.as_mut().expect("an open row group") {
        ColumnReader::ByteArrayColumnReader(r) => {
            read_typed(r, n, nullable, out, |v: &ByteArray| text(v.data()))
        }
        ColumnReader::FixedLenByteArrayColumnReader(r) => {
            read_typed(r, n, nullable, out, |v| text(v.data()))
        }
        ColumnReader::Int32ColumnReader(r) => read_typed(r, n, nullable, out, |v| v.to_string()),
        ColumnReader::Int64ColumnReader(r) => read_typed(r, n, nullable, out, |v| v.to_string()),
        ColumnReader::FloatColumnReader(r) => read_typed(r, n, nullable, out, |v| v.to_string()),
        ColumnReader::DoubleColumnReader(r) => read_typed(r, n, nullable, out, |v| v.to_string()),
        ColumnReader::BoolColumnReader(r) => read_typed(r, n, nullable, out, |v| v.to_string()),
        ColumnReader::Int96ColumnReader(r) => {
            read_typed(r, n, nullable, out, |v| format!("{:?}", v.data()))
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

    fn next(&mut self, max: usize) -> Result<Option<Chunk>, String> {
        let mut c = Chunk::default();
        let mut ids: Vec<Option<String>> = Vec::new();
        self.values.resize_with(self.features.len(), Vec::new);
        while (c.consumed as usize) < max && self.open_group()? {
            let n = self.left.min(max - c.consumed as usize);
            for (col, out) in self.features.iter_mut().zip(self.values.iter_mut()) {
                read_numbers(col, n, out)?;
            }
            if let Some(col) = self.id.as_mut() {
                read_ids(col, n, &mut ids)?;
            }
            c.x.reserve(n * self.features.len());
            for r in 0..n {
                let row = self.row + r as u64;
                let values =
                    self.features.iter().zip(&self.values).map(|(col, v)| {
                        v[r].ok_or_else(|| format!("column '{}' is null", col.name))
                    });
                let id = || match ids.get_mut(r) {
                    Some(id) => id.take().unwrap_or_default(),
                    None => row.to_string(),
                };
                c.push_row(row, values, id);
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

/// Rows per row group of the output.
const GROUP_ROWS: usize = 65536;

/// Writes `rows` (id, values) as a Parquet file: the id column, then one DOUBLE column per
/// name. `rows` is read in row groups of [`GROUP_ROWS`]; `integer_ids` says whether every id
/// parses as an integer (the column is then INT64).
pub fn write(
    out: File,
    id_name: &str,
    names: &[String],
    integer_ids: bool,
    mut rows: impl FnMut(&mut Vec<String>, &mut Vec<f64>, usize) -> Result<usize, String>,
) -> Result<(), String> {
    let perr = |e: parquet::errors::ParquetError| format!("cannot write the Parquet file: {e}");
    let id_type = if integer_ids {
        Type::primitive_type_builder(id_name, Physical::INT64)
    } else {
        Type::primitive_type_builder(id_name, Physical::BYTE_ARRAY)
            .with_logical_type(Some(LogicalType::String))
    };
    let mut fields = vec![Arc::new(
        id_type
            .with_repetition(Repetition::REQUIRED)
            .build()
            .map_err(perr)?,
    )];
    for name in names {
        fields.push(Arc::new(
            Type::primitive_type_builder(name, Physical::DOUBLE)
                .with_repetition(Repetition::REQUIRED)
                .build()
                .map_err(perr)?,
        ));
    }
    let schema = Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
        .map_err(perr)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        SerializedFileWriter::new(out, Arc::new(schema), Arc::new(props)).map_err(perr)?;
    let (mut ids, mut values) = (Vec::new(), Vec::new());
    let width = names.len();
    loop {
        ids.clear();
        values.clear();
        let n = rows(&mut ids, &mut values, GROUP_ROWS)?;
        if n == 0 {
            break;
        }
        let mut group = writer.next_row_group().map_err(perr)?;
        let mut index = 0;
        while let Some(mut col) = group.next_column().map_err(perr)? {
            if index == 0 {
                if integer_ids {
                    let v: Vec<i64> = ids.iter().map(|s| s.parse().unwrap_or(0)).collect();
                    col.typed::<parquet::data_type::Int64Type>()
                        .write_batch(&v, None, None)
                        .map_err(perr)?;
                } else {
                    let v: Vec<ByteArray> =
                        ids.iter().map(|s| ByteArray::from(s.as_str())).collect();
                    col.typed::<parquet::data_type::ByteArrayType>()
                        .write_batch(&v, None, None)
                        .map_err(perr)?;
                }
            } else {
                let j = index - 1;
                let v: Vec<f64> = (0..n).map(|r| values[r * width + j]).collect();
                col.typed::<parquet::data_type::DoubleType>()
                    .write_batch(&v, None, None)
                    .map_err(perr)?;
            }
            col.close().map_err(perr)?;
            index += 1;
        }
        group.close().map_err(perr)?;
    }
    writer.close().map_err(perr)?;
    Ok(())
}
