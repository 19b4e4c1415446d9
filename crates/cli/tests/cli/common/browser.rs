//! Headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), on pages of a real `switchboard serve`.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// Flags that make Chromium work here and gather real 127.0.0.1 candidates.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--use-fake-ui-for-media-stream",
];

/// WebDriver capabilities for headless Firefox ESR (Debian's `firefox-esr`,
/// driven by `geckodriver`): host addresses shown as they are (no mDNS
/// names) and no background connections.
pub fn firefox_capabilities() -> serde_json::Map<String, Value> {
    let caps = json!({
        "moz:firefoxOptions": {
            "binary": "/usr/bin/firefox-esr",
            "args": ["-headless"],
            "prefs": {
                "media.peerconnection.ice.obfuscate_host_addresses": false,
                "network.connectivity-service.enabled": false,
                "network.captive-portal-service.enabled": false,
                "app.update.auto": false,
                "browser.safebrowsing.update.enabled": false,
                "datareporting.policy.dataSubmissionEnabled": false,
                "toolkit.telemetry.enabled": false,
            },
        },
    });
    let Value::Object(caps) = caps else { unreachable!() };
    caps
}

/// A file of `len` random bytes named `name` in `dir`, and its SHA-256 in hex.
pub fn random_file(dir: &std::path::Path, name: &str, len: usize) -> (std::path::PathBuf, String) {
    use rand::RngCore;
    use sha2::{Digest, Sha256};
    let path = dir.join(name);
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    std::fs::write(&path, &data).expect("write file");
    let hash = Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
    (path, hash)
}

/// The browser library built by `scripts/web-build`.
pub fn web_pkg() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/web/pkg");
    assert!(
        std::path::Path::new(dir).join("switchboard_bg.wasm").is_file(),
        "{dir} has no switchboard_bg.wasm: run scripts/web-build first (the test command does)"
    );
    dir.to_owned()
}

/// `chromedriver` on a free port; killed on drop.
pub struct Driver {
    _child: DriverProcess,
    url: String,
}

impl Driver {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let mut command = Command::new("chromedriver");
        command.arg(format!("--port={port}"));
        let child = DriverProcess::spawn(command, "chromedriver starts (apt-get install chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        // Ready once it accepts connections.
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "chromedriver did not listen within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { _child: child, url }
    }

    /// A new headless Chromium session.
    pub async fn browser(&self) -> Client {
        self.browser_with(&[]).await
    }

