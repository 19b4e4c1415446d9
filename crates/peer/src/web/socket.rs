//! The browser's WebSocket to the signaling server: it only carries frames
//! between the server and the node core, which speaks the protocol.

use std::rc::Weak;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use super::WebNode;

/// An open (or opening) WebSocket and its callbacks.
pub(super) struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Opens `url`; what happens goes to the node behind `node`.
    pub(super) fn open(url: &str, node: Weak<WebNode>) -> Result<Socket, String> {
        let ws = WebSocket::new(url).map_err(|e| super::js_error(&e))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let n = node.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            if let Some(shared) = n.upgrade() {
                shared.ws_event(|core, now| core.ws_opened(now));
            }
        });
        let n = node.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let Some(shared) = n.upgrade() else { return };
            let data = e.data();
            if let Some(buf) = data.dyn_ref::<js_sys::ArrayBuffer>() {
                let frame = js_sys::Uint8Array::new(buf).to_vec();
                shared.ws_event(|core, now| core.ws_binary(now, &frame));
            } else if let Some(text) = data.as_string() {
                shared.ws_event(|core, now| core.ws_text(now, &text));
            }
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            if let Some(shared) = node.upgrade() {
                let reason = e.reason();
                shared.ws_event(|core, now| core.ws_closed(now, e.code(), &reason));
            }
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Socket { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close })
    }

    /// Sends a text frame (dropped unless open; the core resends what matters).
    pub(super) fn send_text(&self, text: &str) {
        if let Err(e) = self.ws.send_with_str(text) {
            tracing::debug!(error = %super::js_error(&e), "frame not sent");
        }
    }

    /// Sends a binary frame.
    pub(super) fn send_binary(&self, frame: &[u8]) {
        if let Err(e) = self.ws.send_with_u8_array(frame) {
            tracing::debug!(error = %super::js_error(&e), "relay frame not sent");
        }
    }

    /// Closes it; no callback follows.
    pub(super) fn close(self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}
