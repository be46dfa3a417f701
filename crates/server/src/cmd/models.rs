//! Model commands with RedisAI 1.2's syntax, replies and errors: AI.MODELSTORE (and the
//! deprecated AI.MODELSET), AI.MODELGET, AI.MODELDEL, AI._MODELSCAN, AI.MODELEXECUTE (and the
//! deprecated AI.MODELRUN), AI.INFO and AI.CONFIG.

use super::routers::RunTarget;
use super::tensors::{put_tensors_in, ERR_EMPTY_KEY};
use super::{own, Args, CmdError, CmdResult, Ctx};
use crate::audit::{Action, Actor};
use crate::engine::model::{Device, Model, ModelSpec};
use crate::engine::versions::{sha256_hex, VersionInfo, VersionedModel};
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::{Entry, Value, SHARDS};
use crate::tensor::Tensor;
use bytes::Bytes;
use locus_engine::router::route::{self, EventSink, Exec, Node};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const ERR_MODEL_EMPTY: &str = "ERR model key is empty";

/// The versions at `key`: RedisAI's empty-key error when missing, WRONGTYPE otherwise.
pub fn get_versions(ctx: &Ctx, key: &[u8]) -> Result<Arc<VersionedModel>, CmdError> {
    let shard = ctx.db().read(key);
    match shard.get(key, ctx.now()) {
        None => Err(CmdError::new(ERR_MODEL_EMPTY)),
        Some(Entry {
            value: Value::Model(m),
            ..
        }) => Ok(Arc::clone(m)),
        Some(_) => Err(CmdError::wrong_type()),
    }
}

fn parse_count(args: &mut Args, what: &str) -> Result<usize, CmdError> {
    let n = args
        .next_i64()
        .map_err(|_| CmdError::new(format!("ERR Invalid argument for {what}_count")))?;
    if n <= 0 {
        let mut w = what.to_string();
        w[..1].make_ascii_uppercase();
        return Err(CmdError::new(format!(
            "ERR {w} count must be a positive integer"
        )));
    }
    Ok(n as usize)
}

fn parse_uint(args: &mut Args, what: &str) -> Result<usize, CmdError> {
    args.next_i64()
        .ok()
        .filter(|n| *n >= 0)
        .map(|n| n as usize)
        .ok_or_else(|| CmdError::new(format!("ERR Invalid argument for {what}")))
}

/// `VERSION n` after a model key, if given (n a positive integer).
pub fn parse_version(args: &mut Args) -> Result<Option<u64>, CmdError> {
    if !args.eat("VERSION") {
        return Ok(None);
    }
    args.next_i64()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| Some(n as u64))
        .ok_or_else(|| CmdError::new("ERR VERSION must be a positive integer"))
}

/// A parsed MODELSTORE / MODELSET.
struct StoreRequest {
    spec: ModelSpec,
    chunks: Vec<Bytes>,
    /// STAGED: stored without being made live.
    staged: bool,
    meta: Vec<(Bytes, Bytes)>,
    /// Who stored the version and when, as the AOF logged it (`_STAMP ms user client`, only
    /// accepted while the dataset loads).
    stamp: Option<(u64, String, String)>,
}

/// Words that end a META list (a field may not be one of them).
const STORE_KEYWORDS: &[&[u8]] = &[
    b"BLOB",
    b"TAG",
    b"BATCHSIZE",
    b"MINBATCHSIZE",
    b"MINBATCHTIMEOUT",
    b"INPUTS",
    b"OUTPUTS",
    b"STAGED",
    b"META",
    b"_STAMP",
];

fn parse_meta(args: &mut Args) -> Result<Vec<(Bytes, Bytes)>, CmdError> {
    let bad = || CmdError::new("ERR META needs field value pairs");
    let mut meta = Vec::new();
    while let Some(field) = args.peek() {
        if STORE_KEYWORDS.iter().any(|k| field.eq_ignore_ascii_case(k)) {
            break;
        }
        let field = args.next()?;
        let value = args.next().map_err(|_| bad())?;
        meta.push((field, value));
    }
    if meta.is_empty() {
        return Err(bad());
    }
    Ok(meta)
}

