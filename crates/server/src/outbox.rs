//! The queue of frames waiting to be written to one connection. Idle, it
//! holds no allocation; full, it marks the connection as too slow.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use switchboard_proto::ServerMessage;
use tokio::sync::Notify;

/// One frame to write.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A JSON message, encoded when queued so that it is counted at its size.
    Text(String),
    /// A binary relay frame.
    Binary(Vec<u8>),
    /// Close the connection with this reason.
    Close(u16, &'static str),
}

/// What a queued frame costs beyond its bytes (its place in the queue).
const FRAME_OVERHEAD: usize = 64;

impl Outbound {
    /// A message, encoded now.
    pub(crate) fn msg(msg: &ServerMessage) -> Self {
        Self::Text(msg.encode())
    }

    fn cost(&self) -> usize {
        FRAME_OVERHEAD
            + match self {
                Self::Text(text) => text.len(),
                Self::Binary(b) => b.len(),
                Self::Close(_, reason) => reason.len(),
            }
    }
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Outbound>,
    bytes: usize,
    overflowed: bool,
}

/// A bounded frame queue with a wake-up for its writer.
pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    notify: Notify,
    max_bytes: usize,
    /// New mail was stored for this connection's peer: its writer fetches
    /// it from the store (mail bodies never wait here unasked).
    mail_stored: AtomicBool,
}

impl Outbox {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            max_bytes,
            mail_stored: AtomicBool::new(false),
        }
    }

    /// Tells the writer that mail was stored for its peer.
    pub(crate) fn mail_stored(&self) {
        self.mail_stored.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether mail was stored since the last call.
    pub(crate) fn take_mail_stored(&self) -> bool {
        self.mail_stored.swap(false, Ordering::AcqRel)
    }

    /// Queues a frame; a queue over its byte limit drops it and marks itself overflowed.
    pub(crate) fn push(&self, item: Outbound) {
        let cost = item.cost();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.overflowed {
            return;
        }
        if inner.bytes + cost > self.max_bytes {
            inner.overflowed = true;
            inner.queue.clear();
            inner.queue.shrink_to_fit();
        } else {
            inner.bytes += cost;
            inner.queue.push_back(item);
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// Queues a frame another peer sent, if the queue is under half full:
    /// other peers' traffic can fill a connection's queue only halfway, so
    /// it can never overflow (and close) the connection. Returns false when
    /// the frame was dropped.
    pub(crate) fn push_forwarded(&self, item: Outbound) -> bool {
        let cost = item.cost();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.overflowed || inner.bytes + cost > self.max_bytes / 2 {
            return false;
        }
        inner.bytes += cost;
        inner.queue.push_back(item);
        drop(inner);
        self.notify.notify_one();
        true
    }

    /// Moves every queued frame into `out`; returns whether the queue overflowed.
    pub(crate) fn drain(&self, out: &mut Vec<Outbound>) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        out.extend(inner.queue.drain(..));
        inner.bytes = 0;
        // An idle connection keeps no queue memory; a busy one reallocates
        // once per burst, not per frame.
        inner.queue = VecDeque::new();
        inner.overflowed
    }

    /// Resolves when something was queued since the last call.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use switchboard_proto::{PeerId, PeerInfo, RoomCode};

    use super::*;

    #[test]
    fn a_message_costs_its_encoded_size() {
        // A `peer_joined` with 1000 bytes of meta once cost 128 bytes,
        // so a queue of 64 KiB held half a megabyte of them.
        let outbox = Outbox::new(64 * 1024);
        let room: RoomCode = "ABCDEFGHJK".parse().expect("code");
        let peer = PeerInfo { peer_id: PeerId::from_bytes([7; 16]), meta: Some(serde_json::json!("m".repeat(1000))) };
        let joined = ServerMessage::PeerJoined { room, peer };
        for _ in 0..64 {
            outbox.push(Outbound::msg(&joined));
        }
        let mut out = Vec::new();
        assert!(outbox.drain(&mut out), "64 messages of over 1 KiB overflow 64 KiB");
        assert!(out.len() < 64, "what did not fit was dropped ({} kept)", out.len());
    }
}
