//! Path liveness and the pacing of ICE restarts, sans-IO.
//!
//! A connected path carries something at least every second (STUN
//! keep-alives every second, pings on framed links), so silence longer than
//! `dead_after` means the path is gone, whatever ICE still believes. While a
//! link is down, restarts are tried with a doubling pause between attempts.

use std::time::{Duration, Instant};

/// Pause before the second restart attempt; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest pause between two restart attempts.
const MAX_RETRY: Duration = Duration::from_secs(4);

/// When the path was last heard from, and when to try the next restart.
#[derive(Debug)]
pub(crate) struct Recovery {
    dead_after: Duration,
    last_heard: Instant,
    /// While the path is down: when the next restart attempt is due.
    next_try: Option<Instant>,
    pause: Duration,
}

impl Recovery {
    /// A path that counts as heard from at `now`.
    pub(crate) fn new(now: Instant, dead_after: Duration) -> Self {
        Recovery { dead_after, last_heard: now, next_try: None, pause: FIRST_RETRY }
    }

    /// Something arrived from the other side.
    pub(crate) fn heard(&mut self, now: Instant) {
        if now > self.last_heard {
            self.last_heard = now;
        }
    }

    /// When the path was last heard from.
    pub(crate) fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// The next attempt is due at once (the path showed signs of life).
    pub(crate) fn retry_now(&mut self, now: Instant) {
        if self.next_try.is_some_and(|at| at > now) {
            self.next_try = Some(now);
        }
    }

    /// Whether the path has been silent for `dead_after`.
    pub(crate) fn is_silent(&self, now: Instant) -> bool {
        now >= self.last_heard + self.dead_after
    }

    /// The path is down: the first restart attempt is due at once.
    pub(crate) fn lost(&mut self, now: Instant) {
        self.next_try = Some(now);
        self.pause = FIRST_RETRY;
    }

    /// The path is back.
    pub(crate) fn recovered(&mut self, now: Instant) {
        self.next_try = None;
        self.heard(now);
    }

    /// Whether a restart attempt is due at `now`; if so, schedules the next.
    pub(crate) fn attempt_due(&mut self, now: Instant) -> bool {
        match self.next_try {
            Some(at) if now >= at => {
                self.next_try = Some(now + self.pause);
                self.pause = (self.pause * 2).min(MAX_RETRY);
                true
            }
            _ => false,
        }
    }

    /// When to look again: the silence deadline of a live path, or the next attempt.
    pub(crate) fn poll_timeout(&self, live: bool) -> Option<Instant> {
        if live { Some(self.last_heard + self.dead_after) } else { self.next_try }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_past_the_limit_counts_as_dead() {
        let t0 = Instant::now();
        let mut r = Recovery::new(t0, Duration::from_secs(3));
        r.heard(t0 + Duration::from_secs(2));
        assert!(!r.is_silent(t0 + Duration::from_millis(4900)));
        assert!(r.is_silent(t0 + Duration::from_secs(5)));
        assert_eq!(r.poll_timeout(true), Some(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn attempts_back_off_up_to_the_cap_and_stop_when_recovered() {
        let t0 = Instant::now();
        let mut r = Recovery::new(t0, Duration::from_secs(3));
        r.lost(t0);
        let mut at = t0;
        let mut pauses = Vec::new();
        for _ in 0..6 {
            assert!(r.attempt_due(at));
            assert!(!r.attempt_due(at), "two attempts at one instant");
            let next = r.poll_timeout(false).expect("next attempt");
            pauses.push((next - at).as_millis());
            at = next;
        }
        assert_eq!(pauses, [500, 1000, 2000, 4000, 4000, 4000]);
        r.recovered(at);
        assert_eq!(r.poll_timeout(false), None);
        assert!(!r.attempt_due(at + Duration::from_secs(60)));
    }
}
