//! A token bucket on time passed in.

use std::time::{Duration, Instant};

/// Allows `rate` events per second on average and `burst` at once.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self::fractional(f64::from(rate), burst, now)
    }

    /// A bucket whose rate may be below one per second.
    pub(crate) fn fractional(rate: f64, burst: u32, now: Instant) -> Self {
        Self { tokens: f64::from(burst), burst: f64::from(burst), rate, last: now }
    }

    /// Takes `cost` tokens if there are that many.
    pub(crate) fn try_take(&mut self, cost: f64, now: Instant) -> bool {
        self.refill(now, cost);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Takes `cost` tokens, going into debt when there are fewer; returns
    /// how long until the debt is repaid (zero when there is none). A user
    /// of the bucket waits that long before it takes again, so that callers
    /// sharing one bucket are served in turn at its rate.
    pub(crate) fn take_owing(&mut self, cost: f64, now: Instant) -> Duration {
        self.refill(now, 0.0);
        self.tokens -= cost;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.rate) }
    }

    /// Tokens available now.
    pub(crate) fn available(&mut self, now: Instant) -> f64 {
        self.refill(now, 0.0);
        self.tokens
    }

    /// Whether the bucket is full: nothing was taken that has not refilled.
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.available(now) >= self.burst
    }

    fn refill(&mut self, now: Instant, cost: f64) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst.max(cost));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 3, t0);
        assert!((0..3).all(|_| b.try_take(1.0, t0)));
        assert!(!b.try_take(1.0, t0));
        assert!(!b.try_take(1.0, t0 + Duration::from_millis(99)));
        // 200 ms at 10/s refilled two tokens.
        assert!(b.try_take(1.0, t0 + Duration::from_millis(200)));
        assert!(b.try_take(1.0, t0 + Duration::from_millis(200)));
        assert!(!b.try_take(1.0, t0 + Duration::from_millis(200)));
        // A cost above the burst can still be paid once the bucket is full.
        let mut big = TokenBucket::new(1000, 10, t0);
        assert!(big.try_take(50.0, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn owing_takes_into_debt_and_says_how_long_it_lasts() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 100, t0);
        assert_eq!(b.take_owing(60.0, t0), Duration::ZERO);
        // 40 left: taking 90 owes 50, repaid in half a second at 100/s.
        assert_eq!(b.take_owing(90.0, t0), Duration::from_millis(500));
        // A second taker behind the first waits for both debts.
        assert_eq!(b.take_owing(50.0, t0), Duration::from_secs(1));
        // Once repaid, taking within the refilled tokens owes nothing.
        assert_eq!(b.take_owing(20.0, t0 + Duration::from_millis(1200)), Duration::ZERO);
    }
}
