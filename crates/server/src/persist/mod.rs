//! Snapshots: the whole keyspace in one versioned, checksummed file, written to a temporary
//! file, fsynced, renamed over the old one, and the directory fsynced. Tensor data sits at
//! 64-byte-aligned offsets so that loading maps the file and tensors point into it, with no
//! element-by-element parsing: a server with gigabytes of tensors restarts in seconds.
//!
//! Layout: header (`LOCUSSNP`, version u32, reserved u32, created ms u64), then records, then
//! a footer (`0xFF`, record count u64, CRC-32 of everything before it). Numbers little-endian.
//! Record: kind u8 (1 string, 2 hash, 3 tensor, 4 model, 5 list, 6 set, 7 sorted set, 8 stream),
//! db u16, expire-at ms u64, key
//! (u32 length + bytes), then the value.

pub mod aof;
pub mod migrate;
pub mod rdb;
pub mod redisai_rdb;

use crate::engine::model::{Device, Model, ModelSpec};
use crate::engine::versions::{ModelVersion, VersionInfo, VersionedModel};
use crate::engine::Engine;
use crate::store::stream::StreamId;
use crate::store::{Entry, Store, Value, SHARDS};
use crate::tensor::{DType, Tensor};
use bytes::Bytes;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const MAGIC: &[u8; 8] = b"LOCUSSNP";
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 24;

const KIND_STRING: u8 = 1;
const KIND_HASH: u8 = 2;
const KIND_TENSOR: u8 = 3;
const KIND_MODEL: u8 = 4;
const KIND_LIST: u8 = 5;
const KIND_SET: u8 = 6;
const KIND_ZSET: u8 = 7;
const KIND_STREAM: u8 = 8;
/// A FUNCTION library's code (no key; not a value of the keyspace).
const KIND_FUNCTION: u8 = 9;
/// A model key with its versions (KIND_MODEL is the single model of earlier files).
const KIND_MODEL_VERSIONS: u8 = 10;
/// A router: its definition as AI.ROUTERSET words, with the weights current at the save.
const KIND_ROUTER: u8 = 11;
/// AI.LOG settings of one key: the AI.LOG SET words after the key.
const KIND_REQUEST_LOG: u8 = 12;
/// An AI.SCORE job: its definition's words, then its progress's words (with its checkpoint).
const KIND_JOB: u8 = 13;
/// An AI.MONITOR definition with its baselines.
const KIND_MONITOR: u8 = 14;
const KIND_END: u8 = 0xFF;

/// A point-in-time copy of the keyspace: entries share their values (reference counts), so
/// taking it costs a map walk, not a data copy.
pub struct Image {
    entries: Vec<(u16, Bytes, Entry)>,
    functions: Vec<Bytes>,
    request_logs: Vec<(u16, Bytes, Vec<Bytes>)>,
    monitors: Vec<(u16, Bytes, Vec<Bytes>)>,
    /// (database, name, definition words, progress words).
    jobs: Vec<(u16, Bytes, Vec<Bytes>, Vec<Bytes>)>,
}

impl Image {
    /// Copies every live entry. Holds every shard's read lock at once (in a fixed order) so
    /// that the image is one instant of the keyspace; readers are never blocked, writers wait
    /// only for the walk.
    pub fn capture(store: &Store, now: u64) -> Image {
        let mut guards = Vec::with_capacity(store.db_count() * SHARDS);
        for db in store.dbs() {
            for i in 0..SHARDS {
                guards.push(db.shard(i).read());
            }
        }
        // Taken while every shard is held: a job writes its predictions and moves its
        // checkpoint under its shards' write locks, so the two agree in the image.
        let jobs = store
            .jobs
            .all()
            .into_iter()
            .map(|(db, name, job)| {
                let progress = job.progress.lock().to_words(0);
                (db as u16, name, job.spec.to_words(), progress)
            })
            .collect();
        let mut entries = Vec::new();
        for (i, g) in guards.iter().enumerate() {
            let db = (i / SHARDS) as u16;
            for (k, e) in g.iter(now) {
                entries.push((db, k.clone(), e.clone()));
            }
        }
        let functions = store.function_libraries.read().clone();
        let request_logs = store
            .request_logs
            .all()
            .into_iter()
            .map(|(db, key, spec)| (db as u16, key, spec.to_words()))
            .collect();
        let monitors = store
            .monitors
            .all()
            .into_iter()
            .map(|(db, key, m)| (db as u16, key, crate::cmd::monitors::to_words(&m.lock())))
            .collect();
        Image {
            entries,
            functions,
            request_logs,
            monitors,
            jobs,
        }
    }

