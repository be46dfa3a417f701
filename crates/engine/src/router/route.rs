//! One request's way through routers: the host resolves a router key into a [`Node`] tree
//! (each router's decision taken, each target resolved to a model or a nested router), and
//! [`run`] executes it on the engine's run queues. A routed run joins its model version's
//! batching queue like any direct run, so requests batch together whatever router sent them.

use super::def::{Cascade, Mix};
use super::{combine, Event, Router};
use crate::engine::model::Model;
use crate::engine::{Engine, RunResult};
use crate::tensor::Tensor;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A router's choice that led to a node: its statistics are recorded when the node finishes.
#[derive(Clone)]
pub struct Hop {
    pub router: Arc<Router>,
    /// The router's key, for the events the host logs and publishes.
    pub key: Bytes,
    pub target: usize,
}

/// What runs for one (sub-)request.
pub struct Node {
    pub exec: Exec,
    /// The routers that chose this node, outermost first.
    pub hops: Vec<Hop>,
}

pub enum Exec {
    Model(Arc<Model>),
    Shadow {
        primary: Box<Node>,
        /// Absent when the request was not sampled or the shadow was rolled back.
        candidate: Option<Box<Node>>,
        hop: Hop,
    },
    Cascade {
        rule: Cascade,
        first: Box<Node>,
        second: Box<Node>,
    },
    Ensemble {
        mix: Mix,
        weights: Vec<f64>,
        members: Vec<Node>,
    },
}

impl Node {
    pub fn model(model: Arc<Model>) -> Node {
        Node {
            exec: Exec::Model(model),
            hops: Vec::new(),
        }
    }

    /// The model a request is checked against: the first one that would run.
    pub fn signature(&self) -> &Arc<Model> {
        match &self.exec {
            Exec::Model(m) => m,
            Exec::Shadow { primary, .. } => primary.signature(),
            Exec::Cascade { first, .. } => first.signature(),
            Exec::Ensemble { members, .. } => members[0].signature(),
        }
    }

    /// The model, when no router is involved: the direct path, unchanged.
    pub fn direct(&self) -> Option<&Arc<Model>> {
        match (&self.exec, self.hops.is_empty()) {
            (Exec::Model(m), true) => Some(m),
            _ => None,
        }
    }

    /// Every model the request may run, to check its inputs before anything is queued.
    pub fn models(&self) -> Vec<&Arc<Model>> {
        match &self.exec {
            Exec::Model(m) => vec![m],
            // A shadow that cannot take the inputs fails on its own, out of the client's way.
            Exec::Shadow { primary, .. } => primary.models(),
            Exec::Cascade { first, second, .. } => {
                let mut v = first.models();
                v.extend(second.models());
                v
            }
            Exec::Ensemble { members, .. } => members.iter().flat_map(|m| m.models()).collect(),
        }
    }

    /// The routing decisions, outermost first, as (router key, target name) pairs: what the
    /// request log records.
    pub fn decisions(&self) -> Vec<(Bytes, Bytes)> {
        let mut out: Vec<(Bytes, Bytes)> = self
            .hops
            .iter()
            .map(|h| (h.key.clone(), h.router.def.targets[h.target].name()))
            .collect();
        match &self.exec {
            Exec::Model(_) => {}
            Exec::Shadow { primary, .. } => out.extend(primary.decisions()),
            Exec::Cascade { first, .. } => out.extend(first.decisions()),
            Exec::Ensemble { members, .. } => {
                for m in members {
                    out.extend(m.decisions());
                }
            }
        }
        out
    }
}

/// The host's side of a router's events (a guard's rollback, a ramp step, a finished ramp).
pub trait EventSink: Send + Sync {
    fn router_event(&self, key: &Bytes, router: &Arc<Router>, event: Event);
}

/// A finished run: the result the client gets, and the shadow work to start once the reply is
/// on its way (the host spawns it after answering).
pub struct Finished {
    pub result: RunResult,
    pub shadow: Option<BoxFuture<()>>,
}

fn join(a: Option<BoxFuture<()>>, b: Option<BoxFuture<()>>) -> Option<BoxFuture<()>> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(Box::pin(async move {
            a.await;
            b.await;
        })),
    }
}

fn record(hops: &[Hop], started: Instant, ok: bool, sink: &Arc<dyn EventSink>) {
    let us = started.elapsed().as_micros() as u64;
    for h in hops {
        for e in h.router.record(h.target, us, ok) {
            sink.router_event(&h.key, &h.router, e);
        }
    }
}

/// The hook that starts a shadow model from the worker that ran the primary, once the client
/// has its result: queued there, it usually runs next on the same worker, which then records
/// its latency, errors and agreement with the primary; the event loop does nothing for it.
fn shadow_then(
    engine: Arc<Engine>,
    shadow: Arc<Model>,
    hops: Vec<Hop>,
    inputs: Vec<Arc<Tensor>>,
    hop: Hop,
    sink: Arc<dyn EventSink>,
) -> crate::engine::Then {
    Box::new(move |primary: &RunResult| {
        let Ok(primary_out) = primary else {
            return;
        };
        let started = Instant::now();
        if shadow.admit(&inputs).is_err() {
            record(&hops, started, false, &sink);
            return;
        }
        shadow.mark_routed();
        let primary_out = primary_out.clone();
        // Skipped when the queue is full: that is load, not the shadow's failure.
        engine.submit_detached(
            shadow,
            inputs,
            Box::new(move |got: &RunResult| {
                record(&hops, started, got.is_ok(), &sink);
                if let Ok(out) = got {
                    let agreement = combine::compare(&primary_out, out);
                    for e in hop.router.record_agreement(&agreement) {
                        sink.router_event(&hop.key, &hop.router, e);
                    }
                }
            }),
        );
    })
}

