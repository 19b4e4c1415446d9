//! Two browser nodes meet through the server, link over WebRTC and
//! exchange messages both ways, each tagged with sender and channel.

use switchboard::{LinkState, Node};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{next_message, pair, within};

#[wasm_bindgen_test]
async fn two_nodes_link_and_exchange_messages() {
    let (a, b, room) = pair(Node::builder).await;
    assert_eq!(a.peers(), vec![b.id()]);
    assert_eq!(b.room_peers(room), vec![a.id()]);
    assert_eq!(a.link_state(b.id()), Some(LinkState::Connected));

    within("a sends", a.send(b.id(), "reliable", &b"hello from a"[..])).await.expect("a sends");
    let m = next_message(&b).await;
    assert_eq!((m.peer, &*m.channel, &m.data[..]), (a.id(), "reliable", &b"hello from a"[..]));

    within("b sends", b.broadcast(room, "reliable", &b"hello room"[..], None)).await.expect("b broadcasts");
    let m = next_message(&a).await;
    assert_eq!((m.peer, m.room, &m.data[..]), (b.id(), Some(room), &b"hello room"[..]));

    let stats = a.stats(b.id()).expect("stats of a live link");
    assert_eq!((stats.messages_sent, stats.messages_received), (1, 1));
    assert!(stats.bytes_sent >= 12 && stats.bytes_received >= 10, "{stats:?}");
    a.close().await;
    b.close().await;
}
