//! Chaos: UDP is blocked at one site in the middle of a session (a firewall
//! that lets only TCP out; the TURN server takes UDP only). The link's data moves to the signaling server's
//! relay within the relay deadline, and back to a direct WebRTC path once
//! UDP returns; every reliable message arrives once, in order. Needs root.

use crate::common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::PATIENCE;
use common::chaos::{ChaosLab, ack_and_wait_close, expect_in_order_watching, next};
use switchboard::{Event, PathKind};
use switchboard_natlab::{LabSpec, NatKind};

const MESSAGES: u32 = 800;
/// The default relay deadline, and what detecting the loss may add to it
/// (3 s of silence count from the last packet, so they overlap it).
const RELAY_WITHIN: Duration = Duration::from_secs(5 + 2);
/// Restart attempts come every 4 s at most; a new session then needs a few round trips.
const DIRECT_WITHIN: Duration = Duration::from_secs(4 + 4);

#[test]
fn blocked_udp_moves_the_link_to_the_relay_and_back_losing_nothing() {
    // TURN over UDP only: with UDP blocked, no WebRTC path is left (TURN
    // over TCP would be one), so the server relay must carry.
    let chaos = ChaosLab::build_with(
        LabSpec::new().site(NatKind::FullCone, 1).site(NatKind::PortRestricted, 1),
        &["--no-turn-tcp"],
    );
    let (sender, room_rx) = chaos.numbered_sender(MESSAGES);
    let (path_tx, path_rx) = mpsc::channel::<PathKind>();
    let receiver = chaos.node(chaos.lab.peer(1, 0), move |node| {
        Box::pin(async move {
            let room = room_rx.recv().expect("room code");
            node.join(room).await.expect("join");
            let (peer, first) = next(&node, |ev| match ev {
                Event::PeerConnected { peer, path, .. } => Some((peer, path)),
                _ => None,
            })
            .await;
            let _ = path_tx.send(first);
            let watch = |ev| match ev {
                Event::PathChanged { path, .. } => Some(path),
                _ => None,
            };
            expect_in_order_watching(&node, MESSAGES, watch, |path| {
                let _ = path_tx.send(path);
            })
            .await;
            ack_and_wait_close(&node, peer).await;
        })
    });
    sender.wait_up();
    let first = path_rx.recv_timeout(PATIENCE).expect("first path");
    assert_ne!(first, PathKind::Server, "the link starts on WebRTC");
    sender.go();
    std::thread::sleep(Duration::from_secs(1));
    // A link that came up over TURN may have moved to a direct path meanwhile.
    while path_rx.try_recv().is_ok() {}

    chaos.lab.set_udp_blocked(1, true).expect("block UDP");
    let blocked = Instant::now();
    let relayed =
        path_rx.recv_timeout(RELAY_WITHIN + Duration::from_secs(3)).expect("a path change after UDP was blocked");
    let took = blocked.elapsed();
    assert_eq!(relayed, PathKind::Server, "UDP blocked: the server relay carries");
    assert!(took <= RELAY_WITHIN, "the relay took over after {took:?}");
    std::thread::sleep(Duration::from_secs(3));

    chaos.lab.set_udp_blocked(1, false).expect("unblock UDP");
    let unblocked = Instant::now();
    let back = path_rx.recv_timeout(DIRECT_WITHIN + Duration::from_secs(5)).expect("a path change after UDP returned");
    let took = unblocked.elapsed();
    assert_ne!(back, PathKind::Server, "UDP back: WebRTC carries again");
    assert!(took <= DIRECT_WITHIN, "back on WebRTC after {took:?}");

    receiver.join().expect("receiver finished");
    sender.join();
}
