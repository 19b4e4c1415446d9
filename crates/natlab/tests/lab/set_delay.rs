//! `set_delay` adds its delay to every round trip between sites and the server (with netem,
//! or with the NFQUEUE delayer where the kernel has no netem), and takes it away again.

use crate::common;

use std::time::{Duration, Instant};

use common::{Reflector, build, peer_socket};
use switchboard_natlab::{LabSpec, NatKind};

#[test]
fn delay_adds_to_the_round_trip_and_goes_away() {
    let lab = build(LabSpec::new().site(NatKind::PortRestricted, 1).site(NatKind::Open, 1));
    let reflector = Reflector::start(&lab);
    let delay = Duration::from_millis(40);
    lab.set_delay(delay).expect("set_delay");
    for site in 0..2 {
        let socket = peer_socket(lab.peer(site, 0));
        let started = Instant::now();
        reflector.mapped(&socket, reflector.primary());
        assert!(started.elapsed() >= 2 * delay, "site {site}: round trip {:?}", started.elapsed());
    }
    lab.set_delay(Duration::ZERO).expect("remove the delay");
    let socket = peer_socket(lab.peer(0, 0));
    let started = Instant::now();
    reflector.mapped(&socket, reflector.primary());
    assert!(started.elapsed() < 2 * delay, "round trip {:?} after removing the delay", started.elapsed());
}
