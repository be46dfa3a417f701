//! AI.DAGEXECUTE / AI.DAGEXECUTE_RO and the deprecated AI.DAGRUN / AI.DAGRUN_RO: parsing into a
//! [`crate::dag::Plan`] and rendering its outcome with RedisAI's layout (one entry per op).

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

/// What a DAG's header says (the words before its first op).
#[derive(Default)]
struct Header {
    loaded: Vec<(Vec<u8>, Arc<crate::tensor::Tensor>)>,
    persist: Vec<Bytes>,
    routing: bool,
    timeout: Option<u64>,
    /// Index of the first `|>`.
    ops_at: usize,
}

/// Reads the header as RedisAI's DAGInitialParsing does: word by word over the whole request,
/// each keyword once, LOAD and PERSIST taking their count of names even across `|>`, LOAD
/// reading each tensor from the keyspace as it goes.
fn parse_header(
    ctx: &Ctx,
    req: &Request,
    start: usize,
    read_only: bool,
) -> Result<Header, CmdError> {
    let argc = req.len();
    let mut h = Header {
        ops_at: argc,
        ..Header::default()
    };
    let (mut seen_load, mut seen_persist) = (false, false);
    let mut seen_routing = false;
    let mut seen_timeout = false;
    let unexpected = |arg: &[u8]| {
        CmdError::new(format!(
            "ERR Invalid DAG command. Unexpected argument:  {}",
            String::from_utf8_lossy(arg)
        ))
    };
    let mut i = start;
    while i < argc {
        let arg = req.arg(i);
        if arg == b"|>" {
            if i == argc - 1 {
                return Err(unexpected(arg));
            }
            h.ops_at = i;
            break;
        }
        let kw = String::from_utf8_lossy(arg).to_ascii_uppercase();
        match kw.as_str() {
            "LOAD" if !seen_load => {
                seen_load = true;
                let (n, first) = key_count(req, i, "LOAD")?;
                for j in 0..n {
                    if first + j >= argc {
                        return Err(CmdError::new(
                            "ERR number of keys to LOAD into DAG does not match the number of given arguments",
                        ));
                    }
                    let key = req.bytes(first + j);
                    let t = get_tensor(ctx, &key)?;
                    h.loaded.push((key.to_vec(), t));
                }
                i = first + n;
            }
            "PERSIST" if !seen_persist => {
                seen_persist = true;
                if read_only {
                    return Err(CmdError::new(
                        "ERR PERSIST cannot be specified in a read-only DAG",
                    ));
                }
                let (n, first) = key_count(req, i, "PERSIST")?;
                for j in 0..n {
                    if first + j >= argc {
                        return Err(CmdError::new(
                            "ERR number of keys to PERSIST after DAG execution does not match the number of given arguments",
                        ));
                    }
                    let key = req.bytes(first + j);
                    if h.persist.contains(&key) {
                        return Err(CmdError::new("ERR PERSIST keys must be unique"));
                    }
                    h.persist.push(key);
                }
                i = first + n;
            }
            "ROUTING" if !seen_routing => {
                seen_routing = true;
                if i == argc - 1 {
                    return Err(CmdError::new("ERR Missing ROUTING value"));
                }
                h.routing = true;
                i += 2;
            }
            "TIMEOUT" if !seen_timeout => {
                seen_timeout = true;
                if i == argc - 1 {
                    return Err(CmdError::new("ERR No value provided for TIMEOUT"));
                }
                let t = crate::util::parse_i64(req.arg(i + 1))
                    .ok_or_else(|| CmdError::new("ERR Invalid value for TIMEOUT"))?;
                // RedisAI takes a TIMEOUT of 0 or less as none.
                h.timeout = (t > 0).then_some(t as u64);
                i += 2;
            }
            _ => return Err(unexpected(arg)),
        }
    }
    Ok(h)
}

/// LOAD's or PERSIST's count at `req[at + 1]`: (count, index of the first name).
fn key_count(req: &Request, at: usize, what: &str) -> Result<(usize, usize), CmdError> {
    if req.len() - (at + 1) < 2 {
        return Err(CmdError::new(format!(
            "ERR missing arguments after {what} keyword in DAG command"
        )));
    }
    let n = crate::util::parse_i64(req.arg(at + 1))
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            CmdError::new(format!(
                "ERR invalid or negative value found in number of keys to {what}"
            ))
        })?;
    Ok((n as usize, at + 2))
}

