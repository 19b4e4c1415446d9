//! Two nodes sharing two rooms keep one link; it closes only when they share none.

use switchboard::Event;

use crate::common::*;

#[tokio::test]
async fn one_link_across_rooms() {
    let server = TestServer::start().await;
    let (a, b, r1) = pair(&server, server.node(), server.node()).await;
    let r2 = b.create_room(None, None).await.expect("room 2");
    b.join(r2).await.expect("b joins r2");
    a.join(r2).await.expect("a joins r2");
    assert_eq!(a.peers(), vec![b.id()], "still one link");
    a.send_in_room(b.id(), r2, "reliable", &b"in r2"[..]).await.expect("send");
    let m = next_message(&b).await;
    assert_eq!(m.room, Some(r2));
    assert_eq!(b.broadcast(r1, "reliable", &b"to r1"[..], None).await.expect("broadcast"), 1);
    let m = next_message(&a).await;
    assert_eq!((m.room, &m.data[..]), (Some(r1), &b"to r1"[..]));
    // Leaving one room keeps the link.
    a.leave(r1).await.expect("leave r1");
    a.send(b.id(), "reliable", &b"still here"[..]).await.expect("send");
    assert_eq!(&next_message(&b).await.data[..], b"still here");
    // Leaving the last shared room ends it.
    a.leave(r2).await.expect("leave r2");
    wait_for(&a, |ev| matches!(ev, Event::PeerDisconnected { .. }).then_some(())).await;
    assert!(a.peers().is_empty());
}
