//! `switchboard send` and `recv` through NATs of the lab, over a
//! server-reflexive path and over a TURN-relayed one, print only what means
//! something to the user at the default verbosity: no ERROR or WARN line
//! (the dependencies' retries stay behind `-v`), and no colour escapes into
//! a pipe. Needs root (CI runs as root).
//!
//! The reflexive case uses full-cone NATs: behind port-restricted ones the
//! first check to a server-reflexive address is dropped until the other
//! side has sent one too, and ICE may nominate the TURN pair meanwhile
//! (and move later, or not before a small file is through).

use crate::common;

use std::io::{BufReader, Read};
use std::process::{Child, Stdio};
use std::thread::JoinHandle;

use common::chaos::ChaosLab;
use switchboard_natlab::{LabSpec, NatKind};

/// Collects a child's stderr on a thread of its own.
fn stderr_of(child: &mut Child) -> JoinHandle<String> {
    let mut err = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    })
}

/// What a successful run may not print, with the offending line.
fn noise(stderr: &str) -> Option<&str> {
    stderr.lines().find(|l| l.contains("ERROR") || l.contains("WARN") || l.contains('\u{1b}'))
}

#[test]
fn send_and_recv_print_no_errors_or_warnings_over_reflexive_and_relayed_paths() {
    let chaos = ChaosLab::build(
        LabSpec::new()
            .site(NatKind::FullCone, 1)
            .site(NatKind::FullCone, 1)
            .site(NatKind::Symmetric, 1)
            .site(NatKind::Symmetric, 1),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("payload.bin");
    std::fs::write(&src, (0..2_000_003u32).map(|i| (i % 253) as u8).collect::<Vec<u8>>()).expect("write");
    for (receiver, sender, path) in [(0, 1, "server-reflexive"), (2, 3, "relayed")] {
        let out = tempfile::tempdir().expect("out dir");
        let mut recv = chaos
            .lab
            .peer(receiver, 0)
            .netns()
            .command(env!("CARGO_BIN_EXE_switchboard"))
            .args(["recv", "--server", &chaos.url, "--wait", "30", "--out"])
            .arg(out.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("recv starts");
        let recv_err = stderr_of(&mut recv);
        let mut recv_out = BufReader::new(recv.stdout.take().expect("stdout"));
        let room = common::room_code(&mut recv_out);
        let mut send = chaos
            .lab
            .peer(sender, 0)
            .netns()
            .command(env!("CARGO_BIN_EXE_switchboard"))
            .args(["send", &room])
            .arg(&src)
            .args(["--server", &chaos.url, "--wait", "30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("send starts");
        let send_err = stderr_of(&mut send);
        let (status, _) = common::wait(send);
        let send_err = send_err.join().expect("send stderr");
        assert!(status.success(), "send exits 0 over a {path} path: {status}\n{send_err}");
        recv.stdout = Some(recv_out.into_inner());
        let (status, printed) = common::wait(recv);
        let recv_err = recv_err.join().expect("recv stderr");
        assert!(status.success(), "recv exits 0 over a {path} path: {status}\n{recv_err}");
        assert!(printed.contains("verified"), "{printed}");
        for (who, err) in [("send", &send_err), ("recv", &recv_err)] {
            // The path the link ended on: the one it connected over, or its last move.
            let last = err
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("path now ")
                        .or_else(|| l.strip_prefix("connected to ").and_then(|r| r.split_once(" (")).map(|(_, r)| r))
                })
                .next_back()
                .unwrap_or_default();
            assert!(last.starts_with(path), "{who} ends on the {path} path: {err}");
            assert_eq!(noise(err), None, "{who} over a {path} path printed noise:\n{err}");
        }
    }
}
