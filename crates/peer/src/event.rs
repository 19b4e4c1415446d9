//! What a [`Node`](crate::Node) reports, and the errors of its operations.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchboard_proto::{ErrorCode, PeerId, RoomCode, ServerMessage};

use crate::link::{DisconnectReason, LinkState, PathKind, Quality};

/// Something that happened, from [`Node::next_event`](crate::Node::next_event).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A peer is in a room with this node (also reported for the peers
    /// already there when this node joins).
    PeerJoined {
        /// The room.
        room: RoomCode,
        /// The peer.
        peer: PeerId,
        /// What it joined with.
        meta: Option<Value>,
    },
    /// A peer left a room.
    PeerLeft {
        /// The room.
        room: RoomCode,
        /// The peer.
        peer: PeerId,
    },
    /// A peer asks for a link (request topology); answer with
    /// [`Node::accept`](crate::Node::accept) or [`Node::reject`](crate::Node::reject).
    LinkRequested {
        /// Who asks.
        peer: PeerId,
        /// What it sent along.
        meta: Option<Value>,
    },
    /// A peer declined this node's link request.
    LinkRejected {
        /// Who declined.
        peer: PeerId,
        /// Why, if it said.
        reason: Option<String>,
    },
    /// A link's channels are open.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// How the path goes.
        path: PathKind,
        /// Round trip measured so far.
        rtt: Option<Duration>,
    },
    /// A connected link moved to another kind of path (for example from the
    /// relay to a direct one).
    PathChanged {
        /// The peer.
        peer: PeerId,
        /// The new path.
        path: PathKind,
    },
    /// A link ended.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
    /// A link changed state.
    LinkState {
        /// The peer.
        peer: PeerId,
        /// The new state.
        state: LinkState,
    },
    /// A message arrived.
    Message(Message),
    /// A request arrived; answer with [`Node::respond`](crate::Node::respond).
    Request(Request),
    /// The other side opened a channel in-band (DCEP).
    ChannelOpened {
        /// The peer.
        peer: PeerId,
        /// The channel's label.
        channel: String,
    },
    /// A local ICE candidate for a link made with the bring-your-own-signaling
    /// API; hand it to the other side.
    LocalCandidate {
        /// The link.
        peer: PeerId,
        /// The `candidate:` line.
        candidate: String,
    },
    /// A link's quality level changed (framed links; see [`Quality`] for
    /// the thresholds). [`Node::stats`](crate::Node::stats) has the round
    /// trip and loss behind it.
    QualityChanged {
        /// The peer.
        peer: PeerId,
        /// The new level.
        quality: Quality,
    },
    /// The connection to the signaling server broke; the node reconnects
    /// with backoff ([`NodeBuilder::reconnect_attempts`](crate::NodeBuilder::reconnect_attempts)).
    /// Links keep working meanwhile; room calls fail until it is back, and
    /// signals wait for it.
    SignalingLost {
        /// Why.
        reason: String,
    },
    /// The node is connected to the signaling server again, with the same
    /// peer id. `resumed`: the server still held the session (rooms kept,
    /// nobody saw it leave); otherwise the node joined its rooms again.
    SignalingRestored {
        /// Whether the server resumed the old session.
        resumed: bool,
    },
    /// After a reconnection, a room this node was in could not be joined
    /// again (the server lost it, or refused).
    RoomLost {
        /// The room.
        room: RoomCode,
        /// Why.
        reason: String,
    },
    /// The connection to the signaling server ended for good (closed by the
    /// server for a reason a retry cannot fix, or the reconnection attempts
    /// ran out); links keep working.
    SignalingClosed {
        /// Why.
        reason: String,
    },
}

/// A message from a peer.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Message {
    /// The sender.
    pub peer: PeerId,
    /// The channel it came on.
    pub channel: Arc<str>,
    /// The room the sender said it belongs to.
    pub room: Option<RoomCode>,
    /// The bytes.
    pub data: Bytes,
}

impl Message {
    /// Decodes the data as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.data)
    }

    /// Decodes the data as MessagePack.
    pub fn msgpack<T: DeserializeOwned>(&self) -> Result<T, rmp_serde::decode::Error> {
        rmp_serde::from_slice(&self.data)
    }
}

/// A request from a peer, waiting for [`Node::respond`](crate::Node::respond).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Request {
    /// The asker.
    pub peer: PeerId,
    /// The channel it came on (the answer goes back on it).
    pub channel: Arc<str>,
    /// The asker's request id.
    pub id: u64,
    /// The room the asker said it belongs to.
    pub room: Option<RoomCode>,
    /// The bytes.
    pub data: Bytes,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The signaling server could not be reached or refused the session.
    #[error(transparent)]
    Signaling(#[from] ConnectError),
    /// The configuration is inconsistent.
    #[error("invalid node configuration: {0}")]
    Config(String),
}

/// Why a room operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// This node has no signaling server.
    #[error("this node has no signaling server")]
    NoSignaling,
    /// The server refused or the connection failed.
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// No link to this peer (not connected yet, or gone).
    #[error("no link to peer {0}")]
    UnknownPeer(PeerId),
    /// The channel was not declared on this node.
    #[error("no channel named {0:?}")]
    UnknownChannel(String),
    /// The link's send buffer is full (`try_send` only); wait or retry.
    #[error("send buffer full")]
    Full,
    /// The message exceeds the maximum message size.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The message size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The link ended.
    #[error("the link is closed")]
    Closed,
    /// The value could not be encoded.
    #[error("cannot encode the value: {0}")]
    Encode(String),
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestFailed {
    /// Sending the request failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The other side answered with an error.
    #[error("the peer answered with an error: {0}")]
    Remote(String),
    /// The link ended before the answer.
    #[error("the link closed before the answer")]
    Closed,
}

/// Why a bring-your-own-signaling call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The session description or candidate is invalid.
    #[error("{0}")]
    Invalid(String),
    /// No such link, or it is not waiting for this step.
    #[error("no link {0} waiting for this step")]
    UnknownLink(PeerId),
    /// The link could not be made (no UDP socket could be bound natively,
    /// the browser refused a peer connection).
    #[error("cannot make the link: {0}")]
    Rtc(String),
}

/// Why connecting failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The WebSocket could not be opened (server down, wrong URL, server full).
    #[error("cannot reach the signaling server: {0}")]
    Transport(String),
    /// The server refused the identity, auth token or version.
    #[error("server refused the session ({code:?}): {message}")]
    Refused {
        /// The error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// The server broke the protocol.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The server answered with an error.
    #[error("server refused ({code:?}): {message}")]
    Refused {
        /// The error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// The connection failed or closed.
    #[error("signaling connection lost: {0}")]
    Transport(String),
    /// The answer had an unexpected type.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// Something the signaling server sent (both backends read the same).
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A JSON message.
    Message(ServerMessage),
    /// Relayed data from another peer.
    Relay {
        /// The sender.
        from: PeerId,
        /// Its channel number.
        channel: u16,
        /// The payload.
        payload: Vec<u8>,
    },
    /// The server closed the connection.
    Closed {
        /// WebSocket close code (1006 when the connection just dropped).
        code: u16,
        /// The server's reason.
        reason: String,
    },
}
