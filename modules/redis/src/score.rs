//! AI.SCORE and AI.JOB inside redis-server: batch scoring jobs over Redis's own keyspace.
//!
//! The job loop is the engine's (`locus_engine::score`), as in locus-server; this file is its
//! host over Redis. A job runs on a thread of its own and takes Redis's lock (the module API's
//! thread-safe context) only to list keys, to copy a batch's fields out and to write its
//! predictions back, a few keys at a time, so Redis's clients are served in between.
//! Numbers are parsed and the model runs with the lock released.
//!
//! - Partitions are Redis Cluster's 16,384 hash slots (on a node outside a cluster too), so a
//!   checkpoint (a slot and the last key scored in it) means the same after a restart or a
//!   failover. Keys are listed by scanning the database for a window of slots at a time, the
//!   window sized to hold about [`WINDOW_KEYS`] keys: memory stays bounded by the window, not
//!   by the job.
//! - Predictions replicate as their effects (HSET, AI.TENSORSET), each batch with the job's
//!   checkpoint (AI.JOB CHECKPOINT). AI.SCORE itself replicates as given: a replica, or an AOF
//!   being loaded, records the job without running it, and a replica promoted to master (or a
//!   server that finished loading) resumes the jobs that were running from their checkpoints.
//! - Snapshots keep the jobs (the module's auxiliary data); FLUSHALL and FLUSHDB cancel and
//!   forget the jobs of the databases they empty.

use crate::commands::error;
use crate::ffi::{self, bytes_of, RString};
use crate::host::{self, host};
use crate::reply;
use bytes::Bytes;
use locus::cmd::score as cmds;
use locus::jobs::{is_output, JobRunner, JOBS_CHANNEL};
use locus::server::reply::Reply;
use locus::store::glob::GlobPattern;
use locus::tensor::{DType, Tensor};
use locus_engine::score::job::{self, KeyFailures, Pending};
use locus_engine::score::rows::BatchBuilder;
use locus_engine::score::{
    InputSpec, Job, OutputSpec, Prediction, Progress, Record, ScoreHost, ScoreSpec, State,
};
use parking_lot::Mutex;
use redis_module::raw;
use std::collections::BTreeMap;
use std::os::raw::{c_int, c_void};
use std::sync::Arc;

const OK: c_int = raw::REDISMODULE_OK as c_int;

/// Redis Cluster's hash slots: the job's partitions.
const SLOTS: usize = 16384;

/// Keys one listing window aims to hold (each a few dozen bytes).
const WINDOW_KEYS: usize = 262_144;

/// Keys read or written per hold of Redis's lock: a batch's keys are taken in parts this
/// large, so that Redis serves its clients between them.
const KEYS_PER_LOCK: usize = 64;
/// The same for a PRIORITY LOW job, which gives Redis's main thread the lock more often.
const KEYS_PER_LOCK_LOW: usize = 8;

/// Scan steps (hash buckets) per hold of Redis's lock while listing.
const SCAN_STEPS_PER_LOCK: usize = 256;

/// The jobs of every database, by database and name. Touched with Redis's lock held.
static JOBS: Mutex<BTreeMap<(c_int, Bytes), Arc<Job>>> = Mutex::new(BTreeMap::new());

/// A thread-safe context with Redis's database of the job selected.
struct SafeCtx(*mut raw::RedisModuleCtx);
unsafe impl Send for SafeCtx {}
unsafe impl Sync for SafeCtx {}

/// Redis's lock, held while it lives.
struct Locked<'a>(&'a SafeCtx);

impl<'a> Locked<'a> {
    fn take(ctx: &'a SafeCtx) -> Locked<'a> {
        unsafe { raw::RedisModule_ThreadSafeContextLock.unwrap()(ctx.0) };
        Locked(ctx)
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        unsafe { raw::RedisModule_ThreadSafeContextUnlock.unwrap()(self.0 .0) };
    }
}

/// Module strings made once for a job (field names), used only with Redis's lock held.
struct Names(Vec<RString>);
unsafe impl Send for Names {}
unsafe impl Sync for Names {}

/// The keys of a window of slots, each slot's as listed (sorted when handed out).
#[derive(Default)]
struct Listing {
    from: usize,
    slots: Vec<Vec<Bytes>>,
}

/// What a job holds for as long as it runs, let go (under Redis's lock) when it ends.
struct Held {
    ctx: SafeCtx,
    /// The embedded database holding the job's model or router and CONST tensors.
    db: usize,
    /// The HASH FIELDS, as module strings.
    fields: Names,
}

impl Held {
    /// Lets go of it all, from the job's thread (which takes Redis's lock for it).
    fn release(mut self) {
        let ctx = self.ctx.0;
        unsafe {
            raw::RedisModule_ThreadSafeContextLock.unwrap()(ctx);
            self.fields.0.clear();
            host::discard(self.db);
            raw::RedisModule_FreeThreadSafeContext.unwrap()(ctx);
            // Unlocking does not use the context.
            raw::RedisModule_ThreadSafeContextUnlock.unwrap()(ctx);
        }
    }
}

/// The Redis side of a running job.
struct RedisHost {
    held: Held,
    redis_db: c_int,
    job: Arc<Job>,
    pattern: GlobPattern,
    run: JobRunner,
    listing: Mutex<Listing>,
}

/// One key's bytes as read under the lock, parsed after it is let go.
enum Raw {
    Gone,
    /// The named fields' values, as ranges of the read buffer (`None`: the field is missing).
    Hash(Vec<Option<(usize, usize)>>),
    /// Every entry of a small hash (name, then value), as ranges of the read buffer.
    Entries(Vec<[usize; 4]>),
    Tensor(Arc<Tensor>),
    Wrong(String),
}

impl RedisHost {
    fn keys_per_lock(&self) -> usize {
        match self.job.spec.priority {
            locus_engine::score::Priority::Low => KEYS_PER_LOCK_LOW,
            locus_engine::score::Priority::Normal => KEYS_PER_LOCK,
        }
    }

