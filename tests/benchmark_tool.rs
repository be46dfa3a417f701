//! locus-benchmark's own integration test: a short workload against a live server, where the
//! counts must add up and the JSON output must parse.

use crate::common;

use common::TestServer;
use std::process::Command;

fn bench(port: u16, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_locus-benchmark"))
        .args(["-p", &port.to_string(), "--json"])
        .args(args)
        .output()
        .expect("run locus-benchmark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn resp_workload_counts_add_up() {
    let s = TestServer::start(&[]);
    let reports = bench(
        s.port,
        &[
            "-n",
            "3000",
            "-c",
            "7",
            "-P",
            "4",
            "-t",
            "ping,set,get,tensorset,tensorget",
            "-d",
            "64",
        ],
    );
    assert_eq!(reports.len(), 5);
    for r in &reports {
        let sent = r["sent"].as_u64().unwrap();
        let completed = r["completed"].as_u64().unwrap();
        let errors = r["errors"].as_u64().unwrap();
        assert_eq!(sent, 3000, "{r}");
        assert_eq!(completed, 3000, "every request answered: {r}");
        assert_eq!(errors, 0, "{r}");
        assert!(
            r["latency_ms"]["p99"].as_f64().unwrap() >= r["latency_ms"]["p50"].as_f64().unwrap()
        );
    }
}

#[test]
fn errors_are_counted_by_message() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    // TENSORGET on keys that do not exist: every reply is an error, and all are counted.
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let reports = bench(s.port, &["-n", "500", "-c", "5", "-t", "tensorget"]);
    let r = &reports[0];
    assert_eq!(r["sent"].as_u64().unwrap(), 500);
    assert_eq!(r["errors"].as_u64().unwrap(), 500, "{r}");
    assert_eq!(
        r["error_messages"]["ERR tensor key is empty or in a different shard"]
            .as_u64()
            .unwrap(),
        500
    );
}

#[test]
fn model_workload_runs() {
    let s = TestServer::start(&[]);
    let model = format!(
        "{}/../../redis-tests/models/fraud.onnx",
        env!("CARGO_MANIFEST_DIR")
    );
    for mode in ["execute", "roundtrip"] {
        let reports = bench(
            s.port,
            &[
                "--model",
                &model,
                "--mode",
                mode,
                "--batchsize",
                "8",
                "-n",
                "400",
                "-c",
                "8",
            ],
        );
        let r = &reports[0];
        assert_eq!(r["completed"].as_u64().unwrap(), 400, "{r}");
        assert_eq!(r["errors"].as_u64().unwrap(), 0, "{r}");
    }
}
