//! [`Node`]: one per application, the same API natively and in the browser.
//!
//! Every call goes into the sans-IO node core ([`core`]) through the
//! backend's handle (`native::Backend`: a lock and a tokio driver task;
//! `web::Backend`: a `RefCell` and browser callbacks), which then carries
//! out what the core asked for. Waits (room calls, backpressure, request
//! answers, events) are wakers the core keeps, so this file has no
//! runtime of its own and is written once.

mod backoff;
mod config;
pub(crate) mod core;

use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use switchboard_proto::{JoinedRoom, PeerId, RoomCode, SignalData};
use web_time::Instant;

pub(crate) use self::config::NodeConfig;
pub use self::config::{HostCandidates, Topology};
use self::core::Answer;
use crate::channel::ChannelConfig;
use crate::error::{ChannelError, RequestError, RequestFailed, RoomError, SendError, SignalError, StartError};
use crate::event::{Event, Request};
use crate::framing::{MessageKind, OutMessage};
use crate::ice::{IcePolicy, IceServer};
use crate::identity::Identity;
use crate::link::{LinkState, LinkStats};
#[cfg(not(target_arch = "wasm32"))]
use crate::native::{Backend, Core};
use crate::trust::Trust;
#[cfg(target_arch = "wasm32")]
use crate::web::{Backend, Core};

/// Settings for [`Node`]; start with [`Node::builder`]. The same settings
/// and the same checks on both backends; the few a browser cannot honour
/// (host candidates, the relay delay, TURN root certificates, the SCTP
/// buffer) make [`NodeBuilder::start`] fail there with
/// [`StartError::Config`] saying why.
#[derive(Debug)]
#[must_use]
pub struct NodeBuilder {
    cfg: NodeConfig,
    identity: Option<Identity>,
}

impl NodeBuilder {
    /// The signaling server (`ws://host:port/ws`, or `wss://`). Without
    /// one, only the bring-your-own-signaling calls make links.
    pub fn signaling(mut self, url: impl Into<String>) -> Self {
        self.cfg.signaling = Some(url.into());
        self
    }

