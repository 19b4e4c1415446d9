//! Two nodes in a room connect directly and exchange messages both ways.

use switchboard::{Event, LinkState, PathKind};

use crate::common::*;

#[tokio::test]
async fn two_nodes_connect_and_talk() {
    let server = TestServer::start().await;
    let a = server.node().start().await.expect("a");
    let b = server.node().start().await.expect("b");
    let room = a.create_room(None, None).await.expect("room");
    a.join(room).await.expect("a joins");
    b.join(room).await.expect("b joins");
    let (path, _) = wait_for(&a, |ev| match ev {
        Event::PeerConnected { peer, path, rtt } if peer == b.id() => Some((path, rtt)),
        _ => None,
    })
    .await;
    assert_eq!(path, PathKind::Host);
    connected_to(&b, [a.id()]).await;

    a.send(b.id(), "reliable", &b"hello b"[..]).await.expect("send");
    let m = next_message(&b).await;
    assert_eq!((m.peer, &*m.channel, &m.data[..]), (a.id(), "reliable", &b"hello b"[..]));
    b.send_json(a.id(), "reliable", &serde_json::json!({"n": 1})).await.expect("send json");
    let m = next_message(&a).await;
    assert_eq!(m.json::<serde_json::Value>().expect("json"), serde_json::json!({"n": 1}));
    b.send_msgpack(a.id(), "unreliable", &(7u32, "x")).await.expect("send msgpack");
    let m = next_message(&a).await;
    assert_eq!(m.msgpack::<(u32, String)>().expect("msgpack"), (7, "x".to_owned()));

    let stats = a.stats(b.id()).expect("stats");
    assert_eq!((stats.messages_sent, stats.messages_received), (1, 2));
    assert_eq!(stats.path, Some(PathKind::Host));
    assert!(stats.remote_addr.is_some_and(|r| r.ip().is_loopback()));
    assert!(stats.setup_time.is_some());
    let history: Vec<LinkState> = a.link_history(b.id()).into_iter().map(|(_, s)| s).collect();
    assert_eq!(history, [LinkState::New, LinkState::Signaling, LinkState::Connecting, LinkState::Connected]);

    // Unknown channels and peers are clear errors.
    assert!(matches!(a.send(b.id(), "nope", &b"x"[..]).await, Err(switchboard::SendError::UnknownChannel(_))));
    assert!(matches!(a.send(a.id(), "reliable", &b"x"[..]).await, Err(switchboard::SendError::UnknownPeer(_))));

    // Leaving the room ends the link on both sides.
    a.leave(room).await.expect("leave");
    let reason = wait_for(&b, |ev| match ev {
        Event::PeerDisconnected { peer, reason } if peer == a.id() => Some(reason),
        _ => None,
    })
    .await;
    // Both sides learn of the leave, so either may close first.
    use switchboard::DisconnectReason::{Closed, ClosedByPeer};
    assert!(matches!(reason, Closed | ClosedByPeer(_)), "{reason:?}");
    assert!(b.peers().is_empty());
}
