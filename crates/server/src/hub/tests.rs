//! The hub on a virtual clock: time only moves when a test moves it.

use switchboard_proto::SignalData;

use super::*;

struct Sim {
    hub: Hub,
    now: Instant,
}

fn peer(n: u8) -> PeerId {
    PeerId::from_bytes([n; 16])
}

fn conn(s: &str) -> ConnId {
    s.parse().expect("valid conn id")
}

impl Sim {
    fn new() -> Self {
        Self { hub: Hub::new(HubConfig::default(), [7; 32]), now: Instant::now() }
    }

    fn with(config: HubConfig) -> Self {
        Self { hub: Hub::new(config, [7; 32]), now: Instant::now() }
    }

    fn attach(&mut self, c: ConnKey, p: PeerId) -> Attached {
        self.attach_from(c, p, "192.0.2.1")
    }

    fn attach_from(&mut self, c: ConnKey, p: PeerId, origin: &str) -> Attached {
        self.hub.attach(self.now, c, p, None, Grants::default(), origin)
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        while let Some(t) = self.hub.poll_timeout() {
            if t > self.now {
                break;
            }
            self.hub.handle_timeout(self.now);
        }
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.hub.poll_output()).collect()
    }

    fn sent_to(&mut self, c: ConnKey) -> Vec<ServerMessage> {
        self.outputs()
            .into_iter()
            .filter_map(|o| match o {
                Output::Send(k, m) | Output::Signal { to: k, msg: m, .. } if k == c => Some(m),
                _ => None,
            })
            .collect()
    }

    fn room(&mut self, c: ConnKey) -> RoomCode {
        let now = self.now;
        self.hub.create_room(now, c, None, None).expect("room created")
    }
}

#[test]
fn members_see_joins_leaves_and_host_handover() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    s.attach(2, peer(2));
    s.attach(3, peer(3));
    let code = s.room(1);
    let first = s.hub.join(1, code, None, None).expect("join");
    assert_eq!((first.host, first.peers.len()), (peer(1), 0));
    s.hub.join(2, code, None, Some(serde_json::json!({"name": "b"}))).expect("join");
    let seen = s.sent_to(1);
    assert!(
        matches!(&seen[..], [ServerMessage::PeerJoined { peer: info, .. }] if info.peer_id == peer(2) && info.meta.is_some())
    );
    let third = s.hub.join(3, code, None, None).expect("join");
    assert_eq!(third.peers.iter().map(|p| p.peer_id).collect::<Vec<_>>(), vec![peer(1), peer(2)]);
    s.outputs();
    let now = s.now;
    s.hub.leave(now, 1, code).expect("leave");
    let seen = s.sent_to(2);
    assert!(matches!(seen[0], ServerMessage::PeerLeft { peer_id, .. } if peer_id == peer(1)));
    assert!(matches!(seen[1], ServerMessage::HostChanged { host, .. } if host == peer(2)));
    assert_eq!(s.hub.leave(now, 1, code).map_err(|r| r.code), Err(ErrorCode::NotFound));
}

#[test]
fn joining_twice_is_idempotent_and_unknown_rooms_are_not_found() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    let code = s.room(1);
    s.hub.join(1, code, None, None).expect("join");
    assert!(s.hub.join(1, code, None, None).is_ok());
    assert!(s.outputs().is_empty());
    let missing: RoomCode = "ZZZZZZ".parse().expect("code");
    assert_eq!(s.hub.join(1, missing, None, None).map_err(|r| r.code), Err(ErrorCode::NotFound));
}

