//! Trusted devices: the peers a node links with by itself, and the ones it
//! never links with. The node keeps them ([`Node::set_trust`]) and, with a
//! store ([`NodeBuilder::trust_store`]), saves them: natively a JSON file,
//! in the browser an IndexedDB entry.
//!
//! [`Node::set_trust`]: crate::Node::set_trust
//! [`NodeBuilder::trust_store`]: crate::NodeBuilder::trust_store

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchboard_proto::PeerId;

/// Most peers a trust store holds.
pub const MAX_TRUST_ENTRIES: usize = 10_000;
/// Largest trust store read, bytes.
pub(crate) const MAX_TRUST_BYTES: usize = 1 << 20;

/// How far a node trusts a peer. A peer the node has no word on is
/// neither: a link with it needs a shared room or the application's
/// [`accept`](crate::Node::accept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Trust {
    /// Linked with by itself: the node watches its presence, asks it for a
    /// link when it comes online (and again after a link failed, with
    /// backoff), and accepts its link requests without asking the
    /// application.
    Trusted,
    /// Never linked with: its link requests and offers are refused, a link
    /// to it closes, and shared rooms do not link it.
    Blocked,
}

/// Why a trust store could not be read or written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustStoreError {
    /// The file or IndexedDB could not be read or written.
    #[error("trust store: {0}")]
    Io(String),
    /// What it holds is not a trust store.
    #[error("trust store: not a trust store: {0}")]
    Format(String),
    /// It holds more than [`MAX_TRUST_ENTRIES`] peers or 1 MiB.
    #[error("trust store: larger than {MAX_TRUST_ENTRIES} peers or 1 MiB")]
    TooLarge,
}

/// The stored form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    v: u32,
    peers: BTreeMap<PeerId, Trust>,
}

/// Reads a trust store's text.
pub(crate) fn decode(text: &str) -> Result<BTreeMap<PeerId, Trust>, TrustStoreError> {
    if text.len() > MAX_TRUST_BYTES {
        return Err(TrustStoreError::TooLarge);
    }
    let stored: Stored = serde_json::from_str(text).map_err(|e| TrustStoreError::Format(e.to_string()))?;
    if stored.v != 1 {
        return Err(TrustStoreError::Format(format!("version {} (this library reads 1)", stored.v)));
    }
    if stored.peers.len() > MAX_TRUST_ENTRIES {
        return Err(TrustStoreError::TooLarge);
    }
    Ok(stored.peers)
}

/// Writes a trust store's text.
pub(crate) fn encode(peers: &BTreeMap<PeerId, Trust>) -> String {
    serde_json::to_string(&Stored { v: 1, peers: peers.clone() }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_reads_back_what_was_written_and_refuses_anything_else() {
        let (a, b) = (PeerId::from_bytes([1; 16]), PeerId::from_bytes([2; 16]));
        let peers = BTreeMap::from([(a, Trust::Trusted), (b, Trust::Blocked)]);
        let text = encode(&peers);
        assert_eq!(decode(&text), Ok(peers));
        assert!(text.contains("\"trusted\"") && text.contains("\"blocked\""), "{text}");
        for bad in [
            "",
            "[]",
            "{\"v\":2,\"peers\":{}}",
            "{\"v\":1,\"peers\":{\"nothex\":\"trusted\"}}",
            "{\"v\":1,\"peers\":{\"01010101010101010101010101010101\":\"maybe\"}}",
            "{\"v\":1,\"peers\":{},\"x\":1}",
        ] {
            assert!(matches!(decode(bad), Err(TrustStoreError::Format(_))), "{bad}");
        }
        assert_eq!(decode(&" ".repeat(MAX_TRUST_BYTES + 1)), Err(TrustStoreError::TooLarge));
        let many: BTreeMap<PeerId, Trust> = (0..=MAX_TRUST_ENTRIES as u32)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                (PeerId::from_bytes(id), Trust::Trusted)
            })
            .collect();
        assert_eq!(decode(&encode(&many)), Err(TrustStoreError::TooLarge));
    }
}
