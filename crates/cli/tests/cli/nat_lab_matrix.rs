//! The NAT lab from its one command: every pair of NAT kinds connects,
//! directly wherever the pair allows it, and no namespace is left behind.
//! Needs root (CI runs as root).

use crate::common;

use std::process::Command;

fn lab(extra: &[&str]) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["lab", "--runs", "1"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("switchboard lab starts");
    let pid = child.id();
    let (status, out) = common::wait(child);
    assert!(status.success(), "switchboard lab failed:\n{out}");
    let leftovers =
        String::from_utf8(Command::new("ip").args(["netns", "list"]).output().expect("ip").stdout).expect("utf-8");
    assert!(!leftovers.contains(&format!("sbl{pid}-")), "namespaces left behind:\n{leftovers}");
    out
}

#[test]
fn every_pair_of_nat_kinds_connects_on_the_expected_path() {
    let out = lab(&[]);
    assert!(out.contains("22/22 cells connected on the expected path"), "{out}");
    // Spot checks of the printed matrix.
    let row = |cell: &str| out.lines().find(|l| l.starts_with(cell)).unwrap_or_else(|| panic!("no row {cell}:\n{out}"));
    assert!(row("symmetric ↔ symmetric").contains("relayed / relayed"));
    assert!(row("full-cone ↔ symmetric").contains("server-reflexive"));
    assert!(row("same LAN").contains("host / host"));
}

#[test]
fn relay_only_policy_relays_every_cell() {
    let out = lab(&["--relay-only"]);
    assert!(out.contains("22/22 cells connected on the expected path"), "{out}");
    assert!(!out.lines().skip(1).any(|l| l.contains("host /") || l.contains("server-reflexive")), "{out}");
}
