//! The node's signaling task: owns the server connection, follows room
//! membership, decides which links to open, and carries their signals.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_proto::{ClientMessage, ConnId, JoinedRoom, Leave, PeerId, RoomCode, ServerMessage, SignalData};
use tokio::sync::{mpsc, oneshot};

use super::backoff::Backoff;
use super::{Event, Inner, Topology};
use crate::link::Role;
use crate::link::relay::{RELAY_CHANNEL, RelaySetup};
use crate::native::driver::Command;
use crate::{ConnectOptions, Identity, Incoming, RequestError, SignalingClient};

/// Work for the task.
#[derive(Debug)]
pub(crate) enum TaskCmd {
    CreateRoom {
        password: Option<String>,
        max_peers: Option<u32>,
        reply: oneshot::Sender<Result<RoomCode, RequestError>>,
    },
    Join {
        room: RoomCode,
        password: Option<String>,
        meta: Option<Value>,
        reply: oneshot::Sender<Result<JoinedRoom, RequestError>>,
    },
    Leave {
        room: RoomCode,
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    RequestLink {
        peer: PeerId,
        meta: Option<Value>,
    },
    Accept {
        peer: PeerId,
    },
    Reject {
        peer: PeerId,
        reason: Option<String>,
    },
    Signal {
        to: PeerId,
        conn: ConnId,
        data: SignalData,
    },
    /// A link's sealed frame for the server relay.
    Relay {
        to: PeerId,
        frame: Vec<u8>,
    },
    /// A link heard its peer again along a lost path: the network is back.
    NetworkBack,
    Close {
        reply: oneshot::Sender<()>,
    },
}

struct Task {
    inner: Arc<Inner>,
    client: SignalingClient,
    /// Signs the `hello` of every reconnection.
    identity: Identity,
    /// Peers this node asked for a link and is waiting on.
    asked: HashSet<PeerId>,
    /// Peers whose request this node received and has not answered.
    asking: HashSet<PeerId>,
    /// Peers with an agreed link (request topology).
    agreed: HashSet<PeerId>,
    /// Rooms joined, with what they were joined with, to join again after
    /// a server that lost the session.
    joined: HashMap<RoomCode, JoinedWith>,
    /// Commands that need the server, kept while it is away.
    deferred: VecDeque<TaskCmd>,
    /// When to fetch fresh TURN credentials.
    refresh_at: Option<tokio::time::Instant>,
    /// Members not yet back in a room the server lost, and until when they
    /// are waited for.
    awaited: HashMap<(RoomCode, PeerId), tokio::time::Instant>,
    /// A ping went out because the network came back: the connection is
    /// stale (stuck in TCP retransmission backoff) unless something arrives by then.
    answer_by: Option<tokio::time::Instant>,
}

/// How long members of a room that the server lost are waited for, while
/// this node still has a link to them, before they count as gone: long
/// enough for their own reconnection backoff.
const REJOIN_GRACE: Duration = Duration::from_secs(60);

/// A room's password and the meta this node joined it with.
type JoinedWith = (Option<String>, Option<Value>);

/// Commands kept while the server is away; older ones are dropped beyond this.
const DEFERRED: usize = 256;
/// How long the server may take at least to answer the ping sent when the
/// network came back before the connection counts as stale and a fresh one
/// replaces it; longer if connecting took longer (a slow path to the server).
const STALE_AFTER: Duration = Duration::from_millis(300);

/// Why serving the connection stopped.
enum Stop {
    /// The application closed the node, or dropped it.
    Closed,
    /// The connection broke; try again.
    Lost(String),
    /// The connection stopped answering although the network is back; try
    /// again at once on a fresh one.
    Stale,
    /// The server closed it for a reason a retry cannot fix.
    Final(String),
}

pub(crate) async fn run(
    inner: Arc<Inner>,
    client: SignalingClient,
    identity: Identity,
    mut rx: mpsc::UnboundedReceiver<TaskCmd>,
) {
    let refresh_at = ice_refresh_at(&client.welcome().ice_servers);
    let mut task = Task {
        inner,
        client,
        identity,
        asked: HashSet::new(),
        asking: HashSet::new(),
        agreed: HashSet::new(),
        joined: HashMap::new(),
        deferred: VecDeque::new(),
        refresh_at,
        awaited: HashMap::new(),
        answer_by: None,
    };
    loop {
        match task.serve(&mut rx).await {
            Stop::Closed => return,
            Stop::Final(reason) => {
                task.inner.emit(Event::SignalingClosed { reason });
                break;
            }
            stop @ (Stop::Lost(_) | Stop::Stale) => {
                let (reason, now) = match stop {
                    Stop::Lost(reason) => (reason, false),
                    _ => ("no answer from the server after the network came back".to_owned(), true),
                };
                match task.reconnect(&mut rx, reason, now).await {
                    Some(Stop::Closed) => return,
                    Some(_) => break,
                    None => {}
                }
            }
        }
    }
    // The server is gone for good; answer what is still asked of the task.
    while let Some(cmd) = rx.recv().await {
        match cmd {
            TaskCmd::Close { reply } => {
                let _ = reply.send(());
                return;
            }
            other => refuse(other, "signaling connection closed"),
        }
    }
}

/// Answers a command that needs the server with an error.
fn refuse(cmd: TaskCmd, why: &str) {
    let gone = || RequestError::Transport(why.to_owned());
    match cmd {
        TaskCmd::CreateRoom { reply, .. } => drop(reply.send(Err(gone()))),
        TaskCmd::Join { reply, .. } => drop(reply.send(Err(gone()))),
        TaskCmd::Leave { reply, .. } => drop(reply.send(Err(gone()))),
        _ => {}
    }
}

/// Whether a close from the server invites a retry: not when this peer's
/// session was taken over by a newer connection (4000) or its auth token
/// expired (4001).
fn retry_after_close(code: u16) -> bool {
    !matches!(code, 4000 | 4001)
}

/// When to ask for fresh TURN credentials: well before the first minted
/// ones expire (half their remaining life, at most five minutes early).
fn ice_refresh_at(servers: &[switchboard_proto::IceServer]) -> Option<tokio::time::Instant> {
    let expires = servers.iter().filter_map(|s| s.expires_at).min()?;
    let now_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let left = Duration::from_secs(expires.saturating_sub(now_unix));
    let early = (left / 2).min(Duration::from_secs(300));
    Some(tokio::time::Instant::now() + (left - early).max(Duration::from_secs(1)))
}

impl Task {
    /// Serves the connection until it ends.
    async fn serve(&mut self, rx: &mut mpsc::UnboundedReceiver<TaskCmd>) -> Stop {
        loop {
            let refresh_at = self.refresh_at;
            let refresh = async {
                match refresh_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let awaited_until = self.awaited.values().min().copied();
            let awaited = async {
                match awaited_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let answer_by = self.answer_by;
            let stale = async {
                match answer_by {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stale => {
                    tracing::info!("the signaling connection is stale; replacing it");
                    self.answer_by = None;
                    return Stop::Stale;
                }
                () = refresh => {
                    self.refresh_at = self.refresh_ice_servers().await;
                }
                () = awaited => self.sweep_awaited(),
                incoming = self.client.next() => match incoming {
                    Ok(Incoming::Message(msg)) => {
                        self.answer_by = None;
                        self.on_server(msg);
                    }
                    Ok(Incoming::Relay { from, channel: RELAY_CHANNEL, payload }) => {
                        self.answer_by = None;
                        self.on_relay(from, payload);
                    }
                    Ok(Incoming::Relay { from, channel, .. }) => {
                        tracing::debug!(%from, channel, "relay frame on an unknown channel dropped");
                    }
                    Ok(Incoming::Closed { code, reason }) => {
                        let why = format!("closed by server ({code}): {reason}");
                        return if retry_after_close(code) { Stop::Lost(why) } else { Stop::Final(why) };
                    }
                    Err(e) => return Stop::Lost(e.to_string()),
                },
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return Stop::Closed };
                    if let TaskCmd::Close { reply } = cmd {
                        let _ = self.client.close().await;
                        let _ = reply.send(());
                        return Stop::Closed;
                    }
                    self.on_command(cmd).await;
                }
            }
        }
    }

    /// Reconnects with backoff, serving commands meanwhile (the first
    /// attempt at once if `now`, or when a link hears the network come
    /// back). `None` once connected again; otherwise why it stopped trying.
    async fn reconnect(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<TaskCmd>,
        reason: String,
        mut now: bool,
    ) -> Option<Stop> {
        tracing::info!(%reason, "signaling connection lost; reconnecting");
        self.inner.emit(Event::SignalingLost { reason: reason.clone() });
        let url = self.inner.builder.signaling.clone()?;
        let mut backoff = Backoff::new(self.inner.builder.reconnect_attempts);
        let mut last = reason;
        loop {
            let Some(wait) = backoff.next_wait(&mut rand::rng()) else {
                let why = format!("gave up after {} reconnection attempts: {last}", backoff.attempts());
                self.inner.emit(Event::SignalingClosed { reason: why.clone() });
                return Some(Stop::Final(why));
            };
            let until = tokio::time::Instant::now() + if std::mem::take(&mut now) { Duration::ZERO } else { wait };
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => break,
                    cmd = rx.recv() => match cmd {
                        None => return Some(Stop::Closed),
                        Some(TaskCmd::Close { reply }) => {
                            let _ = reply.send(());
                            return Some(Stop::Closed);
                        }
                        Some(TaskCmd::NetworkBack) => break,
                        Some(cmd) => self.while_away(cmd),
                    },
                }
            }
            let mut options = ConnectOptions::default().resume(self.client.welcome().resume_token.clone());
            if let Some(t) = &self.inner.builder.auth_token {
                options = options.auth(t.clone());
            }
            match SignalingClient::connect(&url, &self.identity, options).await {
                Ok(client) => {
                    self.client = client;
                    self.restored().await;
                    return None;
                }
                Err(e) => {
                    tracing::debug!(attempt = backoff.attempts(), error = %e, "reconnection failed");
                    last = e.to_string();
                }
            }
        }
    }

