//! Interop with other WebRTC stacks: a raw Switchboard node and another
//! stack ([`Stack`]: a plain Chromium page, aiortc) link with hand-carried
//! SDP, as an application with its own signaling does, and [`link`] checks
//! the link end to end. The other side echoes every message as the kind it
//! came as, except text that starts with "echo ", and keeps a log of what
//! it saw: `open:LABEL`, `close:LABEL`, `text:LABEL:TEXT`,
//! `binary:LABEL:LENGTH`, `state:STATE`.

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard::proto::PeerId;
use switchboard::{
    ChannelConfig, ConnectOptions, DisconnectReason, Event, HostCandidates, IcePolicy, Identity, Message, Node,
    PathKind, SignalingClient,
};

use super::Serve;

pub const PATIENCE: Duration = Duration::from_secs(30);

/// What the test needs of the other stack.
pub trait Stack {
    /// A fresh peer connection with these ICE servers and policy (`all`, `relay`).
    fn setup(&mut self, ice: Value, policy: &str) -> impl Future<Output = ()>;
    /// An offer with a channel of the stack's own; complete when not `trickle`.
    fn offer(&mut self, trickle: bool) -> impl Future<Output = String>;
    /// The answer to `offer`; complete when not `trickle`.
    fn answer(&mut self, offer: &str, trickle: bool) -> impl Future<Output = String>;
    /// Applies the answer to its offer.
    fn accept(&mut self, answer: &str) -> impl Future<Output = ()>;
    /// Adds a candidate of the node.
    fn add_candidate(&mut self, candidate: &str) -> impl Future<Output = ()>;
    /// Its candidates found since the last call (trickle).
    fn take_candidates(&mut self) -> impl Future<Output = Vec<String>>;
    /// Opens channel `label` on the running link and sends `text` on it once open.
    fn open_channel(&mut self, label: &str, text: &str) -> impl Future<Output = ()>;
    /// Closes its peer connection.
    fn close(&mut self) -> impl Future<Output = ()>;
    /// Its log so far.
    fn log(&mut self) -> impl Future<Output = Vec<String>>;
}

