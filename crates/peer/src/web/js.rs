//! JavaScript bindings (wasm-bindgen): the browser [`Node`] for plain
//! JavaScript pages.
//!
//! ```js
//! import init, { SwitchboardNode } from "./switchboard.js";
//! await init();
//! const node = await SwitchboardNode.start("ws://127.0.0.1:7600/ws",
//!   { channels: [{ label: "control" }, { label: "data" }] });
//! await node.join(await node.createRoom());
//! for (;;) {
//!   const e = await node.nextEvent();          // null once closed
//!   if (e.type === "peer_connected") await node.send(e.peer, "control", "hi");
//!   if (e.type === "message") console.log(e.peer, new TextDecoder().decode(e.data));
//! }
//! ```
//!
//! Options: `channels` (`label`, `reliable`, `ordered`), `iceServers`,
//! `icePolicy` (`"all"` or `"relay"`), `maxMessageSize` and `serverRelayMs`
//! (how long a link goes without a WebRTC path before the server relay
//! carries it; `null` never relays).
//!
//! Every event is a plain object with a `type`: `peer_joined`, `peer_left`,
//! `link_state`, `peer_connected` (`path`, `rtt_ms`), `path_changed`,
//! `peer_disconnected` (`reason`), `message` (`channel`, `room`, `data` as
//! a `Uint8Array`), `request` (`id` too; answer with `respond`),
//! `quality`, `signaling_lost`, `signaling_restored`, `signaling_closed`.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use sha2::Digest;
use switchboard_proto::{PeerId, RoomCode};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::Node;
use crate::{ChannelConfig, Event, IcePolicy, IceServer, Request};

/// A Switchboard peer for JavaScript.
#[wasm_bindgen]
pub struct SwitchboardNode {
    node: Rc<Node>,
}

fn err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

fn get(o: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(o, &JsValue::from_str(key)).ok().filter(|v| !v.is_undefined() && !v.is_null())
}

fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

fn peer_id(s: &str) -> Result<PeerId, JsValue> {
    s.parse().map_err(|e| err(format!("peer id {s:?}: {e}")))
}

fn room_code(s: &str) -> Result<RoomCode, JsValue> {
    s.parse().map_err(|e| err(format!("room code {s:?}: {e}")))
}

/// A `Uint8Array`, `ArrayBuffer` or string as bytes.
fn bytes(data: &JsValue) -> Result<Bytes, JsValue> {
    if let Some(s) = data.as_string() {
        return Ok(Bytes::from(s));
    }
    if let Some(a) = data.dyn_ref::<Uint8Array>() {
        return Ok(Bytes::from(a.to_vec()));
    }
    if let Some(b) = data.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Bytes::from(Uint8Array::new(b).to_vec()));
    }
    Err(err("data must be a string, Uint8Array or ArrayBuffer"))
}

fn ms(d: Option<Duration>) -> JsValue {
    d.map_or(JsValue::NULL, |d| JsValue::from_f64(d.as_secs_f64() * 1000.0))
}

/// Applies `{ channels, iceServers, icePolicy, maxMessageSize }` to a builder.
fn configure(mut b: super::NodeBuilder, options: &JsValue) -> Result<super::NodeBuilder, JsValue> {
    if let Some(channels) = get(options, "channels") {
        for c in Array::from(&channels).iter() {
            let label = get(&c, "label").and_then(|l| l.as_string()).ok_or_else(|| err("a channel needs a label"))?;
            let reliable = get(&c, "reliable").and_then(|v| v.as_bool()).unwrap_or(true);
            let ordered = get(&c, "ordered").and_then(|v| v.as_bool()).unwrap_or(reliable);
            let config = if reliable { ChannelConfig::reliable(label) } else { ChannelConfig::unreliable(label) };
            b = b.channel(config.ordered(ordered));
        }
    }
    if let Some(servers) = get(options, "iceServers") {
        for s in Array::from(&servers).iter() {
            let urls = match get(&s, "urls") {
                Some(u) if u.is_string() => vec![u.as_string().unwrap_or_default()],
                Some(u) => Array::from(&u).iter().filter_map(|x| x.as_string()).collect(),
                None => return Err(err("an ICE server needs urls")),
            };
            let username = get(&s, "username").and_then(|v| v.as_string());
            let credential = get(&s, "credential").and_then(|v| v.as_string());
            b = b.ice_servers([IceServer { urls, username, credential }]);
        }
    }
    match get(options, "icePolicy").and_then(|p| p.as_string()).as_deref() {
        None | Some("all") => {}
        Some("relay") => b = b.ice_policy(IcePolicy::Relay),
        Some(other) => return Err(err(format!("icePolicy {other:?}: expected \"all\" or \"relay\""))),
    }
    if let Some(n) = get(options, "maxMessageSize").and_then(|v| v.as_f64()) {
        b = b.max_message_size(n as usize);
    }
    match get(options, "serverRelayMs") {
        None => {}
        Some(v) if v.is_null() || v.as_bool() == Some(false) => b = b.server_relay(None),
        Some(v) => match v.as_f64() {
            Some(ms) if ms.is_finite() && ms >= 0.0 => b = b.server_relay(Some(Duration::from_millis(ms as u64))),
            _ => return Err(err("serverRelayMs: expected milliseconds (0 or more), or null for no server relay")),
        },
    }
    Ok(b)
}

