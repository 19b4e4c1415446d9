//! The WebRTC side of a native link, over str0m, sans-IO.
//!
//! [`Str0mRtc`] implements [`Rtc`](crate::link::Rtc) for the link core: one
//! str0m [`Rtc`] per session, with the link's channels pre-negotiated, the
//! session descriptions and trickled candidates, ICE restarts, and what
//! only a stack that owns its UDP sockets does: candidate gathering through
//! STUN and TURN (`ice::gather`), silence detection on the selected pair,
//! beacons along a lost path, and the path's kind from the selected pair.
//! It never reads a clock or touches a socket: the native driver hands it
//! datagrams and time and carries out its [`NativeOutput`]s.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, CandidateKind, Event as Str0mEvent, IceConnectionState, Input};
use switchboard_proto::SignalData;

use super::beacon::{self, Beacons};
use crate::channel::ChannelConfig;
use crate::ice::gather::{Connect, Gatherer, Route, Taken};
use crate::link::control::{self, CONTROL_LABEL, PROBE_LABEL};
use crate::link::transfer::Lane;
use crate::link::{PathKind, RAW_MAX_MESSAGE, Rtc, RtcError, RtcEvent, RtcStats};

/// Timer step while a session comes up.
const SETUP_TICK: Duration = Duration::from_millis(2);
/// How long a raw close waits for the other side to answer its stream resets.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// First STUN retransmission of connectivity checks.
const STUN_INITIAL_RTO: Duration = Duration::from_millis(100);
/// Longest pause between STUN keep-alives on the selected pair, so that a
/// live path is never silent for long.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// Remote candidates kept before the remote description arrives.
const EARLY_CANDIDATES: usize = 64;

/// What the native driver must do for a link, besides what the link core asks.
#[derive(Debug)]
pub(crate) enum NativeOutput {
    /// Send a datagram.
    Transmit {
        /// From this local address.
        source: SocketAddr,
        /// To this address.
        destination: SocketAddr,
        /// The bytes.
        contents: Vec<u8>,
    },
    /// Open a TCP (or TLS) stream to a TURN server; report with
    /// [`Str0mRtc::stream_connected`] / [`Str0mRtc::stream_closed`].
    OpenStream(Connect),
    /// Write bytes to a stream.
    StreamSend {
        /// The stream.
        stream: usize,
        /// The bytes.
        contents: Vec<u8>,
    },
    /// Close a stream once what was written to it is out.
    CloseStream(usize),
    /// Gathering starts afresh (fresh TURN credentials): hand
    /// [`Str0mRtc::regather`] a gatherer with the node's current ICE servers.
    Regather,
    /// An attempt to get a lost path back begins: the machine's addresses
    /// may have changed (a network switch); if they did, bind the new ones
    /// and hand them to [`Str0mRtc::rehost`].
    CheckHosts,
}

/// Settings of the str0m side.
#[derive(Clone)]
pub(crate) struct Str0mConfig {
    /// Declared channels.
    pub(crate) channels: Vec<ChannelConfig>,
    /// Raw mode: no control and probe channels, no beacons.
    pub(crate) raw: bool,
    /// Largest chunk the link writes.
    pub(crate) chunk_size: usize,
    /// Bytes str0m may hold unacknowledged.
    pub(crate) sctp_buffer: usize,
    /// Silence after which a live path counts as lost.
    pub(crate) dead_after: Duration,
    /// The node's DTLS certificate (one per link when unset).
    pub(crate) cert: Option<str0m::config::DtlsCert>,
    /// Every address of this machine (loopback too), host candidates or not:
    /// a peer that reaches us from one of them is on this machine.
    pub(crate) machine: Vec<std::net::IpAddr>,
}

struct Slot {
    config: ChannelConfig,
    id: Option<ChannelId>,
    open: bool,
    origin: Origin,
    /// This side closed it: no session opens it again.
    shut: bool,
}

/// Where a channel slot came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// Declared on the node: every session opens it (an in-band one from
    /// the offering side; the answering side takes the other side's).
    Declared,
    /// Opened on this live link by the application, in band.
    Local,
    /// Opened by the other side in band, and not one this side declared.
    Remote,
}

/// The str0m side of one link.
pub(crate) struct Str0mRtc {
    rtc: str0m::Rtc,
    /// This side closed the session (a `Closed` from str0m is our own).
    closing: bool,
    /// A raw close waits for the other side's stream resets until then.
    close_by: Option<Instant>,
    /// End of candidates was reported for the current gatherer.
    gathering_reported: bool,
    /// The `a=sctp-init` value of this side's last offer: an answer that
    /// echoes it (some stacks copy the line) did not take part in SNAP.
    offered_sctp_init: Option<String>,
    cfg: Str0mConfig,
    now: Instant,
    /// The current session.
    session: u32,
    slots: Vec<Slot>,
    by_id: HashMap<ChannelId, usize>,
    control: Option<ChannelId>,
    control_open: bool,
    probe: Option<ChannelId>,
    pending_offer: Option<SdpPendingOffer>,
    /// The current session has both descriptions.
    have_remote: bool,
    early_candidates: Vec<Candidate>,
    /// The current session's first description went out: candidates trickle.
    described: bool,
    ice_connected: bool,
    dtls_connected: bool,
    /// The current session was reported up, and not lost since.
    up: bool,
    /// The current session was reported lost.
    lost: bool,
    /// No session has had a path since one was lost (beacons go and are
    /// heard until one is up again, across new sessions).
    seeking: bool,
    /// An ICE restart is under way: ICE passes through `disconnected`
    /// while the new candidates arrive, which is no loss of the path.
    restarting: bool,
    /// The node has fresh TURN credentials: the next restart gathers afresh.
    renew_pending: bool,
    /// The last answer this (answering) side gave, for an offer that comes again.
    last_answer: Option<String>,
    /// The other side's current ICE username fragment.
    remote_ufrag: Option<String>,
    local_kinds: HashMap<SocketAddr, CandidateKind>,
    remote_kinds: HashMap<SocketAddr, CandidateKind>,
    selected: Option<(SocketAddr, SocketAddr)>,
    reported_path: Option<PathKind>,
    /// Every local candidate, for a new session.
    local_candidates: Vec<Candidate>,
    /// Local candidates the gatherer added (dropped when it is replaced).
    gathered: Vec<Candidate>,
    gather: Option<Gatherer>,
    last_heard: Instant,
    beacons: Option<Beacons>,
    beacon_reported: Option<Instant>,
    restarts: u32,
    rtt: Option<Duration>,
    /// str0m's next timeout.
    str0m_at: Instant,
    /// Something went in since str0m's outputs were last drained: the next
    /// poll drains them again (a clean side costs nothing to poll).
    dirty: bool,
    events: VecDeque<RtcEvent>,
    io: VecDeque<NativeOutput>,
}

