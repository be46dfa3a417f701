//! The AI engine: ONNX Runtime loading, stored models, and per-device run queues served by
//! worker threads, with RedisAI's dynamic batching and a watchdog that terminates runaway runs.
//! Knows nothing of sockets or RESP.

pub mod backend;
pub mod completion;
pub mod histogram;
pub mod model;
pub mod onnx_proto;
pub mod versions;

use crate::tensor::Tensor;
use backend::OnnxBackend;
use model::{Device, Model, SessionOptions};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RedisAI's load-time settings (also changeable through AI.CONFIG where RedisAI allows it).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub threads_per_queue: usize,
    pub intra_op_parallelism: usize,
    pub inter_op_parallelism: usize,
    /// Runs past this are terminated (the kill switch), in ms; 0 disables it.
    pub model_execution_timeout_ms: u64,
    pub backend_memory_limit_mb: u64,
    pub model_chunk_size: usize,
    pub backends_path: Option<PathBuf>,
    /// An explicit ONNX Runtime library (config `onnxruntime-library`).
    pub library: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            threads_per_queue: 1,
            intra_op_parallelism: 1,
            inter_op_parallelism: 0,
            model_execution_timeout_ms: 5000,
            backend_memory_limit_mb: 0,
            model_chunk_size: 511 * 1024 * 1024,
            backends_path: None,
            library: None,
        }
    }
}

/// What a run produces: output tensors, or an error line for the client.
pub type RunResult = Result<Vec<Tensor>, String>;

/// One queued request.
pub struct RunJob {
    pub model: Arc<Model>,
    pub inputs: Vec<Arc<Tensor>>,
    /// Set by the client side when it stopped waiting (TIMEOUT): the job is skipped.
    pub cancelled: Arc<AtomicBool>,
    pub reply: completion::Sender<RunResult>,
    /// Run on the worker once the result is delivered (a router's shadow starts from here,
    /// so the event loop that answers the client does no work for it).
    then: Option<Then>,
    /// When it was queued: MINBATCHTIMEOUT counts from the oldest job of a batch.
    enqueued: Instant,
    /// A batch scoring job's run: taken only when no online request of the queue is ready.
    background: bool,
}

/// What a worker runs after delivering a job's result, with a copy of it.
pub type Then = Box<dyn FnOnce(&RunResult) + Send>;

/// The error a queued run gets when its model left the keyspace before the run started.
pub const ERR_MODEL_GONE: &str =
    "ERR model was deleted or replaced while the run was queued; the run was dropped";

impl RunJob {
    /// Rows this request adds to a batch (dimension 0 of its first input).
    fn rows(&self) -> usize {
        self.inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(1)
    }

    /// Whether the job is no longer wanted: its client timed out or went away, or its model
    /// is no longer held by any key.
    fn dead(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
            || self.reply.receiver_gone()
            || self.model.is_retired()
    }

    /// Drops a dead job; a client still waiting (its model went away) is told why.
    fn discard(self) {
        if !self.cancelled.load(Ordering::Relaxed) && !self.reply.receiver_gone() {
            self.finish(Err(ERR_MODEL_GONE.into()));
        }
    }

    /// Delivers the result, then runs the job's hook with a copy of it.
    fn finish(self, result: RunResult) {
        match self.then {
            None => self.reply.send(result),
            Some(then) => {
                let copy = result.clone();
                self.reply.send(result);
                then(&copy);
            }
        }
    }

    /// Whether `other` can share a batch with this job: same model, same input types and
    /// dimensions beyond the first.
    fn batchable_with(&self, other: &RunJob) -> bool {
        Arc::ptr_eq(&self.model, &other.model)
            && self.inputs.len() == other.inputs.len()
            && self.inputs.iter().zip(&other.inputs).all(|(a, b)| {
                a.dtype() == b.dtype()
                    && a.shape().len() == b.shape().len()
                    && !a.shape().is_empty()
                    && a.shape()[1..] == b.shape()[1..]
            })
    }
}

/// A run in flight: (id, start, its run options for terminating it, terminated yet).
/// A run in flight: its id, start, run options (to terminate it), whether the watchdog
/// terminated it, its model and the requests of its batch.
type InFlight = (
    u64,
    Instant,
    Arc<ort::session::RunOptions>,
    bool,
    Arc<Model>,
    usize,
);

