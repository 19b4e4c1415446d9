//! A client that stops reading is dropped with bounded memory, and delays no one else.

use crate::common;

use std::time::{Duration, Instant};

use common::{PATIENCE, TestServer, http_get};
use switchboard::Incoming;
use switchboard::proto::{ConnId, SignalData};
use switchboard_server::ServerConfig;

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped() {
    let mut config = ServerConfig { max_outbound_bytes: 256 * 1024, write_timeout_secs: 1, ..ServerConfig::default() };
    // All test clients share 127.0.0.1: its read budget must not pace the flood.
    config.origin_text_bytes_per_sec = 1 << 30;
    config.origin_text_burst_bytes = 1 << 30;
    config.limits.rate_per_sec = 100_000;
    config.limits.rate_burst = 100_000;
    // Once `stuck` is dropped, `a`'s remaining signals are held for it and,
    // past the held-signal cap, refused; those refusals must not end `a`.
    config.abuse_burst = 100_000;
    let server = TestServer::start(config).await;
    let (mut a, mut stuck, mut c) = (server.client().await, server.client().await, server.client().await);
    let conn: ConnId = "flood".parse().expect("conn");

    // `stuck` reads nothing while `a` sends it ~40 MiB: more than the
    // socket buffers and the outbox together hold.
    let sdp = "x".repeat(60_000);
    for _ in 0..700 {
        a.signal(stuck.peer_id(), &conn, SignalData::Offer { sdp: sdp.clone(), session: 0 }).await.expect("send");
    }

    // Meanwhile `a` and `c` are served as usual.
    let t = Instant::now();
    a.signal(c.peer_id(), &conn, SignalData::Accept).await.expect("signal");
    assert!(matches!(common::next(&mut c).await, Incoming::Message(_)));
    assert!(t.elapsed() < Duration::from_secs(1), "relay to c took {:?}", t.elapsed());

    // The server gives up on `stuck`: its connection is gone from the gauge.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, metrics) = http_get(server.addr, "/metrics").await;
        if metrics.lines().any(|l| l == "switchboard_connections 2") {
            break;
        }
        assert!(Instant::now() < deadline, "the stuck client was never dropped:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reading now, `stuck` finds what was in flight and then the end of the connection.
    let mut signals = 0;
    loop {
        match tokio::time::timeout(PATIENCE, stuck.next()).await.expect("in time") {
            Ok(Incoming::Message(_)) => signals += 1,
            Ok(Incoming::Closed { .. }) | Err(_) => break,
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(signals < 700, "the dropped client cannot have received everything ({signals})");
    common::sync(&mut a).await;
    server.stop().await;
}
