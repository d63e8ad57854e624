//! The judges, and the one interface the runtime and the replay drive them by.
//!
//! The calling protocol (the same live and in replay):
//! 1. every second, [`Analyzer::observe`] with the requests since the last call;
//! 2. right after, [`Analyzer::early`]: `Some(decision)` means roll back now
//!    (only the sequential judge answers between ticks);
//! 3. at each analysis tick, [`Analyzer::evaluate`] with the metric windows;
//! 4. whenever the state machine moves to a new weight, [`Analyzer::step_advanced`].

use crate::{
    config::{AnalysisConfig, BuiltinMetric, ConfigError, Direction, JudgeKind, MetricCheck},
    decision::Decision,
    input::{MetricValue, TickInput},
};
use serin_stats::Pair;

pub(crate) mod checks;
pub mod mann_whitney;
pub mod sequential;
pub mod threshold;

/// A statistical judge of one canary. Implementations are pure: time is
/// passed in, nothing is read from clocks or the network.
pub trait Judge: std::fmt::Debug + Send {
    /// Requests since the last call (normally one second's worth), and the
    /// canary weight the router applied during that time.
    fn observe(&mut self, _at_ms: u64, _canary_weight: u8, _delta: &Pair) {}

    /// The rollout moved to `new_weight`: per-step counts restart.
    fn step_advanced(&mut self, _at_ms: u64, _new_weight: u8) {}

    /// Between ticks: `Some` when the evidence of harm is already decisive.
    fn early(&mut self, _at_ms: u64) -> Option<Decision> {
        None
    }

    /// The check at an analysis tick.
    fn evaluate(&mut self, at_ms: u64, input: &TickInput) -> Decision;

    /// The evidence this judge has gathered, to be saved with the rollout's
    /// state (`None`: it keeps nothing a restart would lose).
    fn snapshot(&self) -> Option<serde_json::Value> {
        None
    }

    /// Goes on from a [`snapshot`](Judge::snapshot) taken by a judge of the
    /// same kind and configuration.
    fn resume(&mut self, _evidence: serde_json::Value) -> Result<(), ResumeError> {
        Err(ResumeError::Unsupported)
    }
}

/// Why saved evidence could not be resumed from. The judge is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The evidence is not what a judge of this kind saves.
    #[error("saved evidence unreadable: {0}")]
    Format(String),
    /// It was gathered under another configuration.
    #[error("saved evidence is for another configuration: {0}")]
    Mismatch(String),
    /// This judge keeps no evidence to resume from.
    #[error("this judge keeps no evidence across restarts")]
    Unsupported,
}

/// A judge's saved evidence: which judge saved it, and what.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Saved {
    judge: JudgeKind,
    evidence: serde_json::Value,
    /// The windows the failed-check counting has judged (absent in
    /// evidence saved before it existed: counted afresh).
    #[serde(default)]
    spending: checks::Spending,
}

/// The judge a configuration asks for, ready to be driven.
#[derive(Debug)]
pub struct Analyzer {
    config: AnalysisConfig,
    judge: Box<dyn Judge>,
    /// How the sequential judge's failed `compare` checks count.
    spending: checks::Spending,
}

// === impl Analyzer ===

impl Analyzer {
    /// Builds the configured judge. Fails when the configuration is invalid.
    pub fn new(config: AnalysisConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let judge: Box<dyn Judge> = match config.judge {
            JudgeKind::Sequential => Box::new(sequential::SequentialJudge::new(&config)),
            JudgeKind::Threshold => Box::new(threshold::ThresholdJudge::new(&config)),
            JudgeKind::MannWhitney => Box::new(mann_whitney::MannWhitneyJudge::new(&config)),
        };
        Ok(Analyzer {
            config,
            judge,
            spending: checks::Spending::default(),
        })
    }

    /// The configuration this analyzer judges by.
    pub fn config(&self) -> &AnalysisConfig {
        &self.config
    }

    /// The judge's accumulated evidence (e-processes, and with them the
    /// false-rollback budget spent), as JSON to be saved with the rollout's
    /// state; `None` for judges that keep none.
    pub fn evidence(&self) -> Option<String> {
        let evidence = self.judge.snapshot()?;
        serde_json::to_string(&Saved {
            judge: self.config.judge,
            evidence,
            spending: self.spending.clone(),
        })
        .ok()
    }

    /// Goes on from [`evidence`](Self::evidence) saved by an analyzer of the
    /// same configuration (after a restart). Refused, the analyzer
    /// unchanged, when it was saved by another judge or configuration.
    pub fn resume(&mut self, evidence: &str) -> Result<(), ResumeError> {
        let saved: Saved =
            serde_json::from_str(evidence).map_err(|e| ResumeError::Format(e.to_string()))?;
        if saved.judge != self.config.judge {
            return Err(ResumeError::Mismatch(format!(
                "saved by the {} judge, now {}",
                saved.judge, self.config.judge
            )));
        }
        self.judge.resume(saved.evidence)?;
        self.spending = saved.spending;
        Ok(())
    }