impl Str0mRtc {
    /// The str0m side of a new link at `now`, with host candidates for `hosts`.
    pub(crate) fn new(now: Instant, cfg: Str0mConfig, hosts: &[SocketAddr]) -> Self {
        let mut slots = Vec::new();
        for c in &cfg.channels {
            slots.push(Slot { config: c.clone(), id: None, open: false, origin: Origin::Declared, shut: false });
        }
        let mut me = Str0mRtc {
            rtc: build_rtc(now, &cfg),
            closing: false,
            close_by: None,
            gathering_reported: false,
            offered_sctp_init: None,
            cfg,
            now,
            session: 0,
            slots,
            by_id: HashMap::new(),
            control: None,
            control_open: false,
            probe: None,
            pending_offer: None,
            have_remote: false,
            early_candidates: Vec::new(),
            described: false,
            ice_connected: false,
            dtls_connected: false,
            up: false,
            lost: false,
            seeking: false,
            restarting: false,
            renew_pending: false,
            last_answer: None,
            remote_ufrag: None,
            local_kinds: HashMap::new(),
            remote_kinds: HashMap::new(),
            selected: None,
            reported_path: None,
            local_candidates: Vec::new(),
            gathered: Vec::new(),
            gather: None,
            last_heard: now,
            beacons: None,
            beacon_reported: None,
            restarts: 0,
            rtt: None,
            str0m_at: now,
            dirty: true,
            events: VecDeque::new(),
            io: VecDeque::new(),
        };
        for &addr in hosts {
            match Candidate::host(addr, "udp") {
                Ok(c) => me.add_local_candidate(c),
                Err(e) => tracing::debug!(%addr, error = %e, "no host candidate"),
            }
        }
        me
    }

    /// Gathers server-reflexive and relayed candidates with `gatherer`.
    pub(crate) fn set_gatherer(&mut self, gatherer: Gatherer) {
        self.dirty = true;
        self.gather = Some(gatherer);
    }

    /// The node has fresh TURN credentials: the next ICE restart gathers afresh.
    pub(crate) fn renew_pending(&mut self) {
        self.renew_pending = true;
    }

    /// Takes a datagram received on one of the link's sockets.
    pub(crate) fn handle_datagram(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        self.advance(now);
        if let Some(g) = &mut self.gather {
            match g.handle_udp(now, destination, source, data) {
                Taken::No => {}
                Taken::Yes => return,
                Taken::Relayed(r) => {
                    self.receive(r.peer, r.relayed, &r.data);
                    return self.finish_close();
                }
            }
        }
        self.receive(source, destination, data);
        self.finish_close();
    }

    /// Whether a raw close still waits for the other side's answers: the
    /// driver keeps the link's sockets and feeds it until it does not.
    pub(crate) fn lingering(&self) -> bool {
        self.close_by.is_some()
    }

    /// Ends a lingering raw close once every channel is closed on both
    /// ends, or its time is up: DTLS close_notify goes out.
    fn finish_close(&mut self) {
        let Some(by) = self.close_by else { return };
        self.dirty = true;
        self.pump();
        if self.slots.iter().any(|s| s.open) && self.now < by {
            return;
        }
        self.close_by = None;
        self.dirty = true;
        if self.rtc.close().is_err() {
            self.rtc.disconnect();
        }
        self.pump();
    }

    /// The driver connected TURN stream `id` from `local`.
    pub(crate) fn stream_connected(&mut self, now: Instant, id: usize, local: SocketAddr) {
        self.advance(now);
        if let Some(g) = &mut self.gather {
            g.stream_connected(now, id, local);
        }
    }

    /// TURN stream `id` failed or ended.
    pub(crate) fn stream_closed(&mut self, id: usize) {
        self.dirty = true;
        if let Some(g) = &mut self.gather {
            g.stream_closed(id);
        }
    }

    /// Bytes read from TURN stream `id`.
    pub(crate) fn stream_data(&mut self, now: Instant, id: usize, data: &[u8]) {
        self.advance(now);
        let mut relayed = Vec::new();
        if let Some(g) = &mut self.gather {
            g.stream_data(now, id, data, &mut relayed);
        }
        for r in relayed {
            self.receive(r.peer, r.relayed, &r.data);
        }
    }