/// One link between `stack` and a fresh raw node, checked end to end: the
/// offering side's channel, text and binary echoed by kind, a message as
/// large as the stack's `a=max-message-size` and one byte more refused, a
/// channel each side opens later, one the node closes alone, and a close
/// on one side heard by the other.
pub async fn link(stack: &mut impl Stack, serve: &Serve, node_offers: bool, trickle: bool, relay: bool) {
    let what = format!("node offers {node_offers}, trickle {trickle}, relay-only {relay}");
    // The stack's TURN credentials, minted by the server for a session of its own.
    let session = if relay {
        let client = SignalingClient::connect(&serve.url, &Identity::generate(), ConnectOptions::default())
            .await
            .expect("a session for the other stack's TURN credentials");
        Some(client)
    } else {
        None
    };
    let ice = session.as_ref().map_or(json!([]), |s| json!(s.welcome().ice_servers));
    stack.setup(ice, if relay { "relay" } else { "all" }).await;

    let mut builder = Node::builder().host_candidates(HostCandidates::Loopback).raw_messages(true);
    if relay {
        builder = builder.signaling(&serve.url).ice_policy(IcePolicy::Relay);
    }
    if node_offers {
        builder = builder.channel(ChannelConfig::reliable("node").in_band());
    }
    let node = builder.start().await.expect("node starts");
    let mut seen = Vec::new();
    let (link, stack_sdp) = if node_offers {
        let (link, mut offer) = node.create_offer().await.expect("offer");
        if !trickle {
            offer = complete(&node, &mut seen).await;
        }
        let answer = stack.answer(&offer, trickle).await;
        node.accept_answer(link, &answer).expect("answer taken");
        (link, answer)
    } else {
        let offer = stack.offer(trickle).await;
        let (link, mut answer) = node.accept_offer(&offer).await.expect("answer");
        if !trickle {
            answer = complete(&node, &mut seen).await;
        }
        stack.accept(&answer).await;
        (link, offer)
    };
    let path = connect(stack, &node, link, trickle, &mut seen).await;
    assert_eq!(path, if relay { PathKind::Relayed } else { PathKind::Host }, "{what}");

    // The channel the offering side created, and an echo of each kind.
    let channel = if node_offers { "node" } else { "stack" };
    until_event(&node, &mut seen, |e| matches!(e, Event::ChannelOpened { channel: c, .. } if c == channel)).await;
    for i in 0..20 {
        node.send_text(link, channel, format!("ping {i}")).await.expect("text sent");
        node.send(link, channel, vec![i as u8; 100 + i]).await.expect("binary sent");
    }
    for i in 0..20 {
        let m = message(&node, &mut seen).await;
        assert_eq!((m.text(), &*m.channel), (Some(format!("ping {i}").as_str()), channel), "{what}");
        let m = message(&node, &mut seen).await;
        assert_eq!((m.is_text, m.data.to_vec()), (false, vec![i as u8; 100 + i]), "{what}");
    }

    // A message as large as the stack's description allows, whole both ways.
    let size: usize = stack_sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=max-message-size:")?.parse().ok())
        .expect("the other stack advertises a=max-message-size");
    node.send(link, channel, vec![9u8; size]).await.expect("the largest message");
    let m = message(&node, &mut seen).await;
    assert_eq!((m.is_text, m.data.len()), (false, size), "{what}");
    assert!(m.data.iter().all(|&b| b == 9), "{what}");
    assert!(node.send(link, channel, vec![9u8; size + 1]).await.is_err(), "{what}: one byte more is refused");

    // Each side opens a channel of its own on the running link.
    stack.open_channel("late", "hello").await;
    until_event(&node, &mut seen, |e| matches!(e, Event::ChannelOpened { channel, .. } if channel == "late")).await;
    let m = message(&node, &mut seen).await;
    assert_eq!((m.text(), &*m.channel), (Some("hello"), "late"), "{what}");
    node.send_text(link, "late", "echo hello").await.expect("answer sent");
    logged(stack, &["text:late:echo hello"], &what).await;
    node.open_channel(link, ChannelConfig::reliable("node-late")).expect("the node opens a channel");
    until_event(&node, &mut seen, |e| matches!(e, Event::ChannelOpened { channel, .. } if channel == "node-late"))
        .await;
    node.send_text(link, "node-late", "from the node").await.expect("sent on the node's channel");
    let m = message(&node, &mut seen).await;
    assert_eq!((m.text(), &*m.channel), (Some("from the node"), "node-late"), "{what}: echoed");
    // The node closes that channel alone: both sides hear it, the link stays.
    node.close_channel(link, "node-late").expect("the node closes its channel");
    until_event(&node, &mut seen, |e| matches!(e, Event::ChannelClosed { channel, .. } if channel == "node-late"))
        .await;
    logged(stack, &["close:node-late"], &what).await;
    node.send_text(link, "late", "echo still linked").await.expect("the link stays");
    logged(stack, &["text:late:echo still linked"], &what).await;

    if node_offers {
        // The node closes: the stack's channels close on its stream resets.
        node.disconnect(link, None);
        logged(stack, &["close:node"], &what).await;
    } else {
        // The stack closes: the node hears it at once, not after its path timeouts.
        stack.close().await;
        let reason = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                if let Some(Event::PeerDisconnected { reason, .. }) = node.next_event().await {
                    return reason;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: the node did not hear the close"));
        assert!(matches!(reason, DisconnectReason::ClosedByPeer(_)), "{what}: {reason:?}");
    }
    node.close().await;
    drop(session);
}

/// Waits for the node's complete description (non-trickle), keeping other events.
async fn complete(node: &Node, seen: &mut Vec<Event>) -> String {
    let event = until_event(node, seen, |e| matches!(e, Event::GatheringComplete { .. })).await;
    let Event::GatheringComplete { description, .. } = event else { unreachable!() };
    description
}

/// Carries candidates both ways when trickling until the node's link is up.
async fn connect(stack: &mut impl Stack, node: &Node, link: PeerId, trickle: bool, seen: &mut Vec<Event>) -> PathKind {
    let end = tokio::time::Instant::now() + PATIENCE;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            e = node.next_event() => match e.expect("node open") {
                Event::PeerConnected { path, .. } => return path,
                Event::LocalCandidate { candidate, .. } if trickle => stack.add_candidate(&candidate).await,
                e => seen.push(e),
            },
            _ = tick.tick(), if trickle => {
                for c in stack.take_candidates().await {
                    node.add_remote_candidate(link, &c).expect("candidate taken");
                }
            }
            () = tokio::time::sleep_until(end) => panic!("no link within {PATIENCE:?}; events {seen:?}"),
        }
    }
}

/// The first event (kept earlier, or next) that `pick` accepts.
async fn until_event(node: &Node, seen: &mut Vec<Event>, pick: impl Fn(&Event) -> bool) -> Event {
    if let Some(i) = seen.iter().position(&pick) {
        return seen.remove(i);
    }
    tokio::time::timeout(PATIENCE, async {
        loop {
            let e = node.next_event().await.expect("node open");
            if pick(&e) {
                return e;
            }
            seen.push(e);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no such event within {PATIENCE:?}; events {seen:?}"))
}

async fn message(node: &Node, seen: &mut Vec<Event>) -> Message {
    let Event::Message(m) = until_event(node, seen, |e| matches!(e, Event::Message(_))).await else { unreachable!() };
    m
}

/// Waits until the stack's log has one of `entries`.
async fn logged(stack: &mut impl Stack, entries: &[&str], what: &str) {
    let end = tokio::time::Instant::now() + PATIENCE;
    loop {
        let log = stack.log().await;
        if log.iter().any(|l| entries.contains(&l.as_str())) {
            return;
        }
        let late = tokio::time::Instant::now() > end;
        assert!(!late, "{what}: the other stack never logged any of {entries:?}; it logged {log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
