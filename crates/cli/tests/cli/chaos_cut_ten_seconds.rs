//! Chaos: a site is cut off the public segment for 10 s in the middle of a
//! session. Every reliable message sent meanwhile arrives once, in order,
//! after the network returns, and the link never ends. Needs root.

use crate::common;

use std::time::Duration;

use common::chaos::{ChaosLab, ack_and_wait_close, expect_in_order, guest};
use switchboard_natlab::{LabSpec, NatKind};

const MESSAGES: u32 = 200;

#[test]
fn a_ten_second_cut_loses_duplicates_and_reorders_nothing() {
    let chaos = ChaosLab::build(LabSpec::new().site(NatKind::FullCone, 1).site(NatKind::PortRestricted, 1));
    let (sender, room_rx) = chaos.numbered_sender(MESSAGES);
    let receiver = chaos.node(chaos.lab.peer(1, 0), move |node| {
        Box::pin(async move {
            let peer = guest(&node, room_rx).await;
            expect_in_order(&node, MESSAGES).await;
            let restarts = node.stats(peer).map(|s| s.ice_restarts).unwrap_or(0);
            ack_and_wait_close(&node, peer).await;
            restarts
        })
    });
    sender.wait_up();
    chaos.lab.set_cut(1, true).expect("cut");
    sender.go();
    // The outage itself: ten seconds without a public network at site 1.
    std::thread::sleep(Duration::from_secs(10));
    chaos.lab.set_cut(1, false).expect("restore");
    let restarts = receiver.join().expect("receiver finished");
    sender.join();
    assert!(restarts >= 1, "the link came back without an ICE restart");
}