    /// Lets time pass.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if let Some(g) = &mut self.gather {
            g.handle_timeout(now);
        }
        // Also before str0m's own timeout: while a session comes up, ticks
        // move ICE faster than str0m's 50 ms pacing.
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(error = %e, "timeout input refused");
        }
        self.finish_close();
        self.send_beacons(now);
        if self.up && now >= self.last_heard + self.cfg.dead_after {
            tracing::debug!(silent_for = ?self.cfg.dead_after, "path silent");
            self.path_lost();
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    pub(crate) fn poll_timeout(&mut self) -> Instant {
        self.pump();
        let mut at = self.str0m_at;
        if let Some(by) = self.close_by {
            at = at.min(by);
        }
        if let Some(t) = self.gather.as_mut().and_then(Gatherer::poll_timeout) {
            at = at.min(t);
        }
        if self.up {
            at = at.min(self.last_heard + self.cfg.dead_after);
        } else if self.described && !self.lost {
            // str0m paces ICE at 50 ms steps; while a session comes up,
            // tick faster so checks and nominations go out at once.
            at = at.min(self.now + SETUP_TICK);
        }
        if let Some(b) = &self.beacons {
            at = at.min(b.poll_timeout());
        }
        at.max(self.now)
    }

    /// The next thing the driver must do.
    pub(crate) fn poll_io(&mut self) -> Option<NativeOutput> {
        if self.io.is_empty() {
            self.pump();
        }
        self.io.pop_front()
    }

    /// Adds a local candidate; once the description is out it is trickled.
    pub(crate) fn add_local_candidate(&mut self, candidate: Candidate) {
        self.dirty = true;
        let addr = candidate.addr();
        let kind = candidate.kind();
        if kind != CandidateKind::Host {
            self.gathered.push(candidate.clone());
        }
        self.local_candidates.push(candidate.clone());
        if let Some(c) = self.rtc.add_local_candidate(candidate) {
            let line = c.to_sdp_string();
            // A server-reflexive address that equals its host address (no
            // NAT between this host and the STUN server) stays a host one.
            if self.local_kinds.get(&addr) != Some(&CandidateKind::Host) {
                self.local_kinds.insert(addr, kind);
            }
            if self.described {
                self.events.push_back(RtcEvent::Signal(SignalData::Candidate { candidate: line, mid: None }));
            }
        }
    }

    /// The machine's addresses changed: host candidates at `gone` (and every
    /// server-reflexive one, whose mappings went with them) are withdrawn,
    /// sockets at `added` become host candidates. The driver then hands over
    /// a new gatherer for its current sockets ([`Self::regather`]).
    pub(crate) fn rehost(&mut self, now: Instant, added: &[SocketAddr], gone: &[SocketAddr]) {
        self.advance(now);
        let stale = |c: &Candidate| {
            (c.kind() == CandidateKind::Host && gone.contains(&c.addr())) || c.kind() == CandidateKind::ServerReflexive
        };
        let mut direct = self.rtc.direct_api();
        for c in self.local_candidates.iter().filter(|c| stale(c)) {
            direct.invalidate_candidate(c);
        }
        self.local_candidates.retain(|c| !stale(c));
        self.gathered.retain(|c| !stale(c));
        for addr in gone {
            self.local_kinds.remove(addr);
        }
        for &addr in added {
            match Candidate::host(addr, "udp") {
                Ok(c) => self.add_local_candidate(c),
                Err(e) => tracing::debug!(%addr, error = %e, "no host candidate for a new address"),
            }
        }
        if let (Some(b), Some(&to)) = (&mut self.beacons, added.first()) {
            b.rebind(gone, to);
        }
    }

    /// Replaces the gatherer: the old one's relayed candidates are dropped
    /// (their allocations may be about to lose their credentials) and the
    /// new one learns the known remote addresses.
    pub(crate) fn regather(&mut self, now: Instant, gatherer: Option<Gatherer>) {
        self.advance(now);
        if self.gather.is_none() && gatherer.is_none() {
            return;
        }
        self.gathering_reported = false;
        // Relayed candidates go with their allocations; server-reflexive
        // ones stay (the new gatherer finds the same mapping again).
        let mut direct = self.rtc.direct_api();
        for c in self.gathered.extract_if(.., |c| c.kind() == CandidateKind::Relayed) {
            direct.invalidate_candidate(&c);
        }
        self.local_candidates.retain(|c| c.kind() != CandidateKind::Relayed);
        let mut gatherer = gatherer;
        if let Some(mut old) = self.gather.take() {
            // The old allocations go first, so that the new ones can be made
            // from the same sockets; then the old streams close.
            let streams = old.release(now);
            while let Some(x) = old.poll_transmit() {
                self.io.push_back(match x.route {
                    Route::Udp(source) => NativeOutput::Transmit { source, destination: x.to, contents: x.data },
                    Route::Stream(stream) => NativeOutput::StreamSend { stream, contents: x.data },
                });
            }
            self.io.extend(streams.into_iter().map(NativeOutput::CloseStream));
            if let Some(g) = &mut gatherer {
                g.follow(&old);
            }
        }
        self.gather = gatherer;
        if let Some(g) = &mut self.gather {
            for &addr in self.remote_kinds.keys() {
                g.add_remote(now, addr);
            }
        }
    }

    fn advance(&mut self, now: Instant) {
        self.dirty = true;
        if now > self.now {
            self.now = now;
        }
    }

    fn receive(&mut self, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        if beacon::is_beacon(data) {
            return self.beacon_heard(source);
        }
        // Only the selected pair counts: ICE checks on other pairs (say
        // through a TURN relay over TCP) do not make a dead path live.
        let on_path = self.selected.is_none_or(|(local, remote)| local == destination && remote == source);
        if on_path && self.now > self.last_heard {
            self.last_heard = self.now;
        }
        // A path that came back by itself, with no restart under way.
        if self.lost && self.ice_connected && self.pending_offer.is_none() {
            self.path_heard_again();
        }
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, data) else {
            tracing::trace!(%source, "ignoring a datagram that is not STUN, DTLS or RTP");
            return;
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(self.now, receive)) {
            tracing::debug!(%source, error = %e, "datagram refused");
        }
    }

    /// Moves what str0m and the gatherer have into the event and I/O queues.
    fn pump(&mut self) {
        if !self.dirty {
            return;
        }
        loop {
            if let Some(g) = &mut self.gather {
                let mut candidates = Vec::new();
                while let Some(c) = g.poll_candidate() {
                    candidates.push(c);
                }
                while let Some(connect) = g.poll_connect() {
                    self.io.push_back(NativeOutput::OpenStream(connect));
                }
                while let Some(x) = g.poll_transmit() {
                    self.io.push_back(match x.route {
                        Route::Udp(source) => NativeOutput::Transmit { source, destination: x.to, contents: x.data },
                        Route::Stream(stream) => NativeOutput::StreamSend { stream, contents: x.data },
                    });
                }
                for c in candidates {
                    self.add_local_candidate(c);
                }
            }
            match self.rtc.poll_output() {
                Ok(str0m::Output::Transmit(t)) => {
                    // The first DTLS record on a pair says which pair carries the session.
                    if t.contents.first().is_some_and(|b| (20..64).contains(b))
                        && self.selected != Some((t.source, t.destination))
                    {
                        self.selected = Some((t.source, t.destination));
                        self.note_path();
                    }
                    if let Some(g) = &mut self.gather
                        && g.send_relayed(self.now, t.source, t.destination, &t.contents).is_some()
                    {
                        continue;
                    }
                    self.io.push_back(NativeOutput::Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    });
                }
                Ok(str0m::Output::Event(e)) => self.on_str0m_event(e),
                Ok(str0m::Output::Timeout(at)) => {
                    self.str0m_at = at;
                    self.dirty = false;
                    return;
                }
                Err(e) => {
                    self.events.push_back(RtcEvent::Error(e.to_string()));
                    self.str0m_at = self.now + Duration::from_secs(3600);
                    self.dirty = false;
                    return;
                }
            }
        }
    }

    fn on_str0m_event(&mut self, event: Str0mEvent) {
        match event {
            Str0mEvent::Connected => {
                self.dtls_connected = true;
                self.check_up();
            }
            Str0mEvent::IceConnectionStateChange(s) => self.on_ice(s),
            Str0mEvent::ChannelOpen(id, label) => {
                if Some(id) == self.control {
                    self.control_open = true;
                } else if Some(id) == self.probe {
                    // Internal; probes start once the link is up.
                } else if let Some(&slot) = self.by_id.get(&id) {
                    self.slots[slot].open = true;
                    if self.cfg.raw {
                        self.events.push_back(RtcEvent::Opened { slot, config: self.slots[slot].config.clone() });
                    }
                } else if let Some(slot) = self.slots.iter().position(|s| {
                    s.origin == Origin::Declared && !s.config.negotiated && s.id.is_none() && s.config.label == label
                }) {
                    // The other side opened an in-band channel this side
                    // declared too: it is that one.
                    self.slots[slot].id = Some(id);
                    self.slots[slot].open = true;
                    self.by_id.insert(id, slot);
                    self.events.push_back(RtcEvent::Opened { slot, config: self.slots[slot].config.clone() });
                } else {
                    // The other side opened a channel in band.
                    let config = self
                        .rtc
                        .channel(id)
                        .and_then(|c| c.config().map(ChannelConfig::from_str0m))
                        .unwrap_or_else(|| ChannelConfig::reliable(label));
                    let slot = self.slots.len();
                    self.slots.push(Slot {
                        config: config.clone(),
                        id: Some(id),
                        open: true,
                        origin: Origin::Remote,
                        shut: false,
                    });
                    self.by_id.insert(id, slot);
                    self.events.push_back(RtcEvent::Opened { slot, config });
                }
                self.check_up();
            }
            Str0mEvent::ChannelData(d) => {
                if Some(d.id) == self.control {
                    self.events.push_back(RtcEvent::Internal { lane: Lane::Control, data: d.data });
                } else if Some(d.id) == self.probe {
                    self.events.push_back(RtcEvent::Internal { lane: Lane::Probe, data: d.data });
                } else if let Some(&slot) = self.by_id.get(&d.id) {
                    self.events.push_back(RtcEvent::Chunk { slot, data: d.data, text: !d.binary });
                }
            }
            Str0mEvent::ChannelClose(id) => {
                if let Some(&slot) = self.by_id.get(&id) {
                    self.slots[slot].open = false;
                    if self.cfg.raw && !self.closing {
                        self.events.push_back(RtcEvent::Closed { slot });
                        // Every channel closed by the other side: it closed
                        // its peer connection (as in the browser backend).
                        if self.up && self.slots.iter().all(|s| !s.open) {
                            self.up = false;
                            self.events.push_back(RtcEvent::PeerClosed);
                        }
                    }
                }
            }
            Str0mEvent::ChannelBufferedAmountLow(_) => self.events.push_back(RtcEvent::Drained),
            // The other side closed the peer connection (DTLS close_notify,
            // SCTP abort): a raw link ends at once. Framed links go by
            // their own signals and keep trying after a lost session.
            Str0mEvent::Closed if self.cfg.raw && !self.closing => {
                self.events.push_back(RtcEvent::PeerClosed);
            }
            Str0mEvent::PeerStats(s) => {
                // The STUN round trip on the nominated pair: data-only
                // sessions have no media round trip.
                let pair_rtt = s.selected_candidate_pair.as_ref().and_then(|p| p.current_round_trip_time);
                self.rtt = pair_rtt.or(s.rtt).or(self.rtt);
                if let Some(pair) = s.selected_candidate_pair {
                    self.selected = Some((pair.local.addr, pair.remote.addr));
                    self.note_path();
                }
            }
            _ => {}
        }
    }

    fn on_ice(&mut self, s: IceConnectionState) {
        match s {
            IceConnectionState::Connected | IceConnectionState::Completed => {
                self.ice_connected = true;
                self.restarting = false;
                if self.lost {
                    self.path_heard_again();
                }
                self.check_up();
            }
            IceConnectionState::Disconnected => {
                self.ice_connected = false;
                if !self.restarting {
                    self.path_lost();
                }
            }
            IceConnectionState::Checking => self.ice_connected = false,
            _ => {}
        }
    }

    /// The session carries data once DTLS is up and the declared channels
    /// (and the control channel) are open.
    fn check_up(&mut self) {
        if self.up || self.lost || !self.dtls_connected {
            return;
        }
        // Every declared channel: pre-negotiated, or in band (opened by the
        // offering side, taken by the answering one). A channel that cannot
        // open keeps the link from connecting, and the connect timeout ends
        // it with a reason.
        let declared_open = self.slots.iter().take(self.cfg.channels.len()).all(|s| s.open || s.shut);
        if !declared_open || (!self.cfg.raw && !self.control_open) {
            return;
        }
        self.up = true;
        self.seeking = false;
        self.beacons = None;
        self.last_heard = self.now;
        let path = self.rtc_path().unwrap_or(PathKind::Host);
        if path != PathKind::Relayed
            && let Some(g) = &mut self.gather
        {
            g.direct_connected(self.now);
        }
        self.reported_path = Some(path);
        self.events.push_back(RtcEvent::Up { session: self.session, path: Some(path) });
    }

    /// The path stopped answering: report it, and beacon along it.
    fn path_lost(&mut self) {
        if !self.up {
            return;
        }
        self.up = false;
        self.lost = true;
        self.seeking = true;
        if !self.cfg.raw {
            self.beacons = self.selected.map(|(local, remote)| Beacons::new(self.now, local, remote));
        }
        self.events.push_back(RtcEvent::Down { session: self.session, since: self.last_heard });
    }

    /// The lost path answers again. A raw link goes on with the same
    /// session; a framed one asks for a new session at once, since SCTP on
    /// the old one may wait up to a minute before it sends again.
    fn path_heard_again(&mut self) {
        if self.cfg.raw {
            self.lost = false;
            self.last_heard = self.now;
            self.check_up();
        } else {
            self.events.push_back(RtcEvent::Heard);
        }
    }

    /// Sends the beacons that are due along the lost path.
    fn send_beacons(&mut self, now: Instant) {
        let Some(b) = &mut self.beacons else { return };
        for (source, destination) in b.due(now) {
            if let Some(g) = &mut self.gather
                && g.send_relayed(now, source, destination, beacon::MAGIC).is_some()
            {
                continue;
            }
            self.io.push_back(NativeOutput::Transmit { source, destination, contents: beacon::MAGIC.to_vec() });
        }
    }

    /// The other side's beacon: while this side has no path, the link hears
    /// of it, at most once a second.
    fn beacon_heard(&mut self, source: SocketAddr) {
        if self.up || !self.seeking {
            return;
        }
        if let Some(b) = &mut self.beacons {
            b.heard_from(source);
        }
        if self.beacon_reported.is_some_and(|at| self.now < at + Duration::from_secs(1)) {
            return;
        }
        tracing::debug!(%source, "beacon heard: the network is back");
        self.beacon_reported = Some(self.now);
        self.events.push_back(RtcEvent::Heard);
    }

    /// Once a description is out and the gatherer has found all it will
    /// (at once without STUN or TURN servers), says so: applications that
    /// signal without trickle wait for it.
    fn report_gathered(&mut self) {
        if self.described && !self.gathering_reported && self.gather.as_ref().is_none_or(|g| g.is_complete(self.now)) {
            self.gathering_reported = true;
            self.events.push_back(RtcEvent::Signal(SignalData::EndOfCandidates));
        }
    }

    /// Replaces the session's str0m instance with a fresh one; the candidates stay.
    fn reset_session(&mut self) {
        self.rtc.disconnect();
        self.rtc = build_rtc(self.now, &self.cfg);
        for c in &self.local_candidates {
            self.rtc.add_local_candidate(c.clone());
        }
        // Slots keep their numbers: the other side's channels of the old
        // session stay closed ones.
        for slot in &mut self.slots {
            slot.id = None;
            slot.open = false;
        }
        self.by_id.clear();
        self.control = None;
        self.control_open = false;
        self.probe = None;
        self.pending_offer = None;
        self.have_remote = false;
        self.early_candidates.clear();
        self.ice_connected = false;
        self.dtls_connected = false;
        self.selected = None;
        self.remote_ufrag = None;
        self.restarting = false;
        self.last_answer = None;
        self.up = false;
        self.lost = false;
        self.restarts += 1;
        self.str0m_at = self.now;
    }

    /// Whether this restart gathers afresh: only for fresh TURN credentials.
    /// A lost path keeps its candidates and allocations (still valid, and a
    /// TURN server unreachable during the outage could not free the old
    /// allocation for a new one).
    fn take_regather(&mut self) {
        if std::mem::take(&mut self.renew_pending) {
            self.io.push_back(NativeOutput::Regather);
        }
    }

    /// This side's channels of the current session, on the answering side:
    /// the pre-negotiated ones, and the ones the application opened in band.
    fn create_answering_channels(&mut self) {
        let raw = self.cfg.raw;
        let declared = self.cfg.channels.len();
        let mut direct = self.rtc.direct_api();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let stream = match (slot.origin, slot.config.negotiated) {
                _ if slot.shut => continue,
                (Origin::Declared, true) => Some(i as u16),
                (Origin::Local, _) => None,
                _ => continue,
            };
            let id = direct.create_data_channel(wire_config(&slot.config, stream, raw));
            slot.id = Some(id);
            self.by_id.insert(id, i);
        }
        if !raw {
            self.control = Some(direct.create_data_channel(control_config(declared)));
            self.probe = Some(direct.create_data_channel(probe_config(declared)));
        }
    }

    fn flush_early_candidates(&mut self) {
        for c in std::mem::take(&mut self.early_candidates) {
            self.rtc.add_remote_candidate(c);
        }
    }

    fn note_remote_kinds(&mut self, sdp: &str) {
        for line in sdp.lines() {
            if let Some(c) = line.strip_prefix("a=").filter(|l| l.starts_with("candidate:"))
                && let Ok(c) = Candidate::from_sdp_string(c)
            {
                self.remote_kinds.insert(c.addr(), c.kind());
                if let Some(g) = &mut self.gather {
                    g.add_remote(self.now, c.addr());
                }
            }
        }
    }

    /// Answers an offer on the current session: an ICE restart when the
    /// other side's credentials changed, else a repeat of the last answer.
    fn accept_restart(&mut self, sdp: &str) -> Result<(), RtcError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| RtcError::Sdp(e.to_string()))?;
        if ice_ufrag(sdp) == self.remote_ufrag {
            // The same offer again (sent again while signaling was slow):
            // the same answer, and nothing renegotiated.
            if let Some(answer) = &self.last_answer {
                let signal = SignalData::Answer { sdp: answer.clone(), session: self.session };
                self.events.push_back(RtcEvent::Signal(signal));
            }
            return Ok(());
        }
        self.note_remote_kinds(sdp);
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| RtcError::Sdp(e.to_string()))?;
        let answer = answer.to_sdp_string();
        tracing::debug!("ICE restart by the other side");
        self.last_answer = Some(answer.clone());
        self.remote_ufrag = ice_ufrag(sdp);
        self.restarting = true;
        self.restarts += 1;
        self.take_regather();
        self.events.push_back(RtcEvent::Signal(SignalData::Answer { sdp: answer, session: self.session }));
        Ok(())
    }

    /// Reports a change of path kind of the live session.
    fn note_path(&mut self) {
        if !self.up {
            return;
        }
        let path = self.rtc_path();
        if path.is_some() && path != self.reported_path {
            self.reported_path = path;
            if let Some(p) = path {
                self.events.push_back(RtcEvent::Path { path: p, rtt: None });
            }
        }
    }

    /// Path kind of the selected pair.
    fn rtc_path(&self) -> Option<PathKind> {
        let (local, remote) = self.selected?;
        let remote_is_local_host = self.cfg.machine.contains(&remote.ip())
            || self.local_kinds.iter().any(|(a, k)| *k == CandidateKind::Host && a.ip() == remote.ip());
        Some(path_kind(
            self.local_kinds.get(&local).copied(),
            self.remote_kinds.get(&remote).copied(),
            remote_is_local_host,
        ))
    }
}