#[test]
fn limits_refuse_full_rooms_wrong_passwords_and_too_many_rooms() {
    let mut config = HubConfig::default();
    config.limits.max_rooms_per_peer = 1;
    let mut s = Sim::with(config);
    for n in 1..=3 {
        s.attach(u64::from(n), peer(n));
    }
    let now = s.now;
    let small = s.hub.create_room(now, 1, None, Some(1)).expect("room");
    s.hub.join(1, small, None, None).expect("join");
    assert_eq!(s.hub.join(2, small, None, None).map_err(|r| r.code), Err(ErrorCode::RoomFull));
    let locked = s.hub.create_room(now, 1, Some("HASH".into()), None).expect("room");
    assert_eq!(s.hub.password_hash(locked).as_deref(), Some("HASH"));
    assert_eq!(s.hub.join(2, locked, None, None).map_err(|r| r.code), Err(ErrorCode::NotFound));
    assert_eq!(s.hub.join(2, locked, Some("OTHER"), None).map_err(|r| r.code), Err(ErrorCode::NotFound));
    s.hub.join(2, locked, Some("HASH"), None).expect("join with verified hash");
    let open = s.room(3);
    assert_eq!(s.hub.join(2, open, None, None).map_err(|r| r.code), Err(ErrorCode::LimitExceeded));
    assert_eq!(s.hub.create_room(now, 99, None, None).map_err(|r| r.code), Err(ErrorCode::Unauthorized));
}

#[test]
fn signals_reach_live_peers_wait_for_absent_ones_and_expire() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    s.attach(2, peer(2));
    let now = s.now;
    s.hub.signal(now, 1, peer(2), conn("c1"), SignalData::Accept.into()).expect("signal");
    assert!(matches!(&s.sent_to(2)[..], [ServerMessage::Signal { from, .. }] if *from == peer(1)));
    assert_eq!(
        s.hub.signal(now, 1, peer(1), conn("c1"), SignalData::Accept.into()).map_err(|r| r.code),
        Err(ErrorCode::BadRequest)
    );

    // Peer 3 is absent: the first signal waits and is delivered when it arrives.
    s.hub.signal(now, 1, peer(3), conn("early"), SignalData::Restart.into()).expect("held");
    s.advance(Duration::from_secs(10));
    s.attach(3, peer(3));
    assert!(matches!(&s.sent_to(3)[..], [ServerMessage::Signal { conn, .. }] if conn.as_str() == "early"));

    // Peer 4 never comes: the sender hears `expired` at the TTL, not before.
    let now = s.now;
    s.hub.signal(now, 1, peer(4), conn("late"), SignalData::Restart.into()).expect("held");
    s.advance(Duration::from_millis(29_999));
    assert!(s.sent_to(1).is_empty());
    s.advance(Duration::from_millis(1));
    assert!(
        matches!(&s.sent_to(1)[..], [ServerMessage::Expired { to, conn }] if *to == peer(4) && conn.as_str() == "late")
    );
}

#[test]
fn held_signals_are_bounded_per_recipient() {
    let mut s = Sim::with(HubConfig { max_pending_per_peer: 2, ..HubConfig::default() });
    s.attach(1, peer(1));
    let now = s.now;
    for _ in 0..2 {
        s.hub.signal(now, 1, peer(9), conn("c"), SignalData::Accept.into()).expect("held");
    }
    let third = s.hub.signal(now, 1, peer(9), conn("c"), SignalData::Accept.into());
    assert_eq!(third.map_err(|r| r.code), Err(ErrorCode::LimitExceeded));
}

#[test]
fn a_dropped_peer_that_resumes_in_time_causes_no_flap() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    let token = s.attach(2, peer(2)).resume_token;
    let code = s.room(1);
    s.hub.join(1, code, None, None).expect("join");
    s.hub.join(2, code, None, None).expect("join");
    s.outputs();
    let now = s.now;
    s.hub.detach(now, 2, false);
    s.advance(Duration::from_secs(59));
    let back = s.hub.attach(s.now, 22, peer(2), Some(&token), Grants::default(), "192.0.2.1");
    assert!(back.resumed);
    assert_eq!(back.rooms.len(), 1);
    assert_eq!(back.rooms[0].peers[0].peer_id, peer(1));
    s.advance(Duration::from_secs(120));
    assert!(s.outputs().is_empty(), "the room saw no leave or join");
}

