//! JavaScript bindings (wasm-bindgen): the browser [`Node`] for plain
//! JavaScript pages.
//!
//! ```js
//! import init, { SwitchboardNode } from "./switchboard.js";
//! await init();
//! const node = await SwitchboardNode.start("ws://127.0.0.1:7600/ws",
//!   { channels: [{ label: "control" }, { label: "data" }], identityStore: "main" });
//! await node.join(await node.createRoom());
//! for (;;) {
//!   const e = await node.nextEvent();          // null once closed
//!   if (e.type === "peer_connected") await node.send(e.peer, "control", "hi");
//!   if (e.type === "message") console.log(e.peer, new TextDecoder().decode(e.data));
//! }
//! ```
//!
//! Options: `channels` (`label`, `reliable`, `ordered`, `inBand`),
//! `trustStore` (a name: the trust book is kept in the page's IndexedDB
//! under it; `setTrust` and `trust` change and read it),
//! `rawMessages` (one message is one data-channel message, for other
//! WebRTC stacks; channels open at run time with `openChannel`), `iceServers`,
//! `icePolicy` (`"all"` or `"relay"`), `maxMessageSize`, `serverRelayMs`
//! (how long a link goes without a WebRTC path before the server relay
//! carries it; `null` never relays), `authToken`, `topology` (`"mesh"` or
//! `"on_request"`), and the identity: `identity` (a secret from
//! `SwitchboardNode.newIdentity()`, base64url) or `identityStore` (a name:
//! the identity is kept in the page's IndexedDB under it, made the first
//! time). Without either, each start is a new identity. `log` (`"debug"`,
//! say) prints the library's log to the browser console.
//!
//! Every event is a plain object with a `type`: `peer_joined` (`meta`),
//! `peer_left`, `link_state`, `peer_connected` (`path`, `rtt_ms`),
//! `path_changed`, `peer_disconnected` (`reason`), `message` (`channel`,
//! `room`, `data`: a string for a text message, else a `Uint8Array`), `request` (`id` too; answer with
//! `respond`), `link_requested` (`meta`), `link_rejected` (`reason`),
//! `local_candidate` (`candidate`), `gathering_complete` (`description`), `channel_opened`, `channel_closed`, `quality`,
//! `signaling_lost`, `signaling_restored`, `room_lost`, `signaling_closed`,
//! `presence` (`online`), `mail` (`id`, `from`, `body`, `sent_at`; answer
//! with `ackMail([id])`), `host_changed` (`room`, `host`).

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use sha2::Digest;
use switchboard_proto::{PeerId, RoomCode};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::{ChannelConfig, Event, IcePolicy, IceServer, Identity, Node, NodeBuilder, Request, Topology, Trust};

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

/// An array of peer ids.
fn peer_ids(a: &JsValue) -> Result<Vec<PeerId>, JsValue> {
    Array::from(a).iter().map(|p| peer_id(&p.as_string().ok_or_else(|| err("a peer id must be a string"))?)).collect()
}

/// A JS value as JSON.
fn to_json(v: &JsValue, what: &str) -> Result<serde_json::Value, JsValue> {
    let text = js_sys::JSON::stringify(v).map(String::from).map_err(|_| err(format!("{what}: not JSON")))?;
    serde_json::from_str(&text).map_err(|e| err(format!("{what}: {e}")))
}

fn room_code(s: &str) -> Result<RoomCode, JsValue> {
    s.parse().map_err(|e| err(format!("room code {s:?}: {e}")))
}

