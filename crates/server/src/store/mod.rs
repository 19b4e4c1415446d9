//! Durable storage behind one trait. The mailbox lives here; SQLite is the
//! single-node default.

mod sqlite;

use serde::{Deserialize, Serialize};
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

/// A message to store.
#[derive(Clone, Copy, Debug)]
pub struct NewMail<'a> {
    /// Sender.
    pub from: PeerId,
    /// Recipient.
    pub to: PeerId,
    /// Where the sender connected from (its IP address, an IPv6 address cut
    /// to its /64), so that one address cannot take the whole store.
    pub origin: &'a str,
    /// The sender's tenant (`""` without one): the message lands in the
    /// recipient's mailbox of that tenant, which the recipient reads only
    /// when it connects in the same tenant.
    pub tenant: &'a str,
    /// The body, serialized JSON.
    pub body: &'a str,
    /// Now, Unix milliseconds.
    pub now_ms: u64,
    /// How long the message waits for its recipient, milliseconds.
    pub ttl_ms: u64,
}

/// How much undelivered mail the store keeps, by recipient, by sender, by
/// origin address and in all. Counts and bytes of a message stay until the
/// recipient acknowledges it or it expires and is purged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailQuota {
    /// Messages waiting for one recipient (unexpired ones; expired ones
    /// count until the purge that runs once a minute).
    pub recipient_mails: u64,
    /// Body bytes waiting for one recipient.
    pub recipient_bytes: u64,
    /// Undelivered messages one sender may have stored, to all recipients.
    pub sender_mails: u64,
    /// Undelivered body bytes one sender may have stored.
    pub sender_bytes: u64,
    /// Undelivered messages stored from one address (IPv6: one /64), all senders.
    pub origin_mails: u64,
    /// Undelivered body bytes stored from one address.
    pub origin_bytes: u64,
    /// Messages in the whole store.
    pub total_mails: u64,
    /// Body bytes in the whole store.
    pub total_bytes: u64,
}

impl Default for MailQuota {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        Self {
            recipient_mails: 1000,
            recipient_bytes: 8 * MIB,
            sender_mails: 256,
            sender_bytes: 2 * MIB,
            origin_mails: 2048,
            origin_bytes: 16 * MIB,
            total_mails: 1_000_000,
            total_bytes: 1024 * MIB,
        }
    }
}

/// Which mail quota a message would break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaKind {
    /// The recipient's mailbox is full.
    Recipient,
    /// The sender has too much undelivered mail.
    Sender,
    /// The sender's address has too much undelivered mail.
    Origin,
    /// The store is full.
    Total,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Storing the message would break a quota.
    #[error("{}", match .0 {
        QuotaKind::Recipient => "the recipient's mailbox is full",
        QuotaKind::Sender => "you have too much undelivered mail; wait until recipients take it",
        QuotaKind::Origin => "too much undelivered mail comes from your address",
        QuotaKind::Total => "the server's mail storage is full",
    })]
    Quota(QuotaKind),
    /// The storage backend failed.
    #[error("storage failed: {0}")]
    Backend(String),
}

/// Mailbox storage. Calls block; the server runs them off the async threads.
pub trait MailStore: Send + Sync + 'static {
    /// Stores a message unless it would break a quota; returns its id.
    /// Returns only once the message is durable.
    fn put(&self, mail: NewMail<'_>, quota: &MailQuota) -> Result<u64, StoreError>;
    /// A cheap, non-blocking check: false only if `to` certainly has no mail
    /// waiting in its mailbox of `tenant`, so a session can open without a
    /// storage round trip.
    fn may_have_mail(&self, to: PeerId, tenant: &str) -> bool {
        let _ = (to, tenant);
        true
    }
    /// Unexpired messages for `to` in its mailbox of `tenant` with ids above
    /// `after`, oldest first: at most `limit` of them, and no more than
    /// `max_bytes` of bodies (but at least one message when one is waiting).
    fn pending(
        &self,
        to: PeerId,
        tenant: &str,
        now_ms: u64,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredMail>, StoreError>;
    /// Deletes acknowledged messages in `to`'s mailbox of `tenant`; returns
    /// how many were deleted.
    fn ack(&self, to: PeerId, tenant: &str, ids: &[u64]) -> Result<usize, StoreError>;
    /// Deletes expired messages; returns how many.
    fn purge_expired(&self, now_ms: u64) -> Result<usize, StoreError>;
    /// Messages waiting, all recipients. Cheap: `/metrics` calls it on a
    /// runtime thread.
    fn depth(&self) -> Result<u64, StoreError>;
}
