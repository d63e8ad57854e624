//! Flagger's judge, exactly: each metric's point value over its window
//! against `thresholdRange`.
//!
//! Mirrors `runBuiltinMetricChecks`/`runMetricChecks` in Flagger's
//! `pkg/controller/scheduler_metrics.go`: a metric without a value ("no values
//! found", or NaN from the provider) is a failed check, any value outside the
//! range is a failed check, otherwise the check passes. Failed checks are
//! counted against `threshold` by the state machine, not here. serin's
//! `compare` margins are checked the same way, on point values.

use crate::{
    config::AnalysisConfig,
    decision::{Decision, MetricEvidence, Verdict},
    input::TickInput,
    judge::{
        Judge,
        checks::{Reading, check_all},
    },
};

/// Point checks against fixed bounds, per interval.
#[derive(Debug)]
pub struct ThresholdJudge {
    config: AnalysisConfig,
}

// === impl ThresholdJudge ===

impl ThresholdJudge {
    /// A judge for `config`.
    pub fn new(config: &AnalysisConfig) -> Self {
        ThresholdJudge {
            config: config.clone(),
        }
    }
}

impl Judge for ThresholdJudge {
    fn evaluate(&mut self, at_ms: u64, input: &TickInput) -> Decision {
        let checks = check_all(&self.config.metrics, input, Reading::Exact);
        let mut reasons: Vec<String> = checks
            .iter()
            .filter(|c| c.verdict != Verdict::Pass)
            .map(|c| c.reason.clone())
            .collect();
        let metrics = self
            .config
            .metrics
            .iter()
            .zip(checks)
            .map(|(m, c)| {
                let mut e = MetricEvidence::new(&m.name, c.status, c.reason);
                e.canary = c.point.canary;
                e.stable = c.point.stable;
                e.canary_requests = c.point.canary_requests;
                e.stable_requests = c.point.stable_requests;
                e.range = m.threshold_range;
                e.margin = m.compare.and_then(|c| c.max_delta);
                e
            })
            .collect();
        let verdict = if reasons.is_empty() {
            reasons.push("all metrics within their threshold ranges".to_owned());
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        Decision {
            verdict,
            at_ms,
            metrics,
            reasons,
            hold: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MetricCheck, MetricValue, decision::MetricStatus};
    use serin_stats::Pair;
    use std::time::Duration;

    fn pair(canary: (u64, u64, u64), stable: (u64, u64, u64)) -> Pair {
        let mut p = Pair::default();
        for (counts, (n, e, ms)) in [(&mut p.canary, canary), (&mut p.stable, stable)] {
            for i in 0..n {
                counts.record(if i < e { 500 } else { 200 }, Duration::from_millis(ms));
            }
        }
        p
    }

    fn input(p: Pair) -> TickInput {
        TickInput::builtin(&AnalysisConfig::flagger_defaults(), |_| p.clone())
    }

    fn judge() -> ThresholdJudge {
        ThresholdJudge::new(
            &AnalysisConfig::flagger_defaults().with_judge(crate::JudgeKind::Threshold),
        )
    }

    #[test]
    fn one_error_in_sixty_fails_a_99_percent_check() {
        let d = judge().evaluate(0, &input(pair((60, 1, 10), (600, 0, 10))));
        assert_eq!(d.verdict, Verdict::Fail);
        assert!(d.reasons[0].contains("98.3% < min 99"), "{:?}", d.reasons);
    }

    #[test]
    fn no_data_is_a_failed_check() {
        let d = judge().evaluate(0, &input(pair((0, 0, 0), (600, 0, 10))));
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(d.metrics[0].status, MetricStatus::NoData);
        let d = judge().evaluate(0, &TickInput::default());
        assert_eq!(d.verdict, Verdict::Fail);
    }

    #[test]
    fn slow_canary_fails_and_healthy_passes() {
        let d = judge().evaluate(0, &input(pair((100, 0, 800), (600, 0, 10))));
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(d.metrics[1].status, MetricStatus::Fail);
        let d = judge().evaluate(0, &input(pair((100, 0, 20), (600, 0, 10))));
        assert_eq!(d.verdict, Verdict::Pass, "{:?}", d.reasons);
    }

    #[test]
    fn custom_metrics_and_compare() {
        let mut c = AnalysisConfig::flagger_defaults().with_judge(crate::JudgeKind::Threshold);
        c.metrics = vec![
            MetricCheck::named("conversion")
                .direction(crate::Direction::HigherIsBetter)
                .range(Some(1.0), None)
                .compare(Some(0.5), None),
        ];
        let mut j = ThresholdJudge::new(&c);
        let mut input = TickInput::default();
        input.push_scalar("conversion", Some(2.0), Some(3.0));
        let d = j.evaluate(0, &input);
        assert_eq!(d.verdict, Verdict::Fail, "{:?}", d.reasons);
        let mut input = TickInput::default();
        input.push_scalar("conversion", Some(2.8), Some(3.0));
        assert_eq!(j.evaluate(0, &input).verdict, Verdict::Pass);
        let mut input = TickInput::default();
        input.metrics.push(crate::MetricInput {
            name: "conversion".into(),
            value: MetricValue::Scalar {
                canary: Some(f64::NAN),
                stable: Some(3.0),
            },
        });
        assert_eq!(j.evaluate(0, &input).verdict, Verdict::Fail);
    }
}
