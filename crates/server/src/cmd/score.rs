//! AI.SCORE and AI.JOB: batch scoring jobs over the keyspace (see `crate::jobs`).

use super::routers::{self, RunTarget};
use super::{Args, CmdError, CmdResult, Ctx};
use crate::jobs;
use crate::server::reply::Reply;
use crate::store::{Value, SHARDS};
use bytes::Bytes;
use locus_engine::score::{InputSpec, Job, OutputSpec, Progress, ScoreSpec, State};
use std::sync::Arc;

/// Jobs a database may hold (running or finished); AI.JOB DEL makes room.
pub const MAX_JOBS: usize = 1024;

pub fn no_such_job(name: &[u8]) -> CmdError {
    CmdError::new(format!(
        "ERR no such job '{}'",
        String::from_utf8_lossy(name)
    ))
}

/// `AI.SCORE job MODEL key [VERSION n] MATCH pattern (HASH FIELDS n f… [AS type] | TENSOR)
/// [CONST k key…] OUTPUT (FIELD name [INDEX i] | TENSOR suffix [INDEX i]) [BATCH n]
/// [LIMIT n] [PRIORITY LOW|NORMAL]`: checks the definition against the model and starts the
/// job in the background.
pub fn score(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let name = args.next()?;
    if name.is_empty() {
        return Err(CmdError::new("ERR a job needs a non-empty name"));
    }
    let spec = ScoreSpec::parse(&args.rest()).map_err(CmdError)?;
    let server = Arc::clone(ctx.server);
    let db = ctx.client.db;
    if server.store.jobs.get(db, &name).is_some() {
        return Err(already_exists(&name));
    }
    let loading = server.loading.load(std::sync::atomic::Ordering::Relaxed);
    // Replayed from the AOF, the definition was checked when it was given.
    let version = if loading { None } else { check(ctx, &spec)? };
    if !loading && server.store.jobs.count(db) >= MAX_JOBS {
        return Err(too_many_jobs());
    }
    let mut progress = Progress::new(ctx.now());
    progress.version = version;
    let job = Arc::new(Job::new(name.clone(), spec, progress));
    server.store.jobs.insert(db, name, Arc::clone(&job));
    ctx.dirty(1);
    if !loading {
        jobs::start(&server, db, job);
    }
    Ok(Reply::OK)
}

pub fn already_exists(name: &[u8]) -> CmdError {
    CmdError::new(format!(
        "ERR job '{}' already exists: AI.JOB DEL it first",
        String::from_utf8_lossy(name)
    ))
}

pub fn too_many_jobs() -> CmdError {
    CmdError::new(format!(
        "ERR this database holds {MAX_JOBS} jobs: AI.JOB DEL finished ones first"
    ))
}

