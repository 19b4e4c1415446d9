//! Mail beyond the first batch of 1,000 arrives once the batch is acknowledged.

mod common;

use common::{TestServer, next_msg};
use switchboard::Identity;
use switchboard::proto::{AckMail, ClientMessage, MailRequest, ServerMessage};
use switchboard_server::ServerConfig;

#[tokio::test]
async fn a_long_backlog_arrives_batch_by_batch() {
    let mut config = ServerConfig::default();
    config.limits.rate_per_sec = 100_000;
    config.limits.rate_burst = 100_000;
    config.limits.max_mailbox = 2_000;
    let server = TestServer::start(config).await;
    let mut sender = server.client().await;
    let recipient = Identity::generate();
    for n in 0..1_005 {
        let mail = MailRequest { id: Some(n), to: recipient.peer_id(), body: serde_json::json!(n) };
        sender.send(&ClientMessage::Mail(mail)).await.expect("send");
    }
    for _ in 0..1_005 {
        assert!(matches!(next_msg(&mut sender).await, ServerMessage::MailAccepted { .. }));
    }

    let mut b = common::connect(&server.url, &recipient).await;
    let mut ids = Vec::new();
    for expected in 0..1_000 {
        match next_msg(&mut b).await {
            ServerMessage::Mail { mail_id, body, .. } => {
                assert_eq!(body, serde_json::json!(expected));
                ids.push(mail_id);
            }
            other => panic!("expected mail {expected}, got {other:?}"),
        }
    }
    let ack = b.request(ClientMessage::AckMail(AckMail { id: None, mail_ids: ids[..256].to_vec() })).await;
    assert!(matches!(ack, Ok(ServerMessage::Ok { .. })));
    let mut rest = Vec::new();
    while rest.len() < 5 {
        match next_msg(&mut b).await {
            ServerMessage::Mail { body, .. } => rest.push(body),
            other => panic!("expected the rest of the mail, got {other:?}"),
        }
    }
    assert_eq!(rest, (1_000..1_005).map(|n| serde_json::json!(n)).collect::<Vec<_>>());
    assert!(common::sync(&mut b).await.is_empty(), "nothing is sent twice on one connection");
    server.stop().await;
}
