//! Two peers behind one router reach each other directly on their LAN, untranslated.

use crate::common;

use common::{build, peer_socket, recv};
use switchboard_natlab::LabSpec;

#[test]
fn peers_on_one_lan_see_each_others_private_addresses() {
    let lab = build(LabSpec::new().same_lan());
    let (first, second) = (lab.peer(0, 0), lab.peer(0, 1));
    assert_eq!(first.public_ip(), second.public_ip(), "one router");
    assert_ne!(first.ip(), second.ip());

    let (a, b) = (peer_socket(first), peer_socket(second));
    let (a_addr, b_addr) = (a.local_addr().expect("address"), b.local_addr().expect("address"));
    a.send_to(b"hi", b_addr).expect("first sends");
    assert_eq!(recv(&b), ("hi".to_owned(), a_addr));
    b.send_to(b"hello", a_addr).expect("second answers");
    assert_eq!(recv(&a), ("hello".to_owned(), b_addr));
}