/// Parses MODELSTORE (`counted` = true: INPUTS/OUTPUTS take a count) or MODELSET syntax.
fn parse_store(args: &mut Args, counted: bool, loading: bool) -> Result<StoreRequest, CmdError> {
    let backend = args.next_upper()?;
    if !matches!(backend.as_str(), "ONNX" | "TF" | "TFLITE" | "TORCH") {
        return Err(CmdError::new("ERR unsupported backend"));
    }
    let device_raw = args.next()?;
    // RedisAI refuses device strings of ten characters or more, and MODELSET a keyword there.
    let keyword = [
        &b"BLOB"[..],
        b"TAG",
        b"BATCHSIZE",
        b"MINBATCHSIZE",
        b"INPUTS",
        b"OUTPUTS",
    ]
    .iter()
    .any(|k| device_raw.eq_ignore_ascii_case(k));
    if device_raw.len() >= 10 || (keyword && !counted) {
        return Err(CmdError::new("ERR Invalid DEVICE"));
    }
    let device = Device::parse(&device_raw).ok_or_else(|| {
        CmdError::new(if counted {
            "ERR Invalid DEVICE"
        } else {
            "ERR unsupported device"
        })
    })?;
    let mut spec = ModelSpec {
        backend,
        device,
        device_name: String::from_utf8_lossy(&device_raw).into_owned(),
        tag: Bytes::new(),
        batchsize: 0,
        minbatchsize: 0,
        minbatchtimeout: 0,
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    let (mut staged, mut meta, mut stamp) = (false, Vec::new(), None);
    let names = |args: &mut Args, n: Option<usize>| -> Result<Vec<String>, CmdError> {
        let mut v = Vec::new();
        while let Some(a) = args.peek() {
            if n.is_some_and(|n| v.len() == n)
                || (n.is_none()
                    && (a.eq_ignore_ascii_case(b"OUTPUTS") || a.eq_ignore_ascii_case(b"BLOB")))
            {
                break;
            }
            v.push(String::from_utf8_lossy(args.next_slice()?).into_owned());
        }
        Ok(v)
    };
    loop {
        let Some(a) = args.peek() else {
            return Err(CmdError::new(
                "ERR Insufficient arguments, missing model BLOB",
            ));
        };
        let kw = String::from_utf8_lossy(a).to_ascii_uppercase();
        args.next_slice()?;
        match kw.as_str() {
            "TAG" => spec.tag = args.next()?,
            "BATCHSIZE" => spec.batchsize = parse_uint(args, "BATCHSIZE")?,
            "MINBATCHSIZE" => spec.minbatchsize = parse_uint(args, "MINBATCHSIZE")?,
            "MINBATCHTIMEOUT" => spec.minbatchtimeout = parse_uint(args, "MINBATCHTIMEOUT")? as u64,
            "INPUTS" => {
                let n = if counted {
                    Some(parse_count(args, "input")?)
                } else {
                    None
                };
                spec.inputs = names(args, n)?;
                if n.is_some_and(|n| spec.inputs.len() != n) {
                    return Err(CmdError::new(
                        "ERR number of model inputs does not match the given input count",
                    ));
                }
            }
            "OUTPUTS" => {
                let n = if counted {
                    Some(parse_count(args, "output")?)
                } else {
                    None
                };
                spec.outputs = names(args, n)?;
                if n.is_some_and(|n| spec.outputs.len() != n) {
                    return Err(CmdError::new(
                        "ERR number of model outputs does not match the given output count",
                    ));
                }
            }
            "BLOB" => break,
            // Beyond RedisAI: the model lifecycle's options (MODELSTORE only).
            "STAGED" if counted => staged = true,
            "META" if counted => meta.extend(parse_meta(args)?),
            "_STAMP" if loading => {
                let ms = args.next_i64()?.max(0) as u64;
                let user = String::from_utf8_lossy(&args.next()?).into_owned();
                let client = String::from_utf8_lossy(&args.next()?).into_owned();
                stamp = Some((ms, user, client));
            }
            _ => return Err(CmdError::new("ERR Invalid argument, expected BLOB")),
        }
    }
    if spec.minbatchsize > 0 && spec.batchsize == 0 {
        return Err(CmdError::new(
            "ERR MINBATCHSIZE specified without BATCHSIZE",
        ));
    }
    if spec.minbatchtimeout > 0 && spec.batchsize == 0 && !counted {
        return Err(CmdError::new(
            "ERR MINBATCHTIMEOUT specified without BATCHSIZE",
        ));
    }
    if spec.minbatchtimeout > 0 && spec.minbatchsize == 0 {
        return Err(CmdError::new(
            "ERR MINBATCHTIMEOUT specified without MINBATCHSIZE",
        ));
    }
    let chunks = args.rest();
    if chunks.is_empty() {
        return Err(CmdError::new(
            "ERR Insufficient arguments, missing model BLOB",
        ));
    }
    if spec.backend == "TF" && spec.inputs.is_empty() {
        return Err(CmdError::new("ERR INPUTS not specified for TF"));
    }
    if spec.backend != "ONNX" {
        // Locus runs ONNX models only: the other backends are never loaded.
        return Err(CmdError::new("ERR Could not load backend"));
    }
    Ok(StoreRequest {
        spec,
        chunks,
        staged,
        meta,
        stamp,
    })
}

/// A version ready to go into the keyspace, and what the AOF and the audit need of it.
struct NewVersion {
    key: Bytes,
    staged: bool,
    info: VersionInfo,
    /// The command as given, and the index of its BLOB word, where the AOF's copy gets the
    /// `_STAMP` that makes its replay reproduce `info`.
    argv: Vec<Bytes>,
    blob_at: usize,
    actor: Actor,
}

impl NewVersion {
    /// Puts the loaded model in as a new version of the key at time `now` and returns what
    /// to log: the store, the evictions `model-versions-max` made, and the audit entry.
    fn install(
        self,
        server: &Server,
        db: usize,
        now: u64,
        model: Model,
    ) -> Result<Vec<Vec<Bytes>>, Reply> {
        let NewVersion {
            key,
            staged,
            mut info,
            mut argv,
            blob_at,
            actor,
        } = self;
        if info.created_ms == 0 {
            info.created_ms = now;
        }
        let stamp = [
            Bytes::from_static(b"_STAMP"),
            Bytes::from(info.created_ms.to_string()),
            Bytes::from(info.created_by.clone()),
            Bytes::from(info.client_name.clone()),
        ];
        argv.splice(blob_at..blob_at, stamp);
        let loading = server.loading.load(Ordering::Relaxed);
        // While the AOF replays, the logged MODELDELs make the evictions.
        let max = if loading {
            usize::MAX
        } else {
            server.config.get_i64("model-versions-max").max(1) as usize
        };
        let sha256 = info.sha256.clone();
        let (number, evicted) = {
            let mut shard = server.store.db(db).write(&key);
            let mut versions = match shard.get(&key, now) {
                None => VersionedModel::default(),
                Some(Entry {
                    value: Value::Model(m),
                    ..
                }) => (**m).clone(),
                Some(_) => return Err(Reply::err(crate::cmd::WRONGTYPE_ERR)),
            };
            let added = versions.add(model, info, staged, max);
            let value = Value::Model(Arc::new(versions));
            // A new version keeps the key's time to live.
            match shard.get_mut(&key, now) {
                Some(e) => e.value = value,
                None => {
                    shard.insert(own(key.clone()), Entry::new(value), now);
                }
            }
            added
        };
        server.store.add_dirty(1);
        crate::notify::notify(server, crate::notify::MODULE, "ai.modelstore", &key, db);
        let mut log = vec![argv];
        for n in &evicted {
            log.push(vec![
                Bytes::from_static(b"AI.MODELDEL"),
                key.clone(),
                Bytes::from_static(b"VERSION"),
                Bytes::from(n.to_string()),
            ]);
        }
        let action = Action {
            command: "AI.MODELSTORE",
            key: &key,
            version: Some(number),
            sha256: &sha256,
            outcome: "ok",
            detail: "",
        };
        log.extend(crate::audit::append(server, db, now, &actor, &action));
        Ok(log)
    }
}

fn store_generic(ctx: &mut Ctx, args: &mut Args, counted: bool) -> CmdResult {
    super::check_arity(args, if counted { 6.. } else { 4.. })?;
    let key = args.next()?;
    let loading = ctx.server.loading.load(Ordering::Relaxed);
    let req = parse_store(args, counted, loading)?;
    let blob = if req.chunks.len() == 1 {
        req.chunks[0].clone()
    } else {
        Bytes::from(req.chunks.concat())
    };
    let actor = Actor::of(ctx.client);
    let (created_ms, created_by, client_name) = req
        .stamp
        .unwrap_or_else(|| (0, actor.user.clone(), actor.name.clone()));
    let argv = args.request().to_vec();
    let blob_at = argv.len() - req.chunks.len() - 1;
    let mut new = NewVersion {
        key,
        staged: req.staged,
        info: VersionInfo {
            created_ms,
            created_by,
            client_name,
            sha256: String::new(),
            meta: req.meta,
        },
        argv,
        blob_at,
        actor,
    };
    let spec = req.spec;
    let server = ctx.server.clone();
    let db = ctx.client.db;
    if ctx.in_exec {
        // Inside EXEC nothing may wait: the model is loaded in place, as RedisAI does.
        let now = ctx.now();
        if ctx
            .db()
            .read(&new.key)
            .get(&new.key, now)
            .is_some_and(|e| !matches!(e.value, Value::Model(_)))
        {
            return Err(CmdError::wrong_type());
        }
        let engine = server.engine.clone();
        new.info.sha256 = sha256_hex(&blob);
        let model = engine
            .onnx(None)
            .and_then(|backend| Model::load(backend, spec, blob, engine.session_options()));
        let model = match model {
            Ok(m) => m,
            Err(e) => {
                ctx.propagate = crate::audit::append(
                    &server,
                    db,
                    now,
                    &new.actor,
                    &Action::refused("AI.MODELSTORE", &new.key, None, &e),
                )
                .map(|x| vec![x]);
                return Err(CmdError(e));
            }
        };
        let log = new.install(&server, db, now, model).map_err(|r| match r {
            Reply::Error(e) => CmdError(e),
            _ => CmdError::wrong_type(),
        })?;
        ctx.propagate = Some(log);
        ctx.dirty(1);
        return Ok(Reply::OK);
    }
    ctx.defer(async move {
        // Parsing and optimising a model takes a while: never on an I/O thread.
        let engine = server.engine.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let sha256 = sha256_hex(&blob);
            let backend = engine.onnx(None)?;
            Model::load(backend, spec, blob, engine.session_options()).map(|m| (m, sha256))
        })
        .await
        .unwrap_or_else(|e| Err(format!("ERR model loading failed: {e}")));
        let mut txn = server.aof.begin();
        let now = crate::util::now_ms();
        let (log, reply) = match loaded {
            Ok((model, sha256)) => {
                new.info.sha256 = sha256;
                match new.install(&server, db, now, model) {
                    Ok(log) => (log, Reply::OK),
                    Err(r) => (Vec::new(), r),
                }
            }
            Err(e) => {
                let log = crate::audit::append(
                    &server,
                    db,
                    now,
                    &new.actor,
                    &Action::refused("AI.MODELSTORE", &new.key, None, &e),
                );
                (log.into_iter().collect(), Reply::Error(e))
            }
        };
        if let (Some(txn), false) = (txn.as_mut(), log.is_empty()) {
            txn.record(db, now, log.iter().map(|c| c.iter()));
        }
        reply
    })
}

