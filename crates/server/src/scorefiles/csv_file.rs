//! CSV input. A numeric CSV is mostly parsing: a million rows of 30 features are 30 million
//! numbers in 365 MB of text, several times the model's own work. So rows are read as raw
//! blocks of whole lines and split on commas, each block parsed on several threads at once.
//! Quoting is the one thing that rule does not know: from the first `"` on, the rest of the
//! file is read by the `csv` crate, one row at a time, as it always was.

use super::{push_values, Chunk, Source};
use std::fs::File;
use std::io::{Chain, Cursor, Read, Seek, SeekFrom};

/// Bytes read from the file at a time.
const READ_BLOCK: usize = 4 << 20;
/// Below this many bytes a block is parsed on one thread: a thread costs more than it saves.
const MIN_PART: usize = 256 << 10;

type QuotedReader = csv::Reader<Chain<Cursor<Vec<u8>>, File>>;

pub(super) struct CsvSource {
    file: Option<File>,
    features: Vec<usize>,
    id: Option<(usize, String)>,
    /// Rows (records) read so far.
    row: u64,
    /// Text read from the file and not yet parsed: `buf[start..]`, which begins a line.
    buf: Vec<u8>,
    start: usize,
    /// The file offset of `buf[0]`.
    buf_offset: u64,
    eof: bool,
    /// Set at the first quote: the `csv` crate reads the rest, from where the block began.
    quoted: Option<(QuotedReader, csv::ByteRecord, u64)>,
    threads: usize,
}

