//! The node core on a virtual clock: several cores, an in-memory stand-in
//! for the signaling server (rooms, signals, welcome and resume) and
//! scripted WebRTC sides. What both backends share is decided here: who
//! offers, the request topology, which peer may answer a request, request
//! deadlines, losing and finding the server.

use std::collections::HashMap;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use switchboard_proto::{
    ClientMessage, JoinedRoom, Limits, PeerId, PeerInfo, RoomCode, ServerMessage, SignalData, SignalPayload, Welcome,
};
use web_time::Instant;

use super::{Answer, NodeCore, NodeOutput, Platform};
use crate::error::{RequestFailed, RoomError};
use crate::event::Event;
use crate::framing::{MessageKind, OutMessage};
use crate::identity::Identity;
use crate::link::scripted::{Net, Scripted};
use crate::link::{LinkConfig, LinkState};
use crate::node::config::{NodeConfig, Topology};

struct Scripting(Net);

impl Platform for Scripting {
    type Rtc = Scripted;

    fn new_rtc(&mut self, _now: Instant, _link: u64, _cfg: &LinkConfig) -> Result<Scripted, String> {
        Ok(self.0.rtc())
    }
}

type Core = NodeCore<Scripting>;

/// A node, and whether its WebSocket is up.
struct Peer {
    core: Core,
    online: bool,
    events: Vec<Event>,
    /// When each `Connect` came out.
    connects: Vec<Instant>,
}

/// The nodes and the stand-in server: rooms and sessions, 5 ms each way.
struct World {
    now: Instant,
    peers: Vec<Peer>,
    rooms: HashMap<RoomCode, Vec<usize>>,
    /// Frames on their way: (when, to node, frame); `None` from the server closes.
    wire: Vec<(Instant, usize, ServerMessage)>,
    /// The server answers (false: it is down).
    server_up: bool,
    /// Sessions the server still holds after a disconnect (resume).
    held: HashMap<usize, Vec<RoomCode>>,
    next_room: u32,
    /// The server swaps the DTLS fingerprints of the descriptions it carries.
    tamper: bool,
    /// The links' scripted network.
    net: Net,
}

const HOP: Duration = Duration::from_millis(5);

fn waker() -> &'static Waker {
    Waker::noop()
}

impl World {
    fn new(n: usize, cfg: impl Fn() -> NodeConfig) -> World {
        let now = Instant::now();
        let net = Net::default();
        let mut peers: Vec<Peer> = (0..n)
            .map(|i| {
                let cfg = NodeConfig { signaling: Some("ws://server/ws".into()), ..cfg() };
                let identity = Identity::from_secret_bytes([i as u8 + 1; 32]);
                let mut cfg = cfg;
                cfg.validate(false).expect("valid");
                let core = NodeCore::new(now, cfg, identity, Scripting(net.clone()), i as u64);
                Peer { core, online: false, events: Vec::new(), connects: Vec::new() }
            })
            .collect();
        // Sorted by id, so that node 0 has the lowest (and offers).
        peers.sort_by_key(|p| p.core.id());
        let mut w = World {
            now,
            peers,
            rooms: HashMap::new(),
            wire: Vec::new(),
            server_up: true,
            held: HashMap::new(),
            next_room: 0,
            tamper: false,
            net,
        };
        let welcomed = |w: &mut World| {
            let mut cx = Context::from_waker(waker());
            w.peers.iter_mut().all(|p| matches!(p.core.poll_start(&mut cx), Poll::Ready(Ok(()))))
        };
        for _ in 0..1000 {
            if welcomed(&mut w) {
                return w;
            }
            w.step(Duration::from_millis(20));
        }
        panic!("every node welcomed");
    }

    fn id(&self, i: usize) -> PeerId {
        self.peers[i].core.id()
    }

    fn to(&mut self, i: usize, msg: ServerMessage) {
        self.wire.push((self.now + HOP, i, msg));
    }

