//! Presence through the `Node`: a watched peer shows offline until it
//! watches back, online then, offline again when it goes; one no longer
//! watched is not reported.

use switchboard::proto::PeerId;
use switchboard::{Event, Node};

use crate::harness::{Harness, start, wait_for, within};

async fn presence<H: Harness>(h: &H, node: &Node, of: PeerId) -> bool {
    wait_for(h, node, "presence", |e| match e {
        Event::Presence { peer, online } if peer == of => Some(online),
        _ => None,
    })
    .await
}

pub async fn run<H: Harness>(h: &H) {
    let a = start(h, h.node()).await;
    let b = start(h, h.node()).await;
    within(h, "a watches b", a.watch(&[b.id()])).await.expect("a watches");
    assert!(!presence(h, &a, b.id()).await, "b does not watch a yet: offline to a");
    within(h, "b watches a", b.watch(&[a.id()])).await.expect("b watches");
    assert!(presence(h, &b, a.id()).await, "a watches b: online to b");
    assert!(presence(h, &a, b.id()).await, "b watches back now: online to a");

    // A third peer a watches and then stops watching: nothing more of it.
    let c = start(h, h.node()).await;
    within(h, "a watches c", a.watch(&[c.id()])).await.expect("a watches c");
    assert!(!presence(h, &a, c.id()).await);
    within(h, "a unwatches c", a.unwatch(&[c.id()])).await.expect("a unwatches c");

    c.close().await;
    b.close().await;
    // The next presence a hears of is b's going; c's is not reported.
    let (peer, online) = wait_for(h, &a, "b goes", |e| match e {
        Event::Presence { peer, online } => Some((peer, online)),
        _ => None,
    })
    .await;
    assert_eq!((peer, online), (b.id(), false));
    a.close().await;
}