    /// Fills the listing with the keys of the slots from `slot` on, as many slots as fit
    /// about [`WINDOW_KEYS`] keys, by one scan of the database.
    fn fill(&self, listing: &mut Listing, slot: usize) {
        let size = {
            let _l = Locked::take(&self.held.ctx);
            unsafe { raw::RedisModule_DbSize.unwrap()(self.held.ctx.0) as usize }
        };
        let width = (SLOTS * WINDOW_KEYS / size.max(1)).clamp(1, SLOTS);
        let to = (slot + width).min(SLOTS);
        listing.from = slot;
        listing.slots = vec![Vec::new(); to - slot];
        struct Scan<'a> {
            host: &'a RedisHost,
            from: usize,
            slots: &'a mut Vec<Vec<Bytes>>,
        }
        unsafe extern "C" fn found(
            _ctx: *mut raw::RedisModuleCtx,
            name: *mut raw::RedisModuleString,
            _key: *mut raw::RedisModuleKey,
            data: *mut c_void,
        ) {
            let scan = &mut *data.cast::<Scan>();
            let key = bytes_of(name);
            let slot = crate::slots::key_slot(key) as usize;
            if slot < scan.from || slot >= scan.from + scan.slots.len() {
                return;
            }
            if scan.host.pattern.matches(key) && !is_output(&scan.host.job, key) {
                scan.slots[slot - scan.from].push(Bytes::copy_from_slice(key));
            }
        }
        let mut scan = Scan {
            host: self,
            from: slot,
            slots: &mut listing.slots,
        };
        let cursor = unsafe { raw::RedisModule_ScanCursorCreate.unwrap()() };
        let data = (&mut scan as *mut Scan).cast::<c_void>();
        'scan: loop {
            if self.job.is_cancelled() {
                break;
            }
            let _l = Locked::take(&self.held.ctx);
            for _ in 0..SCAN_STEPS_PER_LOCK {
                if unsafe {
                    raw::RedisModule_Scan.unwrap()(self.held.ctx.0, cursor, Some(found), data)
                } == 0
                {
                    break 'scan;
                }
            }
        }
        unsafe { raw::RedisModule_ScanCursorDestroy.unwrap()(cursor) };
    }

    /// Copies the bytes a batch's keys need out of Redis, under its lock.
    unsafe fn read_raw(&self, keys: &[Bytes], buf: &mut Vec<u8>) -> Vec<Raw> {
        let ctx = self.held.ctx.0;
        let mut out = Vec::with_capacity(keys.len());
        for part in keys.chunks(self.keys_per_lock()) {
            let _l = Locked::take(&self.held.ctx);
            for key in part {
                let name = RString::new(std::ptr::null_mut(), key);
                let handle = raw::RedisModule_OpenKey.unwrap()(
                    ctx,
                    name.ptr,
                    raw::REDISMODULE_READ as c_int,
                )
                .cast::<raw::RedisModuleKey>();
                if handle.is_null() {
                    out.push(Raw::Gone);
                    continue;
                }
                let kind = raw::RedisModule_KeyType.unwrap()(handle);
                let raw_value = match (&self.job.spec.input, kind as isize) {
                    (_, raw::REDISMODULE_KEYTYPE_EMPTY) => Raw::Gone,
                    (InputSpec::Hash { .. }, raw::REDISMODULE_KEYTYPE_HASH)
                        if raw::RedisModule_ValueLength.unwrap()(handle)
                            <= 4 * self.held.fields.0.len() =>
                    {
                        // A small hash is read in one pass over its entries: looking each
                        // field up walks the entries once per field.
                        Raw::Entries(entries_of(handle, buf))
                    }
                    (InputSpec::Hash { .. }, raw::REDISMODULE_KEYTYPE_HASH) => {
                        let mut values = Vec::with_capacity(self.held.fields.0.len());
                        for field in &self.held.fields.0 {
                            let v = crate::ffi::hash_get(handle, field.ptr);
                            if v.is_null() {
                                values.push(None);
                            } else {
                                let at = buf.len();
                                buf.extend_from_slice(bytes_of(v));
                                values.push(Some((at, buf.len())));
                                raw::RedisModule_FreeString.unwrap()(ctx, v);
                            }
                        }
                        Raw::Hash(values)
                    }
                    (InputSpec::Tensor, raw::REDISMODULE_KEYTYPE_MODULE) => {
                        match crate::types::read_open(handle) {
                            crate::types::Read::Ai(locus::store::Value::Tensor(t)) => {
                                Raw::Tensor(t)
                            }
                            _ => Raw::Wrong(format!(
                                "key holds a {}, not a tensor",
                                type_name(handle, kind)
                            )),
                        }
                    }
                    (input, _) => Raw::Wrong(format!(
                        "key holds a {}, not a {}",
                        type_name(handle, kind),
                        match input {
                            InputSpec::Hash { .. } => "hash",
                            InputSpec::Tensor => "tensor",
                        }
                    )),
                };
                raw::RedisModule_CloseKey.unwrap()(handle);
                out.push(raw_value);
            }
        }
        out
    }

    unsafe fn replicate(&self, argv: &[Bytes]) {
        crate::commands::replicate(self.held.ctx.0, argv);
    }
}

