//! Hard limits: frame size, rate, rooms per peer, connection cap, idle timeout.

use crate::common;

use common::{TestServer, next, next_msg};
use switchboard::proto::{ErrorCode, ServerMessage};
use switchboard::{ConnectError, ConnectOptions, Identity, Incoming, RequestError, SignalingClient};
use switchboard_server::ServerConfig;

#[tokio::test]
async fn an_oversized_frame_gets_too_large_and_the_connection_stays() {
    let mut config = ServerConfig::default();
    config.limits.max_frame_bytes = 4096;
    let server = TestServer::start(config).await;
    let mut a = server.client().await;
    a.send_text(format!(r#"{{"type":"ping","id":1,"pad":"{}"}}"#, "x".repeat(5000))).await.expect("send");
    assert!(matches!(next_msg(&mut a).await, ServerMessage::Error { code: ErrorCode::TooLarge, .. }));
    common::sync(&mut a).await;
    server.stop().await;
}

#[tokio::test]
async fn a_fast_sender_is_rate_limited() {
    let mut config = ServerConfig::default();
    config.limits.rate_per_sec = 5;
    config.limits.rate_burst = 5;
    config.abuse_burst = 1000;
    let server = TestServer::start(config).await;
    let mut a = server.client().await;
    for _ in 0..20 {
        a.send_text(r#"{"type":"ping"}"#.into()).await.expect("send");
    }
    let mut limited = 0;
    let mut pongs = 0;
    while limited + pongs < 20 {
        match next_msg(&mut a).await {
            ServerMessage::Error { code: ErrorCode::RateLimited, .. } => limited += 1,
            ServerMessage::Pong { .. } => pongs += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(limited >= 10, "{limited} of 20 limited");
    server.stop().await;
}

#[tokio::test]
async fn a_peer_cannot_join_more_rooms_than_allowed() {
    let mut config = ServerConfig::default();
    config.limits.max_rooms_per_peer = 2;
    let server = TestServer::start(config).await;
    let mut a = server.client().await;
    for _ in 0..2 {
        let room = a.create_room(None, None).await.expect("room");
        a.join(room, None, None).await.expect("join");
    }
    let room = a.create_room(None, None).await.expect("room");
    let third = a.join(room, None, None).await;
    assert!(matches!(third, Err(RequestError::Refused { code: ErrorCode::LimitExceeded, .. })), "{third:?}");
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_turned_away() {
    let config = ServerConfig { max_connections: 2, ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let _a = server.client().await;
    let _b = server.client().await;
    let third = SignalingClient::connect(&server.url, &Identity::generate(), ConnectOptions::default()).await;
    assert!(matches!(third, Err(ConnectError::Transport(ref e)) if e.contains("503")), "{third:?}");
    drop(_a);
    server.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_with_a_reason() {
    let mut config = ServerConfig::default();
    config.limits.idle_timeout_secs = 1;
    let server = TestServer::start(config).await;
    let mut a = server.client().await;
    match next(&mut a).await {
        Incoming::Closed { code, reason } => assert_eq!((code, reason.as_str()), (1001, "idle timeout")),
        other => panic!("expected a close, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_frame_far_beyond_the_limit_closes_with_1009() {
    let mut config = ServerConfig::default();
    config.limits.max_frame_bytes = 4096;
    let server = TestServer::start(config).await;
    let mut a = server.client().await;
    a.send_text(format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(20_000))).await.expect("send");
    match next(&mut a).await {
        Incoming::Closed { code, reason } => assert_eq!((code, reason.as_str()), (1009, "frame too large")),
        other => panic!("expected a close, got {other:?}"),
    }
    server.stop().await;
}
