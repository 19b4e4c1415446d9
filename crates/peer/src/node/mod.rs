//! [`Node`]: one per application. It holds the signaling connection, one link
//! per remote peer, the declared channels, and the event stream.

mod backoff;

mod task;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use switchboard_proto::{ConnId, JoinedRoom, PeerId, RoomCode, SignalData};
use tokio::sync::{mpsc, oneshot};

use crate::event::{Event, Message, Request, RequestFailed, RoomError, SendError, SignalError, StartError};

use crate::channel::ChannelConfig;
use crate::framing::{MessageKind, OutMessage};
use crate::ice::gather::Gatherer;
use crate::ice::{IcePolicy, IceServer};
use crate::link::{LinkConfig, LinkCore, LinkEvent, LinkState, LinkStats, Role};
use crate::native::driver::{self, Command, LinkHandle, LinkSink};
use crate::native::net::{HostCandidates, bind_udp};
use crate::{ConnectOptions, Identity, SignalingClient};

/// Which links a node opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// A link to every peer of every room (full mesh).
    #[default]
    Mesh,
    /// A link only after one side asks ([`Node::request_link`]) and the other
    /// accepts.
    OnRequest,
}

/// Settings for [`Node`]; start with [`Node::builder`].
#[derive(Debug)]
#[must_use]
pub struct NodeBuilder {
    signaling: Option<String>,
    identity: Option<Identity>,
    auth_token: Option<String>,
    channels: Vec<ChannelConfig>,
    hosts: HostCandidates,
    topology: Topology,
    max_links: usize,
    high_watermark: usize,
    low_watermark: usize,
    raw: bool,
    link: LinkConfig,
    ice_servers: Vec<IceServer>,
    ice_policy: IcePolicy,
    relay_delay: Duration,
    server_relay: Option<Duration>,
    tls_roots: Vec<Vec<u8>>,
    reconnect_attempts: u32,
}

impl NodeBuilder {
    /// The signaling server (`ws://host:port/ws`). Without one, only the
    /// bring-your-own-signaling calls make links.
    pub fn signaling(mut self, url: impl Into<String>) -> Self {
        self.signaling = Some(url.into());
        self
    }

    /// The node's identity (a fresh one if not set).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// An auth token for servers that require one.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// Declares a channel; every link opens it (pre-negotiated unless
    /// [`ChannelConfig::in_band`]). Without any, a node has `reliable` and
    /// `unreliable`.
    pub fn channel(mut self, channel: ChannelConfig) -> Self {
        self.channels.push(channel);
        self
    }

    /// Which local addresses become host candidates.
    pub fn host_candidates(mut self, hosts: HostCandidates) -> Self {
        self.hosts = hosts;
        self
    }

    /// STUN/TURN servers used besides the ones the signaling server hands
    /// out in `welcome`. None by default: no traffic goes to any server the
    /// application did not name.
    pub fn ice_servers(mut self, servers: impl IntoIterator<Item = IceServer>) -> Self {
        self.ice_servers.extend(servers);
        self
    }

    /// Which candidates links use (default [`IcePolicy::All`]).
    pub fn ice_policy(mut self, policy: IcePolicy) -> Self {
        self.ice_policy = policy;
        self
    }

    /// Under [`IcePolicy::All`], how long direct checks run before relayed
    /// candidates join (default 250 ms; at once when no STUN server answers).
    pub fn relay_delay(mut self, delay: Duration) -> Self {
        self.relay_delay = delay;
        self
    }

    /// When the signaling server relays a link's data: after `after`
    /// without a WebRTC path (5 s by default; at the start, or since the
    /// path was lost), end-to-end encrypted, while WebRTC keeps trying; the
    /// data moves back to WebRTC once it connects. `Some(Duration::ZERO)`
    /// gives the relay a head start: data flows through the server from the
    /// first moment. `None` never relays.
    pub fn server_relay(mut self, after: Option<Duration>) -> Self {
        self.server_relay = after;
        self
    }