pub fn modelstore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    store_generic(ctx, args, true)
}

pub fn modelset(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    store_generic(ctx, args, false)
}

/// The argument count a command allows, two more when `VERSION n` follows its key.
fn check_arity_versioned(
    args: &Args,
    range: std::ops::RangeInclusive<usize>,
) -> Result<(), CmdError> {
    let versioned = args.argc() > 2 && args.request().arg(2).eq_ignore_ascii_case(b"VERSION");
    if versioned {
        super::check_arity(args, range.start() + 2..=range.end() + 2)
    } else {
        super::check_arity(args, range)
    }
}

pub fn modelget(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    check_arity_versioned(args, 2..=4)?;
    let key = args.next()?;
    let versions = get_versions(ctx, &key)?;
    let version = versions
        .resolve(parse_version(args)?)
        .map_err(CmdError)?
        .clone();
    let m = &version.model;
    // RedisAI ignores words other than META and BLOB.
    let (mut meta, mut blob) = (false, false);
    while !args.is_empty() {
        match args.next_upper()?.as_str() {
            "META" => meta = true,
            "BLOB" => blob = true,
            _ => {}
        }
    }
    if !meta && !blob {
        meta = true;
        blob = true;
    }
    let chunk = ctx.server.engine.config.read().model_chunk_size.max(1);
    // RedisAI's chunking: len / chunk + 1 parts, the last holding len % chunk bytes (empty when
    // the blob is a whole number of chunks).
    let blob_reply = || {
        let len = m.blob.len();
        let chunks: Vec<Bytes> = (0..len / chunk + 1)
            .map(|i| {
                m.blob
                    .slice((i * chunk).min(len)..((i + 1) * chunk).min(len))
            })
            .collect();
        if chunks.len() == 1 {
            Reply::Bulk(chunks.into_iter().next().expect("one chunk"))
        } else {
            Reply::Array(chunks.into_iter().map(Reply::Bulk).collect())
        }
    };
    if !meta {
        return Ok(blob_reply());
    }
    let s = &m.spec;
    let names = |v: &[crate::engine::model::Port]| {
        Reply::Array(v.iter().map(|p| Reply::bulk_str(&p.name)).collect())
    };
    let mut fields = vec![
        (Reply::bulk_str("backend"), Reply::bulk_str(&s.backend)),
        (Reply::bulk_str("device"), Reply::bulk_str(&s.device_name)),
        (Reply::bulk_str("tag"), Reply::Bulk(s.tag.clone())),
        (Reply::bulk_str("batchsize"), Reply::Int(s.batchsize as i64)),
        (
            Reply::bulk_str("minbatchsize"),
            Reply::Int(s.minbatchsize as i64),
        ),
        (Reply::bulk_str("inputs"), names(&m.inputs)),
        (Reply::bulk_str("outputs"), names(&m.outputs)),
        (
            Reply::bulk_str("minbatchtimeout"),
            Reply::Int(s.minbatchtimeout as i64),
        ),
    ];
    // Beyond RedisAI: the class labels of an ONNX-ML classifier's probabilities, in the
    // order of the FLOAT tensor's columns.
    if let Some(labels) = m.labels() {
        fields.push((
            Reply::bulk_str("labels"),
            Reply::Array(labels.iter().map(|l| Reply::bulk_str(l)).collect()),
        ));
    }
    // Beyond RedisAI: the metadata given with META, when there is any.
    if !version.info.meta.is_empty() {
        fields.push((Reply::bulk_str("meta"), meta_reply(&version.info.meta)));
    }
    if blob {
        fields.push((Reply::bulk_str("blob"), blob_reply()));
    }
    Ok(Reply::flat_pairs(fields))
}

