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
//!
//! The sequential judge reads one more thing into a failed `compare` check
//! on the success rate: whether it may *count*. [`Spending`] lets the k-th
//! window a rollout judges count only when its data are beyond the margin
//! at a level spent over the rollout, so that `threshold` counted failures
//! of a canary within its margin stay within a budget however long the
//! rollout lasts; a failure it does not count holds.

use crate::{
    config::{AnalysisConfig, BuiltinMetric, MetricCheck, MetricKind},
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
    /// The check fails on the success rate's `compare` margin (and on
    /// nothing else): the failure [`Spending`] reads.
    pub compare_failed: bool,
    /// A hold that waits for more data to decide, not for the system (see
    /// [`HoldReason`](crate::HoldReason)).
    pub for_evidence: bool,
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
        compare_failed: false,
        for_evidence: false,
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
    let compare_failed = matches!(problem, Problem::Compare(_))
        && m.builtin() == Some(BuiltinMetric::RequestSuccessRate);
    Check {
        compare_failed,
        ..made(
            Verdict::Fail,
            MetricStatus::Fail,
            format!("{}: failed check", problem.text()),
        )
    }
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

/// The share of the false-rollback budget α that the sequential judge's
/// counted `compare` failures may spend ([`Spending`]); its e-value spends
/// α on its own, so a canary at its margin's boundary is rolled back with
/// probability at most 1.5 α, and one inside it far less.
pub(crate) const CHECK_BUDGET: f64 = 0.5;

/// How the sequential judge counts failed `compare` checks on the success
/// rate, so that they cannot add up to a rollback of a canary within its
/// margin more often than a budget allows, however long the rollout.
///
/// Flagger counts every failing window. With a tight margin that is a coin
/// toss per window: a canary at 0.5 % under `maxRatio: 1.2` on a 0.5 %
/// stable (0.1 point inside the bound) fails 10–19 % of its one-minute
/// windows at 20–100 req/s, and the longer a rollout lasts (the evidence
/// gate holds the last step; a failing window keeps a step where it is)
/// the more chances five of them have to come together. So the k-th
/// window a rollout judges may count only if its data are beyond the
/// margin at level `γ_k = c / k²` (a one-sided exact test,
/// [`compare_p_value`]); otherwise the check holds (no pass, no count)
/// while the e-value goes on gathering evidence. Under the null each
/// counted failure happens with probability at most `γ_k` given the
/// past, so the chance of `T` (the `threshold`) counted failures is at
/// most the `T`-th elementary symmetric sum of the levels, and for
/// `γ_k = c/k²` that is `c^T · π^{2T} / (2T+1)!` (the coefficient of `x^T`
/// in `sinh(π√x)/(π√x) = ∏(1 + x/k²)`): `c` is chosen to make it
/// [`CHECK_BUDGET`]`·α`. With `threshold: 5` and α = 1 %, `c ≈ 1.16`: the
/// first window counts as Flagger counts it, the second at 29 %, the
/// fifth at 4.7 %, the tenth at 1.2 %. Early windows, where a gross
/// regression shows, count nearly as Flagger's; late ones, which a long
/// hold would otherwise turn into lottery tickets, only on strong data.
///
/// Windows are judged only when they do not overlap the previous judged
/// one (an `interval` shorter than the metric's window sees the same
/// requests several times: one piece of evidence, counted once); a failing
/// window that overlaps holds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Spending {
    /// Per configured metric, in configuration order.
    windows: Vec<Judged>,
}

/// The disjoint windows of one metric judged so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Judged {
    /// How many (the `k` of the level `c/k²`).
    count: u64,
    /// When the last of them ended.
    last_ms: Option<u64>,
}

// === impl Spending ===

