//! The WebSocket to a signaling server: `ws://` over TCP, `wss://` over
//! TLS (rustls: the web's roots plus the application's own, as for TURN
//! over TLS).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A byte stream: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An open WebSocket.
pub(crate) type Ws = WebSocketStream<Box<dyn Io>>;

/// Opens a WebSocket to `url` (`ws://` or `wss://`).
pub(crate) async fn connect(url: &str, tls: Arc<rustls::ClientConfig>, config: WebSocketConfig) -> Result<Ws, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(format!("bad URL {url:?}: not ws:// or wss://")),
    };
    let host = uri.host().ok_or_else(|| format!("bad URL {url:?}: no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp =
        TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = if secure {
        let name =
            rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| format!("bad host {host:?}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}:{port} failed: {e}"))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}