/// META's field/value pairs as a flat array (a map under RESP3).
pub fn meta_reply(meta: &[(Bytes, Bytes)]) -> Reply {
    Reply::flat_pairs(
        meta.iter()
            .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
            .collect(),
    )
}

/// `AI.MODELDEL key [VERSION n]`: the whole model, or one version that is not live.
pub fn modeldel(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    check_arity_versioned(args, 2..=2)?;
    let key = args.next()?;
    let versions = get_versions(ctx, &key)?;
    let number = parse_version(args)?;
    let now = ctx.now();
    let actor = Actor::of(ctx.client);
    let (db, server) = (ctx.client.db, ctx.server.clone());
    let sha256 = match number {
        None => {
            let sha = versions.live().map(|v| v.info.sha256.clone());
            ctx.db().write(&key).remove(&key, now);
            sha.unwrap_or_default()
        }
        Some(n) => {
            let mut next = (*versions).clone();
            let sha = next
                .get(n)
                .map(|v| v.info.sha256.clone())
                .unwrap_or_default();
            if let Err(e) = next.remove(n) {
                ctx.propagate = crate::audit::append(
                    &server,
                    db,
                    now,
                    &actor,
                    &Action::refused("AI.MODELDEL", &key, number, &e),
                )
                .map(|x| vec![x]);
                return Err(CmdError(e));
            }
            replace_versions(ctx, &key, next);
            sha
        }
    };
    ctx.notify(crate::notify::MODULE, "ai.modeldel", &key);
    ctx.dirty(1);
    let mut log = vec![args.request().to_vec()];
    let action = Action {
        command: "AI.MODELDEL",
        key: &key,
        version: number,
        sha256: &sha256,
        outcome: "ok",
        detail: "",
    };
    log.extend(crate::audit::append(&server, db, now, &actor, &action));
    ctx.propagate = Some(log);
    Ok(Reply::OK)
}

/// Swaps in the next state of a model key (its time to live stays).
pub fn replace_versions(ctx: &Ctx, key: &[u8], next: VersionedModel) {
    let now = ctx.now();
    let mut shard = ctx.db().write(key);
    if let Some(e) = shard.get_mut(key, now) {
        e.value = Value::Model(Arc::new(next));
    }
}

