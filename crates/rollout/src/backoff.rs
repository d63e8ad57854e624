//! Waits between tries of something that failed.
//!
//! One rule for every caller that retries (the driver re-applying a refused
//! route, webhooks, alert delivery), so each retry loop is bounded the same
//! way and a new caller cannot forget the bound. Pure: it says how long to
//! wait; the caller sleeps, or schedules the next try on its own clock.

use std::time::Duration;

/// Exponential backoff: the first wait, then each wait `factor` times the
/// last, never longer than `max`.
///
/// ```
/// use serin_rollout::Backoff;
/// use std::time::Duration;
///
/// let mut backoff = Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(5));
/// let waits: Vec<u64> = (0..5).map(|_| backoff.next().as_secs()).collect();
/// assert_eq!(waits, [1, 2, 4, 5, 5]);
/// backoff.reset();
/// assert_eq!(backoff.next(), Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure (never more than `max`).
    first: Duration,
    /// How much longer each wait is than the last (at least 1).
    factor: u32,
    /// The longest wait.
    max: Duration,
    /// What [`Backoff::next`] returns next.
    upcoming: Duration,
}

// === impl Backoff ===

impl Backoff {
    /// Waits of `first`, then `factor` times longer each, up to `max`. A
    /// `factor` of 0 is taken as 1 (a constant wait) and a `first` longer
    /// than `max` as `max`, so every backoff is bounded and never shrinks.
    /// `const` so callers can name their policy as a constant.
    pub const fn new(first: Duration, factor: u32, max: Duration) -> Self {
        let first = if first.as_nanos() > max.as_nanos() {
            max
        } else {
            first
        };
        let factor = if factor == 0 { 1 } else { factor };
        Backoff {
            first,
            factor,
            max,
            upcoming: first,
        }
    }

    /// How long to wait before the next try, and advances to the wait
    /// after that.
    // Not `Iterator::next`: a backoff never ends, so an `Option` would only
    // add an impossible `None` for callers to handle.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Duration {
        let wait = self.upcoming;
        self.upcoming = wait.saturating_mul(self.factor).min(self.max);
        wait
    }

    /// Starts over from the first wait (the thing succeeded, or what is
    /// being tried changed).
    pub fn reset(&mut self) {
        self.upcoming = self.first;
    }

    /// The wait after the first failure.
    pub const fn first(&self) -> Duration {
        self.first
    }

    /// The longest wait.
    pub const fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(backoff: &mut Backoff, n: usize) -> Vec<u128> {
        (0..n).map(|_| backoff.next().as_millis()).collect()
    }

    #[test]
    fn doubles_up_to_its_bound() {
        let mut backoff = Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(30));
        assert_eq!(
            waits(&mut backoff, 8),
            [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]
        );
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_millis(200), 2, Duration::from_secs(5));
        assert_eq!(waits(&mut backoff, 3), [200, 400, 800]);
        backoff.reset();
        assert_eq!(waits(&mut backoff, 2), [200, 400]);
    }

    #[test]
    fn other_factors() {
        let mut backoff = Backoff::new(Duration::from_millis(100), 3, Duration::from_secs(1));
        assert_eq!(waits(&mut backoff, 4), [100, 300, 900, 1000]);
        let mut constant = Backoff::new(Duration::from_millis(100), 1, Duration::from_secs(1));
        assert_eq!(waits(&mut constant, 3), [100, 100, 100]);
    }

    #[test]
    fn degenerate_settings_stay_bounded() {
        // A zero factor would collapse to zero waits: taken as 1.
        let mut zero = Backoff::new(Duration::from_millis(100), 0, Duration::from_secs(1));
        assert_eq!(waits(&mut zero, 3), [100, 100, 100]);
        // A first wait past the bound starts at the bound.
        let mut over = Backoff::new(Duration::from_secs(10), 2, Duration::from_secs(1));
        assert_eq!(over.first(), Duration::from_secs(1));
        assert_eq!(waits(&mut over, 2), [1000, 1000]);
        // Huge waits saturate instead of overflowing.
        let mut huge = Backoff::new(Duration::MAX, u32::MAX, Duration::MAX);
        assert_eq!(huge.next(), Duration::MAX);
        assert_eq!(huge.next(), Duration::MAX);
    }

    #[test]
    fn consts_name_a_policy() {
        const POLICY: Backoff = Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(4));
        let mut a = POLICY;
        let mut b = POLICY;
        assert_eq!(waits(&mut a, 4), [1000, 2000, 4000, 4000]);
        // Each copy of the constant keeps its own position.
        assert_eq!(waits(&mut b, 1), [1000]);
        assert_eq!(POLICY.max(), Duration::from_secs(4));
    }
}
