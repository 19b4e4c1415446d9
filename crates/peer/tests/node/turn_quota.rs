//! The embedded TURN server's per-user quota: with one allocation allowed
//! per user, a relay-only node gets a relay for its first link and none for
//! its second, which then times out instead of connecting.

use std::time::Duration;

use switchboard::{DisconnectReason, Event, IcePolicy, PathKind};
use switchboard_server::{ServerConfig, TurnConfig};

use crate::common::{TestServer, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_over_its_allocation_quota_gets_no_second_relay() {
    let server = TestServer::start_with(ServerConfig {
        // UDP only, so that each link takes exactly one allocation.
        turn: Some(TurnConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tcp: false,
            user_quota: 1,
            ..TurnConfig::default()
        }),
        ..ServerConfig::default()
    })
    .await;
    let relay_only = server.node().ice_policy(IcePolicy::Relay).connect_timeout(Duration::from_secs(3));
    let a = relay_only.start().await.expect("a starts");
    let b = server.node().start().await.expect("b starts");
    let c = server.node().start().await.expect("c starts");
    let room = a.create_room(None, None).await.expect("room");
    a.join(room).await.expect("a joins");
    b.join(room).await.expect("b joins");
    // The first link takes a's only allocation.
    let first = wait_for(&a, |ev| match ev {
        Event::PeerConnected { peer, path, .. } => Some((peer, path)),
        _ => None,
    })
    .await;
    assert_eq!(first, (b.id(), PathKind::Relayed));
    c.join(room).await.expect("c joins");
    // The second needs another allocation, which the quota refuses.
    let (peer, reason) = wait_for(&a, |ev| match ev {
        Event::PeerConnected { peer, .. } => panic!("a second relayed link to {peer} despite the quota"),
        Event::PeerDisconnected { peer, reason } => Some((peer, reason)),
        _ => None,
    })
    .await;
    assert_eq!(peer, c.id());
    assert!(matches!(reason, DisconnectReason::ConnectTimeout), "{reason:?}");
    // The first link is untouched.
    assert_eq!(a.stats(b.id()).and_then(|s| s.path), Some(PathKind::Relayed));
    for n in [a, b, c] {
        n.close().await;
    }
}
