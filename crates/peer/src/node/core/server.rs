//! The node core's signaling session, sans-IO: the handshake, requests and
//! their answers, reconnection with jittered backoff and resume (or rejoin
//! when the server lost the session), TURN credential refresh, and the
//! check that a connection still answers after the network came back.

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use serde_json::Value;
use switchboard_proto::{
    AckMail, ClientMessage, ConnId, CreateRoom, ErrorCode, Hello, Join, JoinedRoom, Leave, MailRequest,
    PROTOCOL_VERSION, PeerId, Ping, RelayFrame, RoomCode, ServerMessage, SignalData, SignalRequest, Watch, Welcome,
};
use web_time::Instant;

use super::{NodeCore, NodeOutput, Platform};
use crate::error::{ConnectError, RequestError, RoomError};
use crate::event::{Event, Mail};
use crate::link::server_relay::RELAY_CHANNEL;
use crate::node::backoff::Backoff;
use crate::node::config::NodeConfig;

/// How long members of a room that the server lost are waited for, while
/// this node still has a link to them, before they count as gone: long
/// enough for their own reconnection backoff.
const REJOIN_GRACE: Duration = Duration::from_secs(60);
/// Signals kept while the server is away; older ones are dropped beyond this.
const DEFERRED: usize = 256;
/// How long the server may take at least to answer the ping sent when the
/// network came back before the connection counts as stale and a fresh one
/// replaces it; longer if connecting took longer (a slow path to the server).
const STALE_AFTER: Duration = Duration::from_millis(300);
/// A failed credential refresh is tried again after this.
const REFRESH_RETRY: Duration = Duration::from_secs(30);
/// Mail ids remembered as reported, so that mail the server delivers
/// again (until acknowledged) is reported once.
const SEEN_MAIL: usize = 4096;

/// A room's password and the meta this node joined it with.
type JoinedWith = (Option<String>, Option<Value>);

/// An application call waiting for the server's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Call(u64);

/// What a call got.
#[derive(Debug)]
pub(crate) enum Answer {
    /// `create_room`: the room's code.
    Room(RoomCode),
    /// `join`: the room as the server sees it.
    Joined(JoinedRoom),
    /// `mail`: the stored message's id.
    MailAccepted(u64),
    /// Done (`leave`).
    Done,
}

/// What a request to the server was for.
enum Asked {
    /// An application call.
    App(Call),
    /// The application's `join`, with what it joined with.
    Join(Call, RoomCode, Option<String>, Option<Value>),
    /// A room joined again after the server lost the session.
    Rejoin(RoomCode),
    /// Fresh TURN credentials.
    IceServers,
    /// Watches sent again to a server that lost the session.
    Rewatch,
}

/// Where the connection stands.
#[derive(Debug, PartialEq)]
enum Ws {
    /// No signaling server.
    None,
    /// The driver opens a WebSocket.
    Opening,
    /// Open; waiting for `challenge`, then `welcome`.
    Handshake,
    /// The session is open.
    Open,
    /// Lost; the next attempt is due at this time.
    Away(Instant),
    /// Closed for good.
    Closed,
}

struct CallSlot {
    answer: Option<Result<Answer, RoomError>>,
    waker: Option<Waker>,
}

/// The signaling session's state.
pub(super) struct Server {
    url: Option<String>,
    auth_token: Option<String>,
    ws: Ws,
    /// When the current connection attempt began.
    opening_since: Instant,
    /// From opening the connection to `welcome`: about three round trips.
    handshake_time: Duration,
    welcome: Option<Welcome>,
    /// The first connection's outcome, for `start`.
    started: Option<Result<(), ConnectError>>,
    start_waker: Option<Waker>,
    backoff: Backoff,
    /// Why the connection was lost, for the final report.
    lost_reason: String,
    next_id: u64,
    asked: HashMap<u64, Asked>,
    calls: HashMap<Call, CallSlot>,
    next_call: u64,
    /// Signals kept while the server is away.
    deferred: VecDeque<ClientMessage>,
    /// Rooms joined, with what they were joined with, to join again after a
    /// server that lost the session.
    joined: HashMap<RoomCode, JoinedWith>,
    /// Members not yet back in a room the server lost, and until when they are waited for.
    awaited: HashMap<(RoomCode, PeerId), Instant>,
    /// Rooms being joined again; `SignalingRestored` goes out once all are answered.
    rejoining: usize,
    /// When to fetch fresh TURN credentials.
    refresh_at: Option<Instant>,
    /// Peers watched, to watch again on a server that lost the session.
    watched: std::collections::BTreeSet<PeerId>,
    /// Mail ids reported, oldest first ([`SEEN_MAIL`] at most).
    seen_mail: VecDeque<u64>,
    /// A ping went out because the network came back: the connection is
    /// stale unless something arrives by then.
    answer_by: Option<Instant>,
}

