//! The link core on a virtual clock, over a scripted WebRTC side: the
//! decisions both backends share (sessions, restart pacing, the give-up
//! rule, the relay and the move back, credit), without any real stack.

use std::time::Duration;

use bytes::Bytes;
use switchboard_proto::SignalData;
use web_time::Instant;

use super::core::{LinkConfig, LinkCore, LinkEvent, LinkOutput, MAX_CHANNELS, Role, RtcError, RtcEvent};
use super::scripted::{Net, Scripted};
use super::server_relay::ServerRelaySetup;
use super::{DisconnectReason, LinkState, PathKind};
use crate::framing::OutMessage;

type Link = LinkCore<Scripted>;

/// Two links over one scripted net, with a relay between them (15 ms).
struct Pair {
    now: Instant,
    sides: [Link; 2],
    events: [Vec<LinkEvent>; 2],
    /// Signals and relay frames on their way: (when, to side, what).
    mail: Vec<(Instant, usize, Either)>,
    /// Signals delivered (the server is reachable).
    signaling: bool,
    net: Net,
    consume: [bool; 2],
}

enum Either {
    Signal(SignalData),
    Frame(Vec<u8>),
}

const HOP: Duration = Duration::from_millis(15);

fn config() -> LinkConfig {
    LinkConfig { reconnect_timeout: Duration::from_secs(15), ..LinkConfig::default() }
}

impl Pair {
    fn new(cfg: LinkConfig, relay_after: Option<Duration>) -> Pair {
        let now = Instant::now();
        let net = Net::default();
        let mut a = Link::new(now, Role::Offerer, cfg.clone(), net.rtc(), true);
        let mut b = Link::new(now, Role::Answerer, cfg, net.rtc(), true);
        if let Some(after) = relay_after {
            let (ia, ib) = (crate::Identity::from_secret_bytes([1; 32]), crate::Identity::from_secret_bytes([2; 32]));
            let setup = |me: &crate::Identity, other: &crate::Identity| ServerRelaySetup {
                identity: me.clone(),
                local: me.peer_id(),
                remote: other.peer_id(),
                after,
                bytes_per_sec: 4 << 20,
                frames_per_sec: 1000,
                max_payload: 64 << 10,
            };
            a.enable_server_relay(setup(&ia, &ib), [3; 32]);
            b.enable_server_relay(setup(&ib, &ia), [4; 32]);
        }
        a.start(now).expect("offer");
        Pair {
            now,
            sides: [a, b],
            events: [Vec::new(), Vec::new()],
            mail: Vec::new(),
            signaling: true,
            net,
            consume: [true; 2],
        }
    }

    /// Drains both sides, delivers what is due, and moves the clock to the
    /// next thing that happens (at most `step`).
    fn step(&mut self, step: Duration) {
        self.drain();
        let next = [self.sides[0].poll_timeout(), self.sides[1].poll_timeout()]
            .into_iter()
            .flatten()
            .chain(self.mail.iter().map(|m| m.0))
            .min()
            .unwrap_or(self.now + step);
        self.now = next.clamp(self.now + Duration::from_micros(100), self.now + step);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = self.mail.drain(..).partition(|m| m.0 <= now);
        self.mail = rest;
        for (_, to, what) in due {
            match what {
                Either::Signal(s) => {
                    let _ = self.sides[to].handle_signal(now, s);
                }
                Either::Frame(f) => self.sides[to].handle_server_relay(now, &f),
            }
        }
        for side in &mut self.sides {
            side.handle_timeout(now);
        }
    }

    /// Takes what both sides have for the other and for the application.
    fn drain(&mut self) {
        for i in 0..2 {
            self.sides[i].drive(self.now);
            while let Some(out) = self.sides[i].poll_output() {
                match out {
                    LinkOutput::Signal(s) if self.signaling => {
                        self.mail.push((self.now + HOP, 1 - i, Either::Signal(s)))
                    }
                    LinkOutput::Signal(_) => {}
                    LinkOutput::ServerRelay(f) => self.mail.push((self.now + HOP, 1 - i, Either::Frame(f))),
                    LinkOutput::NetworkBack => {}
                    LinkOutput::Event(e) => {
                        if let (LinkEvent::Message(m), true) = (&e, self.consume[i]) {
                            let len = m.data.len();
                            self.sides[i].consumed(self.now, len);
                        }
                        self.events[i].push(e);
                    }
                }
            }
        }
    }

