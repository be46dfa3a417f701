//! Explanations: how much each feature of a row moved a model's output, by exact Shapley values,
//! KernelSHAP or occlusion. The model, the row and a background sample are all in this process,
//! so an explanation is a set of perturbed copies of the row run through the model's own queue
//! in large batches; the perturbing and the arithmetic run on blocking threads, never on an
//! event loop.
//!
//! Features are the last dimension of the explained input; its first dimension is rows, each
//! explained on its own. A coalition keeps some features at the row's values and takes the
//! others from a background row; its value is the model's output averaged over the background
//! rows (the interventional expectation `shap`'s Independent masker computes). Other inputs
//! keep the explained row's values throughout.

pub mod shapley;

use crate::engine::model::Model;
use crate::engine::Engine;
use crate::tensor::AlignedBuf;
use crate::tensor::{DType, Element, Tensor};
use rand::SeedableRng;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How attributions are computed.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// Every coalition of the features that vary: exact Shapley values.
    Exact,
    /// Lundberg and Lee's kernel regression over `nsamples` coalitions (default 2·features +
    /// 2048, as `shap` picks), drawn from `seed` when given.
    KernelShap {
        nsamples: Option<usize>,
        seed: Option<u64>,
    },
    /// The drop in output when one feature at a time takes its baseline: `baseline` for every
    /// feature when given, otherwise the background's mean (zeros without a background).
    Occlusion { baseline: Option<f64> },
}

/// EXACT enumerates 2^features coalitions per row.
pub const MAX_EXACT_FEATURES: usize = 16;
pub const MAX_NSAMPLES: usize = 1 << 20;
/// The most model rows one explanation may run (rows × coalitions × background rows).
pub const MAX_MODEL_ROWS: u64 = 1 << 26;
/// Bytes of model input per queued run: batches large enough that a run's fixed cost is
/// nothing, small enough that the allocator reuses their memory instead of mapping fresh
/// pages for each.
const CHUNK_BYTES: usize = 1 << 20;
const CHUNK_ROWS: usize = 16384;
/// Runs queued ahead of the one being read, so the model never waits for the next batch.
const IN_FLIGHT: usize = 2;

pub const ERR_EXACT_FEATURES: &str = "ERR METHOD EXACT enumerates every coalition and is limited to 16 features; use METHOD KERNELSHAP";

/// One explanation request, with its tensors read.
pub struct Request {
    pub model: Arc<Model>,
    /// The model's inputs, in order; `inputs[feature_input]` is explained.
    pub inputs: Vec<Arc<Tensor>>,
    pub feature_input: usize,
    /// Reference rows for the explained input ([n, …] like it); zeros when absent.
    pub background: Option<Arc<Tensor>>,
    /// The model output explained, and its class (column) for [rows, classes] outputs;
    /// without one, each row's predicted class.
    pub target: usize,
    pub class: Option<usize>,
    pub method: Method,
}

/// The explained input's geometry.
#[derive(Clone, Copy)]
struct Layout {
    rows: usize,
    /// Elements per row; feature j is every element at an index ≡ j (mod features).
    row_elems: usize,
    features: usize,
    elem: usize,
}

impl Layout {
    fn row_bytes(&self) -> usize {
        self.row_elems * self.elem
    }
}

fn layout(x: &Tensor) -> Result<Layout, String> {
    let shape = x.shape();
    let Some(elem) = x.dtype().size() else {
        return Err("ERR AI.EXPLAIN cannot perturb a STRING input".into());
    };
    if shape.len() < 2 {
        return Err(
            "ERR the explained input must be [rows, …, features]: rows first, features last".into(),
        );
    }
    let features = *shape.last().expect("rank >= 2");
    if shape[0] == 0 || features == 0 {
        return Err("ERR the explained input has no rows or no features".into());
    }
    Ok(Layout {
        rows: shape[0],
        row_elems: shape[1..].iter().product(),
        features,
        elem,
    })
}

/// Whether `bg` holds rows like the explained input `x` (its type, and its shape past the
/// first dimension).
pub fn background_fits(bg: &Tensor, x: &Tensor) -> bool {
    bg.dtype() == x.dtype()
        && bg.shape().len() == x.shape().len()
        && bg.shape().len() >= 2
        && bg.shape()[1..] == x.shape()[1..]
        && bg.shape()[0] > 0
}

fn shape_text(t: &Tensor) -> String {
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    format!("{} [{}]", t.dtype(), dims.join(", "))
}

