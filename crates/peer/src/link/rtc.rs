//! The str0m-backed link core (native backend).
//!
//! [`LinkCore`] wraps a str0m [`Rtc`] with what Switchboard adds on top: the
//! [state machine](super::state), SDP and trickle-ICE signaling, message framing,
//! fair chunk scheduling, credit-based flow control and per-link stats. It
//! never reads a clock or touches a socket: the driver feeds it datagrams,
//! signals and time, then drains [`LinkCore::poll_output`] until it returns a
//! timeout.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, CandidateKind, Event as RtcEvent, IceConnectionState, Input, Rtc};
use switchboard_proto::SignalData;

use super::beacon::{self, Beacons};
use super::control::{self, Control};
use super::quality::{self, QualityMeter};
use super::recovery::Recovery;
use super::relay::{
    Carrier, RELAY_CONTROL, RELAY_FRAMING, RELAY_PROBE, RelayCarrier, RelaySetup, Relayed, relay_chunk,
};
use super::state::StateMachine;
use super::{DisconnectReason, LinkState, LinkStats, PathKind, Quality};
use crate::channel::ChannelConfig;
use crate::framing::{Delivered, InOrder, Inbox, OutMessage, Outbox, Retained, Verdict};
use crate::ice::gather::{Gatherer, Route, Taken};

/// Longest wait before acknowledging received chunks.
const ACK_DELAY: Duration = Duration::from_millis(50);
/// Timer step while a link is coming up.
const SETUP_TICK: Duration = Duration::from_millis(2);
/// First STUN retransmission of connectivity checks.
const STUN_INITIAL_RTO: Duration = Duration::from_millis(100);
/// Longest pause between STUN keep-alives on the selected pair, so that a
/// live path is never silent for long.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// Which side writes the offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Creates the offer.
    Offerer,
    /// Answers it.
    Answerer,
}

/// Settings of one link.
#[derive(Clone)]
pub(crate) struct LinkConfig {
    pub(crate) channels: Vec<ChannelConfig>,
    /// Raw mode: one message is one SCTP message, no header, no control channel.
    pub(crate) raw: bool,
    pub(crate) max_message: usize,
    pub(crate) chunk_size: usize,
    /// Flow-control window, bytes.
    pub(crate) window: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect_timeout: Duration,
    /// Silence after which a connected path counts as dead.
    pub(crate) dead_after: Duration,
    pub(crate) sctp_buffer: usize,
    /// DTLS certificate shared by the node's links (generated per link if unset).
    pub(crate) cert: Option<str0m::config::DtlsCert>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            channels: vec![ChannelConfig::reliable("reliable"), ChannelConfig::unreliable("unreliable")],
            raw: false,
            max_message: 64 << 20,
            chunk_size: 32 << 10,
            window: 8 << 20,
            connect_timeout: Duration::from_secs(15),
            reconnect_timeout: Duration::from_secs(15),
            dead_after: Duration::from_secs(3),
            sctp_buffer: 128 << 10,
            cert: None,
        }
    }
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("channels", &self.channels)
            .field("raw", &self.raw)
            .field("max_message", &self.max_message)
            .field("chunk_size", &self.chunk_size)
            .field("window", &self.window)
            .field("shared_cert", &self.cert.is_some())
            .finish_non_exhaustive()
    }
}

/// What happened on a link.
#[derive(Debug, PartialEq)]
pub(crate) enum LinkEvent {
    /// The state changed.
    State(LinkState),
    /// The link carries data.
    Connected { path: PathKind, rtt: Option<Duration> },
    /// A connected link moved to another kind of path.
    PathChanged(PathKind),
    /// The link's quality level changed.
    Quality(Quality),
    /// A channel opened (for in-band channels the other side created, the slot is new).
    ChannelOpen { slot: usize, label: String },
    /// A complete message.
    Message(Delivered),
    /// The link ended.
    Ended(DisconnectReason),
}

/// What the driver must do next.
#[derive(Debug)]
pub(crate) enum Output {
    /// Send a datagram.
    Transmit { source: SocketAddr, destination: SocketAddr, contents: Vec<u8> },
    /// Open a TCP (or TLS) stream to a TURN server; report with `stream_connected`/`stream_closed`.
    OpenStream(crate::ice::gather::Connect),
    /// Write bytes to a stream.
    StreamSend { stream: usize, contents: Vec<u8> },
    /// Close a stream once what was written to it is out.
    CloseStream(usize),
    /// Send a signal to the other side.
    Signal(SignalData),
    /// Send a sealed frame to the other side through the server's relay.
    Relay(Vec<u8>),
    /// An ICE restart began: build a fresh gatherer (current ICE servers and
    /// credentials) and hand it to [`LinkCore::regather`].
    Regather,
    /// The other side's beacon arrived while the link had no WebRTC path:
    /// the network between the peers works again, so the node should check
    /// that its signaling connection still answers (see `beacon`).
    PathHeard,
    /// The link looks for a lost path: the machine's addresses may have
    /// changed (a network switch). If they did, hand the core sockets on the
    /// new ones with [`LinkCore::rehost`].
    CheckHosts,
    /// Tell the application.
    Event(LinkEvent),
    /// Nothing more until this time (or new input).
    Timeout(Instant),
}

/// Why a call into the core failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum LinkError {
    /// The SDP did not parse or str0m refused it.
    #[error("bad session description: {0}")]
    Sdp(String),
    /// The candidate did not parse.
    #[error("bad candidate: {0}")]
    Candidate(String),
    /// The call does not fit the link's state (answer without offer...).
    #[error("{0}")]
    State(&'static str),
}

struct Slot {
    config: ChannelConfig,
    id: Option<ChannelId>,
    open: bool,
}

