//! `locus-benchmark`: the load-testing tool for Locus (redis-benchmark's conventions).
//!
//! Workloads:
//! - `-t ping,set,get,tensorset,tensorget` RESP commands (`-d` payload bytes);
//! - `--model file.onnx` (or `--model-key k`): stores the model, reads its signature and runs it
//!   with random inputs of the right types and shapes; `--mode execute` (MODELEXECUTE on stored
//!   inputs), `--mode roundtrip` (TENSORSET + MODELEXECUTE + TENSORGET pipelined in one round
//!   trip), `--mode dag` (one AI.DAGEXECUTE that LOADs one of `--refs` stored reference tensors
//!   at random, the data-local request);
//! - `--inprocess`: the same model run by ONNX Runtime inside this process (the reference);
//! - `--peer-redis`: "Redis + client-side inference": GET a reference blob from a Redis server,
//!   then run the model in-process;
//! - `--single`: one prediction, outputs printed;
//! - `--http port` / `--grpc port`: the model workload as KServe V2 inference requests over REST
//!   (binary tensor data, or JSON with `--v2-json`) or gRPC (`raw_input_contents`), the inputs
//!   sent with every request.
//!
//! Closed loop by default; `--rate R` sends at a fixed total rate (open loop) and measures latency
//! from each request's scheduled time, so queueing is not hidden.

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use locus::engine::backend;
use locus::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use locus::grpc::proto::ModelInferRequest;
use locus::tensor::DType;
use locus_engine::ort;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use redis_protocol::resp2::{decode::decode_bytes_mut, types::BytesFrame};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Debug)]
struct Opts {
    host: String,
    port: u16,
    auth: Option<String>,
    clients: usize,
    requests: u64,
    pipeline: usize,
    threads: usize,
    quiet: bool,
    csv: bool,
    json: bool,
    tests: Vec<String>,
    data_size: usize,
    model: Option<String>,
    model_key: String,
    /// Whether `--model-key` was given (a stored model to use instead of `--model`).
    model_key_given: bool,
    /// `VERSION n` after the model key in MODELEXECUTE (execute and roundtrip modes).
    model_version: Option<u64>,
    /// The key the runs name instead of the model key (a router over it): the model key still
    /// gives the signature and the inputs.
    run_key: Option<String>,
    mode: String,
    batch: usize,
    batchsize: usize,
    refs: usize,
    rate: Option<f64>,
    single: bool,
    inprocess: bool,
    peer_redis: Option<u16>,
    intra_threads: usize,
    keyspace: u64,
    /// V2 inference over HTTP (this port) or gRPC (that port) instead of RESP.
    http: Option<u16>,
    grpc: Option<u16>,
    /// V2 REST with JSON tensors instead of the binary extension.
    v2_json: bool,
}

fn usage() -> ! {
    eprintln!(
        "Usage: locus-benchmark [-h host] [-p port] [-a password] [-c clients] [-n requests] [-P pipeline]
       [--threads n] [-q] [--csv] [--json] [-t tests] [-d bytes] [-r keyspace]
       [--model file.onnx | --model-key key] [--model-version n] [--run-key key] [--mode execute|roundtrip|dag] [--batch n]
       [--batchsize n] [--refs n] [--rate req/s] [--single] [--inprocess] [--peer-redis port]
       [--intra-threads n] [--http port [--v2-json] | --grpc port]"
    );
    std::process::exit(1)
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        host: "127.0.0.1".into(),
        port: 6379,
        auth: None,
        clients: 50,
        requests: 100_000,
        pipeline: 1,
        threads: 1,
        quiet: false,
        csv: false,
        json: false,
        tests: vec!["ping".into(), "set".into(), "get".into()],
        data_size: 3,
        model: None,
        model_key: "bench:model".into(),
        model_key_given: false,
        model_version: None,
        run_key: None,
        mode: "execute".into(),
        batch: 1,
        batchsize: 0,
        refs: 1000,
        rate: None,
        single: false,
        inprocess: false,
        peer_redis: None,
        intra_threads: 1,
        keyspace: 0,
        http: None,
        grpc: None,
        v2_json: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let val = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i).cloned().unwrap_or_else(|| usage())
    };
    while i < args.len() {
        let a = args[i].clone();
        let num = |s: String| -> u64 { s.parse().unwrap_or_else(|_| usage()) };
        match a.as_str() {
            "-h" => o.host = val(&mut i),
            "-p" => o.port = num(val(&mut i)) as u16,
            "-a" => o.auth = Some(val(&mut i)),
            "-c" => o.clients = num(val(&mut i)) as usize,
            "-n" => o.requests = num(val(&mut i)),
            "-P" => o.pipeline = num(val(&mut i)).max(1) as usize,
            "--threads" => o.threads = num(val(&mut i)).max(1) as usize,
            "-q" => o.quiet = true,
            "--csv" => o.csv = true,
            "--json" => o.json = true,
            "-t" => {
                o.tests = val(&mut i)
                    .split(',')
                    .map(|s| s.trim().to_lowercase())
                    .collect()
            }
            "-d" => o.data_size = num(val(&mut i)) as usize,
            "-r" => o.keyspace = num(val(&mut i)),
            "--model" => o.model = Some(val(&mut i)),
            "--model-key" => {
                o.model_key = val(&mut i);
                o.model_key_given = true;
            }
            "--model-version" => o.model_version = Some(num(val(&mut i))),
            "--run-key" => o.run_key = Some(val(&mut i)),
            "--mode" => o.mode = val(&mut i),
            "--batch" => o.batch = num(val(&mut i)).max(1) as usize,
            "--batchsize" => o.batchsize = num(val(&mut i)) as usize,
            "--refs" => o.refs = num(val(&mut i)).max(1) as usize,
            "--rate" => o.rate = Some(val(&mut i).parse().unwrap_or_else(|_| usage())),
            "--single" => o.single = true,
            "--inprocess" => o.inprocess = true,
            "--peer-redis" => o.peer_redis = Some(num(val(&mut i)) as u16),
            "--intra-threads" => o.intra_threads = num(val(&mut i)) as usize,
            "--http" => o.http = Some(num(val(&mut i)) as u16),
            "--grpc" => o.grpc = Some(num(val(&mut i)) as u16),
            "--v2-json" => o.v2_json = true,
            _ => usage(),
        }
        i += 1;
    }
    o
}