    /// A new headless Chromium session with `extra` flags.
    pub async fn browser_with(&self, extra: &[String]) -> Client {
        let args: Vec<String> = FLAGS.iter().map(|f| (*f).to_owned()).chain(extra.iter().cloned()).collect();
        let caps = json!({
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        });
        let Value::Object(caps) = caps else { unreachable!() };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

/// A WebDriver server in a process group of its own: the browsers it
/// starts join the group, and go with it on drop, even when a failing test
/// never ended its session.
pub struct DriverProcess(Child);

impl DriverProcess {
    /// Starts `command` in a new process group; panics with `what` if it cannot.
    pub fn spawn(mut command: Command, what: &str) -> Self {
        let child = command.process_group(0).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect(what);
        DriverProcess(child)
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // The group's id is the driver's pid: this ends it and its browsers.
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The page's address on `serve` (whose `url` is its WebSocket).
pub fn page_url(ws_url: &str, query: &str) -> String {
    let base = ws_url.replacen("wss://", "https://", 1).replacen("ws://", "http://", 1);
    let base = base.trim_end_matches("/ws");
    format!("{base}/{query}")
}

/// Runs `script` (a function body returning a value) until it returns
/// something other than `null`, at most `within`; returns that value.
pub async fn wait_for(client: &Client, what: &str, script: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let v = client.execute(script, vec![]).await.expect("script runs");
        if !v.is_null() {
            return v;
        }
        if Instant::now() > until {
            let status = client.execute("return document.body.innerText", vec![]).await.unwrap_or_default();
            panic!("the page did not show {what} within {within:?}; it shows:\n{}", status.as_str().unwrap_or(""));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens the page with a link to `room` (`?room=CODE`, then `extra` as more
/// query, `&log=debug` say), waits for its peer id, presses Join (a link
/// only fills in the code) and waits until the page shows it is in the
/// room. Returns the page's peer id.
pub async fn page_joins_by_link(page: &Client, ws_url: &str, room: &str, extra: &str, within: Duration) -> String {
    page.goto(&page_url(ws_url, &format!("?room={room}{extra}"))).await.expect("page loads");
    let me = wait_for(page, "its id", "return document.getElementById('status').dataset.peer ?? null;", within).await;
    page.execute("document.getElementById('join').click();", vec![]).await.expect("click");
    let joined =
        format!("return document.getElementById('room').dataset.room === '{}' ? true : null;", room.to_uppercase());
    wait_for(page, "itself in the room of the link", &joined, within).await;
    me.as_str().expect("id").to_owned()
}

/// A peer made with the library (not the binary) on the `serve` at `server`:
/// 127.0.0.1 only, the "control" and "data" channels of `chat`, `send`,
/// `recv` and the page, and `identity` (a new one when `None`).
pub async fn library_peer(server: &str, identity: Option<switchboard::Identity>) -> switchboard::Node {
    use switchboard::{ChannelConfig, HostCandidates, Node};
    let mut builder = Node::builder()
        .signaling(server)
        .host_candidates(HostCandidates::Loopback)
        .channel(ChannelConfig::reliable("control"))
        .channel(ChannelConfig::reliable("data"));
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.start().await.expect("a library peer starts")
}

/// Waits until `node` reports its link to `peer` connected, at most `within`;
/// other events are dropped.
pub async fn library_connected(node: &switchboard::Node, peer: switchboard::proto::PeerId, within: Duration) {
    use switchboard::Event;
    tokio::time::timeout(within, async {
        loop {
            match node.next_event().await.expect("node open") {
                Event::PeerConnected { peer: p, .. } if p == peer => return,
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no link to {peer} within {within:?}"));
}

/// Script: the path the page shows for the first connected peer, or `null`.
pub const CONNECTED_PATH: &str = "const r = [...document.querySelectorAll('#peers tr')].find(r => \
     r.querySelector('.state').textContent === 'connected' && r.querySelector('.path').textContent); \
     return r ? r.querySelector('.path').textContent : null;";

/// Script: the first received file's `{ status, sha256 }`, or `null`.
pub const RECEIVED_FILE: &str = "const li = document.querySelector('#received li[data-status]'); \
     return li ? { status: li.dataset.status, sha256: li.dataset.sha256 } : null;";

/// Opens the page at `url`, waits for its peer id, creates a room there
/// and returns the room's code.
pub async fn page_creates_room(page: &Client, url: &str, within: Duration) -> String {
    page.goto(url).await.expect("page loads");
    wait_for(page, "its id", "return document.getElementById('status').dataset.peer ?? null;", within).await;
    page.execute("document.getElementById('create').click();", vec![]).await.expect("click");
    let room = "return document.getElementById('room').dataset.room ?? null;";
    let room = wait_for(page, "the room code", room, within).await;
    room.as_str().expect("code").to_owned()
}

/// Once a peer's row shows it connected with its path: `{ state, path }`.
pub fn row_state(peer: &str) -> String {
    format!(
        "const r = document.querySelector('#peers tr[data-peer=\"{peer}\"]'); \
         return r && r.querySelector('.state').textContent === 'connected' && r.querySelector('.path').textContent \
           ? {{ state: 'connected', path: r.querySelector('.path').textContent }} : null;"
    )
}

/// Runs `body` on a tokio runtime inside a network namespace of its own: a
/// peer on the open site of a one-site NAT lab, with loopback and one
/// documentation address. Whatever the test starts there (`serve`, native
/// peers, chromedriver, Chromium) gathers and reaches only addresses the
/// test made, not the machine's own. The namespaces go when the lab drops,
/// on a panic too.
pub fn isolated<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future<Output = ()>,
{
    use switchboard_natlab::{Lab, LabSpec, NatKind};
    let lab = Lab::build(&LabSpec::new().site(NatKind::Open, 1)).expect("a one-site lab (root, ip, nft)");
    lab.peer(0, 0).netns().run(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(body());
    });
}

/// `switchboard send` in `sender` sends `file` to the page's `room` on
/// `server`; the page shows the peer connected and the file received.
/// Returns the path the page showed, how `send` exited, and the page's
/// record of the file (`{ status, sha256 }`).
pub async fn page_receives_file(
    page: &Client,
    sender: &switchboard_natlab::Netns,
    room: &str,
    file: &std::path::Path,
    server: &str,
    within: Duration,
) -> (Value, std::process::ExitStatus, Value) {
    let wait_s = within.as_secs().to_string();
    let send = sender
        .command(env!("CARGO_BIN_EXE_switchboard"))
        .args(["send", room, file.to_str().expect("utf-8"), "--server", server, "--wait", &wait_s])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("switchboard send starts in the sender's namespace");
    let path = wait_for(page, "the native peer connected", CONNECTED_PATH, within).await;
    let (status, _) = tokio::task::spawn_blocking(move || super::wait(send)).await.expect("wait");
    let received = wait_for(page, "the received file", RECEIVED_FILE, within).await;
    (path, status, received)
}
