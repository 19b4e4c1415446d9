//! One browser link: WebRTC sessions (an `RTCPeerConnection` with the
//! node's pre-negotiated data channels plus `switchboard-control` and
//! `switchboard-probe`) and the signaling server's relay as carriers of one
//! sans-IO [`Transfer`] (framing, credit, acknowledgements, probes).
//!
//! Every callback of a session and its channels becomes an [`Input`] that
//! the node hands to [`WebLink::handle`]; the link answers with
//! [`Effect`]s. Chunks go out while a channel's `bufferedAmount` is below
//! [`CHANNEL_HIGH`]; `bufferedamountlow` (at [`CHANNEL_LOW`]) brings the
//! next ones, so nothing polls.
//!
//! **Carriers.** When WebRTC has had no path for the relay delay (from the
//! start, or since the path was lost) and both sides agreed the relay's
//! keys (`link::relay`), sealed frames through the server carry the link.
//! Meanwhile new WebRTC sessions are tried: the offering side makes them,
//! the answering side asks for them with a `restart` signal. Once a
//! session's channels open, the data moves back; what the old carrier may
//! have lost goes again, as on native links.

use std::rc::Weak;
use std::time::Duration;

use js_sys::{Array, Reflect, Uint8Array};
use switchboard_proto::{ConnId, PeerId, SignalData};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::{Closure, JsValue};
use web_sys::{
    MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelInit, RtcDataChannelState, RtcDataChannelType,
    RtcIceCandidateInit, RtcIceServer, RtcIceTransportPolicy, RtcPeerConnection, RtcPeerConnectionIceEvent, RtcSdpType,
    RtcSessionDescriptionInit,
};
use web_time::Instant;

use super::Shared;
use crate::channel::ChannelConfig;
use crate::framing::{Delivered, OutMessage};
use crate::link::control::{CONTROL_LABEL, PROBE_LABEL, control_stream, probe_stream};
use crate::link::relay::{self, Carrier, RELAY_CONTROL, RELAY_FRAMING, RELAY_PROBE, RelayCarrier, RelaySetup, Relayed};
use crate::link::state::StateMachine;
use crate::link::transfer::{Counters, Lane, Transfer, Wire};
use crate::{DisconnectReason, IcePolicy, IceServer, LinkState, LinkStats, PathKind};

/// A channel takes no more chunks while this much is buffered.
pub(crate) const CHANNEL_HIGH: u32 = 1 << 20;
/// `bufferedamountlow` fires below this.
pub(crate) const CHANNEL_LOW: u32 = 256 << 10;
/// Pause before the first new session while WebRTC is down; it doubles up
/// to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(16);
/// A session this young answers the other side's requests for a new one.
const SESSION_GRACE: Duration = Duration::from_secs(2);

/// Which channel of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    /// A declared channel.
    Slot(usize),
    /// `switchboard-control`.
    Control,
    /// `switchboard-probe`.
    Probe,
}

/// Something the browser reported about a link.
pub(crate) enum Input {
    /// A channel opened.
    Open(Which),
    /// A channel of the session closed.
    Close,
    /// A channel received a message.
    Data(Which, Vec<u8>),
    /// A channel's buffer drained below [`CHANNEL_LOW`].
    Drained,
    /// A local ICE candidate (`None`: gathering is complete).
    Candidate(Option<(String, Option<String>)>),
    /// `connectionState` changed.
    Connection(String),
    /// The timer the link asked for fired.
    Timer,
    /// The selected candidate pair's kind and round trip, from `getStats`.
    Path(PathKind, Option<Duration>),
    /// A sealed frame the server relayed from the other side.
    Relay(Vec<u8>),
}

/// What the link asks the node to do.
pub(crate) enum Effect {
    /// Send a signal to the peer.
    Signal(SignalData),
    /// Report an event.
    Event(crate::Event),
    /// A message arrived.
    Delivered(Delivered),
    /// The link ended.
    Ended(DisconnectReason),
    /// Buffered data went out: senders waiting for room may go on.
    Room,
    /// The session is up: read the selected pair with `getStats`.
    ReadPath,
    /// Send a sealed frame to the peer through the server relay.
    Relay(Vec<u8>),
    /// Start a new WebRTC session (this side offers).
    NewSession,
}