/// One RESP command, encoded once.
fn encode(args: &[&[u8]]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        b.put_slice(format!("${}\r\n", a.len()).as_bytes());
        b.put_slice(a);
        b.put_slice(b"\r\n");
    }
    b.freeze()
}

/// A minimal pipelining RESP client.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    async fn open(o: &Opts, port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect((o.host.as_str(), port)).await?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        };
        if let Some(pw) = &o.auth {
            c.call(&encode(&[b"AUTH", pw.as_bytes()])).await?;
        }
        Ok(c)
    }

    async fn send(&mut self, cmds: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(cmds).await
    }

    async fn read(&mut self) -> std::io::Result<BytesFrame> {
        loop {
            if let Some((frame, _, _)) =
                decode_bytes_mut(&mut self.buf).map_err(std::io::Error::other)?
            {
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
        }
    }

    async fn call(&mut self, cmd: &[u8]) -> std::io::Result<BytesFrame> {
        self.send(cmd).await?;
        self.read().await
    }
}

fn error_text(f: &BytesFrame) -> Option<String> {
    match f {
        BytesFrame::Error(e) => Some(e.to_string()),
        BytesFrame::Array(items) => items.iter().find_map(error_text),
        _ => None,
    }
}

/// Shared results: a histogram in microseconds and errors by message.
struct Results {
    hist: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    done: AtomicU64,
    sent: AtomicU64,
}

/// A request: the bytes of one or more pipelined commands and how many replies it expects.
#[derive(Clone)]
struct Request {
    /// RESP commands, or a whole HTTP request.
    bytes: Bytes,
    replies: usize,
    /// A V2 gRPC request (sent as a call; `bytes` is then empty).
    grpc: Option<Arc<ModelInferRequest>>,
}

/// A keep-alive HTTP/1.1 connection that reads one response at a time.
struct HttpConn {
    stream: TcpStream,
    buf: BytesMut,
}

impl HttpConn {
    async fn open(o: &Opts, port: u16) -> std::io::Result<HttpConn> {
        let stream = TcpStream::connect((o.host.as_str(), port)).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        })
    }

    /// Reads a response: `Ok(None)` for a 200, the error body otherwise.
    async fn read(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let status = head.split(' ').nth(1).unwrap_or("");
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + len {
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        return Err(std::io::Error::other("connection closed"));
                    }
                }
                let whole = self.buf.split_to(end + 4 + len);
                return Ok((status != "200").then(|| {
                    format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&whole[end + 4..])
                    )
                }));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
        }
    }
}

/// Where a client's requests go: RESP, or V2 over HTTP or gRPC.
enum Link {
    Resp(Conn),
    Http(HttpConn),
    Grpc(GrpcInferenceServiceClient<tonic::transport::Channel>),
}

impl Link {
    async fn open(o: &Opts) -> Result<Link, String> {
        if let Some(port) = o.http {
            return HttpConn::open(o, port)
                .await
                .map(Link::Http)
                .map_err(|e| e.to_string());
        }
        if let Some(port) = o.grpc {
            // One HTTP/2 connection that every client's calls share, as gRPC clients do.
            static CHANNEL: tokio::sync::OnceCell<tonic::transport::Channel> =
                tokio::sync::OnceCell::const_new();
            let channel = CHANNEL
                .get_or_try_init(|| async {
                    tonic::transport::Endpoint::from_shared(format!("http://{}:{port}", o.host))
                        .map_err(|e| e.to_string())?
                        .tcp_nodelay(true)
                        .connect()
                        .await
                        .map_err(|e| e.to_string())
                })
                .await?;
            return Ok(Link::Grpc(
                GrpcInferenceServiceClient::new(channel.clone())
                    .max_decoding_message_size(usize::MAX),
            ));
        }
        Conn::open(o, o.port)
            .await
            .map(Link::Resp)
            .map_err(|e| e.to_string())
    }

