//! One task per connection: read, frame every complete request in the buffer, execute them in
//! order, and write all their replies with one write, so that pipelines cost one syscall pair.

use super::client::Control;
use super::io_pool::IoPool;
use super::protocol::{frame_request, Framed, Limits};
use super::{Outcome, Server};
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

const READ_CHUNK: usize = 16 * 1024;

/// A TCP connection just accepted, taken off this runtime to be re-registered with the event
/// loop that will own it.
struct Accepted {
    stream: std::net::TcpStream,
    peer: String,
    laddr: String,
    fd: i32,
}

/// Waits for the next connection (an accept error is logged and retried).
async fn accept_next(listener: &TcpListener) -> Accepted {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let laddr = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        if let Ok(stream) = stream.into_std() {
            return Accepted {
                stream,
                peer: peer.to_string(),
                laddr,
                fd,
            };
        }
    }
}

pub async fn accept_tcp(server: Arc<Server>, pool: Arc<IoPool>, listener: TcpListener) {
    loop {
        let Accepted {
            stream: std_stream,
            peer,
            laddr,
            fd,
        } = accept_next(&listener).await;
        spawn_client(&server, &pool, peer, laddr, fd, false, move || async move {
            tokio::net::TcpStream::from_std(std_stream)
        });
    }
}

/// Accepts on the TLS port: the handshake runs on the event loop that will own the
/// connection (bounded by a timeout, so a silent peer holds nothing up), then the connection
/// is served as a plain one is.
pub async fn accept_tls(server: Arc<Server>, pool: Arc<IoPool>, listener: TcpListener) {
    loop {
        let Accepted {
            stream: std_stream,
            peer,
            laddr,
            fd,
        } = accept_next(&listener).await;
        let Some(acceptor) = server.tls.read().clone() else {
            continue;
        };
        spawn_client(
            &server,
            &pool,
            peer.clone(),
            laddr,
            fd,
            false,
            move || async move {
                let tcp = tokio::net::TcpStream::from_std(std_stream)?;
                match tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(tls)) => Ok(tls),
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake with {peer} failed: {e}");
                        Err(e)
                    }
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    )),
                }
            },
        );
    }
}

pub async fn accept_unix(server: Arc<Server>, pool: Arc<IoPool>, listener: UnixListener) {
    let path = server.config.get("unixsocket");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let Ok(std_stream) = stream.into_std() else {
            continue;
        };
        spawn_client(
            &server,
            &pool,
            format!("{path}:0"),
            path.clone(),
            fd,
            true,
            move || async move { tokio::net::UnixStream::from_std(std_stream) },
        );
    }
}