#[test]
fn a_dropped_peer_leaves_its_rooms_when_the_resume_window_lapses() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    let token = s.attach(2, peer(2)).resume_token;
    let code = s.room(1);
    s.hub.join(1, code, None, None).expect("join");
    s.hub.join(2, code, None, None).expect("join");
    s.outputs();
    let now = s.now;
    s.hub.detach(now, 2, false);
    s.advance(Duration::from_secs(60));
    assert!(matches!(&s.sent_to(1)[..], [ServerMessage::PeerLeft { peer_id, .. }] if *peer_id == peer(2)));
    let late = s.hub.attach(s.now, 23, peer(2), Some(&token), Grants::default(), "192.0.2.1");
    assert!(!late.resumed && late.rooms.is_empty());
}

#[test]
fn a_clean_close_ends_the_session_at_once() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    s.attach(2, peer(2));
    let code = s.room(1);
    s.hub.join(1, code, None, None).expect("join");
    s.hub.join(2, code, None, None).expect("join");
    s.outputs();
    let now = s.now;
    s.hub.detach(now, 2, true);
    assert!(matches!(&s.sent_to(1)[..], [ServerMessage::PeerLeft { .. }]));
    assert_eq!(s.hub.session_count(), 1);
}

#[test]
fn a_second_connection_of_a_peer_replaces_the_first() {
    let mut s = Sim::new();
    let token = s.attach(1, peer(1)).resume_token;
    let again = s.hub.attach(s.now, 2, peer(1), Some(&token), Grants::default(), "192.0.2.1");
    assert!(again.resumed);
    assert!(matches!(&s.outputs()[..], [Output::Close(1, _)]));
    assert_eq!(s.hub.peer_of(1), None);
    assert_eq!(s.hub.peer_of(2), Some(peer(1)));
}

#[test]
fn empty_rooms_expire_after_the_ttl() {
    let mut s = Sim::with(HubConfig { room_ttl: Duration::from_secs(3600), ..HubConfig::default() });
    s.attach(1, peer(1));
    let code = s.room(1);
    s.hub.join(1, code, None, None).expect("join");
    s.advance(Duration::from_secs(7200));
    assert_eq!(s.hub.room_count(), 1, "an occupied room never expires");
    let now = s.now;
    s.hub.leave(now, 1, code).expect("leave");
    s.advance(Duration::from_secs(3599));
    assert_eq!(s.hub.room_count(), 1);
    s.advance(Duration::from_secs(1));
    assert_eq!(s.hub.room_count(), 0);
}

fn presence(n: u8, online: bool) -> ServerMessage {
    ServerMessage::Presence { peer_id: peer(n), online }
}

#[test]
fn peers_that_watch_each_other_hear_presence_changes() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    assert_eq!(s.hub.watch(1, &[peer(2)]).expect("watch"), vec![(peer(2), false)]);
    s.attach(2, peer(2));
    assert!(s.sent_to(1).is_empty(), "2 does not watch 1 yet");
    assert_eq!(s.hub.watch(2, &[peer(1)]).expect("watch"), vec![(peer(1), true)]);
    assert_eq!(s.sent_to(1), vec![presence(2, true)]);
    let now = s.now;
    s.hub.detach(now, 2, true);
    assert_eq!(s.sent_to(1), vec![presence(2, false)]);
    s.attach(3, peer(2));
    s.hub.watch(3, &[peer(1)]).expect("watch");
    assert_eq!(s.sent_to(1), vec![presence(2, true)]);
    s.hub.unwatch(1, &[peer(2)]).expect("unwatch");
    assert_eq!(s.sent_to(3), vec![presence(1, false)], "no longer mutual: 1 looks offline to 2");
    let now = s.now;
    s.hub.detach(now, 3, true);
    assert!(s.sent_to(1).is_empty());
}

/// Attack: track any peer id's presence. A stranger who learned a peer id
/// watches it; the peer never watched the stranger, so it looks offline to
/// the stranger whether it is online or not, and its comings and goings are
/// not told.
#[test]
fn a_stranger_cannot_track_a_peers_presence() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    s.attach(9, peer(9));
    s.hub.watch(1, &[peer(3)]).expect("the victim watches a friend");
    assert_eq!(s.hub.watch(9, &[peer(1)]).expect("watch"), vec![(peer(1), false)]);
    let now = s.now;
    s.hub.detach(now, 1, true);
    s.attach(2, peer(1));
    assert!(s.sent_to(9).is_empty(), "the stranger hears nothing");
    let now = s.now;
    s.hub.detach(now, 9, true);
    s.attach(10, peer(9));
    assert_eq!(s.hub.watch(10, &[peer(1)]).expect("watch"), vec![(peer(1), false)]);
}

