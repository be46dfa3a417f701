//! AI.EXPLAIN: attributions of a model's output to the features of its input, computed by the
//! engine (see [`crate::explain`]) and stored as a FLOAT tensor [rows, features].

use super::models::{check_outputs, parse_version, read_inputs};
use super::routers::{lookup, signature};
use super::tensors::put_tensors_in;
use super::{Args, CmdError, CmdResult, Ctx};
use crate::engine::model::Model;
use crate::explain::{background_fits, Method, Request, MAX_NSAMPLES};
use crate::server::reply::Reply;
use crate::tensor::Tensor;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Background rows taken from a monitor's baseline when the request names none (evenly
/// spaced): enough for a stable expectation, as `shap` samples 100 by default.
pub const MONITOR_BACKGROUND_ROWS: usize = 100;

/// A parsed AI.EXPLAIN (standalone or a DAG op): names, not yet tensors.
pub struct ExplainCall {
    pub key: Bytes,
    pub model: Arc<Model>,
    pub inputs: Vec<Bytes>,
    pub background: Vec<Bytes>,
    pub output: Bytes,
    pub method: Method,
    pub target: usize,
    pub class: Option<usize>,
    pub feature_input: usize,
}

fn index(args: &mut Args, what: &str) -> Result<usize, CmdError> {
    args.next_i64()
        .ok()
        .filter(|v| *v >= 0)
        .map(|v| v as usize)
        .ok_or_else(|| CmdError::new(format!("ERR {what} must be a non-negative integer")))
}

fn count(args: &mut Args, what: &str) -> Result<usize, CmdError> {
    args.next_i64()
        .ok()
        .filter(|v| *v > 0)
        .map(|v| v as usize)
        .ok_or_else(|| CmdError::new(format!("ERR invalid or negative number of {what} keys")))
}

fn keys(args: &mut Args, n: usize, what: &str) -> Result<Vec<Bytes>, CmdError> {
    (0..n)
        .map(|_| {
            args.next().map_err(|_| {
                CmdError::new(format!(
                    "ERR number of {what} keys to AI.EXPLAIN does not match the number of given arguments"
                ))
            })
        })
        .collect()
}

/// `key [VERSION n] INPUTS k in… [BACKGROUND k bg…] OUTPUTS 1 attr [METHOD …] [TARGET i
/// [CLASS c]] [FEATURES i]`. A router key explains the model its first reachable target leads
/// to (its primary): an explanation is not a prediction, so no router decides or counts it.
pub fn parse(ctx: &Ctx, args: &mut Args) -> Result<ExplainCall, CmdError> {
    let key = args.next()?;
    let version = parse_version(args)?;
    let model = signature(ctx, &lookup(ctx, &key, version)?)?;
    if !args.eat("INPUTS") {
        return Err(CmdError::new("ERR INPUTS not specified"));
    }
    let n = count(args, "input")?;
    if n != model.inputs.len() {
        return Err(CmdError::new(
            "Number of keys given as INPUTS here does not match model definition",
        ));
    }
    let inputs = keys(args, n, "input")?;
    let mut background = Vec::new();
    if args.eat("BACKGROUND") {
        let n = count(args, "background")?;
        background = keys(args, n, "background")?;
    }
    if !args.eat("OUTPUTS") {
        return Err(CmdError::new("ERR OUTPUTS not specified"));
    }
    if args.next_i64().ok() != Some(1) {
        return Err(CmdError::new(
            "ERR AI.EXPLAIN writes one tensor of attributions: OUTPUTS 1 key",
        ));
    }
    let output = args.next()?;
    let mut call = ExplainCall {
        key,
        model,
        inputs,
        background,
        output,
        method: Method::KernelShap {
            nsamples: None,
            seed: None,
        },
        target: 0,
        class: None,
        feature_input: 0,
    };
    while let Some(word) = args.peek() {
        let word = String::from_utf8_lossy(word).to_ascii_uppercase();
        args.next()?;
        match word.as_str() {
            "METHOD" => {
                let m = args.next().unwrap_or_default();
                call.method = match String::from_utf8_lossy(&m).to_ascii_uppercase().as_str() {
                    "EXACT" => Method::Exact,
                    "KERNELSHAP" => {
                        let (mut nsamples, mut seed) = (None, None);
                        loop {
                            if args.eat("NSAMPLES") {
                                nsamples = Some(
                                    args.next_i64()
                                        .ok()
                                        .filter(|v| (2..=MAX_NSAMPLES as i64).contains(v))
                                        .ok_or_else(|| {
                                            CmdError::new(format!(
                                                "ERR NSAMPLES must be between 2 and {MAX_NSAMPLES}"
                                            ))
                                        })? as usize,
                                );
                            } else if args.eat("SEED") {
                                seed = Some(index(args, "SEED")? as u64);
                            } else {
                                break;
                            }
                        }
                        Method::KernelShap { nsamples, seed }
                    }
                    "OCCLUSION" => {
                        let mut baseline = None;
                        if args.eat("BASELINE") {
                            baseline =
                                Some(args.next_f64().ok().filter(|v| v.is_finite()).ok_or_else(
                                    || CmdError::new("ERR BASELINE must be a number"),
                                )?);
                        }
                        Method::Occlusion { baseline }
                    }
                    _ => {
                        return Err(CmdError::new(
                            "ERR METHOD must be EXACT, KERNELSHAP or OCCLUSION",
                        ))
                    }
                };
            }
            "TARGET" => {
                call.target = index(args, "TARGET")?;
                if args.eat("CLASS") {
                    call.class = Some(index(args, "CLASS")?);
                }
            }
            "FEATURES" => call.feature_input = index(args, "FEATURES")?,
            _ => return Err(CmdError::new("ERR syntax error")),
        }
    }
    Ok(call)
}

