//! The node core: everything a [`Node`](crate::Node) decides, sans-IO, the
//! same on both backends.
//!
//! It holds the rooms and their members, decides which links open and who
//! offers, carries the links' signals, keeps the request topology, matches
//! responses to requests (from the peer asked, and no other), hands credit
//! back per link as the application reads, maps what links report to
//! [`Event`]s, and runs the signaling session: the handshake, requests and
//! their answers, reconnection with backoff, resume or rejoin, TURN
//! credential refresh and the stale-connection check (`server.rs`). It
//! never reads a clock or touches a socket: drivers (`native`, `web`) hand
//! it what the WebSocket and the links received, and the time, and carry
//! out its [`NodeOutput`]s. Application calls enter it directly; their
//! waits are wakers it keeps.

mod devices;
mod server;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use switchboard_proto::{ConnId, PeerId, RoomCode, SignalData};
use web_time::Instant;

use server::Server;
pub(crate) use server::{Answer, Call};

use super::config::{NodeConfig, Topology};
use crate::channel::ChannelConfig;
use crate::error::{ChannelError, RequestFailed, RoomError, SendError, SignalError};
use crate::event::{Event, Message, Request};
use crate::framing::{MessageKind, OutMessage};
use crate::identity::Identity;
use crate::link::server_relay::{RELAY_CHANNEL, ServerRelaySetup};
use crate::link::{LinkConfig, LinkCore, LinkEvent, LinkOutput, LinkState, LinkStats, Role, Rtc};

/// What a backend provides the core with: the WebRTC side of new links.
pub(crate) trait Platform {
    /// The WebRTC side of a link on this backend.
    type Rtc: Rtc;
    /// The WebRTC side of a new link (`link` names it to the driver).
    fn new_rtc(&mut self, now: Instant, link: u64, cfg: &LinkConfig) -> Result<Self::Rtc, String>;
}

/// What the driver must do.
#[derive(Debug, PartialEq)]
pub(crate) enum NodeOutput {
    /// Open a WebSocket to the signaling server at `url`; report with
    /// [`NodeCore::ws_opened`] or [`NodeCore::ws_closed`].
    Connect {
        /// The server.
        url: String,
    },
    /// A text frame for the server.
    Text(String),
    /// A binary frame for the server (relay data).
    Binary(Vec<u8>),
    /// Close the WebSocket.
    Disconnect,
    /// STUN/TURN servers the server handed out, for links made from now
    /// on; `renew`: links on a TURN relay move to them.
    IceServers {
        /// As the server sent them.
        servers: Vec<switchboard_proto::IceServer>,
        /// Whether running relayed links renew.
        renew: bool,
    },
    /// Link `link` ended: what the driver holds for it can go.
    LinkGone(u64),
    /// The trust book changed: save this text in the node's trust store
    /// (if it has one).
    SaveTrust(String),
}

/// One link and what the node keeps with it.
pub(crate) struct LinkEntry<R> {
    /// Names the link to the driver.
    pub(crate) id: u64,
    pub(crate) core: LinkCore<R>,
    /// Its channels' labels by slot, shared by every message event.
    labels: Vec<Arc<str>>,
    /// The negotiation's `conn` (links through the signaling server).
    conn: Option<ConnId>,
    /// Made with the bring-your-own-signaling calls.
    byo: bool,
    /// Its first description, for the bring-your-own-signaling call that waits for it.
    description: Option<Result<String, String>>,
    description_waker: Option<Waker>,
    /// Its local candidates so far (bring your own signaling), for the
    /// complete description once gathering ends.
    candidates: Vec<String>,
    /// Senders waiting for room in its buffer.
    room_wakers: Vec<Waker>,
}

/// A request waiting for its answer.
struct Pending {
    peer: PeerId,
    deadline: Instant,
    timeout: Duration,
    answer: Option<Result<Bytes, RequestFailed>>,
    waker: Option<Waker>,
}

