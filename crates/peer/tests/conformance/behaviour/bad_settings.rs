//! Bad settings and bad calls get clear errors, the same on every backend:
//! inconsistent settings are refused at start, an unreachable server, a
//! room that does not exist, an unknown peer or channel.

use switchboard::proto::{ErrorCode, RoomCode};
use switchboard::{ChannelConfig, HostCandidates, IceServer, Identity, RequestError, RoomError, SendError, StartError};

use crate::harness::{Harness, pair, within};

fn config_error(result: Result<switchboard::Node, StartError>) -> String {
    match result {
        Err(StartError::Config(why)) => why,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

pub async fn run<H: Harness>(h: &H) {
    let bad = [
        (h.node().watermarks(1 << 20, 2 << 20), "low watermark above high watermark"),
        (h.node().chunk_size(100), "chunk size must be between 1 KiB and 64 KiB"),
        (h.node().receive_window(1000), "receive window must hold at least 4 chunks"),
        (
            h.node().channel(ChannelConfig::reliable("x")).channel(ChannelConfig::reliable("x")),
            "channel \"x\" declared twice",
        ),
        (h.node().channel(ChannelConfig::reliable("switchboard-control")), "names starting with switchboard-"),
        (h.node().ice_servers([IceServer::stun("http://example.invalid")]), "stun"),
        (h.node().max_links(0), "at least one link"),
    ];
    for (builder, why) in bad {
        let error = config_error(within(h, "start", builder.start()).await);
        assert!(error.contains(why), "{error:?} should say {why:?}");
    }
    if cfg!(target_arch = "wasm32") {
        // What only a native node can honour is refused in a browser, saying why.
        let error = config_error(within(h, "start", h.node().host_candidates(HostCandidates::Loopback).start()).await);
        assert!(error.contains("the browser chooses its own addresses"), "{error:?}");
    }
    let unreachable = within(h, "start", h.node().signaling("ws://127.0.0.1:9/ws").start()).await;
    assert!(matches!(unreachable, Err(StartError::Signaling(_))), "{unreachable:?}");

    let (a, b, _room) = pair(h, || h.node()).await;
    let missing: RoomCode = "ZZZZZZ".parse().expect("a code");
    match within(h, "join", a.join(missing)).await {
        Err(RoomError::Request(RequestError::Refused { code: ErrorCode::NotFound, .. })) => {}
        other => panic!("joining a room that does not exist: {other:?}"),
    }
    let stranger = Identity::generate().peer_id();
    assert_eq!(a.send(stranger, "reliable", &b"x"[..]).await, Err(SendError::UnknownPeer(stranger)));
    assert_eq!(a.send(b.id(), "nope", &b"x"[..]).await, Err(SendError::UnknownChannel("nope".into())));
    a.close().await;
    b.close().await;
}
