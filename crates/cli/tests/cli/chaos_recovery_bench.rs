//! `switchboard lab --recovery` measures how long a link takes to carry data
//! again after a cut, and checks every message arrived once, in order.
//! Needs root.

use crate::common;

use std::process::Command;

#[test]
fn the_recovery_benchmark_runs_and_reports() {
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["lab", "--recovery", "3", "--runs", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("switchboard lab starts");
    let (status, out) = common::wait(child);
    assert!(status.success(), "lab --recovery failed:\n{out}");
    assert!(out.contains("recovery p50"), "{out}");
    assert!(out.contains("every message arrived once, in order"), "{out}");
}
