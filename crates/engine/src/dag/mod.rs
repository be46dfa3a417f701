//! DAG execution: one request that loads tensors from the keyspace, sets request tensors, runs
//! models and returns or persists results, with the data never leaving the server.
//!
//! Ops run as soon as the tensors they read exist: a model op is queued right away unless one of
//! its inputs comes from a model op still running, so independent models run at the same time.
//! Model ops join their model's batching queue exactly like standalone calls. Knows nothing of
//! RESP: the command layer parses requests into a [`Plan`] and renders the [`Outcome`].

use crate::engine::{Engine, RunResult};
use crate::router::route::{self, EventSink, Exec, Node};
use crate::tensor::ops::TensorOp;
use crate::tensor::Tensor;
/// The DAG's maps: keyed by short names and op indexes, where SipHash only costs.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One operation of a DAG.
pub enum Op {
    /// AI.TENSORSET: a DAG-local tensor.
    Set { name: Vec<u8>, tensor: Arc<Tensor> },
    /// AI.TENSORGET: reply with a tensor; `format` is the command layer's reply format.
    Get { name: Vec<u8>, format: u8 },
    /// AI.MODELEXECUTE: run a model (or what a router chose) on DAG tensors, producing DAG
    /// tensors.
    Exec {
        node: Node,
        inputs: Vec<Vec<u8>>,
        outputs: Vec<Vec<u8>>,
        /// The model outputs the names receive (ONNX-ML models may name only their tensors).
        selection: Vec<usize>,
        /// Whether the host watches this run (a request log or a monitor on its key): the
        /// outcome then carries its input and output tensors.
        watch: bool,
    },
    /// AI.EXPLAIN: attributions for a model's output on DAG tensors.
    Explain(Box<ExplainOp>),
    /// AI.TENSOROP: a built-in op (TOPK may also write its values to a second name).
    Compute {
        op: TensorOp,
        inputs: Vec<Vec<u8>>,
        output: Vec<u8>,
        values: Option<Vec<u8>>,
        max_bytes: usize,
    },
}

/// An AI.EXPLAIN op: its model and the DAG tensors it reads and writes.
pub struct ExplainOp {
    pub model: Arc<crate::engine::model::Model>,
    pub inputs: Vec<Vec<u8>>,
    /// Background rows, end to end; when none are named, `default_background` (a monitor's
    /// baseline) if it fits the explained input, else zeros.
    pub background: Vec<Vec<u8>>,
    pub default_background: Option<Arc<Tensor>>,
    pub feature_input: usize,
    pub target: usize,
    pub class: Option<usize>,
    pub method: crate::explain::Method,
    pub output: Vec<u8>,
    pub max_bytes: usize,
}

pub struct Plan {
    /// Tensors read from the keyspace once, at the start.
    pub loaded: Vec<(Vec<u8>, Arc<Tensor>)>,
    pub ops: Vec<Op>,
    /// DAG tensors written to the keyspace at the end if every op succeeded.
    pub persist: Vec<Vec<u8>>,
    pub deadline: Option<Instant>,
    /// Where routers in the DAG report their events.
    pub events: Arc<dyn EventSink>,
}

/// What one op produced.
#[derive(Debug)]
pub enum OpResult {
    Ok,
    Tensor(Arc<Tensor>, u8),
    Error(String),
    /// Not run (or its result not used) because an earlier op failed.
    NotRun,
}

pub enum Outcome {
    Done {
        results: Vec<OpResult>,
        persist: Vec<(Vec<u8>, Arc<Tensor>)>,
        /// The watched model ops that ran, in op order.
        watched: Vec<WatchedRun>,
    },
    TimedOut,
}

/// A watched model op's tensors: what it read, and what it wrote or why it failed.
pub struct WatchedRun {
    pub op: usize,
    pub inputs: Vec<Arc<Tensor>>,
    pub outputs: Result<Vec<Arc<Tensor>>, String>,
}

