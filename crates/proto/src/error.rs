//! Error codes carried by `error` frames, and the errors of decoding and validation.

use serde::{Deserialize, Serialize};

/// The `code` of an `error` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON, has an unknown `type`, or a field is missing or invalid.
    BadRequest,
    /// The identity proof or auth token is missing, wrong or expired, or `hello` has not been sent.
    Unauthorized,
    /// The peer is known but may not do this (wrong room password, room not in its token).
    Forbidden,
    /// The room (or mail) does not exist.
    NotFound,
    /// The room has reached its peer limit.
    RoomFull,
    /// The peer sends faster than its rate limit allows.
    RateLimited,
    /// The frame or a field in it is larger than the limits allow.
    TooLarge,
    /// `hello` asked for a protocol major version the server does not speak.
    UnsupportedVersion,
    /// A per-peer or server-wide limit other than size or rate was reached
    /// (rooms per peer, mailbox depth, watched peers).
    LimitExceeded,
    /// The server failed; the request may be retried.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [Self; 10] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::RoomFull,
        Self::RateLimited,
        Self::TooLarge,
        Self::UnsupportedVersion,
        Self::LimitExceeded,
        Self::Internal,
    ];

    /// The wire name (`bad_request`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RoomFull => "room_full",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::UnsupportedVersion => "unsupported_version",
            Self::LimitExceeded => "limit_exceeded",
            Self::Internal => "internal",
        }
    }
}

/// A field or identifier that breaks the protocol's rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub(crate) String);

impl ValidationError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Why a frame could not be decoded into a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame, or a field in it, is larger than its limit.
    #[error("{what} is {size} bytes, the limit is {max}")]
    TooLarge {
        /// What is too large ("frame", "meta", "mail body").
        what: String,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is not a JSON object with a string `type`.
    #[error("frame is not a JSON object with a \"type\" field: {0}")]
    Malformed(String),
    /// The `type` is not one this protocol version knows.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// The `type` is known but a field is missing or has the wrong shape.
    #[error("invalid {kind} message: {reason}")]
    InvalidFields {
        /// The message type.
        kind: String,
        /// What is wrong.
        reason: String,
    },
    /// The message parsed but breaks a rule (size of a field, an id's format).
    #[error("{0}")]
    Invalid(#[from] ValidationError),
}

impl DecodeError {
    /// The error code a server answers this with.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::Invalid(_) | Self::Malformed(_) | Self::UnknownType(_) | Self::InvalidFields { .. } => {
                ErrorCode::BadRequest
            }
        }
    }
}
