//! Trusted devices in the node core: the trust book, links to trusted
//! peers when they come online (and again after a failure, with backoff),
//! link requests from outside the node's rooms, and blocked peers.

use std::collections::BTreeMap;

use switchboard_proto::{PeerId, SignalData};
use web_time::Instant;

use super::{NodeCore, NodeOutput, Platform, topology_conn};
use crate::event::Event;
use crate::link::DisconnectReason;
use crate::node::backoff::Backoff;
use crate::trust::{self, Trust};

/// Link requests from peers outside this node's rooms that may wait for
/// the application at once; more are declined.
const MAX_ASKING: usize = 64;

/// A trusted peer's next link attempt after a failed one.
pub(super) struct Retry {
    pub(super) at: Instant,
    backoff: Backoff,
}

impl<P: Platform> NodeCore<P> {
    /// The trust book a store held, before the node connects.
    pub(crate) fn load_trust(&mut self, book: BTreeMap<PeerId, Trust>) {
        for (peer, trust) in &book {
            if *trust == Trust::Trusted {
                self.server.watch_later(*peer);
            }
        }
        self.trust = book;
    }

    /// The trust book.
    pub(crate) fn trust_book(&self) -> &BTreeMap<PeerId, Trust> {
        &self.trust
    }

    /// Sets (or with `None`, forgets) how far this node trusts `peer`.
    pub(crate) fn set_trust(&mut self, now: Instant, peer: PeerId, trust: Option<Trust>) {
        self.advance(now);
        if peer == self.id || self.trust.get(&peer).copied() == trust {
            return;
        }
        match trust {
            Some(t) => {
                if self.trust.len() >= trust::MAX_TRUST_ENTRIES && !self.trust.contains_key(&peer) {
                    return tracing::warn!(%peer, "trust book full; not recorded");
                }
                self.trust.insert(peer, t);
            }
            None => {
                self.trust.remove(&peer);
            }
        }
        self.out.push_back(NodeOutput::SaveTrust(trust::encode(&self.trust)));
        match trust {
            Some(Trust::Trusted) => {
                self.watch_now(peer);
                if self.present.contains(&peer) {
                    self.connect_trusted(peer);
                }
            }
            Some(Trust::Blocked) => {
                self.retries.remove(&peer);
                self.asking.remove(&peer);
                self.agreed.remove(&peer);
                self.asked.remove(&peer);
                if let Some(e) = self.links.get_mut(&peer) {
                    e.core.close(now, Some("blocked".into()));
                    self.drain_link(peer);
                }
            }
            None => {
                self.retries.remove(&peer);
            }
        }
    }

    pub(super) fn trusted(&self, peer: PeerId) -> bool {
        self.trust.get(&peer) == Some(&Trust::Trusted)
    }

    pub(super) fn blocked(&self, peer: PeerId) -> bool {
        self.trust.get(&peer) == Some(&Trust::Blocked)
    }

    /// Asks a trusted peer for a link, unless there is one or a request is out.
    fn connect_trusted(&mut self, peer: PeerId) {
        if self.links.contains_key(&peer) || self.asked.contains(&peer) || self.server.usable().is_err() {
            return;
        }
        tracing::debug!(%peer, "asking a trusted peer for a link");
        self.asked.insert(peer);
        self.server_signal(peer, topology_conn(), SignalData::Request { meta: None });
    }

    /// A watched peer's presence.
    pub(super) fn on_presence(&mut self, peer: PeerId, online: bool) {
        if online {
            self.present.insert(peer);
            if self.trusted(peer) {
                // A request sent while it was away may be lost: ask again.
                self.asked.remove(&peer);
                self.retries.remove(&peer);
                self.connect_trusted(peer);
            }
        } else {
            self.present.remove(&peer);
            self.retries.remove(&peer);
        }
        self.emit(Event::Presence { peer, online });
    }

    /// A link request. Trusted peers get a link at once, blocked ones
    /// nothing; others wait for the application (a room member's request
    /// always, a stranger's while fewer than [`MAX_ASKING`] wait).
    pub(super) fn on_link_request(&mut self, from: PeerId, meta: Option<serde_json::Value>) {
        if self.blocked(from) {
            return tracing::debug!(peer = %from, "link request from a blocked peer ignored");
        }
        if self.at_capacity() && !self.links.contains_key(&from) {
            let reason = Some("link limit reached".to_owned());
            self.server_signal(from, topology_conn(), SignalData::Reject { reason });
            return;
        }
        if self.trusted(from) {
            self.asking.remove(&from);
            self.asked.remove(&from);
            self.agreed.insert(from);
            self.server_signal(from, topology_conn(), SignalData::Accept);
            self.open_if_offerer(from);
            return;
        }
        if !self.shares_room(from) && !self.asking.contains(&from) && self.asking.len() >= MAX_ASKING {
            let reason = Some("too many link requests waiting".to_owned());
            self.server_signal(from, topology_conn(), SignalData::Reject { reason });
            return;
        }
        self.asking.insert(from);
        self.emit(Event::LinkRequested { peer: from, meta });
    }

    /// A link ended: a trusted peer that is still online is asked again
    /// after a backoff, unless the link ended on purpose.
    pub(super) fn link_ended(&mut self, peer: PeerId, reason: &DisconnectReason) {
        self.asked.remove(&peer);
        let on_purpose = matches!(
            reason,
            DisconnectReason::Closed | DisconnectReason::ClosedByPeer(_) | DisconnectReason::Unverified(_)
        );
        if on_purpose || !self.trusted(peer) || !self.present.contains(&peer) {
            return;
        }
        let retry = self.retries.entry(peer).or_insert(Retry { at: self.now, backoff: Backoff::new(u32::MAX) });
        let wait = retry.backoff.next_wait(&mut self.rng).unwrap_or_default();
        retry.at = self.now + wait.max(std::time::Duration::from_millis(200));
        tracing::debug!(%peer, ?wait, "the link to a trusted peer failed; asking again later");
    }

    /// A link connected: its peer's backoff starts over.
    pub(super) fn link_connected(&mut self, peer: PeerId) {
        self.retries.remove(&peer);
    }

    /// Asks the trusted peers whose retry is due.
    pub(super) fn retry_due(&mut self) {
        let now = self.now;
        let due: Vec<PeerId> = self.retries.iter().filter(|(_, r)| r.at <= now).map(|(p, _)| *p).collect();
        for peer in due {
            if let Some(r) = self.retries.get_mut(&peer) {
                // Until the next failure says otherwise.
                r.at = now + std::time::Duration::from_secs(3600);
            }
            self.connect_trusted(peer);
        }
    }

    pub(super) fn retry_timeout(&self) -> Option<Instant> {
        self.retries.values().map(|r| r.at).min()
    }
}
