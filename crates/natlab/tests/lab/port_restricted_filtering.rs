//! A port-restricted-cone NAT lets in only replies from the exact address and port the peer
//! sent to; the unsolicited packets leave no trace that would change the mapping later.

use crate::common;

use common::{build, send_unsolicited};
use switchboard_natlab::{LabSpec, NatKind};

#[test]
fn port_restricted_cone_admits_replies_only() {
    let lab = build(LabSpec::new().site(NatKind::PortRestricted, 1));
    let seen = send_unsolicited(&lab, lab.peer(0, 0));
    assert!(seen.reached.is_empty(), "got {:?}", seen.reached);
    // The other IP's earlier unsolicited packet does not move the peer's port when it then
    // sends there (as it would if conntrack had kept an entry for that packet).
    assert_eq!(seen.mapping_after, seen.mapping);
}
