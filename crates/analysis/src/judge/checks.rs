//! Flagger's per-metric check, shared by every judge: a metric's point value
//! over its window inside `thresholdRange`, and the canary within `compare`
//! of stable.
//!
//! This is the floor every verdict stands on. [`Analyzer`](super::Analyzer)
//! runs these checks for every judge and takes the worse of their verdict
//! and the judge's own, so no judge can pass a step (raise the weight, or
//! promote) on which a metric fails its check, and a failing check is counted
//! as Flagger counts it. Statistics may only make a verdict *stricter*: roll
//! back sooner on decisive evidence, or hold for more evidence.
//!
//! Two readings of a check:
//! - [`Reading::Exact`], the threshold judge's: Flagger's, exactly. A value
//!   outside the range, or no value at all, is a failed check.
//! - [`Reading::Guarded`], every other judge's: the same check, except in
//!   the two cases where a point value says nothing about the canary, which
//!   *hold* (never pass, never count) instead of failing:
//!   1. **one request decides**: the check would pass with one error fewer
//!      (or one slow request fewer). At 60 requests a minute, a single 5xx
//!      makes 98.3 % < 99 %; a failure that rests on one request is noise,
//!      and two are needed. A canary that really fails keeps failing with
//!      one request set aside, and the sequential tests roll it back anyway.
//!   2. **stable breaks the range too** (an incident shared by both
//!      versions, or a service whose normal error rate is above the bound),
//!      while the canary is no worse than stable beyond its `compare`
//!      margin plus sampling noise: not the canary's doing. The weight holds
//!      (a bound stable cannot meet is never passed) and the progress
//!      deadline bounds the wait.
//!
//! Builtin metrics without canary requests in the window, and the
//! `request-rate` load condition outside its range, hold in the guarded
//! reading: they say the traffic is not there yet, not that the canary is bad.

use crate::{
    config::{BuiltinMetric, MetricCheck, MetricKind},
    decision::{MetricStatus, Verdict, num},
    input::{MetricValue, TickInput},
    judge::{Point, builtin_value, compare_violation, point, range_violation},
};
use serin_stats::Counts;

/// How strictly a point value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// Flagger's check, exactly (the threshold judge).
    Exact,
    /// Flagger's check, holding where one request decides or where stable
    /// breaks the range as well (every other judge).
    Guarded,
}

/// One metric's check at one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The metric's name.
    pub name: String,
    /// `Pass`, `Hold` (cannot be judged yet: not counted) or `Fail` (a failed
    /// check, counted against `threshold`).
    pub verdict: Verdict,
    /// `Pass`, `Inconclusive`, `Fail` or `NoData`.
    pub status: MetricStatus,
    /// The point values and request counts behind it.
    pub point: Point,
    /// One line in plain words, with the numbers.
    pub reason: String,
}

/// Every configured metric's check against `input`, in configuration order.
pub fn check_all(metrics: &[MetricCheck], input: &TickInput, reading: Reading) -> Vec<Check> {
    metrics
        .iter()
        .map(|m| check(m, input.get(&m.name), reading))
        .collect()
}

/// The worst verdict of `checks` (`Pass` when there are none).
pub fn worst(checks: &[Check]) -> Verdict {
    checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Pass)
}

