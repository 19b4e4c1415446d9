//! The Switchboard signaling protocol, version 1: wire types, limits and validation.
//!
//! This crate does no I/O. The server, the Rust peer and the browser peer all
//! speak through these types; `docs/protocol.md` in the repository is the
//! prose contract they implement.
//!
//! - [`ClientMessage`]: what a client sends (JSON text frames, `{"type": …}`).
//! - [`ServerMessage`]: what the server sends.
//! - [`RelayFrame`]: binary frames carrying relayed channel data.
//! - [`PeerId`], [`RoomCode`], [`ConnId`]: identifiers with their formats.
//! - [`verify_hello`]: the identity proof, an Ed25519 signature over the challenge.
//!
//! ```
//! use switchboard_proto::{ClientMessage, Limits, Ping};
//!
//! let frame = ClientMessage::Ping(Ping { id: Some(7) }).encode();
//! assert_eq!(frame, r#"{"type":"ping","id":7}"#);
//! let back = ClientMessage::decode(&frame, &Limits::default()).expect("valid frame");
//! assert_eq!(back.request_id(), Some(7));
//! ```

mod error;
mod identity;
mod ids;
mod limits;
mod messages;
mod relay;

pub use error::{DecodeError, ErrorCode, ValidationError};
pub use identity::{
    HELLO_CONTEXT, IdentityError, decode_public_key, encode_b64, hello_payload, server_name, split_host_port,
    verify_hello, verify_signed,
};
pub use ids::{ConnId, PeerId, RoomCode};
pub use limits::{DEFAULT_MAX_FRAME_BYTES, Limits};
pub use messages::{
    AckMail, ClientMessage, CreateRoom, DecodeFailure, Hello, IceServer, Join, JoinedRoom, Leave, MAX_ACK_IDS,
    MAX_META_BYTES, MAX_PASSWORD_LEN, MAX_TOKEN_LEN, MAX_WATCH_PEERS, MailRequest, PeerInfo, Ping, RequestId,
    SIGNAL_KINDS, ServerMessage, SignalData, SignalPayload, SignalRequest, Watch, Welcome,
};
pub use relay::{RELAY_HEADER_LEN, RelayFrame, RelayFrameTooShort, rewrite_peer};

/// The protocol major version this crate implements.
pub const PROTOCOL_VERSION: u32 = 1;