/// Checks that every op reads tensors that exist by then and that PERSIST names produced ones,
/// with RedisAI's texts.
pub fn validate(plan: &Plan) -> Result<(), String> {
    if plan.ops.is_empty() {
        return Err("ERR DAG is empty".into());
    }
    let mut known: std::collections::HashSet<&[u8], ahash::RandomState> =
        plan.loaded.iter().map(|(n, _)| n.as_slice()).collect();
    for op in &plan.ops {
        match op {
            Op::Set { name, .. } => {
                known.insert(name);
            }
            Op::Get { name, .. } => {
                if !known.contains(name.as_slice()) {
                    return Err("ERR INPUT key cannot be found in DAG".into());
                }
            }
            Op::Exec {
                inputs, outputs, ..
            } => {
                if inputs.iter().any(|i| !known.contains(i.as_slice())) {
                    return Err("ERR INPUT key cannot be found in DAG".into());
                }
                known.extend(outputs.iter().map(|o| o.as_slice()));
            }
            Op::Explain(e) => {
                if e.inputs
                    .iter()
                    .chain(&e.background)
                    .any(|i| !known.contains(i.as_slice()))
                {
                    return Err("ERR INPUT key cannot be found in DAG".into());
                }
                known.insert(&e.output);
            }
            Op::Compute {
                inputs,
                output,
                values,
                ..
            } => {
                if inputs.iter().any(|i| !known.contains(i.as_slice())) {
                    return Err("ERR INPUT key cannot be found in DAG".into());
                }
                known.insert(output);
                if let Some(v) = values {
                    known.insert(v);
                }
            }
        }
    }
    if plan.persist.iter().any(|p| !known.contains(p.as_slice())) {
        return Err("ERR PERSIST key cannot be found in DAG".into());
    }
    Ok(())
}

/// Where a DAG tensor's current value comes from.
enum Slot {
    Ready(Arc<Tensor>),
    /// An output of model op `op`, still running.
    Pending {
        op: usize,
    },
    Failed,
}

struct Running {
    rx: Option<crate::engine::completion::Receiver<RunResult>>,
    outputs: Vec<Vec<u8>>,
    selection: Vec<usize>,
    cancelled: Arc<AtomicBool>,
}

/// A watched model op while the DAG runs: its index, inputs and output names.
type Watching = (usize, Vec<Arc<Tensor>>, Vec<Vec<u8>>);