fn event_object(e: Event) -> JsValue {
    let s = |v: &dyn std::fmt::Display| JsValue::from_str(&v.to_string());
    match e {
        Event::PeerJoined { room, peer, .. } => {
            object(&[("type", "peer_joined".into()), ("room", s(&room)), ("peer", s(&peer))])
        }
        Event::PeerLeft { room, peer } => {
            object(&[("type", "peer_left".into()), ("room", s(&room)), ("peer", s(&peer))])
        }
        Event::LinkState { peer, state } => {
            object(&[("type", "link_state".into()), ("peer", s(&peer)), ("state", s(&state))])
        }
        Event::PeerConnected { peer, path, rtt } => {
            object(&[("type", "peer_connected".into()), ("peer", s(&peer)), ("path", s(&path)), ("rtt_ms", ms(rtt))])
        }
        Event::PathChanged { peer, path } => {
            object(&[("type", "path_changed".into()), ("peer", s(&peer)), ("path", s(&path))])
        }
        Event::PeerDisconnected { peer, reason } => {
            object(&[("type", "peer_disconnected".into()), ("peer", s(&peer)), ("reason", s(&reason))])
        }
        Event::Message(m) => object(&[
            ("type", "message".into()),
            ("peer", s(&m.peer)),
            ("channel", JsValue::from_str(&m.channel)),
            ("room", m.room.map_or(JsValue::NULL, |r| s(&r))),
            ("data", Uint8Array::from(m.data.as_ref()).into()),
        ]),
        Event::Request(r) => object(&[
            ("type", "request".into()),
            ("peer", s(&r.peer)),
            ("channel", JsValue::from_str(&r.channel)),
            ("id", JsValue::from_f64(r.id as f64)),
            ("data", Uint8Array::from(r.data.as_ref()).into()),
        ]),
        Event::QualityChanged { peer, quality } => {
            object(&[("type", "quality".into()), ("peer", s(&peer)), ("quality", s(&quality))])
        }
        Event::SignalingLost { reason } => object(&[("type", "signaling_lost".into()), ("reason", reason.into())]),
        Event::SignalingRestored { resumed } => {
            object(&[("type", "signaling_restored".into()), ("resumed", resumed.into())])
        }
        Event::SignalingClosed { reason } => object(&[("type", "signaling_closed".into()), ("reason", reason.into())]),
        other => object(&[("type", "other".into()), ("debug", format!("{other:?}").into())]),
    }
}

#[wasm_bindgen]
impl SwitchboardNode {
    /// Connects to the signaling server at `url`. `options`:
    /// `{ channels: [{ label, reliable = true, ordered }], iceServers:
    /// [{ urls, username, credential }], icePolicy: "all" | "relay",
    /// maxMessageSize, serverRelayMs = 5000 | null }`. Resolves to a node.
    pub fn start(url: String, options: JsValue) -> Promise {
        future_to_promise(async move {
            let builder = configure(Node::builder().signaling(url), &options)?;
            let node = builder.start().await.map_err(err)?;
            Ok(SwitchboardNode { node: Rc::new(node) }.into())
        })
    }

