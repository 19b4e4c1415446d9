//! Beacons along a lost path, sans-IO.
//!
//! A new WebRTC session after a lost path needs an offer and an answer
//! through the signaling server, and the signaling connection of the side
//! whose network went away may sit in TCP retransmission backoff for
//! seconds after the network is back. So while a link has no WebRTC path,
//! each side sends a small beacon every [`INTERVAL`] from the local address
//! of the last pair that worked to the remote one (and to wherever a beacon
//! last came from). The first beacon heard says the network between the two
//! peers works again: the link retries its session at once and the node
//! checks that its signaling connection still answers.
//!
//! A beacon is [`MAGIC`]: its first byte (251) is outside every range that
//! RFC 7983 assigns (STUN, ZRTP, DTLS, TURN channels, RTP), so nothing
//! else on the socket mistakes it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Pause between two beacons.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// The whole beacon datagram.
pub(crate) const MAGIC: &[u8] = b"\xfbswitchboard beacon 1";

/// Whether `data` is a beacon.
pub(crate) fn is_beacon(data: &[u8]) -> bool {
    data == MAGIC
}

/// Where and when the next beacons go.
#[derive(Debug)]
pub(crate) struct Beacons {
    local: SocketAddr,
    remotes: Vec<SocketAddr>,
    next: Instant,
}

impl Beacons {
    /// Beacons from `local` to `remote`, the first at `now`.
    pub(crate) fn new(now: Instant, local: SocketAddr, remote: SocketAddr) -> Self {
        Beacons { local, remotes: vec![remote], next: now }
    }

    /// A beacon came from `source`: later beacons go there too (the other
    /// side's address may have changed), at most one more address.
    pub(crate) fn heard_from(&mut self, source: SocketAddr) {
        if !self.remotes.contains(&source) {
            self.remotes.truncate(1);
            self.remotes.push(source);
        }
    }

    /// The local address went away with a network switch: beacons leave
    /// from `to` instead.
    pub(crate) fn rebind(&mut self, gone: &[SocketAddr], to: SocketAddr) {
        if gone.contains(&self.local) {
            self.local = to;
        }
    }

    /// The datagrams due at `now`, as (source, destination) pairs.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<(SocketAddr, SocketAddr)> {
        if now < self.next {
            return Vec::new();
        }
        self.next = now + INTERVAL;
        self.remotes.iter().map(|r| (self.local, *r)).collect()
    }

    /// When the next beacons are due.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn beacons_go_every_interval_to_the_last_pair_and_to_a_new_source() {
        let t0 = Instant::now();
        let (local, remote) = (addr("10.0.0.1:4000"), addr("203.0.113.7:5000"));
        let mut b = Beacons::new(t0, local, remote);
        assert_eq!(b.due(t0), [(local, remote)]);
        assert!(b.due(t0 + INTERVAL / 2).is_empty(), "a second beacon before the interval");
        assert_eq!(b.poll_timeout(), t0 + INTERVAL);
        let moved = addr("203.0.113.9:6000");
        b.heard_from(moved);
        b.heard_from(moved);
        assert_eq!(b.due(t0 + INTERVAL), [(local, remote), (local, moved)]);
        let again = addr("203.0.113.10:6000");
        b.heard_from(again);
        assert_eq!(b.due(t0 + INTERVAL * 2), [(local, remote), (local, again)]);
        let switched = addr("10.0.0.9:4100");
        b.rebind(&[addr("10.0.0.2:4000")], switched);
        assert_eq!(b.due(t0 + INTERVAL * 3)[0].0, local, "rebound although its address stayed");
        b.rebind(&[local], switched);
        assert_eq!(b.due(t0 + INTERVAL * 4), [(switched, remote), (switched, again)]);
    }

    #[test]
    fn only_the_exact_magic_is_a_beacon() {
        assert!(is_beacon(MAGIC));
        assert!(!is_beacon(&MAGIC[..MAGIC.len() - 1]));
        assert!(!is_beacon(&[0, 1, 0, 0]));
        assert!(!(0..4).contains(&MAGIC[0]) && !(16..80).contains(&MAGIC[0]) && !(128..192).contains(&MAGIC[0]));
    }
}
