//! `switchboard serve`: configuration from a TOML file, environment and flags
//! (flags win), then the server until SIGTERM or Ctrl-C.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use switchboard_server::{Secret, Server, ServerConfig, TurnConfig};

/// Flags of `serve`; each may also come from its environment variable.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file (settings as in `ServerConfig`).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Address for HTTP and WebSocket [default: 127.0.0.1:7600].
    #[arg(long, env = "SWITCHBOARD_BIND")]
    bind: Option<SocketAddr>,
    /// SQLite file for the mailbox [default: switchboard.db].
    #[arg(long, env = "SWITCHBOARD_MAILBOX")]
    mailbox: Option<PathBuf>,
    /// Keep the mailbox in memory only (lost on exit).
    #[arg(long, conflicts_with = "mailbox")]
    memory: bool,
    /// A name clients dial this server by (`host` or `host:port`; repeat, or
    /// separate with commas): `hello` proofs signed for other names are
    /// refused. Without one: localhost and IP addresses only.
    #[arg(long = "server-name", env = "SWITCHBOARD_SERVER_NAMES", value_delimiter = ',')]
    server_names: Vec<String>,
    /// Most simultaneous connections.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Most simultaneous connections from one address (IPv6: one /64).
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<usize>,
    /// Require auth tokens signed with this secret.
    #[arg(long, env = "SWITCHBOARD_AUTH_SECRET", hide_env_values = true)]
    auth_secret: Option<String>,
    /// TURN REST shared secret for minting TURN credentials.
    #[arg(long, env = "SWITCHBOARD_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// TURN URL that takes minted credentials (repeatable).
    #[arg(long = "turn-url")]
    turn_urls: Vec<String>,
    /// STUN URL handed to peers without credentials (repeatable).
    #[arg(long = "stun-url")]
    stun_urls: Vec<String>,
    /// Run no STUN/TURN server.
    #[arg(long, env = "SWITCHBOARD_NO_TURN")]
    no_turn: bool,
    /// UDP address of the embedded STUN/TURN server (TCP takes the same port) [default: the bind IP, port 3478].
    #[arg(long, env = "SWITCHBOARD_TURN_LISTEN")]
    turn_listen: Option<SocketAddr>,
    /// Serve TURN over UDP only.
    #[arg(long)]
    no_turn_tcp: bool,
    /// Realm of TURN credentials [default: switchboard].
    #[arg(long)]
    turn_realm: Option<String>,
    /// Relay port range, MIN-MAX [default: 49152-65535].
    #[arg(long, value_parser = parse_port_range)]
    turn_relay_ports: Option<(u16, u16)>,
    /// Most TURN allocations per user at once [default: 32].
    #[arg(long)]
    turn_quota: Option<usize>,
    /// Most TURN allocations per client IP address at once, all users [default: 128].
    #[arg(long)]
    turn_address_quota: Option<usize>,
    /// Let TURN relays reach private (RFC 1918, fc00::/7) peer addresses from a server that is not on one.
    #[arg(long)]
    turn_relay_to_private: bool,
    /// Public address announced in relayed candidates and TURN URLs (server behind a 1:1 NAT).
    #[arg(long, env = "SWITCHBOARD_TURN_EXTERNAL_IP")]
    turn_external_ip: Option<IpAddr>,
    /// Second local address for RFC 5780 NAT-behaviour tests (`switchboard nat`).
    #[arg(long)]
    stun_alt_ip: Option<IpAddr>,
    /// Seconds minted TURN credentials stay valid [default: 43200].
    #[arg(long)]
    turn_ttl: Option<u64>,
    /// Seconds an empty room lives.
    #[arg(long)]
    room_ttl: Option<u64>,
    /// Frames per second per connection.
    #[arg(long)]
    rate: Option<u32>,
    /// Burst of frames per connection.
    #[arg(long)]
    burst: Option<u32>,
    /// Seconds of silence before a connection is closed.
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// Milliseconds a signal for an absent peer waits.
    #[arg(long)]
    signal_ttl_ms: Option<u64>,
    /// Directory of the browser library (scripts/web-build) for the page at `/`
    /// [default: target/web/pkg when it exists].
    #[arg(long, env = "SWITCHBOARD_WEB_PKG")]
    web_pkg: Option<PathBuf>,
    /// PEM certificate chain: serve https and wss (with --tls-key). Read
    /// again on SIGHUP and when the file changes.
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log filter when RUST_LOG is unset (a `tracing` filter such as
    /// `info` or `switchboard=debug`) [default: Switchboard's info lines,
    /// nothing from dependencies; see -v].
    #[arg(long)]
    pub(crate) log: Option<String>,
}

