//! `locus-model`: moves models between Locus and model management tools.
//!
//! ```text
//! locus-model import --mlflow http://host:5000 models:/NAME/VERSION|models:/NAME/STAGE|models:/NAME@ALIAS
//!             --key KEY [--staged] [--device CPU] [-h host] [-p port] [-a password]
//! locus-model export --key KEY [--version N] --dir DIR [-h host] [-p port] [-a password]
//! ```
//!
//! `import` reads a registered model version through MLflow's REST API, downloads the ONNX
//! artifact of its `onnx` flavor (`model.onnx`), and stores it as a new version of KEY with
//! `META mlflow_name … mlflow_version … mlflow_run_id … mlflow_source …`, so the version points
//! back to the run that produced it. `export` writes a stored version's blob (`model.onnx`) and
//! its record (`locus-model.json`: settings, version record, metadata) to a directory.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::exit;

use locus::model_uri::{parse_model_uri, Pick};

fn usage() -> ! {
    eprintln!(
        "Usage:\n  locus-model import --mlflow URL models:/NAME/VERSION|models:/NAME/STAGE|models:/NAME@ALIAS --key KEY [--staged] [--device CPU] [-h host] [-p port] [-a password]\n  locus-model export --key KEY [--version N] --dir DIR [-h host] [-p port] [-a password]"
    );
    exit(2)
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("locus-model: {msg}");
    exit(1)
}

#[derive(Default)]
struct Opts {
    mlflow: Option<String>,
    uri: Option<String>,
    key: Option<String>,
    staged: bool,
    device: String,
    version: Option<u64>,
    dir: Option<PathBuf>,
    host: String,
    port: u16,
    password: Option<String>,
}

fn parse(args: &[String]) -> Opts {
    let mut o = Opts {
        device: "CPU".into(),
        host: "127.0.0.1".into(),
        port: 6379,
        ..Default::default()
    };
    let mut it = args.iter();
    let value = |it: &mut std::slice::Iter<String>| it.next().cloned().unwrap_or_else(|| usage());
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mlflow" => o.mlflow = Some(value(&mut it)),
            "--key" => o.key = Some(value(&mut it)),
            "--staged" => o.staged = true,
            "--device" => o.device = value(&mut it),
            "--version" => {
                o.version = Some(value(&mut it).parse().unwrap_or_else(|_| usage()));
            }
            "--dir" => o.dir = Some(PathBuf::from(value(&mut it))),
            "-h" => o.host = value(&mut it),
            "-p" => o.port = value(&mut it).parse().unwrap_or_else(|_| usage()),
            "-a" => o.password = Some(value(&mut it)),
            "--help" => usage(),
            s if s.starts_with("models:/") && o.uri.is_none() => o.uri = Some(s.to_string()),
            _ => usage(),
        }
    }
    o
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((verb, rest)) = args.split_first() else {
        usage()
    };
    let o = parse(rest);
    match verb.as_str() {
        "import" => import(&o),
        "export" => export(&o),
        _ => usage(),
    }
}

fn connect(o: &Opts) -> redis::Connection {
    let url = match &o.password {
        Some(p) => format!("redis://:{p}@{}:{}/", o.host, o.port),
        None => format!("redis://{}:{}/", o.host, o.port),
    };
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .and_then(|mut con| {
            // The audit stream names the client that stored a version.
            redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg("locus-model")
                .query::<()>(&mut con)
                .map(|_| con)
        })
        .unwrap_or_else(|e| fail(format!("cannot connect to {}:{}: {e}", o.host, o.port)))
}

/// One MLflow REST call; MLflow's own error message when it refuses.
fn mlflow_call(req: ureq::Request, body: Option<Value>) -> Result<Value, String> {
    let url = req.url().to_string();
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match resp {
        Ok(r) => r
            .into_json::<Value>()
            .map_err(|e| format!("{url}: not JSON: {e}")),
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            Err(format!("MLflow answered {code}: {msg}"))
        }
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// The registered version the URI names, as MLflow describes it.
fn resolve_version(base: &str, name: &str, pick: &Pick) -> Result<Value, String> {
    let api = format!("{base}/api/2.0/mlflow");
    let version = match pick {
        Pick::Version(v) => v.clone(),
        Pick::Stage(stage) => {
            let r = mlflow_call(
                ureq::post(&format!("{api}/registered-models/get-latest-versions")),
                Some(json!({"name": name, "stages": [stage]})),
            )?;
            r["model_versions"][0]["version"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    format!("registered model '{name}' has no version in stage '{stage}'")
                })?
        }
        Pick::Alias(alias) => {
            let r = mlflow_call(
                ureq::get(&format!("{api}/registered-models/alias"))
                    .query("name", name)
                    .query("alias", alias),
                None,
            )?;
            r["model_version"]["version"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("registered model '{name}' has no alias '{alias}'"))?
        }
    };
    let r = mlflow_call(
        ureq::get(&format!("{api}/model-versions/get"))
            .query("name", name)
            .query("version", &version),
        None,
    )?;
    Ok(r["model_version"].clone())
}