/// Every entry of an open hash, copied into `buf` (name, then value, as ranges of it).
///
/// # Safety
/// `handle` is an open hash key and Redis's lock is held.
unsafe fn entries_of(handle: *mut raw::RedisModuleKey, buf: &mut Vec<u8>) -> Vec<[usize; 4]> {
    struct Out<'a> {
        buf: &'a mut Vec<u8>,
        entries: Vec<[usize; 4]>,
    }
    unsafe extern "C" fn entry(
        _key: *mut raw::RedisModuleKey,
        field: *mut raw::RedisModuleString,
        value: *mut raw::RedisModuleString,
        data: *mut c_void,
    ) {
        let out = &mut *data.cast::<Out>();
        let a = out.buf.len();
        out.buf.extend_from_slice(bytes_of(field));
        let b = out.buf.len();
        if !value.is_null() {
            out.buf.extend_from_slice(bytes_of(value));
        }
        out.entries.push([a, b, b, out.buf.len()]);
    }
    let mut out = Out {
        buf,
        entries: Vec::new(),
    };
    let cursor = raw::RedisModule_ScanCursorCreate.unwrap()();
    let data = (&mut out as *mut Out).cast::<c_void>();
    while raw::RedisModule_ScanKey.unwrap()(handle, cursor, Some(entry), data) != 0 {}
    raw::RedisModule_ScanCursorDestroy.unwrap()(cursor);
    out.entries
}

/// TYPE's answer for an open key (a module type's own name).
unsafe fn type_name(handle: *mut raw::RedisModuleKey, kind: c_int) -> String {
    match kind as isize {
        raw::REDISMODULE_KEYTYPE_STRING => "string".into(),
        raw::REDISMODULE_KEYTYPE_LIST => "list".into(),
        raw::REDISMODULE_KEYTYPE_HASH => "hash".into(),
        raw::REDISMODULE_KEYTYPE_SET => "set".into(),
        raw::REDISMODULE_KEYTYPE_ZSET => "zset".into(),
        raw::REDISMODULE_KEYTYPE_MODULE => {
            let t = raw::RedisModule_ModuleTypeGetType.unwrap()(handle);
            crate::types::name_of(t).unwrap_or("module").into()
        }
        _ => "stream".into(),
    }
}

impl ScoreHost for RedisHost {
    fn partitions(&self) -> usize {
        SLOTS
    }

    fn list(&self, partition: usize, after: Option<&[u8]>) -> Vec<Bytes> {
        let mut listing = self.listing.lock();
        let within = partition >= listing.from && partition < listing.from + listing.slots.len();
        if !within {
            self.fill(&mut listing, partition);
        }
        let from = listing.from;
        let mut keys = std::mem::take(&mut listing.slots[partition - from]);
        // A scan may return a key twice (while Redis's table grows): each is scored once.
        keys.sort_unstable();
        keys.dedup();
        if let Some(a) = after {
            keys.retain(|k| &k[..] > a);
        }
        keys
    }

