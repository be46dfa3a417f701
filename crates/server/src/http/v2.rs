//! The KServe V2 (Open Inference Protocol) REST API: health, server and model metadata,
//! readiness, inference with JSON tensors and with the binary tensor data extension, and
//! Triton's model configuration and statistics extensions. Errors are `{"error": …}` with the
//! HTTP status the class of failure calls for.

use crate::inference::{self, codec, meta, Call, Described, Failure, Named};
use crate::server::Server;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value as Json};
use std::sync::Arc;
use std::time::Duration;

/// The header that splits a binary-extension body into its JSON part and its tensor data.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// The extensions `/v2` names.
pub const EXTENSIONS: [&str; 3] = ["binary_tensor_data", "model_configuration", "statistics"];

pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/stats", get(all_stats))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_v),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_v),
        )
        .route("/v2/models/{name}/config", get(model_config))
        .route(
            "/v2/models/{name}/versions/{version}/config",
            get(model_config_v),
        )
        .route("/v2/models/{name}/stats", get(model_stats))
        .route(
            "/v2/models/{name}/versions/{version}/stats",
            get(model_stats_v),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_v))
}

/// An error reply: `{"error": message}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": message.into() }).to_string(),
    )
        .into_response()
}

fn failure(f: Failure) -> Response {
    let status = match &f {
        Failure::NotFound(_) => StatusCode::NOT_FOUND,
        Failure::Invalid(_) => StatusCode::BAD_REQUEST,
        Failure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Failure::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, f.message())
}

fn json_reply(body: Json) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A version segment of a path: the protocol's versions are strings, Locus's are numbers.
fn parse_version(v: &str) -> Result<Option<u64>, Response> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<u64>().map(Some).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            format!("invalid model version '{v}': versions are numbers"),
        )
    })
}

async fn live() -> Response {
    json_reply(json!({ "live": true }))
}

async fn ready(State(server): State<Arc<Server>>) -> Response {
    let loading = server.loading.load(std::sync::atomic::Ordering::Relaxed);
    let status = if loading {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "ready": !loading }).to_string(),
    )
        .into_response()
}

async fn server_metadata() -> Response {
    json_reply(json!({
        "name": "locus",
        "version": crate::LOCUS_VERSION,
        "extensions": EXTENSIONS,
    }))
}

fn described(server: &Arc<Server>, name: &str, version: &str) -> Result<Described, Response> {
    let version = parse_version(version)?;
    inference::describe(server, name, version).map_err(failure)
}

fn tensor_json(t: &meta::TensorMeta) -> Json {
    json!({ "name": t.name, "datatype": t.datatype, "shape": t.shape })
}

fn metadata(server: &Arc<Server>, name: &str, version: &str) -> Response {
    match described(server, name, version) {
        Ok(d) => json_reply(json!({
            "name": name,
            "versions": d.versions.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            "platform": meta::platform(&d),
            "inputs": meta::inputs(&d.signature).iter().map(tensor_json).collect::<Vec<_>>(),
            "outputs": meta::outputs(&d.signature).iter().map(tensor_json).collect::<Vec<_>>(),
        })),
        Err(r) => r,
    }
}

async fn model_metadata(State(s): State<Arc<Server>>, Path(name): Path<String>) -> Response {
    metadata(&s, &name, "")
}

async fn model_metadata_v(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    metadata(&s, &name, &version)
}

fn readiness(server: &Arc<Server>, name: &str, version: &str) -> Response {
    match described(server, name, version) {
        Ok(_) => json_reply(json!({ "name": name, "ready": true })),
        Err(r) => r,
    }
}

async fn model_ready(State(s): State<Arc<Server>>, Path(name): Path<String>) -> Response {
    readiness(&s, &name, "")
}

async fn model_ready_v(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    readiness(&s, &name, &version)
}

fn config_reply(server: &Arc<Server>, name: &str, version: &str) -> Response {
    let d = match described(server, name, version) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let c = meta::config(server, &d.signature);
    let io = |t: &meta::TensorMeta, input: bool| {
        let mut o = json!({
            "name": t.name,
            "data_type": meta::triton_type(t.datatype),
            "dims": t.shape,
        });
        if input {
            o["format"] = json!("FORMAT_NONE");
        }
        o
    };
    let mut body = json!({
        "name": name,
        "platform": meta::platform(&d),
        "backend": "onnxruntime",
        "max_batch_size": c.max_batch_size,
        "input": c.inputs.iter().map(|t| io(t, true)).collect::<Vec<_>>(),
        "output": c.outputs.iter().map(|t| io(t, false)).collect::<Vec<_>>(),
        "instance_group": [{
            "name": name,
            "kind": if c.gpu.is_some() { "KIND_GPU" } else { "KIND_CPU" },
            "count": c.instances,
            "gpus": c.gpu.map(|g| vec![g]).unwrap_or_default(),
        }],
    });
    if c.max_batch_size > 0 {
        body["dynamic_batching"] = json!({
            "preferred_batch_size": [c.preferred_batch],
            "max_queue_delay_microseconds": c.max_queue_delay_us,
        });
    }
    json_reply(body)
}

