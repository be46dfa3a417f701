//! The HTTP face: `/metrics` (Prometheus text format) and `/healthz`, on `http-port` at the
//! `bind` addresses. It runs on a thread and runtime of its own, so a scrape never takes a
//! turn on the RESP event loops; the listeners are bound at start-up, so a taken port stops
//! the start with a clear message, as the RESP port does.

pub mod dashboard;
pub mod loadtest;
pub mod metrics;
pub mod tls;
pub mod v2;

use crate::server::Server;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use std::net::SocketAddr;
use std::net::TcpListener;
use std::sync::Arc;

/// The HTTP and gRPC connections in one level-triggered epoll set, asked without blocking
/// whether any has unread data. The HTTP threads, as engine event loops, watch for results
/// for a moment before they sleep; a request waiting on a connection ends that watch, as a
/// RESP loop's own connections end its watch.
struct Arrivals(i32);

impl Arrivals {
    fn get() -> &'static Arrivals {
        static SET: std::sync::OnceLock<Arrivals> = std::sync::OnceLock::new();
        // SAFETY: plain system call; a negative result means no set (the watch then ends at
        // once, as if data had come).
        SET.get_or_init(|| Arrivals(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }))
    }

    fn watch(&self, fd: i32) {
        if self.0 >= 0 {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: fd as u64,
            };
            // SAFETY: both descriptors are open; the kernel drops the socket from the set
            // when it closes. A failure only means the watch is not cut short for it.
            unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        }
    }

    fn any(&self) -> bool {
        if self.0 < 0 {
            return true;
        }
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }];
        // SAFETY: `ev` has room for the one event asked for.
        unsafe { libc::epoll_wait(self.0, ev.as_mut_ptr(), 1, 0) != 0 }
    }
}

/// Binds `port` on every `bind` address (none when the port is 0). Errors name the address
/// that could not be bound.
fn bind_all(server: &Server, port: i64, what: &str) -> Result<Vec<TcpListener>, String> {
    let mut listeners = Vec::new();
    if port == 0 {
        return Ok(listeners);
    }
    for addr in server.config.get("bind").split_whitespace() {
        // Redis's `-` prefix: an address that may be missing (IPv6 on a host without it).
        let (optional, host) = match addr.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, addr),
        };
        let sock = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match TcpListener::bind(&sock) {
            Ok(l) => {
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                listeners.push(l);
            }
            Err(_) if optional => {}
            Err(e) => {
                return Err(format!(
                    "Could not create the {what} listener on {sock}: {e}"
                ))
            }
        }
    }
    if listeners.is_empty() {
        return Err(format!(
            "Could not create any {what} listener on port {port}"
        ));
    }
    Ok(listeners)
}

