//! The link core: one link to one remote peer, sans-IO, the same on both
//! backends.
//!
//! A link has two carriers: WebRTC sessions, behind the [`Rtc`] trait (str0m
//! natively, the browser's `RTCPeerConnection` in a page), and the signaling
//! server's relay, sealed end to end (`link::server_relay`). The core decides which
//! one carries the data, when a new session is tried and how often, and when
//! the link gives up; it runs the [`Transfer`] (framing, credit,
//! acknowledgements, probes) over whichever carries, so that nothing is
//! lost, repeated or reordered across a switch. It never reads a clock or
//! touches a socket: the driver feeds it signals, relayed frames and time,
//! lets it read what the [`Rtc`] side reports, and drains
//! [`LinkCore::poll_output`].
//!
//! **Sessions.** The offering side numbers its sessions from 0. A framed
//! link whose path was lost gets a new session (fresh DTLS and SCTP on the
//! same candidates): the offerer makes one, the answerer asks for one with
//! `restart`. A live path moves by ICE restart instead (fresh TURN
//! credentials, or the other side asking while this side still hears it).
//! Attempts are paced by [`Pacing`]; an offer still unanswered is sent again
//! rather than replaced.

use std::collections::VecDeque;
use std::time::Duration;

use switchboard_proto::{PeerId, SignalData};
use web_time::Instant;

use super::pacing::Pacing;
use super::proof;
use super::server_relay::{
    Carrier, Opened, RELAY_CONTROL, RELAY_FRAMING, RELAY_PROBE, ServerRelay, ServerRelaySetup, relay_chunk,
};
use super::state::StateMachine;
use super::transfer::{Counters, Lane, Transfer, Wire};
use super::{DisconnectReason, LinkState, LinkStats, PathKind, Quality};
use crate::channel::ChannelConfig;
use crate::error::{ChannelError, SendError};
use crate::framing::{Delivered, FrameError, OutMessage};
use crate::identity::Identity;

/// A session this young is the answer to the `restart` requests sent before
/// it arrived: they do not make another one.
const SESSION_GRACE: Duration = Duration::from_secs(2);
/// Most channels a link carries, declared or opened by the other side.
pub(crate) const MAX_CHANNELS: usize = 1000;
/// Longest channel label, in bytes.
pub(crate) const MAX_LABEL: usize = 1024;
/// Largest message of a raw link this side sends or takes whole: what its
/// SDP advertises (`a=max-message-size`) and its channels buffer natively.
pub(crate) const RAW_MAX_MESSAGE: usize = 256 << 10;
/// What a description without `a=max-message-size` allows (RFC 8841).
const DEFAULT_MAX_MESSAGE: usize = 64 << 10;

/// Which side writes the offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Creates the offer.
    Offerer,
    /// Answers it.
    Answerer,
}

/// Settings of one link.
#[derive(Clone, Debug)]
pub(crate) struct LinkConfig {
    /// The declared channels (slot `n` is the `n`-th).
    pub(crate) channels: Vec<ChannelConfig>,
    /// Raw mode: one message is one data-channel message, no framing.
    pub(crate) raw: bool,
    /// Largest message.
    pub(crate) max_message: usize,
    /// Largest chunk on the wire.
    pub(crate) chunk_size: usize,
    /// Flow-control window, bytes.
    pub(crate) window: usize,
    /// How long a new link may take to connect.
    pub(crate) connect_timeout: Duration,
    /// How long a link that lost its path tries to get one back.
    pub(crate) reconnect_timeout: Duration,
    /// Silence after which a connected path counts as dead (native: the
    /// browser's own consent checks decide there).
    pub(crate) dead_after: Duration,
    /// Bytes str0m may hold unacknowledged per link (native).
    pub(crate) sctp_buffer: usize,
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
        }
    }
}

/// What the WebRTC side of a link reports.
#[derive(Debug, PartialEq)]
pub(crate) enum RtcEvent {
    /// A description or candidate for the other side: `offer`, `answer`,
    /// `candidate`, `end_of_candidates`.
    Signal(SignalData),
    /// Session `session` carries data: DTLS is up and every declared
    /// channel (and, on framed links, the control channel) is open. `path`
    /// when it is known at once; otherwise [`RtcEvent::Path`] follows.
    Up {
        /// The session.
        session: u32,
        /// Its selected path, if known.
        path: Option<PathKind>,
    },
    /// The selected path of the current session is known, or changed.
    Path {
        /// Its kind.
        path: PathKind,
        /// Its round trip, if the WebRTC stack measured one.
        rtt: Option<Duration>,
    },
    /// Session `session` lost its path (silence, ICE disconnected), at `since`.
    Down {
        /// The session.
        session: u32,
        /// When it was last heard from.
        since: Instant,
    },
    /// Session `session` will not recover (ICE failed): try another soon.
    /// (The browser reports it; str0m says only that a path went silent.)
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    Failed {
        /// The session.
        session: u32,
    },
    /// The other side was heard along a lost path: the next attempt is due
    /// now, and the network works again.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    Heard,
    /// A chunk on channel `slot`.
    Chunk {
        /// The channel.
        slot: usize,
        /// The chunk.
        data: Vec<u8>,
        /// It came as a text data-channel message.
        text: bool,
    },
    /// A message on `switchboard-control` or `switchboard-probe`.
    Internal {
        /// Which one.
        lane: Lane,
        /// The message.
        data: Vec<u8>,
    },
    /// The other side opened a channel in band (DCEP); it is slot `slot`.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    Opened {
        /// Its slot (the next one).
        slot: usize,
        /// How it delivers.
        config: ChannelConfig,
    },
    /// Channel `slot` closed for good (raw links).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    Closed {
        /// The channel.
        slot: usize,
    },
    /// The other side closed the connection (raw links: another stack
    /// says so only on the wire).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    PeerClosed,
    /// The channels have room again.
    Drained,
    /// The other side's description or the WebRTC stack failed for good.
    Error(String),
}

