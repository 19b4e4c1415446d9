//! A backlog longer than one batch arrives whole and in order as the
//! connection drains, without waiting for acknowledgements; what was
//! acknowledged is not delivered again on the next connection.

use crate::common;

use common::{TestServer, next_msg};
use switchboard::Identity;
use switchboard::proto::{AckMail, ClientMessage, MailRequest, ServerMessage};
use switchboard_server::ServerConfig;

#[tokio::test]
async fn a_long_backlog_arrives_batch_by_batch() {
    let mut config = ServerConfig::default();
    config.limits.rate_per_sec = 100_000;
    config.limits.rate_burst = 100_000;
    config.mail_quota.recipient_mails = 2_000;
    config.mail_quota.sender_mails = 2_000;
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
    for expected in 0..1_005 {
        match next_msg(&mut b).await {
            ServerMessage::Mail { mail_id, body, .. } => {
                assert_eq!(body, serde_json::json!(expected));
                ids.push(mail_id);
            }
            other => panic!("expected mail {expected}, got {other:?}"),
        }
    }
    assert!(common::sync(&mut b).await.is_empty(), "nothing is sent twice on one connection");
    for chunk in ids[..1_000].chunks(250) {
        let ack = b.request(ClientMessage::AckMail(AckMail { id: None, mail_ids: chunk.to_vec() })).await;
        assert!(matches!(ack, Ok(ServerMessage::Ok { .. })), "{ack:?}");
    }
    drop(b);

    let mut again = common::connect(&server.url, &recipient).await;
    let mut rest = Vec::new();
    while rest.len() < 5 {
        match next_msg(&mut again).await {
            ServerMessage::Mail { body, .. } => rest.push(body),
            other => panic!("expected the unacknowledged mail, got {other:?}"),
        }
    }
    assert_eq!(rest, (1_000..1_005).map(|n| serde_json::json!(n)).collect::<Vec<_>>());
    assert!(common::sync(&mut again).await.is_empty(), "acknowledged mail is not delivered again");
    server.stop().await;
}