    /// Trusts this certificate (DER) for `turns:` servers, besides the
    /// built-in Mozilla roots: for TURN servers with a private CA.
    pub fn turns_root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.tls_roots.push(der.into());
        self
    }

    /// How many times the node tries to reach the signaling server again
    /// after losing it, waiting a random time up to 1 s, 2 s, 4 s … 30 s
    /// before each try (full jitter). Unlimited by default; 0 never retries.
    /// The session (peer id, rooms) resumes when the server still holds it.
    pub fn reconnect_attempts(mut self, attempts: u32) -> Self {
        self.reconnect_attempts = attempts;
        self
    }

    /// Mesh (default) or links on request.
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// Most links at once (default 64).
    pub fn max_links(mut self, n: usize) -> Self {
        self.max_links = n;
        self
    }

    /// Largest message (default 64 MiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.link.max_message = bytes;
        self
    }

    /// Send-buffer watermarks per link: `send` waits above `high` until the
    /// buffer drains to `low` (defaults 16 MiB and 1 MiB).
    pub fn watermarks(mut self, high: usize, low: usize) -> Self {
        self.high_watermark = high;
        self.low_watermark = low;
        self
    }

    /// How long a link may take to connect (default 15 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.link.connect_timeout = timeout;
        self
    }

    /// How a link notices a dead path and how long it tries to get one back:
    /// silence for `dead_after` (default 3 s; keep-alives go every second)
    /// starts ICE restarts, and after `give_up` (default 15 s) without a
    /// path the link fails with [`DisconnectReason::PathLost`](crate::DisconnectReason::PathLost).
    pub fn path_timeouts(mut self, dead_after: Duration, give_up: Duration) -> Self {
        self.link.dead_after = dead_after;
        self.link.reconnect_timeout = give_up;
        self
    }

    /// Receive window per link (default 8 MiB): how much a peer may send
    /// ahead of what this application has read.
    pub fn receive_window(mut self, bytes: usize) -> Self {
        self.link.window = bytes;
        self
    }

    /// Largest chunk a message is cut into (default 32 KiB; at most 64 KiB,
    /// the data-channel message size every WebRTC stack accepts).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.link.chunk_size = bytes;
        self
    }

    /// Bytes str0m may hold unacknowledged per link (default 128 KiB). It
    /// caps data in flight: raise it for long, fast paths; on loopback and
    /// LANs larger values cost CPU in the SCTP stack.
    pub fn sctp_send_buffer(mut self, bytes: usize) -> Self {
        self.link.sctp_buffer = bytes;
        self
    }

    /// Raw mode for standard WebRTC peers: one message is one data-channel
    /// message, no Switchboard framing (no chunking, flow control or requests).
    /// A raw node declares no default channels: it uses the ones it declares
    /// and those the other side opens in-band.
    pub fn raw_messages(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }

    /// Starts the node: connects to the signaling server if one is set.
    pub async fn start(mut self) -> Result<Node, StartError> {
        install_crypto();
        if self.low_watermark > self.high_watermark {
            return Err(StartError::Config("low watermark above high watermark".into()));
        }
        if !(1024..=64 << 10).contains(&self.link.chunk_size) {
            return Err(StartError::Config("chunk size must be between 1 KiB and 64 KiB".into()));
        }
        if self.link.sctp_buffer < self.link.chunk_size + 1024 {
            return Err(StartError::Config("SCTP send buffer must hold a whole chunk".into()));
        }
        if self.link.window < 4 * self.link.chunk_size {
            return Err(StartError::Config("receive window must hold at least 4 chunks".into()));
        }
        if self.channels.is_empty() && !self.raw {
            self.channels = vec![ChannelConfig::reliable("reliable"), ChannelConfig::unreliable("unreliable")];
        }
        let mut names = HashSet::new();
        for c in &self.channels {
            if !names.insert(c.label.as_str()) {
                return Err(StartError::Config(format!("channel {:?} declared twice", c.label)));
            }
        }
        if self.channels.len() > 1000 {
            return Err(StartError::Config("at most 1000 channels".into()));
        }
        self.link.channels = self.channels.clone();
        for server in &self.ice_servers {
            server.validate().map_err(|e| StartError::Config(e.to_string()))?;
        }
        // One DTLS certificate for all of this node's links, made off the
        // async threads (the first one also warms up the crypto library).
        self.link.cert =
            tokio::task::spawn_blocking(|| str0m_aws_lc_rs::default_provider().dtls_provider.generate_certificate())
                .await
                .ok()
                .flatten();
        self.link.raw = self.raw;
        let identity = self.identity.take().unwrap_or_else(Identity::generate);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let client = match &self.signaling {
            Some(url) => {
                let mut options = ConnectOptions::default();
                if let Some(t) = &self.auth_token {
                    options = options.auth(t.clone());
                }
                Some(SignalingClient::connect(url, &identity, options).await?)
            }
            None => None,
        };
        let handed = client.as_ref().map_or(&[][..], |c| &c.welcome().ice_servers);
        let ice = crate::ice::resolve(&self.ice_servers, handed).await;
        if self.ice_policy == IcePolicy::Relay && !ice.iter().any(|s| s.turn.is_some()) {
            return Err(StartError::Config("relay-only policy needs a TURN server".into()));
        }
        let tls = crate::ice::tls::client_config(&self.tls_roots).map_err(|e| StartError::Config(e.to_string()))?;
        let (task_tx, task_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            ice: Mutex::new(ice),
            tls,
            id: identity.peer_id(),
            builder: self,
            links: Mutex::new(Links::default()),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            next_link: AtomicU64::new(1),
            events: events_tx,
            unread: AtomicUsize::new(0),
            task: client.as_ref().map(|_| task_tx),
        });
        if let Some(client) = client {
            tokio::spawn(task::run(inner.clone(), client, identity, task_rx));
        }
        Ok(Node { inner, events: tokio::sync::Mutex::new(events_rx) })
    }
}

fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if str0m::crypto::CryptoProvider::get_default().is_none() {
            str0m_aws_lc_rs::default_provider().install_process_default();
        }
    });
}

/// A peer-to-peer endpoint: joins rooms, keeps one link per remote peer,
/// sends and receives messages. Cheap to share behind an [`Arc`].
#[derive(Debug)]
pub struct Node {
    inner: Arc<Inner>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// Resolved STUN/TURN servers for new links.
    ice: Mutex<Vec<crate::ice::gather::Server>>,
    /// TLS settings for `turns:` servers.
    tls: Arc<rustls::ClientConfig>,
    id: PeerId,
    builder: NodeBuilder,
    links: Mutex<Links>,
    pending: Mutex<HashMap<u64, Waiter>>,
    next_request: AtomicU64,
    next_link: AtomicU64,
    events: mpsc::UnboundedSender<Event>,
    /// Message bytes emitted as events and not yet taken by the application.
    unread: AtomicUsize,
    task: Option<mpsc::UnboundedSender<task::TaskCmd>>,
}

/// A request waiting for its answer: the peer asked, and where the answer goes.
type Waiter = (PeerId, oneshot::Sender<Result<Bytes, RequestFailed>>);

#[derive(Debug, Default)]
pub(crate) struct Links {
    by_peer: HashMap<PeerId, LinkEntry>,
    by_id: HashMap<u64, PeerId>,
    /// Members of each room this node is in.
    rooms: HashMap<RoomCode, BTreeSet<PeerId>>,
}

#[derive(Debug)]
pub(crate) struct LinkEntry {
    handle: LinkHandle,
    conn: Option<ConnId>,
    labels: Vec<Arc<str>>,
    byo: bool,
}

impl Node {
    /// Settings for a new node.
    pub fn builder() -> NodeBuilder {
        NodeBuilder {
            signaling: None,
            identity: None,
            auth_token: None,
            channels: Vec::new(),
            hosts: HostCandidates::default(),
            topology: Topology::Mesh,
            max_links: 64,
            high_watermark: 16 << 20,
            low_watermark: 1 << 20,
            raw: false,
            link: LinkConfig::default(),
            ice_servers: Vec::new(),
            ice_policy: IcePolicy::All,
            relay_delay: Duration::from_millis(250),
            server_relay: Some(Duration::from_secs(5)),
            tls_roots: Vec::new(),
            reconnect_attempts: u32::MAX,
        }
    }

    /// This node's peer id.
    pub fn id(&self) -> PeerId {
        self.inner.id
    }

    /// The next event; `None` once the node is closed.
    pub async fn next_event(&self) -> Option<Event> {
        let event = self.events.lock().await.recv().await?;
        if let Event::Message(Message { peer, data, .. }) | Event::Request(Request { peer, data, .. }) = &event {
            self.inner.unread.fetch_sub(data.len(), Ordering::AcqRel);
            self.inner.consumed(*peer, data.len());
        }
        Some(event)
    }

