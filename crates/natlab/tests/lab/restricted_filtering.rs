//! A restricted-cone NAT lets in any port of an IP the peer has sent to, and nothing from other
//! IPs until the peer sends to them.

use crate::common;

use common::{build, recv, send_unsolicited, udp};
use switchboard_natlab::{LabSpec, NatKind};

#[test]
fn restricted_cone_admits_contacted_ips_only() {
    let lab = build(LabSpec::new().site(NatKind::Restricted, 1));
    let seen = send_unsolicited(&lab, lab.peer(0, 0));
    assert_eq!(seen.reached, ["other port"].map(String::from).into());
    assert_eq!(seen.mapping_after, seen.mapping);

    // The peer has now sent to the other IP (at port 3478), so another port of it gets in too.
    let server = lab.server();
    let fresh_port = udp(server.netns(), server.alt_ip(), 3479);
    fresh_port.send_to(b"now allowed", seen.mapping).expect("send from a fresh port");
    let (text, from) = recv(&seen.socket);
    assert_eq!(text, "now allowed");
    assert_eq!(from, fresh_port.local_addr().expect("address"));
}
