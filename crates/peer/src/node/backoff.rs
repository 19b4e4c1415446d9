//! Reconnection pacing for the signaling connection, sans-IO: exponential
//! backoff with full jitter (each wait is uniform in `[0, min(cap, base·2ⁿ)]`),
//! so that many clients cut off at once do not come back in step.

use std::time::Duration;

use rand::Rng;

/// First ceiling of the wait.
const BASE: Duration = Duration::from_secs(1);
/// Highest ceiling of the wait.
const CAP: Duration = Duration::from_secs(30);

/// Attempts made so far and how many are allowed.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    attempt: u32,
    max_attempts: u32,
}

impl Backoff {
    /// A fresh backoff allowing `max_attempts` attempts.
    pub(crate) fn new(max_attempts: u32) -> Self {
        Backoff { attempt: 0, max_attempts }
    }

    /// The wait before the next attempt, or `None` when the attempts are used up.
    pub(crate) fn next_wait(&mut self, rng: &mut impl Rng) -> Option<Duration> {
        if self.attempt >= self.max_attempts {
            return None;
        }
        let ceiling = BASE.saturating_mul(1u32 << self.attempt.min(16)).min(CAP);
        self.attempt += 1;
        Some(ceiling.mul_f64(rng.random::<f64>()))
    }

    /// Attempts made so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn waits_stay_under_a_doubling_ceiling_capped_at_thirty_seconds() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Backoff::new(u32::MAX);
        let ceilings = [1u64, 2, 4, 8, 16, 30, 30, 30, 30, 30];
        for (i, ceiling) in ceilings.iter().enumerate() {
            let w = b.next_wait(&mut rng).expect("unlimited attempts");
            assert!(w <= Duration::from_secs(*ceiling), "attempt {i}: {w:?} over {ceiling} s");
        }
        assert_eq!(b.attempts(), 10);
    }

    #[test]
    fn the_jitter_spreads_clients_over_the_whole_window() {
        let mut rng = StdRng::seed_from_u64(8);
        let waits: Vec<Duration> = (0..1000)
            .map(|_| {
                let mut b = Backoff::new(10);
                for _ in 0..4 {
                    b.next_wait(&mut rng);
                }
                b.next_wait(&mut rng).expect("fifth attempt")
            })
            .collect();
        let low = waits.iter().filter(|w| **w < Duration::from_secs(4)).count();
        let high = waits.iter().filter(|w| **w > Duration::from_secs(12)).count();
        // Uniform over [0, 16 s]: a quarter below 4 s, a quarter above 12 s.
        assert!((150..350).contains(&low) && (150..350).contains(&high), "low {low} high {high}");
    }

    #[test]
    fn attempts_run_out() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut b = Backoff::new(2);
        assert!(b.next_wait(&mut rng).is_some());
        assert!(b.next_wait(&mut rng).is_some());
        assert_eq!(b.next_wait(&mut rng), None);
    }
}
