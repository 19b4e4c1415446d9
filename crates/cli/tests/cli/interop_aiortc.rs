//! aiortc (Python, from PyPI: `scripts/test` installs it in
//! `target/interop-venv`) and a raw Switchboard node link with hand-carried
//! SDP (`common::interop::link`): each side offering, with the node
//! trickling and not (aiortc itself never trickles: its descriptions hold
//! every candidate), directly and relay-only through `serve`'s embedded TURN.

use crate::common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::Serve;
use common::browser::isolated;
use common::interop::{Stack, link};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// The aiortc peer process and what it reported.
struct Aiortc {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::UnboundedReceiver<Value>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Aiortc {
    fn start() -> Self {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let python = format!("{root}/target/interop-venv/bin/python");
        assert!(
            std::path::Path::new(&python).is_file(),
            "{python} is missing: scripts/test makes it (python3 -m venv, pip install aiortc)"
        );
        let mut child = Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/aiortc_peer.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the aiortc peer starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (tx, replies) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let events = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let v: Value = serde_json::from_str(&line).expect("a JSON line from the aiortc peer");
                if let Some(reply) = v.get("reply") {
                    let _ = tx.send(reply.clone());
                } else if let Some(e) = v.get("event") {
                    let label = e["label"].as_str().unwrap_or_default();
                    let entry = match e["kind"].as_str().unwrap_or_default() {
                        "message" if e["text"] == true => format!("text:{label}:{}", e["data"].as_str().unwrap_or("")),
                        "message" => format!("binary:{label}:{}", e["len"]),
                        "state" => format!("state:{}", e["state"].as_str().unwrap_or_default()),
                        kind => format!("{kind}:{label}"),
                    };
                    events.lock().expect("log").push(entry);
                }
            }
        });
        Aiortc { child, stdin, replies, log }
    }

    async fn run(&mut self, cmd: Value) -> Value {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.expect("the aiortc peer reads");
        let reply = tokio::time::timeout(common::interop::PATIENCE, self.replies.recv())
            .await
            .unwrap_or_else(|_| panic!("the aiortc peer did not answer {cmd}"))
            .expect("the aiortc peer is running");
        assert!(reply.get("error").is_none(), "the aiortc peer failed: {reply} ({cmd})");
        reply["ok"].clone()
    }

    async fn sdp(&mut self, cmd: Value) -> String {
        self.run(cmd).await.as_str().expect("an SDP").to_owned()
    }
}

impl Stack for Aiortc {
    async fn setup(&mut self, ice: Value, policy: &str) {
        self.log.lock().expect("log").clear();
        self.run(json!({ "cmd": "setup", "ice": ice, "policy": policy })).await;
    }

    async fn offer(&mut self, _trickle: bool) -> String {
        self.sdp(json!({ "cmd": "offer" })).await
    }

    async fn answer(&mut self, offer: &str, _trickle: bool) -> String {
        self.sdp(json!({ "cmd": "answer", "sdp": offer })).await
    }

    async fn accept(&mut self, answer: &str) {
        self.run(json!({ "cmd": "accept", "sdp": answer })).await;
    }

    async fn add_candidate(&mut self, candidate: &str) {
        self.run(json!({ "cmd": "candidate", "candidate": candidate })).await;
    }

    async fn take_candidates(&mut self) -> Vec<String> {
        Vec::new()
    }

    async fn open_channel(&mut self, label: &str, text: &str) {
        self.run(json!({ "cmd": "open", "label": label, "send": text })).await;
    }

    async fn close(&mut self) {
        self.run(json!({ "cmd": "close" })).await;
    }

    async fn log(&mut self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

#[test]
fn aiortc_and_a_raw_node_link_both_ways() {
    isolated(|| async {
        let serve = Serve::start_with(&["--memory"]);
        let mut peer = Aiortc::start();
        for relay in [false, true] {
            for node_offers in [true, false] {
                for trickle in [true, false] {
                    link(&mut peer, &serve, node_offers, trickle, relay).await;
                }
            }
        }
        drop(peer.stdin);
        let status = peer.child.wait().await.expect("the aiortc peer ends");
        assert!(status.success(), "the aiortc peer ended with {status}");
    });
}
