//! The WebRTC side of a browser link: [`BrowserRtc`] implements
//! [`Rtc`](crate::link::Rtc) over the browser's `RTCPeerConnection`, one per
//! session, with the node's pre-negotiated channels plus
//! `switchboard-control` and `switchboard-probe` (framed links).
//!
//! Browser callbacks and the browser's promises (descriptions, statistics)
//! only queue what they saw, tagged with their session, and ask the node
//! to drive the link; [`BrowserRtc::poll_event`] turns that into
//! [`RtcEvent`]s for the link core. Nothing here decides anything the
//! native side decides too.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Array, Reflect, Uint8Array};
use switchboard_proto::SignalData;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::{Closure, JsValue};
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelEvent, RtcDataChannelInit, RtcDataChannelState,
    RtcDataChannelType, RtcIceCandidateInit, RtcIceServer, RtcIceTransportPolicy, RtcOfferOptions, RtcPeerConnection,
    RtcPeerConnectionIceEvent, RtcSdpType, RtcSessionDescriptionInit,
};
use web_time::Instant;

use crate::channel::ChannelConfig;
use crate::ice::{IcePolicy, IceServer};
use crate::link::control::{CONTROL_LABEL, PROBE_LABEL, control_stream, probe_stream};
use crate::link::transfer::Lane;
use crate::link::{PathKind, Rtc, RtcError, RtcEvent, RtcStats};

/// A channel takes no more chunks while this much is buffered.
const CHANNEL_HIGH: u32 = 1 << 20;
/// `bufferedamountlow` fires below this.
const CHANNEL_LOW: u32 = 256 << 10;
/// How many times a new session's statistics are read for its selected
/// pair, and the pause between reads.
const PATH_READS: u32 = 10;
const PATH_READ_PAUSE: Duration = Duration::from_millis(100);

/// Which channel of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    /// A channel slot of the link.
    Slot(usize),
    /// A channel the other side opened, numbered in its session until it
    /// has a slot.
    Remote(u32),
    /// `switchboard-control`.
    Control,
    /// `switchboard-probe`.
    Probe,
}

/// What the browser reported about a session.
enum Seen {
    /// The other side opened a channel in band (number, channel).
    Incoming(u32, RtcDataChannel),
    Open(Which),
    Closed(Which),
    /// A message on a channel, and whether it came as text.
    Data(Which, Vec<u8>, bool),
    Drained,
    Candidate(Option<(String, Option<String>)>),
    Connection(String),
    /// The remote description is set: candidates may be added.
    Described,
    /// A description this side made.
    Local(SignalData),
    /// The browser refused a description, or failed to make one.
    Failed(String),
    /// The selected pair's kind and round trip, from `getStats`.
    Path(PathKind, Option<Duration>),
}

/// What callbacks queue, with the session they belong to.
type Inbox = Rc<RefCell<VecDeque<(u32, Seen)>>>;

/// Settings a browser link takes from its node.
#[derive(Clone)]
pub(crate) struct BrowserSettings {
    pub(crate) channels: Vec<ChannelConfig>,
    pub(crate) raw: bool,
    pub(crate) ice_servers: Vec<IceServer>,
    pub(crate) policy: IcePolicy,
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

/// One channel slot of a link.
struct Slot {
    config: ChannelConfig,
    origin: Origin,
}

/// A session's callbacks: each queues what it saw, tagged with the
/// session, and asks the node to drive the link. They live as long as the
/// session.
#[derive(Clone)]
struct Hooks {
    id: u32,
    inbox: Inbox,
    poke: Rc<dyn Fn()>,
    kept: Rc<RefCell<Vec<Callback>>>,
}

/// A JS callback kept alive by Rust.
type Callback = Closure<dyn FnMut(JsValue)>;

impl Hooks {
    /// A JS function that queues what `f` makes of its argument.
    fn hook(&self, f: impl Fn(JsValue) -> Option<Seen> + 'static) -> js_sys::Function {
        let (id, inbox, poke) = (self.id, self.inbox.clone(), self.poke.clone());
        let cb = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            if let Some(seen) = f(e) {
                inbox.borrow_mut().push_back((id, seen));
                poke();
            }
        });
        let f: js_sys::Function = cb.as_ref().unchecked_ref::<js_sys::Function>().clone();
        self.kept.borrow_mut().push(cb);
        f
    }

    /// Reports `dc`'s opening, closing, messages and draining as `which`.
    fn watch(&self, dc: &RtcDataChannel, which: Which) {
        dc.set_binary_type(RtcDataChannelType::Arraybuffer);
        dc.set_onopen(Some(&self.hook(move |_| Some(Seen::Open(which)))));
        dc.set_onclose(Some(&self.hook(move |_| Some(Seen::Closed(which)))));
        dc.set_onmessage(Some(&self.hook(move |e| {
            let e: MessageEvent = e.unchecked_into();
            let data = e.data();
            let (bytes, text) = match data.dyn_ref::<js_sys::ArrayBuffer>() {
                Some(buf) => (Uint8Array::new(buf).to_vec(), false),
                None => (data.as_string()?.into_bytes(), true),
            };
            Some(Seen::Data(which, bytes, text))
        })));
        dc.set_buffered_amount_low_threshold(CHANNEL_LOW);
        dc.set_onbufferedamountlow(Some(&self.hook(|_| Some(Seen::Drained))));
    }
}