pub fn modelscan(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 1..=1)?;
    let now = ctx.now();
    let mut out = Vec::new();
    for db in ctx.server.store.dbs() {
        for i in 0..SHARDS {
            let shard = db.shard(i).read();
            for (k, e) in shard.iter(now) {
                if let Value::Model(m) = &e.value {
                    out.push(modelscan_entry(k.clone(), m));
                }
            }
        }
    }
    Ok(Reply::Array(out))
}

/// One AI._MODELSCAN entry: the key and the tag of its live (else newest) version.
pub fn modelscan_entry(key: Bytes, m: &VersionedModel) -> Reply {
    let tag = m
        .live()
        .or(m.versions().last())
        .map(|v| v.model.spec.tag.clone())
        .unwrap_or_default();
    Reply::Array(vec![Reply::Bulk(key), Reply::Bulk(tag)])
}

/// A parsed MODELEXECUTE / MODELRUN request.
pub struct ExecRequest {
    /// The key the request named (a model or a router).
    pub key: Bytes,
    /// The model, or what the router at the key decided.
    pub node: Node,
    /// Where the router's events go (routed requests only).
    pub events: Option<Arc<dyn EventSink>>,
    pub inputs: Vec<Bytes>,
    pub outputs: Vec<Bytes>,
    /// The model outputs `outputs` receive, in order (see `Model::output_selection`).
    pub selection: Vec<usize>,
    pub timeout_ms: Option<u64>,
}

fn parse_timeout(args: &mut Args) -> Result<u64, CmdError> {
    if args.is_empty() {
        return Err(CmdError::new("ERR No value provided for TIMEOUT"));
    }
    args.next_i64()
        .ok()
        .filter(|t| *t > 0)
        .map(|t| t as u64)
        .ok_or_else(|| CmdError::new("ERR Invalid value for TIMEOUT"))
}

/// RedisAI's own arity texts for MODELEXECUTE (at least 8 words) and MODELRUN (6), which it
/// writes with the upper-case name, standalone and inside DAGs.
pub fn exec_arity(args: &Args, counted: bool) -> Result<(), CmdError> {
    let (min, name) = if counted {
        (8, "AI.MODELEXECUTE")
    } else {
        (6, "AI.MODELRUN")
    };
    if args.argc() < min {
        return Err(CmdError::new(format!(
            "ERR wrong number of arguments for '{name}' command"
        )));
    }
    Ok(())
}

/// `key INPUTS n k… OUTPUTS m k… [TIMEOUT t]` (MODELEXECUTE) or `key [TIMEOUT t] INPUTS k…
/// OUTPUTS k…` (MODELRUN).
pub fn parse_exec(ctx: &Ctx, args: &mut Args, counted: bool) -> Result<ExecRequest, CmdError> {
    let key = args.next()?;
    let version = parse_version(args)?;
    let target = super::routers::lookup(ctx, &key, version)?;
    // A router's requests are checked against the model its first targets lead to.
    let model = super::routers::signature(ctx, &target)?;
    let mut timeout_ms = None;
    if !counted && args.eat("TIMEOUT") {
        timeout_ms = Some(parse_timeout(args)?);
    }
    if !args.eat("INPUTS") {
        return Err(CmdError::new("ERR INPUTS not specified"));
    }
    let mut inputs = Vec::new();
    if counted {
        let n = parse_count(args, "input")?;
        if n != model.inputs.len() {
            return Err(CmdError::new(
                "Number of keys given as INPUTS here does not match model definition",
            ));
        }
        for _ in 0..n {
            inputs.push(args.next().map_err(|_| CmdError::new("ERR number of input keys to AI.MODELEXECUTE command does not match the number of given arguments"))?);
        }
    } else {
        while args
            .peek()
            .is_some_and(|a| !a.eq_ignore_ascii_case(b"OUTPUTS"))
        {
            inputs.push(args.next()?);
        }
        if inputs.len() != model.inputs.len() {
            return Err(CmdError::new(
                "Number of keys given as INPUTS here does not match model definition",
            ));
        }
    }
    if !args.eat("OUTPUTS") {
        if !counted {
            // MODELRUN's inputs ran to the end: RedisAI counts zero outputs.
            return Err(CmdError::new(
                "Number of keys given as OUTPUTS here does not match model definition",
            ));
        }
        return Err(CmdError::new("ERR OUTPUTS not specified"));
    }
    let mut outputs = Vec::new();
    let selection;
    if counted {
        let n = parse_count(args, "output")?;
        selection = model.output_selection(n).ok_or_else(|| {
            CmdError::new("Number of keys given as OUTPUTS here does not match model definition")
        })?;
        for _ in 0..n {
            outputs.push(args.next().map_err(|_| CmdError::new("ERR number of output keys to AI.MODELEXECUTE command does not match the number of given arguments"))?);
        }
        if args.eat("TIMEOUT") {
            timeout_ms = Some(parse_timeout(args)?);
        }
        if let Some(extra) = args.peek() {
            return Err(CmdError::new(format!(
                "Invalid argument: {}",
                String::from_utf8_lossy(extra)
            )));
        }
    } else {
        outputs = args.rest();
        selection = model.output_selection(outputs.len()).ok_or_else(|| {
            CmdError::new("Number of keys given as OUTPUTS here does not match model definition")
        })?;
    }
    args.finish()?;
    let (node, events) = match target {
        RunTarget::Model(m) => (Node::model(m), None),
        RunTarget::Router(r) => {
            let sticky = inputs.first().map(|b| &b[..]).unwrap_or_default();
            let sink = super::routers::events(ctx);
            let node = super::routers::resolve(ctx, &key, &r, sticky, &outputs, &sink)?;
            (node, Some(sink))
        }
    };
    Ok(ExecRequest {
        key,
        node,
        events,
        inputs,
        outputs,
        selection,
        timeout_ms,
    })
}

