//! Attack: lock a chosen peer out with mail, or fill its mailbox. Large
//! mails stored for a peer must not stop it from connecting: its `welcome`
//! goes out first and the stored mail follows as its connection drains,
//! however much is waiting. One sender cannot take a mailbox for itself.

use crate::common;

use common::{TestServer, next_msg};
use switchboard::proto::{ClientMessage, ErrorCode, MailRequest, ServerMessage};
use switchboard::{Identity, Incoming};
use switchboard_server::ServerConfig;

/// A body just under the 32 KiB mail limit, numbered.
fn big_body(n: u64) -> serde_json::Value {
    serde_json::json!({ "n": n, "pad": "x".repeat(31 * 1024) })
}

/// Sends `count` large mails to `to`; returns how many the server accepted.
async fn mail_many(server: &TestServer, to: &Identity, count: u64) -> u64 {
    let mut sender = server.client().await;
    for n in 0..count {
        let mail = MailRequest { id: Some(n), to: to.peer_id(), body: big_body(n) };
        sender.send(&ClientMessage::Mail(mail)).await.expect("send");
    }
    let mut accepted = 0;
    for _ in 0..count {
        match common::next(&mut sender).await {
            Incoming::Message(ServerMessage::MailAccepted { .. }) => accepted += 1,
            Incoming::Message(ServerMessage::Error { code: ErrorCode::LimitExceeded, message, .. }) => {
                assert!(message.contains("undelivered mail"), "the refusal says which quota: {message}");
            }
            // Refusals spend the connection's error budget; a sender that
            // keeps going past its quota is closed.
            Incoming::Closed { .. } => break,
            other => panic!("unexpected answer to mail: {other:?}"),
        }
    }
    accepted
}

/// Connects as `victim` twice (the lockout held at every `hello`) and checks
/// that each connection gets its welcome and every stored mail, in order.
async fn victim_gets_everything(server: &TestServer, victim: &Identity, expected: u64) {
    for attempt in 0..2 {
        let mut v = common::connect(&server.url, victim).await;
        let mut got = 0;
        while got < expected {
            match next_msg(&mut v).await {
                ServerMessage::Mail { body, .. } => {
                    assert_eq!(body["pad"].as_str().map(str::len), Some(31 * 1024), "attempt {attempt}");
                    got += 1;
                }
                other => panic!("attempt {attempt}: expected mail {got} of {expected}, got {other:?}"),
            }
        }
        assert!(common::sync(&mut v).await.is_empty(), "attempt {attempt}: nothing beyond the stored mail");
    }
}

#[tokio::test]
async fn a_strangers_large_mails_do_not_lock_the_recipient_out() {
    let server = TestServer::default().await;
    let victim = Identity::generate();
    let accepted = mail_many(&server, &victim, 140).await;
    assert!(accepted > 0, "some of the stranger's mail is stored");
    victim_gets_everything(&server, &victim, accepted).await;
    server.stop().await;
}

#[tokio::test]
async fn a_peer_owed_many_large_mails_by_many_senders_receives_them_all() {
    let server = TestServer::default().await;
    let victim = Identity::generate();
    let mut accepted = 0;
    for _ in 0..5 {
        accepted += mail_many(&server, &victim, 28).await;
    }
    assert_eq!(accepted, 140, "honest senders within their quotas are all accepted");
    victim_gets_everything(&server, &victim, accepted).await;
    server.stop().await;
}

#[tokio::test]
async fn one_stranger_cannot_fill_a_victims_mailbox() {
    // Rate limits and the error budget off, so that the quota alone answers.
    let mut config = ServerConfig::default();
    config.limits.rate_per_sec = 100_000;
    config.limits.rate_burst = 100_000;
    config.abuse_burst = 100_000;
    let server = TestServer::start(config).await;
    let victim = Identity::generate();
    let mut stranger = server.client().await;
    let (mut accepted, mut refused) = (0, 0);
    for n in 0..1_000 {
        let mail = MailRequest { id: Some(n), to: victim.peer_id(), body: serde_json::json!("junk") };
        match stranger.request(ClientMessage::Mail(mail)).await {
            Ok(ServerMessage::MailAccepted { .. }) => accepted += 1,
            Err(switchboard::RequestError::Refused { code: ErrorCode::LimitExceeded, .. }) => refused += 1,
            other => panic!("unexpected answer to mail: {other:?}"),
        }
    }
    assert_eq!((accepted, refused), (256, 744), "one sender stores at most 256 undelivered mails");
    let mut friend = server.client().await;
    let mail = MailRequest { id: None, to: victim.peer_id(), body: serde_json::json!("hello") };
    let answer = friend.request(ClientMessage::Mail(mail)).await;
    assert!(
        matches!(answer, Ok(ServerMessage::MailAccepted { .. })),
        "the victim's friends still reach it: {answer:?}"
    );
    server.stop().await;
}