/// How a channel of `c` delivers (what `RTCDataChannelInit` says besides
/// negotiation).
fn channel_init(c: &ChannelConfig, raw: bool) -> RtcDataChannelInit {
    let init = RtcDataChannelInit::new();
    // Reliable channels of framed links stay ordered on the wire (chunks
    // are acknowledged in order), as natively.
    init.set_ordered(c.ordered || (!raw && c.is_reliable()));
    if let Some(n) = c.max_retransmits {
        init.set_max_retransmits(n);
    }
    if let Some(t) = c.max_packet_lifetime {
        init.set_max_packet_life_time(u16::try_from(t.as_millis()).unwrap_or(u16::MAX));
    }
    init
}

/// The settings of a channel the other side opened.
fn remote_config(dc: &RtcDataChannel) -> ChannelConfig {
    let ordered = Reflect::get(dc, &JsValue::from_str("ordered")).ok().and_then(|v| v.as_bool()).unwrap_or(true);
    let base = ChannelConfig::reliable(dc.label()).ordered(ordered).in_band();
    match (dc.max_retransmits(), dc.max_packet_life_time()) {
        (Some(n), _) => base.max_retransmits(n),
        (None, Some(ms)) => base.max_packet_lifetime(Duration::from_millis(u64::from(ms))),
        (None, None) => base,
    }
}

/// One WebRTC session: a peer connection and its channels.
struct Session {
    id: u32,
    pc: RtcPeerConnection,
    /// By slot; `None` for a slot this session has no channel for (yet).
    channels: Vec<Option<RtcDataChannel>>,
    control: Option<RtcDataChannel>,
    probe: Option<RtcDataChannel>,
    open: Vec<bool>,
    /// Slots of the channels the other side opened, by their number.
    remote: Vec<(u32, usize)>,
    control_open: bool,
    described: bool,
    early_candidates: Vec<RtcIceCandidateInit>,
    up: bool,
    /// The last offer of this session taken, and the answer made to it once
    /// it is made: an offer sent again is answered again, not renegotiated.
    offer: Option<String>,
    answer: Option<String>,
    hooks: Hooks,
}

