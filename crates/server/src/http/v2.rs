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
use axum::Extension;
use axum::Router;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
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
        .route("/v2/models/{name}/explain", post(explain))
        .route(
            "/v2/models/{name}/versions/{version}/explain",
            post(explain_v),
        )
}

/// An error reply: `{"error": message}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    super::json_response(status, &json!({ "error": message.into() }))
}

fn failure(f: Failure) -> Response {
    let status = match &f {
        Failure::NotFound(_) => StatusCode::NOT_FOUND,
        Failure::Invalid(_) => StatusCode::BAD_REQUEST,
        Failure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Failure::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Failure::Forbidden(_) => StatusCode::FORBIDDEN,
    };
    error(status, f.message())
}

fn json_reply(body: Json) -> Response {
    super::json_response(StatusCode::OK, &body)
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
    let (loading, status) = super::loading_status(&server);
    super::json_response(status, &json!({ "ready": !loading }))
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
            "compute_input": duration(s.compute_input),
            "compute_infer": duration(s.compute_infer),
            "compute_output": duration(s.compute_output),
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

/// The parameters the protocol defines for requests, inputs and outputs (others are ignored).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Parameters {
    binary_data_size: Option<u64>,
    binary_data: Option<bool>,
    binary_data_output: Option<bool>,
    /// Triton's request timeout, in microseconds.
    timeout: Option<u64>,
}

#[derive(Deserialize)]
struct InputJson {
    name: String,
    datatype: String,
    shape: Vec<i64>,
    #[serde(default)]
    parameters: Parameters,
    data: Option<codec::FlatData>,
}

#[derive(Deserialize)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: Parameters,
}

#[derive(Deserialize)]
struct RequestJson {
    #[serde(default)]
    id: String,
    #[serde(default)]
    parameters: Parameters,
    inputs: Vec<InputJson>,
    #[serde(default)]
    outputs: Vec<OutputJson>,
}

#[derive(Serialize)]
struct OutputParameters {
    binary_data_size: usize,
}

#[derive(Serialize)]
struct OutputReply<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<OutputParameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Json>,
}

#[derive(Serialize)]
struct Reply<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    id: &'a str,
    outputs: Vec<OutputReply<'a>>,
}

/// Which outputs go back as binary data.
struct Wanted {
    /// Per named output; empty when the request names none (all outputs, `all_binary`).
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
    let head: RequestJson = serde_json::from_slice(&body[..header_len])
        .map_err(|e| bad(format!("failed to parse the request JSON: {e}")))?;
    let mut binary = body.slice(header_len..);
    let max_bytes = server
        .config
        .live
        .tensor_max_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut inputs = Vec::with_capacity(head.inputs.len());
    for i in head.inputs {
        let dtype = inference::from_v2_type(&i.datatype).ok_or_else(|| {
            bad(format!(
                "input '{}' has an unknown datatype '{}'",
                i.name, i.datatype
            ))
        })?;
        let shape = codec::shape_of(&i.name, &i.shape).map_err(bad)?;
        let tensor = match i.parameters.binary_data_size {
            Some(size) => {
                let size = size as usize;
                if size > binary.len() {
                    return Err(bad(format!(
                        "input '{}' asks for {size} bytes of binary data, {} are left",
                        i.name,
                        binary.len()
                    )));
                }
                let raw = binary.split_to(size);
                codec::from_raw(&i.name, dtype, &shape, raw, max_bytes)
            }
            None => match &i.data {
                Some(data) => codec::from_json(&i.name, dtype, &shape, &data.0, max_bytes),
                None => Err(format!(
                    "input '{}' has neither 'data' nor binary data",
                    i.name
                )),
            },
        }
        .map_err(bad)?;
        inputs.push(Named {
            name: i.name,
            tensor,
        });
    }
    if !binary.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data are not claimed by any input",
            binary.len()
        )));
    }
    let all_binary = head.parameters.binary_data_output.unwrap_or(false);
    let wanted = Wanted {
        binary: head
            .outputs
            .iter()
            .map(|o| o.parameters.binary_data.unwrap_or(all_binary))
            .collect(),
        all_binary,
    };
    let timeout = head
        .parameters
        .timeout
        .filter(|&us| us > 0)
        .map(Duration::from_micros);
    Ok((
        Call {
            model: name.to_string(),
            version,
            id: head.id,
            inputs,
            outputs: head.outputs.into_iter().map(|o| o.name).collect(),
            timeout,
            user: None,
        },
        wanted,
    ))
}