/// A string as a text message, a `Uint8Array` or `ArrayBuffer` as a binary one.
fn message(data: &JsValue) -> Result<(Bytes, bool), JsValue> {
    match data.as_string() {
        Some(s) => Ok((Bytes::from(s), true)),
        None => Ok((bytes(data)?, false)),
    }
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

/// A channel from `{ label, reliable, ordered, inBand }`.
fn channel_config(c: &JsValue) -> Result<ChannelConfig, JsValue> {
    let label = get(c, "label").and_then(|l| l.as_string()).ok_or_else(|| err("a channel needs a label"))?;
    let reliable = get(c, "reliable").and_then(|v| v.as_bool()).unwrap_or(true);
    let ordered = get(c, "ordered").and_then(|v| v.as_bool()).unwrap_or(reliable);
    let config = if reliable { ChannelConfig::reliable(label) } else { ChannelConfig::unreliable(label) };
    let config = config.ordered(ordered);
    Ok(if get(c, "inBand").and_then(|v| v.as_bool()).unwrap_or(false) { config.in_band() } else { config })
}

/// Applies the options (see the module docs) to a builder.
fn configure(mut b: NodeBuilder, options: &JsValue) -> Result<NodeBuilder, JsValue> {
    if let Some(channels) = get(options, "channels") {
        for c in Array::from(&channels).iter() {
            b = b.channel(channel_config(&c)?);
        }
    }
    if let Some(raw) = get(options, "rawMessages").and_then(|v| v.as_bool()) {
        b = b.raw_messages(raw);
    }
    if let Some(name) = get(options, "trustStore") {
        b = b.trust_store(name.as_string().ok_or_else(|| err("trustStore: expected a name"))?);
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
    if let Some(token) = get(options, "authToken") {
        b = b.auth_token(token.as_string().ok_or_else(|| err("authToken: expected a string"))?);
    }
    match get(options, "topology").map(|t| t.as_string()) {
        None => {}
        Some(Some(t)) if t == "mesh" => b = b.topology(Topology::Mesh),
        Some(Some(t)) if t == "on_request" => b = b.topology(Topology::OnRequest),
        Some(_) => return Err(err("topology: expected \"mesh\" or \"on_request\"")),
    }
    if let Some(secret) = get(options, "identity") {
        let secret = secret.as_string().ok_or_else(|| err("identity: expected a string"))?;
        b = b.identity(identity_from(&secret)?);
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

/// A JSON value as a JavaScript one (`null` for none).
fn json_value(v: Option<&serde_json::Value>) -> JsValue {
    v.and_then(|v| js_sys::JSON::parse(&v.to_string()).ok()).unwrap_or(JsValue::NULL)
}

/// An identity from its base64url secret.
fn identity_from(secret: &str) -> Result<Identity, JsValue> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret)
        .map_err(|_| err("identity: expected base64url"))?;
    let secret: [u8; 32] = bytes.try_into().map_err(|_| err("identity: expected a 32-byte secret"))?;
    Ok(Identity::from_secret_bytes(secret))
}

fn event_object(e: Event) -> JsValue {
    let s = |v: &dyn std::fmt::Display| JsValue::from_str(&v.to_string());
    match e {
        Event::PeerJoined { room, peer, meta } => object(&[
            ("type", "peer_joined".into()),
            ("room", s(&room)),
            ("peer", s(&peer)),
            ("meta", json_value(meta.as_ref())),
        ]),
        Event::LinkRequested { peer, meta } => {
            object(&[("type", "link_requested".into()), ("peer", s(&peer)), ("meta", json_value(meta.as_ref()))])
        }
        Event::LinkRejected { peer, reason } => object(&[
            ("type", "link_rejected".into()),
            ("peer", s(&peer)),
            ("reason", reason.map_or(JsValue::NULL, JsValue::from)),
        ]),
        Event::LocalCandidate { peer, candidate } => {
            object(&[("type", "local_candidate".into()), ("peer", s(&peer)), ("candidate", candidate.into())])
        }
        Event::ChannelOpened { peer, channel } => {
            object(&[("type", "channel_opened".into()), ("peer", s(&peer)), ("channel", channel.into())])
        }
        Event::GatheringComplete { peer, description } => {
            object(&[("type", "gathering_complete".into()), ("peer", s(&peer)), ("description", description.into())])
        }
        Event::ChannelClosed { peer, channel } => {
            object(&[("type", "channel_closed".into()), ("peer", s(&peer)), ("channel", channel.into())])
        }
        Event::RoomLost { room, reason } => {
            object(&[("type", "room_lost".into()), ("room", s(&room)), ("reason", reason.into())])
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
            (
                "data",
                match m.text() {
                    Some(text) => JsValue::from_str(text),
                    None => Uint8Array::from(m.data.as_ref()).into(),
                },
            ),
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
        Event::Presence { peer, online } => {
            object(&[("type", "presence".into()), ("peer", s(&peer)), ("online", online.into())])
        }
        Event::Mail(m) => object(&[
            ("type", "mail".into()),
            ("id", JsValue::from_f64(m.id as f64)),
            ("from", s(&m.from)),
            ("body", json_value(Some(&m.body))),
            ("sent_at", JsValue::from_f64(m.sent_at as f64)),
        ]),
        Event::HostChanged { room, host } => {
            object(&[("type", "host_changed".into()), ("room", s(&room)), ("host", s(&host))])
        }
    }
}

#[wasm_bindgen]
impl SwitchboardNode {
    /// Starts a node: connects to the signaling server at `url` (`null`:
    /// none, only links by hand) with `options` (see the module docs).
    /// Resolves to the node once the server welcomed it.
    pub fn start(url: Option<String>, options: JsValue) -> Promise {
        future_to_promise(async move {
            let mut builder = configure(Node::builder(), &options)?;
            if let Some(url) = url {
                builder = builder.signaling(url);
            }
            match get(&options, "log").map(|l| l.as_string()) {
                None => {}
                Some(Some(level)) => {
                    let level = level
                        .parse::<tracing::Level>()
                        .map_err(|_| err("log: expected error, warn, info, debug or trace"))?;
                    super::log_to_console(level);
                }
                Some(None) => return Err(err("log: expected a level name")),
            }
            if let Some(name) = get(&options, "identityStore") {
                let name = name.as_string().ok_or_else(|| err("identityStore: expected a name"))?;
                builder = builder.identity(super::store::identity(&name).await?);
            }
            let node = builder.start().await.map_err(err)?;
            Ok(SwitchboardNode { node: Rc::new(node) }.into())
        })
    }

    /// A new identity's secret (base64url), for the `identity` option.
    /// Keep it secret: whoever has it is this peer.
    #[wasm_bindgen(js_name = newIdentity)]
    pub fn new_identity() -> String {
        switchboard_proto::encode_b64(&Identity::generate().to_secret_bytes())
    }

    /// This node's peer id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.node.id().to_string()
    }

    /// Creates a room (with an optional password and peer cap); resolves to its code.
    #[wasm_bindgen(js_name = createRoom)]
    pub fn create_room(&self, password: Option<String>, max_peers: Option<u32>) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            Ok(node.create_room(password.as_deref(), max_peers).await.map_err(err)?.to_string().into())
        })
    }

    /// Joins a room; `options`: `{ password, meta }` (meta: any JSON value
    /// the other peers see). Resolves to the ids of the peers already there.
    pub fn join(&self, room: String, options: JsValue) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            let password = get(&options, "password").and_then(|p| p.as_string());
            let meta = match get(&options, "meta") {
                Some(m) => Some(to_json(&m, "meta")?),
                None => None,
            };
            let joined = node.join_with(room_code(&room)?, password.as_deref(), meta).await.map_err(err)?;
            Ok(joined.peers.iter().map(|p| JsValue::from_str(&p.peer_id.to_string())).collect::<Array>().into())
        })
    }

    /// Follows the presence of `peers` (an array of ids): `presence` events.
    pub fn watch(&self, peers: JsValue) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            node.watch(&peer_ids(&peers)?).await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Stops following the presence of `peers`.
    pub fn unwatch(&self, peers: JsValue) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            node.unwatch(&peer_ids(&peers)?).await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Mails `body` (any JSON value) to `to`: resolves to the mail's id once
    /// the server stored it.
    pub fn mail(&self, to: String, body: JsValue) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            let id = node.mail(peer_id(&to)?, &to_json(&body, "body")?).await.map_err(err)?;
            Ok(JsValue::from_f64(id as f64))
        })
    }

    /// Acknowledges mail by id (an array of numbers): the server deletes it.
    #[wasm_bindgen(js_name = ackMail)]
    pub fn ack_mail(&self, ids: JsValue) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            let ids = Array::from(&ids)
                .iter()
                .map(|v| v.as_f64().filter(|n| n.fract() == 0.0 && *n >= 0.0).map(|n| n as u64))
                .collect::<Option<Vec<u64>>>()
                .ok_or_else(|| err("mail ids must be whole numbers"))?;
            node.ack_mail(&ids).await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sets how far this node trusts `peer`: `"trusted"`, `"blocked"`, or
    /// `null` (no word).
    #[wasm_bindgen(js_name = setTrust)]
    pub fn set_trust(&self, peer: String, trust: Option<String>) -> Result<(), JsValue> {
        let trust = match trust.as_deref() {
            None => None,
            Some("trusted") => Some(Trust::Trusted),
            Some("blocked") => Some(Trust::Blocked),
            Some(other) => return Err(err(format!("trust {other:?}: expected \"trusted\", \"blocked\" or null"))),
        };
        self.node.set_trust(peer_id(&peer)?, trust);
        Ok(())
    }

    /// How far this node trusts `peer`: `"trusted"`, `"blocked"` or `null`.
    pub fn trust(&self, peer: String) -> Result<JsValue, JsValue> {
        Ok(match self.node.trust(peer_id(&peer)?) {
            Some(Trust::Trusted) => "trusted".into(),
            Some(Trust::Blocked) => "blocked".into(),
            _ => JsValue::NULL,
        })
    }

    /// Asks `peer` for a link (the `on_request` topology).
    #[wasm_bindgen(js_name = requestLink)]
    pub fn request_link(&self, peer: String) -> Result<(), JsValue> {
        self.node.request_link(peer_id(&peer)?, None).map_err(err)
    }

    /// Accepts `peer`'s link request.
    pub fn accept(&self, peer: String) -> Result<(), JsValue> {
        self.node.accept(peer_id(&peer)?).map_err(err)
    }

    /// Declines `peer`'s link request, saying why.
    pub fn reject(&self, peer: String, reason: Option<String>) -> Result<(), JsValue> {
        self.node.reject(peer_id(&peer)?, reason).map_err(err)
    }

    /// Opens a channel (`{ label, reliable, ordered }`) in band on the raw
    /// link to `peer`; `channel_opened` says when it is open.
    #[wasm_bindgen(js_name = openChannel)]
    pub fn open_channel(&self, peer: String, channel: JsValue) -> Result<(), JsValue> {
        self.node.open_channel(peer_id(&peer)?, channel_config(&channel)?).map_err(err)
    }

    /// Closes `channel` on the raw link to `peer`; `channel_closed` follows
    /// on both sides.
    #[wasm_bindgen(js_name = closeChannel)]
    pub fn close_channel(&self, peer: String, channel: String) -> Result<(), JsValue> {
        self.node.close_channel(peer_id(&peer)?, &channel).map_err(err)
    }

    /// Starts a link by hand (bring your own signaling): resolves to
    /// `{ peer, sdp }`, the link's local handle and the offer to carry.
    /// With `expected` (a peer id), the answer must prove that peer.
    #[wasm_bindgen(js_name = createOffer)]
    pub fn create_offer(&self, expected: Option<String>) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            let made = match expected {
                Some(p) => node.create_offer_for(peer_id(&p)?).await,
                None => node.create_offer().await,
            };
            let (peer, sdp) = made.map_err(err)?;
            Ok(object(&[("peer", JsValue::from_str(&peer.to_string())), ("sdp", sdp.into())]))
        })
    }

    /// Answers an offer carried by hand: resolves to `{ peer, sdp }`. With
    /// `expected` (a peer id), the offer must prove that peer.
    #[wasm_bindgen(js_name = acceptOffer)]
    pub fn accept_offer(&self, offer: String, expected: Option<String>) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            let made = match expected {
                Some(p) => node.accept_offer_from(&offer, peer_id(&p)?).await,
                None => node.accept_offer(&offer).await,
            };
            let (peer, sdp) = made.map_err(err)?;
            Ok(object(&[("peer", JsValue::from_str(&peer.to_string())), ("sdp", sdp.into())]))
        })
    }

    /// Applies the answer to a link made with `createOffer`.
    #[wasm_bindgen(js_name = acceptAnswer)]
    pub fn accept_answer(&self, peer: String, answer: String) -> Result<(), JsValue> {
        self.node.accept_answer(peer_id(&peer)?, &answer).map_err(err)
    }

    /// Adds the other side's candidate to a link made by hand.
    #[wasm_bindgen(js_name = addRemoteCandidate)]
    pub fn add_remote_candidate(&self, peer: String, candidate: String) -> Result<(), JsValue> {
        self.node.add_remote_candidate(peer_id(&peer)?, &candidate).map_err(err)
    }

    /// Leaves a room.
    pub fn leave(&self, room: String) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            node.leave(room_code(&room)?).await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sends `data` to `peer` on `channel`, a string as a text message, a
    /// `Uint8Array` or `ArrayBuffer` as a binary one; resolves once it is queued (waiting while the link's
    /// buffer is full).
    pub fn send(&self, peer: String, channel: String, data: JsValue) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            let peer = peer_id(&peer)?;
            match message(&data)? {
                (text, true) => node.send_text(peer, &channel, String::from_utf8_lossy(&text)).await,
                (data, false) => node.send(peer, &channel, data).await,
            }
            .map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sends `data` to `peer` on `channel`, marked as belonging to `room`.
    #[wasm_bindgen(js_name = sendInRoom)]
    pub fn send_in_room(&self, peer: String, room: String, channel: String, data: JsValue) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            node.send_in_room(peer_id(&peer)?, room_code(&room)?, &channel, bytes(&data)?).await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sends `data` to every connected peer of `room`.
    pub fn broadcast(&self, room: String, channel: String, data: JsValue) -> Promise {
        let node = self.node.clone();
        future_to_promise(async move {
            let (data, text) = message(&data)?;
            node.broadcast_message(room_code(&room)?, &channel, data, text, None).await.map_err(err)?;
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