/// Reads the input tensors of a request (one consistent read per key).
pub fn read_inputs(ctx: &Ctx, keys: &[Bytes]) -> Result<Vec<Arc<Tensor>>, CmdError> {
    keys.iter()
        .map(|k| {
            super::tensors::get_tensor(ctx, k).map_err(|e| {
                if e.0 == ERR_EMPTY_KEY {
                    CmdError::new(ERR_EMPTY_KEY)
                } else {
                    e
                }
            })
        })
        .collect()
}

/// Refuses output keys that hold something other than a tensor, before anything runs.
pub fn check_outputs(ctx: &Ctx, keys: &[Bytes]) -> Result<(), CmdError> {
    for k in keys {
        let shard = ctx.db().read(k);
        if shard
            .get(k, ctx.now())
            .is_some_and(|e| !matches!(e.value, Value::Tensor(_)))
        {
            return Err(CmdError::wrong_type());
        }
    }
    Ok(())
}

/// Runs a model through the engine and waits for it, honouring TIMEOUT while queued.
pub async fn run_model(
    server: &Arc<Server>,
    model: Arc<Model>,
    inputs: Vec<Arc<Tensor>>,
    timeout_ms: Option<u64>,
) -> Result<Vec<Tensor>, Reply> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let rx = server
        .engine
        .submit(Arc::clone(&model), inputs, cancelled.clone());
    let result = match timeout_ms {
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), rx).await {
            Ok(r) => r,
            Err(_) => {
                cancelled.store(true, Ordering::Relaxed);
                model.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(Reply::Status("TIMEDOUT"));
            }
        },
        None => rx.await,
    };
    match result {
        Ok(Ok(outputs)) => Ok(outputs),
        Ok(Err(e)) => Err(Reply::Error(e)),
        Err(_) => Err(Reply::err("ERR model run was abandoned by the engine")),
    }
}

fn execute_generic(ctx: &mut Ctx, args: &mut Args, counted: bool) -> CmdResult {
    super::transactions::refuse_in_exec(ctx)?;
    exec_arity(args, counted)?;
    let req = parse_exec(ctx, args, counted)?;
    let tensors = read_inputs(ctx, &req.inputs)?;
    let signature = Arc::clone(req.node.signature());
    signature.admit(&tensors).map_err(CmdError)?;
    check_outputs(ctx, &req.outputs)?;
    let server = ctx.server.clone();
    let db = ctx.client.db;
    // Settings belong to the database the call serves (itself, except in a stand-in).
    let home = server.outbox.home(db);
    let log = server
        .store
        .request_logs
        .get(home, &req.key)
        .map(|spec| RunLog::start(ctx, spec, &req.key, &req.node));
    let monitor = server.store.monitors.get(home, &req.key);
    if let Some(sink) = req.events.clone() {
        return ctx.defer(run_routed(server, db, req, tensors, sink, log, monitor));
    }
    let Exec::Model(model) = req.node.exec else {
        unreachable!("a direct request runs one model")
    };
    ctx.defer(async move {
        let kept =
            (log.is_some() || monitor.is_some()).then(|| (Arc::clone(&model), tensors.clone()));
        let result = run_model(&server, model, tensors, req.timeout_ms).await;
        let outputs = result.map(|o| crate::engine::model::select_outputs(o, &req.selection));
        if let (Some(m), Some((_, tensors)), Ok(out)) = (&monitor, &kept, &outputs) {
            super::monitors::observe(&server, db, &req.key, m, tensors, out);
        }
        if let (Some(log), Some((model, tensors))) = (log, kept) {
            let names = LoggedNames {
                key: &req.key,
                inputs: &req.inputs,
                outputs: &req.outputs,
            };
            log.finish(&server, db, &names, Some(&model), &tensors, &outputs);
        }
        write_outputs(&server, db, &req.outputs, outputs)
    })
}

/// Writes a run's outputs under the request's output keys, or answers its failure.
fn write_outputs(
    server: &Server,
    db: usize,
    keys: &[Bytes],
    outputs: Result<Vec<Tensor>, Reply>,
) -> Reply {
    match outputs {
        Ok(outputs) => {
            let results = keys.iter().cloned().zip(outputs).collect();
            match put_tensors_in(server, db, results) {
                Ok(()) => {
                    // A run finished: each output key announces it.
                    for k in keys {
                        crate::notify::notify(
                            server,
                            crate::notify::MODULE,
                            "ai.modelexecute",
                            k,
                            db,
                        );
                    }
                    Reply::OK
                }
                Err(e) => e.into(),
            }
        }
        Err(r) => r,
    }
}

/// The names a logged run records.
pub struct LoggedNames<'a> {
    pub key: &'a Bytes,
    pub inputs: &'a [Bytes],
    pub outputs: &'a [Bytes],
}

/// A run being logged (AI.LOG): what the log needs from the request's start.
pub struct RunLog {
    spec: Arc<crate::request_log::LogSpec>,
    decisions: Vec<(Bytes, Bytes)>,
    actor: Actor,
    started: std::time::Instant,
    /// The version number of the model a direct run runs, found when it starts (while the
    /// key is at hand: a stand-in database lets go of it once the run is queued).
    version: Option<u64>,
}

