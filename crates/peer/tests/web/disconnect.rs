//! When one node closes, the other sees the peer leave the room and the
//! link end as closed by the peer; sending to it then fails.

use switchboard::{DisconnectReason, Event, Node, SendError};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{pair, wait_for};

#[wasm_bindgen_test]
async fn closing_a_node_ends_the_link_on_the_other_side() {
    let (a, b, room) = pair(Node::builder).await;
    let gone = b.id();
    b.close().await;
    let reason = wait_for(&a, "peer disconnected", |e| match e {
        Event::PeerDisconnected { peer, reason } if peer == gone => Some(reason),
        _ => None,
    })
    .await;
    assert!(matches!(reason, DisconnectReason::ClosedByPeer(_)), "{reason:?}");
    wait_for(&a, "peer left", |e| match e {
        Event::PeerLeft { room: r, peer } if r == room && peer == gone => Some(()),
        _ => None,
    })
    .await;
    assert!(a.peers().is_empty());
    let send = a.send(gone, "reliable", &b"anyone?"[..]).await;
    assert!(matches!(send, Err(SendError::UnknownPeer(p)) if p == gone), "{send:?}");
    a.close().await;
}
