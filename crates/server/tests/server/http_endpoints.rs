//! `/healthz`, `/metrics` and `/` on the server's port.

use crate::common;

use common::{TestServer, http_get};
use switchboard::proto::{ClientMessage, MailRequest};

#[tokio::test]
async fn health_and_metrics_report_activity() {
    let server = TestServer::default().await;
    assert_eq!(http_get(server.addr, "/healthz").await, (200, "ok\n".into()));
    let (status, page) = http_get(server.addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("Switchboard"));

    let (mut a, mut b) = (server.client().await, server.client().await);
    common::room_of_two(&mut a, &mut b).await;
    a.signal(b.peer_id(), &"m".parse().expect("conn"), switchboard::proto::SignalData::Accept).await.expect("signal");
    let absent = switchboard::Identity::generate().peer_id();
    a.request(ClientMessage::Mail(MailRequest { id: None, to: absent, body: serde_json::json!("hi") }))
        .await
        .expect("mail");
    a.send_text("not json".into()).await.expect("send");
    common::sync(&mut a).await;
    common::sync(&mut b).await;

    let (status, text) = http_get(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "switchboard_connections 2",
        "switchboard_rooms 1",
        "switchboard_sessions 2",
        "switchboard_mailbox_depth 1",
        "switchboard_messages_total{type=\"signal\"} 1",
        "switchboard_messages_total{type=\"join\"} 2",
        "switchboard_errors_total{code=\"bad_request\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert_eq!(http_get(server.addr, "/nope").await.0, 404);
    server.stop().await;
}
