//! Without a signaling server, the application carries the offer, the
//! answer and the candidates itself; the link then works as any other.

use switchboard::proto::PeerId;
use switchboard::{Event, Node};

use crate::harness::{Harness, both, within};

/// Hands `node`'s candidates for `link` to `other` (its link `other_link`)
/// until `node` reports the link connected.
pub async fn trickle<H: Harness>(h: &H, node: &Node, other: &Node, other_link: PeerId) {
    within(h, "link by hand", async {
        loop {
            match node.next_event().await.expect("node open") {
                Event::LocalCandidate { candidate, .. } => {
                    let _ = other.add_remote_candidate(other_link, &candidate);
                }
                Event::PeerConnected { .. } => return,
                _ => {}
            }
        }
    })
    .await;
}

pub async fn run<H: Harness>(h: &H) {
    let a = within(h, "a starts", h.serverless().start()).await.expect("a starts");
    let b = within(h, "b starts", h.serverless().start()).await.expect("b starts");
    let (b_on_a, offer) = within(h, "offer", a.create_offer()).await.expect("offer");
    assert!(offer.contains("m=application"), "an SDP offer");
    let (a_on_b, answer) = within(h, "answer", b.accept_offer(&offer)).await.expect("answer");
    a.accept_answer(b_on_a, &answer).expect("answer applied");
    both(trickle(h, &a, &b, a_on_b), trickle(h, &b, &a, b_on_a)).await;

    within(h, "a sends", a.send(b_on_a, "reliable", &b"no server involved"[..])).await.expect("send");
    let got = within(h, "b gets it", async {
        loop {
            if let Event::Message(m) = b.next_event().await.expect("open") {
                return m;
            }
        }
    })
    .await;
    assert_eq!(&got.data[..], b"no server involved");
    assert_eq!(got.peer, a_on_b, "messages come from the handle accept_offer returned");
    assert!(a.accept_answer(PeerId::from_bytes([7; 16]), &answer).is_err(), "no such link");
    a.close().await;
    b.close().await;
}
