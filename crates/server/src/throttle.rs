//! Budgets per client address that a new connection does not reset: failed
//! joins (guessing room codes or passwords) and password hashing. Sans-IO:
//! every call takes the time.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::rate::TokenBucket;

/// How fast one address, and the whole server, may fail to join rooms and
/// make the server hash passwords.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JoinThrottle {
    /// Failed joins (no such room, wrong or missing password) one address
    /// may make in a burst; beyond them, its joins are answered
    /// `rate_limited` before the room is looked at.
    pub failures_per_origin: u32,
    /// Seconds after which one failure of an address is forgiven.
    pub forgive_secs: u32,
    /// Failed joins per second the whole server takes, sustained; when they
    /// are spent, addresses with recent failures wait (others join as usual).
    pub failures_per_sec: u32,
    /// Failed joins the whole server takes in a burst.
    pub failures_burst: u32,
    /// Password hashes (creating or joining a room with a password) one
    /// address may ask for in a burst.
    pub hashes_per_origin: u32,
    /// Password hashes per second one address may ask for, sustained.
    pub hashes_per_sec: u32,
    /// Addresses remembered at once; beyond them, addresses whose budgets
    /// are whole are forgotten first, and a new address that still finds no
    /// room is refused as if its budget were spent.
    pub max_origins: usize,
}

impl Default for JoinThrottle {
    fn default() -> Self {
        Self {
            failures_per_origin: 10,
            forgive_secs: 6,
            failures_per_sec: 100,
            failures_burst: 1000,
            hashes_per_origin: 10,
            hashes_per_sec: 2,
            max_origins: 65_536,
        }
    }
}

struct Budget {
    failures: TokenBucket,
    hashes: TokenBucket,
}

/// The budgets of every address with recent failures or hashes, and the server's.
pub(crate) struct Throttle {
    config: JoinThrottle,
    origins: HashMap<String, Budget>,
    global: TokenBucket,
}

impl Throttle {
    pub(crate) fn new(config: JoinThrottle, now: Instant) -> Self {
        let global = TokenBucket::new(config.failures_per_sec, config.failures_burst, now);
        Self { config, origins: HashMap::new(), global }
    }

    /// Whether `origin` may try a join now.
    pub(crate) fn may_join(&mut self, origin: &str, now: Instant) -> bool {
        let global_spent = self.global.available(now) < 1.0;
        match self.origins.get_mut(origin) {
            None => !global_spent || self.origins.len() < self.config.max_origins,
            Some(b) => b.failures.available(now) >= 1.0 && (!global_spent || b.failures.is_full(now)),
        }
    }

    /// Counts a failed join of `origin`.
    pub(crate) fn failed(&mut self, origin: &str, now: Instant) {
        self.global.try_take(1.0, now);
        if let Some(b) = self.budget(origin, now) {
            b.failures.try_take(1.0, now);
        }
    }

    /// Takes one password hash from `origin`'s budget; false when it is spent.
    pub(crate) fn may_hash(&mut self, origin: &str, now: Instant) -> bool {
        self.budget(origin, now).is_some_and(|b| b.hashes.try_take(1.0, now))
    }

    /// The budget of `origin`, made when it has none and there is room.
    fn budget(&mut self, origin: &str, now: Instant) -> Option<&mut Budget> {
        if !self.origins.contains_key(origin) {
            if self.origins.len() >= self.config.max_origins {
                self.origins.retain(|_, b| !(b.failures.is_full(now) && b.hashes.is_full(now)));
            }
            if self.origins.len() >= self.config.max_origins {
                return None;
            }
            let c = &self.config;
            let budget = Budget {
                failures: TokenBucket::fractional(1.0 / f64::from(c.forgive_secs.max(1)), c.failures_per_origin, now),
                hashes: TokenBucket::new(c.hashes_per_sec, c.hashes_per_origin, now),
            };
            self.origins.insert(origin.to_owned(), budget);
        }
        self.origins.get_mut(origin)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn throttle(f: impl FnOnce(&mut JoinThrottle)) -> (Throttle, Instant) {
        let mut c = JoinThrottle::default();
        f(&mut c);
        let now = Instant::now();
        (Throttle::new(c, now), now)
    }

    #[test]
    fn an_address_spends_its_failures_and_earns_them_back_slowly() {
        let (mut t, t0) = throttle(|c| (c.failures_per_origin, c.forgive_secs) = (3, 10));
        for _ in 0..3 {
            assert!(t.may_join("198.51.100.1", t0));
            t.failed("198.51.100.1", t0);
        }
        assert!(!t.may_join("198.51.100.1", t0), "three failures spent");
        assert!(t.may_join("198.51.100.2", t0), "another address has its own budget");
        assert!(!t.may_join("198.51.100.1", t0 + Duration::from_secs(9)));
        assert!(t.may_join("198.51.100.1", t0 + Duration::from_secs(10)), "one failure forgiven after 10 s");
    }

    #[test]
    fn when_the_server_budget_is_spent_only_addresses_with_failures_wait() {
        let (mut t, t0) = throttle(|c| (c.failures_per_sec, c.failures_burst) = (1, 4));
        for n in 0..4 {
            t.failed(&format!("203.0.113.{n}"), t0);
        }
        assert!(!t.may_join("203.0.113.0", t0), "an address that failed waits for the server's budget");
        assert!(t.may_join("192.0.2.9", t0), "an address without failures joins as usual");
        assert!(t.may_join("203.0.113.0", t0 + Duration::from_secs(1)), "the server's budget refills");
    }

    #[test]
    fn hashing_is_budgeted_per_address() {
        let (mut t, t0) = throttle(|c| (c.hashes_per_origin, c.hashes_per_sec) = (2, 1));
        assert!(t.may_hash("a", t0) && t.may_hash("a", t0));
        assert!(!t.may_hash("a", t0), "two hashes in a burst");
        assert!(t.may_hash("b", t0));
        assert!(t.may_hash("a", t0 + Duration::from_secs(1)));
    }

    #[test]
    fn addresses_are_bounded_and_whole_budgets_are_forgotten_first() {
        let (mut t, t0) = throttle(|c| (c.max_origins, c.forgive_secs, c.failures_per_sec) = (2, 1, 1000));
        t.failed("a", t0);
        t.failed("b", t0);
        t.failed("c", t0);
        assert_eq!(t.origins.len(), 2, "no third address while both budgets are in use");
        let later = t0 + Duration::from_secs(2);
        t.failed("c", later);
        assert!(t.origins.contains_key("c"), "whole budgets made room");
        assert!(t.origins.len() <= 2);
    }
}
