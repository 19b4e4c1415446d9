//! `hello` must prove the Ed25519 key the peer id is derived from.

use crate::common;

use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use switchboard::proto::{ClientMessage, ErrorCode, Hello, ServerMessage};
use switchboard::{ConnectError, ConnectOptions, Identity, SignalingClient};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_valid_proof_gets_the_derived_peer_id() {
    let server = TestServer::default().await;
    let identity = Identity::generate();
    let mut client = common::connect(&server.url, &identity).await;
    assert_eq!(client.peer_id(), identity.peer_id());
    assert_eq!(client.welcome().v, 1);
    assert!(!client.welcome().resume_token.is_empty());
    assert!(common::sync(&mut client).await.is_empty());
    server.stop().await;
}

/// The name a client dialing `url` signs for.
fn name(url: &str) -> String {
    switchboard::proto::server_name(url).expect("a ws URL")
}

/// A `hello` of protocol v1 from `key`, with `signature` and the `server` it claims.
fn hello(id: Option<u64>, key: &Identity, signature: String, server: &str) -> Hello {
    Hello {
        id,
        v: 1,
        public_key: key.public_key_b64(),
        signature,
        server: server.into(),
        resume_token: None,
        auth_token: None,
    }
}

async fn raw_hello(url: &str, make: impl FnOnce(String) -> Hello) -> (ServerMessage, Option<u16>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let Some(Ok(Message::Text(challenge))) = ws.next().await else { panic!("no challenge") };
    let ServerMessage::Challenge { nonce, .. } = ServerMessage::decode(challenge.as_str()).expect("challenge") else {
        panic!("not a challenge")
    };
    ws.send(Message::Text(ClientMessage::Hello(make(nonce)).encode().into())).await.expect("send");
    let Some(Ok(Message::Text(answer))) = ws.next().await else { panic!("no answer") };
    let answer = ServerMessage::decode(answer.as_str()).expect("answer");
    // A refusal closes the connection; a welcome leaves it open.
    let close = match answer {
        ServerMessage::Error { .. } => match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => Some(u16::from(frame.code)),
            _ => None,
        },
        _ => None,
    };
    (answer, close)
}

#[tokio::test]
async fn a_wrong_signature_is_unauthorized_and_closed() {
    let server = TestServer::default().await;
    let (alice, mallory) = (Identity::generate(), Identity::generate());
    let (answer, close) = raw_hello(&server.url, |nonce| {
        hello(Some(1), &alice, mallory.sign_challenge(&nonce, &name(&server.url)), &name(&server.url))
    })
    .await;
    assert!(matches!(answer, ServerMessage::Error { code: ErrorCode::Unauthorized, re: Some(1), .. }), "{answer:?}");
    assert_eq!(close, Some(1008));
    server.stop().await;
}

#[tokio::test]
async fn a_signature_over_another_nonce_is_refused() {
    let server = TestServer::default().await;
    let id = Identity::generate();
    let (answer, _) = raw_hello(&server.url, |_nonce| {
        hello(None, &id, id.sign_challenge("a nonce from another connection", &name(&server.url)), &name(&server.url))
    })
    .await;
    assert!(matches!(answer, ServerMessage::Error { code: ErrorCode::Unauthorized, .. }));
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_major_version_is_unsupported() {
    let server = TestServer::default().await;
    let id = Identity::generate();
    let (answer, close) = raw_hello(&server.url, |nonce| Hello {
        v: 2,
        ..hello(Some(5), &id, id.sign_challenge(&nonce, &name(&server.url)), &name(&server.url))
    })
    .await;
    assert!(matches!(answer, ServerMessage::Error { code: ErrorCode::UnsupportedVersion, re: Some(5), .. }));
    assert_eq!(close, Some(1008));
    server.stop().await;
}

#[tokio::test]
async fn requests_before_hello_are_unauthorized() {
    let server = TestServer::default().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&server.url).await.expect("connect");
    let _challenge = ws.next().await;
    ws.send(Message::Text(r#"{"type":"create_room","id":3}"#.into())).await.expect("send");
    let Some(Ok(Message::Text(answer))) = ws.next().await else { panic!("no answer") };
    let answer = ServerMessage::decode(answer.as_str()).expect("answer");
    assert!(matches!(answer, ServerMessage::Error { code: ErrorCode::Unauthorized, re: Some(3), .. }));
    server.stop().await;
}

#[tokio::test]
async fn the_client_library_reports_a_refusal() {
    let config = switchboard_server::ServerConfig {
        auth_secret: Some(switchboard_server::Secret::new("s")),
        ..Default::default()
    };
    let server = TestServer::start(config).await;
    let err = SignalingClient::connect(&server.url, &Identity::generate(), ConnectOptions::default()).await;
    assert!(matches!(err, Err(ConnectError::Refused { code: ErrorCode::Unauthorized, .. })));
    server.stop().await;
}

/// A rogue server passes this server's nonce to a victim that dialed the
/// rogue: the victim's answer is signed for the rogue's name, and this
/// server refuses it whether the rogue names itself or this server.
#[tokio::test]
async fn a_proof_a_rogue_server_forwards_is_refused() {
    let server = TestServer::default().await;
    let victim = Identity::generate();
    for claimed in ["rogue.example:443", "localhost:1"] {
        let (answer, close) = raw_hello(&server.url, |nonce| {
            hello(Some(7), &victim, victim.sign_challenge(&nonce, "rogue.example:443"), claimed)
        })
        .await;
        assert!(
            matches!(&answer, ServerMessage::Error { code: ErrorCode::Unauthorized, re: Some(7), .. }),
            "{answer:?}"
        );
        assert_eq!(close, Some(1008));
    }
    server.stop().await;
}

/// With `server_names` the server answers only as those names.
#[tokio::test]
async fn a_named_server_answers_only_as_its_names() {
    let config = switchboard_server::ServerConfig { server_names: vec!["signal.test".into()], ..Default::default() };
    let server = TestServer::start(config).await;
    let id = Identity::generate();
    let port = server.url.rsplit(':').next().and_then(|p| p.strip_suffix("/ws")).expect("a port").to_owned();
    let (answer, _) = raw_hello(&server.url, |nonce| {
        hello(Some(1), &id, id.sign_challenge(&nonce, &name(&server.url)), &name(&server.url))
    })
    .await;
    let ServerMessage::Error { code: ErrorCode::Unauthorized, message, .. } = &answer else { panic!("{answer:?}") };
    assert!(message.contains("not this server's name"), "{message}");
    let named = format!("signal.test:{port}");
    let (answer, _) =
        raw_hello(&server.url, |nonce| hello(Some(2), &id, id.sign_challenge(&nonce, &named), &named)).await;
    assert!(matches!(&answer, ServerMessage::Welcome(w) if w.peer_id == id.peer_id()), "{answer:?}");
    server.stop().await;
}
