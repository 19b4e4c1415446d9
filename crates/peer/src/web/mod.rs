//! The browser backend (wasm32): the node core and its links' browser
//! sides in a `RefCell`, driven by the page's callbacks.
//!
//! Everything runs on the page's one thread. An application call borrows
//! the state, enters the core, and carries out what it asked for (frames
//! to the `WebSocket`, a timer for the core's next timeout); so does every
//! callback: the `WebSocket`'s, the timer's, and the links' (`rtc`), which
//! only queue what they saw and ask the node to drive the link.
//!
//! What a browser cannot do, the builder refuses with a clear error
//! (`NodeConfig::validate`): choose host candidates, delay relayed
//! candidates, trust extra TURN roots, size the SCTP buffer, declare
//! in-band channels. Links send no beacons (a page has no UDP socket) and
//! keep their TURN credentials for the session they were made with.

pub(crate) mod js;
mod log;
mod rtc;
mod socket;
mod store;

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::{Closure, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_time::Instant;

pub use self::log::log_to_console;
use self::rtc::{BrowserRtc, BrowserSettings};
use self::socket::Socket;
use crate::error::StartError;
use crate::ice::{IcePolicy, IceServer};
use crate::identity::Identity;
use crate::link::LinkConfig;
use crate::node::NodeConfig;
use crate::node::core::{NodeCore, NodeOutput, Platform};

/// The node core on this backend.
pub(crate) type Core = NodeCore<WebPlatform>;

/// Resolves after `duration` (a browser timer).
pub(crate) async fn pause(duration: Duration) {
    let ms = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Text of a JS exception or error value.
pub(crate) fn js_error(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::Reflect::get(e, &JsValue::from_str("message")).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Makes the browser side of new links.
pub(crate) struct WebPlatform {
    me: Weak<WebNode>,
    own: Vec<IceServer>,
    /// The application's STUN/TURN servers and the server's.
    ice_servers: Vec<IceServer>,
    policy: IcePolicy,
}

impl Platform for WebPlatform {
    type Rtc = BrowserRtc;

    fn new_rtc(&mut self, _now: Instant, link: u64, cfg: &LinkConfig) -> Result<BrowserRtc, String> {
        let settings = BrowserSettings {
            channels: cfg.channels.clone(),
            raw: cfg.raw,
            ice_servers: self.ice_servers.clone(),
            policy: self.policy,
        };
        let me = self.me.clone();
        let poke: Rc<dyn Fn()> = Rc::new(move || {
            if let Some(shared) = me.upgrade() {
                shared.poke(link);
            }
        });
        Ok(BrowserRtc::new(settings, poke))
    }
}

struct State {
    core: Core,
    ws: Option<Socket>,
    /// The timer set for the core's next timeout, and when it fires.
    timer: Option<(i32, Instant)>,
    /// Where the trust book is saved.
    trust: Option<TrustSaver>,
}

/// Saves the trust book in IndexedDB, one write at a time, the newest last.
#[derive(Clone)]
struct TrustSaver {
    name: Rc<str>,
    /// The newest book not yet written.
    pending: Rc<RefCell<Option<String>>>,
    writing: Rc<std::cell::Cell<bool>>,
    /// Woken when the writes are done.
    idle: Rc<RefCell<Vec<std::task::Waker>>>,
}

impl TrustSaver {
    fn save(&self, text: String) {
        *self.pending.borrow_mut() = Some(text);
        if self.writing.replace(true) {
            return;
        }
        let (name, pending, writing, idle) =
            (self.name.clone(), self.pending.clone(), self.writing.clone(), self.idle.clone());
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                let next = pending.borrow_mut().take();
                let Some(text) = next else { break };
                if let Err(e) = store::save_trust(&name, &text).await {
                    tracing::warn!(error = %js_error(&e), "cannot save the trust store");
                }
            }
            writing.set(false);
            for w in idle.borrow_mut().drain(..) {
                w.wake();
            }
        });
    }

    /// Waits until every change saved so far is written (or failed).
    async fn flushed(&self) {
        std::future::poll_fn(|cx| {
            if self.writing.get() {
                self.idle.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
    }
}

/// The browser node: its state, held by the page's callbacks (one thread, no lock).
pub(crate) struct WebNode {
    me: Weak<WebNode>,
    state: RefCell<State>,
    timer_cb: Closure<dyn FnMut()>,
}

impl WebNode {
    /// Runs `f` on the core, then carries out what it asked for.
    fn with<T>(&self, f: impl FnOnce(&mut Core, Instant) -> T) -> T {
        let mut st = self.state.borrow_mut();
        let result = f(&mut st.core, Instant::now());
        self.flush(&mut st);
        result
    }

    /// A link's browser side queued something: drive it (later, if the
    /// state is in use: a callback inside a call).
    fn poke(&self, link: u64) {
        if self.state.try_borrow_mut().is_ok() {
            self.with(|core, now| core.drive_link(now, link));
        } else {
            let me = self.me.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(shared) = me.upgrade() {
                    shared.with(|core, now| core.drive_link(now, link));
                }
            });
        }
    }

    fn flush(&self, st: &mut State) {
        // Browser links need no flushing: the browser sends for them.
        st.core.take_touched();
        while let Some(out) = st.core.poll_output() {
            match out {
                NodeOutput::Text(text) => {
                    if let Some(ws) = &st.ws {
                        ws.send_text(&text);
                    }
                }
                NodeOutput::Binary(frame) => {
                    if let Some(ws) = &st.ws {
                        ws.send_binary(&frame);
                    }
                }
                NodeOutput::Connect { url } => {
                    let me = self.me.clone();
                    st.ws = match Socket::open(&url, me) {
                        Ok(ws) => Some(ws),
                        Err(e) => {
                            st.core.ws_closed(Instant::now(), 1006, &e);
                            None
                        }
                    };
                }
                NodeOutput::Disconnect => {
                    if let Some(ws) = st.ws.take() {
                        ws.close();
                    }
                }
                NodeOutput::IceServers { servers, renew } => {
                    let platform = st.core.platform_mut();
                    platform.ice_servers =
                        platform.own.iter().cloned().chain(servers.into_iter().map(IceServer::from)).collect();
                    if renew {
                        // Links on a TURN relay take the fresh credentials
                        // and move to new allocations by ICE restart.
                        let fresh = st.core.platform_mut().ice_servers.clone();
                        for entry in st.core.links_mut() {
                            entry.core.rtc_mut().set_ice_servers(&fresh);
                        }
                        st.core.renew_links(Instant::now());
                    }
                }
                // The browser's peer connection said goodbye itself.
                NodeOutput::LinkGone(link) => drop(st.core.take_gone(link)),
                NodeOutput::SaveTrust(text) => {
                    if let Some(t) = &st.trust {
                        t.save(text);
                    }
                }
            }
        }
        self.arm_timer(st);
    }

    /// Sets the timer for the core's next timeout.
    fn arm_timer(&self, st: &mut State) {
        let Some(window) = web_sys::window() else { return };
        let next = st.core.poll_timeout();
        if let Some((handle, at)) = st.timer {
            if next == Some(at) {
                return;
            }
            window.clear_timeout_with_handle(handle);
            st.timer = None;
        }
        if let Some(at) = next {
            let ms = i32::try_from(at.saturating_duration_since(Instant::now()).as_millis()).unwrap_or(i32::MAX);
            st.timer = window
                .set_timeout_with_callback_and_timeout_and_arguments_0(self.timer_cb.as_ref().unchecked_ref(), ms)
                .ok()
                .map(|h| (h, at));
        }
    }

    /// The WebSocket opened, sent a frame or closed.
    fn ws_event(&self, f: impl FnOnce(&mut Core, Instant)) {
        let mut st = self.state.borrow_mut();
        f(&mut st.core, Instant::now());
        self.flush(&mut st);
    }
}

/// The application's handle on a browser node.
pub(crate) struct Backend {
    shared: Rc<WebNode>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.with(|core, _| core.id())).finish_non_exhaustive()
    }
}

