//! Reading and combining run outputs: shadow agreement, the cascade's escalation test, and an
//! ensemble's element-wise mean, weighted mean or vote.

use super::def::{Condition, Mix};
use super::stats::{Agreement, OutputAgreement};
use crate::tensor::{DType, Element, Tensor};

fn is_float(d: DType) -> bool {
    matches!(
        d,
        DType::Float | DType::Double | DType::Float16 | DType::BFloat16
    )
}

/// Every element as f64; `None` for strings.
pub(crate) fn values(t: &Tensor) -> Option<Vec<f64>> {
    match t.dtype() {
        DType::String => return None,
        // The common case, read straight from the blob.
        DType::Float => {
            return Some(
                t.blob()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
                    .collect(),
            )
        }
        _ => {}
    }
    Some(
        t.elements()
            .into_iter()
            .map(|e| match e {
                Element::Int(i) => i as f64,
                Element::UInt(u) => u as f64,
                Element::Float(f) => f,
                Element::Str(_) => 0.0,
            })
            .collect(),
    )
}

/// Columns per row: the last dimension of a tensor of rank 2 or more.
fn columns(t: &Tensor) -> Option<usize> {
    (t.shape().len() >= 2)
        .then(|| *t.shape().last().expect("rank >= 2"))
        .filter(|&c| c > 0)
}

/// Each row's argmax (first maximum).
fn argmax_rows(v: &[f64], cols: usize) -> Vec<usize> {
    v.chunks(cols)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (i, &x)| if x > b.1 { (i, x) } else { b },
                )
                .0
        })
        .collect()
}

/// How a candidate's outputs compare with the primary's: per output, the largest absolute
/// difference and, for class scores (float, rank 2 or more) or labels (integers), how many
/// rows name the same class.
pub fn compare(primary: &[Tensor], candidate: &[Tensor]) -> Agreement {
    let mut outputs = Vec::new();
    for (p, c) in primary.iter().zip(candidate) {
        if p.shape() != c.shape() {
            let rows = p.len().max(1) as u64;
            outputs.push(OutputAgreement {
                max_abs_diff: f64::INFINITY,
                rows,
                rows_agree: 0,
            });
            continue;
        }
        let (Some(a), Some(b)) = (values(p), values(c)) else {
            // Strings: equal or not, element by element.
            let same = p
                .strings()
                .iter()
                .zip(c.strings())
                .filter(|(x, y)| *x == y)
                .count();
            outputs.push(OutputAgreement {
                max_abs_diff: if same == p.len() { 0.0 } else { f64::INFINITY },
                rows: p.len() as u64,
                rows_agree: same as u64,
            });
            continue;
        };
        let max_abs_diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        let (rows, rows_agree) = match (is_float(p.dtype()), columns(p)) {
            (true, Some(cols)) => {
                let (x, y) = (argmax_rows(&a, cols), argmax_rows(&b, cols));
                (x.len(), x.iter().zip(&y).filter(|(i, j)| i == j).count())
            }
            // Regression outputs have no class to agree on.
            (true, None) => (0, 0),
            (false, _) => (a.len(), a.iter().zip(&b).filter(|(x, y)| x == y).count()),
        };
        outputs.push(OutputAgreement {
            max_abs_diff,
            rows: rows as u64,
            rows_agree: rows_agree as u64,
        });
    }
    Agreement { outputs }
}

/// Whether a CASCADE moves on to its second target, given the first target's output.
pub fn escalates(condition: Condition, output: &Tensor) -> bool {
    let Some(v) = values(output) else {
        return false;
    };
    match condition {
        Condition::MaxProbBelow(x) => {
            let cols = columns(output).unwrap_or(1);
            v.chunks(cols)
                .any(|row| row.iter().copied().fold(f64::NEG_INFINITY, f64::max) < x)
        }
        Condition::ArgmaxIs(k) => match (is_float(output.dtype()), columns(output)) {
            (true, Some(cols)) => argmax_rows(&v, cols).into_iter().any(|i| i as i64 == k),
            _ => v.contains(&(k as f64)),
        },
    }
}

/// Combines the members' outputs element-wise. Float outputs: the (weighted) mean, or under
/// VOTE each class's (weighted) share of the members' argmax votes, so the result's argmax is
/// the majority class. Integer and string outputs (labels): the (weighted) majority value.
pub fn ensemble(mix: Mix, weights: &[f64], members: &[Vec<Tensor>]) -> Result<Vec<Tensor>, String> {
    let first = members.first().ok_or("ERR ENSEMBLE has no targets")?;
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return Err("ERR ENSEMBLE weights are all 0".into());
    }
    let mut out = Vec::with_capacity(first.len());
    for j in 0..first.len() {
        let parts: Vec<&Tensor> = members
            .iter()
            .map(|m| {
                m.get(j)
                    .ok_or("ERR ENSEMBLE targets give different numbers of outputs")
            })
            .collect::<Result<_, _>>()?;
        let shape = parts[0].shape();
        if parts.iter().any(|p| p.shape() != shape) {
            return Err(format!("ERR ENSEMBLE targets' output {j} differ in shape"));
        }
        let dtype = parts[0].dtype();
        let combined = if is_float(dtype) && parts.iter().all(|p| is_float(p.dtype())) {
            let vals: Vec<Vec<f64>> = parts.iter().map(|p| values(p).expect("numeric")).collect();
            let len = vals[0].len();
            let mut acc = vec![0.0f64; len];
            match (mix, columns(parts[0])) {
                (Mix::Vote, Some(cols)) => {
                    for (v, &w) in vals.iter().zip(weights) {
                        for (row, k) in argmax_rows(v, cols).into_iter().enumerate() {
                            acc[row * cols + k] += w / total;
                        }
                    }
                }
                _ => {
                    for (v, &w) in vals.iter().zip(weights) {
                        for (a, x) in acc.iter_mut().zip(v) {
                            *a += x * w / total;
                        }
                    }
                }
            }
            float_tensor(dtype, shape, &acc)
        } else {
            let elems: Vec<Vec<Element>> = parts.iter().map(|p| p.elements()).collect();
            let len = elems[0].len();
            let mut result = Vec::with_capacity(len);
            for i in 0..len {
                // The value with the most weight; ties go to the earliest member's value.
                let mut best: Option<(&Element, f64)> = None;
                for e in &elems {
                    let v = &e[i];
                    let score: f64 = elems
                        .iter()
                        .zip(weights)
                        .filter(|(o, _)| &o[i] == v)
                        .map(|(_, w)| *w)
                        .sum();
                    if best.is_none_or(|(_, s)| score > s) {
                        best = Some((v, score));
                    }
                }
                result.push(best.expect("members").0.clone());
            }
            Tensor::from_elements(dtype, shape, &result, usize::MAX).map_err(|e| e.0)?
        };
        out.push(combined);
    }
    Ok(out)
}

fn float_tensor(dtype: DType, shape: &[usize], v: &[f64]) -> Tensor {
    if dtype == DType::Double {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Tensor::from_raw(DType::Double, shape, &bytes)
    } else {
        let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
        Tensor::from_raw(DType::Float, shape, &bytes)
    }
}
