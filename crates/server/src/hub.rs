//! The room logic: sessions, rooms, hosts, signal relay with a TTL, presence
//! and resume. Sans-IO: every call takes the time, answers the caller, and
//! queues frames for other connections in [`Hub::poll_output`]. The driver in
//! `connection.rs` does the I/O and the slow work (signatures, password
//! hashing, the mailbox) before calling in.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use switchboard_proto::{
    ConnId, ErrorCode, JoinedRoom, Limits, PeerId, PeerInfo, RELAY_HEADER_LEN, RelayFrame, RoomCode, ServerMessage,
    SignalPayload, encode_b64, rewrite_peer,
};

/// One WebSocket connection, numbered by the driver.
pub(crate) type ConnKey = u64;

/// A refused request: the code and message of the `error` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// The one answer for a room that does not exist and for a missing or wrong
/// password, so that guessing codes does not tell open rooms from locked ones.
pub(crate) fn no_such_room(room: RoomCode) -> Refusal {
    Refusal::new(ErrorCode::NotFound, format!("no room {room} with this password"))
}

/// Something the driver must do for a connection other than the caller's answer.
#[derive(Debug)]
pub(crate) enum Output {
    /// Send a JSON frame.
    Send(ConnKey, ServerMessage),
    /// Forward a signal from the connection `from` to `to`.
    Signal { to: ConnKey, from: ConnKey, msg: ServerMessage },
    /// Forward a binary relay frame (already rewritten to name the sender).
    Relay { to: ConnKey, from: ConnKey, frame: Vec<u8> },
    /// Close the connection with a reason.
    Close(ConnKey, &'static str),
}

/// Settings of the hub.
#[derive(Debug, Clone)]
pub(crate) struct HubConfig {
    pub(crate) limits: Limits,
    pub(crate) room_ttl: Duration,
    pub(crate) max_rooms: usize,
    pub(crate) max_pending_per_peer: usize,
    /// Bytes of signals held for one absent peer.
    pub(crate) max_held_bytes_per_peer: usize,
    /// Signals one sender may have held, for all recipients.
    pub(crate) max_held_per_sender: usize,
    /// Bytes of signals one sender may have held.
    pub(crate) max_held_bytes_per_sender: usize,
    /// Bytes of held signals in all.
    pub(crate) max_held_bytes: usize,
    /// Rooms whose creators connected from one address, existing at once.
    pub(crate) max_rooms_per_origin: usize,
    /// Sessions waiting in their resume window at once; beyond them the
    /// oldest ends early.
    pub(crate) max_detached_sessions: usize,
    /// Peers one session may watch.
    pub(crate) max_watch: usize,
    /// Watches of all sessions together.
    pub(crate) max_watches: usize,
    /// Characters in the room codes this hub makes.
    pub(crate) room_code_len: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            room_ttl: Duration::from_secs(3600),
            max_rooms: 100_000,
            max_pending_per_peer: 256,
            max_held_bytes_per_peer: 1 << 20,
            max_held_per_sender: 1024,
            max_held_bytes_per_sender: 1 << 20,
            max_held_bytes: 256 << 20,
            max_rooms_per_origin: 1000,
            max_detached_sessions: 100_000,
            max_watch: 1024,
            max_watches: 1_000_000,
            room_code_len: 10,
        }
    }
}

/// What an auth token lets a peer do; `None` rooms means every room.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grants {
    pub(crate) rooms: Option<Vec<String>>,
    /// The token's tenant: signals, mail and presence stay inside it.
    pub(crate) tenant: Option<Arc<str>>,
}

impl Grants {
    fn may_join(&self, room: RoomCode) -> bool {
        self.rooms.as_ref().is_none_or(|r| r.iter().any(|g| g == "*" || g.eq_ignore_ascii_case(room.as_str())))
    }

    fn may_create(&self) -> bool {
        self.rooms.as_ref().is_none_or(|r| r.iter().any(|g| g == "*"))
    }
}

/// The result of a successful `hello`.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) resume_token: String,
    pub(crate) resumed: bool,
    pub(crate) rooms: Vec<JoinedRoom>,
}

