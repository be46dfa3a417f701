//! Batch scoring jobs (`AI.SCORE`) over the keyspace: the engine's job loop
//! (`locus_engine::score`) on a thread of its own per job, with this module as its host. It
//! lists a shard's matching keys, reads their hashes or tensors under the shard's read lock,
//! runs batches through the model's queue (in the background: online requests go first) and
//! writes predictions back under the write locks, logging each batch's writes and the job's
//! checkpoint to the AOF together, so a restarted server resumes where the job was.

use crate::cmd::routers::{self, RunTarget};
use crate::engine::model::Model;
use crate::server::Server;
use crate::store::glob::GlobPattern;
use crate::store::hash::prefetch;
use crate::store::{Entry, Value, SHARDS};
use crate::tensor::{DType, Tensor};
use bytes::Bytes;
use locus_engine::router::route;
use locus_engine::score::job::{self, Pending};
use locus_engine::score::rows::BatchBuilder;
use locus_engine::score::{InputSpec, Job, OutputSpec, Prediction, Priority, Record, ScoreHost};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The channel job progress is published on (JSON, every second and when a job ends).
pub const JOBS_CHANNEL: &str = "__locus__:jobs";

/// What a job runs its batches through.
enum Runner {
    /// One model version, fixed for the whole job.
    Model(Arc<Model>),
    /// A router, deciding per batch (its versions, splits and guards apply).
    Router(Bytes),
}

/// What a job runs its batches through, resolved in database `db`: the model version or the
/// router (with its targets) the job names. The Redis module's jobs use it too, over a
/// database of the embedded keyspace that holds the job's model or router.
pub struct JobRunner {
    server: Arc<Server>,
    db: usize,
    runner: Runner,
    /// The model whose input type and queue the job follows (a router's first model).
    signature: Arc<Model>,
}

/// The keyspace side of a running job.
struct KeyspaceHost {
    server: Arc<Server>,
    db: usize,
    job: Arc<Job>,
    pattern: GlobPattern,
    run: JobRunner,
}

