//! `switchboard serve` is killed with SIGKILL and started again on the same
//! address with no memory of its rooms: the peer-to-peer link stays up, both
//! nodes reconnect, the room is made again with its code and password, and
//! neither node reports the other leaving or joining.

use crate::common;

use common::{PATIENCE, Serve};
use switchboard::proto::PeerId;
use switchboard::{Event, HostCandidates, Node};

async fn next<T>(node: &Node, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(t) = pick(node.next_event().await.expect("node open")) {
                return t;
            }
        }
    })
    .await
    .expect("event in time")
}

/// True if `node` reports `peer` leaving, joining or disconnecting before
/// the message `marker` arrives.
async fn flapped_before(node: &Node, peer: PeerId, marker: &[u8]) -> bool {
    next(node, |ev| match ev {
        Event::PeerLeft { peer: p, .. }
        | Event::PeerJoined { peer: p, .. }
        | Event::PeerDisconnected { peer: p, .. }
            if p == peer =>
        {
            Some(true)
        }
        Event::Message(m) if m.data.as_ref() == marker => Some(false),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_gets_the_room_back_without_a_flap() {
    let mut server = Serve::start();
    let url = server.url.clone();
    let bind = url.trim_start_matches("ws://").trim_end_matches("/ws").to_owned();
    let node = || Node::builder().signaling(&url).host_candidates(HostCandidates::Loopback).start();
    let (a, b) = (node().await.expect("a starts"), node().await.expect("b starts"));
    let room = a.create_room(Some("secret"), None).await.expect("room");
    a.join_with(room, Some("secret"), None).await.expect("a joins");
    b.join_with(room, Some("secret"), None).await.expect("b joins");
    for (n, other) in [(&a, b.id()), (&b, a.id())] {
        next(n, |ev| matches!(ev, Event::PeerConnected { peer, .. } if peer == other).then_some(())).await;
    }

    // SIGKILL: no shutdown code runs, every connection just drops.
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    drop(server);
    for n in [&a, &b] {
        next(n, |ev| matches!(ev, Event::SignalingLost { .. }).then_some(())).await;
    }
    a.send(b.id(), "reliable", &b"no server"[..]).await.expect("send while the server is down");
    let got = next(&b, |ev| match ev {
        Event::Message(m) => Some(m.data),
        _ => None,
    })
    .await;
    assert_eq!(got.as_ref(), b"no server");

    let _server = Serve::at(&bind);
    for n in [&a, &b] {
        let resumed = next(n, |ev| match ev {
            Event::SignalingRestored { resumed } => Some(resumed),
            Event::RoomLost { reason, .. } => panic!("room lost: {reason}"),
            _ => None,
        })
        .await;
        assert!(!resumed, "a new server process cannot resume a session");
    }
    // Both rejoined before `SignalingRestored`; the one back first still
    // counts the other in while it has a link to it.
    assert_eq!(a.room_peers(room), vec![b.id()]);
    assert_eq!(b.room_peers(room), vec![a.id()]);
    let c = node().await.expect("c starts");
    assert!(c.join(room).await.is_err(), "the rebuilt room let a peer in without its password");
    c.join_with(room, Some("secret"), None).await.expect("the rebuilt room takes its password");

    a.send(b.id(), "reliable", &b"marker"[..]).await.expect("send");
    b.send(a.id(), "reliable", &b"marker"[..]).await.expect("send");
    let (fa, fb) = tokio::join!(flapped_before(&a, b.id(), b"marker"), flapped_before(&b, a.id(), b"marker"));
    assert!(!fa && !fb, "a member was reported leaving or joining (at a: {fa}, at b: {fb})");
}
