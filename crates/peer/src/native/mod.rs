//! The native backend: str0m links driven by tokio over UDP sockets.

pub(crate) mod driver;
pub(crate) mod nat;
pub(crate) mod net;
