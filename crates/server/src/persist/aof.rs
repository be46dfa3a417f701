//! The append-only file, in Redis 7's multi-part layout: a directory (`appenddirname`) holding
//! a base snapshot, incremental files of commands, and a manifest naming them in order:
//!
//! ```text
//! appendonlydir/appendonly.aof.3.base.snap    the keyspace at the last rewrite (snapshot format)
//! appendonlydir/appendonly.aof.3.incr.aof     commands since then
//! appendonlydir/appendonly.aof.manifest       "file <name> seq <n> type b|i" lines
//! ```
//!
//! Incremental files hold RESP commands, as Redis writes them, grouped in records. Each record
//! opens with an annotation line (a `#` line, which Redis's own loader skips):
//!
//! ```text
//! #<db> <unix-ms> <commands> <crc32>\r\n*3\r\n$3\r\nSET\r\n...
//! ```
//!
//! The time is the clock the commands ran at, and replay runs them at that time again: expiry
//! then decides exactly as it did (keys that expired need no logged DEL) and relative expiries
//! (`EX`, `EXPIRE`) resolve to the same instants. The CRC-32 covers the header's fields and the
//! commands, so a flipped byte anywhere is caught and reported with its record's offset; a
//! record cut short at the end of the last file is a torn tail (`aof-load-truncated`).
//!
//! Writers serialise through [`Aof::begin`]: a write command holds that lock while it changes
//! the keyspace and appends its record, so the file's order is the keyspace's order. Records
//! gather in memory; a background thread writes them out every millisecond (and fsyncs every
//! second under `everysec`), and under `always` a connection waits for [`Aof::sync_through`]
//! before it sends the replies of its writes: many clients' writes share one fsync.

use crate::store::Store;
use parking_lot::{Mutex, MutexGuard};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// When appended records reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    Always = 0,
    EverySec = 1,
    No = 2,
}

impl Fsync {
    pub fn parse(s: &str) -> Fsync {
        match s {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::EverySec,
        }
    }
}

/// One file named by the manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub file: String,
    pub seq: u64,
}

/// The manifest: the base snapshot (if any) and the incremental files, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    pub base: Option<Part>,
    pub incrs: Vec<Part>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let bad = || format!("invalid manifest line {}: '{line}'", n + 1);
            let (mut file, mut seq, mut kind) = (None, None, None);
            for pair in words.chunks(2) {
                match pair {
                    ["file", v] => file = Some(v.to_string()),
                    ["seq", v] => seq = Some(v.parse::<u64>().map_err(|_| bad())?),
                    ["type", v] => kind = Some(*v),
                    _ => return Err(bad()),
                }
            }
            let (Some(file), Some(seq), Some(kind)) = (file, seq, kind) else {
                return Err(bad());
            };
            if file.contains('/') {
                return Err(bad());
            }
            match kind {
                "b" if m.base.is_none() => m.base = Some(Part { file, seq }),
                "i" => m.incrs.push(Part { file, seq }),
                _ => return Err(bad()),
            }
        }
        if m.incrs.windows(2).any(|w| w[0].seq >= w[1].seq) {
            return Err("incremental files out of order in the manifest".into());
        }
        Ok(m)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(b) = &self.base {
            s.push_str(&format!("file {} seq {} type b\n", b.file, b.seq));
        }
        for i in &self.incrs {
            s.push_str(&format!("file {} seq {} type i\n", i.file, i.seq));
        }
        s
    }

    fn next_seq(&self) -> u64 {
        self.base
            .iter()
            .chain(self.incrs.iter())
            .map(|p| p.seq)
            .max()
            .unwrap_or(0)
            + 1
    }

    /// Every file the manifest names.
    pub fn files(&self) -> impl Iterator<Item = &Part> {
        self.base.iter().chain(self.incrs.iter())
    }
}