    fn read(&self, keys: &[Bytes], into: &mut BatchBuilder) -> (Vec<(Bytes, String)>, u64) {
        let mut buf = Vec::new();
        let raws = unsafe { self.read_raw(keys, &mut buf) };
        let (mut failed, mut gone) = (Vec::new(), 0);
        for (key, r) in keys.iter().zip(raws) {
            let outcome = match r {
                Raw::Gone => {
                    gone += 1;
                    continue;
                }
                Raw::Hash(values) => {
                    let mut row = into.hash_row();
                    for (i, v) in values.into_iter().enumerate() {
                        if let Some((a, b)) = v {
                            row.set_at(i, &buf[a..b]);
                        }
                    }
                    row.finish(key.clone())
                }
                Raw::Entries(entries) => {
                    let mut row = into.hash_row();
                    for [a, b, c, d] in entries {
                        row.entry(&buf[a..b], &buf[c..d]);
                    }
                    row.finish(key.clone())
                }
                Raw::Tensor(t) => into.push(key.clone(), Record::Tensor(t)),
                Raw::Wrong(e) => Err(e),
            };
            if let Err(e) = outcome {
                failed.push((key.clone(), e));
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
        commit: &mut dyn FnMut(&KeyFailures),
    ) {
        let failures_before = job.progress.lock().failures.len();
        let mut unwritten: Vec<(Bytes, String)> = Vec::new();
        let ctx = self.held.ctx.0;
        let mut preds = preds.into_iter();
        // (A batch whose keys all failed still commits its checkpoint: one empty part.)
        let per = self.keys_per_lock();
        let parts: Vec<&[Bytes]> = if keys.is_empty() {
            vec![keys]
        } else {
            keys.chunks(per).collect()
        };
        let last = parts.len() - 1;
        // Each part's writes replicate as they are made (in Redis's order); the last part
        // commits the checkpoint with its own writes. A server that stops between two parts
        // rescores the batch's keys when the job resumes, writing the same predictions.
        for (n, part) in parts.into_iter().enumerate() {
            let _l = Locked::take(&self.held.ctx);
            // Cancelled (AI.JOB CANCEL, DEL, FLUSHALL) while the batch ran: it writes nothing
            // more.
            if job.is_cancelled() {
                return;
            }
            let replicating = unsafe { crate::propagation::needed(ctx) };
            for key in part {
                let Some(pred) = preds.next() else { break };
                unsafe {
                    if let Err(e) = self.write_one(key, pred, replicating) {
                        unwritten.push((key.clone(), e));
                    }
                }
            }
            if n == last {
                commit(&unwritten);
                if replicating {
                    let words = locus::jobs::checkpoint_command(job, failures_before);
                    unsafe { self.replicate(&words) };
                }
            }
        }
    }

    fn online_arrivals(&self) -> u64 {
        self.run.online_arrivals()
    }

    fn publish(&self, job: &Job) {
        let message = locus::jobs::progress_message(self.redis_db as usize, job, SLOTS);
        let ended = job.progress.lock().state != State::Running;
        let _l = Locked::take(&self.held.ctx);
        unsafe {
            let channel = RString::new(std::ptr::null_mut(), JOBS_CHANNEL.as_bytes());
            let text = RString::new(std::ptr::null_mut(), message.as_bytes());
            raw::RedisModule_PublishMessage.unwrap()(self.held.ctx.0, channel.ptr, text.ptr);
            // A replica learns how the job ended (its checkpoints said "running").
            if ended && crate::propagation::needed(self.held.ctx.0) {
                self.replicate(&locus::jobs::checkpoint_command(job, usize::MAX));
            }
        }
    }
}

impl RedisHost {
    /// Writes one prediction back.
    unsafe fn write_one(
        &self,
        key: &Bytes,
        pred: Prediction,
        replicating: bool,
    ) -> Result<(), String> {
        let ctx = self.held.ctx.0;
        match (pred, &self.job.spec.output) {
            (Prediction::Field(v), OutputSpec::Field { name, .. }) => {
                let k = RString::new(std::ptr::null_mut(), key);
                let handle = ffi::open_key(ctx, &k, true);
                let is_hash = !handle.is_null()
                    && raw::RedisModule_KeyType.unwrap()(handle)
                        == raw::REDISMODULE_KEYTYPE_HASH as c_int;
                if is_hash {
                    let f = RString::new(std::ptr::null_mut(), name);
                    let value = RString::new(std::ptr::null_mut(), &v);
                    raw::RedisModule_HashSet.unwrap()(
                        handle,
                        raw::REDISMODULE_HASH_NONE as c_int,
                        f.ptr,
                        value.ptr,
                        std::ptr::null_mut::<c_void>(),
                    );
                }
                if !handle.is_null() {
                    raw::RedisModule_CloseKey.unwrap()(handle);
                }
                if !is_hash {
                    // Deleted or replaced meanwhile: nothing to write into.
                    return Err("key changed while scored".into());
                }
                if replicating {
                    self.replicate(&[Bytes::from_static(b"HSET"), key.clone(), name.clone(), v]);
                }
                Ok(())
            }
            (Prediction::Tensor(t), OutputSpec::Tensor { suffix, .. }) => {
                let mut target = key.to_vec();
                target.extend_from_slice(suffix);
                let target = Bytes::from(target);
                let k = RString::new(std::ptr::null_mut(), &target);
                match crate::types::read(ctx, k.ptr) {
                    crate::types::Read::Other
                    | crate::types::Read::Stream
                    | crate::types::Read::Ai(
                        locus::store::Value::Model(_) | locus::store::Value::Router(_),
                    ) => {
                        return Err(format!(
                            "output key '{}' holds another type",
                            String::from_utf8_lossy(&target)
                        ))
                    }
                    _ => {}
                }
                let t = Arc::new(t);
                if replicating {
                    self.replicate(&locus::cmd::tensors::tensorset_command(&target, &t));
                }
                crate::types::write(ctx, &target, locus::store::Value::Tensor(t));
                Ok(())
            }
            (Prediction::Field(_), OutputSpec::Tensor { .. }) => {
                unreachable!("tensor outputs give tensors")
            }
            (Prediction::Tensor(_), OutputSpec::Field { .. }) => {
                unreachable!("field outputs give fields")
            }
        }
    }
}

/// Whether the call comes from Redis itself (its AOF, its master's stream): the job is then
/// recorded, not run.
unsafe fn replayed(ctx: *mut raw::RedisModuleCtx) -> bool {
    ffi::context_flags(ctx)
        & (raw::REDISMODULE_CTX_FLAGS_REPLICATED | raw::REDISMODULE_CTX_FLAGS_LOADING)
        != 0
}

/// `AI.SCORE job MODEL key …`: checks the definition against the model (and the CONST
/// tensors) and starts the job on a thread of its own.
///
/// # Safety
/// `ctx` is a live command context.
pub unsafe fn score(ctx: *mut raw::RedisModuleCtx, args: &[Bytes]) -> c_int {
    let Some(name) = args.get(1).cloned() else {
        return error(ctx, "ERR wrong number of arguments for 'ai.score' command");
    };
    if name.is_empty() {
        return error(ctx, "ERR a job needs a non-empty name");
    }
    let spec = match ScoreSpec::parse(&args[2..]) {
        Ok(s) => s,
        Err(e) => return error(ctx, &e),
    };
    let redis_db = raw::RedisModule_GetSelectedDb.unwrap()(ctx);
    if JOBS.lock().contains_key(&(redis_db, name.clone())) {
        return error(ctx, &cmds::already_exists(&name).0);
    }
    let now = locus::util::now_ms();
    if replayed(ctx) {
        let job = Arc::new(Job::new(name.clone(), spec, Progress::new(now)));
        JOBS.lock().insert((redis_db, name), job);
        reply::send(ctx, &Reply::OK);
        return OK;
    }
    let held = JOBS.lock().keys().filter(|(d, _)| *d == redis_db).count();
    if held >= cmds::MAX_JOBS {
        return error(ctx, &cmds::too_many_jobs().0);
    }
    let mut progress = Progress::new(now);
    let job = Arc::new(Job::new(name.clone(), spec, progress.clone()));
    let db = match import_for(ctx, &job) {
        Ok(db) => db,
        Err(e) => return error(ctx, &e),
    };
    // The definition is checked against the model and the CONST tensors brought in.
    let checked = {
        let h = host();
        let mut client = h.client(db);
        let cmd = Arc::clone(
            h.server
                .commands
                .get(b"ai.score")
                .expect("AI.SCORE is known"),
        );
        let c = locus::cmd::Ctx::new(&h.server, &mut client, &cmd);
        let checked = cmds::check(&c, &job.spec);
        drop(c);
        h.put_client(db, client);
        checked
    };
    let version = match checked {
        Ok(v) => v,
        Err(e) => {
            host::discard(db);
            return error(ctx, &e.0);
        }
    };
    progress.version = version;
    *job.progress.lock() = progress;
    JOBS.lock().insert((redis_db, name), Arc::clone(&job));
    if crate::propagation::needed(ctx) {
        raw::RedisModule_ReplicateVerbatim.unwrap()(ctx);
    }
    start(ctx, redis_db, job, db);
    reply::send(ctx, &Reply::OK);
    OK
}

/// Copies the job's model (or router, with its targets) and CONST tensors from Redis into a
/// database of the embedded keyspace, which the job keeps until it ends.
unsafe fn import_for(ctx: *mut raw::RedisModuleCtx, job: &Job) -> Result<usize, String> {
    let h = host();
    let db = h
        .take_db()
        .ok_or_else(|| "ERR too many AI commands in flight".to_string())?;
    let mut named: Vec<(Bytes, *mut raw::RedisModuleString)> =
        vec![(job.spec.model.clone(), std::ptr::null_mut())];
    named.extend(
        job.spec
            .consts
            .iter()
            .map(|k| (k.clone(), std::ptr::null_mut())),
    );
    // Only the copies are kept: the job never writes these back.
    let _ = host::import(ctx, db, named);
    Ok(db)
}

/// Starts `job`'s loop on a thread of its own, over database `redis_db`, with `db` (the
/// embedded database holding its model and CONST tensors).
unsafe fn start(ctx: *mut raw::RedisModuleCtx, redis_db: c_int, job: Arc<Job>, db: usize) {
    let safe = raw::RedisModule_GetDetachedThreadSafeContext.unwrap()(ctx);
    raw::RedisModule_SelectDb.unwrap()(safe, redis_db);
    let fields = match &job.spec.input {
        InputSpec::Hash { fields, .. } => fields
            .iter()
            .map(|f| RString::new(std::ptr::null_mut(), f))
            .collect(),
        InputSpec::Tensor => Vec::new(),
    };
    let held = Held {
        ctx: SafeCtx(safe),
        db,
        fields: Names(fields),
    };
    let name = format!(
        "locus-job-{}",
        String::from_utf8_lossy(&job.name[..job.name.len().min(32)])
    );
    let thread_job = Arc::clone(&job);
    RUNNING_HERE.lock().push(job_id(&job));
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let job = thread_job;
        if job.spec.priority == locus_engine::score::Priority::Low {
            locus::jobs::lower_priority();
        }
        let server = Arc::clone(&host().server);
        match JobRunner::new(server, db, &job) {
            Ok(run) => {
                let h = RedisHost {
                    pattern: GlobPattern::new(&job.spec.pattern, false),
                    held,
                    redis_db,
                    job: Arc::clone(&job),
                    run,
                    listing: Mutex::new(Listing::default()),
                };
                job::run(&job, &h);
                h.held.release();
            }
            Err(e) => {
                // The model or router went before the job could start (a resumed job).
                {
                    let mut p = job.progress.lock();
                    p.state = State::Failed;
                    p.error = Some(e);
                    p.finished_ms = locus::util::now_ms();
                }
                held.release();
            }
        }
        let id = job_id(&job);
        RUNNING_HERE.lock().retain(|j| *j != id);
    });
    // (Should the thread not start, what it was given leaks: a context and a database.)
    if spawned.is_err() {
        let mut p = job.progress.lock();
        p.state = State::Failed;
        p.error = Some("ERR the job's thread could not start".into());
        p.finished_ms = locus::util::now_ms();
    }
}

