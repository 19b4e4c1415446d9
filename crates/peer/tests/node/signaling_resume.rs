//! A node that loses its signaling connection keeps its links, reconnects
//! with backoff and resumes its session: same peer id, same rooms, and the
//! other members never see it leave.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use switchboard::Event;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::{PATIENCE, TestServer, connected_to, next_message, wait_for};

/// A TCP forwarder between a node and the server whose connections the test
/// can cut, as a network outage would.
struct Cuttable {
    addr: SocketAddr,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
    _accept: JoinHandle<()>,
}

impl Cuttable {
    async fn to(server: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pipes: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let held = pipes.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Ok(mut outbound) = TcpStream::connect(server).await else { continue };
                let pipe = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                held.lock().expect("pipes").push(pipe);
            }
        });
        Cuttable { addr, pipes, _accept: accept }
    }

    /// Drops every connection through the forwarder (new ones still pass).
    fn cut(&self) {
        for pipe in self.pipes.lock().expect("pipes").drain(..) {
            pipe.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_and_the_room_sees_no_flap() {
    let server = TestServer::start().await;
    let server_addr: SocketAddr = server.url.trim_start_matches("ws://").trim_end_matches("/ws").parse().expect("addr");
    let path = Cuttable::to(server_addr).await;
    let a = switchboard::Node::builder()
        .signaling(format!("ws://{}/ws", path.addr))
        .host_candidates(switchboard::HostCandidates::Loopback)
        .start()
        .await
        .expect("a starts");
    let b = server.node().start().await.expect("b starts");
    let room = a.create_room(None, None).await.expect("room");
    a.join(room).await.expect("a joins");
    b.join(room).await.expect("b joins");
    tokio::join!(connected_to(&a, [b.id()]), connected_to(&b, [a.id()]));

    path.cut();
    let reason = wait_for(&a, |ev| match ev {
        Event::SignalingLost { reason } => Some(reason),
        _ => None,
    })
    .await;
    assert!(!reason.is_empty());
    // The link does not need the server.
    a.send(b.id(), "reliable", &b"while away"[..]).await.expect("send while away");
    assert_eq!(next_message(&b).await.data.as_ref(), b"while away");

    let resumed = wait_for(&a, |ev| match ev {
        Event::SignalingRestored { resumed } => Some(resumed),
        Event::SignalingClosed { reason } => panic!("gave up: {reason}"),
        _ => None,
    })
    .await;
    assert!(resumed, "the server did not resume the session");
    assert_eq!(a.room_peers(room), vec![b.id()]);
    // The server answers again, and the peer id is the same.
    let other = a.create_room(None, None).await.expect("a room after the reconnection");
    assert_ne!(other, room);

    // b never saw a leave: everything it reported since is drained here.
    b.send(a.id(), "reliable", &b"marker"[..]).await.expect("send");
    assert_eq!(next_message(&a).await.data.as_ref(), b"marker");
    let flap = tokio::time::timeout(PATIENCE / 20, async {
        loop {
            match b.next_event().await {
                Some(Event::PeerLeft { peer, .. } | Event::PeerDisconnected { peer, .. }) if peer == a.id() => {
                    return true;
                }
                Some(_) => {}
                None => return false,
            }
        }
    })
    .await;
    assert_ne!(flap, Ok(true), "b saw a leave or lost its link");
    a.close().await;
    b.close().await;
}
