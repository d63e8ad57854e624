//! Injected time for the runtime.
//!
//! The state machine takes timestamps as plain values; the runtime reads them
//! from a [`Clock`]. [`TokioClock`] follows tokio's clock, so tests that call
//! `tokio::time::pause` drive whole rollouts through hours of intervals
//! without sleeping.

use serin_rollout::Timestamp;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the runtime reads "now" from.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// A tokio instant for the given time, to sleep until it.
    fn instant_at(&self, at: Timestamp) -> tokio::time::Instant;
}

/// Wall-clock time at start-up, advanced by tokio's monotonic clock.
///
/// Monotonic (a wall-clock jump does not reorder events) and virtual under
/// `tokio::time::pause`.
#[derive(Clone, Debug)]
pub struct TokioClock {
    origin_millis: u64,
    origin: tokio::time::Instant,
}

// === impl TokioClock ===

impl TokioClock {
    /// A clock that starts at the current wall-clock time.
    pub fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self::starting_at(Timestamp::from_millis(
            u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        ))
    }

    /// A clock that reads `start` now.
    pub fn starting_at(start: Timestamp) -> Self {
        TokioClock {
            origin_millis: start.as_millis(),
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Timestamp::from_millis(self.origin_millis.saturating_add(elapsed))
    }

    fn instant_at(&self, at: Timestamp) -> tokio::time::Instant {
        let offset = Duration::from_millis(at.as_millis().saturating_sub(self.origin_millis));
        self.origin + offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time() {
        let clock = TokioClock::starting_at(Timestamp::from_millis(1_000));
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), Timestamp::from_millis(91_000));
        let at = clock.instant_at(Timestamp::from_millis(100_000));
        tokio::time::sleep_until(at).await;
        assert_eq!(clock.now(), Timestamp::from_millis(100_000));
    }
}
