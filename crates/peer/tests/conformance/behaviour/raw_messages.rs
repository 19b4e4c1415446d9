//! Raw mode, as an application that talks to other WebRTC stacks uses it:
//! text and binary messages stay what they were sent as, the declared
//! channel is reported open on both sides, and a side that closes its
//! connection is reported closed by the other at once (no signaling of
//! ours carries it).

use std::time::Duration;

use switchboard::proto::PeerId;
use switchboard::{ChannelConfig, DisconnectReason, Event, Node};

use crate::harness::{Harness, both, next_message, within, within_for};

/// Hands `node`'s candidates to `other` until `node`'s link is connected;
/// returns the channels reported open meanwhile.
pub async fn link<H: Harness>(h: &H, node: &Node, other: &Node, other_link: PeerId) -> Vec<String> {
    let mut opened = Vec::new();
    within(h, "raw link", async {
        loop {
            match node.next_event().await.expect("node open") {
                Event::LocalCandidate { candidate, .. } => {
                    let _ = other.add_remote_candidate(other_link, &candidate);
                }
                Event::ChannelOpened { channel, .. } => opened.push(channel),
                Event::PeerConnected { .. } => return,
                _ => {}
            }
        }
    })
    .await;
    opened
}

pub async fn run<H: Harness>(h: &H) {
    let raw = || h.serverless().raw_messages(true).channel(ChannelConfig::reliable("chat"));
    let a = within(h, "a starts", raw().start()).await.expect("a starts");
    let b = within(h, "b starts", raw().start()).await.expect("b starts");
    let (b_on_a, offer) = within(h, "offer", a.create_offer()).await.expect("offer");
    let (a_on_b, answer) = within(h, "answer", b.accept_offer(&offer)).await.expect("answer");
    a.accept_answer(b_on_a, &answer).expect("answer applied");
    let (on_a, on_b) = both(link(h, &a, &b, a_on_b), link(h, &b, &a, b_on_a)).await;
    assert_eq!((on_a, on_b), (vec!["chat".to_owned()], vec!["chat".to_owned()]), "each side reports the channel");

    within(h, "text", a.send_text(b_on_a, "chat", "ping 0")).await.expect("text sent");
    within(h, "binary", a.send(b_on_a, "chat", &b"ping 0"[..])).await.expect("binary sent");
    let (text, binary) = (next_message(h, &b).await, next_message(h, &b).await);
    assert_eq!((text.is_text, text.text()), (true, Some("ping 0")));
    assert_eq!((binary.is_text, binary.text(), &binary.data[..]), (false, None, &b"ping 0"[..]));

    // Framed links have probes for this; raw links have ICE's own checks.
    within(h, "b's round trip", async {
        while b.stats(a_on_b).and_then(|s| s.rtt).is_none() {
            h.sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    a.close().await;
    // Without the close on the wire, b would find out only when its path
    // timeouts (3 s of silence, then 15 s) ran out, as `PathLost`.
    let reason = within_for(h, Duration::from_secs(2), "b hears the close", async {
        loop {
            if let Event::PeerDisconnected { reason, .. } = b.next_event().await.expect("b open") {
                return reason;
            }
        }
    })
    .await;
    assert!(matches!(reason, DisconnectReason::ClosedByPeer(_)), "{reason:?}");
    b.close().await;
}