impl Session {
    fn new(
        id: u32,
        s: &BrowserSettings,
        slots: &[Slot],
        offering: bool,
        inbox: &Inbox,
        poke: &Rc<dyn Fn()>,
    ) -> Result<Self, JsValue> {
        let pc = RtcPeerConnection::new_with_configuration(&configuration(s))?;
        let hooks = Hooks { id, inbox: inbox.clone(), poke: poke.clone(), kept: Rc::default() };
        let mut channels = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            let c = &slot.config;
            let init = channel_init(c, s.raw);
            let dc = match (slot.origin, c.negotiated) {
                (Origin::Declared, true) => {
                    init.set_negotiated(true);
                    init.set_id(u16::try_from(i).unwrap_or(u16::MAX));
                    Some(pc.create_data_channel_with_data_channel_dict(&c.label, &init))
                }
                // In band: the offering side opens the declared ones.
                (Origin::Declared, false) if !offering => None,
                (Origin::Declared | Origin::Local, _) => {
                    Some(pc.create_data_channel_with_data_channel_dict(&c.label, &init))
                }
                (Origin::Remote, _) => None,
            };
            if let Some(dc) = &dc {
                hooks.watch(dc, Which::Slot(i));
            }
            channels.push(dc);
        }
        let (control, probe) = if s.raw {
            (None, None)
        } else {
            let init = RtcDataChannelInit::new();
            init.set_negotiated(true);
            init.set_id(control_stream(s.channels.len()));
            let control = pc.create_data_channel_with_data_channel_dict(CONTROL_LABEL, &init);
            hooks.watch(&control, Which::Control);
            let init = RtcDataChannelInit::new();
            init.set_negotiated(true);
            init.set_id(probe_stream(s.channels.len()));
            init.set_ordered(false);
            init.set_max_retransmits(0);
            let probe = pc.create_data_channel_with_data_channel_dict(PROBE_LABEL, &init);
            hooks.watch(&probe, Which::Probe);
            (Some(control), Some(probe))
        };
        // Channels the other side opens in band: watched at once, before a
        // message can arrive, and given a slot in order.
        let incoming = Rc::new(std::cell::Cell::new(0u32));
        let h = hooks.clone();
        pc.set_ondatachannel(Some(&hooks.hook(move |e| {
            let dc = e.unchecked_into::<RtcDataChannelEvent>().channel();
            let n = incoming.get();
            incoming.set(n.wrapping_add(1));
            h.watch(&dc, Which::Remote(n));
            Some(Seen::Incoming(n, dc))
        })));
        pc.set_onicecandidate(Some(&hooks.hook(|e| {
            let e: RtcPeerConnectionIceEvent = e.unchecked_into();
            Some(Seen::Candidate(e.candidate().and_then(|c| {
                let line = c.candidate();
                (!line.is_empty()).then(|| (line, c.sdp_mid()))
            })))
        })));
        let pc2 = pc.clone();
        pc.set_onconnectionstatechange(Some(&hooks.hook(move |_| {
            let state = Reflect::get(&pc2, &JsValue::from_str("connectionState")).ok()?.as_string()?;
            Some(Seen::Connection(state))
        })));
        Ok(Session {
            id,
            pc,
            open: vec![false; channels.len()],
            channels,
            control,
            probe,
            remote: Vec::new(),
            control_open: false,
            described: false,
            early_candidates: Vec::new(),
            up: false,
            offer: None,
            answer: None,
            hooks,
        })
    }

    /// Every declared channel (and the control channel) is open and the
    /// connection is not lost. An in-band one on the answering side is the
    /// one the other side opens.
    fn ready(&self, raw: bool, declared: usize) -> bool {
        let state = self.pc.connection_state();
        let lost =
            matches!(state, web_sys::RtcPeerConnectionState::Disconnected | web_sys::RtcPeerConnectionState::Failed);
        let declared_open = self.open.iter().take(declared).all(|o| *o);
        !lost && (raw || self.control_open) && declared_open
    }

    fn channel(&self, slot: usize) -> Option<&RtcDataChannel> {
        self.channels.get(slot).and_then(Option::as_ref)
    }

    /// Closes the connection and stops every callback.
    fn close(&mut self) {
        for dc in self.channels.iter().flatten().chain(self.control.iter()).chain(self.probe.iter()) {
            dc.set_onopen(None);
            dc.set_onclose(None);
            dc.set_onmessage(None);
            dc.set_onbufferedamountlow(None);
        }
        self.pc.set_ondatachannel(None);
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.close();
        // Channels the other side opened and no slot took yet.
        for (_, seen) in self.hooks.inbox.borrow().iter() {
            if let Seen::Incoming(_, dc) = seen {
                dc.set_onopen(None);
                dc.set_onclose(None);
                dc.set_onmessage(None);
                dc.set_onbufferedamountlow(None);
            }
        }
        self.hooks.kept.borrow_mut().clear();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

/// The browser side of one link.
pub(crate) struct BrowserRtc {
    settings: BrowserSettings,
    /// The link's channels by slot: the declared ones first.
    slots: Vec<Slot>,
    session: Option<Session>,
    inbox: Inbox,
    /// Asks the node to drive this link (after a callback queued something).
    poke: Rc<dyn Fn()>,
    events: VecDeque<RtcEvent>,
    restarts: u32,
    rtt: Option<Duration>,
}

impl BrowserRtc {
    /// The browser side of a new link; `poke` makes the node drive it.
    pub(crate) fn new(settings: BrowserSettings, poke: Rc<dyn Fn()>) -> Self {
        let slots = settings.channels.iter().map(|c| Slot { config: c.clone(), origin: Origin::Declared }).collect();
        BrowserRtc {
            slots,
            settings,
            session: None,
            inbox: Rc::new(RefCell::new(VecDeque::new())),
            poke,
            events: VecDeque::new(),
            restarts: 0,
            rtt: None,
        }
    }

    /// Fresh STUN/TURN servers (new TURN credentials): new sessions use
    /// them, and the current one from its next ICE restart.
    pub(crate) fn set_ice_servers(&mut self, servers: &[IceServer]) {
        self.settings.ice_servers = servers.to_vec();
        if let Some(s) = &self.session {
            let _ = s.pc.set_configuration_with_configuration(&configuration(&self.settings));
        }
    }

    /// Replaces the session with a new one numbered `id`.
    fn new_session(&mut self, id: u32, offering: bool) -> Result<RtcPeerConnection, RtcError> {
        if self.session.is_some() {
            self.restarts += 1;
        }
        let session = Session::new(id, &self.settings, &self.slots, offering, &self.inbox, &self.poke)
            .map_err(|e| RtcError::Stack(format!("cannot make a peer connection: {}", super::js_error(&e))))?;
        let pc = session.pc.clone();
        self.session = Some(session);
        Ok(pc)
    }

    fn current(&self) -> Option<u32> {
        self.session.as_ref().map(|s| s.id)
    }

    /// Runs a description step of session `id` in the background; what it
    /// makes or refuses comes back through the inbox.
    fn spawn(&self, id: u32, step: impl Future<Output = Result<Option<SignalData>, JsValue>> + 'static) {
        let (inbox, poke) = (self.inbox.clone(), self.poke.clone());
        spawn_local(async move {
            let seen = match step.await {
                Ok(Some(signal)) => Seen::Local(signal),
                Ok(None) => return,
                Err(e) => Seen::Failed(super::js_error(&e)),
            };
            inbox.borrow_mut().push_back((id, seen));
            poke();
        });
    }

    /// Takes what the browser reported, in order.
    fn take_seen(&mut self) {
        loop {
            let next = self.inbox.borrow_mut().pop_front();
            let Some((id, seen)) = next else { return };
            if Some(id) != self.current() {
                continue;
            }
            self.on_seen(id, seen);
        }
    }

    /// Gives a channel the other side opened its slot: the declared
    /// in-band one of its label that this session has no channel for, or a
    /// new one.
    fn take_incoming(&mut self, n: u32, dc: RtcDataChannel) {
        let Some(session) = self.session.as_mut() else { return };
        let label = dc.label();
        let declared = self.slots.iter().enumerate().position(|(i, s)| {
            s.origin == Origin::Declared
                && !s.config.negotiated
                && s.config.label == label
                && session.channels.get(i).is_some_and(Option::is_none)
        });
        let slot = match declared {
            Some(i) => {
                session.channels[i] = Some(dc.clone());
                i
            }
            None => {
                self.slots.push(Slot { config: remote_config(&dc), origin: Origin::Remote });
                // Slots of earlier sessions' channels stay, closed.
                session.channels.resize(self.slots.len() - 1, None);
                session.open.resize(self.slots.len() - 1, false);
                session.channels.push(Some(dc.clone()));
                session.open.push(false);
                self.slots.len() - 1
            }
        };
        session.remote.push((n, slot));
        // The browser may have it open already (its `open` event then
        // comes too, and changes nothing).
        if dc.ready_state() == RtcDataChannelState::Open {
            self.opened(slot);
        }
    }

    /// Channel `slot` of the current session is open.
    fn opened(&mut self, slot: usize) {
        let Some(session) = self.session.as_mut() else { return };
        let Some(o) = session.open.get_mut(slot) else { return };
        if std::mem::replace(o, true) {
            return;
        }
        let config = self.slots.get(slot).map(|s| s.config.clone());
        // Raw links report every channel; framed ones the other side's.
        if let Some(config) = config.filter(|_| self.settings.raw || slot >= self.settings.channels.len()) {
            self.events.push_back(RtcEvent::Opened { slot, config });
        }
    }

    fn on_seen(&mut self, id: u32, seen: Seen) {
        let raw = self.settings.raw;
        // A channel the other side opened goes by its slot.
        let slot_of = |session: &Session, which: Which| match which {
            Which::Remote(n) => session.remote.iter().find(|(m, _)| *m == n).map(|(_, slot)| Which::Slot(*slot)),
            w => Some(w),
        };
        let Some(session) = self.session.as_mut() else { return };
        let seen = match seen {
            Seen::Open(w) => Seen::Open(match slot_of(session, w) {
                Some(w) => w,
                None => return,
            }),
            Seen::Closed(w) => Seen::Closed(match slot_of(session, w) {
                Some(w) => w,
                None => return,
            }),
            Seen::Data(w, data, text) => Seen::Data(
                match slot_of(session, w) {
                    Some(w) => w,
                    None => return,
                },
                data,
                text,
            ),
            seen => seen,
        };
        match seen {
            Seen::Incoming(n, dc) => self.take_incoming(n, dc),
            Seen::Open(Which::Slot(i)) => self.opened(i),
            Seen::Open(Which::Control) => session.control_open = true,
            Seen::Open(Which::Probe | Which::Remote(_)) => {}
            // A raw link has no signaling of ours: a channel the other side
            // closed is reported, and all of them closed means the other
            // side closed its peer connection.
            Seen::Closed(Which::Slot(slot)) if raw => {
                if let Some(o) = session.open.get_mut(slot) {
                    *o = false;
                }
                self.events.push_back(RtcEvent::Closed { slot });
                if session.open.iter().all(|o| !o) {
                    session.up = false;
                    self.events.push_back(RtcEvent::PeerClosed);
                }
                return;
            }
            // The session is over: the other side replaced it (a new session
            // follows) or closed the link (`bye` follows, or the server
            // reports the peer gone).
            Seen::Closed(_) => {
                if session.up {
                    session.up = false;
                    self.events.push_back(RtcEvent::Down { session: id, since: Instant::now() });
                }
                return;
            }
            Seen::Data(Which::Slot(slot), data, text) => self.events.push_back(RtcEvent::Chunk { slot, data, text }),
            Seen::Data(Which::Control, data, _) => {
                self.events.push_back(RtcEvent::Internal { lane: Lane::Control, data });
            }
            Seen::Data(Which::Probe, data, _) => self.events.push_back(RtcEvent::Internal { lane: Lane::Probe, data }),
            Seen::Data(Which::Remote(_), ..) => {}
            Seen::Drained => self.events.push_back(RtcEvent::Drained),
            Seen::Candidate(Some((candidate, mid))) => {
                self.events.push_back(RtcEvent::Signal(SignalData::Candidate { candidate, mid }));
            }
            Seen::Candidate(None) => self.events.push_back(RtcEvent::Signal(SignalData::EndOfCandidates)),
            Seen::Connection(state) => match state.as_str() {
                "disconnected" if session.up => {
                    session.up = false;
                    self.events.push_back(RtcEvent::Down { session: id, since: Instant::now() });
                }
                "failed" => {
                    session.up = false;
                    self.events.push_back(RtcEvent::Failed { session: id });
                }
                _ => {}
            },
            Seen::Described => {
                session.described = true;
                for c in std::mem::take(&mut session.early_candidates) {
                    // Its promise rejects for a candidate the browser cannot use; that one is skipped.
                    let _ = session.pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&c));
                }
            }
            Seen::Local(signal) => {
                if let SignalData::Answer { sdp, .. } = &signal {
                    session.answer = Some(sdp.clone());
                }
                self.events.push_back(RtcEvent::Signal(signal));
            }
            Seen::Failed(e) => self.events.push_back(RtcEvent::Error(e)),
            Seen::Path(path, rtt) => {
                self.rtt = rtt.or(self.rtt);
                self.events.push_back(RtcEvent::Path { path, rtt });
            }
        }
        let declared = self.settings.channels.len();
        let Some(session) = self.session.as_mut() else { return };
        if !session.up && session.ready(raw, declared) {
            session.up = true;
            self.events.push_back(RtcEvent::Up { session: id, path: None });
            read_path(session.pc.clone(), id, self.inbox.clone(), self.poke.clone());
        }
    }
}

