//! Full-cone, restricted and port-restricted NATs keep one mapping (the router's address and
//! the peer's own port) whichever server address the peer sends to.

use crate::common;

use std::net::SocketAddr;

use common::{Reflector, build, peer_socket};
use switchboard_natlab::{LabSpec, NatKind};

#[test]
fn cone_nats_map_every_destination_to_one_port() {
    let kinds = [NatKind::FullCone, NatKind::Restricted, NatKind::PortRestricted];
    let lab = build(kinds.iter().fold(LabSpec::new(), |spec, kind| spec.site(*kind, 1)));
    let reflector = Reflector::start(&lab);
    for (site, kind) in kinds.iter().enumerate() {
        let peer = lab.peer(site, 0);
        let socket = peer_socket(peer);
        let port = socket.local_addr().expect("local address").port();
        let expected = SocketAddr::from((peer.public_ip(), port));

        assert_eq!(reflector.mapped(&socket, reflector.primary()), expected, "{kind}: first destination");
        assert_eq!(reflector.mapped(&socket, reflector.alternate()), expected, "{kind}: second destination");
    }
}
