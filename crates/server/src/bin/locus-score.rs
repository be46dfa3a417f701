//! locus-score: scores a file with a model, through a Locus server (so versions, routers,
//! metrics and request logs apply) or with ONNX Runtime in this process.
//!
//! ```text
//! locus-score --model KEY [--version n] (-h host -p port | --inprocess MODEL.onnx)
//!             --input FILE [--format csv|parquet|jsonl|npy] [--columns a,b,…] [--id-column c]
//!             --output FILE [--batch n] [--connections n] [--resume]
//! ```
//!
//! Rows are read in chunks, scored in batches (several connections in parallel, answers put
//! back in order) and written with the input's id column and the model's outputs in the
//! input's format. The output is built in `FILE.partial` with a checkpoint beside it and
//! renamed at the end, so an interrupted run leaves no half-written output and `--resume`
//! goes on from the checkpoint without duplicate rows. Rows that do not parse are counted and
//! the first ones reported; they never stop the run.

use locus::scorefiles::{self, Chunk, Format, Sink};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::exit;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

// jemalloc, as the server: chunks of rows are allocated and freed over and over, and glibc's
// allocator hands such blocks back to the kernel, so every chunk paid page faults again.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Opts {
    model: String,
    version: Option<u64>,
    host: String,
    port: u16,
    inprocess: Option<PathBuf>,
    input: PathBuf,
    format: Option<Format>,
    columns: Option<Vec<String>>,
    id_column: Option<String>,
    output: PathBuf,
    batch: usize,
    connections: usize,
    resume: bool,
}

const USAGE: &str =
    "usage: locus-score --model KEY [--version n] (-h host -p port | --inprocess MODEL.onnx) \
--input FILE [--format csv|parquet|jsonl|npy] [--columns a,b,...] [--id-column c] --output FILE \
[--batch n] [--connections n] [--resume]";

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("locus-score: {msg}");
    exit(1)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        model: String::new(),
        version: None,
        host: "127.0.0.1".into(),
        port: 6379,
        inprocess: None,
        input: PathBuf::new(),
        format: None,
        columns: None,
        id_column: None,
        output: PathBuf::new(),
        batch: 1024,
        connections: 4,
        resume: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(format!("{a} needs a value\n{USAGE}")))
        };
        match a.as_str() {
            "--model" => o.model = value(),
            "--version" => o.version = Some(number(&value(), "--version")),
            "-h" | "--host" => o.host = value(),
            "-p" | "--port" => o.port = number(&value(), "--port") as u16,
            "--inprocess" => o.inprocess = Some(value().into()),
            "--input" => o.input = value().into(),
            "--format" => {
                let v = value();
                o.format = Some(Format::parse(&v).unwrap_or_else(|| {
                    fail(format!("unknown format '{v}' (csv, parquet, jsonl or npy)"))
                }))
            }
            "--columns" => o.columns = Some(value().split(',').map(str::to_string).collect()),
            "--id-column" => o.id_column = Some(value()),
            "--output" => o.output = value().into(),
            "--batch" => o.batch = number(&value(), "--batch").clamp(1, 1 << 20) as usize,
            "--connections" => {
                o.connections = number(&value(), "--connections").clamp(1, 256) as usize
            }
            "--resume" => o.resume = true,
            "--help" => {
                println!("{USAGE}");
                exit(0)
            }
            other => fail(format!("unknown option '{other}'\n{USAGE}")),
        }
    }
    if o.input.as_os_str().is_empty() || o.output.as_os_str().is_empty() {
        fail(USAGE);
    }
    if o.model.is_empty() && o.inprocess.is_none() {
        fail(USAGE);
    }
    o
}

fn number(s: &str, what: &str) -> u64 {
    s.parse()
        .unwrap_or_else(|_| fail(format!("{what} takes a positive integer, not '{s}'")))
}

/// A batch's outputs (one per model output), or why it failed.
type Scored = Result<Vec<scorefiles::Output>, String>;

/// Scores one batch of rows (row-major, `width` values each): one tensor per model output.
trait Scorer: Send + Sync {
    fn score(&self, x: &[f32], rows: usize, width: usize) -> Scored;
    fn output_names(&self) -> Vec<String>;
}

