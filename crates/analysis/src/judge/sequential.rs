//! serin's default judge: anytime-valid sequential tests of the canary
//! against stable, checked every second, with one false-rollback budget per
//! rollout.
//!
//! # What is tested
//! The null hypothesis of every test is "the canary is no worse than stable
//! plus the allowed margin". A rollback needs evidence *against* it, so low
//! traffic, noise and incidents that hit both versions alike produce no
//! rollback; they merely leave the tests inconclusive.
//!
//! - **Errors** (`request-success-rate`): the split test of
//!   [`crate::eprocess::SplitTest`]: each second, the 5xx responses are
//!   attributed to canary or stable; under the null a 5xx comes from the
//!   canary with probability at most `ρr₀/(ρr₀+1−ρ)` (`ρ` the canary's share
//!   of that second's requests). Margins: `maxRatio R` gives `r₀ = R` (ratio
//!   of error rates); `maxDelta D` points gives `r₀ = 1 + D/p̂` with `p̂`
//!   stable's error rate estimated from the seconds *before* (predictable, so
//!   the process stays a supermartingale; the translation of an additive
//!   margin into a ratio is approximate at the margin's boundary and
//!   conservative for identical versions). Without `compare`, the default
//!   margin is 0: any excess of errors over stable is harm.
//!   The split test only sees who got the errors, so with a margin much of
//!   the information is lost (and `r₀ > 1` is an approximation): with a
//!   margin the comparison is the weighted average, 9 to 1
//!   ([`TABLE_WEIGHT`]), of the safe test for 2×2 tables of
//!   [`crate::eprocess::TableTest`] (Turner, Ly & Grünwald), which tests the
//!   margin exactly (`p_c ≤ p_s + D`, `p_c ≤ R·p_s`) second by second from
//!   both versions' counts, errors and successes alike, and the split test.
//!   Each is valid under rates that move from second to second (a shared
//!   incident), so their average is too; it costs ln(10/9) against the
//!   table test and keeps the split test's quick answer to gross
//!   regressions. The table test is itself a mixture of bets on the
//!   canary's rate above the boundary (fixed log-odds shifts and a
//!   plug-in), so it needs no learning of the regression's size.
//!   Without a margin the split test is exact and about as powerful as the
//!   table test, and runs alone.
//! - **Latency** (`request-duration` = p99, `-p50/-p95/-p99`): a tail
//!   exceedance split test. Each second the threshold `Q` is stable's
//!   q-quantile over everything seen *before* that second (a lower
//!   quantile until stable has served the requests the q-quantile needs:
//!   `tail_level`); canary requests
//!   above `min(R·Q, Q + D)` and stable requests above `Q` are the events.
//!   If the canary's latency is no worse than `R×` (or `+D` ms of) stable's in
//!   the tail, a canary request exceeds its threshold at most as often as a
//!   stable request exceeds `Q`: the same null `r ≤ 1`. Default margin: R = 1.
//! - **`thresholdRange`** is first of all Flagger's point check, which the
//!   [`Analyzer`](crate::Analyzer) applies to every judge. Here it also
//!   feeds the evidence of harm, but only where the canary is also worse
//!   than stable (a bound breached by both versions is a shared incident,
//!   which holds rather than rolls back): the null is the union "canary
//!   within range OR canary no worse than stable", tested by the minimum of
//!   a [`RateTest`](crate::eprocess::RateTest) against the bound and a
//!   margin-0 comparison (the minimum of two e-processes is an e-process
//!   under either null). When the comparison margin is already 0 this is
//!   implied by the comparison, so only the comparison runs.
//! - **Custom and business metrics** (one scalar per version per tick): a
//!   sequential sign test. Each tick is "harm" when the canary is worse than
//!   stable by more than the margin (or outside the range), "fine"
//!   otherwise, ties skipped; the null is P(harm) ≤ 1/2 per tick, tested by
//!   the grid-mixture e-process at log-odds 0. Distribution-free, needs no
//!   variance estimate, and needs several ticks to reject (about 8 harmful
//!   ticks in a row at α = 0.01): with fewer it stays inconclusive (Hold, not Fail).
//! - **`request-rate`** is a load condition, not a quality: outside its range
//!   the judge holds.
//!
//! # One budget per rollout
//! All tests of a rollout form one e-value: the weighted average of the
//! metrics' e-values (each metric weight 1/M, its tests sharing its weight
//! equally). An average of e-processes with fixed weights is an e-process
//! for the intersection of their nulls, so by Ville's inequality the
//! probability that a harmless canary is *ever* rolled back, however long the
//! rollout and however often it is checked, is at most `alpha` (Vovk & Wang,
//! "E-values: calibration, combination and applications", Ann. Statist. 2021).
//! The e-processes run over the whole rollout; steps only change the split,
//! which the tests condition on.
//!
//! # Progression
//! Rollback as soon as the combined e-value reaches 1/α, at a tick or between
//! ticks ([`Judge::early`]). Otherwise a step passes once the canary has
//! served `min_requests` requests at that step (default
//! [`DEFAULT_MIN_REQUESTS`](crate::DEFAULT_MIN_REQUESTS)); before that the
//! judge holds. The judge itself never answers `Fail`: the
//! [`Analyzer`](crate::Analyzer) holds its verdict to every metric's
//! Flagger check ([`super::checks`]), so a metric outside its
//! `thresholdRange` or beyond its `compare` margin is a failed check here
//! too, and the e-processes can only add a rollback (sooner) or a hold (for
//! evidence), never a pass.
//!
//! **Evidence gate (default).** Counting requests alone promotes blind at
//! low traffic: 200 requests show a +5 point regression, not a +1 point one
//! on a 0.1 % base. So when the spec leaves `minRequests` unset, the *last*
//! step (the one whose pass promotes) also waits until each comparison could
//! have caught a regression of a planning size with about 95 % probability,
//! or rules it out:
//! - errors: [`DETECT_ERROR_POINTS`] (+1 point, the seed's own tolerance
//!   "stable + 1 point") above the comparison's null boundary;
//! - latency: [`DETECT_TAIL_RATIO`] (3× as many canary requests above
//!   stable's running quantile, e.g. 3 % instead of 1 % above stable's p99;
//!   for a lognormal tail of stable's spread that is a p99 about 25 % slower).
//!
//! "Could have caught" is measured by the information the split test has
//! gathered (Kullback-Leibler divergence of the attribution of events under
//! that alternative, summed over buckets, [`SplitTest::info`]): it depends
//! on request counts, the split of each second and stable's observed rate,
//! never on the outcomes. "Rules it out" is an e-process against the
//! canary's rate being at the null boundary plus the planning size
//! ([`RuleOut`], betting the canary is like stable) reaching 1/β with
//! β = 1 % (`GATE_BETA`): a planning-size regression gets through it
//! with at most 1 % probability, and through the other route with about
//! 5 %. (A confidence sequence for the canary's own rate, used before,
//! needed about 690 clean requests to rule +1 point out at 5 %; the
//! e-process about 460 at 1 %, the oracle 306 at 5 %.) The
//! last step also holds while the canary's errors over the analysis are
//! beyond its `compare` margin (see `beyond_margin`). The second route matters where the
//! split test is blind: with an additive margin (`maxDelta`) and a stable
//! version without errors, every error is the canary's under the null and
//! the alternative alike; clean canary traffic still narrows the bound, so
//! the requirement shrinks as clean data arrive instead of growing.
//! Sizing follows the usual sequential-design rule (Wald 1947, expected
//! sample size ≈ boundary / KL; here with a normal margin for 95 % power,
//! see `evidence_target`). The gate never makes a rollback more likely: it
//! only delays a pass, and the e-processes are valid at every time, however
//! long the rollout (Ville's inequality is over all times). An evidence hold
//! is not "no progress" for the progress deadline: data are arriving. Once
//! the gate is met the last step's own floor is a quarter of
//! `min_requests` (`LAST_STEP_SHARE`). An explicit `minRequests` turns
//! the gate off.
//!
//! *What counts as a "real" regression.* The harm tests use the spec's
//! margin (default 0: any excess over stable can roll back, given enough
//! evidence). The gate promises power only from the planning size on:
//! regressions smaller than +1 point of errors, or a tail less than 3× as
//! heavy, may be promoted if the data cannot show them before the evidence
//! for the planning size is in. A "proven safe" criterion (promote only when
//! a confidence sequence puts the canary within stable + margin) was
//! considered: with a margin of +1 point at a 0.1 % base it needs about as
//! many requests as the gate, but it cannot be met at all with the default
//! margin of 0, and with a ratio margin it never ends at low base rates (too
//! few errors to bound a ratio), so the gate sizes by power instead.
//!
//! **The prior over effects.** The grid mixture of [`crate::eprocess`] puts
//! a quarter of its weight on a very large effect (ratio ≈ 1100): at low
//! traffic a canary failing 5 % of 0.15 requests per second makes one error
//! every two minutes, and with that weight three errors in a row without a
//! stable error suffice instead of four or five.
//!
//! References: Ville (1939); Wald, "Sequential Analysis" (1947);
//! Howard, Ramdas, McAuliffe & Sekhon (2021);
//! Grünwald, de Heide & Koolen, "Safe testing" (JRSS B 2024); Lindon, Sanden
//! & Shirikian, "Rapid regression detection in software deployments through
//! sequential testing" (KDD 2022); Lindon & Malek, "Anytime-valid inference
//! for multinomial count data" (NeurIPS 2022).

