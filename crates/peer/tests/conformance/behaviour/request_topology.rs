//! With the request topology, no link opens by itself: one opens when a
//! peer asks and the other accepts; a rejection comes back with its reason.

use std::time::Duration;

use switchboard::{Event, Topology};

use crate::harness::{Harness, connected, next_message, start, wait_for, within};

pub async fn run<H: Harness>(h: &H) {
    let builder = || h.node().topology(Topology::OnRequest);
    let (a, b, c) = (start(h, builder()).await, start(h, builder()).await, start(h, builder()).await);
    let room = within(h, "room", a.create_room(None, None)).await.expect("room");
    for n in [&a, &b, &c] {
        within(h, "join", n.join(room)).await.expect("join");
    }
    h.sleep(Duration::from_millis(500)).await;
    assert!(a.peers().is_empty() && b.peers().is_empty(), "no link without a request");

    a.request_link(b.id(), Some(serde_json::json!({"why": "chess"}))).expect("asked b");
    a.request_link(c.id(), None).expect("asked c");
    let meta = wait_for(h, &b, "b is asked", |e| match e {
        Event::LinkRequested { peer, meta } if peer == a.id() => Some(meta),
        _ => None,
    })
    .await;
    assert_eq!(meta, Some(serde_json::json!({"why": "chess"})));
    b.accept(a.id()).expect("accept");
    wait_for(h, &c, "c is asked", |e| matches!(e, Event::LinkRequested { .. }).then_some(())).await;
    c.reject(a.id(), Some("busy".into())).expect("reject");

    connected(h, &b, a.id()).await;
    let mut rejected = None;
    let mut linked = false;
    while rejected.is_none() || !linked {
        match wait_for(h, &a, "a's answers", Some).await {
            Event::LinkRejected { peer, reason } if peer == c.id() => rejected = Some(reason),
            Event::PeerConnected { peer, .. } if peer == b.id() => linked = true,
            _ => {}
        }
    }
    assert_eq!(rejected, Some(Some("busy".into())));
    assert!(!a.peers().contains(&c.id()), "no link to the peer that declined");
    within(h, "a sends", a.send(b.id(), "reliable", &b"accepted"[..])).await.expect("send");
    assert_eq!(&next_message(h, &b).await.data[..], b"accepted");
    for n in [&a, &b, &c] {
        n.close().await;
    }
}