async fn model_config(State(s): State<Arc<Server>>, Path(name): Path<String>) -> Response {
    config_reply(&s, &name, "")
}

async fn model_config_v(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    config_reply(&s, &name, &version)
}

fn duration(d: (u64, u64)) -> Json {
    json!({ "count": d.0, "ns": d.1 })
}

fn stats_json(name: &str, d: &Described) -> Json {
    let s = meta::stats(&d.signature);
    json!({
        "name": name,
        "version": meta::version_text(d),
        "last_inference": 0,
        "inference_count": s.inference_count,
        "execution_count": s.execution_count,
        "inference_stats": {
            "success": duration(s.success),
            "fail": duration(s.fail),
            "queue": duration(s.queue),
            "compute_input": duration((0, 0)),
            "compute_infer": duration(s.compute_infer),
            "compute_output": duration((0, 0)),
        },
        "batch_stats": [],
    })
}

fn stats_reply(server: &Arc<Server>, name: &str, version: &str) -> Response {
    match described(server, name, version) {
        Ok(d) => json_reply(json!({ "model_stats": [stats_json(name, &d)] })),
        Err(r) => r,
    }
}

async fn model_stats(State(s): State<Arc<Server>>, Path(name): Path<String>) -> Response {
    stats_reply(&s, &name, "")
}

async fn model_stats_v(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    stats_reply(&s, &name, &version)
}

async fn all_stats(State(s): State<Arc<Server>>) -> Response {
    let mut all = Vec::new();
    for (key, _) in inference::model_keys(&s) {
        let name = String::from_utf8_lossy(&key).into_owned();
        if let Ok(d) = inference::describe(&s, &name, None) {
            all.push(stats_json(&name, &d));
        }
    }
    json_reply(json!({ "model_stats": all }))
}

async fn repository_index(State(s): State<Arc<Server>>) -> Response {
    let index: Vec<Json> = inference::model_keys(&s)
        .into_iter()
        .map(|(key, _)| {
            let name = String::from_utf8_lossy(&key).into_owned();
            let version = inference::describe(&s, &name, None)
                .map(|d| meta::version_text(&d))
                .unwrap_or_default();
            json!({ "name": name, "version": version, "state": "READY" })
        })
        .collect();
    json_reply(Json::Array(index))
}

/// Reads the request body up to `http-max-body`, answering 413 above it.
async fn read_body(server: &Server, body: Body) -> Result<Bytes, Response> {
    let limit = server.config.get_i64("http-max-body").max(0) as usize;
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than http-max-body ({limit} bytes)"),
        )
    })
}

fn param_bool(params: Option<&Json>, name: &str) -> Option<bool> {
    params?.get(name)?.as_bool()
}

fn param_u64(params: Option<&Json>, name: &str) -> Option<u64> {
    params?.get(name)?.as_u64()
}

/// What an inference reply needs besides the outputs: which go as binary data.
struct Wanted {
    names: Vec<String>,
    binary: Vec<bool>,
    all_binary: bool,
}