/// ONNX Runtime in this process, through the engine the server runs.
struct InProcess {
    model: locus_engine::engine::model::Model,
}

impl InProcess {
    fn load(path: &PathBuf) -> Result<InProcess, String> {
        let engine = locus_engine::engine::Engine::new(Default::default());
        let backend = engine.onnx(None)?;
        let blob = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let spec = locus_engine::engine::model::ModelSpec {
            backend: "ONNX".into(),
            device: locus_engine::engine::model::Device::Cpu(0),
            device_name: "CPU".into(),
            tag: Default::default(),
            batchsize: 0,
            minbatchsize: 0,
            minbatchtimeout: 0,
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        let model = locus_engine::engine::model::Model::load(
            backend,
            spec,
            blob.into(),
            engine.session_options(),
        )?;
        Ok(InProcess { model })
    }
}

impl Scorer for InProcess {
    fn score(&self, x: &[f32], rows: usize, width: usize) -> Scored {
        let t = scorefiles::tensor(x, rows, width);
        let opts = locus_engine::ort::session::RunOptions::new().map_err(|e| e.to_string())?;
        let outputs = self.model.run(&[&t], &opts)?;
        Ok(outputs
            .iter()
            .map(scorefiles::Output::from_tensor)
            .collect())
    }

    fn output_names(&self) -> Vec<String> {
        self.model.outputs.iter().map(|p| p.name.clone()).collect()
    }
}

/// A Locus server: each batch is one AI.DAGEXECUTE (set the rows, run the model or router,
/// get the outputs), over a pool of connections.
struct Remote {
    key: String,
    version: Option<u64>,
    outputs: Vec<String>,
    pool: parking_lot::Mutex<Vec<redis::Connection>>,
    client: redis::Client,
}

impl Remote {
    fn connect(o: &Opts) -> Result<Remote, String> {
        let client = redis::Client::open(format!("redis://{}:{}/", o.host, o.port))
            .map_err(|e| e.to_string())?;
        let mut conn = client
            .get_connection()
            .map_err(|e| format!("cannot connect to {}:{}: {e}", o.host, o.port))?;
        let outputs = model_outputs(&mut conn, &o.model)?;
        Ok(Remote {
            key: o.model.clone(),
            version: o.version,
            outputs,
            pool: parking_lot::Mutex::new(vec![conn]),
            client,
        })
    }
}

/// The output names of the model (or of the first model a router reaches) at `key`.
fn model_outputs(conn: &mut redis::Connection, key: &str) -> Result<Vec<String>, String> {
    let kind: String = redis::cmd("TYPE")
        .arg(key)
        .query(conn)
        .map_err(|e| e.to_string())?;
    let target = match kind.as_str() {
        "AI__MODEL" => key.to_string(),
        "AI__ROUTER" => {
            let info: Vec<redis::Value> = redis::cmd("AI.ROUTERGET")
                .arg(key)
                .query(conn)
                .map_err(|e| e.to_string())?;
            let targets = field(&info, "targets")
                .ok_or_else(|| format!("router '{key}' lists no targets"))?;
            let first = match targets {
                redis::Value::Array(t) => t.first().and_then(text),
                _ => None,
            }
            .ok_or_else(|| format!("router '{key}' lists no targets"))?;
            let name = first.split('@').next().unwrap_or(&first).to_string();
            return model_outputs(conn, &name);
        }
        "none" => return Err(format!("no model at '{key}'")),
        other => return Err(format!("'{key}' holds a {other}, not a model or router")),
    };
    let meta: Vec<redis::Value> = redis::cmd("AI.MODELGET")
        .arg(&target)
        .arg("META")
        .query(conn)
        .map_err(|e| e.to_string())?;
    match field(&meta, "outputs") {
        Some(redis::Value::Array(names)) => Ok(names.iter().filter_map(text).collect()),
        _ => Err(format!("model '{target}' lists no outputs")),
    }
}

fn text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn field<'a>(reply: &'a [redis::Value], name: &str) -> Option<&'a redis::Value> {
    reply
        .chunks(2)
        .find(|kv| text(&kv[0]).as_deref() == Some(name))
        .map(|kv| &kv[1])
}

