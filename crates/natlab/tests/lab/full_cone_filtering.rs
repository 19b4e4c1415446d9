//! A full-cone NAT lets anyone send to a mapping: another server IP and another port both get
//! through.

use crate::common;

use common::{build, send_unsolicited};
use switchboard_natlab::{LabSpec, NatKind};

#[test]
fn full_cone_admits_every_sender() {
    let lab = build(LabSpec::new().site(NatKind::FullCone, 1));
    let seen = send_unsolicited(&lab, lab.peer(0, 0));
    assert_eq!(seen.reached, ["other ip", "other port"].map(String::from).into());
    assert_eq!(seen.mapping_after, seen.mapping);
}