    /// Creates a room on the server and returns its code.
    pub async fn create_room(&self, password: Option<&str>, max_peers: Option<u32>) -> Result<RoomCode, RoomError> {
        let (reply, rx) = oneshot::channel();
        self.inner.task_cmd(task::TaskCmd::CreateRoom { password: password.map(Into::into), max_peers, reply })?;
        rx.await.map_err(|_| closed())?.map_err(RoomError::Request)
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
        let (reply, rx) = oneshot::channel();
        self.inner.task_cmd(task::TaskCmd::Join { room, password: password.map(Into::into), meta, reply })?;
        rx.await.map_err(|_| closed())?.map_err(RoomError::Request)
    }

    /// Leaves a room; links to peers shared with no other room close.
    pub async fn leave(&self, room: RoomCode) -> Result<(), RoomError> {
        let (reply, rx) = oneshot::channel();
        self.inner.task_cmd(task::TaskCmd::Leave { room, reply })?;
        rx.await.map_err(|_| closed())?.map_err(RoomError::Request)
    }

    /// Peers in a room, as far as this node knows.
    pub fn room_peers(&self, room: RoomCode) -> Vec<PeerId> {
        self.inner.lock().rooms.get(&room).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    /// Asks `peer` for a link (request topology). It gets
    /// [`Event::LinkRequested`]; its answer opens the link or comes back as
    /// [`Event::LinkRejected`].
    pub fn request_link(&self, peer: PeerId, meta: Option<Value>) -> Result<(), RoomError> {
        self.inner.task_cmd(task::TaskCmd::RequestLink { peer, meta })
    }

    /// Accepts a link request.
    pub fn accept(&self, peer: PeerId) -> Result<(), RoomError> {
        self.inner.task_cmd(task::TaskCmd::Accept { peer })
    }

    /// Declines a link request, saying why.
    pub fn reject(&self, peer: PeerId, reason: Option<String>) -> Result<(), RoomError> {
        self.inner.task_cmd(task::TaskCmd::Reject { peer, reason })
    }

    /// Sends `data` on `channel` to `peer`, waiting while the link's send
    /// buffer is above its high watermark.
    pub async fn send(&self, peer: PeerId, channel: &str, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.inner.send(peer, channel, OutMessage::data(data.into()), true).await
    }

    /// Sends without waiting: [`SendError::Full`] when the buffer is above
    /// its high watermark.
    pub fn try_send(&self, peer: PeerId, channel: &str, data: impl Into<Bytes>) -> Result<(), SendError> {
        let (handle, slot) = self.inner.route(peer, channel)?;
        let msg = OutMessage::data(data.into());
        self.inner.check_size(msg.data.len())?;
        if !self.inner.reserve(&handle, msg.data.len()) {
            return Err(SendError::Full);
        }
        self.inner.submit(&handle, slot, msg)
    }

    /// Sends a message marked as belonging to `room`.
    pub async fn send_in_room(
        &self,
        peer: PeerId,
        room: RoomCode,
        channel: &str,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        let msg = OutMessage { kind: MessageKind::Data, room: Some(room), data: data.into() };
        self.inner.send(peer, channel, msg, true).await
    }

    /// Sends to every connected peer of `room` except `except`; returns how
    /// many peers it went to.
    pub async fn broadcast(
        &self,
        room: RoomCode,
        channel: &str,
        data: impl Into<Bytes>,
        except: Option<PeerId>,
    ) -> Result<usize, SendError> {
        let data = data.into();
        let peers = self.room_peers(room);
        let mut sent = 0;
        for peer in peers.into_iter().filter(|p| Some(*p) != except) {
            let msg = OutMessage { kind: MessageKind::Data, room: Some(room), data: data.clone() };
            match self.inner.send(peer, channel, msg, true).await {
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

    /// Sends a request and waits for the answer, at most `timeout`.
    pub async fn request(
        &self,
        peer: PeerId,
        channel: &str,
        data: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, RequestFailed> {
        let id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.pending().insert(id, (peer, tx));
        // Removes the entry however this future ends (answer, timeout, drop).
        let _guard = PendingGuard { inner: &self.inner, id };
        let msg = OutMessage { kind: MessageKind::Request(id), room: None, data: data.into() };
        self.inner.send(peer, channel, msg, true).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(RequestFailed::Closed),
            Err(_) => Err(RequestFailed::Timeout(timeout)),
        }
    }

    /// Answers a request (on the channel it came on).
    pub async fn respond(&self, request: &Request, data: impl Into<Bytes>) -> Result<(), SendError> {
        let msg = OutMessage { kind: MessageKind::Response(request.id), room: request.room, data: data.into() };
        self.inner.send(request.peer, &request.channel, msg, true).await
    }

    /// Answers a request with an error.
    pub async fn respond_error(&self, request: &Request, error: &str) -> Result<(), SendError> {
        let data = Bytes::copy_from_slice(error.as_bytes());
        let msg = OutMessage { kind: MessageKind::ErrorResponse(request.id), room: request.room, data };
        self.inner.send(request.peer, &request.channel, msg, true).await
    }

    /// Bytes of received messages waiting in the event queue.
    pub fn unread_bytes(&self) -> usize {
        self.inner.unread.load(Ordering::Acquire)
    }

    /// Requests waiting for an answer.
    pub fn pending_requests(&self) -> usize {
        self.inner.pending().len()
    }

    /// Bytes queued on the link to `peer` and not yet handed to the transport.
    pub fn buffered_amount(&self, peer: PeerId) -> usize {
        self.inner.lock().by_peer.get(&peer).map_or(0, |e| e.handle.shared.queued.load(Ordering::Acquire))
    }

    /// The link's stats.
    pub fn stats(&self, peer: PeerId) -> Option<LinkStats> {
        let links = self.inner.lock();
        let entry = links.by_peer.get(&peer)?;
        let mut stats = entry.handle.shared.snapshot.lock().ok()?.stats.clone();
        stats.buffered = entry.handle.shared.queued.load(Ordering::Acquire);
        Some(stats)
    }

    /// The link's state.
    pub fn link_state(&self, peer: PeerId) -> Option<LinkState> {
        let links = self.inner.lock();
        links.by_peer.get(&peer).and_then(|e| e.handle.shared.snapshot.lock().ok()?.state)
    }

    /// The link's state changes so far, with their times.
    pub fn link_history(&self, peer: PeerId) -> Vec<(Instant, LinkState)> {
        let links = self.inner.lock();
        links
            .by_peer
            .get(&peer)
            .and_then(|e| Some(e.handle.shared.snapshot.lock().ok()?.history.clone()))
            .unwrap_or_default()
    }

    /// Peers with a link (in any state).
    pub fn peers(&self) -> Vec<PeerId> {
        self.inner.lock().by_peer.keys().copied().collect()
    }

    /// Closes the link to `peer`.
    pub fn disconnect(&self, peer: PeerId, reason: Option<String>) {
        if let Some(e) = self.inner.lock().by_peer.get(&peer) {
            let _ = e.handle.commands.send(Command::Close(reason));
        }
    }

    /// Starts a link with bring-your-own signaling: returns a local handle
    /// for the link (used as its peer id) and the offer SDP for the other side.
    pub fn create_offer(&self) -> Result<(PeerId, String), SignalError> {
        let now = Instant::now();
        let (mut core, sockets) = self.inner.new_core(now, Role::Offerer)?;
        let sdp = core.start().map_err(|e| SignalError::Invalid(e.to_string()))?;
        let peer = random_peer();
        self.inner.spawn_link(peer, None, core, sockets, true);
        Ok((peer, sdp))
    }

    /// Answers an offer from the other side: returns the link's local handle
    /// and the answer SDP.
    pub fn accept_offer(&self, offer: &str) -> Result<(PeerId, String), SignalError> {
        let now = Instant::now();
        let (mut core, sockets) = self.inner.new_core(now, Role::Answerer)?;
        let sdp = core.accept_offer(offer).map_err(|e| SignalError::Invalid(e.to_string()))?;
        let peer = random_peer();
        self.inner.spawn_link(peer, None, core, sockets, true);
        Ok((peer, sdp))
    }

    /// Applies the other side's answer to a link made by [`Node::create_offer`].
    pub fn accept_answer(&self, peer: PeerId, answer: &str) -> Result<(), SignalError> {
        str0m::change::SdpAnswer::from_sdp_string(answer).map_err(|e| SignalError::Invalid(e.to_string()))?;
        self.inner.signal_link(peer, SignalData::Answer { sdp: answer.to_owned(), session: 0 })
    }

    /// Adds a candidate from the other side (`candidate:...`).
    pub fn add_remote_candidate(&self, peer: PeerId, candidate: &str) -> Result<(), SignalError> {
        let line = candidate.trim().trim_start_matches("a=");
        if !line.is_empty() {
            str0m::Candidate::from_sdp_string(line).map_err(|e| SignalError::Invalid(e.to_string()))?;
        }
        self.inner.signal_link(peer, SignalData::Candidate { candidate: line.to_owned(), mid: None })
    }

    /// Closes every link and the signaling connection.
    pub async fn close(&self) {
        let handles: Vec<LinkHandle> = self.inner.lock().by_peer.values().map(|e| e.handle.clone()).collect();
        for h in &handles {
            let _ = h.commands.send(Command::Close(None));
        }
        if let Some(task) = &self.inner.task {
            let (reply, rx) = oneshot::channel();
            if task.send(task::TaskCmd::Close { reply }).is_ok() {
                let _ = rx.await;
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for e in self.inner.lock().by_peer.values() {
            let _ = e.handle.commands.send(Command::Close(None));
        }
        if let Some(task) = &self.inner.task {
            let (reply, _) = oneshot::channel();
            let _ = task.send(task::TaskCmd::Close { reply });
        }
    }
}

struct PendingGuard<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.pending().remove(&self.id);
    }
}

fn closed() -> RoomError {
    RoomError::Request(crate::RequestError::Transport("node closed".into()))
}

fn random_peer() -> PeerId {
    PeerId::from_bytes(rand::random())
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<u64, Waiter>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn task_cmd(&self, cmd: task::TaskCmd) -> Result<(), RoomError> {
        let task = self.task.as_ref().ok_or(RoomError::NoSignaling)?;
        task.send(cmd).map_err(|_| closed())
    }

    fn check_size(&self, size: usize) -> Result<(), SendError> {
        let max = if self.builder.raw { 64 << 10 } else { self.builder.link.max_message };
        if size > max {
            return Err(SendError::TooLarge { size, max });
        }
        Ok(())
    }

    fn route(&self, peer: PeerId, channel: &str) -> Result<(LinkHandle, usize), SendError> {
        let links = self.lock();
        let entry = links.by_peer.get(&peer).ok_or(SendError::UnknownPeer(peer))?;
        let slot = entry
            .labels
            .iter()
            .position(|l| &**l == channel)
            .ok_or_else(|| SendError::UnknownChannel(channel.to_owned()))?;
        Ok((entry.handle.clone(), slot))
    }

    /// Takes `len` bytes of send budget if the buffer allows it now.
    fn reserve(&self, handle: &LinkHandle, len: usize) -> bool {
        let high = self.builder.high_watermark;
        handle
            .shared
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q == 0 || q + len <= high).then_some(q + len))
            .is_ok()
    }

    fn submit(&self, handle: &LinkHandle, slot: usize, msg: OutMessage) -> Result<(), SendError> {
        let len = msg.data.len();
        if handle.shared.ended.load(Ordering::Acquire) || handle.commands.send(Command::Send { slot, msg }).is_err() {
            handle.shared.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(SendError::Closed);
        }
        Ok(())
    }

    async fn send(&self, peer: PeerId, channel: &str, msg: OutMessage, wait: bool) -> Result<(), SendError> {
        let (handle, slot) = self.route(peer, channel)?;
        self.check_size(msg.data.len())?;
        let low = self.builder.low_watermark;
        loop {
            if handle.shared.ended.load(Ordering::Acquire) {
                return Err(SendError::Closed);
            }
            let drained = handle.shared.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.reserve(&handle, msg.data.len()) {
                break;
            }
            if !wait {
                return Err(SendError::Full);
            }
            // Wait for the buffer to drain to the low watermark.
            loop {
                if handle.shared.queued.load(Ordering::Acquire) <= low || handle.shared.ended.load(Ordering::Acquire) {
                    break;
                }
                drained.as_mut().await;
                drained.set(handle.shared.drained.notified());
                drained.as_mut().enable();
            }
        }
        self.submit(&handle, slot, msg)
    }

    /// The application took `len` bytes of messages from `peer`.
    fn consumed(&self, peer: PeerId, len: usize) {
        if let Some(e) = self.lock().by_peer.get(&peer) {
            e.handle.shared.consumed.fetch_add(len as u64, Ordering::AcqRel);
            if e.handle.shared.inbox_full.load(Ordering::Acquire) {
                e.handle.shared.wake.notify_one();
            }
        }
    }

    /// Replaces the STUN/TURN servers new links use.
    /// Replaces the STUN/TURN servers new links use, leaving running links alone.
    pub(crate) fn replace_ice_servers(&self, servers: Vec<crate::ice::gather::Server>) {
        if let Ok(mut ice) = self.ice.lock() {
            *ice = servers;
        }
    }

    /// Links on a relay move to the new credentials.
    pub(crate) fn set_ice_servers(&self, servers: Vec<crate::ice::gather::Server>) {
        self.replace_ice_servers(servers);
        for entry in self.lock().by_peer.values() {
            let _ = entry.handle.commands.send(Command::RenewRelay);
        }
    }

    /// The signaling connection is back: links waiting for an answer ask again.
    pub(crate) fn signaling_back(&self) {
        for entry in self.lock().by_peer.values() {
            let _ = entry.handle.commands.send(Command::SignalingBack);
        }
    }

    fn new_core(&self, now: Instant, role: Role) -> Result<(LinkCore, Vec<tokio::net::UdpSocket>), SignalError> {
        let mut sockets = Vec::new();
        for ip in self.builder.hosts.addresses()? {
            match bind_udp(ip) {
                Ok(s) => sockets.push(s),
                Err(e) => tracing::debug!(%ip, error = %e, "cannot bind a host candidate socket"),
            }
        }
        if sockets.is_empty() {
            return Err(SignalError::Io(std::io::Error::other("no local address to bind")));
        }
        let mut core = LinkCore::new(now, role, self.builder.link.clone());
        let locals: Vec<SocketAddr> = sockets.iter().filter_map(|s| s.local_addr().ok()).collect();
        if self.builder.ice_policy == IcePolicy::All {
            for &addr in &locals {
                if let Ok(c) = str0m::Candidate::host(addr, "udp") {
                    core.add_local_candidate(c);
                }
            }
        }
        if let Some(g) = self.gatherer_for(now, &locals) {
            core.set_gatherer(g);
        }
        Ok((core, sockets))
    }

    /// A gatherer with the current STUN/TURN servers, if there are any.
    fn gatherer_for(&self, now: Instant, locals: &[SocketAddr]) -> Option<Gatherer> {
        let servers = self.ice.lock().map(|s| s.clone()).unwrap_or_default();
        (!servers.is_empty())
            .then(|| Gatherer::new(now, &servers, locals, self.builder.ice_policy, self.builder.relay_delay))
    }

    fn spawn_link(
        self: &Arc<Self>,
        peer: PeerId,
        conn: Option<ConnId>,
        core: LinkCore,
        sockets: Vec<tokio::net::UdpSocket>,
        byo: bool,
    ) {
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let labels = core.channel_labels().map(Arc::from).collect();
        let sink: Arc<dyn LinkSink> = self.clone();
        let (handle, driver) = driver::build(id, core, sockets, self.builder.low_watermark, sink, self.tls.clone());
        {
            let mut links = self.lock();
            if let Some(old) = links.by_peer.insert(peer, LinkEntry { handle, conn, labels, byo }) {
                let _ = old.handle.commands.send(Command::Close(Some("replaced".into())));
                links.by_id.remove(&old.handle.id);
            }
            links.by_id.insert(id, peer);
        }
        driver.start();
    }

    fn signal_link(&self, peer: PeerId, signal: SignalData) -> Result<(), SignalError> {
        let links = self.lock();
        let entry = links.by_peer.get(&peer).ok_or(SignalError::UnknownLink(peer))?;
        entry.handle.commands.send(Command::Signal(signal)).map_err(|_| SignalError::UnknownLink(peer))
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

impl LinkSink for Inner {
    fn gatherer(&self, now: Instant, locals: &[SocketAddr]) -> Option<Gatherer> {
        self.gatherer_for(now, locals)
    }

    fn signal(&self, link: u64, signal: SignalData) {
        let links = self.lock();
        let Some(peer) = links.by_id.get(&link).copied() else { return };
        let Some(entry) = links.by_peer.get(&peer) else { return };
        if entry.byo {
            if let SignalData::Candidate { candidate, .. } = signal {
                drop(links);
                self.emit(Event::LocalCandidate { peer, candidate });
            }
            return;
        }
        let Some(conn) = entry.conn.clone() else { return };
        drop(links);
        if let Some(task) = &self.task {
            let _ = task.send(task::TaskCmd::Signal { to: peer, conn, data: signal });
        }
    }

    fn host_addresses(&self) -> std::io::Result<Vec<std::net::IpAddr>> {
        self.builder.hosts.addresses()
    }

    fn network_back(&self) {
        if let Some(task) = &self.task {
            let _ = task.send(task::TaskCmd::NetworkBack);
        }
    }

    fn relay(&self, link: u64, frame: Vec<u8>) {
        let Some(peer) = self.lock().by_id.get(&link).copied() else { return };
        if let Some(task) = &self.task {
            let _ = task.send(task::TaskCmd::Relay { to: peer, frame });
        }
    }

    fn event(&self, link: u64, event: LinkEvent) {
        let (peer, label) = {
            let mut links = self.lock();
            let Some(peer) = links.by_id.get(&link).copied() else { return };
            let label = match &event {
                LinkEvent::Message(m) => links.by_peer.get(&peer).and_then(|e| e.labels.get(m.slot).cloned()),
                LinkEvent::ChannelOpen { slot, label } => {
                    if let Some(e) = links.by_peer.get_mut(&peer)
                        && *slot >= e.labels.len()
                    {
                        e.labels.push(Arc::from(label.as_str()));
                        Some(Arc::from(label.as_str()))
                    } else {
                        None
                    }
                }
                LinkEvent::Ended(_) => {
                    links.by_id.remove(&link);
                    if links.by_peer.get(&peer).is_some_and(|e| e.handle.id == link) {
                        links.by_peer.remove(&peer);
                    }
                    None
                }
                _ => None,
            };
            (peer, label)
        };
        match event {
            LinkEvent::State(state) => self.emit(Event::LinkState { peer, state }),
            LinkEvent::Connected { path, rtt } => self.emit(Event::PeerConnected { peer, path, rtt }),
            LinkEvent::PathChanged(path) => self.emit(Event::PathChanged { peer, path }),
            LinkEvent::Quality(quality) => self.emit(Event::QualityChanged { peer, quality }),
            LinkEvent::ChannelOpen { .. } => {
                if let Some(channel) = label {
                    self.emit(Event::ChannelOpened { peer, channel: channel.to_string() });
                }
            }
            LinkEvent::Ended(reason) => {
                let mut pending = self.pending();
                let ids: Vec<u64> = pending.iter().filter(|(_, (p, _))| *p == peer).map(|(id, _)| *id).collect();
                for id in ids {
                    if let Some((_, tx)) = pending.remove(&id) {
                        let _ = tx.send(Err(RequestFailed::Closed));
                    }
                }
                drop(pending);
                self.emit(Event::PeerDisconnected { peer, reason });
            }
            LinkEvent::Message(m) => {
                let Some(channel) = label else { return };
                match m.kind {
                    MessageKind::Data => {
                        self.unread.fetch_add(m.data.len(), Ordering::AcqRel);
                        self.emit(Event::Message(Message { peer, channel, room: m.room, data: m.data }));
                    }
                    MessageKind::Request(id) => {
                        self.unread.fetch_add(m.data.len(), Ordering::AcqRel);
                        self.emit(Event::Request(Request { peer, channel, id, room: m.room, data: m.data }));
                    }
                    MessageKind::Response(id) | MessageKind::ErrorResponse(id) => {
                        self.consumed(peer, m.data.len());
                        let waiter = {
                            let mut pending = self.pending();
                            match pending.get(&id) {
                                Some((p, _)) if *p == peer => pending.remove(&id),
                                _ => None,
                            }
                        };
                        if let Some((_, tx)) = waiter {
                            let answer = if matches!(m.kind, MessageKind::Response(_)) {
                                Ok(m.data)
                            } else {
                                Err(RequestFailed::Remote(String::from_utf8_lossy(&m.data).into_owned()))
                            };
                            let _ = tx.send(answer);
                        }
                    }
                }
            }
        }
    }
}
