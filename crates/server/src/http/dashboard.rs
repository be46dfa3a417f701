//! The web dashboard at `/` on the HTTP port: a page and its scripts embedded in the binary
//! (uPlot vendored from npm, with its licence), and the small API they use:
//!
//! - `POST /api/command` runs one command (a JSON array of strings) as the client `dashboard`,
//!   through the same path as a RESP client's (command table, statistics, AOF, audit), so
//!   every action the page takes is a command that could have been typed into redis-cli;
//! - `PUT /api/models/{key}` stores the request body as an ONNX model (AI.MODELSTORE, with
//!   `tag`, `staged`, `batchsize` and `meta.NAME` query parameters);
//! - `GET /api/events` streams a snapshot of the server every second (server-sent events).
//!
//! With a password set, every path asks for it (HTTP Basic), as `/metrics` does.

use crate::acl::User;
use crate::inference;
use crate::server::reply::Reply;
use crate::server::{Outcome, Server};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const INDEX: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");
const UPLOT_JS: &str = include_str!("dashboard/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("dashboard/vendor/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("dashboard/vendor/uPlot.LICENSE");

/// The embedded files: path, content, content type.
const ASSETS: [(&str, &str, &str); 6] = [
    ("/", INDEX, "text/html; charset=utf-8"),
    ("/assets/app.js", APP_JS, "text/javascript"),
    ("/assets/app.css", APP_CSS, "text/css"),
    ("/assets/uPlot.iife.min.js", UPLOT_JS, "text/javascript"),
    ("/assets/uPlot.min.css", UPLOT_CSS, "text/css"),
    ("/assets/uPlot.LICENSE", UPLOT_LICENSE, "text/plain"),
];

pub fn routes() -> Router<Arc<Server>> {
    let mut router = Router::new()
        .route("/api/command", post(command))
        .route("/api/models/{key}", put(upload))
        .route("/api/events", get(events))
        .route("/api/loadtest", post(super::loadtest::run));
    for (path, body, content_type) in ASSETS {
        router = router.route(
            path,
            get(move |s: State<Arc<Server>>, h: HeaderMap| asset(s, h, body, content_type)),
        );
    }
    router
}

/// The header the page sends with every action. A cross-site form or script cannot add it
/// without a CORS preflight, which this server never grants: another site open in the same
/// browser cannot drive the server through the dashboard's API.
const ACTION_HEADER: &str = "x-locus-dashboard";

fn cross_site(headers: &HeaderMap) -> Option<Response> {
    (!headers.contains_key(ACTION_HEADER)).then(|| {
        super::v2::error(
            StatusCode::FORBIDDEN,
            "dashboard actions need the X-Locus-Dashboard header",
        )
    })
}

/// What every action checks: the user's credentials (when the default user needs a
/// password) and the dashboard's header. Actions then run as that user, under its ACL rules.
pub(super) fn guard(server: &Server, headers: &HeaderMap) -> Result<Arc<User>, Response> {
    let user = login(server, headers)?;
    match cross_site(headers) {
        Some(r) => Err(r),
        None => Ok(user),
    }
}

/// The user the credentials name, or HTTP Basic's challenge.
fn login(server: &Server, headers: &HeaderMap) -> Result<Arc<User>, Response> {
    super::header_user(server, headers)
        .ok_or_else(|| super::unauthorized("the dashboard needs a user name and password"))
}

async fn asset(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: &'static str,
    content_type: &'static str,
) -> Response {
    if let Err(r) = login(&server, &headers) {
        return r;
    }
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A reply as JSON: statuses and bulk strings as strings, maps as objects (when their keys
/// are strings), errors as `{"error": text}`.
pub fn reply_json(r: Reply) -> Json {
    match r {
        Reply::Status(s) => json!(s),
        Reply::StatusOwned(s) => json!(s),
        Reply::Error(e) => json!({ "error": e }),
        Reply::Int(i) => json!(i),
        Reply::Bulk(b) | Reply::Verbatim(b) => json!(String::from_utf8_lossy(&b)),
        Reply::Null | Reply::NullArray => Json::Null,
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) | Reply::Many(items) => {
            Json::Array(items.into_iter().map(reply_json).collect())
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            let keyed = pairs.iter().all(|(k, _)| {
                matches!(k, Reply::Bulk(_) | Reply::Status(_) | Reply::StatusOwned(_))
            });
            if keyed {
                let mut m = Map::new();
                for (k, v) in pairs {
                    if let Json::String(k) = reply_json(k) {
                        m.insert(k, reply_json(v));
                    }
                }
                Json::Object(m)
            } else {
                Json::Array(
                    pairs
                        .into_iter()
                        .map(|(k, v)| json!([reply_json(k), reply_json(v)]))
                        .collect(),
                )
            }
        }
        Reply::Double(d) => json!(d),
        Reply::HumanDouble(t) => json!(crate::util::parse_f64(&t).unwrap_or(0.0)),
        Reply::Bool(b) => json!(b),
    }
}

/// Runs one command as the dashboard's client and returns its reply: as `user`, under its
/// ACL rules, or on the server's own behalf (the snapshots' figures) without one.
pub async fn run(server: &Arc<Server>, user: Option<Arc<User>>, argv: Vec<Bytes>) -> Reply {
    let server2 = Arc::clone(server);
    // Commands may take a while (storing a model builds its session): off the async threads.
    let outcome = tokio::task::spawn_blocking(move || {
        let mut client = server2.clients.detached(0);
        if let Some(user) = user {
            client.set_user(user);
        }
        *client.info.name.lock() = Bytes::from_static(b"dashboard");
        client.proto = 3;
        let req = crate::server::protocol::Request::from_args(argv);
        server2.execute(&mut client, req)
    })
    .await;
    match outcome {
        Ok(Some(Outcome::Reply(r))) => r,
        Ok(Some(Outcome::Deferred(d))) => d.await,
        Ok(None) => Reply::Null,
        Err(e) => Reply::Error(format!("ERR {e}")),
    }
}

fn api_reply(r: Reply) -> Response {
    let failed = matches!(r, Reply::Error(_));
    let body = match reply_json(r) {
        Json::Object(m) if failed => Json::Object(m),
        v => json!({ "ok": v }),
    };
    let status = if failed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    super::json_response(status, &body)
}

async fn command(State(server): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let user = match guard(&server, &headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let argv: Vec<String> = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return super::v2::error(
                StatusCode::BAD_REQUEST,
                format!("a command is a JSON array of strings: {e}"),
            )
        }
    };
    if argv.is_empty() {
        return super::v2::error(StatusCode::BAD_REQUEST, "an empty command");
    }
    let argv = argv
        .into_iter()
        .map(|a| Bytes::from(a.into_bytes()))
        .collect();
    api_reply(run(&server, Some(user), argv).await)
}

async fn upload(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    body: Body,
) -> Response {
    let user = match guard(&server, &headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let limit = server.config.get_i64("http-max-body").max(0) as usize;
    let Ok(blob) = axum::body::to_bytes(body, limit).await else {
        return super::v2::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the model is larger than http-max-body ({limit} bytes)"),
        );
    };
    let device = q.get("device").map_or("CPU", String::as_str).to_string();
    let mut argv: Vec<Bytes> = vec![
        Bytes::from_static(b"AI.MODELSTORE"),
        Bytes::from(key.into_bytes()),
        Bytes::from_static(b"ONNX"),
        Bytes::from(device.into_bytes()),
    ];
    let mut word = |w: &str| argv.push(Bytes::from(w.to_string().into_bytes()));
    if let Some(tag) = q.get("tag").filter(|t| !t.is_empty()) {
        word("TAG");
        word(tag);
    }
    if let Some(b) = q.get("batchsize").filter(|b| !b.is_empty() && *b != "0") {
        word("BATCHSIZE");
        word(b);
    }
    if q.get("staged").is_some_and(|s| s == "1" || s == "true") {
        word("STAGED");
    }
    let meta: Vec<(&String, &String)> = q
        .iter()
        .filter(|(k, v)| k.starts_with("meta.") && !v.is_empty())
        .collect();
    if !meta.is_empty() {
        word("META");
        for (k, v) in meta {
            word(&k["meta.".len()..]);
            word(v);
        }
    }
    argv.push(Bytes::from_static(b"BLOB"));
    argv.push(blob);
    api_reply(run(&server, Some(user), argv).await)
}

/// INFO's fields, for the snapshot.
fn info_fields(text: &str) -> Map<String, Json> {
    let wanted = [
        "redis_version",
        "uptime_in_seconds",
        "connected_clients",
        "used_memory",
        "used_memory_peak",
        "total_commands_processed",
        "instantaneous_ops_per_sec",
        "total_net_input_bytes",
        "keyspace_hits",
        "keyspace_misses",
    ];
    let mut m = Map::new();
    for line in text.lines() {
        if let Some((k, v)) = line.trim().split_once(':') {
            if wanted.contains(&k) {
                let v = v
                    .parse::<f64>()
                    .map(|n| json!(n))
                    .unwrap_or_else(|_| json!(v));
                m.insert(k.to_string(), v);
            }
        }
    }
    m
}

/// One snapshot of the server: INFO's figures, each model's counters and latency quantiles,
/// and the number of alerts raised.
async fn snapshot(server: &Arc<Server>) -> Json {
    let info = match run(server, None, vec![Bytes::from_static(b"INFO")]).await {
        Reply::Bulk(b) | Reply::Verbatim(b) => info_fields(&String::from_utf8_lossy(&b)),
        _ => Map::new(),
    };
    let mut models = Vec::new();
    for (key, is_router) in inference::model_keys(server) {
        let name = String::from_utf8_lossy(&key).into_owned();
        let Ok(d) = inference::describe(server, &name, None) else {
            continue;
        };
        let s = &d.signature.stats;
        let total = s.total_us.snapshot();
        models.push(json!({
            "key": name,
            "router": is_router,
            "version": d.version,
            "calls": s.calls.load(Ordering::Relaxed),
            "errors": s.errors.load(Ordering::Relaxed),
            "samples": s.samples.load(Ordering::Relaxed),
            "runs": s.batch_size.snapshot().count,
            "p50_us": total.quantile(0.5),
            "p99_us": total.quantile(0.99),
            "mean_us": if total.count > 0 { total.sum as f64 / total.count as f64 } else { 0.0 },
        }));
    }
    json!({
        "time_ms": crate::util::now_ms(),
        "info": info,
        "models": models,
        "alerts": crate::cmd::routers::ALERTS.load(Ordering::Relaxed),
    })
}

async fn events(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(r) = login(&server, &headers) {
        return r;
    }
    let stream = futures_util::stream::unfold((server, true), |(server, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let data = snapshot(&server).await.to_string();
        let event: Result<Event, Infallible> = Ok(Event::default().event("snapshot").data(data));
        Some((event, (server, false)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
