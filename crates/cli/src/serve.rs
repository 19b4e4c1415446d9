//! `switchboard serve`: configuration from a TOML file, environment and flags
//! (flags win), then the server until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use switchboard_server::{Secret, Server, ServerConfig};

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
    /// Most simultaneous connections.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
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
    /// Log filter when RUST_LOG is unset.
    #[arg(long, default_value = "info")]
    log: String,
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
        if let Some(path) = &self.mailbox {
            c.mailbox_path = Some(path.clone());
        }
        if self.memory {
            c.mailbox_path = None;
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

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::init_logging(&args.log);
    crate::raise_fd_limit();
    let config = args.config()?;
    let server = Server::builder().config(config).bind().await.context("cannot start the server")?;
    // The first stdout line names the address; scripts and tests read it.
    println!("listening on {}", server.ws_url());
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
