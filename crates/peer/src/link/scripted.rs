//! A scripted WebRTC side for the virtual-clock tests of the link and node
//! cores: descriptions are made at once, a session is up once both sides
//! described it (unless the net is cut), and writes cross a shared
//! in-memory [`Net`] to the side the descriptions paired it with.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use switchboard_proto::SignalData;
use web_time::Instant;

use super::PathKind;
use super::core::{Rtc, RtcError, RtcEvent, RtcStats};
use super::transfer::Lane;

#[derive(Default)]
struct Inner {
    next: usize,
    /// What each side has coming.
    to: HashMap<usize, VecDeque<RtcEvent>>,
    /// Which side each side talks to.
    pairs: HashMap<usize, usize>,
    cut: bool,
}

/// The in-memory network scripted sides share.
#[derive(Clone, Default)]
pub(crate) struct Net(Rc<RefCell<Inner>>);

impl Net {
    /// A new side on this net.
    pub(crate) fn rtc(&self) -> Scripted {
        let mut inner = self.0.borrow_mut();
        inner.next += 1;
        Scripted {
            id: inner.next,
            net: self.clone(),
            session: None,
            described: false,
            remote: false,
            up: false,
            offers: Vec::new(),
            ice_restarts: 0,
            hold_channels: false,
            events: VecDeque::new(),
        }
    }

    /// Cuts the path between every pair (writes are lost), or heals it.
    pub(crate) fn set_cut(&self, cut: bool) {
        self.0.borrow_mut().cut = cut;
    }

    fn cut(&self) -> bool {
        self.0.borrow().cut
    }

    fn pair(&self, a: usize, b: usize) {
        let mut inner = self.0.borrow_mut();
        inner.pairs.insert(a, b);
        inner.pairs.insert(b, a);
    }

    fn send(&self, from: usize, event: RtcEvent) {
        let mut inner = self.0.borrow_mut();
        if inner.cut {
            return;
        }
        if let Some(&to) = inner.pairs.get(&from) {
            inner.to.entry(to).or_default().push_back(event);
        }
    }

    /// Hands `event` to side `side` (sides count from 1 in the order
    /// [`Net::rtc`] made them), as a hostile other side would cause it.
    pub(crate) fn inject(&self, side: usize, event: RtcEvent) {
        self.0.borrow_mut().to.entry(side).or_default().push_back(event);
    }

    fn take(&self, me: usize) -> Option<RtcEvent> {
        self.0.borrow_mut().to.get_mut(&me)?.pop_front()
    }
}

/// One scripted side.
pub(crate) struct Scripted {
    id: usize,
    net: Net,
    session: Option<u32>,
    described: bool,
    remote: bool,
    up: bool,
    /// The sessions this side offered, in order.
    pub(crate) offers: Vec<u32>,
    /// ICE restarts this side offered.
    pub(crate) ice_restarts: u32,
    /// Channels opened at run time never open (the other side has no
    /// stream for them).
    pub(crate) hold_channels: bool,
    events: VecDeque<RtcEvent>,
}

impl Scripted {
    fn maybe_up(&mut self) {
        if self.described && self.remote && !self.up && !self.net.cut() {
            self.up = true;
            let session = self.session.unwrap_or(0);
            self.events.push_back(RtcEvent::Up { session, path: Some(PathKind::Host) });
        }
    }

    /// The path went away: the side says so, as silence detection would.
    pub(crate) fn lose(&mut self, now: Instant) {
        if self.up {
            self.up = false;
            self.events.push_back(RtcEvent::Down { session: self.session.unwrap_or(0), since: now });
        }
    }
}

/// The side id a scripted description names.
fn named(sdp: &str) -> Option<usize> {
    sdp.split_whitespace().nth(1)?.parse().ok()
}

impl Rtc for Scripted {
    fn offer(&mut self, _now: Instant, id: u32) -> Result<(), RtcError> {
        self.session = Some(id);
        self.offers.push(id);
        self.described = true;
        self.remote = false;
        self.up = false;
        let sdp = format!("offer {} {id}\na=fingerprint:sha-256 {:02X}\n", self.id, self.id);
        self.events.push_back(RtcEvent::Signal(SignalData::Offer { sdp, session: id }));
        Ok(())
    }

    fn answer(&mut self, _now: Instant, id: u32, sdp: &str) -> Result<(), RtcError> {
        let offerer = named(sdp).ok_or_else(|| RtcError::Sdp("not a scripted offer".into()))?;
        self.net.pair(self.id, offerer);
        if self.session != Some(id) {
            self.up = false;
        }
        self.session = Some(id);
        self.described = true;
        self.remote = true;
        let answer = format!("answer {} {id}\na=fingerprint:sha-256 {:02X}\n", self.id, self.id);
        self.events.push_back(RtcEvent::Signal(SignalData::Answer { sdp: answer, session: id }));
        self.maybe_up();
        Ok(())
    }

    fn accept_answer(&mut self, _now: Instant, sdp: &str) -> Result<(), RtcError> {
        let answerer = named(sdp).ok_or_else(|| RtcError::Sdp("not a scripted answer".into()))?;
        self.net.pair(self.id, answerer);
        self.remote = true;
        self.maybe_up();
        Ok(())
    }

    fn restart_ice(&mut self, _now: Instant) -> Result<(), RtcError> {
        self.ice_restarts += 1;
        let id = self.session.unwrap_or(0);
        let sdp = format!("offer {} {id} restart\na=fingerprint:sha-256 {:02X}\n", self.id, self.id);
        self.events.push_back(RtcEvent::Signal(SignalData::Offer { sdp, session: id }));
        Ok(())
    }

    fn add_candidate(&mut self, _now: Instant, _line: &str, _mid: Option<&str>) -> Result<(), RtcError> {
        Ok(())
    }

    fn attempt(&mut self, _now: Instant) {}

    fn is_open(&self, _slot: usize) -> bool {
        self.up
    }

    fn open_channel(&mut self, slot: usize, config: &crate::ChannelConfig) -> Result<(), RtcError> {
        // Open at once on a live session (the other side is not told).
        if self.up && !self.hold_channels {
            self.events.push_back(RtcEvent::Opened { slot, config: config.clone() });
        }
        Ok(())
    }

    fn close_channel(&mut self, slot: usize) {
        self.events.push_back(RtcEvent::Closed { slot });
    }

    fn write(&mut self, slot: usize, data: &[u8], text: bool) -> Result<bool, String> {
        self.net.send(self.id, RtcEvent::Chunk { slot, data: data.to_vec(), text });
        Ok(true)
    }

    fn write_internal(&mut self, lane: Lane, data: &[u8]) {
        self.net.send(self.id, RtcEvent::Internal { lane, data: data.to_vec() });
    }

    fn poll_event(&mut self) -> Option<RtcEvent> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if self.up { self.net.take(self.id) } else { None }
    }

    fn stats(&self) -> RtcStats {
        RtcStats { restarts: self.offers.len().saturating_sub(1) as u32 + self.ice_restarts, ..RtcStats::default() }
    }

    fn close(&mut self) {
        self.up = false;
    }
}