/// Counters for INFO persistence.
pub struct AofStats {
    pub rewrite_in_progress: AtomicBool,
    pub rewrites: AtomicU64,
    pub last_rewrite_ok: AtomicBool,
    /// Seconds the last rewrite took, -1 before the first.
    pub last_rewrite_secs: AtomicI64,
    pub rewrite_started_ms: AtomicU64,
    pub last_write_ok: AtomicBool,
    pub last_write_error: Mutex<String>,
    /// Bytes in the base and incremental files.
    pub current_size: AtomicU64,
    /// `current_size` right after the last rewrite or load: growth is measured against it.
    pub base_size: AtomicU64,
    pub delayed_fsync: AtomicU64,
}

impl Default for AofStats {
    fn default() -> Self {
        AofStats {
            rewrite_in_progress: AtomicBool::new(false),
            rewrites: AtomicU64::new(0),
            last_rewrite_ok: AtomicBool::new(true),
            last_rewrite_secs: AtomicI64::new(-1),
            rewrite_started_ms: AtomicU64::new(0),
            last_write_ok: AtomicBool::new(true),
            last_write_error: Mutex::new(String::new()),
            current_size: AtomicU64::new(0),
            base_size: AtomicU64::new(0),
            delayed_fsync: AtomicU64::new(0),
        }
    }
}

/// Records appended but not yet written.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    seq: u64,
}

/// The file records are written to.
struct Active {
    file: Option<File>,
    manifest: Option<Manifest>,
    spare: Vec<u8>,
    last_fsync: Instant,
    /// Length of the open file: a failed write is cut back to it.
    len: u64,
}

pub struct Aof {
    dir: Mutex<PathBuf>,
    name: String,
    pending: Mutex<Pending>,
    active: Mutex<Active>,
    enabled: AtomicBool,
    fsync: AtomicU8,
    appended: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
    /// Capacity of the pending buffers (records not yet written, and the encoding scratch).
    pending_bytes: AtomicUsize,
    /// Capacity of the buffer being written and of the spare kept for the next swap.
    writer_bytes: AtomicUsize,
    pub stats: AofStats,
}

/// The lock a write command holds while it changes the keyspace and logs itself.
pub struct Txn<'a> {
    aof: &'a Aof,
    pending: MutexGuard<'a, Pending>,
}

impl Txn<'_> {
    /// Appends one record: `cmds` ran in database `db` at `now` (Unix ms). Returns the record's
    /// sequence number (for [`Aof::sync_through`]).
    pub fn record<I, C, A>(&mut self, db: usize, now: u64, cmds: I) -> u64
    where
        I: IntoIterator<Item = C>,
        C: IntoIterator<Item = A>,
        C::IntoIter: ExactSizeIterator,
        A: AsRef<[u8]>,
    {
        let p = &mut *self.pending;
        let mut scratch = std::mem::take(&mut p.scratch);
        scratch.clear();
        let mut n = 0;
        for cmd in cmds {
            encode_command(&mut scratch, cmd);
            n += 1;
        }
        if n > 0 {
            let start = p.buf.len();
            let _ = write!(p.buf, "#{db} {now} {n}");
            let mut crc = crc32fast::Hasher::new();
            crc.update(&p.buf[start + 1..]);
            crc.update(&scratch);
            let _ = write!(p.buf, " {:08x}\r\n", crc.finalize());
            p.buf.extend_from_slice(&scratch);
            p.seq += 1;
            self.aof.appended.store(p.seq, Ordering::Release);
        }
        // Do not keep a tensor-sized scratch buffer around.
        if scratch.capacity() <= 1 << 20 {
            p.scratch = scratch;
        }
        self.aof.note_pending(p);
        p.seq
    }
}