impl Server {
    pub(super) fn new(now: Instant, cfg: &NodeConfig) -> Self {
        Server {
            url: cfg.signaling.clone(),
            auth_token: cfg.auth_token.clone(),
            ws: if cfg.signaling.is_some() { Ws::Opening } else { Ws::None },
            opening_since: now,
            handshake_time: Duration::ZERO,
            welcome: None,
            started: cfg.signaling.is_none().then_some(Ok(())),
            start_waker: None,
            backoff: Backoff::new(cfg.reconnect_attempts),
            lost_reason: String::new(),
            next_id: 1,
            asked: HashMap::new(),
            calls: HashMap::new(),
            next_call: 1,
            deferred: VecDeque::new(),
            joined: HashMap::new(),
            awaited: HashMap::new(),
            rejoining: 0,
            refresh_at: None,
            answer_by: None,
            watched: std::collections::BTreeSet::new(),
            seen_mail: VecDeque::new(),
        }
    }

    /// The server's limits, once welcomed.
    pub(super) fn limits(&self) -> Option<&switchboard_proto::Limits> {
        self.welcome.as_ref().map(|w| &w.limits)
    }

    /// Watches `peer` once the session is open.
    pub(super) fn watch_later(&mut self, peer: PeerId) {
        self.watched.insert(peer);
    }

    /// Whether calls that need the server can go now.
    pub(super) fn usable(&self) -> Result<(), RoomError> {
        match self.ws {
            Ws::None => Err(RoomError::NoSignaling),
            Ws::Open => Ok(()),
            Ws::Closed => Err(RoomError::Request(RequestError::Transport("signaling connection closed".into()))),
            _ => Err(RoomError::Request(RequestError::Transport("signaling connection lost; reconnecting".into()))),
        }
    }

    /// Sends a frame now (open) or drops it.
    pub(super) fn send_binary(&mut self, out: &mut VecDeque<NodeOutput>, frame: Vec<u8>) {
        if self.ws == Ws::Open {
            out.push_back(NodeOutput::Binary(frame));
        }
    }

    fn send(&mut self, out: &mut VecDeque<NodeOutput>, msg: &ClientMessage) {
        out.push_back(NodeOutput::Text(msg.encode()));
    }

    /// Sends a request with a fresh id, remembering what it was for.
    fn request(&mut self, out: &mut VecDeque<NodeOutput>, mut msg: ClientMessage, asked: Asked) {
        let id = self.next_id;
        self.next_id += 1;
        msg.set_id(id);
        self.asked.insert(id, asked);
        self.send(out, &msg);
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let away = match self.ws {
            Ws::Away(at) => Some(at),
            _ => None,
        };
        [away, self.refresh_at, self.answer_by, self.awaited.values().min().copied()].into_iter().flatten().min()
    }

    /// Ends the session (the node closes).
    pub(super) fn close(&mut self, out: &mut VecDeque<NodeOutput>) {
        if matches!(self.ws, Ws::Opening | Ws::Handshake | Ws::Open) {
            out.push_back(NodeOutput::Disconnect);
        }
        if self.ws != Ws::None {
            self.ws = Ws::Closed;
        }
        if self.started.is_none() {
            self.started = Some(Err(ConnectError::Transport("node closed".into())));
            if let Some(w) = self.start_waker.take() {
                w.wake();
            }
        }
    }

