//! `switchboard bench`: benchmarks that print a baseline measured in the same run.

mod abuse;
mod bare;
mod p2p;
mod raw;
mod signaling;

use std::net::SocketAddr;
use std::process::Stdio;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Flags of `bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: BenchKind,
}

#[derive(Debug, Subcommand)]
enum BenchKind {
    /// Signaling server: idle memory, relay rate and latency, join churn.
    Signaling(signaling::SignalingArgs),
    /// Peer links: setup time, round trip and throughput against raw UDP.
    P2p(p2p::P2pArgs),
    /// Honest peers' latency while one address runs every server-side attack.
    Abuse(abuse::AbuseArgs),
}

/// Flags of the hidden echo server.
#[derive(Debug, Args)]
pub(crate) struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    crate::raise_fd_limit();
    match args.what {
        BenchKind::Signaling(a) => signaling::run(a).await,
        BenchKind::P2p(a) => p2p::run(a).await,
        BenchKind::Abuse(a) => abuse::run(a).await,
    }
}

/// A minimal WebSocket echo server with the same buffer sizes as ours: the baseline.
pub(crate) async fn echo_server(args: EchoArgs) -> anyhow::Result<()> {
    crate::raise_fd_limit();
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    println!("listening on ws://{}/ws", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .read_buffer_size(2048)
                .write_buffer_size(0);
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else { return };
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A child process of this binary, optionally pinned to one core.
pub(crate) struct ChildServer {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl ChildServer {
    pub(crate) async fn spawn(args: &[&str], core: Option<usize>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut cmd = match core {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(c.to_string()).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
        let mut child = cmd.spawn().context("cannot start the child server")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .context("child server did not start in 20 s")??
            .context("child server exited")?;
        let Some(url) = first.strip_prefix("listening on ") else { bail!("unexpected first line {first:?}") };
        Ok(Self { child, url: url.to_owned() })
    }

    /// Resident memory in bytes.
    pub(crate) fn rss(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("child exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmRSS")?;
        Ok(kb * 1024)
    }

    /// CPU time (user + system) the child has used so far.
    pub(crate) fn cpu_time(&self) -> anyhow::Result<std::time::Duration> {
        let pid = self.child.id().context("child exited")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces): utime is the
        // 12th and stime the 13th of them, in clock ticks (100 per second).
        let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).context("bad /proc stat");
        Ok(std::time::Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Pins this process (every thread) to one core with `taskset`; false if that failed.
pub(crate) fn pin_self(core: usize) -> bool {
    std::process::Command::new("taskset")
        .args(["-a", "-cp", &core.to_string(), &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
