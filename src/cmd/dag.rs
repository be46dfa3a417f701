//! AI.DAGEXECUTE / AI.DAGEXECUTE_RO and the deprecated AI.DAGRUN / AI.DAGRUN_RO: parsing into a
//! [`crate::dag::Plan`] and rendering its outcome with RedisAI's layout (one entry per op).

use super::models::check_inputs;
use super::tensors::{
    get_tensor, parse_format, parse_tensor, put_tensors_in, tensor_reply, Format,
};
use super::{Args, CmdError, CmdResult, Ctx};
use crate::dag::{self, Op, OpResult, Outcome, Plan};
use crate::server::protocol::Request;
use crate::server::reply::Reply;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Flavor {
    Execute,
    Run,
}

fn format_code(f: Format) -> u8 {
    (f.meta as u8) | (f.blob as u8) << 1 | (f.values as u8) << 2
}

fn format_of(code: u8) -> Format {
    Format {
        meta: code & 1 != 0,
        blob: code & 2 != 0,
        values: code & 4 != 0,
    }
}

fn keys(args: &mut Args, what: &str) -> Result<Vec<Bytes>, CmdError> {
    let n = args.next_i64().ok().filter(|n| *n > 0).ok_or_else(|| {
        CmdError::new(format!(
            "ERR invalid or negative number of keys given for {what}"
        ))
    })?;
    (0..n)
        .map(|_| {
            args.next().map_err(|_| {
                CmdError::new(format!(
                    "ERR number of keys given for {what} is bigger than the number of arguments"
                ))
            })
        })
        .collect()
}

fn dag_generic(ctx: &mut Ctx, args: &mut Args, flavor: Flavor, read_only: bool) -> CmdResult {
    // Split the request into the header and the ops separated by `|>`, as views of the
    // request's own buffer.
    let req = args.request();
    let start = req.len() - args.remaining();
    let mut bounds = vec![start];
    for i in start..req.len() {
        if req.arg(i) == b"|>" {
            bounds.push(i);
        }
    }
    bounds.push(req.len());
    let mut h = Args::new(req.sub(bounds[0], bounds[1]), 0);
    let segments: Vec<Request> = bounds[1..]
        .windows(2)
        .map(|w| req.sub(w[0] + 1, w[1]))
        .collect();
    let (mut load, mut persist, mut routing, mut timeout) = (Vec::new(), Vec::new(), false, None);
    while let Some(kw) = h
        .peek()
        .map(|k| String::from_utf8_lossy(k).to_ascii_uppercase())
    {
        h.next_slice()?;
        match kw.as_str() {
            "LOAD" => load = keys(&mut h, "LOAD")?,
            "PERSIST" => {
                if read_only {
                    return Err(CmdError::new(
                        "ERR PERSIST cannot be specified in a read-only DAG",
                    ));
                }
                persist = keys(&mut h, "PERSIST")?
            }
            "ROUTING" if flavor == Flavor::Execute => {
                h.next()?;
                routing = true;
            }
            "TIMEOUT" => {
                timeout = Some(
                    h.next_i64()
                        .ok()
                        .filter(|t| *t > 0)
                        .ok_or_else(|| CmdError::new("ERR Invalid value for TIMEOUT"))?
                        as u64,
                );
            }
            _ => {
                return Err(CmdError::new(format!(
                    "ERR Invalid DAG command. Unexpected argument:  {kw}"
                )))
            }
        }
    }
    if flavor == Flavor::Execute && load.is_empty() && persist.is_empty() && !routing {
        return Err(CmdError::new(
            "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of ROUTING, LOAD, PERSIST keywords",
        ));
    }
    if segments.is_empty() || segments.iter().all(|s| s.is_empty()) {
        return Err(CmdError::new("ERR DAG is empty"));
    }
    let max = ctx
        .server
        .config
        .live
        .tensor_max_bytes
        .load(Ordering::Relaxed);
    let mut ops = Vec::new();
    for seg in segments {
        if seg.is_empty() {
            return Err(CmdError::new("ERR DAG is empty"));
        }
        let op_name = String::from_utf8_lossy(seg.arg(0)).to_ascii_uppercase();
        let timeout_given = (1..seg.len()).any(|i| seg.arg(i).eq_ignore_ascii_case(b"TIMEOUT"));
        let mut a = Args::new(seg, 1);
        match op_name.as_str() {
            "AI.TENSORSET" => {
                let key = a.next()?;
                let t = parse_tensor(&mut a, max)?;
                ops.push(Op::Set {
                    name: key.to_vec(),
                    tensor: Arc::new(t),
                });
            }
            "AI.TENSORGET" => {
                let key = a.next()?;
                let f = parse_format(&mut a)?;
                ops.push(Op::Get {
                    name: key.to_vec(),
                    format: format_code(f),
                });
            }
            "AI.MODELEXECUTE" | "AI.MODELRUN" => {
                if op_name == "AI.MODELRUN" && flavor == Flavor::Execute {
                    return Err(CmdError::new(
                        "Deprecated AI.MODELRUN cannot be used in AI.DAGEXECUTE command",
                    ));
                }
                if timeout_given {
                    return Err(CmdError::new(
                        "ERR TIMEOUT not allowed within a DAG command",
                    ));
                }
                let req = super::models::parse_exec(ctx, &mut a, op_name == "AI.MODELEXECUTE")?;
                ops.push(Op::Exec {
                    model: req.model,
                    inputs: req.inputs.iter().map(|b| b.to_vec()).collect(),
                    outputs: req.outputs.iter().map(|b| b.to_vec()).collect(),
                    selection: req.selection,
                });
            }
            "AI.TENSOROP" => {
                let spec = super::tensorops::parse(&mut a)?;
                ops.push(Op::Compute {
                    op: spec.op,
                    inputs: spec.srcs.iter().map(|b| b.to_vec()).collect(),
                    output: spec.dst.to_vec(),
                    values: spec.values_dst.map(|b| b.to_vec()),
                    max_bytes: max,
                });
            }
            _ => return Err(CmdError::new("Unsupported command within DAG")),
        }
    }
    // LOAD reads every key once, consistently, now.
    let loaded = load
        .iter()
        .map(|k| Ok((k.to_vec(), get_tensor(ctx, k)?)))
        .collect::<Result<Vec<_>, CmdError>>()?;
    let plan = Plan {
        loaded,
        ops,
        persist: persist.iter().map(|k| k.to_vec()).collect(),
        deadline: timeout.map(|t| Instant::now() + Duration::from_millis(t)),
    };
    dag::validate(&plan).map_err(CmdError)?;
    check_signatures(&plan)?;
    let server = ctx.server.clone();
    let db = ctx.client.db;
    ctx.defer(async move {
        match dag::run(server.engine.clone(), plan).await {
            Outcome::TimedOut => Reply::Status("TIMEDOUT"),
            Outcome::Done { results, persist } => {
                let persist = persist
                    .into_iter()
                    .map(|(key, t)| (Bytes::from(key), (*t).clone()))
                    .collect();
                if let Err(e) = put_tensors_in(&server, db, persist) {
                    return e.into();
                }
                Reply::Array(
                    results
                        .into_iter()
                        .map(|r| match r {
                            OpResult::Ok => Reply::OK,
                            OpResult::Tensor(t, f) => tensor_reply(&t, format_of(f)),
                            OpResult::Error(e) => Reply::Error(e),
                            OpResult::NotRun => Reply::Status("NA"),
                        })
                        .collect(),
                )
            }
        }
    })
}

