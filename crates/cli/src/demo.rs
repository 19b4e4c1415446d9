//! `switchboard demo`: a server and two peers on loopback, every step printed.
//!
//! The peers prove their identities, meet in a room by code, exchange
//! signaling messages, relay data through the server, and leave mail for a
//! peer that is offline until the server restarts from its mailbox file.

use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;
use switchboard::proto::{ClientMessage, ConnId, MailRequest, ServerMessage, SignalData};
use switchboard::{ConnectOptions, Identity, Incoming, SignalingClient};
use switchboard_server::{Server, ServerConfig};

/// Flags of `demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Also print the server's log.
    #[arg(long)]
    verbose: bool,
}

struct Running {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(mailbox: &std::path::Path) -> anyhow::Result<Running> {
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse()?,
        mailbox_path: Some(mailbox.to_owned()),
        ..ServerConfig::default()
    };
    let server = Server::builder().config(config).bind().await?;
    let url = server.ws_url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(async move {
                let _ = stopped.await;
            })
            .await?;
        Ok(())
    });
    Ok(Running { url, stop, task })
}

async fn next_message(client: &mut SignalingClient) -> anyhow::Result<ServerMessage> {
    let wait = tokio::time::timeout(std::time::Duration::from_secs(10), client.next());
    match wait.await.context("no answer within 10 s")?? {
        Incoming::Message(m) => Ok(m),
        other => bail!("unexpected {other:?}"),
    }
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    crate::init_logging(if args.verbose { "info" } else { "warn" });
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("switchboard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mailbox = dir.join("mailbox.db");
    let step = |text: String| println!("[{:>7.1} ms] {text}", started.elapsed().as_secs_f64() * 1000.0);

    let server = start(&mailbox).await?;
    step(format!("server listening on {}", server.url));

    let (alice_id, bob_id) = (Identity::generate(), Identity::generate());
    let mut alice = SignalingClient::connect(&server.url, &alice_id, ConnectOptions::default()).await?;
    step(format!("alice proved her key; peer id {}", alice.peer_id()));
    let mut bob = SignalingClient::connect(&server.url, &bob_id, ConnectOptions::default()).await?;
    step(format!("bob proved his key; peer id {}", bob.peer_id()));

    let room = alice.create_room(Some("demo password"), None).await?;
    step(format!("alice created room {room} (password protected)"));
    alice.join(room, Some("demo password"), Some(serde_json::json!({"name": "alice"}))).await?;
    let joined = bob.join(room, Some("demo password"), Some(serde_json::json!({"name": "bob"}))).await?;
    step(format!("bob joined {room} by code; host is alice: {}", joined.host == alice.peer_id()));
    if let ServerMessage::PeerJoined { peer, .. } = next_message(&mut alice).await? {
        step(format!("alice saw peer_joined for {} with meta {}", peer.peer_id, peer.meta.unwrap_or_default()));
    }

    let conn: ConnId = "demo-1".parse()?;
    let t = Instant::now();
    alice.signal(bob.peer_id(), &conn, SignalData::Offer { sdp: "v=0 (demo offer)".into() }).await?;
    let ServerMessage::Signal { data, .. } = next_message(&mut bob).await? else { bail!("bob expected a signal") };
    bob.signal(alice.peer_id(), &conn, SignalData::Answer { sdp: "v=0 (demo answer)".into() }).await?;
    let ServerMessage::Signal { data: answer, .. } = next_message(&mut alice).await? else {
        bail!("alice expected a signal")
    };
    step(format!(
        "offer/answer relayed ({:?} → {:?}), round trip {:.2} ms",
        data.kind().unwrap_or("?"),
        answer.kind().unwrap_or("?"),
        t.elapsed().as_secs_f64() * 1000.0
    ));

    alice.send_relay(bob.peer_id(), 1, b"hello through the relay").await?;
    match tokio::time::timeout(std::time::Duration::from_secs(10), bob.next()).await?? {
        Incoming::Relay { payload, .. } => {
            step(format!("bob got relayed bytes: {:?}", String::from_utf8_lossy(&payload)))
        }
        other => bail!("bob expected relay data, got {other:?}"),
    }

    let carol = Identity::generate();
    let accepted = alice
        .request(ClientMessage::Mail(MailRequest {
            id: None,
            to: carol.peer_id(),
            body: serde_json::json!({"text": "see you later"}),
        }))
        .await?;
    step(format!("alice left mail for offline carol: {accepted:?}"));
    bob.close().await?;
    alice.close().await?;

    let _ = server.stop.send(());
    server.task.await??;
    step("server stopped; restarting from the same mailbox file".into());
    let server = start(&mailbox).await?;
    let mut carol = SignalingClient::connect(&server.url, &carol, ConnectOptions::default()).await?;
    match next_message(&mut carol).await? {
        ServerMessage::Mail { from, body, .. } => {
            step(format!("carol came online and got mail from alice ({}): {body}", from == alice_id.peer_id()));
        }
        other => bail!("carol expected mail, got {other:?}"),
    }
    carol.close().await?;
    let _ = server.stop.send(());
    server.task.await??;
    let _ = std::fs::remove_dir_all(&dir);
    step("done".into());
    Ok(())
}