    /// What node `i` sent the server.
    fn serve(&mut self, i: usize, msg: ClientMessage) {
        let me = self.id(i);
        match msg {
            ClientMessage::Hello(hello) => {
                let resumed = hello.resume_token.is_some() && self.held.contains_key(&i);
                let rooms: Vec<RoomCode> = self.held.remove(&i).unwrap_or_default();
                let views = if resumed { rooms.iter().map(|r| self.view(*r, i)).collect() } else { Vec::new() };
                if !resumed {
                    // The server lost the session: its rooms lost the member.
                    let member: Vec<RoomCode> =
                        self.rooms.iter().filter(|(_, m)| m.contains(&i)).map(|(r, _)| *r).collect();
                    for r in member {
                        self.leave(r, i);
                    }
                }
                let welcome = Welcome {
                    re: None,
                    v: switchboard_proto::PROTOCOL_VERSION,
                    peer_id: me,
                    resume_token: format!("token-{i}"),
                    resumed,
                    rooms: views,
                    ice_servers: Vec::new(),
                    limits: Limits::default(),
                };
                self.to(i, ServerMessage::Welcome(Box::new(welcome)));
            }
            ClientMessage::CreateRoom(c) => {
                self.next_room += 1;
                let room: RoomCode = format!("ROOM{:02}", self.next_room).parse().expect("code");
                self.rooms.insert(room, Vec::new());
                self.to(i, ServerMessage::RoomCreated { re: c.id, room });
            }
            ClientMessage::Join(j) => {
                if j.recreate && !self.rooms.contains_key(&j.room) {
                    self.rooms.insert(j.room, Vec::new());
                }
                let Some(members) = self.rooms.get(&j.room).cloned() else {
                    let e = ServerMessage::Error {
                        re: j.id,
                        code: switchboard_proto::ErrorCode::NotFound,
                        message: "no such room".into(),
                    };
                    return self.to(i, e);
                };
                for &m in &members {
                    let peer = PeerInfo { peer_id: me, meta: j.meta.clone() };
                    self.to(m, ServerMessage::PeerJoined { room: j.room, peer });
                }
                self.rooms.entry(j.room).or_default().push(i);
                let mut view = self.view(j.room, i);
                view.re = j.id;
                self.to(i, ServerMessage::Joined(view));
            }
            ClientMessage::Leave(l) => {
                self.leave(l.room, i);
                self.to(i, ServerMessage::Ok { re: l.id });
            }
            ClientMessage::Signal(s) => {
                if let Some(to) = (0..self.peers.len()).find(|&k| self.id(k) == s.to) {
                    let mut signal = s.data.parse().expect("signal");
                    if let (SignalData::Offer { sdp, .. } | SignalData::Answer { sdp, .. }, true) =
                        (&mut signal, self.tamper)
                    {
                        *sdp = sdp.replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 EE");
                    }
                    let data = SignalPayload::new(&signal);
                    self.to(to, ServerMessage::Signal { from: me, conn: s.conn, data });
                }
            }
            ClientMessage::Ping(p) => self.to(i, ServerMessage::Pong { re: p.id }),
            _ => {}
        }
    }

    fn view(&self, room: RoomCode, i: usize) -> JoinedRoom {
        let members = self.rooms.get(&room).cloned().unwrap_or_default();
        let peers =
            members.iter().filter(|&&m| m != i).map(|&m| PeerInfo { peer_id: self.id(m), meta: None }).collect();
        JoinedRoom { re: None, room, peers, host: self.id(members.first().copied().unwrap_or(i)) }
    }

    fn leave(&mut self, room: RoomCode, i: usize) {
        let me = self.id(i);
        if let Some(members) = self.rooms.get_mut(&room) {
            members.retain(|&m| m != i);
            for m in members.clone() {
                self.to(m, ServerMessage::PeerLeft { room, peer_id: me });
            }
        }
    }

    /// Node `i`'s connection drops; the server keeps its session.
    fn drop_connection(&mut self, i: usize) {
        let rooms: Vec<RoomCode> = self.rooms.iter().filter(|(_, m)| m.contains(&i)).map(|(r, _)| *r).collect();
        self.held.insert(i, rooms);
        self.peers[i].online = false;
        self.wire.retain(|(_, to, _)| *to != i);
        let now = self.now;
        self.peers[i].core.ws_closed(now, 1006, "connection reset");
    }

