//! A plain page in headless Chromium, on the browser's own
//! `RTCPeerConnection` (no Switchboard code in it), and a raw Switchboard
//! node link with hand-carried SDP, as an application with its own
//! signaling does: each side offering, with trickle and without, directly
//! and relay-only through `serve`'s embedded TURN. The page echoes every
//! message on the type it came as; text and binary come back as text and
//! binary; a message as large as the page's `a=max-message-size` crosses
//! whole both ways; a channel the page opens later reaches the node; the page's
//! close reaches the node at once, the node's reaches the page (by ICE
//! consent, see below).

use crate::common;

use std::time::Duration;

use common::Serve;
use common::browser::{Driver, isolated};
use fantoccini::Client;
use serde_json::{Value, json};
use switchboard::proto::PeerId;
use switchboard::{
    ChannelConfig, ConnectOptions, DisconnectReason, Event, HostCandidates, IcePolicy, Identity, Node, PathKind,
    SignalingClient,
};

const PATIENCE: Duration = Duration::from_secs(30);

/// The page's side: a peer connection and an echo on every channel.
const PAGE: &str = r#"
window.T = {
  setup(cfg) {
    const pc = new RTCPeerConnection(cfg);
    Object.assign(T, { pc, log: [], cands: [] });
    pc.onicecandidate = e => { if (e.candidate && e.candidate.candidate) T.cands.push(e.candidate.candidate); };
    pc.ondatachannel = e => T.hook(e.channel);
    pc.onconnectionstatechange = () => T.log.push("state:" + pc.connectionState);
  },
  hook(dc) {
    dc.binaryType = "arraybuffer";
    dc.onopen = () => T.log.push("open:" + dc.label);
    dc.onclose = () => T.log.push("close:" + dc.label);
    dc.onmessage = e => {
      const text = typeof e.data === "string";
      T.log.push((text ? "text:" : "binary:") + dc.label + ":" + (text ? e.data : e.data.byteLength));
      if (!(text && e.data.startsWith("echo "))) dc.send(e.data);
    };
    return dc;
  },
  gathered() {
    return new Promise(r => {
      const done = () => T.pc.iceGatheringState === "complete" && r();
      T.pc.addEventListener("icegatheringstatechange", done);
      done();
    });
  },
  async local(trickle) {
    if (!trickle) await T.gathered();
    return T.pc.localDescription.sdp;
  },
  async offer(trickle) {
    T.hook(T.pc.createDataChannel("page"));
    await T.pc.setLocalDescription(await T.pc.createOffer());
    return T.local(trickle);
  },
  async answer(sdp, trickle) {
    await T.pc.setRemoteDescription({ type: "offer", sdp });
    await T.pc.setLocalDescription(await T.pc.createAnswer());
    return T.local(trickle);
  },
  take() { const c = T.cands; T.cands = []; return c; },
};
"#;

/// Runs `body` (an async function body using `arguments`) in the page and
/// returns what it resolves to.
async fn call(page: &Client, body: &str, args: Vec<Value>) -> Value {
    let script = format!(
        "const done = arguments[arguments.length - 1]; \
         (async (...a) => {{ {body} }})(...Array.from(arguments).slice(0, -1)) \
         .then(v => done({{ ok: v ?? null }}), e => done({{ error: String(e) }}));"
    );
    let out = page.execute_async(&script, args).await.expect("script runs");
    assert!(out.get("error").is_none(), "the page failed: {out} ({body})");
    out["ok"].clone()
}