/// Checks a request before anything runs, so that bad input gets its error at once and nothing
/// is written.
pub fn check(req: &Request) -> Result<(), String> {
    let n_in = req.model.inputs.len().max(req.inputs.len());
    if req.feature_input >= req.inputs.len() {
        return Err(format!(
            "ERR FEATURES index {} is out of range: the model has {n_in} input(s)",
            req.feature_input
        ));
    }
    let n_out = req.model.outputs.len();
    if n_out > 0 && req.target >= n_out {
        return Err(format!(
            "ERR TARGET index {} is out of range: the model has {n_out} output(s)",
            req.target
        ));
    }
    let x = &req.inputs[req.feature_input];
    let lay = layout(x)?;
    for (i, t) in req.inputs.iter().enumerate() {
        if i == req.feature_input {
            continue;
        }
        if t.dtype() == DType::String {
            return Err(format!(
                "ERR input {i} is a STRING tensor: AI.EXPLAIN holds other inputs fixed only when they are numeric"
            ));
        }
        if t.shape().first() != Some(&lay.rows) {
            return Err(format!(
                "ERR input {i} is {}: every input needs one row per explained row ({})",
                shape_text(t),
                lay.rows
            ));
        }
    }
    if let Some(bg) = &req.background {
        if !background_fits(bg, x) {
            return Err(format!(
                "ERR the background must be rows like the explained input's ({}); got {}",
                shape_text(x),
                shape_text(bg)
            ));
        }
    }
    let background_rows = req.background.as_ref().map_or(1, |b| b.shape()[0]) as u64;
    let f = lay.features as u64;
    let (coalitions, per) = match &req.method {
        Method::Exact => {
            if lay.features > MAX_EXACT_FEATURES {
                return Err(ERR_EXACT_FEATURES.into());
            }
            (1u64 << f, background_rows)
        }
        Method::KernelShap { nsamples, .. } => {
            let n = nsamples.unwrap_or(2 * lay.features + 2048);
            if !(2..=MAX_NSAMPLES).contains(&n) {
                return Err(format!("ERR NSAMPLES must be between 2 and {MAX_NSAMPLES}"));
            }
            let all = if f < 63 { (1u64 << f) - 1 } else { u64::MAX };
            ((n as u64 + 1).min(all), background_rows)
        }
        Method::Occlusion { baseline } => {
            if let Some(v) = baseline {
                baseline_row(x, &lay, None, Some(*v))?;
            }
            (f, 1)
        }
    };
    let total = (lay.rows as u64)
        .saturating_mul(coalitions)
        .saturating_mul(per);
    if total > MAX_MODEL_ROWS {
        return Err(format!(
            "ERR the explanation would run the model on {total} rows, above the limit of {MAX_MODEL_ROWS}; explain fewer rows, or use fewer background rows or samples"
        ));
    }
    Ok(())
}

/// How one row is explained: the coalitions to evaluate (full masks over every feature, 1:
/// the row's value) and how their values become attributions.
struct RowPlan {
    masks: Vec<u8>,
    solve: Solve,
}

enum Solve {
    /// Nothing varies between the row and the background: every attribution is 0.
    Nothing,
    /// One feature varies: it gets the whole difference. Coalition 0 is the empty one.
    One(usize),
    /// Every coalition of the varying features, in [`shapley::all_coalitions`] order.
    Exact(Vec<usize>),
    /// Coalition 0 is the empty one; the others are the samples' masks, in order.
    Kernel(Vec<usize>, shapley::KernelSamples),
    /// Coalition j occludes feature j.
    Occlusion,
}

/// The features whose values in row `r` differ from some background row's.
fn varying(x: &Tensor, bg: &Tensor, lay: &Layout, r: usize) -> Vec<usize> {
    let rb = lay.row_bytes();
    let row = &x.blob()[r * rb..(r + 1) * rb];
    let mut varies = vec![false; lay.features];
    for b in bg.blob().chunks_exact(rb) {
        for e in 0..lay.row_elems {
            let j = e % lay.features;
            if !varies[j]
                && row[e * lay.elem..(e + 1) * lay.elem] != b[e * lay.elem..(e + 1) * lay.elem]
            {
                varies[j] = true;
            }
        }
    }
    (0..lay.features).filter(|&j| varies[j]).collect()
}

/// Expands masks over the varying features to masks over every feature (the others keep the
/// row's value, which equals the background's).
fn expand(small: &[u8], m: usize, vary: &[usize], features: usize) -> Vec<u8> {
    let n = small.len().checked_div(m).unwrap_or(0);
    let mut out = vec![1u8; n * features];
    for i in 0..n {
        for (k, &j) in vary.iter().enumerate() {
            out[i * features + j] = small[i * m + k];
        }
    }
    out
}

