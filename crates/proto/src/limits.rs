//! The limits a server enforces, announced to every client in `welcome`.

use serde::{Deserialize, Serialize};

/// Largest WebSocket frame (text or binary) the protocol allows by default.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 64 * 1024;

/// Limits announced in `welcome`. Every field has a default; servers may lower or raise them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest frame, text or binary, in bytes.
    pub max_frame_bytes: u32,
    /// Rooms one peer may be in at once.
    pub max_rooms_per_peer: u32,
    /// Members one room may hold.
    pub max_peers_per_room: u32,
    /// Frames per second a connection may send, sustained.
    pub rate_per_sec: u32,
    /// Frames a connection may send in a burst above the sustained rate.
    pub rate_burst: u32,
    /// Relay payload bytes per second a connection may send, sustained.
    pub relay_bytes_per_sec: u32,
    /// Largest mail body, serialized, in bytes.
    pub max_mail_bytes: u32,
    /// How long mail waits for its recipient, in seconds.
    pub mail_ttl_secs: u64,
    /// How long a signal for an absent peer waits before `expired`, in milliseconds.
    pub signal_ttl_ms: u64,
    /// How long a dropped session can be resumed, in seconds.
    pub resume_window_secs: u64,
    /// A connection that sends nothing for this long is closed, in seconds.
    pub idle_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_rooms_per_peer: 16,
            max_peers_per_room: 64,
            rate_per_sec: 200,
            rate_burst: 400,
            relay_bytes_per_sec: 4 * 1024 * 1024,
            max_mail_bytes: 32 * 1024,
            mail_ttl_secs: 7 * 24 * 3600,
            signal_ttl_ms: 30_000,
            resume_window_secs: 60,
            idle_timeout_secs: 30,
        }
    }
}