impl CsvSource {
    pub(super) fn new(
        mut file: File,
        columns: Option<&[String]>,
        id_column: Option<&str>,
    ) -> Result<Self, String> {
        let (header, data_start) = {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(&mut file);
            let header: Vec<String> = reader
                .headers()
                .map_err(|e| format!("the CSV header does not parse: {e}"))?
                .iter()
                .map(str::to_string)
                .collect();
            (header, reader.position().byte())
        };
        file.seek(SeekFrom::Start(data_start))
            .map_err(|e| e.to_string())?;
        let find = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("the CSV has no column '{name}'"))
        };
        let id = id_column
            .map(|c| find(c).map(|i| (i, c.to_string())))
            .transpose()?;
        let features = match columns {
            Some(cols) => cols.iter().map(|c| find(c)).collect::<Result<_, _>>()?,
            None => (0..header.len())
                .filter(|i| id.as_ref().is_none_or(|(j, _)| j != i))
                .collect(),
        };
        Ok(CsvSource {
            file: Some(file),
            features,
            id,
            row: 0,
            buf: Vec::new(),
            start: 0,
            buf_offset: data_start,
            eof: false,
            quoted: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// The end of the first `lines` lines of `buf[start..]` (or of all of it at the end of
    /// the file), reading more of the file as needed.
    fn take_lines(&mut self, lines: usize) -> Result<usize, String> {
        let mut pos = self.start;
        let mut seen = 0;
        loop {
            for nl in memchr::memchr_iter(b'\n', &self.buf[pos..]) {
                seen += 1;
                if seen == lines {
                    return Ok(pos + nl + 1);
                }
            }
            pos = self.buf.len();
            if self.eof {
                return Ok(pos);
            }
            // Keep only what is unparsed, then read another block after it.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.buf_offset += self.start as u64;
                pos -= self.start;
                self.start = 0;
            }
            let len = self.buf.len();
            self.buf.resize(len + READ_BLOCK, 0);
            let file = self.file.as_mut().expect("the fast path owns the file");
            let n = loop {
                match file.read(&mut self.buf[len..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other.map_err(|e| format!("reading the CSV: {e}"))?,
                }
            };
            self.buf.truncate(len + n);
            self.eof = n == 0;
        }
    }

    /// Hands the rest of the file, from `buf[start..]`, to the `csv` crate.
    fn switch_to_quoted(&mut self) {
        let rest = self.buf.split_off(self.start);
        let base = self.buf_offset + self.start as u64;
        let file = self.file.take().expect("the fast path owns the file");
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(Cursor::new(rest).chain(file));
        self.quoted = Some((reader, csv::ByteRecord::new(), base));
    }

    fn next_quoted(&mut self, max: usize) -> Result<Option<Chunk>, String> {
        let (reader, record, _) = self.quoted.as_mut().expect("in quoted mode");
        let mut c = Chunk::default();
        while (c.consumed as usize) < max {
            let more = reader
                .read_byte_record(record)
                .map_err(|e| format!("the CSV does not parse at row {}: {e}", self.row + 1))?;
            if !more {
                break;
            }
            let row = self.row;
            self.row += 1;
            c.consumed += 1;
            let fields: Vec<&[u8]> = record.iter().collect();
            match read_row(&fields, &self.features, &mut c.x) {
                Ok(()) => c.ids.push(match &self.id {
                    Some((i, _)) => lossy(fields.get(*i).copied().unwrap_or(b"")),
                    None => row.to_string(),
                }),
                Err(why) => c.failures.push((row, why)),
            }
        }
        Ok((c.consumed > 0).then_some(c))
    }

    /// The rows of the next `max` lines.
    fn next_block(&mut self, max: usize) -> Result<Option<Chunk>, String> {
        if self.quoted.is_some() {
            return self.next_quoted(max);
        }
        let end = self.take_lines(max.max(1))?;
        let text = &self.buf[self.start..end];
        if memchr::memchr(b'"', text).is_some() {
            self.switch_to_quoted();
            return self.next_quoted(max);
        }
        let n = (text.len() / MIN_PART).clamp(1, self.threads);
        let (features, id, width) = (
            &self.features,
            self.id.as_ref().map(|(i, _)| *i),
            self.features.len(),
        );
        let parts: Vec<Part> = if n == 1 {
            vec![parse_part(text, features, id, width)]
        } else {
            std::thread::scope(|s| {
                let mut texts = split_lines(text, n).into_iter();
                let first = texts.next().unwrap_or_default();
                let others: Vec<_> = texts
                    .map(|t| s.spawn(move || parse_part(t, features, id, width)))
                    .collect();
                let mut parts = vec![parse_part(first, features, id, width)];
                parts.extend(
                    others
                        .into_iter()
                        .map(|h| h.join().expect("a CSV parser panicked")),
                );
                parts
            })
        };
        self.start = end;
        let mut c = Chunk::default();
        for mut part in parts {
            let base = self.row;
            if c.x.is_empty() {
                c.x = std::mem::take(&mut part.x);
            } else {
                c.x.extend_from_slice(&part.x);
            }
            c.ids.append(&mut part.ids);
            c.ids
                .extend(part.numbered.iter().map(|r| (base + r).to_string()));
            c.failures
                .extend(part.failures.into_iter().map(|(r, why)| (base + r, why)));
            self.row += part.rows;
            c.consumed += part.rows;
        }
        Ok((c.consumed > 0).then_some(c))
    }
}

fn lossy(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Appends a row's features to `x`, or leaves `x` as it was and says why the row fails.
fn read_row(fields: &[&[u8]], features: &[usize], x: &mut Vec<f32>) -> Result<(), String> {
    push_values(
        x,
        features.iter().map(|&i| match fields.get(i) {
            None => Err(format!("the row has {} fields", fields.len())),
            Some(v) => parse_value(v)
                .ok_or_else(|| format!("'{}' is not a number", String::from_utf8_lossy(v))),
        }),
    )
}

/// A field as a number. `fast-float2` reads the bytes as they are, without the UTF-8 check
/// and trim that `str::parse` needs (a third of a numeric CSV's parsing); both round
/// correctly, so they agree wherever both accept. Padded or otherwise unusual fields go to
/// `str::parse`, which decides.
fn parse_value(v: &[u8]) -> Option<f32> {
    if let Ok(x) = fast_float2::parse::<f32, _>(v) {
        return Some(x);
    }
    let s = std::str::from_utf8(v).ok()?.trim();
    s.parse::<f32>().ok()
}

/// The rows of a run of whole lines, parsed on one thread. Rows are numbered from 0 within
/// the part; `numbered` keeps the numbers of the rows read when ids are row numbers.
#[derive(Default)]
struct Part {
    ids: Vec<String>,
    numbered: Vec<u64>,
    x: Vec<f32>,
    failures: Vec<(u64, String)>,
    rows: u64,
}

/// Where each field goes: its feature slot, or `SKIP`.
const SKIP: u32 = u32::MAX;

/// How a row's fields map to features, for the one-pass reader; `None` where a field feeds
/// two features (the per-line reader handles that).
struct Layout {
    slot_of_field: Vec<u32>,
    /// Fields a row needs for every feature.
    needed: usize,
    id: Option<usize>,
    width: usize,
}

impl Layout {
    fn new(features: &[usize], id: Option<usize>) -> Option<Layout> {
        let needed = features.iter().max().map_or(0, |m| m + 1);
        let mut slot_of_field = vec![SKIP; needed];
        for (slot, &field) in features.iter().enumerate() {
            if slot_of_field[field] != SKIP {
                return None;
            }
            slot_of_field[field] = slot as u32;
        }
        Some(Layout {
            slot_of_field,
            needed,
            id,
            width: features.len(),
        })
    }
}

/// Reads one well-formed row at `text[pos..]` in one pass: each feature's number is parsed
/// where it starts, and must end at a comma or the line's end. Returns where the next line
/// starts, or `None` (with `part` as it was) for anything else: a blank line, a field that
/// is not a plain number, a short row. The per-line reader then decides.
fn fast_row(text: &[u8], mut pos: usize, layout: &Layout, part: &mut Part) -> Option<usize> {
    let base = part.x.len();
    part.x.resize(base + layout.width, 0.0);
    let mut field = 0;
    let mut id = None;
    let next = loop {
        let slot = layout.slot_of_field.get(field).copied().unwrap_or(SKIP);
        let start = pos;
        let end = if slot != SKIP {
            match parse_f32_prefix(&text[pos..]) {
                Some((v, n)) => {
                    part.x[base + slot as usize] = v;
                    pos + n
                }
                None => break None,
            }
        } else {
            let mut end =
                memchr::memchr2(b',', b'\n', &text[pos..]).map_or(text.len(), |i| pos + i);
            // A CRLF line's last field ends before the CR.
            if text.get(end) == Some(&b'\n') && end > pos && text[end - 1] == b'\r' {
                end -= 1;
            }
            end
        };
        // The id column may be a feature too.
        if layout.id == Some(field) {
            id = Some((start, end));
        }
        field += 1;
        match text.get(end) {
            Some(b',') => pos = end + 1,
            Some(b'\n') => break Some(end + 1),
            None => break Some(end),
            Some(b'\r') if text.get(end + 1) == Some(&b'\n') => break Some(end + 2),
            Some(_) => break None,
        }
    };
    match next {
        Some(next) if field >= layout.needed => {
            if layout.id.is_some() {
                let (a, b) = id.unwrap_or((0, 0));
                part.ids.push(lossy(&text[a..b]));
            } else {
                part.numbered.push(part.rows);
            }
            part.rows += 1;
            Some(next)
        }
        _ => {
            part.x.truncate(base);
            None
        }
    }
}

/// Powers of ten a double holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The number at the start of `s` and its length, for the plain decimals a numeric CSV holds
/// (`-12.5`, `0.345584184`, `3e-7`), else what `fast-float2` makes of it.
///
/// The digits are exact in a double (at most 15 of them) as is the power of ten (at most
/// 10^22), so one multiplication or division gives the correctly rounded double (Clinger's
/// fast path). Rounding that double to f32 gives the correctly rounded f32 unless the double
/// is exactly halfway between two f32s: no f32 midpoint can lie strictly between a number and
/// its nearest double, because the midpoint is itself a double. That case, and every other
/// shape of number, goes to `fast-float2`. So the result is always the correctly rounded f32,
/// the same as `str::parse`; this is only quicker (a third of the time on this workload).
fn parse_f32_prefix(s: &[u8]) -> Option<(f32, usize)> {
    let slow = || fast_float2::parse_partial::<f32, _>(s).ok();
    let mut i = 0;
    let negative = s.first() == Some(&b'-');
    i += negative as usize;
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let int_start = i;
    while let Some(d) = s.get(i).map(|b| b.wrapping_sub(b'0')).filter(|d| *d < 10) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(d as u64);
        digits += 1;
        i += 1;
    }
    if i == int_start {
        return slow();
    }
    let mut exponent: i64 = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        while let Some(d) = s.get(i).map(|b| b.wrapping_sub(b'0')).filter(|d| *d < 10) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(d as u64);
            digits += 1;
            exponent -= 1;
            i += 1;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative_exp = s.get(i) == Some(&b'-');
        i += matches!(s.get(i), Some(b'-' | b'+')) as usize;
        let exp_start = i;
        let mut e: i64 = 0;
        while let Some(d) = s.get(i).map(|b| b.wrapping_sub(b'0')).filter(|d| *d < 10) {
            e = (e * 10 + d as i64).min(1 << 20);
            i += 1;
        }
        if i == exp_start {
            return slow();
        }
        exponent += if negative_exp { -e } else { e };
    }
    if digits > 15 || !(-22..=22).contains(&exponent) {
        return slow();
    }
    let m = mantissa as f64;
    let d = if exponent >= 0 {
        m * POW10[exponent as usize]
    } else {
        m / POW10[(-exponent) as usize]
    };
    // Outside f32's normal range, or halfway between two f32s: let fast-float2 decide.
    let halfway = d.to_bits() & ((1 << 29) - 1) == 1 << 28;
    if halfway || (d != 0.0 && !(f32::MIN_POSITIVE as f64..=f32::MAX as f64).contains(&d)) {
        return slow();
    }
    let v = d as f32;
    Some((if negative { -v } else { v }, i))
}