    /// A command while the server is away: room calls fail at once, signals wait.
    fn while_away(&mut self, cmd: TaskCmd) {
        match cmd {
            TaskCmd::CreateRoom { .. } | TaskCmd::Join { .. } | TaskCmd::Leave { .. } => {
                refuse(cmd, "signaling connection lost; reconnecting");
            }
            other => {
                if self.deferred.len() >= DEFERRED {
                    self.deferred.pop_front();
                }
                self.deferred.push_back(other);
            }
        }
    }

    /// Back on the server: rooms as the server sees them, fresh ICE servers,
    /// then what waited.
    async fn restored(&mut self) {
        let welcome = self.client.welcome().clone();
        tracing::info!(resumed = welcome.resumed, "signaling connection restored");
        let resolved = crate::ice::resolve(&self.inner.builder.ice_servers, &welcome.ice_servers).await;
        self.inner.replace_ice_servers(resolved);
        self.refresh_at = ice_refresh_at(&welcome.ice_servers);
        if welcome.resumed {
            for view in &welcome.rooms {
                self.reconcile(view, false);
            }
            let held: Vec<RoomCode> = welcome.rooms.iter().map(|r| r.room).collect();
            let lost: Vec<RoomCode> = self.joined.keys().filter(|r| !held.contains(r)).copied().collect();
            for room in lost {
                self.room_lost(room, "the server no longer has this node in the room".into());
            }
        } else {
            for (room, (password, meta)) in self.joined.clone() {
                match self.client.rejoin(room, password.as_deref(), meta).await {
                    Ok(view) => self.reconcile(&view, true),
                    Err(e) => self.room_lost(room, e.to_string()),
                }
            }
        }
        self.inner.emit(Event::SignalingRestored { resumed: welcome.resumed });
        self.inner.signaling_back();
        for cmd in std::mem::take(&mut self.deferred) {
            self.on_command(cmd).await;
        }
    }

