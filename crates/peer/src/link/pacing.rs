//! The pacing of attempts to get a lost WebRTC path back, sans-IO.
//!
//! While a link has no WebRTC path, new sessions (or ICE restarts) are
//! tried with a doubling pause between attempts, the same on both backends.

use std::time::Duration;

use web_time::Instant;

/// Pause before the second attempt; it doubles up to [`MAX_RETRY`].
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest pause between two attempts.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(4);

/// When the next attempt is due.
#[derive(Debug)]
pub(crate) struct Pacing {
    /// While the path is down: when the next attempt is due.
    next_try: Option<Instant>,
    pause: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing { next_try: None, pause: FIRST_RETRY }
    }
}

impl Pacing {
    /// The path is down since `now`: the first attempt is due at `first`.
    pub(crate) fn lost(&mut self, first: Instant) {
        self.next_try = Some(first);
        self.pause = FIRST_RETRY;
    }

    /// The path is back: no more attempts.
    pub(crate) fn recovered(&mut self) {
        self.next_try = None;
    }

    /// The next attempt is due at once (the path showed signs of life).
    pub(crate) fn retry_now(&mut self, now: Instant) {
        if self.next_try.is_some_and(|at| at > now) {
            self.next_try = Some(now);
        }
    }

    /// Whether an attempt is due at `now`; if so, schedules the next.
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

    /// When the next attempt is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next_try
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_back_off_up_to_the_cap_and_stop_when_recovered() {
        let t0 = Instant::now();
        let mut p = Pacing::default();
        p.lost(t0);
        let mut at = t0;
        let mut pauses = Vec::new();
        for _ in 0..6 {
            assert!(p.attempt_due(at));
            assert!(!p.attempt_due(at), "two attempts at one instant");
            let next = p.poll_timeout().expect("next attempt");
            pauses.push((next - at).as_millis());
            at = next;
        }
        assert_eq!(pauses, [500, 1000, 2000, 4000, 4000, 4000]);
        p.retry_now(at - Duration::from_secs(1));
        assert_eq!(p.poll_timeout(), Some(at - Duration::from_secs(1)), "signs of life bring the attempt forward");
        p.recovered();
        assert_eq!(p.poll_timeout(), None);
        assert!(!p.attempt_due(at + Duration::from_secs(60)));
    }
}