impl Spending {
    /// Reads `checks` (one per metric of `config`, in order) at the tick
    /// `at_ms`: a failed `compare` check on the success rate that is not
    /// significant at its window's level, or whose window overlaps the one
    /// judged before, holds instead of counting.
    pub(crate) fn apply(
        &mut self,
        config: &AnalysisConfig,
        at_ms: u64,
        input: &TickInput,
        checks: &mut [Check],
    ) {
        if self.windows.len() != config.metrics.len() {
            self.windows.resize(config.metrics.len(), Judged::default());
        }
        let metrics = config.metrics.iter().zip(&mut self.windows);
        for ((m, judged), c) in metrics.zip(checks.iter_mut()) {
            if m.builtin() != Some(BuiltinMetric::RequestSuccessRate) || m.compare.is_none() {
                continue;
            }
            let window_ms = u64::try_from(m.interval.as_millis()).unwrap_or(u64::MAX);
            let fresh = judged
                .last_ms
                .is_none_or(|last| at_ms >= last.saturating_add(window_ms));
            let previous = judged.last_ms;
            if fresh {
                judged.count = judged.count.saturating_add(1);
                judged.last_ms = Some(at_ms);
            }
            if c.verdict != Verdict::Fail || !c.compare_failed {
                continue;
            }
            let problem = c.reason.trim_end_matches(": failed check").to_owned();
            if !fresh {
                let since = previous.map_or(0, |last| at_ms.saturating_sub(last)) / 1000;
                hold_for_evidence(
                    c,
                    format!(
                        "{problem}, but its {} window overlaps the one judged {since} s ago: the same requests count once: holding, not counted",
                        window_text(m)
                    ),
                );
                continue;
            }
            let level = count_level(config.alpha * CHECK_BUDGET, config.threshold, judged.count);
            let Some(p) = compare_p_value(m, input.get(&m.name)) else {
                continue;
            };
            let how = format!(
                "p {} against the margin, window {} of this rollout counts at p ≤ {}",
                num_p(p),
                judged.count,
                num_p(level)
            );
            if p > level {
                hold_for_evidence(
                    c,
                    format!("{problem} ({how}): within sampling noise: holding, not counted"),
                );
            } else {
                c.reason = format!("{problem} ({how}): failed check");
            }
        }
    }
}

/// A failed check turned into a hold that waits for more data.
fn hold_for_evidence(c: &mut Check, reason: String) {
    c.verdict = Verdict::Hold;
    c.status = MetricStatus::Inconclusive;
    c.for_evidence = true;
    c.reason = reason;
}

/// A probability in words: to four decimals, `< 0.0001` below that.
fn num_p(p: f64) -> String {
    if p < 1e-4 {
        "< 0.0001".to_owned()
    } else {
        format!("{}", (p * 1e4).round() / 1e4)
    }
}