use crate::{
    config::{AnalysisConfig, BuiltinMetric, Direction, MetricCheck, MetricKind},
    confseq,
    decision::{Bounds, Decision, HoldReason, MetricEvidence, MetricStatus, Verdict, num},
    eprocess::{LogitMixture, Margin, RateTest, RuleOut, SplitTest, TableTest, log_sum_exp},
    input::TickInput,
    judge::{Judge, point, range_violation, worse_by},
};
use serin_stats::{Counts, Pair};

/// The sequential judge. Memory is constant: a few counters and two
/// latency histograms whatever the traffic.
#[derive(Debug)]
pub struct SequentialJudge {
    alpha: f64,
    min_requests: u64,
    /// Whether promotion waits for enough evidence (see [`evidence_target`]);
    /// off when the spec sets `minRequests` itself or `pace: schedule`.
    evidence_gate: bool,
    /// The spec's pace: with `schedule`, the power reached is reported at
    /// the last step instead of held for.
    pace: crate::config::Pace,
    /// Whether the power to catch a planning-size regression is reported
    /// (off when the spec sets `minRequests`: it asked for its own pace).
    gate_reported: bool,
    /// The last step's weight: the step whose pass promotes.
    final_weight: u8,
    /// The weight of the last second observed.
    weight: u8,
    metrics: Vec<SeqMetric>,
    /// Everything stable served since the analysis started: the reference
    /// for latency thresholds and stable's error rate.
    stable: Counts,
    /// Everything the canary served since the analysis started.
    canary: Counts,
    /// Canary requests at the current step.
    step_canary: u64,
    /// The rollback, once decided: the judge's answer from then on.
    rolled_back: Option<Decision>,
}

