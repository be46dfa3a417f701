//! A scoring job's life: its progress and checkpoint, and the loop that lists keys, builds
//! batches, runs them and hands the predictions back to the host. The host (the keyspace of
//! `locus-server`, or of the Redis module) lists, reads and writes keys and runs batches; the
//! loop owns ordering, batching, failures, checkpoints, pacing and progress.

use super::rows::{predictions, tile, BatchBuilder, Prediction};
use super::spec::{InputSpec, Priority, ScoreSpec};
use crate::tensor::{DType, Tensor};
use bytes::Bytes;
use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Failed keys kept with their reason (later failures are only counted).
pub const MAX_FAILURES: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    Done,
    Cancelled,
    Failed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Cancelled => "cancelled",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [State::Running, State::Done, State::Cancelled, State::Failed]
            .into_iter()
            .find(|x| x.name() == s)
    }
}

/// Where a job stands. Keys are taken partition by partition (the host's shards), and within
/// a partition in byte order, so that the checkpoint (`partition`, `last_key`) says exactly
/// which keys are finished, across restarts.
#[derive(Clone, Debug)]
pub struct Progress {
    pub state: State,
    /// Why the job failed.
    pub error: Option<String>,
    /// Partitions before this one are finished.
    pub partition: usize,
    /// In `partition`, keys up to this one (inclusive) are finished.
    pub last_key: Option<Bytes>,
    pub keys_scanned: u64,
    pub rows_scored: u64,
    pub rows_failed: u64,
    /// The first [`MAX_FAILURES`] failed keys with their reason.
    pub failures: Vec<(Bytes, String)>,
    /// Unix ms.
    pub started_ms: u64,
    pub finished_ms: u64,
    /// The model version the job scores with (`None` for a router).
    pub version: Option<u64>,
    /// Milliseconds spent running before the current run of the job (rates survive restarts).
    pub active_ms: u64,
}

impl Progress {
    pub fn new(started_ms: u64) -> Progress {
        Progress {
            state: State::Running,
            error: None,
            partition: 0,
            last_key: None,
            keys_scanned: 0,
            rows_scored: 0,
            rows_failed: 0,
            failures: Vec::new(),
            started_ms,
            finished_ms: 0,
            version: None,
            active_ms: 0,
        }
    }

    fn fail_key(&mut self, key: &Bytes, reason: String) {
        self.rows_failed += 1;
        if self.failures.len() < MAX_FAILURES {
            self.failures.push((key.clone(), reason));
        }
    }
}

/// A job: its definition, its progress (shared by the loop and the commands that read it),
/// and its cancel flag.
pub struct Job {
    pub name: Bytes,
    pub spec: ScoreSpec,
    pub progress: Mutex<Progress>,
    cancel: Arc<AtomicBool>,
    /// When the loop (re)started, for the rate.
    run_started: Mutex<Option<Instant>>,
}

/// A job's figures at one moment, for AI.JOB GET and progress messages.
pub struct Snapshot {
    pub progress: Progress,
    pub rows_per_sec: f64,
    /// Estimated milliseconds left (`None` until it can be estimated, or once finished).
    pub eta_ms: Option<u64>,
}

impl Job {
    pub fn new(name: Bytes, spec: ScoreSpec, progress: Progress) -> Job {
        Job {
            name,
            spec,
            progress: Mutex::new(progress),
            cancel: Arc::new(AtomicBool::new(false)),
            run_started: Mutex::new(None),
        }
    }

