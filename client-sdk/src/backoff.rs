//! Exponential backoff with full jitter between reconnection attempts.

use rand::Rng;
use std::time::Duration;

/// Reconnection delays: attempt `n` waits a random time in
/// `[0, min(max, initial * multiplier^n)]` ("full jitter").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Ceiling of the first delay.
    pub initial: Duration,
    /// Largest ceiling.
    pub max: Duration,
    /// Growth of the ceiling per attempt.
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_millis(200), max: Duration::from_secs(10), multiplier: 2.0 }
    }
}

impl Backoff {
    /// The ceiling of attempt `attempt` (0-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let mult = if self.multiplier.is_finite() && self.multiplier >= 1.0 { self.multiplier } else { 1.0 };
        let factor = mult.powi(attempt.min(64) as i32);
        let secs = self.initial.as_secs_f64() * factor;
        let max = self.max.max(self.initial);
        if !secs.is_finite() || secs >= max.as_secs_f64() { max } else { Duration::from_secs_f64(secs) }
    }

    /// The delay before attempt `attempt`, drawn from `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt).as_micros() as u64;
        Duration::from_micros(rng.random_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ceiling_grows_then_caps() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_millis(200));
        assert_eq!(b.ceiling(1), Duration::from_millis(400));
        assert_eq!(b.ceiling(5), Duration::from_millis(6400));
        assert_eq!(b.ceiling(6), Duration::from_secs(10));
        assert_eq!(b.ceiling(10_000), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_under_ceiling_and_spreads() {
        let b = Backoff::default();
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<_> = (0..200).map(|_| b.delay(3, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(1600)));
        let min = delays.iter().min().copied().unwrap_or_default();
        let max = delays.iter().max().copied().unwrap_or_default();
        assert!(max - min > Duration::from_millis(800), "full jitter spreads delays");
    }

    #[test]
    fn odd_multipliers_do_not_panic() {
        let b = Backoff { multiplier: f64::NAN, ..Backoff::default() };
        assert_eq!(b.ceiling(3), Duration::from_millis(200));
        let b = Backoff { max: Duration::ZERO, ..Backoff::default() };
        assert_eq!(b.ceiling(3), Duration::from_millis(200));
    }
}
