//! Malformed frames get clear errors, never a panic, and never slow another client.

use crate::common;

use std::time::{Duration, Instant};

use common::{TestServer, next};
use switchboard::Incoming;
use switchboard::proto::{ErrorCode, ServerMessage, SignalData};

/// Deterministic garbage: broken JSON, wrong shapes, unknown types, bad ids, random bytes.
fn bad_frame(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    let mut random = String::new();
    for _ in 0..(i % 64) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push(char::from_u32(u32::try_from(x % 0x7F).unwrap_or(63)).unwrap_or('?'));
    }
    match i % 10 {
        0 => random,
        1 => "{".repeat((i % 50) as usize + 1),
        2 => format!(r#"{{"type":"warp{i}"}}"#),
        3 => r#"{"type":"join","room":"!!!!!!"}"#.into(),
        4 => r#"{"type":"signal","to":"nothex","conn":"c","data":{"kind":"offer","sdp":""}}"#.into(),
        5 => format!(
            r#"{{"type":"signal","id":{i},"to":"00112233445566778899aabbccddeeff","conn":"c","data":{{"kind":"nope"}}}}"#
        ),
        6 => "[1,2,3]".into(),
        7 => r#"{"type":null}"#.into(),
        8 => format!(r#"{{"type":"join","id":{i},"room":"ABCDEF","meta":"{}"}}"#, "m".repeat(2000)),
        _ => r#"{"type":"ack_mail","mail_ids":"x"}"#.into(),
    }
}

#[tokio::test]
async fn a_flood_of_bad_frames_is_answered_and_harms_no_one_else() {
    let server = TestServer::default().await;
    let (mut bad, mut a, mut b) = (server.client().await, server.client().await, server.client().await);
    common::room_of_two(&mut a, &mut b).await;

    let flood = tokio::spawn(async move {
        for i in 0..1000 {
            if bad.send_text(bad_frame(i)).await.is_err() {
                break; // the server closed us: that is an allowed answer
            }
        }
        let (mut errors, mut close) = (0, None);
        loop {
            match tokio::time::timeout(Duration::from_secs(10), bad.next()).await {
                Ok(Ok(Incoming::Message(ServerMessage::Error { code, .. }))) => {
                    assert!(matches!(
                        code,
                        ErrorCode::BadRequest | ErrorCode::TooLarge | ErrorCode::Unauthorized | ErrorCode::RateLimited
                    ));
                    errors += 1;
                }
                Ok(Ok(Incoming::Closed { code, reason })) => {
                    close = Some((code, reason));
                    break;
                }
                Ok(Ok(other)) => panic!("unexpected answer {other:?}"),
                Ok(Err(_)) | Err(_) => break,
            }
            if errors == 1000 {
                break;
            }
        }
        (errors, close)
    });

    // Meanwhile a and b keep relaying; each round trip stays far below a second.
    let conn = "c".parse().expect("conn");
    let mut worst = Duration::ZERO;
    for _ in 0..200 {
        let t = Instant::now();
        a.signal(b.peer_id(), &conn, SignalData::Accept).await.expect("signal");
        match next(&mut b).await {
            Incoming::Message(ServerMessage::Signal { .. }) => {}
            other => panic!("b expected a signal, got {other:?}"),
        }
        worst = worst.max(t.elapsed());
    }
    let (errors, close) = flood.await.expect("flood task");
    assert!(
        errors == 1000 || close.as_ref().is_some_and(|(c, r)| *c == 1008 && r == "too many bad frames"),
        "errors {errors}, close {close:?}"
    );
    assert!(errors > 0);
    assert!(worst < Duration::from_secs(1), "a relay round trip took {worst:?} during the flood");
    // The server still serves new clients.
    let mut c = server.client().await;
    common::sync(&mut c).await;
    server.stop().await;
}
