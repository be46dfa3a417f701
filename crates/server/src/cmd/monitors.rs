//! AI.MONITOR SET / GET / DEL: drift and outlier monitors on a model or router key (the
//! statistics are the engine's, `locus_engine::monitor`). A monitor watches the runs of
//! AI.MODELEXECUTE and AI.MODELRUN on its key; a change of state raises an alert. Definitions
//! (with their baselines) are saved in snapshots and AOF rewrites.

use super::{Args, CmdError, CmdResult, Ctx};
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::{Entry, Value};
use crate::tensor::Tensor;
use bytes::Bytes;
use locus_engine::monitor::{Change, Method, Monitor, MonitorSpec};
use parking_lot::Mutex;
use std::sync::Arc;

fn tensor_at(ctx: &Ctx, key: &[u8], what: &str) -> Result<Arc<Tensor>, CmdError> {
    let shard = ctx.db().read(key);
    match shard.get(key, ctx.now()) {
        Some(Entry {
            value: Value::Tensor(t),
            ..
        }) => Ok(Arc::clone(t)),
        _ => Err(CmdError::new(format!(
            "ERR {what} '{}' is not a tensor",
            String::from_utf8_lossy(key)
        ))),
    }
}

/// The options of `AI.MONITOR SET`, with the keys BASELINE and OUTPUT-BASELINE name.
struct Options {
    spec: MonitorSpec,
    baseline: Option<Bytes>,
    output_baseline: Option<Bytes>,
}

