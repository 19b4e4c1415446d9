//! The Switchboard signaling server, as a library.
//!
//! Peers connect over WebSocket at `/ws`, prove their Ed25519 identity, meet
//! in rooms by code (10 characters by default), and exchange signaling messages that set up
//! direct WebRTC links. The server also keeps a durable mailbox for offline
//! peers, reports presence, resumes dropped sessions, relays data when no
//! direct path exists, and enforces hard limits on everything a client sends.
//!
//! ```no_run
//! use switchboard_server::{Server, ServerConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = ServerConfig::default();
//! config.bind = "127.0.0.1:0".parse()?;
//! let server = Server::builder().config(config).bind().await?;
//! println!("listening on {}", server.local_addr());
//! server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! The protocol is specified in `docs/protocol.md`; its types are in
//! [`switchboard_proto`]. Layout: `hub` is the room logic (sans-IO),
//! `connection` the per-socket driver, `store` the mailbox storage, `http`
//! the routes, `auth` the tokens and `ice` the TURN credentials.

mod auth;
mod config;
mod connection;
mod http;
mod hub;
mod ice;
mod metrics;
mod origin;
mod outbox;
mod rate;
mod shared;
pub mod store;
pub mod stun;
mod throttle;
mod tls;
mod turn;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use auth::{Claims, TokenError, mint_token, verify_token};
pub use config::{ConfigError, IceServerConfig, Secret, ServerConfig, TurnConfig};
pub use ice::turn_credential;
use shared::Shared;
use store::{MailStore, SqliteStore, StoreError};
pub use throttle::JoinThrottle;
pub use tls::{TlsError, TlsReload};
use turn::EmbeddedTurn;
pub use turn::TurnStartError;

/// Entry point: `Server::builder()`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Starts configuring a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

/// Configures a server before it binds.
#[derive(Default)]
pub struct ServerBuilder {
    config: ServerConfig,
    store: Option<Arc<dyn MailStore>>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The mailbox database could not be opened.
    #[error("cannot open the mailbox: {0}")]
    Store(#[from] StoreError),
    /// The address could not be bound (in use, or not allowed).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The embedded STUN/TURN server did not start.
    #[error(transparent)]
    Turn(#[from] TurnStartError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Accepting connections failed for good (not for want of file
    /// descriptors or memory, which are waited out).
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ServerBuilder {
    /// Uses this configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses this address (port 0 picks a free one).
    pub fn bind_addr(mut self, addr: SocketAddr) -> Self {
        self.config.bind = addr;
        self
    }

    /// Uses this mailbox store instead of the one `mailbox_path` names.
    pub fn store(mut self, store: Arc<dyn MailStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Validates the configuration, opens storage and binds the listener.
    pub async fn bind(self) -> Result<BoundServer, BindError> {
        self.config.validate()?;
        let tls = match (&self.config.tls_cert, &self.config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::Certs::load(cert, key)?),
            _ => None,
        };
        let store: Arc<dyn MailStore> = match (self.store, &self.config.mailbox_path) {
            (Some(store), _) => store,
            (None, Some(path)) => Arc::new(SqliteStore::open(path)?),
            (None, None) => Arc::new(SqliteStore::in_memory()?),
        };
        let addr = self.config.bind;
        let listener = TcpListener::bind(addr).await.map_err(|source| BindError::Listen { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| BindError::Listen { addr, source })?;
        let mut config = self.config;
        let turn = match config.turn.clone() {
            Some(turn_config) => {
                let secret = config.turn_secret.get_or_insert_with(random_secret).clone();
                let turn = EmbeddedTurn::start(&turn_config, secret).await?;
                config.turn_urls.extend(turn.turn_urls());
                config.ice_servers.push(IceServerConfig {
                    urls: vec![turn.stun_url()],
                    username: None,
                    credential: None,
                });
                Some(turn)
            }
            None => None,
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, store, shutdown_rx));
        if let Some(turn) = &turn {
            let state = Arc::downgrade(&shared);
            turn.tie_to_sessions(Box::new(move |peer| {
                state.upgrade().is_some_and(|s| s.with_hub(|hub| hub.has_session(peer)))
            }));
        }
        Ok(BoundServer { listener, local_addr, shared, shutdown_tx, turn, tls })
    }
}

/// A server bound to its address, ready to serve.
pub struct BoundServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    turn: Option<EmbeddedTurn>,
    tls: Option<Arc<tls::Certs>>,
}

/// How often the certificate files are looked at for a change.
const TLS_WATCH: Duration = Duration::from_secs(2);

/// A TURN REST secret for a server that was given none: 32 random bytes, hex.
fn random_secret() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl BoundServer {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// UDP address of the embedded STUN/TURN server, when it runs.
    pub fn turn_udp_addr(&self) -> Option<SocketAddr> {
        self.turn.as_ref().map(EmbeddedTurn::udp_addr)
    }

    /// TCP address of the embedded TURN server, when TURN over TCP runs.
    pub fn turn_tcp_addr(&self) -> Option<SocketAddr> {
        self.turn.as_ref().and_then(EmbeddedTurn::tcp_addr)
    }

    /// The WebSocket URL clients connect to (`wss://` with TLS).
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/ws", self.local_addr)
    }

    /// Reloads the TLS certificate while serving (`None` without TLS).
    pub fn tls_reload(&self) -> Option<TlsReload> {
        self.tls.clone().map(TlsReload)
    }

    /// Serves until `shutdown` resolves, then closes every connection with a
    /// reason (waiting up to 5 s for them to go).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let Self { listener, shared, shutdown_tx, local_addr, turn, tls } = self;
        tracing::info!(%local_addr, tls = tls.is_some(), "serving");
        let timers = tokio::spawn(shared.clone().run_timers());
        let purge = tokio::spawn(shared.clone().run_mail_purge());
        let acceptor = match &tls {
            Some(certs) => Some(certs.acceptor().map_err(|e| ServeError::Io(std::io::Error::other(e)))?),
            None => None,
        };
        let watch_tls = tls.map(|certs| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(TLS_WATCH);
                loop {
                    tick.tick().await;
                    certs.reload_if_changed();
                }
            })
        });
        let header_timeout = Duration::from_secs(shared.config.header_read_timeout_secs);
        let tx = shutdown_tx.clone();
        let shutdown = async move {
            shutdown.await;
            let _ = tx.send(true);
        };
        let result = http::serve(listener, acceptor, http::router(shared.clone()), header_timeout, shutdown).await;
        if let Some(w) = watch_tls {
            w.abort();
        }
        let _ = shutdown_tx.send(true);
        shared.close_all();
        let drained = async {
            while shared.open_conns.load(Ordering::Acquire) > 0 {
                let notified = shared.all_closed.notified();
                if shared.open_conns.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), drained).await.is_err() {
            tracing::warn!("connections still open after 5 s; stopping anyway");
        }
        timers.abort();
        purge.abort();
        if let Some(turn) = &turn {
            turn.close().await;
        }
        tracing::info!("stopped");
        result.map_err(ServeError::from)
    }
}