/// Settings a link takes from its node.
#[derive(Clone)]
pub(crate) struct LinkSettings {
    pub(crate) channels: Vec<ChannelConfig>,
    pub(crate) ice_servers: Vec<IceServer>,
    pub(crate) policy: IcePolicy,
    pub(crate) max_message: usize,
    pub(crate) window: usize,
    pub(crate) chunk_size: usize,
    pub(crate) connect_timeout: Duration,
    /// The server relay, when the node lets it carry links.
    pub(crate) relay: Option<RelaySetup>,
}

/// One WebRTC session of a link: its connection and channels.
struct Session {
    id: u32,
    pc: RtcPeerConnection,
    channels: Vec<RtcDataChannel>,
    control: RtcDataChannel,
    probe: RtcDataChannel,
    open: Vec<bool>,
    control_open: bool,
    /// The remote description is set: candidates may be added.
    described: bool,
    early_candidates: Vec<RtcIceCandidateInit>,
    _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Session {
    /// Session `id` of the link to `peer`, with its channels created
    /// (pre-negotiated, so both sides make the same ones).
    fn new(shared: &Weak<Shared>, peer: PeerId, id: u32, s: &LinkSettings) -> Result<Self, JsValue> {
        let config = RtcConfiguration::new();
        let servers = Array::new();
        for server in &s.ice_servers {
            let entry = RtcIceServer::new();
            let urls: Array = server.urls.iter().map(|u| JsValue::from_str(u)).collect();
            entry.set_urls(&urls);
            if let Some(u) = &server.username {
                entry.set_username(u);
            }
            if let Some(c) = &server.credential {
                entry.set_credential(c);
            }
            servers.push(&entry);
        }
        config.set_ice_servers(&servers);
        if s.policy == IcePolicy::Relay {
            config.set_ice_transport_policy(RtcIceTransportPolicy::Relay);
        }
        let pc = RtcPeerConnection::new_with_configuration(&config)?;
        let mut callbacks = Vec::new();
        let make = |label: &str, init: &RtcDataChannelInit| {
            let dc = pc.create_data_channel_with_data_channel_dict(label, init);
            dc.set_binary_type(RtcDataChannelType::Arraybuffer);
            dc
        };
        let mut channels = Vec::new();
        for (i, c) in s.channels.iter().enumerate() {
            let init = RtcDataChannelInit::new();
            init.set_negotiated(true);
            init.set_id(u16::try_from(i).unwrap_or(u16::MAX));
            init.set_ordered(c.ordered);
            if let Some(n) = c.max_retransmits {
                init.set_max_retransmits(n);
            }
            if let Some(t) = c.max_packet_lifetime {
                init.set_max_packet_life_time(u16::try_from(t.as_millis()).unwrap_or(u16::MAX));
            }
            channels.push(make(&c.label, &init));
        }
        let init = RtcDataChannelInit::new();
        init.set_negotiated(true);
        init.set_id(control_stream(s.channels.len()));
        let control = make(CONTROL_LABEL, &init);
        let init = RtcDataChannelInit::new();
        init.set_negotiated(true);
        init.set_id(probe_stream(s.channels.len()));
        init.set_ordered(false);
        init.set_max_retransmits(0);
        let probe = make(PROBE_LABEL, &init);

        let hook = |callbacks: &mut Vec<Closure<dyn FnMut(JsValue)>>, f: Box<dyn Fn(JsValue) -> Option<Input>>| {
            let (shared, peer) = (shared.clone(), peer);
            let cb = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
                if let (Some(shared), Some(input)) = (shared.upgrade(), f(e)) {
                    shared.link_input(peer, Some(id), input);
                }
            });
            let f: js_sys::Function = cb.as_ref().unchecked_ref::<js_sys::Function>().clone();
            callbacks.push(cb);
            f
        };
        let all = channels
            .iter()
            .enumerate()
            .map(|(i, c)| (Which::Slot(i), c))
            .chain([(Which::Control, &control), (Which::Probe, &probe)]);
        for (which, dc) in all {
            dc.set_onopen(Some(&hook(&mut callbacks, Box::new(move |_| Some(Input::Open(which))))));
            dc.set_onclose(Some(&hook(&mut callbacks, Box::new(|_| Some(Input::Close)))));
            dc.set_onmessage(Some(&hook(
                &mut callbacks,
                Box::new(move |e| {
                    let e: MessageEvent = e.unchecked_into();
                    let data = e.data();
                    let bytes = match data.dyn_ref::<js_sys::ArrayBuffer>() {
                        Some(buf) => Uint8Array::new(buf).to_vec(),
                        None => data.as_string()?.into_bytes(),
                    };
                    Some(Input::Data(which, bytes))
                }),
            )));
            dc.set_buffered_amount_low_threshold(CHANNEL_LOW);
            dc.set_onbufferedamountlow(Some(&hook(&mut callbacks, Box::new(|_| Some(Input::Drained)))));
        }
        pc.set_onicecandidate(Some(&hook(
            &mut callbacks,
            Box::new(|e| {
                let e: RtcPeerConnectionIceEvent = e.unchecked_into();
                Some(Input::Candidate(e.candidate().and_then(|c| {
                    let line = c.candidate();
                    (!line.is_empty()).then(|| (line, c.sdp_mid()))
                })))
            }),
        )));
        let pc2 = pc.clone();
        pc.set_onconnectionstatechange(Some(&hook(
            &mut callbacks,
            Box::new(move |_| {
                let state = Reflect::get(&pc2, &JsValue::from_str("connectionState")).ok()?.as_string()?;
                Some(Input::Connection(state))
            }),
        )));
        Ok(Session {
            id,
            pc,
            open: vec![false; channels.len()],
            channels,
            control,
            probe,
            control_open: false,
            described: false,
            early_candidates: Vec::new(),
            _callbacks: callbacks,
        })
    }

    /// Every channel, the control channel included, is open.
    fn all_open(&self) -> bool {
        self.control_open && self.open.iter().all(|o| *o)
    }

    /// Bytes waiting in the channels' buffers.
    fn buffered(&self) -> usize {
        self.channels.iter().map(RtcDataChannel::buffered_amount).sum::<u32>() as usize
    }

    /// Closes the connection and stops every callback.
    fn close(&mut self) {
        for dc in self.channels.iter().chain([&self.control, &self.probe]) {
            dc.set_onopen(None);
            dc.set_onclose(None);
            dc.set_onmessage(None);
            dc.set_onbufferedamountlow(None);
        }
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.close();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

/// One link to one remote peer.
pub(crate) struct WebLink {
    pub(crate) peer: PeerId,
    pub(crate) conn: ConnId,
    shared: Weak<Shared>,
    settings: LinkSettings,
    /// This side makes the offers (the lower peer id).
    offerer: bool,
    rtc: Session,
    /// When the current session was made.
    session_started: Instant,
    /// The current session's channels are open and its connection is not lost.
    rtc_up: bool,
    /// Since when the link has had no WebRTC path.
    rtc_down_since: Instant,
    /// While WebRTC is down: when the next new session is tried (offering
    /// side) or asked for (answering side).
    next_session: Option<Instant>,
    retry_pause: Duration,
    relay: Option<RelayCarrier>,
    carrier: Carrier,
    transfer: Transfer,
    machine: StateMachine,
    created: Instant,
    deadline: Option<(Instant, DisconnectReason)>,
    timer: Option<i32>,
    setup_time: Option<Duration>,
    path: Option<PathKind>,
    rtt: Option<Duration>,
    /// Messages that arrived before the link counted as connected.
    early: Vec<Delivered>,
    ended: bool,
    timer_cb: Closure<dyn FnMut()>,
}

impl WebLink {
    /// A new link to `peer` for negotiation `conn`, starting with WebRTC
    /// session `session`; `random` seeds the relay's ephemeral key.
    pub(crate) fn new(
        shared: Weak<Shared>,
        peer: PeerId,
        conn: ConnId,
        session: u32,
        offerer: bool,
        settings: LinkSettings,
        random: [u8; 32],
    ) -> Result<Self, JsValue> {
        let rtc = Session::new(&shared, peer, session, &settings)?;
        let timer_cb = {
            let (shared, peer) = (shared.clone(), peer);
            Closure::<dyn FnMut()>::new(move || {
                if let Some(shared) = shared.upgrade() {
                    shared.link_input(peer, None, Input::Timer);
                }
            })
        };
        let now = Instant::now();
        // Chunks small enough that the relay could carry them again.
        let chunk_size = match &settings.relay {
            Some(r) => settings.chunk_size.min(r.max_payload.saturating_sub(RELAY_FRAMING)).max(1024),
            None => settings.chunk_size,
        };
        let relay = settings.relay.clone().map(|setup| RelayCarrier::new(now, setup, random));
        Ok(WebLink {
            peer,
            conn,
            transfer: Transfer::new(&settings.channels, settings.max_message, settings.window, chunk_size),
            deadline: Some((now + settings.connect_timeout, DisconnectReason::ConnectTimeout)),
            shared,
            settings,
            offerer,
            rtc,
            session_started: now,
            rtc_up: false,
            rtc_down_since: now,
            next_session: None,
            retry_pause: FIRST_RETRY,
            relay,
            carrier: Carrier::Rtc,
            machine: StateMachine::new(now),
            created: now,
            timer: None,
            setup_time: None,
            path: None,
            rtt: None,
            early: Vec::new(),
            ended: false,
            timer_cb,
        })
    }

    /// The current WebRTC session's number.
    pub(crate) fn session(&self) -> u32 {
        self.rtc.id
    }

    /// The current session's connection, for the node's negotiation tasks.
    pub(crate) fn pc(&self) -> RtcPeerConnection {
        self.rtc.pc.clone()
    }

    /// Replaces the WebRTC session with a new one numbered `id` and returns
    /// its connection for negotiation. The link keeps its data, its relay
    /// and its state; data waits (or goes by the relay) until the new
    /// session's channels open.
    pub(crate) fn new_session(&mut self, id: u32, out: &mut Vec<Effect>) -> Result<RtcPeerConnection, JsValue> {
        let session = Session::new(&self.shared, self.peer, id, &self.settings)?;
        tracing::debug!(peer = %self.peer, session = id, "new WebRTC session");
        self.rtc = session;
        self.session_started = Instant::now();
        self.rtc_lost(out);
        self.drive(out);
        Ok(self.rtc.pc.clone())
    }

    /// The current state.
    pub(crate) fn state(&self) -> LinkState {
        self.machine.state()
    }

    /// The moves made so far.
    pub(crate) fn history(&self) -> Vec<(Instant, LinkState)> {
        self.machine.history().copied().collect()
    }

    /// Bytes queued: in the transfer's outbox and in the channels' buffers.
    pub(crate) fn buffered(&self) -> usize {
        self.transfer.queued() + self.rtc.buffered()
    }

    /// Bytes queued in the outbox only (what backpressure counts).
    pub(crate) fn queued(&self) -> usize {
        self.transfer.queued()
    }

    /// Figures so far.
    pub(crate) fn stats(&self) -> LinkStats {
        let Counters { bytes_sent, bytes_received, messages_sent, messages_received } = self.transfer.counters();
        LinkStats {
            bytes_sent,
            bytes_received,
            messages_sent,
            messages_received,
            rtt: self.transfer.rtt().or(self.rtt),
            path: self.path,
            buffered: self.buffered(),
            setup_time: self.setup_time,
            loss: self.transfer.loss(Instant::now()),
            quality: self.transfer.quality(),
            dropped_partials: self.transfer.dropped_partials(),
            ..LinkStats::default()
        }
    }

    /// Moves to `to`, reporting the change.
    pub(crate) fn set_state(&mut self, to: LinkState, out: &mut Vec<Effect>) {
        if let Ok(true) = self.machine.move_to(Instant::now(), to) {
            out.push(Effect::Event(crate::Event::LinkState { peer: self.peer, state: to }));
        }
    }

    /// Queues a message on `slot`.
    pub(crate) fn send(&mut self, slot: usize, msg: OutMessage, out: &mut Vec<Effect>) {
        self.transfer.send(slot, msg);
        self.drive(out);
    }

    /// The remote description of the current session is set: early
    /// candidates go in, and a new link starts connecting (the relay may
    /// carry it from now on).
    pub(crate) fn described(&mut self, out: &mut Vec<Effect>) {
        self.rtc.described = true;
        for c in std::mem::take(&mut self.rtc.early_candidates) {
            let _ = self.rtc.pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&c));
        }
        if self.state() == LinkState::Signaling {
            self.set_state(LinkState::Connecting, out);
        }
        self.maybe_go_relay(Instant::now(), out);
        self.drive(out);
    }

    /// A candidate from the other side.
    pub(crate) fn remote_candidate(&mut self, line: &str, mid: Option<&str>) {
        let init = RtcIceCandidateInit::new(line);
        match mid {
            Some(m) => init.set_sdp_mid(Some(m)),
            None => init.set_sdp_m_line_index(Some(0)),
        }
        if self.rtc.described {
            // Its promise rejects for a candidate the browser cannot use; that one is skipped.
            let _ = self.rtc.pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
        } else {
            self.rtc.early_candidates.push(init);
        }
    }

    /// The application read messages: credit may go out again.
    pub(crate) fn app_caught_up(&mut self, out: &mut Vec<Effect>) {
        self.transfer.grant(true, false);
        self.drive(out);
    }

    /// Sends this side's relay key, once (after the first offer or answer,
    /// so that the other side knows the link).
    pub(crate) fn send_relay_key(&mut self, out: &mut Vec<Effect>) {
        if let Some(signal) = self.relay.as_mut().and_then(RelayCarrier::first_key) {
            out.push(Effect::Signal(signal));
        }
    }

    /// The other side's relay key.
    pub(crate) fn on_relay_key(&mut self, key: &str, public_key: &str, signature: &str, out: &mut Vec<Effect>) {
        let Some(r) = &mut self.relay else { return };
        match r.accept_key(key, public_key, signature) {
            // The other side made a new link: it needs our key too.
            Ok(again) => out.extend(again.map(Effect::Signal)),
            Err(e) => tracing::warn!(peer = %self.peer, error = %e, "relay key refused"),
        }
        self.maybe_go_relay(Instant::now(), out);
        self.drive(out);
    }

    /// The other side asks for a new WebRTC session: it lost the path,
    /// even if this side still hears it. A session made moments ago is the
    /// answer to the requests sent before it arrived.
    pub(crate) fn restart_requested(&mut self, out: &mut Vec<Effect>) {
        let now = Instant::now();
        let live = matches!(self.state(), LinkState::Connected | LinkState::Reconnecting);
        if self.offerer && live && !self.ended && now >= self.session_started + SESSION_GRACE {
            self.next_session = Some(now + self.retry_pause);
            out.push(Effect::NewSession);
        }
    }

    /// Handles what the browser reported; `app_full` says the application
    /// is more than half a window behind.
    pub(crate) fn handle(&mut self, input: Input, app_full: bool, out: &mut Vec<Effect>) {
        if self.ended {
            return;
        }
        let now = Instant::now();
        match input {
            Input::Open(Which::Slot(i)) => {
                if let Some(o) = self.rtc.open.get_mut(i) {
                    *o = true;
                }
                self.check_connected(out);
            }
            Input::Open(Which::Control) => {
                self.rtc.control_open = true;
                self.check_connected(out);
            }
            Input::Open(Which::Probe) => {}
            // The session is over: the other side replaced it (a new
            // session follows) or closed the link (a `bye` follows, or the
            // server reports the peer gone). Nothing queued is dropped.
            Input::Close => self.rtc_lost(out),
            Input::Data(Which::Slot(i), chunk) => {
                if !self.on_chunk(now, i, &chunk, app_full, out) {
                    return;
                }
            }
            Input::Data(Which::Control, msg) => self.transfer.receive_control(&msg),
            Input::Data(Which::Probe, msg) => self.transfer.receive_probe(now, &msg),
            Input::Drained => {}
            Input::Candidate(Some((candidate, mid))) => {
                out.push(Effect::Signal(SignalData::Candidate { candidate, mid }))
            }
            Input::Candidate(None) => out.push(Effect::Signal(SignalData::EndOfCandidates)),
            Input::Connection(state) => match state.as_str() {
                "connected" => self.check_connected(out),
                "disconnected" => self.rtc_lost(out),
                "failed" => {
                    if self.relay.is_none() {
                        let reason = match self.state() {
                            LinkState::Connected | LinkState::Reconnecting => DisconnectReason::PathLost,
                            _ => DisconnectReason::ConnectTimeout,
                        };
                        self.end(reason, out);
                        return;
                    }
                    self.rtc_lost(out);
                    // This session will not recover: a new one, soon.
                    self.next_session.get_or_insert(now + self.retry_pause);
                }
                _ => {}
            },
            Input::Timer => {
                self.timer = None;
                if let Some((at, reason)) = &self.deadline
                    && *at <= now
                {
                    let reason = reason.clone();
                    self.end(reason, out);
                    return;
                }
                self.maybe_go_relay(now, out);
                if self.next_session.is_some_and(|t| t <= now) && !self.rtc_up {
                    self.next_session = Some(now + self.retry_pause);
                    self.retry_pause = (self.retry_pause * 2).min(MAX_RETRY);
                    if self.offerer {
                        out.push(Effect::NewSession);
                    } else {
                        out.push(Effect::Signal(SignalData::Restart));
                    }
                }
                if let Some(q) = self.transfer.handle_timeout(now) {
                    out.push(Effect::Event(crate::Event::QualityChanged { peer: self.peer, quality: q }));
                }
            }
            Input::Path(kind, rtt) => {
                self.rtt = rtt;
                if self.carrier == Carrier::Rtc {
                    self.report_path(kind, out);
                }
            }
            Input::Relay(frame) => {
                if !self.on_relay_frame(now, &frame, app_full, out) {
                    return;
                }
            }
        }
        self.drive(out);
    }

    /// A chunk on `slot`, from either carrier; `false` when it ended the link.
    fn on_chunk(&mut self, now: Instant, slot: usize, chunk: &[u8], app_full: bool, out: &mut Vec<Effect>) -> bool {
        match self.transfer.receive_chunk(now, slot, chunk, app_full) {
            Ok(Some(msg)) if self.path.is_some() => out.push(Effect::Delivered(msg)),
            Ok(Some(msg)) => self.early.push(msg),
            Ok(None) => {}
            Err(e) => {
                let reason = DisconnectReason::Protocol(format!("framing: {e}"));
                out.push(Effect::Signal(SignalData::Bye { reason: Some(reason.to_string()) }));
                self.end(reason, out);
                return false;
            }
        }
        true
    }

    /// A sealed frame from the server relay; `false` when it ended the link.
    fn on_relay_frame(&mut self, now: Instant, frame: &[u8], app_full: bool, out: &mut Vec<Effect>) -> bool {
        let Some(opened) = self.relay.as_mut().and_then(|r| r.open(frame)) else { return true };
        let plain = match opened {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "relayed frame refused");
                return true;
            }
        };
        match Relayed::parse(&plain) {
            Some(Relayed::Chunk { slot, chunk }) if slot < self.settings.channels.len() => {
                return self.on_chunk(now, slot, chunk, app_full, out);
            }
            Some(Relayed::Control(msg)) => self.transfer.receive_control(msg),
            Some(Relayed::Probe(msg)) => self.transfer.receive_probe(now, msg),
            _ => {}
        }
        true
    }

    /// The path kind is known (or changed): the first one reports the peer.
    fn report_path(&mut self, kind: PathKind, out: &mut Vec<Effect>) {
        if self.path.is_none() {
            self.path = Some(kind);
            let rtt = self.transfer.rtt().or(self.rtt);
            out.push(Effect::Event(crate::Event::PeerConnected { peer: self.peer, path: kind, rtt }));
            for msg in std::mem::take(&mut self.early) {
                out.push(Effect::Delivered(msg));
            }
        } else if self.path != Some(kind) {
            self.path = Some(kind);
            out.push(Effect::Event(crate::Event::PathChanged { peer: self.peer, path: kind }));
        }
    }

    /// The current session carries data once every channel is open (which
    /// needs DTLS and SCTP up): the link connects, or moves its data back
    /// from the relay or a lost session. The node then reads the selected
    /// pair, and the [`Input::Path`] that follows reports it.
    fn check_connected(&mut self, out: &mut Vec<Effect>) {
        if self.rtc_up || !self.rtc.all_open() || self.ended {
            return;
        }
        let state = self.rtc.pc.connection_state();
        if matches!(state, web_sys::RtcPeerConnectionState::Disconnected | web_sys::RtcPeerConnectionState::Failed) {
            return;
        }
        let first = self.state() == LinkState::Connecting;
        self.rtc_up = true;
        self.next_session = None;
        self.retry_pause = FIRST_RETRY;
        self.deadline = None;
        if first {
            self.setup_time = Some(self.created.elapsed());
        } else {
            tracing::debug!(peer = %self.peer, session = self.rtc.id, "WebRTC carries the link again");
        }
        self.carrier = Carrier::Rtc;
        self.set_state(LinkState::Connected, out);
        // After another carrier, what it may have lost goes again.
        self.transfer.carrier_up(Instant::now(), !first);
        out.push(Effect::ReadPath);
    }

    /// The current session lost its path (or was replaced): the relay
    /// takes over after its delay; without a relay the link waits for the
    /// session to come back, up to the connect timeout.
    fn rtc_lost(&mut self, out: &mut Vec<Effect>) {
        if !self.rtc_up {
            return;
        }
        let now = Instant::now();
        self.rtc_up = false;
        self.rtc_down_since = now;
        if self.carrier == Carrier::Rtc && self.state() == LinkState::Connected {
            self.set_state(LinkState::Reconnecting, out);
            self.deadline = Some((now + self.settings.connect_timeout, DisconnectReason::PathLost));
        }
        if self.relay.is_some() {
            self.next_session.get_or_insert(now + self.retry_pause);
        }
    }

    /// Moves the link's data to the relay when WebRTC has had no path for
    /// the relay delay and the relay's keys are agreed.
    fn maybe_go_relay(&mut self, now: Instant, out: &mut Vec<Effect>) {
        if self.carrier != Carrier::Rtc || self.rtc_up || self.ended {
            return;
        }
        let Some(r) = &self.relay else { return };
        let due = r.ready() && now >= self.rtc_down_since + r.setup.after;
        if !due || !matches!(self.state(), LinkState::Connecting | LinkState::Reconnecting) {
            return;
        }
        tracing::debug!(peer = %self.peer, state = %self.state(), "the server relay carries the link");
        let first = self.state() == LinkState::Connecting;
        self.carrier = Carrier::Relay;
        self.deadline = None;
        self.set_state(LinkState::Connected, out);
        if first {
            self.setup_time = Some(self.created.elapsed());
        }
        self.report_path(PathKind::Server, out);
        self.transfer.carrier_up(now, !first);
        // WebRTC attempts go on: a new session unless this one comes up first.
        self.next_session.get_or_insert(now + MAX_RETRY);
    }

    /// When the relay next matters: its delay, or room in its pace.
    fn relay_timeout(&self) -> Option<Instant> {
        let r = self.relay.as_ref()?;
        if self.carrier == Carrier::Relay {
            let chunk = self.settings.chunk_size.min(r.setup.max_payload) + 3;
            return self.transfer.pending().then(|| r.ready_at(chunk));
        }
        let waiting =
            r.ready() && !self.rtc_up && matches!(self.state(), LinkState::Connecting | LinkState::Reconnecting);
        waiting.then_some(self.rtc_down_since + r.setup.after)
    }

    /// Writes what is due and asks for the next timer.
    fn drive(&mut self, out: &mut Vec<Effect>) {
        if self.ended {
            return;
        }
        let live = match self.carrier {
            Carrier::Rtc => matches!(self.state(), LinkState::Connected | LinkState::Reconnecting),
            Carrier::Relay => self.state() == LinkState::Connected,
        };
        if live {
            let now = Instant::now();
            while let Some((lane, msg)) = self.transfer.poll_control() {
                match self.carrier {
                    Carrier::Rtc => {
                        let dc = if lane == Lane::Control { &self.rtc.control } else { &self.rtc.probe };
                        if dc.ready_state() == RtcDataChannelState::Open {
                            // Control messages are tiny; a lost one is superseded by the next.
                            let _ = dc.send_with_u8_array(&msg);
                        }
                    }
                    Carrier::Relay => {
                        let kind = if lane == Lane::Control { RELAY_CONTROL } else { RELAY_PROBE };
                        if let Some(frame) = self.relay.as_mut().and_then(|r| r.seal_small(now, kind, &msg)) {
                            out.push(Effect::Relay(frame));
                        }
                    }
                }
            }
            let moved = match (self.carrier, &mut self.relay) {
                (Carrier::Relay, Some(relay)) => self.transfer.pump(&mut RelayWire { relay, now, out }),
                _ => self.transfer.pump(&mut Channels { channels: &self.rtc.channels }),
            };
            if moved {
                out.push(Effect::Room);
            }
        }
        let next = [
            self.transfer.poll_timeout(),
            self.deadline.as_ref().map(|(at, _)| *at),
            self.next_session,
            self.relay_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(timer) = self.timer.take()
            && let Some(w) = web_sys::window()
        {
            w.clear_timeout_with_handle(timer);
        }
        if let (Some(at), Some(w)) = (next, web_sys::window()) {
            let ms = at.saturating_duration_since(Instant::now()).as_millis();
            let ms = i32::try_from(ms).unwrap_or(i32::MAX);
            self.timer = w
                .set_timeout_with_callback_and_timeout_and_arguments_0(self.timer_cb.as_ref().unchecked_ref(), ms)
                .ok();
        }
    }

    /// Ends the link.
    pub(crate) fn end(&mut self, reason: DisconnectReason, out: &mut Vec<Effect>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let to = if matches!(reason, DisconnectReason::Closed | DisconnectReason::ClosedByPeer(_)) {
            LinkState::Closed
        } else {
            LinkState::Failed
        };
        self.set_state(to, out);
        self.close();
        out.push(Effect::Ended(reason));
    }

    /// Closes the session and stops every callback and timer.
    pub(crate) fn close(&mut self) {
        if let (Some(t), Some(w)) = (self.timer.take(), web_sys::window()) {
            w.clear_timeout_with_handle(t);
        }
        self.rtc.close();
    }
}

