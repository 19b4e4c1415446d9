//! Mail through the `Node`: mail to a peer that is offline is kept by the
//! server across a kill -9 and restart and reaches the peer when it comes
//! online; the server delivers it again until acknowledged, but a node
//! reports each mail once; acknowledged mail is gone.

use serde_json::json;
use switchboard::{Event, Identity, Mail, Node};

use crate::harness::{Harness, start, wait_for, within};

async fn mail<H: Harness>(h: &H, node: &Node) -> Mail {
    wait_for(h, node, "mail", |e| match e {
        Event::Mail(m) => Some(m),
        _ => None,
    })
    .await
}

async fn restored<H: Harness>(h: &H, node: &Node) {
    wait_for(h, node, "signaling restored", |e| match e {
        Event::SignalingRestored { .. } => Some(()),
        Event::SignalingClosed { reason } => panic!("gave up: {reason}"),
        _ => None,
    })
    .await;
}

pub async fn run<H: Harness>(h: &H) {
    let a = start(h, h.node()).await;
    let b_identity = Identity::generate();
    let b_id = b_identity.peer_id();
    let first = within(h, "mail to b", a.mail(b_id, &json!({ "text": "while you were away" }))).await.expect("stored");

    h.restart_server().await;
    restored(h, &a).await;

    let b = start(h, h.node().identity(b_identity.clone())).await;
    let m = mail(h, &b).await;
    assert_eq!((m.id, m.from, &m.body), (first, a.id(), &json!({ "text": "while you were away" })));
    assert!(m.sent_at > 0);

    // Not acknowledged: a new connection gets it again from the server,
    // and the node does not report it again.
    h.restart_server().await;
    restored(h, &b).await;
    restored(h, &a).await;
    let second = within(h, "second mail", a.mail(b_id, "second")).await.expect("stored");
    let m = mail(h, &b).await;
    assert_eq!((m.id, m.json::<String>().expect("a string")), (second, "second".to_owned()), "reported once");

    within(h, "ack", b.ack_mail(&[first, second])).await.expect("acknowledged");
    b.close().await;
    let third = within(h, "third mail", a.mail(b_id, "third")).await.expect("stored");
    let b = start(h, h.node().identity(b_identity)).await;
    let m = mail(h, &b).await;
    assert_eq!(m.id, third, "acknowledged mail is gone");
    a.close().await;
    b.close().await;
}
