//! `watch` answers with the current presence, then reports changes; presence
//! is shown only between peers that watch each other, so a stranger who
//! watches a peer id learns nothing (attack: track any peer's presence).

use crate::common;

use common::{TestServer, next_msg, watch};
use switchboard::Identity;
use switchboard::proto::ServerMessage;

#[tokio::test]
async fn peers_that_watch_each_other_see_each_other_come_and_go() {
    let server = TestServer::default().await;
    let mut a = server.client().await;
    let b_identity = Identity::generate();
    let b_id = b_identity.peer_id();
    watch(&mut a, b_id).await;
    assert_eq!(next_msg(&mut a).await, ServerMessage::Presence { peer_id: b_id, online: false });
    let mut b = common::connect(&server.url, &b_identity).await;
    watch(&mut b, a.peer_id()).await;
    assert_eq!(next_msg(&mut b).await, ServerMessage::Presence { peer_id: a.peer_id(), online: true });
    assert_eq!(next_msg(&mut a).await, ServerMessage::Presence { peer_id: b_id, online: true });
    b.close().await.expect("close");
    assert_eq!(next_msg(&mut a).await, ServerMessage::Presence { peer_id: b_id, online: false });
    server.stop().await;
}

#[tokio::test]
async fn a_stranger_watching_a_peer_id_sees_it_offline_and_hears_nothing() {
    let server = TestServer::default().await;
    let mut stranger = server.client().await;
    let victim_identity = Identity::generate();
    let mut victim = common::connect(&server.url, &victim_identity).await;
    let friend = server.client().await;
    watch(&mut victim, friend.peer_id()).await;
    assert_eq!(next_msg(&mut victim).await, ServerMessage::Presence { peer_id: friend.peer_id(), online: false });

    watch(&mut stranger, victim.peer_id()).await;
    assert_eq!(next_msg(&mut stranger).await, ServerMessage::Presence { peer_id: victim.peer_id(), online: false });
    victim.close().await.expect("close");
    let mut victim = common::connect(&server.url, &victim_identity).await;
    watch(&mut victim, friend.peer_id()).await;
    assert_eq!(next_msg(&mut victim).await, ServerMessage::Presence { peer_id: friend.peer_id(), online: false });
    // The stranger's next message is the answer to its own probe: nothing
    // about the victim's leaving and coming back was queued before it.
    let probe = Identity::generate().peer_id();
    watch(&mut stranger, probe).await;
    assert_eq!(next_msg(&mut stranger).await, ServerMessage::Presence { peer_id: probe, online: false });
    server.stop().await;
}