/// Why a call into the WebRTC side failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RtcError {
    /// The SDP did not parse or the stack refused it.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    #[error("bad session description: {0}")]
    Sdp(String),
    /// The candidate did not parse.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    #[error("bad candidate: {0}")]
    Candidate(String),
    /// The call does not fit the link's state (an answer without an offer...).
    #[error("{0}")]
    State(&'static str),
    /// The WebRTC stack could not do it (the browser refused to make a peer connection...).
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    #[error("{0}")]
    Stack(String),
}

/// Figures of the WebRTC side.
#[derive(Clone, Debug, Default)]
pub(crate) struct RtcStats {
    /// Local and remote address of the selected candidate pair.
    pub(crate) pair: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    /// Round trip the WebRTC stack measured (raw links have no probes).
    pub(crate) rtt: Option<Duration>,
    /// ICE restarts and new sessions so far.
    pub(crate) restarts: u32,
    /// Bytes waiting in the channels' own buffers.
    pub(crate) buffered: usize,
}

/// The WebRTC side of one link: a peer connection with the link's channels,
/// replaced by a new one for each session. Natively it is sans-IO over
/// str0m; in the browser a thin layer over `RTCPeerConnection`, whose
/// callbacks come back as [`RtcEvent`]s. Descriptions and candidates it makes
/// come out as [`RtcEvent::Signal`].
pub(crate) trait Rtc {
    /// Replaces the current session with session `id`, this side offering.
    fn offer(&mut self, now: Instant, id: u32) -> Result<(), RtcError>;
    /// Takes the other side's offer of session `id`: a new session when
    /// `id` is not the current one's, else an ICE restart (or a repeat) of
    /// the current one.
    fn answer(&mut self, now: Instant, id: u32, sdp: &str) -> Result<(), RtcError>;
    /// Applies the answer to this side's offer of the current session.
    fn accept_answer(&mut self, now: Instant, sdp: &str) -> Result<(), RtcError>;
    /// Restarts ICE in the current session (offering side): fresh ICE
    /// credentials and gathering; the offer comes as an event.
    fn restart_ice(&mut self, now: Instant) -> Result<(), RtcError>;
    /// Adds a candidate from the other side (`candidate:...`; empty: end of candidates).
    fn add_candidate(&mut self, now: Instant, line: &str, mid: Option<&str>) -> Result<(), RtcError>;
    /// An attempt to get a lost path back begins (natively: look whether
    /// the machine's addresses changed).
    fn attempt(&mut self, now: Instant);
    /// Whether channel `slot` of the current session is open.
    fn is_open(&self, slot: usize) -> bool;
    /// Opens a channel in band as slot `slot`, the next one (raw links);
    /// [`RtcEvent::Opened`] follows once it is open.
    fn open_channel(&mut self, slot: usize, config: &ChannelConfig) -> Result<(), RtcError>;
    /// Closes channel `slot` (raw links); [`RtcEvent::Closed`] follows at once.
    fn close_channel(&mut self, slot: usize);
    /// Writes a chunk on channel `slot`, as a text data-channel message when
    /// `text` (raw mode): `Ok(false)` when the channel cannot take it now;
    /// an error ends the link.
    fn write(&mut self, slot: usize, data: &[u8], text: bool) -> Result<bool, String>;
    /// Writes a control or probe message (best effort: a lost one is
    /// superseded by the next).
    fn write_internal(&mut self, lane: Lane, data: &[u8]);
    /// What happened since the last call.
    fn poll_event(&mut self) -> Option<RtcEvent>;
    /// Figures for [`LinkStats`].
    fn stats(&self) -> RtcStats;
    /// Ends the current session for good.
    fn close(&mut self);
}

/// What happened on a link, for the node.
#[derive(Debug, PartialEq)]
pub(crate) enum LinkEvent {
    /// The state changed.
    State(LinkState),
    /// The link carries data.
    Connected {
        /// How.
        path: PathKind,
        /// Round trip so far.
        rtt: Option<Duration>,
    },
    /// A connected link moved to another kind of path.
    PathChanged(PathKind),
    /// The link's quality level changed.
    Quality(Quality),
    /// A channel the other side opened in band is open, as slot `slot`.
    ChannelOpen {
        /// Its slot.
        slot: usize,
        /// Its label.
        label: String,
    },
    /// Channel `slot` closed (raw links): the other side closed it, or it
    /// failed; what was queued on it is dropped.
    ChannelClosed {
        /// Its slot.
        slot: usize,
        /// Its label.
        label: String,
    },
    /// A complete message.
    Message(Delivered),
    /// The link ended.
    Ended(DisconnectReason),
}

/// What the node must do for a link.
#[derive(Debug, PartialEq)]
pub(crate) enum LinkOutput {
    /// Send a signal to the other side.
    Signal(SignalData),
    /// Send a sealed frame to the other side through the server relay.
    ServerRelay(Vec<u8>),
    /// Tell the application.
    Event(LinkEvent),
    /// The other side was heard along a lost path: the network is back, so
    /// the node checks that its signaling connection still answers.
    NetworkBack,
}