async fn run_infer(
    server: Arc<Server>,
    name: String,
    version: &str,
    headers: HeaderMap,
    user: Option<Arc<crate::acl::User>>,
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
    let (mut call, wanted) = match parse_infer(&server, &name, version, &headers, body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    call.user = user;
    let id = call.id.clone();
    let answer = match inference::infer(&server, call).await {
        Ok(a) => a,
        Err(f) => return failure(f),
    };
    let mut blobs = Vec::new();
    let outputs = answer
        .outputs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            let binary = wanted.binary.get(i).copied().unwrap_or(wanted.all_binary);
            let (parameters, data) = if binary {
                let raw = codec::to_raw(&out.tensor);
                let size = raw.len();
                blobs.push(raw);
                (
                    Some(OutputParameters {
                        binary_data_size: size,
                    }),
                    None,
                )
            } else {
                (None, Some(codec::to_json(&out.tensor)))
            };
            OutputReply {
                name: &out.name,
                datatype: inference::v2_type(out.tensor.dtype()),
                shape: out.tensor.shape(),
                parameters,
                data,
            }
        })
        .collect();
    let reply = Reply {
        model_name: &name,
        model_version: answer.version.map(|v| v.to_string()),
        id: &id,
        outputs,
    };
    let head = serde_json::to_vec(&reply).unwrap_or_default();
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
    body.put_slice(&head);
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
    user: Option<Extension<Arc<crate::acl::User>>>,
    body: Body,
) -> Response {
    run_infer(s, name, "", headers, user.map(|u| u.0), body).await
}

async fn infer_v(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    user: Option<Extension<Arc<crate::acl::User>>>,
    body: Body,
) -> Response {
    run_infer(s, name, &version, headers, user.map(|u| u.0), body).await
}

/// An explanation request: the inputs as for inference (JSON data), optional background
/// rows for the explained input, and the method's parameters.
#[derive(Deserialize)]
struct ExplainJson {
    inputs: Vec<InputJson>,
    #[serde(default)]
    background: Option<InputJson>,
    #[serde(default)]
    parameters: ExplainParameters,
}

#[derive(Deserialize, Default)]
struct ExplainParameters {
    /// "kernelshap" (the default), "exact" or "occlusion".
    method: Option<String>,
    nsamples: Option<usize>,
    seed: Option<u64>,
    baseline: Option<f64>,
    /// The output explained, by index (default 0), and its class.
    target: Option<usize>,
    class: Option<usize>,
    /// The input explained, by index (default 0).
    features: Option<usize>,
}

fn json_tensor(server: &Server, i: InputJson) -> Result<Named, String> {
    let dtype = inference::from_v2_type(&i.datatype).ok_or_else(|| {
        format!(
            "input '{}' has an unknown datatype '{}'",
            i.name, i.datatype
        )
    })?;
    let shape = codec::shape_of(&i.name, &i.shape)?;
    let max_bytes = server
        .config
        .live
        .tensor_max_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let Some(data) = &i.data else {
        return Err(format!(
            "input '{}' needs 'data': explanations take JSON tensors",
            i.name
        ));
    };
    let tensor = codec::from_json(&i.name, dtype, &shape, &data.0, max_bytes)?;
    Ok(Named {
        name: i.name,
        tensor,
    })
}