#[test]
fn watches_are_bounded_per_session_and_in_all() {
    let config = HubConfig { max_watch: 3, max_watches: 5, ..HubConfig::default() };
    let mut s = Sim::with(config);
    s.attach(1, peer(1));
    s.attach(2, peer(2));
    s.hub.watch(1, &[peer(10), peer(11), peer(12)]).expect("three");
    assert_eq!(s.hub.watch(1, &[peer(13)]).map_err(|r| r.code), Err(ErrorCode::LimitExceeded));
    s.hub.watch(1, &[peer(10), peer(11)]).expect("watching again costs nothing");
    s.hub.watch(2, &[peer(20), peer(21)]).expect("two more: five in all");
    assert_eq!(s.hub.watch(2, &[peer(22)]).map_err(|r| r.code), Err(ErrorCode::LimitExceeded));
    s.hub.unwatch(1, &[peer(10), peer(10), peer(99)]).expect("unwatch");
    s.hub.watch(2, &[peer(22)]).expect("one freed");
    let now = s.now;
    s.hub.detach(now, 1, true);
    s.attach(4, peer(4));
    s.hub.watch(4, &[peer(4)]).expect("watching oneself is ignored");
    s.hub.watch(4, &[peer(30), peer(31)]).expect("an ended session frees its watches");
    assert_eq!(s.hub.watch(4, &[peer(32)]).map_err(|r| r.code), Err(ErrorCode::LimitExceeded));
}

fn attach_in(s: &mut Sim, c: ConnKey, p: PeerId, tenant: &str) {
    let grants = Grants { rooms: None, tenant: Some(tenant.into()) };
    s.hub.attach(s.now, c, p, None, grants, "192.0.2.1");
}

/// Attack: reach peers of another tenant. Signals to them are refused,
/// signals held for an absent peer are dropped if it comes back in another
/// tenant, and peers of two tenants never see each other's presence.
#[test]
fn signals_and_presence_stay_inside_a_tenant() {
    let mut s = Sim::new();
    attach_in(&mut s, 1, peer(1), "acme");
    attach_in(&mut s, 2, peer(2), "globex");
    attach_in(&mut s, 3, peer(3), "acme");
    let now = s.now;
    let refused = s.hub.signal(now, 1, peer(2), conn("c1"), offer(10));
    assert_eq!(refused.map_err(|r| r.code), Err(ErrorCode::Forbidden));
    s.hub.signal(now, 1, peer(3), conn("c1"), offer(10)).expect("same tenant");
    assert_eq!(s.sent_to(3).len(), 1);
    s.hub.signal(now, 1, peer(4), conn("c2"), offer(10)).expect("held for an absent peer");
    attach_in(&mut s, 4, peer(4), "globex");
    assert!(s.sent_to(4).is_empty(), "the held signal was dropped");
    s.hub.watch(1, &[peer(2)]).expect("watch");
    assert_eq!(s.hub.watch(2, &[peer(1)]).expect("watch"), vec![(peer(1), false)]);
    assert!(s.sent_to(1).is_empty());
}

#[test]
fn relay_needs_a_shared_room_and_names_the_sender() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    s.attach(2, peer(2));
    let frame = RelayFrame { peer: peer(2), channel: 3, payload: b"x" }.encode();
    assert_eq!(s.hub.relay(1, frame.clone()).map_err(|r| r.code), Err(ErrorCode::Forbidden));
    let code = s.room(1);
    s.hub.join(1, code, None, None).expect("join");
    s.hub.join(2, code, None, None).expect("join");
    s.outputs();
    s.hub.relay(1, frame).expect("relay");
    let out = s.outputs();
    let [Output::Relay { to: 2, frame: bytes, .. }] = &out[..] else { panic!("expected one relay frame, got {out:?}") };
    let decoded = RelayFrame::decode(bytes).expect("frame");
    assert_eq!((decoded.peer, decoded.channel, decoded.payload), (peer(1), 3, &b"x"[..]));
    assert_eq!(s.hub.relay(1, vec![1, 2]).map_err(|r| r.code), Err(ErrorCode::BadRequest));
}