    /// Fails every call still waiting for the server.
    pub(super) fn fail_calls(&mut self, why: &str) {
        self.asked.retain(|_, a| !matches!(a, Asked::App(_) | Asked::Join(..)));
        for slot in self.calls.values_mut() {
            if slot.answer.is_none() {
                slot.answer = Some(Err(RoomError::Request(RequestError::Transport(why.to_owned()))));
            }
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    fn finish_call(&mut self, call: Call, answer: Result<Answer, RoomError>) {
        if let Some(slot) = self.calls.get_mut(&call) {
            slot.answer = Some(answer);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    fn set_started(&mut self, result: Result<(), ConnectError>) {
        if self.started.is_none() {
            self.started = Some(result);
            if let Some(w) = self.start_waker.take() {
                w.wake();
            }
        }
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
fn refresh_at(now: Instant, servers: &[switchboard_proto::IceServer]) -> Option<Instant> {
    let expires = servers.iter().filter_map(|s| s.expires_at).min()?;
    let now_unix = web_time::SystemTime::now().duration_since(web_time::UNIX_EPOCH).ok()?.as_secs();
    let left = Duration::from_secs(expires.saturating_sub(now_unix));
    let early = (left / 2).min(Duration::from_secs(300));
    Some(now + (left - early).max(Duration::from_secs(1)))
}

impl<P: Platform> NodeCore<P> {
    // ----- the driver's WebSocket -----

    /// The WebSocket the driver opened is up: the handshake follows.
    pub(crate) fn ws_opened(&mut self, now: Instant) {
        self.advance(now);
        if self.server.ws == Ws::Opening {
            self.server.ws = Ws::Handshake;
        }
    }

    /// The WebSocket could not be opened, or closed (`code` 1006 when it
    /// just dropped).
    pub(crate) fn ws_closed(&mut self, now: Instant, code: u16, reason: &str) {
        self.advance(now);
        let why = format!("closed by server ({code}): {reason}");
        match self.server.ws {
            Ws::Opening | Ws::Handshake if self.server.started.is_none() => {
                let e = if reason.is_empty() { format!("connection closed ({code})") } else { reason.to_owned() };
                self.server.set_started(Err(ConnectError::Transport(e)));
                self.server.ws = Ws::Closed;
                self.closed = true;
                self.wake_readers();
            }
            Ws::Opening | Ws::Handshake => {
                tracing::debug!(attempt = self.server.backoff.attempts(), %why, "reconnection failed");
                self.server.lost_reason = why;
                self.schedule_reconnect(false);
            }
            Ws::Open if !retry_after_close(code) => self.signaling_closed(why),
            Ws::Open => self.connection_lost(why, false),
            _ => {}
        }
    }

    /// A text frame from the server.
    pub(crate) fn ws_text(&mut self, now: Instant, text: &str) {
        self.advance(now);
        let msg = match ServerMessage::decode(text) {
            Ok(m) => m,
            // Newer servers may add message types; ignored.
            Err(f) if matches!(f.error, switchboard_proto::DecodeError::UnknownType(_)) => {
                return tracing::debug!(error = %f, "ignoring an unknown message type");
            }
            Err(f) => return tracing::warn!(error = %f, "bad message from the server"),
        };
        self.server.answer_by = None;
        match self.server.ws {
            Ws::Handshake => self.handshake(msg),
            Ws::Open => self.on_server(msg),
            _ => {}
        }
    }

    /// A binary frame from the server: the relay's.
    pub(crate) fn ws_binary(&mut self, now: Instant, frame: &[u8]) {
        self.advance(now);
        if self.server.ws != Ws::Open {
            return;
        }
        self.server.answer_by = None;
        match RelayFrame::decode(frame) {
            Ok(f) if f.channel == RELAY_CHANNEL => self.on_relay(f.peer, f.payload),
            Ok(f) => tracing::debug!(from = %f.peer, channel = f.channel, "relay frame on an unknown channel dropped"),
            Err(e) => tracing::debug!(error = %e, "bad relay frame from the server"),
        }
    }

    /// Whether the first connection is up (`start` waits for it).
    pub(crate) fn poll_start(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        match &self.server.started {
            Some(Ok(())) => Poll::Ready(Ok(())),
            Some(Err(e)) => Poll::Ready(Err(e.clone())),
            None => {
                self.server.start_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn handshake(&mut self, msg: ServerMessage) {
        match msg {
            ServerMessage::Challenge { nonce, .. } => {
                let resume_token = self.server.welcome.as_ref().map(|w| w.resume_token.clone());
                let server = self.server.url.as_deref().and_then(switchboard_proto::server_name).unwrap_or_default();
                let hello = ClientMessage::Hello(Hello {
                    id: None,
                    v: PROTOCOL_VERSION,
                    public_key: self.identity.public_key_b64(),
                    signature: self.identity.sign_challenge(&nonce, &server),
                    server,
                    resume_token,
                    auth_token: self.server.auth_token.clone(),
                });
                self.server.send(&mut self.out, &hello);
            }
            ServerMessage::Welcome(welcome) => {
                self.server.handshake_time = self.now.saturating_duration_since(self.server.opening_since);
                self.server.ws = Ws::Open;
                self.server.backoff = Backoff::new(self.cfg.reconnect_attempts);
                let first = self.server.welcome.is_none();
                self.server.refresh_at = refresh_at(self.now, &welcome.ice_servers);
                if !first {
                    // The first ones the driver reads with `welcome_ice_servers` before `start` returns.
                    self.out.push_back(NodeOutput::IceServers { servers: welcome.ice_servers.clone(), renew: false });
                }
                self.server.welcome = Some(*welcome);
                if first {
                    self.server.set_started(Ok(()));
                    // Trusted peers from the store.
                    self.rewatch();
                } else {
                    self.restored();
                }
            }
            ServerMessage::Error { code, message, .. } => {
                let refused = ConnectError::Refused { code, message: message.clone() };
                if self.server.started.is_none() {
                    self.server.set_started(Err(refused));
                    self.server.ws = Ws::Closed;
                    self.closed = true;
                    self.out.push_back(NodeOutput::Disconnect);
                } else {
                    // As any failed attempt: try again later.
                    tracing::debug!(?code, %message, "reconnection refused");
                    self.out.push_back(NodeOutput::Disconnect);
                    self.server.lost_reason = format!("server refused the session ({code:?}): {message}");
                    self.schedule_reconnect(false);
                }
            }
            other => tracing::debug!(?other, "unexpected message during the handshake"),
        }
    }

    /// A message on the open session.
    fn on_server(&mut self, msg: ServerMessage) {
        let re = match &msg {
            ServerMessage::Error { re: Some(re), .. } => Some(*re),
            other => other.answers(),
        };
        if let Some(asked) = re.and_then(|id| self.server.asked.remove(&id)) {
            return self.on_answer(asked, msg);
        }
        match msg {
            // A member awaited after a server restart is back: nothing to report.
            ServerMessage::PeerJoined { room, peer } if self.server.awaited.remove(&(room, peer.peer_id)).is_some() => {
            }
            ServerMessage::PeerJoined { room, peer } => self.peer_joined(room, peer.peer_id, peer.meta),
            ServerMessage::PeerLeft { room, peer_id } => self.peer_left(room, peer_id),
            ServerMessage::Signal { from, conn, data } => match data.parse() {
                Ok(signal) => self.on_signal(from, conn, signal),
                Err(e) => tracing::debug!(%from, error = %e, "ignoring a signal we cannot read"),
            },
            ServerMessage::Expired { to, conn } => tracing::debug!(%to, %conn, "signal expired undelivered"),
            ServerMessage::Error { code, message, .. } => {
                tracing::debug!(?code, %message, "the server reports an error");
            }
            ServerMessage::Presence { peer_id, online } if self.server.watched.contains(&peer_id) => {
                self.on_presence(peer_id, online);
            }
            ServerMessage::Mail { mail_id, from, body, sent_at } => {
                // Delivered again on each connection until acknowledged: reported once.
                if self.server.seen_mail.contains(&mail_id) {
                    return;
                }
                if self.server.seen_mail.len() >= SEEN_MAIL {
                    self.server.seen_mail.pop_front();
                }
                self.server.seen_mail.push_back(mail_id);
                self.emit(Event::Mail(Mail { id: mail_id, from, body, sent_at }));
            }
            ServerMessage::HostChanged { room, host } if self.server.joined.contains_key(&room) => {
                self.emit(Event::HostChanged { room, host });
            }
            _ => {}
        }
    }

    fn on_answer(&mut self, asked: Asked, msg: ServerMessage) {
        let refused = |code: ErrorCode, message: String| RoomError::Request(RequestError::Refused { code, message });
        match (asked, msg) {
            (Asked::App(call) | Asked::Join(call, ..), ServerMessage::Error { code, message, .. }) => {
                self.server.finish_call(call, Err(refused(code, message)));
            }
            (Asked::Join(call, room, password, meta), ServerMessage::Joined(joined)) if joined.room == room => {
                self.server.joined.insert(room, (password, meta));
                self.on_joined(&joined);
                self.server.finish_call(call, Ok(Answer::Joined(joined)));
            }
            (Asked::App(call), ServerMessage::RoomCreated { room, .. }) => {
                self.server.finish_call(call, Ok(Answer::Room(room)));
            }
            (Asked::App(call), ServerMessage::Ok { .. }) => self.server.finish_call(call, Ok(Answer::Done)),
            (Asked::App(call), ServerMessage::MailAccepted { mail_id, .. }) => {
                self.server.finish_call(call, Ok(Answer::MailAccepted(mail_id)));
            }
            (Asked::Rewatch, ServerMessage::Error { code, message, .. }) => {
                tracing::warn!(?code, %message, "the server refused to watch peers again");
            }
            (Asked::Rewatch, _) => {}
            (Asked::App(call) | Asked::Join(call, ..), other) => {
                let e = RoomError::Request(RequestError::Unexpected(format!("{other:?}")));
                self.server.finish_call(call, Err(e));
            }
            (Asked::Rejoin(_), ServerMessage::Joined(view)) => {
                self.reconcile(&view, true);
                self.rejoined();
            }
            (Asked::Rejoin(room), other) => {
                let reason = match other {
                    ServerMessage::Error { code, message, .. } => format!("server refused ({code:?}): {message}"),
                    other => format!("unexpected answer: {other:?}"),
                };
                self.room_lost(room, reason);
                self.rejoined();
            }
            (Asked::IceServers, ServerMessage::IceServers { ice_servers, .. }) => {
                tracing::debug!(servers = ice_servers.len(), "ICE servers refreshed");
                self.server.refresh_at = refresh_at(self.now, &ice_servers);
                self.out.push_back(NodeOutput::IceServers { servers: ice_servers, renew: true });
            }
            (Asked::IceServers, other) => {
                tracing::warn!(?other, "cannot refresh ICE servers; retrying in 30 s");
                self.server.refresh_at = Some(self.now + REFRESH_RETRY);
            }
        }
    }

    /// The driver resolved fresh ICE servers: relayed links move to them.
    pub(crate) fn renew_links(&mut self, now: Instant) {
        self.advance(now);
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for peer in peers {
            if let Some(e) = self.links.get_mut(&peer) {
                e.core.renew(now);
            }
            self.drain_link(peer);
        }
    }

    // ----- calls -----

    fn new_call(&mut self) -> Call {
        let call = Call(self.server.next_call);
        self.server.next_call += 1;
        self.server.calls.insert(call, CallSlot { answer: None, waker: None });
        call
    }

    /// Creates a room on the server.
    pub(crate) fn create_room(
        &mut self,
        now: Instant,
        password: Option<String>,
        max_peers: Option<u32>,
    ) -> Result<Call, RoomError> {
        self.advance(now);
        self.server.usable()?;
        let call = self.new_call();
        let msg = ClientMessage::CreateRoom(CreateRoom { id: None, password, max_peers });
        self.server.request(&mut self.out, msg, Asked::App(call));
        Ok(call)
    }

    /// Joins a room; links to its peers open once the server answers.
    pub(crate) fn join(
        &mut self,
        now: Instant,
        room: RoomCode,
        password: Option<String>,
        meta: Option<Value>,
    ) -> Result<Call, RoomError> {
        self.advance(now);
        self.server.usable()?;
        let call = self.new_call();
        let msg = ClientMessage::Join(Join {
            id: None,
            room,
            password: password.clone(),
            meta: meta.clone(),
            recreate: false,
        });
        self.server.request(&mut self.out, msg, Asked::Join(call, room, password, meta));
        Ok(call)
    }

    /// Leaves a room.
    pub(crate) fn leave(&mut self, now: Instant, room: RoomCode) -> Result<Call, RoomError> {
        self.advance(now);
        self.server.usable()?;
        let call = self.new_call();
        self.server.joined.remove(&room);
        // Links to peers shared with no other room close at once.
        self.room_gone(room);
        self.server.request(&mut self.out, ClientMessage::Leave(Leave { id: None, room }), Asked::App(call));
        Ok(call)
    }

    /// Sends `watch` for every peer watched (a new session watches no one).
    fn rewatch(&mut self) {
        let watched: Vec<PeerId> = self.server.watched.iter().copied().collect();
        for peers in watched.chunks(switchboard_proto::MAX_WATCH_PEERS) {
            let msg = ClientMessage::Watch(Watch { id: None, peers: peers.to_vec() });
            self.server.request(&mut self.out, msg, Asked::Rewatch);
        }
    }

    /// Watches `peer` (a trusted one), now if the server is there, else
    /// once it is.
    pub(super) fn watch_now(&mut self, peer: PeerId) {
        if self.server.watched.insert(peer) && self.server.usable().is_ok() {
            let msg = ClientMessage::Watch(Watch { id: None, peers: vec![peer] });
            self.server.request(&mut self.out, msg, Asked::Rewatch);
        }
    }

    /// Follows the presence of `peers` ([`Event::Presence`]).
    pub(crate) fn watch(&mut self, now: Instant, peers: Vec<PeerId>) -> Result<Call, RoomError> {
        self.advance(now);
        self.server.usable()?;
        let call = self.new_call();
        self.server.watched.extend(peers.iter().copied());
        self.server.request(&mut self.out, ClientMessage::Watch(Watch { id: None, peers }), Asked::App(call));
        Ok(call)
    }

    /// Stops following the presence of `peers`.
    pub(crate) fn unwatch(&mut self, now: Instant, peers: Vec<PeerId>) -> Result<Call, RoomError> {
        self.advance(now);
        self.server.usable()?;
        let call = self.new_call();
        for p in &peers {
            self.server.watched.remove(p);
        }
        self.server.request(&mut self.out, ClientMessage::Unwatch(Watch { id: None, peers }), Asked::App(call));
        Ok(call)
    }

    /// Stores mail for `to` on the server.
    pub(crate) fn mail(&mut self, now: Instant, to: PeerId, body: Value) -> Result<Call, RoomError> {
        self.advance(now);
        self.server.usable()?;
        let call = self.new_call();
        self.server.request(&mut self.out, ClientMessage::Mail(MailRequest { id: None, to, body }), Asked::App(call));
        Ok(call)
    }

    /// Acknowledges mail: the server deletes it.
    pub(crate) fn ack_mail(&mut self, now: Instant, mail_ids: Vec<u64>) -> Result<Call, RoomError> {
        self.advance(now);
        self.server.usable()?;
        let call = self.new_call();
        self.server.request(&mut self.out, ClientMessage::AckMail(AckMail { id: None, mail_ids }), Asked::App(call));
        Ok(call)
    }

    /// The answer to `call`, once there is one.
    pub(crate) fn poll_call(&mut self, cx: &mut Context<'_>, call: Call) -> Poll<Result<Answer, RoomError>> {
        let Some(slot) = self.server.calls.get_mut(&call) else {
            return Poll::Ready(Err(RoomError::Request(RequestError::Transport("node closed".into()))));
        };
        match slot.answer.take() {
            Some(answer) => {
                self.server.calls.remove(&call);
                Poll::Ready(answer)
            }
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// The application no longer waits for `call`.
    pub(crate) fn forget_call(&mut self, call: Call) {
        self.server.calls.remove(&call);
    }

    /// A signal for `to` through the server; kept while the server is away.
    pub(super) fn server_signal(&mut self, to: PeerId, conn: ConnId, data: SignalData) {
        let msg = ClientMessage::Signal(SignalRequest { id: None, to, conn, data: data.into() });
        match self.server.ws {
            Ws::Open => self.server.send(&mut self.out, &msg),
            Ws::Opening | Ws::Handshake | Ws::Away(_) => {
                if self.server.deferred.len() >= DEFERRED {
                    self.server.deferred.pop_front();
                }
                self.server.deferred.push_back(msg);
            }
            Ws::None | Ws::Closed => {}
        }
    }

    // ----- losing and finding the server -----

    /// The STUN/TURN servers of the first `welcome`.
    pub(crate) fn welcome_ice_servers(&self) -> Vec<switchboard_proto::IceServer> {
        self.server.welcome.as_ref().map(|w| w.ice_servers.clone()).unwrap_or_default()
    }

    /// The machine's addresses changed: the signaling connection may have
    /// gone with an old one.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn network_changed(&mut self, now: Instant) {
        self.advance(now);
        self.network_back();
    }

    /// A link heard its peer again along a lost path, or the machine's
    /// addresses changed: the connection may be stale.
    pub(super) fn network_back(&mut self) {
        match self.server.ws {
            Ws::Away(_) => {
                self.server.ws = Ws::Away(self.now);
            }
            Ws::Open if self.server.answer_by.is_none() => {
                let ping = ClientMessage::Ping(Ping { id: None });
                self.server.send(&mut self.out, &ping);
                // Connecting took about three round trips: a healthy
                // connection answers a ping well within that.
                self.server.answer_by = Some(self.now + STALE_AFTER.max(self.server.handshake_time));
            }
            _ => {}
        }
    }

    /// The connection broke: links keep working; the node connects again
    /// after a jittered wait (`now`: at once).
    fn connection_lost(&mut self, reason: String, now: bool) {
        tracing::info!(%reason, "signaling connection lost; reconnecting");
        self.server.answer_by = None;
        self.server.fail_calls("signaling connection lost; reconnecting");
        self.server.asked.clear();
        self.server.rejoining = 0;
        self.emit(Event::SignalingLost { reason: reason.clone() });
        self.server.lost_reason = reason;
        self.schedule_reconnect(now);
    }

    fn schedule_reconnect(&mut self, now: bool) {
        match self.server.backoff.next_wait(&mut self.rng) {
            Some(wait) => {
                let wait = if now { Duration::ZERO } else { wait };
                self.server.ws = Ws::Away(self.now + wait);
            }
            None => {
                let why = format!(
                    "gave up after {} reconnection attempts: {}",
                    self.server.backoff.attempts(),
                    self.server.lost_reason
                );
                self.signaling_closed(why);
            }
        }
    }

    /// The server is gone for good; links keep working.
    fn signaling_closed(&mut self, reason: String) {
        self.server.ws = Ws::Closed;
        self.server.answer_by = None;
        self.server.refresh_at = None;
        self.server.fail_calls("signaling connection closed");
        self.server.asked.clear();
        self.server.deferred.clear();
        self.emit(Event::SignalingClosed { reason });
    }

    /// The server's timers: the next connection attempt, the credential
    /// refresh, the stale check, members awaited after a restart.
    pub(super) fn server_timeout(&mut self) {
        let now = self.now;
        if let Ws::Away(at) = self.server.ws
            && now >= at
            && let Some(url) = self.server.url.clone()
        {
            self.server.ws = Ws::Opening;
            self.server.opening_since = now;
            self.out.push_back(NodeOutput::Connect { url });
        }
        if self.server.answer_by.is_some_and(|at| now >= at) {
            tracing::info!("the signaling connection is stale; replacing it");
            self.out.push_back(NodeOutput::Disconnect);
            self.connection_lost("no answer from the server after the network came back".into(), true);
        }
        if self.server.ws == Ws::Open && self.server.refresh_at.is_some_and(|at| now >= at) {
            self.server.refresh_at = None;
            self.server.request(&mut self.out, ClientMessage::IceServers(Ping { id: None }), Asked::IceServers);
        }
        let gone: Vec<(RoomCode, PeerId)> =
            self.server.awaited.iter().filter(|(_, until)| **until <= now).map(|(k, _)| *k).collect();
        for (room, peer) in gone {
            self.server.awaited.remove(&(room, peer));
            self.peer_left(room, peer);
        }
    }

    /// Back on the server: rooms as the server sees them (resumed), or
    /// joined again; then what waited.
    fn restored(&mut self) {
        let Some(welcome) = self.server.welcome.clone() else { return };
        tracing::info!(resumed = welcome.resumed, "signaling connection restored");
        if welcome.resumed {
            for view in &welcome.rooms {
                self.reconcile(view, false);
            }
            let held: Vec<RoomCode> = welcome.rooms.iter().map(|r| r.room).collect();
            let lost: Vec<RoomCode> = self.server.joined.keys().filter(|r| !held.contains(r)).copied().collect();
            for room in lost {
                self.room_lost(room, "the server no longer has this node in the room".into());
            }
            self.restored_done(true);
        } else {
            // A new session watches no one: watch again.
            self.rewatch();
            let rooms: Vec<(RoomCode, JoinedWith)> = self.server.joined.iter().map(|(r, w)| (*r, w.clone())).collect();
            self.server.rejoining = rooms.len();
            for (room, (password, meta)) in rooms {
                let msg = ClientMessage::Join(Join { id: None, room, password, meta, recreate: true });
                self.server.request(&mut self.out, msg, Asked::Rejoin(room));
            }
            if self.server.rejoining == 0 {
                self.restored_done(false);
            }
        }
    }

    /// One room was joined again (or lost).
    fn rejoined(&mut self) {
        self.server.rejoining = self.server.rejoining.saturating_sub(1);
        if self.server.rejoining == 0 {
            self.restored_done(false);
        }
    }

    /// The session is back: the application hears of it, links that wait
    /// for a session try again, and signals kept meanwhile go.
    fn restored_done(&mut self, resumed: bool) {
        self.emit(Event::SignalingRestored { resumed });
        let now = self.now;
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for peer in peers {
            if let Some(e) = self.links.get_mut(&peer) {
                e.core.signaling_back(now);
            }
            self.drain_link(peer);
        }
        for msg in std::mem::take(&mut self.server.deferred) {
            self.server.send(&mut self.out, &msg);
        }
    }

    /// A room could not be kept across a reconnection.
    fn room_lost(&mut self, room: RoomCode, reason: String) {
        self.server.joined.remove(&room);
        self.emit(Event::RoomLost { room, reason });
        self.room_gone(room);
    }

    /// Brings this node's view of a room in line with the server's:
    /// members that came are reported joined, members that went, left.
    /// Members seen before are not reported again.
    ///
    /// After a server restart (`rejoined`), members missing from the view may
    /// be on their way back: those this node still has a link to stay
    /// members, unreported, for [`REJOIN_GRACE`].
    fn reconcile(&mut self, view: &JoinedRoom, rejoined: bool) {
        let me = self.id;
        let current: HashMap<PeerId, Option<Value>> =
            view.peers.iter().filter(|p| p.peer_id != me).map(|p| (p.peer_id, p.meta.clone())).collect();
        let before = self.rooms.get(&view.room).cloned().unwrap_or_default();
        let waiting: Vec<PeerId> = before
            .iter()
            .filter(|p| rejoined && !current.contains_key(p) && self.links.contains_key(p))
            .copied()
            .collect();
        let members = self.rooms.entry(view.room).or_default();
        *members = current.keys().copied().chain(waiting.iter().copied()).collect();
        let until = self.now + REJOIN_GRACE;
        for &peer in &waiting {
            self.server.awaited.insert((view.room, peer), until);
        }
        for (peer, meta) in current {
            if !before.contains(&peer) {
                self.emit(Event::PeerJoined { room: view.room, peer, meta });
                if self.cfg.topology == super::Topology::Mesh {
                    self.open_if_offerer(peer);
                    self.prepare_answerer(peer);
                }
            }
        }
        let left: Vec<PeerId> = before
            .into_iter()
            .filter(|p| !view.peers.iter().any(|v| v.peer_id == *p) && !waiting.contains(p))
            .collect();
        for peer in left {
            self.emit(Event::PeerLeft { room: view.room, peer });
            self.drop_if_unshared(peer);
        }
    }
}