/// The bytes of the version's ONNX artifact (`model.onnx` of the onnx flavor).
fn download_onnx(base: &str, name: &str, version: &str) -> Result<(Vec<u8>, String), String> {
    let r = mlflow_call(
        ureq::get(&format!(
            "{base}/api/2.0/mlflow/model-versions/get-download-uri"
        ))
        .query("name", name)
        .query("version", version),
        None,
    )?;
    let mut location = r["artifact_uri"]
        .as_str()
        .ok_or("MLflow gave no artifact location")?
        .trim_end_matches('/')
        .to_string();
    // A version registered from `runs:/RUN/PATH` lives under that run's artifact root.
    if let Some(rest) = location.clone().strip_prefix("runs:/") {
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
        let run = mlflow_call(
            ureq::get(&format!("{base}/api/2.0/mlflow/runs/get")).query("run_id", run_id),
            None,
        )?;
        let root = run["run"]["info"]["artifact_uri"]
            .as_str()
            .ok_or_else(|| format!("run {run_id} has no artifact location"))?;
        location = format!("{}/{path}", root.trim_end_matches('/'))
            .trim_end_matches('/')
            .to_string();
    }
    let missing = || {
        format!("model '{name}' version {version} has no ONNX artifact (model.onnx at {location}): log it with mlflow.onnx.log_model")
    };
    let bytes = if let Some(path) = location.strip_prefix("mlflow-artifacts:") {
        // Served by the tracking server itself (`mlflow server --serve-artifacts`).
        let path = path.trim_start_matches('/');
        let url = format!("{base}/api/2.0/mlflow-artifacts/artifacts/{path}/model.onnx");
        match ureq::get(&url).call() {
            Ok(resp) => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut resp.into_reader(), &mut buf)
                    .map_err(|e| format!("{url}: {e}"))?;
                buf
            }
            Err(ureq::Error::Status(404, _)) => return Err(missing()),
            Err(e) => return Err(format!("{url}: {e}")),
        }
    } else if location.starts_with("file:") || location.starts_with('/') {
        let path = location.trim_start_matches("file://");
        let file = Path::new(path).join("model.onnx");
        std::fs::read(&file).map_err(|_| missing())?
    } else {
        return Err(format!(
            "artifact location '{location}' is not reachable from here (serve artifacts through the tracking server: mlflow server --serve-artifacts)"
        ));
    };
    // An ONNX ModelProto starts with its ir_version field (tag 0x08).
    if bytes.first() != Some(&0x08) {
        return Err(format!(
            "the artifact at {location}/model.onnx is not an ONNX model"
        ));
    }
    Ok((bytes, location))
}

fn import(o: &Opts) {
    let (Some(base), Some(uri), Some(key)) = (&o.mlflow, &o.uri, &o.key) else {
        usage()
    };
    let base = base.trim_end_matches('/');
    let (name, pick) = parse_model_uri(uri).unwrap_or_else(|e| fail(e));
    let mv = resolve_version(base, &name, &pick).unwrap_or_else(|e| fail(e));
    let version = mv["version"].as_str().unwrap_or_default().to_string();
    let run_id = mv["run_id"].as_str().unwrap_or_default().to_string();
    let source = mv["source"].as_str().unwrap_or_default().to_string();
    let (blob, location) = download_onnx(base, &name, &version).unwrap_or_else(|e| fail(e));
    let mut con = connect(o);
    let mut cmd = redis::cmd("AI.MODELSTORE");
    cmd.arg(key).arg("ONNX").arg(&o.device);
    if o.staged {
        cmd.arg("STAGED");
    }
    cmd.arg("META")
        .arg("mlflow_name")
        .arg(&name)
        .arg("mlflow_version")
        .arg(&version)
        .arg("mlflow_run_id")
        .arg(&run_id)
        .arg("mlflow_source")
        .arg(&source)
        .arg("mlflow_uri")
        .arg(uri)
        .arg("mlflow_artifact")
        .arg(format!("{location}/model.onnx"))
        .arg("BLOB")
        .arg(&blob);
    if let Err(e) = cmd.query::<()>(&mut con) {
        fail(format!("storing {key} failed: {e}"));
    }
    let stored = versions(&mut con, key)
        .into_iter()
        .last()
        .unwrap_or_else(|| fail("the stored version is not listed"));
    println!(
        "stored {key} version {} ({}) from {uri} (MLflow version {version}, run {run_id})",
        stored["version"],
        if o.staged { "staged" } else { "live" }
    );
}

