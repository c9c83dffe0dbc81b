//! Retry backoff of the per-app scheduler: exponential, capped, with random jitter.

use std::time::Duration;

/// Exponential retry backoff: `base * factor^(attempt-1)`, capped at `max`, optionally reduced
/// by up to `jitter` (a fraction, 0.0-1.0) at random.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub base: Duration,
    /// Growth per further failure (2.0 doubles).
    pub factor: f64,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Random reduction of each delay, as a fraction of it; 0.0 is deterministic.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 1 s, doubling, at most 5 minutes, 20 % jitter.
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), 2.0, Duration::from_secs(300)).with_jitter(0.2)
    }
}

impl Backoff {
    /// A deterministic backoff (no jitter).
    pub fn new(base: Duration, factor: f64, max: Duration) -> Self {
        Backoff {
            base,
            factor,
            max,
            jitter: 0.0,
        }
    }

    /// The same backoff with `jitter` (clamped to 0.0-1.0).
    pub fn with_jitter(self, jitter: f64) -> Self {
        Backoff { jitter, ..self }
    }

    /// Delay before retrying after the `attempt`-th consecutive failure (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let max = self.max.as_secs_f64();
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = self.base.as_secs_f64() * self.factor.powi(exponent);
        let mut secs = if raw.is_finite() { raw.min(max) } else { max };
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if jitter > 0.0 {
            secs *= 1.0 - jitter * rand::random::<f64>();
        }
        Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(self.max)
    }
}