impl Rtc for BrowserRtc {
    fn offer(&mut self, _now: Instant, id: u32) -> Result<(), RtcError> {
        let pc = self.new_session(id, true)?;
        self.spawn(id, async move {
            let offer = JsFuture::from(pc.create_offer()).await?;
            let sdp = Reflect::get(&offer, &JsValue::from_str("sdp"))?.as_string().unwrap_or_default();
            JsFuture::from(pc.set_local_description(&description(RtcSdpType::Offer, &sdp))).await?;
            Ok(Some(SignalData::Offer { sdp, session: id }))
        });
        Ok(())
    }

    fn answer(&mut self, _now: Instant, id: u32, sdp: &str) -> Result<(), RtcError> {
        // An offer of the current session renegotiates it (an ICE restart),
        // unless it is the same offer again: that gets the same answer.
        // Another session's offer makes a new session.
        let pc = match &mut self.session {
            Some(s) if s.id == id && s.offer.as_deref() == Some(sdp) => {
                if let Some(answer) = s.answer.clone() {
                    self.events.push_back(RtcEvent::Signal(SignalData::Answer { sdp: answer, session: id }));
                }
                return Ok(());
            }
            Some(s) if s.id == id => {
                s.offer = Some(sdp.to_owned());
                s.answer = None;
                s.pc.clone()
            }
            _ => {
                let pc = self.new_session(id, false)?;
                if let Some(s) = &mut self.session {
                    s.offer = Some(sdp.to_owned());
                }
                pc
            }
        };
        let (sdp, inbox, poke) = (sdp.to_owned(), self.inbox.clone(), self.poke.clone());
        self.spawn(id, async move {
            JsFuture::from(pc.set_remote_description(&description(RtcSdpType::Offer, &sdp))).await?;
            inbox.borrow_mut().push_back((id, Seen::Described));
            poke();
            let answer = JsFuture::from(pc.create_answer()).await?;
            let sdp = Reflect::get(&answer, &JsValue::from_str("sdp"))?.as_string().unwrap_or_default();
            JsFuture::from(pc.set_local_description(&description(RtcSdpType::Answer, &sdp))).await?;
            Ok(Some(SignalData::Answer { sdp, session: id }))
        });
        Ok(())
    }

