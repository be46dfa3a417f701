//! Model commands with RedisAI 1.2's syntax, replies and errors: AI.MODELSTORE (and the
//! deprecated AI.MODELSET), AI.MODELGET, AI.MODELDEL, AI._MODELSCAN, AI.MODELEXECUTE (and the
//! deprecated AI.MODELRUN), AI.INFO and AI.CONFIG.

use super::tensors::{put_tensors_in, ERR_EMPTY_KEY};
use super::{own, Args, CmdError, CmdResult, Ctx};
use crate::engine::model::{Device, Model, ModelSpec, StoredModel};
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::{Entry, Value, SHARDS};
use crate::tensor::Tensor;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const ERR_MODEL_EMPTY: &str = "ERR model key is empty";

/// The model at `key`: RedisAI's empty-key error when missing, WRONGTYPE otherwise.
pub fn get_model(ctx: &Ctx, key: &[u8]) -> Result<Arc<Model>, CmdError> {
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

/// Parses MODELSTORE (`counted` = true: INPUTS/OUTPUTS take a count) or MODELSET syntax.
fn parse_store(args: &mut Args, counted: bool) -> Result<(ModelSpec, Vec<Bytes>), CmdError> {
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
    Ok((spec, chunks))
}

fn store_generic(ctx: &mut Ctx, args: &mut Args, counted: bool) -> CmdResult {
    super::check_arity(args, if counted { 6.. } else { 4.. })?;
    let key = args.next()?;
    let (spec, chunks) = parse_store(args, counted)?;
    let blob = if chunks.len() == 1 {
        chunks.into_iter().next().expect("one chunk")
    } else {
        Bytes::from(chunks.concat())
    };
    let server = ctx.server.clone();
    let db = ctx.client.db;
    if ctx.in_exec {
        // Inside EXEC nothing may wait: the model is loaded in place, as RedisAI does.
        let engine = server.engine.clone();
        let model = engine
            .onnx(None)
            .and_then(|backend| Model::load(backend, spec, blob, engine.session_options()))
            .map_err(CmdError)?;
        let now = ctx.now();
        if ctx
            .db()
            .read(&key)
            .get(&key, now)
            .is_some_and(|e| !matches!(e.value, Value::Model(_)))
        {
            return Err(CmdError::wrong_type());
        }
        let mut shard = ctx.db().write(&key);
        shard.insert(
            own(key),
            Entry::new(Value::Model(StoredModel::new(model))),
            now,
        );
        ctx.dirty(1);
        return Ok(Reply::OK);
    }
    // The AOF logs the command as given once the model is in place.
    let argv = args.request().to_vec();
    ctx.defer(async move {
        // Parsing and optimising a model takes a while: never on an I/O thread.
        let engine = server.engine.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let backend = engine.onnx(None)?;
            Model::load(backend, spec, blob, engine.session_options())
        })
        .await
        .unwrap_or_else(|e| Err(format!("ERR model loading failed: {e}")));
        match loaded {
            Ok(model) => {
                let mut txn = server.aof.begin();
                let now = crate::util::now_ms();
                let mut shard = server.store.db(db).write(&key);
                if shard
                    .get(&key, now)
                    .is_some_and(|e| !matches!(e.value, Value::Model(_)))
                {
                    return Reply::err(crate::cmd::WRONGTYPE_ERR);
                }
                shard.insert(
                    own(key),
                    Entry::new(Value::Model(StoredModel::new(model))),
                    now,
                );
                if let Some(txn) = txn.as_mut() {
                    txn.record(db, now, [argv.iter()]);
                }
                server.store.add_dirty(1);
                Reply::OK
            }
            Err(e) => Reply::Error(e),
        }
    })
}

pub fn modelstore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    store_generic(ctx, args, true)
}

pub fn modelset(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    store_generic(ctx, args, false)
}

pub fn modelget(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 2..=4)?;
    let key = args.next()?;
    let m = get_model(ctx, &key)?;
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
    if blob {
        fields.push((Reply::bulk_str("blob"), blob_reply()));
    }
    Ok(Reply::flat_pairs(fields))
}

pub fn modeldel(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 2..=2)?;
    let key = args.next()?;
    get_model(ctx, &key)?;
    ctx.db().write(&key).remove(&key, ctx.now());
    ctx.dirty(1);
    Ok(Reply::OK)
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
                    out.push(Reply::Array(vec![
                        Reply::Bulk(k.clone()),
                        Reply::Bulk(m.spec.tag.clone()),
                    ]));
                }
            }
        }
    }
    Ok(Reply::Array(out))
}

/// A parsed MODELEXECUTE / MODELRUN request.
pub struct ExecRequest {
    pub model: Arc<Model>,
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
    let model = get_model(ctx, &key)?;
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
    Ok(ExecRequest {
        model,
        inputs,
        outputs,
        selection,
        timeout_ms,
    })
}

/// Checks input tensors against the model's signature (see `Model::check_inputs`).
pub fn check_inputs(model: &Model, tensors: &[Arc<Tensor>]) -> Result<(), CmdError> {
    model.check_inputs(tensors).map_err(CmdError)
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
    let rx = server.engine.submit(model, inputs, cancelled.clone());
    let result = match timeout_ms {
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), rx).await {
            Ok(r) => r,
            Err(_) => {
                cancelled.store(true, Ordering::Relaxed);
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
    if let Err(e) = check_inputs(&req.model, &tensors) {
        // A refused run counts as a call and an error, as ONNX Runtime's refusal does in RedisAI.
        req.model.stats.calls.fetch_add(1, Ordering::Relaxed);
        req.model.stats.errors.fetch_add(1, Ordering::Relaxed);
        return Err(e);
    }
    check_outputs(ctx, &req.outputs)?;
    let server = ctx.server.clone();
    let db = ctx.client.db;
    ctx.defer(async move {
        match run_model(&server, req.model, tensors, req.timeout_ms).await {
            Ok(outputs) => {
                let outputs = crate::engine::model::select_outputs(outputs, &req.selection);
                let results = req.outputs.iter().cloned().zip(outputs).collect();
                match put_tensors_in(&server, db, results) {
                    Ok(()) => Reply::OK,
                    Err(e) => e.into(),
                }
            }
            Err(r) => r,
        }
    })
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
            Some(Entry {
                value: Value::Model(m),
                ..
            }) => Arc::clone(m),
            _ => return Err(CmdError::new("ERR cannot find run info for key")),
        }
    };
    if reset {
        m.stats.reset();
        return Ok(Reply::OK);
    }
    let st = &m.stats;
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
