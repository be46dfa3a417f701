//! Model execution against a live server with real ONNX files (redis-tests/models/).

use crate::common;

use common::TestServer;
use redis::Value;
use std::time::{Duration, Instant};

fn model(name: &str) -> Vec<u8> {
    common::model_file(name)
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn store_execute_and_read_back() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    common::store_model(&mut c, "m", "add.onnx");
    let _: () = redis::cmd("AI.TENSORSET")
        .arg("a")
        .arg("FLOAT")
        .arg(1)
        .arg(2)
        .arg("BLOB")
        .arg(f32s(&[1.0, 2.0]))
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("AI.TENSORSET")
        .arg("b")
        .arg("FLOAT")
        .arg(1)
        .arg(2)
        .arg("VALUES")
        .arg(10)
        .arg(20)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("AI.MODELEXECUTE")
        .arg("m")
        .arg("INPUTS")
        .arg(2)
        .arg("a")
        .arg("b")
        .arg("OUTPUTS")
        .arg(1)
        .arg("c")
        .query(&mut c)
        .unwrap();
    let blob: Vec<u8> = redis::cmd("AI.TENSORGET")
        .arg("c")
        .arg("BLOB")
        .query(&mut c)
        .unwrap();
    assert_eq!(blob, f32s(&[11.0, 22.0]));
    assert_eq!(
        redis::cmd("TYPE").arg("m").query::<String>(&mut c).unwrap(),
        "AI__MODEL"
    );
    // Errors leave the keyspace untouched.
    let e = redis::cmd("AI.MODELEXECUTE")
        .arg("m")
        .arg("INPUTS")
        .arg(2)
        .arg("a")
        .arg("nope")
        .arg("OUTPUTS")
        .arg(1)
        .arg("d")
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("tensor key is empty"), "{e}");
    assert_eq!(
        redis::cmd("EXISTS").arg("d").query::<i64>(&mut c).unwrap(),
        0
    );
    let e = redis::cmd("AI.MODELSTORE")
        .arg("bad")
        .arg("ONNX")
        .arg("CPU")
        .arg("BLOB")
        .arg("not a model")
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("protobuf"), "{e}");
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("bad")
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
}

/// A model that runs for seconds is terminated by the kill switch, and other clients' PINGs are
/// served throughout with low latency.
#[test]
fn runaway_model_is_terminated_and_others_are_not_slowed() {
    let s = TestServer::start(&["--model-execution-timeout", "1500"]);
    let mut c = s.conn();
    common::store_model(&mut c, "spin", "spin.onnx");
    let _: () = redis::cmd("AI.TENSORSET")
        .arg("x")
        .arg("FLOAT")
        .arg(1)
        .arg("VALUES")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let client = s.client();
    let runner = std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        let start = Instant::now();
        let r = redis::cmd("AI.MODELEXECUTE")
            .arg("spin")
            .arg("INPUTS")
            .arg(1)
            .arg("x")
            .arg("OUTPUTS")
            .arg(1)
            .arg("y")
            .query::<Value>(&mut c);
        (r, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut pinger = s.conn();
    let mut lat = Vec::new();
    let end = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < end {
        let t = Instant::now();
        let _: String = redis::cmd("PING").query(&mut pinger).unwrap();
        lat.push(t.elapsed());
    }
    let (r, took) = runner.join().unwrap();
    let e = r.unwrap_err();
    assert!(e.to_string().contains("terminate"), "{e}");
    assert!(took < Duration::from_secs(5), "terminated after {took:?}");
    lat.sort();
    let p99 = lat[lat.len() * 99 / 100];
    assert!(lat.len() > 100, "only {} pings in a second", lat.len());
    assert!(
        p99 < Duration::from_millis(20),
        "PING p99 {p99:?} while a model ran"
    );
    let _: String = redis::cmd("PING").query(&mut c).unwrap();
}

/// Concurrent requests to a model stored with BATCHSIZE run as one batch, and each client gets
/// exactly its own rows back.
#[test]
fn dynamic_batching_splits_results_back() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let _: () = redis::cmd("AI.MODELSTORE")
        .arg("m")
        .arg("ONNX")
        .arg("CPU")
        .arg("BATCHSIZE")
        .arg(8)
        .arg("MINBATCHSIZE")
        .arg(8)
        .arg("MINBATCHTIMEOUT")
        .arg(2000)
        .arg("BLOB")
        .arg(model("add.onnx"))
        .query(&mut c)
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let client = s.client();
            std::thread::spawn(move || {
                let mut c = client.get_connection().unwrap();
                let (a, b) = (format!("a{i}"), format!("b{i}"));
                let _: () = redis::cmd("AI.TENSORSET")
                    .arg(&a)
                    .arg("FLOAT")
                    .arg(1)
                    .arg(2)
                    .arg("VALUES")
                    .arg(i)
                    .arg(i * 10)
                    .query(&mut c)
                    .unwrap();
                let _: () = redis::cmd("AI.TENSORSET")
                    .arg(&b)
                    .arg("FLOAT")
                    .arg(1)
                    .arg(2)
                    .arg("VALUES")
                    .arg(1)
                    .arg(1)
                    .query(&mut c)
                    .unwrap();
                let out = format!("c{i}");
                let _: () = redis::cmd("AI.MODELEXECUTE")
                    .arg("m")
                    .arg("INPUTS")
                    .arg(2)
                    .arg(&a)
                    .arg(&b)
                    .arg("OUTPUTS")
                    .arg(1)
                    .arg(&out)
                    .query(&mut c)
                    .unwrap();
                let v: Vec<String> = redis::cmd("AI.TENSORGET")
                    .arg(&out)
                    .arg("VALUES")
                    .query(&mut c)
                    .unwrap();
                assert_eq!(v, vec![(i + 1).to_string(), (i * 10 + 1).to_string()]);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let info: String = redis::cmd("INFO").arg("ai").query(&mut c).unwrap();
    assert!(info.contains("ai_batched_runs:1"), "{info}");
    let stats: std::collections::HashMap<String, Value> =
        redis::cmd("AI.INFO").arg("m").query(&mut c).unwrap();
    assert_eq!(stats["calls"], Value::Int(8));
    assert_eq!(stats["samples"], Value::Int(8));
}

/// A request still queued after TIMEOUT gets TIMEDOUT.
#[test]
fn queued_request_times_out() {
    let s = TestServer::start(&["--model-execution-timeout", "2000"]);
    let mut c = s.conn();
    common::store_model(&mut c, "spin", "spin.onnx");
    common::store_model(&mut c, "m", "add.onnx");
    let _: () = redis::cmd("AI.TENSORSET")
        .arg("x")
        .arg("FLOAT")
        .arg(1)
        .arg("VALUES")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("AI.TENSORSET")
        .arg("a")
        .arg("FLOAT")
        .arg(1)
        .arg(2)
        .query(&mut c)
        .unwrap();
    let client = s.client();
    let busy = std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        let _ = redis::cmd("AI.MODELEXECUTE")
            .arg("spin")
            .arg("INPUTS")
            .arg(1)
            .arg("x")
            .arg("OUTPUTS")
            .arg(1)
            .arg("y")
            .query::<Value>(&mut c);
    });
    std::thread::sleep(Duration::from_millis(200));
    let r: Value = redis::cmd("AI.MODELEXECUTE")
        .arg("m")
        .arg("INPUTS")
        .arg(2)
        .arg("a")
        .arg("a")
        .arg("OUTPUTS")
        .arg(1)
        .arg("o")
        .arg("TIMEOUT")
        .arg(100)
        .query(&mut c)
        .unwrap();
    assert_eq!(
        format!("{r:?}"),
        format!("{:?}", Value::SimpleString("TIMEDOUT".into()))
    );
    busy.join().unwrap();
    assert_eq!(
        redis::cmd("EXISTS").arg("o").query::<i64>(&mut c).unwrap(),
        0
    );
}