    fn accept_answer(&mut self, _now: Instant, sdp: &str) -> Result<(), RtcError> {
        let Some(session) = &self.session else { return Err(RtcError::State("no offer is waiting for an answer")) };
        let (pc, id, sdp) = (session.pc.clone(), session.id, sdp.to_owned());
        let (inbox, poke) = (self.inbox.clone(), self.poke.clone());
        self.spawn(id, async move {
            JsFuture::from(pc.set_remote_description(&description(RtcSdpType::Answer, &sdp))).await?;
            inbox.borrow_mut().push_back((id, Seen::Described));
            poke();
            Ok(None)
        });
        Ok(())
    }

    fn restart_ice(&mut self, _now: Instant) -> Result<(), RtcError> {
        let Some(session) = &self.session else { return Err(RtcError::State("no session to restart")) };
        let (pc, id) = (session.pc.clone(), session.id);
        self.restarts += 1;
        self.spawn(id, async move {
            let options = RtcOfferOptions::new();
            options.set_ice_restart(true);
            let offer = JsFuture::from(pc.create_offer_with_rtc_offer_options(&options)).await?;
            let sdp = Reflect::get(&offer, &JsValue::from_str("sdp"))?.as_string().unwrap_or_default();
            JsFuture::from(pc.set_local_description(&description(RtcSdpType::Offer, &sdp))).await?;
            Ok(Some(SignalData::Offer { sdp, session: id }))
        });
        Ok(())
    }

