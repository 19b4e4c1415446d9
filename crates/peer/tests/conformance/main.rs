//! The conformance suite on the native backend: each behaviour of
//! `behaviour/` (the same ones the browser runs, `tests/web`) in a network
//! namespace of its own, against a real server in this process that the
//! test can kill, restart and cut UDP under. Needs root (CI runs as root).
#![cfg(not(target_arch = "wasm32"))]
#![allow(missing_docs, unreachable_pub)]

mod behaviour;
mod harness;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use switchboard::{HostCandidates, Node, NodeBuilder};
use switchboard_natlab::{Lab, LabSpec, NatKind};
use switchboard_server::{Server, ServerConfig, TurnConfig};

use harness::Harness;

/// A server on a runtime of its own, so that killing it drops every
/// connection at once, with no goodbye, as `kill -9` would; its mail is in
/// a file, which a restart keeps.
struct Killable {
    addr: SocketAddr,
    kill: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Killable {
    fn start(bind: SocketAddr, mailbox: std::path::PathBuf) -> Killable {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (kill, killed) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
            rt.block_on(async {
                // With its embedded TURN server, as `switchboard test-server`
                // for the browser runs.
                let turn = TurnConfig { listen: "127.0.0.1:0".parse().expect("addr"), ..TurnConfig::default() };
                let config =
                    ServerConfig { bind, turn: Some(turn), mailbox_path: Some(mailbox), ..ServerConfig::default() };
                let server = Server::builder().config(config).bind().await.expect("the server binds");
                let _ = ready_tx.send(server.local_addr());
                tokio::spawn(server.serve(std::future::pending::<()>()));
            });
            let _ = killed.recv();
            rt.shutdown_background();
        });
        let addr = ready_rx.recv_timeout(Duration::from_secs(10)).expect("the server starts");
        Killable { addr, kill, thread }
    }

    fn kill(self) -> SocketAddr {
        let _ = self.kill.send(());
        let _ = self.thread.join();
        self.addr
    }
}

struct Native {
    url: String,
    /// The test's temporary directory.
    dir: std::path::PathBuf,
    mailbox: std::path::PathBuf,
    server: Mutex<Option<Killable>>,
}

impl Harness for Native {
    fn node(&self) -> NodeBuilder {
        self.serverless().signaling(&self.url)
    }

    fn serverless(&self) -> NodeBuilder {
        Node::builder().host_candidates(HostCandidates::Loopback)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(duration)
    }

    async fn restart_server(&self) {
        let old = self.server.lock().expect("server").take().expect("a server runs");
        let addr = tokio::task::spawn_blocking(move || old.kill()).await.expect("killed");
        let mailbox = self.mailbox.clone();
        let fresh = tokio::task::spawn_blocking(move || Killable::start(addr, mailbox)).await.expect("started");
        *self.server.lock().expect("server") = Some(fresh);
    }

    async fn set_udp_blocked(&self, blocked: bool) {
        tokio::task::spawn_blocking(move || switchboard_natlab::block_udp_here(blocked))
            .await
            .expect("nft ran")
            .expect("UDP switched (needs root)");
    }

    fn trust_store(&self, name: &str) -> String {
        self.dir.join(format!("{name}.trust.json")).to_string_lossy().into_owned()
    }
}

/// Runs `body` in a network namespace of its own, with a fresh server.
fn run(body: impl for<'a> FnOnce(&'a Native) -> Pin<Box<dyn Future<Output = ()> + 'a>> + Send) {
    // RUST_LOG=... shows what the nodes did.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let lab = Lab::build(&LabSpec::new().site(NatKind::Open, 1)).expect("a one-site lab (root, ip, nft)");
    lab.peer(0, 0).netns().run(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mailbox = dir.path().join("mailbox.db");
        rt.block_on(async {
            let file = mailbox.clone();
            let server = tokio::task::spawn_blocking(|| Killable::start("127.0.0.1:0".parse().expect("addr"), file))
                .await
                .expect("server");
            let h = Native {
                url: format!("ws://{}/ws", server.addr),
                dir: dir.path().to_owned(),
                mailbox,
                server: Mutex::new(Some(server)),
            };
            body(&h).await;
            let server = h.server.lock().expect("server").take();
            if let Some(server) = server {
                tokio::task::spawn_blocking(move || server.kill()).await.expect("stopped");
            }
        });
    });
}

macro_rules! native {
    ($($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                run(|h| Box::pin(behaviour::$name::run(h)));
            }
        )*
    };
}

for_each_behaviour!(native);
