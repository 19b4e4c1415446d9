//! Mail accepted by `switchboard serve` is delivered after the process is
//! killed with SIGKILL and started again on the same mailbox file.

use crate::common;

use std::time::Duration;

use common::Serve;
use switchboard::proto::{ClientMessage, MailRequest, ServerMessage};
use switchboard::{ConnectOptions, Identity, Incoming, SignalingClient};

#[tokio::test]
async fn mail_survives_kill_dash_nine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mailbox = dir.path().join("mail.db");
    let mut server = Serve::with_mailbox(&mailbox);
    let mut sender =
        SignalingClient::connect(&server.url, &Identity::generate(), ConnectOptions::default()).await.expect("connect");
    let recipient = Identity::generate();
    let answer = sender
        .request(ClientMessage::Mail(MailRequest {
            id: None,
            to: recipient.peer_id(),
            body: serde_json::json!({"text": "after the crash"}),
        }))
        .await
        .expect("mail accepted");
    let ServerMessage::MailAccepted { mail_id, .. } = answer else { panic!("unexpected {answer:?}") };

    // SIGKILL: no shutdown code runs.
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    drop(server);

    let server = Serve::with_mailbox(&mailbox);
    let mut client = SignalingClient::connect(&server.url, &recipient, ConnectOptions::default())
        .await
        .expect("connect after restart");
    let got = tokio::time::timeout(Duration::from_secs(10), client.next()).await.expect("in time").expect("alive");
    match got {
        Incoming::Message(ServerMessage::Mail { mail_id: id, from, body, .. }) => {
            assert_eq!(id, mail_id);
            assert_eq!(from, sender.peer_id());
            assert_eq!(body, serde_json::json!({"text": "after the crash"}));
        }
        other => panic!("expected the mail, got {other:?}"),
    }
}