    /// Sends a request and reads its replies: the error texts among them, or why the
    /// connection failed.
    async fn exchange(&mut self, req: &Request) -> Result<Vec<String>, String> {
        let mut errors = Vec::new();
        match self {
            Link::Resp(conn) => {
                conn.send(&req.bytes).await.map_err(|_| "connection lost")?;
                for _ in 0..req.replies {
                    let f = conn.read().await.map_err(|e| format!("read: {e}"))?;
                    errors.extend(error_text(&f));
                }
            }
            Link::Http(conn) => {
                conn.stream
                    .write_all(&req.bytes)
                    .await
                    .map_err(|_| "connection lost")?;
                for _ in 0..req.replies {
                    errors.extend(conn.read().await.map_err(|e| format!("read: {e}"))?);
                }
            }
            Link::Grpc(client) => {
                let msg = req.grpc.as_deref().cloned().unwrap_or_default();
                if let Err(status) = client.model_infer(msg).await {
                    errors.push(format!("{:?}: {}", status.code(), status.message()));
                }
            }
        }
        Ok(errors)
    }
}

type MakeRequest = Arc<dyn Fn(&mut rand::rngs::StdRng) -> Request + Send + Sync>;

async fn client_loop(
    o: Arc<Opts>,
    make: MakeRequest,
    res: Arc<Results>,
    quota: u64,
    interval: Option<Duration>,
    seed: u64,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut link = match Link::open(&o).await {
        Ok(c) => c,
        Err(e) => {
            *res.errors
                .lock()
                .entry(format!("connect: {e}"))
                .or_default() += quota;
            return;
        }
    };
    let mut local = Histogram::<u64>::new(3).expect("histogram");
    let mut remaining = quota;
    let start = Instant::now();
    let mut k: u64 = 0;
    while remaining > 0 {
        let n = (o.pipeline as u64).min(remaining);
        // One request is sent as made (usually a shared, prebuilt command); a pipeline is
        // gathered into one buffer.
        let req = if n == 1 {
            make(&mut rng)
        } else {
            let mut out = BytesMut::new();
            let mut replies = 0;
            for _ in 0..n {
                let r = make(&mut rng);
                out.put_slice(&r.bytes);
                replies += r.replies;
            }
            Request {
                bytes: out.freeze(),
                replies,
                grpc: None,
            }
        };
        // Open loop: latency counts from when the request was due, not when it could be sent.
        let scheduled = match interval {
            Some(iv) => {
                let due = start + iv * (k as u32);
                let now = Instant::now();
                if due > now {
                    tokio::time::sleep(due - now).await;
                }
                due
            }
            None => Instant::now(),
        };
        res.sent.fetch_add(n, Ordering::Relaxed);
        match link.exchange(&req).await {
            Ok(errors) => {
                for e in errors {
                    *res.errors.lock().entry(e).or_default() += 1;
                }
            }
            Err(e) => {
                *res.errors.lock().entry(e).or_default() += remaining;
                return;
            }
        }
        let us = scheduled.elapsed().as_micros() as u64;
        for _ in 0..n {
            let _ = local.record(us.max(1));
        }
        res.done.fetch_add(n, Ordering::Relaxed);
        remaining -= n;
        k += 1;
    }
    res.hist.lock().add(&local).expect("same histogram bounds");
}

/// Runs `make` with `o.clients` connections and reports under `name`.
fn run_load(
    o: &Arc<Opts>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    make: MakeRequest,
) -> serde_json::Value {
    let res = Arc::new(Results {
        hist: Mutex::new(Histogram::new(3).expect("histogram")),
        errors: Mutex::new(BTreeMap::new()),
        done: AtomicU64::new(0),
        sent: AtomicU64::new(0),
    });
    let per = o.requests / o.clients as u64;
    let extra = o.requests % o.clients as u64;
    let interval = o
        .rate
        .map(|r| Duration::from_secs_f64(o.clients as f64 * o.pipeline as f64 / r));
    let start = Instant::now();
    let handles: Vec<_> = (0..o.clients)
        .map(|i| {
            let quota = per + u64::from((i as u64) < extra);
            rt.spawn(client_loop(
                o.clone(),
                make.clone(),
                res.clone(),
                quota,
                interval,
                i as u64 + 1,
            ))
        })
        .collect();
    let progress = {
        let (res, name, quiet, total) = (
            res.clone(),
            name.to_string(),
            o.quiet || o.csv || o.json,
            o.requests,
        );
        rt.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if !quiet {
                    let d = res.done.load(Ordering::Relaxed);
                    eprint!(
                        "\r{name}: {d}/{total} done, {:.0} rps   ",
                        d as f64 / start.elapsed().as_secs_f64()
                    );
                }
            }
        })
    };
    rt.block_on(async {
        for h in handles {
            let _ = h.await;
        }
    });
    progress.abort();
    let secs = start.elapsed().as_secs_f64();
    let h = res.hist.lock();
    let errors = res.errors.lock().clone();
    let err_total: u64 = errors.values().sum();
    let done = res.done.load(Ordering::Relaxed);
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let report = serde_json::json!({
        "test": name,
        "requests": o.requests,
        "sent": res.sent.load(Ordering::Relaxed),
        "completed": done,
        "errors": err_total,
        "error_messages": errors,
        "seconds": secs,
        "rps": done as f64 / secs,
        "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p99.9": q(0.999), "max": h.max() as f64 / 1000.0, "mean": h.mean() / 1000.0},
        "clients": o.clients,
        "pipeline": o.pipeline,
    });
    if !(o.quiet || o.csv || o.json) {
        eprintln!();
    }
    report
}