    /// One step: outputs out, frames in, time on to the next thing (at most `step`).
    fn step(&mut self, step: Duration) {
        for i in 0..self.peers.len() {
            let outs: Vec<NodeOutput> = std::iter::from_fn(|| self.peers[i].core.poll_output()).collect();
            for out in outs {
                match out {
                    NodeOutput::Connect { .. } => {
                        self.peers[i].connects.push(self.now);
                        if self.server_up {
                            let now = self.now;
                            self.peers[i].core.ws_opened(now);
                            self.peers[i].online = true;
                            self.to(i, ServerMessage::Challenge { v: 1, nonce: "nonce".into() });
                        } else {
                            let now = self.now;
                            self.peers[i].core.ws_closed(now, 1006, "connection refused");
                        }
                    }
                    NodeOutput::Text(text) if self.peers[i].online => {
                        let msg = ClientMessage::decode(&text, &Limits::default()).expect("a client message");
                        self.serve(i, msg);
                    }
                    NodeOutput::Disconnect => self.peers[i].online = false,
                    _ => {}
                }
            }
            let mut cx = Context::from_waker(waker());
            while let Poll::Ready(Some(e)) = self.peers[i].core.poll_event(self.now, &mut cx) {
                self.peers[i].events.push(e);
            }
        }
        let next = self
            .peers
            .iter()
            .filter_map(|p| p.core.poll_timeout())
            .chain(self.wire.iter().map(|w| w.0))
            .min()
            .unwrap_or(self.now + step);
        self.now = next.clamp(self.now + Duration::from_micros(100), self.now + step);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|w| w.0 <= now);
        self.wire = rest;
        for (_, to, msg) in due {
            if self.peers[to].online {
                self.peers[to].core.ws_text(now, &msg.encode());
            }
        }
        for p in &mut self.peers {
            p.core.handle_timeout(now);
        }
    }

    fn run(&mut self, limit: Duration, mut done: impl FnMut(&World) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step(Duration::from_millis(20));
        }
        done(self)
    }

    /// Runs until call `call` of node `i` is answered.
    fn answer(&mut self, i: usize, call: super::Call) -> Result<Answer, RoomError> {
        let mut cx = Context::from_waker(waker());
        for _ in 0..10_000 {
            if let Poll::Ready(a) = self.peers[i].core.poll_call(&mut cx, call) {
                return a;
            }
            self.step(Duration::from_millis(20));
        }
        panic!("call never answered");
    }

    fn create_and_join(&mut self, nodes: &[usize]) -> RoomCode {
        let now = self.now;
        let call = self.peers[nodes[0]].core.create_room(now, None, None).expect("server up");
        let Ok(Answer::Room(room)) = self.answer(nodes[0], call) else { panic!("room created") };
        for &i in nodes {
            let now = self.now;
            let call = self.peers[i].core.join(now, room, None, None).expect("server up");
            assert!(matches!(self.answer(i, call), Ok(Answer::Joined(_))));
        }
        room
    }

    fn connected(&self, i: usize, peer: PeerId) -> bool {
        self.peers[i].events.iter().any(|e| matches!(e, Event::PeerConnected { peer: p, .. } if *p == peer))
    }
}

fn config() -> NodeConfig {
    NodeConfig::default()
}

#[test]
fn two_nodes_in_a_room_link_and_the_lower_id_offers() {
    let mut w = World::new(2, config);
    w.create_and_join(&[1, 0]);
    let (a, b) = (w.id(0), w.id(1));
    assert!(w.run(Duration::from_secs(2), |w| w.connected(0, b) && w.connected(1, a)));
    let offered = |w: &mut World, i: usize| {
        let link = w.peers[i].core.links.get(&if i == 0 { b } else { a }).expect("link");
        link.core.role()
    };
    assert_eq!(offered(&mut w, 0), crate::link::Role::Offerer);
    assert_eq!(offered(&mut w, 1), crate::link::Role::Answerer);
    assert_eq!(w.peers[0].core.link_state(b), Some(LinkState::Connected));
}

