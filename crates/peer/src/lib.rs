//! Switchboard: direct, encrypted peer-to-peer data channels over WebRTC.
//!
//! This crate is the peer side. So far it holds the two pieces every peer
//! needs before any WebRTC link: an [`Identity`] (an Ed25519 key whose hash
//! is the peer id) and a [`SignalingClient`] that proves that identity to a
//! Switchboard server and exchanges protocol messages with it.
//!
//! ```no_run
//! use switchboard::{ConnectOptions, Identity, SignalingClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let identity = Identity::generate();
//! let mut client = SignalingClient::connect("ws://127.0.0.1:7600/ws", &identity, ConnectOptions::default()).await?;
//! let room = client.create_room(None, None).await?;
//! let joined = client.join(room, None, None).await?;
//! println!("in room {} as {}, host {}", joined.room, client.peer_id(), joined.host);
//! # Ok(()) }
//! ```

mod channel;
mod framing;
mod identity;
pub mod link;
mod native;
mod node;
mod signaling;

pub use channel::{ChannelConfig, Compression};
pub use identity::{Identity, IdentityError};
pub use link::{DisconnectReason, LinkState, LinkStats, PathKind};
pub use native::net::HostCandidates;
pub use node::{
    Event, Message, Node, NodeBuilder, Request, RequestFailed, RoomError, SendError, SignalError, StartError, Topology,
};
pub use signaling::{ConnectError, ConnectOptions, Incoming, RequestError, SignalingClient};
pub use switchboard_proto as proto;