/// Checks a definition against what the keyspace holds: the model or router, its inputs and
/// outputs, the CONST tensors. Returns the model version the job will use.
pub fn check(ctx: &Ctx, spec: &ScoreSpec) -> Result<Option<u64>, CmdError> {
    let target = routers::lookup(ctx, &spec.model, spec.version)?;
    let version = match &target {
        RunTarget::Model(_) => {
            let versions = super::models::get_versions(ctx, &spec.model)?;
            Some(versions.resolve(spec.version).map_err(CmdError)?.number)
        }
        RunTarget::Router(_) => None,
    };
    let model = routers::signature(ctx, &target)?;
    let given = 1 + spec.consts.len();
    if model.inputs.len() != given {
        return Err(CmdError::new(format!(
            "ERR the model takes {} inputs; AI.SCORE gives {given} (the rows and {} CONST)",
            model.inputs.len(),
            spec.consts.len()
        )));
    }
    let port = &model.inputs[0];
    if let InputSpec::Hash { fields, dtype } = &spec.input {
        if let [_, width] = port.dims[..] {
            if width > 0 && width as usize != fields.len() {
                return Err(CmdError::new(format!(
                    "ERR the model's input '{}' takes {width} values per row; HASH FIELDS names {}",
                    port.name,
                    fields.len()
                )));
            }
        }
        if let (Some(want), Some(have)) = (dtype, port.dtype) {
            if *want != have {
                return Err(CmdError::new(format!(
                    "ERR the model's input '{}' is {}, not {}",
                    port.name,
                    have.name(),
                    want.name()
                )));
            }
        }
    }
    for k in &spec.consts {
        let shard = ctx.db().read(k);
        match shard.get(k, ctx.now()).map(|e| &e.value) {
            Some(Value::Tensor(t)) if t.shape().first() == Some(&1) => {}
            Some(Value::Tensor(_)) => {
                return Err(CmdError::new(format!(
                    "ERR CONST tensor '{}' must have 1 as its first dimension (it is given to every row)",
                    String::from_utf8_lossy(k)
                )))
            }
            Some(_) => return Err(CmdError::wrong_type()),
            None => {
                return Err(CmdError::new(format!(
                    "ERR CONST key '{}' does not exist",
                    String::from_utf8_lossy(k)
                )))
            }
        }
    }
    match &spec.output {
        OutputSpec::Tensor { index, .. } if *index >= model.outputs.len() => {
            Err(CmdError::new(format!(
                "ERR the model has {} outputs; INDEX {index} is past them",
                model.outputs.len()
            )))
        }
        OutputSpec::Field { index, .. } => {
            // With every output's width known, a column past them is refused now.
            let widths: Option<usize> = model
                .outputs
                .iter()
                .map(|p| {
                    let rest = p.dims.get(1..)?;
                    rest.iter()
                        .try_fold(1usize, |acc, &d| (d > 0).then(|| acc * d as usize))
                        .or_else(|| p.labels.as_ref().map(|l| l.len()))
                })
                .sum();
            match widths {
                Some(w) if *index >= w => Err(CmdError::new(format!(
                    "ERR the model's outputs have {w} columns per row; INDEX {index} is past them"
                ))),
                _ => Ok(version),
            }
        }
        _ => Ok(version),
    }
}

fn get_job(ctx: &Ctx, name: &[u8]) -> Result<Arc<Job>, CmdError> {
    ctx.server
        .store
        .jobs
        .get(ctx.client.db, name)
        .ok_or_else(|| no_such_job(name))
}

fn int(n: u64) -> Reply {
    Reply::Int(n.min(i64::MAX as u64) as i64)
}

fn field(name: &'static str, value: Reply) -> (Reply, Reply) {
    (Reply::Bulk(Bytes::from_static(name.as_bytes())), value)
}

/// `AI.JOB GET job`: the job's definition and where it stands.
pub fn get(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let name = args.next()?;
    let job = get_job(ctx, &name)?;
    Ok(job_reply(&job, SHARDS))
}