fn plan_row(
    method: &Method,
    x: &Tensor,
    bg: &Tensor,
    lay: &Layout,
    r: usize,
    rng: &mut rand::rngs::SmallRng,
) -> RowPlan {
    let f = lay.features;
    if let Method::Occlusion { .. } = method {
        let mut masks = vec![1u8; f * f];
        for j in 0..f {
            masks[j * f + j] = 0;
        }
        return RowPlan {
            masks,
            solve: Solve::Occlusion,
        };
    }
    let vary = varying(x, bg, lay, r);
    let m = vary.len();
    let empty = {
        let mut e = vec![1u8; f];
        vary.iter().for_each(|&j| e[j] = 0);
        e
    };
    match (m, method) {
        (0, _) => RowPlan {
            masks: Vec::new(),
            solve: Solve::Nothing,
        },
        (1, _) => RowPlan {
            masks: empty,
            solve: Solve::One(vary[0]),
        },
        (_, Method::Exact) => RowPlan {
            masks: expand(&shapley::all_coalitions(m), m, &vary, f),
            solve: Solve::Exact(vary),
        },
        (_, Method::KernelShap { nsamples, .. }) => {
            let samples = shapley::kernel_samples(m, nsamples.unwrap_or(2 * f + 2048), rng);
            let mut masks = empty;
            masks.extend(expand(&samples.masks, m, &vary, f));
            RowPlan {
                masks,
                solve: Solve::Kernel(vary, samples),
            }
        }
        (_, Method::Occlusion { .. }) => unreachable!("handled above"),
    }
}

/// Attributions for one row from its coalitions' values.
fn attribute(plan: &RowPlan, values: &[f64], fx: f64, features: usize) -> Vec<f64> {
    let mut phi = vec![0.0; features];
    match &plan.solve {
        Solve::Nothing => {}
        Solve::One(j) => phi[*j] = fx - values[0],
        Solve::Exact(vary) => {
            for (k, p) in shapley::exact(vary.len(), values).into_iter().enumerate() {
                phi[vary[k]] = p;
            }
        }
        Solve::Kernel(vary, samples) => {
            let solved = shapley::kernel_solve(samples, vary.len(), &values[1..], fx, values[0]);
            for (k, p) in solved.into_iter().enumerate() {
                phi[vary[k]] = p;
            }
        }
        Solve::Occlusion => {
            for (j, p) in phi.iter_mut().enumerate() {
                *p = fx - values[j];
            }
        }
    }
    phi
}

/// The occlusion baseline as one background row: `value` everywhere, or the background's
/// mean, or zeros.
fn baseline_row(
    x: &Tensor,
    lay: &Layout,
    background: Option<&Tensor>,
    value: Option<f64>,
) -> Result<Tensor, String> {
    let mut shape = x.shape().to_vec();
    shape[0] = 1;
    let means: Vec<f64> = match (value, background) {
        (Some(v), _) => vec![v; lay.row_elems],
        (None, Some(bg)) => {
            let vals = crate::router::combine::values(bg).unwrap_or_default();
            let n = bg.shape()[0] as f64;
            let mut m = vec![0.0; lay.row_elems];
            for row in vals.chunks_exact(lay.row_elems) {
                m.iter_mut().zip(row).for_each(|(a, v)| *a += v / n);
            }
            m
        }
        (None, None) => vec![0.0; lay.row_elems],
    };
    let floating = matches!(
        x.dtype(),
        DType::Float | DType::Double | DType::Float16 | DType::BFloat16
    );
    if !floating && value.is_some_and(|v| v.fract() != 0.0) {
        return Err(format!(
            "ERR BASELINE must be a whole number for a {} input",
            x.dtype()
        ));
    }
    let elems: Vec<Element> = means
        .iter()
        .map(|&v| {
            if floating {
                Element::Float(v)
            } else {
                Element::Int(v.round() as i64)
            }
        })
        .collect();
    Tensor::from_elements(x.dtype(), &shape, &elems, usize::MAX)
        .map_err(|e| format!("ERR BASELINE does not fit a {} input: {e}", x.dtype()))
}

/// A target output's values: `(values, classes)` with `classes` columns per row.
fn target_columns(t: &Tensor, rows: usize) -> Result<(Vec<f64>, usize), String> {
    let classes = match t.shape() {
        [n] if *n == rows => 1,
        [n, c] if *n == rows && *c > 0 => *c,
        _ => {
            return Err(format!(
                "ERR the explained output must be [rows] or [rows, classes]; it is {}",
                shape_text(t)
            ))
        }
    };
    let values = crate::router::combine::values(t)
        .ok_or_else(|| "ERR the explained output is a STRING tensor".to_string())?;
    Ok((values, classes))
}

