//! Helpers for tests that run the real `switchboard` binary.
#![allow(dead_code, unreachable_pub)]

pub mod browser;
pub mod chaos;
pub mod interop;
pub mod mitm;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a test waits for a process.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// `switchboard serve` on a free port; killed on drop.
pub struct Serve {
    pub child: Child,
    pub url: String,
    /// The rest of serve's stdout, kept open so that its later lines find a reader.
    _stdout: BufReader<ChildStdout>,
}

impl Serve {
    /// Mail in memory.
    pub fn start() -> Self {
        Self::start_with(&["--memory"])
    }

    /// Mail in the SQLite file `path`.
    pub fn with_mailbox(path: &std::path::Path) -> Self {
        Self::start_with(&["--mailbox", path.to_str().expect("utf-8 path")])
    }

    /// Mail in memory, listening on `bind` (to start again where a killed one was).
    pub fn at(bind: &str) -> Self {
        Self::start_at(bind, &["--memory"])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_at("127.0.0.1:0", extra)
    }

    fn start_at(bind: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--bind", bind, "--turn-listen", "127.0.0.1:0", "--log", "warn"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("switchboard serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line).expect("first line");
        let url = line.trim().strip_prefix("listening on ").expect("address line").to_owned();
        Self { child, url, _stdout: stdout }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `switchboard` peer command with piped stdin and stdout.
pub fn peer(args: &[&str], server: &Serve) -> Child {
    peer_command(args, server).stderr(Stdio::inherit()).spawn().expect("switchboard starts")
}

/// [`peer`] with its stderr piped too, for tests that read what it reports.
pub fn peer_with_stderr(args: &[&str], server: &Serve) -> Child {
    peer_command(args, server).stderr(Stdio::piped()).spawn().expect("switchboard starts")
}

fn peer_command(args: &[&str], server: &Serve) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .args(args)
        .args(["--server", &server.url, "--hosts", "loopback", "--wait", "30"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    command
}

/// Reads the `room CODE` line a command prints when it creates a room.
pub fn room_code(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("room line");
    line.trim().strip_prefix("room ").unwrap_or_else(|| panic!("expected a room line, got {line:?}")).to_owned()
}

/// Waits for the process to exit, at most [`PATIENCE`]; kills it after that.
pub fn wait(mut child: Child) -> (ExitStatus, String) {
    let mut stdout = child.stdout.take();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut out);
        }
        out
    });
    let pid = child.id();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    if rx.recv_timeout(PATIENCE).is_err() {
        // Ends only the process this test started, by its pid.
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        panic!("process {pid} did not exit within {PATIENCE:?}");
    }
    let status = waiter.join().expect("waiter").expect("status");
    (status, reader.join().expect("reader"))
}