    /// Asks the loop to stop after the batch in hand; the job is marked cancelled at once.
    pub fn cancel(&self, now_ms: u64) -> bool {
        let mut p = self.progress.lock();
        if p.state != State::Running {
            return false;
        }
        self.cancel.store(true, Ordering::Relaxed);
        p.state = State::Cancelled;
        p.finished_ms = now_ms;
        p.active_ms += self.active_now();
        true
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn active_now(&self) -> u64 {
        self.run_started
            .lock()
            .map_or(0, |s| s.elapsed().as_millis() as u64)
    }

    pub fn snapshot(&self, partitions: usize) -> Snapshot {
        let progress = self.progress.lock().clone();
        let running = progress.state == State::Running;
        let active_ms = progress.active_ms + if running { self.active_now() } else { 0 };
        let rows = progress.rows_scored + progress.rows_failed;
        let rows_per_sec = if active_ms > 0 {
            rows as f64 * 1000.0 / active_ms as f64
        } else {
            0.0
        };
        // Partitions hold about as many keys each: what is left goes at the rate so far.
        let eta_ms = (running && progress.partition > 0).then(|| {
            let done = progress.partition as f64;
            let left = partitions.saturating_sub(progress.partition) as f64;
            (active_ms as f64 * left / done) as u64
        });
        Snapshot {
            progress,
            rows_per_sec,
            eta_ms,
        }
    }
}

/// A batch's run in flight.
pub type Pending = Pin<Box<dyn Future<Output = Result<Vec<Tensor>, String>> + Send>>;

/// Keys with the reason each could not be scored.
pub type KeyFailures = [(Bytes, String)];

/// What the loop needs from where the keys live.
pub trait ScoreHost {
    /// Partitions of the keyspace (they never change while a job runs or across restarts).
    fn partitions(&self) -> usize;
    /// Keys of `partition` that match the job's pattern, sorted, after `after` only.
    fn list(&self, partition: usize, after: Option<&[u8]>) -> Vec<Bytes>;
    /// Reads `keys` into the batch (hash rows through [`BatchBuilder::hash_row`], tensors
    /// through [`BatchBuilder::push`]). Returns the keys that cannot be scored with the
    /// reason, and how many keys went meanwhile.
    fn read(&self, keys: &[Bytes], into: &mut BatchBuilder) -> (Vec<(Bytes, String)>, u64);
    /// The CONST tensors, read when the loop starts.
    fn consts(&self) -> Result<Vec<Arc<Tensor>>, String>;
    /// The model's row input: its type (hash rows are parsed as this when the definition
    /// names no type) and its dimensions after the first (-1 where any size goes).
    fn row_input(&self) -> (DType, Vec<i64>);
    /// Starts a batch's run (the rows, then the CONST tensors); `first_key` is the batch's
    /// first key (a STICKY router routes by it).
    fn submit(&self, first_key: &Bytes, inputs: Vec<Arc<Tensor>>) -> Result<Pending, String>;
    /// Writes predictions (`keys[i]` gets `preds[i]`), then, with the writes still held,
    /// lets `commit` move the checkpoint (told which keys could not be written, and why),
    /// and makes both durable together.
    fn write(
        &self,
        job: &Job,
        keys: &[Bytes],
        preds: Vec<Prediction>,
        commit: &mut dyn FnMut(&KeyFailures),
    );
    /// Online requests seen so far on the model's queue (a LOW job yields when it grows).
    fn online_arrivals(&self) -> u64;
    /// Tells subscribers how the job is going (every second, and when it ends).
    fn publish(&self, job: &Job);
}

/// Runs a future to completion on this thread (the job's own thread, outside any runtime).
pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// While online traffic was seen this recently, a LOW job runs small batches.
const ONLINE_QUIET: Duration = Duration::from_millis(250);
/// A LOW job's batch, while online traffic is there, should hold a worker about this long.
const LOW_RUN_BUDGET: Duration = Duration::from_micros(30);

/// One batch on its way: its keys, the checkpoint once it is written, and its run.
struct InFlight {
    batch: super::rows::Batch,
    /// Keys that failed to parse, counted when the batch commits.
    failed: Vec<(Bytes, String)>,
    /// Keys gone meanwhile: scanned, neither scored nor failed.
    gone: u64,
    checkpoint: (usize, Bytes),
    run: Option<Pending>,
    started: Instant,
}

/// Runs `job` from its checkpoint until it is done, cancelled or fails.
pub fn run(job: &Job, host: &(dyn ScoreHost + Sync)) {
    *job.run_started.lock() = Some(Instant::now());
    let result = run_inner(job, host);
    let mut p = job.progress.lock();
    if p.state == State::Running {
        match result {
            Ok(()) => p.state = State::Done,
            Err(e) => {
                p.state = State::Failed;
                p.error = Some(e);
            }
        }
        p.finished_ms = crate::clock::now_ms();
        p.active_ms += job.active_now();
    }
    *job.run_started.lock() = None;
    drop(p);
    host.publish(job);
}

fn run_inner(job: &Job, host: &(dyn ScoreHost + Sync)) -> Result<(), String> {
    // A LOW job reads on its own thread; a NORMAL one uses every core for big batches.
    let helpers = match job.spec.priority {
        Priority::Low => 0,
        Priority::Normal => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)) - 1,
    };
    std::thread::scope(|scope| {
        let readers = Readers::start(scope, host, helpers);
        run_loop(job, host, &readers)
    })
}