#[test]
fn auth_grants_limit_rooms() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    let open = s.room(1);
    let grants = Grants { rooms: Some(vec!["AAAAAA".into()]), tenant: None };
    s.hub.attach(s.now, 2, peer(2), None, grants, "192.0.2.1");
    let now = s.now;
    assert_eq!(s.hub.create_room(now, 2, None, None).map_err(|r| r.code), Err(ErrorCode::Forbidden));
    assert_eq!(s.hub.join(2, open, None, None).map_err(|r| r.code), Err(ErrorCode::Forbidden));
    // Codes in tokens match whatever their case.
    let code: RoomCode = "AAAAAA".parse().expect("code");
    let only = |room: &str| Grants { rooms: Some(vec![room.into()]), tenant: None };
    assert!(only("aaaaaa").may_join(code));
    assert!(!only("aaaaab").may_join(code));
}

#[test]
fn a_resumed_session_hears_the_current_presence_of_its_watched_peers() {
    let mut s = Sim::new();
    let token = s.attach(1, peer(1)).resume_token;
    s.hub.watch(1, &[peer(2), peer(3)]).expect("watch");
    let now = s.now;
    s.hub.detach(now, 1, false);
    s.attach(2, peer(2));
    s.hub.watch(2, &[peer(1)]).expect("watch back");
    s.attach(3, peer(3));
    s.outputs();
    let back = s.hub.attach(s.now, 11, peer(1), Some(&token), Grants::default(), "192.0.2.1");
    assert!(back.resumed);
    let seen = s.sent_to(11);
    assert!(seen.contains(&ServerMessage::Presence { peer_id: peer(2), online: true }), "{seen:?}");
    assert!(seen.contains(&ServerMessage::Presence { peer_id: peer(3), online: false }), "{seen:?}");
}

#[test]
fn a_room_lost_with_the_server_is_made_again_under_its_code_once() {
    let mut s = Sim::new();
    s.attach(1, peer(1));
    s.attach(2, peer(2));
    let code: RoomCode = "K7Q2ZX".parse().expect("code");
    let now = s.now;
    assert!(!s.hub.has_room(code));
    assert_eq!(s.hub.recreate_room(now, 1, code, Some("HASH".into())).map_err(|r| r.code), Ok(true));
    assert!(s.hub.has_room(code));
    // The second member back finds it made: it joins with the password as usual.
    assert_eq!(s.hub.recreate_room(now, 2, code, None).map_err(|r| r.code), Ok(false));
    assert_eq!(s.hub.password_hash(code).as_deref(), Some("HASH"));
    s.hub.join(1, code, Some("HASH"), None).expect("first member back");
    let view = s.hub.join(2, code, Some("HASH"), None).expect("second member back");
    assert_eq!(view.peers.iter().map(|p| p.peer_id).collect::<Vec<_>>(), [peer(1)]);
    // Unattached connections cannot make rooms.
    assert_eq!(s.hub.recreate_room(now, 99, code, None).map_err(|r| r.code), Err(ErrorCode::Unauthorized));
}

/// An offer with `n` bytes of SDP.
fn offer(n: usize) -> SignalPayload {
    SignalData::Offer { sdp: "x".repeat(n), session: 0 }.into()
}

