//! What a judge answers: a verdict and the evidence behind it.
//!
//! Every decision carries numbers, because a rollback nobody can explain is
//! a rollback nobody trusts. The same structure goes into the rollout
//! history, the JSON output and the dashboard, so it is serializable and flat.

use serde::{Deserialize, Serialize};

/// What the state machine should do after a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The step may advance.
    Pass,
    /// Inconclusive, or not enough canary requests at this step: stay, do not
    /// count a failure.
    Hold,
    /// One failed check: the state machine counts failed checks against
    /// `threshold`, Flagger style.
    Fail,
    /// Decisive evidence of harm: roll back now.
    Rollback,
}

// === impl Verdict ===

impl Verdict {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Hold => "hold",
            Verdict::Fail => "fail",
            Verdict::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a judge holds ([`Verdict::Hold`]): the state machine bounds a hold the
/// system causes with the progress deadline, not one that waits for evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldReason {
    /// The judge has the data, sees no harm, and waits for evidence to
    /// accumulate (e.g. the sequential judge's evidence gate before
    /// promotion): traffic flows and evidence grows, so the progress deadline
    /// does not count it.
    Evidence,
    /// The system is behind: too little traffic (fewer requests than the
    /// step needs), a custom metric without a value. Counts against the
    /// progress deadline.
    System,
}

/// How one metric came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricStatus {
    /// Within bounds / no evidence of harm and enough data.
    Pass,
    /// Not enough data or evidence either way.
    Inconclusive,
    /// Out of range at this check (threshold judge) or scored as failed.
    Fail,
    /// Decisive evidence of harm (the e-process crossed its bound).
    Harm,
    /// No value at all for this metric.
    NoData,
}

/// A two-sided interval, e.g. a confidence bound.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// The evidence for one metric in one decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricEvidence {
    /// The metric's name.
    pub name: String,
    /// How it came out.
    pub status: MetricStatus,
    /// The canary's estimate in the metric's unit (point value of the window,
    /// or the running estimate of the sequential judge).
    pub canary: Option<f64>,
    /// The stable version's estimate, same unit.
    pub stable: Option<f64>,
    /// Canary requests behind the estimate (0 for custom metrics).
    pub canary_requests: u64,
    /// Stable requests behind the estimate.
    pub stable_requests: u64,
    /// The configured `thresholdRange` (min, max).
    pub range: (Option<f64>, Option<f64>),
    /// The bound the judge compared with: a confidence interval of the canary
    /// (sequential), of the effect (Mann-Whitney), or absent (point checks).
    pub interval: Option<Bounds>,
    /// The allowed difference from stable, in the metric's unit, if any.
    pub margin: Option<f64>,
    /// The e-value of the harm test (sequential judge): evidence against "no harm".
    pub e_value: Option<f64>,
    /// The p-value (Mann-Whitney judge).
    pub p_value: Option<f64>,
    /// The power reached so far to have caught a regression of the planning
    /// size (sequential judge, comparisons with stable), 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<f64>,
    /// One line, with numbers.
    pub reason: String,
}

// === impl MetricEvidence ===

impl MetricEvidence {
    /// Evidence with only a name, status and reason; fill the rest by field.
    pub fn new(name: &str, status: MetricStatus, reason: String) -> Self {
        MetricEvidence {
            name: name.to_owned(),
            status,
            canary: None,
            stable: None,
            canary_requests: 0,
            stable_requests: 0,
            range: (None, None),
            interval: None,
            margin: None,
            e_value: None,
            p_value: None,
            power: None,
            reason,
        }
    }

    /// Makes every number finite so the evidence serializes and reads back
    /// unchanged (JSON has no NaN or infinity): estimates that are not finite
    /// become absent, an e-value or bound beyond `f64::MAX` is clamped to it.
    pub fn sanitize(&mut self) {
        let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
        self.canary = finite(self.canary);
        self.stable = finite(self.stable);
        self.margin = finite(self.margin);
        self.p_value = finite(self.p_value);
        self.power = finite(self.power).map(|p| p.clamp(0.0, 1.0));
        self.e_value = self
            .e_value
            .filter(|v| !v.is_nan())
            .map(|v| v.clamp(0.0, f64::MAX));
        self.interval = self.interval.and_then(|b| {
            (!b.low.is_nan() && !b.high.is_nan()).then(|| Bounds {
                low: b.low.clamp(-f64::MAX, f64::MAX),
                high: b.high.clamp(-f64::MAX, f64::MAX),
            })
        });
        self.range = (finite(self.range.0), finite(self.range.1));
    }
}