/// A context of the module's own for resuming jobs from server events (main thread only).
struct Resumer(*mut raw::RedisModuleCtx);
unsafe impl Send for Resumer {}
unsafe impl Sync for Resumer {}
static RESUMER: std::sync::OnceLock<Resumer> = std::sync::OnceLock::new();

/// Jobs whose loop runs in this process (by the job's address): a job recorded from the AOF,
/// a snapshot or a master's stream has none until it is resumed.
static RUNNING_HERE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn job_id(job: &Arc<Job>) -> usize {
    Arc::as_ptr(job) as usize
}

/// `AI.JOB GET | LIST | CANCEL | DEL | CHECKPOINT`.
///
/// # Safety
/// `ctx` is a live command context.
pub unsafe fn job_command(ctx: *mut raw::RedisModuleCtx, args: &[Bytes]) -> c_int {
    let sub = args
        .get(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase())
        .unwrap_or_default();
    let redis_db = raw::RedisModule_GetSelectedDb.unwrap()(ctx);
    let name = args.get(2).cloned().unwrap_or_default();
    let found = JOBS.lock().get(&(redis_db, name.clone())).cloned();
    let now = locus::util::now_ms();
    let reply = match (sub.as_str(), found) {
        ("LIST", _) => {
            let jobs: Vec<(Bytes, Arc<Job>)> = JOBS
                .lock()
                .iter()
                .filter(|((d, _), _)| *d == redis_db)
                .map(|((_, k), j)| (k.clone(), Arc::clone(j)))
                .collect();
            cmds::list_reply(jobs)
        }
        ("GET", Some(job)) => cmds::job_reply(&job, SLOTS),
        ("CANCEL", Some(job)) => {
            if !job.cancel(now) {
                return error(ctx, &cmds::not_running(&job).0);
            }
            publish_now(ctx, redis_db, &job);
            if crate::propagation::needed(ctx) {
                raw::RedisModule_ReplicateVerbatim.unwrap()(ctx);
            }
            Reply::OK
        }
        ("DEL", Some(job)) => {
            job.cancel(now);
            JOBS.lock().remove(&(redis_db, name));
            if crate::propagation::needed(ctx) {
                raw::RedisModule_ReplicateVerbatim.unwrap()(ctx);
            }
            Reply::Int(1)
        }
        ("DEL", None) => Reply::Int(0),
        ("CHECKPOINT", _) if !replayed(ctx) => return error(ctx, cmds::ERR_CHECKPOINT_SENT),
        ("CHECKPOINT", Some(job)) => match job.progress.lock().apply_words(&args[3..]) {
            Ok(()) => Reply::OK,
            Err(e) => return error(ctx, &e),
        },
        (_, None) => return error(ctx, &cmds::no_such_job(&name).0),
        _ => return error(ctx, "ERR syntax error"),
    };
    reply::send(ctx, &reply);
    OK
}

