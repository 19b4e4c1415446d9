//! `set_delay` adds its delay to every round trip between sites and the server, or says
//! clearly that the kernel lacks netem.

mod common;

use std::time::{Duration, Instant};

use common::{Reflector, build, peer_socket};
use switchboard_natlab::{LabError, LabSpec, NatKind};

#[test]
fn delay_adds_to_the_round_trip_or_is_reported_unavailable() {
    let lab = build(LabSpec::new().site(NatKind::PortRestricted, 1).site(NatKind::Open, 1));
    let reflector = Reflector::start(&lab);
    let delay = Duration::from_millis(40);
    match lab.set_delay(delay) {
        Ok(()) => {}
        Err(error @ LabError::NetemUnavailable { .. }) => {
            assert!(error.to_string().contains("netem"), "{error}");
            eprintln!("NOTE: delay not tested, this kernel has no netem: {error}");
            return;
        }
        Err(error) => panic!("set_delay: {error}"),
    }
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