    fn run(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            self.drain();
            if done(self) {
                return true;
            }
            self.step(Duration::from_millis(50));
        }
        self.drain();
        done(self)
    }

    fn connected(&self, i: usize) -> bool {
        self.sides[i].state() == LinkState::Connected
    }

    fn send(&mut self, i: usize, n: u8) {
        let now = self.now;
        self.sides[i].send(now, 0, OutMessage::data(Bytes::from(vec![n; 3000])));
    }

    fn received(&self, i: usize) -> Vec<u8> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                LinkEvent::Message(m) => Some(m.data[0]),
                _ => None,
            })
            .collect()
    }

    fn paths(&self, i: usize) -> Vec<PathKind> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                LinkEvent::Connected { path, .. } | LinkEvent::PathChanged(path) => Some(*path),
                _ => None,
            })
            .collect()
    }

    fn cut(&mut self, cut: bool) {
        self.net.set_cut(cut);
        if cut {
            let now = self.now;
            for side in &mut self.sides {
                side.rtc_mut().lose(now);
            }
        }
    }
}

fn states(link: &Link) -> Vec<LinkState> {
    link.history().into_iter().map(|(_, s)| s).collect()
}

#[test]
fn offer_and_answer_connect_both_sides_and_messages_cross() {
    let mut p = Pair::new(config(), None);
    assert!(p.run(Duration::from_secs(1), |p| p.connected(0) && p.connected(1)));
    use LinkState::*;
    assert_eq!(states(&p.sides[0]), [New, Signaling, Connecting, Connected]);
    assert_eq!(states(&p.sides[1]), [New, Signaling, Connecting, Connected]);
    assert_eq!(p.paths(1), [PathKind::Host]);
    for n in 0..10 {
        p.send(0, n);
    }
    assert!(p.run(Duration::from_secs(1), |p| p.received(1).len() == 10));
    assert_eq!(p.received(1), (0..10).collect::<Vec<u8>>());
}

#[test]
fn a_lost_path_is_sought_at_the_same_pace_and_given_up_after_the_reconnect_timeout() {
    let mut p = Pair::new(config(), None);
    assert!(p.run(Duration::from_secs(1), |p| p.connected(0) && p.connected(1)));
    let lost = p.now;
    p.cut(true);
    p.step(Duration::from_millis(1));
    assert_eq!(p.sides[0].state(), LinkState::Reconnecting);
    // The offering side makes new sessions 0, 0.5, 1.5, 3.5, 7.5, 11.5 s after the loss...
    p.run(Duration::from_secs(14), |_| false);
    let offers = p.sides[0].rtc().offers.clone();
    assert!(offers.len() >= 6, "new sessions: {offers:?}");
    assert!(offers.windows(2).all(|w| w[1] == w[0] + 1), "numbered in order: {offers:?}");
    // ...and gives up 15 s after it.
    assert!(p.run(Duration::from_secs(2), |p| p.sides[0].state() == LinkState::Failed));
    assert!(p.now - lost >= Duration::from_secs(15));
    assert!(p.events[0].contains(&LinkEvent::Ended(DisconnectReason::PathLost)));
    assert!(p.events[1].iter().any(|e| matches!(e, LinkEvent::Ended(_))), "the other side ends too");
}

#[test]
fn a_new_session_brings_the_link_back_and_what_was_lost_goes_again() {
    let mut p = Pair::new(config(), None);
    assert!(p.run(Duration::from_secs(1), |p| p.connected(0) && p.connected(1)));
    p.cut(true);
    for n in 0..20 {
        p.send(0, n);
    }
    p.run(Duration::from_secs(2), |_| false);
    assert!(p.received(1).is_empty());
    p.net.set_cut(false);
    assert!(p.run(Duration::from_secs(5), |p| p.received(1).len() == 20 && p.connected(0) && p.connected(1)));
    assert_eq!(p.received(1), (0..20).collect::<Vec<u8>>(), "once each, in order");
    use LinkState::*;
    assert_eq!(states(&p.sides[1]), [New, Signaling, Connecting, Connected, Reconnecting, Connected]);
}

#[test]
fn an_offer_still_unanswered_is_sent_again_not_replaced() {
    let mut p = Pair::new(config(), None);
    assert!(p.run(Duration::from_secs(1), |p| p.connected(0) && p.connected(1)));
    p.signaling = false;
    p.cut(true);
    p.run(Duration::from_secs(8), |_| false);
    assert_eq!(p.sides[0].rtc().offers, [0, 1], "one new session while its offer waits");
    assert_eq!(p.sides[0].session(), 1);
}

