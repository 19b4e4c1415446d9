//! Binary relay frames reach room mates with the sender's id; others are refused.

use crate::common;

use common::{TestServer, next, next_msg};
use switchboard::Incoming;
use switchboard::proto::{ErrorCode, ServerMessage};

#[tokio::test]
async fn relay_data_reaches_a_room_mate_and_names_the_sender() {
    let server = TestServer::default().await;
    let (mut a, mut b, mut outsider) = (server.client().await, server.client().await, server.client().await);
    common::room_of_two(&mut a, &mut b).await;
    a.send_relay(b.peer_id(), 7, b"ciphertext").await.expect("relay");
    assert_eq!(next(&mut b).await, Incoming::Relay { from: a.peer_id(), channel: 7, payload: b"ciphertext".to_vec() });
    outsider.send_relay(b.peer_id(), 7, b"spam").await.expect("send");
    assert!(matches!(next_msg(&mut outsider).await, ServerMessage::Error { code: ErrorCode::Forbidden, .. }));
    outsider.send_binary(vec![1, 2, 3]).await.expect("send");
    assert!(matches!(next_msg(&mut outsider).await, ServerMessage::Error { code: ErrorCode::BadRequest, .. }));
    assert!(common::sync(&mut b).await.is_empty(), "b got nothing from the outsider");
    server.stop().await;
}
