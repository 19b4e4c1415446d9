//! With an auth secret, `hello` needs a token naming the peer, and joins need the room in it.

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::TestServer;
use switchboard::proto::ErrorCode;
use switchboard::{ConnectError, ConnectOptions, Identity, RequestError, SignalingClient};
use switchboard_server::{Claims, Secret, ServerConfig, mint_token};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

#[tokio::test]
async fn tokens_gate_sessions_and_rooms() {
    let config = ServerConfig { auth_secret: Some(Secret::new("hunter2")), ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let (host, guest) = (Identity::generate(), Identity::generate());
    let token = |id: &Identity, rooms: Vec<String>, exp: u64| {
        mint_token(b"hunter2", &Claims { sub: id.peer_id(), rooms, exp, tenant: None })
    };
    let connect = |id: Identity, t: String| {
        let url = server.url.clone();
        async move { SignalingClient::connect(&url, &id, ConnectOptions::default().auth(t)).await }
    };

    let mut h = connect(host.clone(), token(&host, vec!["*".into()], now() + 60)).await.expect("host admitted");
    let room = h.create_room(None, None).await.expect("room");
    h.join(room, None, None).await.expect("join");
    let other_room = h.create_room(None, None).await.expect("room");

    let refused = |r: Result<SignalingClient, ConnectError>| match r {
        Err(ConnectError::Refused { code, .. }) => code,
        other => panic!("expected refusal, got {other:?}"),
    };
    assert_eq!(refused(connect(guest.clone(), token(&guest, vec![], now() - 1)).await), ErrorCode::Unauthorized);
    assert_eq!(refused(connect(guest.clone(), token(&host, vec![], now() + 60)).await), ErrorCode::Unauthorized);
    let forged =
        mint_token(b"wrong", &Claims { sub: guest.peer_id(), rooms: vec!["*".into()], exp: now() + 60, tenant: None });
    assert_eq!(refused(connect(guest.clone(), forged).await), ErrorCode::Unauthorized);

    let mut g =
        connect(guest.clone(), token(&guest, vec![room.to_string()], now() + 60)).await.expect("guest admitted");
    g.join(room, None, None).await.expect("the room in the token");
    let denied = g.join(other_room, None, None).await;
    assert!(matches!(denied, Err(RequestError::Refused { code: ErrorCode::Forbidden, .. })));
    let create = g.create_room(None, None).await;
    assert!(matches!(create, Err(RequestError::Refused { code: ErrorCode::Forbidden, .. })));
    server.stop().await;
}

#[tokio::test]
async fn a_session_ends_when_its_token_expires() {
    let config = ServerConfig { auth_secret: Some(Secret::new("hunter2")), ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let id = Identity::generate();
    let token =
        mint_token(b"hunter2", &Claims { sub: id.peer_id(), rooms: vec!["*".into()], exp: now() + 2, tenant: None });
    let mut client =
        SignalingClient::connect(&server.url, &id, ConnectOptions::default().auth(token)).await.expect("admitted");
    match common::next(&mut client).await {
        switchboard::Incoming::Closed { code, reason } => {
            assert_eq!((code, reason.as_str()), (4001, "auth token expired"));
        }
        other => panic!("expected a close, got {other:?}"),
    }
    server.stop().await;
}
