//! `switchboard nat` inside each namespace of the NAT lab names its NAT:
//! open, full cone, restricted, port-restricted, symmetric, UDP blocked.
//! The server runs as `switchboard serve` with its second address for the
//! RFC 5780 tests. Needs root (CI runs as root).

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use switchboard_natlab::{Lab, LabSpec, NatKind};

/// The lab's server process; killed on drop.
struct LabServe(Child);

impl Drop for LabServe {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn nat_names_each_lab_nat() {
    let kinds = NatKind::ALL;
    let mut spec = LabSpec::new();
    for kind in kinds {
        spec = spec.site(kind, 1);
    }
    let lab = Lab::build(&spec).expect("lab builds");
    let server = lab.server();
    let mut child = server
        .netns()
        .command(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--memory", "--log", "warn"])
        .args(["--bind", &format!("{}:7600", server.ip())])
        .args(["--turn-listen", &format!("{}:3478", server.ip())])
        .args(["--stun-alt-ip", &server.alt_ip().to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let _serve = LabServe(child);
    let mut lines = BufReader::new(stdout).lines();
    for _ in 0..2 {
        let line = lines.next().expect("a line").expect("utf-8");
        assert!(line.starts_with("listening on") || line.starts_with("STUN/TURN on"), "{line}");
    }
    for (site, kind) in kinds.iter().enumerate() {
        let peer = lab.peer(site, 0);
        let child = peer
            .netns()
            .command(env!("CARGO_BIN_EXE_switchboard"))
            .args(["nat", "--json", "--stun", &format!("{}:3478", server.ip())])
            .stdout(Stdio::piped())
            .spawn()
            .expect("nat starts");
        let (status, out) = common::wait(child);
        assert!(status.success(), "switchboard nat failed behind {kind}: {out}");
        let report: serde_json::Value = serde_json::from_str(&out).expect("json report");
        let expected = kind.to_string();
        assert_eq!(report["nat_type"], expected.as_str(), "behind a {kind} NAT: {report}");
    }
}