/// The node's whole state, driven by inputs and time.
pub(crate) struct NodeCore<P: Platform> {
    id: PeerId,
    identity: Identity,
    cfg: NodeConfig,
    platform: P,
    rng: StdRng,
    now: Instant,
    server: Server,
    /// Members of each room this node is in.
    rooms: HashMap<RoomCode, BTreeSet<PeerId>>,
    /// Peers this node asked for a link and waits on (request topology).
    asked: HashSet<PeerId>,
    /// Peers whose request this node received and has not answered.
    asking: HashSet<PeerId>,
    /// Peers with an agreed link (request topology).
    agreed: HashSet<PeerId>,
    links: HashMap<PeerId, LinkEntry<P::Rtc>>,
    /// How far this node trusts peers.
    trust: std::collections::BTreeMap<PeerId, crate::trust::Trust>,
    /// Watched peers the server reports online.
    present: HashSet<PeerId>,
    /// Trusted peers to ask for a link again, after a failed one.
    retries: HashMap<PeerId, devices::Retry>,
    /// Links that ended, until the driver has taken what they still had to
    /// send ([`NodeOutput::LinkGone`], [`NodeCore::take_gone`]).
    gone: Vec<(u64, LinkCore<P::Rtc>)>,
    by_id: HashMap<u64, PeerId>,
    next_link: u64,
    requests: HashMap<u64, Pending>,
    next_request: u64,
    events: VecDeque<Event>,
    /// Tasks waiting in `next_event`.
    event_wakers: Vec<Waker>,
    /// Message bytes reported and not yet taken by the application.
    unread: usize,
    out: VecDeque<NodeOutput>,
    /// Links entered since the driver last looked (it carries out what
    /// their WebRTC sides ask for).
    touched: Vec<u64>,
    closed: bool,
}

impl<P: Platform> NodeCore<P> {
    /// A node with settings `cfg` (checked) for `identity`; when it has a
    /// signaling server, the first output asks the driver to connect.
    pub(crate) fn new(now: Instant, cfg: NodeConfig, identity: Identity, platform: P, seed: u64) -> Self {
        let server = Server::new(now, &cfg);
        let mut core = NodeCore {
            id: identity.peer_id(),
            identity,
            platform,
            rng: StdRng::seed_from_u64(seed),
            now,
            server,
            rooms: HashMap::new(),
            asked: HashSet::new(),
            asking: HashSet::new(),
            agreed: HashSet::new(),
            links: HashMap::new(),
            trust: std::collections::BTreeMap::new(),
            present: HashSet::new(),
            retries: HashMap::new(),
            gone: Vec::new(),
            by_id: HashMap::new(),
            next_link: 1,
            requests: HashMap::new(),
            next_request: 1,
            events: VecDeque::new(),
            event_wakers: Vec::new(),
            unread: 0,
            out: VecDeque::new(),
            touched: Vec::new(),
            closed: false,
            cfg,
        };
        if let Some(url) = core.cfg.signaling.clone() {
            core.out.push_back(NodeOutput::Connect { url });
        }
        core
    }

    /// This node's peer id.
    pub(crate) fn id(&self) -> PeerId {
        self.id
    }

    /// The settings.
    pub(crate) fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// The backend's part.
    pub(crate) fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    /// Every link, for the driver's own inputs and timers.
    pub(crate) fn links_mut(&mut self) -> impl Iterator<Item = &mut LinkEntry<P::Rtc>> {
        self.links.values_mut()
    }

