//! `watch` answers with the current presence, then reports changes.

use crate::common;

use common::{TestServer, next_msg};
use switchboard::Identity;
use switchboard::proto::{ClientMessage, ServerMessage, Watch};

#[tokio::test]
async fn watchers_see_peers_come_and_go() {
    let server = TestServer::default().await;
    let mut a = server.client().await;
    let b_identity = Identity::generate();
    let answer = a.request(ClientMessage::Watch(Watch { id: None, peers: vec![b_identity.peer_id()] })).await;
    assert!(matches!(answer, Ok(ServerMessage::Ok { .. })));
    assert_eq!(next_msg(&mut a).await, ServerMessage::Presence { peer_id: b_identity.peer_id(), online: false });
    let mut b = common::connect(&server.url, &b_identity).await;
    assert_eq!(next_msg(&mut a).await, ServerMessage::Presence { peer_id: b_identity.peer_id(), online: true });
    b.close().await.expect("close");
    assert_eq!(next_msg(&mut a).await, ServerMessage::Presence { peer_id: b_identity.peer_id(), online: false });
    server.stop().await;
}