impl Scorer for Remote {
    fn score(&self, x: &[f32], rows: usize, width: usize) -> Scored {
        let mut conn = match self.pool.lock().pop() {
            Some(c) => c,
            None => self.client.get_connection().map_err(|e| e.to_string())?,
        };
        let mut cmd = redis::cmd("AI.DAGEXECUTE");
        cmd.arg("ROUTING")
            .arg(&self.key)
            .arg("|>")
            .arg("AI.TENSORSET")
            .arg("in");
        cmd.arg("FLOAT").arg(rows).arg(width).arg("BLOB");
        cmd.arg(bytemuck_bytes(x));
        cmd.arg("|>").arg("AI.MODELEXECUTE").arg(&self.key);
        if let Some(v) = self.version {
            cmd.arg("VERSION").arg(v);
        }
        cmd.arg("INPUTS")
            .arg(1)
            .arg("in")
            .arg("OUTPUTS")
            .arg(self.outputs.len());
        for i in 0..self.outputs.len() {
            cmd.arg(format!("out{i}"));
        }
        for i in 0..self.outputs.len() {
            cmd.arg("|>")
                .arg("AI.TENSORGET")
                .arg(format!("out{i}"))
                .arg("META")
                .arg("BLOB");
        }
        let reply: Vec<redis::Value> = cmd.query(&mut conn).map_err(|e| e.to_string())?;
        self.pool.lock().push(conn);
        // The first two replies answer TENSORSET and MODELEXECUTE.
        reply[2..]
            .iter()
            .map(|r| match r {
                redis::Value::Array(meta) => {
                    let dtype = field(meta, "dtype").and_then(text).unwrap_or_default();
                    let shape: Vec<usize> = match field(meta, "shape") {
                        Some(redis::Value::Array(d)) => d
                            .iter()
                            .map(|v| match v {
                                redis::Value::Int(n) => *n as usize,
                                _ => 0,
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    let blob = match field(meta, "blob") {
                        Some(redis::Value::BulkString(b)) => b.clone(),
                        _ => return Err("the server sent no output data".to_string()),
                    };
                    scorefiles::Output::from_blob(&dtype, &shape, &blob)
                }
                other => Err(format!("the server answered {other:?}")),
            })
            .collect()
    }

    fn output_names(&self) -> Vec<String> {
        self.outputs.clone()
    }
}

fn bytemuck_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Shows progress: a bar with rows/s and ETA on a terminal, a plain line a second otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: Instant,
    total_bytes: u64,
}

impl Progress {
    fn new(total_bytes: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total_bytes);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} ETA {eta}")
                    .expect("template"),
            );
            b
        });
        Progress {
            bar,
            started: Instant::now(),
            last_line: Instant::now(),
            total_bytes,
        }
    }

    fn update(&mut self, bytes: u64, rows: u64) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let rate = rows as f64 / secs;
        match &self.bar {
            Some(b) => {
                b.set_position(bytes);
                b.set_message(format!("{rows} rows, {rate:.0} rows/s"));
            }
            None if self.last_line.elapsed() >= Duration::from_secs(1) => {
                self.last_line = Instant::now();
                let frac = bytes as f64 / self.total_bytes.max(1) as f64;
                let eta = if frac > 0.0 {
                    secs * (1.0 - frac) / frac
                } else {
                    0.0
                };
                eprintln!(
                    "locus-score: {rows} rows, {rate:.0} rows/s, {:.1}% of the input, ETA {eta:.0} s",
                    frac * 100.0
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn main() {
    let o = parse_args();
    let format = o
        .format
        .or_else(|| Format::from_path(&o.input))
        .unwrap_or_else(|| fail("cannot tell the input's format from its name: give --format"));
    let scorer: Arc<dyn Scorer> = match &o.inprocess {
        Some(path) => Arc::new(InProcess::load(path).unwrap_or_else(|e| fail(e))),
        None => Arc::new(Remote::connect(&o).unwrap_or_else(|e| fail(e))),
    };
    let mut source = scorefiles::open(
        &o.input,
        format,
        o.columns.as_deref(),
        o.id_column.as_deref(),
    )
    .unwrap_or_else(|e| fail(e));
    let mut sink = Sink::open(
        &o.output,
        format,
        source.id_name(),
        source.integer_ids(),
        &scorer.output_names(),
        o.resume,
    )
    .unwrap_or_else(|e| fail(e));
    // Rows the checkpoint says are already written are skipped.
    source.skip(sink.rows_done()).unwrap_or_else(|e| fail(e));
    if sink.rows_done() > 0 {
        eprintln!("locus-score: resuming after {} rows", sink.rows_done());
    }
    let total = std::fs::metadata(&o.input).map(|m| m.len()).unwrap_or(0);
    let mut progress = Progress::new(total);
    let width = source.width();
    let mut failed_rows = 0u64;
    let mut scored = sink.rows_done();
    // Three stages on threads of their own, so that on a machine of a few cores the model
    // never waits for the file: one thread reads the next chunk, this one scores the current
    // chunk (its batches in parallel, answers put back in order), and one writes the last.
    let chunk_rows = (o.batch * o.connections.max(1) * 4).max(16384);
    let position = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (chunks, read) = mpsc::sync_channel::<Chunk>(1);
    let reader = {
        let position = Arc::clone(&position);
        std::thread::spawn(move || loop {
            match source.next(chunk_rows) {
                Ok(Some(c)) => {
                    position.store(source.position(), std::sync::atomic::Ordering::Relaxed);
                    if chunks.send(c).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => fail(e),
            }
        })
    };
    let (results, written) = mpsc::sync_channel::<(Chunk, Vec<scorefiles::Output>)>(1);
    let writer = std::thread::spawn(move || {
        for (chunk, outputs) in written {
            sink.write(&chunk, &outputs).unwrap_or_else(|e| fail(e));
        }
        sink.finish().unwrap_or_else(|e| fail(e));
    });
    for chunk in read {
        for (row, why) in &chunk.failures {
            failed_rows += 1;
            if failed_rows <= 10 {
                eprintln!("locus-score: row {row} skipped: {why}");
            }
        }
        let outputs = score_chunk(&scorer, &chunk, width, o.batch, o.connections)
            .unwrap_or_else(|e| fail(format!("scoring failed: {e}")));
        scored += chunk.ids.len() as u64;
        if results.send((chunk, outputs)).is_err() {
            break;
        }
        progress.update(position.load(std::sync::atomic::Ordering::Relaxed), scored);
    }
    drop(results);
    let _ = reader.join();
    if writer.join().is_err() {
        fail("writing the output failed".to_string());
    }
    progress.finish();
    eprintln!(
        "locus-score: {scored} rows scored, {failed_rows} rows failed, {:.1} s",
        progress.started.elapsed().as_secs_f64()
    );
}

/// Scores a chunk's rows in batches over `connections` threads; outputs in row order.
fn score_chunk(
    scorer: &Arc<dyn Scorer>,
    chunk: &Chunk,
    width: usize,
    batch: usize,
    connections: usize,
) -> Result<Vec<scorefiles::Output>, String> {
    let rows = chunk.ids.len();
    if rows == 0 {
        return Ok(Vec::new());
    }
    let batches: Vec<(usize, usize)> = (0..rows)
        .step_by(batch)
        .map(|s| (s, batch.min(rows - s)))
        .collect();
    let (tx, rx) = mpsc::channel();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..connections.min(batches.len()) {
            let tx = tx.clone();
            let (next, batches) = (&next, &batches);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(start, n)) = batches.get(i) else {
                    return;
                };
                let x = &chunk.x[start * width..(start + n) * width];
                let _ = tx.send((i, scorer.score(x, n, width)));
            });
        }
    });
    drop(tx);
    let mut parts: Vec<(usize, Vec<scorefiles::Output>)> = Vec::with_capacity(batches.len());
    for (i, r) in rx {
        parts.push((i, r?));
    }
    parts.sort_by_key(|(i, _)| *i);
    scorefiles::Output::concat(parts.into_iter().map(|(_, o)| o).collect())
}