    /// See [`Judge::observe`].
    pub fn observe(&mut self, at_ms: u64, canary_weight: u8, delta: &Pair) {
        self.judge.observe(at_ms, canary_weight, delta);
    }

    /// See [`Judge::step_advanced`].
    pub fn step_advanced(&mut self, at_ms: u64, new_weight: u8) {
        self.judge.step_advanced(at_ms, new_weight);
    }

    /// See [`Judge::early`].
    pub fn early(&mut self, at_ms: u64) -> Option<Decision> {
        self.judge.early(at_ms).map(Decision::sanitize)
    }

    /// See [`Judge::evaluate`]. Every judge but the threshold judge (which
    /// *is* Flagger's check) is held to Flagger's per-metric check in its
    /// guarded reading ([`checks`]): the verdict is the worse of the two, so
    /// statistics can make a verdict stricter, never more lenient. The
    /// sequential judge counts a failed `compare` check on the success rate
    /// only within a budget ([`checks::Spending`]); one it does not count
    /// holds, so it never passes.
    pub fn evaluate(&mut self, at_ms: u64, input: &TickInput) -> Decision {
        let decision = self.judge.evaluate(at_ms, input);
        let decision = match self.config.judge {
            JudgeKind::Threshold => decision,
            JudgeKind::Sequential | JudgeKind::MannWhitney => {
                let mut checks =
                    checks::check_all(&self.config.metrics, input, checks::Reading::Guarded);
                if self.config.judge == JudgeKind::Sequential {
                    self.spending.apply(&self.config, at_ms, input, &mut checks);
                }
                held_to_checks(decision, &checks)
            }
        };
        decision.sanitize()
    }
}

/// `decision` held to the metrics' checks: its verdict becomes the worse of
/// its own and the checks', each metric's reason starts with its check, and
/// the reasons are the judge's notes followed by one line per metric.
fn held_to_checks(mut decision: Decision, checks: &[checks::Check]) -> Decision {
    use crate::decision::{MetricEvidence, MetricStatus, Verdict};
    if decision.verdict == Verdict::Rollback {
        // The rollback stands on its own evidence; failing checks are
        // named too, so the record says everything that was wrong.
        decision.reasons.extend(
            checks
                .iter()
                .filter(|c| c.verdict == Verdict::Fail)
                .map(|c| c.reason.clone()),
        );
        return decision;
    }
    let worst = checks::worst(checks);
    for check in checks {
        let evidence = match decision.metrics.iter_mut().find(|e| e.name == check.name) {
            Some(e) => e,
            None => {
                decision.metrics.push(MetricEvidence::new(
                    &check.name,
                    check.status,
                    String::new(),
                ));
                let last = decision.metrics.len() - 1;
                &mut decision.metrics[last]
            }
        };
        // Where the judge had nothing to judge a metric by (Kayenta's
        // judge with no time point in its window, say) while the check had
        // a value and passed it, the check decides: a metric in a passing
        // verdict has passed something, never "no data".
        let deferred = evidence.status == MetricStatus::NoData && check.verdict == Verdict::Pass;
        evidence.status = match (check.verdict, evidence.status) {
            (_, MetricStatus::Harm) => MetricStatus::Harm,
            (Verdict::Fail, _) => check.status,
            (Verdict::Hold, MetricStatus::Pass) => MetricStatus::Inconclusive,
            (Verdict::Pass, MetricStatus::NoData) => check.status,
            (_, status) => status,
        };
        if deferred {
            evidence.reason = format!("{}; judged by the check alone", evidence.reason);
        }
        if evidence.canary.is_none() {
            evidence.canary = check.point.canary;
        }
        if evidence.stable.is_none() {
            evidence.stable = check.point.stable;
        }
        evidence.reason = if evidence.reason.is_empty() {
            check.reason.clone()
        } else {
            format!("{}; {}", check.reason, evidence.reason)
        };
    }
    let mut reasons = Vec::with_capacity(decision.reasons.len() + decision.metrics.len() + 1);
    if worst > decision.verdict {
        let (what, names): (&str, Vec<&str>) = match worst {
            Verdict::Fail => (
                "failed check",
                checks
                    .iter()
                    .filter(|c| c.verdict == Verdict::Fail)
                    .map(|c| c.name.as_str())
                    .collect(),
            ),
            _ => (
                "holding: cannot be judged yet",
                checks
                    .iter()
                    .filter(|c| c.verdict == Verdict::Hold)
                    .map(|c| c.name.as_str())
                    .collect(),
            ),
        };
        reasons.push(format!("{what}: {}", names.join(", ")));
        decision.verdict = worst;
    }
    // A hold waits for evidence only when nothing else holds it: a check
    // that cannot be judged yet waits for traffic, which the progress
    // deadline bounds; a failed check held as sampling noise waits for
    // more data, as the judge's own evidence hold does.
    let holding = |c: &&checks::Check| c.verdict == Verdict::Hold;
    decision.hold = match decision.verdict {
        Verdict::Hold if checks.iter().filter(holding).any(|c| !c.for_evidence) => {
            Some(crate::decision::HoldReason::System)
        }
        Verdict::Hold if checks.iter().any(|c| holding(&c)) => decision
            .hold
            .or(Some(crate::decision::HoldReason::Evidence)),
        Verdict::Hold => decision.hold.or(Some(crate::decision::HoldReason::System)),
        _ => None,
    };
    reasons.append(&mut decision.reasons);
    reasons.extend(decision.metrics.iter().map(|m| m.reason.clone()));
    decision.reasons = reasons;
    decision
}