    /// The link the driver knows as `link`.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn link_by_id(&mut self, link: u64) -> Option<&mut LinkEntry<P::Rtc>> {
        let peer = self.by_id.get(&link)?;
        self.links.get_mut(peer)
    }

    /// The next thing the driver must do.
    pub(crate) fn poll_output(&mut self) -> Option<NodeOutput> {
        self.out.pop_front()
    }

    /// Whether the node was closed.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    // ----- events -----

    fn emit(&mut self, event: Event) {
        if let Event::Message(Message { data, .. }) | Event::Request(Request { data, .. }) = &event {
            self.unread += data.len();
        }
        self.events.push_back(event);
        self.wake_readers();
    }

    /// Wakes every task waiting for an event.
    fn wake_readers(&mut self) {
        for w in self.event_wakers.drain(..) {
            w.wake();
        }
    }

    /// The next event; `None` once the node is closed and every event was taken.
    pub(crate) fn poll_event(&mut self, now: Instant, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.advance(now);
        if let Some(event) = self.events.pop_front() {
            if let Event::Message(Message { peer, data, .. }) | Event::Request(Request { peer, data, .. }) = &event {
                self.unread = self.unread.saturating_sub(data.len());
                let (peer, len) = (*peer, data.len());
                self.consumed(peer, len);
            }
            return Poll::Ready(Some(event));
        }
        if self.closed {
            return Poll::Ready(None);
        }
        if !self.event_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            self.event_wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The application took `len` bytes of `peer`'s messages: its link may
    /// grant credit again.
    fn consumed(&mut self, peer: PeerId, len: usize) {
        let now = self.now;
        if let Some(entry) = self.links.get_mut(&peer) {
            entry.core.consumed(now, len);
            self.drain_link(peer);
        }
    }

    /// Message bytes reported and not yet taken.
    pub(crate) fn unread(&self) -> usize {
        self.unread
    }

    // ----- rooms (through the server) -----

    /// Peers in `room`, as far as this node knows.
    pub(crate) fn room_peers(&self, room: RoomCode) -> Vec<PeerId> {
        self.rooms.get(&room).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    fn shares_room(&self, peer: PeerId) -> bool {
        self.rooms.values().any(|m| m.contains(&peer))
    }

    /// A room's members as `joined` (or a resumed `welcome`) lists them.
    fn on_joined(&mut self, joined: &switchboard_proto::JoinedRoom) {
        let me = self.id;
        let members = self.rooms.entry(joined.room).or_default();
        for p in joined.peers.iter().filter(|p| p.peer_id != me) {
            members.insert(p.peer_id);
        }
        for p in joined.peers.iter().filter(|p| p.peer_id != me) {
            self.emit(Event::PeerJoined { room: joined.room, peer: p.peer_id, meta: p.meta.clone() });
            if self.cfg.topology == Topology::Mesh {
                self.open_if_offerer(p.peer_id);
                self.prepare_answerer(p.peer_id);
            }
        }
    }

    fn peer_joined(&mut self, room: RoomCode, peer: PeerId, meta: Option<Value>) {
        self.rooms.entry(room).or_default().insert(peer);
        self.emit(Event::PeerJoined { room, peer, meta });
        if self.cfg.topology == Topology::Mesh {
            self.open_if_offerer(peer);
            self.prepare_answerer(peer);
        }
    }

    fn peer_left(&mut self, room: RoomCode, peer: PeerId) {
        if let Some(members) = self.rooms.get_mut(&room) {
            members.remove(&peer);
        }
        self.emit(Event::PeerLeft { room, peer });
        self.drop_if_unshared(peer);
    }

    /// This node left `room` (or lost it): links to peers it shared no
    /// other room with close.
    fn room_gone(&mut self, room: RoomCode) {
        let members = self.rooms.remove(&room).unwrap_or_default();
        for peer in members {
            self.drop_if_unshared(peer);
        }
    }

    fn drop_if_unshared(&mut self, peer: PeerId) {
        if self.shares_room(peer) {
            return;
        }
        self.agreed.remove(&peer);
        self.asked.remove(&peer);
        self.asking.remove(&peer);
        let now = self.now;
        if let Some(e) = self.links.get_mut(&peer)
            && !e.byo
        {
            e.core.close(now, Some("no shared room".into()));
            self.drain_link(peer);
        }
    }

    // ----- links -----

    /// Whether this node writes the offer to `peer`: the lower id does, so
    /// peers that join at the same moment never glare.
    fn offers_to(&self, peer: PeerId) -> bool {
        self.id < peer
    }

    fn link_allowed(&self, peer: PeerId) -> bool {
        let wanted = match self.cfg.topology {
            Topology::Mesh => self.shares_room(peer) || self.agreed.contains(&peer),
            Topology::OnRequest => self.agreed.contains(&peer),
        };
        wanted && !self.blocked(peer)
    }

    fn at_capacity(&self) -> bool {
        self.links.len() >= self.cfg.max_links
    }

    /// A new link core (and its WebRTC side) in `role`, with the server
    /// relay when the node has one; not yet installed. Its descriptions
    /// carry this node's identity proof; the other side's must prove
    /// `expected`.
    fn new_link(
        &mut self,
        peer: PeerId,
        role: Role,
        relay: bool,
        expected: Option<PeerId>,
    ) -> Result<(u64, LinkCore<P::Rtc>), String> {
        let id = self.next_link;
        self.next_link += 1;
        let rtc = self.platform.new_rtc(self.now, id, &self.cfg.link)?;
        let mut core = LinkCore::new(self.now, role, self.cfg.link.clone(), rtc, relay);
        core.bind_identity(self.identity.clone(), expected);
        if relay && let (Some(after), Some(limits)) = (self.cfg.server_relay, self.server.limits()) {
            let setup = ServerRelaySetup {
                identity: self.identity.clone(),
                local: self.id,
                remote: peer,
                after,
                // Half the server's allowance: signals and other links share it.
                bytes_per_sec: limits.relay_bytes_per_sec / 2,
                frames_per_sec: limits.rate_per_sec / 4,
                max_payload: (limits.max_frame_bytes as usize).saturating_sub(switchboard_proto::RELAY_HEADER_LEN),
            };
            core.enable_server_relay(setup, self.rng.random());
        }
        Ok((id, core))
    }

    /// Records a link; one that it replaces closes.
    fn install(&mut self, peer: PeerId, id: u64, core: LinkCore<P::Rtc>, conn: Option<ConnId>, byo: bool) {
        let labels = core.channels().iter().map(|c| Arc::from(c.label.as_str())).collect();
        let entry = LinkEntry {
            id,
            core,
            labels,
            conn,
            byo,
            description: None,
            description_waker: None,
            candidates: Vec::new(),
            room_wakers: Vec::new(),
        };
        if let Some(mut old) = self.links.insert(peer, entry) {
            old.core.close(self.now, Some("replaced".into()));
            self.by_id.remove(&old.id);
            self.out.push_back(NodeOutput::LinkGone(old.id));
            for w in old.room_wakers.drain(..) {
                w.wake();
            }
            self.gone.push((old.id, old.core));
        }
        self.by_id.insert(id, peer);
    }

    /// Opens the link if this node is the offering side.
    fn open_if_offerer(&mut self, peer: PeerId) {
        if !self.offers_to(peer) || self.links.contains_key(&peer) || self.blocked(peer) {
            return;
        }
        if self.at_capacity() {
            tracing::warn!(%peer, "link limit reached; no link opened");
            return;
        }
        let (id, mut core) = match self.new_link(peer, Role::Offerer, true, Some(peer)) {
            Ok(made) => made,
            Err(e) => return tracing::warn!(%peer, error = %e, "cannot create a link"),
        };
        if let Err(e) = core.start(self.now) {
            return tracing::warn!(%peer, error = %e, "cannot create an offer");
        }
        let conn = ConnId::from_u64(self.rng.random::<u64>() | 1);
        self.install(peer, id, core, Some(conn), false);
        self.drain_link(peer);
    }

    /// On the answering side of a mesh link, starts the link before the
    /// offer arrives: its gathering then runs while the offer travels.
    fn prepare_answerer(&mut self, peer: PeerId) {
        if self.offers_to(peer)
            || peer == self.id
            || self.links.contains_key(&peer)
            || self.at_capacity()
            || self.blocked(peer)
        {
            return;
        }
        match self.new_link(peer, Role::Answerer, true, Some(peer)) {
            Ok((id, core)) => self.install(peer, id, core, None, false),
            Err(e) => tracing::warn!(%peer, error = %e, "cannot create a link"),
        }
    }

    /// A signal from `from` through the server.
    fn on_signal(&mut self, from: PeerId, conn: ConnId, signal: SignalData) {
        match signal {
            SignalData::Request { meta } => self.on_link_request(from, meta),
            SignalData::Accept => {
                if self.asked.remove(&from) {
                    self.agreed.insert(from);
                    self.open_if_offerer(from);
                }
            }
            SignalData::Reject { reason } => {
                if self.asked.remove(&from) {
                    self.emit(Event::LinkRejected { peer: from, reason });
                }
            }
            SignalData::Offer { sdp, session } => self.on_offer(from, conn, sdp, session),
            other => {
                let now = self.now;
                if let Some(e) = self.links.get_mut(&from)
                    && !e.byo
                    && e.conn.as_ref() == Some(&conn)
                {
                    if let Err(err) = e.core.handle_signal(now, other) {
                        tracing::debug!(%from, error = %err, "signal refused");
                    }
                    self.drain_link(from);
                }
            }
        }
    }

    /// An offer: for the current link (the first for a link prepared ahead
    /// of it, a new session or an ICE restart), or a new negotiation, which
    /// replaces the link (the other side restarted).
    fn on_offer(&mut self, from: PeerId, conn: ConnId, sdp: String, session: u32) {
        if !self.link_allowed(from) {
            let reason = Some("no link agreed".to_owned());
            self.server_signal(from, conn, SignalData::Bye { reason });
            return;
        }
        let now = self.now;
        let current = self.links.get(&from).filter(|e| {
            !e.byo && e.core.role() == Role::Answerer && (e.conn.is_none() || e.conn.as_ref() == Some(&conn))
        });
        if current.is_none() && !self.links.contains_key(&from) && self.at_capacity() {
            let reason = Some("link limit reached".to_owned());
            self.server_signal(from, conn, SignalData::Bye { reason });
            return;
        }
        if current.is_none() {
            match self.new_link(from, Role::Answerer, true, Some(from)) {
                Ok((id, core)) => self.install(from, id, core, None, false),
                Err(e) => return tracing::warn!(%from, error = %e, "cannot create a link"),
            }
        }
        if let Some(e) = self.links.get_mut(&from) {
            e.conn = Some(conn);
            if let Err(err) = e.core.handle_signal(now, SignalData::Offer { sdp, session }) {
                tracing::debug!(%from, error = %err, "offer refused");
            }
        }
        self.drain_link(from);
    }

    /// A relayed frame from `from`: for its link.
    fn on_relay(&mut self, from: PeerId, frame: &[u8]) {
        let now = self.now;
        if let Some(e) = self.links.get_mut(&from) {
            e.core.handle_server_relay(now, frame);
            self.drain_link(from);
        }
    }

    /// Links entered since the last call.
    pub(crate) fn take_touched(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.touched)
    }

    /// Carries out what the link to `peer` asks for, until it has nothing more.
    pub(crate) fn drain_link(&mut self, peer: PeerId) {
        if let Some(entry) = self.links.get(&peer)
            && !self.touched.contains(&entry.id)
        {
            self.touched.push(entry.id);
        }
        loop {
            let Some(entry) = self.links.get_mut(&peer) else { return };
            let Some(out) = entry.core.poll_output() else { break };
            match out {
                LinkOutput::Signal(signal) => self.link_signal(peer, signal),
                LinkOutput::ServerRelay(frame) => {
                    let frame = switchboard_proto::RelayFrame { peer, channel: RELAY_CHANNEL, payload: &frame };
                    self.server.send_binary(&mut self.out, frame.encode());
                }
                LinkOutput::NetworkBack => self.network_back(),
                LinkOutput::Event(e) => self.link_event(peer, e),
            }
        }
        // Senders may go on once the buffer drained to the low watermark.
        let low = self.cfg.low_watermark;
        if let Some(entry) = self.links.get_mut(&peer)
            && !entry.room_wakers.is_empty()
            && entry.core.queued() <= low
        {
            for w in entry.room_wakers.drain(..) {
                w.wake();
            }
        }
    }

    /// A link's signal: through the server, or for the application
    /// (bring-your-own signaling).
    fn link_signal(&mut self, peer: PeerId, signal: SignalData) {
        let Some(entry) = self.links.get_mut(&peer) else { return };
        if entry.byo {
            match signal {
                SignalData::Offer { sdp, .. } | SignalData::Answer { sdp, .. } if entry.description.is_none() => {
                    entry.description = Some(Ok(sdp));
                    if let Some(w) = entry.description_waker.take() {
                        w.wake();
                    }
                }
                SignalData::Candidate { candidate, .. } => {
                    if entry.candidates.len() < MAX_LOCAL_CANDIDATES {
                        entry.candidates.push(candidate.clone());
                    }
                    self.emit(Event::LocalCandidate { peer, candidate });
                }
                SignalData::EndOfCandidates => {
                    if let Some(Ok(sdp)) = &entry.description {
                        let description = complete_description(sdp, &entry.candidates);
                        self.emit(Event::GatheringComplete { peer, description });
                    }
                }
                _ => {}
            }
            return;
        }
        let Some(conn) = entry.conn.clone() else { return };
        self.server_signal(peer, conn, signal);
    }

    fn link_event(&mut self, peer: PeerId, event: LinkEvent) {
        match event {
            LinkEvent::State(state) => self.emit(Event::LinkState { peer, state }),
            LinkEvent::Connected { path, rtt } => {
                self.link_connected(peer);
                self.emit(Event::PeerConnected { peer, path, rtt });
            }
            LinkEvent::PathChanged(path) => self.emit(Event::PathChanged { peer, path }),
            LinkEvent::Quality(quality) => self.emit(Event::QualityChanged { peer, quality }),
            LinkEvent::ChannelOpen { label, .. } => {
                // A channel the other side opened in band: its messages need its label too.
                self.sync_labels(peer);
                self.emit(Event::ChannelOpened { peer, channel: label });
            }
            LinkEvent::ChannelClosed { label, .. } => self.emit(Event::ChannelClosed { peer, channel: label }),
            LinkEvent::Message(m) => {
                let Some(channel) = self.channel_label(peer, m.slot) else { return };
                match m.kind {
                    MessageKind::Data => {
                        let is_text = m.text;
                        self.emit(Event::Message(Message { peer, channel, room: m.room, data: m.data, is_text }))
                    }
                    MessageKind::Request(id) => {
                        self.emit(Event::Request(Request { peer, channel, id, room: m.room, data: m.data }));
                    }
                    MessageKind::Response(id) | MessageKind::ErrorResponse(id) => {
                        let len = m.data.len();
                        let answer = if matches!(m.kind, MessageKind::Response(_)) {
                            Ok(m.data)
                        } else {
                            Err(RequestFailed::Remote(String::from_utf8_lossy(&m.data).into_owned()))
                        };
                        self.answered(peer, id, answer);
                        // Nobody reads an answer as an event: its bytes count as taken.
                        self.consumed(peer, len);
                    }
                }
            }
            LinkEvent::Ended(reason) => {
                if let Some(mut entry) = self.links.remove(&peer) {
                    self.by_id.remove(&entry.id);
                    self.out.push_back(NodeOutput::LinkGone(entry.id));
                    for w in entry.room_wakers.drain(..) {
                        w.wake();
                    }
                    if entry.description.is_none() {
                        entry.description = Some(Err(reason.to_string()));
                    }
                    if let Some(w) = entry.description_waker.take() {
                        w.wake();
                    }
                    self.gone.push((entry.id, entry.core));
                }
                let ids: Vec<u64> = self.requests.iter().filter(|(_, p)| p.peer == peer).map(|(id, _)| *id).collect();
                for id in ids {
                    self.answered(peer, id, Err(RequestFailed::Closed));
                }
                self.link_ended(peer, &reason);
                self.emit(Event::PeerDisconnected { peer, reason });
            }
        }
    }

    /// A link that ended ([`NodeOutput::LinkGone`]), for its driver to send
    /// what it still had to say (a raw link's close) before letting it go.
    pub(crate) fn take_gone(&mut self, link: u64) -> Option<LinkCore<P::Rtc>> {
        let at = self.gone.iter().position(|(id, _)| *id == link)?;
        Some(self.gone.swap_remove(at).1)
    }

    /// Takes the labels of channels the link gained (opened in band by
    /// either side).
    fn sync_labels(&mut self, peer: PeerId) {
        let Some(entry) = self.links.get_mut(&peer) else { return };
        while let Some(c) = entry.core.channels().get(entry.labels.len()) {
            entry.labels.push(Arc::from(c.label.as_str()));
        }
    }

    /// Opens `config` in band on the raw link to `peer`.
    pub(crate) fn open_channel(
        &mut self,
        now: Instant,
        peer: PeerId,
        config: ChannelConfig,
    ) -> Result<(), ChannelError> {
        self.advance(now);
        let entry = self.links.get_mut(&peer).ok_or(ChannelError::UnknownPeer(peer))?;
        let opened = entry.core.open_channel(now, config);
        self.sync_labels(peer);
        self.drain_link(peer);
        opened.map(|_| ())
    }

    /// Closes `channel` on the raw link to `peer`.
    pub(crate) fn close_channel(&mut self, now: Instant, peer: PeerId, channel: &str) -> Result<(), ChannelError> {
        self.advance(now);
        let entry = self.links.get_mut(&peer).ok_or(ChannelError::UnknownPeer(peer))?;
        let closed = entry.core.close_channel(now, channel);
        self.drain_link(peer);
        closed
    }

    fn channel_label(&self, peer: PeerId, slot: usize) -> Option<Arc<str>> {
        self.links.get(&peer)?.labels.get(slot).cloned()
    }

    // ----- sending -----

    /// The slot of `channel` on the link to `peer`.
    fn route(&self, peer: PeerId, channel: &str) -> Result<usize, SendError> {
        let entry = self.links.get(&peer).ok_or(SendError::UnknownPeer(peer))?;
        entry.core.slot_of(channel)
    }

    /// Whether a message of `size` bytes may go to `peer`: on raw links up
    /// to what the other side's description allows.
    fn check_size(&self, peer: PeerId, size: usize) -> Result<(), SendError> {
        let max = match self.links.get(&peer) {
            Some(entry) if self.cfg.link.raw => entry.core.max_raw_message(),
            _ => self.cfg.link.max_message,
        };
        if size > max {
            return Err(SendError::TooLarge { size, max });
        }
        Ok(())
    }

    /// Queues `msg` on `channel` to `peer` if the link's buffer takes it now:
    /// an empty buffer takes any message, else one that stays under the
    /// high watermark. With `cx`, a full buffer registers the caller to be
    /// woken once it drained to the low watermark; without, it is
    /// [`SendError::Full`].
    pub(crate) fn poll_send(
        &mut self,
        now: Instant,
        cx: Option<&mut Context<'_>>,
        peer: PeerId,
        channel: &str,
        msg: &mut Option<OutMessage>,
    ) -> Poll<Result<(), SendError>> {
        self.advance(now);
        let slot = self.route(peer, channel)?;
        let Some(len) = msg.as_ref().map(|m| m.data.len()) else { return Poll::Ready(Ok(())) };
        self.check_size(peer, len)?;
        let high = self.cfg.high_watermark;
        let entry = self.links.get_mut(&peer).ok_or(SendError::UnknownPeer(peer))?;
        if entry.core.state().is_final() {
            return Poll::Ready(Err(SendError::Closed));
        }
        let queued = entry.core.queued();
        if queued > 0 && queued + len > high {
            let Some(cx) = cx else { return Poll::Ready(Err(SendError::Full)) };
            entry.room_wakers.push(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(m) = msg.take() {
            entry.core.send(now, slot, m);
        }
        self.drain_link(peer);
        Poll::Ready(Ok(()))
    }

    /// Bytes queued on the link to `peer` (its outbox and its channels' buffers).
    pub(crate) fn buffered_amount(&self, peer: PeerId) -> usize {
        self.links.get(&peer).map_or(0, |e| e.core.stats().buffered)
    }

    /// Starts a request to `peer`: returns its id; the message carries it.
    pub(crate) fn new_request(&mut self, peer: PeerId, timeout: Duration) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        let deadline = self.now + timeout;
        self.requests.insert(id, Pending { peer, deadline, timeout, answer: None, waker: None });
        id
    }

    /// The answer to request `id`, once there is one.
    pub(crate) fn poll_answer(
        &mut self,
        now: Instant,
        cx: &mut Context<'_>,
        id: u64,
    ) -> Poll<Result<Bytes, RequestFailed>> {
        self.advance(now);
        let Some(p) = self.requests.get_mut(&id) else { return Poll::Ready(Err(RequestFailed::Closed)) };
        if let Some(answer) = p.answer.take() {
            self.requests.remove(&id);
            return Poll::Ready(answer);
        }
        if now >= p.deadline {
            let timeout = p.timeout;
            self.requests.remove(&id);
            return Poll::Ready(Err(RequestFailed::Timeout(timeout)));
        }
        p.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The application no longer waits for request `id`.
    pub(crate) fn forget_request(&mut self, id: u64) {
        self.requests.remove(&id);
    }

    /// Requests waiting for an answer.
    pub(crate) fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// An answer to request `id` from `peer`: taken only from the peer asked.
    fn answered(&mut self, peer: PeerId, id: u64, answer: Result<Bytes, RequestFailed>) {
        match self.requests.get_mut(&id) {
            Some(p) if p.peer == peer && p.answer.is_none() => {
                p.answer = Some(answer);
                if let Some(w) = p.waker.take() {
                    w.wake();
                }
            }
            Some(_) => tracing::debug!(%peer, id, "an answer from a peer that was not asked is dropped"),
            None => {}
        }
    }

    // ----- links by hand (bring your own signaling) -----

    /// A link for signals the application carries: `offer` starts it as
    /// the offering side, else it answers `answer_to`. Returns its local
    /// handle (used as its peer id).
    /// With `expected`, the other side's descriptions must prove that peer.
    pub(crate) fn byo_link(
        &mut self,
        now: Instant,
        answer_to: Option<&str>,
        expected: Option<PeerId>,
    ) -> Result<PeerId, SignalError> {
        self.advance(now);
        let peer = PeerId::from_bytes(self.rng.random());
        let role = if answer_to.is_some() { Role::Answerer } else { Role::Offerer };
        let (id, mut core) = self.new_link(peer, role, false, expected).map_err(SignalError::Rtc)?;
        if let Some(sdp) = answer_to {
            core.check_description(sdp).map_err(|e| SignalError::Unverified(e.to_string()))?;
        }
        let started = match answer_to {
            None => core.start(now),
            Some(sdp) => core.handle_signal(now, SignalData::Offer { sdp: sdp.to_owned(), session: 0 }),
        };
        started.map_err(|e| SignalError::Invalid(e.to_string()))?;
        self.install(peer, id, core, None, true);
        self.drain_link(peer);
        Ok(peer)
    }

    /// The first description of link `peer` (bring your own signaling), once made.
    pub(crate) fn poll_description(&mut self, cx: &mut Context<'_>, peer: PeerId) -> Poll<Result<String, SignalError>> {
        let Some(entry) = self.links.get_mut(&peer) else {
            return Poll::Ready(Err(SignalError::UnknownLink(peer)));
        };
        match &entry.description {
            Some(Ok(sdp)) => Poll::Ready(Ok(sdp.clone())),
            Some(Err(e)) => Poll::Ready(Err(SignalError::Invalid(e.clone()))),
            None => {
                entry.description_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// A signal the application carried for link `peer` (bring your own signaling).
    pub(crate) fn byo_signal(&mut self, now: Instant, peer: PeerId, signal: SignalData) -> Result<(), SignalError> {
        self.advance(now);
        let entry = self.links.get_mut(&peer).filter(|e| e.byo).ok_or(SignalError::UnknownLink(peer))?;
        let unverified = match &signal {
            SignalData::Offer { sdp, .. } | SignalData::Answer { sdp, .. } => entry.core.check_description(sdp).err(),
            _ => None,
        };
        // An unproven description ends the link there (with the reason in
        // its event) and is an error here too.
        let result = entry.core.handle_signal(now, signal);
        self.drain_link(peer);
        if let Some(e) = unverified {
            return Err(SignalError::Unverified(e.to_string()));
        }
        result.map_err(|e| SignalError::Invalid(e.to_string()))
    }

    // ----- per-link queries and calls -----

    /// Peers with a link (in any state).
    pub(crate) fn peers(&self) -> Vec<PeerId> {
        self.links.keys().copied().collect()
    }

    /// The link's stats.
    pub(crate) fn stats(&self, peer: PeerId) -> Option<LinkStats> {
        self.links.get(&peer).map(|e| e.core.stats())
    }

    /// The link's state.
    pub(crate) fn link_state(&self, peer: PeerId) -> Option<LinkState> {
        self.links.get(&peer).map(|e| e.core.state())
    }

    /// The link's state changes so far.
    pub(crate) fn link_history(&self, peer: PeerId) -> Vec<(Instant, LinkState)> {
        self.links.get(&peer).map(|e| e.core.history()).unwrap_or_default()
    }

    /// Closes the link to `peer`.
    pub(crate) fn disconnect(&mut self, now: Instant, peer: PeerId, reason: Option<String>) {
        self.advance(now);
        if let Some(e) = self.links.get_mut(&peer) {
            e.core.close(now, reason);
            self.drain_link(peer);
        }
    }

    /// Asks `peer` for a link (request topology).
    pub(crate) fn request_link(&mut self, now: Instant, peer: PeerId, meta: Option<Value>) -> Result<(), RoomError> {
        self.advance(now);
        self.server.usable()?;
        self.asked.insert(peer);
        self.server_signal(peer, topology_conn(), SignalData::Request { meta });
        Ok(())
    }

    /// Accepts `peer`'s link request.
    pub(crate) fn accept(&mut self, now: Instant, peer: PeerId) -> Result<(), RoomError> {
        self.advance(now);
        self.server.usable()?;
        if self.asking.remove(&peer) {
            self.agreed.insert(peer);
            self.server_signal(peer, topology_conn(), SignalData::Accept);
            self.open_if_offerer(peer);
        }
        Ok(())
    }

    /// Declines `peer`'s link request.
    pub(crate) fn reject(&mut self, now: Instant, peer: PeerId, reason: Option<String>) -> Result<(), RoomError> {
        self.advance(now);
        self.server.usable()?;
        if self.asking.remove(&peer) {
            self.server_signal(peer, topology_conn(), SignalData::Reject { reason });
        }
        Ok(())
    }

    // ----- time -----

    /// Lets time pass: the server session's timers, request deadlines, links.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.server_timeout();
        self.retry_due();
        let expired: Vec<u64> = self.requests.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(w) = self.requests.get_mut(&id).and_then(|p| p.waker.take()) {
                w.wake();
            }
        }
        let due: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, e)| e.core.poll_timeout().is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            if let Some(e) = self.links.get_mut(&peer) {
                e.core.handle_timeout(now);
            }
            self.drain_link(peer);
        }
    }

    /// When [`Self::handle_timeout`] is next due (the links' WebRTC sides
    /// keep their own timers).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let links = self.links.values().filter_map(|e| e.core.poll_timeout());
        let requests = self.requests.values().filter(|p| p.answer.is_none()).map(|p| p.deadline);
        self.server.poll_timeout().into_iter().chain(links).chain(requests).chain(self.retry_timeout()).min()
    }

    /// Reads what the WebRTC side of link `link` reported (the driver fed it).
    pub(crate) fn drive_link(&mut self, now: Instant, link: u64) {
        self.advance(now);
        let Some(&peer) = self.by_id.get(&link) else { return };
        if let Some(e) = self.links.get_mut(&peer) {
            e.core.drive(now);
        }
        self.drain_link(peer);
    }

    /// Closes every link and the signaling connection.
    pub(crate) fn close(&mut self, now: Instant) {
        self.advance(now);
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for peer in peers {
            if let Some(e) = self.links.get_mut(&peer) {
                e.core.close(now, None);
            }
            self.drain_link(peer);
        }
        self.server.close(&mut self.out);
        self.closed = true;
        for (_, p) in self.requests.iter_mut() {
            if p.answer.is_none() {
                p.answer = Some(Err(RequestFailed::Closed));
            }
            if let Some(w) = p.waker.take() {
                w.wake();
            }
        }
        self.server.fail_calls("node closed");
        self.wake_readers();
    }
}