/// One link's whole state, driven by inputs and time.
pub(crate) struct LinkCore {
    rtc: Rtc,
    role: Role,
    cfg: LinkConfig,
    machine: StateMachine,
    slots: Vec<Slot>,
    by_id: HashMap<ChannelId, usize>,
    control: Option<ChannelId>,
    control_open: bool,
    outbox: Outbox,
    inbox: Inbox,
    queue: VecDeque<Output>,
    pending_offer: Option<SdpPendingOffer>,
    have_remote: bool,
    early_candidates: Vec<Candidate>,
    described: bool,
    ice_connected: bool,
    rtc_connected: bool,
    now: Instant,
    created: Instant,
    deadline: Option<(Instant, DisconnectReason)>,
    local_kinds: HashMap<SocketAddr, CandidateKind>,
    remote_kinds: HashMap<SocketAddr, CandidateKind>,
    selected: Option<(SocketAddr, SocketAddr)>,
    // Flow control (reliable channels of framed links).
    sent_reliable: u64,
    peer_limit: u64,
    recv_reliable: u64,
    granted: u64,
    delivered: u64,
    consumed: u64,
    // Round trip.
    next_ping: Option<Instant>,
    /// The probe channel (framed links).
    probe: Option<ChannelId>,
    meter: QualityMeter,
    stats: LinkStats,
    ended: bool,
    /// Messages that arrived before the link counted as connected; they are
    /// reported right after `Connected`, so applications see the peer first.
    early_messages: Vec<Delivered>,
    /// STUN/TURN gathering and relaying, when the link has ICE servers.
    gather: Option<Gatherer>,
    /// Path kind last reported to the application.
    reported_path: Option<PathKind>,
    /// Local candidates the gatherer added (dropped when it is replaced).
    gathered: Vec<Candidate>,
    /// Silence detection and restart pacing.
    recovery: Recovery,
    /// The offer waiting for its answer, sent again if a restart is retried.
    pending_sdp: Option<String>,
    /// The other side's current ICE username fragment.
    remote_ufrag: Option<String>,
    /// An ICE restart is under way: ICE passes through `disconnected` while
    /// the new candidates arrive, which is no loss of the path.
    restarting: bool,
    /// The node has new TURN credentials: the next restart gathers afresh.
    renew_pending: bool,
    /// The last answer this (answering) side gave, for an offer that comes again.
    last_answer: Option<String>,
    /// Every local candidate, for a new session.
    local_candidates: Vec<Candidate>,
    /// This side's WebRTC session: a new one (fresh DTLS and SCTP) replaces
    /// a session whose path was lost, whose SCTP may be backing off for a minute.
    session: u32,
    /// Reliable chunks kept until acknowledged (framed links).
    retained: Retained,
    /// Reliable chunks accepted in order (framed links).
    in_order: InOrder,
    /// When owed acknowledgements go out.
    ack_at: Option<Instant>,
    /// The server relay, when the node has a signaling server.
    relay: Option<RelayCarrier>,
    /// Which carrier takes this side's data.
    carrier: Carrier,
    /// The WebRTC session carries data (connected, channels open, not silent).
    rtc_up: bool,
    /// Since when the link has had no WebRTC path.
    rtc_down_since: Instant,
    /// The session whose path was lost last.
    lost_session: Option<u32>,
    /// Beacons along the lost path (framed links with no WebRTC path).
    beacons: Option<Beacons>,
    /// When a beacon was last reported as [`Output::PathHeard`].
    beacon_reported: Option<Instant>,
}

impl LinkCore {
    /// A new link that starts at `now` in `role`.
    pub(crate) fn new(now: Instant, role: Role, cfg: LinkConfig) -> Self {
        let rtc = build_rtc(now, &cfg);
        let mut outbox = Outbox::new(cfg.raw);
        let mut inbox = Inbox::new(cfg.max_message, cfg.raw);
        let mut slots = Vec::new();
        for (i, c) in cfg.channels.iter().enumerate() {
            outbox.add_channel(i, c.compression != crate::channel::Compression::None);
            inbox.add_channel(i, c.is_reliable());
            slots.push(Slot { config: c.clone(), id: None, open: false });
        }
        let window = cfg.window as u64;
        let deadline = Some((now + cfg.connect_timeout, DisconnectReason::ConnectTimeout));
        LinkCore {
            rtc,
            role,
            machine: StateMachine::new(now),
            slots,
            by_id: HashMap::new(),
            control: None,
            control_open: false,
            outbox,
            inbox,
            queue: VecDeque::new(),
            pending_offer: None,
            have_remote: false,
            early_candidates: Vec::new(),
            described: false,
            ice_connected: false,
            rtc_connected: false,
            now,
            created: now,
            deadline,
            local_kinds: HashMap::new(),
            remote_kinds: HashMap::new(),
            selected: None,
            sent_reliable: 0,
            peer_limit: window,
            recv_reliable: 0,
            granted: 0,
            delivered: 0,
            consumed: 0,
            next_ping: None,
            probe: None,
            meter: QualityMeter::default(),
            stats: LinkStats::default(),
            ended: false,
            early_messages: Vec::new(),
            gather: None,
            reported_path: None,
            gathered: Vec::new(),
            recovery: Recovery::new(now, cfg.dead_after),
            pending_sdp: None,
            remote_ufrag: None,
            restarting: false,
            renew_pending: false,
            last_answer: None,
            local_candidates: Vec::new(),
            session: 0,
            retained: Retained::default(),
            in_order: InOrder::default(),
            ack_at: None,
            relay: None,
            carrier: Carrier::Rtc,
            rtc_up: false,
            rtc_down_since: now,
            lost_session: None,
            beacons: None,
            beacon_reported: None,
            cfg,
        }
    }
}

/// A str0m instance with Switchboard's settings.
fn build_rtc(now: Instant, cfg: &LinkConfig) -> Rtc {
    let mut builder = Rtc::builder();
    // Hole punching loses the first check towards a filtering NAT by
    // design; retry it after 100 ms rather than str0m's 250 ms so that
    // direct paths through restricted NATs open before the relay joins.
    builder.set_initial_stun_rto(STUN_INITIAL_RTO);
    builder.set_max_stun_rto(KEEPALIVE);
    // The SCTP handshake rides in the SDP (`a=sctp-init`): two round trips
    // fewer before channels open; peers without it fall back.
    builder = builder.set_snap_enabled(true);
    // DTLS 1.3 (one round trip fewer) with peers that speak it, 1.2 with the rest.
    builder = builder.set_dtls_version(str0m::config::DtlsVersion::Auto);
    if let Some(cert) = &cfg.cert {
        builder = builder.set_dtls_cert(cert.clone());
    }
    builder
        .set_sctp_max_buffered_amount(cfg.sctp_buffer)
        .set_sctp_max_message_size(u32::try_from(cfg.chunk_size.max(256 << 10)).unwrap_or(u32::MAX))
        .set_stats_interval(Some(Duration::from_secs(1)))
        .build(now)
}

impl LinkCore {
    /// The current state.
    pub(crate) fn state(&self) -> LinkState {
        self.machine.state()
    }

    /// The moves made so far.
    pub(crate) fn history(&self) -> Vec<(Instant, LinkState)> {
        self.machine.history().copied().collect()
    }

    /// Stats so far.
    pub(crate) fn stats(&self) -> LinkStats {
        let mut s = self.stats.clone();
        s.buffered = self.outbox.queued();
        s.dropped_partials = self.inbox.dropped();
        s.loss = self.meter.loss(self.now);
        s.quality = self.meter.level();
        s.local_addr = self.selected.map(|(l, _)| l);
        s.remote_addr = self.selected.map(|(_, r)| r);
        s.path = self.path();
        s
    }

