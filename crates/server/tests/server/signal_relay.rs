//! Signals reach their recipient with the sender's id and the same `conn`.

use crate::common;

use common::{TestServer, next_msg};
use switchboard::proto::{ConnId, ErrorCode, ServerMessage, SignalData};

#[tokio::test]
async fn a_signal_is_relayed_with_sender_and_conn() {
    let server = TestServer::default().await;
    let (mut a, mut b) = (server.client().await, server.client().await);
    let conn: ConnId = "link-1".parse().expect("conn");
    let offer = SignalData::Offer { sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n".into(), session: 0 };
    a.signal(b.peer_id(), &conn, offer.clone()).await.expect("signal");
    match next_msg(&mut b).await {
        ServerMessage::Signal { from, conn: c, data } => {
            assert_eq!((from, c, data.parse().expect("signal data")), (a.peer_id(), conn.clone(), offer))
        }
        other => panic!("expected a signal, got {other:?}"),
    }
    // Many signals keep their order.
    for i in 0..200 {
        let data = SignalData::Candidate { candidate: format!("candidate:{i}"), mid: None };
        a.signal(b.peer_id(), &conn, data).await.expect("signal");
    }
    for i in 0..200 {
        match next_msg(&mut b).await {
            ServerMessage::Signal { data, .. } => match data.parse() {
                Ok(SignalData::Candidate { candidate, .. }) => assert_eq!(candidate, format!("candidate:{i}")),
                other => panic!("expected candidate {i}, got {other:?}"),
            },
            other => panic!("expected candidate {i}, got {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn fields_the_protocol_does_not_define_reach_the_recipient() {
    let server = TestServer::default().await;
    let (mut a, mut b) = (server.client().await, server.client().await);
    let data = r#"{"kind":"candidate","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMLineIndex":0,"usernameFragment":"u"}"#;
    let frame = format!(r#"{{"type":"signal","to":"{}","conn":"c","data":{data}}}"#, b.peer_id());
    a.send_text(frame).await.expect("send");
    match next_msg(&mut b).await {
        ServerMessage::Signal { data: got, .. } => {
            let got: serde_json::Value = serde_json::from_str(got.as_json()).expect("json");
            let sent: serde_json::Value = serde_json::from_str(data).expect("json");
            assert_eq!(got, sent);
        }
        other => panic!("expected a signal, got {other:?}"),
    }
    let unknown =
        format!(r#"{{"type":"signal","id":4,"to":"{}","conn":"c","data":{{"kind":"teleport"}}}}"#, b.peer_id());
    a.send_text(unknown).await.expect("send");
    match next_msg(&mut a).await {
        ServerMessage::Error { re, code, .. } => assert_eq!((re, code), (Some(4), ErrorCode::BadRequest)),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(common::sync(&mut b).await.is_empty(), "nothing reached b");
    server.stop().await;
}
