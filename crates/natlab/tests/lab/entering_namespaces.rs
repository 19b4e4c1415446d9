//! Code reaches a namespace three ways (a scoped thread, a spawned thread, a process), threads
//! started inside one stay there, and a deleted namespace cannot be entered.

use crate::common;

use std::net::{Ipv4Addr, UdpSocket};

use common::build;
use switchboard_natlab::{LabError, LabSpec, NatKind};

/// Whether this thread's namespace has `ip` (binding to an address works only where it exists).
fn has_address(ip: Ipv4Addr) -> bool {
    UdpSocket::bind((ip, 0)).is_ok()
}

#[test]
fn threads_and_commands_run_inside_and_deleted_namespaces_refuse_entry() {
    let lab = build(LabSpec::new().site(NatKind::Symmetric, 1));
    let server = lab.server().clone();
    let peer = lab.peer(0, 0).clone();
    assert!(!has_address(server.ip()), "the test thread is outside the lab");

    assert!(server.netns().run(|| has_address(server.ip()) && has_address(server.alt_ip())));
    let peer_ip = peer.ip();
    let nested = peer.netns().run(|| std::thread::spawn(move || has_address(peer_ip)).join());
    assert!(nested.expect("the nested thread ends"), "a thread started inside inherits the namespace");

    let ip = server.ip();
    let spawned = server.netns().spawn(move || has_address(ip)).expect("spawn in the namespace");
    assert!(spawned.join().expect("the spawned thread ends"));

    let output = server.netns().command("ip").args(["-4", "-o", "addr", "show", "dev", "eth0"]).output();
    let listing = String::from_utf8_lossy(&output.expect("run ip in the namespace").stdout).into_owned();
    assert!(listing.contains("203.0.113.10/24") && listing.contains("203.0.113.11/24"), "{listing}");

    drop(lab);
    match server.netns().try_run(|| ()) {
        Err(LabError::Enter { name, .. }) => assert_eq!(name, server.netns().name()),
        other => panic!("entering a deleted namespace: {other:?}"),
    }
    assert!(matches!(server.netns().spawn(|| ()), Err(LabError::Enter { .. })));
}
