//! Chaos: a site is cut off the public segment for 10 s in the middle of a
//! session. Every reliable message sent meanwhile arrives once, in order,
//! after the network returns, and the link never ends. Needs root.

mod common;

use std::time::Duration;

use common::PATIENCE;
use common::chaos::{ChaosLab, handoff};
use switchboard::{Event, Node};
use switchboard_natlab::{LabSpec, NatKind};

const MESSAGES: u32 = 200;

async fn next<T>(node: &Node, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(PATIENCE * 2, async {
        loop {
            let ev = node.next_event().await.expect("node open");
            let ended = match &ev {
                Event::PeerDisconnected { reason, .. } => Some(reason.to_string()),
                _ => None,
            };
            if let Some(t) = pick(ev) {
                return t;
            }
            if let Some(reason) = ended {
                panic!("the link ended: {reason}");
            }
        }
    })
    .await
    .expect("event in time")
}

#[test]
fn a_ten_second_cut_loses_duplicates_and_reorders_nothing() {
    let chaos = ChaosLab::build(LabSpec::new().site(NatKind::FullCone, 1).site(NatKind::PortRestricted, 1));
    let (room_tx, room_rx) = handoff();
    let (up_tx, up_rx) = handoff::<()>();
    let (go_tx, go_rx) = handoff::<()>();
    let sender = chaos.node(chaos.lab.peer(0, 0), move |node| {
        Box::pin(async move {
            let room = node.create_room(None, None).await.expect("room");
            node.join(room).await.expect("join");
            room_tx.send(room).expect("room to b");
            let peer = next(&node, |ev| match ev {
                Event::PeerConnected { peer, .. } => Some(peer),
                _ => None,
            })
            .await;
            up_tx.send(()).expect("up");
            go_rx.recv().expect("go");
            // Sent while the site is cut off: queued, then carried when it returns.
            for i in 0..MESSAGES {
                node.send(peer, "reliable", i.to_be_bytes().to_vec()).await.expect("send");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            // Hold the link until the receiver has everything, then close it.
            next(&node, |ev| matches!(ev, Event::Message(m) if m.data.as_ref() == b"all here").then_some(())).await;
            node.close().await;
        })
    });
    let receiver = chaos.node(chaos.lab.peer(1, 0), move |node| {
        Box::pin(async move {
            let room = room_rx.recv().expect("room code");
            node.join(room).await.expect("join");
            let peer = next(&node, |ev| match ev {
                Event::PeerConnected { peer, .. } => Some(peer),
                _ => None,
            })
            .await;
            for i in 0..MESSAGES {
                let data = next(&node, |ev| match ev {
                    Event::Message(m) => Some(m.data),
                    _ => None,
                })
                .await;
                assert_eq!(data.as_ref(), i.to_be_bytes(), "message {i} lost, repeated or out of order");
            }
            node.send(peer, "reliable", &b"all here"[..]).await.expect("send");
            let restarts = node.stats(peer).map(|s| s.ice_restarts).unwrap_or(0);
            next(&node, |ev| matches!(ev, Event::PeerDisconnected { .. }).then_some(())).await;
            restarts
        })
    });
    up_rx.recv_timeout(PATIENCE).expect("the link came up");
    chaos.lab.set_cut(1, true).expect("cut");
    go_tx.send(()).expect("go");
    // The outage itself: ten seconds without a public network at site 1.
    std::thread::sleep(Duration::from_secs(10));
    chaos.lab.set_cut(1, false).expect("restore");
    let restarts = receiver.join().expect("receiver finished");
    sender.join().expect("sender finished");
    assert!(restarts >= 1, "the link came back without an ICE restart");
}
