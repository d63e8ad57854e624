//! The analysis configuration, normalized: what a canary's `analysis` section
//! means once defaults are applied and names are resolved.
//!
//! The YAML spec is mapped into this type elsewhere; the judges only ever see
//! this form, so they never deal with spellings, templates or providers.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Why a configuration cannot be judged.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `alpha` must be a probability strictly between 0 and 0.5.
    #[error("alpha: must be between 0 and 0.5 (exclusive), got {0}")]
    Alpha(f64),
    /// The rollout needs at least one canary weight to move through.
    #[error("steps: at least one step weight is needed")]
    NoSteps,
    /// Step weights are percentages of traffic.
    #[error("steps: weights must be between 1 and 100, got {0}")]
    StepWeight(u8),
    /// An analysis interval of zero would tick forever.
    #[error("interval: must be positive")]
    Interval,
    /// Flagger's threshold counts failed checks; zero would roll back at once.
    #[error("threshold: must be at least 1")]
    Threshold,
    /// A metric's own bounds or margins do not make sense.
    #[error("metrics[{index}] ({name}): {problem}")]
    Metric {
        /// Position of the metric in the configuration.
        index: usize,
        /// The metric's name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Which statistical judge decides a canary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JudgeKind {
    /// Anytime-valid sequential tests against stable (serin's default).
    #[default]
    Sequential,
    /// Flagger's per-interval point checks against `thresholdRange`.
    Threshold,
    /// Kayenta's NetflixACAJudge: Mann-Whitney U per interval.
    MannWhitney,
}

// === impl JudgeKind ===

impl JudgeKind {
    /// The name used on the command line and in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            JudgeKind::Sequential => "sequential",
            JudgeKind::Threshold => "threshold",
            JudgeKind::MannWhitney => "mann-whitney",
        }
    }

    /// Every judge, for help texts and benchmarks.
    pub const ALL: [JudgeKind; 3] = [
        JudgeKind::Sequential,
        JudgeKind::Threshold,
        JudgeKind::MannWhitney,
    ];
}

impl std::str::FromStr for JudgeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sequential" => Ok(JudgeKind::Sequential),
            "threshold" | "flagger" => Ok(JudgeKind::Threshold),
            "mann-whitney" | "mannwhitney" | "kayenta" => Ok(JudgeKind::MannWhitney),
            other => Err(format!(
                "unknown judge {other:?}: expected sequential, threshold or mann-whitney"
            )),
        }
    }
}

impl std::fmt::Display for JudgeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metrics serin computes itself from the requests it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltinMetric {
    /// Percent of requests that were not 5xx (Flagger's `request-success-rate`).
    RequestSuccessRate,
    /// p99 latency in milliseconds (Flagger's `request-duration`).
    RequestDuration,
    /// p50 latency in milliseconds.
    RequestDurationP50,
    /// p95 latency in milliseconds.
    RequestDurationP95,
    /// p99 latency in milliseconds, spelled out.
    RequestDurationP99,
    /// Canary requests per second.
    RequestRate,
}

// === impl BuiltinMetric ===

impl BuiltinMetric {
    /// Resolves a metric name as written in a canary spec.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "request-success-rate" => BuiltinMetric::RequestSuccessRate,
            "request-duration" => BuiltinMetric::RequestDuration,
            "request-duration-p50" => BuiltinMetric::RequestDurationP50,
            "request-duration-p95" => BuiltinMetric::RequestDurationP95,
            "request-duration-p99" => BuiltinMetric::RequestDurationP99,
            "request-rate" => BuiltinMetric::RequestRate,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinMetric::RequestSuccessRate => "request-success-rate",
            BuiltinMetric::RequestDuration => "request-duration",
            BuiltinMetric::RequestDurationP50 => "request-duration-p50",
            BuiltinMetric::RequestDurationP95 => "request-duration-p95",
            BuiltinMetric::RequestDurationP99 => "request-duration-p99",
            BuiltinMetric::RequestRate => "request-rate",
        }
    }

    /// The latency quantile this metric reports, if it is a latency metric.
    pub fn quantile(self) -> Option<f64> {
        match self {
            BuiltinMetric::RequestDuration | BuiltinMetric::RequestDurationP99 => Some(0.99),
            BuiltinMetric::RequestDurationP95 => Some(0.95),
            BuiltinMetric::RequestDurationP50 => Some(0.50),
            BuiltinMetric::RequestSuccessRate | BuiltinMetric::RequestRate => None,
        }
    }

    /// Which way is good, when the spec does not say.
    pub fn default_direction(self) -> Direction {
        match self {
            BuiltinMetric::RequestSuccessRate | BuiltinMetric::RequestRate => {
                Direction::HigherIsBetter
            }
            _ => Direction::LowerIsBetter,
        }
    }

    /// The unit the metric is reported in, for human reasons.
    pub fn unit(self) -> &'static str {
        match self {
            BuiltinMetric::RequestSuccessRate => "%",
            BuiltinMetric::RequestRate => " req/s",
            _ => " ms",
        }
    }
}

