//! The browser backend (wasm32): the same [`Node`] API over the browser's
//! own WebRTC (`RTCPeerConnection`, `RTCDataChannel`) and `WebSocket`.
//!
//! The node speaks the same protocol as the native one: the signaling
//! handshake, who offers (the lower id), pre-negotiated channels with the
//! control and probe channels, framing, credit, acknowledgements and probes
//! (the shared sans-IO [`Transfer`](crate::link::transfer::Transfer)). So
//! a page and a native peer talk to each other directly.
//!
//! Links have the same carriers as native ones: WebRTC sessions (a new
//! one replaces a lost one) and the server relay, end-to-end encrypted,
//! when WebRTC has no path (see `link`).
//!
//! Not in the browser: the request topology and bring-your-own-signaling
//! calls.
//!
//! Everything runs on the page's one thread: the node's state sits in a
//! `RefCell`, and every browser callback is an input handled to completion.

pub(crate) mod js;
mod link;
mod signaling;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use serde::Serialize;
use switchboard_proto::SignalData;
use switchboard_proto::{ClientMessage, ConnId, CreateRoom, Join, JoinedRoom, Leave, PeerId, RoomCode, ServerMessage};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::RtcSdpType;
use web_time::Instant;

use crate::framing::{Delivered, MessageKind, OutMessage};
use crate::link::relay::{RELAY_CHANNEL, RelaySetup};
use crate::{
    ChannelConfig, DisconnectReason, Event, IcePolicy, IceServer, Identity, Incoming, LinkState, LinkStats, Message,
    Request, RequestError, RequestFailed, RoomError, SendError, StartError,
};
use link::{Effect, Input, LinkSettings, WebLink};
use signaling::Signaling;

/// How many times a new link's stats are read for its selected pair, and
/// the pause between reads.
const PATH_READS: u32 = 10;
const PATH_READ_PAUSE: Duration = Duration::from_millis(100);

