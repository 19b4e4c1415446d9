//! Debian's coturn in `use-auth-secret` mode is a drop-in TURN server: the
//! signaling server mints TURN REST credentials for it, and relay-only
//! links carry data through it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchboard::{IcePolicy, PathKind};
use switchboard_server::{Secret, ServerConfig};

use crate::common::{TestServer, exchange_in_order, pair_with_paths};

/// A `turnserver` process on 127.0.0.1; killed on drop.
struct Coturn {
    child: Child,
    port: u16,
}

impl Coturn {
    fn start(secret: &str) -> Self {
        // A free port for both UDP and TCP listeners (coturn takes the same number for each).
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let child = Command::new("turnserver")
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--use-auth-secret", "--allow-loopback-peers"])
            .arg(format!("--static-auth-secret={secret}"))
            .args(["--realm", "switchboard", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string(), "--min-port", "40000", "--max-port", "44999"])
            .args(["--log-file", "stdout", "--simple-log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("coturn's turnserver runs (scripts/test installs the coturn package)");
        let coturn = Coturn { child, port };
        // Ready once its TCP listener accepts.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "coturn did not start listening on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        coturn
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_links_work_through_coturn_with_minted_credentials() {
    let coturn = Coturn::start("coturn-secret");
    let server = TestServer::start_with(ServerConfig {
        turn_secret: Some(Secret::new("coturn-secret")),
        turn_urls: vec![format!("turn:127.0.0.1:{}?transport=udp", coturn.port)],
        ..ServerConfig::default()
    })
    .await;
    let node = || server.node().ice_policy(IcePolicy::Relay);
    let (a, b, pa, pb) = pair_with_paths(node(), node()).await;
    assert_eq!((pa, pb), (PathKind::Relayed, PathKind::Relayed));
    exchange_in_order(&a, &b, 200).await;
    exchange_in_order(&b, &a, 200).await;
    a.close().await;
    b.close().await;
}