/// The `conn` of request/accept/reject signals, which precede any link.
fn topology_conn() -> ConnId {
    ConnId::from_u64(0)
}

/// Local candidates a link made by hand keeps for its complete description.
const MAX_LOCAL_CANDIDATES: usize = 64;

/// `sdp` with `candidates` that it lacks and `a=end-of-candidates` at the
/// end of its first media section: the description for a peer that does
/// not trickle.
pub(crate) fn complete_description(sdp: &str, candidates: &[String]) -> String {
    let lines: Vec<&str> = sdp.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    let first_media = lines.iter().position(|l| l.starts_with("m="));
    let end = first_media
        .and_then(|m| lines.iter().skip(m + 1).position(|l| l.starts_with("m=")).map(|i| m + 1 + i))
        .unwrap_or(lines.len());
    let mut out: Vec<String> = lines[..end].iter().map(|l| (*l).to_owned()).collect();
    for c in candidates {
        let line = format!("a={}", c.trim().trim_start_matches("a="));
        if !lines.contains(&line.as_str()) && !out.contains(&line) {
            out.push(line);
        }
    }
    if !lines.contains(&"a=end-of-candidates") {
        out.push("a=end-of-candidates".to_owned());
    }
    out.extend(lines[end..].iter().map(|l| (*l).to_owned()));
    let mut text = out.join("\r\n");
    text.push_str("\r\n");
    text
}
