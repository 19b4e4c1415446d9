//! Building a lab deletes the namespaces of labs whose process has died.

use crate::common;

use std::process::Command;

use common::{build, netns_list};
use switchboard_natlab::LabSpec;

/// Deletes the namespace even if the test fails.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.0]).output();
    }
}

#[test]
fn namespaces_of_dead_processes_are_swept() {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let dead_pid = child.id();
    child.wait().expect("true ends");
    assert!(!std::path::Path::new(&format!("/proc/{dead_pid}")).exists(), "pid {dead_pid} was reused");

    let stale = Remove(format!("sbl{dead_pid}-0-srv"));
    let status = Command::new("ip").args(["netns", "add", &stale.0]).status().expect("run ip netns add");
    assert!(status.success(), "ip netns add {}", stale.0);
    let alive = Remove(format!("sbl{}-999-srv", std::process::id()));
    let status = Command::new("ip").args(["netns", "add", &alive.0]).status().expect("run ip netns add");
    assert!(status.success(), "ip netns add {}", alive.0);

    let lab = build(LabSpec::new());
    let listed = netns_list();
    assert!(!listed.contains(&stale.0), "the dead process's namespace is gone");
    assert!(listed.contains(&alive.0), "a live process's namespace stays");
    drop(lab);
}