fn print_report(o: &Opts, r: &serde_json::Value) {
    let l = &r["latency_ms"];
    if o.json {
        println!("{r}");
    } else {
        let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        let (test, rps) = (r["test"].as_str().unwrap_or(""), f(&r["rps"]));
        let q = [
            f(&l["p50"]),
            f(&l["p90"]),
            f(&l["p99"]),
            f(&l["p99.9"]),
            f(&l["max"]),
        ];
        if o.csv {
            println!(
                "\"{test}\",\"{rps:.2}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{}\"",
                q[0], q[1], q[2], q[3], q[4], r["errors"]
            );
            return;
        }
        println!(
            "{test}: {rps:.2} requests per second, p50={:.3} p90={:.3} p99={:.3} p99.9={:.3} max={:.3} msec, {} errors",
            q[0], q[1], q[2], q[3], q[4], r["errors"]
        );
        if let Some(m) = r["error_messages"].as_object() {
            for (k, v) in m {
                println!("  error {v}x: {k}");
            }
        }
    }
}

fn random_payload(n: usize, rng: &mut impl Rng) -> Vec<u8> {
    (0..n).map(|_| rng.gen::<u8>()).collect()
}

/// The model's inputs/outputs, read with ONNX Runtime in this process.
struct Signature {
    inputs: Vec<(String, DType, Vec<usize>)>,
    outputs: Vec<String>,
}

fn signature(o: &Opts, blob: &[u8]) -> Signature {
    let session = inprocess_session(o, blob);
    let dims = |shape: &[i64]| {
        shape
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if d > 0 {
                    d as usize
                } else if i == 0 {
                    o.batch
                } else {
                    1
                }
            })
            .collect::<Vec<_>>()
    };
    let inputs = session
        .inputs()
        .iter()
        .map(|i| match i.dtype() {
            ort::value::ValueType::Tensor { ty, shape, .. } => {
                let dt = match ty {
                    ort::value::TensorElementType::Float32 => DType::Float,
                    ort::value::TensorElementType::Float64 => DType::Double,
                    ort::value::TensorElementType::Int64 => DType::Int64,
                    ort::value::TensorElementType::Int32 => DType::Int32,
                    other => panic!("locus-benchmark cannot generate inputs of type {other:?}"),
                };
                (i.name().to_string(), dt, dims(shape))
            }
            other => panic!("non-tensor input {other:?}"),
        })
        .collect();
    Signature {
        inputs,
        outputs: session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect(),
    }
}

fn inprocess_session(o: &Opts, blob: &[u8]) -> ort::session::Session {
    static BACKEND: std::sync::OnceLock<Arc<backend::OnnxBackend>> = std::sync::OnceLock::new();
    let b = BACKEND.get_or_init(|| {
        let (path, _) = backend::resolve(None).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(backend::load(&path).unwrap_or_else(|e| panic!("{e}")))
    });
    let mut builder = ort::session::Session::builder(&b.env).expect("session builder");
    builder = builder
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Level3)
        .expect("opt level");
    if o.intra_threads > 0 {
        builder = builder
            .with_intra_threads(o.intra_threads)
            .expect("intra threads");
    }
    builder.commit_from_memory(blob).expect("model loads")
}

fn random_blob(dt: DType, n: usize, rng: &mut impl Rng) -> Vec<u8> {
    match dt {
        DType::Float => (0..n)
            .flat_map(|_| rng.gen::<f32>().to_le_bytes())
            .collect(),
        DType::Double => (0..n)
            .flat_map(|_| rng.gen::<f64>().to_le_bytes())
            .collect(),
        DType::Int64 => (0..n)
            .flat_map(|_| (rng.gen::<u8>() as i64).to_le_bytes())
            .collect(),
        DType::Int32 => (0..n)
            .flat_map(|_| (rng.gen::<u8>() as i32).to_le_bytes())
            .collect(),
        _ => unreachable!(),
    }
}

