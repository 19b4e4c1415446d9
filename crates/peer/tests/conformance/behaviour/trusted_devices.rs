//! Trusted devices: a device that trusts another links with it as soon as
//! both are online, without a room; the trust book outlives the node in its
//! store; a device nobody trusts is held for the application, which
//! refuses it; a blocked one is never linked.

use switchboard::proto::PeerId;
use switchboard::{Event, Identity, Node, Trust};

use crate::harness::{Harness, connected, start, wait_for, within};

/// A device with `identity` whose trust book is in `store`.
async fn device<H: Harness>(h: &H, identity: &Identity, store: &str) -> Node {
    start(h, h.node().identity(identity.clone()).trust_store(store)).await
}

async fn requested<H: Harness>(h: &H, node: &Node) -> PeerId {
    wait_for(h, node, "a link request", |e| match e {
        Event::LinkRequested { peer, .. } => Some(peer),
        Event::PeerConnected { peer, .. } => panic!("linked with {peer} without the application's word"),
        _ => None,
    })
    .await
}

pub async fn run<H: Harness>(h: &H) {
    let (ia, ib, ic) = (Identity::generate(), Identity::generate(), Identity::generate());
    let (store_a, store_b) = (h.trust_store("a"), h.trust_store("b"));

    let a = device(h, &ia, &store_a).await;
    assert_eq!(a.trust_book(), vec![], "a new store trusts no one");
    a.set_trust(ib.peer_id(), Some(Trust::Trusted));
    a.set_trust(ic.peer_id(), Some(Trust::Blocked));
    // b comes online later, trusting a: they link with no room.
    let b = device(h, &ib, &store_b).await;
    b.set_trust(ia.peer_id(), Some(Trust::Trusted));
    connected(h, &a, b.id()).await;
    connected(h, &b, a.id()).await;

    // A device nobody trusts asks a: the application decides, and refuses.
    let d = start(h, h.node()).await;
    d.request_link(a.id(), None).expect("asked");
    assert_eq!(requested(h, &a).await, d.id());
    a.reject(d.id(), Some("not one of mine".into())).expect("refused");
    let reason = wait_for(h, &d, "the refusal", |e| match e {
        Event::LinkRejected { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert_eq!(reason.as_deref(), Some("not one of mine"));
    // A blocked device's request never reaches the application, and it
    // gets no link even trusting a.
    let c = device(h, &ic, &h.trust_store("c")).await;
    c.set_trust(a.id(), Some(Trust::Trusted));
    c.request_link(a.id(), None).expect("asked");
    // Mail c sends after its request reaches a after it (the server stores
    // it first): by then a has seen the request, and said nothing.
    within(h, "c mails a", c.mail(a.id(), "after my request")).await.expect("mailed");
    wait_for(h, &a, "c's mail", |e| match e {
        Event::LinkRequested { peer, .. } => panic!("the request of blocked {peer} reached the application"),
        Event::Mail(m) => (m.from == c.id()).then_some(()),
        _ => None,
    })
    .await;
    assert_eq!(a.peers(), vec![b.id()], "no link to the blocked device");

    // a restarts: its book comes back from the store, and it links with b again.
    a.close().await;
    wait_for(h, &b, "a gone", |e| matches!(e, Event::PeerDisconnected { .. }).then_some(())).await;
    let a = device(h, &ia, &store_a).await;
    assert_eq!(a.trust(b.id()), Some(Trust::Trusted));
    assert_eq!(a.trust(c.id()), Some(Trust::Blocked));
    connected(h, &a, b.id()).await;
    for n in [a, b, c, d] {
        n.close().await;
    }
}
