//! The embedded STUN/TURN server: the `turn` crate's server behind our own
//! listeners — UDP (with the RFC 5780 STUN responder in front) and TCP —
//! with TURN REST credentials and a per-user allocation quota.

mod auth;
mod guard;
mod nonce;
mod tcp;
mod udp;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use turn::relay::relay_range::RelayAddressGeneratorRanges;
use turn::server::config::{ConnConfig, ServerConfig as TurnServerConfig};
use webrtc_util::vnet::net::Net;

use crate::config::{Secret, TurnConfig};
use crate::stun::{AlternatesGuard, StunResponder};
pub(crate) use auth::RestAuth;

/// A running embedded STUN/TURN server.
pub(crate) struct EmbeddedTurn {
    server: Arc<turn::server::Server>,
    /// How the TURN server asks whether a peer still has a session.
    sessions: Arc<std::sync::OnceLock<auth::SessionCheck>>,
    udp: SocketAddr,
    tcp: Option<SocketAddr>,
    advertised: IpAddr,
    _alternates: AlternatesGuard,
}

/// Why the embedded TURN server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnStartError {
    /// A socket could not be bound.
    #[error("cannot listen for STUN/TURN on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The `turn` crate refused the setup.
    #[error("cannot start the TURN server: {0}")]
    Turn(String),
}

impl EmbeddedTurn {
    /// Binds the listeners and starts serving.
    pub(crate) async fn start(cfg: &TurnConfig, secret: Secret) -> Result<Self, TurnStartError> {
        let listen = cfg.listen;
        let stun = StunResponder::bind(listen, cfg.alt_ip, None)
            .await
            .map_err(|source| TurnStartError::Listen { addr: listen, source })?;
        let udp = stun.primary().local_addr().map_err(|source| TurnStartError::Listen { addr: listen, source })?;
        let alternates = stun.serve_alternates();
        let quota = Arc::new(auth::Quota::new(cfg.user_quota, cfg.address_quota, &cfg.realm));
        let sessions = Arc::new(std::sync::OnceLock::new());
        let advertised = cfg.external_ip.unwrap_or_else(|| advertised_ip(udp.ip()));
        let policy = guard::PeerPolicy::new(advertised, cfg.relay_to_private);
        let relay = |address: IpAddr| ConnConfig {
            conn: Arc::new(udp::UdpFront { stun: stun.clone(), quota: quota.clone(), policy }),
            relay_addr_generator: Box::new(RelayAddressGeneratorRanges {
                relay_address: advertised,
                min_port: cfg.relay_ports.0,
                max_port: cfg.relay_ports.1,
                max_retries: 40,
                address: address.to_string(),
                net: Arc::new(Net::new(None)),
            }),
        };
        let mut conn_configs = vec![relay(udp.ip())];
        let mut tcp = None;
        if cfg.tcp {
            // Same port as UDP when free, else any.
            let listener = match tokio::net::TcpListener::bind(udp).await {
                Ok(l) => l,
                Err(_) => tokio::net::TcpListener::bind(SocketAddr::new(udp.ip(), 0))
                    .await
                    .map_err(|source| TurnStartError::Listen { addr: udp, source })?,
            };
            let front = tcp::TcpFront::start(listener, quota.clone(), policy)
                .map_err(|source| TurnStartError::Listen { addr: udp, source })?;
            tcp = Some(webrtc_util::Conn::local_addr(&front).map_err(|e| TurnStartError::Turn(e.to_string()))?);
            let mut c = relay(udp.ip());
            c.conn = Arc::new(front);
            conn_configs.push(c);
        }
        let server = turn::server::Server::new(TurnServerConfig {
            conn_configs,
            realm: cfg.realm.clone(),
            auth_handler: Arc::new(RestAuth { secret, sessions: sessions.clone() }),
            channel_bind_timeout: Duration::ZERO,
            alloc_close_notify: None,
        })
        .await
        .map_err(|e| TurnStartError::Turn(e.to_string()))?;
        let server = Arc::new(server);
        let _ = quota.server.set(server.clone());
        tracing::info!(%udp, ?tcp, %advertised, "STUN/TURN listening");
        Ok(EmbeddedTurn { server, sessions, udp, tcp, advertised, _alternates: alternates })
    }

    /// Ties minted credentials to signaling sessions: from now on a peer's
    /// credentials are refused once `live` says its session has ended.
    pub(crate) fn tie_to_sessions(&self, live: auth::SessionCheck) {
        let _ = self.sessions.set(live);
    }

    /// The UDP address (STUN and TURN).
    pub(crate) fn udp_addr(&self) -> SocketAddr {
        self.udp
    }

    /// The TCP address, if TURN over TCP runs.
    pub(crate) fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// `stun:` URL for peers.
    pub(crate) fn stun_url(&self) -> String {
        format!("stun:{}", SocketAddr::new(self.advertised, self.udp.port()))
    }

    /// `turn:` URLs for peers (UDP, then TCP).
    pub(crate) fn turn_urls(&self) -> Vec<String> {
        let mut urls = vec![format!("turn:{}?transport=udp", SocketAddr::new(self.advertised, self.udp.port()))];
        if let Some(tcp) = self.tcp {
            urls.push(format!("turn:{}?transport=tcp", SocketAddr::new(self.advertised, tcp.port())));
        }
        urls
    }

    /// Stops serving and frees every allocation.
    pub(crate) async fn close(&self) {
        if let Err(e) = self.server.close().await {
            tracing::debug!(error = %e, "TURN server close");
        }
    }
}

/// The address peers can reach when the listener is on a wildcard: the
/// source address of the default route, found without sending anything.
fn advertised_ip(listen: IpAddr) -> IpAddr {
    if !listen.is_unspecified() {
        return listen;
    }
    let probe = std::net::UdpSocket::bind(SocketAddr::new(listen, 0))
        .and_then(|s| s.connect(SocketAddr::from(([198, 51, 100, 1], 9))).map(|()| s))
        .and_then(|s| s.local_addr());
    match probe {
        Ok(a) if !a.ip().is_unspecified() => a.ip(),
        _ => IpAddr::from([127, 0, 0, 1]),
    }
}