/// Checks model inputs whose tensors are known before running (LOADed or set in the DAG).
fn check_signatures(plan: &Plan) -> Result<(), CmdError> {
    let mut known: std::collections::HashMap<
        &[u8],
        &Arc<crate::tensor::Tensor>,
        ahash::RandomState,
    > = plan.loaded.iter().map(|(n, t)| (n.as_slice(), t)).collect();
    for op in &plan.ops {
        match op {
            Op::Set { name, tensor } => {
                known.insert(name, tensor);
            }
            Op::Exec {
                model,
                inputs,
                outputs,
                ..
            } => {
                if let Some(ts) = inputs
                    .iter()
                    .map(|i| known.get(i.as_slice()).map(|t| (*t).clone()))
                    .collect::<Option<Vec<_>>>()
                {
                    check_inputs(model, &ts)?;
                }
                for o in outputs {
                    known.remove(o.as_slice());
                }
            }
            Op::Compute { output, values, .. } => {
                known.remove(output.as_slice());
                if let Some(v) = values {
                    known.remove(v.as_slice());
                }
            }
            Op::Get { .. } => {}
        }
    }
    Ok(())
}

pub fn dagexecute(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::transactions::refuse_in_exec(ctx)?;
    dag_generic(ctx, args, Flavor::Execute, false)
}

pub fn dagexecute_ro(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::transactions::refuse_in_exec(ctx)?;
    dag_generic(ctx, args, Flavor::Execute, true)
}

pub fn dagrun(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::transactions::refuse_in_exec(ctx)?;
    dag_generic(ctx, args, Flavor::Run, false)
}

pub fn dagrun_ro(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::transactions::refuse_in_exec(ctx)?;
    dag_generic(ctx, args, Flavor::Run, true)
}
