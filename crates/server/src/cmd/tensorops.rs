//! AI.TENSOROP: built-in tensor ops, standalone or inside a DAG, run off the event loops.
//!
//! `AI.TENSOROP dst OP …` where OP is one of
//! `CAST src type`, `RESHAPE src dim…`, `CONCAT src… [AXIS a]`, `STACK src… [AXIS a]`,
//! `SLICE src start end [AXIS a]`, `NORMALIZE src MEAN n m… STD n s… [AXIS a]`,
//! `SOFTMAX src [AXIS a]`, `ARGMAX src [AXIS a]`, `TOPK src k [AXIS a] [VALUES dst2]`,
//! `ADD src (src2 | SCALAR v)`, `MUL src (src2 | SCALAR v)`.

use super::tensors::{get_tensor, put_tensors_in};
use super::{Args, CmdError, CmdResult, Ctx};
use crate::server::reply::Reply;
use crate::tensor::ops::{apply, Operand, TensorOp, LAST_AXIS};
use crate::tensor::DType;
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// A parsed op: what to compute, from which tensors, into which names.
pub struct OpSpec {
    pub op: TensorOp,
    pub srcs: Vec<Bytes>,
    pub dst: Bytes,
    /// TOPK's optional values output.
    pub values_dst: Option<Bytes>,
}

fn usize_arg(args: &mut Args, what: &str) -> Result<usize, CmdError> {
    args.next_i64()
        .ok()
        .filter(|v| *v >= 0)
        .map(|v| v as usize)
        .ok_or_else(|| CmdError::new(format!("ERR invalid {what}")))
}

fn floats(args: &mut Args, what: &str) -> Result<Vec<f64>, CmdError> {
    let n = usize_arg(args, &format!("{what} count"))?;
    (0..n).map(|_| args.next_f64()).collect()
}

/// Parses `dst OP …` (everything after the command name).
pub fn parse(args: &mut Args) -> Result<OpSpec, CmdError> {
    let dst = args.next()?;
    let name = args.next_upper()?;
    let mut srcs = Vec::new();
    let mut axis = None;
    let mut values_dst = None;
    let rest_keywords = |args: &mut Args,
                         axis: &mut Option<usize>,
                         values: &mut Option<Bytes>|
     -> Result<(), CmdError> {
        while !args.is_empty() {
            match args.next_upper()?.as_str() {
                "AXIS" => *axis = Some(usize_arg(args, "AXIS")?),
                "VALUES" => *values = Some(args.next()?),
                _ => return Err(CmdError::syntax()),
            }
        }
        Ok(())
    };
    let op = match name.as_str() {
        "CAST" => {
            srcs.push(args.next()?);
            let t = DType::parse(args.next_slice()?)
                .ok_or_else(|| CmdError::new("ERR invalid data type"))?;
            TensorOp::Cast(t)
        }
        "RESHAPE" => {
            srcs.push(args.next()?);
            let mut dims = Vec::new();
            while !args.is_empty() {
                dims.push(usize_arg(args, "dimension")?);
            }
            if dims.is_empty() {
                return Err(CmdError::syntax());
            }
            TensorOp::Reshape(dims)
        }
        "CONCAT" | "STACK" => {
            while args
                .peek()
                .is_some_and(|a| !a.eq_ignore_ascii_case(b"AXIS"))
            {
                srcs.push(args.next()?);
            }
            rest_keywords(args, &mut axis, &mut values_dst)?;
            let a = axis.unwrap_or(0);
            if name == "CONCAT" {
                TensorOp::Concat(a)
            } else {
                TensorOp::Stack(a)
            }
        }
        "SLICE" => {
            srcs.push(args.next()?);
            let (start, end) = (usize_arg(args, "start")?, usize_arg(args, "end")?);
            rest_keywords(args, &mut axis, &mut values_dst)?;
            TensorOp::Slice {
                axis: axis.unwrap_or(0),
                start,
                end,
            }
        }
        "NORMALIZE" => {
            srcs.push(args.next()?);
            let (mut mean, mut std) = (None, None);
            while !args.is_empty() {
                match args.next_upper()?.as_str() {
                    "MEAN" => mean = Some(floats(args, "MEAN")?),
                    "STD" => std = Some(floats(args, "STD")?),
                    "AXIS" => axis = Some(usize_arg(args, "AXIS")?),
                    _ => return Err(CmdError::syntax()),
                }
            }
            let (Some(mean), Some(std)) = (mean, std) else {
                return Err(CmdError::new("ERR NORMALIZE needs MEAN and STD"));
            };
            TensorOp::Normalize {
                axis: axis.unwrap_or(1),
                mean,
                std,
            }
        }
        "SOFTMAX" | "ARGMAX" => {
            srcs.push(args.next()?);
            rest_keywords(args, &mut axis, &mut values_dst)?;
            let a = axis.unwrap_or(LAST_AXIS);
            if name == "SOFTMAX" {
                TensorOp::Softmax(a)
            } else {
                TensorOp::Argmax(a)
            }
        }
        "TOPK" => {
            srcs.push(args.next()?);
            let k = usize_arg(args, "k")?;
            rest_keywords(args, &mut axis, &mut values_dst)?;
            TensorOp::TopK {
                axis: axis.unwrap_or(LAST_AXIS),
                k,
            }
        }
        "ADD" | "MUL" => {
            srcs.push(args.next()?);
            let operand = if args.eat("SCALAR") {
                Operand::Scalar(args.next_f64()?)
            } else {
                srcs.push(args.next()?);
                Operand::Tensor
            };
            args.finish()?;
            if name == "ADD" {
                TensorOp::Add(operand)
            } else {
                TensorOp::Mul(operand)
            }
        }
        _ => return Err(CmdError::new(format!("ERR unknown tensor op '{name}'"))),
    };
    if srcs.is_empty() {
        return Err(CmdError::new("ERR tensor op needs a source tensor"));
    }
    Ok(OpSpec {
        op,
        srcs,
        dst,
        values_dst,
    })
}

pub fn tensorop(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::transactions::refuse_in_exec(ctx)?;
    let spec = parse(args)?;
    let inputs = spec
        .srcs
        .iter()
        .map(|k| get_tensor(ctx, k))
        .collect::<Result<Vec<_>, _>>()?;
    let max = ctx
        .server
        .config
        .live
        .tensor_max_bytes
        .load(Ordering::Relaxed);
    let server = ctx.server.clone();
    let db = ctx.client.db;
    ctx.defer(async move {
        let op = spec.op.clone();
        let result = tokio::task::spawn_blocking(move || {
            let refs: Vec<&crate::tensor::Tensor> = inputs.iter().map(|t| t.as_ref()).collect();
            apply(&op, &refs, max)
        })
        .await;
        match result {
            Ok(Ok((t, values))) => {
                let mut out = vec![(spec.dst.clone(), t)];
                if let (Some(k), Some(v)) = (&spec.values_dst, values) {
                    out.push((k.clone(), v));
                }
                match put_tensors_in(&server, db, out) {
                    Ok(()) => Reply::OK,
                    Err(e) => e.into(),
                }
            }
            Ok(Err(e)) => Reply::Error(e.0),
            Err(e) => Reply::err(format!("ERR tensor op failed: {e}")),
        }
    })
}
