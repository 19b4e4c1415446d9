//! Chaos: 5 % loss and 50 ms of delay on every packet that enters the public
//! segment. 10,000 reliable messages from one NATed peer to another all
//! arrive, once each, in order. Needs root.

mod common;

use common::PATIENCE;
use common::chaos::{ChaosLab, handoff};
use switchboard::{Event, Node};
use switchboard_natlab::{LabSpec, NatKind};

const MESSAGES: u32 = 10_000;

async fn next<T>(node: &Node, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(PATIENCE * 3, async {
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
fn ten_thousand_reliable_messages_cross_a_lossy_slow_network_in_order() {
    let chaos = ChaosLab::build(LabSpec::new().site(NatKind::PortRestricted, 1).site(NatKind::FullCone, 1));
    chaos.lab.set_delay(std::time::Duration::from_millis(50)).expect("delay");
    chaos.lab.set_loss(5).expect("loss");
    let (room_tx, room_rx) = handoff();
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
            for i in 0..MESSAGES {
                let mut body = i.to_be_bytes().to_vec();
                body.resize(100, 0xa5);
                node.send(peer, "reliable", body).await.expect("send");
            }
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
                assert_eq!(&data[..4], i.to_be_bytes(), "message {i} lost, repeated or out of order");
                assert_eq!(data.len(), 100, "message {i} altered");
            }
            node.send(peer, "reliable", &b"all here"[..]).await.expect("send");
            let stats = node.stats(peer).expect("stats");
            next(&node, |ev| matches!(ev, Event::PeerDisconnected { .. }).then_some(())).await;
            stats
        })
    });
    let stats = receiver.join().expect("receiver finished");
    sender.join().expect("sender finished");
    assert_eq!(stats.messages_received, u64::from(MESSAGES));
    // The probes see the loss and the delay: 100 ms round trip at least.
    assert!(stats.rtt.is_some_and(|r| r.as_millis() >= 100), "round trip {:?}", stats.rtt);
}