fn run_loop<'j>(
    job: &'j Job,
    host: &(dyn ScoreHost + Sync),
    readers: &Readers<'j>,
) -> Result<(), String> {
    let spec = &job.spec;
    let consts = host.consts()?;
    let (model_type, dims) = host.row_input();
    let (fields, dtype, row_shape) = match &spec.input {
        InputSpec::Hash { fields, dtype } => (&fields[..], dtype.unwrap_or(model_type), None),
        InputSpec::Tensor => (&[][..], model_type, Some((model_type, dims))),
    };
    let partitions = host.partitions();
    let (mut partition, mut after, mut taken) = {
        let p = job.progress.lock();
        (p.partition, p.last_key.clone(), p.keys_scanned)
    };
    // Keys listed but not yet batched, with their partition.
    let mut listed: std::collections::VecDeque<(usize, Bytes)> = Default::default();
    let mut in_flight: Option<InFlight> = None;
    let mut tiles: Vec<(usize, Vec<Arc<Tensor>>)> = Vec::new();
    let mut last_publish = Instant::now();
    let mut pace = Pace::new(spec, host.online_arrivals());
    let mut run_failures = RunFailures::default();
    // When this batch's work began (listing, reading, running, writing).
    let mut job_started = Instant::now();
    loop {
        if job.is_cancelled() {
            return Ok(());
        }
        let batch_rows = pace.batch_rows(host.online_arrivals());
        let limit_left = match spec.limit {
            0 => u64::MAX,
            l => l.saturating_sub(taken),
        };
        let want = (batch_rows as u64).min(limit_left) as usize;
        // List keys until a batch's worth is in hand (or the keyspace is exhausted).
        while listed.len() < want && partition < partitions {
            let keys = host.list(partition, after.as_deref());
            listed.extend(keys.into_iter().map(|k| (partition, k)));
            partition += 1;
            after = None;
        }
        let take = listed.len().min(want);
        let next = if take == 0 {
            None
        } else {
            let keys: Vec<(usize, Bytes)> = listed.drain(..take).collect();
            taken += keys.len() as u64;
            let mut builder = BatchBuilder::new(fields, dtype, take, usize::MAX);
            if let Some((t, d)) = &row_shape {
                builder.expect_rows(*t, d.clone());
            }
            let mut f = prepare(host, &keys, builder, readers)?;
            if f.batch.keys.is_empty() {
                f.run = None;
            } else {
                let n = f.batch.row_count();
                let mut inputs = vec![Arc::new(f.batch.input.clone())];
                inputs.extend(const_inputs(&consts, n, &mut tiles));
                f.started = Instant::now();
                f.run = Some(host.submit(&f.batch.keys[0], inputs)?);
            }
            Some(f)
        };
        // The batch in flight finishes after the next one is queued: the host reads and
        // parses while the model runs.
        if let Some(f) = in_flight.take() {
            run_failures.record(finish(job, host, f)?)?;
        }
        match next {
            None => return Ok(()),
            Some(f) if f.run.is_none() || (spec.priority == Priority::Low && pace.online()) => {
                // While online requests arrive, a LOW job waits for each batch, to size the
                // next one by its time and to never have two runs queued ahead of them.
                // Without them it keeps one batch running while it reads the next, as NORMAL.
                let (rows, started) = (f.batch.row_count(), f.started);
                run_failures.record(finish(job, host, f)?)?;
                if rows > 0 {
                    pace.ran(rows, started.elapsed());
                }
                pace.yield_to_online(job_started.elapsed());
                job_started = Instant::now();
            }
            Some(f) => in_flight = Some(f),
        }
        if last_publish.elapsed() >= Duration::from_secs(1) {
            host.publish(job);
            last_publish = Instant::now();
        }
    }
}

