//! Eight nodes in one room form a full mesh; a broadcast reaches all others.

use crate::common::*;

#[tokio::test]
async fn eight_peers_full_mesh() {
    let server = TestServer::start().await;
    let mut nodes = Vec::new();
    for _ in 0..8 {
        nodes.push(server.node().start().await.expect("node"));
    }
    let room = nodes[0].create_room(None, None).await.expect("room");
    for n in &nodes {
        n.join(room).await.expect("join");
    }
    let ids: Vec<_> = nodes.iter().map(|n| n.id()).collect();
    futures_util::future::join_all(nodes.iter().map(|n| {
        let others: Vec<_> = ids.iter().copied().filter(|p| *p != n.id()).collect();
        async move { connected_to(n, others).await }
    }))
    .await;
    for (i, n) in nodes.iter().enumerate() {
        let sent = n.broadcast(room, "reliable", format!("from {i}").into_bytes(), None).await.expect("broadcast");
        assert_eq!(sent, 7);
    }
    for n in &nodes {
        let mut got: Vec<String> = Vec::new();
        for _ in 0..7 {
            let m = next_message(n).await;
            assert_eq!(m.room, Some(room));
            got.push(String::from_utf8(m.data.to_vec()).expect("utf8"));
        }
        got.sort();
        assert_eq!(got.len(), 7);
        assert!(got.iter().all(|g| g.starts_with("from ")));
    }
}
