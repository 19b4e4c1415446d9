//! Chaos: a peer's address changes in the middle of a session (it moves to
//! another network): its sockets and its signaling connection go dead with
//! the old address. The link finds a path from the new address and every
//! reliable message arrives once, in order. Needs root.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::PATIENCE;
use common::chaos::{ChaosLab, ack_and_wait_close, expect_in_order_watching, next};
use switchboard::{Event, LinkState};
use switchboard_natlab::{LabSpec, NatKind};

const MESSAGES: u32 = 600;
/// Silence counts as a lost path after 3 s; the next attempts come at 0.5,
/// 1 and 2 s, and a new session needs the signaling connection replaced.
const RECOVER_WITHIN: Duration = Duration::from_secs(3 + 7);

/// What the moving side reports to the test.
enum Seen {
    State(LinkState, Instant),
    /// The link's local address once all messages arrived.
    Local(Option<SocketAddr>),
}

#[test]
fn a_peer_that_changes_address_keeps_its_link_losing_nothing() {
    let mut chaos = ChaosLab::build(LabSpec::new().site(NatKind::FullCone, 1).site(NatKind::PortRestricted, 1));
    let (sender, room_rx) = chaos.numbered_sender(MESSAGES);
    let (seen_tx, seen_rx) = mpsc::channel::<Seen>();
    let mover = chaos.node(chaos.lab.peer(1, 0), move |node| {
        Box::pin(async move {
            let room = room_rx.recv().expect("room code");
            node.join(room).await.expect("join");
            let peer = next(&node, |ev| match ev {
                Event::PeerConnected { peer, .. } => Some(peer),
                _ => None,
            })
            .await;
            let watch = |ev| match ev {
                Event::LinkState { state, .. } => Some(state),
                _ => None,
            };
            let report = |state| {
                let _ = seen_tx.send(Seen::State(state, Instant::now()));
            };
            expect_in_order_watching(&node, MESSAGES, watch, report).await;
            let local = node.stats(peer).and_then(|s| s.local_addr);
            let _ = seen_tx.send(Seen::Local(local));
            ack_and_wait_close(&node, peer).await;
        })
    });
    sender.wait_up();
    sender.go();
    std::thread::sleep(Duration::from_secs(1));

    let old = chaos.lab.peer(1, 0).ip();
    let new = chaos.lab.renumber_peer(1, 0).expect("the peer moves to a new address");
    let moved = Instant::now();
    let mut states = Vec::new();
    let local = loop {
        match seen_rx.recv_timeout(PATIENCE).expect("the moving side reports") {
            Seen::State(state, at) => states.push((state, at)),
            Seen::Local(local) => break local,
        }
    };
    let lost = states.iter().position(|(s, _)| *s == LinkState::Reconnecting).expect("the old path was lost");
    let (_, back_at) = states[lost..].iter().find(|(s, _)| *s == LinkState::Connected).expect("the link came back");
    let took = back_at.duration_since(moved);
    assert!(took <= RECOVER_WITHIN, "connected again {took:?} after the address changed");
    let local = local.expect("the link has a local address");
    assert_eq!(local.ip(), IpAddr::V4(new), "the link still uses {old}");

    mover.join().expect("the moving side finished");
    sender.join();
}