impl Backend {
    /// Starts the node and, with a signaling server, waits for its welcome.
    pub(crate) async fn start(cfg: NodeConfig, identity: Identity) -> Result<Backend, StartError> {
        let (policy, own) = (cfg.ice_policy, cfg.ice_servers.clone());
        let trust_name: Option<Rc<str>> = cfg.trust_store.as_deref().map(Rc::from);
        let book = match &trust_name {
            Some(name) => store::load_trust(name).await?,
            None => Default::default(),
        };
        let trust = trust_name.map(|name| TrustSaver {
            name,
            pending: Rc::new(RefCell::new(None)),
            writing: Rc::new(std::cell::Cell::new(false)),
            idle: Rc::default(),
        });
        let shared = Rc::new_cyclic(|me: &Weak<WebNode>| {
            let platform = WebPlatform { me: me.clone(), own: own.clone(), ice_servers: own.clone(), policy };
            let mut core = NodeCore::new(Instant::now(), cfg, identity, platform, rand::random());
            core.load_trust(book);
            let timer_me = me.clone();
            let timer_cb = Closure::<dyn FnMut()>::new(move || {
                if let Some(shared) = timer_me.upgrade() {
                    // The timer fired: it is no longer set.
                    shared.state.borrow_mut().timer = None;
                    shared.with(|core, now| core.handle_timeout(now));
                }
            });
            WebNode { me: me.clone(), state: RefCell::new(State { core, ws: None, timer: None, trust }), timer_cb }
        });
        let backend = Backend { shared };
        backend.with(|_, _| ());
        std::future::poll_fn(|cx| backend.with(|core, _| core.poll_start(cx))).await?;
        let handed = backend.with(|core, _| core.welcome_ice_servers());
        let servers: Vec<IceServer> = own.into_iter().chain(handed.into_iter().map(IceServer::from)).collect();
        if policy == IcePolicy::Relay && !servers.iter().flat_map(|s| &s.urls).any(|u| u.starts_with("turn")) {
            return Err(StartError::Config("relay-only policy needs a TURN server".into()));
        }
        backend.with(|core, _| core.platform_mut().ice_servers = servers);
        Ok(backend)
    }

    /// Runs `f` on the core at the current time, then carries out what it asked for.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Core, Instant) -> T) -> T {
        self.shared.with(f)
    }

    /// Closes every link and the signaling connection.
    pub(crate) async fn close(&self) {
        self.with(|core, now| core.close(now));
        // Trust changes made so far are stored when `close` returns.
        let trust = self.shared.state.borrow().trust.clone();
        if let Some(t) = trust {
            t.flushed().await;
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let mut st = self.shared.state.borrow_mut();
        if let (Some((handle, _)), Some(w)) = (st.timer.take(), web_sys::window()) {
            w.clear_timeout_with_handle(handle);
        }
        if let Some(ws) = st.ws.take() {
            ws.close();
        }
    }
}