fn parse_options(args: &mut Args) -> Result<Options, CmdError> {
    let mut spec = MonitorSpec {
        method: Method::Psi,
        window: 1000,
        every: 100,
        threshold: f64::NAN,
        zscore: None,
        outlier_rate: 0.05,
    };
    let (mut baseline, mut output_baseline) = (None, None);
    let positive = |args: &mut Args, what: &str| -> Result<usize, CmdError> {
        args.next_i64()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| CmdError::new(format!("ERR {what} must be a positive integer")))
    };
    while !args.is_empty() {
        match args.next_upper()?.as_str() {
            "BASELINE" => baseline = Some(args.next()?),
            "OUTPUT-BASELINE" => output_baseline = Some(args.next()?),
            "WINDOW" => {
                spec.window = positive(args, "WINDOW")?;
                // The window keeps its rows: bound the memory one monitor may take.
                if spec.window > 1_000_000 {
                    return Err(CmdError::new("ERR WINDOW is at most 1000000 rows"));
                }
            }
            "EVERY" => spec.every = positive(args, "EVERY")?,
            "METHOD" => {
                spec.method = match args.next_upper()?.as_str() {
                    "PSI" => Method::Psi,
                    "KS" => Method::Ks,
                    _ => return Err(CmdError::new("ERR METHOD is PSI or KS")),
                }
            }
            "THRESHOLD" => {
                spec.threshold = args
                    .next()
                    .ok()
                    .and_then(|b| crate::util::parse_f64(&b))
                    .filter(|x| *x > 0.0 && x.is_finite())
                    .ok_or_else(|| CmdError::new("ERR THRESHOLD must be a positive number"))?
            }
            "OUTLIER" => {
                if !args.eat("ZSCORE") {
                    return Err(CmdError::new("ERR OUTLIER takes ZSCORE k"));
                }
                spec.zscore = Some(
                    args.next()
                        .ok()
                        .and_then(|b| crate::util::parse_f64(&b))
                        .filter(|x| *x > 0.0 && x.is_finite())
                        .ok_or_else(|| CmdError::new("ERR ZSCORE must be a positive number"))?,
                );
                if args.eat("RATE") {
                    spec.outlier_rate = args
                        .next()
                        .ok()
                        .and_then(|b| crate::util::parse_f64(&b))
                        .filter(|x| (0.0..=1.0).contains(x))
                        .ok_or_else(|| CmdError::new("ERR RATE must be between 0 and 1"))?;
                }
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    if spec.threshold.is_nan() {
        // Common practice: PSI above 0.2 is a significant shift; KS's D above 0.1.
        spec.threshold = match spec.method {
            Method::Psi => 0.2,
            Method::Ks => 0.1,
        };
    }
    Ok(Options {
        spec,
        baseline,
        output_baseline,
    })
}

/// `AI.MONITOR SET key BASELINE tensor [OUTPUT-BASELINE tensor] [WINDOW n] [EVERY n]
/// [METHOD PSI | KS] [THRESHOLD x] [OUTLIER ZSCORE k [RATE r]]`.
pub fn monitor_set(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let Options {
        spec,
        baseline,
        output_baseline,
    } = parse_options(args)?;
    let baseline = baseline.ok_or_else(|| CmdError::new("ERR AI.MONITOR SET needs BASELINE"))?;
    {
        let shard = ctx.db().read(&key);
        match shard.get(&key, ctx.now()) {
            None => return Err(CmdError::new(super::models::ERR_MODEL_EMPTY)),
            Some(Entry {
                value: Value::Model(_) | Value::Router(_),
                ..
            }) => {}
            Some(_) => return Err(CmdError::wrong_type()),
        }
    }
    let base = tensor_at(ctx, &baseline, "BASELINE")?;
    let out = match &output_baseline {
        Some(k) => Some(tensor_at(ctx, k, "OUTPUT-BASELINE")?),
        None => None,
    };
    let monitor = Monitor::new(spec, &base, out.as_deref()).map_err(CmdError)?;
    ctx.server.store.monitors.set(
        ctx.server.outbox.home(ctx.client.db),
        key,
        Mutex::new(monitor),
    );
    ctx.dirty(1);
    Ok(Reply::OK)
}

/// The marker before a baseline's data in a saved definition.
const BASELINE_DATA: &str = "BASELINE-DATA";
const OUTPUT_BASELINE_DATA: &str = "OUTPUT-BASELINE-DATA";

/// A monitor's definition as words, for snapshots and AOF rewrites: its options as
/// `AI.MONITOR SET` takes them, then each baseline as a marker, its type, its shape (`2x30`)
/// and its data. (The window's rows are not kept: after a restart it fills again.)
pub fn to_words(m: &Monitor) -> Vec<Bytes> {
    let w = |s: String| Bytes::from(s.into_bytes());
    let spec = &m.spec;
    let mut words = vec![
        w("METHOD".into()),
        w(match spec.method {
            Method::Psi => "PSI".into(),
            Method::Ks => "KS".into(),
        }),
        w("WINDOW".into()),
        w(spec.window.to_string()),
        w("EVERY".into()),
        w(spec.every.to_string()),
        w("THRESHOLD".into()),
        w(format!("{:?}", spec.threshold)),
    ];
    if let Some(k) = spec.zscore {
        words.extend([
            w("OUTLIER".into()),
            w("ZSCORE".into()),
            w(format!("{k:?}")),
            w("RATE".into()),
            w(format!("{:?}", spec.outlier_rate)),
        ]);
    }
    let (base, out) = m.baselines();
    for (marker, t) in [(BASELINE_DATA, Some(base)), (OUTPUT_BASELINE_DATA, out)] {
        if let Some(t) = t {
            let shape: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
            words.extend([
                w(marker.into()),
                w(t.dtype().name().into()),
                w(shape.join("x")),
                t.blob().clone(),
            ]);
        }
    }
    words
}

/// Rebuilds a monitor from [`to_words`]' output.
pub fn from_words(words: &[Bytes]) -> Result<Monitor, String> {
    let split = words
        .iter()
        .position(|w| &w[..] == BASELINE_DATA.as_bytes())
        .ok_or("no baseline data")?;
    let req = crate::server::protocol::Request::from_args(&words[..split]);
    let opts = parse_options(&mut Args::new(req, 0)).map_err(|e| e.0)?;
    let tensor = |at: usize| -> Result<Tensor, String> {
        let dtype = words
            .get(at + 1)
            .and_then(|d| crate::tensor::DType::parse(d))
            .ok_or("bad baseline type")?;
        let shape = words
            .get(at + 2)
            .map(|s| {
                String::from_utf8_lossy(s)
                    .split('x')
                    .map(|d| d.parse::<usize>().map_err(|_| "bad baseline shape"))
                    .collect::<Result<Vec<_>, _>>()
            })
            .ok_or("bad baseline shape")??;
        let data = words.get(at + 3).ok_or("no baseline data")?;
        Tensor::from_blob(dtype, &shape, &[data], usize::MAX).map_err(|e| e.0)
    };
    let base = tensor(split)?;
    let out = match words
        .iter()
        .position(|w| &w[..] == OUTPUT_BASELINE_DATA.as_bytes())
    {
        Some(at) => Some(tensor(at)?),
        None => None,
    };
    Monitor::new(opts.spec, &base, out.as_ref())
}

/// `AI.MONITOR GET key`: the method, the window, per-feature scores (and KS p-values), the
/// outlier rate and the state; null when the key is not watched.
pub fn monitor_get(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let Some(m) = ctx
        .server
        .store
        .monitors
        .get(ctx.server.outbox.home(ctx.client.db), &key)
    else {
        return Ok(Reply::Null);
    };
    let m = m.lock();
    let s = Reply::bulk_str;
    let doubles = |v: &[f64]| Reply::Array(v.iter().map(|x| Reply::Double(*x)).collect());
    let mut fields = vec![
        (
            s("method"),
            s(match m.spec.method {
                Method::Psi => "PSI",
                Method::Ks => "KS",
            }),
        ),
        (s("threshold"), Reply::Double(m.spec.threshold)),
        (s("window"), Reply::Int(m.spec.window as i64)),
        (s("every"), Reply::Int(m.spec.every as i64)),
        (s("rows_seen"), Reply::Int(m.rows_seen as i64)),
        (s("window_rows"), Reply::Int(m.window_rows() as i64)),
        (s("state"), s(m.state())),
        (s("scores"), doubles(&m.input_scores().scores)),
    ];
    if m.spec.method == Method::Ks {
        fields.push((s("p_values"), doubles(&m.input_scores().p_values)));
    }
    if let Some(o) = m.output_scores() {
        fields.push((s("output_scores"), doubles(&o.scores)));
    }
    fields.push((s("outlier_rate"), Reply::Double(m.outlier_rate())));
    Ok(Reply::Map(fields))
}

/// `AI.MONITOR DEL key`: 1 when the key was watched, else 0.
pub fn monitor_del(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let removed = ctx
        .server
        .store
        .monitors
        .remove(ctx.server.outbox.home(ctx.client.db), &key);
    if removed {
        ctx.dirty(1);
    }
    Ok(Reply::Int(removed as i64))
}

/// Feeds one finished run to the key's monitor and raises the alerts its state changes call
/// for, logging them to the AOF.
pub fn observe(
    server: &Server,
    db: usize,
    key: &[u8],
    monitor: &Mutex<Monitor>,
    inputs: &[Arc<Tensor>],
    outputs: &[Tensor],
) {
    let Some(input) = inputs.first() else {
        return;
    };
    let changes = monitor.lock().observe(input, outputs.first());
    if changes.is_empty() {
        return;
    }
    let now = crate::util::now_ms();
    let key_text = String::from_utf8_lossy(key).into_owned();
    let mut log = Vec::new();
    for change in changes {
        let (kind, detail) = match change {
            Change::Drift { features, outputs } => (
                "drift",
                format!("input features {features:?} and outputs {outputs:?} over the threshold"),
            ),
            Change::DriftCleared => (
                "drift-cleared",
                "every feature back under the threshold".into(),
            ),
            Change::Outliers { rate } => ("outliers", format!("outlier rate {rate:.4}")),
            Change::OutliersCleared => (
                "outliers-cleared",
                "outlier rate back under the bound".into(),
            ),
        };
        log.extend(super::routers::raise_alert(
            server,
            db,
            now,
            kind,
            &[("key", key_text.clone()), ("detail", detail)],
        ));
    }
    let mut txn = server.aof.begin();
    if let Some(txn) = txn.as_mut() {
        txn.record(db, now, log.iter().map(|c| c.iter()));
    }
}
