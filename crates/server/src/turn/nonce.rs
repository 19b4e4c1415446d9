//! Nonces in front of the `turn` crate.
//!
//! The crate keeps every nonce it hands out and forgets one only when a
//! request brings it back after its hour, so requests from spoofed sources,
//! each answered with a fresh nonce, would grow its memory without bound.
//! The front therefore answers those requests itself, with a nonce the crate
//! minted recently (learned from the crate's own answers: its nonces are not
//! bound to a client), and lets a request reach the crate's nonce check only
//! with a nonce the crate knows and still holds valid. The crate then mints
//! about one nonce per [`ROTATE`], whatever arrives.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A nonce is handed out until it is this old; then the next request that
/// needs one is let through for the crate to mint a new one.
pub(crate) const ROTATE: Duration = Duration::from_secs(600);
/// A nonce is accepted until it is this old (the crate's own limit is an hour).
const VALID: Duration = Duration::from_secs(3000);
/// While a new nonce is being minted, one request per this gap goes through.
const MINT_GAP: Duration = Duration::from_secs(1);
/// Nonces remembered at once; only the crate's own (about one per `ROTATE`) are learned.
const MAX_KNOWN: usize = 64;

/// What to do with a TURN request, as far as its nonce goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    /// Hand it to the crate.
    Pass,
    /// Answer it with this nonce (401 Unauthorized or 438 Stale Nonce).
    Answer(String),
    /// Drop it: a nonce is being minted; the client retransmits.
    Drop,
}

/// The crate's recent nonces, newest last.
#[derive(Debug, Default)]
pub(crate) struct NoncePool {
    known: VecDeque<(String, Instant)>,
    last_mint: Option<Instant>,
}

impl NoncePool {
    /// Records a nonce the crate sent (in a 401 or 438 answer).
    pub(crate) fn learn(&mut self, nonce: &str, now: Instant) {
        self.known.retain(|(_, at)| now.saturating_duration_since(*at) < VALID);
        if !self.known.iter().any(|(n, _)| n == nonce) {
            if self.known.len() >= MAX_KNOWN {
                self.known.pop_front();
            }
            self.known.push_back((nonce.to_owned(), now));
        }
    }

    /// A request without credentials (the first Allocate).
    pub(crate) fn unauthenticated(&mut self, now: Instant) -> NonceCheck {
        match self.current(now) {
            Some(nonce) => NonceCheck::Answer(nonce.to_owned()),
            None => self.mint(now),
        }
    }

    /// A request with credentials and `nonce`.
    pub(crate) fn authenticated(&mut self, nonce: Option<&str>, now: Instant) -> NonceCheck {
        let valid = nonce
            .is_some_and(|n| self.known.iter().any(|(k, at)| k == n && now.saturating_duration_since(*at) < VALID));
        if valid {
            return NonceCheck::Pass;
        }
        self.unauthenticated(now)
    }

    fn current(&self, now: Instant) -> Option<&str> {
        let (nonce, at) = self.known.back()?;
        (now.saturating_duration_since(*at) < ROTATE).then_some(nonce.as_str())
    }

    fn mint(&mut self, now: Instant) -> NonceCheck {
        if self.last_mint.is_some_and(|t| now.saturating_duration_since(t) < MINT_GAP) {
            return NonceCheck::Drop;
        }
        self.last_mint = Some(now);
        NonceCheck::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attack: spoofed unauthenticated Allocates, or requests with made-up
    /// nonces, each left a nonce in the crate for ever. Now one request goes
    /// through per rotation; the rest are answered with the crate's nonce.
    #[test]
    fn the_crate_mints_about_one_nonce_per_rotation_whatever_arrives() {
        let start = Instant::now();
        let mut pool = NoncePool::default();
        let mut passed = 0;
        for ms in 0..120_000u64 {
            let now = start + Duration::from_millis(ms);
            let check = if ms % 2 == 0 { pool.unauthenticated(now) } else { pool.authenticated(Some("made-up"), now) };
            if check == NonceCheck::Pass {
                passed += 1;
                // The crate answers with a fresh nonce, which the front learns.
                pool.learn(&format!("n{ms}"), now);
            }
        }
        assert_eq!(passed, 1, "one nonce in two minutes of requests");
        let later = start + ROTATE + Duration::from_secs(1);
        assert_eq!(pool.unauthenticated(later), NonceCheck::Pass, "a new one after the rotation");
        assert_eq!(pool.unauthenticated(later), NonceCheck::Drop, "and one only, until it is learned");
    }

    #[test]
    fn known_nonces_pass_until_they_are_too_old() {
        let start = Instant::now();
        let mut pool = NoncePool::default();
        assert_eq!(pool.unauthenticated(start), NonceCheck::Pass);
        pool.learn("a", start);
        assert_eq!(pool.unauthenticated(start), NonceCheck::Answer("a".into()));
        assert_eq!(pool.authenticated(Some("a"), start + ROTATE * 2), NonceCheck::Pass, "still valid");
        assert_eq!(pool.authenticated(None, start), NonceCheck::Answer("a".into()));
        let old = start + VALID;
        assert_eq!(pool.authenticated(Some("a"), old), NonceCheck::Pass, "a mint for the stale one");
        pool.learn("b", old);
        assert_eq!(pool.authenticated(Some("a"), old), NonceCheck::Answer("b".into()), "stale: the new one");
        assert_eq!(pool.authenticated(Some("b"), old), NonceCheck::Pass);
    }
}
