//! In one lab with every kind of site, every peer that may use UDP reaches the server and is
//! seen at its site's public address.

use crate::common;

use common::{Reflector, build, peer_socket};
use switchboard_natlab::{LabSpec, NatKind};

#[test]
fn every_peer_is_seen_at_its_public_address() {
    let spec = NatKind::ALL.iter().fold(LabSpec::new(), |spec, kind| spec.site(*kind, 1)).same_lan();
    let lab = build(spec);
    let reflector = Reflector::start(&lab);
    for site in lab.sites() {
        assert_eq!(site.router().is_some(), site.kind().has_router());
        if site.kind() == NatKind::UdpBlocked {
            continue;
        }
        for peer in site.peers() {
            let socket = peer_socket(peer);
            let mapped = reflector.mapped(&socket, reflector.primary());
            assert_eq!(mapped.ip(), peer.public_ip(), "{} peer {}", site.kind(), peer.ip());
        }
    }
}