    /// Brings this node's view of a room in line with the server's:
    /// members that came are reported joined, members that went, left.
    /// Members seen before are not reported again.
    ///
    /// After a server restart (`rejoined`), members missing from the view may
    /// be on their way back: those this node still has a link to stay
    /// members, unreported, for [`REJOIN_GRACE`].
    fn reconcile(&mut self, view: &JoinedRoom, rejoined: bool) {
        let me = self.inner.id;
        let now: HashMap<PeerId, Option<Value>> =
            view.peers.iter().filter(|p| p.peer_id != me).map(|p| (p.peer_id, p.meta.clone())).collect();
        let (before, waiting) = {
            let mut links = self.inner.lock();
            let before = links.rooms.get(&view.room).cloned().unwrap_or_default();
            let waiting: Vec<PeerId> = before
                .iter()
                .filter(|p| rejoined && !now.contains_key(p) && links.by_peer.contains_key(p))
                .copied()
                .collect();
            let members = links.rooms.entry(view.room).or_default();
            *members = now.keys().copied().chain(waiting.iter().copied()).collect();
            (before, waiting)
        };
        let until = tokio::time::Instant::now() + REJOIN_GRACE;
        for &peer in &waiting {
            self.awaited.insert((view.room, peer), until);
        }
        for (peer, meta) in &now {
            if !before.contains(peer) {
                self.inner.emit(Event::PeerJoined { room: view.room, peer: *peer, meta: meta.clone() });
                if self.inner.builder.topology == Topology::Mesh {
                    self.open_if_offerer(*peer);
                    self.prepare_answerer(*peer);
                }
            }
        }
        for peer in before.into_iter().filter(|p| !now.contains_key(p) && !waiting.contains(p)) {
            self.inner.emit(Event::PeerLeft { room: view.room, peer });
            self.drop_if_unshared(peer);
        }
    }