#[derive(Debug)]
struct SeqMetric {
    check: MetricCheck,
    test: SeqTest,
    /// ln of this metric's weight in the combined e-value (`-inf` = untested).
    log_weight: f64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum SeqTest {
    Errors {
        cmp: SplitTest,
        /// The 2×2-table test of the same null, which also uses how many
        /// requests succeeded.
        table: TableTest,
        /// The table test's weight in the comparison (the split test has
        /// the rest): [`TABLE_WEIGHT`] with a margin, 0 without.
        table_weight: f64,
        max_ratio: Option<f64>,
        /// Allowed excess as a fraction (points / 100).
        max_delta: Option<f64>,
        /// Range test against the minimum success rate, with its margin-0 partner.
        range: Option<(RateTest, f64, SplitTest)>,
        /// The gate's other route: the canary's error rate shown below the
        /// null boundary plus the planning regression (absent from evidence
        /// saved before it existed: starts afresh).
        #[serde(default)]
        rule_out: RuleOut,
    },
    Latency {
        q: f64,
        cmp: SplitTest,
        ratio: f64,
        delta_ms: Option<f64>,
        /// Range test: P(latency > max) ≤ 1 − q, with its margin-0 partner.
        range: Option<(RateTest, f64, SplitTest)>,
        /// Cumulative exceedances (canary above its threshold, of requests; stable likewise).
        exceed: [u64; 4],
        /// The gate's other route: the canary's share of requests above its
        /// threshold shown below the planning regression's.
        #[serde(default)]
        rule_out: RuleOut,
    },
    Rate,
    Custom {
        cmp: Option<LogitMixture>,
        range: Option<(LogitMixture, Option<LogitMixture>)>,
        last: (Option<f64>, Option<f64>),
        ticks: u64,
    },
}

/// The smallest error regression promotion waits to be able to see, in
/// percentage points above the comparison's null boundary (stable + margin).
pub const DETECT_ERROR_POINTS: f64 = 1.0;

/// The smallest latency regression promotion waits to be able to see: the
/// canary's requests exceed stable's running quantile (times the margin)
/// this many times as often as stable's do. For p99 that is 2 % of canary
/// requests above stable's p99 instead of 1 %; with a lognormal tail of
/// stable's spread (σ = 0.5) it is a p99 about 15 % slower.
pub const DETECT_TAIL_RATIO: f64 = 3.0;

/// The table test's share of an error comparison with a margin. It is the
/// more powerful of the two there (it tests the margin exactly and uses the
/// successes too: at a 50 % split about twice as fast as the split test),
/// and its mixture has bets on large regressions of its own; the split
/// test keeps a tenth for its quick answer to gross regressions at low
/// traffic (a tenth costs it ln 10 ≈ 2.3 nats, three or four canary
/// errors at a 10 % split). Without a margin the split test is exact and
/// about as powerful, and runs alone (an average of two near-equal tests
/// only costs).
const TABLE_WEIGHT: f64 = 0.9;

/// With the evidence gate on and met, the last step needs this fraction of
/// `minRequests` instead of all of it (50 of the default 200). The gate
/// sizes the evidence over the whole analysis (at 0 % errors it is met
/// after ≈ 450 clean canary requests, the oracle needs 306); the full
/// floor on the last step as well made a healthy canary at 100
/// requests/s with three 2-second steps wait for 680 (2.2× the oracle).
/// Every earlier step keeps the whole floor, and the last still needs
/// traffic at its own weight: a step without requests never promotes.
const LAST_STEP_SHARE: u64 = 4;

/// Power asked of the evidence gate: one-sided normal quantile (95 %).
const DETECT_POWER_Z: f64 = 1.645;

/// The level at which the gate's bound rules a planning-size regression
/// out: 1 %. At 5 % (the complement of the power the other route asks)
/// the rule-out, which bets the canary is like stable, let a canary half
/// a point beyond a `maxRatio 1.2` margin through on a lucky first minute
/// (15 % of runs at 100 requests/s against none with the confidence
/// sequence it replaced); at 1 % a healthy canary still needs fewer
/// requests than the oracle's 95 %-power sample (0 % errors: 460 of its
/// requests against 306 — the floors of the earlier steps bind first —,
/// 0.5 %: ≈ 1,300 against 1,847).
const GATE_BETA: f64 = 0.01;

/// The expected ln e-value a comparison must be able to reach under the
/// planning alternative before the rollout may promote: crossing needs
/// `a = ln(1/α) − ln(weight) − ln(w_min)` (the metric's share of the budget
/// and the mixture's smallest prior weight of one grid point); with the ln
/// likelihood ratio roughly normal with variance 2× its mean, reaching `a`
/// with probability 95 % needs a mean `T` with `T − z·√(2T) = a`.
///
/// `cost` is what the test loses against the planning alternative's own
/// likelihood ratio: the grid mixture's smallest prior weight for the split
/// test ([`crate::eprocess::grid_penalty`]), the plug-in's learning for the
/// table test (the prior weight of its bet nearest the planning regression,
/// [`TableTest::info_cost`]).
fn evidence_target(alpha: f64, log_weight: f64, cost: f64) -> f64 {
    let a = (1.0 / alpha).ln() - log_weight + cost;
    let z = DETECT_POWER_Z;
    let root = (z * std::f64::consts::SQRT_2 + (2.0 * z * z + 4.0 * a).sqrt()) / 2.0;
    root * root
}

/// Probability that a planning-size regression would have crossed the
/// rollback bound by now, given the information `info` gathered: the ln
/// likelihood ratio roughly normal with mean `info` and variance `2·info`,
/// against the bound `ln(1/α) − ln(weight) − ln(w_min)`.
fn power_of(info: f64, alpha: f64, log_weight: f64, cost: f64) -> f64 {
    if info.is_nan() || info <= 0.0 {
        return 0.0;
    }
    let a = (1.0 / alpha).ln() - log_weight + cost;
    let z = (info - a) / (2.0 * info).sqrt();
    let p = statrs::distribution::ContinuousCDF::cdf(&statrs::distribution::Normal::standard(), z);
    if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// One comparison against the planning-size regression (see
/// [`SequentialJudge::gate`]).
struct Gate {
    /// The metric's name.
    metric: String,
    /// The planning regression in words.
    what: String,
    /// Power reached so far (0..=1); at least 0.95 once the bound rules the
    /// regression out.
    power: f64,
    /// While the gate is not met: the canary requests still wanted, if they
    /// can be estimated.
    more: Option<Option<f64>>,
}

/// The highest error rate the comparison's null allows the canary when
/// stable's rate is `p_s`: `min(R·p_s, p_s + D)`, or `p_s` without margins.
fn null_boundary(p_s: f64, max_ratio: Option<f64>, max_delta: Option<f64>) -> f64 {
    let mut boundary = f64::INFINITY;
    if let Some(r) = max_ratio {
        boundary = boundary.min(p_s * r.max(1.0));
    }
    if let Some(d) = max_delta {
        boundary = boundary.min(p_s + d.max(0.0));
    }
    if boundary.is_finite() { boundary } else { p_s }
}

/// Stable requests needed before its q-quantile is used as a threshold.
fn min_reference(q: f64) -> u64 {
    ((5.0 / (1.0 - q)).ceil() as u64).max(50)
}

/// Fewest stable requests before the tail test compares at all: 50, so
/// the lowest quantile it compares above is stable's p90 (with 20 it was
/// the p75, and a canary slower in the body of its latencies but not in
/// the tail was rolled back on a p99 metric whose two values looked
/// equal).
const MIN_TAIL_REFERENCE: u64 = 50;

/// The quantile of stable's latency the tail test's threshold is taken at
/// after `seen` stable requests: `q` once it is known ([`min_reference`]:
/// five stable requests expected above it), before that the highest level
/// with five above it (p90 after 50 stable requests, p95 after 100), from
/// [`MIN_TAIL_REFERENCE`] on. The split test is valid for *any* threshold
/// fixed before the second it is applied to: if the canary is no slower
/// than stable (times the margin), a canary request exceeds `R·Q` at most
/// as often as a stable one exceeds `Q`, whatever `Q`. So a lower quantile
/// early keeps the false-rollback budget and catches a slower canary
/// before stable has served the 500 requests its p99 needs (a canary 4×
/// as slow: 32 s at 20 requests/s, all of it waiting for them). What it
/// cannot do early is see a regression confined to the far tail; that
/// waits for the q-quantile, as before.
fn tail_level(q: f64, seen: u64) -> Option<f64> {
    if seen < MIN_TAIL_REFERENCE {
        return None;
    }
    if seen >= min_reference(q) {
        return Some(q);
    }
    Some(q.min(1.0 - 5.0 / seen as f64))
}

// === impl SeqTest ===

impl SeqTest {
    fn for_check(m: &MetricCheck) -> SeqTest {
        let compare = m.compare.unwrap_or_default();
        match m.kind {
            MetricKind::Builtin(BuiltinMetric::RequestSuccessRate) => {
                let max_delta = compare.max_delta.map(|d| d / 100.0);
                let margin = max_delta.is_some_and(|d| d > 0.0)
                    || compare.max_ratio.is_some_and(|r| r > 1.0);
                let range = match m.threshold_range.0 {
                    Some(min) if margin && min > 0.0 && min < 100.0 => {
                        Some((RateTest::new(), 1.0 - min / 100.0, SplitTest::new()))
                    }
                    _ => None,
                };
                let mut margins = Vec::new();
                if let Some(r) = compare.max_ratio {
                    margins.push(Margin::Ratio(r.max(1.0)));
                }
                if let Some(d) = max_delta {
                    margins.push(Margin::Delta(d.max(0.0)));
                }
                SeqTest::Errors {
                    cmp: SplitTest::new(),
                    table: TableTest::new(&margins, DETECT_ERROR_POINTS / 100.0),
                    table_weight: if margin { TABLE_WEIGHT } else { 0.0 },
                    max_ratio: compare.max_ratio,
                    max_delta,
                    range,
                    rule_out: RuleOut::new(),
                }
            }
            MetricKind::Builtin(BuiltinMetric::RequestRate) => SeqTest::Rate,
            MetricKind::Builtin(b) => {
                let q = b.quantile().unwrap_or(0.99);
                let ratio = compare.max_ratio.unwrap_or(1.0).max(1.0);
                let delta_ms = compare.max_delta;
                let margin = ratio > 1.0 || delta_ms.is_some_and(|d| d > 0.0);
                let range = match m.threshold_range.1 {
                    Some(max) if margin && max > 0.0 => {
                        Some((RateTest::new(), max, SplitTest::new()))
                    }
                    _ => None,
                };
                SeqTest::Latency {
                    q,
                    cmp: SplitTest::new(),
                    ratio,
                    delta_ms,
                    range,
                    exceed: [0; 4],
                    rule_out: RuleOut::new(),
                }
            }
            MetricKind::Custom => {
                let has_range = m.threshold_range.0.is_some() || m.threshold_range.1.is_some();
                SeqTest::Custom {
                    cmp: m.compare.map(|_| LogitMixture::new()),
                    range: has_range
                        .then(|| (LogitMixture::new(), m.compare.map(|_| LogitMixture::new()))),
                    last: (None, None),
                    ticks: 0,
                }
            }
        }
    }

    /// Whether this test contributes evidence at all.
    fn is_tested(&self) -> bool {
        match self {
            SeqTest::Rate => false,
            SeqTest::Custom { cmp, range, .. } => cmp.is_some() || range.is_some(),
            _ => true,
        }
    }

    /// ln e-value of this metric: the equal-weight average of its tests,
    /// where a range test counts as min(range, margin-0 comparison).
    fn log_e(&self) -> f64 {
        fn avg(parts: &[f64]) -> f64 {
            if parts.is_empty() {
                return 0.0;
            }
            log_sum_exp(parts.iter().copied()) - (parts.len() as f64).ln()
        }
        match self {
            SeqTest::Errors {
                cmp,
                table,
                table_weight,
                range,
                ..
            } => {
                let compared = if *table_weight > 0.0 {
                    log_sum_exp(
                        [
                            (1.0 - table_weight).ln() + cmp.log_e(),
                            table_weight.ln() + table.log_e(),
                        ]
                        .into_iter(),
                    )
                } else {
                    cmp.log_e()
                };
                match range {
                    Some((r, _, cmp0)) => avg(&[compared, r.log_e().min(cmp0.log_e())]),
                    None => compared,
                }
            }
            SeqTest::Latency { cmp, range, .. } => match range {
                Some((r, _, cmp0)) => avg(&[cmp.log_e(), r.log_e().min(cmp0.log_e())]),
                None => cmp.log_e(),
            },
            SeqTest::Rate => 0.0,
            SeqTest::Custom { cmp, range, .. } => {
                let mut parts = Vec::with_capacity(2);
                if let Some(c) = cmp {
                    parts.push(c.log_e());
                }
                if let Some((r, c0)) = range {
                    parts.push(match c0 {
                        Some(c0) => r.log_e().min(c0.log_e()),
                        None => r.log_e(),
                    });
                }
                avg(&parts)
            }
        }
    }
}

/// What a [`SequentialJudge`] has gathered, as saved with the rollout's
/// state: its e-processes and the counts they go on from. Restored after a
/// restart, the false-rollback budget goes on being spent where it stood
/// (a fresh budget per restart would give a canary a new chance at a false
/// rollback each time) and no evidence is lost but that of the seconds
/// since the last save.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Snapshot {
    /// [`SNAPSHOT_VERSION`] when written.
    version: u32,
    /// The budget the evidence was gathered under.
    alpha: f64,
    /// Each metric's check, as configured, and its tests.
    metrics: Vec<(MetricCheck, SeqTest)>,
    stable: Counts,
    canary: Counts,
    step_canary: u64,
    weight: u8,
}

/// [`Snapshot`], borrowed, for writing.
#[derive(serde::Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    alpha: f64,
    metrics: Vec<(&'a MetricCheck, &'a SeqTest)>,
    stable: &'a Counts,
    canary: &'a Counts,
    step_canary: u64,
    weight: u8,
}

/// The layout of [`Snapshot`]; another version is not resumed from.
const SNAPSHOT_VERSION: u32 = 1;

// === impl SequentialJudge ===

impl SequentialJudge {
    /// The evidence gathered so far, to be saved with the rollout's state.
    pub fn snapshot(&self) -> Result<serde_json::Value, serde_json::Error> {
        let snapshot = SnapshotRef {
            version: SNAPSHOT_VERSION,
            alpha: self.alpha,
            metrics: self.metrics.iter().map(|m| (&m.check, &m.test)).collect(),
            stable: &self.stable,
            canary: &self.canary,
            step_canary: self.step_canary,
            weight: self.weight,
        };
        serde_json::to_value(snapshot)
    }

