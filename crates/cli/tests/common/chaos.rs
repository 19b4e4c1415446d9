//! A NAT lab with a real `switchboard serve` in its server namespace and
//! nodes run inside peer namespaces, for the chaos tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use switchboard::Node;
use switchboard_natlab::{Lab, LabSpec, Peer};

/// The lab and its server process (killed on drop, before the lab goes).
pub struct ChaosLab {
    pub url: String,
    server: Child,
    pub lab: Lab,
}

impl ChaosLab {
    pub fn build(spec: LabSpec) -> Self {
        // RUST_LOG=... shows what the nodes did.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_thread_names(true)
            .with_test_writer()
            .try_init();
        let lab = Lab::build(&spec).expect("lab builds (needs root)");
        let ip = lab.server().ip();
        let mut server = lab
            .server()
            .netns()
            .command(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--memory", "--log", "warn", "--bind", &format!("{ip}:7600")])
            .args(["--turn-listen", &format!("{ip}:3478"), "--stun-alt-ip", &lab.server().alt_ip().to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("serve starts in the server namespace");
        let mut first = String::new();
        BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut first).expect("first line");
        let url = first.trim().strip_prefix("listening on ").expect("address line").to_owned();
        ChaosLab { url, server, lab }
    }

    /// Runs `f` with a started node inside `peer`'s namespace, on a runtime of its own.
    pub fn node<T: Send + 'static>(
        &self,
        peer: &Peer,
        f: impl FnOnce(Node) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
    ) -> JoinHandle<T> {
        let url = self.url.clone();
        peer.netns()
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    let node = Node::builder().signaling(&url).start().await.expect("node starts");
                    f(node).await
                })
            })
            .expect("thread in the peer's namespace")
    }
}

impl Drop for ChaosLab {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// A one-shot handoff between the test and a node's thread.
pub fn handoff<T>() -> (mpsc::SyncSender<T>, mpsc::Receiver<T>) {
    mpsc::sync_channel(1)
}