/// Sizes a LOW job's batches: the definition's size while no online request is seen, and
/// while online traffic is there, a size whose run holds a worker about [`LOW_RUN_BUDGET`]
/// (halved when a batch took longer, grown when it took less than half).
struct Pace {
    low: bool,
    full: usize,
    rows: usize,
    arrivals: u64,
    online_seen: Option<Instant>,
}

impl Pace {
    fn new(spec: &ScoreSpec, arrivals: u64) -> Pace {
        Pace {
            low: spec.priority == Priority::Low,
            full: spec.batch,
            rows: spec.batch,
            arrivals,
            online_seen: None,
        }
    }

    fn online(&self) -> bool {
        self.online_seen.is_some_and(|t| t.elapsed() < ONLINE_QUIET)
    }

    fn batch_rows(&mut self, arrivals: u64) -> usize {
        if !self.low {
            return self.full;
        }
        if arrivals != self.arrivals {
            self.arrivals = arrivals;
            self.online_seen = Some(Instant::now());
        }
        if self.online() {
            self.rows
        } else {
            self.full
        }
    }

    /// While online traffic is there, a LOW job rests as long as its last batch took: at most
    /// half a core, and the model's workers and the event loops find the CPU free.
    fn yield_to_online(&self, worked: Duration) {
        if self.low && self.online() {
            std::thread::sleep((worked * 4).min(Duration::from_millis(20)));
        }
    }

    fn ran(&mut self, rows: usize, took: Duration) {
        if !self.online() {
            return;
        }
        let rows = rows.max(1);
        self.rows = if took > LOW_RUN_BUDGET {
            let fit = rows as f64 * LOW_RUN_BUDGET.as_secs_f64() / took.as_secs_f64();
            (fit as usize).clamp(1, rows)
        } else if took < LOW_RUN_BUDGET / 2 {
            (rows + rows / 2 + 1).min(self.full)
        } else {
            rows
        };
    }
}

/// A reader thread is given a part of a batch from this many keys.
const MIN_KEYS_PER_READER: usize = 64;

/// A part of a batch for a helper: its place in the batch, its keys and the builder to fill.
type Part<'j> = (usize, Vec<Bytes>, BatchBuilder<'j>);
/// A helper's filled part: its place, the builder, the failed keys and how many went.
type ReadPart<'j> = (usize, BatchBuilder<'j>, (Vec<(Bytes, String)>, u64));

/// Threads that read parts of each big batch beside the job's own thread, started once for the
/// job: a thread started per batch spent more in the kernel (its stack mapped, faulted in and
/// unmapped, with the TLB shootdowns that brings) than on reading some batches.
struct Readers<'j> {
    work: Vec<std::sync::mpsc::Sender<Part<'j>>>,
    done: std::sync::mpsc::Receiver<ReadPart<'j>>,
}

impl<'j> Readers<'j> {
    fn start<'s>(
        scope: &'s std::thread::Scope<'s, 'j>,
        host: &'j (dyn ScoreHost + Sync),
        helpers: usize,
    ) -> Readers<'j> {
        let (done_tx, done) = std::sync::mpsc::channel();
        let work = (0..helpers)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel::<Part<'j>>();
                let done_tx = done_tx.clone();
                scope.spawn(move || {
                    // Ends when the job's loop ends and drops the senders.
                    for (at, keys, mut builder) in rx {
                        let read = host.read(&keys, &mut builder);
                        if done_tx.send((at, builder, read)).is_err() {
                            return;
                        }
                    }
                });
                tx
            })
            .collect();
        Readers { work, done }
    }
}