/// One metric's check.
pub fn check(m: &MetricCheck, value: Option<&MetricValue>, reading: Reading) -> Check {
    let p = point(m, value);
    let unit = m.unit();
    let guarded = reading == Reading::Guarded;
    let made = |verdict: Verdict, status: MetricStatus, reason: String| Check {
        name: m.name.clone(),
        verdict,
        status,
        point: p,
        reason,
    };
    let Some(canary) = p.canary else {
        if guarded && matches!(m.kind, MetricKind::Builtin(_)) {
            return made(
                Verdict::Hold,
                MetricStatus::NoData,
                format!(
                    "{}: no canary requests in the last {}: waiting for traffic",
                    m.name,
                    window_text(m)
                ),
            );
        }
        let why = match m.kind {
            MetricKind::Builtin(_) => format!(
                "no values found (canary received {} requests in {})",
                p.canary_requests,
                window_text(m)
            ),
            MetricKind::Custom => "no value for the canary".to_owned(),
        };
        return made(
            Verdict::Fail,
            MetricStatus::NoData,
            format!("{}: {why}: failed check", m.name),
        );
    };
    if guarded && m.builtin() == Some(BuiltinMetric::RequestRate) {
        return match range_violation(m.threshold_range, canary) {
            Some(side) => made(
                Verdict::Hold,
                MetricStatus::Inconclusive,
                format!("{} {} req/s {side}: waiting for load", m.name, num(canary)),
            ),
            None => made(
                Verdict::Pass,
                MetricStatus::Pass,
                format!("{} {} req/s within range", m.name, num(canary)),
            ),
        };
    }
    // The problem with the canary's point value, if any.
    let problem = match range_violation(m.threshold_range, canary) {
        Some(side) => Some(Problem::Range(format!(
            "{} {}{unit} {side}",
            m.name,
            num(canary)
        ))),
        None if m.compare.is_some() => match p.stable {
            None => {
                return made(
                    Verdict::Fail,
                    MetricStatus::NoData,
                    format!("{}: no stable value to compare with: failed check", m.name),
                );
            }
            Some(stable) => compare_violation(m, canary, stable).map(Problem::Compare),
        },
        None => None,
    };
    let Some(problem) = problem else {
        let reason = match (m.compare.is_some(), p.stable) {
            (true, Some(s)) => format!(
                "{} {}{unit} within range, stable {}{unit}",
                m.name,
                num(canary),
                num(s)
            ),
            _ => format!("{} {}{unit} within range", m.name, num(canary)),
        };
        return made(Verdict::Pass, MetricStatus::Pass, reason);
    };
    if guarded {
        if let Some(note) = one_request_decides(m, value) {
            return made(
                Verdict::Hold,
                MetricStatus::Inconclusive,
                format!("{}: {note}: holding, not counted", problem.text()),
            );
        }
        if let Problem::Range(_) = problem
            && let Some(note) = shared_with_stable(m, &p, value)
        {
            return made(
                Verdict::Hold,
                MetricStatus::Inconclusive,
                format!("{}, {note}: holding, not counted", problem.text()),
            );
        }
    }
    made(
        Verdict::Fail,
        MetricStatus::Fail,
        format!("{}: failed check", problem.text()),
    )
}

/// What is wrong with a point value.
enum Problem {
    /// Outside `thresholdRange`.
    Range(String),
    /// Worse than stable by more than `compare` allows.
    Compare(String),
}

// === impl Problem ===

impl Problem {
    fn text(&self) -> &str {
        match self {
            Problem::Range(t) | Problem::Compare(t) => t,
        }
    }
}

