//! A node renews its minted TURN credentials from the server before they
//! expire, so links made after the first credentials expired still get a
//! relay.

use std::time::Duration;

use switchboard::{IcePolicy, PathKind};
use switchboard_server::{ServerConfig, TurnConfig};

use crate::common::{TestServer, exchange_in_order};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_made_after_the_first_credentials_expired_are_still_relayed() {
    let server = TestServer::start_with(ServerConfig {
        turn: Some(TurnConfig { listen: "127.0.0.1:0".parse().expect("addr"), ..TurnConfig::default() }),
        turn_credential_ttl_secs: 3,
        ..ServerConfig::default()
    })
    .await;
    let a = server.node().ice_policy(IcePolicy::Relay);
    let b = server.node().ice_policy(IcePolicy::Relay);
    // Wall-clock time is the point here: the credentials from `welcome`
    // expire after 3 s, and the TURN server refuses expired ones.
    let (a, b) = (a.start().await.expect("a starts"), b.start().await.expect("b starts"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let room = a.create_room(None, None).await.expect("room");
    a.join(room).await.expect("a joins");
    b.join(room).await.expect("b joins");
    let (pa, pb) = tokio::join!(crate::common::connected_path(&a), crate::common::connected_path(&b));
    assert_eq!((pa, pb), (PathKind::Relayed, PathKind::Relayed));
    exchange_in_order(&a, &b, 50).await;
    a.close().await;
    b.close().await;
}
