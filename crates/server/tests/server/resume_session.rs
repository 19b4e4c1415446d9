//! A peer that reconnects with its resume token keeps its rooms; the room sees no flap.

use crate::common;

use common::TestServer;
use switchboard::proto::ServerMessage;
use switchboard::{ConnectOptions, Identity, Incoming, SignalingClient};

#[tokio::test]
async fn a_dropped_peer_resumes_without_a_leave_join_flap() {
    let server = TestServer::default().await;
    let mut a = server.client().await;
    let b_identity = Identity::generate();
    let mut b = common::connect(&server.url, &b_identity).await;
    let room = common::room_of_two(&mut a, &mut b).await;
    let token = b.welcome().resume_token.clone();
    drop(b); // the TCP connection ends without a close frame

    let b = SignalingClient::connect(&server.url, &b_identity, ConnectOptions::default().resume(token))
        .await
        .expect("reconnect");
    assert!(b.welcome().resumed);
    assert_eq!(b.welcome().rooms.len(), 1);
    assert_eq!(b.welcome().rooms[0].room, room);
    assert_eq!(b.welcome().rooms[0].peers[0].peer_id, a.peer_id());
    let seen = common::sync(&mut a).await;
    assert!(seen.is_empty(), "the room saw {seen:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_clean_close_leaves_at_once_and_a_wrong_token_starts_fresh() {
    let server = TestServer::default().await;
    let mut a = server.client().await;
    let b_identity = Identity::generate();
    let mut b = common::connect(&server.url, &b_identity).await;
    common::room_of_two(&mut a, &mut b).await;
    b.close().await.expect("close");
    match common::next(&mut a).await {
        Incoming::Message(ServerMessage::PeerLeft { peer_id, .. }) => assert_eq!(peer_id, b_identity.peer_id()),
        other => panic!("expected peer_left, got {other:?}"),
    }
    let again = SignalingClient::connect(&server.url, &b_identity, ConnectOptions::default().resume("bogus"))
        .await
        .expect("reconnect");
    assert!(!again.welcome().resumed);
    assert!(again.welcome().rooms.is_empty());
    server.stop().await;
}
