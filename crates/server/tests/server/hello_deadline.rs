//! Attack: hold the server's connection slots with sockets that never say
//! `hello`. A connection must finish `hello` within `hello_timeout_secs`,
//! however often it pings, and one address holds at most
//! `max_connections_per_origin` connections.

use crate::common;

use std::time::{Duration, Instant};

use common::{PATIENCE, TestServer};
use futures_util::{SinkExt, StreamExt};
use switchboard::{ConnectError, ConnectOptions, Identity, SignalingClient};
use switchboard_server::ServerConfig;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn pings_do_not_keep_a_connection_without_hello() {
    let config = ServerConfig { hello_timeout_secs: 1, ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&server.url).await.expect("connect");
    let started = Instant::now();
    let mut ping = tokio::time::interval(Duration::from_millis(200));
    let close = loop {
        tokio::select! {
            _ = ping.tick() => {
                // Both kinds of ping: the WebSocket's and the protocol's.
                let _ = ws.send(Message::Ping(Vec::new().into())).await;
                let _ = ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("the server should close cleanly: {e}"),
                None => panic!("the server should send a close frame"),
            },
        }
        assert!(started.elapsed() < PATIENCE, "a connection without hello stayed open for {PATIENCE:?}");
    };
    let frame = close.expect("a close reason");
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1008, "no hello in time"));
    // A client that does say hello is served as usual, past the deadline.
    let mut client = server.client().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    common::sync(&mut client).await;
    server.stop().await;
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_connections() {
    let config = ServerConfig { max_connections_per_origin: 3, ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(server.client().await);
    }
    let fourth = SignalingClient::connect(&server.url, &Identity::generate(), ConnectOptions::default()).await;
    match fourth {
        Err(e @ ConnectError::Transport(_)) => {
            assert!(e.to_string().contains("503"), "refused with HTTP 503: {e}");
        }
        other => panic!("a fourth connection from one address is refused, got {:?}", other.map(|c| c.peer_id())),
    }
    drop(held.pop());
    // The slot comes back once the server has seen the connection end.
    let deadline = Instant::now() + PATIENCE;
    loop {
        match SignalingClient::connect(&server.url, &Identity::generate(), ConnectOptions::default()).await {
            Ok(client) => {
                held.push(client);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "the slot never came back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}
