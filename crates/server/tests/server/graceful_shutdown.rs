//! Shutting down closes every connection with a reason, and mail survives a restart.

use crate::common;

use common::{TestServer, next, next_msg};
use switchboard::proto::{AckMail, ClientMessage, MailRequest, ServerMessage};
use switchboard::{Identity, Incoming};
use switchboard_server::ServerConfig;

#[tokio::test]
async fn clients_get_a_close_frame_with_a_reason() {
    let server = TestServer::default().await;
    let mut a = server.client().await;
    let stopping = tokio::spawn(server.stop());
    match next(&mut a).await {
        Incoming::Closed { code, reason } => assert_eq!((code, reason.as_str()), (1001, "server shutting down")),
        other => panic!("expected a close, got {other:?}"),
    }
    stopping.await.expect("stopped");
}

#[tokio::test]
async fn mail_waits_across_a_graceful_restart_until_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ServerConfig { mailbox_path: Some(dir.path().join("mail.db")), ..ServerConfig::default() };
    let server = TestServer::start(config.clone()).await;
    let mut a = server.client().await;
    let offline = Identity::generate();
    let answer = a
        .request(ClientMessage::Mail(MailRequest {
            id: None,
            to: offline.peer_id(),
            body: serde_json::json!({"n": 1}),
        }))
        .await
        .expect("mail accepted");
    let ServerMessage::MailAccepted { mail_id, .. } = answer else { panic!("expected mail_accepted, got {answer:?}") };
    server.stop().await;

    let server = TestServer::start(config.clone()).await;
    let mut b = common::connect(&server.url, &offline).await;
    match next_msg(&mut b).await {
        ServerMessage::Mail { mail_id: id, body, .. } => assert_eq!((id, body), (mail_id, serde_json::json!({"n": 1}))),
        other => panic!("expected mail, got {other:?}"),
    }
    b.request(ClientMessage::AckMail(AckMail { id: None, mail_ids: vec![mail_id] })).await.expect("ack");
    server.stop().await;

    let server = TestServer::start(config).await;
    let mut b = common::connect(&server.url, &offline).await;
    assert!(common::sync(&mut b).await.is_empty(), "acknowledged mail is gone");
    server.stop().await;
}