/// A device's queue and the runs in flight on it.
struct Queue {
    jobs: Mutex<VecDeque<RunJob>>,
    ready: Condvar,
    /// Counts the times workers were told of new jobs, so that a worker spinning after a run
    /// sees news without being woken.
    told: AtomicU64,
    stop: AtomicBool,
    /// Runs in flight with their start, so the watchdog can terminate overdue ones.
    running: Mutex<Vec<InFlight>>,
    /// Online (not background) requests queued so far: a background job watches it to see
    /// whether online traffic is there to yield to.
    foreground_arrivals: AtomicU64,
}

impl Queue {
    /// Tells the workers about new jobs (or that they are to stop).
    fn tell(&self) {
        self.told.fetch_add(1, Ordering::Release);
        self.ready.notify_all();
    }
}

/// How long a worker that finds its queue empty after a run watches for news before it sleeps.
/// A sleeping thread takes tens of microseconds to wake on a virtual machine, more than a small
/// model's whole run, and much of that is paid by the thread that wakes it. The next job (a
/// lone client's next request, the next batch of many clients) usually comes within this
/// time and is taken without a wake-up. The watch yields the core between bursts, so threads
/// that need the core get it.
const WORKER_SPIN: Duration = Duration::from_micros(50);

/// Engine-wide statistics for INFO.
#[derive(Default)]
pub struct EngineStats {
    pub runs: AtomicU64,
    pub batches: AtomicU64,
    pub terminated: AtomicU64,
}