fn tensorset(key: &str, dt: DType, dims: &[usize], blob: &[u8]) -> Bytes {
    let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    let mut args: Vec<&[u8]> = vec![b"AI.TENSORSET", key.as_bytes(), dt.name().as_bytes()];
    args.extend(dims.iter().map(|d| d.as_bytes()));
    args.push(b"BLOB");
    args.push(blob);
    encode(&args)
}

fn main() {
    let o = Arc::new(parse_opts());
    // One thread (the default) is a single event loop, as in redis-benchmark: a load generator
    // sharing the machine with the server should spend as little CPU per request as it can.
    let rt = if o.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(o.threads);
        b
    }
    .enable_all()
    .build()
    .expect("runtime");
    if o.csv {
        println!(
            "\"test\",\"rps\",\"p50_ms\",\"p90_ms\",\"p99_ms\",\"p999_ms\",\"max_ms\",\"errors\""
        );
    }
    let blob = o
        .model
        .as_ref()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}")));
    // With --model-key alone, fetch the stored model's blob to read its signature locally.
    let blob = match blob {
        Some(b) => Some(b),
        None if o.model_key_given => Some(rt.block_on(async {
            let mut c = Conn::open(&o, o.port).await.expect("connect");
            match c
                .call(&encode(&[b"AI.MODELGET", o.model_key.as_bytes(), b"BLOB"]))
                .await
                .expect("MODELGET")
            {
                BytesFrame::BulkString(b) => b.to_vec(),
                other => panic!("AI.MODELGET failed: {other:?}"),
            }
        })),
        None => None,
    };
    let Some(blob) = blob else {
        run_resp_tests(&o, &rt);
        return;
    };
    let sig = signature(&o, &blob);
    if o.inprocess || o.peer_redis.is_some() {
        run_inprocess(&o, &rt, &blob, &sig);
        return;
    }
    setup_model(&o, &rt, &blob, &sig);
    if o.single {
        single(&o, &rt, &sig);
        return;
    }
    let key = o.run_key.clone().unwrap_or_else(|| o.model_key.clone());
    if o.http.is_some() || o.grpc.is_some() {
        let name = match (o.http.is_some(), o.v2_json) {
            (true, false) => "V2 REST BINARY",
            (true, true) => "V2 REST JSON",
            (false, _) => "V2 GRPC",
        };
        let r = run_load(&o, &rt, name, v2_request(&o, &key, &sig));
        print_report(&o, &r);
        return;
    }
    let sig = Arc::new(sig);
    let make: MakeRequest = match o.mode.as_str() {
        "execute" => {
            let cmd = execute_cmd(
                &key,
                o.model_version,
                &sig,
                |i| format!("bench:in:{i}"),
                |i| format!("bench:out:{i}"),
            );
            Arc::new(move |_| Request {
                bytes: cmd.clone(),
                replies: 1,
                grpc: None,
            })
        }
        "roundtrip" => {
            let sig = sig.clone();
            let version = o.model_version;
            Arc::new(move |rng| {
                let mut out = BytesMut::new();
                let tag: u32 = rng.gen();
                for (i, (_, dt, dims)) in sig.inputs.iter().enumerate() {
                    out.put_slice(&tensorset(
                        &format!("bench:rt:{tag}:{i}"),
                        *dt,
                        dims,
                        &random_blob(*dt, dims.iter().product(), rng),
                    ));
                }
                out.put_slice(&execute_cmd(
                    &key,
                    version,
                    &sig,
                    |i| format!("bench:rt:{tag}:{i}"),
                    |i| format!("bench:rt:{tag}:out{i}"),
                ));
                out.put_slice(&encode(&[
                    b"AI.TENSORGET",
                    format!("bench:rt:{tag}:out0").as_bytes(),
                    b"BLOB",
                ]));
                Request {
                    bytes: out.freeze(),
                    replies: sig.inputs.len() + 2,
                    grpc: None,
                }
            })
        }
        "dag" => {
            let sig = sig.clone();
            let refs = o.refs;
            Arc::new(move |rng| Request {
                bytes: dag_cmd(&key, &sig, rng, refs),
                replies: 1,
                grpc: None,
            })
        }
        other => panic!("unknown mode {other}"),
    };
    let r = run_load(&o, &rt, &format!("MODEL {}", o.mode.to_uppercase()), make);
    print_report(&o, &r);
}