/// Where a metric's values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricKind {
    /// Computed by serin from request counters and latency histograms.
    Builtin(BuiltinMetric),
    /// A scalar per tick from a Prometheus-like provider (business metrics).
    Custom,
}

/// Which way a metric gets worse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Latency, error counts, cart abandonment: an increase is harm.
    #[default]
    LowerIsBetter,
    /// Success rate, conversion rate: a decrease is harm.
    HigherIsBetter,
    /// Any change is suspicious (Kayenta's "either"); the sequential judge
    /// treats it as lower-is-better for harm and reports both sides.
    Either,
}

/// How much worse than stable the canary may be before that counts as harm.
///
/// Units are the metric's own: percentage points for request-success-rate
/// (`max_ratio` there applies to the *error* rate, 100 − success), milliseconds
/// for latencies. For higher-is-better metrics a ratio R means canary ≥ stable / R.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Compare {
    /// Canary may be at most this much worse than stable, in the metric's unit.
    pub max_delta: Option<f64>,
    /// Canary may be at most this many times worse than stable.
    pub max_ratio: Option<f64>,
}

/// One metric to judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricCheck {
    /// The metric's name as written in the spec (used in reasons and to find its input).
    pub name: String,
    /// Builtin or custom.
    pub kind: MetricKind,
    /// Flagger's `thresholdRange`: `(min, max)`, inclusive.
    pub threshold_range: (Option<f64>, Option<f64>),
    /// Comparison with stable, if any.
    pub compare: Option<Compare>,
    /// Which way is good.
    pub direction: Direction,
    /// The window the metric is computed over (Flagger's per-metric `interval`).
    pub interval: Duration,
    /// Kayenta's critical flag: a failure of this metric fails the whole analysis.
    #[serde(default)]
    pub critical: bool,
}

// === impl MetricCheck ===

impl MetricCheck {
    /// A builtin metric with its default direction, no bounds and a 1 minute window.
    /// Unknown names become custom metrics.
    pub fn named(name: &str) -> Self {
        let kind = BuiltinMetric::from_name(name).map_or(MetricKind::Custom, MetricKind::Builtin);
        let direction = match kind {
            MetricKind::Builtin(b) => b.default_direction(),
            MetricKind::Custom => Direction::LowerIsBetter,
        };
        MetricCheck {
            name: name.to_owned(),
            kind,
            threshold_range: (None, None),
            compare: None,
            direction,
            interval: Duration::from_secs(60),
            critical: false,
        }
    }

    /// Sets `thresholdRange`.
    pub fn range(mut self, min: Option<f64>, max: Option<f64>) -> Self {
        self.threshold_range = (min, max);
        self
    }

    /// Sets the comparison with stable.
    pub fn compare(mut self, max_delta: Option<f64>, max_ratio: Option<f64>) -> Self {
        self.compare = Some(Compare {
            max_delta,
            max_ratio,
        });
        self
    }

    /// Sets the direction.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// Sets the window.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The builtin metric, if this is one.
    pub fn builtin(&self) -> Option<BuiltinMetric> {
        match self.kind {
            MetricKind::Builtin(b) => Some(b),
            MetricKind::Custom => None,
        }
    }