/// AI.JOB GET's reply for `job` over a keyspace of `partitions` partitions.
pub fn job_reply(job: &Job, partitions: usize) -> Reply {
    let s = job.snapshot(partitions);
    let p = &s.progress;
    let opt = |v: Option<u64>| v.map_or(Reply::Null, int);
    let mut reply = vec![
        field("job", Reply::Bulk(job.name.clone())),
        field(
            "state",
            Reply::Bulk(Bytes::from_static(p.state.name().as_bytes())),
        ),
        field("model", Reply::Bulk(job.spec.model.clone())),
        field("version", opt(p.version)),
        field("match", Reply::Bulk(job.spec.pattern.clone())),
        field("keys_scanned", int(p.keys_scanned)),
        field("rows_scored", int(p.rows_scored)),
        field("rows_failed", int(p.rows_failed)),
        field(
            "rows_per_sec",
            Reply::Bulk(Bytes::from(format!("{:.1}", s.rows_per_sec))),
        ),
        field("eta_ms", opt(s.eta_ms)),
        field("started", int(p.started_ms)),
        field(
            "finished",
            opt((p.finished_ms > 0).then_some(p.finished_ms)),
        ),
        field(
            "progress",
            Reply::Bulk(Bytes::from(format!(
                "{:.1}%",
                match p.state {
                    State::Done => 100.0,
                    _ => p.partition as f64 * 100.0 / partitions as f64,
                }
            ))),
        ),
        field(
            "error",
            p.error
                .as_ref()
                .map_or(Reply::Null, |e| Reply::Bulk(Bytes::from(e.clone()))),
        ),
    ];
    reply.push(field(
        "failures",
        Reply::Array(
            p.failures
                .iter()
                .map(|(k, why)| {
                    Reply::Array(vec![
                        Reply::Bulk(k.clone()),
                        Reply::Bulk(Bytes::from(why.clone())),
                    ])
                })
                .collect(),
        ),
    ));
    reply.push(field(
        "definition",
        Reply::Array(job.spec.to_words().into_iter().map(Reply::Bulk).collect()),
    ));
    Reply::Map(reply)
}

/// `AI.JOB LIST`: every job of the database with its state, by name.
pub fn list(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let db = ctx.client.db;
    let jobs: Vec<(Bytes, Arc<Job>)> = ctx
        .server
        .store
        .jobs
        .all()
        .into_iter()
        .filter(|(d, _, _)| *d == db)
        .map(|(_, k, j)| (k, j))
        .collect();
    Ok(list_reply(jobs))
}

/// AI.JOB LIST's reply: the jobs by name with their states.
pub fn list_reply(mut jobs: Vec<(Bytes, Arc<Job>)>) -> Reply {
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    Reply::Map(
        jobs.into_iter()
            .map(|(k, j)| {
                let state = j.progress.lock().state.name();
                (
                    Reply::Bulk(k),
                    Reply::Bulk(Bytes::from_static(state.as_bytes())),
                )
            })
            .collect(),
    )
}

/// `AI.JOB CANCEL job`: stops a running job after the batch in hand; what it wrote stays.
pub fn cancel(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let name = args.next()?;
    let job = get_job(ctx, &name)?;
    if !job.cancel(ctx.now()) {
        return Err(not_running(&job));
    }
    jobs::publish(ctx.server, ctx.client.db, &job);
    ctx.dirty(1);
    Ok(Reply::OK)
}

/// AI.JOB CANCEL's error for a job that has ended.
pub fn not_running(job: &Job) -> CmdError {
    CmdError::new(format!(
        "ERR job '{}' is not running (it is {})",
        String::from_utf8_lossy(&job.name),
        job.progress.lock().state.name()
    ))
}

/// The error AI.JOB CHECKPOINT gives a client: only the server writes it.
pub const ERR_CHECKPOINT_SENT: &str =
    "ERR AI.JOB CHECKPOINT is written by the server to its append-only file, not sent";

/// `AI.JOB DEL job`: cancels the job if it runs and forgets it. 1 when there was one, else 0.
pub fn del(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let name = args.next()?;
    let Some(job) = ctx.server.store.jobs.get(ctx.client.db, &name) else {
        return Ok(Reply::Int(0));
    };
    job.cancel(ctx.now());
    ctx.server.store.jobs.remove(ctx.client.db, &name);
    ctx.dirty(1);
    Ok(Reply::Int(1))
}

/// `AI.JOB CHECKPOINT job progress…`: a job's checkpoint as the AOF records it; accepted
/// only while the dataset loads.
pub fn checkpoint(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    if !ctx
        .server
        .loading
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(CmdError::new(ERR_CHECKPOINT_SENT));
    }
    let name = args.next()?;
    let job = get_job(ctx, &name)?;
    let words = args.rest();
    job.progress.lock().apply_words(&words).map_err(CmdError)?;
    Ok(Reply::OK)
}
