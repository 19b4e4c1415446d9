//! Data channel declarations: what a [`Node`](crate::Node) opens on every link.

use std::time::Duration;

/// How a channel delivers messages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelConfig {
    /// The channel's name; messages are sent and reported by it.
    pub label: String,
    /// Deliver messages in the order they were sent.
    pub ordered: bool,
    /// Give up on a message after this many retransmissions (`None`: never give up).
    pub max_retransmits: Option<u16>,
    /// Give up on a message after this long (`None`: never give up).
    pub max_packet_lifetime: Option<Duration>,
    /// Compress messages when that makes them smaller.
    pub compression: Compression,
    /// Open the channel with a fixed SCTP stream id on both sides (`true`, the
    /// default), or in-band with DCEP so that the other side learns of it.
    pub negotiated: bool,
}

/// Message compression on a channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Send messages as they are.
    #[default]
    None,
    /// LZ4 (fast); a message is sent compressed only when that saves bytes.
    Lz4,
}

impl ChannelConfig {
    /// Ordered and reliable: every message arrives, once, in order.
    pub fn reliable(label: impl Into<String>) -> Self {
        ChannelConfig {
            label: label.into(),
            ordered: true,
            max_retransmits: None,
            max_packet_lifetime: None,
            compression: Compression::None,
            negotiated: true,
        }
    }

    /// Unordered and without retransmissions: late or lost messages are
    /// dropped, as games want for state updates.
    pub fn unreliable(label: impl Into<String>) -> Self {
        ChannelConfig { ordered: false, max_retransmits: Some(0), ..ChannelConfig::reliable(label) }
    }

    /// Sets ordered delivery.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// Sets the retransmission limit (clears any lifetime limit).
    pub fn max_retransmits(mut self, n: u16) -> Self {
        self.max_retransmits = Some(n);
        self.max_packet_lifetime = None;
        self
    }

    /// Sets the lifetime limit (clears any retransmission limit).
    pub fn max_packet_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_packet_lifetime = Some(lifetime);
        self.max_retransmits = None;
        self
    }

    /// Sets compression.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Opens the channel in-band (DCEP) instead of pre-negotiated.
    pub fn in_band(mut self) -> Self {
        self.negotiated = false;
        self
    }

    /// Whether every message is delivered (no retransmission or lifetime limit).
    pub fn is_reliable(&self) -> bool {
        self.max_retransmits.is_none() && self.max_packet_lifetime.is_none()
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn to_str0m(&self, stream_id: Option<u16>) -> str0m::channel::ChannelConfig {
        use str0m::channel::Reliability;
        let reliability = match (self.max_retransmits, self.max_packet_lifetime) {
            (Some(retransmits), _) => Reliability::MaxRetransmits { retransmits },
            (None, Some(lifetime)) => {
                Reliability::MaxPacketLifetime { lifetime: u16::try_from(lifetime.as_millis()).unwrap_or(u16::MAX) }
            }
            (None, None) => Reliability::Reliable,
        };
        str0m::channel::ChannelConfig {
            label: self.label.clone(),
            ordered: self.ordered,
            reliability,
            negotiated: stream_id,
            ..Default::default()
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn from_str0m(config: &str0m::channel::ChannelConfig) -> Self {
        use str0m::channel::Reliability;
        let base = ChannelConfig::reliable(config.label.clone()).ordered(config.ordered);
        let base = ChannelConfig { negotiated: config.negotiated.is_some(), ..base };
        match config.reliability {
            Reliability::Reliable => base,
            Reliability::MaxRetransmits { retransmits } => base.max_retransmits(retransmits),
            Reliability::MaxPacketLifetime { lifetime } => {
                base.max_packet_lifetime(Duration::from_millis(u64::from(lifetime)))
            }
        }
    }
}
