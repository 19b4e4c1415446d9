//! Link quality from round trip and loss, sans-IO.
//!
//! A framed link sends a small probe four times a second on an unreliable
//! channel and the other side echoes it. Probes not echoed within
//! [`LATE`] count as lost; the loss rate is taken over the last
//! [`WINDOW`] probes, the round trip is smoothed as TCP does (1/8 gain).
//! The level follows the thresholds applications use for WebRTC links:
//!
//! | level | round trip | loss |
//! |---|---|---|
//! | excellent | < 100 ms | < 1 % |
//! | good | < 200 ms | < 5 % |
//! | fair | < 400 ms | < 10 % |
//! | poor | otherwise | |

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use web_time::Instant;

/// How often a probe goes out.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// A probe not echoed within this counts as lost.
const LATE: Duration = Duration::from_secs(2);
/// Probes the loss rate is taken over (25 s at four a second).
const WINDOW: usize = 100;
/// Settled probes needed before a first level is given.
const FIRST_AFTER: usize = 8;

/// How good a link is, from its round trip and loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Quality {
    /// Round trip under 100 ms and loss under 1 %.
    Excellent,
    /// Round trip under 200 ms and loss under 5 %.
    Good,
    /// Round trip under 400 ms and loss under 10 %.
    Fair,
    /// Anything worse.
    Poor,
}

impl Quality {
    /// The level for a round trip and a loss rate (0.0 to 1.0).
    pub fn classify(rtt: Duration, loss: f32) -> Quality {
        let ms = rtt.as_millis();
        if ms < 100 && loss < 0.01 {
            Quality::Excellent
        } else if ms < 200 && loss < 0.05 {
            Quality::Good
        } else if ms < 400 && loss < 0.10 {
            Quality::Fair
        } else {
            Quality::Poor
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quality::Excellent => "excellent",
            Quality::Good => "good",
            Quality::Fair => "fair",
            Quality::Poor => "poor",
        })
    }
}

/// One probe: when it left and whether its echo came back.
#[derive(Debug)]
struct Probe {
    nonce: u64,
    sent: Instant,
    echoed: bool,
}

/// Probes in flight and settled, the smoothed round trip and the last level.
#[derive(Debug, Default)]
pub(crate) struct QualityMeter {
    probes: VecDeque<Probe>,
    next_nonce: u64,
    srtt: Option<Duration>,
    level: Option<Quality>,
}

impl QualityMeter {
    /// A probe goes out at `now`; returns its nonce.
    pub(crate) fn probe(&mut self, now: Instant) -> u64 {
        self.next_nonce += 1;
        self.probes.push_back(Probe { nonce: self.next_nonce, sent: now, echoed: false });
        while self.probes.len() > WINDOW + 16 {
            self.probes.pop_front();
        }
        self.next_nonce
    }

    /// The echo of probe `nonce` came back at `now`; returns its round trip.
    /// Late, repeated and unknown echoes count for nothing.
    pub(crate) fn echoed(&mut self, nonce: u64, now: Instant) -> Option<Duration> {
        let p = self.probes.iter_mut().find(|p| p.nonce == nonce && !p.echoed)?;
        let rtt = now.saturating_duration_since(p.sent);
        if rtt > LATE {
            return None;
        }
        p.echoed = true;
        self.srtt = Some(match self.srtt {
            None => rtt,
            Some(s) => (s * 7 + rtt) / 8,
        });
        Some(rtt)
    }

    /// Loss over the settled probes of the window (those echoed, or older than [`LATE`]).
    pub(crate) fn loss(&self, now: Instant) -> Option<f32> {
        // Newest first, without a copy: the stats read this after every drain.
        let (settled, lost) = self
            .probes
            .iter()
            .rev()
            .filter(|p| p.echoed || now.saturating_duration_since(p.sent) >= LATE)
            .take(WINDOW)
            .fold((0usize, 0usize), |(n, lost), p| (n + 1, lost + usize::from(!p.echoed)));
        if settled < FIRST_AFTER {
            return None;
        }
        Some(lost as f32 / settled as f32)
    }

