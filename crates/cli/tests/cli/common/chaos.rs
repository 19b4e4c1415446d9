//! A NAT lab with a real `switchboard serve` in its server namespace and
//! nodes run inside peer namespaces, for the chaos tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use switchboard::{Event, Node};
use switchboard_natlab::{Lab, LabSpec, NatKind, Peer};

/// The lab and its server process (killed on drop, before the lab goes).
pub struct ChaosLab {
    pub url: String,
    server: Child,
    pub lab: Lab,
}

impl ChaosLab {
    pub fn build(spec: LabSpec) -> Self {
        Self::build_with(spec, &[])
    }

    /// A lab for pages: an open site (the page's) whose UDP is blocked, as
    /// behind a firewall that lets only TCP out, and a site behind a
    /// port-restricted NAT; `serve` hands out the page library in `pkg`
    /// and runs TURN over UDP only, so that no WebRTC path exists.
    pub fn page_lab_without_udp(pkg: &str) -> Self {
        let chaos = Self::build_with(
            LabSpec::new().site(NatKind::Open, 1).site(NatKind::PortRestricted, 1),
            &["--web-pkg", pkg, "--no-turn-tcp"],
        );
        chaos.lab.set_udp_blocked(0, true).expect("block the page's UDP");
        chaos
    }

    /// With more `serve` arguments.
    pub fn build_with(spec: LabSpec, extra: &[&str]) -> Self {
        // RUST_LOG=... shows what the nodes did.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_thread_names(true)
            .with_test_writer()
            .try_init();
        let lab = Lab::build(&spec).expect("lab builds (needs root)");
        let ip = lab.server().ip();
        let mut server = lab
            .server()
            .netns()
            .command(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--memory", "--log", "warn", "--bind", &format!("{ip}:7600")])
            .args(["--turn-listen", &format!("{ip}:3478"), "--stun-alt-ip", &lab.server().alt_ip().to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("serve starts in the server namespace");
        let mut first = String::new();
        BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut first).expect("first line");
        let url = first.trim().strip_prefix("listening on ").expect("address line").to_owned();
        ChaosLab { url, server, lab }
    }

    /// Runs `f` with a started node inside `peer`'s namespace, on a runtime of its own.
    pub fn node<T: Send + 'static>(
        &self,
        peer: &Peer,
        f: impl FnOnce(Node) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
    ) -> JoinHandle<T> {
        let url = self.url.clone();
        peer.netns()
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    let node = Node::builder().signaling(&url).start().await.expect("node starts");
                    f(node).await
                })
            })
            .expect("thread in the peer's namespace")
    }
}

/// The sending side of a chaos test: a node at the first peer of site 0
/// that creates a room and, once its link is up and the test says go, sends
/// messages `0..n` 25 ms apart ([`send_numbered`]).
pub struct NumberedSender {
    thread: JoinHandle<()>,
    up: mpsc::Receiver<()>,
    go: mpsc::SyncSender<()>,
}

impl NumberedSender {
    /// Waits until the sender's link is up.
    pub fn wait_up(&self) {
        self.up.recv_timeout(super::PATIENCE).expect("the link came up");
    }

    /// Lets the messages go.
    pub fn go(&self) {
        self.go.send(()).expect("go");
    }

    /// Waits until every message was acknowledged and the link closed.
    pub fn join(self) {
        self.thread.join().expect("sender finished");
    }
}

impl ChaosLab {
    /// Starts a [`NumberedSender`] of `n` messages; the room code comes out of the receiver.
    pub fn numbered_sender(&self, n: u32) -> (NumberedSender, mpsc::Receiver<switchboard::proto::RoomCode>) {
        let (room_tx, room_rx) = handoff();
        let (up_tx, up) = handoff::<()>();
        let (go, go_rx) = handoff::<()>();
        let thread = self.node(self.lab.peer(0, 0), move |node| {
            Box::pin(async move {
                let peer = host(&node, room_tx).await;
                up_tx.send(()).expect("up");
                go_rx.recv().expect("go");
                send_numbered(&node, peer, n, std::time::Duration::from_millis(25)).await;
            })
        });
        (NumberedSender { thread, up, go }, room_rx)
    }
}