/// Everything the blocking threads need to build batches and read results.
struct Job {
    inputs: Vec<Arc<Tensor>>,
    feature_input: usize,
    background: Arc<Tensor>,
    lay: Layout,
    plans: Vec<RowPlan>,
    /// (row, coalition) pairs, in evaluation order.
    items: Vec<(u32, u32)>,
    class_of: Vec<usize>,
}

impl Job {
    fn background_rows(&self) -> usize {
        self.background.shape()[0]
    }

    /// The model inputs for items `range`: each item's coalition over every background row.
    /// A coalition becomes a byte mask over the row (all ones where the row's value stays),
    /// and each composite row a branch-free select of the row and a background row, which
    /// the compiler vectorises.
    fn batch(&self, range: Range<usize>) -> Result<Vec<Arc<Tensor>>, String> {
        let lay = &self.lay;
        let b_rows = self.background_rows();
        let n = range.len() * b_rows;
        let rb = lay.row_bytes();
        let items = &self.items[range];
        let mut inputs = Vec::with_capacity(self.inputs.len());
        for (i, t) in self.inputs.iter().enumerate() {
            let mut shape = t.shape().to_vec();
            shape[0] = n;
            let trb = t.blob().len() / lay.rows;
            let buf = if i == self.feature_input {
                let x = t.blob();
                let bg = self.background.blob();
                let mut keep = vec![0u8; rb];
                let mut row = vec![0u8; rb];
                AlignedBuf::filled(n * rb, |w| {
                    for &(r, c) in items {
                        let (r, c) = (r as usize, c as usize);
                        let f = lay.features;
                        let mask = &self.plans[r].masks[c * f..(c + 1) * f];
                        for (e, k) in keep.chunks_exact_mut(lay.elem).enumerate() {
                            k.fill(if mask[e % f] == 1 { 0xff } else { 0 });
                        }
                        let own = &x[r * rb..(r + 1) * rb];
                        for other in bg.chunks_exact(rb) {
                            for (((d, &k), &a), &b) in row.iter_mut().zip(&keep).zip(own).zip(other)
                            {
                                *d = (a & k) | (b & !k);
                            }
                            w.put(&row);
                        }
                    }
                })
            } else {
                AlignedBuf::filled(n * trb, |w| {
                    for &(r, _) in items {
                        let own = &t.blob()[r as usize * trb..(r as usize + 1) * trb];
                        for _ in 0..b_rows {
                            w.put(own);
                        }
                    }
                })
            };
            let t = Tensor::from_shared(t.dtype(), &shape, buf.into_bytes())
                .map_err(|e| e.to_string())?;
            inputs.push(Arc::new(t));
        }
        Ok(inputs)
    }

    /// Each item's value: the target output averaged over its background rows.
    fn read(
        &self,
        range: Range<usize>,
        outputs: &[Tensor],
        target: usize,
    ) -> Result<Vec<f64>, String> {
        let b_rows = self.background_rows();
        let t = outputs
            .get(target)
            .ok_or_else(|| "ERR the model returned fewer outputs than TARGET".to_string())?;
        let (vals, classes) = target_columns(t, range.len() * b_rows)?;
        Ok(self.items[range]
            .iter()
            .enumerate()
            .map(|(k, &(r, _))| {
                let class = self.class_of[r as usize];
                let sum: f64 = (0..b_rows)
                    .map(|b| vals[(k * b_rows + b) * classes + class])
                    .sum();
                sum / b_rows as f64
            })
            .collect())
    }
}

