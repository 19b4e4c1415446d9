//! A handle on one named network namespace, and ways to run code in it.

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use nix::sched::{CloneFlags, setns};

use crate::LabError;

/// A named network namespace (one of `/run/netns/*`, as `ip netns` makes them).
///
/// The handle is only a name: it does not keep the namespace alive. The [`Lab`](crate::Lab)
/// that made it deletes it when dropped, after which [`Netns::try_run`] fails.
///
/// Sockets belong to the namespace of the thread that creates them, for their whole life. So a
/// socket made inside [`Netns::run`] can be returned and then used from any thread:
///
/// ```no_run
/// # fn demo(lab: &switchboard_natlab::Lab) -> std::io::Result<()> {
/// let peer = lab.peer(0, 0);
/// let socket = peer.netns().run(|| std::net::UdpSocket::bind((peer.ip(), 0)))?;
/// socket.send_to(b"hello", (lab.server().ip(), 3478))?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub(crate) fn new(name: String) -> Self {
        Self { name }
    }

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that pins the namespace: `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns what it returns.
    ///
    /// Everything `f` creates that binds to a network namespace (sockets, a tokio runtime's
    /// sockets, threads it spawns, which inherit the namespace) lives in this one. A panic in `f`
    /// is resumed on the calling thread with its original payload.
    ///
    /// # Panics
    ///
    /// If the thread cannot enter the namespace (see [`Netns::try_run`]), or if `f` panics.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match self.try_run(f) {
            Ok(value) => value,
            Err(error) => panic!("{error}"),
        }
    }

    /// Like [`Netns::run`], but returns an error instead of panicking when the namespace cannot
    /// be entered (it was deleted, or the process lacks the rights). A panic in `f` is still
    /// resumed on the calling thread.
    pub fn try_run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
        let file = self.open()?;
        thread::scope(|scope| {
            let worker = thread::Builder::new()
                .name(format!("netns {}", self.name))
                .spawn_scoped(scope, move || {
                    self.enter(&file)?;
                    Ok(f())
                })
                .map_err(|error| self.enter_error(format!("cannot spawn a thread: {error}")))?;
            match worker.join() {
                Ok(result) => result,
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    }

    /// Starts `f` on a new thread inside this namespace and returns at once, once the thread has
    /// entered it. For servers that outlive a call: the caller joins the handle when done.
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<JoinHandle<T>, LabError> {
        let file = self.open()?;
        let me = self.clone();
        let (entered_tx, entered_rx) = mpsc::sync_channel(1);
        let handle = thread::Builder::new()
            .name(format!("netns {}", self.name))
            .spawn(move || match me.enter(&file) {
                Ok(()) => {
                    // The caller waits for this message; it cannot be gone yet.
                    let _ = entered_tx.send(Ok(()));
                    f()
                }
                Err(error) => {
                    let _ = entered_tx.send(Err(error));
                    // Ends the thread without running `f` (and without the panic hook's message:
                    // the caller returns the error and drops the handle).
                    std::panic::resume_unwind(Box::new(()))
                }
            })
            .map_err(|error| self.enter_error(format!("cannot spawn a thread: {error}")))?;
        match entered_rx.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(self.enter_error("the thread ended before entering".to_owned())),
        }
    }

    /// A command that runs `program` inside this namespace: `ip netns exec <name> <program>`.
    /// Add arguments, then spawn it as usual. The lab does not track processes started this way:
    /// end them before dropping the lab.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec"]).arg(&self.name).arg(program);
        command
    }

    fn open(&self) -> Result<File, LabError> {
        File::open(self.path())
            .map_err(|error| self.enter_error(format!("cannot open {}: {error}", self.path().display())))
    }

    fn enter(&self, file: &File) -> Result<(), LabError> {
        setns(file, CloneFlags::CLONE_NEWNET).map_err(|errno| self.enter_error(format!("setns: {errno}")))
    }

    fn enter_error(&self, reason: String) -> LabError {
        LabError::Enter { name: self.name.clone(), reason }
    }
}