/// One link's whole state over its WebRTC side `R`, driven by inputs and time.
pub(crate) struct LinkCore<R> {
    rtc: R,
    role: Role,
    cfg: LinkConfig,
    machine: StateMachine,
    transfer: Transfer,
    relay: Option<ServerRelay>,
    /// Which carrier takes this side's data.
    carrier: Carrier,
    /// Whether the link makes new sessions and restarts (not with bring-your-own signaling).
    restarts: bool,
    now: Instant,
    created: Instant,
    deadline: Option<(Instant, DisconnectReason)>,
    /// The current WebRTC session and when it began.
    session: u32,
    session_started: Instant,
    /// The other side's offer of the current session arrived (answering
    /// side), or our offer went out (offering side).
    negotiating: bool,
    /// This side's offer of the current session, until answered: sent
    /// again rather than replaced by a new one.
    pending_offer: Option<SignalData>,
    /// A description went out: the relay key may follow.
    described: bool,
    /// Fresh TURN credentials came while an offer was unanswered: once it
    /// is, another ICE restart moves the path to them.
    renew_after: bool,
    /// The current session carries data.
    rtc_up: bool,
    /// Since when the link has had no WebRTC path.
    rtc_down_since: Instant,
    /// The session whose path was lost last.
    lost_session: Option<u32>,
    /// A session failed before the link ever connected: try another.
    failed_early: bool,
    pacing: Pacing,
    /// The path kind last reported to the application (`None` until `Connected`).
    path: Option<PathKind>,
    /// The WebRTC path's kind, once known.
    rtc_path: Option<PathKind>,
    rtc_rtt: Option<Duration>,
    /// The other side's `a=max-message-size`, once its description came.
    remote_max_message: Option<usize>,
    setup_time: Option<Duration>,
    /// Messages that arrived before the link counted as connected.
    early: Vec<Delivered>,
    /// Message bytes delivered, and taken by the application.
    delivered: u64,
    consumed: u64,
    ended: bool,
    /// Channels that closed (raw links): sends on them fail.
    closed: Vec<bool>,
    /// This side signs its descriptions with it ([`proof`](super::proof)).
    identity: Option<Identity>,
    /// The peer the other side's descriptions must prove.
    expected: Option<PeerId>,
    /// Channels opened at run time and not open yet, with the time by
    /// which they must be (the connect timeout after they were asked for).
    opening: Vec<(usize, Instant)>,
    out: VecDeque<LinkOutput>,
}

impl<R: Rtc> LinkCore<R> {
    /// A new link over `rtc` that starts at `now` in `role`. `restarts`:
    /// whether it makes new sessions when its path is lost (links with a
    /// signaling server).
    pub(crate) fn new(now: Instant, role: Role, cfg: LinkConfig, rtc: R, restarts: bool) -> Self {
        let transfer = Transfer::new(&cfg.channels, cfg.raw, cfg.max_message, cfg.window, cfg.chunk_size);
        LinkCore {
            rtc,
            role,
            machine: StateMachine::new(now),
            transfer,
            relay: None,
            carrier: Carrier::Rtc,
            restarts,
            now,
            created: now,
            deadline: Some((now + cfg.connect_timeout, DisconnectReason::ConnectTimeout)),
            session: 0,
            session_started: now,
            negotiating: false,
            pending_offer: None,
            described: false,
            renew_after: false,
            rtc_up: false,
            rtc_down_since: now,
            lost_session: None,
            failed_early: false,
            pacing: Pacing::default(),
            path: None,
            rtc_path: None,
            rtc_rtt: None,
            remote_max_message: None,
            setup_time: None,
            early: Vec::new(),
            delivered: 0,
            consumed: 0,
            ended: false,
            closed: vec![false; cfg.channels.len()],
            identity: None,
            expected: None,
            opening: Vec::new(),
            out: VecDeque::new(),
            cfg,
        }
    }

    /// The WebRTC side.
    #[cfg(test)]
    pub(crate) fn rtc(&self) -> &R {
        &self.rtc
    }

    /// The WebRTC side, for the driver's own inputs (datagrams, streams).
    pub(crate) fn rtc_mut(&mut self) -> &mut R {
        &mut self.rtc
    }

    /// Which side offers.
    pub(crate) fn role(&self) -> Role {
        self.role
    }

    /// The current WebRTC session.
    #[cfg(test)]
    pub(crate) fn session(&self) -> u32 {
        self.session
    }

    /// The current state.
    pub(crate) fn state(&self) -> LinkState {
        self.machine.state()
    }

    /// The moves made so far.
    pub(crate) fn history(&self) -> Vec<(Instant, LinkState)> {
        self.machine.history().copied().collect()
    }

    /// Channels known on this link (declared ones, then in-band ones the other side opened).
    pub(crate) fn channels(&self) -> &[ChannelConfig] {
        &self.cfg.channels
    }

    /// The slot that carries sends on `channel`: the first open (or
    /// opening) one of that label.
    pub(crate) fn slot_of(&self, channel: &str) -> Result<usize, SendError> {
        let mut closed = false;
        for (slot, c) in self.cfg.channels.iter().enumerate() {
            if c.label == channel {
                if !self.closed.get(slot).copied().unwrap_or(false) {
                    return Ok(slot);
                }
                closed = true;
            }
        }
        Err(if closed {
            SendError::ChannelClosed(channel.to_owned())
        } else {
            SendError::UnknownChannel(channel.to_owned())
        })
    }

    /// Opens channel `config` in band on this raw link, from either side;
    /// [`LinkEvent::ChannelOpen`] follows once it is open, or
    /// [`LinkEvent::ChannelClosed`] if it fails. Returns its slot.
    pub(crate) fn open_channel(&mut self, now: Instant, config: ChannelConfig) -> Result<usize, ChannelError> {
        self.advance(now);
        if !self.cfg.raw {
            return Err(ChannelError::NotRaw);
        }
        // What the WebRTC side reported first: the other side's channels
        // take their slots before this one.
        self.process();
        if self.ended {
            return Err(ChannelError::Closed);
        }
        if config.label.len() > MAX_LABEL || self.cfg.channels.len() >= MAX_CHANNELS {
            return Err(ChannelError::Limit { channels: MAX_CHANNELS, label: MAX_LABEL });
        }
        if self.slot_of(&config.label).is_ok() {
            return Err(ChannelError::LabelTaken(config.label));
        }
        let config = ChannelConfig { negotiated: false, ..config };
        let slot = self.cfg.channels.len();
        self.rtc.open_channel(slot, &config).map_err(|e| ChannelError::Stack(e.to_string()))?;
        self.transfer.add_channel(slot, &config);
        self.cfg.channels.push(config);
        self.closed.push(false);
        self.opening.push((slot, self.now + self.cfg.connect_timeout));
        self.process();
        Ok(slot)
    }