/// The background rows: the request's tensors end to end, or (none named) the monitor's input
/// baseline on the key when it is shaped like the explained input, or none (zeros).
fn background(ctx: &Ctx, call: &ExplainCall, x: &Tensor) -> Result<Option<Arc<Tensor>>, CmdError> {
    if call.background.is_empty() {
        return Ok(monitor_background(ctx, &call.key).filter(|b| background_fits(b, x)));
    }
    let parts = read_inputs(ctx, &call.background)?;
    let max = ctx
        .server
        .config
        .live
        .tensor_max_bytes
        .load(Ordering::Relaxed);
    join_background(&parts, max).map(Some).map_err(CmdError)
}

/// Several background tensors as one, their rows end to end.
pub fn join_background(parts: &[Arc<Tensor>], max_bytes: usize) -> Result<Arc<Tensor>, String> {
    if parts.len() == 1 {
        return Ok(Arc::clone(&parts[0]));
    }
    let refs: Vec<&Tensor> = parts.iter().map(|t| t.as_ref()).collect();
    Tensor::concat_batch(&refs, max_bytes)
        .map(Arc::new)
        .map_err(|e| format!("ERR the background tensors must share a type and a row shape: {e}"))
}

/// The input baseline of the monitor on `key`, at most [`MONITOR_BACKGROUND_ROWS`] rows of it
/// (evenly spaced).
pub fn monitor_background(ctx: &Ctx, key: &[u8]) -> Option<Arc<Tensor>> {
    let monitor = ctx
        .server
        .store
        .monitors
        .get(ctx.server.outbox.home(ctx.client.db), key)?;
    let baseline = monitor.lock().baselines().0.clone();
    let n = *baseline.shape().first()?;
    if n <= MONITOR_BACKGROUND_ROWS {
        return Some(Arc::new(baseline));
    }
    let rows: Vec<Tensor> = (0..MONITOR_BACKGROUND_ROWS)
        .map(|i| baseline.slice_batch(i * n / MONITOR_BACKGROUND_ROWS, 1))
        .collect();
    let refs: Vec<&Tensor> = rows.iter().collect();
    Tensor::concat_batch(&refs, usize::MAX).ok().map(Arc::new)
}

/// Reads the call's tensors and checks everything that can be checked before running.
pub fn prepare(ctx: &Ctx, call: &ExplainCall) -> Result<Request, CmdError> {
    let inputs = read_inputs(ctx, &call.inputs)?;
    let x = inputs.get(call.feature_input).cloned().ok_or_else(|| {
        CmdError::new(format!(
            "ERR FEATURES index {} is out of range: the model has {} input(s)",
            call.feature_input,
            inputs.len()
        ))
    })?;
    let background = background(ctx, call, &x)?;
    let req = Request {
        model: Arc::clone(&call.model),
        inputs,
        feature_input: call.feature_input,
        background,
        target: call.target,
        class: call.class,
        method: call.method.clone(),
    };
    crate::explain::check(&req).map_err(CmdError)?;
    Ok(req)
}

pub fn explain(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::transactions::refuse_in_exec(ctx)?;
    let call = parse(ctx, args)?;
    let req = prepare(ctx, &call)?;
    check_outputs(ctx, std::slice::from_ref(&call.output))?;
    let server = ctx.server.clone();
    let db = ctx.client.db;
    ctx.defer(async move {
        // Dropped with the request when the client goes away: no further batch is queued,
        // and the queued ones see their receiver gone and are skipped.
        let cancelled = Arc::new(AtomicBool::new(false));
        match crate::explain::explain(server.engine.clone(), req, cancelled).await {
            Ok(t) => match put_tensors_in(&server, db, vec![(call.output, t)]) {
                Ok(()) => Reply::OK,
                Err(e) => e.into(),
            },
            Err(e) => Reply::Error(e),
        }
    })
}
