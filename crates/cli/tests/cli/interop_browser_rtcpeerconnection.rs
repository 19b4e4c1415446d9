//! A plain page in headless Chromium, on the browser's own
//! `RTCPeerConnection` (no Switchboard code in it), and a raw Switchboard
//! node link with hand-carried SDP (`common::interop::link`): each side
//! offering, with trickle and without, directly and relay-only through
//! `serve`'s embedded TURN.

use crate::common;

use common::Serve;
use common::browser::{Driver, isolated};
use common::interop::{Stack, link};
use fantoccini::Client;
use serde_json::{Value, json};

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
    T.hook(T.pc.createDataChannel("stack"));
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

struct Page(Client);

impl Page {
    /// Runs `body` (an async function body over the array `a` of `args`)
    /// in the page and returns what it resolves to.
    async fn call(&self, body: &str, args: Vec<Value>) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1]; \
             (async (...a) => {{ {body} }})(...Array.from(arguments).slice(0, -1)) \
             .then(v => done({{ ok: v ?? null }}), e => done({{ error: String(e) }}));"
        );
        let out = self.0.execute_async(&script, args).await.expect("script runs");
        assert!(out.get("error").is_none(), "the page failed: {out} ({body})");
        out["ok"].clone()
    }

    async fn text(&self, body: &str, args: Vec<Value>) -> String {
        self.call(body, args).await.as_str().expect("a string").to_owned()
    }
}

impl Stack for Page {
    async fn setup(&mut self, ice: Value, policy: &str) {
        self.call("T.setup(a[0])", vec![json!({ "iceServers": ice, "iceTransportPolicy": policy })]).await;
    }

    async fn offer(&mut self, trickle: bool) -> String {
        self.text("return T.offer(a[0])", vec![json!(trickle)]).await
    }

    async fn answer(&mut self, offer: &str, trickle: bool) -> String {
        self.text("return T.answer(a[0], a[1])", vec![json!(offer), json!(trickle)]).await
    }

    async fn accept(&mut self, answer: &str) {
        self.call("await T.pc.setRemoteDescription({ type: 'answer', sdp: a[0] })", vec![json!(answer)]).await;
    }

    async fn add_candidate(&mut self, candidate: &str) {
        self.call("await T.pc.addIceCandidate({ candidate: a[0], sdpMLineIndex: 0 })", vec![json!(candidate)]).await;
    }

    async fn take_candidates(&mut self) -> Vec<String> {
        let taken = self.call("return T.take()", vec![]).await;
        taken.as_array().into_iter().flatten().filter_map(|c| c.as_str().map(str::to_owned)).collect()
    }

    async fn open_channel(&mut self, label: &str, text: &str) {
        let body = "const dc = T.hook(T.pc.createDataChannel(a[0])); dc.onopen = () => dc.send(a[1]);";
        self.call(body, vec![json!(label), json!(text)]).await;
    }

    async fn close(&mut self) {
        self.call("T.pc.close()", vec![]).await;
    }

    async fn log(&mut self) -> Vec<String> {
        let log = self.call("return T.log", vec![]).await;
        log.as_array().into_iter().flatten().filter_map(|l| l.as_str().map(str::to_owned)).collect()
    }
}

#[test]
fn a_plain_rtcpeerconnection_page_and_a_raw_node_link_both_ways() {
    isolated(|| async {
        let serve = Serve::start_with(&["--memory"]);
        let driver = Driver::start();
        let client = driver.browser().await;
        client.goto("about:blank").await.expect("a blank page");
        client.execute(PAGE, vec![]).await.expect("the page's script");
        let mut page = Page(client);
        for relay in [false, true] {
            for node_offers in [true, false] {
                for trickle in [true, false] {
                    link(&mut page, &serve, node_offers, trickle, relay).await;
                }
            }
        }
        page.0.close().await.expect("page closed");
    });
}
