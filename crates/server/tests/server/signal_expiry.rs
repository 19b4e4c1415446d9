//! A signal for an absent peer waits for the signal TTL, then its sender gets `expired`.

use crate::common;

use common::{TestServer, next_msg};
use switchboard::Identity;
use switchboard::proto::{ConnId, ServerMessage, SignalData};
use switchboard_server::ServerConfig;

fn short_ttl() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.limits.signal_ttl_ms = 300;
    config
}

#[tokio::test]
async fn the_sender_hears_expired_after_the_ttl() {
    let server = TestServer::start(short_ttl()).await;
    let mut a = server.client().await;
    let absent = Identity::generate().peer_id();
    let conn: ConnId = "c9".parse().expect("conn");
    let sent = std::time::Instant::now();
    a.signal(absent, &conn, SignalData::Restart).await.expect("signal");
    match next_msg(&mut a).await {
        ServerMessage::Expired { to, conn: c } => assert_eq!((to, c), (absent, conn)),
        other => panic!("expected expired, got {other:?}"),
    }
    assert!(sent.elapsed() >= std::time::Duration::from_millis(300), "not before the TTL");
    server.stop().await;
}

#[tokio::test]
async fn a_peer_arriving_within_the_ttl_gets_the_held_signal() {
    let mut config = short_ttl();
    config.limits.signal_ttl_ms = 10_000;
    let server = TestServer::start(config).await;
    let mut a = server.client().await;
    let late = Identity::generate();
    let conn: ConnId = "early".parse().expect("conn");
    a.signal(late.peer_id(), &conn, SignalData::Accept).await.expect("signal");
    common::sync(&mut a).await;
    let mut b = common::connect(&server.url, &late).await;
    match next_msg(&mut b).await {
        ServerMessage::Signal { from, data, .. } => {
            assert_eq!((from, data.parse().expect("signal data")), (a.peer_id(), SignalData::Accept));
        }
        other => panic!("expected the held signal, got {other:?}"),
    }
    server.stop().await;
}
