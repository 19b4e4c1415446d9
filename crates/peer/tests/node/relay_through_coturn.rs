//! Debian's coturn in `use-auth-secret` mode is a drop-in TURN server: the
//! signaling server mints TURN REST credentials for it, and relay-only
//! links carry data through it over UDP.

use switchboard::{IcePolicy, PathKind};

use crate::common::{TestServer, exchange_in_order, pair_with_paths};
use crate::coturn::Coturn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_links_work_through_coturn_with_minted_credentials() {
    let coturn = Coturn::start("coturn-secret", None);
    let server =
        TestServer::minting_for("coturn-secret", format!("turn:127.0.0.1:{}?transport=udp", coturn.port)).await;
    let node = || server.node().ice_policy(IcePolicy::Relay);
    let (a, b, pa, pb) = pair_with_paths(node(), node()).await;
    assert_eq!((pa, pb), (PathKind::Relayed, PathKind::Relayed));
    exchange_in_order(&a, &b, 200).await;
    exchange_in_order(&b, &a, 200).await;
    a.close().await;
    b.close().await;
}