    /// An image of one key alone (DUMP of a tensor, model or router).
    pub fn single(key: Bytes, entry: Entry) -> Image {
        Image {
            entries: vec![(0, key, entry)],
            functions: Vec::new(),
            request_logs: Vec::new(),
            monitors: Vec::new(),
            jobs: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Counts bytes and checksums them as they are written.
struct Writer<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    pos: u64,
}

impl<W: Write> Writer<W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.crc.update(b);
        self.pos += b.len() as u64;
        self.inner.write_all(b)
    }
    fn u8(&mut self, v: u8) -> std::io::Result<()> {
        self.put(&[v])
    }
    fn u16(&mut self, v: u16) -> std::io::Result<()> {
        self.put(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> std::io::Result<()> {
        self.put(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> std::io::Result<()> {
        self.put(&v.to_le_bytes())
    }
    fn bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.u32(b.len() as u32)?;
        self.put(b)
    }
    fn align(&mut self, to: u64) -> std::io::Result<()> {
        let pad = (to - self.pos % to) % to;
        self.put(&vec![0u8; pad as usize])
    }
}

/// Writes `image` to `path` atomically (temp file, fsync, rename, directory fsync).
pub fn write(image: &Image, path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let tmp = dir.join(format!(
        "temp-{}-{}.locus",
        std::process::id(),
        crate::util::now_us()
    ));
    let result = (|| {
        let file = File::create(&tmp)?;
        let file = write_image(image, BufWriter::with_capacity(1 << 20, file))?
            .into_inner()
            .map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The snapshot of `image` in memory (DUMP's payload for the AI types).
pub fn to_bytes(image: &Image) -> Vec<u8> {
    write_image(image, Vec::new()).expect("writing to memory does not fail")
}

/// Writes the snapshot of `image` to `out` and gives it back.
fn write_image<W: Write>(image: &Image, out: W) -> std::io::Result<W> {
    let mut w = Writer {
        inner: out,
        crc: crc32fast::Hasher::new(),
        pos: 0,
    };
    {
        w.put(MAGIC)?;
        w.u32(VERSION)?;
        w.u32(0)?;
        w.u64(crate::util::now_ms())?;
        for (db, key, e) in &image.entries {
            let kind = match &e.value {
                Value::Str(_) => KIND_STRING,
                Value::Hash(_) => KIND_HASH,
                Value::Tensor(_) => KIND_TENSOR,
                Value::Model(_) => KIND_MODEL_VERSIONS,
                Value::Router(_) => KIND_ROUTER,
                Value::List(_) => KIND_LIST,
                Value::Set(_) => KIND_SET,
                Value::ZSet(_) => KIND_ZSET,
                Value::Stream(_) => KIND_STREAM,
            };
            w.u8(kind)?;
            w.u16(*db)?;
            w.u64(e.expire_at())?;
            w.bytes(key)?;
            match &e.value {
                Value::Str(b) => {
                    w.u64(b.len() as u64)?;
                    w.put(b)?;
                }
                Value::Hash(h) => {
                    w.u32(h.len() as u32)?;
                    for (f, v) in h.iter() {
                        w.bytes(f)?;
                        w.bytes(v)?;
                    }
                }
                Value::List(l) => {
                    w.u32(l.len() as u32)?;
                    for v in l.iter() {
                        w.bytes(v)?;
                    }
                }
                Value::Set(s) => {
                    w.u32(s.len() as u32)?;
                    for v in s.iter() {
                        w.bytes(v)?;
                    }
                }
                Value::ZSet(z) => {
                    w.u32(z.len() as u32)?;
                    for (m, score) in z.iter() {
                        w.bytes(m)?;
                        w.u64(score.to_bits())?;
                    }
                }
                Value::Stream(st) => write_stream(&mut w, st)?,
                Value::Tensor(t) => {
                    w.u8(dtype_code(t.dtype()))?;
                    w.u8(t.shape().len() as u8)?;
                    for &d in t.shape() {
                        w.u64(d as u64)?;
                    }
                    w.u64(t.blob().len() as u64)?;
                    w.align(64)?;
                    w.put(t.blob())?;
                }
                Value::Router(r) => {
                    let words = r.to_words();
                    w.u32(words.len() as u32)?;
                    for word in &words {
                        w.bytes(word)?;
                    }
                }
                Value::Model(m) => {
                    w.u64(m.live_number().unwrap_or(0))?;
                    w.u64(m.next_number())?;
                    w.u32(m.history().len() as u32)?;
                    for &n in m.history() {
                        w.u64(n)?;
                    }
                    w.u32(m.versions().len() as u32)?;
                    for v in m.versions() {
                        w.u64(v.number)?;
                        w.u8(v.has_served() as u8)?;
                        let i = &v.info;
                        w.u64(i.created_ms)?;
                        w.bytes(i.created_by.as_bytes())?;
                        w.bytes(i.client_name.as_bytes())?;
                        w.bytes(i.sha256.as_bytes())?;
                        w.u32(i.meta.len() as u32)?;
                        for (f, val) in &i.meta {
                            w.bytes(f)?;
                            w.bytes(val)?;
                        }
                        write_model(&mut w, &v.model)?;
                    }
                }
            }
        }
        for code in &image.functions {
            w.u8(KIND_FUNCTION)?;
            w.u16(0)?;
            w.u64(0)?;
            w.bytes(b"")?;
            w.bytes(code)?;
        }
        // Settings of a key, as words: request logs and monitors.
        for (kind, records) in [
            (KIND_REQUEST_LOG, &image.request_logs),
            (KIND_MONITOR, &image.monitors),
        ] {
            for (db, key, words) in records {
                w.u8(kind)?;
                w.u16(*db)?;
                w.u64(0)?;
                w.bytes(key)?;
                w.u32(words.len() as u32)?;
                for word in words {
                    w.bytes(word)?;
                }
            }
        }
        for (db, name, spec, progress) in &image.jobs {
            w.u8(KIND_JOB)?;
            w.u16(*db)?;
            w.u64(0)?;
            w.bytes(name)?;
            for words in [spec, progress] {
                w.u32(words.len() as u32)?;
                for word in words {
                    w.bytes(word)?;
                }
            }
        }
        w.u8(KIND_END)?;
        w.u64(
            (image.entries.len()
                + image.functions.len()
                + image.request_logs.len()
                + image.monitors.len()
                + image.jobs.len()) as u64,
        )?;
        let crc = w.crc.clone().finalize();
        w.inner.write_all(&crc.to_le_bytes())?;
    }
    Ok(w.inner)
}

fn dtype_code(d: DType) -> u8 {
    DType::ALL
        .iter()
        .position(|x| *x == d)
        .expect("known dtype") as u8
}

/// A problem in a snapshot, with the file offset where it was found.
#[derive(Debug)]
pub struct LoadError {
    pub offset: u64,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

/// A memory-mapped snapshot, shared by the tensors that point into it.
struct Mapped(memmap2::Mmap);

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Reads values out of the mapped file, tracking the offset for error reports.
struct Reader {
    data: Bytes,
    pos: usize,
}

impl Reader {
    fn fail<T>(&self, msg: &str) -> Result<T, LoadError> {
        Err(LoadError {
            offset: self.pos as u64,
            message: msg.to_string(),
        })
    }
    fn take(&mut self, n: usize) -> Result<Bytes, LoadError> {
        // `pos` may already stand past the end (alignment padding of a damaged file).
        if self.pos > self.data.len() || self.data.len() - self.pos < n {
            return self.fail("unexpected end of file");
        }
        let b = self.data.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }
    /// Room for `n` items of at least `min_bytes` each, bounded by what the file still holds:
    /// a damaged count must not make the loader reserve memory the file cannot fill.
    fn capacity(&self, n: u32, min_bytes: usize) -> usize {
        (n as usize).min(self.data.len().saturating_sub(self.pos) / min_bytes.max(1))
    }
    fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, LoadError> {
        Ok(u16::from_le_bytes(
            self.take(2)?[..].try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(
            self.take(4)?[..].try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(
            self.take(8)?[..].try_into().expect("8 bytes"),
        ))
    }
    fn bytes(&mut self) -> Result<Bytes, LoadError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, LoadError> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }
}

/// A model's settings and blob.
fn write_model<W: Write>(w: &mut Writer<W>, m: &Model) -> std::io::Result<()> {
    let s = &m.spec;
    w.bytes(s.backend.as_bytes())?;
    w.bytes(s.device_name.as_bytes())?;
    w.bytes(&s.tag)?;
    w.u64(s.batchsize as u64)?;
    w.u64(s.minbatchsize as u64)?;
    w.u64(s.minbatchtimeout)?;
    w.u32(s.inputs.len() as u32)?;
    for n in &s.inputs {
        w.bytes(n.as_bytes())?;
    }
    w.u32(s.outputs.len() as u32)?;
    for n in &s.outputs {
        w.bytes(n.as_bytes())?;
    }
    w.u64(m.blob.len() as u64)?;
    w.put(&m.blob)
}

fn read_model(r: &mut Reader) -> Result<(ModelSpec, Bytes), LoadError> {
    let backend = r.string()?;
    let device_name = r.string()?;
    let device = Device::parse(device_name.as_bytes()).ok_or_else(|| LoadError {
        offset: r.pos as u64,
        message: "bad device".into(),
    })?;
    let tag = Bytes::copy_from_slice(&r.bytes()?);
    let (batchsize, minbatchsize, minbatchtimeout) =
        (r.u64()? as usize, r.u64()? as usize, r.u64()?);
    let ni = r.u32()?;
    let inputs = (0..ni).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?;
    let no = r.u32()?;
    let outputs = (0..no).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?;
    let n = r.u64()? as usize;
    let blob = Bytes::copy_from_slice(&r.take(n)?);
    let spec = ModelSpec {
        backend,
        device,
        device_name,
        tag,
        batchsize,
        minbatchsize,
        minbatchtimeout,
        inputs,
        outputs,
    };
    Ok((spec, blob))
}

/// One stored version of a model, as read.
pub struct LoadedVersion {
    pub number: u64,
    pub served: bool,
    pub info: VersionInfo,
    pub spec: ModelSpec,
    pub blob: Bytes,
}

/// One decoded record; models are kept as their parts until the engine re-creates them.
pub enum Loaded {
    Value(u16, Bytes, Entry),
    Model {
        db: u16,
        key: Bytes,
        expire_at: u64,
        versions: Vec<LoadedVersion>,
        live: Option<u64>,
        history: Vec<u64>,
        next: u64,
    },
    /// A FUNCTION library's code.
    Function(Bytes),
    /// AI.LOG settings of a key.
    RequestLog(u16, Bytes, crate::request_log::LogSpec),
    /// An AI.MONITOR definition of a key.
    Monitor(u16, Bytes, Box<locus_engine::monitor::Monitor>),
    Job(u16, Arc<locus_engine::score::Job>),
}

impl Loaded {
    /// A model key with one version, live: a snapshot from before versions, or a model from
    /// another server (RedisAI's).
    pub fn single_model(db: u16, key: Bytes, expire_at: u64, spec: ModelSpec, blob: Bytes) -> Self {
        let info = VersionInfo {
            sha256: crate::engine::versions::sha256_hex(&blob),
            ..Default::default()
        };
        Loaded::Model {
            db,
            key,
            expire_at,
            versions: vec![LoadedVersion {
                number: 1,
                served: true,
                info,
                spec,
                blob,
            }],
            live: Some(1),
            history: Vec::new(),
            next: 2,
        }
    }
}

/// Maps and verifies a snapshot, returning its records. Nothing is applied: a bad file is
/// refused whole, with the offset of the first problem.
pub fn read(path: &Path) -> Result<Vec<Loaded>, LoadError> {
    let err = |offset: u64, m: String| LoadError { offset, message: m };
    let file = File::open(path).map_err(|e| err(0, format!("cannot open: {e}")))?;
    // SAFETY: the snapshot is only ever replaced by rename, never modified in place, so the
    // mapped bytes do not change under us.
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| err(0, format!("cannot map: {e}")))?;
    read_bytes(Bytes::from_owner(Mapped(map)))
}

/// Reads a snapshot held in memory (a file's mapping, or a DUMP payload's body).
pub fn read_bytes(data: Bytes) -> Result<Vec<Loaded>, LoadError> {
    let err = |offset: u64, m: String| LoadError { offset, message: m };
    if data.len() < HEADER_LEN + 13 {
        return Err(err(data.len() as u64, "file too short".into()));
    }
    let body = data.len() - 4;
    let stored = u32::from_le_bytes(data[body..].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&data[..body]);
    let mut r = Reader {
        data: data.clone(),
        pos: 0,
    };
    if &r.take(8)?[..] != MAGIC {
        return Err(err(0, "not a Locus snapshot (bad magic)".into()));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(err(8, format!("unsupported snapshot version {version}")));
    }
    r.u32()?;
    r.u64()?;
    let mut out = Vec::new();
    loop {
        let at = r.pos;
        let kind = r.u8()?;
        if kind == KIND_END {
            let count = r.u64()?;
            if count != out.len() as u64 {
                return Err(err(
                    at as u64,
                    format!("footer says {count} records, found {}", out.len()),
                ));
            }
            if r.pos != body {
                return Err(err(r.pos as u64, "trailing bytes after the footer".into()));
            }
            break;
        }
        let db = r.u16()?;
        let expire_at = r.u64()?;
        let key = r.bytes()?;
        let value = match kind {
            KIND_STRING => {
                let n = r.u64()? as usize;
                Value::Str(Bytes::copy_from_slice(&r.take(n)?))
            }
            KIND_HASH => {
                let n = r.u32()?;
                let mut h = crate::store::HashValue::default();
                for _ in 0..n {
                    let f = Bytes::copy_from_slice(&r.bytes()?);
                    let v = Bytes::copy_from_slice(&r.bytes()?);
                    h.insert(f, v);
                }
                Value::Hash(Box::new(h))
            }
            KIND_LIST => {
                let n = r.u32()?;
                let mut l = std::collections::VecDeque::with_capacity(r.capacity(n, 4));
                for _ in 0..n {
                    l.push_back(Bytes::copy_from_slice(&r.bytes()?));
                }
                Value::List(Box::new(l))
            }
            KIND_SET => {
                let n = r.u32()?;
                let mut s = std::collections::HashSet::with_capacity_and_hasher(
                    r.capacity(n, 4),
                    ahash::RandomState::new(),
                );
                for _ in 0..n {
                    s.insert(Bytes::copy_from_slice(&r.bytes()?));
                }
                Value::Set(Box::new(s))
            }
            KIND_ZSET => {
                let n = r.u32()?;
                let mut z = crate::store::zset::ZSet::default();
                for _ in 0..n {
                    let m = Bytes::copy_from_slice(&r.bytes()?);
                    let score = f64::from_bits(r.u64()?);
                    if score.is_nan() {
                        return Err(err(r.pos as u64 - 8, "NaN score in a sorted set".into()));
                    }
                    z.insert(m, score);
                }
                Value::ZSet(Box::new(z))
            }
            KIND_STREAM => read_stream(&mut r)?,
            KIND_ROUTER => {
                let n = r.u32()?;
                let words = (0..n)
                    .map(|_| r.bytes().map(|b| Bytes::copy_from_slice(&b)))
                    .collect::<Result<Vec<_>, _>>()?;
                let router = locus_engine::router::Router::parse(&words)
                    .map_err(|e| err(r.pos as u64, format!("bad router definition: {e}")))?;
                Value::Router(Arc::new(router))
            }
            KIND_FUNCTION => {
                out.push(Loaded::Function(r.bytes()?));
                continue;
            }
            KIND_REQUEST_LOG => {
                let n = r.u32()?;
                let words = (0..n)
                    .map(|_| r.bytes().map(|b| Bytes::copy_from_slice(&b)))
                    .collect::<Result<Vec<_>, _>>()?;
                let spec = crate::request_log::LogSpec::parse(&words)
                    .map_err(|e| err(r.pos as u64, format!("bad AI.LOG settings: {e}")))?;
                out.push(Loaded::RequestLog(db, Bytes::copy_from_slice(&key), spec));
                continue;
            }
            KIND_MONITOR => {
                let n = r.u32()?;
                let words = (0..n)
                    .map(|_| r.bytes().map(|b| Bytes::copy_from_slice(&b)))
                    .collect::<Result<Vec<_>, _>>()?;
                let monitor = crate::cmd::monitors::from_words(&words)
                    .map_err(|e| err(r.pos as u64, format!("bad AI.MONITOR definition: {e}")))?;
                out.push(Loaded::Monitor(
                    db,
                    Bytes::copy_from_slice(&key),
                    Box::new(monitor),
                ));
                continue;
            }
            KIND_JOB => {
                let mut words = || -> Result<Vec<Bytes>, LoadError> {
                    let n = r.u32()?;
                    (0..n)
                        .map(|_| r.bytes().map(|b| Bytes::copy_from_slice(&b)))
                        .collect()
                };
                let (spec, progress) = (words()?, words()?);
                let spec = locus_engine::score::ScoreSpec::parse(&spec)
                    .map_err(|e| err(r.pos as u64, format!("bad job definition: {e}")))?;
                let mut p = locus_engine::score::Progress::new(0);
                p.apply_words(&progress)
                    .map_err(|e| err(r.pos as u64, format!("bad job progress: {e}")))?;
                let name = Bytes::copy_from_slice(&key);
                let job = locus_engine::score::Job::new(name, spec, p);
                out.push(Loaded::Job(db, Arc::new(job)));
                continue;
            }
            KIND_TENSOR => {
                let dt = *DType::ALL
                    .get(r.u8()? as usize)
                    .ok_or_else(|| err(r.pos as u64 - 1, "unknown tensor type".into()))?;
                let nd = r.u8()? as usize;
                let shape = (0..nd)
                    .map(|_| r.u64().map(|d| d as usize))
                    .collect::<Result<Vec<_>, _>>()?;
                let len = r.u64()? as usize;
                r.pos += (64 - r.pos % 64) % 64;
                let blob = r.take(len)?;
                let t =
                    Tensor::from_shared(dt, &shape, blob).map_err(|e| err(r.pos as u64, e.0))?;
                Value::Tensor(Arc::new(t))
            }
            KIND_MODEL => {
                // A file from before versions: its model is version 1, live.
                let (spec, blob) = read_model(&mut r)?;
                out.push(Loaded::single_model(db, key, expire_at, spec, blob));
                continue;
            }
            KIND_MODEL_VERSIONS => {
                let live = Some(r.u64()?).filter(|&n| n > 0);
                let next = r.u64()?;
                let nh = r.u32()?;
                let history = (0..nh).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
                let nv = r.u32()?;
                let mut versions = Vec::new();
                for _ in 0..nv {
                    let number = r.u64()?;
                    let served = r.u8()? != 0;
                    let created_ms = r.u64()?;
                    let created_by = r.string()?;
                    let client_name = r.string()?;
                    let sha256 = r.string()?;
                    let nm = r.u32()?;
                    let meta = (0..nm)
                        .map(|_| {
                            Ok((
                                Bytes::copy_from_slice(&r.bytes()?),
                                Bytes::copy_from_slice(&r.bytes()?),
                            ))
                        })
                        .collect::<Result<Vec<_>, LoadError>>()?;
                    let (spec, blob) = read_model(&mut r)?;
                    versions.push(LoadedVersion {
                        number,
                        served,
                        info: VersionInfo {
                            created_ms,
                            created_by,
                            client_name,
                            sha256,
                            meta,
                        },
                        spec,
                        blob,
                    });
                }
                out.push(Loaded::Model {
                    db,
                    key,
                    expire_at,
                    versions,
                    live,
                    history,
                    next,
                });
                continue;
            }
            _ => return Err(err(at as u64, format!("unknown record kind {kind}"))),
        };
        out.push(Loaded::Value(
            db,
            Bytes::copy_from_slice(&key),
            Entry::with_expiry(value, expire_at),
        ));
    }
    if stored != computed {
        return Err(err(
            body as u64,
            format!("checksum mismatch (stored {stored:08x}, computed {computed:08x})"),
        ));
    }
    Ok(out)
}

/// Loads a verified snapshot into `store`, re-creating models through `engine`. Keys already
/// expired are dropped unless `keep_expired` is set: an AOF base keeps them, because the
/// commands replayed after it run at their original times and may still see them live.
pub fn apply(
    store: &Store,
    engine: &Engine,
    records: Vec<Loaded>,
    keep_expired: bool,
) -> Result<usize, String> {
    let now = crate::util::now_ms();
    let mut n = 0;
    for rec in records {
        let Some((db, key, entry)) = materialize(store, engine, rec)? else {
            continue;
        };
        if (db as usize) >= store.db_count() {
            return Err(format!(
                "snapshot uses database {db} but only {} are configured",
                store.db_count()
            ));
        }
        if entry.is_expired(now) && !keep_expired {
            continue;
        }
        store
            .db(db as usize)
            .write(&key)
            .insert(key.clone(), entry, now);
        n += 1;
    }
    Ok(n)
}

/// A loaded record as a key's entry, models re-created through `engine`; records that are
/// not keys (functions, request logs, monitors, jobs) go straight into `store` (`None`).
pub fn materialize(
    store: &Store,
    engine: &Engine,
    rec: Loaded,
) -> Result<Option<(u16, Bytes, Entry)>, String> {
    Ok(Some(match rec {
        Loaded::Function(code) => {
            store.function_libraries.write().push(code);
            return Ok(None);
        }
        Loaded::RequestLog(db, key, spec) => {
            store.request_logs.set(db as usize, key, spec);
            return Ok(None);
        }
        Loaded::Monitor(db, key, monitor) => {
            store
                .monitors
                .set(db as usize, key, parking_lot::Mutex::new(*monitor));
            return Ok(None);
        }
        Loaded::Job(db, job) => {
            store.jobs.insert(db as usize, job.name.clone(), job);
            return Ok(None);
        }
        Loaded::Value(db, key, entry) => (db, key, entry),
        Loaded::Model {
            db,
            key,
            expire_at,
            versions,
            live,
            history,
            next,
        } => {
            let backend = engine.onnx(None)?;
            let mut loaded = Vec::with_capacity(versions.len());
            for v in versions {
                let model = Model::load(backend.clone(), v.spec, v.blob, engine.session_options())
                    .map_err(|e| {
                        format!(
                            "model '{}' version {} could not be re-created: {e}",
                            String::from_utf8_lossy(&key),
                            v.number
                        )
                    })?;
                loaded.push(ModelVersion::new(v.number, model, v.info, v.served));
            }
            let vm = VersionedModel::restore(loaded, live, history, next);
            (
                db,
                key,
                Entry::with_expiry(Value::Model(Arc::new(vm)), expire_at),
            )
        }
    }))
}

/// The snapshot path from the configuration (`dir` is the working directory).
pub fn snapshot_path(dbfilename: &str) -> PathBuf {
    PathBuf::from(dbfilename)
}

/// Snapshot bookkeeping shared by SAVE, BGSAVE, the save rules and INFO persistence.
#[derive(Default)]
pub struct SaveState {
    pub in_progress: std::sync::atomic::AtomicBool,
    /// Unix seconds of the last successful save (or of start-up).
    pub last_save: std::sync::atomic::AtomicU64,
    pub last_ok: std::sync::atomic::AtomicBool,
    pub last_duration_ms: std::sync::atomic::AtomicU64,
    pub saves: std::sync::atomic::AtomicU64,
}

/// A stream's layout: its counters, the node boundaries (so approximate trimming after a
/// restart removes what it would have removed before), the entries, then each consumer group
/// with its consumers and pending entries.
fn write_stream<W: Write>(
    w: &mut Writer<W>,
    s: &crate::store::stream::Stream,
) -> std::io::Result<()> {
    let id = |w: &mut Writer<W>, id: StreamId| -> std::io::Result<()> {
        w.u64(id.ms)?;
        w.u64(id.seq)
    };
    id(w, s.last_id)?;
    id(w, s.first_id)?;
    id(w, s.max_deleted_id)?;
    w.u64(s.entries_added)?;
    let nodes: Vec<_> = s.nodes().collect();
    w.u64(nodes.len() as u64)?;
    for (first, n) in nodes {
        id(w, first)?;
        w.u32(n.total)?;
        w.u32(n.live)?;
        id(w, n.last)?;
        w.u32(n.bytes)?;
        w.u32(n.master.len() as u32)?;
        for f in n.master.iter() {
            w.bytes(f)?;
        }
    }
    w.u64(s.len() as u64)?;
    for (eid, fields) in s.iter() {
        id(w, eid)?;
        w.u32(fields.len() as u32)?;
        for f in fields.iter() {
            w.bytes(f)?;
        }
    }
    w.u32(s.groups.len() as u32)?;
    for (name, g) in &s.groups {
        w.bytes(name)?;
        id(w, g.last_id)?;
        w.u64(g.entries_read as u64)?;
        w.u32(g.consumers.len() as u32)?;
        for (cname, c) in &g.consumers {
            w.bytes(cname)?;
            w.u64(c.seen_time)?;
        }
        w.u64(g.pel.len() as u64)?;
        for (pid, p) in &g.pel {
            id(w, *pid)?;
            w.bytes(&p.consumer)?;
            w.u64(p.delivery_time)?;
            w.u64(p.delivery_count)?;
        }
    }
    Ok(())
}

fn read_stream(r: &mut Reader) -> Result<Value, LoadError> {
    use crate::store::stream::{Consumer, Group, Node, Pending, Stream};
    fn id(r: &mut Reader) -> Result<StreamId, LoadError> {
        Ok(StreamId::new(r.u64()?, r.u64()?))
    }
    let meta = (id(r)?, id(r)?, id(r)?, r.u64()?);
    let n = r.u64()?;
    let mut nodes = Vec::new();
    for _ in 0..n {
        let first = id(r)?;
        let (total, live) = (r.u32()?, r.u32()?);
        let last = id(r)?;
        let bytes = r.u32()?;
        let nm = r.u32()?;
        let master = (0..nm)
            .map(|_| r.bytes().map(|b| Bytes::copy_from_slice(&b)))
            .collect::<Result<Vec<_>, _>>()?
            .into_boxed_slice();
        nodes.push((
            first,
            Node {
                total,
                live,
                last,
                bytes,
                master,
            },
        ));
    }
    let n = r.u64()?;
    let mut entries = Vec::new();
    for _ in 0..n {
        let eid = id(r)?;
        let nf = r.u32()?;
        let fields = (0..nf)
            .map(|_| r.bytes().map(|b| Bytes::copy_from_slice(&b)))
            .collect::<Result<Vec<_>, _>>()?;
        entries.push((eid, fields.into_boxed_slice()));
    }
    let ng = r.u32()?;
    let mut groups = std::collections::BTreeMap::new();
    for _ in 0..ng {
        let name = Bytes::copy_from_slice(&r.bytes()?);
        let mut g = Group::new(id(r)?, r.u64()? as i64);
        let nc = r.u32()?;
        for _ in 0..nc {
            let cname = Bytes::copy_from_slice(&r.bytes()?);
            let seen_time = r.u64()?;
            g.consumers.insert(
                cname,
                Consumer {
                    seen_time,
                    pending: Default::default(),
                },
            );
        }
        let np = r.u64()?;
        for _ in 0..np {
            let at = r.pos as u64;
            let pid = id(r)?;
            let consumer = Bytes::copy_from_slice(&r.bytes()?);
            let (delivery_time, delivery_count) = (r.u64()?, r.u64()?);
            let owner = g.consumers.get_mut(&consumer).ok_or_else(|| LoadError {
                offset: at,
                message: "pending entry of an unknown consumer".into(),
            })?;
            owner.pending.insert(pid);
            g.pel.insert(
                pid,
                Pending {
                    consumer,
                    delivery_time,
                    delivery_count,
                },
            );
        }
        groups.insert(name, g);
    }
    Ok(Value::Stream(Box::new(Stream::restore(
        nodes, entries, meta, groups,
    ))))
}