async fn run(
    engine: &Arc<Engine>,
    model: &Arc<Model>,
    inputs: Vec<Arc<Tensor>>,
    cancelled: &Arc<AtomicBool>,
) -> Result<Vec<Tensor>, String> {
    model.admit(&inputs)?;
    match engine
        .submit_background(Arc::clone(model), inputs, Arc::clone(cancelled))
        .await
    {
        Ok(r) => r,
        Err(_) => Err("ERR model run was abandoned by the engine".into()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("ERR explanation failed: {e}"))
}

/// Explains every row of the request: a FLOAT tensor [rows, features] of attributions. For
/// EXACT and KERNELSHAP each row's attributions add up to f(row) − E[f(background)].
pub async fn explain(
    engine: Arc<Engine>,
    req: Request,
    cancelled: Arc<AtomicBool>,
) -> Result<Tensor, String> {
    check(&req)?;
    let x = Arc::clone(&req.inputs[req.feature_input]);
    let lay = layout(&x)?;
    // The rows' own outputs, which also say which class each row is explained for.
    let own = run(&engine, &req.model, req.inputs.clone(), &cancelled).await?;
    let t = own
        .get(req.target)
        .ok_or_else(|| "ERR the model returned fewer outputs than TARGET".to_string())?;
    let (vals, classes) = target_columns(t, lay.rows)?;
    let class_of: Vec<usize> = match req.class {
        Some(c) if c >= classes => {
            return Err(format!(
                "ERR CLASS {c} is out of range: the explained output has {classes} class(es)"
            ))
        }
        Some(c) => vec![c; lay.rows],
        None => vals
            .chunks_exact(classes)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv {
                            (i, v)
                        } else {
                            (bi, bv)
                        }
                    })
                    .0
            })
            .collect(),
    };
    let fx: Vec<f64> = (0..lay.rows)
        .map(|r| vals[r * classes + class_of[r]])
        .collect();

    let method = req.method.clone();
    let background = match (&method, &req.background) {
        (Method::Occlusion { baseline }, bg) => {
            Arc::new(baseline_row(&x, &lay, bg.as_deref(), *baseline)?)
        }
        (_, Some(bg)) => Arc::clone(bg),
        (_, None) => {
            let mut shape = x.shape().to_vec();
            shape[0] = 1;
            Arc::new(Tensor::zeros(x.dtype(), &shape, usize::MAX).map_err(|e| e.to_string())?)
        }
    };
    let seed = match method {
        Method::KernelShap { seed: Some(s), .. } => s,
        _ => rand::random(),
    };
    let job = {
        let (x, background) = (Arc::clone(&x), Arc::clone(&background));
        let inputs = req.inputs.clone();
        let feature_input = req.feature_input;
        blocking(move || {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let plans: Vec<RowPlan> = (0..lay.rows)
                .map(|r| plan_row(&method, &x, &background, &lay, r, &mut rng))
                .collect();
            let items = plans
                .iter()
                .enumerate()
                .flat_map(|(r, p)| {
                    (0..p.masks.len() / lay.features).map(move |c| (r as u32, c as u32))
                })
                .collect();
            Arc::new(Job {
                inputs,
                feature_input,
                background,
                lay,
                plans,
                items,
                class_of,
            })
        })
        .await?
    };

    // Evaluate every coalition, a few batches queued ahead of the one being read.
    let input_row_bytes: usize = job.inputs.iter().map(|t| t.blob().len() / lay.rows).sum();
    let per_item_bytes = job.background_rows() * input_row_bytes;
    let per_chunk = (CHUNK_BYTES / per_item_bytes.max(1))
        .min(CHUNK_ROWS / job.background_rows().max(1))
        .max(1);
    let ranges: Vec<Range<usize>> = (0..job.items.len())
        .step_by(per_chunk)
        .map(|s| s..(s + per_chunk).min(job.items.len()))
        .collect();
    let mut values = vec![0.0f64; job.items.len()];
    let mut queued = VecDeque::new();
    let mut next = ranges.into_iter();
    loop {
        while queued.len() < IN_FLIGHT {
            let Some(range) = next.next() else { break };
            if cancelled.load(Ordering::Relaxed) {
                return Err("ERR the explanation was cancelled".into());
            }
            let j = Arc::clone(&job);
            let r = range.clone();
            let inputs = blocking(move || j.batch(r)).await??;
            req.model.admit(&inputs)?;
            let rx =
                engine.submit_background(Arc::clone(&req.model), inputs, Arc::clone(&cancelled));
            queued.push_back((range, rx));
        }
        let Some((range, rx)) = queued.pop_front() else {
            break;
        };
        let outputs = match rx.await {
            Ok(r) => r?,
            Err(_) => return Err("ERR model run was abandoned by the engine".into()),
        };
        let j = Arc::clone(&job);
        let (target, r) = (req.target, range.clone());
        let read = blocking(move || j.read(r, &outputs, target)).await??;
        values[range].copy_from_slice(&read);
    }

    blocking(move || {
        let f = job.lay.features;
        let mut out = Vec::with_capacity(job.lay.rows * f * 4);
        let mut at = 0;
        for (r, plan) in job.plans.iter().enumerate() {
            let n = plan.masks.len() / f;
            let phi = attribute(plan, &values[at..at + n], fx[r], f);
            at += n;
            for p in phi {
                out.extend_from_slice(&(p as f32).to_le_bytes());
            }
        }
        Tensor::from_raw(DType::Float, &[job.lay.rows, f], &out)
    })
    .await
}
