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
//!   the three cases where a point value says nothing about the canary, which
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
//!   3. **the excess over `compare` is sampling noise** (the success rate's
//!      `maxDelta` / `maxRatio`): the canary's error ratio is above the
//!      allowed bound (stable's + delta, or stable's × ratio) by less than a
//!      one-sided test at 5 % can tell from noise, given both versions'
//!      request counts in the window. Two healthy versions' one-minute
//!      ratios cross a 1.2× bound on many ticks by chance (2 errors in 100
//!      against 15 in 1000), and a long evidence hold would let those
//!      crossings add up to a rollback; a canary really beyond the margin
//!      (10 in 100 against 5 in 1000) keeps failing, and counting.
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
    /// Flagger's check, holding where one request decides, where stable
    /// breaks the range as well, or where the canary's excess over its
    /// `compare` margin is within sampling noise (every other judge).
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
        if let Problem::Compare(_) = problem
            && let Some(note) = compare_within_noise(m, value)
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

/// One-sided z above which a canary's excess over its `compare` margin is
/// taken as real (5 %). Per tick, two versions *at* the margin's boundary
/// count a failed check with probability about 5 %, and ones inside it
/// (A/A) far less; a rollback needs `threshold` of them, so the tolerance
/// adds little false-rollback risk while a canary clearly beyond the margin
/// still fails every tick.
const COMPARE_NOISE_Z: f64 = 1.645;

/// For the success rate failing `compare` (and not its range): `Some(why)`
/// when the canary's error ratio exceeds every violated bound — stable's +
/// `maxDelta` points, stable's × `maxRatio` — by less than sampling noise.
///
/// The test is a score test of the null "canary at the bound": the excess
/// `p̂c − (p̂s + D)` or `p̂c − R·p̂s` over its standard error with both rates
/// estimated under that null from both windows' counts (pooled: stable's
/// rate `(ec + es − D·nc) / (nc + ns)` or `(ec + es) / (R·nc + ns)`, the
/// canary's its bound), so a stable window without errors does not make
/// two canary errors look infinitely significant. `None` (the failed check
/// stands) when the excess is significant at [`COMPARE_NOISE_Z`] for any
/// violated bound, and for every other metric.
fn compare_within_noise(m: &MetricCheck, value: Option<&MetricValue>) -> Option<String> {
    let compare = m.compare?;
    let (Some(BuiltinMetric::RequestSuccessRate), Some(MetricValue::Window(pair))) =
        (m.builtin(), value)
    else {
        return None;
    };
    let (nc, ns) = (pair.canary.requests, pair.stable.requests);
    if nc == 0 || ns == 0 {
        return None;
    }
    let (nc, ns) = (nc as f64, ns as f64);
    let ec = pair.canary.errors.min(pair.canary.requests) as f64;
    let es = pair.stable.errors.min(pair.stable.requests) as f64;
    let (pc, ps) = (ec / nc, es / ns);
    let var = |p: f64, n: f64| p.clamp(0.0, 1.0) * (1.0 - p.clamp(0.0, 1.0)) / n;
    // z of the excess over each violated bound.
    let mut zs = Vec::with_capacity(2);
    if let Some(d) = compare.max_delta {
        let d = (d / 100.0).clamp(0.0, 1.0);
        if pc - ps > d {
            let s0 = ((ec + es - d * nc) / (nc + ns)).clamp(0.0, 1.0 - d);
            let se = (var(s0 + d, nc) + var(s0, ns)).sqrt();
            zs.push(z_score(pc - ps - d, se));
        }
    }
    if let Some(r) = compare.max_ratio {
        let r = r.max(0.0);
        if pc > r * ps {
            let s0 = ((ec + es) / (r * nc + ns)).clamp(0.0, 1.0);
            let se = (var((r * s0).min(1.0), nc) + r * r * var(s0, ns)).sqrt();
            zs.push(z_score(pc - r * ps, se));
        }
    }
    let z = zs.into_iter().fold(f64::NEG_INFINITY, f64::max);
    (z.is_finite() && z < COMPARE_NOISE_Z).then(|| {
        format!(
            "but the excess over the margin is within sampling noise ({} errors of {} \
             against {} of {}, z {:.2} < {COMPARE_NOISE_Z})",
            pair.canary.errors, pair.canary.requests, pair.stable.errors, pair.stable.requests, z
        )
    })
}