    /// The node's identity (a fresh one if not set).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// An auth token for servers that require one.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.cfg.auth_token = Some(token.into());
        self
    }

    /// Declares a channel; every link opens it (pre-negotiated unless
    /// [`ChannelConfig::in_band`]). Peers of one application declare the
    /// same channels in the same order. Without any, a node has `reliable`
    /// and `unreliable`.
    pub fn channel(mut self, channel: ChannelConfig) -> Self {
        self.cfg.link.channels.push(channel);
        self
    }

    /// Which local addresses become host candidates (native nodes).
    pub fn host_candidates(mut self, hosts: HostCandidates) -> Self {
        self.cfg.hosts = hosts;
        self
    }

    /// STUN/TURN servers used besides the ones the signaling server hands
    /// out in `welcome`. None by default: no traffic goes to any server the
    /// application did not name.
    pub fn ice_servers(mut self, servers: impl IntoIterator<Item = IceServer>) -> Self {
        self.cfg.ice_servers.extend(servers);
        self
    }

    /// Which candidates links use (default [`IcePolicy::All`]).
    pub fn ice_policy(mut self, policy: IcePolicy) -> Self {
        self.cfg.ice_policy = policy;
        self
    }

    /// Under [`IcePolicy::All`], how long direct checks run before relayed
    /// candidates join (default 250 ms; at once when no STUN server
    /// answers). Native nodes.
    pub fn relay_delay(mut self, delay: Duration) -> Self {
        self.cfg.relay_delay = delay;
        self
    }

    /// When the signaling server relays a link's data: after `after`
    /// without a WebRTC path (5 s by default; at the start, or since the
    /// path was lost), end-to-end encrypted, while WebRTC keeps trying; the
    /// data moves back to WebRTC once it connects. `Some(Duration::ZERO)`
    /// gives the relay a head start: data flows through the server from the
    /// first moment. `None` never relays.
    pub fn server_relay(mut self, after: Option<Duration>) -> Self {
        self.cfg.server_relay = after;
        self
    }

    /// Trusts this certificate (DER) as a root for TLS, besides the
    /// built-in Mozilla roots: a private CA for a `wss://` signaling server
    /// and for `turns:` servers (native nodes; a browser trusts its own).
    pub fn root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.cfg.tls_roots.push(der.into());
        self
    }

    /// The same as [`NodeBuilder::root_certificate`] (its first name, from
    /// when it was for TURN over TLS only).
    pub fn turns_root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.cfg.tls_roots.push(der.into());
        self
    }

    /// How many times the node tries to reach the signaling server again
    /// after losing it, waiting a random time up to 1 s, 2 s, 4 s … 30 s
    /// before each try (full jitter). Unlimited by default; 0 never retries.
    /// The session (peer id, rooms) resumes when the server still holds it.
    pub fn reconnect_attempts(mut self, attempts: u32) -> Self {
        self.cfg.reconnect_attempts = attempts;
        self
    }

    /// Mesh (default) or links on request.
    pub fn topology(mut self, topology: Topology) -> Self {
        self.cfg.topology = topology;
        self
    }

    /// Most links at once (default 64).
    pub fn max_links(mut self, n: usize) -> Self {
        self.cfg.max_links = n;
        self
    }

    /// Largest message (default 64 MiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.cfg.link.max_message = bytes;
        self
    }

    /// Send-buffer watermarks per link: `send` waits above `high` until the
    /// buffer drains to `low` (defaults 16 MiB and 1 MiB).
    pub fn watermarks(mut self, high: usize, low: usize) -> Self {
        self.cfg.high_watermark = high;
        self.cfg.low_watermark = low;
        self
    }

    /// How long a link may take to connect (default 15 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.link.connect_timeout = timeout;
        self
    }

    /// How a link notices a dead path and how long it tries to get one back:
    /// silence for `dead_after` (default 3 s; keep-alives go every second;
    /// a browser goes by its own consent checks) starts new sessions, and
    /// after `give_up` (default 15 s) without a path the link fails with
    /// [`DisconnectReason::PathLost`](crate::DisconnectReason::PathLost).
    pub fn path_timeouts(mut self, dead_after: Duration, give_up: Duration) -> Self {
        self.cfg.link.dead_after = dead_after;
        self.cfg.link.reconnect_timeout = give_up;
        self
    }

    /// Receive window per link (default 8 MiB): how much a peer may send
    /// ahead of what this application has read.
    pub fn receive_window(mut self, bytes: usize) -> Self {
        self.cfg.link.window = bytes;
        self
    }

    /// Largest chunk a message is cut into (default 32 KiB; at most 64 KiB,
    /// the data-channel message size every WebRTC stack accepts).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.cfg.link.chunk_size = bytes;
        self
    }

    /// Bytes str0m may hold unacknowledged per link (default 128 KiB;
    /// native nodes). It caps data in flight: raise it for long, fast
    /// paths; on loopback and LANs larger values cost CPU in the SCTP stack.
    pub fn sctp_send_buffer(mut self, bytes: usize) -> Self {
        self.cfg.link.sctp_buffer = bytes;
        self
    }

    /// Keeps the node's trust book ([`Node::set_trust`]) in `location`:
    /// natively a file (JSON, written whole and renamed into place, so a
    /// crash leaves the old or the new book), in the browser an IndexedDB
    /// entry of that name. Read at [`NodeBuilder::start`] (a store that
    /// cannot be read is a start error), saved on every change in the
    /// background; [`Node::close`] returns once every change is stored.
    /// Without one, the book lasts as long as the node.
    pub fn trust_store(mut self, location: impl Into<String>) -> Self {
        self.cfg.trust_store = Some(location.into());
        self
    }

    /// Raw mode for standard WebRTC peers: one message is one data-channel
    /// message, no Switchboard framing (no chunking, flow control or requests).
    /// A raw node declares no default channels: it uses the ones it declares
    /// and those the other side opens in-band.
    pub fn raw_messages(mut self, raw: bool) -> Self {
        self.cfg.link.raw = raw;
        self
    }

    /// Checks the settings and starts the node: connects to the signaling
    /// server if one is set, and returns once the server welcomed it.
    pub async fn start(mut self) -> Result<Node, StartError> {
        self.cfg.validate(cfg!(target_arch = "wasm32")).map_err(StartError::Config)?;
        let identity = self.identity.take().unwrap_or_else(Identity::generate);
        let backend = Backend::start(self.cfg, identity).await?;
        Ok(Node { backend })
    }
}

