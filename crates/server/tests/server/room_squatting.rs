//! Attack: squat a room after a restart. The server forgets its rooms when
//! it restarts; returning members re-make theirs with `join` + `recreate`.
//! A stranger who knows the code and recreates it first, without the
//! password, must not receive the returning members: a password given to a
//! room that has none (or another) is refused like a wrong one.

use crate::common;

use common::TestServer;
use switchboard::RequestError;
use switchboard::proto::{ErrorCode, RoomCode};

#[tokio::test]
async fn a_room_recreated_without_its_password_does_not_take_its_members() {
    let server = TestServer::default().await;
    let (mut squatter, mut member) = (server.client().await, server.client().await);
    // The code of a password room the restarted server no longer knows.
    let code: RoomCode = "K7Q2ZX4MP9".parse().expect("code");
    squatter.rejoin(code, None, None).await.expect("the squatter makes the room first");
    let back = member.rejoin(code, Some("our secret"), None).await;
    match back {
        Err(RequestError::Refused { code: ErrorCode::NotFound, .. }) => {}
        other => panic!("a returning member must not join the squatter's room: {other:?}"),
    }
    let mut other = server.client().await;
    let theirs: RoomCode = "K7Q2ZX4MPA".parse().expect("code");
    squatter.rejoin(theirs, Some("guess"), None).await.expect("squatted with another password");
    let back = other.rejoin(theirs, Some("our secret"), None).await;
    assert!(matches!(back, Err(RequestError::Refused { code: ErrorCode::NotFound, .. })), "{back:?}");
    server.stop().await;
}
