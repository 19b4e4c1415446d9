//! HTTP routes on the server's one port: `/ws`, `/healthz`, `/metrics`, and
//! the page: `/`, `/app.js` and the browser library under `/pkg/`.

use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower_service::Service as _;

use crate::connection;
use crate::origin::origin_of;
use crate::rate::TokenBucket;
use crate::shared::Shared;

/// Accepts connections until `shutdown` resolves, each served over HTTP/1.1
/// with a deadline for its request headers (no slowloris) and upgrades to
/// WebSocket; the client's address goes to the handlers as [`ConnectInfo`].
/// At shutdown, connections still reading a request finish it and close.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let result = loop {
        let (tcp, addr) = tokio::select! {
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if matches!(e.kind(), ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted) => continue,
                // Out of file descriptors, buffers or memory: wait for some to free.
                Err(e) if matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105)) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => break Err(e),
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let stopped = stopped.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(tcp, addr, router, header_timeout, stopped).await,
                // The handshake counts against the header deadline.
                Some(tls) => match tokio::time::timeout(header_timeout, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => serve_connection(stream, addr, router, header_timeout, stopped).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, %addr, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                },
            }
        });
    };
    let _ = stop.send(true);
    result
}

/// Serves one connection (plain or TLS) over HTTP/1.1 until it ends or the
/// server stops.
async fn serve_connection<I>(
    io: I,
    addr: SocketAddr,
    router: Router,
    header_timeout: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        router.clone().call(req.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, %addr, "HTTP connection ended");
            }
            return;
        }
        _ = stopped.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
    }
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, %addr, "HTTP connection ended");
    }
}

/// Bytes tungstenite reads from the socket at once: small, because an idle
/// connection keeps this buffer (signaling frames are mostly under 1 KiB).
const READ_BUFFER: usize = 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/pkg/{file}", get(pkg))
        .with_state(shared)
}

/// A counted connection slot, in all and for its address, released when
/// dropped: when the connection ends, or when the upgrade never completes.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    origin: Option<String>,
    /// The address's read budget, shared by its connections.
    pub(crate) text_bytes: Option<Arc<Mutex<TokenBucket>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(origin) = &self.origin {
            self.shared.release_origin(origin);
        }
        if self.shared.open_conns.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.all_closed.notify_waiters();
        }
    }
}

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    if *shared.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "server shutting down").into_response();
    }
    let max = shared.config.max_connections;
    if shared.open_conns.fetch_add(1, Ordering::AcqRel) >= max {
        shared.open_conns.fetch_sub(1, Ordering::AcqRel);
        shared.metrics.error("server_full");
        return (StatusCode::SERVICE_UNAVAILABLE, "server full: connection limit reached").into_response();
    }
    let mut slot = Slot { shared: shared.clone(), origin: None, text_bytes: None };
    let origin = origin_of(addr.ip());
    let Some(text_bytes) = shared.claim_origin(&origin) else {
        shared.metrics.error("origin_full");
        let message = "too many connections from your address";
        return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    };
    slot.origin = Some(origin);
    slot.text_bytes = Some(text_bytes);
    // The transport accepts up to twice the protocol limit so that a frame a
    // little too large gets a `too_large` answer; beyond that the connection
    // is closed with 1009.
    let transport_max = shared.config.limits.max_frame_bytes as usize * 2;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(shared.config.max_outbound_bytes.max(transport_max))
        .max_message_size(transport_max)
        .max_frame_size(transport_max)
        .on_upgrade(move |socket| connection::run(socket, shared, slot, addr))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.refresh_gauges();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], shared.metrics.render())
        .into_response()
}

async fn index() -> Html<&'static str> {
    Html(include_str!("page/index.html"))
}

async fn app_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("page/app.js")).into_response()
}

/// The browser library's two files, from [`ServerConfig::web_pkg`](crate::ServerConfig::web_pkg).
async fn pkg(State(shared): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let kind = match file.as_str() {
        "switchboard.js" => "text/javascript; charset=utf-8",
        "switchboard_bg.wasm" => "application/wasm",
        _ => return (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    };
    let Some(dir) = &shared.config.web_pkg else {
        return (StatusCode::NOT_FOUND, "this server has no browser library (serve --web-pkg DIR)\n").into_response();
    };
    match tokio::fs::read(dir.join(&file)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], bytes).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, format!("{file}: {e}\n")).into_response(),
    }
}