impl Rtc for Str0mRtc {
    fn offer(&mut self, now: Instant, id: u32) -> Result<(), RtcError> {
        self.advance(now);
        if self.described || id != self.session {
            self.reset_session();
        }
        self.session = id;
        let raw = self.cfg.raw;
        let declared = self.cfg.channels.len();
        let mut api = self.rtc.sdp_api();
        let mut ids = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.origin == Origin::Remote || slot.shut {
                continue;
            }
            let stream = slot.config.negotiated.then_some(i as u16);
            ids.push((i, api.add_channel_with_config(wire_config(&slot.config, stream, raw))));
        }
        let control = (!raw).then(|| api.add_channel_with_config(control_config(declared)));
        let probe = (!raw).then(|| api.add_channel_with_config(probe_config(declared)));
        let Some((offer, pending)) = api.apply() else {
            return Err(RtcError::State("nothing to negotiate"));
        };
        for (i, id) in ids {
            self.slots[i].id = Some(id);
            self.by_id.insert(id, i);
        }
        self.control = control;
        self.probe = probe;
        self.pending_offer = Some(pending);
        self.described = true;
        self.take_regather();
        let mut sdp = offer.to_sdp_string();
        self.offered_sctp_init = sdp_attribute(&sdp, "sctp-init");
        if raw {
            // This side asks to be the DTLS client, and so the SCTP client,
            // which sends the INIT: some stacks start SCTP only as the ICE
            // controlling side (werift) or by their ICE role (aiortc), and
            // as answerer (ICE controlled) they would wait for an INIT that
            // str0m as DTLS server never sends. RFC 8842 lets an offer say
            // `active`; every stack answers `passive` to it.
            sdp = sdp.replace("a=setup:actpass", "a=setup:active");
        }
        self.events.push_back(RtcEvent::Signal(SignalData::Offer { sdp, session: id }));
        Ok(())
    }

    fn answer(&mut self, now: Instant, id: u32, sdp: &str) -> Result<(), RtcError> {
        self.advance(now);
        if self.have_remote && id == self.session {
            return self.accept_restart(sdp);
        }
        if self.have_remote {
            self.reset_session();
        }
        self.session = id;
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| RtcError::Sdp(e.to_string()))?;
        self.note_remote_kinds(sdp);
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| RtcError::Sdp(e.to_string()))?;
        let answer = answer.to_sdp_string();
        self.remote_ufrag = ice_ufrag(sdp);
        self.last_answer = Some(answer.clone());
        // Pre-negotiated channels exist on both sides without DCEP.
        self.create_answering_channels();
        self.have_remote = true;
        self.described = true;
        self.flush_early_candidates();
        self.events.push_back(RtcEvent::Signal(SignalData::Answer { sdp: answer, session: id }));
        Ok(())
    }

    fn accept_answer(&mut self, now: Instant, sdp: &str) -> Result<(), RtcError> {
        self.advance(now);
        let Some(pending) = self.pending_offer.take() else {
            return Err(RtcError::State("no offer is waiting for an answer"));
        };
        let echoed = self.offered_sctp_init.is_some() && sdp_attribute(sdp, "sctp-init") == self.offered_sctp_init;
        let sdp = if echoed {
            // Our own SNAP value copied back: the other side does not speak
            // SNAP. Without the line, str0m falls back to the SCTP handshake.
            tracing::debug!("the answer echoes our a=sctp-init; SNAP is off for this session");
            &sdp.lines()
                .filter(|l| !l.trim().starts_with("a=sctp-init:"))
                .map(|l| format!("{l}\r\n"))
                .collect::<String>()
        } else {
            sdp
        };
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| RtcError::Sdp(e.to_string()))?;
        self.note_remote_kinds(sdp);
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| RtcError::Sdp(e.to_string()))?;
        self.remote_ufrag = ice_ufrag(sdp);
        self.have_remote = true;
        self.flush_early_candidates();
        Ok(())
    }

    fn restart_ice(&mut self, now: Instant) -> Result<(), RtcError> {
        self.advance(now);
        if !self.have_remote {
            return Err(RtcError::State("no session to restart"));
        }
        let mut api = self.rtc.sdp_api();
        api.ice_restart(true);
        let Some((offer, pending)) = api.apply() else {
            return Err(RtcError::State("nothing to renegotiate"));
        };
        self.pending_offer = Some(pending);
        self.restarting = true;
        self.restarts += 1;
        self.take_regather();
        self.events
            .push_back(RtcEvent::Signal(SignalData::Offer { sdp: offer.to_sdp_string(), session: self.session }));
        Ok(())
    }

    fn add_candidate(&mut self, now: Instant, line: &str, _mid: Option<&str>) -> Result<(), RtcError> {
        self.advance(now);
        let line = line.trim().trim_start_matches("a=");
        if line.is_empty() {
            return Ok(());
        }
        let c = Candidate::from_sdp_string(line).map_err(|e| RtcError::Candidate(e.to_string()))?;
        self.remote_kinds.insert(c.addr(), c.kind());
        if let Some(g) = &mut self.gather {
            g.add_remote(self.now, c.addr());
        }
        if self.have_remote {
            self.rtc.add_remote_candidate(c);
        } else if self.early_candidates.len() < EARLY_CANDIDATES {
            self.early_candidates.push(c);
        }
        Ok(())
    }

    fn attempt(&mut self, now: Instant) {
        self.advance(now);
        self.io.push_back(NativeOutput::CheckHosts);
    }

    fn is_open(&self, slot: usize) -> bool {
        self.slots.get(slot).is_some_and(|s| s.open)
    }

    fn open_channel(&mut self, slot: usize, config: &ChannelConfig) -> Result<(), RtcError> {
        if slot != self.slots.len() {
            return Err(RtcError::State("channel slots out of step"));
        }
        let mut new = Slot { config: config.clone(), id: None, open: false, origin: Origin::Local, shut: false };
        // Before the session is described, the offer or answer opens it.
        if self.described {
            let id = self.rtc.direct_api().create_data_channel(wire_config(config, None, self.cfg.raw));
            new.id = Some(id);
            self.by_id.insert(id, slot);
            self.dirty = true;
        }
        self.slots.push(new);
        Ok(())
    }

    fn close_channel(&mut self, slot: usize) {
        let Some(s) = self.slots.get_mut(slot) else { return };
        if s.shut {
            return;
        }
        s.shut = true;
        s.open = false;
        // str0m's own close event for it is not ours to report again.
        if let Some(id) = s.id.take() {
            self.by_id.remove(&id);
            self.rtc.direct_api().close_data_channel(id);
            self.dirty = true;
        }
        self.events.push_back(RtcEvent::Closed { slot });
    }

    fn write(&mut self, slot: usize, data: &[u8], text: bool) -> Result<bool, String> {
        self.dirty = true;
        let Some(mut ch) = self.slots.get(slot).and_then(|s| s.id).and_then(|id| self.rtc.channel(id)) else {
            return Ok(false);
        };
        ch.write(!text, data).map_err(|e| e.to_string())
    }

    fn write_internal(&mut self, lane: Lane, data: &[u8]) {
        self.dirty = true;
        let id = match lane {
            Lane::Control => self.control,
            Lane::Probe => self.probe,
        };
        if let Some(mut ch) = id.and_then(|id| self.rtc.channel(id)) {
            // Control messages are tiny; if str0m's buffer is full the next
            // credit or ping carries the newer value anyway.
            let _ = ch.write(true, data);
        }
    }

    fn poll_event(&mut self) -> Option<RtcEvent> {
        if self.events.is_empty() {
            self.pump();
            self.report_gathered();
        }
        self.events.pop_front()
    }

    fn stats(&self) -> RtcStats {
        RtcStats { pair: self.selected, rtt: self.rtt, restarts: self.restarts, buffered: 0 }
    }

    fn close(&mut self) {
        self.dirty = true;
        if self.cfg.raw && !self.closing {
            // Tell the other stack, which has no signaling of ours to hear it
            // from: every channel's stream is reset, as `close()` on a
            // browser's channel does, and the link lingers (its driver keeps
            // feeding it) until the other side has answered the resets and
            // closed its ends too, or CLOSE_LINGER passed; then DTLS
            // close_notify ends the session.
            self.closing = true;
            self.close_by = Some(self.now + CLOSE_LINGER);
            let ids: Vec<ChannelId> = self.slots.iter().filter(|s| s.open).filter_map(|s| s.id).collect();
            let mut direct = self.rtc.direct_api();
            for id in ids {
                direct.close_data_channel(id);
            }
            let _ = self.rtc.handle_input(Input::Timeout(self.now));
            self.pump();
            self.finish_close();
        } else {
            self.rtc.disconnect();
        }
        self.beacons = None;
        self.up = false;
    }
}