/// BACKEND_MEMORY_LIMIT caps the bytes stored models hold; freeing a model makes room again.
#[test]
fn backend_memory_limit_refuses_models_over_the_cap() {
    let s = TestServer::start(&["--backend-memory-limit", "1"]);
    let mut c = s.conn();
    let fraud = model("fraud.onnx");
    for key in ["f1", "f2"] {
        let _: () = redis::cmd("AI.MODELSTORE")
            .arg(key)
            .arg("ONNX")
            .arg("CPU")
            .arg("BLOB")
            .arg(&fraud)
            .query(&mut c)
            .unwrap();
    }
    let e = redis::cmd("AI.MODELSTORE")
        .arg("f3")
        .arg("ONNX")
        .arg("CPU")
        .arg("BLOB")
        .arg(&fraud)
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string().contains("backend memory limit exceeded"),
        "{e}"
    );
    assert_eq!(
        redis::cmd("EXISTS").arg("f3").query::<i64>(&mut c).unwrap(),
        0
    );
    let _: () = redis::cmd("AI.MODELDEL").arg("f1").query(&mut c).unwrap();
    let _: () = redis::cmd("AI.MODELSTORE")
        .arg("f3")
        .arg("ONNX")
        .arg("CPU")
        .arg("BLOB")
        .arg(&fraud)
        .query(&mut c)
        .unwrap();
}

/// With no ONNX Runtime configured and none in the Python it looks at, the server installs the
/// pinned onnxruntime wheel from PyPI into its cache by itself, and models run.
#[test]
fn provisions_onnx_runtime_when_none_is_installed() {
    let dir = std::env::temp_dir().join(format!("locus-provision-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let venv = dir.join("venv");
    let ok = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(ok.success(), "python3 -m venv");
    let (python, cache) = (venv.join("bin/python"), dir.join("cache"));
    let s = TestServer::start_env(
        &dir,
        &["--save", ""],
        &[("LOCUS_PYTHON", &python), ("LOCUS_CACHE_DIR", &cache)],
    );
    let mut c = s.conn();
    common::store_model(&mut c, "m", "add.onnx");
    let info: String = redis::cmd("INFO").arg("ai").query(&mut c).unwrap();
    assert!(
        info.contains(&format!("{}", dir.join("cache").display())),
        "{info}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