pub struct Engine {
    pub config: RwLock<EngineConfig>,
    backend: Mutex<Option<Arc<OnnxBackend>>>,
    /// The last backend load error, reported by MODELSTORE until a load succeeds.
    backend_error: Mutex<Option<String>>,
    /// One queue per device string as RedisAI keeps them (`CPU`, `CPU:1`, `GPU:0`…).
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    next_run_id: AtomicU64,
    pub stats: EngineStats,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Arc<Engine> {
        let engine = Arc::new(Engine {
            config: RwLock::new(config),
            backend: Mutex::new(None),
            backend_error: Mutex::new(None),
            queues: Mutex::new(HashMap::new()),
            next_run_id: AtomicU64::new(1),
            stats: EngineStats::default(),
        });
        let weak = Arc::downgrade(&engine);
        std::thread::Builder::new()
            .name("locus-ai-watchdog".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.watchdog_tick();
                    drop(engine);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .expect("watchdog thread");
        engine
    }

    /// The loaded ONNX backend, loading it (and provisioning the library) on first use.
    /// Blocking: call off the I/O threads.
    pub fn onnx(&self, explicit: Option<PathBuf>) -> Result<Arc<OnnxBackend>, String> {
        let mut slot = self.backend.lock();
        if let Some(b) = slot.as_ref() {
            if explicit.as_ref().is_some_and(|p| *p != b.path) {
                return Err("ERR ONNX backend already loaded".into());
            }
            return Ok(b.clone());
        }
        let explicit = explicit
            .or_else(|| self.config.read().library.clone())
            .or_else(|| {
                self.config
                    .read()
                    .backends_path
                    .clone()
                    .map(|d| d.join("libonnxruntime.so"))
                    .filter(|p| p.exists())
            });
        let (path, origin) = backend::resolve(explicit.as_deref()).map_err(|e| self.fail(e))?;
        let b = Arc::new(backend::load(&path).map_err(|e| self.fail(e))?);
        tracing::info!(
            "ONNX Runtime {} loaded from {} ({origin})",
            b.version,
            b.path.display()
        );
        *slot = Some(b.clone());
        *self.backend_error.lock() = None;
        Ok(b)
    }

    fn fail(&self, e: String) -> String {
        tracing::warn!("ONNX backend unavailable: {e}");
        *self.backend_error.lock() = Some(e.clone());
        format!("ERR Could not load backend: {e}")
    }

    /// The backend if it is loaded (no loading).
    pub fn loaded_backend(&self) -> Option<Arc<OnnxBackend>> {
        self.backend.lock().clone()
    }

    pub fn session_options(&self) -> SessionOptions {
        let c = self.config.read();
        SessionOptions {
            intra_op: c.intra_op_parallelism,
            inter_op: c.inter_op_parallelism,
            memory_limit_mb: c.backend_memory_limit_mb,
        }
    }

    /// The queue named `name` (a device string), starting its workers on first use.
    fn queue(self: &Arc<Self>, name: &str, device: &Device) -> Arc<Queue> {
        let mut queues = self.queues.lock();
        if let Some(q) = queues.get(name) {
            return q.clone();
        }
        let q = Arc::new(Queue {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            told: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            running: Mutex::new(Vec::new()),
            foreground_arrivals: AtomicU64::new(0),
        });
        let threads = self.config.read().threads_per_queue.max(1);
        for i in 0..threads {
            let (engine, queue) = (Arc::downgrade(self), q.clone());
            let label: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_lowercase();
            let thread = format!("locus-ai-{label}-{i}");
            tracing::debug!("run queue {name} ({}) worker {i} starting", device.name());
            std::thread::Builder::new()
                .name(thread)
                .spawn(move || worker(engine, queue))
                .expect("worker thread");
        }
        queues.insert(name.to_string(), q.clone());
        q
    }

    /// Queues a run and returns the receiver of its result.
    pub fn submit(
        self: &Arc<Self>,
        model: Arc<Model>,
        inputs: Vec<Arc<Tensor>>,
        cancelled: Arc<AtomicBool>,
    ) -> completion::Receiver<RunResult> {
        let (tx, rx) = completion::channel(loop_submits());
        self.enqueue(model, inputs, cancelled, tx, None, false);
        rx
    }

    /// Queues a batch scoring job's run: a worker takes it only when no online request of the
    /// queue is ready to run, so a job in the background delays an online request by at most
    /// the one run a worker may already have started.
    pub fn submit_background(
        self: &Arc<Self>,
        model: Arc<Model>,
        inputs: Vec<Arc<Tensor>>,
        cancelled: Arc<AtomicBool>,
    ) -> completion::Receiver<RunResult> {
        let (tx, rx) = completion::channel(None);
        self.enqueue(model, inputs, cancelled, tx, None, true);
        rx
    }

    /// Online requests queued so far for `model`'s queue (see [`Engine::submit_background`]).
    pub fn foreground_arrivals(self: &Arc<Self>, model: &Model) -> u64 {
        self.queue(&model.spec.queue_name(), &model.spec.device)
            .foreground_arrivals
            .load(Ordering::Relaxed)
    }

    /// Queues a run whose worker calls `then` with (a copy of) the result right after
    /// delivering it.
    pub fn submit_then(
        self: &Arc<Self>,
        model: Arc<Model>,
        inputs: Vec<Arc<Tensor>>,
        cancelled: Arc<AtomicBool>,
        then: Then,
    ) -> completion::Receiver<RunResult> {
        let (tx, rx) = completion::channel(loop_submits());
        self.enqueue(model, inputs, cancelled, tx, Some(then), false);
        rx
    }

    /// Queues a run nobody waits for (a router's shadow, queued by the worker that ran the
    /// primary, which usually runs it next); `then` gets its result on the worker. False when
    /// the queue already holds [`DETACHED_MAX_QUEUED`] jobs: a shadow is skipped rather than
    /// piled up under load.
    pub fn submit_detached(
        self: &Arc<Self>,
        model: Arc<Model>,
        inputs: Vec<Arc<Tensor>>,
        then: Then,
    ) -> bool {
        let q = self.queue(&model.spec.queue_name(), &model.spec.device);
        if q.jobs.lock().len() >= DETACHED_MAX_QUEUED {
            return false;
        }
        let cancelled = Arc::new(AtomicBool::new(false));
        self.enqueue(
            model,
            inputs,
            cancelled,
            completion::detached(),
            Some(then),
            false,
        );
        true
    }

    fn enqueue(
        self: &Arc<Self>,
        model: Arc<Model>,
        inputs: Vec<Arc<Tensor>>,
        cancelled: Arc<AtomicBool>,
        tx: completion::Sender<RunResult>,
        then: Option<Then>,
        background: bool,
    ) {
        let q = self.queue(&model.spec.queue_name(), &model.spec.device);
        if !background {
            q.foreground_arrivals.fetch_add(1, Ordering::Relaxed);
        }
        let batchsize = model.spec.batchsize;
        let queued = {
            let mut jobs = q.jobs.lock();
            jobs.push_back(RunJob {
                model,
                inputs,
                cancelled,
                reply: tx,
                then,
                enqueued: Instant::now(),
                background,
            });
            jobs.len()
        };
        // An event loop that is still reading requests tells the workers about a batching
        // model's jobs when it goes idle (or once a full batch is queued): the workers then
        // wake once for everything that arrived together and run it as one batch.
        if batchsize == 0 || queued >= batchsize || !defer_notify(&q) {
            // Every worker may be waiting to fill a batch, so all hear of the new job.
            q.tell();
        }
    }

    /// Jobs waiting, per queue (INFO), not counting jobs that will be dropped unrun.
    pub fn queue_lengths(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .queues
            .lock()
            .iter()
            .map(|(d, q)| {
                (
                    d.clone(),
                    q.jobs.lock().iter().filter(|j| !j.dead()).count(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// Requests per model (keyed by the model's address) waiting in a queue and running now:
    /// the metrics' queued and in-flight gauges, counted at scrape time so that the run path
    /// pays nothing for them.
    pub fn in_flight(&self) -> HashMap<usize, (usize, usize)> {
        let mut out: HashMap<usize, (usize, usize)> = HashMap::new();
        let queues: Vec<Arc<Queue>> = self.queues.lock().values().cloned().collect();
        for q in queues {
            for j in q.jobs.lock().iter().filter(|j| !j.dead()) {
                out.entry(Arc::as_ptr(&j.model) as usize).or_default().0 += 1;
            }
            for (.., model, n) in q.running.lock().iter() {
                out.entry(Arc::as_ptr(model) as usize).or_default().1 += n;
            }
        }
        out
    }

    /// Drops queued jobs nobody wants any more (so they free their inputs even while their
    /// queue's workers wait for a batch to fill), and terminates runs that exceeded
    /// MODEL_EXECUTION_TIMEOUT.
    fn watchdog_tick(&self) {
        let queues: Vec<Arc<Queue>> = self.queues.lock().values().cloned().collect();
        for q in &queues {
            let dead = {
                let mut jobs = q.jobs.lock();
                if !jobs.iter().any(RunJob::dead) {
                    continue;
                }
                let (dead, live): (VecDeque<RunJob>, VecDeque<RunJob>) = std::mem::take(&mut *jobs)
                    .into_iter()
                    .partition(RunJob::dead);
                *jobs = live;
                dead
            };
            dead.into_iter().for_each(RunJob::discard);
        }
        let limit = self.config.read().model_execution_timeout_ms;
        if limit == 0 {
            return;
        }
        for q in self.queues.lock().values() {
            for (_, started, opts, terminated, ..) in q.running.lock().iter_mut() {
                if !*terminated
                    && started.elapsed() > Duration::from_millis(limit)
                    && opts.terminate().is_ok()
                {
                    *terminated = true;
                    self.stats.terminated.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for q in self.queues.lock().values() {
            q.stop.store(true, Ordering::Relaxed);
            q.tell();
        }
    }
}

/// What an event-loop thread keeps for the engine.
struct LoopState {
    /// Queues given jobs whose workers have not been told yet.
    untold: Vec<Arc<Queue>>,
    /// When the first untold job was queued.
    since: quanta::Instant,
    /// Where workers hand this loop's finished runs.
    relay: Arc<completion::Relay>,
    /// Runs submitted on this loop (their results are counted by the relay).
    submitted: u64,
    last_submit: quanta::Instant,
}

thread_local! {
    /// Set on event-loop threads (at their first idle moment); `None` elsewhere.
    static LOOP: std::cell::RefCell<Option<LoopState>> = const { std::cell::RefCell::new(None) };
}

/// Counts a run submitted on this event loop and returns the loop's relay (`None` elsewhere).
fn loop_submits() -> Option<Arc<completion::Relay>> {
    LOOP.with(|l| {
        l.borrow_mut().as_mut().map(|s| {
            s.submitted += 1;
            s.last_submit = crate::clock::instant();
            s.relay.clone()
        })
    })
}

/// Records that `q`'s workers are to be told later; false where this thread does not defer.
fn defer_notify(q: &Arc<Queue>) -> bool {
    LOOP.with(|l| match l.borrow_mut().as_mut() {
        Some(s) => {
            if s.untold.is_empty() {
                s.since = crate::clock::instant();
            }
            if !s.untold.iter().any(|x| Arc::ptr_eq(x, q)) {
                s.untold.push(q.clone());
            }
            true
        }
        None => false,
    })
}

fn tell_workers(queues: &mut Vec<Arc<Queue>>) {
    for q in queues.drain(..) {
        q.tell();
    }
}

/// How long a queued run may wait for its loop to go idle before its workers are told.
const OVERDUE: Duration = Duration::from_micros(500);

/// Called by an event loop about to wait for events (a runtime's park hook): wakes the
/// workers of the jobs it queued since it last went idle, then watches for results (see
/// [`LOOP_SPIN`]) until `arrivals` says a client sent something. The first call makes the
/// thread an event loop for the engine: it defers its notifications and gets a relay for
/// results.
pub fn event_loop_idle(arrivals: &dyn Fn() -> bool) {
    LOOP.with(|l| {
        let mut slot = l.borrow_mut();
        match slot.as_mut() {
            Some(s) => {
                tell_workers(&mut s.untold);
                await_results(s, arrivals);
            }
            None => {
                *slot = Some(LoopState {
                    untold: Vec::new(),
                    since: crate::clock::instant(),
                    relay: completion::Relay::start(),
                    submitted: 0,
                    last_submit: crate::clock::instant(),
                })
            }
        }
    })
}

/// How long after its last submission an event loop with model runs in flight watches for
/// their results instead of sleeping. Workers then hand results over without waking it (on a
/// virtual machine the waking thread pays much of a wake-up's cost), and a lone client's reply
/// goes out at once. The watch ends as soon as a result or a client's request arrives, and
/// yields the core between bursts; a long run costs the loop this much once.
const LOOP_SPIN: Duration = Duration::from_micros(100);

fn await_results(s: &LoopState, arrivals: &dyn Fn() -> bool) {
    let delivered = s.relay.delivered();
    if s.submitted == delivered {
        return;
    }
    let Some(left) =
        LOOP_SPIN.checked_sub(crate::clock::instant().saturating_duration_since(s.last_submit))
    else {
        return;
    };
    crate::clock::spin_until(left, || s.relay.delivered() != delivered || arrivals());
}

/// Whether this event loop has no model runs in flight and submitted none for `quiet` (true
/// off event loops). A loop serving models leaves the cores to their workers.
pub fn loop_models_quiet(quiet: Duration) -> bool {
    LOOP.with(|l| {
        l.borrow().as_ref().is_none_or(|s| {
            s.submitted == s.relay.delivered()
                && crate::clock::instant().saturating_duration_since(s.last_submit) >= quiet
        })
    })
}

/// Called by an event loop that keeps busy, with a recent clock reading: tells the workers
/// about jobs that have waited half a millisecond, so a loop that never goes idle delays runs
/// by at most that.
pub fn tell_overdue(now: quanta::Instant) {
    LOOP.with(|l| {
        if let Some(s) = l.borrow_mut().as_mut() {
            if !s.untold.is_empty() && now.saturating_duration_since(s.since) >= OVERDUE {
                tell_workers(&mut s.untold);
            }
        }
    })
}

/// Takes the first runnable batch from the queue: the first job whose model does not batch,
/// or the first group of compatible jobs (same model, same trailing dimensions) that is ready:
/// no MINBATCHSIZE, MINBATCHSIZE rows (or BATCHSIZE) queued, or MINBATCHTIMEOUT passed since
/// its oldest job was queued. Groups still waiting to fill are passed over, so they never hold
/// back other models' jobs behind them. Dead jobs met on the way are dropped. Otherwise returns
/// the earliest time a waiting group's MINBATCHTIMEOUT ends (`None`: no such time).
fn take_runnable(
    jobs: &mut VecDeque<RunJob>,
    now: Instant,
) -> Result<Vec<RunJob>, Option<Instant>> {
    // Online requests first; background jobs (batch scoring) when none is ready.
    match take_runnable_of(jobs, now, false) {
        Ok(batch) => Ok(batch),
        Err(until) if jobs.iter().any(|j| j.background) => take_runnable_of(jobs, now, true)
            .map_err(|u| match (until, u) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }),
        Err(until) => Err(until),
    }
}

/// [`take_runnable`] over the online jobs, or over the background ones.
fn take_runnable_of(
    jobs: &mut VecDeque<RunJob>,
    now: Instant,
    background: bool,
) -> Result<Vec<RunJob>, Option<Instant>> {
    let mut waiting: smallvec::SmallVec<[usize; 4]> = smallvec::SmallVec::new();
    let mut until: Option<Instant> = None;
    let mut i = 0;
    while i < jobs.len() {
        if jobs[i].dead() {
            jobs.remove(i).expect("index in range").discard();
            continue;
        }
        if jobs[i].background != background {
            i += 1;
            continue;
        }
        let spec = &jobs[i].model.spec;
        let (max, min, wait) = (spec.batchsize, spec.minbatchsize, spec.minbatchtimeout);
        if max == 0 {
            return Ok(vec![jobs.remove(i).expect("index in range")]);
        }
        if waiting.iter().any(|&l| jobs[l].batchable_with(&jobs[i])) {
            i += 1;
            continue;
        }
        let mut rows = jobs[i].rows();
        let mut members: smallvec::SmallVec<[usize; 32]> = smallvec::smallvec![i];
        let mut j = i + 1;
        while j < jobs.len() && rows < max {
            let other = &jobs[j];
            if !other.dead()
                && other.background == background
                && jobs[i].batchable_with(other)
                && rows + other.rows() <= max
            {
                rows += other.rows();
                members.push(j);
            }
            j += 1;
        }
        let deadline = (wait > 0).then(|| jobs[i].enqueued + Duration::from_millis(wait));
        if min == 0 || rows >= min || rows >= max || deadline.is_some_and(|d| now >= d) {
            let mut batch: Vec<RunJob> = members
                .iter()
                .rev()
                .map(|&m| jobs.remove(m).expect("index in range"))
                .collect();
            batch.reverse();
            return Ok(batch);
        }
        waiting.push(i);
        if let Some(d) = deadline {
            until = Some(until.map_or(d, |u| u.min(d)));
        }
        i += 1;
    }
    Err(until)
}

/// Waits for the next runnable batch (see [`take_runnable`]). With `spin` (after a run), an
/// empty queue is watched for [`WORKER_SPIN`] before the worker sleeps.
fn next_batch(queue: &Queue, spin: bool) -> Option<Vec<RunJob>> {
    let mut jobs = queue.jobs.lock();
    let mut spun = !spin;
    loop {
        if queue.stop.load(Ordering::Relaxed) {
            return None;
        }
        let until = match take_runnable(&mut jobs, Instant::now()) {
            Ok(batch) => return Some(batch),
            Err(until) => until,
        };
        if jobs.is_empty() && !spun {
            spun = true;
            let told = queue.told.load(Ordering::Acquire);
            parking_lot::MutexGuard::unlocked(&mut jobs, || {
                crate::clock::spin_until(WORKER_SPIN, || {
                    queue.told.load(Ordering::Acquire) != told || queue.stop.load(Ordering::Relaxed)
                })
            });
            continue;
        }
        match until {
            Some(d) => {
                queue.ready.wait_until(&mut jobs, d);
            }
            None => queue.ready.wait(&mut jobs),
        }
    }
}

/// Jobs nobody waits for (shadows) are not queued behind this many jobs.
pub const DETACHED_MAX_QUEUED: usize = 1024;

fn worker(engine: std::sync::Weak<Engine>, queue: Arc<Queue>) {
    let mut ran = false;
    while let Some(batch) = next_batch(&queue, ran) {
        let Some(engine) = engine.upgrade() else {
            return;
        };
        ran = true;
        run_batch(&engine, &queue, batch);
    }
}

/// Runs a batch: inputs concatenated along dimension 0, one run, outputs split back.
fn run_batch(engine: &Engine, queue: &Queue, batch: Vec<RunJob>) {
    let model = batch[0].model.clone();
    let n_inputs = batch[0].inputs.len();
    let rows: Vec<usize> = batch.iter().map(RunJob::rows).collect();
    let total: usize = rows.iter().sum();
    let inputs: Result<Vec<Tensor>, String> = if batch.len() == 1 {
        Ok(Vec::new())
    } else {
        (0..n_inputs)
            .map(|i| {
                let parts: Vec<&Tensor> = batch.iter().map(|j| j.inputs[i].as_ref()).collect();
                Tensor::concat_batch(&parts, usize::MAX).map_err(|e| e.0)
            })
            .collect()
    };
    let opts = match ort::session::RunOptions::new() {
        Ok(o) => Arc::new(o),
        Err(e) => return fail_all(batch, format!("ERR {e}")),
    };
    let run_id = engine.next_run_id.fetch_add(1, Ordering::Relaxed);
    queue.running.lock().push((
        run_id,
        Instant::now(),
        opts.clone(),
        false,
        Arc::clone(&model),
        batch.len(),
    ));
    let start = Instant::now();
    let result = inputs.and_then(|owned| {
        let refs: Vec<&Tensor> = if batch.len() == 1 {
            batch[0].inputs.iter().map(|t| t.as_ref()).collect()
        } else {
            owned.iter().collect()
        };
        model.run(&refs, &opts)
    });
    queue.running.lock().retain(|(id, ..)| *id != run_id);
    let micros = start.elapsed().as_micros() as u64;
    let stats = &model.stats;
    // As RedisAI counts: every request of a batch is charged the whole run's time.
    stats
        .duration_us
        .fetch_add(micros * batch.len() as u64, Ordering::Relaxed);
    stats.calls.fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats.samples.fetch_add(total as u64, Ordering::Relaxed);
    // A handful of atomic adds per batch, whatever its size.
    stats.batch_size.observe(batch.len() as u64);
    stats.run_us.observe_n(micros, batch.len() as u64);
    let waits = || {
        batch
            .iter()
            .map(|job| start.saturating_duration_since(job.enqueued).as_micros() as u64)
    };
    stats.queue_us.observe_all(waits());
    stats.total_us.observe_all(waits().map(|w| w + micros));
    engine.stats.runs.fetch_add(1, Ordering::Relaxed);
    if batch.len() > 1 {
        engine.stats.batches.fetch_add(1, Ordering::Relaxed);
    }
    let outputs = match result {
        Ok(o) => o,
        Err(e) => {
            stats
                .errors
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            model::FAILED_REQUESTS.fetch_add(batch.len() as u64, Ordering::Relaxed);
            return fail_all(batch, e);
        }
    };
    if batch.len() == 1 {
        let job = batch.into_iter().next().expect("one job");
        job.finish(Ok(outputs));
        return;
    }
    if outputs.iter().any(|o| o.shape().first() != Some(&total)) {
        stats
            .errors
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        model::FAILED_REQUESTS.fetch_add(batch.len() as u64, Ordering::Relaxed);
        return fail_all(
            batch,
            "ERR Model did not generate the expected batch size".into(),
        );
    }
    let mut offset = 0;
    let mut relays: Vec<Arc<completion::Relay>> = Vec::new();
    let mut hooks: Vec<(Then, RunResult)> = Vec::new();
    for (mut job, n) in batch.into_iter().zip(rows) {
        let parts: Vec<Tensor> = outputs.iter().map(|o| o.slice_batch(offset, n)).collect();
        if let Some(then) = job.then.take() {
            hooks.push((then, Ok(parts.clone())));
        }
        if let Some(r) = job.reply.send_batched(Ok(parts)) {
            if !relays.iter().any(|x| Arc::ptr_eq(x, &r)) {
                relays.push(r);
            }
        }
        offset += n;
    }
    // One wake-up per event loop for the whole batch.
    for r in relays {
        r.flush();
    }
    for (then, result) in hooks {
        then(&result);
    }
}

fn fail_all(batch: Vec<RunJob>, e: String) {
    for job in batch {
        job.finish(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Makes this thread an event loop with `runs` runs in flight, the last submitted now.
    fn loop_with_runs_in_flight(runs: u64) {
        event_loop_idle(&|| false);
        LOOP.with(|l| {
            let mut slot = l.borrow_mut();
            let s = slot.as_mut().expect("an event loop");
            s.submitted = s.relay.delivered() + runs;
            s.last_submit = crate::clock::instant();
        });
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_loop_waiting_for_results_stops_when_a_client_sends() {
        loop_with_runs_in_flight(32);
        let asked = Cell::new(0);
        event_loop_idle(&|| {
            asked.set(asked.get() + 1);
            true
        });
        assert_eq!(asked.get(), 1, "the watch went on after a request arrived");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_loop_watches_for_results_only_while_runs_are_in_flight() {
        loop_with_runs_in_flight(32);
        let asked = Cell::new(0);
        let start = std::time::Instant::now();
        event_loop_idle(&|| {
            asked.set(asked.get() + 1);
            false
        });
        assert!(asked.get() > 1, "no watch with runs in flight");
        assert!(start.elapsed() >= LOOP_SPIN / 2, "{:?}", start.elapsed());
        loop_with_runs_in_flight(0);
        asked.set(0);
        event_loop_idle(&|| {
            asked.set(asked.get() + 1);
            false
        });
        assert_eq!(asked.get(), 0, "a loop with nothing in flight watched");
    }
}