/// A peer-to-peer endpoint: joins rooms, keeps one link per remote peer,
/// sends and receives messages. Natively it is `Send` and `Sync`: share it
/// behind an `Arc`.
#[derive(Debug)]
pub struct Node {
    backend: Backend,
}

/// Removes a wait's registration in the core however its future ends.
struct Forget<'a, F: Fn(&mut Core)> {
    node: &'a Node,
    forget: Option<F>,
}

impl<F: Fn(&mut Core)> Forget<'_, F> {
    fn done(mut self) {
        self.forget = None;
    }
}

impl<F: Fn(&mut Core)> Drop for Forget<'_, F> {
    fn drop(&mut self) {
        if let Some(f) = self.forget.take() {
            self.node.backend.with(|core, _| f(core));
        }
    }
}

impl Node {
    /// Settings for a new node.
    pub fn builder() -> NodeBuilder {
        NodeBuilder { cfg: NodeConfig::default(), identity: None }
    }

    /// This node's peer id.
    pub fn id(&self) -> PeerId {
        self.backend.with(|core, _| core.id())
    }

    /// The next event; `None` once the node is closed.
    pub async fn next_event(&self) -> Option<Event> {
        poll_fn(|cx| self.backend.with(|core, now| core.poll_event(now, cx))).await
    }

    async fn call(
        &self,
        start: impl FnOnce(&mut Core, Instant) -> Result<core::Call, RoomError>,
    ) -> Result<Answer, RoomError> {
        let call = self.backend.with(start)?;
        let guard = Forget { node: self, forget: Some(move |core: &mut Core| core.forget_call(call)) };
        let answer = poll_fn(|cx| self.backend.with(|core, _| core.poll_call(cx, call))).await;
        guard.done();
        answer
    }

    /// Creates a room on the server and returns its code (the creator is
    /// not in it until it joins).
    pub async fn create_room(&self, password: Option<&str>, max_peers: Option<u32>) -> Result<RoomCode, RoomError> {
        let password = password.map(str::to_owned);
        match self.call(|core, now| core.create_room(now, password, max_peers)).await? {
            Answer::Room(room) => Ok(room),
            other => Err(unexpected(&other)),
        }
    }

    /// Joins a room; links to its peers open in the background.
    pub async fn join(&self, room: RoomCode) -> Result<JoinedRoom, RoomError> {
        self.join_with(room, None, None).await
    }

    /// Joins a room with a password and metadata for the other peers.
    pub async fn join_with(
        &self,
        room: RoomCode,
        password: Option<&str>,
        meta: Option<Value>,
    ) -> Result<JoinedRoom, RoomError> {
        let password = password.map(str::to_owned);
        match self.call(|core, now| core.join(now, room, password, meta)).await? {
            Answer::Joined(joined) => Ok(joined),
            other => Err(unexpected(&other)),
        }
    }

    /// Leaves a room; links to peers shared with no other room close.
    pub async fn leave(&self, room: RoomCode) -> Result<(), RoomError> {
        self.call(|core, now| core.leave(now, room)).await.map(|_| ())
    }

    /// Follows the presence of `peers` (at most 256 per call): an
    /// [`Event::Presence`] for each at once, then one on every change. A
    /// peer shows online only while it watches this node too; the node
    /// watches them again after a server that lost its session.
    pub async fn watch(&self, peers: &[PeerId]) -> Result<(), RoomError> {
        let peers = peers.to_vec();
        self.call(|core, now| core.watch(now, peers)).await.map(|_| ())
    }

    /// Stops following the presence of `peers`.
    pub async fn unwatch(&self, peers: &[PeerId]) -> Result<(), RoomError> {
        let peers = peers.to_vec();
        self.call(|core, now| core.unwatch(now, peers)).await.map(|_| ())
    }

    /// Mails `body` (any JSON value, at most the server's `max_mail_bytes`
    /// encoded) to `to`, online or not, sharing a room or not: returns once
    /// the server stored it durably, with its id. `to` gets it as
    /// [`Event::Mail`] when it is online, until it acknowledges it.
    pub async fn mail<T: Serialize + ?Sized>(&self, to: PeerId, body: &T) -> Result<u64, RoomError> {
        let body = serde_json::to_value(body).map_err(|e| RoomError::Encode(e.to_string()))?;
        match self.call(|core, now| core.mail(now, to, body)).await? {
            Answer::MailAccepted(id) => Ok(id),
            other => Err(unexpected(&other)),
        }
    }