    /// Members awaited after a server restart that did not come back in time have left.
    fn sweep_awaited(&mut self) {
        let now = tokio::time::Instant::now();
        let gone: Vec<(RoomCode, PeerId)> =
            self.awaited.iter().filter(|(_, until)| **until <= now).map(|(k, _)| *k).collect();
        for (room, peer) in gone {
            self.awaited.remove(&(room, peer));
            if let Some(members) = self.inner.lock().rooms.get_mut(&room) {
                members.remove(&peer);
            }
            self.inner.emit(Event::PeerLeft { room, peer });
            self.drop_if_unshared(peer);
        }
    }

    /// A room could not be kept across a reconnection.
    fn room_lost(&mut self, room: RoomCode, reason: String) {
        self.joined.remove(&room);
        let members = self.inner.lock().rooms.remove(&room).unwrap_or_default();
        self.inner.emit(Event::RoomLost { room, reason });
        for peer in members {
            self.drop_if_unshared(peer);
        }
    }

    /// Fetches fresh ICE servers (new TURN credentials) for the links made
    /// from now on; returns when to do it again.
    async fn refresh_ice_servers(&mut self) -> Option<tokio::time::Instant> {
        let ask = ClientMessage::IceServers(switchboard_proto::Ping { id: None });
        match self.client.request(ask).await {
            Ok(ServerMessage::IceServers { ice_servers, .. }) => {
                let resolved = crate::ice::resolve(&self.inner.builder.ice_servers, &ice_servers).await;
                tracing::debug!(servers = resolved.len(), "ICE servers refreshed");
                self.inner.set_ice_servers(resolved);
                ice_refresh_at(&ice_servers)
            }
            Ok(other) => {
                tracing::warn!(?other, "unexpected answer to ice_servers");
                Some(tokio::time::Instant::now() + Duration::from_secs(30))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot refresh ICE servers; retrying in 30 s");
                Some(tokio::time::Instant::now() + Duration::from_secs(30))
            }
        }
    }

