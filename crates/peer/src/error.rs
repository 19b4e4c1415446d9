//! The errors of a [`Node`](crate::Node)'s operations: one enum per kind
//! of call, each variant saying what happened.

use std::time::Duration;

use switchboard_proto::{ErrorCode, PeerId};

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
    /// The trust store could not be read.
    #[error(transparent)]
    TrustStore(#[from] crate::trust::TrustStoreError),
}

/// Why a call to the signaling server failed: rooms, link requests,
/// presence and mail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// This node has no signaling server.
    #[error("this node has no signaling server")]
    NoSignaling,
    /// The server refused or the connection failed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The value could not be encoded (a mail body).
    #[error("cannot encode the value: {0}")]
    Encode(String),
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
    /// The channel closed (raw links: the other side closed it, or it could
    /// not open); what was queued on it was dropped.
    #[error("channel {0:?} is closed")]
    ChannelClosed(String),
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

/// Why a channel could not be opened or closed on a link
/// ([`Node::open_channel`](crate::Node::open_channel),
/// [`Node::close_channel`](crate::Node::close_channel)).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelError {
    /// No link to this peer.
    #[error("no link to peer {0}")]
    UnknownPeer(PeerId),
    /// The link is framed: its channels are the declared ones, opened on
    /// both sides alike. Channels open and close at run time on raw links only.
    #[error("channels open and close at run time on raw links only")]
    NotRaw,
    /// A channel of this label is open or opening on the link.
    #[error("a channel named {0:?} is open on this link")]
    LabelTaken(String),
    /// No open channel of this label on the link.
    #[error("no open channel named {0:?}")]
    UnknownChannel(String),
    /// The link has as many channels as allowed, or the label is too long.
    #[error("at most {channels} channels per link, with labels of at most {label} bytes")]
    Limit {
        /// Most channels per link.
        channels: usize,
        /// Longest label, bytes.
        label: usize,
    },
    /// The link ended.
    #[error("the link is closed")]
    Closed,
    /// The WebRTC stack refused.
    #[error("the WebRTC stack refused the channel: {0}")]
    Stack(String),
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
    /// The description does not prove the peer expected (its identity
    /// proof is missing or does not hold for its DTLS fingerprints); the
    /// link, if there was one, ends.
    #[error("the description does not prove the peer expected: {0}")]
    Unverified(String),
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