/// A str0m instance with Switchboard's settings.
fn build_rtc(now: Instant, cfg: &Str0mConfig) -> str0m::Rtc {
    let mut builder = str0m::Rtc::builder();
    // Hole punching loses the first check towards a filtering NAT by
    // design; retry it after 100 ms rather than str0m's 250 ms so that
    // direct paths through restricted NATs open before the relay joins.
    builder.set_initial_stun_rto(STUN_INITIAL_RTO);
    builder.set_max_stun_rto(KEEPALIVE);
    // The SCTP handshake rides in the SDP (`a=sctp-init`): two round trips
    // fewer before channels open. Only between Switchboard peers: raw links
    // meet other stacks, some of which copy the line back (libdatachannel).
    builder = builder.set_snap_enabled(!cfg.raw);
    // DTLS 1.3 (one round trip fewer) with peers that speak it, 1.2 with the rest.
    builder = builder.set_dtls_version(str0m::config::DtlsVersion::Auto);
    if let Some(cert) = &cfg.cert {
        builder = builder.set_dtls_cert(cert.clone());
    }
    // A raw message goes whole: the buffer takes the largest one.
    let buffer = if cfg.raw { cfg.sctp_buffer.max(RAW_MAX_MESSAGE) } else { cfg.sctp_buffer };
    builder
        .set_sctp_max_buffered_amount(buffer)
        .set_sctp_max_message_size(u32::try_from(cfg.chunk_size.max(RAW_MAX_MESSAGE)).unwrap_or(u32::MAX))
        .set_stats_interval(Some(Duration::from_secs(1)))
        .build(now)
}

