//! TURN over TLS (`turns:`): relay-only links reach coturn's TLS listener,
//! checking its certificate against a root the application trusts.

use switchboard::{IcePolicy, PathKind};

use crate::common::{TestServer, exchange_in_order, pair_with_paths};
use crate::coturn::{Coturn, SelfSigned};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_links_work_through_coturn_over_tls() {
    let cert = SelfSigned::make();
    let coturn = Coturn::start("coturn-secret", Some((&cert.dir.join("cert.pem"), &cert.dir.join("key.pem"))));
    let server =
        TestServer::minting_for("coturn-secret", format!("turns:127.0.0.1:{}?transport=tcp", coturn.tls_port)).await;
    let der = std::fs::read(cert.dir.join("cert.der")).expect("certificate");
    let node = || server.node().ice_policy(IcePolicy::Relay).turns_root_certificate(der.clone());
    let (a, b, pa, pb) = pair_with_paths(node(), node()).await;
    assert_eq!((pa, pb), (PathKind::Relayed, PathKind::Relayed));
    exchange_in_order(&a, &b, 200).await;
    exchange_in_order(&b, &a, 200).await;
    a.close().await;
    b.close().await;
}
