//! A signaling server in the middle of a link (a proxy in front of `serve`
//! that swaps the DTLS fingerprints of the descriptions it carries for
//! those of a certificate the attacker holds) gets no link: each side's
//! descriptions prove its identity's DTLS certificate, the swapped ones do
//! not, and neither side reaches `PeerConnected`; both say why. Natively,
//! and with a Chromium page on one side.

use crate::common;

use std::time::Duration;

use common::Serve;
use common::browser::{Driver, isolated, library_peer, page_url, wait_for, web_pkg};
use common::mitm::Mitm;
use switchboard::{DisconnectReason, Event, Node};

const PATIENCE: Duration = Duration::from_secs(30);

/// How the link to the other node ended; panics if it connected.
async fn refused(node: &Node) -> DisconnectReason {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match node.next_event().await.expect("node open") {
                Event::PeerConnected { peer, .. } => panic!("a link to {peer} connected through the man in the middle"),
                Event::PeerDisconnected { reason, .. } => return reason,
                _ => {}
            }
        }
    })
    .await
    .expect("the link ended")
}

/// The refusing side's reason, and the other side's: told by a `bye`.
fn check(reasons: [&DisconnectReason; 2]) {
    let unverified = reasons.iter().filter(|r| matches!(r, DisconnectReason::Unverified(_))).count();
    assert_eq!(unverified, 1, "one side refused the description: {reasons:?}");
    for r in reasons {
        assert!(r.to_string().contains("identity is not proven"), "{r}");
    }
}

#[test]
fn native_peers_refuse_swapped_fingerprints() {
    isolated(|| async {
        let serve = Serve::start();
        let mitm = Mitm::start(&serve.url).await;
        let (a, b) = (library_peer(&mitm.url, None).await, library_peer(&mitm.url, None).await);
        let room = a.create_room(None, None).await.expect("room");
        a.join(room).await.expect("a joins");
        b.join(room).await.expect("b joins");
        let (ra, rb) = tokio::join!(refused(&a), refused(&b));
        check([&ra, &rb]);
        assert!(mitm.swapped() > 0, "the proxy swapped fingerprints");
        // Straight to the server, the same nodes link.
        let (c, d) = (library_peer(&serve.url, None).await, library_peer(&serve.url, None).await);
        let room = c.create_room(None, None).await.expect("room");
        c.join(room).await.expect("c joins");
        d.join(room).await.expect("d joins");
        common::browser::library_connected(&c, d.id(), PATIENCE).await;
    });
}

#[test]
fn a_page_and_a_native_peer_refuse_swapped_fingerprints() {
    isolated(|| async {
        let pkg = web_pkg();
        let serve = Serve::start_with(&["--memory", "--web-pkg", &pkg]);
        let mitm = Mitm::start(&serve.url).await;
        let native = library_peer(&mitm.url, None).await;
        let room = native.create_room(None, None).await.expect("room");
        native.join(room).await.expect("join");

        let driver = Driver::start();
        let page = driver.browser().await;
        page.goto(&page_url(&mitm.url, &format!("?room={room}"))).await.expect("page loads through the proxy");
        wait_for(
            &page,
            "the page connected",
            "return document.getElementById('status').dataset.peer ?? null;",
            PATIENCE,
        )
        .await;
        page.execute("document.getElementById('join').click();", vec![]).await.expect("click");
        let native_reason = refused(&native).await;
        let shown = wait_for(
            &page,
            "the link's end in the log",
            "const t = document.body.innerText; \
             return /disconnected \\(/.test(t) ? t : null;",
            PATIENCE,
        )
        .await;
        let shown = shown.as_str().expect("text");
        assert!(shown.contains("identity is not proven"), "{shown}");
        assert!(!shown.contains(" connected ("), "the page never connected: {shown}");
        assert!(native_reason.to_string().contains("identity is not proven"), "{native_reason}");
        assert!(mitm.swapped() > 0, "the proxy swapped fingerprints");
        page.close().await.expect("session ends");
    });
}