impl RunLog {
    pub fn start(
        ctx: &Ctx,
        spec: Arc<crate::request_log::LogSpec>,
        key: &[u8],
        node: &Node,
    ) -> RunLog {
        let version = match &node.exec {
            Exec::Model(m) => {
                let shard = ctx.db().read(key);
                match shard.get(key, ctx.now()) {
                    Some(Entry {
                        value: Value::Model(vm),
                        ..
                    }) => vm
                        .versions()
                        .iter()
                        .find(|v| Arc::ptr_eq(&v.model, m))
                        .map(|v| v.number),
                    _ => None,
                }
            }
            _ => None,
        };
        RunLog {
            spec,
            decisions: node.decisions(),
            actor: Actor::of(ctx.client),
            started: std::time::Instant::now(),
            version,
        }
    }

    /// Appends the run to the log stream (when sampled) and logs that to the AOF. `model` is
    /// the model of a direct run (whose version the log records).
    pub fn finish(
        self,
        server: &Server,
        db: usize,
        req: &LoggedNames,
        model: Option<&Arc<Model>>,
        tensors: &[Arc<Tensor>],
        outputs: &Result<Vec<Tensor>, Reply>,
    ) {
        let now = crate::util::now_ms();
        let version = model.and(self.version);
        let error = match outputs {
            Err(Reply::Error(e)) => Some(e.clone()),
            Err(Reply::Status(s)) => Some(s.to_string()),
            Err(_) => Some("error".to_string()),
            Ok(_) => None,
        };
        let no_outputs = Vec::new();
        let record = crate::request_log::RunRecord {
            key: req.key,
            decisions: self.decisions,
            version,
            inputs: req.inputs,
            outputs: req.outputs,
            input_tensors: tensors,
            output_tensors: outputs.as_ref().unwrap_or(&no_outputs),
            latency_us: self.started.elapsed().as_micros() as u64,
            ok: match &error {
                None => Ok(()),
                Some(e) => Err(e),
            },
            client: self.actor.name,
            user: self.actor.user,
        };
        let mut txn = server.aof.begin();
        if let Some(xadd) = crate::request_log::record(server, db, &self.spec, record) {
            if let Some(txn) = txn.as_mut() {
                txn.record(db, now, [xadd.iter()]);
            }
        }
    }
}

/// A request through a router: runs what it decided, answers, then lets the shadow run.
async fn run_routed(
    server: Arc<Server>,
    db: usize,
    req: ExecRequest,
    tensors: Vec<Arc<Tensor>>,
    sink: Arc<dyn EventSink>,
    log: Option<RunLog>,
    monitor: Option<Arc<parking_lot::Mutex<locus_engine::monitor::Monitor>>>,
) -> Reply {
    let logged = (log.is_some() || monitor.is_some()).then(|| tensors.clone());
    let cancelled = Arc::new(AtomicBool::new(false));
    let signature = Arc::clone(req.node.signature());
    let run = route::run(
        server.engine.clone(),
        req.node,
        tensors,
        sink,
        cancelled.clone(),
    );
    let finished = match req.timeout_ms {
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), run).await {
            Ok(f) => f,
            Err(_) => {
                cancelled.store(true, Ordering::Relaxed);
                signature.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                return Reply::Status("TIMEDOUT");
            }
        },
        None => run.await,
    };
    let outputs = match finished.result {
        Ok(outputs) => {
            let outputs = crate::engine::model::select_outputs(outputs, &req.selection);
            if outputs.len() != req.outputs.len() {
                Err(Reply::err(
                    "ERR the model that answered has fewer outputs than the request names",
                ))
            } else {
                Ok(outputs)
            }
        }
        Err(e) => Err(Reply::Error(e)),
    };
    if let (Some(m), Some(tensors), Ok(out)) = (&monitor, &logged, &outputs) {
        super::monitors::observe(&server, db, &req.key, m, tensors, out);
    }
    if let (Some(log), Some(tensors)) = (log, logged) {
        let names = LoggedNames {
            key: &req.key,
            inputs: &req.inputs,
            outputs: &req.outputs,
        };
        log.finish(&server, db, &names, None, &tensors, &outputs);
    }
    let reply = write_outputs(&server, db, &req.outputs, outputs);
    // The connection writes the reply before this event loop runs the spawned task.
    if let Some(shadow) = finished.shadow {
        tokio::spawn(shadow);
    }
    reply
}

pub fn modelexecute(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    execute_generic(ctx, args, true)
}

pub fn modelrun(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    execute_generic(ctx, args, false)
}