/// Binds the HTTP listeners (`http-port`: metrics, health, the V2 REST API) and the gRPC ones
/// (`grpc-port`: the V2 gRPC service) and serves them on a runtime of their own, so that this
/// traffic never takes a turn on the RESP event loops. The listeners are bound at start-up, so
/// a taken port stops the start with a clear message, as the RESP port does.
pub fn start(server: &Arc<Server>) -> Result<(), String> {
    let http = bind_all(server, server.config.get_i64("http-port"), "HTTP")?;
    let grpc = bind_all(server, server.config.get_i64("grpc-port"), "gRPC")?;
    if http.is_empty() && grpc.is_empty() {
        return Ok(());
    }
    if !http.is_empty() {
        tracing::info!(
            "HTTP (metrics, health, KServe V2 REST) on port {}",
            server.config.get_i64("http-port")
        );
    }
    if !grpc.is_empty() {
        tracing::info!(
            "gRPC (KServe V2) on port {}",
            server.config.get_i64("grpc-port")
        );
    }
    // `http-threads` 0: half the cores, so that RESP's event loops and the run queues keep the
    // rest (one thread on two cores, which measured best there).
    let threads = match server.config.get_i64("http-threads") {
        0 => std::thread::available_parallelism()
            .map(|n| n.get() / 2)
            .unwrap_or(1)
            .max(1),
        n => n as usize,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(threads);
    // The HTTP threads are event loops for the engine, as the RESP loops are: results come back
    // through a relay, and a thread with runs in flight watches for them briefly instead of
    // sleeping (see `engine::event_loop_idle`), so a lone client's reply goes out at once.
    let rt = builder
        .thread_name("locus-http")
        .on_thread_park(|| crate::engine::event_loop_idle(&|| Arrivals::get().any()))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // `tls-http yes`: both ports serve TLS only, with the RESP TLS port's certificates (HTTP/2
    // and HTTP/1.1 offered over ALPN; gRPC needs HTTP/2).
    let tls = if server.config.get_bool("tls-http") {
        let c = &server.config;
        Some((
            crate::server::tls::server_config(c, &[b"h2", b"http/1.1"])?,
            crate::server::tls::server_config(c, &[b"h2"])?,
        ))
    } else {
        None
    };
    let server = Arc::clone(server);
    std::thread::Builder::new()
        .name("locus-http".into())
        .spawn(move || {
            rt.block_on(async move {
                let app = Router::new()
                    .route("/metrics", get(metrics_page))
                    .route("/healthz", get(health))
                    .merge(
                        v2::routes().route_layer(axum::middleware::from_fn_with_state(
                            server.clone(),
                            v2::access,
                        )),
                    )
                    .merge(dashboard::routes())
                    .with_state(Arc::clone(&server))
                    .layer(axum::middleware::from_fn_with_state(
                        server.clone(),
                        protected_mode,
                    ));
                let mut tasks = Vec::new();
                for l in http {
                    let app = app.clone();
                    let tls = tls.as_ref().map(|t| t.0.clone());
                    tasks.push(tokio::spawn(async move {
                        match tokio::net::TcpListener::from_std(l) {
                            Ok(l) if tls.is_some() => {
                                let config = tls.expect("checked");
                                match tls::TlsListener::new(l, config, on_accept) {
                                    Ok(l) => {
                                        // Tapped (doing nothing) only so that axum hands the
                                        // peer's address to protected mode.
                                        let l = l.tap_io(|_| {});
                                        let app =
                                            app.into_make_service_with_connect_info::<SocketAddr>();
                                        if let Err(e) = axum::serve(l, app).await {
                                            tracing::warn!("HTTPS listener stopped: {e}");
                                        }
                                    }
                                    Err(e) => tracing::warn!("HTTPS listener: {e}"),
                                }
                            }
                            Ok(l) => {
                                // Replies go out at once: no Nagle delay behind a client's ACK.
                                let l = l.tap_io(|tcp| {
                                    let _ = tcp.set_nodelay(true);
                                    Arrivals::get().watch(std::os::fd::AsRawFd::as_raw_fd(tcp));
                                });
                                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                                if let Err(e) = axum::serve(l, app).await {
                                    tracing::warn!("HTTP listener stopped: {e}");
                                }
                            }
                            Err(e) => tracing::warn!("HTTP listener: {e}"),
                        }
                    }));
                }
                for l in grpc {
                    let svc = crate::grpc::service(Arc::clone(&server));
                    let tls = tls.as_ref().map(|t| t.1.clone());
                    tasks.push(tokio::spawn(async move {
                        match tokio::net::TcpListener::from_std(l) {
                            Ok(l) if tls.is_some() => {
                                let incoming = tls::incoming(l, tls.expect("checked"), on_accept);
                                if let Err(e) = tonic::transport::Server::builder()
                                    .add_service(svc)
                                    .serve_with_incoming(incoming)
                                    .await
                                {
                                    tracing::warn!("gRPC TLS listener stopped: {e}");
                                }
                            }
                            Ok(l) => {
                                use futures_util::StreamExt;
                                let incoming = tonic::transport::server::TcpIncoming::from(l)
                                    .with_nodelay(Some(true))
                                    .inspect(|conn| {
                                        if let Ok(tcp) = conn {
                                            Arrivals::get()
                                                .watch(std::os::fd::AsRawFd::as_raw_fd(tcp));
                                        }
                                    });
                                if let Err(e) = tonic::transport::Server::builder()
                                    .add_service(svc)
                                    .serve_with_incoming(incoming)
                                    .await
                                {
                                    tracing::warn!("gRPC listener stopped: {e}");
                                }
                            }
                            Err(e) => tracing::warn!("gRPC listener: {e}"),
                        }
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Protected mode on the HTTP face: with `protected-mode yes` and no password for the default
/// user, requests from other hosts get 403 with the reason, except the health checks (which
/// reveal nothing, and which orchestrators send from outside).
async fn protected_mode(
    State(server): State<Arc<Server>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let health = matches!(
        req.uri().path(),
        "/healthz" | "/v2/health/live" | "/v2/health/ready"
    );
    if !health && server.protected_refuses(peer) {
        return json_response(
            StatusCode::FORBIDDEN,
            &serde_json::json!({ "error": crate::server::PROTECTED_HTTP }),
        );
    }
    next.run(req).await
}

/// What each HTTP or gRPC connection gets at accept: no Nagle delay behind a client's ACK, and
/// a place in the event loops' watch for arrivals.
fn on_accept(tcp: &tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
    Arrivals::get().watch(std::os::fd::AsRawFd::as_raw_fd(tcp));
}

/// A JSON body with its status: every JSON answer of the HTTP face (health, the V2 API, the
/// dashboard's API) goes out through here.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// 503 while the server loads its dataset, 200 otherwise.
pub fn loading_status(server: &Server) -> (bool, StatusCode) {
    let loading = server.loading.load(std::sync::atomic::Ordering::Relaxed);
    let status = if loading {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (loading, status)
}

async fn health(State(server): State<Arc<Server>>) -> Response {
    let (loading, status) = loading_status(&server);
    let body = serde_json::json!({
        "status": if loading { "loading" } else { "ok" },
        "version": crate::LOCUS_VERSION,
    });
    json_response(status, &body)
}

/// The ACL user an HTTP or gRPC request acts as, from its `Authorization` value: HTTP Basic
/// (`user:password`; an empty user name means `default`), or a Bearer token, which is a
/// user's password (`ACL GENPASS` makes good ones). Without credentials the request acts as
/// the default user when that needs no password. `None`: the credentials are wrong, or
/// missing where they are needed.
pub fn request_user(server: &Server, authorization: Option<&str>) -> Option<Arc<crate::acl::User>> {
    let acl = &server.acl;
    let Some(auth) = authorization else {
        return (!acl.auth_required.load(std::sync::atomic::Ordering::Relaxed))
            .then(|| acl.default_user());
    };
    if let Some(token) = auth.strip_prefix("Bearer ") {
        return acl.authenticate_token(token.trim().as_bytes());
    }
    let b64 = auth.strip_prefix("Basic ")?;
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let at = raw.iter().position(|&c| c == b':')?;
    let (user, pass) = (&raw[..at], &raw[at + 1..]);
    let user = if user.is_empty() {
        &b"default"[..]
    } else {
        user
    };
    acl.authenticate(user, pass)
}

/// The request's user, from its headers.
pub fn header_user(server: &Server, headers: &HeaderMap) -> Option<Arc<crate::acl::User>> {
    request_user(
        server,
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

/// Whether `user` may run the command `argv` (its ACL rules, keys included).
pub fn user_may(server: &Server, user: &crate::acl::User, argv: &[bytes::Bytes]) -> bool {
    match server.commands.resolve(argv) {
        Ok((cmd, _)) => crate::acl::check(&user.rules(), &cmd, argv).is_ok(),
        Err(_) => false,
    }
}

/// HTTP Basic's challenge.
pub fn unauthorized(what: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"locus\"")],
        format!("{what}\n"),
    )
        .into_response()
}

/// Whether the request may read the metrics: always with `metrics-public yes`, otherwise as
/// a user allowed to run INFO.
fn authorized(server: &Server, headers: &HeaderMap) -> bool {
    if server.config.get("metrics-public") == "yes" {
        return true;
    }
    header_user(server, headers)
        .is_some_and(|u| user_may(server, &u, &[bytes::Bytes::from_static(b"INFO")]))
}

async fn metrics_page(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if !authorized(&server, &headers) {
        return unauthorized("metrics need a user allowed to run INFO (or metrics-public yes)");
    }
    // OpenMetrics when the scraper asks for it (Prometheus does), the classic text otherwise.
    let open = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let body = tokio::task::spawn_blocking(move || {
        let text = metrics::render(&server);
        if open {
            metrics::to_openmetrics(&text)
        } else {
            text
        }
    })
    .await
    .unwrap_or_default();
    let content_type = if open {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
