//! When a rollout looks at its traffic, in one place, so the live loop
//! ([`crate::driver`]) and the replay of its access log
//! ([`crate::replay`]) judge the same requests at the same moments.
//!
//! - Observations happen on whole Unix seconds: the observation at `t`
//!   feeds the judge the requests answered in `[t - 1s, t)`.
//! - A rollout starts on a whole second: its first tick (which takes the
//!   first step) waits for the next whole second; later ticks come every
//!   `interval` after it, each handled at the time it was due. With
//!   whole-second intervals every tick falls on an observation, which comes
//!   first.
//! - The judge is fed only while the route sends the canary traffic, so a
//!   rollout is judged on its own requests from its first step on.
//! - Windows at a tick hold whole seconds only (see
//!   [`serin_stats::Window::last`]): what a tick sees does not depend on how
//!   late the loop reads it.

use serin_analysis::AnalysisConfig;
use serin_rollout::{Phase, RolloutState, Route, Timestamp};
use std::time::Duration;

/// How often the judge is fed the requests served since the last look.
pub const OBSERVE_EVERY: Duration = Duration::from_secs(1);

const SECOND_MS: u64 = 1000;

/// The observation a loop waking at `now` makes: the whole second at or
/// before it.
pub fn observation_at(now: Timestamp) -> Timestamp {
    Timestamp::from_millis(now.as_millis() - now.as_millis() % SECOND_MS)
}

/// The whole second at or after `at`.
pub fn start_at(at: Timestamp) -> Timestamp {
    Timestamp::from_millis(at.as_millis().div_ceil(SECOND_MS).saturating_mul(SECOND_MS))
}

/// When a tick the state machine asked for at `due` is handled: at `due`,
/// except the first tick of a rollout that just started (a new revision, or
/// one its confirm-rollout gate just let through), which waits for the next
/// whole second so the rollout's first step falls on one.
pub fn tick_at(state: &RolloutState, due: Timestamp) -> Timestamp {
    let starting = state.phase == Phase::Progressing
        && state.route() == Route::STABLE
        && due == state.progressed_at;
    if starting { start_at(due) } else { due }
}

/// Whether the judge is fed what the versions served while the rollout is
/// in `state`: a rollout is under way and its route sends the canary
/// traffic (a weight, mirroring or A/B matching).
pub fn judged(state: &RolloutState) -> bool {
    state.phase.is_active() && state.route() != Route::STABLE
}

/// How far back the per-version windows reach for `analysis`: its longest
/// metric interval (one-second slots up to a minute).
pub fn window_span(analysis: &AnalysisConfig) -> Duration {
    analysis.longest_window()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_and_starts_fall_on_whole_seconds() {
        let t = |ms| Timestamp::from_millis(ms);
        assert_eq!(observation_at(t(10_999)), t(10_000));
        assert_eq!(observation_at(t(10_000)), t(10_000));
        assert_eq!(start_at(t(10_001)), t(11_000));
        assert_eq!(start_at(t(10_000)), t(10_000));
    }
}
