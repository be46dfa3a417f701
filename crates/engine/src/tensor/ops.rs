//! Built-in tensor ops for pre- and post-processing without a model (RedisAI used TorchScript
//! scripts for this): cast, reshape, concat, stack, slice, per-channel normalise, softmax,
//! argmax, top-k and elementwise add / mul with a scalar or a tensor.

use super::{DType, Element, Tensor, TensorError};

/// One op with its parameters; sources are passed separately, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorOp {
    Cast(DType),
    Reshape(Vec<usize>),
    /// Join along an existing axis.
    Concat(usize),
    /// Join along a new axis.
    Stack(usize),
    /// `[start, end)` along an axis.
    Slice {
        axis: usize,
        start: usize,
        end: usize,
    },
    /// `(x - mean[c]) / std[c]` with `c` the index along `axis`.
    Normalize {
        axis: usize,
        mean: Vec<f64>,
        std: Vec<f64>,
    },
    Softmax(usize),
    Argmax(usize),
    /// The `k` largest along `axis`: indices (INT64); values too when asked.
    TopK {
        axis: usize,
        k: usize,
    },
    Add(Operand),
    Mul(Operand),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Scalar(f64),
    /// The second source tensor (same shape, or a single element).
    Tensor,
}

fn err(s: impl Into<String>) -> TensorError {
    TensorError(s.into())
}

fn floats(t: &Tensor) -> Result<Vec<f64>, TensorError> {
    t.elements()
        .into_iter()
        .map(|e| match e {
            Element::Int(i) => Ok(i as f64),
            Element::UInt(u) => Ok(u as f64),
            Element::Float(f) => Ok(f),
            Element::Str(_) => Err(err("ERR tensor op needs a numeric tensor, not STRING")),
        })
        .collect()
}

/// The type arithmetic results take: floating inputs keep their type, others become FLOAT.
fn float_type(d: DType) -> DType {
    match d {
        DType::Double | DType::Float16 | DType::BFloat16 | DType::Float => d,
        _ => DType::Float,
    }
}

fn from_f64(dtype: DType, shape: &[usize], v: &[f64], max: usize) -> Result<Tensor, TensorError> {
    let elems: Vec<Element> = match dtype {
        DType::Float | DType::Double | DType::Float16 | DType::BFloat16 => {
            v.iter().map(|&x| Element::Float(x)).collect()
        }
        DType::Uint64 => v.iter().map(|&x| Element::UInt(x as u64)).collect(),
        DType::String => return Err(err("ERR cannot cast to STRING")),
        _ => v.iter().map(|&x| Element::Int(x as i64)).collect(),
    };
    Tensor::from_elements(dtype, shape, &elems, max)
}

/// An axis meaning "the last one", resolved against the tensor's rank when the op runs.
pub const LAST_AXIS: usize = usize::MAX;

fn resolve(axis: usize, rank: usize) -> usize {
    if axis == LAST_AXIS {
        rank.saturating_sub(1)
    } else {
        axis
    }
}

/// (outer, n, inner) sizes around `axis`.
fn split(shape: &[usize], axis: usize) -> Result<(usize, usize, usize), TensorError> {
    let axis = resolve(axis, shape.len());
    if axis >= shape.len() {
        return Err(err(format!(
            "ERR axis {axis} is out of range for a tensor of rank {}",
            shape.len()
        )));
    }
    Ok((
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    ))
}