pub fn info(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 2..=3)?;
    let key = args.next()?;
    // A third word other than RESETSTAT is ignored, as RedisAI does.
    let reset = args.eat("RESETSTAT");
    let m = {
        let shard = ctx.db().read(&key);
        match shard.get(&key, ctx.now()) {
            // The live version's statistics: a new store starts them afresh, as in RedisAI.
            Some(Entry {
                value: Value::Model(m),
                ..
            }) => match m.live() {
                Some(v) => Arc::clone(&v.model),
                None => return Err(CmdError::new("ERR cannot find run info for key")),
            },
            // A router's per-target figures, as AI.ROUTERINFO gives them.
            Some(Entry {
                value: Value::Router(r),
                ..
            }) => {
                let r = Arc::clone(r);
                drop(shard);
                if reset {
                    r.reset_stats();
                    return Ok(Reply::OK);
                }
                return Ok(super::routers::info_reply(key, &r));
            }
            _ => return Err(CmdError::new("ERR cannot find run info for key")),
        }
    };
    if reset {
        m.stats.reset();
        return Ok(Reply::OK);
    }
    let st = &m.stats;
    let (total, batches) = (st.total_us.snapshot(), st.batch_size.snapshot());
    let s = |v: &str| Reply::bulk_str(v);
    Ok(Reply::flat_pairs(vec![
        (s("key"), Reply::Bulk(key)),
        (s("type"), s("MODEL")),
        (s("backend"), s(&m.spec.backend)),
        (s("device"), s(&m.spec.device_name)),
        (s("tag"), Reply::Bulk(m.spec.tag.clone())),
        (
            s("duration"),
            Reply::Int(st.duration_us.load(Ordering::Relaxed) as i64),
        ),
        (
            s("samples"),
            Reply::Int(st.samples.load(Ordering::Relaxed) as i64),
        ),
        (
            s("calls"),
            Reply::Int(st.calls.load(Ordering::Relaxed) as i64),
        ),
        (
            s("errors"),
            Reply::Int(st.errors.load(Ordering::Relaxed) as i64),
        ),
        // Beyond RedisAI: timeouts, request latency percentiles (queue wait plus run, from
        // the metrics histogram) and batch sizes.
        (
            s("timeouts"),
            Reply::Int(st.timeouts.load(Ordering::Relaxed) as i64),
        ),
        (s("p50_us"), Reply::Int(total.quantile(0.50).round() as i64)),
        (s("p90_us"), Reply::Int(total.quantile(0.90).round() as i64)),
        (s("p99_us"), Reply::Int(total.quantile(0.99).round() as i64)),
        (
            s("p999_us"),
            Reply::Int(total.quantile(0.999).round() as i64),
        ),
        (s("runs"), Reply::Int(batches.count as i64)),
        (
            s("avg_batch_size"),
            Reply::Double(if batches.count == 0 {
                0.0
            } else {
                batches.sum as f64 / batches.count as f64
            }),
        ),
        (
            s("p99_batch_size"),
            Reply::Int(batches.quantile(0.99).ceil() as i64),
        ),
    ]))
}

pub fn config(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 2..)?;
    let sub = args.next_upper()?;
    let engine = ctx.server.engine.clone();
    // As in RedisAI, words after what a subcommand needs are ignored.
    match sub.as_str() {
        "BACKENDSPATH" => {
            let p = args
                .next()
                .map_err(|_| CmdError::new("ERR BACKENDSPATH: missing path argument"))?;
            engine.config.write().backends_path =
                Some(String::from_utf8_lossy(&p).into_owned().into());
            Ok(Reply::OK)
        }
        "MODEL_CHUNK_SIZE" => {
            if args.is_empty() {
                return Err(CmdError::new("ERR MODEL_CHUNK_SIZE: missing chunk size"));
            }
            let n = args
                .next_i64()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| CmdError::new("ERR MODEL_CHUNK_SIZE: invalid chunk size"))?;
            engine.config.write().model_chunk_size = n as usize;
            Ok(Reply::OK)
        }
        "LOADBACKEND" => {
            super::check_arity(args, 4..)?;
            let backend = args.next_upper()?;
            let path = String::from_utf8_lossy(&args.next()?).into_owned();
            match backend.as_str() {
                "ONNX" => {}
                // Locus has no TensorFlow or Torch runtime to load.
                "TF" | "TFLITE" | "TORCH" => {
                    return Err(CmdError::new("ERR error loading backend"))
                }
                _ => return Err(CmdError::new("ERR unsupported backend")),
            }
            let dir = engine.config.read().backends_path.clone();
            let mut full = std::path::PathBuf::from(&path);
            if full.is_relative() {
                if let Some(d) = dir {
                    full = d.join(full);
                }
            }
            ctx.defer(async move {
                match tokio::task::spawn_blocking(move || engine.onnx(Some(full))).await {
                    Ok(Ok(_)) => Reply::OK,
                    Ok(Err(e)) => {
                        tracing::warn!("AI.CONFIG LOADBACKEND: {e}");
                        Reply::err("ERR error loading backend")
                    }
                    Err(e) => Reply::err(format!("ERR {e}")),
                }
            })
        }
        "GET" => {
            super::check_arity(args, 3..)?;
            let what = args.next_upper()?;
            let c = engine.config.read();
            Ok(match what.as_str() {
                // Never null: the path backends are looked for in.
                "BACKENDSPATH" => {
                    let path = c
                        .backends_path
                        .clone()
                        .or_else(|| {
                            engine
                                .loaded_backend()
                                .and_then(|b| b.path.parent().map(|p| p.to_path_buf()))
                        })
                        .unwrap_or_else(|| "backends".into());
                    Reply::bulk_str(&path.display().to_string())
                }
                "MODEL_CHUNK_SIZE" => Reply::Int(c.model_chunk_size as i64),
                _ => Reply::Null,
            })
        }
        _ => Err(CmdError::new("ERR unsupported subcommand")),
    }
}

/// AI.SCRIPT* commands: TorchScript is not part of Locus.
pub fn script_unsupported(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Err(CmdError::new(
        "ERR scripts are not supported by Locus: use the built-in tensor ops (AI.TENSOROP) and ONNX graphs for pre/post-processing",
    ))
}