    async fn on_command(&mut self, cmd: TaskCmd) {
        match cmd {
            TaskCmd::CreateRoom { password, max_peers, reply } => {
                let r = self.client.create_room(password.as_deref(), max_peers).await;
                let _ = reply.send(r);
            }
            TaskCmd::Join { room, password, meta, reply } => {
                let r = self.client.join(room, password.as_deref(), meta.clone()).await;
                if let Ok(joined) = &r {
                    self.joined.insert(room, (password, meta));
                    self.on_joined(joined);
                }
                let _ = reply.send(r);
            }
            TaskCmd::Leave { room, reply } => {
                let r = self.client.request(ClientMessage::Leave(Leave { id: None, room })).await.map(|_| ());
                if r.is_ok() {
                    self.joined.remove(&room);
                    let members = self.inner.lock().rooms.remove(&room).unwrap_or_default();
                    for peer in members {
                        self.drop_if_unshared(peer);
                    }
                }
                let _ = reply.send(r);
            }
            TaskCmd::RequestLink { peer, meta } => {
                self.asked.insert(peer);
                self.send_signal(peer, &topology_conn(), SignalData::Request { meta }).await;
            }
            TaskCmd::Accept { peer } => {
                if self.asking.remove(&peer) {
                    self.agreed.insert(peer);
                    self.send_signal(peer, &topology_conn(), SignalData::Accept).await;
                    self.open_if_offerer(peer);
                }
            }
            TaskCmd::Reject { peer, reason } => {
                if self.asking.remove(&peer) {
                    self.send_signal(peer, &topology_conn(), SignalData::Reject { reason }).await;
                }
            }
            TaskCmd::Signal { to, conn, data } => self.send_signal(to, &conn, data).await,
            TaskCmd::Relay { to, frame } => {
                // Lost frames are sent again by the link (reliable channels).
                if let Err(e) = self.client.send_relay(to, RELAY_CHANNEL, &frame).await {
                    tracing::debug!(%to, error = %e, "relay frame not sent");
                }
            }
            TaskCmd::NetworkBack => {
                if self.answer_by.is_some() {
                    return;
                }
                let ping = ClientMessage::Ping(switchboard_proto::Ping { id: None });
                // Connecting took about three round trips: a healthy
                // connection answers a ping well within that.
                let by = tokio::time::Instant::now() + STALE_AFTER.max(self.client.handshake_time());
                self.answer_by = Some(match self.client.send(&ping).await {
                    Ok(()) => by,
                    Err(_) => tokio::time::Instant::now(),
                });
            }
            TaskCmd::Close { .. } => {}
        }
    }

    async fn send_signal(&mut self, to: PeerId, conn: &ConnId, data: SignalData) {
        if let Err(e) = self.client.signal(to, conn, data).await {
            tracing::debug!(%to, error = %e, "signal not sent");
        }
    }

    fn on_joined(&mut self, joined: &JoinedRoom) {
        let me = self.inner.id;
        {
            let mut links = self.inner.lock();
            let members = links.rooms.entry(joined.room).or_default();
            for p in &joined.peers {
                if p.peer_id != me {
                    members.insert(p.peer_id);
                }
            }
        }
        for p in joined.peers.iter().filter(|p| p.peer_id != me) {
            self.inner.emit(Event::PeerJoined { room: joined.room, peer: p.peer_id, meta: p.meta.clone() });
            if self.inner.builder.topology == Topology::Mesh {
                self.open_if_offerer(p.peer_id);
                self.prepare_answerer(p.peer_id);
            }
        }
    }

