//! A channel declared unordered delivers every message (reliable) without
//! holding later ones behind earlier ones.

use std::collections::BTreeSet;

use switchboard::ChannelConfig;

use crate::common::*;

#[tokio::test]
async fn unordered_channel_delivers_everything() {
    let server = TestServer::start().await;
    let node = || {
        server.node().channel(ChannelConfig::reliable("ordered")).channel(ChannelConfig::reliable("any").ordered(false))
    };
    let (a, b, _) = pair(&server, node(), node()).await;
    for i in 0..2000u32 {
        let size = if i % 50 == 0 { 100_000 } else { 20 };
        let mut data = vec![0u8; size];
        data[..4].copy_from_slice(&i.to_le_bytes());
        a.send(b.id(), "any", data).await.expect("send");
    }
    let mut seen = BTreeSet::new();
    while seen.len() < 2000 {
        let m = next_message(&b).await;
        assert_eq!(&*m.channel, "any");
        let i = u32::from_le_bytes([m.data[0], m.data[1], m.data[2], m.data[3]]);
        assert!(seen.insert(i), "message {i} twice");
        assert_eq!(m.data.len(), if i % 50 == 0 { 100_000 } else { 20 });
    }
}