/// A judge's answer at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// When it was decided (the caller's clock, milliseconds).
    pub at_ms: u64,
    /// Per-metric evidence, in configuration order.
    pub metrics: Vec<MetricEvidence>,
    /// Human-readable reasons, most important first.
    pub reasons: Vec<String>,
    /// With [`Verdict::Hold`]: what the hold waits for. `None` (also in
    /// decisions stored before the field existed) reads as
    /// [`HoldReason::System`], as every hold counted before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldReason>,
}

// === impl Decision ===

impl Decision {
    /// Whether this decision ends the rollout with a rollback.
    pub fn is_rollback(&self) -> bool {
        self.verdict == Verdict::Rollback
    }

    /// The reasons that explain the verdict, for a record read by people:
    /// the metrics that failed their check (`Fail`), what the hold waits for
    /// (`Hold`), the evidence of harm (`Rollback`); nothing for a pass. The
    /// full reasons and every metric's numbers stay in the decision.
    pub fn why(&self) -> Vec<String> {
        let is_metric_line = |r: &String| self.metrics.iter().any(|m| &m.reason == r);
        match self.verdict {
            Verdict::Pass => Vec::new(),
            Verdict::Fail => {
                let failed: Vec<String> = self
                    .metrics
                    .iter()
                    .filter(|m| matches!(m.status, MetricStatus::Fail | MetricStatus::NoData))
                    .map(|m| m.reason.clone())
                    .collect();
                if failed.is_empty() {
                    self.reasons.clone()
                } else {
                    failed
                }
            }
            Verdict::Hold => {
                let mut why: Vec<String> = self
                    .reasons
                    .iter()
                    .filter(|r| !is_metric_line(r) && !r.starts_with(NO_HARM))
                    .cloned()
                    .collect();
                why.extend(
                    self.metrics
                        .iter()
                        .filter(|m| {
                            matches!(m.status, MetricStatus::Inconclusive | MetricStatus::NoData)
                                && m.reason.contains("holding")
                        })
                        .map(|m| m.reason.clone()),
                );
                if why.is_empty() {
                    self.reasons.clone()
                } else {
                    why
                }
            }
            Verdict::Rollback => self.reasons.clone(),
        }
    }

    /// [`MetricEvidence::sanitize`] on every metric.
    pub fn sanitize(mut self) -> Self {
        for m in &mut self.metrics {
            m.sanitize();
        }
        self
    }
}

/// How the sequential judge's "no harm found" note starts (a note, not a
/// reason to hold).
pub(crate) const NO_HARM: &str = "no evidence of harm";

/// Formats a number for reasons: few digits, no noise. Never prints `NaN`
/// or `inf`: a value that is not a number reads "n/a", an unbounded one "∞".
pub(crate) fn num(v: f64) -> String {
    if v.is_nan() {
        return "n/a".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞" } else { "-∞" }.to_owned();
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.01 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_serialize_flat() {
        let d = Decision {
            verdict: Verdict::Rollback,
            at_ms: 5,
            metrics: vec![MetricEvidence::new(
                "request-success-rate",
                MetricStatus::Harm,
                "x".into(),
            )],
            reasons: vec!["x".into()],
            hold: None,
        };
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains("\"verdict\":\"rollback\""), "{json}");
        assert!(json.contains("\"status\":\"harm\""), "{json}");
        let back: Decision = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn hold_reasons_are_optional_in_stored_decisions() {
        let old = r#"{"verdict":"hold","at_ms":5,"metrics":[],"reasons":["waiting"]}"#;
        let d: Decision = serde_json::from_str(old).unwrap();
        assert_eq!(d.hold, None);
        let held = Decision {
            hold: Some(HoldReason::Evidence),
            ..d
        };
        let json = serde_json::to_string(&held).unwrap();
        assert!(json.contains(r#""hold":"evidence""#), "{json}");
        assert_eq!(serde_json::from_str::<Decision>(&json).unwrap(), held);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(3.14659), "3.15");
        assert_eq!(num(142.3), "142");
        assert_eq!(num(0.0001234), "1.23e-4");
        assert_eq!(num(f64::NAN), "n/a");
        assert_eq!(num(f64::INFINITY), "∞");
    }
}
