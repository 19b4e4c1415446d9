//! The browser's connection to the signaling server: a `WebSocket` that
//! answers the challenge, waits for `welcome`, matches answers to requests
//! by id and hands everything else to the node.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use switchboard_proto::{ClientMessage, ConnId, Hello, PROTOCOL_VERSION, PeerId, ServerMessage, SignalData, Welcome};
use switchboard_proto::{DecodeError, RelayFrame, SignalRequest};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::{ConnectError, Identity, Incoming, RequestError};

type Answer = Result<ServerMessage, RequestError>;

enum Phase {
    /// Waiting for `challenge`, then `welcome`.
    Handshake(Option<oneshot::Sender<Result<Welcome, ConnectError>>>),
    Open,
    Closed,
}

/// An authenticated WebSocket to the server.
pub(crate) struct Signaling {
    ws: WebSocket,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Answer>>>,
    phase: RefCell<Phase>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Signaling {
    /// Opens `url`, proves `identity` and waits for `welcome`; afterwards
    /// `deliver` gets every message that answers no request.
    pub(crate) async fn connect(
        url: &str,
        identity: &Identity,
        auth_token: Option<String>,
        deliver: Rc<dyn Fn(Incoming)>,
    ) -> Result<(Rc<Signaling>, Welcome), ConnectError> {
        let ws = WebSocket::new(url).map_err(|e| ConnectError::Transport(super::js_error(&e)))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let (welcome_tx, welcome_rx) = oneshot::channel();
        let this = Rc::new_cyclic(|weak: &std::rc::Weak<Signaling>| {
            let (w, d) = (weak.clone(), deliver.clone());
            let (public_key, secret) = (identity.public_key_b64(), identity.clone());
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                let Some(this) = w.upgrade() else { return };
                let data = e.data();
                if let Some(buf) = data.dyn_ref::<js_sys::ArrayBuffer>() {
                    this.on_binary(&js_sys::Uint8Array::new(buf).to_vec(), &*d);
                    return;
                }
                let Some(text) = data.as_string() else { return };
                this.on_text(&text, &public_key, &secret, auth_token.as_deref(), &*d);
            });
            let w = weak.clone();
            let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
                if let Some(this) = w.upgrade() {
                    this.on_close(e.code(), e.reason(), &*deliver);
                }
            });
            ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
            Signaling {
                ws,
                next_id: Cell::new(1),
                pending: RefCell::new(HashMap::new()),
                phase: RefCell::new(Phase::Handshake(Some(welcome_tx))),
                _on_message: on_message,
                _on_close: on_close,
            }
        });
        let welcome = welcome_rx.await.map_err(|_| ConnectError::Transport("connection dropped".into()))??;
        Ok((this, welcome))
    }

    fn on_text(
        &self,
        text: &str,
        public_key: &str,
        identity: &Identity,
        token: Option<&str>,
        deliver: &dyn Fn(Incoming),
    ) {
        let msg = match ServerMessage::decode(text) {
            Ok(m) => m,
            // Newer servers may add message types; ignored.
            Err(f) if matches!(f.error, DecodeError::UnknownType(_)) => return,
            Err(f) => {
                tracing::warn!(error = %f, "bad message from the server");
                return;
            }
        };
        let mut phase = self.phase.borrow_mut();
        if let Phase::Handshake(tx) = &mut *phase {
            match msg {
                ServerMessage::Challenge { nonce, .. } => {
                    let hello = ClientMessage::Hello(Hello {
                        id: None,
                        v: PROTOCOL_VERSION,
                        public_key: public_key.to_owned(),
                        signature: identity.sign_challenge(&nonce),
                        resume_token: None,
                        auth_token: token.map(str::to_owned),
                    });
                    if let Err(e) = self.ws.send_with_str(&hello.encode())
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(Err(ConnectError::Transport(super::js_error(&e))));
                    }
                }
                ServerMessage::Welcome(w) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Ok(*w));
                    }
                    *phase = Phase::Open;
                }
                ServerMessage::Error { code, message, .. } => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Err(ConnectError::Refused { code, message }));
                    }
                }
                other => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Err(ConnectError::Protocol(format!("unexpected {other:?}"))));
                    }
                }
            }
            return;
        }
        drop(phase);
        let re = match &msg {
            ServerMessage::Error { re: Some(re), .. } => Some(*re),
            other => other.answers(),
        };
        if let Some(tx) = re.and_then(|id| self.pending.borrow_mut().remove(&id)) {
            let answer = match msg {
                ServerMessage::Error { code, message, .. } => Err(RequestError::Refused { code, message }),
                other => Ok(other),
            };
            let _ = tx.send(answer);
            return;
        }
        deliver(Incoming::Message(msg));
    }

    /// A binary frame: the server relay's.
    fn on_binary(&self, frame: &[u8], deliver: &dyn Fn(Incoming)) {
        if !matches!(*self.phase.borrow(), Phase::Open) {
            return;
        }
        match RelayFrame::decode(frame) {
            Ok(f) => deliver(Incoming::Relay { from: f.peer, channel: f.channel, payload: f.payload.to_vec() }),
            Err(e) => tracing::debug!(error = %e, "bad relay frame from the server"),
        }
    }

    fn on_close(&self, code: u16, reason: String, deliver: &dyn Fn(Incoming)) {
        let was = std::mem::replace(&mut *self.phase.borrow_mut(), Phase::Closed);
        for (_, tx) in self.pending.borrow_mut().drain() {
            let _ = tx.send(Err(RequestError::Transport(format!("closed ({code}): {reason}"))));
        }
        match was {
            Phase::Handshake(Some(tx)) => {
                let _ = tx.send(Err(ConnectError::Transport(format!("closed ({code}): {reason}"))));
            }
            Phase::Open => deliver(Incoming::Closed { code, reason }),
            _ => {}
        }
    }

    /// Sends a request and waits for its answer.
    pub(crate) async fn request(&self, mut msg: ClientMessage) -> Result<ServerMessage, RequestError> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        msg.set_id(id);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        if let Err(e) = self.send(&msg) {
            self.pending.borrow_mut().remove(&id);
            return Err(e);
        }
        rx.await.map_err(|_| RequestError::Transport("connection closed".into()))?
    }

    /// Sends a message without waiting for anything.
    pub(crate) fn send(&self, msg: &ClientMessage) -> Result<(), RequestError> {
        if !matches!(*self.phase.borrow(), Phase::Open) {
            return Err(RequestError::Transport("not connected".into()));
        }
        self.ws.send_with_str(&msg.encode()).map_err(|e| RequestError::Transport(super::js_error(&e)))
    }

    /// Sends a signal to a peer.
    pub(crate) fn signal(&self, to: PeerId, conn: &ConnId, data: SignalData) {
        let msg = ClientMessage::Signal(SignalRequest { id: None, to, conn: conn.clone(), data: data.into() });
        if let Err(e) = self.send(&msg) {
            tracing::warn!(error = %e, "signal not sent");
        }
    }

    /// Sends `payload` to `to` through the server relay on `channel`.
    pub(crate) fn send_relay(&self, to: PeerId, channel: u16, payload: &[u8]) {
        if !matches!(*self.phase.borrow(), Phase::Open) {
            return;
        }
        let frame = RelayFrame { peer: to, channel, payload }.encode();
        if let Err(e) = self.ws.send_with_u8_array(&frame) {
            tracing::debug!(error = %super::js_error(&e), "relay frame not sent");
        }
    }

    /// Closes the connection (the session ends at once).
    pub(crate) fn close(&self) {
        let _ = self.ws.close();
    }
}

impl Drop for Signaling {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}