    /// This node's peer id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.node.id().to_string()
    }

    /// Creates a room; resolves to its code.
    #[wasm_bindgen(js_name = createRoom)]
    pub fn create_room(&self) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move { Ok(node.create_room(None, None).await.map_err(err)?.to_string().into()) })
    }

    /// Joins a room; resolves to the ids of the peers already there.
    pub fn join(&self, room: String) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            let joined = node.join(room_code(&room)?).await.map_err(err)?;
            Ok(joined.peers.iter().map(|p| JsValue::from_str(&p.peer_id.to_string())).collect::<Array>().into())
        })
    }

    /// Leaves a room.
    pub fn leave(&self, room: String) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            node.leave(room_code(&room)?).await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sends `data` (string, `Uint8Array` or `ArrayBuffer`) to `peer` on
    /// `channel`; resolves once it is queued (waiting while the link's
    /// buffer is full).
    pub fn send(&self, peer: String, channel: String, data: JsValue) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            node.send(peer_id(&peer)?, &channel, bytes(&data)?).await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sends `data` to every connected peer of `room`.
    pub fn broadcast(&self, room: String, channel: String, data: JsValue) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            node.broadcast(room_code(&room)?, &channel, bytes(&data)?, None).await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sends a request; resolves to the answer's bytes, rejects on an
    /// error answer or after `timeoutMs`.
    pub fn request(&self, peer: String, channel: String, data: JsValue, timeout_ms: f64) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            let timeout = Duration::from_secs_f64(timeout_ms.max(0.0) / 1000.0);
            let answer = node.request(peer_id(&peer)?, &channel, bytes(&data)?, timeout).await.map_err(err)?;
            Ok(Uint8Array::from(answer.as_ref()).into())
        })
    }

    /// Answers the request `id` of `peer` on `channel`; with `error`, as
    /// an error answer.
    pub fn respond(&self, peer: String, channel: String, id: f64, data: JsValue, error: Option<String>) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            let request = Request {
                peer: peer_id(&peer)?,
                channel: channel.as_str().into(),
                id: id as u64,
                room: None,
                data: Bytes::new(),
            };
            match error {
                Some(e) => node.respond_error(&request, &e).await.map_err(err)?,
                None => node.respond(&request, bytes(&data)?).await.map_err(err)?,
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The next event as a plain object; `null` once the node is closed.
    #[wasm_bindgen(js_name = nextEvent)]
    pub fn next_event(&self) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move { Ok(node.next_event().await.map_or(JsValue::NULL, event_object)) })
    }

    /// The link's figures: `{ state, path, rtt_ms, bytes_sent,
    /// bytes_received, messages_sent, messages_received, buffered, quality }`,
    /// or `null` without a link.
    pub fn stats(&self, peer: String) -> Result<JsValue, JsValue> {
        let peer = peer_id(&peer)?;
        let Some(st) = self.node.stats(peer) else { return Ok(JsValue::NULL) };
        let state = self.node.link_state(peer).map_or(JsValue::NULL, |s| s.to_string().into());
        Ok(object(&[
            ("state", state),
            ("path", st.path.map_or(JsValue::NULL, |p| p.to_string().into())),
            ("rtt_ms", ms(st.rtt)),
            ("bytes_sent", JsValue::from_f64(st.bytes_sent as f64)),
            ("bytes_received", JsValue::from_f64(st.bytes_received as f64)),
            ("messages_sent", JsValue::from_f64(st.messages_sent as f64)),
            ("messages_received", JsValue::from_f64(st.messages_received as f64)),
            ("buffered", JsValue::from_f64(st.buffered as f64)),
            ("quality", st.quality.map_or(JsValue::NULL, |q| q.to_string().into())),
        ]))
    }

    /// Ids of the peers with a link.
    pub fn peers(&self) -> Array {
        self.node.peers().iter().map(|p| JsValue::from_str(&p.to_string())).collect()
    }

    /// Bytes queued on the link to `peer`.
    #[wasm_bindgen(js_name = bufferedAmount)]
    pub fn buffered_amount(&self, peer: String) -> Result<f64, JsValue> {
        Ok(self.node.buffered_amount(peer_id(&peer)?) as f64)
    }

    /// Closes the link to `peer`.
    pub fn disconnect(&self, peer: String) -> Result<(), JsValue> {
        self.node.disconnect(peer_id(&peer)?, None);
        Ok(())
    }

    /// Closes every link and the signaling connection.
    pub fn close(&self) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            node.close().await;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// An incremental SHA-256 (for checking received files).
#[wasm_bindgen(js_name = Sha256)]
#[derive(Default)]
pub struct Sha256Hasher {
    inner: sha2::Sha256,
}

#[wasm_bindgen(js_class = Sha256)]
impl Sha256Hasher {
    /// A new hash.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Sha256Hasher {
        Sha256Hasher::default()
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// The digest as lower-case hex; the hash starts over.
    pub fn hex(&mut self) -> String {
        let digest = std::mem::take(&mut self.inner).finalize();
        let mut hex = String::with_capacity(64);
        for b in digest {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }
}
