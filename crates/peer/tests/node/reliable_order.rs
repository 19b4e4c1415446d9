//! 10,000 messages on the reliable channel arrive complete and in order.

use crate::common::*;

#[tokio::test]
async fn ten_thousand_messages_in_order() {
    let server = TestServer::start().await;
    let (a, b, _) = pair(&server, server.node(), server.node()).await;
    let to = b.id();
    let sender = async {
        for i in 0..10_000u32 {
            let mut data = i.to_le_bytes().to_vec();
            data.resize(4 + (i as usize % 300), 0xAB);
            a.send(to, "reliable", data).await.expect("send");
        }
    };
    let receiver = async {
        for i in 0..10_000u32 {
            let m = next_message(&b).await;
            assert_eq!(m.data[..4], i.to_le_bytes(), "message {i}");
            assert_eq!(m.data.len(), 4 + (i as usize % 300));
        }
    };
    tokio::join!(sender, receiver);
    assert_eq!(b.stats(a.id()).expect("stats").messages_received, 10_000);
}