    /// Goes on from a [`snapshot`](Self::snapshot) of a judge with the same
    /// configuration. Refused (the judge unchanged) when the snapshot is of
    /// another layout, another budget or other metrics.
    pub fn resume(&mut self, value: serde_json::Value) -> Result<(), super::ResumeError> {
        use super::ResumeError;
        let snapshot: Snapshot =
            serde_json::from_value(value).map_err(|e| ResumeError::Format(e.to_string()))?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(ResumeError::Mismatch(format!(
                "evidence layout {} (this serin reads {SNAPSHOT_VERSION})",
                snapshot.version
            )));
        }
        if snapshot.alpha != self.alpha {
            return Err(ResumeError::Mismatch(format!(
                "alpha {} (now {})",
                num(snapshot.alpha),
                num(self.alpha)
            )));
        }
        let same = snapshot.metrics.len() == self.metrics.len()
            && snapshot
                .metrics
                .iter()
                .zip(&self.metrics)
                .all(|((check, test), m)| {
                    *check == m.check
                        && std::mem::discriminant(test) == std::mem::discriminant(&m.test)
                });
        if !same {
            return Err(ResumeError::Mismatch(
                "the metrics changed since the evidence was saved".to_owned(),
            ));
        }
        for (m, (_, test)) in self.metrics.iter_mut().zip(snapshot.metrics) {
            m.test = test;
        }
        self.stable = snapshot.stable;
        self.canary = snapshot.canary;
        self.step_canary = snapshot.step_canary;
        self.weight = snapshot.weight;
        self.rolled_back = None;
        Ok(())
    }

    /// A judge for `config`.
    pub fn new(config: &AnalysisConfig) -> Self {
        let mut metrics: Vec<SeqMetric> = config
            .metrics
            .iter()
            .map(|m| SeqMetric {
                check: m.clone(),
                test: SeqTest::for_check(m),
                log_weight: f64::NEG_INFINITY,
            })
            .collect();
        let tested = metrics.iter().filter(|m| m.test.is_tested()).count();
        for m in &mut metrics {
            if m.test.is_tested() {
                m.log_weight = -(tested as f64).ln();
            }
        }
        SequentialJudge {
            alpha: config.alpha,
            min_requests: config.min_requests(),
            evidence_gate: config.min_requests.is_none()
                && config.pace == crate::config::Pace::Evidence,
            pace: config.pace,
            gate_reported: config.min_requests.is_none(),
            final_weight: config.steps.last().copied().unwrap_or(100),
            weight: 0,
            metrics,
            stable: Counts::default(),
            canary: Counts::default(),
            step_canary: 0,
            rolled_back: None,
        }
    }

    /// ln of the combined e-value of the rollout.
    pub fn log_e(&self) -> f64 {
        let parts = self
            .metrics
            .iter()
            .filter(|m| m.log_weight.is_finite())
            .map(|m| m.log_weight + m.test.log_e());
        let v = log_sum_exp(parts);
        if v.is_nan() { 0.0 } else { v.max(f64::MIN) }
    }

    /// The combined e-value of the rollout (evidence of harm).
    pub fn e_value(&self) -> f64 {
        self.log_e().exp()
    }

    fn crossed(&self) -> bool {
        self.log_e() >= (1.0 / self.alpha).ln()
    }

    /// Where each comparison stands against the planning-size regression:
    /// the power it reached and, while short of it, how many more canary
    /// requests it wants.
    ///
    /// Two routes, whichever comes first:
    /// - *power*: the split test's information under the planning
    ///   alternative reached its target ([`evidence_target`]);
    /// - *bound*: the rule-out e-process of the canary's own rate (errors,
    ///   or requests above stable's running quantile) against the
    ///   comparison's null boundary plus the planning size reached 1/β
    ///   ([`GATE_BETA`]).
    ///   The split test alone cannot get there when stable shows no errors
    ///   under an additive margin (every error is the canary's under null
    ///   and alternative alike); clean canary traffic narrows the bound, so
    ///   the requirement shrinks as clean data arrive.
    fn gate(&self) -> Vec<Gate> {
        let mut out = Vec::new();
        for m in &self.metrics {
            if !m.log_weight.is_finite() {
                continue;
            }
            // Each route to power: (information so far, per canary request
            // lately, ln of its share of the metric's weight, its cost).
            let half = std::f64::consts::LN_2;
            let penalty = crate::eprocess::grid_penalty();
            let (routes, range, what, rule_out, reference, limit) = match &m.test {
                SeqTest::Errors {
                    cmp,
                    table,
                    table_weight,
                    range,
                    max_ratio,
                    max_delta,
                    rule_out,
                } => {
                    let p_s = self.stable.error_ratio().unwrap_or(0.0);
                    let boundary = null_boundary(p_s, *max_ratio, *max_delta);
                    let mut routes = vec![(
                        cmp.info(),
                        cmp.info_per_canary_request(),
                        -(1.0 - table_weight).ln(),
                        penalty,
                    )];
                    if *table_weight > 0.0 {
                        routes.push((
                            table.info(),
                            table.info_per_canary_request(),
                            -table_weight.ln(),
                            table.info_cost(),
                        ));
                    }
                    (
                        routes,
                        range.is_some(),
                        format!("+{} point of errors", num(DETECT_ERROR_POINTS)),
                        rule_out,
                        p_s,
                        boundary + DETECT_ERROR_POINTS / 100.0,
                    )
                }
                SeqTest::Latency {
                    cmp,
                    range,
                    q,
                    exceed,
                    rule_out,
                    ..
                } => {
                    let stable_share = if exceed[3] > 0 {
                        exceed[2] as f64 / exceed[3] as f64
                    } else {
                        1.0 - q
                    };
                    (
                        vec![(cmp.info(), cmp.info_per_canary_request(), 0.0, penalty)],
                        range.is_some(),
                        format!(
                            "{}× as many requests above stable's p{}",
                            num(DETECT_TAIL_RATIO),
                            (q * 100.0).round()
                        ),
                        rule_out,
                        stable_share,
                        DETECT_TAIL_RATIO * stable_share.max(1.0 - q),
                    )
                }
                _ => continue,
            };
            let part = if range { half } else { 0.0 };
            let bounded = rule_out.log_e() >= (1.0 / GATE_BETA).ln();
            let mut by_power: f64 = 0.0;
            let mut met = false;
            let mut wanted: Option<f64> = None;
            for (info, rate, share, cost) in routes {
                let log_weight = m.log_weight - part - share;
                let target = evidence_target(self.alpha, log_weight, cost);
                by_power = by_power.max(power_of(info, self.alpha, log_weight, cost));
                met |= info >= target;
                if rate > 0.0 {
                    let n = ((target - info) / rate).ceil();
                    wanted = Some(wanted.map_or(n, |w| w.min(n)));
                }
            }
            let mut gate = Gate {
                metric: m.check.name.clone(),
                what,
                power: if bounded || met {
                    by_power.max(0.95)
                } else {
                    by_power
                },
                more: None,
            };
            if !met && !bounded {
                // Requests still needed by each route, if the rates stay as seen.
                let by_bound = rule_out.trials_to(GATE_BETA, reference, limit);
                gate.more = Some(match (wanted, by_bound) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                });
            }
            out.push(gate);
        }
        out
    }

    /// Why promotion must wait for more evidence: one reason per comparison
    /// that could neither have caught a regression of the planning size
    /// with 95 % probability yet, nor rule it out. Empty when the gate is off
    /// or satisfied. The gate only delays a pass: it never makes a rollback
    /// more likely.
    fn evidence_missing(&self) -> Vec<String> {
        if !self.evidence_gate {
            return Vec::new();
        }
        self.gate()
            .into_iter()
            .filter_map(|g| {
                let more = g.more?.map_or_else(
                    || "more canary requests".to_owned(),
                    |n| format!("about {} more canary requests", num(n.max(1.0))),
                );
                Some(format!(
                    "{}: holding promotion for evidence: {more} before a regression of {} would be caught (95 %) or ruled out (power so far {} %)",
                    g.metric,
                    g.what,
                    num((g.power * 100.0).floor())
                ))
            })
            .collect()
    }

    /// At the last step, with the evidence gate on: one reason per error
    /// comparison with a `compare` margin whose data over the whole
    /// analysis put the canary beyond it (its error rate above
    /// `min(R·p_s, p_s + D)` at stable's rate `p_s`, both pooled over every
    /// second so far). Promotion waits until they are within it, or until
    /// the e-value decides. This is Flagger's check over a longer window,
    /// and it is what keeps a canary beyond its margin from being promoted
    /// while its one-minute failures are too noisy to count
    /// ([`Spending`](super::checks::Spending)): the e-value, valid at every
    /// null point whatever the wait, then has the time it needs. A canary
    /// at the boundary crosses below it again and again (a random walk
    /// without drift), so the wait ends; one inside the margin is seldom
    /// held.
    fn beyond_margin(&self) -> Vec<String> {
        if !self.evidence_gate {
            return Vec::new();
        }
        self.metrics
            .iter()
            .filter_map(|m| {
                let SeqTest::Errors {
                    max_ratio,
                    max_delta,
                    ..
                } = &m.test
                else {
                    return None;
                };
                m.check.compare?;
                let (pc, ps) = (self.canary.error_ratio()?, self.stable.error_ratio()?);
                let bound = null_boundary(ps, *max_ratio, *max_delta);
                (pc > bound).then(|| {
                    format!(
                        "{}: holding promotion for evidence: {} % errors in the canary's {} requests so far, beyond stable's {} % and the margin (at most {} %): waiting until they are within it or the evidence decides",
                        m.check.name,
                        num(100.0 * pc),
                        self.canary.requests,
                        num(100.0 * ps),
                        num(100.0 * bound)
                    )
                })
            })
            .collect()
    }

    /// At the last step with `pace: schedule`: what the evidence reached,
    /// said instead of held for.
    fn power_reached(&self) -> Vec<String> {
        self.gate()
            .into_iter()
            .filter(|g| g.more.is_some())
            .map(|g| {
                format!(
                    "{}: promoting at the end of the schedule (pace: schedule) with {} % power to have caught a regression of {}",
                    g.metric,
                    num((g.power * 100.0).floor()),
                    g.what
                )
            })
            .collect()
    }

    fn has_builtin_tests(&self) -> bool {
        self.metrics
            .iter()
            .any(|m| matches!(m.test, SeqTest::Errors { .. } | SeqTest::Latency { .. }))
    }

    /// Per-metric evidence and the verdict-relevant facts.
    fn evidence(&self, input: Option<&TickInput>, crossed: bool) -> Vec<MetricEvidence> {
        let threshold = 1.0 / self.alpha;
        let mut out = Vec::with_capacity(self.metrics.len());
        for m in &self.metrics {
            let e = m.test.log_e().exp();
            // This metric's own e-value that would cross alone.
            let alone = threshold / m.log_weight.exp();
            let harm = crossed
                && m.log_weight.is_finite()
                && m.test.log_e() + m.log_weight >= self.log_e() - 1e-9
                || (m.log_weight.is_finite() && e >= alone);
            let mut ev =
                MetricEvidence::new(&m.check.name, MetricStatus::Inconclusive, String::new());
            ev.range = m.check.threshold_range;
            ev.canary_requests = self.canary.requests;
            ev.stable_requests = self.stable.requests;
            if m.log_weight.is_finite() {
                ev.e_value = Some(e);
            }
            let bound_txt = format!("e-value {} (rolls back at {})", num(e), num(alone));
            match &m.test {
                SeqTest::Errors {
                    max_ratio,
                    max_delta,
                    ..
                } => {
                    let c = self.canary.success_rate();
                    let s = self.stable.success_rate();
                    ev.canary = c;
                    ev.stable = s;
                    ev.margin = Some(max_delta.unwrap_or(0.0) * 100.0);
                    let (lo, hi) =
                        confseq::bernoulli(self.canary.requests, self.canary.errors, self.alpha);
                    ev.interval = Some(Bounds {
                        low: 100.0 * (1.0 - hi),
                        high: 100.0 * (1.0 - lo),
                    });
                    let ce = c.map(|c| 100.0 - c);
                    let se = s.map(|s| 100.0 - s);
                    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{}%", num(v)));
                    let mut margin = match max_delta {
                        Some(d) if *d > 0.0 => format!(", margin +{} points", num(d * 100.0)),
                        _ => String::new(),
                    };
                    if let Some(r) = max_ratio {
                        margin.push_str(&format!(", margin ×{}", num(*r)));
                    }
                    ev.reason = format!(
                        "errors {} of {} canary requests vs {} of stable's{margin}: {bound_txt}",
                        pct(ce),
                        self.canary.requests,
                        pct(se),
                    );
                }
                SeqTest::Latency {
                    q,
                    ratio,
                    delta_ms,
                    exceed,
                    ..
                } => {
                    ev.canary = self.canary.latency_ms(*q);
                    ev.stable = self.stable.latency_ms(*q);
                    ev.margin = delta_ms.or(Some(0.0));
                    ev.interval = confseq::quantile(&self.canary.latency, *q, self.alpha)
                        .map(|(low, high)| Bounds { low, high });
                    let p = (q * 100.0).round();
                    let mut margin = String::new();
                    if *ratio > 1.0 {
                        margin.push_str(&format!(" ×{}", num(*ratio)));
                    }
                    if let Some(d) = delta_ms {
                        margin.push_str(&format!(" or +{} ms", num(*d)));
                    }
                    let pct = |x: u64, n: u64| num(100.0 * x as f64 / n as f64);
                    let need = min_reference(*q);
                    let seen = self.stable.latency.count();
                    let tail = if seen < need && exceed[1] == 0 {
                        match tail_level(*q, seen) {
                            Some(level) => format!(
                                "stable's p{p} needs {need} stable requests, has {seen}: meanwhile compared above its running p{}",
                                (level * 100.0).floor()
                            ),
                            None => format!(
                                "no tail comparison yet (stable's p{p} needs {need} stable requests, has {seen})"
                            ),
                        }
                    } else if exceed[1] == 0 || exceed[3] == 0 {
                        "no tail comparison yet (no second with requests to both versions)"
                            .to_owned()
                    } else {
                        format!(
                            "{}% of {} canary requests above stable's running p{p}{margin} vs {}% of stable's",
                            pct(exceed[0], exceed[1]),
                            exceed[1],
                            pct(exceed[2], exceed[3]),
                        )
                    };
                    ev.reason = format!("{tail}: {bound_txt}");
                }
                SeqTest::Rate => {
                    let p = point(&m.check, input.and_then(|i| i.get(&m.check.name)));
                    ev.canary = p.canary;
                    ev.stable = p.stable;
                    ev.status = match p
                        .canary
                        .map(|v| range_violation(m.check.threshold_range, v))
                    {
                        Some(None) => MetricStatus::Pass,
                        Some(Some(_)) => MetricStatus::Inconclusive,
                        None => MetricStatus::NoData,
                    };
                    out.push(ev);
                    continue;
                }
                SeqTest::Custom { last, ticks, .. } => {
                    ev.canary = last.0;
                    ev.stable = last.1;
                    ev.margin = m.check.compare.and_then(|c| c.max_delta);
                    ev.reason = if m.log_weight.is_finite() {
                        format!("sign test over {ticks} ticks: {bound_txt}")
                    } else {
                        String::new()
                    };
                }
            }
            ev.status = if harm {
                MetricStatus::Harm
            } else {
                MetricStatus::Inconclusive
            };
            out.push(ev);
        }
        out
    }

    fn rollback_decision(&self, at_ms: u64, input: Option<&TickInput>) -> Decision {
        let mut metrics = self.evidence(input, true);
        for ev in &mut metrics {
            let unit = self
                .metrics
                .iter()
                .find(|m| m.check.name == ev.name)
                .map_or("", |m| m.check.unit());
            let value = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{}{unit}", num(v)));
            ev.reason = format!(
                "{}: canary {} vs stable {}; {}",
                ev.name,
                value(ev.canary),
                value(ev.stable),
                ev.reason
            );
        }
        let mut reasons: Vec<String> = metrics
            .iter()
            .filter(|m| m.status == MetricStatus::Harm)
            .map(|m| m.reason.clone())
            .collect();
        reasons.insert(
            0,
            format!(
                "evidence of harm: rollout e-value {} ≥ 1/α = {}",
                num(self.e_value()),
                num(1.0 / self.alpha)
            ),
        );
        Decision {
            verdict: Verdict::Rollback,
            at_ms,
            metrics,
            reasons,
            hold: None,
        }
    }
}

