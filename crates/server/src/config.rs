//! Server configuration: every setting with its default, loadable from TOML.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use switchboard_proto::Limits;

use crate::store::MailQuota;
use crate::throttle::JoinThrottle;

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret's bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A STUN or TURN server handed to every peer in `welcome`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// Fixed TURN username, if any.
    #[serde(default)]
    pub username: Option<String>,
    /// Fixed TURN password, if any.
    #[serde(default)]
    pub credential: Option<Secret>,
}

/// Everything the server can be told. `Default` is a local, open server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for HTTP and WebSocket.
    pub bind: SocketAddr,
    /// SQLite file of the mailbox; `None` keeps mail in memory (lost on exit).
    pub mailbox_path: Option<PathBuf>,
    /// Directory with the browser build of the peer library
    /// (`switchboard.js`, `switchboard_bg.wasm`, made by `scripts/web-build`),
    /// served under `/pkg/` for the page at `/`.
    pub web_pkg: Option<PathBuf>,
    /// PEM certificate chain for https and wss on `bind` (with
    /// `tls_key`); `None` serves plain http and ws. Read again when the
    /// file changes, or on [`TlsReload::reload`](crate::TlsReload::reload).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The names clients dial this server by, `host` (any port) or
    /// `host:port`, lower case: a `hello` proof signed for another name is
    /// refused, so a rogue server cannot pass this server's nonce to a
    /// victim and use the answer. Empty: `localhost` and IP address literals
    /// only (a server reached by a DNS name must list it).
    pub server_names: Vec<String>,
    /// Most simultaneous WebSocket connections.
    pub max_connections: usize,
    /// Most simultaneous connections from one address (IPv6: one /64).
    pub max_connections_per_origin: usize,
    /// Seconds a client has to send the headers of an HTTP request (the
    /// WebSocket upgrade included); a slower one is disconnected.
    pub header_read_timeout_secs: u64,
    /// Seconds a new connection has to complete `hello`; frames before it
    /// (pings included) do not extend it.
    pub hello_timeout_secs: u64,
    /// Most rooms at once.
    pub max_rooms: usize,
    /// Most rooms at once whose creators connected from one address.
    pub max_rooms_per_origin: usize,
    /// Most sessions waiting in their resume window at once; beyond them
    /// the one that waited longest ends early.
    pub max_detached_sessions: usize,
    /// How long an empty room lives, in seconds.
    pub room_ttl_secs: u64,
    /// Characters in the room codes the server makes, 6 to 16, each from
    /// 32 (5 bits): 10 make 50 bits, beyond guessing; fewer are easier to
    /// read out and rely on `join_throttle` against guessing.
    pub room_code_len: usize,
    /// Failed joins and password hashes per address and server-wide.
    pub join_throttle: JoinThrottle,
    /// Signals held for one absent peer.
    pub max_pending_signals: usize,
    /// Bytes of signals held for one absent peer (they flush at its
    /// `welcome`, so this stays well under `max_outbound_bytes`).
    pub max_held_signal_bytes: usize,
    /// Signals one sender may have held for absent peers, all recipients.
    pub max_held_signals_per_sender: usize,
    /// Bytes of signals one sender may have held.
    pub max_held_signal_bytes_per_sender: usize,
    /// Bytes of held signals in the whole server.
    pub max_held_signal_bytes_total: usize,
    /// Peers one session may watch.
    pub max_watch: usize,
    /// Watches of all sessions together.
    pub max_watches: usize,
    /// Error answers a connection may earn in a burst before it is closed.
    pub abuse_burst: u32,
    /// Error answers forgiven per second.
    pub abuse_per_sec: u32,
    /// Bytes queued towards one slow client before it is closed.
    pub max_outbound_bytes: usize,
    /// Bytes of signaling (text) frames read per second from one address
    /// (IPv6: one /64), all its connections together; beyond them the server
    /// reads that address's connections more slowly (TCP backpressure), it
    /// does not refuse.
    pub origin_text_bytes_per_sec: u32,
    /// Bytes of signaling frames one address may send at once before
    /// [`ServerConfig::origin_text_bytes_per_sec`] paces it.
    pub origin_text_burst_bytes: u32,
    /// Seconds a write to a client may stall (it stopped reading) before the connection is dropped.
    pub write_timeout_secs: u64,
    /// Limits announced to clients and enforced.
    pub limits: Limits,
    /// How much undelivered mail is stored, by recipient, sender, address and in all.
    pub mail_quota: MailQuota,
    /// When set, `hello` must carry an auth token signed with this secret.
    pub auth_secret: Option<Secret>,
    /// STUN/TURN servers with fixed credentials.
    pub ice_servers: Vec<IceServerConfig>,
    /// TURN REST shared secret: mint time-limited credentials for `turn_urls`.
    pub turn_secret: Option<Secret>,
    /// TURN URLs that take credentials minted with `turn_secret`.
    pub turn_urls: Vec<String>,
    /// Lifetime of minted TURN credentials, in seconds.
    pub turn_credential_ttl_secs: u64,
    /// The embedded STUN/TURN server; `None` runs none.
    pub turn: Option<TurnConfig>,
}