/// Runs a validated plan.
pub async fn run(engine: Arc<Engine>, plan: Plan) -> Outcome {
    let mut slots: HashMap<Vec<u8>, Slot> = plan
        .loaded
        .into_iter()
        .map(|(n, t)| (n, Slot::Ready(t)))
        .collect();
    let mut results: Vec<OpResult> = Vec::with_capacity(plan.ops.len());
    let mut running: HashMap<usize, Running> = HashMap::default();
    let mut failed = false;
    let deadline = plan.deadline;
    // Watched model ops: their index, inputs and output names.
    let mut watching: Vec<Watching> = Vec::new();

    // An op's input tensors; when one of them failed, the op is marked not run and skipped,
    // and past the deadline the DAG times out.
    macro_rules! inputs_or_skip {
        ($names:expr) => {
            match gather(&mut slots, &mut running, &mut results, $names, deadline).await {
                Some(Ok(t)) => t,
                Some(Err(())) => {
                    failed = true;
                    results.push(OpResult::NotRun);
                    continue;
                }
                None => return timed_out(running),
            }
        };
    }

    for (i, op) in plan.ops.into_iter().enumerate() {
        // After a failure, RedisAI still answers TENSORSET ops OK and TENSORGET ops with
        // tensors that exist; other ops did not run.
        if failed {
            results.push(match op {
                Op::Set { name, tensor } => {
                    slots.insert(name, Slot::Ready(tensor));
                    OpResult::Ok
                }
                Op::Get { name, format } => match slots.get(&name) {
                    Some(Slot::Ready(t)) => OpResult::Tensor(t.clone(), format),
                    _ => OpResult::NotRun,
                },
                _ => OpResult::NotRun,
            });
            continue;
        }
        match op {
            Op::Set { name, tensor } => {
                slots.insert(name, Slot::Ready(tensor));
                results.push(OpResult::Ok);
            }
            Op::Get { name, format } => {
                match resolve(&mut slots, &mut running, &mut results, &name, deadline).await {
                    Some(Ok(t)) => results.push(OpResult::Tensor(t, format)),
                    Some(Err(_)) => {
                        failed = true;
                        results.push(OpResult::NotRun);
                    }
                    None => return timed_out(running),
                }
            }
            Op::Exec {
                node,
                inputs,
                outputs,
                selection,
                watch,
            } => {
                let tensors = inputs_or_skip!(&inputs);
                if watch {
                    watching.push((i, tensors.clone(), outputs.clone()));
                }
                let cancelled = Arc::new(AtomicBool::new(false));
                let rx = match node {
                    Node {
                        exec: Exec::Model(model),
                        hops,
                    } if hops.is_empty() => {
                        // A signature mismatch is this op's error, as ONNX Runtime's would be.
                        if let Err(e) = model.admit(&tensors) {
                            failed = true;
                            results.push(OpResult::Error(e));
                            continue;
                        }
                        engine.submit(model, tensors, cancelled.clone())
                    }
                    node => {
                        // A routed op runs as its own task and reports like a model run.
                        let (tx, rx) = crate::engine::completion::channel(None);
                        let fut = route::run(
                            engine.clone(),
                            node,
                            tensors,
                            plan.events.clone(),
                            cancelled.clone(),
                        );
                        tokio::spawn(async move {
                            let done = fut.await;
                            if let Some(shadow) = done.shadow {
                                tokio::spawn(shadow);
                            }
                            tx.send(done.result);
                        });
                        rx
                    }
                };
                for o in &outputs {
                    slots.insert(o.clone(), Slot::Pending { op: i });
                }
                running.insert(
                    i,
                    Running {
                        rx: Some(rx),
                        outputs,
                        selection,
                        cancelled,
                    },
                );
                // Filled in when the run finishes.
                results.push(OpResult::Ok);
            }
            Op::Explain(e) => {
                let names: Vec<Vec<u8>> = e.inputs.iter().chain(&e.background).cloned().collect();
                let mut tensors = inputs_or_skip!(&names);
                let background = tensors.split_off(e.inputs.len());
                let request = explain_request(&e, tensors, background);
                let request = match request.and_then(|r| {
                    crate::explain::check(&r)?;
                    Ok(r)
                }) {
                    Ok(r) => r,
                    Err(err) => {
                        failed = true;
                        results.push(OpResult::Error(err));
                        continue;
                    }
                };
                let cancelled = Arc::new(AtomicBool::new(false));
                let (tx, rx) = crate::engine::completion::channel(None);
                let fut = crate::explain::explain(engine.clone(), request, cancelled.clone());
                tokio::spawn(async move {
                    tx.send(fut.await.map(|t| vec![t]));
                });
                slots.insert(e.output.clone(), Slot::Pending { op: i });
                running.insert(
                    i,
                    Running {
                        rx: Some(rx),
                        outputs: vec![e.output.clone()],
                        selection: vec![0],
                        cancelled,
                    },
                );
                results.push(OpResult::Ok);
            }
            Op::Compute {
                op,
                inputs,
                output,
                values,
                max_bytes,
            } => {
                let tensors = inputs_or_skip!(&inputs);
                // Tensor ops run off the event loop, like models.
                let computed = tokio::task::spawn_blocking(move || {
                    let refs: Vec<&Tensor> = tensors.iter().map(|t| t.as_ref()).collect();
                    crate::tensor::ops::apply(&op, &refs, max_bytes)
                })
                .await;
                match computed {
                    Ok(Ok((t, v))) => {
                        slots.insert(output, Slot::Ready(Arc::new(t)));
                        if let (Some(name), Some(v)) = (values, v) {
                            slots.insert(name, Slot::Ready(Arc::new(v)));
                        }
                        results.push(OpResult::Ok);
                    }
                    Ok(Err(e)) => {
                        failed = true;
                        results.push(OpResult::Error(e.0));
                    }
                    Err(e) => {
                        failed = true;
                        results.push(OpResult::Error(format!("ERR tensor op failed: {e}")));
                    }
                }
            }
        }
    }
    // Wait for every model op still running; any failure fails the DAG.
    let pending: Vec<usize> = running.keys().copied().collect();
    for op in pending {
        match finish(&mut slots, &mut running, &mut results, op, deadline).await {
            Some(true) => {}
            Some(false) => failed = true,
            None => return timed_out(running),
        }
    }
    let watched = watching
        .into_iter()
        .map(|(op, inputs, names)| WatchedRun {
            op,
            inputs,
            outputs: match &results[op] {
                OpResult::Ok => names
                    .iter()
                    .map(|n| match slots.get(n) {
                        Some(Slot::Ready(t)) => Ok(t.clone()),
                        _ => Err("ERR the run's output is gone".to_string()),
                    })
                    .collect(),
                OpResult::Error(e) => Err(e.clone()),
                _ => Err("ERR not run".to_string()),
            },
        })
        .collect();
    if failed {
        // Nothing persists after a failure; later ops already say NA.
        return Outcome::Done {
            results,
            persist: Vec::new(),
            watched,
        };
    }
    let persist = plan
        .persist
        .into_iter()
        .filter_map(|name| match slots.get(&name) {
            Some(Slot::Ready(t)) => Some((name, t.clone())),
            _ => None,
        })
        .collect();
    Outcome::Done {
        results,
        persist,
        watched,
    }
}