fn spawn_client<S, F, O>(
    server: &Arc<Server>,
    pool: &IoPool,
    addr: String,
    laddr: String,
    fd: i32,
    unix: bool,
    open: F,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce() -> O + Send + 'static,
    O: std::future::Future<Output = std::io::Result<S>> + Send,
{
    server
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    let max = server.config.live.maxclients.load(Ordering::Relaxed);
    let server = server.clone();
    pool.spawn(async move {
        let Ok(mut stream) = open().await else { return };
        let _watched = super::io_pool::watch(fd);
        if server.clients.len() >= max {
            server
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
            return;
        }
        let peer = (!unix)
            .then(|| addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
            .flatten();
        if !unix && server.protected_refuses(peer) {
            server
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            let _ = stream.write_all(super::PROTECTED_DENIED.as_bytes()).await;
            return;
        }
        let authenticated = !server.acl.auth_required.load(Ordering::Relaxed);
        let (client, ctrl) = server.clients.register(
            addr,
            laddr,
            fd,
            unix,
            server.acl.default_user(),
            authenticated,
        );
        let mut client = client;
        let id = client.id;
        tracing::debug!("accepted client {id}");
        if let Err(e) = run(&server, stream, &mut client, ctrl).await {
            tracing::debug!("client {id} closed: {e}");
        }
        crate::cmd::transactions::unwatch_all(&server, &mut client);
        crate::cmd::pubsub::unsubscribe_all(&server, &mut client);
        crate::tracking::disable(&client.info);
        server.clients.unregister(id);
    });
}

async fn run<S>(
    server: &Arc<Server>,
    mut stream: S,
    client: &mut super::client::Client,
    mut ctrl: tokio::sync::mpsc::UnboundedReceiver<Control>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    let mut need = 1usize;
    let live = &server.config.live;
    loop {
        // Execute every complete request already buffered.
        client.begin_batch();
        while inbuf.len() >= need {
            let limits = Limits {
                max_bulk: live.proto_max_bulk_len.load(Ordering::Relaxed),
                authenticated: client.authenticated,
            };
            let buffered = inbuf.len();
            match frame_request(&mut inbuf, &limits) {
                Ok(Framed::Request(argv)) => {
                    need = 1;
                    if argv.is_empty() {
                        continue;
                    }
                    // While a command runs, CLIENT LIST's qbuf counts it and what follows it,
                    // as Redis's query buffer still holds them.
                    client.info.qbuf.store(buffered, Ordering::Relaxed);
                    match server.execute(client, argv) {
                        None => {}
                        Some(Outcome::Reply(r)) => r.encode(client.proto, &mut out),
                        Some(Outcome::Deferred(fut)) => {
                            // Flush what is ready, then wait for this reply in pipeline order.
                            durable(server, client).await;
                            flush(server, &client.info, &mut stream, &mut out).await?;
                            // While it waits (a model run, a blocked pop), keep reading: a
                            // client that disconnects or is killed drops the future, which
                            // takes a blocked client out of its queues.
                            let mut fut = fut;
                            // Invalidations come after the reply they wait behind.
                            let mut held = Vec::new();
                            let r = loop {
                                tokio::select! {
                                    r = &mut fut => break r,
                                    n = stream.read_buf(&mut inbuf) => {
                                        let n = n?;
                                        if n == 0 {
                                            return Ok(());
                                        }
                                        server.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                                        if inbuf.len() > live.client_query_buffer_limit.load(Ordering::Relaxed) {
                                            return Ok(());
                                        }
                                    }
                                    msg = ctrl.recv() => match msg {
                                        None | Some(Control::Kill) => return Ok(()),
                                        Some(Control::Invalidate(p)) => held.push(p),
                                        Some(m) => {
                                            write_message(m, client, &mut out);
                                        }
                                    },
                                }
                            };
                            // What it wrote was logged when it finished.
                            client.aof_seq = client.aof_seq.max(server.aof.appended());
                            r.encode(client.proto, &mut out);
                            for p in held {
                                p.encode(client.proto, &mut out);
                            }
                            client.begin_batch();
                        }
                    }
                    if client.close_after_reply {
                        client.info.mark_closing();
                        client.end_batch(server);
                        durable(server, client).await;
                        flush(server, &client.info, &mut stream, &mut out).await?;
                        return Ok(());
                    }
                }
                Ok(Framed::Incomplete { need: n }) => {
                    need = n;
                    break;
                }
                Err(e) => {
                    tracing::debug!("protocol error from client {}: {}", client.id, e.0);
                    super::reply::Reply::err(format!("ERR Protocol error: {}", e.0))
                        .encode(client.proto, &mut out);
                    client.end_batch(server);
                    durable(server, client).await;
                    flush(server, &client.info, &mut stream, &mut out).await?;
                    return Ok(());
                }
            }
        }
        let now = client.end_batch(server);
        super::io_pool::note_served();
        // A loop kept busy by other clients still hands queued model runs over within half a
        // millisecond.
        crate::engine::tell_overdue(now);
        durable(server, client).await;
        flush(server, &client.info, &mut stream, &mut out).await?;
        client.info.qbuf.store(inbuf.len(), Ordering::Relaxed);
        if inbuf.len() > live.client_query_buffer_limit.load(Ordering::Relaxed) {
            tracing::warn!(
                "Closing client {} that reached max query buffer length",
                client.id
            );
            return Ok(());
        }
        if inbuf.capacity() - inbuf.len() < READ_CHUNK / 4 {
            inbuf.reserve(READ_CHUNK.max(need.saturating_sub(inbuf.len())));
        }
        let idle = live.timeout_secs.load(Ordering::Relaxed);
        let read = async {
            if idle > 0 {
                match tokio::time::timeout(Duration::from_secs(idle), stream.read_buf(&mut inbuf))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Ok(0),
                }
            } else {
                stream.read_buf(&mut inbuf).await
            }
        };
        tokio::select! {
            n = read => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                server.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                // What was queued for this client before its request arrived goes out before
                // the reply, as Redis writes a message when it happens (an invalidation
                // precedes the reply of the read that follows the change).
                while let Ok(m) = ctrl.try_recv() {
                    if !write_message(m, client, &mut out) {
                        return Ok(());
                    }
                }
            }
            msg = ctrl.recv() => match msg {
                None | Some(Control::Kill) => {
                    durable(server, client).await;
                    flush(server, &client.info, &mut stream, &mut out).await?;
                    return Ok(());
                }
                Some(m) => {
                    write_message(m, client, &mut out);
                    // Take every message already queued before writing them in one go.
                    while let Ok(m) = ctrl.try_recv() {
                        if !write_message(m, client, &mut out) {
                            return Ok(());
                        }
                    }
                }
            },
        }
    }
}

/// Encodes a message queued for the client; false for a kill.
fn write_message(m: Control, client: &super::client::Client, out: &mut BytesMut) -> bool {
    match m {
        Control::Message(r, size) => {
            client.info.pending_out.fetch_sub(size, Ordering::Relaxed);
            r.encode(client.proto, out);
        }
        Control::Push(r) | Control::Invalidate(r) => r.encode(client.proto, out),
        Control::Kill => return false,
    }
    true
}

/// Under `appendfsync always`, waits until this client's writes are on disk: a write is
/// acknowledged only once it is durable.
async fn durable(server: &Arc<Server>, client: &super::client::Client) {
    if server.aof.must_wait(client.aof_seq) {
        server.aof.sync_through(client.aof_seq).await;
    }
}

async fn flush<S: AsyncWrite + Unpin>(
    server: &Server,
    info: &super::client::ClientInfo,
    stream: &mut S,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    // A client that stopped reading can still be killed (output limits, CLIENT KILL).
    // Biased: a reply that can be written goes out even when the kill is already signalled
    // (CLIENT KILL of oneself answers before closing).
    tokio::select! {
        biased;
        r = stream.write_all(out) => r?,
        _ = info.kill_signal.notified() => {
            return Err(std::io::Error::other("client killed"));
        }
    }
    server
        .stats
        .net_output_bytes
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    out.clear();
    // Do not keep a huge buffer around after one large reply.
    if out.capacity() > 1 << 20 {
        *out = BytesMut::with_capacity(READ_CHUNK);
    }
    Ok(())
}
