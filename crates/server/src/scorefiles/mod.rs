//! The files `locus-score` reads and writes: CSV (with a header row), JSON lines, NPY and
//! Parquet, read in chunks of rows, and the output built beside its final name with a
//! checkpoint, so an interrupted run can resume and a failed one leaves no half-written file.

use crate::tensor::{DType, Tensor};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

mod csv_file;
mod parquet_file;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    Npy,
    Parquet,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "json" | "ndjson" => Some(Format::Jsonl),
            "npy" => Some(Format::Npy),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The format a file's extension names.
    pub fn from_path(p: &Path) -> Option<Format> {
        Format::parse(p.extension()?.to_str()?)
    }
}

/// Rows read from the input: their ids, their features (row-major), and the rows that could
/// not be read (input row number, reason). `consumed` counts every input row it covers.
#[derive(Default)]
pub struct Chunk {
    pub ids: Vec<String>,
    pub x: Vec<f32>,
    pub failures: Vec<(u64, String)>,
    pub consumed: u64,
}

impl Chunk {
    /// Adds a row whose features come from `values`, or, at the first value that fails,
    /// records why the row could not be read.
    fn push_row(
        &mut self,
        row: u64,
        values: impl Iterator<Item = Result<f32, String>>,
        id: impl FnOnce() -> String,
    ) {
        match push_values(&mut self.x, values) {
            Ok(()) => self.ids.push(id()),
            Err(why) => self.failures.push((row, why)),
        }
    }
}

/// Appends a row's values to `x`; at the first that fails, leaves `x` as it was and says why.
fn push_values(
    x: &mut Vec<f32>,
    values: impl Iterator<Item = Result<f32, String>>,
) -> Result<(), String> {
    let start = x.len();
    for v in values {
        match v {
            Ok(v) => x.push(v),
            Err(why) => {
                x.truncate(start);
                return Err(why);
            }
        }
    }
    Ok(())
}

/// Rows from an input file. Sources are read on a thread of their own (`Send`), a chunk ahead
/// of the scoring.
pub trait Source: Send {
    /// Features per row.
    fn width(&self) -> usize;
    /// The id column's name (`row` when rows are numbered).
    fn id_name(&self) -> String;
    /// Whether every id is an integer (typed outputs keep them as integers).
    fn integer_ids(&self) -> bool {
        false
    }
    /// Up to `max` more rows; `None` at the end.
    fn next(&mut self, max: usize) -> Result<Option<Chunk>, String>;
    /// Skips `n` input rows (resuming).
    fn skip(&mut self, n: u64) -> Result<(), String> {
        let mut left = n;
        while left > 0 {
            match self.next(left.min(65536) as usize)? {
                Some(c) if c.consumed > 0 => left -= c.consumed.min(left),
                _ => break,
            }
        }
        Ok(())
    }
    /// Bytes of the input read so far (for progress).
    fn position(&self) -> u64;
}

/// Opens `path` as `format`. `columns` names the features (default: every column but the id
/// column); `id_column` is copied to the output (default: the row number).
pub fn open(
    path: &Path,
    format: Format,
    columns: Option<&[String]>,
    id_column: Option<&str>,
) -> Result<Box<dyn Source>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match format {
        Format::Csv => Ok(Box::new(csv_file::CsvSource::new(
            file, columns, id_column,
        )?)),
        Format::Jsonl => Ok(Box::new(JsonlSource::new(file, columns, id_column)?)),
        Format::Npy => {
            if id_column.is_some() || columns.is_some() {
                return Err(
                    "NPY input has no named columns: --columns and --id-column do not apply".into(),
                );
            }
            Ok(Box::new(NpySource::new(file)?))
        }
        Format::Parquet => Ok(Box::new(parquet_file::ParquetSource::new(
            file, columns, id_column,
        )?)),
    }
}