/// Parses an inference request (JSON, or JSON plus binary tensor data).
fn parse_infer(
    server: &Server,
    name: &str,
    version: Option<u64>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Call, Wanted), Response> {
    let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
    let header_len = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n <= body.len())
            .ok_or_else(|| {
                bad(format!(
                    "Inference-Header-Content-Length must be a length within the body's {} bytes",
                    body.len()
                ))
            })?,
    };
    let head: Json = serde_json::from_slice(&body[..header_len])
        .map_err(|e| bad(format!("failed to parse the request JSON: {e}")))?;
    let mut binary = body.slice(header_len..);
    let max_bytes = server
        .config
        .live
        .tensor_max_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let params = head.get("parameters");
    let inputs_json = head
        .get("inputs")
        .and_then(Json::as_array)
        .ok_or_else(|| bad("the request has no 'inputs' array".into()))?;
    let mut inputs = Vec::with_capacity(inputs_json.len());
    for i in inputs_json {
        let iname = i
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("an input has no 'name'".into()))?;
        let datatype = i
            .get("datatype")
            .and_then(Json::as_str)
            .ok_or_else(|| bad(format!("input '{iname}' has no 'datatype'")))?;
        let dtype = inference::from_v2_type(datatype).ok_or_else(|| {
            bad(format!(
                "input '{iname}' has an unknown datatype '{datatype}'"
            ))
        })?;
        let dims: Vec<i64> = i
            .get("shape")
            .and_then(Json::as_array)
            .and_then(|a| a.iter().map(Json::as_i64).collect::<Option<Vec<_>>>())
            .ok_or_else(|| bad(format!("input '{iname}' has no valid 'shape'")))?;
        let shape = codec::shape_of(iname, &dims).map_err(bad)?;
        let tensor = match param_u64(i.get("parameters"), "binary_data_size") {
            Some(size) => {
                let size = size as usize;
                if size > binary.len() {
                    return Err(bad(format!(
                        "input '{iname}' asks for {size} bytes of binary data, {} are left",
                        binary.len()
                    )));
                }
                let raw = binary.split_to(size);
                codec::from_raw(iname, dtype, &shape, raw, max_bytes)
            }
            None => match i.get("data") {
                Some(data) => codec::from_json(iname, dtype, &shape, data, max_bytes),
                None => Err(format!(
                    "input '{iname}' has neither 'data' nor binary data"
                )),
            },
        }
        .map_err(bad)?;
        inputs.push(Named {
            name: iname.to_string(),
            tensor,
        });
    }
    if !binary.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data are not claimed by any input",
            binary.len()
        )));
    }
    let all_binary = param_bool(params, "binary_data_output").unwrap_or(false);
    let mut wanted = Wanted {
        names: Vec::new(),
        binary: Vec::new(),
        all_binary,
    };
    if let Some(outs) = head.get("outputs").and_then(Json::as_array) {
        for o in outs {
            let oname = o
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("an output has no 'name'".into()))?;
            wanted.names.push(oname.to_string());
            wanted
                .binary
                .push(param_bool(o.get("parameters"), "binary_data").unwrap_or(all_binary));
        }
    }
    // Triton's `timeout` parameter, in microseconds.
    let timeout = param_u64(params, "timeout")
        .filter(|&us| us > 0)
        .map(Duration::from_micros);
    let id = head
        .get("id")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((
        Call {
            model: name.to_string(),
            version,
            id,
            inputs,
            outputs: wanted.names.clone(),
            timeout,
        },
        wanted,
    ))
}

async fn run_infer(
    server: Arc<Server>,
    name: String,
    version: &str,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let version = match parse_version(version) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = match read_body(&server, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (call, wanted) = match parse_infer(&server, &name, version, &headers, body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = call.id.clone();
    let answer = match inference::infer(&server, call).await {
        Ok(a) => a,
        Err(f) => return failure(f),
    };
    let mut outputs = Vec::with_capacity(answer.outputs.len());
    let mut blobs = Vec::new();
    for (i, out) in answer.outputs.iter().enumerate() {
        let binary = if wanted.names.is_empty() {
            wanted.all_binary
        } else {
            wanted.binary[i]
        };
        let mut o = Map::new();
        o.insert("name".into(), json!(out.name));
        o.insert(
            "datatype".into(),
            json!(inference::v2_type(out.tensor.dtype())),
        );
        o.insert("shape".into(), json!(out.tensor.shape()));
        if binary {
            let raw = codec::to_raw(&out.tensor);
            o.insert(
                "parameters".into(),
                json!({ "binary_data_size": raw.len() }),
            );
            blobs.push(raw);
        } else {
            o.insert("data".into(), codec::to_json(&out.tensor));
        }
        outputs.push(Json::Object(o));
    }
    let mut head = Map::new();
    head.insert("model_name".into(), json!(name));
    if let Some(v) = answer.version {
        head.insert("model_version".into(), json!(v.to_string()));
    }
    if !id.is_empty() {
        head.insert("id".into(), json!(id));
    }
    head.insert("outputs".into(), Json::Array(outputs));
    let head = Json::Object(head).to_string();
    if blobs.is_empty() {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            head,
        )
            .into_response();
    }
    let mut body =
        BytesMut::with_capacity(head.len() + blobs.iter().map(Bytes::len).sum::<usize>());
    body.put_slice(head.as_bytes());
    for b in &blobs {
        body.put_slice(b);
    }
    let mut resp = (StatusCode::OK, body.freeze()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(HEADER_LENGTH, HeaderValue::from(head.len()));
    resp
}

async fn infer(
    State(s): State<Arc<Server>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_infer(s, name, "", headers, body).await
}

async fn infer_v(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_infer(s, name, &version, headers, body).await
}
