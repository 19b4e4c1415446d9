//! Two link cores talking in memory on a virtual clock, with seeded loss.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use str0m::Candidate;
use switchboard_proto::SignalData;

use super::*;
use crate::framing::{Delivered, MessageKind, OutMessage};
use crate::link::{
    DisconnectReason, LinkConfig, LinkCore, LinkEvent, LinkOutput, LinkState, Quality, Role, server_relay as relay,
};

const LATENCY: Duration = Duration::from_millis(5);
/// One way through the signaling server's relay.
const RELAY_LATENCY: Duration = Duration::from_millis(15);

struct Packet {
    at: Instant,
    to_a: bool,
    source: SocketAddr,
    destination: SocketAddr,
    data: Vec<u8>,
}

struct Side {
    link: LinkCore<Str0mRtc>,
    events: Vec<LinkEvent>,
    timeout: Instant,
    /// Deliver signals from this side to the other.
    signals_on: bool,
    consume: bool,
    /// Message bytes delivered and not yet consumed.
    unconsumed: usize,
    /// When the link said the network was back.
    heard: Vec<Instant>,
    /// How many times the link asked whether the host addresses changed.
    host_checks: usize,
}

struct Pair {
    a: Side,
    b: Side,
    now: Instant,
    rng: StdRng,
    loss: f64,
    /// Drop every datagram (a cut path).
    cut: bool,
    /// Addresses nobody has any more: datagrams from or to them are lost.
    gone: Vec<SocketAddr>,
    wire: Vec<Packet>,
    /// Frames on their way through the server relay: (when, to a, frame).
    relayed: Vec<(Instant, bool, Vec<u8>)>,
    /// Every relayed frame, as the server saw it.
    server_saw: Vec<Vec<u8>>,
}

fn str0m_config(cfg: &LinkConfig) -> Str0mConfig {
    Str0mConfig {
        channels: cfg.channels.clone(),
        raw: cfg.raw,
        chunk_size: cfg.chunk_size,
        sctp_buffer: cfg.sctp_buffer,
        dead_after: cfg.dead_after,
        cert: None,
        machine: Vec::new(),
    }
}

fn side_with(now: Instant, role: Role, hosts: &[SocketAddr], cfg: LinkConfig) -> Side {
    let rtc = Str0mRtc::new(now, str0m_config(&cfg), hosts);
    let link = LinkCore::new(now, role, cfg, rtc, true);
    Side {
        link,
        events: Vec::new(),
        timeout: now,
        signals_on: true,
        consume: true,
        unconsumed: 0,
        heard: Vec::new(),
        host_checks: 0,
    }
}

fn side(now: Instant, role: Role, addr: &str, cfg: LinkConfig) -> Side {
    side_with(now, role, &[addr.parse().expect("addr")], cfg)
}

impl Pair {
    fn of(now: Instant, seed: u64, loss: f64, a: Side, b: Side) -> Pair {
        Pair {
            a,
            b,
            now,
            rng: StdRng::seed_from_u64(seed),
            loss,
            cut: false,
            gone: Vec::new(),
            wire: Vec::new(),
            relayed: Vec::new(),
            server_saw: Vec::new(),
        }
    }

    fn new(seed: u64, loss: f64, cfg: LinkConfig) -> Pair {
        let now = Instant::now();
        let mut a = side(now, Role::Offerer, "192.0.2.1:5000", cfg.clone());
        let b = side(now, Role::Answerer, "192.0.2.2:5000", cfg);
        a.link.start(now).expect("offer");
        Pair::of(now, seed, loss, a, b)
    }

    /// A pair whose links may use the server relay after `after` without WebRTC.
    fn with_relay(seed: u64, after: Duration, cfg: LinkConfig) -> Pair {
        let now = Instant::now();
        let (ia, ib) = (crate::Identity::from_secret_bytes([1; 32]), crate::Identity::from_secret_bytes([2; 32]));
        let setup = |me: &crate::Identity, other: &crate::Identity| relay::ServerRelaySetup {
            identity: me.clone(),
            local: me.peer_id(),
            remote: other.peer_id(),
            after,
            bytes_per_sec: 2 << 20,
            frames_per_sec: 100,
            max_payload: 64 << 10,
        };
        let mut a = side(now, Role::Offerer, "192.0.2.1:5000", cfg.clone());
        let mut b = side(now, Role::Answerer, "192.0.2.2:5000", cfg);
        a.link.enable_server_relay(setup(&ia, &ib), [3; 32]);
        b.link.enable_server_relay(setup(&ib, &ia), [4; 32]);
        a.link.start(now).expect("offer");
        Pair::of(now, seed, 0.0, a, b)
    }