/// One V2 inference request with fixed random inputs, built once: a whole HTTP request (binary
/// tensor data or JSON) or a gRPC message with `raw_input_contents`.
fn v2_request(o: &Opts, key: &str, sig: &Signature) -> MakeRequest {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let inputs: Vec<(String, DType, Vec<usize>, Vec<u8>)> = sig
        .inputs
        .iter()
        .map(|(name, dt, dims)| {
            let data = random_blob(*dt, dims.iter().product(), &mut rng);
            (name.clone(), *dt, dims.clone(), data)
        })
        .collect();
    let v2_type = |dt: DType| locus::inference::v2_type(dt);
    if o.grpc.is_some() {
        let msg = ModelInferRequest {
            model_name: key.to_string(),
            model_version: o.model_version.map(|v| v.to_string()).unwrap_or_default(),
            inputs: inputs
                .iter()
                .map(|(name, dt, dims, _)| {
                    locus::grpc::proto::model_infer_request::InferInputTensor {
                        name: name.clone(),
                        datatype: v2_type(*dt).into(),
                        shape: dims.iter().map(|&d| d as i64).collect(),
                        ..Default::default()
                    }
                })
                .collect(),
            raw_input_contents: inputs.iter().map(|i| i.3.clone()).collect(),
            ..Default::default()
        };
        let msg = Arc::new(msg);
        return Arc::new(move |_| Request {
            bytes: Bytes::new(),
            replies: 0,
            grpc: Some(msg.clone()),
        });
    }
    let json_inputs: Vec<serde_json::Value> = inputs
        .iter()
        .map(|(name, dt, dims, data)| {
            let mut t = serde_json::json!({"name": name, "datatype": v2_type(*dt), "shape": dims});
            if o.v2_json {
                let values: Vec<serde_json::Value> = match dt {
                    DType::Float => data
                        .chunks_exact(4)
                        .map(|c| serde_json::json!(f32::from_le_bytes(c.try_into().unwrap())))
                        .collect(),
                    DType::Double => data
                        .chunks_exact(8)
                        .map(|c| serde_json::json!(f64::from_le_bytes(c.try_into().unwrap())))
                        .collect(),
                    DType::Int64 => data
                        .chunks_exact(8)
                        .map(|c| serde_json::json!(i64::from_le_bytes(c.try_into().unwrap())))
                        .collect(),
                    _ => data
                        .chunks_exact(4)
                        .map(|c| serde_json::json!(i32::from_le_bytes(c.try_into().unwrap())))
                        .collect(),
                };
                t["data"] = serde_json::Value::Array(values);
            } else {
                t["parameters"] = serde_json::json!({"binary_data_size": data.len()});
            }
            t
        })
        .collect();
    let outputs: Vec<serde_json::Value> = sig
        .outputs
        .iter()
        .map(|n| serde_json::json!({"name": n, "parameters": {"binary_data": !o.v2_json}}))
        .collect();
    let head = serde_json::json!({"inputs": json_inputs, "outputs": outputs}).to_string();
    let mut body = head.clone().into_bytes();
    if !o.v2_json {
        for i in &inputs {
            body.extend_from_slice(&i.3);
        }
    }
    let path = match o.model_version {
        Some(v) => format!("/v2/models/{key}/versions/{v}/infer"),
        None => format!("/v2/models/{key}/infer"),
    };
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/{}\r\nContent-Length: {}\r\n",
        o.host,
        if o.v2_json { "json" } else { "octet-stream" },
        body.len()
    );
    if !o.v2_json {
        req.push_str(&format!(
            "Inference-Header-Content-Length: {}\r\n",
            head.len()
        ));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(&body);
    let bytes = Bytes::from(bytes);
    Arc::new(move |_| Request {
        bytes: bytes.clone(),
        replies: 1,
        grpc: None,
    })
}

/// The data-local request: LOAD one stored reference tensor (the last input), set the
/// per-request inputs, run, and return the first output.
fn dag_cmd(key: &str, sig: &Signature, rng: &mut rand::rngs::StdRng, refs: usize) -> Bytes {
    let id = rng.gen_range(0..refs);
    let ref_key = format!("bench:ref:{id}");
    let n = sig.inputs.len();
    let mut args: Vec<Vec<u8>> = vec![
        b"AI.DAGEXECUTE".to_vec(),
        b"LOAD".to_vec(),
        b"1".to_vec(),
        ref_key.clone().into_bytes(),
    ];
    let mut names = Vec::new();
    for (i, (_, dt, dims)) in sig.inputs.iter().enumerate() {
        if i == n - 1 {
            names.push(ref_key.clone());
            continue;
        }
        let name = format!("in{i}");
        args.push(b"|>".to_vec());
        args.push(b"AI.TENSORSET".to_vec());
        args.push(name.clone().into_bytes());
        args.push(dt.name().as_bytes().to_vec());
        args.extend(dims.iter().map(|d| d.to_string().into_bytes()));
        args.push(b"BLOB".to_vec());
        args.push(random_blob(*dt, dims.iter().product(), rng));
        names.push(name);
    }
    args.push(b"|>".to_vec());
    args.push(b"AI.MODELEXECUTE".to_vec());
    args.push(key.as_bytes().to_vec());
    args.push(b"INPUTS".to_vec());
    args.push(n.to_string().into_bytes());
    args.extend(names.into_iter().map(String::into_bytes));
    args.push(b"OUTPUTS".to_vec());
    args.push(b"1".to_vec());
    args.push(b"out".to_vec());
    args.push(b"|>".to_vec());
    args.push(b"AI.TENSORGET".to_vec());
    args.push(b"out".to_vec());
    args.push(b"BLOB".to_vec());
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    encode(&refs)
}