/// Reads one line field by field, as the `csv` crate splits it: blank lines are skipped,
/// and a row that fails says why.
fn slow_line(line: &[u8], features: &[usize], id: Option<usize>, part: &mut Part) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return;
    }
    let fields: Vec<&[u8]> = line.split(|&b| b == b',').collect();
    let row = part.rows;
    part.rows += 1;
    match read_row(&fields, features, &mut part.x) {
        Ok(()) => match id {
            Some(i) => part.ids.push(lossy(fields.get(i).copied().unwrap_or(b""))),
            None => part.numbered.push(row),
        },
        Err(why) => part.failures.push((row, why)),
    }
}

fn parse_part(text: &[u8], features: &[usize], id: Option<usize>, width: usize) -> Part {
    let mut part = Part {
        x: Vec::with_capacity(width * (text.len() / (width * 4 + 1) + 1)),
        ..Part::default()
    };
    let layout = Layout::new(features, id);
    let mut pos = 0;
    while pos < text.len() {
        if let Some(next) = layout
            .as_ref()
            .and_then(|l| fast_row(text, pos, l, &mut part))
        {
            pos = next;
            continue;
        }
        let end = memchr::memchr(b'\n', &text[pos..]).map_or(text.len(), |i| pos + i);
        slow_line(&text[pos..end], features, id, &mut part);
        pos = end + 1;
    }
    part
}