#[test]
fn a_response_from_a_peer_other_than_the_one_asked_is_refused() {
    let mut w = World::new(3, config);
    w.create_and_join(&[0, 1, 2]);
    let (asker, asked, stranger) = (w.id(0), w.id(1), w.id(2));
    assert!(w.run(Duration::from_secs(3), |w| w.connected(0, asked) && w.connected(0, stranger)));
    let id = w.peers[0].core.new_request(asked, Duration::from_secs(5));
    let now = w.now;
    let mut msg =
        Some(OutMessage { kind: MessageKind::Request(id), room: None, data: Bytes::from_static(b"q"), text: false });
    assert!(w.peers[0].core.poll_send(now, None, asked, "reliable", &mut msg).is_ready());
    // The stranger answers first, with the same id.
    let mut forged = Some(OutMessage {
        kind: MessageKind::Response(id),
        room: None,
        data: Bytes::from_static(b"forged"),
        text: false,
    });
    assert!(w.peers[2].core.poll_send(now, None, asker, "reliable", &mut forged).is_ready());
    assert!(w.run(Duration::from_millis(500), |w| w.peers[1].events.iter().any(|e| matches!(e, Event::Request(_)))));
    let mut cx = Context::from_waker(waker());
    assert!(w.peers[0].core.poll_answer(w.now, &mut cx, id).is_pending(), "the stranger's answer was taken");
    let mut real = Some(OutMessage {
        kind: MessageKind::Response(id),
        room: None,
        data: Bytes::from_static(b"real"),
        text: false,
    });
    let now = w.now;
    assert!(w.peers[1].core.poll_send(now, None, asker, "reliable", &mut real).is_ready());
    let mut got = None;
    for _ in 0..100 {
        let mut cx = Context::from_waker(waker());
        if let Poll::Ready(a) = w.peers[0].core.poll_answer(w.now, &mut cx, id) {
            got = Some(a);
            break;
        }
        w.step(Duration::from_millis(20));
    }
    assert_eq!(got, Some(Ok(Bytes::from_static(b"real"))));
}

#[test]
fn a_request_without_an_answer_times_out_on_the_clock() {
    let mut w = World::new(2, config);
    w.create_and_join(&[0, 1]);
    let b = w.id(1);
    assert!(w.run(Duration::from_secs(2), |w| w.connected(0, b)));
    let start = w.now;
    let id = w.peers[0].core.new_request(b, Duration::from_millis(300));
    let mut cx = Context::from_waker(waker());
    let mut result = None;
    for _ in 0..1000 {
        if let Poll::Ready(r) = w.peers[0].core.poll_answer(w.now, &mut cx, id) {
            result = Some(r);
            break;
        }
        w.step(Duration::from_millis(20));
    }
    assert_eq!(result, Some(Err(RequestFailed::Timeout(Duration::from_millis(300)))));
    assert!(w.now - start >= Duration::from_millis(300) && w.now - start < Duration::from_millis(400));
    assert_eq!(w.peers[0].core.pending_requests(), 0);
}

#[test]
fn links_open_only_on_an_accepted_request_and_a_rejection_is_reported() {
    let mut w = World::new(3, || NodeConfig { topology: Topology::OnRequest, ..config() });
    w.create_and_join(&[0, 1, 2]);
    let (a, b, c) = (w.id(0), w.id(1), w.id(2));
    w.run(Duration::from_secs(1), |_| false);
    assert!(w.peers[0].core.peers().is_empty(), "no link without a request");
    let now = w.now;
    w.peers[0].core.request_link(now, b, None).expect("asked");
    w.peers[0].core.request_link(now, c, None).expect("asked");
    assert!(w.run(Duration::from_secs(1), |w| {
        w.peers[1].events.iter().any(|e| matches!(e, Event::LinkRequested { .. }))
            && w.peers[2].events.iter().any(|e| matches!(e, Event::LinkRequested { .. }))
    }));
    let now = w.now;
    w.peers[1].core.accept(now, a).expect("accept");
    w.peers[2].core.reject(now, a, Some("busy".into())).expect("reject");
    assert!(w.run(Duration::from_secs(2), |w| w.connected(0, b) && w.connected(1, a)));
    assert!(
        w.peers[0].events.iter().any(
            |e| matches!(e, Event::LinkRejected { peer, reason } if *peer == c && reason.as_deref() == Some("busy"))
        )
    );
    assert!(!w.peers[0].core.peers().contains(&c));
}