/// Publishes a job's progress from the main thread.
unsafe fn publish_now(ctx: *mut raw::RedisModuleCtx, redis_db: c_int, job: &Job) {
    let message = locus::jobs::progress_message(redis_db as usize, job, SLOTS);
    let channel = RString::new(ctx, JOBS_CHANNEL.as_bytes());
    let text = RString::new(ctx, message.as_bytes());
    raw::RedisModule_PublishMessage.unwrap()(ctx, channel.ptr, text.ptr);
}

/// Resumes the jobs recorded as running whose loop does not run here (after a load, or on
/// becoming a master).
unsafe fn resume_all() {
    let Some(r) = RESUMER.get() else { return };
    let ctx = r.0;
    if ffi::context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_MASTER == 0 {
        return;
    }
    let jobs: Vec<((c_int, Bytes), Arc<Job>)> = JOBS
        .lock()
        .iter()
        .map(|(k, j)| (k.clone(), Arc::clone(j)))
        .collect();
    for ((redis_db, _), job) in jobs {
        if job.progress.lock().state != State::Running
            || RUNNING_HERE.lock().contains(&job_id(&job))
        {
            continue;
        }
        raw::RedisModule_SelectDb.unwrap()(ctx, redis_db);
        match import_for(ctx, &job) {
            Ok(db) => start(ctx, redis_db, job, db),
            Err(e) => {
                let mut p = job.progress.lock();
                p.state = State::Failed;
                p.error = Some(e);
            }
        }
    }
}

