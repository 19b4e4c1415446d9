//! What a [`Node`](crate::Node) reports.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchboard_proto::{PeerId, RoomCode, ServerMessage};

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
    /// A channel opened: one the other side opened in band (DCEP), or, on
    /// raw links, any channel, this side's own included (a pre-negotiated
    /// one before [`Event::PeerConnected`]).
    ChannelOpened {
        /// The peer.
        peer: PeerId,
        /// The channel's label.
        channel: String,
    },
    /// A channel of a raw link closed: either side closed it, or it did not
    /// open within the connect timeout. Messages queued on it are dropped
    /// and sends on it fail with
    /// [`SendError::ChannelClosed`](crate::SendError::ChannelClosed); the
    /// link itself stays up.
    ChannelClosed {
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
    /// A link made with the bring-your-own-signaling calls has all its
    /// local candidates (natively: every STUN and TURN server answered or
    /// gave up, 5 s at most; in the browser: its `icecandidate` with no
    /// candidate). `description` is this side's offer or answer with every
    /// candidate and `a=end-of-candidates`: send it instead of the first one
    /// to a peer that does not trickle.
    GatheringComplete {
        /// The link.
        peer: PeerId,
        /// The complete offer or answer.
        description: String,
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
    /// A watched peer ([`Node::watch`](crate::Node::watch)) is online (has
    /// a session with the server) or not: at once for each peer watched,
    /// then on every change. Presence is mutual: a peer shows online only
    /// while it watches this node too (and has the same tenant).
    Presence {
        /// The peer.
        peer: PeerId,
        /// Whether it is online.
        online: bool,
    },
    /// Mail for this node ([`Node::mail`](crate::Node::mail)), stored by the
    /// server while this node was away or delivered at once. The server
    /// sends it again on every connection until
    /// [`Node::ack_mail`](crate::Node::ack_mail) acknowledges it; this node
    /// reports each id once.
    Mail(Mail),
    /// A room's host changed: the host left, and `host` is now the oldest
    /// member.
    HostChanged {
        /// The room.
        room: RoomCode,
        /// The new host.
        host: PeerId,
    },
}

/// Mail from a peer.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Mail {
    /// Its id, to acknowledge with [`Node::ack_mail`](crate::Node::ack_mail).
    pub id: u64,
    /// The sender (proven to the server by its identity key).
    pub from: PeerId,
    /// The body, as sent.
    pub body: Value,
    /// When the server took it, Unix milliseconds.
    pub sent_at: u64,
}

impl Mail {
    /// Decodes the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.body)
    }
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
    /// The sender sent it as text ([`Node::send_text`](crate::Node::send_text),
    /// or a string from a browser's or another stack's data channel):
    /// [`Message::text`] reads it.
    pub is_text: bool,
}

impl Message {
    /// The message as a string, if it was sent as text and is UTF-8.
    pub fn text(&self) -> Option<&str> {
        if self.is_text { std::str::from_utf8(&self.data).ok() } else { None }
    }

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