impl Judge for SequentialJudge {
    fn snapshot(&self) -> Option<serde_json::Value> {
        SequentialJudge::snapshot(self).ok()
    }

    fn resume(&mut self, evidence: serde_json::Value) -> Result<(), super::ResumeError> {
        SequentialJudge::resume(self, evidence)
    }

    fn observe(&mut self, _at_ms: u64, canary_weight: u8, delta: &Pair) {
        if self.rolled_back.is_some() {
            return;
        }
        self.weight = canary_weight;
        let (c, s) = (&delta.canary, &delta.stable);
        for m in &mut self.metrics {
            match &mut m.test {
                SeqTest::Errors {
                    cmp,
                    table,
                    table_weight,
                    max_ratio,
                    max_delta,
                    range,
                    rule_out,
                } => {
                    if *table_weight > 0.0 {
                        table.update(c.requests, c.errors, s.requests, s.errors);
                    }
                    // Stable's rate from the past only (predictable), shrunk
                    // toward nothing so an unknown rate gives a wide margin.
                    let p_s =
                        (self.stable.errors as f64 + 0.5) / (self.stable.requests as f64 + 1.0);
                    let mut r0 = f64::INFINITY;
                    if let Some(r) = max_ratio {
                        r0 = r0.min(*r);
                    }
                    if let Some(d) = max_delta {
                        r0 = r0.min(1.0 + *d / p_s);
                    }
                    if !r0.is_finite() {
                        r0 = 1.0;
                    }
                    let r0 = r0.max(1.0);
                    let limit =
                        null_boundary(p_s, *max_ratio, *max_delta) + DETECT_ERROR_POINTS / 100.0;
                    rule_out.update(c.requests, c.errors, p_s, limit);
                    cmp.plan(p_s, r0 + DETECT_ERROR_POINTS / 100.0 / p_s);
                    cmp.update(c.requests, c.errors, s.requests, s.errors, r0.max(1.0));
                    if let Some((rate, p0, cmp0)) = range {
                        rate.update(c.requests, c.errors, *p0);
                        cmp0.update(c.requests, c.errors, s.requests, s.errors, 1.0);
                    }
                }
                SeqTest::Latency {
                    q,
                    cmp,
                    ratio,
                    delta_ms,
                    range,
                    exceed,
                    rule_out,
                } => {
                    if let Some((rate, max_ms, _)) = range {
                        let above = c.latency.count_above((*max_ms * 1000.0) as u64);
                        rate.update(c.latency.count(), above, 1.0 - *q);
                    }
                    let seen = self.stable.latency.count();
                    let Some(level) = tail_level(*q, seen) else {
                        continue;
                    };
                    // Until stable's q-quantile is known (`min_reference`),
                    // a lower one it does know: the e-value is valid for
                    // any threshold fixed before the second (see
                    // `tail_level`); the gate and the shares reported wait
                    // for the q-quantile itself.
                    let full = seen >= min_reference(*q);
                    let Some(reference) = self.stable.latency.quantile_micros(level) else {
                        continue;
                    };
                    let mut canary_threshold = reference * *ratio;
                    if let Some(d) = delta_ms {
                        canary_threshold = canary_threshold.min(reference + *d * 1000.0);
                    }
                    let xc = c.latency.count_above(canary_threshold as u64);
                    let xs = s.latency.count_above(reference as u64);
                    let (nc, ns) = (c.latency.count(), s.latency.count());
                    // No plan (no information for the gate) below the
                    // q-quantile: the gate promises power at the q-tail.
                    cmp.plan(if full { 1.0 - *q } else { 0.0 }, DETECT_TAIL_RATIO);
                    cmp.update(nc, xc, ns, xs, 1.0);
                    if let Some((_, _, cmp0)) = range {
                        let xc0 = c.latency.count_above(reference as u64);
                        cmp0.update(nc, xc0, ns, xs, 1.0);
                    }
                    if full && nc > 0 && ns > 0 {
                        // Stable's share above its quantile so far, shrunk
                        // toward the quantile's own (predictable).
                        let prior = 100.0;
                        let share =
                            (exceed[2] as f64 + prior * (1.0 - *q)) / (exceed[3] as f64 + prior);
                        rule_out.update(nc, xc, share, DETECT_TAIL_RATIO * share.max(1.0 - *q));
                        for (slot, v) in exceed.iter_mut().zip([xc, nc, xs, ns]) {
                            *slot = slot.saturating_add(v);
                        }
                    }
                }
                SeqTest::Rate | SeqTest::Custom { .. } => {}
            }
        }
        self.stable.merge(s);
        self.canary.merge(c);
        self.step_canary = self.step_canary.saturating_add(c.requests);
    }

