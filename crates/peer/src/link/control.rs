//! The control and probe messages of framed links (protocol.md §19.5),
//! shared by both backends.

/// SCTP stream id of the internal control channel of a link that declares
/// `declared` channels: the first id after theirs (framed links only).
///
/// The ids stay low on purpose: Firefox starts an association with 16
/// streams and asks for more with an SCTP add-streams request, which the
/// native stack does not grant.
pub(crate) fn control_stream(declared: usize) -> u16 {
    // 65535 is no valid data-channel stream id.
    u16::try_from(declared).unwrap_or(u16::MAX).min(u16::MAX - 2)
}

/// SCTP stream id of the internal probe channel, right after the control
/// channel's: unordered, never retransmitted, so that lost probes measure
/// loss (framed links only).
pub(crate) fn probe_stream(declared: usize) -> u16 {
    control_stream(declared) + 1
}
/// Label of the control channel.
pub(crate) const CONTROL_LABEL: &str = "switchboard-control";
/// Label of the probe channel.
pub(crate) const PROBE_LABEL: &str = "switchboard-probe";

const CREDIT: u8 = 1;
const PING: u8 = 2;
const PONG: u8 = 3;
const ACK: u8 = 4;

/// One control or probe message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// Total reliable chunk bytes received (control channel).
    Credit(u64),
    /// Asks for a pong with this nonce (probe channel).
    Ping(u64),
    /// Answers a ping (probe channel).
    Pong(u64),
    /// Reliable channel `slot` accepted `count` chunks in all (control channel).
    Ack {
        /// The channel.
        slot: u16,
        /// Chunks accepted so far.
        count: u64,
    },
}

impl Control {
    /// The message's bytes.
    pub(crate) fn encode(self) -> Vec<u8> {
        let (kind, value) = match self {
            Control::Credit(v) => (CREDIT, v),
            Control::Ping(v) => (PING, v),
            Control::Pong(v) => (PONG, v),
            Control::Ack { slot, count } => {
                let mut msg = vec![ACK];
                msg.extend_from_slice(&slot.to_le_bytes());
                msg.extend_from_slice(&count.to_le_bytes());
                return msg;
            }
        };
        let mut msg = vec![kind];
        msg.extend_from_slice(&value.to_le_bytes());
        msg
    }

    /// Reads one message; unknown types and wrong lengths give `None`
    /// (later versions may add types).
    pub(crate) fn decode(msg: &[u8]) -> Option<Control> {
        let (&kind, rest) = msg.split_first()?;
        if kind == ACK {
            let v = <[u8; 10]>::try_from(rest).ok()?;
            let slot = u16::from_le_bytes([v[0], v[1]]);
            let count = u64::from_le_bytes(v[2..].try_into().ok()?);
            return Some(Control::Ack { slot, count });
        }
        let value = u64::from_le_bytes(<[u8; 8]>::try_from(rest).ok()?);
        match kind {
            CREDIT => Some(Control::Credit(value)),
            PING => Some(Control::Ping(value)),
            PONG => Some(Control::Pong(value)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_reads_back_as_written() {
        for m in [Control::Credit(7), Control::Ping(u64::MAX), Control::Pong(0), Control::Ack { slot: 3, count: 99 }] {
            assert_eq!(Control::decode(&m.encode()), Some(m));
        }
        assert_eq!(Control::Ack { slot: 1, count: 2 }.encode().len(), 11);
        assert_eq!(Control::Credit(1).encode().len(), 9);
    }

    #[test]
    fn unknown_or_cut_messages_are_ignored() {
        assert_eq!(Control::decode(&[]), None);
        assert_eq!(Control::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(Control::decode(&[1, 0, 0]), None);
        assert_eq!(Control::decode(&[4, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn internal_streams_follow_the_declared_channels() {
        assert_eq!((control_stream(0), probe_stream(0)), (0, 1));
        // Two channels declared use streams 0 and 1; Firefox's first 16 hold all four.
        assert_eq!((control_stream(2), probe_stream(2)), (2, 3));
        // The ids never overflow, however many channels are declared.
        assert_eq!((control_stream(usize::MAX), probe_stream(usize::MAX)), (u16::MAX - 2, u16::MAX - 1));
    }
}
