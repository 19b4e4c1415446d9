//! A real server on port 0 and nodes that use only 127.0.0.1.

use std::time::Duration;

use switchboard::proto::{PeerId, RoomCode};
use switchboard::{Event, HostCandidates, Node, NodeBuilder};
use switchboard_server::{Server, ServerConfig};
use tokio::sync::oneshot;

/// How long a test waits for something that should happen quickly.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct TestServer {
    pub url: String,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    pub async fn start() -> Self {
        let config = ServerConfig { bind: "127.0.0.1:0".parse().expect("addr"), ..ServerConfig::default() };
        let server = Server::builder().config(config).bind().await.expect("server binds");
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = server
                .serve(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self { url: format!("ws://{addr}/ws"), _stop: stop }
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