unsafe extern "C" fn on_loading(
    _ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    if subevent == raw::REDISMODULE_SUBEVENT_LOADING_ENDED {
        resume_all();
    }
}

unsafe extern "C" fn on_role(
    _ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    if subevent == raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_MASTER {
        resume_all();
    } else {
        // A replica runs no job: its master's writes reach it as their effects.
        let now = locus::util::now_ms();
        for job in JOBS.lock().values() {
            if RUNNING_HERE.lock().contains(&job_id(job)) {
                job.cancel(now);
            }
        }
    }
}

unsafe extern "C" fn on_flush(
    _ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    if subevent != raw::REDISMODULE_SUBEVENT_FLUSHDB_START || data.is_null() {
        return;
    }
    let info = &*data.cast::<raw::RedisModuleFlushInfo>();
    // Request logs and monitors go with their database's keys, as on locus-server.
    let store = &crate::host::host().server.store;
    let db = (info.dbnum >= 0).then_some(info.dbnum as usize);
    store.request_logs.clear(db);
    store.monitors.clear(db);
    let now = locus::util::now_ms();
    JOBS.lock().retain(|(d, _), job| {
        let flushed = info.dbnum == -1 || info.dbnum == *d;
        if flushed {
            job.cancel(now);
        }
        !flushed
    });
}

/// SWAPDB: request logs and monitors follow their databases' keys, as on locus-server.
unsafe extern "C" fn on_swapdb(
    _ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    _subevent: u64,
    data: *mut c_void,
) {
    if data.is_null() {
        return;
    }
    let info = &*data.cast::<raw::RedisModuleSwapDbInfo>();
    let (a, b) = (info.dbnum_first, info.dbnum_second);
    let store = &crate::host::host().server.store;
    store.request_logs.swap(a as usize, b as usize);
    store.monitors.swap(a as usize, b as usize);
}

/// Follows loading, role changes and flushes.
///
/// # Safety
/// `ctx` is the module's load context.
pub unsafe fn init(ctx: *mut raw::RedisModuleCtx) -> Result<(), String> {
    let own = raw::RedisModule_GetDetachedThreadSafeContext.unwrap()(ctx);
    let _ = RESUMER.set(Resumer(own));
    let events: [(u64, raw::RedisModuleEventCallback); 4] = [
        (raw::REDISMODULE_EVENT_LOADING, Some(on_loading)),
        (
            raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
            Some(on_role),
        ),
        (raw::REDISMODULE_EVENT_FLUSHDB, Some(on_flush)),
        (raw::REDISMODULE_EVENT_SWAPDB, Some(on_swapdb)),
    ];
    for (id, callback) in events {
        let event = raw::RedisModuleEvent { id, dataver: 1 };
        if raw::RedisModule_SubscribeToServerEvent.unwrap()(ctx, event, callback) != OK {
            return Err("cannot follow loading, role changes, flushes and SWAPDB".into());
        }
    }
    Ok(())
}

/// The encoding version of the module's auxiliary data in snapshots, the model type's (5: jobs;
/// 6: jobs, then request logs and monitors).
pub const AUX_ENCVER: c_int = crate::types::ENCVER;

unsafe fn save_words(rdb: *mut raw::RedisModuleIO, words: &[Bytes]) {
    raw::RedisModule_SaveUnsigned.unwrap()(rdb, words.len() as u64);
    for w in words {
        raw::RedisModule_SaveStringBuffer.unwrap()(rdb, w.as_ptr().cast(), w.len());
    }
}