/// A metric's point values over its window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Point {
    pub canary: Option<f64>,
    pub stable: Option<f64>,
    pub canary_requests: u64,
    pub stable_requests: u64,
}

/// The value of a builtin metric for one version's counts over `secs` seconds.
pub(crate) fn builtin_value(
    metric: BuiltinMetric,
    counts: &serin_stats::Counts,
    secs: f64,
) -> Option<f64> {
    let v = match metric {
        BuiltinMetric::RequestSuccessRate => counts.success_rate(),
        BuiltinMetric::RequestRate => (secs > 0.0).then(|| counts.requests as f64 / secs),
        latency => latency.quantile().and_then(|q| counts.latency_ms(q)),
    };
    v.filter(|v| v.is_finite())
}

/// Point values of a metric from its tick input (NaN and infinities count as
/// no value, as Flagger's Prometheus provider treats NaN).
pub(crate) fn point(metric: &MetricCheck, value: Option<&MetricValue>) -> Point {
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
    match (metric.builtin(), value) {
        (Some(b), Some(MetricValue::Window(pair))) => {
            let secs = metric.interval.as_secs_f64();
            Point {
                canary: builtin_value(b, &pair.canary, secs),
                stable: builtin_value(b, &pair.stable, secs),
                canary_requests: pair.canary.requests,
                stable_requests: pair.stable.requests,
            }
        }
        (_, Some(MetricValue::Scalar { canary, stable })) => Point {
            canary: finite(*canary),
            stable: finite(*stable),
            ..Point::default()
        },
        _ => Point::default(),
    }
}

/// How much worse `canary` is than `stable` in the metric's harm direction
/// (positive = worse), in the metric's unit.
pub(crate) fn worse_by(direction: Direction, canary: f64, stable: f64) -> f64 {
    match direction {
        Direction::LowerIsBetter => canary - stable,
        Direction::HigherIsBetter => stable - canary,
        Direction::Either => (canary - stable).abs(),
    }
}

/// Point comparison with stable under `compare` margins: `Some(problem)` when
/// the canary is worse than allowed.
pub(crate) fn compare_violation(metric: &MetricCheck, canary: f64, stable: f64) -> Option<String> {
    let c = metric.compare?;
    let unit = metric.unit();
    let worse = worse_by(metric.direction, canary, stable);
    if let Some(d) = c.max_delta
        && worse > d
    {
        {
            return Some(format!(
                "{} canary {}{unit} vs stable {}{unit}: {} worse > maxDelta {}",
                metric.name,
                crate::decision::num(canary),
                crate::decision::num(stable),
                crate::decision::num(worse),
                crate::decision::num(d)
            ));
        }
    }
    if let Some(r) = c.max_ratio {
        let (bad, ratio) = ratio_worse(metric, canary, stable);
        if bad > r {
            return Some(format!(
                "{} canary {}{unit} vs stable {}{unit}: {ratio} ratio {} > maxRatio {}",
                metric.name,
                crate::decision::num(canary),
                crate::decision::num(stable),
                crate::decision::num(bad),
                crate::decision::num(r)
            ));
        }
    }
    None
}

/// The ratio by which the canary is worse, and what it is a ratio of. For the
/// success rate it is the ratio of error rates.
fn ratio_worse(metric: &MetricCheck, canary: f64, stable: f64) -> (f64, &'static str) {
    let safe = |a: f64, b: f64| {
        if b > 0.0 {
            a / b
        } else if a > 0.0 {
            f64::INFINITY
        } else {
            1.0
        }
    };
    match (metric.builtin(), metric.direction) {
        (Some(BuiltinMetric::RequestSuccessRate), _) => {
            (safe(100.0 - canary, 100.0 - stable), "error-rate")
        }
        (_, Direction::HigherIsBetter) => (safe(stable, canary), "value"),
        (_, Direction::LowerIsBetter) => (safe(canary, stable), "value"),
        (_, Direction::Either) => {
            let r = safe(canary, stable);
            (if r < 1.0 && r > 0.0 { 1.0 / r } else { r }, "value")
        }
    }
}

/// Whether `v` lies in the inclusive range, and if not, the violated side.
pub(crate) fn range_violation(range: (Option<f64>, Option<f64>), v: f64) -> Option<String> {
    if let Some(min) = range.0
        && v < min
    {
        return Some(format!("< min {}", crate::decision::num(min)));
    }
    if let Some(max) = range.1
        && v > max
    {
        return Some(format!("> max {}", crate::decision::num(max)));
    }
    None
}
