//! The ladder: with STUN/TURN available and the default policy, two nodes on
//! one host connect directly and never announce relayed candidates.

use switchboard::PathKind;

use crate::common::{TestServer, exchange_in_order, pair_with_paths};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_path_wins_when_one_exists() {
    let server = TestServer::with_turn().await;
    let (a, b, pa, pb) = pair_with_paths(server.node(), server.node()).await;
    assert_eq!((pa, pb), (PathKind::Host, PathKind::Host));
    exchange_in_order(&a, &b, 50).await;
    let stats = a.stats(b.id()).expect("link stats");
    assert_eq!(stats.path, Some(PathKind::Host));
    a.close().await;
    b.close().await;
}