    /// Acknowledges mail this node received (at most 256 ids per call): the
    /// server deletes it and delivers it no more.
    pub async fn ack_mail(&self, ids: &[u64]) -> Result<(), RoomError> {
        let ids = ids.to_vec();
        self.call(|core, now| core.ack_mail(now, ids)).await.map(|_| ())
    }

    /// Peers in a room, as far as this node knows.
    pub fn room_peers(&self, room: RoomCode) -> Vec<PeerId> {
        self.backend.with(|core, _| core.room_peers(room))
    }

    /// Asks `peer` for a link: in the request topology, or to any peer id
    /// outside this node's rooms (a device it knows). It gets
    /// [`Event::LinkRequested`] (or accepts at once if it trusts this node,
    /// see [`Node::set_trust`]); its answer opens the link or comes back as
    /// [`Event::LinkRejected`].
    pub fn request_link(&self, peer: PeerId, meta: Option<Value>) -> Result<(), RoomError> {
        self.backend.with(|core, now| core.request_link(now, peer, meta))
    }

    /// Accepts a link request.
    pub fn accept(&self, peer: PeerId) -> Result<(), RoomError> {
        self.backend.with(|core, now| core.accept(now, peer))
    }

    /// Declines a link request, saying why.
    pub fn reject(&self, peer: PeerId, reason: Option<String>) -> Result<(), RoomError> {
        self.backend.with(|core, now| core.reject(now, peer, reason))
    }

    /// Queues `msg`, waiting while the link's send buffer is above its high
    /// watermark until it drains to the low one.
    async fn send_message(&self, peer: PeerId, channel: &str, msg: OutMessage) -> Result<(), SendError> {
        let mut msg = Some(msg);
        poll_fn(|cx| self.backend.with(|core, now| core.poll_send(now, Some(cx), peer, channel, &mut msg))).await
    }

    /// Sends `data` on `channel` to `peer`, waiting while the link's send
    /// buffer is above its high watermark.
    pub async fn send(&self, peer: PeerId, channel: &str, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.send_message(peer, channel, OutMessage::data(data.into())).await
    }

    /// Sends `text` on `channel` to `peer` as a text message: a string for
    /// a browser's `onmessage` (PPID 51 on raw links), [`Message::text`] on
    /// a Switchboard peer. Waits like [`Node::send`].
    ///
    /// [`Message::text`]: crate::Message::text
    pub async fn send_text(&self, peer: PeerId, channel: &str, text: impl Into<String>) -> Result<(), SendError> {
        self.send_message(peer, channel, OutMessage::text(text.into())).await
    }

