//! With the relay-only policy, two nodes connect through the server's
//! embedded TURN server and carry reliable data; neither learns the other's
//! host address.

use switchboard::{IcePolicy, PathKind};

use crate::common::{TestServer, exchange_in_order, pair_with_paths};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_links_go_through_the_embedded_turn_server() {
    let server = TestServer::with_turn().await;
    let (turn_udp, _) = server.turn.expect("TURN runs");
    let node = || server.node().ice_policy(IcePolicy::Relay);
    let (a, b, pa, pb) = pair_with_paths(node(), node()).await;
    assert_eq!((pa, pb), (PathKind::Relayed, PathKind::Relayed));
    exchange_in_order(&a, &b, 200).await;
    exchange_in_order(&b, &a, 200).await;
    let stats = a.stats(b.id()).expect("link stats");
    assert_eq!(stats.path, Some(PathKind::Relayed));
    // The remote end of a relayed path is a relayed address on the TURN host.
    assert_eq!(stats.remote_addr.map(|r| r.ip()), Some(turn_udp.ip()));
    a.close().await;
    b.close().await;
}
