//! Attack: take the server's CPU by sending it megabytes of signaling
//! frames (large signals, mail, joins) from one address, as fast as the
//! frame rate allows. The server reads each address's signaling frames at
//! `origin_text_bytes_per_sec`, all its connections together; beyond it the
//! frames wait in the attacker's own socket (TCP backpressure), and clients
//! from other addresses are served meanwhile.

use std::time::{Duration, Instant};

use crate::common;

use common::{RawClient, TestServer};
use switchboard::Identity;
use switchboard::proto::{ClientMessage, ConnId, Ping, ServerMessage, SignalData, SignalRequest};
use switchboard_server::ServerConfig;

#[tokio::test]
async fn one_address_flooding_signaling_is_read_at_its_budget_and_others_are_served() {
    let mut config = ServerConfig {
        origin_text_bytes_per_sec: 64 * 1024,
        origin_text_burst_bytes: 64 * 1024,
        ..ServerConfig::default()
    };
    config.limits.rate_per_sec = 10_000;
    config.limits.rate_burst = 10_000;
    let server = TestServer::start(config).await;
    let mut attacker = RawClient::connect(&server, "127.0.0.1".parse().expect("ip")).await;
    let mut other = RawClient::connect(&server, "127.0.0.2".parse().expect("ip")).await;
    // Five signals of 60 KB for an absent peer (held for it): 300 KB, of
    // which the budget lets 64 KiB through at once and then 64 KiB a second.
    let absent = Identity::generate().peer_id();
    let conn: ConnId = "flood".parse().expect("conn");
    let started = Instant::now();
    for _ in 0..5 {
        let data = SignalData::Offer { sdp: "x".repeat(60_000), session: 0 }.into();
        attacker.send(&ClientMessage::Signal(SignalRequest { id: None, to: absent, conn: conn.clone(), data })).await;
    }
    attacker.send(&ClientMessage::Ping(Ping { id: Some(1) })).await;
    // Another address is answered while the attacker's frames wait.
    other.send(&ClientMessage::Ping(Ping { id: Some(2) })).await;
    assert!(matches!(other.next().await, ServerMessage::Pong { .. }), "the other address is served");
    let other_done = started.elapsed();
    assert!(matches!(attacker.next().await, ServerMessage::Pong { .. }), "the attacker is read in the end");
    let attacker_done = started.elapsed();
    // 300 KB − 64 KiB at 64 KiB/s: the server cannot have read it all in
    // under three seconds, however fast the machine.
    assert!(attacker_done >= Duration::from_secs(3), "the attacker's frames were paced: {attacker_done:?}");
    assert!(other_done < attacker_done, "the other address did not wait for the attacker's frames");
    server.stop().await;
}
