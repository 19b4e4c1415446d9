//! Message framing over data channels, sans-IO.
//!
//! A message of any size (up to a configured maximum) is cut into chunks that
//! fit below the link's negotiated SCTP message size, and reassembled on the
//! other side. Every chunk starts with a small header:
//!
//! ```text
//! flags u8 (FIRST 0x01, LAST 0x02, LZ4 0x04, TEXT 0x08) | seq u32 LE | index u32 LE
//! FIRST only: total u32 LE | kind u8 | [request id u64 LE] | room len u8 | room
//! payload
//! ```
//!
//! `seq` numbers the messages of one channel, `index` the chunks of one
//! message, `total` is the message's size on the wire (after compression).
//! `kind` is 0 for plain data, 1 for a request, 2 for a response and 3 for an
//! error response; the last three carry the request id. `TEXT` on the
//! first chunk says the application sent the message as text (UTF-8).
//!
//! [`Outbox`] queues messages per channel and hands out chunks round-robin so
//! that channels interleave fairly; [`Inbox`] reassembles them with bounded
//! memory. In raw mode (for standard WebRTC peers) a message is one SCTP
//! message without header, sent as a text or binary data-channel message
//! as the application sent it.

mod arq;
mod recv;
mod send;

pub(crate) use arq::{InOrder, Retained, Verdict};
pub(crate) use recv::FrameError;
pub(crate) use recv::{Delivered, Inbox};
pub(crate) use send::Outbox;

use bytes::Bytes;
use switchboard_proto::RoomCode;

const FIRST: u8 = 0x01;
const LAST: u8 = 0x02;
const LZ4: u8 = 0x04;
const TEXT: u8 = 0x08;
/// Bytes of the header every chunk has.
const BASE_HEADER: usize = 9;
/// Largest header of a first chunk.
#[cfg(test)]
pub(crate) const MAX_HEADER: usize = BASE_HEADER + 4 + 1 + 8 + 1 + 16;

/// What a message is, besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MessageKind {
    /// Plain data.
    Data,
    /// A request that wants an answer with the same id.
    Request(u64),
    /// The answer to a request.
    Response(u64),
    /// The request failed on the other side; the payload says why (UTF-8).
    ErrorResponse(u64),
}

impl MessageKind {
    fn code(self) -> u8 {
        match self {
            MessageKind::Data => 0,
            MessageKind::Request(_) => 1,
            MessageKind::Response(_) => 2,
            MessageKind::ErrorResponse(_) => 3,
        }
    }

    fn id(self) -> Option<u64> {
        match self {
            MessageKind::Data => None,
            MessageKind::Request(id) | MessageKind::Response(id) | MessageKind::ErrorResponse(id) => Some(id),
        }
    }
}

/// One message to send.
#[derive(Clone, Debug)]
pub(crate) struct OutMessage {
    /// What it is.
    pub(crate) kind: MessageKind,
    /// The room it belongs to, if that matters.
    pub(crate) room: Option<RoomCode>,
    /// The bytes.
    pub(crate) data: Bytes,
    /// Sent as text (the bytes are UTF-8).
    pub(crate) text: bool,
}

impl OutMessage {
    /// A plain data message.
    pub(crate) fn data(data: Bytes) -> Self {
        OutMessage { kind: MessageKind::Data, room: None, data, text: false }
    }

    /// A text message.
    pub(crate) fn text(text: String) -> Self {
        OutMessage { kind: MessageKind::Data, room: None, data: Bytes::from(text), text: true }
    }
}

/// Compresses `data` with LZ4 (size-prefixed) when that saves bytes.
pub(crate) fn maybe_compress(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 64 {
        return None;
    }
    let packed = lz4_flex::block::compress_prepend_size(data);
    (packed.len() < data.len()).then_some(packed)
}