/// Reads and parses a batch's keys: the batch (of the keys that could be used), the keys
/// that failed, how many went meanwhile, and the checkpoint after the last key.
fn prepare<'j>(
    host: &(dyn ScoreHost + Sync),
    keys: &[(usize, Bytes)],
    mut builder: BatchBuilder<'j>,
    readers: &Readers<'j>,
) -> Result<InFlight, String> {
    let names: Vec<Bytes> = keys.iter().map(|(_, k)| k.clone()).collect();
    let (failed, gone) = if readers.work.is_empty() || names.len() < 2 * MIN_KEYS_PER_READER {
        host.read(&names, &mut builder)
    } else {
        // Reading and parsing is most of a job's work: big batches are read by several
        // threads, each into a builder of its own, appended in key order.
        let per = names
            .len()
            .div_ceil(readers.work.len() + 1)
            .max(MIN_KEYS_PER_READER);
        let mut sent = 0;
        for (i, (chunk, tx)) in names.chunks(per).skip(1).zip(&readers.work).enumerate() {
            tx.send((i, chunk.to_vec(), builder.sibling(chunk.len())))
                .map_err(|_| "ERR a reader thread of the job stopped".to_string())?;
            sent += 1;
        }
        let (mut failed, mut gone) = host.read(&names[..per.min(names.len())], &mut builder);
        let mut parts: Vec<ReadPart<'j>> = (0..sent)
            .map(|_| readers.done.recv())
            .collect::<Result<_, _>>()
            .map_err(|_| "ERR a reader thread of the job stopped".to_string())?;
        parts.sort_by_key(|(at, _, _)| *at);
        for (_, b, (f, g)) in parts {
            builder.append(b);
            failed.extend(f);
            gone += g;
        }
        (failed, gone)
    };
    let batch = builder.finish()?.unwrap_or_else(|| super::rows::Batch {
        keys: Vec::new(),
        rows: Vec::new(),
        input: Tensor::from_raw(DType::Float, &[0], &[]),
    });
    Ok(InFlight {
        batch,
        failed,
        gone,
        checkpoint: keys.last().expect("a batch has keys").clone(),
        run: None,
        started: Instant::now(),
    })
}

/// The CONST inputs for a batch of `n` rows (tiled once per batch size).
fn const_inputs(
    consts: &[Arc<Tensor>],
    n: usize,
    tiles: &mut Vec<(usize, Vec<Arc<Tensor>>)>,
) -> Vec<Arc<Tensor>> {
    if consts.is_empty() {
        return Vec::new();
    }
    if let Some((_, t)) = tiles.iter().find(|(m, _)| *m == n) {
        return t.clone();
    }
    let t: Vec<Arc<Tensor>> = consts
        .iter()
        .map(|c| {
            if c.shape().first() == Some(&n) {
                Arc::clone(c)
            } else {
                Arc::new(tile(c, n))
            }
        })
        .collect();
    if tiles.len() >= 4 {
        tiles.remove(0);
    }
    tiles.push((n, t.clone()));
    t
}

/// Finishes a batch; returns the run's error when the model failed it (its keys are then
/// counted as failed, and the job goes on).
fn finish(job: &Job, host: &dyn ScoreHost, mut f: InFlight) -> Result<Option<String>, String> {
    let outputs = f.run.take().map(block_on);
    finish_with(job, host, f, outputs)
}

/// Writes a finished batch's predictions and moves the checkpoint past its keys; rows that
/// did not parse, and the rows of a run the model failed, are counted and listed.
fn finish_with(
    job: &Job,
    host: &dyn ScoreHost,
    f: InFlight,
    outputs: Option<Result<Vec<Tensor>, String>>,
) -> Result<Option<String>, String> {
    let InFlight {
        mut batch,
        mut failed,
        gone,
        checkpoint: (partition, last),
        ..
    } = f;
    let outcome = match outputs {
        None => Ok(Vec::new()),
        Some(Ok(outputs)) => predictions(&batch, &outputs, &job.spec.output),
        Some(Err(e)) => Err(e),
    };
    let (preds, run_error) = match outcome {
        Ok(p) => (p, None),
        Err(e) => {
            failed.extend(
                batch
                    .keys
                    .drain(..)
                    .map(|k| (k, format!("model run failed: {e}"))),
            );
            (Vec::new(), Some(e))
        }
    };
    let scored = batch.keys.len() as u64;
    let mut commit = |unwritten: &[(Bytes, String)]| {
        let mut p = job.progress.lock();
        p.partition = partition;
        p.last_key = Some(last.clone());
        p.keys_scanned += scored + failed.len() as u64 + gone;
        p.rows_scored += scored - unwritten.len() as u64;
        for (k, e) in failed.iter().chain(unwritten) {
            p.fail_key(k, e.clone());
        }
    };
    host.write(job, &batch.keys, preds, &mut commit);
    Ok(run_error)
}

/// Batches the model fails one after the other before the job gives up: the model is wrong
/// for the rows, or gone.
const MAX_FAILED_RUNS: usize = 3;

/// Counts failed runs in a row.
#[derive(Default)]
struct RunFailures(usize);

