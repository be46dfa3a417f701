//! `/metrics`: the server, its commands and keyspace, every model version and every router
//! target, in the Prometheus text format. Model latencies are histograms (queue wait, run,
//! whole request; log-linear buckets from 10 µs to 10 s) and batch sizes too; they are
//! recorded by the run-queue workers and only read here.

use crate::engine::histogram::Snapshot;
use crate::server::Server;
use crate::store::{Value, SHARDS};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Escapes a label value (backslash, double quote, newline), as the text format requires.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn seconds(us: u64) -> String {
    format!("{}", us as f64 / 1e6)
}

fn histogram(out: &mut String, name: &str, labels: &str, s: &Snapshot, in_seconds: bool) {
    let bound = |b: u64| {
        if in_seconds {
            seconds(b)
        } else {
            b.to_string()
        }
    };
    for (i, c) in s.cumulative.iter().enumerate() {
        let le = s.bounds.get(i).map_or("+Inf".to_string(), |b| bound(*b));
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {c}");
    }
    let sum = if in_seconds {
        seconds(s.sum)
    } else {
        s.sum.to_string()
    };
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
}

/// Adds `b` into `a` (the `other` series that sums models past `metrics-max-models`).
fn add_into(a: &mut Snapshot, b: &Snapshot) {
    for (x, y) in a.cumulative.iter_mut().zip(&b.cumulative) {
        *x += y;
    }
    a.count += b.count;
    a.sum += b.sum;
}

/// One model version's figures.
struct ModelSeries {
    labels: String,
    counters: [u64; 5],
    /// Requests waiting in the run queue, and running, right now.
    queued: u64,
    running: u64,
    queue: Snapshot,
    run: Snapshot,
    total: Snapshot,
    batch: Snapshot,
}

const MODEL_COUNTERS: [(&str, &str); 5] = [
    (
        "locus_model_requests_total",
        "Requests run (each request of a batch counts).",
    ),
    ("locus_model_errors_total", "Requests that failed."),
    (
        "locus_model_timeouts_total",
        "Requests whose client stopped waiting (TIMEOUT).",
    ),
    (
        "locus_model_samples_total",
        "Rows run (dimension 0 of the inputs).",
    ),
    (
        "locus_model_rejected_total",
        "Requests refused before they ran (inputs that do not fit the signature; also errors).",
    ),
];