    /// Smoothed round trip.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The level now, if it changed since the last call.
    pub(crate) fn changed(&mut self, now: Instant) -> Option<Quality> {
        let level = Quality::classify(self.srtt?, self.loss(now)?);
        (self.level != Some(level)).then(|| {
            self.level = Some(level);
            level
        })
    }

    /// The last level given.
    pub(crate) fn level(&self) -> Option<Quality> {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let ms = Duration::from_millis;
        assert_eq!(Quality::classify(ms(20), 0.0), Quality::Excellent);
        assert_eq!(Quality::classify(ms(99), 0.009), Quality::Excellent);
        assert_eq!(Quality::classify(ms(100), 0.0), Quality::Good);
        assert_eq!(Quality::classify(ms(20), 0.01), Quality::Good);
        assert_eq!(Quality::classify(ms(199), 0.049), Quality::Good);
        assert_eq!(Quality::classify(ms(250), 0.0), Quality::Fair);
        assert_eq!(Quality::classify(ms(20), 0.05), Quality::Fair);
        assert_eq!(Quality::classify(ms(400), 0.0), Quality::Poor);
        assert_eq!(Quality::classify(ms(20), 0.10), Quality::Poor);
    }

    /// Probes every 250 ms for `seconds`, echoing all but every `drop_every`-th after `rtt`.
    fn run(meter: &mut QualityMeter, t0: Instant, seconds: u64, rtt: Duration, drop_every: u64) -> Vec<Quality> {
        let mut changes = Vec::new();
        for i in 0..seconds * 4 {
            let at = t0 + PROBE_INTERVAL * u32::try_from(i).expect("small");
            let nonce = meter.probe(at);
            if drop_every == 0 || !nonce.is_multiple_of(drop_every) {
                meter.echoed(nonce, at + rtt);
            }
            if let Some(q) = meter.changed(at + rtt) {
                changes.push(q);
            }
        }
        changes
    }

    #[test]
    fn a_clean_fast_link_is_excellent_and_stays_so() {
        let mut m = QualityMeter::default();
        let changes = run(&mut m, Instant::now(), 30, Duration::from_millis(30), 0);
        assert_eq!(changes, [Quality::Excellent]);
        assert_eq!(m.loss(Instant::now() + Duration::from_secs(60)), Some(0.0));
    }

    #[test]
    fn loss_lowers_the_level_and_recovery_raises_it() {
        let t0 = Instant::now();
        let mut m = QualityMeter::default();
        run(&mut m, t0, 30, Duration::from_millis(30), 0);
        assert_eq!(m.level(), Some(Quality::Excellent));
        // One probe in six lost (17 %) for 30 s.
        let changes = run(&mut m, t0 + Duration::from_secs(30), 30, Duration::from_millis(30), 6);
        assert_eq!(changes.last(), Some(&Quality::Poor), "{changes:?}");
        // Clean again: the window forgets the losses.
        let changes = run(&mut m, t0 + Duration::from_secs(60), 40, Duration::from_millis(30), 0);
        assert_eq!(changes.last(), Some(&Quality::Excellent), "{changes:?}");
    }

    #[test]
    fn a_slow_link_is_fair_whatever_its_loss() {
        let mut m = QualityMeter::default();
        let changes = run(&mut m, Instant::now(), 20, Duration::from_millis(300), 0);
        assert_eq!(changes, [Quality::Fair]);
    }

    #[test]
    fn late_and_unknown_echoes_count_for_nothing() {
        let t0 = Instant::now();
        let mut m = QualityMeter::default();
        let n = m.probe(t0);
        assert_eq!(m.echoed(n + 100, t0), None);
        assert_eq!(m.echoed(n, t0 + Duration::from_secs(3)), None);
        assert_eq!(m.rtt(), None);
    }
}