/// Resolves after `duration` (a browser timer).
async fn pause(duration: Duration) {
    let ms = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Text of a JS exception or error value.
fn js_error(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::Reflect::get(e, &JsValue::from_str("message")).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Settings for a [`Node`] in the browser.
pub struct NodeBuilder {
    signaling: Option<String>,
    identity: Option<Identity>,
    auth_token: Option<String>,
    channels: Vec<ChannelConfig>,
    ice_servers: Vec<IceServer>,
    policy: IcePolicy,
    max_message: usize,
    high: usize,
    low: usize,
    window: usize,
    chunk_size: usize,
    connect_timeout: Duration,
    server_relay: Option<Duration>,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("signaling", &self.signaling)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl NodeBuilder {
    /// The signaling server (`ws://host:port/ws`, or `wss://`).
    pub fn signaling(mut self, url: impl Into<String>) -> Self {
        self.signaling = Some(url.into());
        self
    }

    /// The node's identity (a fresh one by default).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// An auth token for servers that require one.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// Declares a channel; every peer of the application declares the same
    /// ones in the same order.
    pub fn channel(mut self, channel: ChannelConfig) -> Self {
        self.channels.push(channel);
        self
    }

    /// STUN/TURN servers besides the ones the signaling server hands out.
    pub fn ice_servers(mut self, servers: impl IntoIterator<Item = IceServer>) -> Self {
        self.ice_servers.extend(servers);
        self
    }

    /// Which candidates links may use (`iceTransportPolicy`).
    pub fn ice_policy(mut self, policy: IcePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Largest message accepted or sent (64 MiB by default).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// [`Node::send`] waits while a link has more than `high` bytes queued,
    /// until it drains to `low`.
    pub fn watermarks(mut self, high: usize, low: usize) -> Self {
        (self.high, self.low) = (high, low.min(high));
        self
    }

    /// Give up on a link that does not connect within this time.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Flow-control window (8 MiB by default).
    pub fn receive_window(mut self, bytes: usize) -> Self {
        self.window = bytes.max(64 << 10);
        self
    }

    /// Largest chunk on the wire (32 KiB by default, at most 64 KiB).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.clamp(1024, 64 << 10);
        self
    }

    /// When the signaling server relays a link's data: after `after`
    /// without a WebRTC path (5 s by default), sealed end to end. A zero
    /// delay gives the relay a head start: data flows through the server
    /// from the first moment and moves to WebRTC once a session is up.
    /// `None` never relays.
    pub fn server_relay(mut self, after: Option<Duration>) -> Self {
        self.server_relay = after;
        self
    }

    /// Connects to the signaling server.
    pub async fn start(mut self) -> Result<Node, StartError> {
        let url = self
            .signaling
            .take()
            .ok_or_else(|| StartError::Config("a browser node needs a signaling server".into()))?;
        if self.channels.is_empty() {
            self.channels = vec![ChannelConfig::reliable("reliable"), ChannelConfig::unreliable("unreliable")];
        }
        if let Some(c) = self.channels.iter().find(|c| !c.negotiated) {
            return Err(StartError::Config(format!(
                "channel {:?}: in-band channels are not supported in the browser",
                c.label
            )));
        }
        for s in &self.ice_servers {
            s.validate().map_err(|e| StartError::Config(e.to_string()))?;
        }
        let identity = self.identity.take().unwrap_or_else(Identity::generate);
        let shared = Rc::new_cyclic(|weak: &Weak<Shared>| Shared {
            me: weak.clone(),
            id: identity.peer_id(),
            identity: identity.clone(),
            st: RefCell::new(State::default()),
            cfg: self,
        });
        let weak = Rc::downgrade(&shared);
        let deliver: Rc<dyn Fn(Incoming)> = Rc::new(move |incoming| {
            if let Some(shared) = weak.upgrade() {
                shared.on_server(incoming);
            }
        });
        let (signaling, welcome) = Signaling::connect(&url, &identity, shared.cfg.auth_token.clone(), deliver).await?;
        {
            let mut st = shared.st.borrow_mut();
            st.signaling = Some(signaling);
            st.limits = Some(welcome.limits.clone());
            st.ice_servers = shared
                .cfg
                .ice_servers
                .iter()
                .cloned()
                .chain(welcome.ice_servers.into_iter().map(IceServer::from))
                .collect();
        }
        Ok(Node { shared })
    }
}

/// One peer in the browser. Same calls as the native node; its links use
/// the browser's WebRTC.
pub struct Node {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.shared.id).finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    me: Weak<Shared>,
    id: PeerId,
    identity: Identity,
    cfg: NodeBuilder,
    st: RefCell<State>,
}

#[derive(Default)]
struct State {
    signaling: Option<Rc<Signaling>>,
    /// The server's limits, from its `welcome` (they pace the relay).
    limits: Option<switchboard_proto::Limits>,
    ice_servers: Vec<IceServer>,
    links: HashMap<PeerId, WebLink>,
    rooms: HashMap<RoomCode, BTreeSet<PeerId>>,
    events: VecDeque<Event>,
    event_waker: Option<Waker>,
    room_wakers: Vec<Waker>,
    /// Message bytes reported and not yet taken by the application.
    unread: usize,
    requests: HashMap<u64, (PeerId, oneshot::Sender<Result<Bytes, RequestFailed>>)>,
    next_request: u64,
    closed: bool,
}

impl State {
    fn push_event(&mut self, e: Event) {
        if let Event::Message(m) = &e {
            self.unread += m.data.len();
        }
        if let Event::Request(r) = &e {
            self.unread += r.data.len();
        }
        self.events.push_back(e);
        if let Some(w) = self.event_waker.take() {
            w.wake();
        }
    }
}

impl Node {
    /// Settings for a new node.
    pub fn builder() -> NodeBuilder {
        NodeBuilder {
            signaling: None,
            identity: None,
            auth_token: None,
            channels: Vec::new(),
            ice_servers: Vec::new(),
            policy: IcePolicy::All,
            max_message: 64 << 20,
            high: 16 << 20,
            low: 1 << 20,
            window: 8 << 20,
            chunk_size: 32 << 10,
            connect_timeout: Duration::from_secs(20),
            server_relay: Some(Duration::from_secs(5)),
        }
    }

    /// This node's peer id.
    pub fn id(&self) -> PeerId {
        self.shared.id
    }

    /// The next event; `None` once the node is closed.
    pub async fn next_event(&self) -> Option<Event> {
        let event = std::future::poll_fn(|cx| {
            let mut st = self.shared.st.borrow_mut();
            if let Some(e) = st.events.pop_front() {
                return Poll::Ready(Some(e));
            }
            if st.closed {
                return Poll::Ready(None);
            }
            st.event_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let len = match &event {
            Some(Event::Message(m)) => m.data.len(),
            Some(Event::Request(r)) => r.data.len(),
            _ => 0,
        };
        if len > 0 {
            self.shared.consumed(len);
        }
        event
    }

    fn signaling(&self) -> Result<Rc<Signaling>, RoomError> {
        self.shared.st.borrow().signaling.clone().ok_or(RoomError::NoSignaling)
    }

    /// Creates a room and returns its code (join it with [`Node::join`]).
    pub async fn create_room(&self, password: Option<&str>, max_peers: Option<u32>) -> Result<RoomCode, RoomError> {
        let msg = ClientMessage::CreateRoom(CreateRoom { id: None, password: password.map(Into::into), max_peers });
        match self.signaling()?.request(msg).await? {
            ServerMessage::RoomCreated { room, .. } => Ok(room),
            other => Err(RequestError::Unexpected(format!("{other:?}")).into()),
        }
    }

    /// Joins a room: links open to its peers.
    pub async fn join(&self, room: RoomCode) -> Result<JoinedRoom, RoomError> {
        let msg = ClientMessage::Join(Join { id: None, room, password: None, meta: None, recreate: false });
        let joined = match self.signaling()?.request(msg).await? {
            ServerMessage::Joined(j) => j,
            other => return Err(RequestError::Unexpected(format!("{other:?}")).into()),
        };
        let peers: BTreeSet<PeerId> = joined.peers.iter().map(|p| p.peer_id).collect();
        for p in &joined.peers {
            self.shared.st.borrow_mut().push_event(Event::PeerJoined { room, peer: p.peer_id, meta: p.meta.clone() });
        }
        self.shared.st.borrow_mut().rooms.insert(room, peers.clone());
        for peer in peers {
            self.shared.maybe_offer(peer);
        }
        Ok(joined)
    }

    /// Leaves a room; links to peers that share no other room close.
    pub async fn leave(&self, room: RoomCode) -> Result<(), RoomError> {
        self.signaling()?.request(ClientMessage::Leave(Leave { id: None, room })).await?;
        let peers = self.shared.st.borrow_mut().rooms.remove(&room).unwrap_or_default();
        for peer in peers {
            self.shared.close_if_unshared(peer, DisconnectReason::Closed);
        }
        Ok(())
    }

    /// The peers this node knows in `room`.
    pub fn room_peers(&self, room: RoomCode) -> Vec<PeerId> {
        self.shared.st.borrow().rooms.get(&room).map(|p| p.iter().copied().collect()).unwrap_or_default()
    }

    /// Peers with a link.
    pub fn peers(&self) -> Vec<PeerId> {
        self.shared.st.borrow().links.keys().copied().collect()
    }

    fn slot(&self, channel: &str) -> Result<usize, SendError> {
        self.shared
            .cfg
            .channels
            .iter()
            .position(|c| c.label == channel)
            .ok_or_else(|| SendError::UnknownChannel(channel.into()))
    }

    /// Sends a message; waits while the link's buffer is above its high
    /// watermark, until it drains to the low one.
    pub async fn send(&self, peer: PeerId, channel: &str, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.send_message(peer, channel, OutMessage::data(data.into())).await
    }

    async fn send_message(&self, peer: PeerId, channel: &str, msg: OutMessage) -> Result<(), SendError> {
        let slot = self.slot(channel)?;
        self.check_size(msg.data.len())?;
        let (high, low) = (self.shared.cfg.high, self.shared.cfg.low);
        let mut full = false;
        std::future::poll_fn(|cx| {
            let mut st = self.shared.st.borrow_mut();
            let Some(link) = st.links.get(&peer) else { return Poll::Ready(Err(SendError::UnknownPeer(peer))) };
            let queued = link.queued();
            full = full || queued >= high;
            if !full || queued <= low {
                return Poll::Ready(Ok(()));
            }
            st.room_wakers.push(cx.waker().clone());
            Poll::Pending
        })
        .await?;
        self.shared.link_send(peer, slot, msg)
    }

    /// Sends without waiting: [`SendError::Full`] above the high watermark.
    pub fn try_send(&self, peer: PeerId, channel: &str, data: impl Into<Bytes>) -> Result<(), SendError> {
        let slot = self.slot(channel)?;
        let data = data.into();
        self.check_size(data.len())?;
        let queued =
            self.shared.st.borrow().links.get(&peer).map(WebLink::queued).ok_or(SendError::UnknownPeer(peer))?;
        if queued >= self.shared.cfg.high {
            return Err(SendError::Full);
        }
        self.shared.link_send(peer, slot, OutMessage::data(data))
    }

    fn check_size(&self, size: usize) -> Result<(), SendError> {
        let max = self.shared.cfg.max_message;
        if size > max {
            return Err(SendError::TooLarge { size, max });
        }
        Ok(())
    }

    /// Sends a value as JSON.
    pub async fn send_json<T: Serialize + ?Sized>(
        &self,
        peer: PeerId,
        channel: &str,
        value: &T,
    ) -> Result<(), SendError> {
        let data = serde_json::to_vec(value).map_err(|e| SendError::Encode(e.to_string()))?;
        self.send(peer, channel, data).await
    }

    /// Sends every connected peer of `room` the message, except `except`.
    pub async fn broadcast(
        &self,
        room: RoomCode,
        channel: &str,
        data: impl Into<Bytes>,
        except: Option<PeerId>,
    ) -> Result<(), SendError> {
        let data = data.into();
        let peers: Vec<PeerId> = {
            let st = self.shared.st.borrow();
            let members = st.rooms.get(&room).cloned().unwrap_or_default();
            members
                .into_iter()
                .filter(|p| Some(*p) != except && st.links.get(p).is_some_and(|l| l.state() == LinkState::Connected))
                .collect()
        };
        for peer in peers {
            let msg = OutMessage { kind: MessageKind::Data, room: Some(room), data: data.clone() };
            self.send_message(peer, channel, msg).await?;
        }
        Ok(())
    }

    /// Sends a request and waits up to `timeout` for its answer.
    pub async fn request(
        &self,
        peer: PeerId,
        channel: &str,
        data: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, RequestFailed> {
        let (id, rx) = {
            let mut st = self.shared.st.borrow_mut();
            st.next_request += 1;
            let id = st.next_request;
            let (tx, rx) = oneshot::channel();
            st.requests.insert(id, (peer, tx));
            (id, rx)
        };
        let msg = OutMessage { kind: MessageKind::Request(id), room: None, data: data.into() };
        if let Err(e) = self.send_message(peer, channel, msg).await {
            self.shared.st.borrow_mut().requests.remove(&id);
            return Err(e.into());
        }
        let weak = self.shared.me.clone();
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let expire = wasm_bindgen::closure::Closure::once(move || {
            if let Some(shared) = weak.upgrade()
                && let Some((_, tx)) = shared.st.borrow_mut().requests.remove(&id)
            {
                let _ = tx.send(Err(RequestFailed::Timeout(timeout)));
            }
        });
        let timer = web_sys::window().and_then(|w| {
            w.set_timeout_with_callback_and_timeout_and_arguments_0(
                wasm_bindgen::JsCast::unchecked_ref(expire.as_ref()),
                ms,
            )
            .ok()
        });
        let answer = rx.await.unwrap_or(Err(RequestFailed::Closed));
        if let (Some(t), Some(w)) = (timer, web_sys::window()) {
            w.clear_timeout_with_handle(t);
        }
        drop(expire);
        answer
    }

    /// Answers a request.
    pub async fn respond(&self, request: &Request, data: impl Into<Bytes>) -> Result<(), SendError> {
        let msg = OutMessage { kind: MessageKind::Response(request.id), room: None, data: data.into() };
        self.send_message(request.peer, &request.channel, msg).await
    }

    /// Answers a request with an error.
    pub async fn respond_error(&self, request: &Request, error: &str) -> Result<(), SendError> {
        let msg = OutMessage {
            kind: MessageKind::ErrorResponse(request.id),
            room: None,
            data: Bytes::from(error.to_owned()),
        };
        self.send_message(request.peer, &request.channel, msg).await
    }

    /// Bytes queued on the link to `peer`.
    pub fn buffered_amount(&self, peer: PeerId) -> usize {
        self.shared.st.borrow().links.get(&peer).map_or(0, WebLink::buffered)
    }

    /// Message bytes reported and not yet taken with [`Node::next_event`].
    pub fn unread_bytes(&self) -> usize {
        self.shared.st.borrow().unread
    }

    /// The link's figures.
    pub fn stats(&self, peer: PeerId) -> Option<LinkStats> {
        self.shared.st.borrow().links.get(&peer).map(WebLink::stats)
    }

    /// The link's state.
    pub fn link_state(&self, peer: PeerId) -> Option<LinkState> {
        self.shared.st.borrow().links.get(&peer).map(WebLink::state)
    }

    /// The link's state changes with their times.
    pub fn link_history(&self, peer: PeerId) -> Vec<(Instant, LinkState)> {
        self.shared.st.borrow().links.get(&peer).map(WebLink::history).unwrap_or_default()
    }

    /// Closes the link to `peer`.
    pub fn disconnect(&self, peer: PeerId, reason: Option<String>) {
        self.shared.signal(peer, SignalData::Bye { reason });
        self.shared.end_link(peer, DisconnectReason::Closed);
    }

    /// Closes every link and the signaling connection.
    pub async fn close(&self) {
        let peers: Vec<PeerId> = self.shared.st.borrow().links.keys().copied().collect();
        for peer in peers {
            self.disconnect(peer, None);
        }
        let mut st = self.shared.st.borrow_mut();
        if let Some(s) = st.signaling.take() {
            s.close();
        }
        st.closed = true;
        if let Some(w) = st.event_waker.take() {
            w.wake();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let mut st = self.shared.st.borrow_mut();
        st.links.clear();
        if let Some(s) = st.signaling.take() {
            s.close();
        }
    }
}

impl Shared {
    fn new_link(&self, peer: PeerId, conn: ConnId, session: u32, offerer: bool) -> Result<WebLink, String> {
        let (servers, limits) = {
            let st = self.st.borrow();
            (st.ice_servers.clone(), st.limits.clone())
        };
        let relay = self.cfg.server_relay.zip(limits).map(|(after, limits)| RelaySetup {
            identity: self.identity.clone(),
            local: self.id,
            remote: peer,
            after,
            // Half the server's allowance: signals and other links share it.
            bytes_per_sec: limits.relay_bytes_per_sec / 2,
            frames_per_sec: limits.rate_per_sec / 4,
            max_payload: (limits.max_frame_bytes as usize).saturating_sub(switchboard_proto::RELAY_HEADER_LEN),
        });
        let settings = LinkSettings {
            channels: self.cfg.channels.clone(),
            ice_servers: servers,
            policy: self.cfg.policy,
            max_message: self.cfg.max_message,
            window: self.cfg.window,
            chunk_size: self.cfg.chunk_size,
            connect_timeout: self.cfg.connect_timeout,
            relay,
        };
        WebLink::new(self.me.clone(), peer, conn, session, offerer, settings, rand::random()).map_err(|e| js_error(&e))
    }

    fn signal(&self, peer: PeerId, data: SignalData) {
        let st = self.st.borrow();
        let (Some(s), Some(link)) = (&st.signaling, st.links.get(&peer)) else { return };
        s.signal(peer, &link.conn, data);
    }

    /// Makes the link for `conn`, records it in the signaling state and
    /// returns its peer connection; `None` (logged) if the browser refuses.
    fn install_link(
        &self,
        peer: PeerId,
        conn: ConnId,
        session: u32,
        offerer: bool,
    ) -> Option<web_sys::RtcPeerConnection> {
        let link = match self.new_link(peer, conn, session, offerer) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot make a peer connection");
                return None;
            }
        };
        let pc = link.pc();
        self.st.borrow_mut().links.insert(peer, link);
        self.apply(peer, |link, out| link.set_state(LinkState::Signaling, out));
        Some(pc)
    }

    /// Offers a link to `peer` if this node is the lower id and has none.
    fn maybe_offer(&self, peer: PeerId) {
        if peer == self.id || self.id.to_string() > peer.to_string() || self.st.borrow().links.contains_key(&peer) {
            return;
        }
        let conn = ConnId::from_u64(rand::random::<u64>() | 1);
        let Some(pc) = self.install_link(peer, conn, 0, true) else { return };
        self.offer(peer, pc, 0);
    }

    /// Replaces the WebRTC session of the link to `peer` with a new one and
    /// offers it (this side offers).
    fn start_session(&self, peer: PeerId) {
        let mut made = None;
        self.apply(peer, |link, out| {
            let id = link.session() + 1;
            match link.new_session(id, out) {
                Ok(pc) => made = Some((pc, id)),
                Err(e) => tracing::warn!(%peer, error = %js_error(&e), "cannot make a new session"),
            }
        });
        if let Some((pc, id)) = made {
            self.offer(peer, pc, id);
        }
    }

    /// Makes and sends the offer of session `session` on `pc`.
    fn offer(&self, peer: PeerId, pc: web_sys::RtcPeerConnection, session: u32) {
        let weak = self.me.clone();
        spawn_local(async move {
            let offer = async {
                let offer = JsFuture::from(pc.create_offer()).await?;
                let sdp = js_sys::Reflect::get(&offer, &JsValue::from_str("sdp"))?.as_string().unwrap_or_default();
                JsFuture::from(pc.set_local_description(&link::description(RtcSdpType::Offer, &sdp))).await?;
                Ok::<_, JsValue>(sdp)
            };
            let result = offer.await;
            let Some(shared) = weak.upgrade() else { return };
            if !shared.is_session(peer, session) {
                return;
            }
            match result {
                Ok(sdp) => shared.describe(peer, SignalData::Offer { sdp, session }),
                Err(e) => {
                    tracing::warn!(%peer, error = %js_error(&e), "offer failed");
                    shared.end_link(peer, DisconnectReason::Protocol(js_error(&e)));
                }
            }
        });
    }

    /// Sends this side's offer or answer, then (the first time) its relay
    /// key, which the other side takes once it knows the link.
    fn describe(&self, peer: PeerId, description: SignalData) {
        self.signal(peer, description);
        self.apply(peer, WebLink::send_relay_key);
    }

    /// Whether the link to `peer` is on WebRTC session `session`.
    fn is_session(&self, peer: PeerId, session: u32) -> bool {
        self.st.borrow().links.get(&peer).is_some_and(|l| l.session() == session)
    }

    /// Answers an offer from `peer`: a new link, or a new session of the
    /// current one.
    fn on_offer(&self, peer: PeerId, conn: ConnId, sdp: String, session: u32) {
        let shares_room = self.st.borrow().rooms.values().any(|r| r.contains(&peer));
        if !shares_room {
            if let Some(s) = &self.st.borrow().signaling {
                s.signal(peer, &conn, SignalData::Bye { reason: Some("no shared room".into()) });
            }
            return;
        }
        let current = self.st.borrow().links.get(&peer).filter(|l| l.conn == conn).map(WebLink::session);
        let pc = match current {
            // A repeat, or an older session's offer.
            Some(s) if s >= session => return,
            Some(_) => {
                let mut made = None;
                self.apply(peer, |link, out| match link.new_session(session, out) {
                    Ok(pc) => made = Some(pc),
                    Err(e) => tracing::warn!(%peer, error = %js_error(&e), "cannot make a new session"),
                });
                made
            }
            None => {
                // A new negotiation replaces the old link (the peer restarted).
                self.end_link(peer, DisconnectReason::ClosedByPeer(Some("new connection".into())));
                self.install_link(peer, conn, session, false)
            }
        };
        let Some(pc) = pc else { return };
        let weak = self.me.clone();
        spawn_local(async move {
            let answer = async {
                JsFuture::from(pc.set_remote_description(&link::description(RtcSdpType::Offer, &sdp))).await?;
                if let Some(shared) = weak.upgrade() {
                    shared.described(peer, session);
                }
                let answer = JsFuture::from(pc.create_answer()).await?;
                let sdp = js_sys::Reflect::get(&answer, &JsValue::from_str("sdp"))?.as_string().unwrap_or_default();
                JsFuture::from(pc.set_local_description(&link::description(RtcSdpType::Answer, &sdp))).await?;
                Ok::<_, JsValue>(sdp)
            };
            let result = answer.await;
            let Some(shared) = weak.upgrade() else { return };
            if !shared.is_session(peer, session) {
                return;
            }
            match result {
                Ok(sdp) => shared.describe(peer, SignalData::Answer { sdp, session }),
                Err(e) => shared.refuse(peer, "offer", &e),
            }
        });
    }

    fn on_answer(&self, peer: PeerId, sdp: String, session: u32) {
        let Some(pc) = self.st.borrow().links.get(&peer).filter(|l| l.session() == session).map(WebLink::pc) else {
            return;
        };
        let weak = self.me.clone();
        spawn_local(async move {
            let set = JsFuture::from(pc.set_remote_description(&link::description(RtcSdpType::Answer, &sdp))).await;
            let Some(shared) = weak.upgrade() else { return };
            match set {
                Ok(_) => shared.described(peer, session),
                Err(e) if shared.is_session(peer, session) => shared.refuse(peer, "answer", &e),
                Err(_) => {}
            }
        });
    }

    /// Session `session` of the link to `peer` has its remote description.
    fn described(&self, peer: PeerId, session: u32) {
        self.apply(peer, |link, out| {
            if link.session() == session {
                link.described(out);
            }
        });
    }

    /// What the signaling server sent.
    fn on_server(&self, incoming: Incoming) {
        let msg = match incoming {
            Incoming::Message(m) => m,
            Incoming::Relay { from, channel: RELAY_CHANNEL, payload } => {
                self.link_input(from, None, Input::Relay(payload));
                return;
            }
            Incoming::Relay { from, channel, .. } => {
                tracing::debug!(%from, channel, "relay frame on an unknown channel dropped");
                return;
            }
            Incoming::Closed { code, reason } => {
                let mut st = self.st.borrow_mut();
                st.signaling = None;
                st.push_event(Event::SignalingClosed { reason: format!("closed ({code}): {reason}") });
                return;
            }
        };
        match msg {
            ServerMessage::PeerJoined { room, peer } => {
                {
                    let mut st = self.st.borrow_mut();
                    st.rooms.entry(room).or_default().insert(peer.peer_id);
                    st.push_event(Event::PeerJoined { room, peer: peer.peer_id, meta: peer.meta });
                }
                self.maybe_offer(peer.peer_id);
            }
            ServerMessage::PeerLeft { room, peer_id: peer } => {
                {
                    let mut st = self.st.borrow_mut();
                    if let Some(r) = st.rooms.get_mut(&room) {
                        r.remove(&peer);
                    }
                    st.push_event(Event::PeerLeft { room, peer });
                }
                self.close_if_unshared(peer, DisconnectReason::ClosedByPeer(Some("left the room".into())));
            }
            ServerMessage::Signal { from, conn, data } => {
                let data = match data.parse() {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::debug!(%from, error = %e, "bad signal ignored");
                        return;
                    }
                };
                let known = self.st.borrow().links.get(&from).is_some_and(|l| l.conn == conn);
                match data {
                    SignalData::Offer { sdp, session } => self.on_offer(from, conn, sdp, session),
                    SignalData::Answer { sdp, session } if known => self.on_answer(from, sdp, session),
                    SignalData::RelayKey { key, public_key, signature } if known => {
                        self.apply(from, |link, out| link.on_relay_key(&key, &public_key, &signature, out));
                    }
                    SignalData::Restart if known => self.apply(from, WebLink::restart_requested),
                    SignalData::Candidate { candidate, mid } if known => {
                        self.apply(from, |link, _| link.remote_candidate(&candidate, mid.as_deref()));
                    }
                    SignalData::Bye { reason } if known => self.end_link(from, DisconnectReason::ClosedByPeer(reason)),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Ends the link to `peer` if it shares no room with this node any more.
    fn close_if_unshared(&self, peer: PeerId, reason: DisconnectReason) {
        if !self.st.borrow().rooms.values().any(|r| r.contains(&peer)) {
            self.end_link(peer, reason);
        }
    }

    /// The browser refused the other side's `what` (offer, answer): the
    /// link ends, and the other side learns why.
    fn refuse(&self, peer: PeerId, what: &str, e: &JsValue) {
        let reason = DisconnectReason::Protocol(format!("{what} refused: {}", js_error(e)));
        self.signal(peer, SignalData::Bye { reason: Some(reason.to_string()) });
        self.end_link(peer, reason);
    }

    fn end_link(&self, peer: PeerId, reason: DisconnectReason) {
        self.apply(peer, |link, out| link.end(reason, out));
    }

    /// Queues a message on the link to `peer`.
    fn link_send(&self, peer: PeerId, slot: usize, msg: OutMessage) -> Result<(), SendError> {
        let mut ok = Err(SendError::UnknownPeer(peer));
        self.apply(peer, |link, out| {
            if link.state().is_final() {
                ok = Err(SendError::Closed);
            } else {
                link.send(slot, msg, out);
                ok = Ok(());
            }
        });
        ok
    }

    /// Something the browser reported about a link of session `session`.
    /// `session` is `None` for what concerns the link whatever its session
    /// (its timer, the relay).
    pub(crate) fn link_input(&self, peer: PeerId, session: Option<u32>, input: Input) {
        let app_full = self.st.borrow().unread > self.cfg.window / 2;
        let current = self.st.borrow().links.get(&peer).is_some_and(|l| session.is_none_or(|s| l.session() == s));
        if current {
            self.apply(peer, |link, out| link.handle(input, app_full, out));
        }
    }

    /// The application took `len` bytes of messages.
    fn consumed(&self, len: usize) {
        let half = self.cfg.window / 2;
        let (before, after) = {
            let mut st = self.st.borrow_mut();
            let before = st.unread;
            st.unread = st.unread.saturating_sub(len);
            (before, st.unread)
        };
        if before > half && after <= half {
            let peers: Vec<PeerId> = self.st.borrow().links.keys().copied().collect();
            for peer in peers {
                self.apply(peer, |link, out| link.app_caught_up(out));
            }
        }
    }

    /// Runs `f` on the link to `peer`, then carries out what it asked for.
    fn apply(&self, peer: PeerId, f: impl FnOnce(&mut WebLink, &mut Vec<Effect>)) {
        let mut out = Vec::new();
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(link) = st.links.get_mut(&peer) else { return };
        f(link, &mut out);
        let conn = link.conn.clone();
        let session = link.session();
        let pc = link.pc();
        for effect in out {
            match effect {
                Effect::Signal(data) => {
                    if let Some(s) = &st.signaling {
                        s.signal(peer, &conn, data);
                    }
                }
                Effect::Event(e) => st.push_event(e),
                Effect::Delivered(d) => self.delivered(st, peer, d),
                Effect::Ended(reason) => {
                    st.links.remove(&peer);
                    let gone: Vec<u64> =
                        st.requests.iter().filter(|(_, (p, _))| *p == peer).map(|(id, _)| *id).collect();
                    for id in gone {
                        if let Some((_, tx)) = st.requests.remove(&id) {
                            let _ = tx.send(Err(RequestFailed::Closed));
                        }
                    }
                    st.push_event(Event::PeerDisconnected { peer, reason });
                    for w in st.room_wakers.drain(..) {
                        w.wake();
                    }
                }
                Effect::Relay(frame) => {
                    if let Some(s) = &st.signaling {
                        s.send_relay(peer, RELAY_CHANNEL, &frame);
                    }
                }
                Effect::NewSession => {
                    let weak = self.me.clone();
                    // After this borrow of the node's state ends.
                    spawn_local(async move {
                        if let Some(shared) = weak.upgrade() {
                            shared.start_session(peer);
                        }
                    });
                }
                Effect::Room => {
                    for w in st.room_wakers.drain(..) {
                        w.wake();
                    }
                }
                Effect::ReadPath => {
                    let weak = self.me.clone();
                    let pc = pc.clone();
                    spawn_local(async move {
                        // The channels can open a moment before the stats name
                        // the selected pair, or before a peer-reflexive
                        // candidate's address shows; ask again briefly before
                        // taking what there is.
                        let mut found = None;
                        for attempt in 0..PATH_READS {
                            if attempt > 0 {
                                pause(PATH_READ_PAUSE).await;
                            }
                            let Ok(report) = JsFuture::from(pc.get_stats()).await else { return };
                            if let Some((kind, rtt, settled)) = link::selected_path(&report) {
                                found = Some((kind, rtt));
                                if settled {
                                    break;
                                }
                            }
                        }
                        let (kind, rtt) = found.unwrap_or_else(|| {
                            tracing::debug!(%peer, "no selected candidate pair in the stats; reporting a host path");
                            (crate::PathKind::Host, None)
                        });
                        if let Some(shared) = weak.upgrade() {
                            shared.link_input(peer, Some(session), Input::Path(kind, rtt));
                        }
                    });
                }
            }
        }
    }

    fn delivered(&self, st: &mut State, peer: PeerId, d: Delivered) {
        let channel: std::sync::Arc<str> =
            self.cfg.channels.get(d.slot).map_or_else(|| "".into(), |c| c.label.as_str().into());
        match d.kind {
            MessageKind::Data => st.push_event(Event::Message(Message { peer, channel, room: d.room, data: d.data })),
            MessageKind::Request(id) => {
                st.push_event(Event::Request(Request { peer, channel, id, room: d.room, data: d.data }))
            }
            MessageKind::Response(id) => {
                if let Some((_, tx)) = st.requests.remove(&id) {
                    let _ = tx.send(Ok(d.data));
                }
            }
            MessageKind::ErrorResponse(id) => {
                if let Some((_, tx)) = st.requests.remove(&id) {
                    let _ = tx.send(Err(RequestFailed::Remote(String::from_utf8_lossy(&d.data).into_owned())));
                }
            }
        }
    }
}