    /// Channels known on this link (declared ones first, then in-band ones the other side opened).
    pub(crate) fn channel_labels(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.config.label.as_str())
    }

    /// Bytes queued in the outbox.
    pub(crate) fn queued(&self) -> usize {
        self.outbox.queued()
    }

    /// Whether the inbox holds more undelivered-to-app bytes than the window allows.
    pub(crate) fn inbox_full(&self) -> bool {
        self.delivered - self.consumed > self.cfg.window as u64 / 2
    }

    /// Gathers server-reflexive and relayed candidates with `gatherer`.
    pub(crate) fn set_gatherer(&mut self, gatherer: Gatherer) {
        self.gather = Some(gatherer);
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
            self.receive(now, r.peer, r.relayed, &r.data);
        }
    }

    /// Adds a local candidate; once the description is out it is trickled.
    pub(crate) fn add_local_candidate(&mut self, candidate: Candidate) {
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
                self.queue.push_back(Output::Signal(SignalData::Candidate { candidate: line, mid: None }));
            }
        }
    }

    /// Starts the negotiation on the offering side: returns nothing, the
    /// offer comes out of [`Self::poll_output`] as a signal.
    pub(crate) fn start(&mut self) -> Result<String, LinkError> {
        if self.role != Role::Offerer || self.pending_offer.is_some() || self.state() != LinkState::New {
            return Err(LinkError::State("only a new offering link can start"));
        }
        let sdp = self.make_offer()?;
        self.set_state(LinkState::Signaling);
        Ok(sdp)
    }

    /// Writes the offer of the current session, with every channel.
    fn make_offer(&mut self) -> Result<String, LinkError> {
        let raw = self.cfg.raw;
        let declared = self.slots.len();
        let mut api = self.rtc.sdp_api();
        let mut ids = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let stream = slot.config.negotiated.then_some(i as u16);
            ids.push(api.add_channel_with_config(wire_config(&slot.config, stream, raw)));
        }
        let control = (!raw).then(|| api.add_channel_with_config(control_config(declared)));
        let probe = (!raw).then(|| api.add_channel_with_config(probe_config(declared)));
        let Some((offer, pending)) = api.apply() else {
            return Err(LinkError::State("nothing to negotiate"));
        };
        for (i, id) in ids.into_iter().enumerate() {
            self.slots[i].id = Some(id);
            self.by_id.insert(id, i);
        }
        self.control = control;
        self.probe = probe;
        self.pending_offer = Some(pending);
        self.described = true;
        let sdp = offer.to_sdp_string();
        self.pending_sdp = Some(sdp.clone());
        self.queue.push_back(Output::Signal(SignalData::Offer { sdp: sdp.clone(), session: self.session }));
        self.send_relay_key();
        Ok(sdp)
    }

    /// Takes a signal from the other side.
    pub(crate) fn handle_signal(&mut self, now: Instant, signal: SignalData) -> Result<(), LinkError> {
        self.advance(now);
        let result = match signal {
            SignalData::Offer { sdp, session } => self.on_offer(&sdp, session),
            SignalData::Restart => {
                if self.role == Role::Offerer && matches!(self.state(), LinkState::Connected | LinkState::Reconnecting)
                {
                    self.restart_path();
                }
                Ok(())
            }
            // An answer to an earlier session's offer is stale.
            SignalData::Answer { session, .. } if session != self.session => Ok(()),
            SignalData::Answer { sdp, .. } => self.accept_answer(&sdp),
            SignalData::RelayKey { key, public_key, signature } => {
                self.on_relay_key(&key, &public_key, &signature);
                Ok(())
            }
            SignalData::Candidate { candidate, .. } => self.add_remote_candidate(&candidate),
            SignalData::Bye { reason } => {
                self.end(DisconnectReason::ClosedByPeer(reason), false);
                Ok(())
            }
            // End of candidates and the topology signals are the node's business.
            _ => Ok(()),
        };
        if let Err(e) = &result
            && matches!(e, LinkError::Sdp(_))
        {
            self.end(DisconnectReason::Protocol(e.to_string()), true);
        }
        result
    }

    /// An offer on the answering side: the first, an ICE restart or a
    /// repeat of the current session's, or a new session.
    fn on_offer(&mut self, sdp: &str, session: u32) -> Result<(), LinkError> {
        if self.have_remote && self.role == Role::Answerer {
            if session < self.session {
                return Ok(());
            }
            if session == self.session || self.cfg.raw {
                return self.accept_restart(sdp);
            }
            tracing::debug!(session, "new session by the other side");
            self.reset_session();
        }
        self.session = session;
        let answer = self.accept_offer(sdp)?;
        self.queue.push_back(Output::Signal(SignalData::Answer { sdp: answer, session }));
        self.send_relay_key();
        Ok(())
    }

    /// Answers an offer (answering side); returns the answer SDP.
    pub(crate) fn accept_offer(&mut self, sdp: &str) -> Result<String, LinkError> {
        if self.role != Role::Answerer || self.have_remote {
            return Err(LinkError::State("this link does not take an offer now"));
        }
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| LinkError::Sdp(e.to_string()))?;
        self.note_remote_kinds(sdp);
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| LinkError::Sdp(e.to_string()))?;
        self.remote_ufrag = ice_ufrag(sdp);
        self.last_answer = Some(answer.to_sdp_string());
        // Pre-negotiated channels exist on both sides without DCEP.
        let raw = self.cfg.raw;
        let declared = self.slots.len();
        let mut direct = self.rtc.direct_api();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.config.negotiated {
                let id = direct.create_data_channel(wire_config(&slot.config, Some(i as u16), raw));
                slot.id = Some(id);
                self.by_id.insert(id, i);
            }
        }
        if !self.cfg.raw {
            self.control = Some(direct.create_data_channel(control_config(declared)));
            self.probe = Some(direct.create_data_channel(probe_config(declared)));
        }
        self.have_remote = true;
        self.described = true;
        self.flush_early_candidates();
        if matches!(self.state(), LinkState::New | LinkState::Signaling) {
            self.set_state(LinkState::Signaling);
            self.set_state(LinkState::Connecting);
        }
        Ok(answer.to_sdp_string())
    }

    /// Applies the answer (offering side).
    pub(crate) fn accept_answer(&mut self, sdp: &str) -> Result<(), LinkError> {
        let Some(pending) = self.pending_offer.take() else {
            return Err(LinkError::State("no offer is waiting for an answer"));
        };
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| LinkError::Sdp(e.to_string()))?;
        self.note_remote_kinds(sdp);
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| LinkError::Sdp(e.to_string()))?;
        self.pending_sdp = None;
        self.remote_ufrag = ice_ufrag(sdp);
        self.have_remote = true;
        self.flush_early_candidates();
        if self.state() == LinkState::Signaling {
            self.set_state(LinkState::Connecting);
        }
        Ok(())
    }

    /// Adds a trickled remote candidate (`candidate:...`, with or without `a=`).
    pub(crate) fn add_remote_candidate(&mut self, line: &str) -> Result<(), LinkError> {
        let line = line.trim().trim_start_matches("a=");
        if line.is_empty() {
            return Ok(());
        }
        let c = Candidate::from_sdp_string(line).map_err(|e| LinkError::Candidate(e.to_string()))?;
        self.remote_kinds.insert(c.addr(), c.kind());
        if let Some(g) = &mut self.gather {
            g.add_remote(self.now, c.addr());
        }
        if self.have_remote {
            self.rtc.add_remote_candidate(c);
        } else if self.early_candidates.len() < 64 {
            self.early_candidates.push(c);
        }
        Ok(())
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

    /// Queues a message on channel `slot`.
    pub(crate) fn send(&mut self, slot: usize, msg: OutMessage) {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += msg.data.len() as u64;
        self.outbox.push(slot, msg);
    }

    /// The application consumed messages: `total` bytes of delivered data so far.
    pub(crate) fn set_consumed(&mut self, total: u64) {
        if total > self.consumed {
            self.consumed = total.min(self.delivered);
            self.maybe_grant(true);
        }
    }

    /// Closes the link on purpose (sends `bye`).
    pub(crate) fn close(&mut self, now: Instant, reason: Option<String>) {
        self.advance(now);
        if self.state().is_final() {
            return;
        }
        self.queue.push_back(Output::Signal(SignalData::Bye { reason }));
        self.end(DisconnectReason::Closed, true);
    }

    /// Takes a datagram received on the link's socket.
    pub(crate) fn handle_datagram(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        self.advance(now);
        if self.ended {
            return;
        }
        if let Some(g) = &mut self.gather {
            match g.handle_udp(now, destination, source, data) {
                Taken::No => {}
                Taken::Yes => return,
                Taken::Relayed(r) => return self.receive(now, r.peer, r.relayed, &r.data),
            }
        }
        self.receive(now, source, destination, data);
    }

    fn receive(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        if self.ended {
            return;
        }
        if beacon::is_beacon(data) {
            return self.beacon_heard(source);
        }
        self.recovery.heard(now);
        // A path that came back by itself, with no restart under way.
        if self.state() == LinkState::Reconnecting && self.ice_connected && self.pending_sdp.is_none() {
            self.path_heard_again();
        }
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, data) else {
            tracing::trace!(%source, "ignoring a datagram that is not STUN, DTLS or RTP");
            return;
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(now, receive)) {
            tracing::debug!(%source, error = %e, "datagram refused");
        }
    }

    /// Lets time pass.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if self.ended {
            return;
        }
        if let Some((at, reason)) = &self.deadline
            && now >= *at
        {
            let reason = reason.clone();
            self.end(reason, true);
            return;
        }
        if let Some(g) = &mut self.gather {
            g.handle_timeout(now);
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(error = %e, "timeout input refused");
        }
        if self.next_ping.is_some_and(|at| now >= at) {
            self.send_probe();
        }
        self.send_beacons(now);
        if self.ack_at.is_some_and(|at| now >= at) {
            self.send_acks(false);
        }
        if self.rtc_up && self.recovery.is_silent(now) {
            tracing::debug!(silent_for = ?self.cfg.dead_after, "path silent");
            self.path_lost();
        }
        self.maybe_go_relay();
        let retrying = self.state() == LinkState::Reconnecting
            || (self.carrier == Carrier::Relay && matches!(self.state(), LinkState::Connected));
        if !self.rtc_up && retrying && self.recovery.attempt_due(now) {
            self.try_restart();
        }
    }

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// The next thing to do.
    pub(crate) fn poll_output(&mut self) -> Output {
        loop {
            if let Some(out) = self.queue.pop_front() {
                return out;
            }
            if self.ended {
                return Output::Timeout(self.now + Duration::from_secs(3600));
            }
            if let Some(out) = self.poll_gather() {
                return out;
            }
            match self.rtc.poll_output() {
                Ok(str0m::Output::Transmit(t)) => {
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
                    return Output::Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    };
                }
                Ok(str0m::Output::Event(e)) => self.on_rtc_event(e),
                Ok(str0m::Output::Timeout(at)) => {
                    if self.pump() {
                        continue;
                    }
                    let mut at = at;
                    if let Some((d, _)) = &self.deadline {
                        at = at.min(*d);
                    }
                    if let Some(p) = self.next_ping {
                        at = at.min(p);
                    }
                    if let Some(t) = self.gather.as_mut().and_then(Gatherer::poll_timeout) {
                        at = at.min(t);
                    }
                    if let Some(t) = self.recovery.poll_timeout(self.rtc_up) {
                        at = at.min(t);
                    }
                    if let Some(t) = self.ack_at {
                        at = at.min(t);
                    }
                    if let Some(b) = &self.beacons {
                        at = at.min(b.poll_timeout());
                    }
                    if let Some(t) = self.relay_timeout() {
                        at = at.min(t);
                    }
                    // str0m paces ICE at 50 ms steps; while the link comes up,
                    // tick faster so checks and nominations go out at once.
                    if matches!(self.state(), LinkState::Signaling | LinkState::Connecting) {
                        at = at.min(self.now + SETUP_TICK);
                    }
                    return Output::Timeout(at.max(self.now));
                }
                Err(e) => {
                    self.end(DisconnectReason::Protocol(e.to_string()), true);
                }
            }
        }
    }

    fn on_rtc_event(&mut self, event: RtcEvent) {
        match event {
            RtcEvent::Connected => {
                self.rtc_connected = true;
                self.check_connected();
            }
            RtcEvent::IceConnectionStateChange(s) => self.on_ice(s),
            RtcEvent::ChannelOpen(id, label) => {
                if Some(id) == self.control {
                    self.control_open = true;
                } else if Some(id) == self.probe {
                    // Internal; probes start once the link is connected.
                } else if let Some(&slot) = self.by_id.get(&id) {
                    self.slots[slot].open = true;
                } else {
                    // The other side opened a channel in-band.
                    let config = self
                        .rtc
                        .channel(id)
                        .and_then(|c| c.config().map(ChannelConfig::from_str0m))
                        .unwrap_or_else(|| ChannelConfig::reliable(label.clone()));
                    let slot = self.slots.len();
                    self.outbox.add_channel(slot, false);
                    self.inbox.add_channel(slot, config.is_reliable());
                    self.slots.push(Slot { config, id: Some(id), open: true });
                    self.by_id.insert(id, slot);
                    self.queue.push_back(Output::Event(LinkEvent::ChannelOpen { slot, label }));
                    return;
                }
                if let Some(&slot) = self.by_id.get(&id) {
                    self.queue.push_back(Output::Event(LinkEvent::ChannelOpen { slot, label }));
                }
                self.check_connected();
            }
            RtcEvent::ChannelData(d) => {
                if Some(d.id) == self.control {
                    self.on_control(&d.data);
                } else if Some(d.id) == self.probe {
                    self.on_probe(&d.data, Carrier::Rtc);
                } else if let Some(&slot) = self.by_id.get(&d.id) {
                    self.on_chunk(slot, &d.data);
                }
            }
            RtcEvent::ChannelClose(id) => {
                if let Some(&slot) = self.by_id.get(&id) {
                    self.slots[slot].open = false;
                    let freed = self.outbox.clear(slot);
                    tracing::debug!(slot, freed, "channel closed");
                }
            }
            RtcEvent::PeerStats(s) => {
                if self.cfg.raw || self.stats.rtt.is_none() {
                    self.stats.rtt = s.rtt.or(self.stats.rtt);
                }
                if let Some(pair) = s.selected_candidate_pair {
                    self.selected = Some((pair.local.addr, pair.remote.addr));
                }
            }
            _ => {}
        }
    }

    fn on_ice(&mut self, s: IceConnectionState) {
        match s {
            IceConnectionState::Connected | IceConnectionState::Completed => {
                self.ice_connected = true;
                let was_restarting = std::mem::take(&mut self.restarting);
                if was_restarting && self.renew_pending && self.state() == LinkState::Connected {
                    self.try_renew();
                }
                if self.state() == LinkState::Reconnecting {
                    self.path_heard_again();
                }
                self.check_connected();
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

    /// The WebRTC session carries data once DTLS is up and the declared
    /// channels are open: the link connects, or moves its data back from the relay.
    fn check_connected(&mut self) {
        if self.rtc_up || !self.rtc_connected || self.state().is_final() {
            return;
        }
        let declared_open = self.slots.iter().all(|s| !s.config.negotiated || s.open);
        if !declared_open || (!self.cfg.raw && !self.control_open) {
            return;
        }
        self.rtc_up = true;
        self.beacons = None;
        self.deadline = None;
        self.recovery.recovered(self.now);
        let path = self.rtc_path().unwrap_or(PathKind::Host);
        if path != PathKind::Relayed
            && let Some(g) = &mut self.gather
        {
            g.direct_connected(self.now);
        }
        if self.state() != LinkState::Connecting {
            // A new session after a lost path, or WebRTC after the relay:
            // what the old carrier may have lost goes again.
            tracing::debug!(%path, session = self.session, "WebRTC carries the link again");
            self.carrier = Carrier::Rtc;
            self.set_state(LinkState::Connected);
            self.carrier_changed();
            self.note_path();
            return;
        }
        self.set_state(LinkState::Connected);
        self.stats.setup_time = Some(self.now.saturating_duration_since(self.created));
        self.reported_path = Some(path);
        self.queue.push_back(Output::Event(LinkEvent::Connected { path, rtt: self.stats.rtt }));
        self.connected_extras();
    }

    /// After `Connected`: early messages, then probes.
    fn connected_extras(&mut self) {
        for msg in std::mem::take(&mut self.early_messages) {
            self.queue.push_back(Output::Event(LinkEvent::Message(msg)));
        }
        if !self.cfg.raw {
            self.next_ping = Some(self.now);
        }
    }

    /// The WebRTC path stopped answering: look for another (and let the
    /// relay carry meanwhile); without a relay, give up at the reconnect timeout.
    fn path_lost(&mut self) {
        if !self.rtc_up {
            return;
        }
        self.rtc_up = false;
        self.rtc_down_since = self.recovery.last_heard();
        self.lost_session = Some(self.session);
        if !self.cfg.raw {
            self.beacons = self.selected.map(|(local, remote)| Beacons::new(self.now, local, remote));
        }
        self.recovery.lost(self.now);
        if self.carrier == Carrier::Rtc && self.state() == LinkState::Connected {
            self.deadline = Some((self.now + self.cfg.reconnect_timeout, DisconnectReason::PathLost));
            self.set_state(LinkState::Reconnecting);
        }
    }

    /// The lost path answers again. A raw link goes on with the same
    /// session; a framed one starts a new session at once, since SCTP on
    /// the old one may wait up to a minute before it sends again.
    fn path_heard_again(&mut self) {
        if self.cfg.raw {
            self.rtc_up = true;
            self.deadline = None;
            self.recovery.recovered(self.now);
            self.set_state(LinkState::Connected);
            self.note_path();
        } else if self.lost_session == Some(self.session) {
            self.recovery.retry_now(self.now);
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
            self.queue.push_back(Output::Transmit { source, destination, contents: beacon::MAGIC.to_vec() });
        }
    }

    /// The other side's beacon: while this side has no WebRTC path, the
    /// next session attempt is due at once and the node hears of it, at
    /// most once a second.
    fn beacon_heard(&mut self, source: SocketAddr) {
        if self.rtc_up || self.lost_session.is_none() {
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
        self.recovery.retry_now(self.now);
        self.queue.push_back(Output::PathHeard);
    }

    /// The node's signaling connection is back: signals sent while it was
    /// away may be lost, so a session that waits for its answer tries again now.
    pub(crate) fn signaling_back(&mut self, now: Instant) {
        self.advance(now);
        if !self.ended && !self.rtc_up && self.lost_session.is_some() {
            self.recovery.retry_now(self.now);
        }
    }

    /// One attempt to find a WebRTC path again: the offering side starts
    /// over, the answering side asks it to.
    fn try_restart(&mut self) {
        self.queue.push_back(Output::CheckHosts);
        match self.role {
            Role::Offerer => self.restart_path(),
            Role::Answerer => self.queue.push_back(Output::Signal(SignalData::Restart)),
        }
    }

    /// Moves a live path to fresh TURN allocations.
    fn try_renew(&mut self) {
        match self.role {
            Role::Offerer => self.restart_ice(),
            Role::Answerer => self.queue.push_back(Output::Signal(SignalData::Restart)),
        }
    }

    /// A new session on a framed link whose path is down; an ICE restart otherwise.
    fn restart_path(&mut self) {
        if self.cfg.raw || self.rtc_up {
            self.restart_ice();
        } else {
            self.new_session();
        }
    }

    /// Starts a new WebRTC session (offering side): fresh DTLS and SCTP on
    /// the same candidates. An offer still unanswered is sent again.
    fn new_session(&mut self) {
        if let Some(sdp) = &self.pending_sdp {
            let signal = SignalData::Offer { sdp: sdp.clone(), session: self.session };
            self.queue.push_back(Output::Signal(signal));
            return;
        }
        self.reset_session();
        self.session += 1;
        tracing::debug!(session = self.session, state = %self.state(), "new session");
        if let Err(e) = self.make_offer() {
            tracing::warn!(error = %e, "cannot offer a new session");
        }
        if self.take_regather() {
            self.queue.push_back(Output::Regather);
        }
    }

    /// Replaces the WebRTC session with a fresh one; the candidates stay.
    fn reset_session(&mut self) {
        self.rtc.disconnect();
        self.rtc = build_rtc(self.now, &self.cfg);
        for c in &self.local_candidates {
            self.rtc.add_local_candidate(c.clone());
        }
        for slot in &mut self.slots {
            slot.id = None;
            slot.open = false;
        }
        self.by_id.clear();
        self.control = None;
        self.control_open = false;
        self.probe = None;
        self.pending_offer = None;
        self.pending_sdp = None;
        self.have_remote = false;
        self.early_candidates.clear();
        self.ice_connected = false;
        self.rtc_connected = false;
        self.selected = None;
        self.remote_ufrag = None;
        self.restarting = false;
        self.last_answer = None;
        self.stats.ice_restarts += 1;
        if self.rtc_up {
            self.rtc_up = false;
            self.rtc_down_since = self.now;
        }
    }

    /// Whether this restart must gather afresh: only for new TURN
    /// credentials. A lost path keeps its candidates and allocations (they
    /// are still valid, and a TURN server unreachable during the outage
    /// could not take the old allocation back to free the socket for a new one).
    fn take_regather(&mut self) -> bool {
        std::mem::take(&mut self.renew_pending)
    }

    /// The node got fresh TURN credentials: a link on a relay moves to a new
    /// allocation (by ICE restart) before the old credentials expire.
    pub(crate) fn renew_relay(&mut self, now: Instant) {
        self.advance(now);
        if self.state() == LinkState::Connected && self.path() == Some(PathKind::Relayed) {
            // During a restart, the next one (once this one is through) renews.
            self.renew_pending = true;
            if !self.restarting {
                self.try_renew();
            }
        }
    }

    /// Restarts ICE (offering side): new credentials, fresh gathering, and
    /// an offer for the other side. An offer still unanswered is sent again.
    fn restart_ice(&mut self) {
        if let Some(sdp) = &self.pending_sdp {
            self.queue.push_back(Output::Signal(SignalData::Offer { sdp: sdp.clone(), session: self.session }));
            return;
        }
        let mut api = self.rtc.sdp_api();
        api.ice_restart(true);
        let Some((offer, pending)) = api.apply() else { return };
        let sdp = offer.to_sdp_string();
        tracing::debug!(state = %self.state(), "ICE restart");
        self.pending_offer = Some(pending);
        self.pending_sdp = Some(sdp.clone());
        self.restarting = true;
        self.stats.ice_restarts += 1;
        self.queue.push_back(Output::Signal(SignalData::Offer { sdp, session: self.session }));
        if self.take_regather() {
            self.queue.push_back(Output::Regather);
        }
    }

    /// Answers an offer on a negotiated link: an ICE restart when the
    /// other side's credentials changed, else a repeat of the last offer.
    fn accept_restart(&mut self, sdp: &str) -> Result<(), LinkError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| LinkError::Sdp(e.to_string()))?;
        let restarted = ice_ufrag(sdp) != self.remote_ufrag;
        if !restarted {
            // The same offer again (sent again while signaling was slow):
            // the same answer, and nothing renegotiated.
            if let Some(answer) = &self.last_answer {
                let signal = SignalData::Answer { sdp: answer.clone(), session: self.session };
                self.queue.push_back(Output::Signal(signal));
            }
            return Ok(());
        }
        self.note_remote_kinds(sdp);
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| LinkError::Sdp(e.to_string()))?;
        let answer = answer.to_sdp_string();
        self.last_answer = Some(answer.clone());
        self.queue.push_back(Output::Signal(SignalData::Answer { sdp: answer, session: self.session }));
        if restarted {
            tracing::debug!(state = %self.state(), "ICE restart by the other side");
            self.remote_ufrag = ice_ufrag(sdp);
            self.restarting = true;
            self.stats.ice_restarts += 1;
            if self.take_regather() {
                self.queue.push_back(Output::Regather);
            }
        }
        Ok(())
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

    /// Replaces the gatherer after an ICE restart: the old one's candidates
    /// are dropped (their allocations may be about to lose their
    /// credentials) and the new one learns the known remote addresses.
    pub(crate) fn regather(&mut self, now: Instant, gatherer: Option<Gatherer>) {
        self.advance(now);
        if self.gather.is_none() && gatherer.is_none() {
            return;
        }
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
                self.queue.push_back(match x.route {
                    Route::Udp(source) => Output::Transmit { source, destination: x.to, contents: x.data },
                    Route::Stream(stream) => Output::StreamSend { stream, contents: x.data },
                });
            }
            self.queue.extend(streams.into_iter().map(Output::CloseStream));
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

    /// Gathering's next output: candidates go to ICE (and are trickled),
    /// datagrams and streams to the driver.
    fn poll_gather(&mut self) -> Option<Output> {
        let g = self.gather.as_mut()?;
        let mut candidates = Vec::new();
        while let Some(c) = g.poll_candidate() {
            candidates.push(c);
        }
        let out = if let Some(connect) = g.poll_connect() {
            Some(Output::OpenStream(connect))
        } else {
            g.poll_transmit().map(|x| match x.route {
                Route::Udp(source) => Output::Transmit { source, destination: x.to, contents: x.data },
                Route::Stream(stream) => Output::StreamSend { stream, contents: x.data },
            })
        };
        for c in candidates {
            self.add_local_candidate(c);
        }
        out.or_else(|| self.queue.pop_front())
    }

    /// Reports a change of path kind on a connected link.
    fn note_path(&mut self) {
        if self.state() != LinkState::Connected {
            return;
        }
        let path = self.path();
        if path.is_some() && path != self.reported_path {
            self.reported_path = path;
            if let Some(p) = path {
                tracing::debug!(path = %p, "path changed");
                self.queue.push_back(Output::Event(LinkEvent::PathChanged(p)));
            }
        }
    }

    /// How this side's data goes now.
    fn path(&self) -> Option<PathKind> {
        if self.carrier == Carrier::Relay {
            return Some(PathKind::Server);
        }
        self.rtc_path()
    }

    /// Path kind of the selected pair.
    fn rtc_path(&self) -> Option<PathKind> {
        let (local, remote) = self.selected?;
        let remote_is_local_host =
            self.local_kinds.iter().any(|(a, k)| *k == CandidateKind::Host && a.ip() == remote.ip());
        Some(path_kind(
            self.local_kinds.get(&local).copied(),
            self.remote_kinds.get(&remote).copied(),
            remote_is_local_host,
        ))
    }

    fn set_state(&mut self, to: LinkState) {
        match self.machine.move_to(self.now, to) {
            Ok(true) => self.queue.push_back(Output::Event(LinkEvent::State(to))),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "link state move refused"),
        }
    }

    fn end(&mut self, reason: DisconnectReason, local: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.deadline = None;
        self.next_ping = None;
        let state = match reason {
            DisconnectReason::Closed | DisconnectReason::ClosedByPeer(_) => LinkState::Closed,
            _ => LinkState::Failed,
        };
        if local && !matches!(reason, DisconnectReason::Closed) && self.described {
            self.queue.push_back(Output::Signal(SignalData::Bye { reason: Some(reason.to_string()) }));
        }
        self.rtc.disconnect();
        self.set_state(state);
        self.queue.push_back(Output::Event(LinkEvent::Ended(reason)));
    }

    fn on_chunk(&mut self, slot: usize, chunk: &[u8]) {
        let reliable = self.slots[slot].config.is_reliable();
        if reliable && !self.cfg.raw {
            // Whatever the carrier, only the next chunk counts; repeats
            // and early ones are dropped (and acknowledged again).
            self.ack_at.get_or_insert(self.now + ACK_DELAY);
            if self.in_order.check(slot, chunk) == Verdict::Drop {
                return;
            }
            self.recv_reliable += chunk.len() as u64;
        } else if self.inbox_full() && !self.cfg.raw {
            // Unreliable data over a full inbox is dropped, not queued.
            return;
        }
        match self.inbox.push(slot, chunk) {
            Ok(Some(msg)) => {
                let len = msg.data.len() as u64;
                self.stats.messages_received += 1;
                self.stats.bytes_received += len;
                self.delivered += len;
                if self.state() == LinkState::Connecting {
                    self.early_messages.push(msg);
                } else {
                    self.queue.push_back(Output::Event(LinkEvent::Message(msg)));
                }
            }
            Ok(None) => {}
            Err(e) => {
                self.end(DisconnectReason::Protocol(format!("framing: {e}")), true);
                return;
            }
        }
        if reliable {
            self.maybe_grant(false);
        }
    }

    /// Sends credit when enough was received and the application keeps up.
    fn maybe_grant(&mut self, force: bool) {
        if self.cfg.raw || self.inbox_full() {
            return;
        }
        let pending = self.recv_reliable - self.granted;
        if pending == 0 || (!force && pending < self.cfg.window as u64 / 8) {
            return;
        }
        self.granted = self.recv_reliable;
        self.send_credit();
        self.send_acks(false);
    }

    fn send_credit(&mut self) {
        self.write_control(&Control::Credit(self.granted).encode());
    }

    /// Acknowledges what reliable channels accepted (`all`: every channel
    /// again, after a carrier change).
    fn send_acks(&mut self, all: bool) {
        self.ack_at = None;
        let acks = if all { self.in_order.all_acks() } else { self.in_order.take_acks() };
        for (slot, count) in acks {
            let slot = u16::try_from(slot).unwrap_or(u16::MAX);
            self.write_control(&Control::Ack { slot, count }.encode());
        }
    }

    /// Sends the next probe, and reports the quality level if it changed.
    fn send_probe(&mut self) {
        self.next_ping = Some(self.now + quality::PROBE_INTERVAL);
        let nonce = self.meter.probe(self.now);
        self.write_probe(&Control::Ping(nonce).encode(), self.carrier);
        if let Some(level) = self.meter.changed(self.now) {
            tracing::debug!(quality = %level, "link quality");
            self.queue.push_back(Output::Event(LinkEvent::Quality(level)));
        }
    }

    /// A probe or the echo of one of ours.
    fn on_probe(&mut self, msg: &[u8], via: Carrier) {
        match Control::decode(msg) {
            Some(Control::Ping(nonce)) => self.write_probe(&Control::Pong(nonce).encode(), via),
            Some(Control::Pong(nonce)) if self.meter.echoed(nonce, self.now).is_some() => {
                self.stats.rtt = self.meter.rtt();
            }
            _ => {}
        }
    }

    fn write_control(&mut self, msg: &[u8]) {
        match self.carrier {
            Carrier::Rtc => self.write_channel(self.control, msg),
            Carrier::Relay => self.relay_send(RELAY_CONTROL, msg),
        }
    }

    fn write_probe(&mut self, msg: &[u8], via: Carrier) {
        match via {
            Carrier::Rtc => self.write_channel(self.probe, msg),
            Carrier::Relay => self.relay_send(RELAY_PROBE, msg),
        }
    }

    fn write_channel(&mut self, channel: Option<ChannelId>, msg: &[u8]) {
        let Some(id) = channel else { return };
        if let Some(mut ch) = self.rtc.channel(id) {
            // Control messages are tiny; if str0m's buffer is full the next
            // credit or ping carries the newer value anyway.
            let _ = ch.write(true, msg);
        }
    }

    fn on_control(&mut self, msg: &[u8]) {
        // Other types are for later versions; ignored.
        match Control::decode(msg) {
            Some(Control::Credit(value)) => {
                self.peer_limit = self.peer_limit.max(value.saturating_add(self.cfg.window as u64));
            }
            Some(Control::Ack { slot, count }) => self.retained.ack(usize::from(slot), count),
            _ => {}
        }
    }

    /// Largest chunk: below the data-channel message size, and below the
    /// relay's frame size when a relay may have to carry it again.
    fn chunk_max(&self) -> usize {
        match &self.relay {
            Some(r) => self.cfg.chunk_size.min(r.setup.max_payload.saturating_sub(RELAY_FRAMING)).max(1024),
            None => self.cfg.chunk_size,
        }
    }

    /// Moves queued chunks onto the carrier while it has room: first what
    /// must go again, then new chunks. Returns whether anything moved.
    fn pump(&mut self) -> bool {
        let live = match self.carrier {
            Carrier::Rtc if self.cfg.raw => matches!(self.state(), LinkState::Connected | LinkState::Reconnecting),
            Carrier::Rtc => self.rtc_up,
            Carrier::Relay => self.state() == LinkState::Connected,
        };
        if !live {
            return false;
        }
        let mut moved = false;
        while let Some((slot, chunk)) = self.retained.next_resend() {
            let sent = match self.carrier {
                Carrier::Rtc => {
                    let Some(mut ch) = self.slots[slot].id.and_then(|id| self.rtc.channel(id)) else { break };
                    matches!(ch.write(true, chunk), Ok(true))
                }
                Carrier::Relay => {
                    let frame = relay_chunk(slot, chunk);
                    self.relay_data(frame)
                }
            };
            if !sent {
                return moved;
            }
            self.retained.resent(slot);
            moved = true;
        }
        let max = self.chunk_max();
        while !self.outbox.is_empty() {
            let slots = &self.slots;
            let raw = self.cfg.raw;
            let credit = self.peer_limit.saturating_sub(self.sent_reliable);
            let chunk = self.outbox.next_chunk(max, |slot, len| {
                let s = &slots[slot];
                (s.open || self.carrier == Carrier::Relay) && (raw || !s.config.is_reliable() || len as u64 <= credit)
            });
            let Some(chunk) = chunk else { break };
            let reliable = self.slots[chunk.slot].config.is_reliable();
            let sent = match self.carrier {
                Carrier::Rtc => {
                    let Some(mut ch) = self.slots[chunk.slot].id.and_then(|id| self.rtc.channel(id)) else { break };
                    match ch.write(true, &chunk.bytes) {
                        Ok(sent) => sent,
                        Err(e) => {
                            self.end(DisconnectReason::Protocol(format!("data channel write: {e}")), true);
                            break;
                        }
                    }
                }
                Carrier::Relay => {
                    let frame = relay_chunk(chunk.slot, &chunk.bytes);
                    self.relay_data(frame)
                }
            };
            // Full (str0m's buffer, or the relay's pace): wait.
            if !sent {
                break;
            }
            moved = true;
            self.outbox.commit(&chunk);
            if reliable && !raw {
                self.sent_reliable += chunk.bytes.len() as u64;
                self.retained.sent(chunk.slot, chunk.bytes);
            }
        }
        moved
    }

    /// Sends a relay data frame if the pace allows.
    fn relay_data(&mut self, plain: Vec<u8>) -> bool {
        let Some(frame) = self.relay.as_mut().and_then(|r| r.seal_data(self.now, &plain)) else { return false };
        self.queue.push_back(Output::Relay(frame));
        true
    }

    /// Sends a small relay frame (control, probe) whatever the pace.
    fn relay_send(&mut self, kind: u8, body: &[u8]) {
        if let Some(frame) = self.relay.as_mut().and_then(|r| r.seal_small(self.now, kind, body)) {
            self.queue.push_back(Output::Relay(frame));
        }
    }

    /// Lets the server relay carry this link when WebRTC cannot: `random`
    /// seeds the ephemeral key.
    pub(crate) fn enable_relay(&mut self, setup: RelaySetup, random: [u8; 32]) {
        if self.cfg.raw {
            return;
        }
        self.relay = Some(RelayCarrier::new(self.now, setup, random));
        if self.described {
            self.send_relay_key();
        }
    }

    /// Sends this side's relay key, once.
    fn send_relay_key(&mut self) {
        if let Some(signal) = self.relay.as_mut().and_then(RelayCarrier::first_key) {
            self.queue.push_back(Output::Signal(signal));
        }
    }

    /// The other side's relay key.
    fn on_relay_key(&mut self, key: &str, public_key: &str, signature: &str) {
        let Some(r) = &mut self.relay else { return };
        match r.accept_key(key, public_key, signature) {
            Ok(again) => {
                // The other side made a new link: it needs our key too.
                if let Some(signal) = again {
                    self.queue.push_back(Output::Signal(signal));
                }
                self.maybe_go_relay();
            }
            Err(e) => tracing::warn!(error = %e, "relay key refused"),
        }
    }

    /// A sealed frame the server relayed from the other side.
    pub(crate) fn handle_relay(&mut self, now: Instant, frame: &[u8]) {
        self.advance(now);
        if self.ended {
            return;
        }
        let Some(opened) = self.relay.as_mut().and_then(|r| r.open(frame)) else { return };
        let plain = match opened {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "relayed frame refused");
                return;
            }
        };
        match Relayed::parse(&plain) {
            Some(Relayed::Chunk { slot, chunk }) if slot < self.slots.len() => self.on_chunk(slot, chunk),
            Some(Relayed::Control(msg)) => self.on_control(msg),
            Some(Relayed::Probe(msg)) => self.on_probe(msg, Carrier::Relay),
            _ => {}
        }
    }

    /// Moves the link's data to the relay when WebRTC has had no path for
    /// the relay deadline and the relay's keys are agreed.
    fn maybe_go_relay(&mut self) {
        if self.carrier != Carrier::Rtc || self.rtc_up || self.ended {
            return;
        }
        let Some(r) = &self.relay else { return };
        let due = r.ready() && self.now >= self.rtc_down_since + r.setup.after;
        if !due || !matches!(self.state(), LinkState::Connecting | LinkState::Reconnecting) {
            return;
        }
        tracing::debug!(state = %self.state(), "the server relay carries the link");
        let first = self.state() == LinkState::Connecting;
        self.carrier = Carrier::Relay;
        self.deadline = None;
        self.set_state(LinkState::Connected);
        if first {
            self.stats.setup_time = Some(self.now.saturating_duration_since(self.created));
            self.reported_path = Some(PathKind::Server);
            self.queue.push_back(Output::Event(LinkEvent::Connected { path: PathKind::Server, rtt: None }));
            self.connected_extras();
            // WebRTC attempts go on; a first one once this one had time.
            self.recovery.lost(self.now.max(self.created + self.cfg.dead_after));
        } else {
            self.note_path();
        }
        self.carrier_changed();
    }

    /// The carrier changed (or a new session replaced the old one): what
    /// was not acknowledged goes again, and so do credit and acknowledgements.
    fn carrier_changed(&mut self) {
        self.retained.rewind();
        if !self.cfg.raw {
            self.send_credit();
            self.send_acks(true);
        }
    }

    /// When the relay next matters: its deadline, or room in its pace.
    fn relay_timeout(&self) -> Option<Instant> {
        let r = self.relay.as_ref()?;
        if self.carrier == Carrier::Relay {
            let waiting = !self.outbox.is_empty() || self.retained.next_resend().is_some();
            return waiting.then(|| r.ready_at(self.chunk_max() + 3));
        }
        let waiting =
            r.ready() && !self.rtc_up && matches!(self.state(), LinkState::Connecting | LinkState::Reconnecting);
        waiting.then_some(self.rtc_down_since + r.setup.after)
    }
}

/// The path kind of a candidate pair from its candidates' kinds (`None`:
/// an address never announced, learned from a check: peer-reflexive).
///
/// A reflexive remote address (server- or peer-reflexive) that is one of
/// this host's own host addresses (`remote_is_local_host`: both peers on
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
    sdp.lines().find_map(|l| l.trim().strip_prefix("a=ice-ufrag:")).map(str::to_owned)
}

/// The probe channel of a link that declares `declared` channels.
fn probe_config(declared: usize) -> str0m::channel::ChannelConfig {
    str0m::channel::ChannelConfig {
        label: control::PROBE_LABEL.into(),
        ordered: false,
        reliability: str0m::channel::Reliability::MaxRetransmits { retransmits: 0 },
        negotiated: Some(control::probe_stream(declared)),
        ..Default::default()
    }
}

/// The control channel of a link that declares `declared` channels.
fn control_config(declared: usize) -> str0m::channel::ChannelConfig {
    str0m::channel::ChannelConfig {
        label: control::CONTROL_LABEL.into(),
        negotiated: Some(control::control_stream(declared)),
        ..Default::default()
    }
}
