//! Chaos: 5 % loss and 50 ms of delay on every packet that enters the public
//! segment. 10,000 reliable messages from one NATed peer to another all
//! arrive, once each, in order. Needs root.

use crate::common;

use common::chaos::{ChaosLab, ack_and_wait_close, await_ack_and_close, expect_in_order, guest, handoff, host};
use switchboard_natlab::{LabSpec, NatKind};

const MESSAGES: u32 = 10_000;

#[test]
fn ten_thousand_reliable_messages_cross_a_lossy_slow_network_in_order() {
    let chaos = ChaosLab::build(LabSpec::new().site(NatKind::PortRestricted, 1).site(NatKind::FullCone, 1));
    chaos.lab.set_delay(std::time::Duration::from_millis(50)).expect("delay");
    chaos.lab.set_loss(5).expect("loss");
    let (room_tx, room_rx) = handoff();
    let sender = chaos.node(chaos.lab.peer(0, 0), move |node| {
        Box::pin(async move {
            let peer = host(&node, room_tx).await;
            for i in 0..MESSAGES {
                let mut body = i.to_be_bytes().to_vec();
                body.resize(100, 0xa5);
                node.send(peer, "reliable", body).await.expect("send");
            }
            await_ack_and_close(&node).await;
        })
    });
    let receiver = chaos.node(chaos.lab.peer(1, 0), move |node| {
        Box::pin(async move {
            let peer = guest(&node, room_rx).await;
            expect_in_order(&node, MESSAGES).await;
            let stats = node.stats(peer).expect("stats");
            ack_and_wait_close(&node, peer).await;
            stats
        })
    });
    let stats = receiver.join().expect("receiver finished");
    sender.join().expect("sender finished");
    assert_eq!(stats.messages_received, u64::from(MESSAGES));
    // The probes see the loss and the delay: 100 ms round trip at least.
    assert!(stats.rtt.is_some_and(|r| r.as_millis() >= 100), "round trip {:?}", stats.rtt);
}
