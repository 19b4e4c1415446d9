//! Two nodes meet through the server, link, and exchange messages both
//! ways: in order, tagged with sender, channel and room; broadcast,
//! MessagePack and stats; closing one ends the link on the other.

use serde::{Deserialize, Serialize};
use switchboard::{DisconnectReason, Event, LinkState};

use crate::harness::{Harness, next_message, number_of, numbered, pair, wait_for, within};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Move {
    x: i32,
    name: String,
}

pub async fn run<H: Harness>(h: &H) {
    let (a, b, room) = pair(h, || h.node()).await;
    assert_eq!(a.peers(), vec![b.id()]);
    assert_eq!(b.room_peers(room), vec![a.id()]);
    assert_eq!(a.link_state(b.id()), Some(LinkState::Connected));

    for i in 0..200 {
        within(h, "a sends", a.send(b.id(), "reliable", numbered(i, 100))).await.expect("a sends");
    }
    for i in 0..200 {
        let m = next_message(h, &b).await;
        assert_eq!((m.peer, &*m.channel), (a.id(), "reliable"));
        assert_eq!(number_of(&m), i, "reliable messages arrive once and in order");
    }

    let sent = within(h, "b broadcasts", b.broadcast(room, "reliable", &b"hello room"[..], None)).await;
    assert_eq!(sent, Ok(1), "the broadcast went to the one other peer");
    let m = next_message(h, &a).await;
    assert_eq!((m.peer, m.room, &m.data[..]), (b.id(), Some(room), &b"hello room"[..]));

    let value = Move { x: -3, name: "knight".into() };
    within(h, "msgpack", a.send_msgpack(b.id(), "reliable", &value)).await.expect("a sends msgpack");
    assert_eq!(next_message(h, &b).await.msgpack::<Move>().expect("decodes"), value);
    within(h, "in room", a.send_in_room(b.id(), room, "unreliable", &b"tagged"[..])).await.expect("a sends");
    let m = next_message(h, &b).await;
    assert_eq!((&*m.channel, m.room, &m.data[..]), ("unreliable", Some(room), &b"tagged"[..]));

    let stats = a.stats(b.id()).expect("stats of a live link");
    assert_eq!((stats.messages_sent, stats.messages_received), (202, 1));
    assert!(stats.bytes_sent >= 200 * 100 && stats.setup_time.is_some(), "{stats:?}");

    b.close().await;
    let reason = wait_for(h, &a, "b gone", |e| match e {
        Event::PeerDisconnected { peer, reason } if peer == b.id() => Some(reason),
        _ => None,
    })
    .await;
    assert!(matches!(reason, DisconnectReason::ClosedByPeer(_)), "{reason:?}");
    assert_eq!(a.send(b.id(), "reliable", &b"late"[..]).await, Err(switchboard::SendError::UnknownPeer(b.id())));
    a.close().await;
}