/// An explain op's request from its DAG tensors.
fn explain_request(
    e: &ExplainOp,
    inputs: Vec<Arc<Tensor>>,
    background: Vec<Arc<Tensor>>,
) -> Result<crate::explain::Request, String> {
    let background = if background.is_empty() {
        let x = inputs.get(e.feature_input);
        e.default_background
            .clone()
            .filter(|b| x.is_some_and(|x| crate::explain::background_fits(b, x)))
    } else if background.len() == 1 {
        background.into_iter().next()
    } else {
        let refs: Vec<&Tensor> = background.iter().map(|t| t.as_ref()).collect();
        Some(Arc::new(Tensor::concat_batch(&refs, e.max_bytes).map_err(
            |err| format!("ERR the background tensors must share a type and a row shape: {err}"),
        )?))
    };
    Ok(crate::explain::Request {
        model: Arc::clone(&e.model),
        inputs,
        feature_input: e.feature_input,
        background,
        target: e.target,
        class: e.class,
        method: e.method.clone(),
    })
}

fn timed_out(running: HashMap<usize, Running>) -> Outcome {
    for r in running.values() {
        r.cancelled.store(true, Ordering::Relaxed);
    }
    Outcome::TimedOut
}

/// The value of DAG tensor `name`, waiting for the model op that produces it if needed.
/// `None` when the deadline passed.
async fn resolve(
    slots: &mut HashMap<Vec<u8>, Slot>,
    running: &mut HashMap<usize, Running>,
    results: &mut [OpResult],
    name: &[u8],
    deadline: Option<Instant>,
) -> Option<Result<Arc<Tensor>, ()>> {
    if let Some(Slot::Pending { op }) = slots.get(name) {
        let op = *op;
        finish(slots, running, results, op, deadline).await?;
    }
    Some(match slots.get(name) {
        Some(Slot::Ready(t)) => Ok(t.clone()),
        _ => Err(()),
    })
}

/// The values of several DAG tensors (an op's inputs), in order.
async fn gather(
    slots: &mut HashMap<Vec<u8>, Slot>,
    running: &mut HashMap<usize, Running>,
    results: &mut [OpResult],
    names: &[Vec<u8>],
    deadline: Option<Instant>,
) -> Option<Result<Vec<Arc<Tensor>>, ()>> {
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        match resolve(slots, running, results, name, deadline).await? {
            Ok(t) => tensors.push(t),
            Err(()) => return Some(Err(())),
        }
    }
    Some(Ok(tensors))
}

/// Waits for model op `op` and records its outputs. `Some(success)`, or `None` on timeout.
async fn finish(
    slots: &mut HashMap<Vec<u8>, Slot>,
    running: &mut HashMap<usize, Running>,
    results: &mut [OpResult],
    op: usize,
    deadline: Option<Instant>,
) -> Option<bool> {
    let Some(r) = running.get_mut(&op) else {
        return Some(true);
    };
    let Some(rx) = r.rx.take() else {
        return Some(!matches!(results[op], OpResult::Error(_)));
    };
    let result = match deadline {
        Some(d) => match tokio::time::timeout_at(d.into(), rx).await {
            Ok(r) => r,
            Err(_) => return None,
        },
        None => rx.await,
    };
    let outputs = std::mem::take(&mut r.outputs);
    match result {
        Ok(Ok(tensors)) => {
            let tensors = crate::engine::model::select_outputs(tensors, &r.selection);
            for (name, t) in outputs.into_iter().zip(tensors) {
                // A later op may have replaced the name; only fill it if it is still ours.
                if matches!(slots.get(&name), Some(Slot::Pending { op: o }) if *o == op) {
                    slots.insert(name, Slot::Ready(Arc::new(t)));
                }
            }
            results[op] = OpResult::Ok;
            Some(true)
        }
        other => {
            let e = match other {
                Ok(Err(e)) => e,
                _ => "ERR model run was abandoned by the engine".into(),
            };
            for name in outputs {
                if matches!(slots.get(&name), Some(Slot::Pending { op: o }) if *o == op) {
                    slots.insert(name, Slot::Failed);
                }
            }
            results[op] = OpResult::Error(e);
            Some(false)
        }
    }
}