    /// Drains both sides, moves packets and signals, then lets time pass to
    /// the next event. One call is one step of the virtual clock.
    fn step(&mut self) {
        let now = self.now;
        for from_a in [true, false] {
            let mut signals = Vec::new();
            {
                let me = if from_a { &mut self.a } else { &mut self.b };
                loop {
                    let mut any = false;
                    while let Some(out) = me.link.poll_output() {
                        any = true;
                        match out {
                            LinkOutput::Signal(s) => {
                                if me.signals_on {
                                    signals.push(s);
                                }
                            }
                            LinkOutput::ServerRelay(frame) => {
                                self.server_saw.push(frame.clone());
                                self.relayed.push((now + RELAY_LATENCY, !from_a, frame));
                            }
                            LinkOutput::NetworkBack => me.heard.push(now),
                            LinkOutput::Event(e) => {
                                if let LinkEvent::Message(m) = &e {
                                    me.unconsumed += m.data.len();
                                }
                                me.events.push(e);
                            }
                        }
                    }
                    if me.consume && me.unconsumed > 0 {
                        me.link.consumed(now, std::mem::take(&mut me.unconsumed));
                        any = true;
                    }
                    while let Some(io) = me.link.rtc_mut().poll_io() {
                        any = true;
                        match io {
                            NativeOutput::Transmit { source, destination, contents } => {
                                let gone = self.gone.contains(&source) || self.gone.contains(&destination);
                                if self.cut || gone || self.rng.random_bool(self.loss) {
                                    continue;
                                }
                                self.wire.push(Packet {
                                    at: now + LATENCY,
                                    to_a: !from_a,
                                    source,
                                    destination,
                                    data: contents,
                                });
                            }
                            // These links have no STUN/TURN servers.
                            NativeOutput::OpenStream(_)
                            | NativeOutput::StreamSend { .. }
                            | NativeOutput::CloseStream(_) => {
                                unreachable!("a link without ICE servers opened a TURN stream")
                            }
                            NativeOutput::Regather => me.link.rtc_mut().regather(now, None),
                            NativeOutput::CheckHosts => me.host_checks += 1,
                        }
                    }
                    me.link.drive(now);
                    if !any {
                        break;
                    }
                }
                let rtc_at = me.link.rtc_mut().poll_timeout();
                me.timeout = me.link.poll_timeout().map_or(rtc_at, |t| t.min(rtc_at));
            }
            let other = if from_a { &mut self.b } else { &mut self.a };
            for s in signals {
                let _ = other.link.handle_signal(now, s);
            }
        }
        let next_packet = self.wire.iter().map(|p| p.at).chain(self.relayed.iter().map(|r| r.0)).min();
        let mut next = self.a.timeout.min(self.b.timeout);
        if let Some(p) = next_packet {
            next = next.min(p);
        }
        self.now = next.max(self.now + Duration::from_micros(100));
        let now = self.now;
        let (due, rest): (Vec<Packet>, Vec<Packet>) = self.wire.drain(..).partition(|p| p.at <= now);
        self.wire = rest;
        for p in due {
            let side = if p.to_a { &mut self.a } else { &mut self.b };
            side.link.rtc_mut().handle_datagram(now, p.source, p.destination, &p.data);
            side.link.drive(now);
        }
        let (due, rest): (Vec<_>, Vec<_>) = self.relayed.drain(..).partition(|r| r.0 <= now);
        self.relayed = rest;
        for (_, to_a, frame) in due {
            let side = if to_a { &mut self.a } else { &mut self.b };
            side.link.handle_server_relay(now, &frame);
        }
        for side in [&mut self.a, &mut self.b] {
            if side.timeout <= now {
                side.link.rtc_mut().handle_timeout(now);
                side.link.handle_timeout(now);
            }
        }
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                // Drain what the last input produced.
                self.step();
                return true;
            }
            self.step();
        }
        done(self)
    }

    fn connect(&mut self) {
        let ok = self.run_until(Duration::from_secs(10), |p| {
            p.a.link.state() == LinkState::Connected && p.b.link.state() == LinkState::Connected
        });
        assert!(ok, "connected: a {:?} b {:?}", self.a.link.state(), self.b.link.state());
    }

    /// Queues a message on a's link.
    fn send_a(&mut self, slot: usize, msg: OutMessage) {
        let now = self.now;
        self.a.link.send(now, slot, msg);
    }
}