/// Starts `job`'s loop on a thread of its own. A job whose model or version is gone by then
/// (a resumed job) is marked failed with the reason, and that is published.
pub fn start(server: &Arc<Server>, db: usize, job: Arc<Job>) {
    let thread_server = Arc::clone(server);
    let name = format!(
        "locus-job-{}",
        String::from_utf8_lossy(&job.name[..job.name.len().min(32)])
    );
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        if job.spec.priority == Priority::Low {
            lower_priority();
        }
        match KeyspaceHost::new(Arc::clone(&thread_server), db, Arc::clone(&job)) {
            Ok(host) => job::run(&job, &host),
            Err(e) => {
                {
                    let mut p = job.progress.lock();
                    p.state = locus_engine::score::State::Failed;
                    p.error = Some(e);
                    p.finished_ms = crate::util::now_ms();
                }
                publish(&thread_server, db, &job);
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("scoring job thread could not start: {e}");
    }
}

/// Lowers this thread's scheduling priority (nice 19): a LOW job's reading and parsing gives
/// way to the event loops and the model workers.
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    unsafe {
        // A thread's nice value is set through its thread id on Linux.
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// Resumes, after the dataset is loaded, every job that was running when it was saved.
pub fn resume_all(server: &Arc<Server>) {
    for (db, _, job) in server.store.jobs.all() {
        if job.progress.lock().state == locus_engine::score::State::Running {
            tracing::info!(
                "resuming scoring job '{}' from its checkpoint",
                String::from_utf8_lossy(&job.name)
            );
            start(server, db, job);
        }
    }
}

/// Cancels and forgets the jobs of database `db` (FLUSHDB), or of all (FLUSHALL).
pub fn clear(server: &Server, db: Option<usize>) {
    let now = crate::util::now_ms();
    for (d, _, job) in server.store.jobs.all() {
        if db.is_none_or(|x| x == d) {
            job.cancel(now);
        }
    }
    server.store.jobs.clear(db);
}

/// `AI.JOB CHECKPOINT job progress…`: the AOF record of a job's checkpoint.
pub fn checkpoint_command(job: &Job, failures_from: usize) -> Vec<Bytes> {
    let mut cmd = vec![
        Bytes::from_static(b"AI.JOB"),
        Bytes::from_static(b"CHECKPOINT"),
        job.name.clone(),
    ];
    cmd.extend(job.progress.lock().to_words(failures_from));
    cmd
}

impl JobRunner {
    /// Looks up the job's model (at the version it started with) or router in database `db`.
    pub fn new(server: Arc<Server>, db: usize, job: &Job) -> Result<JobRunner, String> {
        let (runner, signature) = {
            let mut client = server.clients.detached(db);
            let cmd = Arc::clone(server.commands.get(b"ai.score").expect("AI.SCORE is known"));
            let ctx = crate::cmd::Ctx::new(&server, &mut client, &cmd);
            let version = job.progress.lock().version.or(job.spec.version);
            let target = routers::lookup(&ctx, &job.spec.model, version).map_err(|e| e.0)?;
            let signature = routers::signature(&ctx, &target).map_err(|e| e.0)?;
            let runner = match target {
                RunTarget::Model(m) => Runner::Model(m),
                RunTarget::Router(_) => Runner::Router(job.spec.model.clone()),
            };
            (runner, signature)
        };
        Ok(JobRunner {
            server,
            db,
            runner,
            signature,
        })
    }

    /// The model's row input: its type and its dimensions after the first.
    pub fn row_input(&self) -> (DType, Vec<i64>) {
        let dims = self
            .signature
            .inputs
            .first()
            .map(|p| p.dims.get(1..).unwrap_or_default().to_vec())
            .unwrap_or_default();
        (row_type(&self.signature), dims)
    }

    /// Starts a batch's run in the background (online requests go first).
    pub fn submit(&self, first_key: &Bytes, inputs: Vec<Arc<Tensor>>) -> Result<Pending, String> {
        match &self.runner {
            Runner::Model(m) => {
                m.admit(&inputs)?;
                let rx = self.server.engine.submit_background(
                    Arc::clone(m),
                    inputs,
                    Arc::new(AtomicBool::new(false)),
                );
                Ok(Box::pin(async move {
                    rx.await
                        .unwrap_or_else(|_| Err("ERR model run was abandoned by the engine".into()))
                }))
            }
            Runner::Router(key) => self.submit_routed(key, first_key, inputs),
        }
    }

    /// Online requests seen so far on the model's queue.
    pub fn online_arrivals(&self) -> u64 {
        self.server.engine.foreground_arrivals(&self.signature)
    }

    /// The CONST tensors, read from database `db`.
    pub fn consts(&self, job: &Job) -> Result<Vec<Arc<Tensor>>, String> {
        let now = crate::util::now_ms();
        let db = self.server.store.db(self.db);
        job.spec
            .consts
            .iter()
            .map(|k| match db.read(k).get(k, now).map(|e| &e.value) {
                Some(Value::Tensor(t)) => Ok(Arc::clone(t)),
                _ => Err(format!(
                    "ERR CONST key '{}' does not hold a tensor",
                    String::from_utf8_lossy(k)
                )),
            })
            .collect()
    }

    /// Runs a batch through the router: one routing decision per batch, sticky on its first key.
    fn submit_routed(
        &self,
        key: &Bytes,
        first_key: &Bytes,
        inputs: Vec<Arc<Tensor>>,
    ) -> Result<Pending, String> {
        let mut client = self.server.clients.detached(self.db);
        let cmd = Arc::clone(
            self.server
                .commands
                .get(b"ai.score")
                .expect("AI.SCORE is known"),
        );
        let ctx = crate::cmd::Ctx::new(&self.server, &mut client, &cmd);
        let RunTarget::Router(router) = routers::lookup(&ctx, key, None).map_err(|e| e.0)? else {
            return Err(format!(
                "ERR '{}' no longer holds a router",
                String::from_utf8_lossy(key)
            ));
        };
        let sink = routers::events(&ctx);
        let node = routers::resolve(&ctx, key, &router, first_key, &[], &sink).map_err(|e| e.0)?;
        let run = route::run(
            self.server.engine.clone(),
            node,
            inputs,
            sink,
            Arc::new(AtomicBool::new(false)),
        );
        Ok(Box::pin(async move {
            let finished = run.await;
            // The shadow (if any) runs after the batch, on this job's thread.
            if let Some(shadow) = finished.shadow {
                shadow.await;
            }
            finished.result
        }))
    }
}

/// Keys a job writes (TENSOR outputs, named `key + suffix`) are never its inputs.
pub fn is_output(job: &Job, key: &[u8]) -> bool {
    match &job.spec.output {
        OutputSpec::Tensor { suffix, .. } => key.ends_with(suffix),
        OutputSpec::Field { .. } => false,
    }
}

impl KeyspaceHost {
    fn new(server: Arc<Server>, db: usize, job: Arc<Job>) -> Result<KeyspaceHost, String> {
        let run = JobRunner::new(Arc::clone(&server), db, &job)?;
        Ok(KeyspaceHost {
            pattern: GlobPattern::new(&job.spec.pattern, false),
            server,
            db,
            job,
            run,
        })
    }

    fn db(&self) -> &crate::store::Db {
        self.server.store.db(self.db)
    }
}

impl ScoreHost for KeyspaceHost {
    fn partitions(&self) -> usize {
        SHARDS
    }

    fn list(&self, partition: usize, after: Option<&[u8]>) -> Vec<Bytes> {
        let now = crate::util::now_ms();
        let mut keys: Vec<Bytes> = {
            let shard = self.db().shard(partition).read();
            shard
                .iter(now)
                .filter(|(k, _)| {
                    after.is_none_or(|a| &k[..] > a)
                        && self.pattern.matches(k)
                        && !is_output(&self.job, k)
                })
                .map(|(k, _)| k.clone())
                .collect()
        };
        keys.sort_unstable();
        keys
    }

    fn read(&self, keys: &[Bytes], into: &mut BatchBuilder) -> (Vec<(Bytes, String)>, u64) {
        let now = crate::util::now_ms();
        let db = self.db();
        let (mut failed, mut gone) = (Vec::new(), 0);
        // A batch's keys come shard by shard: each shard's lock is taken once for its run.
        let mut at = 0;
        while at < keys.len() {
            let shard_index = db.shard_index(&keys[at]);
            let shard = db.shard(shard_index).read();
            let run = &keys[at..];
            let run = &run[..run
                .iter()
                .take_while(|k| db.shard_index(k) == shard_index)
                .count()];
            at += run.len();
            // Every key of the run is looked up first, and each packed hash's buffer is asked
            // for: lookups of different keys overlap in the CPU, and parsing then finds its
            // rows in the cache instead of waiting on memory row by row.
            let values: Vec<Option<&Value>> = run
                .iter()
                .map(|k| {
                    let value = shard.get(k, now).map(|e| &e.value);
                    if let Some(Value::Hash(h)) = value {
                        h.prefetch();
                    }
                    value
                })
                .collect();
            for (key, value) in run.iter().zip(values) {
                let outcome = match (value, &self.job.spec.input) {
                    (None, _) => {
                        gone += 1;
                        continue;
                    }
                    (Some(Value::Hash(h)), InputSpec::Hash { .. }) => {
                        let mut row = into.hash_row();
                        if h.is_packed() {
                            // One buffer, read front to back.
                            for (name, value) in h.iter() {
                                row.entry(name, value);
                            }
                        } else if row.walk_beats_lookup(h.len()) {
                            // The table's entries in memory order: fewer cache misses than
                            // one lookup per field. Every name and value lives in an
                            // allocation of its own: asking for all of them first lets the
                            // memory fetches overlap instead of waiting for each in turn.
                            for (name, value) in h.iter() {
                                prefetch(name.as_ptr());
                                prefetch(value.as_ptr());
                            }
                            for (name, value) in h.iter() {
                                row.entry(name, value);
                            }
                        } else {
                            for i in 0..row.fields().len() {
                                if let Some(v) = h.get(&row.fields()[i]) {
                                    row.set_at(i, v);
                                }
                            }
                        }
                        row.finish(key.clone())
                    }
                    (Some(Value::Tensor(t)), InputSpec::Tensor) => {
                        into.push(key.clone(), Record::Tensor(Arc::clone(t)))
                    }
                    (Some(v), InputSpec::Hash { .. }) => {
                        Err(format!("key holds a {}, not a hash", v.type_name()))
                    }
                    (Some(v), InputSpec::Tensor) => {
                        Err(format!("key holds a {}, not a tensor", v.type_name()))
                    }
                };
                if let Err(e) = outcome {
                    failed.push((key.clone(), e));
                }
            }
        }
        (failed, gone)
    }

    fn consts(&self) -> Result<Vec<Arc<Tensor>>, String> {
        self.run.consts(&self.job)
    }

    fn row_input(&self) -> (DType, Vec<i64>) {
        self.run.row_input()
    }

    fn submit(&self, first_key: &Bytes, inputs: Vec<Arc<Tensor>>) -> Result<Pending, String> {
        self.run.submit(first_key, inputs)
    }

    fn write(
        &self,
        job: &Job,
        keys: &[Bytes],
        preds: Vec<Prediction>,
        commit: &mut dyn FnMut(&locus_engine::score::job::KeyFailures),
    ) {
        let now = crate::util::now_ms();
        let failures_before = job.progress.lock().failures.len();
        // Writes keep MULTI/EXEC and scripts isolated, like any client's.
        let _gate = self.server.gate.shared();
        let mut txn = self.server.aof.begin();
        let mut log: Vec<Vec<Bytes>> = Vec::with_capacity(keys.len() + 1);
        let mut unwritten: Vec<(Bytes, String)> = Vec::new();
        let targets: Vec<Bytes> = match &job.spec.output {
            OutputSpec::Field { .. } => keys.to_vec(),
            OutputSpec::Tensor { suffix, .. } => keys
                .iter()
                .map(|k| {
                    let mut name = k.to_vec();
                    name.extend_from_slice(suffix);
                    Bytes::from(name)
                })
                .collect(),
        };
        {
            let mut guard = self.db().write_many(&targets);
            // Cancelled (AI.JOB CANCEL, DEL, FLUSHALL) while the batch ran: it writes nothing.
            if job.is_cancelled() {
                return;
            }
            for ((key, target), pred) in keys.iter().zip(&targets).zip(preds) {
                let shard = guard.shard(target);
                match (pred, &job.spec.output) {
                    (Prediction::Field(v), OutputSpec::Field { name, .. }) => {
                        match shard.get_mut(target, now).map(|e| &mut e.value) {
                            Some(Value::Hash(h)) => {
                                if txn.is_some() {
                                    log.push(vec![
                                        Bytes::from_static(b"HSET"),
                                        target.clone(),
                                        name.clone(),
                                        v.clone(),
                                    ]);
                                }
                                h.insert(name.clone(), v);
                            }
                            // Deleted or replaced meanwhile: nothing to write into.
                            _ => unwritten.push((key.clone(), "key changed while scored".into())),
                        }
                    }
                    (Prediction::Tensor(t), _) => {
                        if shard
                            .get(target, now)
                            .is_some_and(|e| !matches!(e.value, Value::Tensor(_)))
                        {
                            unwritten.push((
                                key.clone(),
                                format!(
                                    "output key '{}' holds another type",
                                    String::from_utf8_lossy(target)
                                ),
                            ));
                            continue;
                        }
                        if txn.is_some() {
                            log.push(crate::cmd::tensors::tensorset_command(target, &t));
                        }
                        shard.insert(target.clone(), Entry::new(Value::Tensor(Arc::new(t))), now);
                    }
                    (Prediction::Field(_), OutputSpec::Tensor { .. }) => {
                        unreachable!("tensor outputs give tensors")
                    }
                }
            }
            commit(&unwritten);
            if txn.is_some() {
                log.push(checkpoint_command(job, failures_before));
            }
        }
        self.server.store.add_dirty(keys.len() as u64 + 1);
        if let Some(txn) = txn.as_mut() {
            txn.record(self.db, now, log.iter().map(|c| c.iter()));
        }
    }

    fn online_arrivals(&self) -> u64 {
        self.run.online_arrivals()
    }

    fn publish(&self, job: &Job) {
        publish(&self.server, self.db, job);
    }
}

/// The row type of a model's first input (FLOAT when it is not a plain numeric tensor).
pub fn row_type(model: &Model) -> DType {
    match model.inputs.first().and_then(|p| p.dtype) {
        Some(t) if !matches!(t, DType::String | DType::Bool) => t,
        _ => DType::Float,
    }
}

/// Publishes a job's progress on [`JOBS_CHANNEL`] as JSON.
pub fn publish(server: &Server, db: usize, job: &Job) {
    let (hard, soft, soft_secs) = server.config.pubsub_output_limit();
    server.pubsub.publish(
        &Bytes::from_static(JOBS_CHANNEL.as_bytes()),
        &Bytes::from(progress_message(db, job, SHARDS)),
        crate::server::pubsub::OutputLimit {
            hard,
            soft,
            soft_secs,
        },
    );
}

/// A job's progress as the JSON message [`JOBS_CHANNEL`] carries (`partitions`: how many the
/// host's keyspace has, for the ETA).
pub fn progress_message(db: usize, job: &Job, partitions: usize) -> String {
    let s = job.snapshot(partitions);
    let p = &s.progress;
    serde_json::json!({
        "job": String::from_utf8_lossy(&job.name),
        "db": db,
        "state": p.state.name(),
        "keys_scanned": p.keys_scanned,
        "rows_scored": p.rows_scored,
        "rows_failed": p.rows_failed,
        "rows_per_sec": (s.rows_per_sec * 10.0).round() / 10.0,
        "eta_ms": s.eta_ms,
        "time": crate::util::now_ms(),
    })
    .to_string()
}
