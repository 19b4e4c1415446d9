//! A link whose WebRTC path goes away (no UDP gets through) keeps carrying
//! its data through the server relay, then moves back to a new WebRTC
//! session once UDP passes again; nothing is lost, repeated or reordered.

use std::time::Duration;

use switchboard::{Event, LinkState, PathKind};

use crate::harness::{Harness, next_message, number_of, numbered, pair, within, within_for};

/// Waits until `node`'s link reports `path`, sending numbered messages
/// from `first` meanwhile; returns the next number.
async fn send_until<H: Harness>(
    h: &H,
    a: &switchboard::Node,
    b: &switchboard::Node,
    path: PathKind,
    mut i: u32,
) -> u32 {
    within_for(h, Duration::from_secs(40), "the path change", async {
        loop {
            a.send(b.id(), "reliable", numbered(i, 1000)).await.expect("a sends while the path changes");
            i += 1;
            let step = async {
                loop {
                    if let Event::PathChanged { path: p, .. } = a.next_event().await.expect("open") {
                        return p;
                    }
                }
            };
            let mut step = std::pin::pin!(step);
            let mut tick = std::pin::pin!(h.sleep(Duration::from_millis(100)));
            let changed = std::future::poll_fn(|cx| {
                if let std::task::Poll::Ready(p) = step.as_mut().poll(cx) {
                    return std::task::Poll::Ready(Some(p));
                }
                if tick.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(None);
                }
                std::task::Poll::Pending
            })
            .await;
            if changed == Some(path) {
                return i;
            }
        }
    })
    .await
}

pub async fn run<H: Harness>(h: &H) {
    let builder = || {
        h.node()
            .server_relay(Some(Duration::from_secs(1)))
            .path_timeouts(Duration::from_secs(2), Duration::from_secs(30))
    };
    let (a, b, _room) = pair(h, builder).await;
    h.set_udp_blocked(true).await;
    let sent = send_until(h, &a, &b, PathKind::Server, 0).await;
    assert_eq!(a.link_state(b.id()), Some(LinkState::Connected), "the relay carries the link");
    h.set_udp_blocked(false).await;
    let sent = send_until(h, &a, &b, PathKind::Host, sent).await;
    for i in 0..sent {
        let m = next_message(h, &b).await;
        assert_eq!(number_of(&m), i, "message {i}: nothing lost, repeated or reordered");
    }
    within(h, "after", a.send(b.id(), "reliable", &b"back on WebRTC"[..])).await.expect("send");
    assert_eq!(&next_message(h, &b).await.data[..], b"back on WebRTC");
    a.close().await;
    b.close().await;
}