/// Splits `text` into up to `n` runs of whole lines of about equal length.
fn split_lines(text: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut rest = text;
    for k in (1..n).rev() {
        let target = rest.len() / (k + 1);
        match memchr::memchr(b'\n', &rest[target..]) {
            Some(i) => {
                let (head, tail) = rest.split_at(target + i + 1);
                parts.push(head);
                rest = tail;
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

impl Source for CsvSource {
    fn width(&self) -> usize {
        self.features.len()
    }

    fn id_name(&self) -> String {
        self.id.as_ref().map_or("row".into(), |(_, n)| n.clone())
    }

    fn next(&mut self, max: usize) -> Result<Option<Chunk>, String> {
        loop {
            let chunk = self.next_block(max)?;
            // Lines that were all blank make no rows, but are not the end of the file.
            let at_end = self.quoted.is_some() || (self.eof && self.start >= self.buf.len());
            if chunk.is_some() || at_end {
                return Ok(chunk);
            }
        }
    }

    fn position(&self) -> u64 {
        match &self.quoted {
            // The csv crate's position counts from where it took over.
            Some((reader, _, base)) => base + reader.position().byte(),
            None => self.buf_offset + self.start as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Ids, features, failures and rows consumed.
    type Rows = (Vec<String>, Vec<f32>, Vec<(u64, String)>, u64);

    /// The whole file, read in chunks of `max` rows on the fast path.
    fn read_all(text: &str, max: usize, columns: Option<&[String]>, id: Option<&str>) -> Rows {
        let f = file_with(text);
        let file = File::open(f.path()).unwrap();
        let mut src = CsvSource::new(file, columns, id).unwrap();
        src.threads = 3;
        let mut total = (Vec::new(), Vec::new(), Vec::new(), 0);
        while let Some(c) = src.next(max).unwrap() {
            total.0.extend(c.ids);
            total.1.extend(c.x);
            total.2.extend(c.failures);
            total.3 += c.consumed;
        }
        assert_eq!(
            src.position(),
            text.len() as u64,
            "max {max} quoted {}",
            src.quoted.is_some()
        );
        total
    }

    /// Reads the same text with the `csv` crate alone.
    fn reference(text: &str, columns: Option<&[String]>, id: Option<&str>) -> Rows {
        let f = file_with(text);
        let file = File::open(f.path()).unwrap();
        let mut src = CsvSource::new(file, columns, id).unwrap();
        src.switch_to_quoted();
        let mut total = (Vec::new(), Vec::new(), Vec::new(), 0);
        while let Some(c) = src.next_quoted(7).unwrap() {
            total.0.extend(c.ids);
            total.1.extend(c.x);
            total.2.extend(c.failures);
            total.3 += c.consumed;
        }
        total
    }

    /// A file holding `text`, removed when dropped.
    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    /// A small deterministic generator for test data.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn fast_path_reads_what_the_csv_crate_reads() {
        let mut next = xorshift(7);
        let mut text = String::from("id,a,b,c\n");
        for i in 0..5000 {
            let r = next() % 40;
            match r {
                0 => text.push('\n'),
                1 => text.push_str(&format!("{i},1,2\n")),
                2 => text.push_str(&format!("{i},x,2,3\n")),
                3 => text.push_str(&format!("{i}, 1.5 ,2e3,-0\r\n")),
                4 => text.push_str(&format!("{i},1,2,3,4\n")),
                5 => text.push_str(&format!("{i},,2,3\n")),
                _ => text.push_str(&format!(
                    "{i},{},{},{}\n",
                    next() % 1000,
                    (next() % 1000) as f32 / 7.0,
                    -((next() % 100) as f32)
                )),
            }
        }
        text.push_str("last,1,2,3"); // no final newline
        let cols: Vec<String> = vec!["c".into(), "a".into()];
        let id_too: Vec<String> = vec!["id".into(), "a".into()];
        for (columns, id) in [
            (None, None),
            (None, Some("id")),
            (Some(&cols[..]), Some("b")),
            (Some(&id_too[..]), Some("id")),
        ] {
            let want = reference(&text, columns, id);
            for max in [1, 3, 100, 4096, 100_000] {
                let got = read_all(&text, max, columns, id);
                assert_eq!(got, want, "max {max}");
            }
        }
        // CRLF lines whose last field is the id (or a skipped column).
        let mut crlf = String::from("a,b,id\r\n");
        for i in 0..300 {
            crlf.push_str(&format!(
                "{i},{},{}\r\n",
                i * 2,
                if i % 7 == 0 { "" } else { "x" }
            ));
        }
        for (columns, id) in [(None, Some("id")), (Some(&["a".to_string()][..]), None)] {
            let want = reference(&crlf, columns, id);
            assert_eq!(read_all(&crlf, 64, columns, id), want);
        }
        // Large blocks are parsed on several threads, and agree too.
        let mut big = String::from("a,b\n");
        for i in 0..200_000 {
            big.push_str(&format!("{i},{}\n", i as f32 / 3.0));
        }
        let want = reference(&big, None, None);
        assert_eq!(read_all(&big, 150_000, None, None), want);
    }

    #[test]
    fn plain_decimals_parse_as_str_parse_does() {
        let mut next = xorshift(99);
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "1",
            "1.",
            "0.5",
            "-12.25",
            "3e-7",
            "3E+7",
            "1e",
            "1e+",
            "-",
            ".5",
            "+1",
            "inf",
            "-nan",
            "1e39",
            "1e-46",
            "1.17549435e-38",
            "3.40282347e38",
            "16777217",
            "0.000000000000000000001",
            "123456789012345678901234",
            "7.038531e-26",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..200_000 {
            let digits = 1 + next() % 17;
            let m = next() % 10u64.pow(digits as u32);
            let point = next() % (digits + 1);
            let mut t = m.to_string();
            if point > 0 && (point as usize) < t.len() {
                t.insert(t.len() - point as usize, '.');
            }
            if next().is_multiple_of(3) {
                t.push_str(&format!("e{}", (next() % 60) as i64 - 30));
            }
            if next().is_multiple_of(2) {
                t.insert(0, '-');
            }
            texts.push(t);
            // Numbers made from f32s, and the midpoints between neighbours.
            let f = f32::from_bits((next() as u32) & 0x7f7f_ffff);
            texts.push(format!("{f:e}"));
            let up = f32::from_bits(f.to_bits() + 1);
            texts.push(format!("{:e}", (f as f64 + up as f64) / 2.0));
        }
        for t in &texts {
            let want: Option<f32> = t.parse().ok();
            let got = parse_f32_prefix(t.as_bytes());
            match (want, got) {
                (Some(w), Some((g, n))) => {
                    assert_eq!(n, t.len(), "{t}");
                    assert!(
                        w.to_bits() == g.to_bits() || (w.is_nan() && g.is_nan()),
                        "{t}: {w} {g}"
                    );
                }
                (None, Some((_, n))) => {
                    assert!(n < t.len(), "{t} read whole but str::parse refuses it")
                }
                (Some(w), None) => panic!("{t}: str::parse reads {w}, the fast reader nothing"),
                (None, None) => {}
            }
        }
    }

    #[test]
    fn a_quote_hands_the_rest_to_the_csv_crate() {
        let text = "id,a,b\n1,1,2\n2,3,4\n\"3\",5,6\n\"4\n4\",7,8\n5,9,10\n";
        let got = read_all(text, 2, None, Some("id"));
        assert_eq!(got.0, vec!["1", "2", "3", "4\n4", "5"]);
        assert_eq!(
            got.1,
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
        );
        assert_eq!(got.3, 5);
    }
}