impl Drop for WebLink {
    fn drop(&mut self) {
        self.close();
    }
}

/// The declared channels of the current session as the transfer's wire.
struct Channels<'a> {
    channels: &'a [RtcDataChannel],
}

impl Wire for Channels<'_> {
    fn write(&mut self, slot: usize, chunk: &[u8]) -> bool {
        let Some(dc) = self.channels.get(slot) else { return false };
        if dc.ready_state() != RtcDataChannelState::Open || dc.buffered_amount() >= CHANNEL_HIGH {
            return false;
        }
        dc.send_with_u8_array(chunk).is_ok()
    }
}

/// The server relay as the transfer's wire: sealed frames within its pace.
struct RelayWire<'a> {
    relay: &'a mut RelayCarrier,
    now: Instant,
    out: &'a mut Vec<Effect>,
}

impl Wire for RelayWire<'_> {
    fn write(&mut self, slot: usize, chunk: &[u8]) -> bool {
        let Some(frame) = self.relay.seal_data(self.now, &relay::relay_chunk(slot, chunk)) else { return false };
        self.out.push(Effect::Relay(frame));
        true
    }
}

/// Makes an SDP description object.
pub(crate) fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let d = RtcSessionDescriptionInit::new(kind);
    d.set_sdp(sdp);
    d
}