struct JsonlSource {
    lines: BufReader<File>,
    features: Vec<String>,
    id: Option<String>,
    /// The first object, read to learn the columns.
    first: Option<String>,
    row: u64,
    bytes: u64,
}

impl JsonlSource {
    fn new(
        file: File,
        columns: Option<&[String]>,
        id_column: Option<&str>,
    ) -> Result<Self, String> {
        let mut lines = BufReader::new(file);
        let mut first = String::new();
        let n = lines.read_line(&mut first).map_err(|e| e.to_string())?;
        let features = match columns {
            Some(c) => c.to_vec(),
            None if n == 0 => Vec::new(),
            None => match serde_json::from_str::<serde_json::Value>(&first) {
                Ok(serde_json::Value::Object(m)) => m
                    .iter()
                    .filter(|(k, v)| Some(k.as_str()) != id_column && v.is_number())
                    .map(|(k, _)| k.clone())
                    .collect(),
                _ => return Err("the first JSON line is not an object".into()),
            },
        };
        Ok(JsonlSource {
            lines,
            features,
            id: id_column.map(str::to_string),
            first: (n > 0).then_some(first),
            row: 0,
            bytes: n as u64,
        })
    }
}

impl Source for JsonlSource {
    fn width(&self) -> usize {
        self.features.len()
    }

    fn id_name(&self) -> String {
        self.id.clone().unwrap_or_else(|| "row".into())
    }

    fn next(&mut self, max: usize) -> Result<Option<Chunk>, String> {
        let mut c = Chunk::default();
        let mut line = String::new();
        while (c.consumed as usize) < max {
            let text = match self.first.take() {
                Some(f) => f,
                None => {
                    line.clear();
                    let n = self.lines.read_line(&mut line).map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    self.bytes += n as u64;
                    std::mem::take(&mut line)
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            let row = self.row;
            self.row += 1;
            c.consumed += 1;
            let obj = match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(m)) => m,
                Ok(_) => {
                    c.failures
                        .push((row, "the line is not a JSON object".into()));
                    continue;
                }
                Err(e) => {
                    c.failures.push((row, format!("the line is not JSON: {e}")));
                    continue;
                }
            };
            let values = self.features.iter().map(|f| match obj.get(f) {
                None => Err(format!("field '{f}' is missing")),
                Some(v) => v
                    .as_f64()
                    .map(|v| v as f32)
                    .ok_or_else(|| format!("field '{f}' is not a number: {v}")),
            });
            let id = || match &self.id {
                Some(k) => match obj.get(k) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                },
                None => row.to_string(),
            };
            c.push_row(row, values, id);
        }
        Ok((c.consumed > 0).then_some(c))
    }

    fn position(&self) -> u64 {
        self.bytes
    }
}

/// A 2-D little-endian float32 or float64 NPY array, C order.
struct NpySource {
    file: BufReader<File>,
    rows: u64,
    width: usize,
    double: bool,
    row: u64,
    header: u64,
}