/// The embedded STUN/TURN server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// UDP address of STUN and TURN; TCP takes the same port when free.
    pub listen: SocketAddr,
    /// Also serve TURN over TCP.
    pub tcp: bool,
    /// Realm of the long-term credentials.
    pub realm: String,
    /// Ports relayed addresses are taken from (inclusive).
    pub relay_ports: (u16, u16),
    /// Address put in relayed candidates and URLs when the server sits behind
    /// a 1:1 NAT or listens on a wildcard address.
    pub external_ip: Option<IpAddr>,
    /// Most allocations one user (the part after `:` of the username) holds at once.
    pub user_quota: usize,
    /// Most allocations held at once from one client IP address, all users
    /// together (new identities cost nothing, addresses do).
    pub address_quota: usize,
    /// Let relays reach private addresses (RFC 1918, fc00::/7) although the
    /// server's own address is not private. Relays reach public addresses,
    /// and addresses in the server's own scope (loopback peers for a server
    /// on loopback, a private network for a server in one); never loopback,
    /// link-local, multicast or unspecified addresses beyond that.
    pub relay_to_private: bool,
    /// Second address of this host: answers RFC 5780 NAT-behaviour tests
    /// (`switchboard nat`) from two addresses and two ports.
    pub alt_ip: Option<IpAddr>,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3478)),
            tcp: true,
            realm: "switchboard".into(),
            relay_ports: (49152, 65535),
            external_ip: None,
            user_quota: 32,
            address_quota: 128,
            relay_to_private: false,
            alt_ip: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 7600)),
            mailbox_path: None,
            web_pkg: None,
            tls_cert: None,
            tls_key: None,
            server_names: Vec::new(),
            max_connections: 10_000,
            max_connections_per_origin: 256,
            hello_timeout_secs: 10,
            header_read_timeout_secs: 10,
            max_rooms: 100_000,
            max_rooms_per_origin: 1000,
            max_detached_sessions: 100_000,
            room_ttl_secs: 3600,
            room_code_len: 10,
            join_throttle: JoinThrottle::default(),
            max_pending_signals: 256,
            max_held_signal_bytes: 1 << 20,
            max_held_signals_per_sender: 1024,
            max_held_signal_bytes_per_sender: 1 << 20,
            max_held_signal_bytes_total: 256 << 20,
            max_watch: 1024,
            max_watches: 1_000_000,
            abuse_burst: 30,
            abuse_per_sec: 1,
            max_outbound_bytes: 4 * 1024 * 1024,
            origin_text_bytes_per_sec: 1024 * 1024,
            origin_text_burst_bytes: 4 * 1024 * 1024,
            write_timeout_secs: 10,
            limits: Limits::default(),
            mail_quota: MailQuota::default(),
            auth_secret: None,
            ice_servers: Vec::new(),
            turn_secret: None,
            turn_urls: Vec::new(),
            turn_credential_ttl_secs: 12 * 3600,
            turn: None,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML file is not valid.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid setting {field}: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl ServerConfig {
    /// Checks values that would make the server misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| Err(ConfigError::Invalid { field, reason: reason.into() });
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid("tls_cert", "tls_cert and tls_key go together");
        }
        let l = &self.limits;
        if l.max_frame_bytes < 1024 {
            return invalid("limits.max_frame_bytes", "must be at least 1024");
        }
        if l.max_frame_bytes > 16 * 1024 * 1024 {
            return invalid("limits.max_frame_bytes", "must be at most 16 MiB");
        }
        if l.rate_per_sec == 0 || l.rate_burst == 0 {
            return invalid("limits.rate_per_sec", "rate and burst must be at least 1");
        }
        if l.max_peers_per_room == 0 || l.max_rooms_per_peer == 0 {
            return invalid("limits.max_peers_per_room", "room limits must be at least 1");
        }
        if l.idle_timeout_secs == 0 {
            return invalid("limits.idle_timeout_secs", "must be at least 1");
        }
        if self.origin_text_bytes_per_sec < 64 * 1024 || self.origin_text_burst_bytes < l.max_frame_bytes {
            return invalid(
                "origin_text_bytes_per_sec",
                "must be at least 65536, and origin_text_burst_bytes at least limits.max_frame_bytes",
            );
        }
        if self.write_timeout_secs == 0 {
            return invalid("write_timeout_secs", "must be at least 1");
        }
        if !(switchboard_proto::RoomCode::MIN_LEN..=switchboard_proto::RoomCode::MAX_LEN).contains(&self.room_code_len)
        {
            return invalid("room_code_len", "must be 6 to 16 characters");
        }
        let t = &self.join_throttle;
        if t.failures_per_origin == 0 || t.failures_burst == 0 || t.hashes_per_origin == 0 || t.max_origins == 0 {
            return invalid("join_throttle", "bursts and max_origins must be at least 1");
        }
        for name in &self.server_names {
            let ok = name.len() <= 255
                && name.to_ascii_lowercase() == *name
                && switchboard_proto::split_host_port(name)
                    .is_some_and(|(_, port)| port.is_none_or(|p| p.parse::<u16>().is_ok()));
            if !ok {
                return invalid("server_names", "each is host or host:port, in lower case");
            }
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if self.max_connections_per_origin == 0 {
            return invalid("max_connections_per_origin", "must be at least 1");
        }
        if self.header_read_timeout_secs == 0 {
            return invalid("header_read_timeout_secs", "must be at least 1");
        }
        if self.hello_timeout_secs == 0 {
            return invalid("hello_timeout_secs", "must be at least 1");
        }
        if self.abuse_burst == 0 {
            return invalid("abuse_burst", "must be at least 1");
        }
        if self.turn_secret.is_none() && !self.turn_urls.is_empty() {
            return invalid("turn_secret", "turn_urls need a turn_secret to mint credentials");
        }
        if self.turn_secret.is_some() && self.turn_urls.is_empty() && self.turn.is_none() {
            return invalid("turn_secret", "a turn_secret needs turn_urls or the embedded TURN server");
        }
        if self.turn_credential_ttl_secs == 0 {
            return invalid("turn_credential_ttl_secs", "must be at least 1");
        }
        if let Some(t) = &self.turn {
            if t.relay_ports.0 == 0 || t.relay_ports.0 > t.relay_ports.1 {
                return invalid("turn.relay_ports", "must be a non-empty range of non-zero ports");
            }
            if t.user_quota == 0 || t.address_quota == 0 {
                return invalid("turn.user_quota", "user_quota and address_quota must be at least 1");
            }
            if t.realm.is_empty() {
                return invalid("turn.realm", "must not be empty");
            }
        }
        for url in self.turn_urls.iter().chain(self.ice_servers.iter().flat_map(|s| &s.urls)) {
            if !(url.starts_with("stun:") || url.starts_with("turn:") || url.starts_with("turns:")) {
                return invalid("ice_servers", &format!("{url:?} is not a stun:, turn: or turns: URL"));
            }
        }
        Ok(())
    }

    /// Reads a TOML file; missing settings take their defaults.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse { path: path.to_owned(), message })
    }

    /// Parses TOML text; missing settings take their defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}