/// The level at which the `k`-th judged window's failure counts: `c/k²`
/// (at most 1), with `c` such that the `threshold`-th elementary symmetric
/// sum of all the levels, `c^T·π^{2T}/(2T+1)!`, is `budget` (see
/// [`Spending`]).
pub(crate) fn count_level(budget: f64, threshold: u32, k: u64) -> f64 {
    let t = f64::from(threshold.max(1));
    let ln_c = (budget.max(f64::MIN_POSITIVE).ln()
        + statrs::function::gamma::ln_gamma(2.0 * t + 2.0)
        - 2.0 * t * std::f64::consts::PI.ln())
        / t;
    let k = k.max(1) as f64;
    let level = ln_c.exp() / (k * k);
    if level.is_finite() {
        level.clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// The one-sided p-value of a success-rate window against its `compare`
/// margin: the null is the canary's error rate within every bound
/// (stable's × `maxRatio`, stable's + `maxDelta` points). `None` without a
/// window or a margin.
///
/// - `maxRatio R`: exact given the window's errors. Under `p_c ≤ R·p_s`,
///   of the window's `e` errors the canary's number is at most
///   Binomial(`e`, `R·n_c / (R·n_c + n_s)`) (rare errors: each error falls
///   to a version in proportion to its requests times its rate), whatever
///   stable's rate.
/// - `maxDelta D`: the canary's errors against Binomial(`n_c`, `s₀ + D`),
///   `s₀` stable's rate estimated under the null from both versions'
///   errors (the restricted estimate: a canary with many errors raises it,
///   which keeps the test from overstating them).
///
/// With both margins the smaller p-value, doubled (Bonferroni).
pub(crate) fn compare_p_value(m: &MetricCheck, value: Option<&MetricValue>) -> Option<f64> {
    let compare = m.compare?;
    let Some(MetricValue::Window(pair)) = value else {
        return None;
    };
    let (nc, ns) = (pair.canary.requests, pair.stable.requests);
    let ec = pair.canary.errors.min(nc);
    let es = pair.stable.errors.min(ns);
    if ec == 0 {
        return Some(1.0);
    }
    let mut ps = Vec::with_capacity(2);
    if let Some(r) = compare.max_ratio {
        let weighted = r.max(0.0) * nc as f64;
        let share = weighted / (weighted + ns as f64);
        ps.push(binomial_at_least(ec.saturating_add(es), share, ec));
    }
    if let Some(d) = compare.max_delta {
        let d = (d / 100.0).clamp(0.0, 1.0);
        let total = (nc.saturating_add(ns)) as f64;
        let s0 = ((ec.saturating_add(es)) as f64 - d * nc as f64) / total;
        ps.push(binomial_at_least(nc, s0.clamp(0.0, 1.0 - d) + d, ec));
    }
    let tests = ps.len() as f64;
    ps.into_iter()
        .reduce(f64::min)
        .map(|p| (p * tests).clamp(0.0, 1.0))
}

/// P(X ≥ k) for X ~ Binomial(n, p).
fn binomial_at_least(n: u64, p: f64, k: u64) -> f64 {
    use statrs::distribution::{Binomial, DiscreteCDF};
    if k == 0 || p >= 1.0 || p.is_nan() {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    let tail = Binomial::new(p, n).map_or(1.0, |b| b.sf(k - 1));
    if tail.is_finite() {
        tail.clamp(0.0, 1.0)
    } else {
        1.0
    }
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
        // guarded reading fails it; whether the failure counts is the
        // sequential judge's `Spending` (a tolerance in the check itself,
        // at every tick, promoted real regressions: bench/detection/RESULTS.md).
        let v = window((3, 100), (15, 1000));
        assert_eq!(check(&m, Some(&v), Reading::Guarded).verdict, Verdict::Fail);
        // 10 % vs 0.5 %: twenty times stable's rate.
        let v = window((10, 100), (5, 1000));
        let c = check(&m, Some(&v), Reading::Guarded);
        assert_eq!(c.verdict, Verdict::Fail, "{}", c.reason);
        assert_eq!(c.status, MetricStatus::Fail);
    }

    fn ratio_window(canary: (u64, u64), stable: (u64, u64)) -> (MetricCheck, MetricValue) {
        (ratio_check(), window(canary, stable))
    }

    /// The `T`-th elementary symmetric sum of `levels`: the bound on the
    /// chance that `T` of them all come up.
    fn elementary(levels: &[f64], t: usize) -> f64 {
        let mut e = vec![0.0; t + 1];
        e[0] = 1.0;
        for &g in levels {
            for j in (1..=t).rev() {
                e[j] += e[j - 1] * g;
            }
        }
        e[t]
    }

    #[test]
    fn the_levels_spend_the_budget_and_no_more() {
        for threshold in [1u32, 2, 3, 5, 10] {
            let levels: Vec<f64> = (1..=200_000)
                .map(|k| count_level(0.005, threshold, k))
                .collect();
            let spent = elementary(&levels, threshold as usize);
            assert!(spent <= 0.005 * 1.000_001, "threshold {threshold}: {spent}");
            // Levels capped at 1 spend less; uncapped, the whole budget.
            if levels[0] < 1.0 {
                assert!(spent >= 0.005 * 0.99, "threshold {threshold}: {spent}");
            }
        }
        // Flagger's default threshold: the first window counts as Flagger
        // counts it, later ones on stronger data.
        assert_eq!(count_level(0.005, 5, 1), 1.0);
        let fifth = count_level(0.005, 5, 5);
        assert!((0.04..0.05).contains(&fifth), "{fifth}");
        assert!(count_level(0.005, 1, 1) < 0.005);
    }

    #[test]
    fn the_ratio_test_keeps_its_level_at_the_boundary() {
        use rand::{Rng, SeedableRng};
        // Canary exactly at 1.2 × stable's 0.5 %, 600 vs 5400 requests a
        // window: windows significant at 5 % must be at most 5 % of them.
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let mut count = |n: u64, p: f64| (0..n).filter(|_| rng.random::<f64>() < p).count() as u64;
        let runs = 4000;
        let mut significant = 0;
        for _ in 0..runs {
            let ec = count(600, 0.006);
            let es = count(5400, 0.005);
            let (m, v) = ratio_window((ec, 600), (es, 5400));
            let p = compare_p_value(&m, Some(&v)).unwrap();
            assert!((0.0..=1.0).contains(&p));
            significant += u32::from(p <= 0.05);
        }
        let rate = f64::from(significant) / f64::from(runs);
        // Binomial noise on 4000 windows: 5 % + 3 standard errors.
        assert!(
            rate <= 0.05 + 3.0 * (0.05f64 * 0.95 / 4000.0).sqrt(),
            "{rate}"
        );
    }

    #[test]
    fn the_delta_test_tells_noise_from_a_canary_far_beyond_the_margin() {
        let m = MetricCheck::named("request-success-rate").compare(Some(0.5), None);
        // 2 % vs 0.5 % + 0.5 point on 120 canary requests: noise.
        let p = compare_p_value(&m, Some(&window((3, 120), (5, 1080)))).unwrap();
        assert!(p > 0.05, "{p}");
        // 10 % of 600 against 1 %: far beyond.
        let p = compare_p_value(&m, Some(&window((60, 600), (54, 5400)))).unwrap();
        assert!(p < 1e-6, "{p}");
        // No canary errors: nothing to test.
        assert_eq!(
            compare_p_value(&m, Some(&window((0, 600), (54, 5400)))),
            Some(1.0)
        );
    }

    fn spending_config() -> AnalysisConfig {
        let mut config = AnalysisConfig::flagger_defaults();
        config.metrics = vec![ratio_check()];
        config
    }

    fn apply_at(
        spending: &mut Spending,
        config: &AnalysisConfig,
        at_s: u64,
        v: MetricValue,
    ) -> Check {
        let input = TickInput {
            metrics: vec![crate::input::MetricInput {
                name: config.metrics[0].name.clone(),
                value: v,
            }],
        };
        let mut checks = check_all(&config.metrics, &input, Reading::Guarded);
        spending.apply(config, at_s * 1000, &input, &mut checks);
        checks.remove(0)
    }

    #[test]
    fn a_noisy_failure_counts_early_and_holds_late() {
        let config = spending_config();
        let mut spending = Spending::default();
        // 3 of 120 against 5 of 1080 under maxRatio 1.2: fails the check,
        // p ≈ 0.065 against the margin.
        let noisy = || window((3, 120), (5, 1080));
        let first = apply_at(&mut spending, &config, 60, noisy());
        assert_eq!(first.verdict, Verdict::Fail, "{}", first.reason);
        let mut held = None;
        for tick in 2..=10 {
            let c = apply_at(&mut spending, &config, tick * 60, noisy());
            if c.verdict == Verdict::Hold {
                assert!(
                    c.for_evidence && c.reason.contains("not counted"),
                    "{}",
                    c.reason
                );
                held.get_or_insert(tick);
            } else {
                assert!(
                    held.is_none(),
                    "tick {tick} counted after a hold: {}",
                    c.reason
                );
            }
        }
        // p ≈ 0.065: the fourth window counts at ≤ 0.073, the fifth at ≤ 0.047.
        assert_eq!(held, Some(5));
        // A canary far beyond the margin still counts at the tenth window.
        let c = apply_at(
            &mut spending,
            &config,
            11 * 60,
            window((30, 120), (5, 1080)),
        );
        assert_eq!(c.verdict, Verdict::Fail, "{}", c.reason);
    }

    #[test]
    fn overlapping_windows_count_once() {
        let config = spending_config();
        let mut spending = Spending::default();
        let bad = || window((30, 120), (5, 1080));
        // Ticks every 10 s on a one-minute window: the failures at 10–50 s
        // see the requests the one at 0 s saw.
        let counted: Vec<u64> = (0..13)
            .filter_map(|i| {
                let c = apply_at(&mut spending, &config, 60 + i * 10, bad());
                (c.verdict == Verdict::Fail).then_some(60 + i * 10)
            })
            .collect();
        assert_eq!(counted, vec![60, 120, 180]);
    }
}