struct Session {
    conn: Option<ConnKey>,
    /// The resume token's random bytes (the wire form is their base64url).
    resume_secret: [u8; 18],
    detached_at: Option<Instant>,
    rooms: Vec<RoomCode>,
    /// Watched peers (bounded by `max_watch`).
    watching: HashSet<PeerId>,
    grants: Grants,
    /// The address of its latest connection.
    origin: Arc<str>,
}

impl Session {
    fn resume_token(&self) -> String {
        encode_b64(&self.resume_secret)
    }

    /// Compares a presented token with this session's in constant time.
    fn token_matches(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        self.resume_token().as_bytes().ct_eq(token.as_bytes()).into()
    }
}

struct Member {
    peer: PeerId,
    meta: Option<Value>,
}

struct Room {
    /// The address its creator connected from.
    origin: Arc<str>,
    password_hash: Option<String>,
    max_peers: usize,
    members: Vec<Member>,
    empty_since: Option<Instant>,
}

impl Room {
    fn view(&self, code: RoomCode, me: PeerId) -> Option<JoinedRoom> {
        let host = self.members.first()?.peer;
        let peers = self
            .members
            .iter()
            .filter(|m| m.peer != me)
            .map(|m| PeerInfo { peer_id: m.peer, meta: m.meta.clone() })
            .collect();
        Some(JoinedRoom { re: None, room: code, peers, host })
    }
}

struct PendingSignal {
    seq: u64,
    from: PeerId,
    /// The sender's tenant: the signal is dropped if its recipient comes
    /// with another one.
    tenant: Option<Arc<str>>,
    conn: ConnId,
    data: SignalPayload,
}

impl PendingSignal {
    fn size(&self) -> usize {
        held_size(&self.data)
    }
}

/// What a held signal counts against the byte caps.
fn held_size(data: &SignalPayload) -> usize {
    64 + data.as_json().len()
}

/// Held signals and their bytes, of one sender or one recipient.
#[derive(Clone, Copy, Debug, Default)]
struct Held {
    signals: usize,
    bytes: usize,
}

/// The signaling server's state machine.
pub(crate) struct Hub {
    config: HubConfig,
    rng: StdRng,
    sessions: HashMap<PeerId, Session>,
    conns: HashMap<ConnKey, PeerId>,
    rooms: HashMap<RoomCode, Room>,
    pending: HashMap<PeerId, VecDeque<PendingSignal>>,
    /// What each recipient and each sender has held, and in all.
    held_for: HashMap<PeerId, Held>,
    held_from: HashMap<PeerId, Held>,
    held_bytes: usize,
    /// Rooms existing per creator's address.
    rooms_by_origin: HashMap<Arc<str>, usize>,
    /// Sessions in their resume window.
    detached: usize,
    /// Watches of all sessions together.
    watches: usize,
    next_seq: u64,
    signal_deadlines: VecDeque<(Instant, PeerId, u64)>,
    room_deadlines: VecDeque<(Instant, RoomCode)>,
    resume_deadlines: VecDeque<(Instant, PeerId)>,
    outputs: VecDeque<Output>,
}

