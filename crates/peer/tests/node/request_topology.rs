//! With the request topology a link opens only after the other side accepts;
//! a rejection says why, and a node at its link cap refuses.

use switchboard::{Event, Topology};

use crate::common::*;

#[tokio::test]
async fn links_open_on_accept_only() {
    let server = TestServer::start().await;
    let host = server.node().topology(Topology::OnRequest).max_links(1).start().await.expect("host");
    let viewer = server.node().topology(Topology::OnRequest).start().await.expect("viewer");
    let other = server.node().topology(Topology::OnRequest).start().await.expect("other");
    let room = host.create_room(None, None).await.expect("room");
    for n in [&host, &viewer, &other] {
        n.join(room).await.expect("join");
    }
    // Joining alone opens nothing.
    assert!(host.peers().is_empty() && viewer.peers().is_empty());

    // A rejected request.
    other.request_link(host.id(), Some(serde_json::json!({"name": "other"}))).expect("request");
    let (peer, meta) = wait_for(&host, |ev| match ev {
        Event::LinkRequested { peer, meta } => Some((peer, meta)),
        _ => None,
    })
    .await;
    assert_eq!((peer, meta), (other.id(), Some(serde_json::json!({"name": "other"}))));
    host.reject(other.id(), Some("not now".into())).expect("reject");
    let reason = wait_for(&other, |ev| match ev {
        Event::LinkRejected { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert_eq!(reason.as_deref(), Some("not now"));

    // An accepted one.
    viewer.request_link(host.id(), None).expect("request");
    let peer = wait_for(&host, |ev| match ev {
        Event::LinkRequested { peer, .. } => Some(peer),
        _ => None,
    })
    .await;
    host.accept(peer).expect("accept");
    tokio::join!(connected_to(&host, [viewer.id()]), connected_to(&viewer, [host.id()]));
    host.send(viewer.id(), "reliable", &b"frame"[..]).await.expect("send");
    assert_eq!(&next_message(&viewer).await.data[..], b"frame");

    // At its cap of one link the host refuses further requests by itself.
    other.request_link(host.id(), None).expect("request");
    let reason = wait_for(&other, |ev| match ev {
        Event::LinkRejected { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert_eq!(reason.as_deref(), Some("link limit reached"));
}