#[test]
fn a_lost_server_is_found_again_with_backoff_and_the_session_resumes_with_links_kept() {
    let mut w = World::new(2, config);
    let room = w.create_and_join(&[0, 1]);
    let b = w.id(1);
    assert!(w.run(Duration::from_secs(2), |w| w.connected(0, b)));
    w.server_up = false;
    let lost_at = w.now;
    w.drop_connection(0);
    w.step(Duration::from_millis(1));
    assert!(w.peers[0].events.iter().any(|e| matches!(e, Event::SignalingLost { .. })));
    // Room calls fail at once while the server is away; links keep working.
    let now = w.now;
    assert!(matches!(w.peers[0].core.create_room(now, None, None), Err(RoomError::Request(_))));
    w.run(Duration::from_secs(20), |_| false);
    let tries = w.peers[0].connects.clone();
    assert!(tries.len() >= 4, "attempts {tries:?}");
    // Each wait is at most 1 s, 2 s, 4 s, 8 s ... (full jitter).
    let mut last = lost_at;
    for (n, t) in tries.iter().enumerate().skip(1) {
        let ceiling = Duration::from_secs(1 << (n - 1).min(4)).min(Duration::from_secs(30));
        assert!(*t - last <= ceiling + Duration::from_millis(50), "attempt {n} after {:?}", *t - last);
        last = *t;
    }
    assert_eq!(w.peers[0].core.link_state(b), Some(LinkState::Connected), "the link outlives the server");
    w.server_up = true;
    assert!(w.run(Duration::from_secs(40), |w| {
        w.peers[0].events.iter().any(|e| matches!(e, Event::SignalingRestored { resumed: true }))
    }));
    assert_eq!(w.peers[0].core.room_peers(room), [b], "the room as before");
    assert!(!w.peers[1].events.iter().any(|e| matches!(e, Event::PeerLeft { .. })), "nobody saw it leave");
}

#[test]
fn after_a_server_restart_both_join_again_and_keep_their_room_and_link() {
    let mut w = World::new(2, config);
    let room = w.create_and_join(&[0, 1]);
    let (a, b) = (w.id(0), w.id(1));
    assert!(w.run(Duration::from_secs(2), |w| w.connected(0, b)));
    // The server restarts: it forgets every room and session.
    w.drop_connection(0);
    w.drop_connection(1);
    w.held.clear();
    w.rooms.clear();
    let restored = |w: &World, i: usize| {
        w.peers[i].events.iter().any(|e| matches!(e, Event::SignalingRestored { resumed: false }))
    };
    assert!(w.run(Duration::from_secs(60), |w| restored(w, 0) && restored(w, 1)));
    w.run(Duration::from_secs(1), |_| false);
    assert_eq!(w.peers[0].core.room_peers(room), [b]);
    assert_eq!(w.peers[1].core.room_peers(room), [a]);
    assert_eq!(w.peers[0].core.link_state(b), Some(LinkState::Connected), "the link outlives the restart");
    let left = |w: &World, i: usize| w.peers[i].events.iter().any(|e| matches!(e, Event::PeerLeft { .. }));
    assert!(!left(&w, 0) && !left(&w, 1), "nobody was reported gone");
}

