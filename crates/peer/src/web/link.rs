//! One browser link: an `RTCPeerConnection` with the node's pre-negotiated
//! data channels plus `switchboard-control` and `switchboard-probe`, driving
//! a sans-IO [`Transfer`] (framing, credit, acknowledgements, probes).
//!
//! Every callback of the connection and its channels becomes a [`Input`]
//! that the node hands to [`WebLink::handle`]; the link answers with
//! [`Effect`]s. Chunks go out while a channel's `bufferedAmount` is below
//! [`CHANNEL_HIGH`]; `bufferedamountlow` (at [`CHANNEL_LOW`]) brings the
//! next ones, so nothing polls.

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
use crate::link::state::StateMachine;
use crate::link::transfer::{Counters, Lane, Transfer, Wire};
use crate::{DisconnectReason, IcePolicy, LinkState, LinkStats, PathKind};

/// A channel takes no more chunks while this much is buffered.
pub(crate) const CHANNEL_HIGH: u32 = 1 << 20;
/// `bufferedamountlow` fires below this.
pub(crate) const CHANNEL_LOW: u32 = 256 << 10;

/// Which channel of a link.
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
    /// A channel closed.
    Close(Which),
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
    /// The link is up: read the selected pair with `getStats`.
    ReadPath,
}

/// One link to one remote peer.
pub(crate) struct WebLink {
    pub(crate) peer: PeerId,
    pub(crate) conn: ConnId,
    pub(crate) session: u32,
    pc: RtcPeerConnection,
    channels: Vec<RtcDataChannel>,
    control: RtcDataChannel,
    probe: RtcDataChannel,
    open: Vec<bool>,
    control_open: bool,
    transfer: Transfer,
    machine: StateMachine,
    created: Instant,
    deadline: Option<Instant>,
    timer: Option<i32>,
    setup_time: Option<Duration>,
    path: Option<PathKind>,
    rtt: Option<Duration>,
    /// The remote description is set: candidates may be added.
    described: bool,
    early_candidates: Vec<RtcIceCandidateInit>,
    /// Messages that arrived before the link counted as connected.
    early: Vec<Delivered>,
    ended: bool,
    _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
    timer_cb: Closure<dyn FnMut()>,
}

/// Settings a link takes from its node.
pub(crate) struct LinkSettings<'a> {
    pub(crate) channels: &'a [ChannelConfig],
    pub(crate) ice_servers: &'a [crate::IceServer],
    pub(crate) policy: IcePolicy,
    pub(crate) max_message: usize,
    pub(crate) window: usize,
    pub(crate) chunk_size: usize,
    pub(crate) connect_timeout: Duration,
}

impl WebLink {
    /// A new link to `peer` for negotiation `conn`, with its channels
    /// created (pre-negotiated, so both sides make the same ones).
    pub(crate) fn new(
        shared: Weak<Shared>,
        peer: PeerId,
        conn: ConnId,
        session: u32,
        s: &LinkSettings<'_>,
    ) -> Result<Self, JsValue> {
        let config = RtcConfiguration::new();
        let servers = Array::new();
        for server in s.ice_servers {
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
                    shared.link_input(peer, session, input);
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
            dc.set_onclose(Some(&hook(&mut callbacks, Box::new(move |_| Some(Input::Close(which))))));
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
        let timer_cb = {
            let (shared, peer) = (shared.clone(), peer);
            Closure::<dyn FnMut()>::new(move || {
                if let Some(shared) = shared.upgrade() {
                    shared.link_input(peer, session, Input::Timer);
                }
            })
        };
        let now = Instant::now();
        Ok(WebLink {
            peer,
            conn,
            session,
            pc,
            open: vec![false; channels.len()],
            channels,
            control,
            probe,
            control_open: false,
            transfer: Transfer::new(s.channels, s.max_message, s.window, s.chunk_size),
            machine: StateMachine::new(now),
            created: now,
            deadline: Some(now + s.connect_timeout),
            timer: None,
            setup_time: None,
            path: None,
            rtt: None,
            described: false,
            early_candidates: Vec::new(),
            early: Vec::new(),
            ended: false,
            _callbacks: callbacks,
            timer_cb,
        })
    }

    /// The connection, for the node's negotiation tasks.
    pub(crate) fn pc(&self) -> RtcPeerConnection {
        self.pc.clone()
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
        let channels: u32 = self.channels.iter().map(RtcDataChannel::buffered_amount).sum();
        self.transfer.queued() + channels as usize
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

    /// The remote description is set: early candidates go in.
    pub(crate) fn described(&mut self) {
        self.described = true;
        for c in std::mem::take(&mut self.early_candidates) {
            let _ = self.pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&c));
        }
    }

    /// A candidate from the other side.
    pub(crate) fn remote_candidate(&mut self, line: &str, mid: Option<&str>) {
        let init = RtcIceCandidateInit::new(line);
        match mid {
            Some(m) => init.set_sdp_mid(Some(m)),
            None => init.set_sdp_m_line_index(Some(0)),
        }
        if self.described {
            // Its promise rejects for a candidate the browser cannot use; that one is skipped.
            let _ = self.pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
        } else {
            self.early_candidates.push(init);
        }
    }