fn dag_generic(ctx: &mut Ctx, args: &mut Args, flavor: Flavor, read_only: bool) -> CmdResult {
    let req = args.request().clone();
    let name = match (flavor, read_only) {
        (Flavor::Execute, false) => "AI.DAGEXECUTE",
        (Flavor::Execute, true) => "AI.DAGEXECUTE_RO",
        (Flavor::Run, false) => "AI.DAGRUN",
        (Flavor::Run, true) => "AI.DAGRUN_RO",
    };
    match flavor {
        Flavor::Execute if req.len() < 6 => {
            return Err(CmdError::new(format!(
                "ERR missing arguments for '{name}' command"
            )))
        }
        Flavor::Run if req.len() < 4 => {
            return Err(CmdError::new(format!(
                "ERR wrong number of arguments for '{name}' command"
            )))
        }
        _ => {}
    }
    let start = req.len() - args.remaining();
    let header = parse_header(ctx, &req, start, read_only)?;
    if req.arg(req.len() - 1) == b"|>" {
        return Err(CmdError::new(
            "ERR Invalid DAG command. Unexpected argument:  |>",
        ));
    }
    if flavor == Flavor::Execute
        && header.loaded.is_empty()
        && header.persist.is_empty()
        && !header.routing
    {
        return Err(CmdError::new(
            "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of ROUTING, LOAD, PERSIST keywords",
        ));
    }
    if header.ops_at >= req.len() {
        return Err(CmdError::new("ERR DAG is empty"));
    }
    // The ops, split at `|>`, as views of the request's own buffer.
    let mut bounds = vec![header.ops_at];
    for i in header.ops_at + 1..req.len() {
        if req.arg(i) == b"|>" {
            bounds.push(i);
        }
    }
    bounds.push(req.len());
    let segments: Vec<Request> = bounds.windows(2).map(|w| req.sub(w[0] + 1, w[1])).collect();
    let max = ctx
        .server
        .config
        .live
        .tensor_max_bytes
        .load(Ordering::Relaxed);
    let mut ops = Vec::new();
    // Model ops whose key has a request log or a monitor: they are logged and observed as
    // AI.MODELEXECUTE runs are, once the DAG has run.
    let mut watchers: Vec<Watcher> = Vec::new();
    for seg in segments {
        if seg.is_empty() {
            // Two `|>` in a row: RedisAI reads the second as the op's name.
            return Err(CmdError::new("Unsupported command within DAG"));
        }
        let op_name = String::from_utf8_lossy(seg.arg(0)).to_ascii_uppercase();
        let argc = seg.len();
        let mut a = Args::new(seg, 1);
        match op_name.as_str() {
            "AI.TENSORSET" => {
                if argc < 4 {
                    return Err(CmdError::new(
                        "wrong number of arguments for 'AI.TENSORSET' command",
                    ));
                }
                let key = a.next()?;
                let t = parse_tensor(&mut a, max)?;
                ops.push(Op::Set {
                    name: key.to_vec(),
                    tensor: Arc::new(t),
                });
            }
            "AI.TENSORGET" => {
                if !(2..=4).contains(&argc) {
                    return Err(CmdError::new(
                        "wrong number of arguments for 'AI.TENSORGET' command",
                    ));
                }
                let key = a.next()?;
                let f = parse_format(&mut a)?;
                ops.push(Op::Get {
                    name: key.to_vec(),
                    format: format_code(f),
                });
            }
            "AI.MODELEXECUTE" | "AI.MODELRUN" => {
                let execute = op_name == "AI.MODELEXECUTE";
                if !execute && flavor == Flavor::Execute {
                    return Err(CmdError::new(
                        "Deprecated AI.MODELRUN cannot be used in AI.DAGEXECUTE command",
                    ));
                }
                if execute && flavor == Flavor::Run {
                    return Err(CmdError::new(
                        "AI.MODELEXECUTE cannot be used in a deprecated AI.DAGRUN command",
                    ));
                }
                super::models::exec_arity(&a, execute)?;
                let req = super::models::parse_exec(ctx, &mut a, execute)?;
                if req.timeout_ms.is_some() {
                    return Err(CmdError::new(
                        "ERR TIMEOUT not allowed within a DAG command",
                    ));
                }
                let home = ctx.server.outbox.home(ctx.client.db);
                let log = ctx
                    .server
                    .store
                    .request_logs
                    .get(home, &req.key)
                    .map(|spec| super::models::RunLog::start(ctx, spec, &req.key, &req.node));
                let monitor = ctx.server.store.monitors.get(home, &req.key);
                let watch = log.is_some() || monitor.is_some();
                if watch {
                    watchers.push(Watcher {
                        op: ops.len(),
                        key: req.key.clone(),
                        inputs: req.inputs.clone(),
                        outputs: req.outputs.clone(),
                        log,
                        monitor,
                    });
                }
                ops.push(Op::Exec {
                    node: req.node,
                    inputs: req.inputs.iter().map(|b| b.to_vec()).collect(),
                    outputs: req.outputs.iter().map(|b| b.to_vec()).collect(),
                    selection: req.selection,
                    watch,
                });
            }
            "AI.SCRIPTRUN" if flavor == Flavor::Execute => {
                return Err(CmdError::new(
                    "Deprecated AI.SCRIPTRUN cannot be used in AI.DAGEXECUTE command",
                ))
            }
            "AI.SCRIPTEXECUTE" if flavor == Flavor::Run => {
                return Err(CmdError::new(
                    "AI.SCRIPTEXECUTE cannot be used in a deprecated AI.DAGRUN command",
                ))
            }
            "AI.SCRIPTEXECUTE" if read_only => {
                return Err(CmdError::new(
                    "ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG",
                ))
            }
            "AI.EXPLAIN" => {
                if argc < 7 {
                    return Err(CmdError::new(
                        "ERR wrong number of arguments for 'AI.EXPLAIN' command",
                    ));
                }
                let call = super::explain::parse(ctx, &mut a)?;
                let default_background = if call.background.is_empty() {
                    super::explain::monitor_background(ctx, &call.key)
                } else {
                    None
                };
                ops.push(Op::Explain(Box::new(dag::ExplainOp {
                    model: call.model,
                    inputs: call.inputs.iter().map(|b| b.to_vec()).collect(),
                    background: call.background.iter().map(|b| b.to_vec()).collect(),
                    default_background,
                    feature_input: call.feature_input,
                    target: call.target,
                    class: call.class,
                    method: call.method,
                    output: call.output.to_vec(),
                    max_bytes: max,
                })));
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
    let plan = Plan {
        loaded: header.loaded,
        ops,
        persist: header.persist.iter().map(|k| k.to_vec()).collect(),
        deadline: header
            .timeout
            .map(|t| Instant::now() + Duration::from_millis(t)),
        events: super::routers::events(ctx),
    };
    dag::validate(&plan).map_err(CmdError)?;
    let server = ctx.server.clone();
    let db = ctx.client.db;
    ctx.defer(async move {
        match dag::run(server.engine.clone(), plan).await {
            Outcome::TimedOut => Reply::Status("TIMEDOUT"),
            Outcome::Done {
                results,
                persist,
                watched,
            } => {
                report_watched(&server, db, watchers, watched);
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

/// A watched model op of a DAG: its key and names, and its log and monitor.
struct Watcher {
    op: usize,
    key: Bytes,
    inputs: Vec<Bytes>,
    outputs: Vec<Bytes>,
    log: Option<super::models::RunLog>,
    monitor: Option<Arc<parking_lot::Mutex<locus_engine::monitor::Monitor>>>,
}

/// Logs and observes the watched model ops that ran, as AI.MODELEXECUTE does its run.
fn report_watched(
    server: &Arc<crate::server::Server>,
    db: usize,
    mut watchers: Vec<Watcher>,
    watched: Vec<dag::WatchedRun>,
) {
    for run in watched {
        let Some(w) = watchers.iter().position(|w| w.op == run.op) else {
            continue;
        };
        let w = watchers.swap_remove(w);
        let outputs: Result<Vec<crate::tensor::Tensor>, Reply> = match run.outputs {
            Ok(ts) => Ok(ts.iter().map(|t| (**t).clone()).collect()),
            Err(e) => Err(Reply::Error(e)),
        };
        if let (Some(m), Ok(out)) = (&w.monitor, &outputs) {
            super::monitors::observe(server, db, &w.key, m, &run.inputs, out);
        }
        if let Some(log) = w.log {
            let names = super::models::LoggedNames {
                key: &w.key,
                inputs: &w.inputs,
                outputs: &w.outputs,
            };
            log.finish(server, db, &names, None, &run.inputs, &outputs);
        }
    }
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