    /// Closes channel `channel` of this raw link (the other side learns of
    /// it); what was queued on it is dropped, and
    /// [`LinkEvent::ChannelClosed`] follows.
    pub(crate) fn close_channel(&mut self, now: Instant, channel: &str) -> Result<(), ChannelError> {
        self.advance(now);
        if !self.cfg.raw {
            return Err(ChannelError::NotRaw);
        }
        if self.ended {
            return Err(ChannelError::Closed);
        }
        let slot = self.slot_of(channel).map_err(|_| ChannelError::UnknownChannel(channel.to_owned()))?;
        self.rtc.close_channel(slot);
        self.process();
        Ok(())
    }

    /// Message bytes queued and not yet written (what backpressure counts).
    pub(crate) fn queued(&self) -> usize {
        self.transfer.queued()
    }

    /// Whether the application has more than half a window of this link's
    /// messages unread: credit is withheld until it catches up.
    pub(crate) fn app_full(&self) -> bool {
        self.delivered - self.consumed > self.cfg.window as u64 / 2
    }

    /// Figures so far.
    pub(crate) fn stats(&self) -> LinkStats {
        let Counters { bytes_sent, bytes_received, messages_sent, messages_received } = self.transfer.counters();
        let rtc = self.rtc.stats();
        LinkStats {
            bytes_sent,
            bytes_received,
            messages_sent,
            messages_received,
            rtt: self.transfer.rtt().or(self.rtc_rtt).or(rtc.rtt),
            path: self.path,
            local_addr: rtc.pair.map(|(l, _)| l),
            remote_addr: rtc.pair.map(|(_, r)| r),
            buffered: self.transfer.queued() + rtc.buffered,
            setup_time: self.setup_time,
            dropped_partials: self.transfer.dropped_partials(),
            loss: self.transfer.loss(self.now),
            quality: self.transfer.quality(),
            ice_restarts: rtc.restarts,
        }
    }

    /// Binds the link to identities: this side's descriptions carry a proof
    /// by `identity` that their DTLS certificate is its; the other side's
    /// must prove `expected` (when set), or the link ends
    /// [unverified](DisconnectReason::Unverified) before it connects.
    pub(crate) fn bind_identity(&mut self, identity: Identity, expected: Option<PeerId>) {
        self.identity = Some(identity);
        self.expected = expected;
    }

    /// Whether `sdp` from the other side proves the peer expected (always,
    /// when none is).
    pub(crate) fn check_description(&self, sdp: &str) -> Result<(), proof::ProofError> {
        match self.expected {
            Some(expected) => proof::verify(sdp, expected),
            None => Ok(()),
        }
    }

    /// Lets the server relay carry this link when WebRTC cannot; `random`
    /// seeds the ephemeral key. Framed links only.
    pub(crate) fn enable_server_relay(&mut self, setup: ServerRelaySetup, random: [u8; 32]) {
        if self.cfg.raw {
            return;
        }
        // Chunks small enough that the relay could carry them again.
        let chunk = self.cfg.chunk_size.min(setup.max_payload.saturating_sub(RELAY_FRAMING)).max(1024);
        self.transfer.set_chunk_size(chunk);
        self.relay = Some(ServerRelay::new(self.now, setup, random));
        if self.described {
            self.send_relay_key();
        }
    }

    /// Starts the negotiation on the offering side: session 0's offer comes
    /// out as a signal.
    pub(crate) fn start(&mut self, now: Instant) -> Result<(), RtcError> {
        self.advance(now);
        if self.role != Role::Offerer || self.state() != LinkState::New {
            return Err(RtcError::State("only a new offering link can start"));
        }
        self.rtc.offer(now, 0)?;
        self.negotiating = true;
        self.set_state(LinkState::Signaling);
        self.process();
        Ok(())
    }

    /// Largest message a raw link may send: the other side's
    /// `a=max-message-size` (0: any size), within [`RAW_MAX_MESSAGE`] and the
    /// link's maximum; 64 KiB before its description came.
    pub(crate) fn max_raw_message(&self) -> usize {
        let remote = match self.remote_max_message {
            None => DEFAULT_MAX_MESSAGE,
            Some(0) => RAW_MAX_MESSAGE,
            Some(n) => n.min(RAW_MAX_MESSAGE),
        };
        remote.min(self.cfg.max_message)
    }

    /// Notes what the other side's description says of message sizes.
    fn note_remote_description(&mut self, sdp: &str) {
        let size = sdp.lines().find_map(|l| l.trim().strip_prefix("a=max-message-size:")?.trim().parse::<usize>().ok());
        self.remote_max_message = Some(size.unwrap_or(DEFAULT_MAX_MESSAGE));
    }

    /// Takes a signal from the other side. A description the WebRTC side
    /// refuses ends the link.
    pub(crate) fn handle_signal(&mut self, now: Instant, signal: SignalData) -> Result<(), RtcError> {
        self.advance(now);
        if self.ended {
            return Ok(());
        }
        let result = match signal {
            SignalData::Offer { sdp, session } => match self.take_description(&sdp) {
                Some(sdp) => self.on_offer(&sdp, session),
                None => Ok(()),
            },
            // An answer to an earlier session's offer is stale.
            SignalData::Answer { session, .. } if session != self.session => Ok(()),
            SignalData::Answer { sdp, .. } => match self.take_description(&sdp) {
                Some(sdp) => self.on_answer(&sdp),
                None => Ok(()),
            },
            SignalData::Candidate { candidate, mid } => self.rtc.add_candidate(now, &candidate, mid.as_deref()),
            SignalData::EndOfCandidates => self.rtc.add_candidate(now, "", None),
            SignalData::Restart => {
                self.on_restart_request();
                Ok(())
            }
            SignalData::RelayKey { key, public_key, signature } => {
                self.on_relay_key(&key, &public_key, &signature);
                Ok(())
            }
            SignalData::Bye { reason } => {
                self.end(DisconnectReason::ClosedByPeer(reason), false);
                Ok(())
            }
            // The request topology's signals are the node's business.
            _ => Ok(()),
        };
        if let Err(RtcError::Sdp(e)) = &result {
            self.end(DisconnectReason::Protocol(format!("bad session description: {e}")), true);
        }
        self.process();
        result
    }