#[test]
fn held_signals_are_bounded_per_sender_and_in_bytes() {
    // Attack: hold 60 KB signals for ever new absent recipients; each
    // recipient's own cap never binds.
    let config = HubConfig { max_held_per_sender: 3, max_held_bytes_per_sender: 150_000, ..HubConfig::default() };
    let mut s = Sim::with(config);
    s.attach(1, peer(1));
    s.attach(2, peer(2));
    let now = s.now;
    for n in 0..2 {
        s.hub.signal(now, 1, peer(100 + n), conn("c"), offer(60_000)).expect("held");
    }
    let third = s.hub.signal(now, 1, peer(102), conn("c"), offer(60_000));
    assert_eq!(third.map_err(|r| r.code), Err(ErrorCode::LimitExceeded), "180 KB is over the sender's 150 KB");
    s.hub.signal(now, 1, peer(102), conn("c"), SignalData::Accept.into()).expect("a small one fits");
    let fourth = s.hub.signal(now, 1, peer(103), conn("c"), SignalData::Accept.into());
    assert_eq!(fourth.map_err(|r| r.code), Err(ErrorCode::LimitExceeded), "three signals held at most");
    s.hub.signal(now, 2, peer(103), conn("c"), offer(60_000)).expect("another sender has its own budget");
    // Expiry gives the budget back.
    s.advance(Duration::from_millis(s.hub.config.limits.signal_ttl_ms + 1));
    s.hub.signal(s.now, 1, peer(104), conn("c"), offer(60_000)).expect("held again after expiry");
}

#[test]
fn held_signals_are_bounded_in_bytes_per_recipient_and_in_all() {
    let config = HubConfig { max_held_bytes_per_peer: 100_000, max_held_bytes: 250_000, ..HubConfig::default() };
    let mut s = Sim::with(config);
    for c in 1..=5 {
        s.attach(c, peer(c as u8));
    }
    let now = s.now;
    s.hub.signal(now, 1, peer(50), conn("c"), offer(60_000)).expect("held");
    // A recipient's held signals flush at its `welcome`: more than the
    // outbound queue holds would close it at every reconnect.
    let over = s.hub.signal(now, 2, peer(50), conn("c"), offer(60_000));
    assert_eq!(over.map_err(|r| r.code), Err(ErrorCode::LimitExceeded), "120 KB for one recipient");
    for c in 2..=4 {
        s.hub.signal(now, c, peer(50 + c as u8), conn("c"), offer(60_000)).expect("held");
    }
    let full = s.hub.signal(now, 5, peer(60), conn("c"), offer(60_000));
    assert_eq!(full.map_err(|r| r.code), Err(ErrorCode::LimitExceeded), "300 KB in all");
    s.attach(9, peer(50));
    assert_eq!(s.sent_to(9).len(), 1, "the held signal flushed at attach");
    s.hub.signal(now, 5, peer(60), conn("c"), offer(60_000)).expect("a flush gives bytes back");
}

#[test]
fn one_address_cannot_fill_the_room_cap() {
    // Attack: create rooms in a loop (success costs no error budget) until
    // the server's cap refuses everyone, for the room TTL.
    let mut s = Sim::with(HubConfig { max_rooms_per_origin: 3, ..HubConfig::default() });
    s.attach_from(1, peer(1), "203.0.113.1");
    s.attach_from(2, peer(2), "203.0.113.1");
    s.attach_from(3, peer(3), "198.51.100.1");
    let now = s.now;
    for c in [1, 2, 1] {
        s.hub.create_room(now, c, None, None).expect("room");
    }
    let fourth = s.hub.create_room(now, 2, None, None);
    assert_eq!(fourth.map_err(|r| r.code), Err(ErrorCode::LimitExceeded), "three rooms per address");
    s.hub.create_room(now, 3, None, None).expect("another address creates rooms as usual");
    s.advance(s.hub.config.room_ttl + Duration::from_secs(1));
    s.hub.create_room(s.now, 1, None, None).expect("rooms that lapsed count no more");
}

#[test]
fn detached_sessions_are_bounded_and_the_oldest_goes_first() {
    // Attack: say hello with fresh identities and drop the connection, in a
    // loop: every session lingers for the resume window.
    let mut s = Sim::with(HubConfig { max_detached_sessions: 2, ..HubConfig::default() });
    for n in 1..=3 {
        s.attach(u64::from(n), peer(n));
        s.advance(Duration::from_millis(10));
        s.hub.detach(s.now, u64::from(n), false);
    }
    assert_eq!(s.hub.session_count(), 2, "the oldest detached session ended early");
    assert!(!s.hub.sessions.contains_key(&peer(1)));
    s.attach(9, peer(2));
    s.hub.detach(s.now, 9, false);
    assert_eq!(s.hub.session_count(), 2, "a resumed and dropped session counts once");
}
