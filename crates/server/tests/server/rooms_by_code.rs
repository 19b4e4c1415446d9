//! Rooms: 10-character codes, joining by code, hosts, passwords and caps.

use crate::common;

use common::{TestServer, next_msg};
use switchboard::RequestError;
use switchboard::proto::{ClientMessage, ErrorCode, Leave, RoomCode, ServerMessage};

#[tokio::test]
async fn a_second_client_joins_by_code_and_both_see_each_other() {
    let server = TestServer::default().await;
    let (mut a, mut b) = (server.client().await, server.client().await);
    let room = a.create_room(None, None).await.expect("room");
    assert!(room.as_str().bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    assert_eq!(room.as_str().len(), 10);
    let first = a.join(room, None, Some(serde_json::json!({"name": "alice"}))).await.expect("join");
    assert_eq!((first.host, first.peers.len()), (a.peer_id(), 0));
    let typed: RoomCode = room.as_str().to_lowercase().parse().expect("codes are case-insensitive");
    let second = b.join(typed, None, None).await.expect("join");
    assert_eq!(second.host, a.peer_id());
    assert_eq!(second.peers[0].peer_id, a.peer_id());
    assert_eq!(second.peers[0].meta, Some(serde_json::json!({"name": "alice"})));
    match next_msg(&mut a).await {
        ServerMessage::PeerJoined { room: r, peer } => assert_eq!((r, peer.peer_id), (room, b.peer_id())),
        other => panic!("expected peer_joined, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn the_host_role_passes_to_the_oldest_member() {
    let server = TestServer::default().await;
    let (mut a, mut b, mut c) = (server.client().await, server.client().await, server.client().await);
    let room = a.create_room(None, None).await.expect("room");
    a.join(room, None, None).await.expect("join");
    b.join(room, None, None).await.expect("join");
    c.join(room, None, None).await.expect("join");
    common::sync(&mut b).await;
    let left = a.request(ClientMessage::Leave(Leave { id: None, room })).await.expect("leave");
    assert!(matches!(left, ServerMessage::Ok { .. }));
    let events = common::sync(&mut c).await;
    let texts: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
    assert!(texts.iter().any(|t| t.contains("PeerLeft")), "{texts:?}");
    assert!(
        events.iter().any(|e| matches!(e, switchboard::Incoming::Message(ServerMessage::HostChanged { host, .. }) if *host == b.peer_id())),
        "{texts:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn passwords_and_caps_are_enforced() {
    let server = TestServer::default().await;
    let (mut a, mut b, mut c) = (server.client().await, server.client().await, server.client().await);
    let room = a.create_room(Some("open sesame"), Some(2)).await.expect("room");
    let refused = |r: Result<_, RequestError>| match r {
        Err(RequestError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(refused(a.join(room, None, None).await), ErrorCode::NotFound);
    assert_eq!(refused(a.join(room, Some("wrong"), None).await), ErrorCode::NotFound);
    a.join(room, Some("open sesame"), None).await.expect("right password");
    b.join(room, Some("open sesame"), None).await.expect("right password");
    assert_eq!(refused(c.join(room, Some("open sesame"), None).await), ErrorCode::RoomFull);
    let unknown: RoomCode = "ZZZZZ9".parse().expect("code");
    assert_eq!(refused(c.join(unknown, None, None).await), ErrorCode::NotFound);
    server.stop().await;
}