    fn on_server(&mut self, msg: ServerMessage) {
        match msg {
            ServerMessage::PeerJoined { room, peer } => {
                // A member awaited after a server restart is back: nothing to report.
                if self.awaited.remove(&(room, peer.peer_id)).is_some() {
                    return;
                }
                self.inner.lock().rooms.entry(room).or_default().insert(peer.peer_id);
                self.inner.emit(Event::PeerJoined { room, peer: peer.peer_id, meta: peer.meta });
                if self.inner.builder.topology == Topology::Mesh {
                    self.open_if_offerer(peer.peer_id);
                    self.prepare_answerer(peer.peer_id);
                }
            }
            ServerMessage::PeerLeft { room, peer_id } => {
                if let Some(members) = self.inner.lock().rooms.get_mut(&room) {
                    members.remove(&peer_id);
                }
                self.inner.emit(Event::PeerLeft { room, peer: peer_id });
                self.drop_if_unshared(peer_id);
            }
            ServerMessage::Signal { from, conn, data } => match data.parse() {
                Ok(signal) => self.on_signal(from, conn, signal),
                Err(e) => tracing::debug!(%from, error = %e, "ignoring a signal we cannot read"),
            },
            ServerMessage::Expired { to, conn } => tracing::debug!(%to, %conn, "signal expired undelivered"),
            _ => {}
        }
    }

    fn shares_room(&self, peer: PeerId) -> bool {
        self.inner.lock().rooms.values().any(|m| m.contains(&peer))
    }

    fn drop_if_unshared(&mut self, peer: PeerId) {
        if self.shares_room(peer) {
            return;
        }
        self.agreed.remove(&peer);
        self.asked.remove(&peer);
        self.asking.remove(&peer);
        let links = self.inner.lock();
        if let Some(e) = links.by_peer.get(&peer)
            && !e.byo
        {
            let _ = e.handle.commands.send(Command::Close(Some("no shared room".into())));
        }
    }

    fn link_allowed(&self, peer: PeerId) -> bool {
        match self.inner.builder.topology {
            Topology::Mesh => self.shares_room(peer),
            Topology::OnRequest => self.agreed.contains(&peer),
        }
    }

    fn at_capacity(&self) -> bool {
        self.inner.lock().by_peer.len() >= self.inner.builder.max_links
    }

    /// Opens the link if this node is the offering side (the lower id offers,
    /// so simultaneous joins never glare).
    fn open_if_offerer(&mut self, peer: PeerId) {
        if self.inner.id >= peer || self.inner.lock().by_peer.contains_key(&peer) {
            return;
        }
        if self.at_capacity() {
            tracing::warn!(%peer, "link limit reached; no link opened");
            return;
        }
        let Some((mut core, sockets)) = self.new_core(peer, Instant::now(), Role::Offerer) else { return };
        if let Err(e) = core.start() {
            tracing::warn!(%peer, error = %e, "cannot create an offer");
            return;
        }
        let conn = random_conn();
        self.inner.spawn_link(peer, Some(conn), core, sockets, false);
    }

    /// On the answering side of a mesh link, starts the link before the
    /// offer arrives: its STUN and TURN gathering then runs while the offer
    /// travels, and the answer carries what was found.
    fn prepare_answerer(&mut self, peer: PeerId) {
        if self.inner.id <= peer || self.inner.lock().by_peer.contains_key(&peer) || self.at_capacity() {
            return;
        }
        let Some((core, sockets)) = self.new_core(peer, Instant::now(), Role::Answerer) else { return };
        self.inner.spawn_link(peer, None, core, sockets, false);
    }

    /// A link core with its sockets, or `None` (logged) when none can be bound.
    fn new_core(
        &self,
        peer: PeerId,
        now: Instant,
        role: Role,
    ) -> Option<(crate::link::LinkCore, Vec<tokio::net::UdpSocket>)> {
        let (mut core, sockets) = self
            .inner
            .new_core(now, role)
            .map_err(|e| tracing::warn!(%peer, error = %e, "cannot create a link"))
            .ok()?;
        if let Some(after) = self.inner.builder.server_relay {
            let limits = &self.client.welcome().limits;
            let setup = RelaySetup {
                identity: self.identity.clone(),
                local: self.identity.peer_id(),
                remote: peer,
                after,
                // Half the server's allowance: signals and other links share it.
                bytes_per_sec: limits.relay_bytes_per_sec / 2,
                frames_per_sec: limits.rate_per_sec / 4,
                max_payload: (limits.max_frame_bytes as usize).saturating_sub(switchboard_proto::RELAY_HEADER_LEN),
            };
            core.enable_relay(setup, rand::random());
        }
        Some((core, sockets))
    }

