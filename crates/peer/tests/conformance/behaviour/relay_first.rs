//! With a relay delay of zero, the server relay carries a link from the
//! first moment (UDP is blocked at first, so that WebRTC cannot win the
//! race); once UDP passes and a WebRTC session is up, each side moves its
//! data to it, and every reliable message arrives once, in order, across
//! the move. Which WebRTC pair ICE nominates first is the browser's choice:
//! when UDP opens, a pair through the TURN relay may complete before the
//! host pair, so any WebRTC path counts as the move.

use std::time::Duration;

use switchboard::{Event, PathKind};

use crate::harness::{Harness, both, next_message, number_of, numbered, pair_paths, wait_for, within};

const MESSAGES: u32 = 400;
const SIZE: usize = 4 << 10;

pub async fn run<H: Harness>(h: &H) {
    h.set_udp_blocked(true).await;
    let (a, b, _room, path) = pair_paths(h, || h.node().server_relay(Some(Duration::ZERO))).await;
    assert_eq!(path, PathKind::Server, "without WebRTC the relay carries from the first moment");
    for i in 0..MESSAGES / 2 {
        within(h, "a sends", a.send(b.id(), "reliable", numbered(i, SIZE))).await.expect("a sends");
    }
    h.set_udp_blocked(false).await;
    for i in MESSAGES / 2..MESSAGES {
        within(h, "a sends", a.send(b.id(), "reliable", numbered(i, SIZE))).await.expect("a sends");
    }
    let mut next = 0;
    let mut moved = false;
    within(h, "every message and the move", async {
        while next < MESSAGES || !moved {
            match b.next_event().await.expect("node open") {
                Event::Message(m) => {
                    assert_eq!(number_of(&m), next, "messages arrive once and in order");
                    next += 1;
                }
                Event::PathChanged { path, .. } => {
                    assert_ne!(path, PathKind::Server, "the link moved to the WebRTC session");
                    moved = true;
                }
                _ => {}
            }
        }
    })
    .await;
    let a_moved = wait_for(h, &a, "a's move", |e| match e {
        Event::PathChanged { path, .. } => Some(path),
        _ => None,
    })
    .await;
    assert_ne!(a_moved, PathKind::Server, "a moved to the WebRTC session");
    let now = a.stats(b.id()).expect("stats").path;
    assert!(now.is_some_and(|p| p != PathKind::Server), "a's link stays on WebRTC, got {now:?}");
    let (sent, got) = both(b.send(a.id(), "reliable", &b"after the move"[..]), next_message(h, &a)).await;
    sent.expect("b sends");
    assert_eq!(&got.data[..], b"after the move");
    a.close().await;
    b.close().await;
}