/// AI.MODELVERSIONS as JSON objects.
fn versions(con: &mut redis::Connection, key: &str) -> Vec<Value> {
    let reply: redis::Value = redis::cmd("AI.MODELVERSIONS")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| fail(format!("AI.MODELVERSIONS {key}: {e}")));
    match to_json(&reply) {
        Value::Array(v) => v,
        _ => Vec::new(),
    }
}

/// A reply as JSON: flat name/value arrays of the version records become objects.
fn to_json(v: &redis::Value) -> Value {
    use redis::Value as R;
    match v {
        R::Nil => Value::Null,
        R::Int(i) => json!(i),
        R::BulkString(b) => json!(String::from_utf8_lossy(b)),
        R::SimpleString(s) => json!(s),
        R::Array(items) => {
            let is_record = items.len() >= 2
                && items.len().is_multiple_of(2)
                && items
                    .iter()
                    .step_by(2)
                    .all(|k| matches!(k, R::BulkString(_)));
            let is_version = is_record
                && matches!(&items[0], R::BulkString(b) if b == b"version" || b == b"backend");
            if is_version {
                let mut m = serde_json::Map::new();
                for pair in items.chunks(2) {
                    if let R::BulkString(k) = &pair[0] {
                        let k = String::from_utf8_lossy(k).into_owned();
                        let v = match (k.as_str(), &pair[1]) {
                            // META's flat field/value list reads best as an object.
                            ("meta", R::Array(kv)) => pairs_object(kv),
                            (_, v) => to_json(v),
                        };
                        m.insert(k, v);
                    }
                }
                Value::Object(m)
            } else {
                Value::Array(items.iter().map(to_json).collect())
            }
        }
        R::Map(pairs) => {
            let mut m = serde_json::Map::new();
            for (k, val) in pairs {
                let k = match to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(k, to_json(val));
            }
            Value::Object(m)
        }
        other => json!(format!("{other:?}")),
    }
}

fn pairs_object(kv: &[redis::Value]) -> Value {
    let mut m = serde_json::Map::new();
    for pair in kv.chunks(2) {
        if let [k, v] = pair {
            let k = match to_json(k) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            m.insert(k, to_json(v));
        }
    }
    Value::Object(m)
}

fn export(o: &Opts) {
    let (Some(key), Some(dir)) = (&o.key, &o.dir) else {
        usage()
    };
    let mut con = connect(o);
    let all = versions(&mut con, key);
    let record = match o.version {
        Some(n) => all.iter().find(|v| v["version"] == json!(n)),
        None => all.iter().find(|v| v["status"] == json!("live")),
    }
    .cloned()
    .unwrap_or_else(|| fail(format!("{key} has no such version")));
    let n = record["version"].as_u64().unwrap_or(0);
    let get = |what: &str| -> redis::Value {
        redis::cmd("AI.MODELGET")
            .arg(key)
            .arg("VERSION")
            .arg(n)
            .arg(what)
            .query(&mut connect(o))
            .unwrap_or_else(|e| fail(format!("AI.MODELGET {key}: {e}")))
    };
    let blob = match get("BLOB") {
        redis::Value::BulkString(b) => b,
        redis::Value::Array(chunks) => chunks
            .into_iter()
            .flat_map(|c| match c {
                redis::Value::BulkString(b) => b,
                _ => Vec::new(),
            })
            .collect(),
        other => fail(format!("unexpected MODELGET reply {other:?}")),
    };
    let settings = to_json(&get("META"));
    std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(format!("{}: {e}", dir.display())));
    std::fs::write(dir.join("model.onnx"), &blob)
        .unwrap_or_else(|e| fail(format!("{}: {e}", dir.display())));
    let doc = json!({"key": key, "version": record, "settings": settings});
    std::fs::write(
        dir.join("locus-model.json"),
        serde_json::to_string_pretty(&doc).expect("JSON"),
    )
    .unwrap_or_else(|e| fail(format!("{}: {e}", dir.display())));
    println!(
        "exported {key} version {n} ({} bytes) to {}",
        blob.len(),
        dir.display()
    );
}