    /// A relayed frame: for the link to its sender.
    fn on_relay(&self, from: PeerId, frame: Vec<u8>) {
        let links = self.inner.lock();
        if let Some(e) = links.by_peer.get(&from) {
            let _ = e.handle.commands.send(Command::Relay(frame));
        }
    }

    fn on_signal(&mut self, from: PeerId, conn: ConnId, signal: SignalData) {
        match signal {
            SignalData::Request { meta } => {
                if !self.shares_room(from) {
                    return;
                }
                if self.at_capacity() {
                    let reason = Some("link limit reached".to_owned());
                    let _ = self
                        .inner
                        .task
                        .as_ref()
                        .map(|t| t.send(TaskCmd::Signal { to: from, conn, data: SignalData::Reject { reason } }));
                    return;
                }
                self.asking.insert(from);
                self.inner.emit(Event::LinkRequested { peer: from, meta });
            }
            SignalData::Accept => {
                if self.asked.remove(&from) {
                    self.agreed.insert(from);
                    self.open_if_offerer(from);
                }
            }
            SignalData::Reject { reason } => {
                if self.asked.remove(&from) {
                    self.inner.emit(Event::LinkRejected { peer: from, reason });
                }
            }
            SignalData::Offer { sdp, session } => self.on_offer(from, conn, sdp, session),
            other => {
                let links = self.inner.lock();
                if let Some(e) = links.by_peer.get(&from)
                    && e.conn.as_ref() == Some(&conn)
                {
                    let _ = e.handle.commands.send(Command::Signal(other));
                }
            }
        }
    }

    fn on_offer(&mut self, from: PeerId, conn: ConnId, sdp: String, session: u32) {
        let bye = |reason: &str| TaskCmd::Signal {
            to: from,
            conn: conn.clone(),
            data: SignalData::Bye { reason: Some(reason.to_owned()) },
        };
        if !self.link_allowed(from) {
            let _ = self.inner.task.as_ref().map(|t| t.send(bye("no link agreed")));
            return;
        }
        {
            // An offer on the current link restarts its ICE; the first offer
            // for a link prepared ahead of it names its `conn`.
            let mut links = self.inner.lock();
            if let Some(e) = links.by_peer.get_mut(&from)
                && !e.byo
                && (e.conn.is_none() || e.conn.as_ref() == Some(&conn))
            {
                e.conn = Some(conn);
                let _ = e.handle.commands.send(Command::Signal(SignalData::Offer { sdp, session }));
                return;
            }
        }
        let existing = self.inner.lock().by_peer.get(&from).map(|e| e.conn.clone());
        if existing.is_none() && self.at_capacity() {
            let _ = self.inner.task.as_ref().map(|t| t.send(bye("link limit reached")));
            return;
        }
        let now = Instant::now();
        let Some((mut core, sockets)) = self.new_core(from, now, Role::Answerer) else { return };
        if let Err(e) = core.handle_signal(now, SignalData::Offer { sdp, session }) {
            tracing::debug!(%from, error = %e, "bad offer");
        }
        // A new offer from a known peer replaces its old link (it restarted).
        self.inner.spawn_link(from, Some(conn), core, sockets, false);
    }
}

/// The `conn` of request/accept/reject signals, which precede any link.
fn topology_conn() -> ConnId {
    ConnId::from_u64(0)
}

/// A fresh `conn` for one negotiation.
fn random_conn() -> ConnId {
    ConnId::from_u64(rand::random::<u64>() | 1)
}
