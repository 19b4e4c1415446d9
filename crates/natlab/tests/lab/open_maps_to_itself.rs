//! An open peer has no NAT: the server sees its own address and port, from both server IPs.

use crate::common;

use std::net::SocketAddr;

use common::{Reflector, build, peer_socket};
use switchboard_natlab::{LabSpec, NatKind};

#[test]
fn open_peer_is_seen_at_its_own_address() {
    let lab = build(LabSpec::new().site(NatKind::Open, 1));
    let reflector = Reflector::start(&lab);
    let peer = lab.peer(0, 0);
    assert!(peer.gateway().is_none());
    assert_eq!(peer.ip(), peer.public_ip());

    let socket = peer_socket(peer);
    let local: SocketAddr = socket.local_addr().expect("local address");
    assert_eq!(reflector.mapped(&socket, reflector.primary()), local);
    assert_eq!(reflector.mapped(&socket, reflector.alternate()), local);
}
