//! A symmetric NAT gives each destination its own public port, and keeps it for that
//! destination.

use crate::common;

use common::{Reflector, build, peer_socket};
use switchboard_natlab::{LabSpec, NatKind};

#[test]
fn symmetric_nat_maps_each_destination_to_a_new_port() {
    let lab = build(LabSpec::new().site(NatKind::Symmetric, 1));
    let reflector = Reflector::start(&lab);
    let peer = lab.peer(0, 0);
    let socket = peer_socket(peer);

    let first = reflector.mapped(&socket, reflector.primary());
    let second = reflector.mapped(&socket, reflector.alternate());
    assert_eq!(first.ip(), peer.public_ip());
    assert_eq!(second.ip(), peer.public_ip());
    assert_ne!(first.port(), second.port(), "one port per destination");
    assert_eq!(reflector.mapped(&socket, reflector.primary()), first, "a destination keeps its mapping");
}
