//! `switchboard test-server` (hidden): a `switchboard serve` for the
//! browser conformance tests, which a page cannot start or kill itself. It
//! runs `serve` as a child process and answers, on a control address, the
//! requests of the tests: `/restart` (kill -9 the server and start it again
//! on the same address: every session and room is lost, stored mail is
//! kept in a mailbox file of this process's own) and `/udp/block`,
//! `/udp/unblock` (no UDP in this network namespace: no WebRTC path is left,
//! the signaling connection goes on). Meant for a network namespace the
//! tests made (it needs root for the UDP switch).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// Flags of `test-server`.
#[derive(Debug, Args)]
pub(crate) struct TestServerArgs {
    /// Where the signaling server listens.
    #[arg(long)]
    bind: SocketAddr,
    /// Where the control requests are answered.
    #[arg(long)]
    control: SocketAddr,
}

struct Supervised {
    bind: SocketAddr,
    mailbox: std::path::PathBuf,
    child: Mutex<Child>,
}

/// Starts `serve` on `bind` with its mail in `mailbox`, and returns it once it listens.
async fn spawn_serve(bind: SocketAddr, mailbox: &std::path::Path) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let mailbox = mailbox.to_str().context("the mailbox path is not UTF-8")?;
    let mut child = Command::new(exe)
        .args(["serve", "--mailbox", mailbox, "--bind", &bind.to_string(), "--turn-listen", "127.0.0.1:0"])
        .args(["--log", "warn"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start switchboard serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next_line().await?.unwrap_or_default();
    if !first.starts_with("listening on ") {
        bail!("switchboard serve said {first:?} instead of its address");
    }
    // The rest of its output is not needed; keep reading so it never blocks.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(child)
}

/// A plain answer the page may read from any origin.
fn answer(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

async fn restart(State(s): State<Arc<Supervised>>) -> Response {
    let mut child = s.child.lock().await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    match spawn_serve(s.bind, &s.mailbox).await {
        Ok(fresh) => {
            *child = fresh;
            answer(StatusCode::OK, "restarted".into())
        }
        Err(e) => answer(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn udp(blocked: bool) -> Response {
    match switchboard_natlab::block_udp_here(blocked) {
        Ok(()) => answer(StatusCode::OK, if blocked { "udp blocked" } else { "udp passes" }.into()),
        Err(e) => answer(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(crate) async fn run(args: TestServerArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("switchboard-test-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let result = supervise(args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn supervise(args: TestServerArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let mailbox = dir.join("mailbox.db");
    let child = spawn_serve(args.bind, &mailbox).await?;
    let state = Arc::new(Supervised { bind: args.bind, mailbox, child: Mutex::new(child) });
    let app = Router::new()
        .route("/restart", get(restart))
        .route("/udp/block", get(|| udp(true)))
        .route("/udp/unblock", get(|| udp(false)))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(args.control).await?;
    println!("listening on ws://{}/ws", args.bind);
    println!("control on http://{}", listener.local_addr()?);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    let _ = switchboard_natlab::block_udp_here(false);
    let mut child = state.child.lock().await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    Ok(())
}
