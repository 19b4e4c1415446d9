//! Peers that join at the same moment end with exactly one link each way:
//! the lower id offers, so offers never cross.

use switchboard::{Event, LinkState};

use crate::common::*;

#[tokio::test]
async fn simultaneous_joins_do_not_glare() {
    let server = TestServer::start().await;
    let first = server.node().start().await.expect("first");
    let room = first.create_room(None, None).await.expect("room");
    let mut nodes = vec![first];
    for _ in 0..3 {
        nodes.push(server.node().start().await.expect("node"));
    }
    let joins = nodes.iter().map(|n| n.join(room));
    for r in futures_util::future::join_all(joins).await {
        r.expect("join");
    }
    let ids: Vec<_> = nodes.iter().map(|n| n.id()).collect();
    futures_util::future::join_all(nodes.iter().map(|n| {
        let others: Vec<_> = ids.iter().copied().filter(|p| *p != n.id()).collect();
        async move { connected_to(n, others).await }
    }))
    .await;
    for n in &nodes {
        let mut peers = n.peers();
        peers.sort();
        assert_eq!(peers.len(), 3, "one link per other peer");
        for p in peers {
            let states: Vec<LinkState> = n.link_history(p).into_iter().map(|(_, s)| s).collect();
            assert_eq!(states.last(), Some(&LinkState::Connected), "{states:?}");
            assert!(!states.contains(&LinkState::Failed) && !states.contains(&LinkState::Closed));
        }
    }
    // No link was replaced or dropped on the way.
    for n in &nodes {
        while let Ok(Some(ev)) = tokio::time::timeout(std::time::Duration::from_millis(100), n.next_event()).await {
            assert!(!matches!(ev, Event::PeerDisconnected { .. }), "{ev:?}");
        }
    }
}
