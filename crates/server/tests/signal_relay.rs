//! Signals reach their recipient with the sender's id and the same `conn`.

mod common;

use common::{TestServer, next_msg};
use switchboard::proto::{ConnId, ServerMessage, SignalData};

#[tokio::test]
async fn a_signal_is_relayed_with_sender_and_conn() {
    let server = TestServer::default().await;
    let (mut a, mut b) = (server.client().await, server.client().await);
    let conn: ConnId = "link-1".parse().expect("conn");
    let offer = SignalData::Offer { sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n".into() };
    a.signal(b.peer_id(), &conn, offer.clone()).await.expect("signal");
    match next_msg(&mut b).await {
        ServerMessage::Signal { from, conn: c, data } => {
            assert_eq!((from, c, data), (a.peer_id(), conn.clone(), offer))
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
            ServerMessage::Signal { data: SignalData::Candidate { candidate, .. }, .. } => {
                assert_eq!(candidate, format!("candidate:{i}"));
            }
            other => panic!("expected candidate {i}, got {other:?}"),
        }
    }
    server.stop().await;
}
