//! Durable storage behind one trait. The mailbox lives here; SQLite is the
//! single-node default.

mod sqlite;

pub use sqlite::SqliteStore;
use switchboard_proto::PeerId;

/// A stored mail message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMail {
    /// Id the recipient acknowledges.
    pub id: u64,
    /// Sender.
    pub from: PeerId,
    /// The body, serialized JSON.
    pub body: String,
    /// When it was accepted, Unix milliseconds.
    pub sent_at: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The recipient's mailbox holds its maximum.
    #[error("the recipient's mailbox is full")]
    MailboxFull,
    /// The storage backend failed.
    #[error("storage failed: {0}")]
    Backend(String),
}

/// Mailbox storage. Calls block; the server runs them off the async threads.
pub trait MailStore: Send + Sync + 'static {
    /// Stores a message unless `to` already has `max_per_peer` waiting; returns its id.
    /// Returns only once the message is durable.
    fn put(
        &self,
        from: PeerId,
        to: PeerId,
        body: &str,
        now_ms: u64,
        ttl_ms: u64,
        max_per_peer: u32,
    ) -> Result<u64, StoreError>;
    /// A cheap, non-blocking check: false only if `to` certainly has no mail
    /// waiting, so a session can open without a storage round trip.
    fn may_have_mail(&self, to: PeerId) -> bool {
        let _ = to;
        true
    }
    /// Unexpired messages for `to` with ids above `after`, oldest first, at most `limit`.
    fn pending(&self, to: PeerId, now_ms: u64, after: u64, limit: usize) -> Result<Vec<StoredMail>, StoreError>;
    /// Deletes acknowledged messages addressed to `to`; returns how many were deleted.
    fn ack(&self, to: PeerId, ids: &[u64]) -> Result<usize, StoreError>;
    /// Deletes expired messages; returns how many.
    fn purge_expired(&self, now_ms: u64) -> Result<usize, StoreError>;
    /// Messages waiting, all recipients.
    fn depth(&self) -> Result<u64, StoreError>;
}