/// Runs a resolved node. `cancelled` is the client's flag (TIMEOUT, disconnect); shadows get
/// their own, since the client never waits for them.
pub fn run(
    engine: Arc<Engine>,
    node: Node,
    inputs: Vec<Arc<Tensor>>,
    sink: Arc<dyn EventSink>,
    cancelled: Arc<AtomicBool>,
) -> BoxFuture<Finished> {
    Box::pin(async move {
        let started = Instant::now();
        let Node { exec, hops } = node;
        let finished = match exec {
            Exec::Model(model) => {
                if !hops.is_empty() {
                    model.mark_routed();
                }
                let result = match model.admit(&inputs) {
                    Err(e) => Err(e),
                    Ok(()) => match engine.submit(model, inputs, cancelled).await {
                        Ok(r) => r,
                        Err(_) => Err("ERR model run was abandoned by the engine".into()),
                    },
                };
                Finished {
                    result,
                    shadow: None,
                }
            }
            Exec::Shadow {
                primary,
                candidate: Some(candidate),
                hop,
            } if matches!(
                (&primary.exec, &candidate.exec),
                (Exec::Model(_), Exec::Model(_))
            ) =>
            {
                // Two models: the worker that runs the primary queues the shadow once the
                // client has its result, and the shadow's worker compares and records, so
                // the event loop does nothing for the shadow.
                let (Exec::Model(model), Exec::Model(shadow)) = (primary.exec, candidate.exec)
                else {
                    unreachable!("matched above")
                };
                let then = shadow_then(
                    engine.clone(),
                    shadow,
                    candidate.hops,
                    inputs.clone(),
                    hop,
                    sink.clone(),
                );
                let result = match model.admit(&inputs) {
                    Err(e) => Err(e),
                    Ok(()) => {
                        if !primary.hops.is_empty() {
                            model.mark_routed();
                        }
                        engine
                            .submit_then(model, inputs, cancelled, then)
                            .await
                            .unwrap_or_else(|_| {
                                Err("ERR model run was abandoned by the engine".into())
                            })
                    }
                };
                record(&primary.hops, started, result.is_ok(), &sink);
                Finished {
                    result,
                    shadow: None,
                }
            }
            Exec::Shadow {
                primary,
                candidate,
                hop,
            } => {
                let shadow_inputs = candidate.as_ref().map(|_| inputs.clone());
                let done = run(engine.clone(), *primary, inputs, sink.clone(), cancelled).await;
                let mut shadow = done.shadow;
                if let (Some(candidate), Some(inputs), Ok(primary_out)) =
                    (candidate, shadow_inputs, &done.result)
                {
                    let primary_out = primary_out.clone();
                    let sink = sink.clone();
                    let engine = engine.clone();
                    let ours: BoxFuture<()> = Box::pin(async move {
                        let own = Arc::new(AtomicBool::new(false));
                        let got = run(engine, *candidate, inputs, sink.clone(), own).await;
                        if let Some(more) = got.shadow {
                            more.await;
                        }
                        if let Ok(out) = got.result {
                            let agreement = combine::compare(&primary_out, &out);
                            for e in hop.router.record_agreement(&agreement) {
                                sink.router_event(&hop.key, &hop.router, e);
                            }
                        }
                    });
                    shadow = join(shadow, Some(ours));
                }
                Finished {
                    result: done.result,
                    shadow,
                }
            }
            Exec::Cascade {
                rule,
                first,
                second,
            } => {
                let done = run(
                    engine.clone(),
                    *first,
                    inputs.clone(),
                    sink.clone(),
                    cancelled.clone(),
                )
                .await;
                let escalate = match &done.result {
                    Ok(out) => match out.get(rule.output) {
                        Some(t) => Ok(combine::escalates(rule.condition, t)),
                        None => Err(format!(
                            "ERR CASCADE reads output {} but the first target has {}",
                            rule.output,
                            out.len()
                        )),
                    },
                    Err(_) => Ok(false),
                };
                match escalate {
                    Err(e) => Finished {
                        result: Err(e),
                        shadow: done.shadow,
                    },
                    Ok(false) => done,
                    Ok(true) => {
                        let next = run(engine, *second, inputs, sink.clone(), cancelled).await;
                        Finished {
                            result: next.result,
                            shadow: join(done.shadow, next.shadow),
                        }
                    }
                }
            }
            Exec::Ensemble {
                mix,
                weights,
                members,
            } => {
                // Every member is queued before any is awaited, so they run side by side.
                let runs: Vec<_> = members
                    .into_iter()
                    .map(|m| {
                        let fut = run(
                            engine.clone(),
                            m,
                            inputs.clone(),
                            sink.clone(),
                            cancelled.clone(),
                        );
                        tokio::spawn(fut)
                    })
                    .collect();
                let mut outputs = Vec::with_capacity(runs.len());
                let mut shadow = None;
                let mut failure = None;
                for r in runs {
                    match r.await {
                        Ok(done) => {
                            shadow = join(shadow, done.shadow);
                            match done.result {
                                Ok(o) => outputs.push(o),
                                Err(e) => {
                                    failure.get_or_insert(e);
                                }
                            }
                        }
                        Err(e) => {
                            failure.get_or_insert(format!("ERR ensemble member failed: {e}"));
                        }
                    }
                }
                let result = match failure {
                    Some(e) => Err(e),
                    None => combine::ensemble(mix, &weights, &outputs),
                };
                Finished { result, shadow }
            }
        };
        record(&hops, started, finished.result.is_ok(), &sink);
        finished
    })
}