#[test]
fn a_restart_request_moves_a_live_path_by_ice_restart_and_a_young_session_ignores_it() {
    let mut p = Pair::new(config(), None);
    assert!(p.run(Duration::from_secs(1), |p| p.connected(0) && p.connected(1)));
    let now = p.now;
    p.sides[0].handle_signal(now, SignalData::Restart).expect("restart");
    p.step(Duration::from_millis(1));
    assert_eq!(p.sides[0].rtc().ice_restarts, 1, "this side still hears the path: ICE restart");
    assert_eq!(p.sides[0].rtc().offers, [0], "no new session");
    p.run(Duration::from_millis(200), |_| false);
    // The path is lost here too, and a new session starts; a restart request
    // right after it is the answer to ones sent before it arrived.
    p.cut(true);
    p.step(Duration::from_millis(1));
    p.run(Duration::from_millis(100), |_| false);
    let sessions = p.sides[0].rtc().offers.len();
    let now = p.now;
    p.sides[0].handle_signal(now, SignalData::Restart).expect("restart");
    p.step(Duration::from_millis(1));
    assert_eq!(p.sides[0].rtc().offers.len(), sessions, "a young session is not replaced");
}

#[test]
fn a_bad_description_ends_the_link_with_a_protocol_error() {
    let now = Instant::now();
    let mut b = Link::new(now, Role::Answerer, config(), Net::default().rtc(), true);
    let e = b.handle_signal(now, SignalData::Offer { sdp: "garbage".into(), session: 0 });
    assert!(matches!(e, Err(RtcError::Sdp(_))));
    assert_eq!(b.state(), LinkState::Failed);
    let mut ended = false;
    while let Some(out) = b.poll_output() {
        ended |= matches!(out, LinkOutput::Event(LinkEvent::Ended(DisconnectReason::Protocol(_))));
    }
    assert!(ended);
}

#[test]
fn without_webrtc_the_relay_carries_after_its_delay_and_the_data_moves_back_when_a_session_is_up() {
    let mut p = Pair::new(config(), Some(Duration::from_secs(5)));
    p.net.set_cut(true);
    assert!(p.run(Duration::from_secs(7), |p| p.connected(0) && p.connected(1)));
    assert_eq!(p.paths(0), [PathKind::Server]);
    let setup = p.sides[0].stats().setup_time.expect("setup time");
    assert!(setup >= Duration::from_secs(5) && setup < Duration::from_secs(6), "{setup:?}");
    for n in 0..30 {
        p.send(0, n);
    }
    assert!(p.run(Duration::from_secs(5), |p| p.received(1).len() == 30));
    p.net.set_cut(false);
    for n in 30..60 {
        p.send(0, n);
    }
    assert!(p.run(Duration::from_secs(10), |p| p.paths(0).last() == Some(&PathKind::Host)));
    assert!(p.run(Duration::from_secs(5), |p| p.received(1).len() == 60));
    assert_eq!(p.received(1), (0..60).collect::<Vec<u8>>(), "nothing lost, repeated or reordered");
}

#[test]
fn a_reader_that_falls_behind_stops_its_sender_per_link() {
    let cfg = LinkConfig { window: 256 << 10, chunk_size: 16 << 10, ..config() };
    let mut p = Pair::new(cfg, None);
    assert!(p.run(Duration::from_secs(1), |p| p.connected(0) && p.connected(1)));
    p.consume[1] = false;
    for n in 0..200 {
        p.send(0, n);
    }
    p.run(Duration::from_secs(3), |_| false);
    let got = p.received(1).len();
    assert!(got * 3000 <= 2 * (256 << 10), "{got} messages over a 256 KiB window");
    assert!(p.sides[1].app_full());
    assert!(p.sides[0].queued() > 0, "the sender keeps the rest");
    let now = p.now;
    let unread = got * 3000;
    p.consume[1] = true;
    p.sides[1].consumed(now, unread);
    assert!(p.run(Duration::from_secs(10), |p| p.received(1).len() == 200));
}