    /// The unit for human-readable reasons.
    pub fn unit(&self) -> &'static str {
        self.builtin().map_or("", BuiltinMetric::unit)
    }
}

/// What decides when the last step may promote (sequential judge).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pace {
    /// Hold the last step until a planning-size regression would have been
    /// caught with about 95 % probability, or is ruled out.
    #[default]
    Evidence,
    /// Promote at the end of the schedule, as Flagger does, and report the
    /// power reached instead of holding for it.
    Schedule,
}

/// Kayenta's scoring knobs for the Mann-Whitney judge.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MannWhitneyConfig {
    /// Confidence level of each per-metric test (Kayenta: 0.98).
    pub confidence: f64,
    /// Score at or above which the interval passes (Kayenta: 95).
    pub pass_score: f64,
    /// Score below which the canary fails (Kayenta: 75).
    pub marginal_score: f64,
    /// Allowed relative increase before a significant increase fails (Kayenta's
    /// `allowedIncrease`, as a ratio: 1.0 = none).
    pub allowed_increase: f64,
    /// Allowed relative decrease (Kayenta's `allowedDecrease`, 1.0 = none).
    pub allowed_decrease: f64,
}

impl Default for MannWhitneyConfig {
    fn default() -> Self {
        MannWhitneyConfig {
            confidence: 0.98,
            pass_score: 95.0,
            marginal_score: 75.0,
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
        }
    }
}

/// The whole analysis section, normalized.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalysisConfig {
    /// Which judge decides.
    pub judge: JudgeKind,
    /// The false-rollback budget of one rollout (sequential judge), default 0.01.
    pub alpha: f64,
    /// Canary requests a step must see before it may pass (sequential judge).
    /// `None` means [`DEFAULT_MIN_REQUESTS`].
    pub min_requests: Option<u64>,
    /// Whether the last step waits for evidence or promotes at the end of
    /// the schedule (sequential judge).
    #[serde(default)]
    pub pace: Pace,
    /// How often the runtime evaluates (Flagger's `interval`).
    pub interval: Duration,
    /// Failed checks before rollback (Flagger's `threshold`).
    pub threshold: u32,
    /// Canary weights to move through, in percent (`stepWeights`, or
    /// `stepWeight` up to `maxWeight`).
    pub steps: Vec<u8>,
    /// The metrics to judge.
    pub metrics: Vec<MetricCheck>,
    /// Scoring knobs of the Mann-Whitney judge.
    #[serde(default)]
    pub mann_whitney: MannWhitneyConfig,
}

/// Canary requests a step needs before it may pass, when the spec does not say.
///
/// Why 200: at this many canary requests a gross regression (+5 points of
/// errors, or a p99 that doubled) crosses the sequential bound with high
/// probability before the step can pass, while at 1 request per second a step
/// still takes only a few minutes. Traffic heavier than 200 requests per
/// interval is unaffected: the step passes at the next tick.
///
/// With `min_requests` unset the sequential judge also holds the *last* step
/// until a regression of +1 point of errors (or a p99 tail three times as
/// heavy) would have been caught with about 95 % probability, scaled by
/// stable's observed error rate and the split: see the evidence gate in
/// [`crate::judge::sequential`]. Setting `min_requests` explicitly turns that
/// gate off: the user has chosen how much evidence a step needs.
pub const DEFAULT_MIN_REQUESTS: u64 = 200;

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self::flagger_defaults()
    }
}

// === impl AnalysisConfig ===

impl AnalysisConfig {
    /// The seed's Flagger settings: interval 1m, threshold 5, stepWeight 10
    /// up to maxWeight 50, success rate at least 99 %, p99 at most 500 ms.
    pub fn flagger_defaults() -> Self {
        AnalysisConfig {
            judge: JudgeKind::Sequential,
            alpha: 0.01,
            min_requests: None,
            pace: Pace::Evidence,
            interval: Duration::from_secs(60),
            threshold: 5,
            steps: vec![10, 20, 30, 40, 50],
            metrics: vec![
                MetricCheck::named("request-success-rate").range(Some(99.0), None),
                MetricCheck::named("request-duration").range(None, Some(500.0)),
            ],
            mann_whitney: MannWhitneyConfig::default(),
        }
    }