fn encode_command<C, A>(out: &mut Vec<u8>, cmd: C)
where
    C: IntoIterator<Item = A>,
    C::IntoIter: ExactSizeIterator,
    A: AsRef<[u8]>,
{
    let args = cmd.into_iter();
    let mut num = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(num.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        out.push(b'$');
        out.extend_from_slice(num.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `text` to `path` atomically (temp file, fsync, rename, directory fsync).
fn write_atomic(dir: &Path, path: &Path, text: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("temp-manifest-{}", std::process::id()));
    let mut f = File::create(&tmp)?;
    f.write_all(text)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    fsync_dir(dir)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

impl Aof {
    /// `dir` is `appenddirname` (relative to the working directory), `name` `appendfilename`.
    pub fn new(dir: PathBuf, name: String, fsync: Fsync) -> Aof {
        Aof {
            dir: Mutex::new(dir),
            name,
            pending: Mutex::new(Pending::default()),
            active: Mutex::new(Active {
                file: None,
                manifest: None,
                spare: Vec::new(),
                last_fsync: Instant::now(),
                len: 0,
            }),
            enabled: AtomicBool::new(false),
            fsync: AtomicU8::new(fsync as u8),
            appended: AtomicU64::new(0),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            pending_bytes: AtomicUsize::new(0),
            writer_bytes: AtomicUsize::new(0),
            stats: AofStats::default(),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.lock().clone()
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir().join(format!("{}.manifest", self.name))
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn fsync_policy(&self) -> Fsync {
        match self.fsync.load(Ordering::Relaxed) {
            0 => Fsync::Always,
            2 => Fsync::No,
            _ => Fsync::EverySec,
        }
    }

    pub fn set_fsync(&self, f: Fsync) {
        self.fsync.store(f as u8, Ordering::Relaxed);
    }

    /// Takes the write lock when the AOF is on; `None` when it is off.
    pub fn begin(&self) -> Option<Txn<'_>> {
        if !self.is_enabled() {
            return None;
        }
        let pending = self.pending.lock();
        // Switched off while we waited.
        if !self.is_enabled() {
            return None;
        }
        Some(Txn { aof: self, pending })
    }

    /// The highest record sequence appended so far.
    pub fn appended(&self) -> u64 {
        self.appended.load(Ordering::Acquire)
    }

    /// Whether a connection whose last record is `seq` must wait before replying.
    pub fn must_wait(&self, seq: u64) -> bool {
        seq > self.synced.load(Ordering::Acquire)
            && self.is_enabled()
            && self.fsync_policy() == Fsync::Always
    }

    /// Bytes of memory the AOF's buffers hold. `maxmemory` does not count them, as Redis
    /// does not count its AOF buffer: evicting keys cannot shrink them, so counting them
    /// would evict the whole keyspace under a burst of writes and then refuse every write.
    pub fn buffer_bytes(&self) -> usize {
        self.pending_bytes.load(Ordering::Relaxed) + self.writer_bytes.load(Ordering::Relaxed)
    }

    fn note_pending(&self, p: &Pending) {
        self.pending_bytes
            .store(p.buf.capacity() + p.scratch.capacity(), Ordering::Relaxed);
    }

    /// Bytes waiting in memory (INFO aof_buffer_length).
    pub fn buffer_len(&self) -> usize {
        self.pending.lock().buf.len()
    }

    /// Writes what is pending to the file, and fsyncs it when `fsync` is set. Group commit:
    /// whoever gets here first writes everyone's records.
    pub fn flush(&self, fsync: bool) -> std::io::Result<()> {
        let mut active = self.active.lock();
        self.flush_locked(&mut active, fsync)
    }

    fn flush_locked(&self, active: &mut Active, fsync: bool) -> std::io::Result<()> {
        let (buf, seq) = {
            let mut p = self.pending.lock();
            let spare = std::mem::take(&mut active.spare);
            let buf = std::mem::replace(&mut p.buf, spare);
            self.note_pending(&p);
            self.writer_bytes.store(buf.capacity(), Ordering::Relaxed);
            (buf, p.seq)
        };
        self.write_out(active, buf, seq, fsync)
            .map_err(|(e, mut buf)| {
                // Keep the data for the next attempt, ahead of what arrived meanwhile.
                let mut p = self.pending.lock();
                buf.extend_from_slice(&p.buf);
                p.buf = buf;
                self.note_pending(&p);
                self.writer_bytes.store(0, Ordering::Relaxed);
                e
            })
    }

    /// Writes `buf` (records up to `seq`) to the open file. On failure the buffer comes back
    /// and the file is cut back to its length before the write, as Redis does; writes are then
    /// refused until one succeeds.
    fn write_out(
        &self,
        active: &mut Active,
        mut buf: Vec<u8>,
        seq: u64,
        fsync: bool,
    ) -> Result<(), (std::io::Error, Vec<u8>)> {
        let Some(file) = active.file.as_mut() else {
            buf.clear();
            active.spare = buf;
            self.writer_bytes
                .store(active.spare.capacity(), Ordering::Relaxed);
            return Ok(());
        };
        if !buf.is_empty() {
            if let Err(e) = file.write_all(&buf) {
                let _ = file.set_len(active.len);
                self.write_failed(&e);
                return Err((e, buf));
            }
            active.len += buf.len() as u64;
            self.stats
                .current_size
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
        buf.clear();
        if buf.capacity() <= 16 << 20 {
            active.spare = buf;
        }
        self.writer_bytes
            .store(active.spare.capacity(), Ordering::Relaxed);
        self.written.store(seq, Ordering::Release);
        if fsync && self.synced.load(Ordering::Acquire) < seq {
            if let Err(e) = file.sync_data() {
                self.write_failed(&e);
                return Err((e, Vec::new()));
            }
            active.last_fsync = Instant::now();
            self.synced.store(seq, Ordering::Release);
        }
        if !self.stats.last_write_ok.load(Ordering::Relaxed) {
            tracing::warn!("AOF write error looks solved, Locus can write again.");
            self.stats.last_write_ok.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn write_failed(&self, e: &std::io::Error) {
        if self.stats.last_write_ok.swap(false, Ordering::Relaxed) {
            tracing::warn!("Error writing to the AOF file: {e}");
        }
        *self.stats.last_write_error.lock() = e.to_string();
    }

    /// The error write commands get while the AOF cannot be written, as Redis's MISCONF.
    pub fn write_error(&self) -> Option<String> {
        (self.is_enabled() && !self.stats.last_write_ok.load(Ordering::Relaxed)).then(|| {
            format!(
                "MISCONF Errors writing to the AOF file: {}",
                self.stats.last_write_error.lock()
            )
        })
    }

    /// Makes every record up to `seq` durable (write + fsync), off the event loop.
    pub async fn sync_through(self: &Arc<Self>, seq: u64) {
        if self.synced.load(Ordering::Acquire) >= seq {
            return;
        }
        let aof = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if aof.synced.load(Ordering::Acquire) < seq {
                let _ = aof.flush(true);
            }
        })
        .await;
    }

    /// The background writer's step, run every millisecond: write what is pending; under
    /// `everysec`, fsync once a second has passed since the last one.
    pub fn tick(&self) {
        if !self.is_enabled() {
            return;
        }
        let mut active = self.active.lock();
        let due = self.fsync_policy() == Fsync::EverySec
            && active.last_fsync.elapsed().as_millis() >= 1000
            && self.synced.load(Ordering::Acquire) < self.appended();
        let has_pending = self.written.load(Ordering::Acquire) < self.appended();
        if has_pending || due {
            let _ = self.flush_locked(&mut active, due);
        }
    }

    /// Opens the last incremental file of a loaded manifest for appending and switches the AOF
    /// on. Called once the AOF has been replayed.
    pub fn resume(&self, manifest: Manifest) -> std::io::Result<()> {
        let dir = self.dir();
        // A rewrite cut short by a crash leaves its temporary base behind.
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with("temp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let mut active = self.active.lock();
        let mut manifest = manifest;
        let last = match manifest.incrs.last() {
            Some(p) => p.clone(),
            None => {
                let seq = manifest.next_seq();
                let p = Part {
                    file: format!("{}.{seq}.incr.aof", self.name),
                    seq,
                };
                manifest.incrs.push(p.clone());
                write_atomic(&dir, &self.manifest_path(), manifest.render().as_bytes())?;
                p
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(&last.file))?;
        let size: u64 = manifest.files().map(|p| file_len(&dir.join(&p.file))).sum();
        self.stats.current_size.store(size, Ordering::Relaxed);
        self.stats.base_size.store(size, Ordering::Relaxed);
        active.len = file.metadata()?.len();
        active.file = Some(file);
        active.manifest = Some(manifest);
        self.enabled.store(true, Ordering::Release);
        Ok(())
    }

    /// Switches the AOF off (CONFIG SET appendonly no): writes and fsyncs what is pending,
    /// then closes the file. The files stay for a later start.
    pub fn disable(&self) {
        let mut active = self.active.lock();
        let _ = self.flush_locked(&mut active, true);
        let _pending = self.pending.lock();
        self.enabled.store(false, Ordering::Release);
        active.file = None;
    }

    /// Starts a rewrite: captures the keyspace, starts a new incremental file that takes every
    /// write from now on, and writes the new base in the background. With `enable`, the AOF is
    /// switched on at the same instant (CONFIG SET appendonly yes, or a first start with
    /// `appendonly yes`). Returns the thread writing the base.
    pub fn start_rewrite(
        self: &Arc<Self>,
        store: &Store,
        enable: bool,
    ) -> Result<std::thread::JoinHandle<()>, String> {
        if self.stats.rewrite_in_progress.swap(true, Ordering::AcqRel) {
            return Err("ERR Background append only file rewriting already in progress".into());
        }
        let started = Instant::now();
        self.stats
            .rewrite_started_ms
            .store(crate::util::now_ms(), Ordering::Relaxed);
        let prepared = self.prepare_rewrite(store, enable);
        let (image, seq, previous_manifest) = match prepared {
            Ok(x) => x,
            Err(e) => {
                self.stats
                    .rewrite_in_progress
                    .store(false, Ordering::Release);
                self.stats.last_rewrite_ok.store(false, Ordering::Relaxed);
                return Err(format!("ERR Can't rewrite append only file: {e}"));
            }
        };
        let aof = self.clone();
        Ok(std::thread::spawn(move || {
            let result = aof.finish_rewrite(&image, seq, previous_manifest);
            let ok = result.is_ok();
            match result {
                Ok(()) => tracing::info!(
                    "Background AOF rewrite finished successfully ({} keys, {} ms)",
                    image.len(),
                    started.elapsed().as_millis()
                ),
                Err(e) => tracing::warn!("Background AOF rewrite failed: {e}"),
            }
            aof.stats
                .last_rewrite_secs
                .store(started.elapsed().as_secs() as i64, Ordering::Relaxed);
            aof.stats.last_rewrite_ok.store(ok, Ordering::Relaxed);
            if ok {
                aof.stats.rewrites.fetch_add(1, Ordering::Relaxed);
            }
            aof.stats
                .rewrite_in_progress
                .store(false, Ordering::Release);
        }))
    }

    /// The instant of the rewrite, under both locks: no write runs between the image and the
    /// switch to the new incremental file.
    #[allow(clippy::type_complexity)]
    fn prepare_rewrite(
        &self,
        store: &Store,
        enable: bool,
    ) -> std::io::Result<(super::Image, u64, Option<Manifest>)> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir)?;
        let mut active = self.active.lock();
        if active.manifest.is_none() {
            active.manifest = match std::fs::read_to_string(self.manifest_path()) {
                Ok(text) => Some(Manifest::parse(&text).map_err(std::io::Error::other)?),
                Err(_) => None,
            };
        }
        // Every record so far belongs to the old incremental file, and the image below is
        // taken with the writers held, so the new file starts exactly where the image ends.
        let mut pending = self.pending.lock();
        let buf = std::mem::take(&mut pending.buf);
        self.note_pending(&pending);
        let seq_now = pending.seq;
        if let Err((e, back)) = self.write_out(&mut active, buf, seq_now, true) {
            pending.buf = back;
            self.note_pending(&pending);
            return Err(e);
        }
        let previous = active.manifest.clone();
        let seq = previous.as_ref().map_or(1, |m| m.next_seq());
        let incr = Part {
            file: format!("{}.{seq}.incr.aof", self.name),
            seq,
        };
        let live = self.is_enabled() || enable;
        if live {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(&incr.file))?;
            file.sync_all()?;
            fsync_dir(&dir)?;
            // A manifest that already has a base stays loadable: it names the new file at once.
            if let Some(m) = active.manifest.as_mut().filter(|m| m.base.is_some()) {
                m.incrs.push(incr.clone());
                write_atomic(&dir, &self.manifest_path(), m.render().as_bytes())?;
            }
            active.len = file.metadata()?.len();
            active.file = Some(file);
        }
        let image = super::Image::capture(store, crate::util::now_ms());
        if enable {
            self.enabled.store(true, Ordering::Release);
        }
        drop(pending);
        Ok((image, seq, previous))
    }

    /// Writes the base for `seq`, then the manifest naming it, then removes what it replaced.
    fn finish_rewrite(
        &self,
        image: &super::Image,
        seq: u64,
        previous: Option<Manifest>,
    ) -> std::io::Result<()> {
        let dir = self.dir();
        let base = Part {
            file: format!("{}.{seq}.base.snap", self.name),
            seq,
        };
        super::write(image, &dir.join(&base.file))?;
        let mut active = self.active.lock();
        let live = active.file.is_some();
        let mut manifest = Manifest {
            base: Some(base),
            incrs: Vec::new(),
        };
        let current = active.manifest.clone().or(previous);
        if let Some(m) = &current {
            manifest.incrs = m.incrs.iter().filter(|p| p.seq >= seq).cloned().collect();
        }
        let incr = Part {
            file: format!("{}.{seq}.incr.aof", self.name),
            seq,
        };
        if !manifest.incrs.contains(&incr) {
            if !dir.join(&incr.file).exists() {
                File::create(dir.join(&incr.file))?.sync_all()?;
            }
            manifest.incrs.insert(0, incr);
        }
        write_atomic(&dir, &self.manifest_path(), manifest.render().as_bytes())?;
        // Whatever the new manifest no longer names goes.
        if let Some(old) = &current {
            for p in old.files() {
                if !manifest.files().any(|q| q.file == p.file) {
                    let _ = std::fs::remove_file(dir.join(&p.file));
                }
            }
        }
        let size: u64 = manifest.files().map(|p| file_len(&dir.join(&p.file))).sum();
        self.stats.current_size.store(size, Ordering::Relaxed);
        self.stats.base_size.store(size, Ordering::Relaxed);
        active.manifest = Some(manifest);
        if !live {
            active.file = None;
        }
        Ok(())
    }

    /// Whether the automatic rewrite thresholds are passed.
    pub fn rewrite_due(&self, percentage: u64, min_size: u64) -> bool {
        if percentage == 0
            || !self.is_enabled()
            || self.stats.rewrite_in_progress.load(Ordering::Relaxed)
        {
            return false;
        }
        let size = self.stats.current_size.load(Ordering::Relaxed);
        let base = self.stats.base_size.load(Ordering::Relaxed).max(1);
        size >= min_size && (size.saturating_sub(base)) * 100 / base >= percentage
    }
}

/// Why reading an incremental file stopped early.
#[derive(Debug, PartialEq)]
pub enum ReadError {
    /// The file ends inside the record starting at `offset`: a torn tail.
    Truncated { offset: u64 },
    /// The record at `offset` is damaged (bad syntax or checksum).
    Corrupt { offset: u64, message: String },
}

impl ReadError {
    pub fn offset(&self) -> u64 {
        match self {
            ReadError::Truncated { offset } | ReadError::Corrupt { offset, .. } => *offset,
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Truncated { offset } => {
                write!(
                    f,
                    "truncated record at offset {offset} (the file ends inside it)"
                )
            }
            ReadError::Corrupt { offset, message } => {
                write!(f, "bad record at offset {offset}: {message}")
            }
        }
    }
}

/// One record of an incremental file: argument ranges index the file's bytes.
pub struct Record {
    pub offset: u64,
    pub db: usize,
    pub now: u64,
    pub commands: Vec<Vec<(usize, usize)>>,
}

/// The records of an incremental file, in order; stops at the first error.
pub struct Records<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

pub fn records(data: &[u8]) -> Records<'_> {
    Records {
        data,
        pos: 0,
        failed: false,
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let r = parse_record(self.data, &mut self.pos);
        self.failed = r.is_err();
        Some(r)
    }
}

/// Reads records from `data` in order, handing each to `each`. Returns the number of records
/// read, or where and why reading stopped.
pub fn read_records(
    data: &[u8],
    mut each: impl FnMut(Record) -> Result<(), String>,
) -> Result<u64, ReadError> {
    let mut count = 0u64;
    for r in records(data) {
        let r = r?;
        let offset = r.offset;
        each(r).map_err(|message| ReadError::Corrupt { offset, message })?;
        count += 1;
    }
    Ok(count)
}

fn parse_record(data: &[u8], pos: &mut usize) -> Result<Record, ReadError> {
    let start = *pos;
    let truncated = ReadError::Truncated {
        offset: start as u64,
    };
    let corrupt = |message: &str| ReadError::Corrupt {
        offset: start as u64,
        message: message.to_string(),
    };
    // A tail of zeros is what a crash can leave after an extended file: a torn tail too.
    if data[start..].iter().all(|&b| b == 0) {
        return Err(truncated);
    }
    if data[start] != b'#' {
        return Err(corrupt("expected a record header ('#')"));
    }
    let Some(line) = line_at(data, start + 1, 80) else {
        return Err(if data.len() - start < 82 {
            truncated
        } else {
            corrupt("record header too long")
        });
    };
    let header = &data[start + 1..line];
    let text = std::str::from_utf8(header).map_err(|_| corrupt("bad record header"))?;
    let fields: Vec<&str> = text.split(' ').collect();
    let [db, now, n, crc] = fields[..] else {
        return Err(corrupt("bad record header"));
    };
    let parse = |s: &str| s.parse::<u64>().map_err(|_| corrupt("bad record header"));
    let (db, now, n) = (parse(db)?, parse(now)?, parse(n)?);
    let crc = u32::from_str_radix(crc, 16).map_err(|_| corrupt("bad record header"))?;
    let signed_len = text.rfind(' ').unwrap_or(0);
    if n == 0 || n > 1 << 20 {
        return Err(corrupt("bad command count"));
    }
    *pos = line + 2;
    let payload_start = *pos;
    // A damaged count must not reserve more than the rest of the file could hold.
    let mut commands = Vec::with_capacity((n as usize).min(data.len().saturating_sub(*pos) / 4));
    for _ in 0..n {
        commands.push(parse_command(data, pos, start)?);
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..signed_len]);
    h.update(&data[payload_start..*pos]);
    if h.finalize() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(Record {
        offset: start as u64,
        db: db as usize,
        now,
        commands,
    })
}

/// The index of the `\r` ending the line that starts at `from`, looking at most `max` bytes.
fn line_at(data: &[u8], from: usize, max: usize) -> Option<usize> {
    let end = data.len().min(from + max + 1);
    (from..end.saturating_sub(1)).find(|&i| data[i] == b'\r' && data[i + 1] == b'\n')
}

fn parse_command(
    data: &[u8],
    pos: &mut usize,
    record: usize,
) -> Result<Vec<(usize, usize)>, ReadError> {
    let truncated = ReadError::Truncated {
        offset: record as u64,
    };
    let corrupt = |at: usize, message: &str| ReadError::Corrupt {
        offset: at as u64,
        message: message.to_string(),
    };
    let number = |pos: &mut usize, lead: u8| -> Result<usize, ReadError> {
        let at = *pos;
        if at >= data.len() {
            return Err(ReadError::Truncated {
                offset: record as u64,
            });
        }
        if data[at] != lead {
            return Err(corrupt(at, &format!("expected '{}'", lead as char)));
        }
        let Some(end) = line_at(data, at + 1, 20) else {
            return Err(if data.len() - at < 23 {
                ReadError::Truncated {
                    offset: record as u64,
                }
            } else {
                corrupt(at, "bad length")
            });
        };
        let v =
            crate::util::parse_u64(&data[at + 1..end]).ok_or_else(|| corrupt(at, "bad length"))?;
        *pos = end + 2;
        Ok(v as usize)
    };
    let argc = number(pos, b'*')?;
    if argc == 0 || argc > 1 << 24 {
        return Err(corrupt(*pos, "bad argument count"));
    }
    let mut args = Vec::with_capacity(argc.min(1024));
    for _ in 0..argc {
        let len = number(pos, b'$')?;
        let end = pos
            .checked_add(len)
            .ok_or_else(|| corrupt(*pos, "bad length"))?;
        if end + 2 > data.len() {
            return Err(truncated);
        }
        if &data[end..end + 2] != b"\r\n" {
            return Err(corrupt(end, "expected CRLF after an argument"));
        }
        args.push((*pos, end));
        *pos = end + 2;
    }
    Ok(args)
}

/// Where an AOF lives and what it holds, for loading and for `locus-check`.
pub fn load_manifest(path: &Path) -> Result<Manifest, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("can't read manifest '{}': {e}", path.display()))?;
    Manifest::parse(&text).map_err(|e| format!("bad manifest '{}': {e}", path.display()))
}