impl RunFailures {
    fn record(&mut self, outcome: Option<String>) -> Result<(), String> {
        match outcome {
            None => self.0 = 0,
            Some(e) => {
                self.0 += 1;
                if self.0 >= MAX_FAILED_RUNS {
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Progress {
    /// The progress as words (`STATE running PARTITION 3 …`), failures from `failures_from`
    /// on: how a checkpoint is logged and saved. [`Progress::apply_words`] reads them back.
    pub fn to_words(&self, failures_from: usize) -> Vec<Bytes> {
        let num = |n: u64| Bytes::from(n.to_string());
        let mut w: Vec<Bytes> = vec![
            "STATE".into(),
            self.state.name().into(),
            "PARTITION".into(),
            num(self.partition as u64),
        ];
        if let Some(k) = &self.last_key {
            w.extend(["LASTKEY".into(), k.clone()]);
        }
        for (name, v) in [
            ("SCANNED", self.keys_scanned),
            ("SCORED", self.rows_scored),
            ("FAILED", self.rows_failed),
            ("STARTED", self.started_ms),
            ("FINISHED", self.finished_ms),
            ("ACTIVE", self.active_ms),
        ] {
            w.extend([Bytes::from_static(name.as_bytes()), num(v)]);
        }
        if let Some(v) = self.version {
            w.extend(["VERSION".into(), num(v)]);
        }
        if let Some(e) = &self.error {
            w.extend(["ERROR".into(), Bytes::from(e.clone())]);
        }
        for (k, reason) in self.failures.iter().skip(failures_from) {
            w.extend(["FAILURE".into(), k.clone(), Bytes::from(reason.clone())]);
        }
        w
    }

    /// Applies words written by [`Progress::to_words`]: the figures replace, the failures
    /// add (up to [`MAX_FAILURES`]).
    pub fn apply_words(&mut self, words: &[Bytes]) -> Result<(), String> {
        let mut it = words.iter();
        let bad = |what: &str| format!("ERR bad job progress: {what}");
        while let Some(name) = it.next() {
            let mut value = || it.next().ok_or_else(|| bad("a field without its value"));
            let number =
                |v: &Bytes| crate::numbers::parse_u64(v).ok_or_else(|| bad("not a number"));
            match &name[..] {
                b"STATE" => {
                    let v = value()?;
                    self.state = State::parse(&String::from_utf8_lossy(v))
                        .ok_or_else(|| bad("unknown state"))?;
                }
                b"PARTITION" => self.partition = number(value()?)? as usize,
                b"LASTKEY" => self.last_key = Some(value()?.clone()),
                b"SCANNED" => self.keys_scanned = number(value()?)?,
                b"SCORED" => self.rows_scored = number(value()?)?,
                b"FAILED" => self.rows_failed = number(value()?)?,
                b"STARTED" => self.started_ms = number(value()?)?,
                b"FINISHED" => self.finished_ms = number(value()?)?,
                b"ACTIVE" => self.active_ms = number(value()?)?,
                b"VERSION" => self.version = Some(number(value()?)?),
                b"ERROR" => self.error = Some(String::from_utf8_lossy(value()?).into_owned()),
                b"FAILURE" => {
                    let key = value()?.clone();
                    let reason = String::from_utf8_lossy(value()?).into_owned();
                    if self.failures.len() < MAX_FAILURES {
                        self.failures.push((key, reason));
                    }
                }
                _ => return Err(bad("unknown field")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_words_round_trip() {
        let mut p = Progress::new(1000);
        p.partition = 7;
        p.last_key = Some(Bytes::from_static(b"k\x00\xff"));
        p.keys_scanned = 12;
        p.rows_scored = 10;
        p.version = Some(3);
        p.fail_key(&Bytes::from_static(b"a"), "field 'x' is missing".into());
        p.fail_key(&Bytes::from_static(b"b"), "other".into());
        let mut q = Progress::new(0);
        q.apply_words(&p.to_words(0)).unwrap();
        assert_eq!(format!("{q:?}"), format!("{p:?}"));
        // A checkpoint carries only the failures added since the last one.
        let w = p.to_words(1);
        assert_eq!(w.iter().filter(|x| &x[..] == b"FAILURE").count(), 1);
        assert!(q.apply_words(&[Bytes::from_static(b"STATE")]).is_err());
    }
}
