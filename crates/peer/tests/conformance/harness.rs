//! What the conformance tests need from where they run, and the helpers
//! they share. The same test bodies (`behaviour/`) run natively
//! (`conformance/main.rs`: tokio, a server in the process, a network
//! namespace of their own) and in browsers (`web/main.rs`: wasm-bindgen-test
//! in Chromium and Firefox, a server under `switchboard test-server`).

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use switchboard::proto::{PeerId, RoomCode};
use switchboard::{Event, Message, Node, NodeBuilder, PathKind};

/// How long a test waits for something that should happen quickly.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Where the tests run.
pub trait Harness {
    /// Settings of a node on the test server.
    fn node(&self) -> NodeBuilder;
    /// Settings of a node without a server (native: loopback host candidates).
    fn serverless(&self) -> NodeBuilder;
    /// Resolves after `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()>;
    /// Kills the signaling server (no goodbye: every session and room is
    /// lost) and starts it again on the same address.
    fn restart_server(&self) -> impl Future<Output = ()>;
    /// Blocks every UDP datagram between the nodes (no WebRTC path is
    /// left; the signaling server stays reachable), or lets UDP pass again.
    fn set_udp_blocked(&self, blocked: bool) -> impl Future<Output = ()>;
    /// A trust store location of this test's own named `name` (natively a
    /// file in a temporary directory, in the browser an IndexedDB key).
    fn trust_store(&self, name: &str) -> String;
}

/// `fut`'s output, or a panic naming `what` after `limit`.
pub async fn within_for<H: Harness, F: Future>(h: &H, limit: Duration, what: &str, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut timer = pin!(h.sleep(limit));
    let out = poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    out.unwrap_or_else(|| panic!("{what}: nothing within {limit:?}"))
}

/// `fut`'s output, or a panic naming `what` after [`PATIENCE`].
pub async fn within<H: Harness, F: Future>(h: &H, what: &str, fut: F) -> F::Output {
    within_for(h, PATIENCE, what, fut).await
}

/// Runs both futures to completion, concurrently.
pub async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    (ra.expect("a finished"), rb.expect("b finished"))
}

/// Waits for the first event of `node` that `pick` maps to `Some`, skipping others.
pub async fn wait_for<H: Harness, T>(h: &H, node: &Node, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    within(h, what, async {
        loop {
            let event = node.next_event().await.expect("node open");
            if let Some(t) = pick(event) {
                return t;
            }
        }
    })
    .await
}

/// The next message `node` receives.
pub async fn next_message<H: Harness>(h: &H, node: &Node) -> Message {
    wait_for(h, node, "a message", |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await
}

/// Starts a node.
pub async fn start<H: Harness>(h: &H, builder: NodeBuilder) -> Node {
    within(h, "node start", builder.start()).await.expect("node starts")
}

/// The path of the link to `peer` once it connects.
pub async fn connected<H: Harness>(h: &H, node: &Node, peer: PeerId) -> PathKind {
    wait_for(h, node, "peer connected", |e| match e {
        Event::PeerConnected { peer: p, path, .. } if p == peer => Some(path),
        _ => None,
    })
    .await
}

/// Waits until `node` has a connected link to each of `peers`.
pub async fn connected_all<H: Harness>(h: &H, node: &Node, peers: &[PeerId]) {
    let mut missing = peers.to_vec();
    while !missing.is_empty() {
        let peer = wait_for(h, node, "peers connected", |e| match e {
            Event::PeerConnected { peer, .. } => Some(peer),
            _ => None,
        })
        .await;
        missing.retain(|p| *p != peer);
    }
}

/// Two nodes from `builder` in a new room, linked; returns the path each reports.
pub async fn pair_paths<H: Harness>(h: &H, builder: impl Fn() -> NodeBuilder) -> (Node, Node, RoomCode, PathKind) {
    let a = start(h, builder()).await;
    let room = within(h, "create room", a.create_room(None, None)).await.expect("room created");
    within(h, "a joins", a.join(room)).await.expect("a joins");
    let b = start(h, builder()).await;
    within(h, "b joins", b.join(room)).await.expect("b joins");
    let (pa, pb) = both(connected(h, &a, b.id()), connected(h, &b, a.id())).await;
    assert_eq!(pa, pb, "both sides of one link name the same path");
    (a, b, room, pa)
}

/// Two nodes from `builder` in a new room, linked over a direct path.
pub async fn pair<H: Harness>(h: &H, builder: impl Fn() -> NodeBuilder) -> (Node, Node, RoomCode) {
    let (a, b, room, path) = pair_paths(h, builder).await;
    assert_eq!(path, PathKind::Host, "two nodes on one machine link over host candidates");
    (a, b, room)
}

/// A message numbered `i` of `size` bytes (the number first, then a pattern).
pub fn numbered(i: u32, size: usize) -> Vec<u8> {
    let mut data = vec![(i % 251) as u8; size.max(4)];
    data[..4].copy_from_slice(&i.to_be_bytes());
    data
}

/// The number of a message made by [`numbered`], checking its pattern.
pub fn number_of(m: &Message) -> u32 {
    let i = u32::from_be_bytes(m.data[..4].try_into().expect("4 bytes"));
    assert!(m.data[4..].iter().all(|&x| x == (i % 251) as u8), "message {i} altered");
    i
}