/// The same metrics in the OpenMetrics text format: counter families are named without their
/// `_total` suffix (their samples keep it), and the exposition ends with `# EOF`.
pub fn to_openmetrics(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len() + 16);
    let counter_base = |line: &str| -> Option<String> {
        let rest = line.strip_prefix("# TYPE ")?;
        let (name, kind) = rest.split_once(' ')?;
        (kind == "counter")
            .then(|| name.strip_suffix("_total").map(str::to_string))
            .flatten()
    };
    for (i, line) in lines.iter().enumerate() {
        if let Some(base) = counter_base(line) {
            let _ = writeln!(out, "# TYPE {base} counter");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // A counter's HELP comes right before its TYPE.
            if let Some(base) = lines.get(i + 1).and_then(|next| counter_base(next)) {
                let help = rest.split_once(' ').map_or("", |(_, h)| h);
                let _ = writeln!(out, "# HELP {base} {help}");
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

/// An INFO field as a Prometheus gauge, in base units as Prometheus names them (seconds, not
/// ms or µs); derived duplicates (days, human-readable sizes, bits) are left out.
fn prometheus_field(key: &str, value: &str) -> Option<(String, String)> {
    let v: f64 = value.parse().ok()?;
    if key.ends_with("_days") || key.ends_with("_bits") || key.ends_with("_human") {
        return None;
    }
    let scaled =
        |stem: &str, div: f64| Some((format!("locus_{stem}_seconds"), format!("{}", v / div)));
    if let Some(stem) = key.strip_suffix("_per_sec") {
        return Some((format!("locus_{stem}_per_second"), value.to_string()));
    }
    for (suffix, div) in [("_usec", 1e6), ("_msec", 1e3), ("_ms", 1e3), ("_sec", 1.0)] {
        if let Some(stem) = key.strip_suffix(suffix) {
            return scaled(stem, div);
        }
    }
    Some((format!("locus_{key}"), value.to_string()))
}

pub fn render(server: &Server) -> String {
    let mut out = String::with_capacity(64 * 1024);
    family(&mut out, "locus_info", "gauge", "Locus build.");
    let _ = writeln!(
        out,
        "locus_info{{version=\"{}\",redis_version=\"{}\"}} 1",
        crate::LOCUS_VERSION,
        crate::REDIS_VERSION
    );
    // INFO's numeric fields, one gauge each (clients, memory, persistence, stats).
    let mut seen = std::collections::HashSet::new();
    for section in ["server", "clients", "memory", "persistence", "stats"] {
        let mut text = String::new();
        crate::cmd::server::info_section(server, section, &mut text);
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if v.parse::<f64>().is_err()
                || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                continue;
            }
            let Some((name, value)) = prometheus_field(k, v) else {
                continue;
            };
            if !seen.insert(name.clone()) {
                continue;
            }
            family(
                &mut out,
                &name,
                "gauge",
                &format!("INFO {section} field {k}."),
            );
            let _ = writeln!(out, "{name} {value}");
        }
    }
    family(
        &mut out,
        "locus_alerts_total",
        "counter",
        "Alerts raised (see AI.ALERTS).",
    );
    let _ = writeln!(
        out,
        "locus_alerts_total {}",
        crate::cmd::routers::ALERTS.load(Ordering::Relaxed)
    );
    // Commands.
    let commands: Vec<_> = server
        .commands
        .all()
        .iter()
        .filter(|c| c.stats.calls.load(Ordering::Relaxed) > 0)
        .collect();
    for (name, help, read) in [
        ("locus_command_calls_total", "Calls per command.", 0),
        (
            "locus_command_failed_total",
            "Calls that answered an error.",
            1,
        ),
        (
            "locus_command_rejected_total",
            "Calls refused before running.",
            2,
        ),
        (
            "locus_command_seconds_total",
            "Time spent running each command.",
            3,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for c in &commands {
            let s = &c.stats;
            let v = match read {
                0 => s.calls.load(Ordering::Relaxed).to_string(),
                1 => s.failed.load(Ordering::Relaxed).to_string(),
                2 => s.rejected.load(Ordering::Relaxed).to_string(),
                _ => seconds(s.usec()),
            };
            let _ = writeln!(
                out,
                "{name}{{command=\"{}\"}} {v}",
                esc(&c.name.to_lowercase())
            );
        }
    }
    // Command latency: per-thread histograms in nanoseconds, exported on the model
    // histograms' bounds (10 µs to 10 s).
    family(
        &mut out,
        "locus_command_duration_seconds",
        "histogram",
        "Time each call of a command took (while latency-tracking is on).",
    );
    for c in &commands {
        let snap = c.stats.latency.snapshot();
        if snap.count == 0 {
            continue;
        }
        let s = snap.regrid(&crate::engine::histogram::LATENCY_BOUNDS_US, 1000);
        let labels = format!("command=\"{}\"", esc(&c.name.to_lowercase()));
        histogram(
            &mut out,
            "locus_command_duration_seconds",
            &labels,
            &s,
            true,
        );
    }
    // Memory by what holds it.
    family(
        &mut out,
        "locus_memory_bytes",
        "gauge",
        "Memory held: used (all of it, as INFO used_memory), tensors (tensor data, stored and in flight), models (blobs, and each session at the C-heap growth its build showed), onnxruntime (the whole C heap: ONNX Runtime's sessions and arenas), lua (the scripting VM). The parts overlap: models' sessions are in onnxruntime too.",
    );
    let (allocated, _) = crate::cmd::server::allocator_stats();
    let native = crate::memory::native_bytes();
    for (area, bytes) in [
        ("used", allocated + native),
        (
            "tensors",
            crate::tensor::TENSOR_BYTES.load(Ordering::Relaxed),
        ),
        (
            "models",
            crate::engine::model::MODEL_HELD_BYTES.load(Ordering::Relaxed) as usize,
        ),
        ("onnxruntime", native),
        ("lua", server.scripting.memory()),
    ] {
        let _ = writeln!(out, "locus_memory_bytes{{area=\"{area}\"}} {bytes}");
    }
    // Keyspace.
    family(
        &mut out,
        "locus_keyspace_keys",
        "gauge",
        "Keys per database.",
    );
    let dbs = server.store.dbs();
    for (i, db) in dbs.iter().enumerate() {
        if !db.is_empty() {
            let _ = writeln!(out, "locus_keyspace_keys{{db=\"{i}\"}} {}", db.len());
        }
    }
    family(
        &mut out,
        "locus_keyspace_expires",
        "gauge",
        "Keys with a time to live per database.",
    );
    for (i, db) in dbs.iter().enumerate() {
        if !db.is_empty() {
            let _ = writeln!(
                out,
                "locus_keyspace_expires{{db=\"{i}\"}} {}",
                db.volatile()
            );
        }
    }
    // Event loops: the rate of this counter is each loop's busy ratio.
    family(
        &mut out,
        "locus_event_loop_busy_seconds_total",
        "counter",
        "Time each RESP event loop spent serving rather than waiting for events.",
    );
    for (i, busy) in crate::server::io_pool::LOOP_BUSY.lock().iter().enumerate() {
        let secs = busy.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "locus_event_loop_busy_seconds_total{{loop=\"{i}\"}} {secs}"
        );
    }
    // Run queues.
    family(
        &mut out,
        "locus_queue_depth",
        "gauge",
        "Requests waiting per run queue.",
    );
    for (queue, len) in server.engine.queue_lengths() {
        let _ = writeln!(out, "locus_queue_depth{{queue=\"{}\"}} {len}", esc(&queue));
    }
    // Models and routers, walking the keyspace.
    let max_models = server.config.get_i64("metrics-max-models").max(0) as usize;
    let now = crate::util::now_ms();
    let mut models: Vec<ModelSeries> = Vec::new();
    let mut other: Option<ModelSeries> = None;
    let mut routers = String::new();
    let mut router_rows: Vec<(String, [f64; 6])> = Vec::new();
    let mut router_latency: Vec<(String, Snapshot)> = Vec::new();
    let in_flight = server.engine.in_flight();
    for (db_index, db) in dbs.iter().enumerate() {
        for i in 0..SHARDS {
            let shard = db.shard(i).read();
            for (key, e) in shard.iter(now) {
                match &e.value {
                    Value::Model(vm) => {
                        for v in vm.versions() {
                            let st = &v.model.stats;
                            let series = ModelSeries {
                                labels: format!(
                                    "db=\"{db_index}\",key=\"{}\",version=\"{}\",status=\"{}\"",
                                    esc(&String::from_utf8_lossy(key)),
                                    v.number,
                                    vm.status(v).name()
                                ),
                                counters: [
                                    st.calls.load(Ordering::Relaxed),
                                    st.errors.load(Ordering::Relaxed),
                                    st.timeouts.load(Ordering::Relaxed),
                                    st.samples.load(Ordering::Relaxed),
                                    st.rejected.load(Ordering::Relaxed),
                                ],
                                queued: in_flight
                                    .get(&(Arc::as_ptr(&v.model) as usize))
                                    .map_or(0, |c| c.0 as u64),
                                running: in_flight
                                    .get(&(Arc::as_ptr(&v.model) as usize))
                                    .map_or(0, |c| c.1 as u64),
                                queue: st.queue_us.snapshot(),
                                run: st.run_us.snapshot(),
                                total: st.total_us.snapshot(),
                                batch: st.batch_size.snapshot(),
                            };
                            if models.len() < max_models {
                                models.push(series);
                            } else if let Some(o) = &mut other {
                                for (a, b) in o.counters.iter_mut().zip(series.counters) {
                                    *a += b;
                                }
                                o.queued += series.queued;
                                o.running += series.running;
                                add_into(&mut o.queue, &series.queue);
                                add_into(&mut o.run, &series.run);
                                add_into(&mut o.total, &series.total);
                                add_into(&mut o.batch, &series.batch);
                            } else {
                                other = Some(ModelSeries {
                                    labels: "db=\"\",key=\"other\",version=\"\",status=\"\"".into(),
                                    ..series
                                });
                            }
                        }
                    }
                    Value::Router(r) => {
                        let name = esc(&String::from_utf8_lossy(key));
                        for (i, (t, report)) in r.def.targets.iter().zip(r.report()).enumerate() {
                            let labels = format!(
                                "db=\"{db_index}\",router=\"{name}\",kind=\"{}\",target=\"{}\"",
                                r.def.kind_name(),
                                esc(&String::from_utf8_lossy(&t.name()))
                            );
                            if let Some(snap) = r.latency(i) {
                                router_latency.push((labels.clone(), snap));
                            }
                            router_rows.push((
                                labels,
                                [
                                    report.calls as f64,
                                    report.errors as f64,
                                    report.weight,
                                    report.p50_us as f64 / 1e6,
                                    report.p99_us as f64 / 1e6,
                                    report.rollbacks as f64,
                                ],
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    models.extend(other);
    for (j, (name, help)) in MODEL_COUNTERS.iter().enumerate() {
        family(&mut out, name, "counter", help);
        for m in &models {
            let _ = writeln!(out, "{name}{{{}}} {}", m.labels, m.counters[j]);
        }
    }
    for (name, help, running) in [
        (
            "locus_model_queued",
            "Requests waiting in the run queue now.",
            false,
        ),
        (
            "locus_model_in_flight",
            "Requests queued or running now.",
            true,
        ),
    ] {
        family(&mut out, name, "gauge", help);
        for m in &models {
            let v = if running {
                m.queued + m.running
            } else {
                m.queued
            };
            let _ = writeln!(out, "{name}{{{}}} {v}", m.labels);
        }
    }
    for (name, help, pick) in [
        (
            "locus_model_queue_seconds",
            "Time requests waited in the run queue.",
            0,
        ),
        (
            "locus_model_run_seconds",
            "Time of the run each request was part of.",
            1,
        ),
        (
            "locus_model_request_seconds",
            "Queue wait plus run, per request.",
            2,
        ),
        ("locus_model_batch_size", "Requests per run.", 3),
    ] {
        family(&mut out, name, "histogram", help);
        for m in &models {
            let s = match pick {
                0 => &m.queue,
                1 => &m.run,
                2 => &m.total,
                _ => &m.batch,
            };
            histogram(&mut out, name, &m.labels, s, pick < 3);
        }
    }
    for (j, (name, kind, help)) in [
        (
            "locus_router_requests_total",
            "counter",
            "Runs of each router target.",
        ),
        (
            "locus_router_errors_total",
            "counter",
            "Failed runs of each router target.",
        ),
        (
            "locus_router_weight",
            "gauge",
            "Current weight of each router target.",
        ),
        (
            "locus_router_latency_p50_seconds",
            "gauge",
            "Median latency of each target's recent runs.",
        ),
        (
            "locus_router_latency_p99_seconds",
            "gauge",
            "99th percentile latency of each target's recent runs.",
        ),
        (
            "locus_router_rollbacks_total",
            "counter",
            "Guard rollbacks of each router target.",
        ),
    ]
    .iter()
    .enumerate()
    {
        family(&mut routers, name, kind, help);
        for (labels, v) in &router_rows {
            let _ = writeln!(routers, "{name}{{{labels}}} {}", v[j]);
        }
    }
    out.push_str(&routers);
    family(
        &mut out,
        "locus_router_request_seconds",
        "histogram",
        "Latency of each router target's requests through the router.",
    );
    for (labels, snap) in &router_latency {
        histogram(&mut out, "locus_router_request_seconds", labels, snap, true);
    }
    out
}
