//! Attack: disconnect a chosen peer by flooding it with signals. Signals
//! (and relay frames) from other peers take at most half of a connection's
//! outbound queue; beyond it they are refused to their sender, and the
//! recipient, reading slowly, stays connected.

use crate::common;

use common::{TestServer, next};
use switchboard::Incoming;
use switchboard::proto::{ConnId, ErrorCode, ServerMessage, SignalData};
use switchboard_server::ServerConfig;

#[tokio::test]
async fn a_flood_of_signals_does_not_disconnect_a_slow_reader() {
    let mut config = ServerConfig { max_outbound_bytes: 256 * 1024, ..ServerConfig::default() };
    // All test clients share 127.0.0.1: its read budget must not pace the flood.
    config.origin_text_bytes_per_sec = 1 << 30;
    config.origin_text_burst_bytes = 1 << 30;
    config.limits.rate_per_sec = 100_000;
    config.limits.rate_burst = 100_000;
    config.abuse_burst = 100_000;
    let server = TestServer::start(config).await;
    let (mut attacker, mut victim) = (server.client().await, server.client().await);
    let conn: ConnId = "flood".parse().expect("conn");
    // The victim reads nothing while ~40 MiB of signals are sent to it:
    // more than the socket buffers and its queue hold.
    let sdp = "x".repeat(60_000);
    for _ in 0..700 {
        attacker
            .signal(victim.peer_id(), &conn, SignalData::Offer { sdp: sdp.clone(), session: 0 })
            .await
            .expect("send");
    }
    let mut refused = 0;
    let mut pong = false;
    attacker.send(&switchboard::proto::ClientMessage::Ping(Default::default())).await.expect("ping");
    while !pong {
        match next(&mut attacker).await {
            Incoming::Message(ServerMessage::Error { code: ErrorCode::RateLimited, .. }) => refused += 1,
            Incoming::Message(ServerMessage::Pong { .. }) => pong = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(refused > 0, "the attacker's signals beyond the victim's share were refused");
    // The victim, reading now (within the write timeout), is still connected
    // and gets what was let through.
    let mut signals = 0;
    for event in common::sync(&mut victim).await {
        match event {
            Incoming::Message(ServerMessage::Signal { .. }) => signals += 1,
            other => panic!("the victim was not meant to see {other:?}"),
        }
    }
    assert!(signals > 0 && signals < 700, "some signals arrived, not all ({signals})");
    server.stop().await;
}
