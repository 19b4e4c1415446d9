//! With a relay delay of zero, the server relay carries a link from the
//! first moment; once the WebRTC session is up the data moves to it, and
//! every reliable message arrives once, in order, across the move.

use std::time::Duration;

use switchboard::{Event, Node, PathKind};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{next_message, pair_over, wait_for, within};

/// Messages sent while the link moves, and their size: enough that some
/// go by each carrier under the relay's pace.
const MESSAGES: u32 = 400;
const SIZE: usize = 4 << 10;

#[wasm_bindgen_test]
async fn the_relay_carries_first_then_webrtc_and_nothing_is_lost() {
    let builder = || Node::builder().server_relay(Some(Duration::ZERO));
    let why = "keys agree before WebRTC is up, so the relay carries first";
    let (a, b, _) = pair_over(builder, PathKind::Server, why).await;

    for i in 0..MESSAGES {
        let mut data = vec![0u8; SIZE];
        data[..4].copy_from_slice(&i.to_le_bytes());
        within("a sends", a.send(b.id(), "reliable", data)).await.expect("a sends");
    }
    // b sees every message once and in order, and the move to WebRTC.
    let mut next = 0u32;
    let mut moved = None;
    within("every message and the move", async {
        while next < MESSAGES || moved.is_none() {
            match b.next_event().await.expect("node open") {
                Event::Message(m) => {
                    assert_eq!(m.data.len(), SIZE);
                    let i = u32::from_le_bytes(m.data[..4].try_into().expect("4 bytes"));
                    assert_eq!(i, next, "messages arrive once and in order");
                    next += 1;
                }
                Event::PathChanged { peer, path } if peer == a.id() => moved = Some(path),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(moved, Some(PathKind::Host), "the link moved to the WebRTC session");
    // Each side moves its own data: a's move may come a moment after b's.
    let a_moved = wait_for(&a, "a's move to WebRTC", |e| match e {
        Event::PathChanged { path, .. } => Some(path),
        _ => None,
    })
    .await;
    assert_eq!(a_moved, PathKind::Host);
    let stats = a.stats(b.id()).expect("stats of a live link");
    assert_eq!(stats.path, Some(PathKind::Host));
    assert_eq!(stats.messages_sent, u64::from(MESSAGES));

    // The link works on after the move, both ways.
    within("b answers", b.send(a.id(), "reliable", &b"after the move"[..])).await.expect("b sends");
    let m = next_message(&a).await;
    assert_eq!(&m.data[..], b"after the move");
    a.close().await;
    b.close().await;
}
