//! A relayed link outlives the TURN credentials it was made with: when the
//! node fetches fresh ones, the link moves to a new allocation by ICE
//! restart, and a reliable stream running across it loses nothing.

use std::time::Duration;

use switchboard::{Event, IcePolicy, PathKind};
use switchboard_server::{ServerConfig, TurnConfig};

use crate::common::{PATIENCE, TestServer, connected_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_link_moves_to_fresh_credentials_and_loses_nothing() {
    let server = TestServer::start_with(ServerConfig {
        turn: Some(TurnConfig { listen: "127.0.0.1:0".parse().expect("addr"), ..TurnConfig::default() }),
        turn_credential_ttl_secs: 4,
        ..ServerConfig::default()
    })
    .await;
    let a = server.node().ice_policy(IcePolicy::Relay).start().await.expect("a starts");
    let b = server.node().ice_policy(IcePolicy::Relay).start().await.expect("b starts");
    let room = a.create_room(None, None).await.expect("room");
    a.join(room).await.expect("a joins");
    b.join(room).await.expect("b joins");
    let (pa, pb) = tokio::join!(connected_path(&a), connected_path(&b));
    assert_eq!((pa, pb), (PathKind::Relayed, PathKind::Relayed));

    // Wall-clock time is the point: the first credentials expire 4 s after
    // `welcome`, and the nodes renew them every 2 s. Messages go out every
    // 50 ms for 10 s, across several renewals.
    const N: u32 = 200;
    let sender = async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for i in 0..N {
            tick.tick().await;
            a.send(b.id(), "reliable", i.to_be_bytes().to_vec()).await.expect("send");
        }
    };
    let receiver = async {
        let mut next = 0u32;
        tokio::time::timeout(PATIENCE + Duration::from_secs(10), async {
            while next < N {
                match b.next_event().await.expect("node open") {
                    Event::Message(m) => {
                        assert_eq!(m.data.as_ref(), next.to_be_bytes(), "message {next} lost, repeated or reordered");
                        next += 1;
                    }
                    Event::PeerDisconnected { reason, .. } => panic!("the link ended: {reason}"),
                    _ => {}
                }
            }
        })
        .await
        .expect("every message in time");
    };
    tokio::join!(sender, receiver);

    let stats = a.stats(b.id()).expect("link stats");
    assert!(stats.ice_restarts >= 2, "the link restarted {} times", stats.ice_restarts);
    assert_eq!(stats.path, Some(PathKind::Relayed));
    a.close().await;
    b.close().await;
}
