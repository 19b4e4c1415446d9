//! A real server on port 0 and nodes that use only 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard::proto::{PeerId, RoomCode};
use switchboard::{Event, HostCandidates, Node, NodeBuilder, PathKind};
use switchboard_server::{Secret, Server, ServerConfig, TurnConfig};
use tokio::sync::oneshot;

/// How long a test waits for something that should happen quickly.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct TestServer {
    pub url: String,
    /// UDP and TCP addresses of the embedded TURN server, when it runs.
    pub turn: Option<(SocketAddr, Option<SocketAddr>)>,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::default()).await
    }

    /// With the embedded STUN/TURN server on 127.0.0.1 (UDP and TCP).
    pub async fn with_turn() -> Self {
        let turn = TurnConfig { listen: "127.0.0.1:0".parse().expect("addr"), ..TurnConfig::default() };
        Self::start_with(ServerConfig { turn: Some(turn), ..ServerConfig::default() }).await
    }

    /// Without its own TURN server; `welcome` carries credentials minted
    /// with `secret` for the external TURN server at `url` (coturn's
    /// `use-auth-secret` setup).
    pub async fn minting_for(secret: &str, url: String) -> Self {
        Self::start_with(ServerConfig {
            turn_secret: Some(Secret::new(secret)),
            turn_urls: vec![url],
            ..ServerConfig::default()
        })
        .await
    }

    pub async fn start_with(config: ServerConfig) -> Self {
        // RUST_LOG=... shows what the nodes and the server did.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let config = ServerConfig { bind: "127.0.0.1:0".parse().expect("addr"), ..config };
        let server = Server::builder().config(config).bind().await.expect("server binds");
        let addr = server.local_addr();
        let turn = server.turn_udp_addr().map(|udp| (udp, server.turn_tcp_addr()));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = server
                .serve(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self { url: format!("ws://{addr}/ws"), turn, _stop: stop }
    }

    pub fn node(&self) -> NodeBuilder {
        Node::builder().signaling(&self.url).host_candidates(HostCandidates::Loopback)
    }
}

/// Waits for the first event that `pick` maps to `Some`, skipping others.
pub async fn wait_for<T>(node: &Node, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let ev = node.next_event().await.expect("node open");
            if let Some(t) = pick(ev) {
                return t;
            }
        }
    })
    .await
    .expect("event in time")
}

/// Waits until `node` has a connected link to every peer in `peers`.
pub async fn connected_to(node: &Node, peers: impl Into<Vec<PeerId>>) {
    let mut missing: Vec<PeerId> = peers.into();
    while !missing.is_empty() {
        let peer = wait_for(node, |ev| match ev {
            Event::PeerConnected { peer, .. } => Some(peer),
            _ => None,
        })
        .await;
        missing.retain(|p| *p != peer);
    }
}

/// Two started nodes in one new room, connected to each other.
pub async fn pair(_server: &TestServer, a: NodeBuilder, b: NodeBuilder) -> (Node, Node, RoomCode) {
    let a = a.start().await.expect("a starts");
    let b = b.start().await.expect("b starts");
    let room = a.create_room(None, None).await.expect("room");
    a.join(room).await.expect("a joins");
    b.join(room).await.expect("b joins");
    let (ida, idb) = (a.id(), b.id());
    tokio::join!(connected_to(&a, [idb]), connected_to(&b, [ida]));
    (a, b, room)
}

/// The next message's bytes, skipping other events.
pub async fn next_message(node: &Node) -> switchboard::Message {
    wait_for(node, |ev| match ev {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await
}

/// Two started nodes in one new room; waits for both links and returns the
/// path each side reports.
pub async fn pair_with_paths(a: NodeBuilder, b: NodeBuilder) -> (Node, Node, PathKind, PathKind) {
    let a = a.start().await.expect("a starts");
    let b = b.start().await.expect("b starts");
    let room = a.create_room(None, None).await.expect("room");
    a.join(room).await.expect("a joins");
    b.join(room).await.expect("b joins");
    let (pa, pb) = tokio::join!(connected_path(&a), connected_path(&b));
    (a, b, pa, pb)
}

/// The path of the next link that connects.
pub async fn connected_path(node: &Node) -> PathKind {
    wait_for(node, |ev| match ev {
        Event::PeerConnected { path, .. } => Some(path),
        _ => None,
    })
    .await
}

/// Sends `n` numbered messages from `a` to `b` on `reliable` and checks they arrive in order.
pub async fn exchange_in_order(a: &Node, b: &Node, n: u32) {
    for i in 0..n {
        a.send(b.id(), "reliable", i.to_be_bytes().to_vec()).await.expect("send");
    }
    for i in 0..n {
        let m = next_message(b).await;
        assert_eq!(m.data.as_ref(), i.to_be_bytes(), "message {i} out of order or altered");
    }
}