/// The metric's window in words: `1m`, `30s`.
fn window_text(m: &MetricCheck) -> String {
    let secs = m.interval.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// For a builtin metric failing its check: `Some(why)` when the check would
/// pass with one error (or one slow request) fewer in the canary's window.
fn one_request_decides(m: &MetricCheck, value: Option<&MetricValue>) -> Option<String> {
    let (Some(b), Some(MetricValue::Window(pair))) = (m.builtin(), value) else {
        return None;
    };
    let canary = one_fewer(b, &pair.canary)?;
    let secs = m.interval.as_secs_f64();
    let still_fails = range_violation(m.threshold_range, canary).is_some()
        || (m.compare.is_some()
            && builtin_value(b, &pair.stable, secs)
                .is_some_and(|s| compare_violation(m, canary, s).is_some()));
    (!still_fails).then(|| {
        format!(
            "one {} of {} canary requests decides it",
            if b == BuiltinMetric::RequestSuccessRate {
                "error"
            } else {
                "slow request"
            },
            pair.canary.requests
        )
    })
}

/// The canary's value with its worst request set aside: one error fewer for
/// the success rate, the next lower rank for a latency quantile. `None`
/// when nothing would be left to judge.
fn one_fewer(b: BuiltinMetric, c: &Counts) -> Option<f64> {
    match b {
        BuiltinMetric::RequestSuccessRate => {
            let n = c.requests;
            let e = c.errors.min(n);
            (n > 0 && e > 0).then(|| 100.0 * (n - e + 1) as f64 / n as f64)
        }
        BuiltinMetric::RequestRate => None,
        latency => {
            let q = latency.quantile()?;
            let n = c.latency.count();
            let rank = ((q * n as f64).ceil() as u64).clamp(1, n.max(1));
            if rank <= 1 {
                return None;
            }
            // The value of rank − 1 is the quantile at (rank − 1) / n.
            c.latency_ms((rank - 1) as f64 / n as f64)
        }
    }
}

/// For a range violation: `Some(why)` when stable's own value breaks the
/// range on the same side (or, for the success rate, is within two standard
/// errors of breaking it: a service whose normal error rate sits at the
/// bound) and the canary is no worse than stable beyond its `compare`
/// margin and four standard errors of the difference. Four, not two: the
/// check runs at every tick and failed checks add up over a rollout, so the
/// tolerance must almost never be exceeded by two healthy versions; a
/// canary worse than that is caught by the comparison with stable.
fn shared_with_stable(m: &MetricCheck, p: &Point, value: Option<&MetricValue>) -> Option<String> {
    let (canary, stable) = (p.canary?, p.stable?);
    let canary_side = range_violation(m.threshold_range, canary)?;
    let compare = m.compare.unwrap_or_default();
    let worse = super::worse_by(m.direction, canary, stable);
    let unit = m.unit();
    let var = |c: &Counts| {
        let n = c.requests as f64;
        c.error_ratio().map_or(0.0, |r| r * (1.0 - r) / n.max(1.0))
    };
    let (stable_breaks, tolerance) = match (m.builtin(), value) {
        (Some(BuiltinMetric::RequestSuccessRate), Some(MetricValue::Window(pair))) => {
            // Standard errors in points.
            let stable_se = 100.0 * var(&pair.stable).sqrt();
            let near = [-2.0 * stable_se, 2.0 * stable_se]
                .into_iter()
                .any(|shift| {
                    range_violation(m.threshold_range, stable + shift).as_deref()
                        == Some(canary_side.as_str())
                });
            let noise = 400.0 * (var(&pair.canary) + var(&pair.stable)).sqrt();
            (near, compare.max_delta.unwrap_or(0.0).max(0.0) + noise)
        }
        _ => {
            // Other metrics: the delta margin, or 10 % of stable's value
            // (or the ratio margin) for noise.
            let relative = compare.max_ratio.unwrap_or(1.1).max(1.1) - 1.0;
            let breaks =
                range_violation(m.threshold_range, stable).as_deref() == Some(canary_side.as_str());
            (
                breaks,
                compare
                    .max_delta
                    .unwrap_or(0.0)
                    .max(relative * stable.abs()),
            )
        }
    };
    if !stable_breaks {
        return None;
    }
    (worse <= tolerance).then(|| {
        format!(
            "but so is stable ({}{unit}): shared by both versions, not the canary's doing",
            num(stable)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_stats::Pair;

    fn window(canary: (u64, u64), stable: (u64, u64)) -> MetricValue {
        let counts = |(errors, requests): (u64, u64)| Counts {
            requests,
            errors,
            ..Counts::default()
        };
        MetricValue::Window(Pair {
            stable: counts(stable),
            canary: counts(canary),
        })
    }

    fn ratio_check() -> MetricCheck {
        MetricCheck::named("request-success-rate").compare(None, Some(1.2))
    }

    #[test]
    fn two_errors_over_the_ratio_hold_when_one_decides() {
        let m = ratio_check();
        // 2 % vs 1.5 %: over 1.2 × stable (1.8 %), but 1 % with one error
        // set aside: one request decides it.
        let v = window((2, 100), (15, 1000));
        let guarded = check(&m, Some(&v), Reading::Guarded);
        assert_eq!(guarded.verdict, Verdict::Hold, "{}", guarded.reason);
        assert!(guarded.reason.contains("decides"), "{}", guarded.reason);
        // Flagger's reading fails it: a hold is not a pass.
        let exact = check(&m, Some(&v), Reading::Exact);
        assert_eq!(exact.verdict, Verdict::Fail, "{}", exact.reason);
    }

    #[test]
    fn an_excess_over_the_ratio_that_survives_one_error_counts() {
        let m = ratio_check();
        // 3 % vs 1.5 %: still 2 % > 1.8 % with one error set aside. The
        // excess is within sampling noise, and it counts all the same: a
        // tolerance here promotes real regressions (bench/detection/RESULTS.md).
        let v = window((3, 100), (15, 1000));
        assert_eq!(check(&m, Some(&v), Reading::Guarded).verdict, Verdict::Fail);
        // 10 % vs 0.5 %: twenty times stable's rate.
        let v = window((10, 100), (5, 1000));
        let c = check(&m, Some(&v), Reading::Guarded);
        assert_eq!(c.verdict, Verdict::Fail, "{}", c.reason);
        assert_eq!(c.status, MetricStatus::Fail);
    }
}