unsafe fn load_bytes(rdb: *mut raw::RedisModuleIO) -> Option<Bytes> {
    let mut len = 0usize;
    let p = raw::RedisModule_LoadStringBuffer.unwrap()(rdb, &mut len);
    if p.is_null() {
        return None;
    }
    let out = Bytes::copy_from_slice(std::slice::from_raw_parts(p.cast::<u8>(), len));
    raw::RedisModule_Free.unwrap()(p.cast());
    Some(out)
}

unsafe fn load_words(rdb: *mut raw::RedisModuleIO) -> Option<Vec<Bytes>> {
    let n = raw::RedisModule_LoadUnsigned.unwrap()(rdb);
    (0..n).map(|_| load_bytes(rdb)).collect()
}

/// Saves every job (its database, name, definition and progress) after the keys.
pub unsafe extern "C" fn aux_save(rdb: *mut raw::RedisModuleIO, _when: c_int) {
    let jobs: Vec<((c_int, Bytes), Arc<Job>)> = JOBS
        .lock()
        .iter()
        .map(|(k, j)| (k.clone(), Arc::clone(j)))
        .collect();
    raw::RedisModule_SaveUnsigned.unwrap()(rdb, jobs.len() as u64);
    for ((redis_db, name), job) in jobs {
        raw::RedisModule_SaveUnsigned.unwrap()(rdb, redis_db as u64);
        raw::RedisModule_SaveStringBuffer.unwrap()(rdb, name.as_ptr().cast(), name.len());
        save_words(rdb, &job.spec.to_words());
        save_words(rdb, &job.progress.lock().to_words(0));
    }
    // Settings kept per Redis database and key: request logs, then monitors (as words).
    let store = &crate::host::host().server.store;
    let logs: Vec<(usize, Bytes, Vec<Bytes>)> = store
        .request_logs
        .all()
        .into_iter()
        .map(|(db, key, spec)| (db, key, spec.to_words()))
        .collect();
    let monitors: Vec<(usize, Bytes, Vec<Bytes>)> = store
        .monitors
        .all()
        .into_iter()
        .map(|(db, key, m)| (db, key, locus::cmd::monitors::to_words(&m.lock())))
        .collect();
    for set in [logs, monitors] {
        raw::RedisModule_SaveUnsigned.unwrap()(rdb, set.len() as u64);
        for (db, key, words) in set {
            raw::RedisModule_SaveUnsigned.unwrap()(rdb, db as u64);
            raw::RedisModule_SaveStringBuffer.unwrap()(rdb, key.as_ptr().cast(), key.len());
            save_words(rdb, &words);
        }
    }
}

/// Loads the jobs a snapshot holds (running ones resume when the load ends, on a master).
pub unsafe extern "C" fn aux_load(
    rdb: *mut raw::RedisModuleIO,
    encver: c_int,
    _when: c_int,
) -> c_int {
    if encver > AUX_ENCVER {
        return raw::REDISMODULE_ERR as c_int;
    }
    let n = raw::RedisModule_LoadUnsigned.unwrap()(rdb);
    for _ in 0..n {
        let redis_db = raw::RedisModule_LoadUnsigned.unwrap()(rdb) as c_int;
        let (Some(name), Some(spec), Some(progress)) =
            (load_bytes(rdb), load_words(rdb), load_words(rdb))
        else {
            return raw::REDISMODULE_ERR as c_int;
        };
        let Ok(spec) = ScoreSpec::parse(&spec) else {
            return raw::REDISMODULE_ERR as c_int;
        };
        let mut p = Progress::new(0);
        if p.apply_words(&progress).is_err() {
            return raw::REDISMODULE_ERR as c_int;
        }
        JOBS.lock()
            .insert((redis_db, name.clone()), Arc::new(Job::new(name, spec, p)));
    }
    if encver < 6 {
        // Written before request logs and monitors were saved.
        return OK;
    }
    let store = &crate::host::host().server.store;
    for kind in 0..2 {
        let n = raw::RedisModule_LoadUnsigned.unwrap()(rdb);
        for _ in 0..n {
            let db = raw::RedisModule_LoadUnsigned.unwrap()(rdb) as usize;
            let (Some(key), Some(words)) = (load_bytes(rdb), load_words(rdb)) else {
                return raw::REDISMODULE_ERR as c_int;
            };
            if kind == 0 {
                let Ok(spec) = locus::request_log::LogSpec::parse(&words) else {
                    return raw::REDISMODULE_ERR as c_int;
                };
                store.request_logs.set(db, key, spec);
            } else {
                let Ok(m) = locus::cmd::monitors::from_words(&words) else {
                    return raw::REDISMODULE_ERR as c_int;
                };
                store.monitors.set(db, key, parking_lot::Mutex::new(m));
            }
        }
    }
    OK
}
