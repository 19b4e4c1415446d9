//! The signaling server is killed and started again with nothing of the
//! old sessions: nodes keep their link meanwhile, reconnect with backoff,
//! join their room again, and the room is as before.

use switchboard::{Event, LinkState};

use crate::harness::{Harness, both, next_message, pair, wait_for, within};

pub async fn run<H: Harness>(h: &H) {
    let (a, b, room) = pair(h, || h.node()).await;
    h.restart_server().await;
    for n in [&a, &b] {
        wait_for(h, n, "signaling lost", |e| matches!(e, Event::SignalingLost { .. }).then_some(())).await;
    }
    // The link does not need the server.
    let (sent, got) = both(a.send(b.id(), "reliable", &b"while away"[..]), next_message(h, &b)).await;
    sent.expect("a sends while the server is away");
    assert_eq!(&got.data[..], b"while away");
    for n in [&a, &b] {
        let resumed = wait_for(h, n, "signaling restored", |e| match e {
            Event::SignalingRestored { resumed } => Some(resumed),
            Event::SignalingClosed { reason } => panic!("gave up: {reason}"),
            Event::RoomLost { room, reason } => panic!("room {room} lost: {reason}"),
            _ => None,
        })
        .await;
        assert!(!resumed, "a restarted server holds no session");
    }
    assert_eq!(a.room_peers(room), vec![b.id()]);
    assert_eq!(b.room_peers(room), vec![a.id()]);
    assert_eq!(a.link_state(b.id()), Some(LinkState::Connected), "the link outlived the server");
    let other = within(h, "a room on the new server", a.create_room(None, None)).await.expect("room");
    assert_ne!(other, room);
    a.close().await;
    b.close().await;
}
