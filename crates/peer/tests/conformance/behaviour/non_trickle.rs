//! Bring-your-own signaling without trickle: each side waits until its
//! node says gathering is complete and sends the complete description, with
//! every candidate in it; no candidate travels on its own. Directly, and
//! relay-only through the test server's TURN (whose candidate comes only
//! after the first description was made).

use switchboard::{Event, IcePolicy, Node, NodeBuilder, PathKind};

use crate::harness::{Harness, both, connected, next_message, start, wait_for, within};

/// The complete description `node` reports.
async fn complete<H: Harness>(h: &H, node: &Node) -> String {
    wait_for(h, node, "gathering complete", |e| match e {
        Event::GatheringComplete { description, .. } => Some(description),
        _ => None,
    })
    .await
}

async fn link<H: Harness>(h: &H, a: NodeBuilder, b: NodeBuilder, kind: &str, path: PathKind) {
    let (a, b) = (start(h, a).await, start(h, b).await);
    let (b_on_a, _) = within(h, "offer", a.create_offer()).await.expect("offer");
    let offer = complete(h, &a).await;
    assert!(offer.contains(kind) && offer.ends_with("a=end-of-candidates\r\n"), "a complete offer: {offer}");
    let (a_on_b, _) = within(h, "answer", b.accept_offer(&offer)).await.expect("answer");
    let answer = complete(h, &b).await;
    assert!(answer.contains(kind) && answer.contains("a=end-of-candidates"), "a complete answer: {answer}");
    a.accept_answer(b_on_a, &answer).expect("answer applied");
    let (pa, pb) = both(connected(h, &a, b_on_a), connected(h, &b, a_on_b)).await;
    assert_eq!((pa, pb), (path, path));
    within(h, "send", a.send(b_on_a, "reliable", &b"without trickle"[..])).await.expect("sent");
    assert_eq!(&next_message(h, &b).await.data[..], b"without trickle");
    a.close().await;
    b.close().await;
}

pub async fn run<H: Harness>(h: &H) {
    link(h, h.serverless(), h.serverless(), "typ host", PathKind::Host).await;
    let relay = || h.node().ice_policy(IcePolicy::Relay);
    link(h, relay(), relay(), "typ relay", PathKind::Relayed).await;
}