    /// An offer (answering side): the first, a new session, or an ICE
    /// restart or repeat of the current one. Older sessions' offers are stale.
    /// Checks the other side's description: what the WebRTC side is to
    /// take, or `None` when it does not prove the expected peer (the link
    /// then ends, and the other side is told why).
    fn take_description(&mut self, sdp: &str) -> Option<String> {
        if let Err(e) = self.check_description(sdp) {
            tracing::warn!(error = %e, "a session description that does not prove the peer's identity");
            let reason = DisconnectReason::Unverified(e.to_string());
            // The other side learns why, unless whoever is in the middle keeps it.
            self.out.push_back(LinkOutput::Signal(SignalData::Bye { reason: Some(reason.to_string()) }));
            self.end(reason, false);
            return None;
        }
        let sdp = proof::strip(sdp);
        self.note_remote_description(&sdp);
        Some(sdp)
    }

    fn on_offer(&mut self, sdp: &str, session: u32) -> Result<(), RtcError> {
        if self.role != Role::Answerer {
            return Err(RtcError::State("the offering side takes no offer"));
        }
        if self.negotiating && session < self.session {
            return Ok(());
        }
        if self.negotiating && session != self.session {
            tracing::debug!(session, "new session by the other side");
            self.session_replaced();
        }
        self.session = session;
        self.rtc.answer(self.now, session, sdp)?;
        if !self.negotiating {
            self.negotiating = true;
            self.session_started = self.now;
        }
        if matches!(self.state(), LinkState::New | LinkState::Signaling) {
            self.set_state(LinkState::Signaling);
            self.set_state(LinkState::Connecting);
        }
        Ok(())
    }

    /// The answer to this side's offer of the current session.
    fn on_answer(&mut self, sdp: &str) -> Result<(), RtcError> {
        if self.role != Role::Offerer || self.pending_offer.is_none() && self.state() != LinkState::Signaling {
            return Err(RtcError::State("no offer is waiting for an answer"));
        }
        self.rtc.accept_answer(self.now, sdp)?;
        self.pending_offer = None;
        if self.state() == LinkState::Signaling {
            self.set_state(LinkState::Connecting);
        }
        if std::mem::take(&mut self.renew_after) && self.rtc_up {
            self.restart_ice();
        }
        Ok(())
    }

    /// The other side asks for a new session or an ICE restart (it lost the
    /// path, or has fresh TURN credentials).
    fn on_restart_request(&mut self) {
        let live = matches!(self.state(), LinkState::Connected | LinkState::Reconnecting);
        if self.role != Role::Offerer || !live || !self.restarts {
            return;
        }
        if self.rtc_up && self.carrier == Carrier::Rtc {
            // This side still hears the path: move it.
            self.restart_ice();
        } else if self.now >= self.session_started + SESSION_GRACE || self.pending_offer.is_some() {
            self.new_session();
        }
    }

    /// Queues a message on channel `slot`.
    pub(crate) fn send(&mut self, now: Instant, slot: usize, msg: OutMessage) {
        self.advance(now);
        self.transfer.send(slot, msg);
        self.process();
    }

    /// The application took `len` bytes of this link's messages: credit
    /// may go out again.
    pub(crate) fn consumed(&mut self, now: Instant, len: usize) {
        self.advance(now);
        let was_full = self.app_full() || self.transfer.has_ready();
        self.consumed = (self.consumed + len as u64).min(self.delivered);
        if was_full && !self.app_full() {
            self.deliver_ready();
            if !self.app_full() {
                self.transfer.grant(true, false);
            }
            self.process();
        }
    }

    /// Closes the link on purpose (the other side gets `bye`).
    pub(crate) fn close(&mut self, now: Instant, reason: Option<String>) {
        self.advance(now);
        if self.ended {
            return;
        }
        self.out.push_back(LinkOutput::Signal(SignalData::Bye { reason }));
        self.end(DisconnectReason::Closed, true);
    }

    /// A sealed frame the server relayed from the other side.
    pub(crate) fn handle_server_relay(&mut self, now: Instant, frame: &[u8]) {
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
        match Opened::parse(&plain) {
            Some(Opened::Chunk { slot, chunk, text }) if slot < self.cfg.channels.len() => {
                self.on_chunk(slot, chunk, text);
            }
            Some(Opened::Control(msg)) => self.transfer.receive_control(msg),
            Some(Opened::Probe(msg)) => self.transfer.receive_probe(self.now, msg),
            _ => {}
        }
        self.process();
    }

    /// The node has fresh TURN credentials: a link on a TURN relay moves to
    /// a new allocation before the old credentials expire.
    pub(crate) fn renew(&mut self, now: Instant) {
        self.advance(now);
        if self.state() != LinkState::Connected || self.path != Some(PathKind::Relayed) || !self.restarts {
            return;
        }
        match self.role {
            Role::Offerer if self.pending_offer.is_some() => self.renew_after = true,
            Role::Offerer => self.restart_ice(),
            Role::Answerer => self.out.push_back(LinkOutput::Signal(SignalData::Restart)),
        }
        self.process();
    }

    /// The node's signaling connection is back: signals sent while it was
    /// away may be lost, so a link that waits for a session tries again now.
    pub(crate) fn signaling_back(&mut self, now: Instant) {
        self.advance(now);
        if !self.ended && !self.rtc_up && self.lost_session.is_some() {
            self.pacing.retry_now(now);
        }
    }