/// The path kind of a candidate pair from its candidates' kinds (`None`:
/// an address never announced, learned from a check: peer-reflexive).
///
/// A reflexive remote address (server- or peer-reflexive) that is one of
/// this machine's own addresses (`remote_is_local_host`: both peers on
/// one machine) went through no NAT: the path is a host one. Browsers hide
/// their host addresses behind mDNS names that the native side cannot use,
/// so the native side knows such a peer only by its server-reflexive
/// candidate or by the address its checks come from; the browser, which
/// sees our host candidate, calls the same path `host`.
fn path_kind(local: Option<CandidateKind>, remote: Option<CandidateKind>, remote_is_local_host: bool) -> PathKind {
    let kinds = [local, remote];
    if kinds.contains(&Some(CandidateKind::Relayed)) {
        return PathKind::Relayed;
    }
    let remote_reflexive = remote != Some(CandidateKind::Host) && !remote_is_local_host;
    let local_reflexive = matches!(local, Some(CandidateKind::ServerReflexive | CandidateKind::PeerReflexive) | None);
    if remote_reflexive || local_reflexive { PathKind::ServerReflexive } else { PathKind::Host }
}

/// The data-channel settings of a channel. On framed links reliable
/// channels stay ordered on the wire: chunks are acknowledged in order, so
/// that nothing is lost when the link changes carrier.
fn wire_config(config: &ChannelConfig, stream: Option<u16>, raw: bool) -> str0m::channel::ChannelConfig {
    let mut c = config.to_str0m(stream);
    if !raw && config.is_reliable() {
        c.ordered = true;
    }
    c
}

/// The `a=ice-ufrag` of a session description.
fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp_attribute(sdp, "ice-ufrag")
}

/// The value of the first `a=<name>:` line of a session description.
fn sdp_attribute(sdp: &str, name: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.trim().strip_prefix("a=")?.strip_prefix(name)?.strip_prefix(':')).map(str::to_owned)
}

/// The probe channel of a link that declares `declared` channels.
fn probe_config(declared: usize) -> str0m::channel::ChannelConfig {
    str0m::channel::ChannelConfig {
        label: PROBE_LABEL.into(),
        ordered: false,
        reliability: str0m::channel::Reliability::MaxRetransmits { retransmits: 0 },
        negotiated: Some(control::probe_stream(declared)),
        ..Default::default()
    }
}

/// The control channel of a link that declares `declared` channels.
fn control_config(declared: usize) -> str0m::channel::ChannelConfig {
    str0m::channel::ChannelConfig {
        label: CONTROL_LABEL.into(),
        negotiated: Some(control::control_stream(declared)),
        ..Default::default()
    }
}