fn execute_cmd(
    key: &str,
    version: Option<u64>,
    sig: &Signature,
    input: impl Fn(usize) -> String,
    output: impl Fn(usize) -> String,
) -> Bytes {
    let ins: Vec<String> = (0..sig.inputs.len()).map(input).collect();
    let outs: Vec<String> = (0..sig.outputs.len()).map(output).collect();
    let (ni, no) = (ins.len().to_string(), outs.len().to_string());
    let version = version.map(|v| v.to_string());
    let mut args: Vec<&[u8]> = vec![b"AI.MODELEXECUTE", key.as_bytes()];
    if let Some(v) = &version {
        args.extend([b"VERSION".as_slice(), v.as_bytes()]);
    }
    args.extend([b"INPUTS".as_slice(), ni.as_bytes()]);
    args.extend(ins.iter().map(|s| s.as_bytes()));
    args.push(b"OUTPUTS");
    args.push(no.as_bytes());
    args.extend(outs.iter().map(|s| s.as_bytes()));
    encode(&args)
}

/// Stores the model (unless `--model-key` names a stored one) and the inputs the modes use.
fn setup_model(o: &Arc<Opts>, rt: &tokio::runtime::Runtime, blob: &[u8], sig: &Signature) {
    rt.block_on(async {
        let mut c = Conn::open(o, o.port).await.expect("connect");
        if o.model.is_some() {
            let bs = o.batchsize.to_string();
            let mut args: Vec<&[u8]> =
                vec![b"AI.MODELSTORE", o.model_key.as_bytes(), b"ONNX", b"CPU"];
            if o.batchsize > 0 {
                args.extend([b"BATCHSIZE".as_slice(), bs.as_bytes()]);
            }
            args.extend([b"BLOB".as_slice(), blob]);
            let r = c.call(&encode(&args)).await.expect("MODELSTORE");
            if let Some(e) = error_text(&r) {
                panic!("AI.MODELSTORE failed: {e}");
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut setup = BytesMut::new();
        let mut n = 0;
        for (i, (_, dt, dims)) in sig.inputs.iter().enumerate() {
            setup.put_slice(&tensorset(
                &format!("bench:in:{i}"),
                *dt,
                dims,
                &random_blob(*dt, dims.iter().product(), &mut rng),
            ));
            n += 1;
        }
        if o.mode == "dag" {
            let (_, dt, dims) = sig.inputs.last().expect("an input");
            for id in 0..o.refs {
                setup.put_slice(&tensorset(
                    &format!("bench:ref:{id}"),
                    *dt,
                    dims,
                    &random_blob(*dt, dims.iter().product(), &mut rng),
                ));
                n += 1;
            }
        }
        c.send(&setup).await.expect("setup");
        for _ in 0..n {
            let f = c.read().await.expect("setup reply");
            if let Some(e) = error_text(&f) {
                panic!("setup failed: {e}");
            }
        }
    });
}

fn single(o: &Arc<Opts>, rt: &tokio::runtime::Runtime, sig: &Signature) {
    rt.block_on(async {
        let mut c = Conn::open(o, o.port).await.expect("connect");
        let t = Instant::now();
        let r = c
            .call(&execute_cmd(
                &o.model_key,
                o.model_version,
                sig,
                |i| format!("bench:in:{i}"),
                |i| format!("bench:out:{i}"),
            ))
            .await
            .expect("execute");
        println!(
            "AI.MODELEXECUTE {} -> {:?} in {:.3} ms",
            o.model_key,
            r,
            t.elapsed().as_secs_f64() * 1000.0
        );
        for (i, name) in sig.outputs.iter().enumerate() {
            let r = c
                .call(&encode(&[
                    b"AI.TENSORGET",
                    format!("bench:out:{i}").as_bytes(),
                    b"META",
                    b"VALUES",
                ]))
                .await
                .expect("get");
            println!("{name}: {r:?}");
        }
    });
}

/// The reference: the same model run by ONNX Runtime inside this process, one session per
/// client thread (optionally after GETting a reference blob from a Redis server).
fn run_inprocess(o: &Arc<Opts>, rt: &tokio::runtime::Runtime, blob: &[u8], sig: &Signature) {
    let per = (o.requests / o.clients as u64).max(1);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    if let Some(port) = o.peer_redis {
        // Store the reference tensors as plain strings in the peer Redis.
        rt.block_on(async {
            let mut c = Conn::open(o, port).await.expect("connect to peer redis");
            let (_, dt, dims) = sig.inputs.last().expect("an input");
            let mut rng = rand::rngs::StdRng::seed_from_u64(42);
            for id in 0..o.refs {
                let v = random_blob(*dt, dims.iter().product(), &mut rng);
                c.call(&encode(&[b"SET", format!("bench:ref:{id}").as_bytes(), &v]))
                    .await
                    .expect("SET");
            }
        });
    }
    let start = Instant::now();
    let threads: Vec<_> = (0..o.clients)
        .map(|t| {
            let (o, blob, hist) = (o.clone(), blob.to_vec(), hist.clone());
            let inputs = sig.inputs.clone();
            std::thread::spawn(move || {
                // Each client thread drives its own connection to the peer.
                let handle = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let mut session = inprocess_session(&o, &blob);
                let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
                let data: Vec<Vec<f32>> = inputs
                    .iter()
                    .map(|(_, _, d)| {
                        (0..d.iter().product::<usize>())
                            .map(|_| rng.gen())
                            .collect()
                    })
                    .collect();
                let mut peer = o
                    .peer_redis
                    .map(|p| handle.block_on(Conn::open(&o, p)).expect("peer"));
                let mut local = Histogram::<u64>::new(3).expect("histogram");
                for _ in 0..per {
                    let t0 = Instant::now();
                    let mut data = data.clone();
                    if let Some(c) = peer.as_mut() {
                        let id = rng.gen_range(0..o.refs);
                        let cmd = encode(&[b"GET", format!("bench:ref:{id}").as_bytes()]);
                        if let BytesFrame::BulkString(b) =
                            handle.block_on(c.call(&cmd)).expect("GET")
                        {
                            let last = data.len() - 1;
                            data[last] = b
                                .chunks_exact(4)
                                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                                .collect();
                        }
                    }
                    let values: Vec<(String, ort::session::SessionInputValue<'_>)> = inputs
                        .iter()
                        .zip(&data)
                        .map(|((name, _, dims), d)| {
                            let v = ort::value::TensorRef::<f32>::from_array_view((
                                dims.clone(),
                                &d[..],
                            ))
                            .expect("input")
                            .into_dyn();
                            (name.clone(), v.into())
                        })
                        .collect();
                    let out = session.run(values).expect("run");
                    drop(out);
                    let _ = local.record((t0.elapsed().as_micros() as u64).max(1));
                }
                hist.lock().add(&local).expect("bounds");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let secs = start.elapsed().as_secs_f64();
    let h = hist.lock();
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let name = if o.peer_redis.is_some() {
        "REDIS GET + IN-PROCESS ONNX RUNTIME"
    } else {
        "IN-PROCESS ONNX RUNTIME"
    };
    let r = serde_json::json!({
        "test": name, "requests": per * o.clients as u64, "completed": h.len(), "errors": 0, "error_messages": {},
        "seconds": secs, "rps": h.len() as f64 / secs, "clients": o.clients, "pipeline": 1,
        "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p99.9": q(0.999), "max": h.max() as f64 / 1000.0, "mean": h.mean() / 1000.0},
    });
    print_report(o, &r);
}

fn run_resp_tests(o: &Arc<Opts>, rt: &tokio::runtime::Runtime) {
    let payload = {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        random_payload(o.data_size, &mut rng)
    };
    let floats = o.data_size.div_ceil(4).max(1);
    let tensor_blob = vec![0u8; floats * 4];
    for t in o.tests.clone() {
        let (payload, tensor_blob, ks) = (payload.clone(), tensor_blob.clone(), o.keyspace);
        let key = move |rng: &mut rand::rngs::StdRng, prefix: &str| {
            if ks > 0 {
                format!("{prefix}:{:012}", rng.gen_range(0..ks))
            } else {
                format!("{prefix}:__rand_int__")
            }
        };
        let make: MakeRequest = match t.as_str() {
            "ping" => {
                let b = encode(&[b"PING"]);
                Arc::new(move |_| Request {
                    bytes: b.clone(),
                    replies: 1,
                    grpc: None,
                })
            }
            "set" => Arc::new(move |rng| Request {
                bytes: encode(&[b"SET", key(rng, "key").as_bytes(), &payload]),
                replies: 1,
                grpc: None,
            }),
            "get" => Arc::new(move |rng| Request {
                bytes: encode(&[b"GET", key(rng, "key").as_bytes()]),
                replies: 1,
                grpc: None,
            }),
            "tensorset" => {
                let n = floats.to_string();
                Arc::new(move |rng| Request {
                    bytes: encode(&[
                        b"AI.TENSORSET",
                        key(rng, "tensor").as_bytes(),
                        b"FLOAT",
                        n.as_bytes(),
                        b"BLOB",
                        &tensor_blob,
                    ]),
                    replies: 1,
                    grpc: None,
                })
            }
            "tensorget" => Arc::new(move |rng| Request {
                bytes: encode(&[b"AI.TENSORGET", key(rng, "tensor").as_bytes(), b"BLOB"]),
                replies: 1,
                grpc: None,
            }),
            other => {
                eprintln!("unknown test {other}");
                continue;
            }
        };
        let r = run_load(o, rt, &t.to_uppercase(), make);
        print_report(o, &r);
    }
}