fn messages(events: &[LinkEvent]) -> Vec<&Delivered> {
    events
        .iter()
        .filter_map(|e| match e {
            LinkEvent::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn states(link: &LinkCore<Str0mRtc>) -> Vec<LinkState> {
    link.history().into_iter().map(|(_, s)| s).collect()
}

#[test]
fn connects_through_every_state_in_order() {
    let mut pair = Pair::new(1, 0.0, LinkConfig::default());
    pair.connect();
    use LinkState::*;
    assert_eq!(states(&pair.a.link), [New, Signaling, Connecting, Connected]);
    assert_eq!(states(&pair.b.link), [New, Signaling, Connecting, Connected]);
    let connected = pair.a.events.iter().find_map(|e| match e {
        LinkEvent::Connected { path, .. } => Some(*path),
        _ => None,
    });
    assert_eq!(connected, Some(PathKind::Host));
    // Virtual time: the handshake takes a few round trips of 10 ms, not seconds.
    assert!(pair.a.link.stats().setup_time.expect("setup time") < Duration::from_millis(500));
}

#[test]
fn reliable_messages_arrive_in_order_despite_loss() {
    let mut pair = Pair::new(42, 0.05, LinkConfig::default());
    pair.connect();
    for i in 0..2000u32 {
        let size = if i % 100 == 0 { 100_000 } else { 100 };
        let mut data = vec![(i % 251) as u8; size];
        data[..4].copy_from_slice(&i.to_le_bytes());
        pair.send_a(0, OutMessage::data(Bytes::from(data)));
    }
    let ok = pair.run_until(Duration::from_secs(120), |p| messages(&p.b.events).len() == 2000);
    assert!(ok, "delivered {}", messages(&pair.b.events).len());
    for (i, m) in messages(&pair.b.events).iter().enumerate() {
        assert_eq!(m.data[..4], (i as u32).to_le_bytes(), "message {i} out of order");
        assert_eq!(m.slot, 0);
    }
    assert_eq!(pair.a.link.stats().messages_sent, 2000);
    assert_eq!(pair.b.link.stats().messages_received, 2000);
}

#[test]
fn unreliable_channel_drops_cleanly_under_loss() {
    let mut pair = Pair::new(7, 0.02, LinkConfig::default());
    pair.connect();
    for i in 0..300u32 {
        let mut data = vec![1u8; 40_000];
        data[..4].copy_from_slice(&i.to_le_bytes());
        pair.send_a(1, OutMessage::data(Bytes::from(data)));
    }
    pair.run_until(Duration::from_secs(20), |p| p.a.link.queued() == 0);
    pair.run_until(Duration::from_secs(2), |_| false);
    let got = messages(&pair.b.events);
    assert!(!got.is_empty() && got.len() < 300, "some of 300 arrive over 2 % loss: {}", got.len());
    for m in &got {
        assert_eq!(m.data.len(), 40_000, "only whole messages are delivered");
    }
    assert!(pair.b.link.stats().dropped_partials > 0, "partial messages were dropped, not kept");
    assert_eq!(pair.b.link.state(), LinkState::Connected);
}

#[test]
fn a_receiver_that_stops_consuming_stops_the_sender() {
    let cfg = LinkConfig { window: 1 << 20, ..LinkConfig::default() };
    let mut pair = Pair::new(3, 0.0, cfg);
    pair.connect();
    pair.b.consume = false;
    for _ in 0..200 {
        pair.send_a(0, OutMessage::data(Bytes::from(vec![9u8; 64 << 10])));
    }
    pair.run_until(Duration::from_secs(5), |_| false);
    let received: usize = messages(&pair.b.events).iter().map(|m| m.data.len()).sum();
    assert!(received <= 2 << 20, "receiver holds {received} bytes with a 1 MiB window");
    assert!(pair.a.link.queued() >= (200 << 16) - (2 << 20), "sender keeps the rest queued");
    // Consuming again lets everything through.
    pair.b.consume = true;
    let ok = pair.run_until(Duration::from_secs(30), |p| messages(&p.b.events).len() == 200);
    assert!(ok, "delivered {}", messages(&pair.b.events).len());
}

#[test]
fn no_offer_means_connect_timeout() {
    let mut pair = Pair::new(5, 0.0, LinkConfig::default());
    pair.a.signals_on = false;
    pair.run_until(Duration::from_secs(20), |p| p.a.link.state().is_final() && p.b.link.state().is_final());
    assert_eq!(pair.a.link.state(), LinkState::Failed, "{:?}", pair.a.events);
    assert!(pair.a.events.contains(&LinkEvent::Ended(DisconnectReason::ConnectTimeout)));
    assert_eq!(states(&pair.b.link), [LinkState::New, LinkState::Failed]);
}

#[test]
fn a_cut_path_goes_reconnecting_then_failed() {
    let cfg = LinkConfig { reconnect_timeout: Duration::from_secs(5), ..LinkConfig::default() };
    let mut pair = Pair::new(9, 0.0, cfg);
    pair.connect();
    pair.cut = true;
    pair.a.signals_on = false;
    pair.b.signals_on = false;
    let ok = pair.run_until(Duration::from_secs(60), |p| p.a.link.state() == LinkState::Failed);
    assert!(ok, "state {:?}", pair.a.link.state());
    use LinkState::*;
    assert_eq!(states(&pair.a.link), [New, Signaling, Connecting, Connected, Reconnecting, Failed]);
    assert!(pair.a.events.contains(&LinkEvent::Ended(DisconnectReason::PathLost)));
}

#[test]
fn a_brief_outage_loses_nothing() {
    let mut pair = Pair::new(10, 0.0, LinkConfig::default());
    pair.connect();
    pair.cut = true;
    for i in 0..100u8 {
        pair.send_a(0, OutMessage::data(Bytes::from(vec![i; 5000])));
    }
    pair.run_until(Duration::from_secs(1), |_| false);
    pair.cut = false;
    let ok = pair.run_until(Duration::from_secs(10), |p| messages(&p.b.events).len() == 100);
    assert!(ok, "delivered {} state {:?}", messages(&pair.b.events).len(), pair.a.link.state());
    for (i, m) in messages(&pair.b.events).iter().enumerate() {
        assert_eq!(m.data[0], i as u8);
    }
    assert_eq!(pair.a.link.state(), LinkState::Connected);
}

#[test]
fn bye_closes_the_other_side() {
    let mut pair = Pair::new(11, 0.0, LinkConfig::default());
    pair.connect();
    let now = pair.now;
    pair.a.link.close(now, Some("done".into()));
    pair.run_until(Duration::from_secs(1), |p| p.b.link.state() == LinkState::Closed);
    assert_eq!(pair.b.link.state(), LinkState::Closed);
    assert!(pair.b.events.contains(&LinkEvent::Ended(DisconnectReason::ClosedByPeer(Some("done".into())))));
}

#[test]
fn trickled_candidates_connect() {
    let now = Instant::now();
    let cfg = LinkConfig::default();
    let mut a = side_with(now, Role::Offerer, &[], cfg.clone());
    a.link.start(now).expect("offer");
    // The candidate comes after the offer and travels as a signal.
    a.link
        .rtc_mut()
        .add_local_candidate(Candidate::host("192.0.2.1:5000".parse().expect("addr"), "udp").expect("candidate"));
    let b = side(now, Role::Answerer, "192.0.2.2:5000", cfg);
    let mut pair = Pair::of(now, 1, 0.0, a, b);
    pair.connect();
}

#[test]
fn requests_carry_kind_and_room() {
    let mut pair = Pair::new(12, 0.0, LinkConfig::default());
    pair.connect();
    let room = "ROOM42".parse().expect("room");
    pair.send_a(
        0,
        OutMessage { kind: MessageKind::Request(77), room: Some(room), data: Bytes::from_static(b"q"), text: false },
    );
    pair.run_until(Duration::from_secs(1), |p| !messages(&p.b.events).is_empty());
    let m = messages(&pair.b.events)[0];
    assert_eq!((m.kind, m.room), (MessageKind::Request(77), Some(room)));
}

#[test]
fn rtt_is_measured_on_the_virtual_clock() {
    let mut pair = Pair::new(13, 0.0, LinkConfig::default());
    pair.connect();
    pair.run_until(Duration::from_secs(2), |_| false);
    let rtt = pair.a.link.stats().rtt.expect("rtt measured");
    assert!(rtt >= 2 * LATENCY && rtt < 4 * LATENCY, "rtt {rtt:?}");
}

#[test]
fn messages_never_come_before_connected() {
    for seed in 0..20 {
        for answerer_sends in [false, true] {
            let mut pair = Pair::new(100 + seed, 0.0, LinkConfig::default());
            // One side sends the moment it counts as connected, which can be
            // before the other side's last channel has opened.
            pair.run_until(Duration::from_secs(5), |p| {
                let s = if answerer_sends { &p.b } else { &p.a };
                s.link.state() == LinkState::Connected
            });
            let rx_events = if answerer_sends { 0 } else { 1 };
            let now = pair.now;
            let tx = if answerer_sends { &mut pair.b } else { &mut pair.a };
            tx.link.send(now, 0, OutMessage::data(Bytes::from_static(b"first")));
            tx.link.send(now, 1, OutMessage::data(Bytes::from_static(b"second")));
            let ok = pair.run_until(Duration::from_secs(5), |p| {
                let r = if rx_events == 0 { &p.a } else { &p.b };
                messages(&r.events).len() == 2
            });
            let rx = if rx_events == 0 { &pair.a } else { &pair.b };
            assert!(ok, "seed {seed}: delivered {}", messages(&rx.events).len());
            let connected = rx.events.iter().position(|e| matches!(e, LinkEvent::Connected { .. }));
            let first = rx.events.iter().position(|e| matches!(e, LinkEvent::Message(_)));
            assert!(connected.is_some() && connected < first, "seed {seed}: {:?}", rx.events);
        }
    }
}

#[test]
fn a_silent_path_is_noticed_within_five_seconds_and_a_new_session_delivers_within_a_second_of_its_return() {
    let mut pair = Pair::new(12, 0.0, LinkConfig::default());
    pair.connect();
    let cut_at = pair.now;
    pair.cut = true;
    for i in 0..50u8 {
        pair.send_a(0, OutMessage::data(Bytes::from(vec![i; 3000])));
    }
    let noticed = pair.run_until(Duration::from_secs(5), |p| {
        p.a.link.state() == LinkState::Reconnecting && p.b.link.state() == LinkState::Reconnecting
    });
    assert!(noticed, "after 5 s: a {:?} b {:?}", pair.a.link.state(), pair.b.link.state());
    assert!(pair.now - cut_at <= Duration::from_secs(5));
    // Ten seconds without a path, then it returns.
    pair.run_until(Duration::from_secs(10) - (pair.now - cut_at), |_| false);
    assert!(pair.a.link.stats().ice_restarts >= 2, "restarts {}", pair.a.link.stats().ice_restarts);
    pair.cut = false;
    let back = pair.run_until(Duration::from_secs(3), |p| {
        p.a.link.state() == LinkState::Connected && p.b.link.state() == LinkState::Connected
    });
    assert!(back, "no path 3 s after the network returned");
    // A new session (fresh SCTP, which has no backed-off retransmission
    // timer) carries what the lost one held, sent again from our own
    // acknowledgement window.
    let returned = cut_at + Duration::from_secs(10);
    let ok = pair.run_until(returned + Duration::from_secs(1) - pair.now, |p| {
        messages(&p.b.events).len() == 50
            && p.a.link.state() == LinkState::Connected
            && p.b.link.state() == LinkState::Connected
    });
    assert!(ok, "delivered {} a {:?} b {:?}", messages(&pair.b.events).len(), pair.a.link.state(), pair.b.link.state());
    for (i, m) in messages(&pair.b.events).iter().enumerate() {
        assert_eq!(m.data[0], i as u8, "message {i} out of order");
    }
    use LinkState::*;
    assert_eq!(states(&pair.b.link), [New, Signaling, Connecting, Connected, Reconnecting, Connected]);
    // The restarted link keeps working both ways.
    let now = pair.now;
    pair.b.link.send(now, 0, OutMessage::data(Bytes::from_static(b"back")));
    let ok = pair.run_until(Duration::from_secs(2), |p| messages(&p.a.events).iter().any(|m| &m.data[..] == b"back"));
    assert!(ok, "no message from b after the restart");
}

#[test]
fn beacons_hear_the_returning_network_and_the_session_recovers_once_signaling_is_back() {
    let mut pair = Pair::new(14, 0.0, LinkConfig::default());
    pair.connect();
    // The path and both signaling directions are gone, as when one side's
    // network drops and its signaling connection stalls.
    pair.cut = true;
    pair.a.signals_on = false;
    pair.b.signals_on = false;
    for i in 0..20u8 {
        pair.send_a(0, OutMessage::data(Bytes::from(vec![i; 1000])));
    }
    pair.run_until(Duration::from_secs(10), |_| false);
    assert_eq!(pair.a.link.state(), LinkState::Reconnecting);
    assert!(pair.a.heard.is_empty() && pair.b.heard.is_empty(), "a beacon heard through a cut path");
    pair.cut = false;
    let returned = pair.now;
    let heard = pair.run_until(Duration::from_secs(1), |p| !p.a.heard.is_empty() && !p.b.heard.is_empty());
    assert!(heard, "beacons not heard: a {:?} b {:?}", pair.a.heard, pair.b.heard);
    for at in [pair.a.heard[0], pair.b.heard[0]] {
        assert!(at - returned <= beacon::INTERVAL + LATENCY, "heard after {:?}", at - returned);
    }
    // One report a second at most, however many beacons arrive.
    pair.run_until(Duration::from_millis(500), |_| false);
    assert_eq!((pair.a.heard.len(), pair.b.heard.len()), (1, 1));
    // The answering side's signaling connection comes back: its request
    // for a new session goes out at once, and the data follows.
    pair.a.signals_on = true;
    pair.b.signals_on = true;
    let now = pair.now;
    pair.b.link.signaling_back(now);
    let ok = pair.run_until(returned + Duration::from_secs(1) - pair.now, |p| {
        messages(&p.b.events).len() == 20 && p.a.link.state() == LinkState::Connected
    });
    assert!(ok, "delivered {} a {:?} b {:?}", messages(&pair.b.events).len(), pair.a.link.state(), pair.b.link.state());
    for (i, m) in messages(&pair.b.events).iter().enumerate() {
        assert_eq!(m.data[0], i as u8, "message {i} out of order");
    }
    // Beacons stop with the new path.
    assert!(pair.a.link.rtc().beacons.is_none() && pair.b.link.rtc().beacons.is_none(), "beacons outlive the path");
}

#[test]
fn a_side_whose_address_changed_gets_a_new_session_on_its_new_address() {
    let mut pair = Pair::new(15, 0.0, LinkConfig::default());
    pair.connect();
    let old: SocketAddr = "192.0.2.2:5000".parse().expect("addr");
    let new: SocketAddr = "198.51.100.9:6000".parse().expect("addr");
    for i in 0..20u8 {
        pair.send_a(0, OutMessage::data(Bytes::from(vec![i; 1000])));
    }
    // The answering side moves to another network: its old address is gone.
    pair.gone.push(old);
    let asked = pair.run_until(Duration::from_secs(5), |p| p.b.host_checks > 0);
    assert!(asked, "the answering side never checked its addresses");
    let now = pair.now;
    pair.b.link.rtc_mut().rehost(now, &[new], &[old]);
    pair.b.link.rtc_mut().regather(now, None);
    let ok = pair.run_until(Duration::from_secs(10), |p| {
        messages(&p.b.events).len() == 20
            && p.a.link.state() == LinkState::Connected
            && p.b.link.state() == LinkState::Connected
    });
    assert!(ok, "delivered {} a {:?} b {:?}", messages(&pair.b.events).len(), pair.a.link.state(), pair.b.link.state());
    for (i, m) in messages(&pair.b.events).iter().enumerate() {
        assert_eq!(m.data[0], i as u8, "message {i} out of order");
    }
    assert_eq!(pair.a.link.stats().remote_addr, Some(new), "the path does not use the new address");
    assert!(pair.b.link.rtc().local_candidates.iter().all(|c| c.addr() != old), "the old address is still a candidate");
}

#[test]
fn the_answering_side_asks_for_the_restart() {
    let mut pair = Pair::new(13, 0.0, LinkConfig::default());
    pair.connect();
    let now = pair.now;
    // Only the answering side hears silence (its own clock runs ahead).
    let later = now + Duration::from_secs(4);
    pair.b.link.rtc_mut().handle_timeout(later);
    pair.b.link.handle_timeout(later);
    pair.b.link.handle_timeout(later);
    assert_eq!(pair.b.link.state(), LinkState::Reconnecting);
    let mut asked = false;
    while let Some(out) = pair.b.link.poll_output() {
        asked |= out == LinkOutput::Signal(SignalData::Restart);
    }
    assert!(asked, "the answering side did not ask for a restart");
    pair.a.link.handle_signal(now, SignalData::Restart).expect("restart signal");
    let mut offered = false;
    while let Some(out) = pair.a.link.poll_output() {
        offered |= matches!(out, LinkOutput::Signal(SignalData::Offer { .. }));
    }
    assert!(offered, "the offering side did not restart");
    assert_eq!(pair.a.link.stats().ice_restarts, 1);
}

fn qualities(events: &[LinkEvent]) -> Vec<Quality> {
    events
        .iter()
        .filter_map(|e| match e {
            LinkEvent::Quality(q) => Some(*q),
            _ => None,
        })
        .collect()
}

#[test]
fn a_clean_link_reports_excellent_quality() {
    let mut pair = Pair::new(14, 0.0, LinkConfig::default());
    pair.connect();
    let ok = pair.run_until(Duration::from_secs(10), |p| !qualities(&p.a.events).is_empty());
    assert!(ok, "no quality level after 10 s");
    assert_eq!(qualities(&pair.a.events), [Quality::Excellent]);
    let stats = pair.a.link.stats();
    assert_eq!(stats.quality, Some(Quality::Excellent));
    assert_eq!(stats.loss, Some(0.0));
}

#[test]
fn a_lossy_link_reports_poor_quality_and_a_cut_one_too() {
    // 15 % loss each way: about 28 % of probe round trips lost.
    let mut pair = Pair::new(15, 0.15, LinkConfig::default());
    pair.connect();
    let ok = pair.run_until(Duration::from_secs(30), |p| qualities(&p.a.events).last() == Some(&Quality::Poor));
    assert!(ok, "levels {:?} loss {:?}", qualities(&pair.a.events), pair.a.link.stats().loss);

    let mut clean = Pair::new(16, 0.0, LinkConfig::default());
    clean.connect();
    clean.run_until(Duration::from_secs(10), |p| !qualities(&p.a.events).is_empty());
    clean.cut = true;
    let ok = clean.run_until(Duration::from_secs(15), |p| qualities(&p.a.events).last() == Some(&Quality::Poor));
    assert!(ok, "a cut link still reads {:?}", qualities(&clean.a.events));
}

fn paths(events: &[LinkEvent]) -> Vec<PathKind> {
    events
        .iter()
        .filter_map(|e| match e {
            LinkEvent::Connected { path, .. } | LinkEvent::PathChanged(path) => Some(*path),
            _ => None,
        })
        .collect()
}

/// Queues `n` numbered reliable messages on a, from `first`.
fn send_numbered(pair: &mut Pair, first: u32, n: u32) {
    for i in first..first + n {
        let mut data = vec![(i % 251) as u8; if i % 50 == 0 { 70_000 } else { 200 }];
        data[..4].copy_from_slice(&i.to_le_bytes());
        pair.send_a(0, OutMessage::data(Bytes::from(data)));
    }
}

/// Every message b got on the reliable channel is the next number: none
/// lost, repeated or out of order.
fn assert_in_order(pair: &Pair, expected: u32) {
    let got = messages(&pair.b.events);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.data[..4], (i as u32).to_le_bytes(), "message {i} lost, repeated or reordered");
    }
    assert_eq!(got.len(), expected as usize);
}

#[test]
fn with_udp_blocked_the_relay_carries_and_webrtc_takes_over_when_it_opens() {
    let mut pair = Pair::with_relay(21, Duration::from_secs(5), LinkConfig::default());
    pair.cut = true;
    let ok = pair.run_until(Duration::from_secs(8), |p| p.a.link.state() == LinkState::Connected);
    assert!(ok, "connected over the relay: {:?}", pair.a.events);
    assert_eq!(paths(&pair.a.events), [PathKind::Server]);
    let setup = pair.a.link.stats().setup_time.expect("setup time");
    assert!(setup >= Duration::from_secs(5) && setup < Duration::from_secs(6), "relay after its deadline: {setup:?}");
    send_numbered(&mut pair, 0, 300);
    let ok = pair.run_until(Duration::from_secs(30), |p| messages(&p.b.events).len() == 300);
    assert!(ok, "all 300 over the relay, got {}", messages(&pair.b.events).len());
    // UDP comes back: a new session opens and the data moves to it.
    pair.cut = false;
    send_numbered(&mut pair, 300, 300);
    let ok = pair.run_until(Duration::from_secs(15), |p| paths(&p.a.events).last() == Some(&PathKind::Host));
    assert!(ok, "back on WebRTC: {:?}", paths(&pair.a.events));
    let ok = pair.run_until(Duration::from_secs(30), |p| messages(&p.b.events).len() == 600);
    assert!(ok, "all 600, got {}", messages(&pair.b.events).len());
    assert_in_order(&pair, 600);
    assert_eq!(pair.b.link.state(), LinkState::Connected);
}

#[test]
fn a_path_lost_mid_stream_moves_to_the_relay_and_back_losing_nothing() {
    let mut pair = Pair::with_relay(22, Duration::from_secs(5), LinkConfig::default());
    pair.connect();
    assert_eq!(paths(&pair.a.events), [PathKind::Host]);
    let mut sent = 0;
    // Messages keep coming while the path is cut for 12 s and restored.
    for phase in 0..40 {
        pair.cut = (5..29).contains(&phase);
        send_numbered(&mut pair, sent, 25);
        sent += 25;
        pair.run_until(Duration::from_millis(500), |_| false);
    }
    let ok = pair.run_until(Duration::from_secs(30), |p| messages(&p.b.events).len() == sent as usize);
    assert!(ok, "all {sent}, got {}", messages(&pair.b.events).len());
    assert_in_order(&pair, sent);
    assert_eq!(paths(&pair.a.events), [PathKind::Host, PathKind::Server, PathKind::Host]);
    assert!(pair.a.link.stats().ice_restarts >= 1);
    use LinkState::*;
    assert_eq!(states(&pair.a.link), [New, Signaling, Connecting, Connected, Reconnecting, Connected]);
}

#[test]
fn relayed_frames_are_ciphertext_and_forgeries_are_dropped() {
    let mut pair = Pair::with_relay(23, Duration::ZERO, LinkConfig::default());
    pair.cut = true;
    let ok = pair.run_until(Duration::from_secs(2), |p| p.a.link.state() == LinkState::Connected);
    assert!(ok, "the relay's head start connects at once");
    let secret = b"the server must never read this sentence";
    pair.send_a(0, OutMessage::data(Bytes::from_static(secret)));
    let ok = pair.run_until(Duration::from_secs(2), |p| !messages(&p.b.events).is_empty());
    assert!(ok);
    assert_eq!(&messages(&pair.b.events)[0].data[..], &secret[..]);
    assert!(!pair.server_saw.is_empty());
    for frame in &pair.server_saw {
        assert!(!frame.windows(10).any(|w| secret.windows(10).any(|s| s == w)), "plaintext at the server");
    }
    // A frame the server alters or plays again changes nothing.
    let mut forged = pair.server_saw.last().cloned().expect("a frame");
    let n = forged.len();
    forged[n - 1] ^= 0x55;
    let now = pair.now;
    pair.b.link.handle_server_relay(now, &forged);
    for frame in pair.server_saw.clone() {
        pair.b.link.handle_server_relay(now, &frame);
    }
    pair.run_until(Duration::from_secs(1), |_| false);
    assert_eq!(messages(&pair.b.events).len(), 1);
    assert_eq!(pair.b.link.state(), LinkState::Connected);
}

#[test]
fn a_pair_is_named_by_its_candidates_kinds() {
    use str0m::CandidateKind::{Host, PeerReflexive, Relayed, ServerReflexive};
    assert_eq!(path_kind(Some(Host), Some(Host), false), PathKind::Host);
    assert_eq!(path_kind(Some(Host), Some(Relayed), false), PathKind::Relayed);
    assert_eq!(path_kind(Some(ServerReflexive), Some(Host), false), PathKind::ServerReflexive);
    assert_eq!(path_kind(Some(Host), Some(ServerReflexive), false), PathKind::ServerReflexive);
    assert_eq!(path_kind(Some(Host), Some(ServerReflexive), true), PathKind::Host, "the peer is on this machine");
    // Reflexive, unless it is an address of this very host (a browser on the
    // same machine hides its host candidates behind mDNS names).
    assert_eq!(path_kind(Some(Host), None, false), PathKind::ServerReflexive);
    assert_eq!(path_kind(Some(Host), Some(PeerReflexive), false), PathKind::ServerReflexive);
    assert_eq!(path_kind(Some(Host), None, true), PathKind::Host);
    assert_eq!(path_kind(Some(Host), Some(PeerReflexive), true), PathKind::Host);
}

fn raw_config() -> LinkConfig {
    LinkConfig { raw: true, channels: vec![crate::ChannelConfig::reliable("chat")], ..LinkConfig::default() }
}

fn offer_of(rtc: &mut Str0mRtc) -> String {
    std::iter::from_fn(|| rtc.poll_event())
        .find_map(|e| match e {
            RtcEvent::Signal(SignalData::Offer { sdp, .. }) => Some(sdp),
            _ => None,
        })
        .expect("an offer")
}

#[test]
fn raw_links_keep_text_and_binary_apart_report_their_channels_and_measure_the_round_trip() {
    let mut pair = Pair::new(21, 0.0, raw_config());
    pair.connect();
    let opened = |events: &[LinkEvent]| {
        events.iter().any(|e| matches!(e, LinkEvent::ChannelOpen { label, .. } if label == "chat"))
    };
    assert!(opened(&pair.a.events) && opened(&pair.b.events), "both sides report the declared channel open");
    pair.send_a(0, OutMessage::text("ping 0".into()));
    pair.send_a(0, OutMessage::data(Bytes::from_static(b"ping 0")));
    pair.run_until(Duration::from_secs(1), |p| messages(&p.b.events).len() == 2);
    let got: Vec<(bool, &[u8])> = messages(&pair.b.events).iter().map(|m| (m.text, &m.data[..])).collect();
    assert_eq!(got, [(true, &b"ping 0"[..]), (false, &b"ping 0"[..])]);
    // No probe channel on raw links: the round trip is ICE's own.
    pair.run_until(Duration::from_secs(3), |_| false);
    let rtt = pair.a.link.stats().rtt.expect("rtt measured on a raw link");
    assert!(rtt >= 2 * LATENCY && rtt < 4 * LATENCY, "rtt {rtt:?}");
}

#[test]
fn a_raw_peer_that_closes_its_connection_is_reported_at_once() {
    let mut pair = Pair::new(22, 0.0, raw_config());
    pair.connect();
    // No signaling carries the close: only the wire says it.
    pair.a.signals_on = false;
    let now = pair.now;
    pair.a.link.close(now, None);
    // Only what the close itself put out reaches b: a driver drops a link
    // at once after closing it.
    while let Some(io) = pair.a.link.rtc_mut().poll_io() {
        if let NativeOutput::Transmit { source, destination, contents } = io {
            pair.wire.push(Packet { at: now + LATENCY, to_a: false, source, destination, data: contents });
        }
    }
    pair.gone.push("192.0.2.1:5000".parse().expect("addr"));
    pair.run_until(Duration::from_secs(1), |p| p.b.link.state() == LinkState::Closed);
    assert!(pair.b.events.contains(&LinkEvent::Ended(DisconnectReason::ClosedByPeer(None))), "{:?}", pair.b.events);
}

#[test]
fn a_raw_offer_asks_to_be_dtls_client_and_carries_no_snap() {
    let now = Instant::now();
    let hosts = ["192.0.2.1:5000".parse().expect("addr")];
    let mut raw = Str0mRtc::new(now, str0m_config(&raw_config()), &hosts);
    raw.offer(now, 1).expect("offer");
    let sdp = offer_of(&mut raw);
    assert!(sdp.contains("a=setup:active") && !sdp.contains("a=sctp-init"), "{sdp}");
    let mut framed = Str0mRtc::new(now, str0m_config(&LinkConfig::default()), &hosts);
    framed.offer(now, 1).expect("offer");
    let sdp = offer_of(&mut framed);
    assert!(sdp.contains("a=setup:actpass") && sdp.contains("a=sctp-init"), "{sdp}");
}

#[test]
fn an_answer_that_echoes_our_snap_value_is_taken_without_snap() {
    let now = Instant::now();
    let cfg = str0m_config(&LinkConfig::default());
    let mut a = Str0mRtc::new(now, cfg.clone(), &["192.0.2.1:5000".parse().expect("addr")]);
    let mut b = Str0mRtc::new(now, cfg, &["192.0.2.2:5000".parse().expect("addr")]);
    a.offer(now, 1).expect("offer");
    let offer = offer_of(&mut a);
    b.answer(now, 1, &offer).expect("answer");
    let answer = std::iter::from_fn(|| b.poll_event())
        .find_map(|e| match e {
            RtcEvent::Signal(SignalData::Answer { sdp, .. }) => Some(sdp),
            _ => None,
        })
        .expect("an answer");
    // As libdatachannel does: the offer's own value copied into the answer.
    let ours = sdp_attribute(&offer, "sctp-init").expect("the offer has SNAP");
    let theirs = sdp_attribute(&answer, "sctp-init").expect("the answer has SNAP");
    let echoed = answer.replace(&theirs, &ours);
    assert!(a.accept_answer(now, &echoed).is_ok(), "an echoed a=sctp-init does not end the link");
}

#[test]
fn a_raw_link_sends_a_message_as_large_as_the_other_side_allows_whole() {
    let mut pair = Pair::new(23, 0.0, raw_config());
    assert_eq!(pair.a.link.max_raw_message(), 64 << 10, "64 KiB until the other side's description says more");
    pair.connect();
    let max = pair.a.link.max_raw_message();
    assert_eq!(max, crate::link::RAW_MAX_MESSAGE, "str0m's answer advertises 256 KiB");
    pair.send_a(0, OutMessage::data(Bytes::from(vec![7; max])));
    pair.run_until(Duration::from_secs(2), |p| !messages(&p.b.events).is_empty());
    let got = messages(&pair.b.events);
    assert_eq!((got.len(), got[0].data.len()), (1, max), "one data-channel message, whole");
}

#[test]
fn an_offering_raw_link_connects_once_its_own_in_band_channel_is_open() {
    let cfg = LinkConfig { channels: vec![crate::ChannelConfig::reliable("dcep").in_band()], ..raw_config() };
    let mut pair = Pair::new(24, 0.0, cfg);
    pair.connect();
    let at = |pred: &dyn Fn(&LinkEvent) -> bool| pair.a.events.iter().position(pred).expect("the event");
    let opened = at(&|e| matches!(e, LinkEvent::ChannelOpen { label, .. } if label == "dcep"));
    let connected = at(&|e| matches!(e, LinkEvent::Connected { .. }));
    assert!(opened < connected, "connected before its channel opened: {:?}", pair.a.events);
}