impl ServeArgs {
    /// Builds the configuration: file, then flags and environment.
    pub(crate) fn config(&self) -> anyhow::Result<ServerConfig> {
        let mut c = match &self.config {
            Some(path) => ServerConfig::from_toml_file(path)?,
            None => ServerConfig { mailbox_path: Some(PathBuf::from("switchboard.db")), ..ServerConfig::default() },
        };
        if let Some(bind) = self.bind {
            c.bind = bind;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            c.tls_cert = Some(cert.clone());
            c.tls_key = Some(key.clone());
        }
        if let Some(path) = &self.mailbox {
            c.mailbox_path = Some(path.clone());
        }
        if self.memory {
            c.mailbox_path = None;
        }
        if let Some(dir) = &self.web_pkg {
            if !dir.join("switchboard_bg.wasm").is_file() {
                anyhow::bail!(
                    "--web-pkg {}: no switchboard_bg.wasm there (build it with scripts/web-build)",
                    dir.display()
                );
            }
            c.web_pkg = Some(dir.clone());
        } else if c.web_pkg.is_none() && Path::new("target/web/pkg/switchboard_bg.wasm").is_file() {
            c.web_pkg = Some(PathBuf::from("target/web/pkg"));
        }
        if !self.server_names.is_empty() {
            c.server_names = self.server_names.iter().map(|n| n.to_ascii_lowercase()).collect();
        }
        if let Some(v) = self.max_connections_per_address {
            c.max_connections_per_origin = v;
        }
        if let Some(v) = self.max_connections {
            c.max_connections = v;
        }
        if let Some(s) = &self.auth_secret {
            c.auth_secret = Some(Secret::new(s.clone()));
        }
        if let Some(s) = &self.turn_secret {
            c.turn_secret = Some(Secret::new(s.clone()));
        }
        if !self.turn_urls.is_empty() {
            c.turn_urls.clone_from(&self.turn_urls);
        }
        if !self.stun_urls.is_empty() {
            c.ice_servers.push(switchboard_server::IceServerConfig {
                urls: self.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if self.no_turn {
            c.turn = None;
        } else {
            let mut t = c
                .turn
                .take()
                .unwrap_or_else(|| TurnConfig { listen: SocketAddr::new(c.bind.ip(), 3478), ..TurnConfig::default() });
            if let Some(v) = self.turn_listen {
                t.listen = v;
            }
            if self.no_turn_tcp {
                t.tcp = false;
            }
            if let Some(v) = &self.turn_realm {
                t.realm.clone_from(v);
            }
            if let Some(v) = self.turn_relay_ports {
                t.relay_ports = v;
            }
            if let Some(v) = self.turn_address_quota {
                t.address_quota = v;
            }
            if self.turn_relay_to_private {
                t.relay_to_private = true;
            }
            if let Some(v) = self.turn_quota {
                t.user_quota = v;
            }
            if let Some(v) = self.turn_external_ip {
                t.external_ip = Some(v);
            }
            if let Some(v) = self.stun_alt_ip {
                t.alt_ip = Some(v);
            }
            c.turn = Some(t);
        }
        if let Some(v) = self.turn_ttl {
            c.turn_credential_ttl_secs = v;
        }
        if let Some(v) = self.room_ttl {
            c.room_ttl_secs = v;
        }
        if let Some(v) = self.rate {
            c.limits.rate_per_sec = v;
        }
        if let Some(v) = self.burst {
            c.limits.rate_burst = v;
        }
        if let Some(v) = self.idle_timeout {
            c.limits.idle_timeout_secs = v;
        }
        if let Some(v) = self.signal_ttl_ms {
            c.limits.signal_ttl_ms = v;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Parses `MIN-MAX`.
fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected MIN-MAX, e.g. 49152-65535")?;
    let min: u16 = a.trim().parse().map_err(|_| format!("{a:?} is not a port"))?;
    let max: u16 = b.trim().parse().map_err(|_| format!("{b:?} is not a port"))?;
    if min == 0 || min > max {
        return Err("the range must be non-empty, from a non-zero port".into());
    }
    Ok((min, max))
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::raise_fd_limit();
    let config = args.config()?;
    let server = Server::builder().config(config).bind().await.context("cannot start the server")?;
    // The first stdout line names the address; scripts and tests read it.
    // Whoever started us may stop reading stdout; that must not stop the server.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {}", server.ws_url());
    if let Some(udp) = server.turn_udp_addr() {
        let tcp = server.turn_tcp_addr().map_or_else(|| "off".to_owned(), |a| a.to_string());
        let _ = writeln!(out, "STUN/TURN on udp {udp}, tcp {tcp}");
    }
    let _ = out.flush();
    #[cfg(unix)]
    if let Some(tls) = server.tls_reload() {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: cannot reload the TLS certificate; keeping the one in use")
                    }
                }
            }
        });
    }
    server.serve(shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}
