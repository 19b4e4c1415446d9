//! Binary relay frames: `[peer id: 16 bytes][channel: u16 big-endian][payload]`.
//!
//! A client sends the recipient's id; the server rewrites it to the sender's
//! id before forwarding, so the recipient learns who sent it.

use crate::PeerId;

/// Bytes before the payload.
pub const RELAY_HEADER_LEN: usize = PeerId::LEN + 2;

/// A decoded relay frame, borrowing its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayFrame<'a> {
    /// Recipient (client → server) or sender (server → client).
    pub peer: PeerId,
    /// Application channel number.
    pub channel: u16,
    /// The payload, opaque to the server.
    pub payload: &'a [u8],
}

/// A binary frame shorter than the relay header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("relay frame of {0} bytes is shorter than its {RELAY_HEADER_LEN}-byte header")]
pub struct RelayFrameTooShort(pub usize);

impl<'a> RelayFrame<'a> {
    /// Parses a binary frame.
    pub fn decode(frame: &'a [u8]) -> Result<Self, RelayFrameTooShort> {
        if frame.len() < RELAY_HEADER_LEN {
            return Err(RelayFrameTooShort(frame.len()));
        }
        let mut id = [0u8; PeerId::LEN];
        id.copy_from_slice(&frame[..PeerId::LEN]);
        let channel = u16::from_be_bytes([frame[PeerId::LEN], frame[PeerId::LEN + 1]]);
        Ok(Self { peer: PeerId::from_bytes(id), channel, payload: &frame[RELAY_HEADER_LEN..] })
    }

    /// Writes the frame into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RELAY_HEADER_LEN + self.payload.len());
        out.extend_from_slice(self.peer.as_bytes());
        out.extend_from_slice(&self.channel.to_be_bytes());
        out.extend_from_slice(self.payload);
        out
    }
}

/// Replaces the peer id in an encoded relay frame (server side: recipient → sender).
pub fn rewrite_peer(frame: &mut [u8], peer: PeerId) -> Result<(), RelayFrameTooShort> {
    if frame.len() < RELAY_HEADER_LEN {
        return Err(RelayFrameTooShort(frame.len()));
    }
    frame[..PeerId::LEN].copy_from_slice(peer.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_frames_round_trip_and_rewrite() {
        let to = PeerId::from_bytes([1; 16]);
        let frame = RelayFrame { peer: to, channel: 513, payload: b"hi" }.encode();
        assert_eq!(frame.len(), RELAY_HEADER_LEN + 2);
        assert_eq!(RelayFrame::decode(&frame), Ok(RelayFrame { peer: to, channel: 513, payload: b"hi" }));
        let mut frame = frame;
        let from = PeerId::from_bytes([2; 16]);
        assert_eq!(rewrite_peer(&mut frame, from), Ok(()));
        assert_eq!(RelayFrame::decode(&frame).map(|f| f.peer), Ok(from));
        assert_eq!(RelayFrame::decode(&frame[..5]), Err(RelayFrameTooShort(5)));
    }
}