    fn step_advanced(&mut self, _at_ms: u64, _new_weight: u8) {
        self.step_canary = 0;
    }

    fn early(&mut self, at_ms: u64) -> Option<Decision> {
        if self.rolled_back.is_none() && self.crossed() {
            self.rolled_back = Some(self.rollback_decision(at_ms, None));
        }
        self.rolled_back.clone()
    }

    fn evaluate(&mut self, at_ms: u64, input: &TickInput) -> Decision {
        if let Some(d) = &self.rolled_back {
            return d.clone();
        }
        // Custom metrics: one observation per tick.
        for m in &mut self.metrics {
            let SeqTest::Custom {
                cmp,
                range,
                last,
                ticks,
            } = &mut m.test
            else {
                continue;
            };
            let p = point(&m.check, input.get(&m.check.name));
            *last = (p.canary, p.stable);
            let Some(cv) = p.canary else {
                continue;
            };
            *ticks += 1;
            let compare = m.check.compare.unwrap_or_default();
            if let (Some(cmp), Some(sv)) = (cmp.as_mut(), p.stable) {
                let worse = worse_by(m.check.direction, cv, sv);
                let delta = compare.max_delta.unwrap_or(if compare.max_ratio.is_some() {
                    f64::INFINITY
                } else {
                    0.0
                });
                let ratio_bad = compare.max_ratio.is_some_and(|r| {
                    let rel = match m.check.direction {
                        Direction::HigherIsBetter => sv / cv,
                        _ => cv / sv,
                    };
                    rel.is_finite() && rel > r
                });
                if worse > delta || ratio_bad {
                    cmp.update(1, 0, 0.0);
                } else if worse < delta || delta.is_infinite() {
                    cmp.update(0, 1, 0.0);
                }
            }
            if let Some((r, cmp0)) = range.as_mut() {
                let (lo, hi) = m.check.threshold_range;
                let outside = match m.check.direction {
                    Direction::LowerIsBetter => hi.is_some_and(|h| cv > h),
                    Direction::HigherIsBetter => lo.is_some_and(|l| cv < l),
                    Direction::Either => range_violation((lo, hi), cv).is_some(),
                };
                r.update(u64::from(outside), u64::from(!outside), 0.0);
                if let (Some(c0), Some(sv)) = (cmp0.as_mut(), p.stable) {
                    let worse = worse_by(m.check.direction, cv, sv);
                    if worse > 0.0 {
                        c0.update(1, 0, 0.0);
                    } else if worse < 0.0 {
                        c0.update(0, 1, 0.0);
                    }
                }
            }
        }
        if self.crossed() {
            let d = self.rollback_decision(at_ms, Some(input));
            self.rolled_back = Some(d.clone());
            return d;
        }
        // Each metric's own check (range, compare, data present) is held
        // against this decision by the `Analyzer`; here only what the
        // sequential evidence adds: enough requests at this step, and at the
        // last step enough evidence to promote.
        let mut metrics = self.evidence(Some(input), false);
        let mut reasons = Vec::new();
        let mut hold = false;
        let mut hold_kind = HoldReason::Evidence;
        let last = self.weight >= self.final_weight;
        // At the last step the evidence gate, sized for the whole analysis,
        // is what promotion waits for; once it is met the step's own floor
        // only keeps the last weight from promoting before it carried
        // traffic ([`LAST_STEP_SHARE`] of it).
        let missing = if last {
            let mut missing = self.beyond_margin();
            missing.extend(self.evidence_missing());
            missing
        } else {
            Vec::new()
        };
        let floor = if last && self.evidence_gate && missing.is_empty() {
            (self.min_requests / LAST_STEP_SHARE).max(1)
        } else {
            self.min_requests
        };
        if self.has_builtin_tests() && self.step_canary < floor {
            hold = true;
            hold_kind = HoldReason::System;
            reasons.push(format!(
                "canary served {} of the {} requests this step needs: holding",
                self.step_canary, floor
            ));
        }
        if !hold && last {
            hold |= !missing.is_empty();
            reasons.extend(missing);
            if self.pace == crate::config::Pace::Schedule && self.gate_reported {
                reasons.extend(self.power_reached());
            } else if !hold && self.evidence_gate {
                // The promotion's evidence, said as the power it reached.
                reasons.extend(self.gate().into_iter().map(|g| {
                    format!(
                        "{}: promoting with {} % power to have caught a regression of {} (or it is ruled out)",
                        g.metric,
                        num((g.power * 100.0).floor()),
                        g.what
                    )
                }));
            }
        }
        // The power reached so far, per comparison, for the JSON and the
        // dashboard.
        for gate in self.gate() {
            if let Some(ev) = metrics.iter_mut().find(|e| e.name == gate.metric) {
                ev.power = Some(gate.power);
            }
        }
        for ev in &mut metrics {
            if ev.status == MetricStatus::Inconclusive && !hold {
                ev.status = MetricStatus::Pass;
            }
        }
        let verdict = if hold { Verdict::Hold } else { Verdict::Pass };
        reasons.insert(
            0,
            format!(
                "{}: rollout e-value {} < 1/α = {}",
                crate::decision::NO_HARM,
                num(self.e_value()),
                num(1.0 / self.alpha)
            ),
        );
        Decision {
            verdict,
            at_ms,
            metrics,
            reasons,
            hold: hold.then_some(hold_kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JudgeKind, MetricValue};
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64Mcg;
    use std::time::Duration;

    /// One second of traffic: `n` requests split at weight `w`, error
    /// probabilities and a lognormal latency (median `ms`, canary × `slow`).
    fn second(
        rng: &mut Pcg64Mcg,
        n: u64,
        w: f64,
        p: (f64, f64),
        ms: f64,
        slow: (f64, f64),
    ) -> Pair {
        let mut pair = Pair::default();
        for _ in 0..n {
            let canary = rng.random_bool(w);
            let (counts, pe, f) = if canary {
                (&mut pair.canary, p.1, slow.1)
            } else {
                (&mut pair.stable, p.0, slow.0)
            };
            let err = rng.random_bool(pe.clamp(0.0, 1.0));
            // Box-Muller from two uniforms; sigma 0.5.
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let lat = ms * f * (0.5 * z).exp();
            counts.record(
                if err { 500 } else { 200 },
                Duration::from_micros((lat * 1000.0) as u64),
            );
        }
        pair
    }

    fn config(alpha: f64) -> AnalysisConfig {
        let mut c = AnalysisConfig::flagger_defaults().with_judge(JudgeKind::Sequential);
        c.alpha = alpha;
        c
    }

    /// Runs `secs` seconds with a tick every 60 s; weight steps on every Pass.
    /// Returns the second of the rollback, if any.
    fn run(
        judge: &mut SequentialJudge,
        rng: &mut Pcg64Mcg,
        secs: u64,
        rps: f64,
        scenario: impl Fn(u64) -> ((f64, f64), (f64, f64)),
    ) -> Option<u64> {
        run_to(judge, rng, secs, rps, false, scenario)
    }

    /// [`run`], ending with promotion when `promote` and the last step passes.
    fn run_to(
        judge: &mut SequentialJudge,
        rng: &mut Pcg64Mcg,
        secs: u64,
        rps: f64,
        promote: bool,
        scenario: impl Fn(u64) -> ((f64, f64), (f64, f64)),
    ) -> Option<u64> {
        let steps = [10u8, 20, 30, 40, 50];
        let mut step = 0;
        let mut acc = 0.0;
        for t in 0..secs {
            acc += rps;
            let n = acc.floor() as u64;
            acc -= n as f64;
            let w = f64::from(steps[step]) / 100.0;
            let (p, slow) = scenario(t);
            let pair = second(rng, n, w, p, 20.0, slow);
            let at = (t + 1) * 1000;
            judge.observe(at, steps[step], &pair);
            if judge.early(at).is_some() {
                return Some(t);
            }
            if (t + 1) % 60 == 0 {
                let d = judge.evaluate(at, &TickInput::default());
                match d.verdict {
                    Verdict::Rollback => return Some(t),
                    Verdict::Pass if step + 1 < steps.len() => {
                        step += 1;
                        judge.step_advanced(at, steps[step]);
                    }
                    Verdict::Pass if promote => return None,
                    _ => {}
                }
            }
        }
        None
    }

    /// The false-rollback rate stays within α under continuous monitoring,
    /// across traffic levels, a shared incident (both versions at 30 % errors
    /// and 3× latency for two minutes) and a noisy 1.5 % baseline. 240 A/A
    /// rollouts of 10 minutes at α = 0.05: a valid judge rolls back at most
    /// 12 in expectation; 25 is 3.8 standard deviations above, so this test
    /// cannot flake, while a judge that compared with fixed bounds or ignored
    /// the split would roll back most of them.
    #[test]
    fn calibrated_under_the_null() {
        let mut rng = Pcg64Mcg::seed_from_u64(2024);
        let mut rollbacks = 0;
        for run_no in 0..240u64 {
            let mut j = SequentialJudge::new(&config(0.05));
            let rps = [2.0, 10.0, 40.0][(run_no % 3) as usize];
            let kind = run_no % 4;
            let r = run(&mut j, &mut rng, 600, rps, |t| match kind {
                0 if (200..320).contains(&t) => ((0.3, 0.3), (3.0, 3.0)),
                1 => ((0.015, 0.015), (1.0, 1.0)),
                _ => ((0.002, 0.002), (1.0, 1.0)),
            });
            rollbacks += usize::from(r.is_some());
        }
        eprintln!("calibration: {rollbacks} false rollbacks of 240 A/A rollouts at alpha 0.05");
        assert!(
            rollbacks <= 25,
            "{rollbacks} false rollbacks of 240 at alpha 0.05"
        );
    }

    #[test]
    fn catches_errors_fast_and_says_why() {
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        let mut caught = 0;
        let mut times = Vec::new();
        for _ in 0..40 {
            let mut j = SequentialJudge::new(&config(0.01));
            if let Some(t) = run(&mut j, &mut rng, 600, 20.0, |_| {
                ((0.002, 0.052), (1.0, 1.0))
            }) {
                caught += 1;
                times.push(t);
            }
        }
        assert!(caught >= 39, "caught {caught} of 40");
        times.sort_unstable();
        assert!(
            times[times.len() / 2] < 60,
            "median {}",
            times[times.len() / 2]
        );
        let mut j = SequentialJudge::new(&config(0.01));
        run(&mut j, &mut rng, 600, 20.0, |_| {
            ((0.002, 0.052), (1.0, 1.0))
        });
        let d = j.early(0).unwrap();
        assert_eq!(d.verdict, Verdict::Rollback);
        assert!(d.reasons[0].contains("≥ 1/α = 100"), "{:?}", d.reasons);
        assert_eq!(d.metrics[0].status, MetricStatus::Harm);
        assert!(
            d.metrics[0]
                .reason
                .contains("errors 4.11% of 73 canary requests"),
            "{}",
            d.metrics[0].reason
        );
    }

    #[test]
    fn catches_slow_canaries() {
        let mut rng = Pcg64Mcg::seed_from_u64(5);
        let mut caught = 0;
        for _ in 0..20 {
            let mut j = SequentialJudge::new(&config(0.01));
            caught += usize::from(
                run(&mut j, &mut rng, 600, 20.0, |_| {
                    ((0.001, 0.001), (1.0, 1.5))
                })
                .is_some(),
            );
        }
        assert!(caught >= 19, "caught {caught} of 20");
    }

    /// The evidence saved includes the rule-out tests and the table test's
    /// fixed bets, and comes back whole; evidence saved before they existed
    /// still resumes (they start afresh) with everything else it held.
    #[test]
    fn snapshots_carry_the_new_evidence() {
        let mut c = config(0.01);
        c.metrics[0] = c.metrics[0]
            .clone()
            .range(None, None)
            .compare(Some(0.5), None);
        let mut j = SequentialJudge::new(&c);
        let mut rng = Pcg64Mcg::seed_from_u64(41);
        for t in 0..120u64 {
            let pair = second(&mut rng, 100, 0.2, (0.005, 0.01), 50.0, (1.0, 1.0));
            j.observe(t * 1000, 20, &pair);
        }
        let saved = j.snapshot().unwrap();
        let text = saved.to_string();
        assert!(text.contains("\"rule_out\"") && text.contains("\"shift_info\""));
        let mut back = SequentialJudge::new(&c);
        back.resume(saved.clone()).unwrap();
        assert_eq!(back.snapshot().unwrap(), saved);
        assert_eq!(back.log_e(), j.log_e());
        let gate = |j: &SequentialJudge| {
            j.gate()
                .iter()
                .map(|g| (g.power, g.more))
                .collect::<Vec<_>>()
        };
        assert_eq!(gate(&back), gate(&j));
        // The layout before: no rule-out, no fixed bets.
        fn strip(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(map) => {
                    for key in ["rule_out", "shifts", "shift_info"] {
                        map.remove(key);
                    }
                    map.values_mut().for_each(strip);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut old = saved;
        strip(&mut old);
        assert!(!old.to_string().contains("rule_out"));
        let mut resumed = SequentialJudge::new(&c);
        resumed.resume(old).unwrap();
        assert_eq!(resumed.canary, j.canary);
        assert!(resumed.log_e().is_finite() && resumed.log_e() <= j.log_e() + 1e-9);
        let pair = second(&mut rng, 100, 0.2, (0.005, 0.01), 50.0, (1.0, 1.0));
        resumed.observe(121_000, 20, &pair);
        assert!(resumed.snapshot().unwrap().to_string().contains("rule_out"));
    }

    #[test]
    fn the_tail_threshold_rises_to_the_quantile() {
        assert_eq!(tail_level(0.99, 49), None);
        assert!((tail_level(0.99, 50).unwrap() - 0.9).abs() < 1e-12);
        assert!((tail_level(0.99, 100).unwrap() - 0.95).abs() < 1e-12);
        assert!((tail_level(0.99, 499).unwrap() - (1.0 - 5.0 / 499.0)).abs() < 1e-12);
        assert_eq!(tail_level(0.99, 500), Some(0.99));
        assert_eq!(tail_level(0.5, 50), Some(0.5));
    }

    /// Before stable has served the 500 requests its p99 needs: a canary
    /// 4× as slow at 20 requests a second (10 % share, stable ≈ 18 a
    /// second) is rolled back within 25 s, before the p99 is known, in at
    /// least 18 of 20 runs (with the p99 awaited, none could be); and an
    /// identical canary in that phase, at α = 5 %, in at most 60 of 1000
    /// (expected ≤ 50; a threshold peeking at the second it judges would
    /// cross far more often).
    #[test]
    fn the_tail_test_compares_before_stables_quantile_is_known() {
        let mut rng = Pcg64Mcg::seed_from_u64(31);
        let mut caught = 0;
        for _ in 0..20 {
            let mut j = SequentialJudge::new(&config(0.01));
            for t in 0..25u64 {
                let pair = second(&mut rng, 20, 0.1, (0.001, 0.001), 50.0, (1.0, 4.0));
                j.observe(t * 1000, 10, &pair);
                if j.early(t * 1000).is_some() {
                    assert!(j.stable.latency.count() < min_reference(0.99));
                    caught += 1;
                    break;
                }
            }
        }
        assert!(caught >= 18, "caught {caught} of 20");
        let mut crossed = 0;
        for _ in 0..1000 {
            let mut j = SequentialJudge::new(&config(0.05));
            for t in 0..27u64 {
                let pair = second(&mut rng, 20, 0.3, (0.0, 0.0), 50.0, (1.0, 1.0));
                j.observe(t * 1000, 30, &pair);
                if j.early(t * 1000).is_some() {
                    crossed += 1;
                    break;
                }
            }
        }
        eprintln!("slow canary caught {caught} of 20; identical canary crossed {crossed} of 1000");
        assert!(crossed <= 60, "crossed {crossed} of 1000 at alpha 0.05");
    }

    #[test]
    fn latency_margin_is_respected() {
        // Canary 5 % slower, allowed 20 %: no rollback.
        let mut c = config(0.05);
        c.metrics[1] = c.metrics[1].clone().compare(None, Some(1.2));
        let mut rng = Pcg64Mcg::seed_from_u64(9);
        let mut rollbacks = 0;
        for _ in 0..20 {
            let mut j = SequentialJudge::new(&c);
            rollbacks += usize::from(
                run(&mut j, &mut rng, 300, 40.0, |_| {
                    ((0.001, 0.001), (1.0, 1.05))
                })
                .is_some(),
            );
        }
        assert!(rollbacks <= 3, "{rollbacks}");
    }

    #[test]
    fn low_traffic_holds_instead_of_failing() {
        let mut j = SequentialJudge::new(&config(0.01));
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        for t in 0..60u64 {
            let pair = second(&mut rng, 1, 0.1, (0.01, 0.01), 20.0, (1.0, 1.0));
            j.observe(t * 1000, 10, &pair);
        }
        let d = j.evaluate(60_000, &TickInput::default());
        assert_eq!(d.verdict, Verdict::Hold, "{:?}", d.reasons);
        assert!(
            d.reasons
                .iter()
                .any(|r| r.contains("requests this step needs")),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn passes_after_min_requests() {
        let mut c = config(0.01);
        c.min_requests = Some(50);
        let mut j = SequentialJudge::new(&c);
        let mut rng = Pcg64Mcg::seed_from_u64(4);
        for t in 0..60u64 {
            let pair = second(&mut rng, 20, 0.1, (0.001, 0.001), 20.0, (1.0, 1.0));
            j.observe(t * 1000, 10, &pair);
        }
        assert_eq!(
            j.evaluate(60_000, &TickInput::default()).verdict,
            Verdict::Pass
        );
        j.step_advanced(60_000, 20);
        assert_eq!(
            j.evaluate(60_001, &TickInput::default()).verdict,
            Verdict::Hold
        );
    }

    /// The evidence gate: at the last step a rollout with the default
    /// `minRequests` holds until a regression of the planning size could have
    /// shown, says so with numbers, and then promotes; with `minRequests`
    /// set explicitly it promotes as soon as the step has its requests.
    #[test]
    fn promotion_waits_for_evidence() {
        let mut c = config(0.01);
        c.steps = vec![50];
        let mut j = SequentialJudge::new(&c);
        let mut rng = Pcg64Mcg::seed_from_u64(12);
        let mut first = None;
        let mut passed = None;
        for t in 0..3600u64 {
            let pair = second(&mut rng, 10, 0.5, (0.001, 0.001), 20.0, (1.0, 1.0));
            j.observe(t * 1000, 50, &pair);
            if (t + 1) % 60 == 0 {
                let d = j.evaluate(t * 1000, &TickInput::default());
                assert_ne!(d.verdict, Verdict::Rollback);
                if first.is_none() {
                    first = Some(d.clone());
                }
                if d.verdict == Verdict::Pass {
                    passed = Some(t + 1);
                    break;
                }
            }
        }
        let first = first.unwrap();
        assert_eq!(first.verdict, Verdict::Hold);
        assert!(
            first
                .reasons
                .iter()
                .any(|r| r.contains("holding promotion for evidence")
                    && r.contains("more canary requests")),
            "{:?}",
            first.reasons
        );
        let passed = passed.expect("an identical canary is promoted once the evidence is in");
        // Not blind: ruling +1 point out at 5 % on a 0.1 % rate takes about
        // 400 canary requests (80 s at 5 a second), and the first tick held
        // for them.
        assert!((120..=2400).contains(&passed), "promoted after {passed} s");
        // Explicit minRequests: the user's choice, no evidence gate.
        c.min_requests = Some(200);
        let mut j = SequentialJudge::new(&c);
        for t in 0..60u64 {
            let pair = second(&mut rng, 10, 0.5, (0.001, 0.001), 20.0, (1.0, 1.0));
            j.observe(t * 1000, 50, &pair);
        }
        assert_eq!(
            j.evaluate(60_000, &TickInput::default()).verdict,
            Verdict::Pass
        );
    }

    /// Power at the planning size: +1 point of errors on a 0.1 % base at
    /// 5 requests per second through the five default steps is rolled back
    /// before promotion in at least 95 % of runs (40 runs; 36 allows for
    /// sampling noise around a true power of 95 %+, and the old count-only
    /// gate caught about 60 % here).
    #[test]
    fn catches_the_planning_regression_before_promotion() {
        let mut rng = Pcg64Mcg::seed_from_u64(21);
        let mut caught = 0;
        for _ in 0..40 {
            let mut j = SequentialJudge::new(&config(0.01));
            caught += usize::from(
                run_to(&mut j, &mut rng, 3600, 5.0, true, |_| {
                    ((0.001, 0.011), (1.0, 1.0))
                })
                .is_some(),
            );
        }
        assert!(caught >= 36, "caught {caught} of 40");
    }

    #[test]
    fn business_metric_sign_test() {
        let mut c = config(0.01);
        c.metrics = vec![
            MetricCheck::named("conversion-rate")
                .direction(Direction::HigherIsBetter)
                .compare(Some(0.0), None),
        ];
        // No canary value is a failed check, as in Flagger, whatever the
        // sequential evidence says.
        let mut input = TickInput::default();
        input.push_scalar("conversion-rate", None, Some(3.0));
        let mut analyzer = crate::Analyzer::new(c.clone()).unwrap();
        let d = analyzer.evaluate(0, &input);
        assert_eq!(d.verdict, Verdict::Fail, "{:?}", d.reasons);
        assert!(d.reasons[0].contains("failed check"), "{:?}", d.reasons);
        let mut j = SequentialJudge::new(&c);
        let mut rolled = None;
        for tick in 1..40u64 {
            let mut input = TickInput::default();
            input.push_scalar("conversion-rate", Some(2.0), Some(3.0));
            let d = j.evaluate(tick, &input);
            if d.verdict == Verdict::Rollback {
                rolled = Some(tick);
                break;
            }
            assert_eq!(d.verdict, Verdict::Pass);
        }
        let tick = rolled.expect("a canary converting worse every tick is rolled back");
        assert!((5..=12).contains(&tick), "rolled back at tick {tick}");
        // Equal values are ties: never harm.
        let mut j = SequentialJudge::new(&c);
        for tick in 0..100 {
            let mut input = TickInput::default();
            input.metrics.push(crate::MetricInput {
                name: "conversion-rate".into(),
                value: MetricValue::Scalar {
                    canary: Some(3.0),
                    stable: Some(3.0),
                },
            });
            assert_ne!(j.evaluate(tick, &input).verdict, Verdict::Rollback);
        }
    }
}