    /// Sends without waiting: [`SendError::Full`] when the message does not
    /// fit under the high watermark now.
    pub fn try_send(&self, peer: PeerId, channel: &str, data: impl Into<Bytes>) -> Result<(), SendError> {
        let mut msg = Some(OutMessage::data(data.into()));
        match self.backend.with(|core, now| core.poll_send(now, None, peer, channel, &mut msg)) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(SendError::Full),
        }
    }

    /// Sends a message marked as belonging to `room`.
    pub async fn send_in_room(
        &self,
        peer: PeerId,
        room: RoomCode,
        channel: &str,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        let msg = OutMessage { kind: MessageKind::Data, room: Some(room), data: data.into(), text: false };
        self.send_message(peer, channel, msg).await
    }

    /// Sends to every peer of `room` with a link, except `except`; returns
    /// how many peers it went to (links that are gone or closing are skipped).
    pub async fn broadcast(
        &self,
        room: RoomCode,
        channel: &str,
        data: impl Into<Bytes>,
        except: Option<PeerId>,
    ) -> Result<usize, SendError> {
        self.broadcast_message(room, channel, data.into(), false, except).await
    }

    /// [`Node::broadcast`], as a text message when `text` (`data` is UTF-8).
    pub(crate) async fn broadcast_message(
        &self,
        room: RoomCode,
        channel: &str,
        data: Bytes,
        text: bool,
        except: Option<PeerId>,
    ) -> Result<usize, SendError> {
        let mut sent = 0;
        for peer in self.room_peers(room).into_iter().filter(|p| Some(*p) != except) {
            let msg = OutMessage { kind: MessageKind::Data, room: Some(room), data: data.clone(), text };
            match self.send_message(peer, channel, msg).await {
                Ok(()) => sent += 1,
                Err(SendError::UnknownPeer(_) | SendError::Closed) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
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

    /// Sends a value as MessagePack.
    pub async fn send_msgpack<T: Serialize + ?Sized>(
        &self,
        peer: PeerId,
        channel: &str,
        value: &T,
    ) -> Result<(), SendError> {
        let data = rmp_serde::to_vec_named(value).map_err(|e| SendError::Encode(e.to_string()))?;
        self.send(peer, channel, data).await
    }

    /// Sends a request and waits for the answer, at most `timeout`. Only
    /// `peer` can answer it.
    pub async fn request(
        &self,
        peer: PeerId,
        channel: &str,
        data: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, RequestFailed> {
        let id = self.backend.with(|core, _| core.new_request(peer, timeout));
        let guard = Forget { node: self, forget: Some(move |core: &mut Core| core.forget_request(id)) };
        let msg = OutMessage { kind: MessageKind::Request(id), room: None, data: data.into(), text: false };
        self.send_message(peer, channel, msg).await?;
        let answer = poll_fn(|cx| self.backend.with(|core, now| core.poll_answer(now, cx, id))).await;
        guard.done();
        answer
    }

    /// Answers a request (on the channel it came on).
    pub async fn respond(&self, request: &Request, data: impl Into<Bytes>) -> Result<(), SendError> {
        let msg =
            OutMessage { kind: MessageKind::Response(request.id), room: request.room, data: data.into(), text: false };
        self.send_message(request.peer, &request.channel, msg).await
    }

    /// Answers a request with an error.
    pub async fn respond_error(&self, request: &Request, error: &str) -> Result<(), SendError> {
        let data = Bytes::copy_from_slice(error.as_bytes());
        let msg = OutMessage { kind: MessageKind::ErrorResponse(request.id), room: request.room, data, text: false };
        self.send_message(request.peer, &request.channel, msg).await
    }

    /// Bytes of received messages waiting in the event queue.
    pub fn unread_bytes(&self) -> usize {
        self.backend.with(|core, _| core.unread())
    }

    /// Requests waiting for an answer.
    pub fn pending_requests(&self) -> usize {
        self.backend.with(|core, _| core.pending_requests())
    }

    /// Bytes queued on the link to `peer` and not yet on the wire.
    pub fn buffered_amount(&self, peer: PeerId) -> usize {
        self.backend.with(|core, _| core.buffered_amount(peer))
    }

    /// The link's stats.
    pub fn stats(&self, peer: PeerId) -> Option<LinkStats> {
        self.backend.with(|core, _| core.stats(peer))
    }

    /// The link's state.
    pub fn link_state(&self, peer: PeerId) -> Option<LinkState> {
        self.backend.with(|core, _| core.link_state(peer))
    }

    /// The link's state changes so far, with their times.
    pub fn link_history(&self, peer: PeerId) -> Vec<(Instant, LinkState)> {
        self.backend.with(|core, _| core.link_history(peer))
    }

    /// Opens a channel on the raw link to `peer` (either side, once the
    /// link exists), in band: the other side learns of it, as from
    /// `createDataChannel`. [`Event::ChannelOpened`] says when it is open;
    /// [`Event::ChannelClosed`] if it closes, or does not open within the
    /// [connect timeout](NodeBuilder::connect_timeout), and sends on it then
    /// fail with [`SendError::ChannelClosed`]. Sends before it is open wait
    /// for it.
    pub fn open_channel(&self, peer: PeerId, channel: ChannelConfig) -> Result<(), ChannelError> {
        self.backend.with(|core, now| core.open_channel(now, peer, channel))
    }

    /// Closes `channel` on the raw link to `peer`, as `RTCDataChannel.close`:
    /// the other side gets [`Event::ChannelClosed`], and so does this one;
    /// what was still queued on it is dropped. The link stays.
    pub fn close_channel(&self, peer: PeerId, channel: &str) -> Result<(), ChannelError> {
        self.backend.with(|core, now| core.close_channel(now, peer, channel))
    }

    /// Sets how far this node trusts `peer` (`None`: no word on it). A
    /// trusted peer is watched, asked for a link when it comes online (and
    /// again after a failed link, with backoff) and its requests accepted
    /// without [`Event::LinkRequested`]; a blocked one never links (a link
    /// to it closes now). The change is saved in the trust store. Nothing
    /// is trusted unless the application says so.
    pub fn set_trust(&self, peer: PeerId, trust: Option<Trust>) {
        self.backend.with(|core, now| core.set_trust(now, peer, trust));
    }

    /// How far this node trusts `peer`.
    pub fn trust(&self, peer: PeerId) -> Option<Trust> {
        self.backend.with(|core, _| core.trust_book().get(&peer).copied())
    }

    /// Every peer this node has a word on, and the word.
    pub fn trust_book(&self) -> Vec<(PeerId, Trust)> {
        self.backend.with(|core, _| core.trust_book().iter().map(|(p, t)| (*p, *t)).collect())
    }

    /// Peers with a link (in any state).
    pub fn peers(&self) -> Vec<PeerId> {
        self.backend.with(|core, _| core.peers())
    }

    /// Closes the link to `peer`.
    pub fn disconnect(&self, peer: PeerId, reason: Option<String>) {
        self.backend.with(|core, now| core.disconnect(now, peer, reason));
    }

    /// Starts a link with bring-your-own signaling: returns a local handle
    /// for the link (used as its peer id) and the offer for the other side,
    /// once the WebRTC stack made it.
    ///
    /// The offer carries this node's identity proof (an
    /// `a=switchboard-identity` line that other stacks ignore); the answer
    /// is not checked: to know who answers, use [`Node::create_offer_for`].
    pub async fn create_offer(&self) -> Result<(PeerId, String), SignalError> {
        self.byo(None, None).await
    }

    /// As [`Node::create_offer`], for a link to `peer` only: the answer must
    /// prove that it comes from `peer`'s identity and names its DTLS
    /// certificate, or [`Node::accept_answer`] fails with
    /// [`SignalError::Unverified`] and the link ends. Whoever carries the
    /// descriptions cannot then sit in the middle of the link.
    pub async fn create_offer_for(&self, peer: PeerId) -> Result<(PeerId, String), SignalError> {
        self.byo(None, Some(peer)).await
    }

    /// Answers an offer from the other side: returns the link's local
    /// handle and the answer.
    pub async fn accept_offer(&self, offer: &str) -> Result<(PeerId, String), SignalError> {
        self.byo(Some(offer), None).await
    }

    /// As [`Node::accept_offer`], for an offer that must come from `peer`
    /// (a Switchboard node with that identity): one that does not prove it
    /// is [`SignalError::Unverified`].
    pub async fn accept_offer_from(&self, offer: &str, peer: PeerId) -> Result<(PeerId, String), SignalError> {
        self.byo(Some(offer), Some(peer)).await
    }

    async fn byo(&self, offer: Option<&str>, expected: Option<PeerId>) -> Result<(PeerId, String), SignalError> {
        let peer = self.backend.with(|core, now| core.byo_link(now, offer, expected))?;
        let sdp = poll_fn(|cx| self.backend.with(|core, _| core.poll_description(cx, peer))).await?;
        Ok((peer, sdp))
    }

    /// Applies the other side's answer to a link made by [`Node::create_offer`].
    pub fn accept_answer(&self, peer: PeerId, answer: &str) -> Result<(), SignalError> {
        let signal = SignalData::Answer { sdp: answer.to_owned(), session: 0 };
        self.backend.with(|core, now| core.byo_signal(now, peer, signal))
    }

    /// Adds a candidate from the other side (`candidate:...`, with or
    /// without `a=`; an empty one ends the candidates).
    pub fn add_remote_candidate(&self, peer: PeerId, candidate: &str) -> Result<(), SignalError> {
        let candidate = candidate.trim().trim_start_matches("a=").to_owned();
        let signal = if candidate.is_empty() {
            SignalData::EndOfCandidates
        } else {
            SignalData::Candidate { candidate, mid: None }
        };
        self.backend.with(|core, now| core.byo_signal(now, peer, signal))
    }

    /// Closes every link and the signaling connection.
    pub async fn close(&self) {
        self.backend.close().await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.backend.with(|core, now| core.close(now));
    }
}

fn unexpected(answer: &Answer) -> RoomError {
    RoomError::Request(RequestError::Unexpected(format!("{answer:?}")))
}

impl Node {
    /// The channels this node declared.
    pub fn channels(&self) -> Vec<ChannelConfig> {
        self.backend.with(|core, _| core.config().link.channels.clone())
    }
}