/// `excess / se`, infinite when there is an excess and no noise at all.
fn z_score(excess: f64, se: f64) -> f64 {
    if se > 0.0 {
        excess / se
    } else if excess > 0.0 {
        f64::INFINITY
    } else {
        0.0
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
    fn an_excess_over_the_ratio_within_noise_holds_without_counting() {
        let m = ratio_check();
        // 2 % vs 1.5 %: above 1.2 × stable (1.8 %) by two tenths of a point.
        let v = window((2, 100), (15, 1000));
        let guarded = check(&m, Some(&v), Reading::Guarded);
        assert_eq!(guarded.verdict, Verdict::Hold, "{}", guarded.reason);
        // Flagger's reading still fails it: a hold is not a pass.
        let exact = check(&m, Some(&v), Reading::Exact);
        assert_eq!(exact.verdict, Verdict::Fail, "{}", exact.reason);
        // Three errors: still over 1.8 % with one set aside (2 %), so one
        // request does not decide it; the excess is still noise.
        let v = window((3, 100), (15, 1000));
        let guarded = check(&m, Some(&v), Reading::Guarded);
        assert_eq!(guarded.verdict, Verdict::Hold, "{}", guarded.reason);
        assert!(
            guarded.reason.contains("sampling noise"),
            "{}",
            guarded.reason
        );
        // Five (5 % against a 1.8 % bound) are not.
        let v = window((5, 100), (15, 1000));
        assert_eq!(check(&m, Some(&v), Reading::Guarded).verdict, Verdict::Fail);
    }

    #[test]
    fn a_canary_clearly_beyond_the_ratio_still_counts() {
        let m = ratio_check();
        // 10 % vs 0.5 %: twenty times stable's rate.
        let v = window((10, 100), (5, 1000));
        let c = check(&m, Some(&v), Reading::Guarded);
        assert_eq!(c.verdict, Verdict::Fail, "{}", c.reason);
        assert_eq!(c.status, MetricStatus::Fail);
    }

    #[test]
    fn the_delta_margin_tolerates_noise_and_counts_a_real_excess() {
        let m = MetricCheck::named("request-success-rate").compare(Some(0.5), None);
        // 4 % vs 2 %: one and a half points over the margin on 100 canary
        // requests, and still over it with one error set aside.
        let noise = window((4, 100), (20, 1000));
        assert_eq!(
            check(&m, Some(&noise), Reading::Guarded).verdict,
            Verdict::Hold
        );
        assert_eq!(
            check(&m, Some(&noise), Reading::Exact).verdict,
            Verdict::Fail
        );
        // 8 % vs 2 %: five and a half points over it.
        let real = window((8, 100), (20, 1000));
        assert_eq!(
            check(&m, Some(&real), Reading::Guarded).verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn errors_against_a_clean_stable_window_are_judged_on_the_pooled_rate() {
        let m = ratio_check();
        // No stable errors: any canary error breaks the ratio. Three of 100
        // against none of 1000 are significant; the check counts.
        let v = window((3, 100), (0, 1000));
        assert_eq!(check(&m, Some(&v), Reading::Guarded).verdict, Verdict::Fail);
    }

    #[test]
    fn both_margins_must_be_within_noise_to_hold() {
        // Inside the ratio's noise but far beyond a zero delta.
        let m = MetricCheck::named("request-success-rate").compare(Some(0.0), Some(1.2));
        let v = window((45, 1000), (300, 10_000));
        let c = check(&m, Some(&v), Reading::Guarded);
        assert_eq!(c.verdict, Verdict::Fail, "{}", c.reason);
    }
}