    /// The application read messages: credit may go out again.
    pub(crate) fn app_caught_up(&mut self, out: &mut Vec<Effect>) {
        self.transfer.grant(true, false);
        self.drive(out);
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
                if let Some(o) = self.open.get_mut(i) {
                    *o = true;
                }
                self.check_connected(out);
            }
            Input::Open(Which::Control) => {
                self.control_open = true;
                self.check_connected(out);
            }
            Input::Open(Which::Probe) => {}
            Input::Close(which) => {
                if let Which::Slot(i) = which {
                    self.transfer.channel_closed(i);
                }
                if self.state() == LinkState::Connected {
                    self.end(DisconnectReason::ClosedByPeer(None), out);
                    return;
                }
            }
            Input::Data(Which::Slot(i), chunk) => match self.transfer.receive_chunk(now, i, &chunk, app_full) {
                Ok(Some(msg)) if self.path.is_some() => out.push(Effect::Delivered(msg)),
                Ok(Some(msg)) => self.early.push(msg),
                Ok(None) => {}
                Err(e) => {
                    let reason = DisconnectReason::Protocol(format!("framing: {e}"));
                    out.push(Effect::Signal(SignalData::Bye { reason: Some(reason.to_string()) }));
                    self.end(reason, out);
                    return;
                }
            },
            Input::Data(Which::Control, msg) => self.transfer.receive_control(&msg),
            Input::Data(Which::Probe, msg) => self.transfer.receive_probe(now, &msg),
            Input::Drained => {}
            Input::Candidate(Some((candidate, mid))) => {
                out.push(Effect::Signal(SignalData::Candidate { candidate, mid }))
            }
            Input::Candidate(None) => out.push(Effect::Signal(SignalData::EndOfCandidates)),
            Input::Connection(state) => match state.as_str() {
                "connected" => {
                    if self.state() == LinkState::Reconnecting {
                        self.set_state(LinkState::Connected, out);
                    }
                    self.check_connected(out);
                }
                "disconnected" if self.state() == LinkState::Connected => {
                    self.set_state(LinkState::Reconnecting, out);
                }
                "failed" => {
                    let reason = match self.state() {
                        LinkState::Connected | LinkState::Reconnecting => DisconnectReason::PathLost,
                        _ => DisconnectReason::ConnectTimeout,
                    };
                    self.end(reason, out);
                    return;
                }
                _ => {}
            },
            Input::Timer => {
                self.timer = None;
                if self.deadline.is_some_and(|d| d <= now) {
                    self.end(DisconnectReason::ConnectTimeout, out);
                    return;
                }
                if let Some(q) = self.transfer.handle_timeout(now) {
                    out.push(Effect::Event(crate::Event::QualityChanged { peer: self.peer, quality: q }));
                }
            }
            Input::Path(kind, rtt) => {
                let first = self.path.is_none();
                self.rtt = rtt;
                if first {
                    self.path = Some(kind);
                    let rtt = self.transfer.rtt().or(rtt);
                    out.push(Effect::Event(crate::Event::PeerConnected { peer: self.peer, path: kind, rtt }));
                    for msg in std::mem::take(&mut self.early) {
                        out.push(Effect::Delivered(msg));
                    }
                } else if self.path != Some(kind) {
                    self.path = Some(kind);
                    out.push(Effect::Event(crate::Event::PathChanged { peer: self.peer, path: kind }));
                }
            }
        }
        self.drive(out);
    }

    /// Connected once every channel is open (which needs DTLS and SCTP up);
    /// the node then reads the selected pair, and the [`Input::Path`] that
    /// follows reports the peer.
    fn check_connected(&mut self, out: &mut Vec<Effect>) {
        if self.state() != LinkState::Connecting || !self.control_open || !self.open.iter().all(|o| *o) {
            return;
        }
        self.deadline = None;
        self.setup_time = Some(self.created.elapsed());
        self.set_state(LinkState::Connected, out);
        self.transfer.carrier_up(Instant::now(), false);
        out.push(Effect::ReadPath);
    }

    /// Writes what is due and asks for the next timer.
    fn drive(&mut self, out: &mut Vec<Effect>) {
        if self.ended {
            return;
        }
        if self.state() == LinkState::Connected || self.state() == LinkState::Reconnecting {
            while let Some((lane, msg)) = self.transfer.poll_control() {
                let dc = if lane == Lane::Control { &self.control } else { &self.probe };
                if dc.ready_state() == RtcDataChannelState::Open {
                    // Control messages are tiny; a lost one is superseded by the next.
                    let _ = dc.send_with_u8_array(&msg);
                }
            }
            let mut wire = Channels { channels: &self.channels };
            if self.transfer.pump(&mut wire) {
                out.push(Effect::Room);
            }
        }
        let next = [self.transfer.poll_timeout(), self.deadline].into_iter().flatten().min();
        if let Some(timer) = self.timer.take() {
            if let Some(w) = web_sys::window() {
                w.clear_timeout_with_handle(timer);
            }
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

    /// Closes the connection and stops every callback and timer.
    pub(crate) fn close(&mut self) {
        if let (Some(t), Some(w)) = (self.timer.take(), web_sys::window()) {
            w.clear_timeout_with_handle(t);
        }
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

impl Drop for WebLink {
    fn drop(&mut self) {
        self.close();
    }
}

/// The declared channels as the transfer's wire.
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

/// Makes an SDP description object.
pub(crate) fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let d = RtcSessionDescriptionInit::new(kind);
    d.set_sdp(sdp);
    d
}

/// Reads the selected candidate pair's kind and round trip from a
/// `getStats` report.
pub(crate) fn selected_path(report: &JsValue) -> Option<(PathKind, Option<Duration>)> {
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
    let kind_of = |key: &str| {
        let c = by_id(&get(pair, key)?)?;
        let kind = get(c, "candidateType")?.as_string()?;
        // A peer-reflexive candidate is learned from a check that came before
        // the trickled candidates (Firefox, for one, on a fast path). When its
        // address is a host address of either side, no NAT rewrote it: the
        // path is direct between host addresses.
        if kind == "prflx" && address(c).is_some_and(|a| host_addresses.contains(&a)) {
            return Some("host".to_owned());
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
    Some((kind, rtt))
}