/// Applies `op` to `srcs`, returning the result (and, for TOPK, the values as a second tensor).
pub fn apply(
    op: &TensorOp,
    srcs: &[&Tensor],
    max: usize,
) -> Result<(Tensor, Option<Tensor>), TensorError> {
    let first = srcs
        .first()
        .ok_or_else(|| err("ERR tensor op needs a source tensor"))?;
    let shape = first.shape();
    let one = |t: Tensor| Ok((t, None));
    match op {
        TensorOp::Cast(to) => {
            if *to == DType::String || first.dtype() == DType::String {
                return Err(err("ERR CAST supports numeric types only"));
            }
            let v = floats(first)?;
            let v: Vec<f64> = if matches!(
                to,
                DType::Float | DType::Double | DType::Float16 | DType::BFloat16
            ) {
                v
            } else {
                v.into_iter().map(f64::trunc).collect()
            };
            one(from_f64(*to, shape, &v, max)?)
        }
        TensorOp::Reshape(dims) => one(first.reshaped(dims)?),
        TensorOp::Concat(axis) | TensorOp::Stack(axis) => {
            let stack = matches!(op, TensorOp::Stack(_));
            for t in srcs {
                if t.dtype() != first.dtype() || (stack && t.shape() != shape) {
                    return Err(err("ERR all tensors must have the same type and shape"));
                }
            }
            // Stacking is concatenation along a new axis of size one.
            let shapes: Vec<Vec<usize>> = srcs
                .iter()
                .map(|t| {
                    let mut s = t.shape().to_vec();
                    if stack {
                        s.insert((*axis).min(s.len()), 1);
                    }
                    s
                })
                .collect();
            let base = &shapes[0];
            let (outer, _, inner) = split(base, *axis)?;
            for s in &shapes {
                if s.len() != base.len()
                    || s.iter()
                        .enumerate()
                        .any(|(i, d)| i != *axis && *d != base[i])
                {
                    return Err(err(
                        "ERR tensors must agree on every dimension but the concatenation axis",
                    ));
                }
            }
            let datas: Vec<Vec<f64>> = srcs.iter().map(|t| floats(t)).collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for o in 0..outer {
                for (s, d) in shapes.iter().zip(&datas) {
                    let n = s[*axis];
                    out.extend_from_slice(&d[o * n * inner..(o + 1) * n * inner]);
                }
            }
            let mut result_shape = base.clone();
            result_shape[*axis] = shapes.iter().map(|s| s[*axis]).sum();
            one(from_f64(first.dtype(), &result_shape, &out, max)?)
        }
        TensorOp::Slice { axis, start, end } => {
            let (outer, n, inner) = split(shape, *axis)?;
            if start >= end || *end > n {
                return Err(err(format!(
                    "ERR slice [{start}, {end}) is out of range for dimension {n}"
                )));
            }
            let v = floats(first)?;
            let mut out = Vec::with_capacity(outer * (end - start) * inner);
            for o in 0..outer {
                out.extend_from_slice(&v[(o * n + start) * inner..(o * n + end) * inner]);
            }
            let mut s = shape.to_vec();
            s[*axis] = end - start;
            one(from_f64(first.dtype(), &s, &out, max)?)
        }
        TensorOp::Normalize { axis, mean, std } => {
            let (outer, n, inner) = split(shape, *axis)?;
            if mean.len() != n || std.len() != n {
                return Err(err(format!(
                    "ERR NORMALIZE needs {n} MEAN and STD values (one per channel)"
                )));
            }
            if std.contains(&0.0) {
                return Err(err("ERR NORMALIZE STD values must not be zero"));
            }
            let mut v = floats(first)?;
            for o in 0..outer {
                for c in 0..n {
                    for x in &mut v[(o * n + c) * inner..(o * n + c + 1) * inner] {
                        *x = (*x - mean[c]) / std[c];
                    }
                }
            }
            one(from_f64(float_type(first.dtype()), shape, &v, max)?)
        }
        TensorOp::Softmax(axis) => {
            let (outer, n, inner) = split(shape, *axis)?;
            let _ = resolve(*axis, shape.len());
            let mut v = floats(first)?;
            for o in 0..outer {
                for k in 0..inner {
                    let idx = |i: usize| (o * n + i) * inner + k;
                    let m = (0..n).map(|i| v[idx(i)]).fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = (0..n).map(|i| (v[idx(i)] - m).exp()).sum();
                    for i in 0..n {
                        v[idx(i)] = (v[idx(i)] - m).exp() / sum;
                    }
                }
            }
            one(from_f64(float_type(first.dtype()), shape, &v, max)?)
        }
        TensorOp::Argmax(axis) | TensorOp::TopK { axis, .. } => {
            let k = match op {
                TensorOp::TopK { k, .. } => *k,
                _ => 1,
            };
            let axis = &resolve(*axis, shape.len());
            let (outer, n, inner) = split(shape, *axis)?;
            if k == 0 || k > n {
                return Err(err(format!("ERR k must be between 1 and {n}")));
            }
            let v = floats(first)?;
            let (mut idx_out, mut val_out) = (Vec::new(), Vec::new());
            for o in 0..outer {
                let mut rows_i = vec![Vec::new(); inner];
                let mut rows_v = vec![Vec::new(); inner];
                for kk in 0..inner {
                    let mut order: Vec<usize> = (0..n).collect();
                    // Stable: ties keep the lower index first, as numpy's argmax does.
                    order.sort_by(|&a, &b| {
                        v[(o * n + b) * inner + kk].total_cmp(&v[(o * n + a) * inner + kk])
                    });
                    rows_i[kk] = order[..k].iter().map(|&i| i as f64).collect();
                    rows_v[kk] = order[..k]
                        .iter()
                        .map(|&i| v[(o * n + i) * inner + kk])
                        .collect();
                }
                for j in 0..k {
                    for kk in 0..inner {
                        idx_out.push(rows_i[kk][j]);
                        val_out.push(rows_v[kk][j]);
                    }
                }
            }
            let mut s = shape.to_vec();
            if matches!(op, TensorOp::Argmax(_)) {
                s.remove(*axis);
                if s.is_empty() {
                    s.push(1);
                }
                return one(from_f64(DType::Int64, &s, &idx_out, max)?);
            }
            s[*axis] = k;
            Ok((
                from_f64(DType::Int64, &s, &idx_out, max)?,
                Some(from_f64(first.dtype(), &s, &val_out, max)?),
            ))
        }
        TensorOp::Add(operand) | TensorOp::Mul(operand) => {
            let a = floats(first)?;
            let b: Vec<f64> = match operand {
                Operand::Scalar(x) => vec![*x],
                Operand::Tensor => {
                    let t = srcs
                        .get(1)
                        .ok_or_else(|| err("ERR a second tensor is needed"))?;
                    if t.len() != 1 && t.shape() != shape {
                        return Err(err(
                            "ERR tensors must have the same shape (or the second a single element)",
                        ));
                    }
                    floats(t)?
                }
            };
            let add = matches!(op, TensorOp::Add(_));
            let v: Vec<f64> = a
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let y = if b.len() == 1 { b[0] } else { b[i] };
                    if add {
                        x + y
                    } else {
                        x * y
                    }
                })
                .collect();
            let integral = matches!(operand, Operand::Scalar(x) if x.fract() == 0.0)
                || matches!(operand, Operand::Tensor);
            let dtype = if integral {
                first.dtype()
            } else {
                float_type(first.dtype())
            };
            one(from_f64(dtype, shape, &v, max)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dtype: DType, shape: &[usize], v: &[&str]) -> Tensor {
        Tensor::from_values(dtype, shape, v, 1 << 30).unwrap()
    }

    fn vals(t: &Tensor) -> Vec<f64> {
        floats(t).unwrap()
    }

    #[test]
    fn ops_match_numpy_semantics() {
        let x = t(DType::Float, &[2, 3], &["1", "5", "3", "4", "2", "6"]);
        let (a, _) = apply(&TensorOp::Argmax(1), &[&x], 1 << 30).unwrap();
        assert_eq!(
            (a.dtype(), a.shape(), vals(&a)),
            (DType::Int64, &[2][..], vec![1.0, 2.0])
        );
        let (i, v) = apply(&TensorOp::TopK { axis: 1, k: 2 }, &[&x], 1 << 30).unwrap();
        assert_eq!(vals(&i), vec![1.0, 2.0, 2.0, 0.0]);
        assert_eq!(vals(&v.unwrap()), vec![5.0, 3.0, 6.0, 4.0]);
        let (s, _) = apply(&TensorOp::Softmax(1), &[&x], 1 << 30).unwrap();
        let row: f64 = vals(&s)[..3].iter().sum();
        assert!((row - 1.0).abs() < 1e-6);
        let (c, _) = apply(&TensorOp::Concat(0), &[&x, &x], 1 << 30).unwrap();
        assert_eq!(c.shape(), &[4, 3]);
        let (st, _) = apply(&TensorOp::Stack(0), &[&x, &x], 1 << 30).unwrap();
        assert_eq!(st.shape(), &[2, 2, 3]);
        let (sl, _) = apply(
            &TensorOp::Slice {
                axis: 1,
                start: 1,
                end: 3,
            },
            &[&x],
            1 << 30,
        )
        .unwrap();
        assert_eq!(vals(&sl), vec![5.0, 3.0, 2.0, 6.0]);
        let img = t(DType::Uint8, &[1, 2, 1, 2], &["0", "255", "10", "20"]);
        let (f, _) = apply(&TensorOp::Cast(DType::Float), &[&img], 1 << 30).unwrap();
        let (n, _) = apply(
            &TensorOp::Normalize {
                axis: 1,
                mean: vec![0.0, 10.0],
                std: vec![255.0, 10.0],
            },
            &[&f],
            1 << 30,
        )
        .unwrap();
        assert_eq!(vals(&n), vec![0.0, 1.0, 0.0, 1.0]);
        let (m, _) = apply(&TensorOp::Mul(Operand::Scalar(0.5)), &[&x], 1 << 30).unwrap();
        assert_eq!(vals(&m)[1], 2.5);
        let (sum, _) = apply(&TensorOp::Add(Operand::Tensor), &[&x, &x], 1 << 30).unwrap();
        assert_eq!(vals(&sum)[5], 12.0);
        assert!(apply(&TensorOp::Argmax(2), &[&x], 1 << 30).is_err());
    }
}