/// Reads the selected candidate pair's kind and round trip from a
/// `getStats` report, and whether the kind is settled (no peer-reflexive
/// candidate whose address the browser still hides).
pub(crate) fn selected_path(report: &JsValue) -> Option<(PathKind, Option<Duration>, bool)> {
    let get = |o: &JsValue, k: &str| Reflect::get(o, &JsValue::from_str(k)).ok().filter(|v| !v.is_undefined());
    let values =
        js_sys::try_iter(&get(report, "values")?.dyn_into::<js_sys::Function>().ok()?.call0(report).ok()?).ok()??;
    let stats: Vec<JsValue> = values.filter_map(Result::ok).collect();
    let by_id = |id: &JsValue| stats.iter().find(|s| get(s, "id").as_ref() == Some(id));
    let is = |s: &JsValue, kind: &str| get(s, "type").and_then(|t| t.as_string()).as_deref() == Some(kind);
    // The standard way is the transport's selectedCandidatePairId (Chromium);
    // Firefox marks the pair itself as selected.
    let by_transport = stats
        .iter()
        .filter(|s| is(s, "transport"))
        .find_map(|t| get(t, "selectedCandidatePairId"))
        .and_then(|id| by_id(&id));
    let pair = by_transport.or_else(|| {
        stats.iter().find(|s| {
            is(s, "candidate-pair")
                && (get(s, "selected").and_then(|v| v.as_bool()) == Some(true)
                    || (get(s, "nominated").and_then(|v| v.as_bool()) == Some(true)
                        && get(s, "state").and_then(|v| v.as_string()).as_deref() == Some("succeeded")))
        })
    })?;
    let rtt = get(pair, "currentRoundTripTime").and_then(|v| v.as_f64()).map(Duration::from_secs_f64);
    let address = |c: &JsValue| get(c, "address").or_else(|| get(c, "ip")).and_then(|a| a.as_string());
    let host_addresses: Vec<String> = stats
        .iter()
        .filter(|c| get(c, "candidateType").and_then(|t| t.as_string()).as_deref() == Some("host"))
        .filter_map(address)
        .collect();
    // A peer-reflexive candidate whose address the browser hides (Chromium
    // does until the candidate is signaled) cannot be told from a host one.
    let mut settled = true;
    let mut kind_of = |key: &str| {
        let c = by_id(&get(pair, key)?)?;
        let kind = get(c, "candidateType")?.as_string()?;
        // A peer-reflexive candidate is learned from a check that came before
        // the trickled candidates (Firefox, for one, on a fast path). When its
        // address is a host address of either side, no NAT rewrote it: the
        // path is direct between host addresses.
        if kind == "prflx" {
            match address(c).filter(|a| !a.is_empty()) {
                Some(a) if host_addresses.contains(&a) => return Some("host".to_owned()),
                Some(_) => {}
                None => settled = false,
            }
        }
        Some(kind)
    };
    let kinds = [kind_of("localCandidateId"), kind_of("remoteCandidateId")];
    let kind = if kinds.iter().any(|k| k.as_deref() == Some("relay")) {
        PathKind::Relayed
    } else if kinds.iter().any(|k| matches!(k.as_deref(), Some("srflx" | "prflx"))) {
        PathKind::ServerReflexive
    } else {
        PathKind::Host
    };
    Some((kind, rtt, settled))
}