fn parse_explain(
    server: &Server,
    name: &str,
    version: Option<u64>,
    body: &[u8],
) -> Result<inference::ExplainCall, String> {
    use crate::explain::Method;
    let head: ExplainJson = serde_json::from_slice(body)
        .map_err(|e| format!("failed to parse the request JSON: {e}"))?;
    let p = head.parameters;
    let method = match p.method.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("kernelshap") => Method::KernelShap {
            nsamples: p.nsamples,
            seed: p.seed,
        },
        Some("exact") => Method::Exact,
        Some("occlusion") => Method::Occlusion {
            baseline: p.baseline,
        },
        Some(other) => {
            return Err(format!(
                "unknown explanation method '{other}': use kernelshap, exact or occlusion"
            ))
        }
    };
    let inputs = head
        .inputs
        .into_iter()
        .map(|i| json_tensor(server, i))
        .collect::<Result<Vec<_>, _>>()?;
    let background = head
        .background
        .map(|b| json_tensor(server, b).map(|n| n.tensor))
        .transpose()?;
    Ok(inference::ExplainCall {
        model: name.to_string(),
        version,
        inputs,
        background,
        method,
        target: p.target.unwrap_or(0),
        class: p.class,
        features: p.features.unwrap_or(0),
        user: None,
    })
}

async fn run_explain(
    server: Arc<Server>,
    name: String,
    version: &str,
    user: Option<Arc<crate::acl::User>>,
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
    let mut call = match parse_explain(&server, &name, version, &body) {
        Ok(c) => c,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    call.user = user;
    let method = match &call.method {
        crate::explain::Method::Exact => "exact",
        crate::explain::Method::KernelShap { .. } => "kernelshap",
        crate::explain::Method::Occlusion { .. } => "occlusion",
    };
    match inference::explain(&server, call).await {
        Ok(t) => json_reply(json!({
            "model_name": name,
            "method": method,
            "outputs": [{
                "name": "attributions",
                "datatype": inference::v2_type(t.dtype()),
                "shape": t.shape(),
                "data": codec::to_json(&t),
            }],
        })),
        Err(f) => failure(f),
    }
}

async fn explain(
    State(s): State<Arc<Server>>,
    Path(name): Path<String>,
    user: Option<Extension<Arc<crate::acl::User>>>,
    body: Body,
) -> Response {
    run_explain(s, name, "", user.map(|u| u.0), body).await
}

async fn explain_v(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
    user: Option<Extension<Arc<crate::acl::User>>>,
    body: Body,
) -> Response {
    run_explain(s, name, &version, user.map(|u| u.0), body).await
}

/// Decodes a path segment's `%XX` escapes (model keys may hold any byte).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Authenticates every V2 request but the health probes (HTTP Basic or a Bearer token, as
/// [`super::request_user`] reads them) and checks the user's ACL rules for the model the
/// path names: inference as AI.MODELEXECUTE, the rest as AI.INFO; listings need AI.MODELLIST.
/// The user goes on to the handler, so router targets are checked as the request resolves.
pub async fn access(
    State(server): State<Arc<Server>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_string();
    if matches!(path.as_str(), "/v2/health/live" | "/v2/health/ready") {
        return next.run(req).await;
    }
    let Some(user) = super::header_user(&server, req.headers()) else {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "invalid username-password pair or user is disabled",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"locus\""),
        );
        return r;
    };
    let listing = matches!(path.as_str(), "/v2/models/stats" | "/v2/repository/index");
    if listing {
        if !super::user_may(&server, &user, &[Bytes::from_static(b"AI.MODELLIST")]) {
            return error(
                StatusCode::FORBIDDEN,
                "this user has no permissions to run the 'ai.modellist' command",
            );
        }
    } else if let Some(rest) = path.strip_prefix("/v2/models/") {
        let name = percent_decode(rest.split('/').next().unwrap_or(""));
        let infer = path.ends_with("/infer") || path.ends_with("/explain");
        if let Err(f) = inference::authorize(&server, Some(&user), &name, infer) {
            return failure(f);
        }
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}