#[test]
fn a_peer_that_opens_channels_without_end_is_cut_off() {
    let mut p = Pair::new(config(), None);
    assert!(p.run(Duration::from_secs(1), |p| p.connected(0) && p.connected(1)));
    let first = p.sides[1].channels().len();
    for slot in first..first + MAX_CHANNELS + 10 {
        let config = crate::ChannelConfig::reliable(format!("c{slot}"));
        p.net.inject(2, RtcEvent::Opened { slot, config });
    }
    assert!(p.run(Duration::from_secs(1), |p| p.sides[1].state() == LinkState::Failed));
    let opened = p.events[1].iter().filter(|e| matches!(e, LinkEvent::ChannelOpen { .. })).count();
    assert_eq!(opened, MAX_CHANNELS - first, "channels up to the limit, not one more");
    let ended = p.events[1].iter().find_map(|e| match e {
        LinkEvent::Ended(DisconnectReason::Protocol(why)) => Some(why.clone()),
        _ => None,
    });
    assert!(ended.is_some_and(|why| why.contains("limit of 1000 channels")));
}

#[test]
fn a_raw_link_opens_and_closes_channels_at_run_time_and_refuses_sends_on_a_closed_one() {
    use crate::error::{ChannelError, SendError};
    let mut p = Pair::new(LinkConfig { raw: true, ..config() }, None);
    assert!(p.run(Duration::from_secs(1), |p| p.connected(0) && p.connected(1)));
    let now = p.now;
    let declared = p.sides[0].channels().len();
    let slot = p.sides[0].open_channel(now, crate::ChannelConfig::reliable("late")).expect("opens");
    assert_eq!(slot, declared, "the next slot");
    assert_eq!(
        p.sides[0].open_channel(now, crate::ChannelConfig::reliable("late")),
        Err(ChannelError::LabelTaken("late".into()))
    );
    p.drain();
    assert!(p.events[0].contains(&LinkEvent::ChannelOpen { slot, label: "late".into() }));
    assert_eq!(p.sides[0].slot_of("late"), Ok(slot));

    p.sides[0].close_channel(now, "late").expect("closes");
    p.drain();
    assert!(p.events[0].contains(&LinkEvent::ChannelClosed { slot, label: "late".into() }));
    assert_eq!(p.sides[0].slot_of("late"), Err(SendError::ChannelClosed("late".into())));
    assert_eq!(p.sides[0].close_channel(now, "late"), Err(ChannelError::UnknownChannel("late".into())));
    assert_eq!(p.sides[0].slot_of("never"), Err(SendError::UnknownChannel("never".into())));
    // The label is free again, on a new slot.
    let again = p.sides[0].open_channel(now, crate::ChannelConfig::reliable("late")).expect("opens again");
    assert_eq!((again, p.sides[0].slot_of("late")), (slot + 1, Ok(slot + 1)));
    assert_eq!(p.sides[0].state(), LinkState::Connected, "the link stays");

    let long = "x".repeat(super::core::MAX_LABEL + 1);
    assert!(matches!(
        p.sides[0].open_channel(now, crate::ChannelConfig::reliable(long)),
        Err(ChannelError::Limit { .. })
    ));
}

#[test]
fn a_framed_link_has_no_run_time_channels() {
    use crate::error::ChannelError;
    let mut p = Pair::new(config(), None);
    assert!(p.run(Duration::from_secs(1), |p| p.connected(0) && p.connected(1)));
    let now = p.now;
    assert_eq!(p.sides[0].open_channel(now, crate::ChannelConfig::reliable("late")), Err(ChannelError::NotRaw));
    assert_eq!(p.sides[0].close_channel(now, "reliable"), Err(ChannelError::NotRaw));
}

#[test]
fn a_run_time_channel_that_does_not_open_in_time_closes_and_the_link_stays() {
    use crate::error::SendError;
    let mut p = Pair::new(LinkConfig { raw: true, ..config() }, None);
    assert!(p.run(Duration::from_secs(1), |p| p.connected(0) && p.connected(1)));
    p.sides[0].rtc_mut().hold_channels = true;
    let (now, timeout) = (p.now, config().connect_timeout);
    let slot = p.sides[0].open_channel(now, crate::ChannelConfig::reliable("slow")).expect("asked for");
    p.sides[0].send(now, slot, OutMessage::data(Bytes::from_static(b"waits")));
    let closed = LinkEvent::ChannelClosed { slot, label: "slow".into() };
    assert!(!p.run(timeout - Duration::from_millis(100), |p| p.events[0].contains(&closed)), "not before its time");
    assert!(p.run(Duration::from_millis(200), |p| p.events[0].contains(&closed)), "closed at the connect timeout");
    assert_eq!(p.sides[0].slot_of("slow"), Err(SendError::ChannelClosed("slow".into())));
    assert_eq!(p.sides[0].state(), LinkState::Connected);
}