    /// Steps from Flagger's `stepWeight` and `maxWeight`.
    pub fn steps_from(step_weight: u8, max_weight: u8) -> Vec<u8> {
        let step = step_weight.max(1);
        let max = max_weight.clamp(1, 100);
        let mut steps: Vec<u8> = (1..)
            .map(|i: u32| (u32::from(step) * i).min(u32::from(max)) as u8)
            .take_while(|w| *w < max)
            .collect();
        steps.push(max);
        steps
    }

    /// The same configuration with another judge.
    pub fn with_judge(mut self, judge: JudgeKind) -> Self {
        self.judge = judge;
        self
    }

    /// [`min_requests`](Self::min_requests) with its default applied.
    pub fn min_requests(&self) -> u64 {
        self.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS)
    }

    /// The longest window any metric needs: what the runtime's windows must cover.
    pub fn longest_window(&self) -> Duration {
        self.metrics
            .iter()
            .map(|m| m.interval)
            .chain(std::iter::once(self.interval))
            .max()
            .unwrap_or(self.interval)
    }

    /// Every problem, one per entry (empty when valid).
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            out.push(ConfigError::Alpha(self.alpha));
        }
        if self.steps.is_empty() {
            out.push(ConfigError::NoSteps);
        }
        for w in &self.steps {
            if *w == 0 || *w > 100 {
                out.push(ConfigError::StepWeight(*w));
            }
        }
        if self.interval.is_zero() {
            out.push(ConfigError::Interval);
        }
        if self.threshold == 0 {
            out.push(ConfigError::Threshold);
        }
        for (index, m) in self.metrics.iter().enumerate() {
            let mut bad = |problem: String| {
                out.push(ConfigError::Metric {
                    index,
                    name: m.name.clone(),
                    problem,
                })
            };
            let (min, max) = m.threshold_range;
            for v in [min, max].into_iter().flatten() {
                if !v.is_finite() {
                    bad(format!("thresholdRange: bounds must be finite, got {v}"));
                }
            }
            if let (Some(lo), Some(hi)) = (min, max)
                && lo > hi
            {
                bad(format!("thresholdRange: min {lo} is above max {hi}"));
            }
            if let Some(c) = m.compare {
                if let Some(d) = c.max_delta
                    && !(d.is_finite() && d >= 0.0)
                {
                    bad(format!("compare.maxDelta: must be 0 or more, got {d}"));
                }
                if let Some(r) = c.max_ratio
                    && !(r.is_finite() && r >= 1.0)
                {
                    bad(format!("compare.maxRatio: must be 1 or more, got {r}"));
                }
            }
            if m.interval.is_zero() {
                bad("interval: must be positive".to_owned());
            }
        }
        out
    }

    /// Checks the configuration, returning the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flagger_steps() {
        assert_eq!(AnalysisConfig::steps_from(10, 50), vec![10, 20, 30, 40, 50]);
        assert_eq!(AnalysisConfig::steps_from(30, 50), vec![30, 50]);
        assert_eq!(AnalysisConfig::steps_from(0, 0), vec![1]);
        assert_eq!(AnalysisConfig::steps_from(100, 100), vec![100]);
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(AnalysisConfig::default().validate(), Ok(()));
        assert_eq!(
            AnalysisConfig::default().min_requests(),
            DEFAULT_MIN_REQUESTS
        );
    }

    #[test]
    fn problems_name_the_field() {
        let mut c = AnalysisConfig {
            alpha: 0.0,
            steps: vec![0],
            ..AnalysisConfig::default()
        };
        c.metrics
            .push(MetricCheck::named("x").range(Some(2.0), Some(1.0)));
        let p: Vec<String> = c.problems().iter().map(ToString::to_string).collect();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[2].contains("metrics[2] (x): thresholdRange"), "{p:?}");
    }

    #[test]
    fn judge_names_round_trip() {
        for j in JudgeKind::ALL {
            assert_eq!(j.as_str().parse::<JudgeKind>(), Ok(j));
        }
        assert!("bayes".parse::<JudgeKind>().is_err());
    }
}