/// Maps a file read-only (an empty file maps to nothing).
pub fn map_file(path: &Path) -> std::io::Result<bytes::Bytes> {
    let f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(bytes::Bytes::new());
    }
    // Safety: the file is only read, and Locus never changes an incremental file in place
    // while it is mapped (truncation of a torn tail happens after the map is dropped).
    let map = unsafe { memmap2::Mmap::map(&f)? };
    Ok(bytes::Bytes::from_owner(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aof_bytes(records: &[(usize, u64, Vec<Vec<&str>>)]) -> Vec<u8> {
        let aof = Aof::new(PathBuf::from("."), "t".into(), Fsync::No);
        aof.enabled.store(true, Ordering::Relaxed);
        let mut txn = aof.begin().unwrap();
        for (db, now, cmds) in records {
            txn.record(*db, *now, cmds.iter().map(|c| c.iter()));
        }
        drop(txn);
        let p = aof.pending.lock();
        p.buf.clone()
    }

    type Read = (usize, u64, Vec<Vec<Vec<u8>>>);

    fn read_all(data: &[u8]) -> Result<Vec<Read>, ReadError> {
        let mut out = Vec::new();
        read_records(data, |r| {
            out.push((
                r.db,
                r.now,
                r.commands
                    .iter()
                    .map(|c| c.iter().map(|&(a, b)| data[a..b].to_vec()).collect())
                    .collect(),
            ));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn records_round_trip() {
        let data = aof_bytes(&[
            (0, 1000, vec![vec!["SET", "k", "v"]]),
            (
                3,
                2000,
                vec![vec!["DEL", "a"], vec!["RPUSH", "l", "x\r\ny"]],
            ),
        ]);
        let got = read_all(&data).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 0);
        assert_eq!(got[0].1, 1000);
        assert_eq!(
            got[0].2,
            vec![vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]]
        );
        assert_eq!(got[1].0, 3);
        assert_eq!(got[1].2[1][2], b"x\r\ny".to_vec());
    }

    #[test]
    fn every_cut_is_a_torn_tail_and_every_flip_is_caught() {
        let data = aof_bytes(&[
            (0, 1000, vec![vec!["SET", "k", "v"]]),
            (1, 2000, vec![vec!["HSET", "h", "f", "value"]]),
        ]);
        let first_len = {
            let mut pos = 0;
            parse_record(&data, &mut pos).unwrap();
            pos
        };
        for cut in 1..data.len() {
            let r = read_all(&data[..cut]);
            if cut == first_len {
                assert_eq!(r.unwrap().len(), 1);
                continue;
            }
            let expect = if cut < first_len { 0 } else { first_len as u64 };
            assert_eq!(
                r.unwrap_err(),
                ReadError::Truncated { offset: expect },
                "cut {cut}"
            );
        }
        for i in 0..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 0x01;
            let r = read_all(&bad);
            assert!(r.is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn manifest_round_trips_and_rejects_garbage() {
        let m = Manifest {
            base: Some(Part {
                file: "a.1.base.snap".into(),
                seq: 1,
            }),
            incrs: vec![
                Part {
                    file: "a.1.incr.aof".into(),
                    seq: 1,
                },
                Part {
                    file: "a.2.incr.aof".into(),
                    seq: 2,
                },
            ],
        };
        assert_eq!(Manifest::parse(&m.render()).unwrap(), m);
        assert!(Manifest::parse("file x seq 1 type q\n").is_err());
        assert!(Manifest::parse("file ../x seq 1 type i\n").is_err());
        assert!(Manifest::parse("garbage\n").is_err());
        assert_eq!(m.next_seq(), 3);
    }
}
