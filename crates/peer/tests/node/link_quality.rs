//! A link on loopback reports its quality level, and its stats carry the
//! round trip and loss behind it.

use switchboard::{Event, Quality};

use crate::common::{TestServer, pair, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_link_is_excellent() {
    let server = TestServer::start().await;
    let (a, b, _) = pair(&server, server.node(), server.node()).await;
    let (peer, quality) = wait_for(&a, |ev| match ev {
        Event::QualityChanged { peer, quality } => Some((peer, quality)),
        _ => None,
    })
    .await;
    assert_eq!((peer, quality), (b.id(), Quality::Excellent));
    let stats = a.stats(b.id()).expect("stats");
    assert_eq!(stats.quality, Some(Quality::Excellent));
    assert_eq!(stats.loss, Some(0.0));
    assert!(stats.rtt.is_some_and(|r| r.as_millis() < 100), "rtt {:?}", stats.rtt);
    a.close().await;
    b.close().await;
}
