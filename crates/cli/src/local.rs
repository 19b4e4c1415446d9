//! An in-process signaling server on loopback and event helpers, shared by
//! `demo` and `bench p2p`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use switchboard::{Event, Message, Node};
use switchboard_server::{Server, ServerConfig, TurnConfig};

/// How long a local step may take.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A server on 127.0.0.1 with a free port, running in this process.
pub(crate) struct LocalServer {
    pub(crate) url: String,
    /// UDP and TCP addresses of the embedded STUN/TURN server, when it runs.
    pub(crate) turn: Option<(SocketAddr, Option<SocketAddr>)>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), switchboard_server::ServeError>>,
}

impl LocalServer {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    /// With the embedded STUN/TURN server on 127.0.0.1 (UDP and TCP, free ports).
    pub(crate) async fn with_turn() -> anyhow::Result<Self> {
        Self::start_with(Some(TurnConfig { listen: "127.0.0.1:0".parse()?, ..TurnConfig::default() })).await
    }

    async fn start_with(turn: Option<TurnConfig>) -> anyhow::Result<Self> {
        let config = ServerConfig { bind: "127.0.0.1:0".parse()?, turn, ..ServerConfig::default() };
        let server = Server::builder().config(config).bind().await?;
        let url = server.ws_url();
        let turn = server.turn_udp_addr().map(|udp| (udp, server.turn_tcp_addr()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        Ok(Self { url, turn, stop, task })
    }

    /// Stops the server and waits until it has.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// Waits for the node's next `PeerConnected`, skipping other events.
pub(crate) async fn connected(node: &Node) -> anyhow::Result<Event> {
    next_matching(node, |ev| matches!(ev, Event::PeerConnected { .. }).then_some(ev)).await
}

/// Waits for the node's next message, skipping other events.
pub(crate) async fn next_message(node: &Node) -> anyhow::Result<Message> {
    next_matching(node, |ev| match ev {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await
}

/// Waits for the first event that `pick` maps to `Some`, at most [`PATIENCE`].
pub(crate) async fn next_matching<T>(node: &Node, pick: impl FnMut(Event) -> Option<T>) -> anyhow::Result<T> {
    next_matching_within(node, PATIENCE, pick).await
}

/// The first event that `pick` maps to `Some` within `patience`, skipping others.
pub(crate) async fn next_matching_within<T>(
    node: &Node,
    patience: Duration,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(patience, async {
        while let Some(ev) = node.next_event().await {
            if let Some(t) = pick(ev) {
                return Ok(t);
            }
        }
        bail!("node closed")
    })
    .await
    .with_context(|| format!("nothing within {patience:?}"))?
}
