//! TURN over TCP: nodes that know only a `turn:...?transport=tcp` server
//! (credentials minted with its REST secret) connect through it.

use switchboard::{IcePolicy, IceServer, PathKind};
use switchboard_server::{Secret, ServerConfig, TurnConfig, turn_credential};

use crate::common::{TestServer, exchange_in_order, pair_with_paths};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_links_work_over_turn_tcp() {
    // Signaling without TURN; a second server runs only as the TURN server.
    let signaling = TestServer::start().await;
    let turn = TestServer::start_with(ServerConfig {
        turn: Some(TurnConfig { listen: "127.0.0.1:0".parse().expect("addr"), ..TurnConfig::default() }),
        turn_secret: Some(Secret::new("lab-secret")),
        ..ServerConfig::default()
    })
    .await;
    let (_, tcp) = turn.turn.expect("TURN runs");
    let tcp = tcp.expect("TURN over TCP runs");
    let expiry = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 600;
    let node = |name: &str| {
        let username = format!("{expiry}:{name}");
        let credential = turn_credential(b"lab-secret", &username);
        let url = format!("turn:{tcp}?transport=tcp");
        signaling.node().ice_policy(IcePolicy::Relay).ice_servers([IceServer::turn(url, username, credential)])
    };
    let (a, b, pa, pb) = pair_with_paths(node("a"), node("b")).await;
    assert_eq!((pa, pb), (PathKind::Relayed, PathKind::Relayed));
    exchange_in_order(&a, &b, 200).await;
    exchange_in_order(&b, &a, 200).await;
    a.close().await;
    b.close().await;
}
