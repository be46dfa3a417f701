//! The dashboard's load test: `POST /api/loadtest` with `{"model", "clients", "seconds",
//! "rate"}` sends V2 inference requests with random inputs of the model's signature from
//! `clients` concurrent tasks for `seconds` (closed loop, or `rate` requests per second in all)
//! and streams its progress as JSON lines every half second, the last one marked `"done"`.
//! It is bounded (64 clients, 60 seconds, one test at a time) so a page cannot overload the
//! server it watches; its requests take the same path as any V2 request.

use crate::inference::{self, Call, Named};
use crate::server::Server;
use crate::tensor::{DType, Tensor};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const MAX_CLIENTS: usize = 64;
pub const MAX_SECONDS: f64 = 60.0;

/// Set while a load test runs: one at a time.
static RUNNING: AtomicBool = AtomicBool::new(false);

#[derive(Deserialize)]
pub struct Plan {
    model: String,
    #[serde(default = "one")]
    clients: usize,
    #[serde(default = "five")]
    seconds: f64,
    /// Requests per second in all; 0 for a closed loop.
    #[serde(default)]
    rate: f64,
}

fn one() -> usize {
    1
}

fn five() -> f64 {
    5.0
}

struct Progress {
    done: AtomicU64,
    errors: AtomicU64,
    hist: Mutex<Histogram<u64>>,
    first_error: Mutex<Option<String>>,
}

/// Random inputs for one request: batch 1, dynamic dimensions 1.
fn random_inputs(server: &Arc<Server>, model: &str) -> Result<Vec<(String, Tensor)>, String> {
    let d = inference::describe(server, model, None).map_err(|f| f.message().to_string())?;
    let mut rng = rand::thread_rng();
    d.signature
        .inputs
        .iter()
        .map(|p| {
            let dtype = p.dtype.unwrap_or(DType::Float);
            let shape: Vec<usize> = p.dims.iter().map(|&x| x.max(1) as usize).collect();
            let n: usize = shape.iter().product();
            let values: Vec<String> = (0..n)
                .map(|_| match dtype {
                    DType::Float | DType::Double | DType::Float16 | DType::BFloat16 => {
                        format!("{}", rng.gen::<f32>())
                    }
                    DType::Bool => format!("{}", rng.gen_range(0..2)),
                    DType::String => format!("s{}", rng.gen_range(0..100)),
                    _ => format!("{}", rng.gen_range(0..10)),
                })
                .collect();
            Tensor::from_values(dtype, &shape, &values, 1 << 30)
                .map(|t| (p.name.clone(), t))
                .map_err(|e| e.0)
        })
        .collect()
}

/// The running test's client tasks: dropping it (the test finished, or the page that asked for
/// it went away) stops them and lets another test start.
struct Running(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
        RUNNING.store(false, Ordering::Release);
    }
}

fn line(progress: &Progress, elapsed: f64, done: bool) -> String {
    let h = progress.hist.lock();
    let n = progress.done.load(Ordering::Relaxed);
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    let mut v = json!({
        "elapsed": elapsed,
        "requests": n,
        "errors": progress.errors.load(Ordering::Relaxed),
        "rps": if elapsed > 0.0 { n as f64 / elapsed } else { 0.0 },
        "p50_us": q(0.5),
        "p90_us": q(0.9),
        "p99_us": q(0.99),
        "done": done,
    });
    if let Some(e) = progress.first_error.lock().clone() {
        v["first_error"] = json!(e);
    }
    let mut s = v.to_string();
    s.push('\n');
    s
}

pub async fn run(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match super::dashboard::guard(&server, &headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let plan: Plan = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return super::v2::error(StatusCode::BAD_REQUEST, format!("a load test plan: {e}"))
        }
    };
    let clients = plan.clients.clamp(1, MAX_CLIENTS);
    let seconds = if plan.seconds.is_finite() {
        plan.seconds.clamp(0.5, MAX_SECONDS)
    } else {
        5.0
    };
    // The load runs the model as AI.MODELEXECUTE would: the user must be allowed that.
    let probe = [
        bytes::Bytes::from_static(b"AI.MODELEXECUTE"),
        bytes::Bytes::from(plan.model.clone().into_bytes()),
        bytes::Bytes::from_static(b"INPUTS"),
        bytes::Bytes::from_static(b"0"),
        bytes::Bytes::from_static(b"OUTPUTS"),
        bytes::Bytes::from_static(b"0"),
    ];
    if !super::user_may(&server, &user, &probe) {
        return super::v2::error(
            StatusCode::FORBIDDEN,
            format!("this user may not run the model '{}'", plan.model),
        );
    }
    let inputs = match random_inputs(&server, &plan.model) {
        Ok(i) => Arc::new(i),
        Err(e) => return super::v2::error(StatusCode::BAD_REQUEST, e),
    };
    if RUNNING.swap(true, Ordering::AcqRel) {
        return super::v2::error(StatusCode::CONFLICT, "a load test is already running");
    }
    let progress = Arc::new(Progress {
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        hist: Mutex::new(Histogram::new(3).expect("histogram")),
        first_error: Mutex::new(None),
    });
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    // Open loop: each client sends at its share of the rate, on schedule.
    let interval = (plan.rate > 0.0).then(|| Duration::from_secs_f64(clients as f64 / plan.rate));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (server, inputs, progress, model, user) = (
            Arc::clone(&server),
            Arc::clone(&inputs),
            Arc::clone(&progress),
            plan.model.clone(),
            user.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut k = 0u32;
            loop {
                let due = match interval {
                    Some(iv) => start + iv * k,
                    None => Instant::now(),
                };
                if due >= end {
                    break;
                }
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                k += 1;
                let call = Call {
                    model: model.clone(),
                    version: None,
                    id: String::new(),
                    user: Some(user.clone()),
                    inputs: inputs
                        .iter()
                        .map(|(name, t)| Named {
                            name: name.clone(),
                            tensor: t.clone(),
                        })
                        .collect(),
                    outputs: Vec::new(),
                    timeout: Some(Duration::from_secs(10)),
                };
                match inference::infer(&server, call).await {
                    Ok(_) => {
                        let us = due.elapsed().as_micros() as u64;
                        let _ = progress.hist.lock().record(us.max(1));
                        progress.done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                        progress
                            .first_error
                            .lock()
                            .get_or_insert_with(|| e.message().to_string());
                    }
                }
            }
        }));
    }
    let stream = futures_util::stream::unfold(
        (Some(Running(tasks)), progress),
        move |(running, progress)| async move {
            let running = running?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let all_done = running.0.iter().all(|h| h.is_finished());
            let elapsed = start.elapsed().as_secs_f64().min(seconds);
            let chunk: Result<String, std::convert::Infallible> =
                Ok(line(&progress, elapsed, all_done));
            Some((chunk, ((!all_done).then_some(running), progress)))
        },
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}