impl Drop for ChaosLab {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// A one-shot handoff between the test and a node's thread.
pub fn handoff<T>() -> (mpsc::SyncSender<T>, mpsc::Receiver<T>) {
    mpsc::sync_channel(1)
}

/// The next event `pick` takes; a link ending first fails the test unless
/// `pick` takes that event.
pub async fn next<T>(node: &Node, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(super::PATIENCE * 3, async {
        loop {
            let ev = node.next_event().await.expect("node open");
            let ended = match &ev {
                Event::PeerDisconnected { reason, .. } => Some(reason.to_string()),
                _ => None,
            };
            if let Some(t) = pick(ev) {
                return t;
            }
            if let Some(reason) = ended {
                panic!("the link ended: {reason}");
            }
        }
    })
    .await
    .expect("event in time")
}

/// Creates a room, hands its code over, and waits for the first peer's link.
pub async fn host(node: &Node, code: mpsc::SyncSender<switchboard::proto::RoomCode>) -> switchboard::proto::PeerId {
    let room = node.create_room(None, None).await.expect("room");
    node.join(room).await.expect("join");
    code.send(room).expect("room code handed over");
    linked(node).await
}

/// Joins the room whose code comes over `code`, and waits for the link.
pub async fn guest(node: &Node, code: mpsc::Receiver<switchboard::proto::RoomCode>) -> switchboard::proto::PeerId {
    let room = code.recv().expect("room code");
    node.join(room).await.expect("join");
    linked(node).await
}

async fn linked(node: &Node) -> switchboard::proto::PeerId {
    next(node, |ev| match ev {
        Event::PeerConnected { peer, .. } => Some(peer),
        _ => None,
    })
    .await
}

/// The next `n` messages must be `0..n` in order (first four bytes, big
/// endian), each exactly once.
pub async fn expect_in_order(node: &Node, n: u32) {
    expect_in_order_watching(node, n, |_| None::<()>, |()| {}).await;
}

/// Like [`expect_in_order`], handing what `watch` takes from the other
/// events to `report` as they come.
pub async fn expect_in_order_watching<T>(
    node: &Node,
    n: u32,
    mut watch: impl FnMut(Event) -> Option<T>,
    mut report: impl FnMut(T),
) {
    let mut i = 0u32;
    while i < n {
        let got = next(node, |ev| match ev {
            Event::Message(m) => Some(Ok(m.data)),
            other => watch(other).map(Err),
        })
        .await;
        match got {
            Ok(data) => {
                assert_eq!(data.get(..4), Some(&i.to_be_bytes()[..]), "message {i} lost, repeated or out of order");
                i += 1;
            }
            Err(seen) => report(seen),
        }
    }
}

/// Tells the sender everything arrived, then waits for it to close the link.
pub async fn ack_and_wait_close(node: &Node, peer: switchboard::proto::PeerId) {
    node.send(peer, "reliable", &b"all here"[..]).await.expect("send");
    next(node, |ev| matches!(ev, Event::PeerDisconnected { .. }).then_some(())).await;
}

/// Sends messages `0..n` (first four bytes, big endian) on the reliable
/// channel, `gap` apart, then waits for the receiver's acknowledgement and
/// closes the link.
pub async fn send_numbered(node: &Node, peer: switchboard::proto::PeerId, n: u32, gap: std::time::Duration) {
    for i in 0..n {
        node.send(peer, "reliable", i.to_be_bytes().to_vec()).await.expect("send");
        tokio::time::sleep(gap).await;
    }
    await_ack_and_close(node).await;
}

/// Waits for the receiver's acknowledgement, then closes the link.
pub async fn await_ack_and_close(node: &Node) {
    next(node, |ev| matches!(ev, Event::Message(m) if m.data.as_ref() == b"all here").then_some(())).await;
    node.close().await;
}
