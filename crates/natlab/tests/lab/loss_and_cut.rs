//! `set_cut` takes a site off the public segment and puts it back;
//! `set_loss` drops about the share of packets it is asked to.

use crate::common;

use std::time::Duration;

use common::{Reflector, build, peer_socket, try_recv};
use switchboard_natlab::{LabSpec, NatKind};

/// How many of `n` probes from `socket` the reflector answers.
fn answered(socket: &std::net::UdpSocket, reflector: std::net::SocketAddr, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            // Packets dropped on the way out of an open peer fail to send (EPERM): lost all the same.
            let _ = socket.send_to(b"probe", reflector);
            try_recv(socket, Duration::from_millis(100)).is_some()
        })
        .count()
}

#[test]
fn a_cut_site_hears_nothing_until_it_is_joined_again() {
    let lab = build(LabSpec::new().site(NatKind::PortRestricted, 1).site(NatKind::Open, 1));
    let reflector = Reflector::start(&lab);
    let behind_nat = peer_socket(lab.peer(0, 0));
    let open = peer_socket(lab.peer(1, 0));
    assert_eq!(answered(&behind_nat, reflector.primary(), 3), 3);
    lab.set_cut(0, true).expect("cut site 0");
    lab.set_cut(1, true).expect("cut site 1");
    assert_eq!(answered(&behind_nat, reflector.primary(), 3), 0, "a cut router let packets through");
    assert_eq!(answered(&open, reflector.primary(), 3), 0, "a cut open peer got answers");
    lab.set_cut(0, false).expect("join site 0 again");
    lab.set_cut(1, false).expect("join site 1 again");
    assert_eq!(answered(&behind_nat, reflector.primary(), 3), 3);
    assert_eq!(answered(&open, reflector.primary(), 3), 3);
    assert!(lab.set_cut(5, true).is_err(), "a site that does not exist");
}

#[test]
fn loss_drops_about_the_share_asked_for() {
    let lab = build(LabSpec::new().site(NatKind::Open, 1));
    let reflector = Reflector::start(&lab);
    let socket = peer_socket(lab.peer(0, 0));
    lab.set_loss(30).expect("30 % loss");
    // A probe and its answer each cross the public segment once: about half come back.
    let got = answered(&socket, reflector.primary(), 100);
    assert!((25..=75).contains(&got), "{got} of 100 answered with 30 % loss each way");
    lab.set_loss(0).expect("no loss");
    assert_eq!(answered(&socket, reflector.primary(), 20), 20);
    assert!(lab.set_loss(101).is_err());
}
