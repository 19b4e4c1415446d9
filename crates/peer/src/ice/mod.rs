//! ICE servers, transport policy and candidate gathering.
//!
//! A node takes STUN/TURN servers from the signaling server's `welcome`
//! (with time-limited TURN credentials) and from
//! [`NodeBuilder::ice_servers`](crate::NodeBuilder::ice_servers). Each link
//! gathers host candidates from its sockets, server-reflexive ones by STUN,
//! and relayed ones by TURN over UDP, TCP or TLS (`turns:`).

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod gather;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod tls;
pub(crate) mod url;

#[cfg(not(target_arch = "wasm32"))]
use std::net::SocketAddr;

#[cfg(not(target_arch = "wasm32"))]
use url::Scheme;
use url::ServerUrl;
pub use url::UrlError;

/// Which candidates a link may use (WebRTC's `iceTransportPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IcePolicy {
    /// Host, server-reflexive and relayed candidates; relayed ones join when
    /// direct checks have not succeeded within the relay delay.
    #[default]
    All,
    /// Relayed candidates only: the peer never learns this host's addresses.
    Relay,
}

/// One STUN or TURN server with its credentials, shaped like WebRTC's `RTCIceServer`.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    pub username: Option<String>,
    /// TURN password.
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer").field("urls", &self.urls).field("username", &self.username).finish_non_exhaustive()
    }
}

impl IceServer {
    /// A server without credentials (STUN).
    pub fn stun(url: impl Into<String>) -> Self {
        IceServer { urls: vec![url.into()], username: None, credential: None }
    }

    /// A TURN server with long-term credentials.
    pub fn turn(url: impl Into<String>, username: impl Into<String>, credential: impl Into<String>) -> Self {
        IceServer { urls: vec![url.into()], username: Some(username.into()), credential: Some(credential.into()) }
    }

    /// Checks every URL.
    pub fn validate(&self) -> Result<(), UrlError> {
        self.urls.iter().try_for_each(|u| ServerUrl::parse(u).map(drop))
    }
}

impl From<switchboard_proto::IceServer> for IceServer {
    fn from(s: switchboard_proto::IceServer) -> Self {
        IceServer { urls: s.urls, username: s.username, credential: s.credential }
    }
}

/// Resolves `servers` to addresses; URLs that do not parse or resolve are
/// skipped with a log line (one bad entry must not stop the others).
/// The servers the application named (`own`) come first, then the ones the
/// signaling server handed out.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) async fn resolve(own: &[IceServer], handed: &[switchboard_proto::IceServer]) -> Vec<gather::Server> {
    let handed: Vec<IceServer> = handed.iter().cloned().map(IceServer::from).collect();
    let mut out = Vec::new();
    for s in own.iter().chain(&handed) {
        for u in &s.urls {
            let url = match ServerUrl::parse(u) {
                Ok(url) => url,
                Err(e) => {
                    tracing::warn!(error = %e, "ICE server skipped");
                    continue;
                }
            };
            let turn = match (url.scheme, &s.username, &s.credential) {
                (Scheme::Stun, ..) => None,
                (_, Some(u), Some(p)) => Some(gather::Credentials { username: u.clone(), password: p.clone() }),
                _ => {
                    tracing::warn!(%url, "TURN server without credentials skipped");
                    continue;
                }
            };
            let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((url.host.as_str(), url.port)).await {
                Ok(a) => a.collect(),
                Err(e) => {
                    tracing::warn!(%url, error = %e, "ICE server does not resolve");
                    continue;
                }
            };
            // One address per family is enough.
            for v4 in [true, false] {
                if let Some(addr) = addrs.iter().find(|a| a.is_ipv4() == v4) {
                    let tls_name = (url.scheme == Scheme::Turns).then(|| url.host.clone());
                    let server = gather::Server { addr: *addr, transport: url.transport, turn: turn.clone(), tls_name };
                    if !out.contains(&server) {
                        out.push(server);
                    }
                }
            }
        }
    }
    out
}