    /// Lets time pass; also reads what the WebRTC side reported.
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
        // A channel that did not open in time (the other side's association
        // has no stream for it, say) closes, and sends on it fail.
        let (late, opening): (Vec<_>, Vec<_>) = self.opening.drain(..).partition(|(_, by)| now >= *by);
        self.opening = opening;
        for (slot, _) in late {
            tracing::debug!(slot, "channel did not open in time");
            self.rtc.close_channel(slot);
        }
        self.maybe_use_server_relay();
        let retrying = self.state() == LinkState::Reconnecting
            || (self.carrier == Carrier::Server && self.state() == LinkState::Connected)
            || (self.failed_early && self.state() == LinkState::Connecting);
        if !self.rtc_up && retrying && self.restarts && self.pacing.attempt_due(now) {
            self.try_restart();
        }
        if let Some(q) = self.transfer.handle_timeout(now) {
            tracing::debug!(quality = %q, "link quality");
            self.out.push_back(LinkOutput::Event(LinkEvent::Quality(q)));
        }
        self.process();
    }

    /// When the core next wants [`Self::handle_timeout`] (the WebRTC side
    /// keeps its own timers).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let retrying = self.restarts && !self.rtc_up;
        [
            self.deadline.as_ref().map(|(at, _)| *at),
            self.transfer.poll_timeout().filter(|_| self.carrier_live()),
            self.pacing.poll_timeout().filter(|_| retrying),
            self.server_relay_timeout(),
            self.opening.iter().map(|(_, by)| *by).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing to do; `None` when nothing is pending. Reads what the
    /// WebRTC side reported first.
    pub(crate) fn poll_output(&mut self) -> Option<LinkOutput> {
        if self.out.is_empty() {
            self.process();
        }
        self.out.pop_front()
    }

    /// Handles at `now` what the WebRTC side reported (the driver fed it)
    /// and moves queued data.
    pub(crate) fn drive(&mut self, now: Instant) {
        self.advance(now);
        self.process();
    }

    /// Handles what the WebRTC side reported and moves queued data.
    fn process(&mut self) {
        while let Some(event) = self.rtc.poll_event() {
            if self.ended {
                continue;
            }
            self.on_rtc(event);
        }
        if !self.ended {
            self.pump();
        }
    }

    fn on_rtc(&mut self, event: RtcEvent) {
        match event {
            RtcEvent::Signal(mut signal) => {
                if let (SignalData::Offer { sdp, .. } | SignalData::Answer { sdp, .. }, Some(identity)) =
                    (&mut signal, &self.identity)
                {
                    *sdp = proof::sign(sdp, identity);
                }
                let description = matches!(signal, SignalData::Offer { .. } | SignalData::Answer { .. });
                if let SignalData::Offer { .. } = &signal {
                    self.pending_offer = Some(signal.clone());
                }
                self.out.push_back(LinkOutput::Signal(signal));
                if description && !self.described {
                    self.described = true;
                    self.send_relay_key();
                }
            }
            RtcEvent::Up { session, path } if session == self.session => self.session_up(path),
            RtcEvent::Path { path, rtt } => {
                self.rtc_path = Some(path);
                self.rtc_rtt = rtt.or(self.rtc_rtt);
                if self.carrier == Carrier::Rtc && self.rtc_up {
                    self.report_path(path);
                }
            }
            RtcEvent::Down { session, since } if session == self.session => self.path_lost(since),
            RtcEvent::Failed { session } if session == self.session => {
                self.path_lost(self.now);
                if self.state() == LinkState::Connecting {
                    self.failed_early = true;
                    self.pacing.lost(self.now);
                }
            }
            RtcEvent::Up { .. } | RtcEvent::Down { .. } | RtcEvent::Failed { .. } => {}
            RtcEvent::Heard => {
                if !self.rtc_up && (self.lost_session.is_some() || self.failed_early) {
                    self.pacing.retry_now(self.now);
                    self.out.push_back(LinkOutput::NetworkBack);
                }
            }
            RtcEvent::Chunk { slot, data, text } => self.on_chunk(slot, &data, text),
            RtcEvent::Internal { lane: Lane::Control, data } => self.transfer.receive_control(&data),
            RtcEvent::Internal { lane: Lane::Probe, data } => self.transfer.receive_probe(self.now, &data),
            RtcEvent::Opened { slot, config } => {
                if slot >= MAX_CHANNELS || config.label.len() > MAX_LABEL {
                    let why = format!(
                        "channel {slot} ({} byte label) over the limit of {MAX_CHANNELS} channels and {MAX_LABEL} byte labels",
                        config.label.len()
                    );
                    return self.end(DisconnectReason::Protocol(why), true);
                }
                if slot == self.cfg.channels.len() {
                    let label = config.label.clone();
                    self.transfer.add_channel(slot, &config);
                    self.cfg.channels.push(config);
                    self.closed.push(false);
                    self.out.push_back(LinkOutput::Event(LinkEvent::ChannelOpen { slot, label }));
                } else if slot < self.cfg.channels.len() {
                    // One this side declared or opened (raw links report each).
                    self.opening.retain(|(s, _)| *s != slot);
                    let label = config.label;
                    self.out.push_back(LinkOutput::Event(LinkEvent::ChannelOpen { slot, label }));
                }
            }
            RtcEvent::Closed { slot } => {
                let freed = self.transfer.clear(slot);
                tracing::debug!(slot, freed, "channel closed");
                if let Some(c) = self.closed.get_mut(slot) {
                    *c = true;
                }
                self.opening.retain(|(s, _)| *s != slot);
                if let Some(label) = self.cfg.channels.get(slot).map(|c| c.label.clone()) {
                    self.out.push_back(LinkOutput::Event(LinkEvent::ChannelClosed { slot, label }));
                }
            }
            RtcEvent::PeerClosed => self.end(DisconnectReason::ClosedByPeer(None), false),
            RtcEvent::Drained => {}
            RtcEvent::Error(e) => self.end(DisconnectReason::Protocol(e), true),
        }
    }

    /// The current session carries data: the link connects, or moves its
    /// data back from the relay or a lost session.
    fn session_up(&mut self, path: Option<PathKind>) {
        if self.rtc_up || self.state().is_final() {
            return;
        }
        self.rtc_up = true;
        self.failed_early = false;
        self.deadline = None;
        self.pacing.recovered();
        if let Some(p) = path {
            self.rtc_path = Some(p);
        }
        let first = self.state() == LinkState::Connecting;
        if !first {
            tracing::debug!(session = self.session, "WebRTC carries the link again");
        }
        self.carrier = Carrier::Rtc;
        self.set_state(LinkState::Connected);
        if first {
            self.setup_time = Some(self.now.saturating_duration_since(self.created));
        }
        // After another carrier, what it may have lost goes again.
        self.transfer.carrier_up(self.now, !first);
        if let Some(p) = self.rtc_path.filter(|_| path.is_some() || !first) {
            self.report_path(p);
        }
    }

    /// The WebRTC path stopped answering: look for another (and let the
    /// relay carry meanwhile); without the relay, give up at the reconnect timeout.
    fn path_lost(&mut self, since: Instant) {
        if !self.rtc_up {
            return;
        }
        self.rtc_up = false;
        self.rtc_down_since = since.min(self.now);
        self.lost_session = Some(self.session);
        self.pacing.lost(self.now);
        if self.carrier == Carrier::Rtc && self.state() == LinkState::Connected {
            self.deadline = Some((self.now + self.cfg.reconnect_timeout, DisconnectReason::PathLost));
            self.set_state(LinkState::Reconnecting);
        }
    }

    /// The current session gives way to a new one (either side): until it
    /// is up, data waits or goes by the relay.
    fn session_replaced(&mut self) {
        self.pending_offer = None;
        self.session_started = self.now;
        if self.rtc_up {
            self.rtc_up = false;
            self.rtc_down_since = self.now;
            self.lost_session = Some(self.session);
            if self.carrier == Carrier::Rtc && self.state() == LinkState::Connected {
                self.deadline = Some((self.now + self.cfg.reconnect_timeout, DisconnectReason::PathLost));
                self.set_state(LinkState::Reconnecting);
            }
            self.pacing.lost(self.now + super::pacing::FIRST_RETRY);
        }
    }

    /// One attempt to find a WebRTC path again: the offering side makes a
    /// new session (an ICE restart on raw links), the answering side asks for one.
    fn try_restart(&mut self) {
        self.rtc.attempt(self.now);
        match self.role {
            Role::Offerer if self.cfg.raw => self.restart_ice(),
            Role::Offerer => self.new_session(),
            Role::Answerer => self.out.push_back(LinkOutput::Signal(SignalData::Restart)),
        }
    }

    /// A new WebRTC session (offering side). An offer still unanswered is sent again.
    fn new_session(&mut self) {
        if let Some(offer) = &self.pending_offer {
            self.out.push_back(LinkOutput::Signal(offer.clone()));
            return;
        }
        self.session_replaced();
        self.session += 1;
        tracing::debug!(session = self.session, state = %self.state(), "new session");
        if let Err(e) = self.rtc.offer(self.now, self.session) {
            tracing::warn!(error = %e, "cannot offer a new session");
        }
    }

    /// Restarts ICE in the current session (offering side). An offer still
    /// unanswered is sent again.
    fn restart_ice(&mut self) {
        if let Some(offer) = &self.pending_offer {
            self.out.push_back(LinkOutput::Signal(offer.clone()));
            return;
        }
        tracing::debug!(state = %self.state(), "ICE restart");
        if let Err(e) = self.rtc.restart_ice(self.now) {
            tracing::debug!(error = %e, "cannot restart ICE");
        }
    }

    /// Reports the path kind: the first time the link is connected, later
    /// a change.
    fn report_path(&mut self, kind: PathKind) {
        if self.state() != LinkState::Connected {
            return;
        }
        match self.path {
            None => {
                self.path = Some(kind);
                let rtt = self.transfer.rtt().or(self.rtc_rtt);
                self.out.push_back(LinkOutput::Event(LinkEvent::Connected { path: kind, rtt }));
                for msg in std::mem::take(&mut self.early) {
                    self.out.push_back(LinkOutput::Event(LinkEvent::Message(msg)));
                }
            }
            Some(p) if p != kind => {
                tracing::debug!(path = %kind, "path changed");
                self.path = Some(kind);
                self.out.push_back(LinkOutput::Event(LinkEvent::PathChanged(kind)));
            }
            Some(_) => {}
        }
    }

    /// A chunk on `slot`, from either carrier.
    fn on_chunk(&mut self, slot: usize, chunk: &[u8], text: bool) {
        let app_full = self.app_full();
        match self.transfer.receive_chunk(self.now, slot, chunk, text, app_full) {
            Ok(()) => self.deliver_ready(),
            Err(FrameError::Unread(n)) => self.end(DisconnectReason::Overrun(n), true),
            Err(e) => self.end(DisconnectReason::Protocol(format!("framing: {e}")), true),
        }
    }

    /// Hands complete messages to the application while it has room.
    fn deliver_ready(&mut self) {
        while let Some(next) = self.transfer.next_message(self.app_full()) {
            match next {
                Ok(msg) => {
                    self.delivered += msg.data.len() as u64;
                    if self.path.is_some() {
                        self.out.push_back(LinkOutput::Event(LinkEvent::Message(msg)));
                    } else {
                        self.early.push(msg);
                    }
                }
                Err(e) => return self.end(DisconnectReason::Protocol(format!("framing: {e}")), true),
            }
        }
    }

    /// Whether the current carrier takes data now.
    fn carrier_live(&self) -> bool {
        match self.carrier {
            Carrier::Rtc if self.cfg.raw => matches!(self.state(), LinkState::Connected | LinkState::Reconnecting),
            Carrier::Rtc => self.rtc_up,
            Carrier::Server => self.state() == LinkState::Connected,
        }
    }

    /// Writes control messages and moves queued chunks onto the carrier
    /// while it has room.
    fn pump(&mut self) {
        if !self.carrier_live() {
            // Credit and acknowledgements are sent again in full when a
            // carrier comes up; a probe that cannot go is lost anyway.
            while self.transfer.poll_control().is_some() {}
            return;
        }
        let now = self.now;
        while let Some((lane, msg)) = self.transfer.poll_control() {
            match self.carrier {
                Carrier::Rtc => self.rtc.write_internal(lane, &msg),
                Carrier::Server => {
                    let kind = if lane == Lane::Control { RELAY_CONTROL } else { RELAY_PROBE };
                    if let Some(frame) = self.relay.as_mut().and_then(|r| r.seal_small(now, kind, &msg)) {
                        self.out.push_back(LinkOutput::ServerRelay(frame));
                    }
                }
            }
        }
        let result = match (self.carrier, &mut self.relay) {
            (Carrier::Server, Some(relay)) => {
                self.transfer.pump(&mut ServerRelayWire { relay, now, out: &mut self.out });
                Ok(())
            }
            _ => {
                let mut wire = RtcWire { rtc: &mut self.rtc, error: None };
                self.transfer.pump(&mut wire);
                wire.error.map_or(Ok(()), Err)
            }
        };
        if let Err(e) = result {
            self.end(DisconnectReason::Protocol(format!("data channel write: {e}")), true);
        }
    }

    /// Sends this side's relay key, once.
    fn send_relay_key(&mut self) {
        if let Some(signal) = self.relay.as_mut().and_then(ServerRelay::first_key) {
            self.out.push_back(LinkOutput::Signal(signal));
        }
    }

    /// The other side's relay key.
    fn on_relay_key(&mut self, key: &str, public_key: &str, signature: &str) {
        let Some(r) = &mut self.relay else { return };
        match r.accept_key(key, public_key, signature) {
            // The other side made a new link: it needs our key too.
            Ok(again) => self.out.extend(again.map(LinkOutput::Signal)),
            Err(e) => tracing::warn!(error = %e, "relay key refused"),
        }
        self.maybe_use_server_relay();
    }

    /// Moves the link's data to the relay when WebRTC has had no path for
    /// the relay delay and the relay's keys are agreed.
    fn maybe_use_server_relay(&mut self) {
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
        self.carrier = Carrier::Server;
        self.deadline = None;
        self.set_state(LinkState::Connected);
        if first {
            self.setup_time = Some(self.now.saturating_duration_since(self.created));
            // WebRTC attempts go on; a first one once this one had time.
            self.pacing.lost(self.now.max(self.created + self.cfg.dead_after));
        }
        self.report_path(PathKind::Server);
        self.transfer.carrier_up(self.now, !first);
    }

    /// When the relay next matters: its delay, or room in its pace.
    fn server_relay_timeout(&self) -> Option<Instant> {
        let r = self.relay.as_ref()?;
        if self.carrier == Carrier::Server {
            let waiting = self.transfer.pending() && self.state() == LinkState::Connected;
            return waiting.then(|| r.ready_at(self.transfer.chunk_size() + 3));
        }
        let waiting =
            r.ready() && !self.rtc_up && matches!(self.state(), LinkState::Connecting | LinkState::Reconnecting);
        waiting.then_some(self.rtc_down_since + r.setup.after)
    }

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    fn set_state(&mut self, to: LinkState) {
        match self.machine.move_to(self.now, to) {
            Ok(true) => self.out.push_back(LinkOutput::Event(LinkEvent::State(to))),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "link state move refused"),
        }
    }

    /// Ends the link: `local` when this side decided (the other side gets
    /// `bye` with the reason, unless this side closed on purpose, which
    /// sends its own).
    pub(crate) fn end(&mut self, reason: DisconnectReason, local: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.deadline = None;
        let state = match reason {
            DisconnectReason::Closed | DisconnectReason::ClosedByPeer(_) => LinkState::Closed,
            _ => LinkState::Failed,
        };
        if local && !matches!(reason, DisconnectReason::Closed) && self.negotiating {
            self.out.push_back(LinkOutput::Signal(SignalData::Bye { reason: Some(reason.to_string()) }));
        }
        self.rtc.close();
        self.set_state(state);
        self.out.push_back(LinkOutput::Event(LinkEvent::Ended(reason)));
    }
}

/// The WebRTC side's channels as the transfer's wire.
struct RtcWire<'a, R> {
    rtc: &'a mut R,
    error: Option<String>,
}

impl<R: Rtc> Wire for RtcWire<'_, R> {
    fn open(&self, slot: usize) -> bool {
        self.error.is_none() && self.rtc.is_open(slot)
    }

    fn write(&mut self, slot: usize, chunk: &[u8], text: bool) -> bool {
        match self.rtc.write(slot, chunk, text) {
            Ok(sent) => sent,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}

/// The server relay as the transfer's wire: sealed frames within its pace.
struct ServerRelayWire<'a> {
    relay: &'a mut ServerRelay,
    now: Instant,
    out: &'a mut VecDeque<LinkOutput>,
}

impl Wire for ServerRelayWire<'_> {
    fn open(&self, _slot: usize) -> bool {
        true
    }

    fn write(&mut self, slot: usize, chunk: &[u8], text: bool) -> bool {
        let Some(frame) = self.relay.seal_data(self.now, &relay_chunk(slot, chunk, text)) else { return false };
        self.out.push_back(LinkOutput::ServerRelay(frame));
        true
    }
}
