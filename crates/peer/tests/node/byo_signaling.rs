//! Two nodes without any server connect through the bring-your-own-signaling
//! API: the test carries the offer, answer and candidates by hand.

use switchboard::{Event, HostCandidates, Node};

use crate::common::*;

#[tokio::test]
async fn two_nodes_without_a_server() {
    let a = Node::builder().host_candidates(HostCandidates::Loopback).start().await.expect("a");
    let b = Node::builder().host_candidates(HostCandidates::Loopback).start().await.expect("b");
    assert!(a.create_room(None, None).await.is_err(), "no server, no rooms");
    let (b_on_a, offer) = a.create_offer().await.expect("offer");
    assert!(offer.contains("a=sctp-port"), "standard SDP:\n{offer}");
    let (a_on_b, answer) = b.accept_offer(&offer).await.expect("answer");
    a.accept_answer(b_on_a, &answer).expect("accept answer");
    // Trickle: whatever candidates come out are handed over too.
    let bad = a.add_remote_candidate(b_on_a, "candidate:garbage");
    assert!(bad.is_err(), "a broken candidate is a clear error");
    tokio::join!(connected(&a, b_on_a), connected(&b, a_on_b));
    a.send(b_on_a, "reliable", &b"no server needed"[..]).await.expect("send");
    let m = next_message(&b).await;
    assert_eq!((m.peer, &m.data[..]), (a_on_b, &b"no server needed"[..]));
}

async fn connected(node: &Node, want: switchboard::proto::PeerId) {
    wait_for(node, |ev| match ev {
        Event::PeerConnected { peer, .. } if peer == want => Some(()),
        _ => None,
    })
    .await
}
