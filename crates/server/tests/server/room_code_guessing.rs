//! Attack: find other people's rooms by guessing codes, or guess a room's
//! password. Codes carry at least 50 bits; "no such room" and "wrong
//! password" get one answer; failed joins are throttled per address, and a
//! new connection does not reset the budget.

use crate::common;

use common::TestServer;
use switchboard::RequestError;
use switchboard::proto::{ErrorCode, RoomCode};
use switchboard_server::ServerConfig;

fn refusal<T: std::fmt::Debug>(r: Result<T, RequestError>) -> (ErrorCode, String) {
    match r {
        Err(RequestError::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn room_codes_carry_at_least_50_bits() {
    let server = TestServer::default().await;
    let mut a = server.client().await;
    for _ in 0..20 {
        let room = a.create_room(None, None).await.expect("room");
        let code = room.as_str();
        assert!(code.bytes().all(|c| RoomCode::ALPHABET.contains(&c)), "{code} is typed from the code alphabet");
        let bits = code.len() as f64 * (RoomCode::ALPHABET.len() as f64).log2();
        assert!(bits >= 50.0, "{code} carries {bits:.1} bits");
    }
    server.stop().await;
}

#[tokio::test]
async fn no_such_room_and_a_wrong_password_get_one_answer() {
    let server = TestServer::default().await;
    let (mut a, mut b) = (server.client().await, server.client().await);
    let room = a.create_room(Some("open sesame"), None).await.expect("room");
    let missing: RoomCode = "ZZZZZZZZZZ".parse().expect("code");
    let answers = [
        refusal(b.join(missing, None, None).await),
        refusal(b.join(missing, Some("open sesame"), None).await),
        refusal(b.join(room, None, None).await),
        refusal(b.join(room, Some("wrong"), None).await),
    ];
    let anonymous: Vec<_> =
        answers.iter().map(|(code, m)| (*code, m.replace(missing.as_str(), "#").replace(room.as_str(), "#"))).collect();
    assert!(anonymous.iter().all(|a| *a == anonymous[0]), "one answer for all four: {answers:?}");
    assert_eq!(answers[0].0, ErrorCode::NotFound);
    b.join(room, Some("open sesame"), None).await.expect("the right password still opens the room");
    server.stop().await;
}

#[tokio::test]
async fn failed_joins_are_throttled_per_address_across_connections() {
    let mut config = ServerConfig::default();
    config.join_throttle.failures_per_origin = 5;
    let server = TestServer::start(config).await;
    let mut host = server.client().await;
    let room = host.create_room(None, None).await.expect("room");
    let mut prober = server.client().await;
    for n in 0..5 {
        let guess: RoomCode = format!("GUESS{n:05}").parse().expect("code");
        assert_eq!(refusal(prober.join(guess, None, None).await).0, ErrorCode::NotFound, "guess {n}");
    }
    let (code, message) = refusal(prober.join(room, None, None).await);
    assert_eq!(code, ErrorCode::RateLimited, "a throttled address learns nothing, not even of a real room: {message}");
    // A new connection from the same address starts with no fresh budget.
    let mut again = server.client().await;
    assert_eq!(refusal(again.join(room, None, None).await).0, ErrorCode::RateLimited);
    server.stop().await;
}