#[test]
fn a_complete_description_holds_every_candidate_once_and_ends_them() {
    let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n\
               a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n";
    let host = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".to_owned();
    let relay = "a=candidate:2 1 udp 16777215 198.51.100.7 6000 typ relay raddr 0.0.0.0 rport 0".to_owned();
    let full = super::complete_description(sdp, &[host, relay.clone(), relay]);
    assert_eq!(full.matches("typ host").count(), 1, "{full}");
    assert_eq!(full.matches("typ relay").count(), 1, "{full}");
    assert!(full.ends_with("typ relay raddr 0.0.0.0 rport 0\r\na=end-of-candidates\r\n"), "{full}");
    // A second media section keeps its own lines after the first's candidates.
    let two = format!("{sdp}m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:1\r\n");
    let full = super::complete_description(&two, &[]);
    assert!(full.contains("a=end-of-candidates\r\nm=application"), "{full}");
    assert_eq!(super::complete_description(&full, &[]), full, "completing twice changes nothing");
}

#[test]
fn a_server_that_swaps_fingerprints_gets_no_link_and_both_sides_say_why() {
    use crate::link::DisconnectReason;
    let mut w = World::new(2, config);
    w.tamper = true;
    w.create_and_join(&[0, 1]);
    let reasons = |w: &World, i: usize| -> Vec<DisconnectReason> {
        w.peers[i]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::PeerDisconnected { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    };
    assert!(w.run(Duration::from_secs(5), |w| !reasons(w, 0).is_empty() && !reasons(w, 1).is_empty()));
    let connected = |w: &World, i: usize| w.peers[i].events.iter().any(|e| matches!(e, Event::PeerConnected { .. }));
    assert!(!connected(&w, 0) && !connected(&w, 1), "no link reached PeerConnected");
    // The answering side refused the offer; the offering side was told why.
    assert!(
        matches!(&reasons(&w, 1)[0], DisconnectReason::Unverified(why) if why.contains("does not hold")),
        "{:?}",
        reasons(&w, 1)
    );
    assert!(
        matches!(&reasons(&w, 0)[0], DisconnectReason::ClosedByPeer(Some(why)) if why.contains("not proven")),
        "{:?}",
        reasons(&w, 0)
    );
}

#[test]
fn a_trusted_peer_is_linked_without_a_room_and_asked_again_with_backoff_after_a_failed_link() {
    use crate::trust::Trust;
    let cfg = || NodeConfig { server_relay: None, ..NodeConfig::default() };
    let mut w = World::new(2, cfg);
    let (a, b) = (w.id(0), w.id(1));
    let now = w.now;
    w.peers[0].core.set_trust(now, b, Some(Trust::Trusted));
    w.peers[1].core.set_trust(now, a, Some(Trust::Trusted));
    // No path at first: every link attempt fails.
    w.net.set_cut(true);
    // The server reports each online to the other.
    w.peers[0].core.on_presence(b, true);
    w.peers[1].core.on_presence(a, true);
    let failures = |w: &World| {
        w.peers[0].events.iter().filter(|e| matches!(e, Event::PeerDisconnected { peer, .. } if *peer == b)).count()
    };
    assert!(w.run(Duration::from_secs(60), |w| failures(w) >= 2), "asked again after the first failure");
    assert!(!w.connected(0, b));
    assert!(w.peers[0].core.retries.contains_key(&b) || w.peers[1].core.retries.contains_key(&a));
    w.net.set_cut(false);
    assert!(w.run(Duration::from_secs(90), |w| w.connected(0, b) && w.connected(1, a)), "linked once a path is there");
    assert!(w.peers[0].core.retries.is_empty() && w.peers[1].core.retries.is_empty(), "backoff over");
    assert!(
        !w.peers.iter().any(|p| p.events.iter().any(|e| matches!(e, Event::LinkRequested { .. }))),
        "trusted peers are not asked about"
    );
    // A peer that goes offline is not asked again.
    let now = w.now;
    w.peers[0].core.on_presence(b, false);
    w.peers[0].core.set_trust(now, b, Some(Trust::Blocked));
    assert!(w.run(Duration::from_secs(2), |w| !w.peers[0].core.links.contains_key(&b)), "a blocked peer's link closes");
}
