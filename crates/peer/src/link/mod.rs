//! One link to one remote peer.
//!
//! Everything a link decides lives here, once, for both backends: the
//! [link core](core) (carriers, sessions, restart pacing, the give-up
//! rule), the [transfer](transfer) (framing, credit, acknowledgements,
//! probes), the [server-relay carrier](relay), the [state machine](state),
//! the [quality meter](quality) and the [control messages](control); and
//! the [`Rtc`] contract that the WebRTC side of each backend fulfils
//! (`native::rtc` over str0m, `web::rtc` over `RTCPeerConnection`).

pub(crate) mod control;
mod core;
mod pacing;
pub(crate) mod proof;
pub(crate) mod quality;
#[cfg(test)]
pub(crate) mod scripted;
pub(crate) mod server_relay;
pub(crate) mod state;
#[cfg(test)]
mod tests;
pub(crate) mod transfer;

use std::net::SocketAddr;
use std::time::Duration;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use self::core::RAW_MAX_MESSAGE;
pub(crate) use self::core::{
    LinkConfig, LinkCore, LinkEvent, LinkOutput, MAX_CHANNELS, MAX_LABEL, Role, Rtc, RtcError, RtcEvent, RtcStats,
};
pub use quality::Quality;
pub use state::{InvalidTransition, LinkState};

/// How a link's path goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathKind {
    /// Directly between local interface addresses.
    Host,
    /// Through a NAT mapping (server- or peer-reflexive address).
    ServerReflexive,
    /// Through a TURN relay.
    Relayed,
    /// Through the signaling server's WebSocket relay (no WebRTC path yet),
    /// end-to-end encrypted.
    Server,
}

impl std::fmt::Display for PathKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathKind::Host => "host",
            PathKind::ServerReflexive => "server-reflexive",
            PathKind::Relayed => "relayed",
            PathKind::Server => "server relay",
        })
    }
}

/// Why a link ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// This side closed it.
    Closed,
    /// The other side closed it, maybe saying why.
    ClosedByPeer(Option<String>),
    /// No path opened within the connect timeout.
    ConnectTimeout,
    /// The path was lost and did not come back in time.
    PathLost,
    /// The other side broke the protocol (bad SDP, bad framing, more data
    /// than its credit, more channels than allowed).
    Protocol(String),
    /// The other side's messages (raw mode, which has no credit) waited
    /// unread past the limit, this many bytes: the application fell behind.
    Overrun(usize),
    /// The other side did not prove it is the peer expected: its session
    /// description's identity proof is missing, or does not hold for the
    /// DTLS certificate it names (what a signaling server in the middle of
    /// the link would show).
    Unverified(String),
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::Closed => f.write_str("closed"),
            DisconnectReason::ClosedByPeer(None) => f.write_str("closed by peer"),
            DisconnectReason::ClosedByPeer(Some(r)) => write!(f, "closed by peer: {r}"),
            DisconnectReason::ConnectTimeout => f.write_str("no path within the connect timeout"),
            DisconnectReason::PathLost => f.write_str("path lost"),
            DisconnectReason::Protocol(e) => write!(f, "protocol error: {e}"),
            DisconnectReason::Overrun(n) => write!(f, "{n} bytes of the peer's messages waited unread"),
            DisconnectReason::Unverified(e) => write!(f, "the peer's identity is not proven: {e}"),
        }
    }
}

/// Traffic and path figures of one link.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct LinkStats {
    /// Message bytes sent (before framing).
    pub bytes_sent: u64,
    /// Message bytes received.
    pub bytes_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Latest round-trip time.
    pub rtt: Option<Duration>,
    /// Path kind of the selected candidate pair.
    pub path: Option<PathKind>,
    /// Local address of the selected candidate pair.
    pub local_addr: Option<SocketAddr>,
    /// Remote address of the selected candidate pair.
    pub remote_addr: Option<SocketAddr>,
    /// Bytes queued for sending.
    pub buffered: usize,
    /// Time from the link's creation to its channels being open.
    pub setup_time: Option<Duration>,
    /// Partial messages dropped on unreliable channels.
    pub dropped_partials: u64,
    /// Share of probes lost over the last 25 s (framed links).
    pub loss: Option<f32>,
    /// The quality level from round trip and loss (framed links).
    pub quality: Option<Quality>,
    /// ICE restarts this link went through (path lost, network change,
    /// fresh TURN credentials).
    pub ice_restarts: u32,
}