impl NpySource {
    fn new(file: File) -> Result<Self, String> {
        let mut file = BufReader::new(file);
        let mut magic = [0u8; 10];
        file.read_exact(&mut magic)
            .map_err(|_| "not an NPY file".to_string())?;
        if &magic[..6] != b"\x93NUMPY" {
            return Err("not an NPY file".into());
        }
        let (len, pre) = if magic[6] == 1 {
            (u16::from_le_bytes([magic[8], magic[9]]) as usize, 10)
        } else {
            let mut more = [0u8; 2];
            file.read_exact(&mut more).map_err(|e| e.to_string())?;
            (
                u32::from_le_bytes([magic[8], magic[9], more[0], more[1]]) as usize,
                12,
            )
        };
        let mut header = vec![0u8; len];
        file.read_exact(&mut header).map_err(|e| e.to_string())?;
        let h = String::from_utf8_lossy(&header).into_owned();
        let double = if h.contains("'<f8'") {
            true
        } else if h.contains("'<f4'") {
            false
        } else {
            return Err(format!(
                "NPY input must be float32 or float64: {}",
                h.trim()
            ));
        };
        if h.contains("'fortran_order': True") {
            return Err("NPY input must be in C order".into());
        }
        let shape = h
            .split("'shape':")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .map(|s| {
                s.trim_start_matches([' ', '('])
                    .split(',')
                    .filter_map(|d| d.trim().parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let [rows, width] = shape[..] else {
            return Err(format!("NPY input must be 2-D, not {shape:?}"));
        };
        Ok(NpySource {
            file,
            rows,
            width: width as usize,
            double,
            row: 0,
            header: (pre + len) as u64,
        })
    }
}

impl Source for NpySource {
    fn width(&self) -> usize {
        self.width
    }

    fn id_name(&self) -> String {
        "row".into()
    }

    fn next(&mut self, max: usize) -> Result<Option<Chunk>, String> {
        let n = (self.rows - self.row).min(max as u64) as usize;
        if n == 0 {
            return Ok(None);
        }
        let size = if self.double { 8 } else { 4 };
        let mut buf = vec![0u8; n * self.width * size];
        self.file
            .read_exact(&mut buf)
            .map_err(|e| format!("the NPY data ends early: {e}"))?;
        let x = if self.double {
            buf.chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect()
        } else {
            buf.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect()
        };
        let ids = (self.row..self.row + n as u64)
            .map(|r| r.to_string())
            .collect();
        self.row += n as u64;
        Ok(Some(Chunk {
            ids,
            x,
            failures: Vec::new(),
            consumed: n as u64,
        }))
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        self.row = (self.row + n).min(self.rows);
        let size = if self.double { 8 } else { 4 };
        let at = self.header + self.row * (self.width * size) as u64;
        self.file
            .seek(SeekFrom::Start(at))
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn position(&self) -> u64 {
        let size = if self.double { 8 } else { 4 };
        self.header + self.row * (self.width * size) as u64
    }
}

/// A float32 tensor [rows, width] of row-major values.
pub fn tensor(x: &[f32], rows: usize, width: usize) -> Tensor {
    if cfg!(target_endian = "little") {
        // SAFETY: an f32 slice viewed as its bytes (no padding; u8 has no alignment need).
        let bytes = unsafe {
            std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), std::mem::size_of_val(x))
        };
        return Tensor::from_raw(DType::Float, &[rows, width], bytes);
    }
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    Tensor::from_raw(DType::Float, &[rows, width], &bytes)
}

/// One model output for a batch: `cols` values per row, widened to f64.
#[derive(Clone, Debug)]
pub struct Output {
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Output {
    pub fn from_tensor(t: &Tensor) -> Output {
        let rows = t.shape().first().copied().unwrap_or(1).max(1);
        if t.dtype() == DType::Float {
            // The common case, read straight from the blob.
            let data: Vec<f64> = t
                .blob()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64)
                .collect();
            return Output {
                cols: data.len() / rows,
                data,
            };
        }
        let data: Vec<f64> = t
            .elements()
            .into_iter()
            .map(|e| match e {
                crate::tensor::Element::Int(i) => i as f64,
                crate::tensor::Element::UInt(u) => u as f64,
                crate::tensor::Element::Float(f) => f,
                crate::tensor::Element::Str(_) => f64::NAN,
            })
            .collect();
        Output {
            cols: data.len() / rows,
            data,
        }
    }

    pub fn from_blob(dtype: &str, shape: &[usize], blob: &[u8]) -> Result<Output, String> {
        let dt = DType::parse(dtype.as_bytes()).ok_or_else(|| format!("unknown type {dtype}"))?;
        let t = Tensor::from_blob(dt, shape, &[blob], usize::MAX).map_err(|e| e.0)?;
        Ok(Output::from_tensor(&t))
    }

    /// Joins batches' outputs (each a list of the model's outputs) along the rows.
    pub fn concat(parts: Vec<Vec<Output>>) -> Result<Vec<Output>, String> {
        let mut iter = parts.into_iter();
        let Some(mut all) = iter.next() else {
            return Ok(Vec::new());
        };
        for p in iter {
            if p.len() != all.len() {
                return Err("batches answered with different outputs".into());
            }
            for (a, b) in all.iter_mut().zip(p) {
                a.data.extend(b.data);
            }
        }
        Ok(all)
    }
}

/// The output being built: `path.partial` and its checkpoint `path.partial.ckpt` (input rows
/// consumed, bytes written), renamed to `path` at the end. CSV and JSON lines are written
/// as they go; NPY keeps its values in the partial file and gets its header at the end;
/// Parquet keeps its rows there (id, then the values) and is written from them at the end.
pub struct Sink {
    path: PathBuf,
    partial: PathBuf,
    checkpoint: PathBuf,
    out: BufWriter<File>,
    format: Format,
    id_name: String,
    output_names: Vec<String>,
    consumed: u64,
    written: u64,
    bytes: u64,
    /// Columns per output, learnt from the first batch (NPY's shape, CSV's header).
    cols: Option<Vec<usize>>,
    /// Parquet: the file being written beside the partial one (which keeps the rows for a
    /// resume), opened at the first rows; and whether its ids are integers.
    parquet: Option<parquet_file::ParquetWriter>,
    integer_ids: bool,
}

impl Sink {
    pub fn open(
        path: &Path,
        format: Format,
        id_name: String,
        integer_ids: bool,
        output_names: &[String],
        resume: bool,
    ) -> Result<Sink, String> {
        let partial = PathBuf::from(format!("{}.partial", path.display()));
        let checkpoint = PathBuf::from(format!("{}.partial.ckpt", path.display()));
        let (mut consumed, mut written, mut bytes, mut cols) = (0, 0, 0, None);
        if resume {
            if let Ok(text) = std::fs::read_to_string(&checkpoint) {
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| format!("bad checkpoint: {e}"))?;
                consumed = v["consumed"].as_u64().unwrap_or(0);
                written = v["written"].as_u64().unwrap_or(0);
                bytes = v["bytes"].as_u64().unwrap_or(0);
                cols = v["cols"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_u64().map(|c| c as usize))
                        .collect()
                });
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(bytes == 0)
            .open(&partial)
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        // Whatever was written after the last checkpoint goes.
        file.set_len(bytes).map_err(|e| e.to_string())?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.seek(SeekFrom::Start(bytes))
            .map_err(|e| e.to_string())?;
        Ok(Sink {
            path: path.to_path_buf(),
            partial,
            checkpoint,
            out,
            format,
            id_name,
            output_names: output_names.to_vec(),
            consumed,
            written,
            bytes,
            cols,
            parquet: None,
            integer_ids,
        })
    }

    /// Opens the Parquet file for `names` and writes into it the rows a resumed run's partial
    /// file already holds.
    fn open_parquet(&mut self, names: &[String]) -> Result<(), String> {
        let io = |e: std::io::Error| format!("cannot write {}: {e}", self.partial.display());
        let tmp = PathBuf::from(format!("{}.parquet-tmp", self.partial.display()));
        let mut w = parquet_file::ParquetWriter::new(
            File::create(&tmp).map_err(io)?,
            &self.id_name,
            names,
            self.integer_ids,
        )?;
        if self.bytes > 0 {
            self.out.flush().map_err(io)?;
            let mut r = BufReader::with_capacity(1 << 20, File::open(&self.partial).map_err(io)?);
            let mut r = Read::take(&mut r, self.bytes);
            let (mut ids, mut values) = (Vec::new(), Vec::new());
            loop {
                let more = read_record(&mut r, names.len(), &mut ids, &mut values).map_err(io)?;
                if !more || ids.len() == 65536 {
                    w.write_rows(&ids, &values)?;
                    ids.clear();
                    values.clear();
                }
                if !more {
                    break;
                }
            }
        }
        self.parquet = Some(w);
        Ok(())
    }

    /// Input rows already covered by the output (resuming).
    pub fn rows_done(&self) -> u64 {
        self.consumed
    }

    fn column_names(&self, cols: &[usize]) -> Vec<String> {
        let mut names = Vec::new();
        for (name, &n) in self.output_names.iter().zip(cols) {
            if n == 1 {
                names.push(name.clone());
            } else {
                names.extend((0..n).map(|j| format!("{name}_{j}")));
            }
        }
        names
    }

    /// Appends a chunk's rows and moves the checkpoint past it.
    pub fn write(&mut self, chunk: &Chunk, outputs: &[Output]) -> Result<(), String> {
        let partial = self.partial.display().to_string();
        let io = |e: std::io::Error| format!("cannot write {partial}: {e}");
        let rows = chunk.ids.len();
        let cols: Vec<usize> = outputs.iter().map(|o| o.cols).collect();
        if rows > 0 {
            if self.cols.is_none() {
                if self.format == Format::Csv {
                    let mut w = csv::Writer::from_writer(Vec::new());
                    let mut header = vec![self.id_name.clone()];
                    header.extend(self.column_names(&cols));
                    w.write_record(&header).map_err(|e| e.to_string())?;
                    let head = w.into_inner().map_err(|e| e.to_string())?;
                    self.out.write_all(&head).map_err(io)?;
                }
                self.cols = Some(cols.clone());
            }
            let mut buf: Vec<u8> = Vec::with_capacity(rows * 32);
            match self.format {
                Format::Csv => {
                    // Field by field through one text buffer: no allocation per row.
                    let mut w = csv::Writer::from_writer(&mut buf);
                    let mut text = String::new();
                    let err = |e: csv::Error| e.to_string();
                    for (r, id) in chunk.ids.iter().enumerate() {
                        w.write_field(id).map_err(err)?;
                        for o in outputs {
                            for v in &o.data[r * o.cols..(r + 1) * o.cols] {
                                text.clear();
                                write_value(&mut text, *v);
                                w.write_field(&text).map_err(err)?;
                            }
                        }
                        w.write_record(None::<&[u8]>).map_err(err)?;
                    }
                    w.flush().map_err(|e| e.to_string())?;
                }
                Format::Jsonl => {
                    for (r, id) in chunk.ids.iter().enumerate() {
                        let mut m = serde_json::Map::new();
                        m.insert(self.id_name.clone(), id.clone().into());
                        for (name, o) in self.output_names.iter().zip(outputs) {
                            let vals = &o.data[r * o.cols..(r + 1) * o.cols];
                            let v: serde_json::Value = if o.cols == 1 {
                                vals[0].into()
                            } else {
                                vals.to_vec().into()
                            };
                            m.insert(name.clone(), v);
                        }
                        serde_json::to_writer(&mut buf, &serde_json::Value::Object(m))
                            .map_err(|e| e.to_string())?;
                        buf.push(b'\n');
                    }
                }
                Format::Npy => {
                    for r in 0..rows {
                        for o in outputs {
                            for v in &o.data[r * o.cols..(r + 1) * o.cols] {
                                buf.extend_from_slice(&(*v as f32).to_le_bytes());
                            }
                        }
                    }
                }
                Format::Parquet => {
                    let mut values = Vec::with_capacity(rows * cols.iter().sum::<usize>());
                    for (r, id) in chunk.ids.iter().enumerate() {
                        buf.extend_from_slice(&(id.len() as u32).to_le_bytes());
                        buf.extend_from_slice(id.as_bytes());
                        for o in outputs {
                            for v in &o.data[r * o.cols..(r + 1) * o.cols] {
                                buf.extend_from_slice(&v.to_le_bytes());
                                values.push(*v);
                            }
                        }
                    }
                    if self.parquet.is_none() {
                        let names = self.column_names(&cols);
                        self.open_parquet(&names)?;
                    }
                    if let Some(w) = self.parquet.as_mut() {
                        w.write_rows(&chunk.ids, &values)?;
                    }
                }
            }
            self.out.write_all(&buf).map_err(io)?;
        }
        self.out.flush().map_err(io)?;
        self.bytes = self.out.stream_position().map_err(io)?;
        self.consumed += chunk.consumed;
        self.written += rows as u64;
        let ckpt = serde_json::json!({
            "consumed": self.consumed,
            "written": self.written,
            "bytes": self.bytes,
            "cols": self.cols,
        });
        let tmp = PathBuf::from(format!("{}.tmp", self.checkpoint.display()));
        std::fs::write(&tmp, ckpt.to_string()).map_err(io)?;
        std::fs::rename(&tmp, &self.checkpoint).map_err(io)
    }

    /// Completes the file (NPY's header) and puts it in place.
    pub fn finish(mut self) -> Result<(), String> {
        let path = self.path.display().to_string();
        let io = |e: std::io::Error| format!("cannot write {path}: {e}");
        self.out.flush().map_err(io)?;
        if self.format == Format::Npy {
            let width: usize = self.cols.as_ref().map_or(0, |c| c.iter().sum());
            let tmp = PathBuf::from(format!("{}.npy-tmp", self.partial.display()));
            {
                let mut f = BufWriter::new(File::create(&tmp).map_err(io)?);
                let mut header = format!(
                    "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {width}), }}",
                    self.written
                );
                // Padded with spaces so that the data starts on a 64-byte boundary.
                while (10 + header.len() + 1) % 64 != 0 {
                    header.push(' ');
                }
                header.push('\n');
                f.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
                f.write_all(&(header.len() as u16).to_le_bytes())
                    .map_err(io)?;
                f.write_all(header.as_bytes()).map_err(io)?;
                let mut data = File::open(&self.partial).map_err(io)?;
                std::io::copy(&mut data, &mut f).map_err(io)?;
                f.flush().map_err(io)?;
            }
            std::fs::rename(&tmp, &self.partial).map_err(io)?;
        }
        if self.format == Format::Parquet {
            if self.parquet.is_none() {
                let names = match &self.cols {
                    Some(cols) => self.column_names(cols),
                    None => self.output_names.clone(),
                };
                self.open_parquet(&names)?;
            }
            if let Some(w) = self.parquet.take() {
                w.close()?;
            }
            let tmp = PathBuf::from(format!("{}.parquet-tmp", self.partial.display()));
            std::fs::rename(&tmp, &self.partial).map_err(io)?;
        }
        if self.format == Format::Csv && self.cols.is_none() {
            // No row was scored: the output still gets its header.
            let mut header = vec![self.id_name.clone()];
            header.extend(self.output_names.iter().cloned());
            writeln!(self.out, "{}", header.join(",")).map_err(io)?;
            self.out.flush().map_err(io)?;
        }
        std::fs::rename(&self.partial, &self.path).map_err(io)?;
        let _ = std::fs::remove_file(&self.checkpoint);
        Ok(())
    }
}

/// Reads one row of a Parquet output's partial file (id length, id, `width` values); false at
/// its end.
fn read_record(
    r: &mut impl Read,
    width: usize,
    ids: &mut Vec<String>,
    values: &mut Vec<f64>,
) -> std::io::Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    let mut id = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut id)?;
    ids.push(
        String::from_utf8(id)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    );
    let mut b = [0u8; 8];
    for _ in 0..width {
        r.read_exact(&mut b)?;
        values.push(f64::from_le_bytes(b));
    }
    Ok(true)
}

/// A value as text: integers without a fraction, others in their shortest f32 form.
fn write_value(out: &mut String, v: f64) {
    use std::fmt::Write as _;
    let _ = if v.fract() == 0.0 && v.abs() < 1e15 {
        write!(out, "{}", v as i64)
    } else {
        write!(out, "{}", v as f32)
    };
}