    fn add_candidate(&mut self, _now: Instant, line: &str, mid: Option<&str>) -> Result<(), RtcError> {
        let Some(session) = &mut self.session else { return Ok(()) };
        if line.is_empty() {
            return Ok(());
        }
        let init = RtcIceCandidateInit::new(line);
        match mid {
            Some(m) => init.set_sdp_mid(Some(m)),
            None => init.set_sdp_m_line_index(Some(0)),
        }
        if session.described {
            // Its promise rejects for a candidate the browser cannot use; that one is skipped.
            let _ = session.pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
        } else if session.early_candidates.len() < 64 {
            session.early_candidates.push(init);
        }
        Ok(())
    }

    fn attempt(&mut self, _now: Instant) {}

    fn is_open(&self, slot: usize) -> bool {
        self.session
            .as_ref()
            .and_then(|s| s.channel(slot))
            .is_some_and(|dc| dc.ready_state() == RtcDataChannelState::Open)
    }

    fn open_channel(&mut self, slot: usize, config: &ChannelConfig) -> Result<(), RtcError> {
        if slot != self.slots.len() {
            return Err(RtcError::State("channel slots out of step"));
        }
        self.slots.push(Slot { config: config.clone(), origin: Origin::Local });
        // Without a session yet, the offer or answer opens it.
        if let Some(session) = &mut self.session {
            let dc = session.pc.create_data_channel_with_data_channel_dict(&config.label, &channel_init(config, true));
            session.hooks.watch(&dc, Which::Slot(slot));
            session.channels.resize(slot, None);
            session.open.resize(slot, false);
            session.channels.push(Some(dc));
            session.open.push(false);
        }
        Ok(())
    }