/// One link between the page and a fresh node, checked end to end.
async fn link(page: &Client, serve: &Serve, node_offers: bool, trickle: bool, relay: bool) {
    let what = format!("node offers {node_offers}, trickle {trickle}, relay-only {relay}");
    // The page's TURN credentials, minted by the server for a session of its own.
    let session = if relay {
        let client = SignalingClient::connect(&serve.url, &Identity::generate(), ConnectOptions::default())
            .await
            .expect("a session for the page's TURN credentials");
        Some(client)
    } else {
        None
    };
    let ice = session.as_ref().map_or(json!([]), |s| json!(s.welcome().ice_servers));
    let policy = if relay { "relay" } else { "all" };
    call(page, "T.setup(a[0])", vec![json!({ "iceServers": ice, "iceTransportPolicy": policy })]).await;

    let mut builder = Node::builder().host_candidates(HostCandidates::Loopback).raw_messages(true);
    if relay {
        builder = builder.signaling(&serve.url).ice_policy(IcePolicy::Relay);
    }
    if node_offers {
        builder = builder.channel(ChannelConfig::reliable("node").in_band());
    }
    let node = builder.start().await.expect("node starts");
    let mut seen = Vec::new();
    let page_sdp;
    let link = if node_offers {
        let (link, mut offer) = node.create_offer().await.expect("offer");
        if !trickle {
            offer = complete(&node, &mut seen).await;
        }
        let answer = call(page, "return T.answer(a[0], a[1])", vec![json!(offer), json!(trickle)]).await;
        node.accept_answer(link, answer.as_str().expect("sdp")).expect("answer taken");
        page_sdp = answer.as_str().expect("sdp").to_owned();
        link
    } else {
        let offer = call(page, "return T.offer(a[0])", vec![json!(trickle)]).await;
        page_sdp = offer.as_str().expect("sdp").to_owned();
        let (link, mut answer) = node.accept_offer(offer.as_str().expect("sdp")).await.expect("answer");
        if !trickle {
            answer = complete(&node, &mut seen).await;
        }
        call(page, "await T.pc.setRemoteDescription({ type: 'answer', sdp: a[0] })", vec![json!(answer)]).await;
        link
    };
    let path = connect(page, &node, link, trickle, &mut seen).await;
    assert_eq!(path, if relay { PathKind::Relayed } else { PathKind::Host }, "{what}");

    // The channel the offering side created, and an echo of each kind.
    let channel = if node_offers { "node" } else { "page" };
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

    // A message as large as the page's description allows, whole both ways.
    let size: usize = page_sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=max-message-size:")?.parse().ok())
        .expect("the page advertises a=max-message-size");
    node.send(link, channel, vec![9u8; size]).await.expect("the largest message");
    let m = message(&node, &mut seen).await;
    assert_eq!((m.is_text, m.data.len()), (false, size), "{what}");
    assert!(m.data.iter().all(|&b| b == 9), "{what}");
    assert!(node.send(link, channel, vec![9u8; size + 1]).await.is_err(), "{what}: one byte more is refused");

    if node_offers {
        // The page opens a channel of its own on the running link.
        call(page, "const dc = T.hook(T.pc.createDataChannel('late')); dc.onopen = () => dc.send('hello');", vec![])
            .await;
        until_event(&node, &mut seen, |e| matches!(e, Event::ChannelOpened { channel, .. } if channel == "late")).await;
        let m = message(&node, &mut seen).await;
        assert_eq!((m.text(), &*m.channel), (Some("hello"), "late"), "{what}");
        node.send_text(link, "late", "echo hello").await.expect("answer sent");
        page_log(page, &["text:late:echo hello"]).await;
        // The node closes. Chromium closes a channel only once its own
        // stream reset is answered, and takes DTLS close_notify as no more
        // than silence: it learns of the close when ICE consent fails.
        node.disconnect(link, None);
        page_log(page, &["close:node", "state:failed", "state:closed"]).await;
    } else {
        // The page closes: the node hears it at once, not after its path timeouts.
        call(page, "T.pc.close()", vec![]).await;
        let reason = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                if let Some(Event::PeerDisconnected { reason, .. }) = node.next_event().await {
                    return reason;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: the node did not hear the page close"));
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
async fn connect(page: &Client, node: &Node, link: PeerId, trickle: bool, seen: &mut Vec<Event>) -> PathKind {
    let end = tokio::time::Instant::now() + PATIENCE;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            e = node.next_event() => match e.expect("node open") {
                Event::PeerConnected { path, .. } => return path,
                Event::LocalCandidate { candidate, .. } if trickle => {
                    let add = "await T.pc.addIceCandidate({ candidate: a[0], sdpMLineIndex: 0 })";
                    call(page, add, vec![json!(candidate)]).await;
                }
                e => seen.push(e),
            },
            _ = tick.tick(), if trickle => {
                for c in call(page, "return T.take()", vec![]).await.as_array().into_iter().flatten() {
                    node.add_remote_candidate(link, c.as_str().expect("candidate")).expect("candidate taken");
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

async fn message(node: &Node, seen: &mut Vec<Event>) -> switchboard::Message {
    let Event::Message(m) = until_event(node, seen, |e| matches!(e, Event::Message(_))).await else { unreachable!() };
    m
}

/// Waits until the page's log has one of `entries`.
async fn page_log(page: &Client, entries: &[&str]) {
    let script = "return arguments[0].some(e => T.log.includes(e)) ? true : null;";
    let end = tokio::time::Instant::now() + PATIENCE;
    while page.execute(script, vec![json!(entries)]).await.expect("script runs").is_null() {
        if tokio::time::Instant::now() > end {
            let log = page.execute("return T.log", vec![]).await.unwrap_or_default();
            panic!("the page never logged any of {entries:?}; it logged {log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_plain_rtcpeerconnection_page_and_a_raw_node_link_both_ways() {
    isolated(|| async {
        let serve = Serve::start_with(&["--memory"]);
        let driver = Driver::start();
        let page = driver.browser().await;
        page.goto("about:blank").await.expect("a blank page");
        page.execute(PAGE, vec![]).await.expect("the page's script");
        for relay in [false, true] {
            for node_offers in [true, false] {
                for trickle in [true, false] {
                    link(&page, &serve, node_offers, trickle, relay).await;
                }
            }
        }
        page.close().await.expect("page closed");
    });
}