impl Hub {
    pub(crate) fn new(config: HubConfig, seed: [u8; 32]) -> Self {
        Self {
            config,
            rng: StdRng::from_seed(seed),
            sessions: HashMap::new(),
            conns: HashMap::new(),
            rooms: HashMap::new(),
            pending: HashMap::new(),
            held_for: HashMap::new(),
            held_from: HashMap::new(),
            held_bytes: 0,
            rooms_by_origin: HashMap::new(),
            detached: 0,
            watches: 0,
            next_seq: 0,
            signal_deadlines: VecDeque::new(),
            room_deadlines: VecDeque::new(),
            resume_deadlines: VecDeque::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Number of rooms that exist.
    pub(crate) fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Number of sessions, live or waiting for resume.
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether `peer` has a session, live or waiting for resume.
    pub(crate) fn has_session(&self, peer: PeerId) -> bool {
        self.sessions.contains_key(&peer)
    }

    /// The peer a connection speaks for, once it said `hello`.
    #[cfg(test)]
    pub(crate) fn peer_of(&self, conn: ConnKey) -> Option<PeerId> {
        self.conns.get(&conn).copied()
    }

    /// The next queued frame for another connection.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Hub::handle_timeout`] should next run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.signal_deadlines.front().map(|d| d.0),
            self.room_deadlines.front().map(|d| d.0),
            self.resume_deadlines.front().map(|d| d.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Binds a connection to a proven peer: resumes its session when the
    /// token matches, otherwise starts a new one. An older connection of the
    /// same peer is closed.
    pub(crate) fn attach(
        &mut self,
        now: Instant,
        conn: ConnKey,
        peer: PeerId,
        resume_token: Option<&str>,
        grants: Grants,
        origin: &str,
    ) -> Attached {
        let mut resumed = false;
        let origin: Arc<str> = origin.into();
        if let Some(session) = self.sessions.get_mut(&peer) {
            if let Some(old) = session.conn.take() {
                self.conns.remove(&old);
                self.outputs.push_back(Output::Close(old, "replaced by a newer connection of the same peer"));
            }
            if session.detached_at.take().is_some() {
                self.detached = self.detached.saturating_sub(1);
            }
            if resume_token.is_some_and(|t| session.token_matches(t)) {
                session.conn = Some(conn);
                session.grants = grants.clone();
                session.origin = origin.clone();
                resumed = true;
            } else {
                self.end_session(now, peer);
            }
        }
        if !resumed {
            let resume_secret = self.rng.random();
            self.sessions.insert(
                peer,
                Session {
                    conn: Some(conn),
                    resume_secret,
                    detached_at: None,
                    rooms: Vec::new(),
                    watching: HashSet::new(),
                    grants,
                    origin,
                },
            );
            // A new session watches no one yet, so no one may see it come
            // online: presence is shown only between peers that watch each other.
        }
        self.conns.insert(conn, peer);
        if resumed {
            // Presence changes while the peer was away were not delivered:
            // tell it the current state of everyone it watches.
            let watching: Vec<PeerId> = self.sessions[&peer].watching.iter().copied().collect();
            for watched in watching {
                let online = self.seen_online(peer, watched);
                self.outputs.push_back(Output::Send(conn, ServerMessage::Presence { peer_id: watched, online }));
            }
        }
        self.flush_pending(peer, conn);
        let session = &self.sessions[&peer];
        let rooms = session.rooms.iter().filter_map(|code| self.rooms.get(code)?.view(*code, peer)).collect();
        Attached { resume_token: session.resume_token(), resumed, rooms }
    }

    /// A connection ended. A clean close ends the session at once; a dropped
    /// connection keeps it for the resume window.
    pub(crate) fn detach(&mut self, now: Instant, conn: ConnKey, clean: bool) {
        let Some(peer) = self.conns.remove(&conn) else { return };
        if clean {
            self.end_session(now, peer);
            return;
        }
        if let Some(session) = self.sessions.get_mut(&peer) {
            session.conn = None;
            if session.detached_at.replace(now).is_none() {
                self.detached += 1;
            }
            let window = Duration::from_secs(self.config.limits.resume_window_secs);
            self.resume_deadlines.push_back((now + window, peer));
        }
        // Over the cap, the sessions detached longest end now, oldest first.
        while self.detached > self.config.max_detached_sessions {
            let Some((_, oldest)) = self.resume_deadlines.pop_front() else { break };
            if self.sessions.get(&oldest).is_some_and(|s| s.detached_at.is_some()) {
                self.end_session(now, oldest);
            }
        }
    }

    /// Creates a room; `password_hash` is already hashed by the driver.
    pub(crate) fn create_room(
        &mut self,
        now: Instant,
        conn: ConnKey,
        password_hash: Option<String>,
        max_peers: Option<u32>,
    ) -> Result<RoomCode, Refusal> {
        let peer = self.require_peer(conn)?;
        if !self.sessions[&peer].grants.may_create() {
            return Err(Refusal::new(ErrorCode::Forbidden, "the auth token does not allow creating rooms"));
        }
        let origin = self.room_origin(peer)?;
        let limit = self.config.limits.max_peers_per_room as usize;
        let max_peers = max_peers.map_or(limit, |m| (m as usize).min(limit));
        for _ in 0..64 {
            let indices: Vec<u8> = (0..self.config.room_code_len).map(|_| self.rng.random_range(0..32)).collect();
            let code =
                RoomCode::from_indices(&indices).map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
            if self.rooms.contains_key(&code) {
                continue;
            }
            self.insert_room(now, code, origin, password_hash, max_peers);
            return Ok(code);
        }
        Err(Refusal::new(ErrorCode::Internal, "could not find a free room code"))
    }

    /// Whether a room with this code exists.
    pub(crate) fn has_room(&self, room: RoomCode) -> bool {
        self.rooms.contains_key(&room)
    }

    /// Makes room `code` again for a peer that was in it before the server
    /// lost it (`join` with `recreate`). `Ok(false)` if it exists already.
    pub(crate) fn recreate_room(
        &mut self,
        now: Instant,
        conn: ConnKey,
        code: RoomCode,
        password_hash: Option<String>,
    ) -> Result<bool, Refusal> {
        let peer = self.require_peer(conn)?;
        if self.rooms.contains_key(&code) {
            return Ok(false);
        }
        if !self.sessions[&peer].grants.may_create() {
            return Err(Refusal::new(ErrorCode::Forbidden, "the auth token does not allow creating rooms"));
        }
        let max_peers = self.config.limits.max_peers_per_room as usize;
        let origin = self.room_origin(peer)?;
        self.insert_room(now, code, origin, password_hash, max_peers);
        Ok(true)
    }

    /// The stored password hash of a room, for the driver to verify against.
    pub(crate) fn password_hash(&self, room: RoomCode) -> Option<String> {
        self.rooms.get(&room).and_then(|r| r.password_hash.clone())
    }

    /// Joins a room. `verified_hash` is the hash the driver checked the given
    /// password against (it must still be the room's).
    pub(crate) fn join(
        &mut self,
        conn: ConnKey,
        room: RoomCode,
        verified_hash: Option<&str>,
        meta: Option<Value>,
    ) -> Result<JoinedRoom, Refusal> {
        let peer = self.require_peer(conn)?;
        let session = &self.sessions[&peer];
        if !session.grants.may_join(room) {
            return Err(Refusal::new(ErrorCode::Forbidden, "the auth token does not allow this room"));
        }
        let in_rooms = session.rooms.len();
        let Some(r) = self.rooms.get_mut(&room) else {
            return Err(no_such_room(room));
        };
        if r.members.iter().any(|m| m.peer == peer) {
            return r.view(room, peer).ok_or_else(|| Refusal::new(ErrorCode::Internal, "room has no members"));
        }
        if r.password_hash.is_some() && r.password_hash.as_deref() != verified_hash {
            return Err(no_such_room(room));
        }
        if r.members.len() >= r.max_peers {
            return Err(Refusal::new(ErrorCode::RoomFull, format!("room {room} has its {} peers", r.max_peers)));
        }
        if in_rooms >= self.config.limits.max_rooms_per_peer as usize {
            return Err(Refusal::new(
                ErrorCode::LimitExceeded,
                format!("a peer may be in at most {} rooms", self.config.limits.max_rooms_per_peer),
            ));
        }
        r.members.push(Member { peer, meta: meta.clone() });
        r.empty_since = None;
        let others: Vec<PeerId> = r.members.iter().map(|m| m.peer).filter(|p| *p != peer).collect();
        let view = r.view(room, peer);
        if let Some(s) = self.sessions.get_mut(&peer) {
            s.rooms.push(room);
        }
        let joined = ServerMessage::PeerJoined { room, peer: PeerInfo { peer_id: peer, meta } };
        self.send_to_peers(&others, &joined);
        view.ok_or_else(|| Refusal::new(ErrorCode::Internal, "room has no members"))
    }

    /// Leaves a room.
    pub(crate) fn leave(&mut self, now: Instant, conn: ConnKey, room: RoomCode) -> Result<(), Refusal> {
        let peer = self.require_peer(conn)?;
        if !self.sessions[&peer].rooms.contains(&room) {
            return Err(Refusal::new(ErrorCode::NotFound, format!("not in room {room}")));
        }
        self.remove_member(now, peer, room);
        Ok(())
    }

    /// Relays a signal, or holds it for an absent peer until the signal TTL.
    pub(crate) fn signal(
        &mut self,
        now: Instant,
        conn: ConnKey,
        to: PeerId,
        signal_conn: ConnId,
        data: SignalPayload,
    ) -> Result<(), Refusal> {
        let from = self.require_peer(conn)?;
        if to == from {
            return Err(Refusal::new(ErrorCode::BadRequest, "a peer cannot signal itself"));
        }
        let tenant = &self.sessions[&from].grants.tenant;
        if self.sessions.get(&to).is_some_and(|s| s.grants.tenant != *tenant) {
            return Err(Refusal::new(ErrorCode::Forbidden, "signals reach only peers of your tenant"));
        }
        if let Some(target) = self.live_conn(to) {
            let msg = ServerMessage::Signal { from, conn: signal_conn, data };
            self.outputs.push_back(Output::Signal { to: target, from: conn, msg });
            return Ok(());
        }
        let size = held_size(&data);
        let c = &self.config;
        let for_to = self.held_for.get(&to).copied().unwrap_or_default();
        if for_to.signals >= c.max_pending_per_peer || for_to.bytes + size > c.max_held_bytes_per_peer {
            return Err(Refusal::new(ErrorCode::LimitExceeded, "too many signals wait for this peer"));
        }
        let from_me = self.held_from.get(&from).copied().unwrap_or_default();
        if from_me.signals >= c.max_held_per_sender || from_me.bytes + size > c.max_held_bytes_per_sender {
            return Err(Refusal::new(ErrorCode::LimitExceeded, "too many of your signals wait for absent peers"));
        }
        if self.held_bytes + size > c.max_held_bytes {
            return Err(Refusal::new(ErrorCode::LimitExceeded, "the server holds its maximum of signals"));
        }
        // Kept with the signal: it is dropped if its recipient comes back in another tenant.
        let tenant = self.sessions[&from].grants.tenant.clone();
        for held in [self.held_for.entry(to).or_default(), self.held_from.entry(from).or_default()] {
            held.signals += 1;
            held.bytes += size;
        }
        self.held_bytes += size;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.entry(to).or_default().push_back(PendingSignal { seq, from, tenant, conn: signal_conn, data });
        let ttl = Duration::from_millis(self.config.limits.signal_ttl_ms);
        self.signal_deadlines.push_back((now + ttl, to, seq));
        Ok(())
    }

    /// Forwards a binary relay frame to a peer that shares a room with the sender.
    pub(crate) fn relay(&mut self, conn: ConnKey, mut frame: Vec<u8>) -> Result<(), Refusal> {
        let from = self.require_peer(conn)?;
        let to = RelayFrame::decode(&frame).map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?.peer;
        let shares_room = self.sessions[&from]
            .rooms
            .iter()
            .any(|code| self.rooms.get(code).is_some_and(|r| r.members.iter().any(|m| m.peer == to)));
        if !shares_room {
            return Err(Refusal::new(ErrorCode::Forbidden, "relay is only allowed to peers in a shared room"));
        }
        let Some(target) = self.live_conn(to) else {
            return Err(Refusal::new(ErrorCode::NotFound, format!("peer {to} is not connected")));
        };
        debug_assert!(frame.len() >= RELAY_HEADER_LEN);
        rewrite_peer(&mut frame, from).map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?;
        self.outputs.push_back(Output::Relay { to: target, from: conn, frame });
        Ok(())
    }

    /// Follows the presence of `peers`; answers with their current state.
    ///
    /// Presence is shown only between two peers that watch each other (and
    /// belong to one tenant): to anyone else a peer looks offline, so that a
    /// stranger who learns a peer id cannot track when its owner is online.
    /// Watching back a peer that already watches this one tells that peer
    /// that this one is online.
    pub(crate) fn watch(&mut self, conn: ConnKey, peers: &[PeerId]) -> Result<Vec<(PeerId, bool)>, Refusal> {
        let me = self.require_peer(conn)?;
        let session = self.sessions.get(&me).ok_or_else(|| Refusal::new(ErrorCode::Internal, "no session"))?;
        let mut new: Vec<PeerId> =
            peers.iter().copied().filter(|p| *p != me && !session.watching.contains(p)).collect();
        new.sort_unstable();
        new.dedup();
        if session.watching.len() + new.len() > self.config.max_watch {
            let message = format!("at most {} watched peers", self.config.max_watch);
            return Err(Refusal::new(ErrorCode::LimitExceeded, message));
        }
        if self.watches + new.len() > self.config.max_watches {
            return Err(Refusal::new(ErrorCode::LimitExceeded, "the server follows its maximum of watches"));
        }
        self.watches += new.len();
        if let Some(session) = self.sessions.get_mut(&me) {
            session.watching.extend(new.iter().copied());
        }
        for p in &new {
            if self.seen_online(*p, me) {
                self.send_to_peers(&[*p], &ServerMessage::Presence { peer_id: me, online: true });
            }
        }
        Ok(peers.iter().map(|p| (*p, self.seen_online(me, *p))).collect())
    }

    /// Stops following the presence of `peers`. A peer that watches this one
    /// sees it go offline, as their watching is no longer mutual.
    pub(crate) fn unwatch(&mut self, conn: ConnKey, peers: &[PeerId]) -> Result<(), Refusal> {
        let me = self.require_peer(conn)?;
        for p in peers {
            if !self.sessions.get(&me).is_some_and(|s| s.watching.contains(p)) {
                continue;
            }
            let was_seen = self.seen_online(*p, me);
            if let Some(session) = self.sessions.get_mut(&me) {
                session.watching.remove(p);
            }
            self.watches = self.watches.saturating_sub(1);
            if was_seen {
                self.send_to_peers(&[*p], &ServerMessage::Presence { peer_id: me, online: false });
            }
        }
        Ok(())
    }

    /// Whether `watcher` is shown `peer` as online: `peer` has a session,
    /// they watch each other, and they belong to one tenant.
    fn seen_online(&self, watcher: PeerId, peer: PeerId) -> bool {
        let (Some(w), Some(p)) = (self.sessions.get(&watcher), self.sessions.get(&peer)) else { return false };
        w.watching.contains(&peer) && p.watching.contains(&watcher) && w.grants.tenant == p.grants.tenant
    }

    /// The live connection of a peer, for mail delivery.
    pub(crate) fn live_conn(&self, peer: PeerId) -> Option<ConnKey> {
        self.sessions.get(&peer).and_then(|s| s.conn)
    }

    /// Runs everything due at `now`: expired signals, empty rooms, lapsed resume windows.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, to, seq)) = self.signal_deadlines.front() {
            if at > now {
                break;
            }
            self.signal_deadlines.pop_front();
            let Some(queue) = self.pending.get_mut(&to) else { continue };
            if queue.front().is_none_or(|p| p.seq != seq) {
                continue;
            }
            let expired = queue.pop_front();
            if queue.is_empty() {
                self.pending.remove(&to);
            }
            if let Some(expired) = &expired {
                self.release_held(to, expired);
            }
            if let Some(expired) = expired
                && let Some(sender) = self.live_conn(expired.from)
            {
                self.outputs.push_back(Output::Send(sender, ServerMessage::Expired { to, conn: expired.conn }));
            }
        }
        while let Some(&(at, code)) = self.room_deadlines.front() {
            if at > now {
                break;
            }
            self.room_deadlines.pop_front();
            let lapsed = self
                .rooms
                .get(&code)
                .and_then(|r| r.empty_since)
                .is_some_and(|since| since + self.config.room_ttl <= now);
            if lapsed
                && let Some(room) = self.rooms.remove(&code)
                && let Some(n) = self.rooms_by_origin.get_mut(&room.origin)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.rooms_by_origin.remove(&room.origin);
                }
            }
        }
        while let Some(&(at, peer)) = self.resume_deadlines.front() {
            if at > now {
                break;
            }
            self.resume_deadlines.pop_front();
            let window = Duration::from_secs(self.config.limits.resume_window_secs);
            let lapsed =
                self.sessions.get(&peer).and_then(|s| s.detached_at).is_some_and(|since| since + window <= now);
            if lapsed {
                self.end_session(now, peer);
            }
        }
    }

    fn require_peer(&self, conn: ConnKey) -> Result<PeerId, Refusal> {
        self.conns.get(&conn).copied().ok_or_else(|| Refusal::new(ErrorCode::Unauthorized, "send hello first"))
    }

    fn send_to_peers(&mut self, peers: &[PeerId], msg: &ServerMessage) {
        for p in peers {
            if let Some(conn) = self.live_conn(*p) {
                self.outputs.push_back(Output::Send(conn, msg.clone()));
            }
        }
    }

    /// Gives a held signal's share back to its sender, its recipient and the total.
    fn release_held(&mut self, to: PeerId, signal: &PendingSignal) {
        let size = signal.size();
        for (map, key) in [(&mut self.held_for, to), (&mut self.held_from, signal.from)] {
            if let Some(held) = map.get_mut(&key) {
                held.signals = held.signals.saturating_sub(1);
                held.bytes = held.bytes.saturating_sub(size);
                if held.signals == 0 {
                    map.remove(&key);
                }
            }
        }
        self.held_bytes = self.held_bytes.saturating_sub(size);
    }

    fn flush_pending(&mut self, peer: PeerId, conn: ConnKey) {
        if let Some(queue) = self.pending.remove(&peer) {
            for p in &queue {
                self.release_held(peer, p);
            }
            let tenant = self.sessions.get(&peer).and_then(|s| s.grants.tenant.clone());
            for p in queue.into_iter().filter(|p| p.tenant == tenant) {
                self.outputs
                    .push_back(Output::Send(conn, ServerMessage::Signal { from: p.from, conn: p.conn, data: p.data }));
            }
        }
    }

    fn remove_member(&mut self, now: Instant, peer: PeerId, code: RoomCode) {
        if let Some(s) = self.sessions.get_mut(&peer) {
            s.rooms.retain(|r| *r != code);
        }
        let Some(room) = self.rooms.get_mut(&code) else { return };
        let Some(pos) = room.members.iter().position(|m| m.peer == peer) else { return };
        room.members.remove(pos);
        let rest: Vec<PeerId> = room.members.iter().map(|m| m.peer).collect();
        let new_host = (pos == 0).then(|| rest.first().copied()).flatten();
        if rest.is_empty() {
            room.empty_since = Some(now);
            self.room_deadlines.push_back((now + self.config.room_ttl, code));
        }
        self.send_to_peers(&rest, &ServerMessage::PeerLeft { room: code, peer_id: peer });
        if let Some(host) = new_host {
            self.send_to_peers(&rest, &ServerMessage::HostChanged { room: code, host });
        }
    }

    /// The address a new room of `peer` counts under, if it may have one more.
    fn room_origin(&self, peer: PeerId) -> Result<Arc<str>, Refusal> {
        if self.rooms.len() >= self.config.max_rooms {
            return Err(Refusal::new(ErrorCode::LimitExceeded, "the server holds its maximum number of rooms"));
        }
        let origin = self.sessions[&peer].origin.clone();
        if self.rooms_by_origin.get(&origin).copied().unwrap_or_default() >= self.config.max_rooms_per_origin {
            let message = "rooms created from your address reached their maximum; wait until some expire";
            return Err(Refusal::new(ErrorCode::LimitExceeded, message));
        }
        Ok(origin)
    }

    fn insert_room(
        &mut self,
        now: Instant,
        code: RoomCode,
        origin: Arc<str>,
        password_hash: Option<String>,
        max_peers: usize,
    ) {
        *self.rooms_by_origin.entry(origin.clone()).or_default() += 1;
        let room = Room { origin, password_hash, max_peers, members: Vec::new(), empty_since: Some(now) };
        self.rooms.insert(code, room);
        self.room_deadlines.push_back((now + self.config.room_ttl, code));
    }

    fn end_session(&mut self, now: Instant, peer: PeerId) {
        // Those shown this peer online are told it went offline.
        let seen_by: Vec<PeerId> = self
            .sessions
            .get(&peer)
            .map_or_else(Vec::new, |s| s.watching.iter().copied().filter(|w| self.seen_online(*w, peer)).collect());
        let Some(session) = self.sessions.remove(&peer) else { return };
        if session.detached_at.is_some() {
            self.detached = self.detached.saturating_sub(1);
        }
        if let Some(conn) = session.conn {
            self.conns.remove(&conn);
        }
        for code in &session.rooms {
            self.remove_member(now, peer, *code);
        }
        self.watches = self.watches.saturating_sub(session.watching.len());
        self.send_to_peers(&seen_by, &ServerMessage::Presence { peer_id: peer, online: false });
    }
}

#[cfg(test)]
mod tests;