    fn close_channel(&mut self, slot: usize) {
        let Some(session) = &mut self.session else { return };
        // Its own `close` event is not reported again.
        if let Some(dc) = session.channels.get_mut(slot).and_then(Option::take) {
            dc.set_onopen(None);
            dc.set_onclose(None);
            dc.set_onmessage(None);
            dc.set_onbufferedamountlow(None);
            dc.close();
        }
        if let Some(o) = session.open.get_mut(slot) {
            *o = false;
        }
        self.events.push_back(RtcEvent::Closed { slot });
    }

    fn write(&mut self, slot: usize, data: &[u8], text: bool) -> Result<bool, String> {
        let Some(dc) = self.session.as_ref().and_then(|s| s.channel(slot)) else { return Ok(false) };
        if dc.ready_state() != RtcDataChannelState::Open || dc.buffered_amount() >= CHANNEL_HIGH {
            return Ok(false);
        }
        // Text was a `String` when the application handed it in; binary
        // chunks are not looked at.
        let sent = match text.then(|| std::str::from_utf8(data).ok()).flatten() {
            Some(s) => dc.send_with_str(s),
            None => dc.send_with_u8_array(data),
        };
        Ok(sent.is_ok())
    }

    fn write_internal(&mut self, lane: Lane, data: &[u8]) {
        let Some(session) = &self.session else { return };
        let dc = match lane {
            Lane::Control => session.control.as_ref(),
            Lane::Probe => session.probe.as_ref(),
        };
        if let Some(dc) = dc
            && dc.ready_state() == RtcDataChannelState::Open
        {
            // Control messages are tiny; a lost one is superseded by the next.
            let _ = dc.send_with_u8_array(data);
        }
    }

    fn poll_event(&mut self) -> Option<RtcEvent> {
        if self.events.is_empty() {
            self.take_seen();
        }
        self.events.pop_front()
    }

    fn stats(&self) -> RtcStats {
        let buffered = self
            .session
            .as_ref()
            .map_or(0, |s| s.channels.iter().flatten().map(RtcDataChannel::buffered_amount).sum::<u32>() as usize);
        RtcStats { pair: None, rtt: self.rtt, restarts: self.restarts, buffered }
    }

    fn close(&mut self) {
        if let Some(mut s) = self.session.take() {
            s.close();
        }
    }
}

/// Reads the selected pair of a session that just came up, a few times
/// until the statistics name it and its kind is settled; reports it
/// through the inbox.
fn read_path(pc: RtcPeerConnection, id: u32, inbox: Inbox, poke: Rc<dyn Fn()>) {
    spawn_local(async move {
        let mut found = None;
        for attempt in 0..PATH_READS {
            if attempt > 0 {
                super::pause(PATH_READ_PAUSE).await;
            }
            let Ok(report) = JsFuture::from(pc.get_stats()).await else { return };
            if let Some((kind, rtt, settled)) = selected_path(&report) {
                found = Some((kind, rtt));
                if settled {
                    break;
                }
            }
        }
        let (kind, rtt) = found.unwrap_or_else(|| {
            tracing::debug!("no selected candidate pair in the stats; reporting a host path");
            (PathKind::Host, None)
        });
        inbox.borrow_mut().push_back((id, Seen::Path(kind, rtt)));
        poke();
    });
}

/// The `RTCConfiguration` of a link's sessions.
fn configuration(s: &BrowserSettings) -> RtcConfiguration {
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
    config
}

/// Makes an SDP description object.
fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let d = RtcSessionDescriptionInit::new(kind);
    d.set_sdp(sdp);
    d
}

/// Reads the selected candidate pair's kind and round trip from a
/// `getStats` report, and whether the kind is settled (no peer-reflexive
/// candidate whose address the browser still hides).
fn selected_path(report: &JsValue) -> Option<(PathKind, Option<Duration>, bool)> {
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
