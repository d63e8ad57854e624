//! From a canary file to what the pure parts need: the state machine's
//! [`Plan`] and the analysis' [`AnalysisConfig`]. Pure functions, so every
//! rule here is unit-tested without a proxy or a clock.

use serin_analysis::{AnalysisConfig, Compare, Direction, JudgeKind, MetricCheck, MetricKind};
use serin_rollout::{HookSet, Plan, Strategy, steps_from_step_weight};
use serin_spec::{Canary, MetricSource, Problem, ResolvedCanary, WebhookType};

/// The state machine's plan for a canary.
pub fn plan_for(canary: &Canary) -> Plan {
    let analysis = canary.analysis();
    let strategy = match canary.strategy() {
        serin_spec::StrategyKind::Canary => Strategy::Canary {
            steps: steps_of(canary),
        },
        serin_spec::StrategyKind::ABTesting => Strategy::AbTesting {
            iterations: analysis.iterations().max(1),
        },
        serin_spec::StrategyKind::BlueGreen => Strategy::BlueGreen {
            iterations: analysis.iterations().max(1),
        },
    };
    let mut plan = Plan::new(strategy, analysis.interval(), analysis.threshold());
    plan.mirror = analysis.mirror.then(|| analysis.mirror_weight());
    plan.skip_analysis = canary.spec.skip_analysis;
    plan.progress_deadline = canary.progress_deadline();
    plan.step_weight_promotion = analysis
        .step_weight_promotion
        .and_then(|w| u8::try_from(w.clamp(1, 100)).ok());
    plan.min_requests = analysis.min_requests;
    let has = |kind: WebhookType| analysis.webhooks_of(kind).next().is_some();
    plan.hooks = HookSet {
        confirm_rollout: has(WebhookType::ConfirmRollout),
        pre_rollout: has(WebhookType::PreRollout),
        rollout: has(WebhookType::Rollout),
        confirm_traffic_increase: has(WebhookType::ConfirmTrafficIncrease),
        confirm_promotion: has(WebhookType::ConfirmPromotion),
        post_rollout: has(WebhookType::PostRollout),
        rollback: has(WebhookType::Rollback),
        event: has(WebhookType::Event),
    };
    plan
}

/// The canary weights of a progressive rollout. `stepWeights` as written;
/// `stepWeight` up to `maxWeight`, never past it (serin caps the last step
/// where Flagger would overshoot); Flagger's default of 10 % steps to 100 %
/// when neither is set.
pub fn steps_of(canary: &Canary) -> Vec<u8> {
    let analysis = canary.analysis();
    if !analysis.step_weights.is_empty() {
        return analysis
            .step_weights
            .iter()
            .filter_map(|w| u8::try_from(*w).ok())
            .filter(|w| (1..=100).contains(w))
            .collect();
    }
    let step = analysis
        .step_weight
        .and_then(|w| u8::try_from(w).ok())
        .filter(|w| *w > 0)
        .unwrap_or(10);
    steps_from_step_weight(step, analysis.max_weight())
}

/// The analysis configuration of a resolved canary, or the problems that keep
/// it from running here (each naming its field).
pub fn analysis_for(
    resolved: &ResolvedCanary<'_>,
    plan: &Plan,
) -> Result<AnalysisConfig, Vec<Problem>> {
    let canary = resolved.canary;
    let analysis = canary.analysis();
    let mut problems = Vec::new();
    let mut metrics = Vec::with_capacity(resolved.metrics.len());
    for (index, resolved_metric) in resolved.metrics.iter().enumerate() {
        let metric = resolved_metric.metric;
        let kind = match resolved_metric.source {
            // An ALB's built-in metrics are CloudWatch's numbers per
            // version, judged as a template's are.
            MetricSource::Builtin(_)
                if serin_providers::metrics::builtin_from_cloudwatch(canary) =>
            {
                MetricKind::Custom
            }
            MetricSource::Builtin(builtin) => {
                match serin_analysis::BuiltinMetric::from_name(builtin.name()) {
                    Some(b) => MetricKind::Builtin(b),
                    None => {
                        problems.push(Problem::new(
                            format!("spec.analysis.metrics[{index}].name"),
                            format!(
                                "{} is not measured by this version of serin",
                                builtin.name()
                            ),
                        ));
                        continue;
                    }
                }
            }
            // A scalar per version from a provider, judged by the metric's
            // range, comparison and direction like any other.
            MetricSource::Template(_) | MetricSource::InlineQuery(_) => MetricKind::Custom,
        };
        let range = metric.effective_range().unwrap_or_default();
        let direction = match metric.direction() {
            serin_spec::Direction::Higher => Direction::HigherIsBetter,
            serin_spec::Direction::Lower => Direction::LowerIsBetter,
        };
        metrics.push(MetricCheck {
            name: metric.name.clone(),
            kind,
            threshold_range: (range.min, range.max),
            compare: metric.compare.map(|c| Compare {
                max_delta: c.max_delta,
                max_ratio: c.max_ratio,
            }),
            direction,
            interval: metric.interval(),
            critical: false,
        });
    }
    let judge = match analysis.judge() {
        serin_spec::JudgeKind::Sequential => JudgeKind::Sequential,
        serin_spec::JudgeKind::Threshold => JudgeKind::Threshold,
        serin_spec::JudgeKind::MannWhitney => JudgeKind::MannWhitney,
    };
    let steps = match &plan.strategy {
        Strategy::Canary { steps } => steps.clone(),
        // A/B testing and blue/green judge at one weight for every iteration.
        Strategy::AbTesting { .. } | Strategy::BlueGreen { .. } => vec![100],
    };
    let config = AnalysisConfig {
        judge,
        alpha: analysis.alpha(),
        min_requests: analysis.min_requests,
        pace: match analysis.pace.unwrap_or_default() {
            serin_spec::Pace::Evidence => serin_analysis::Pace::Evidence,
            serin_spec::Pace::Schedule => serin_analysis::Pace::Schedule,
        },
        interval: analysis.interval(),
        threshold: analysis.threshold(),
        steps,
        metrics,
        mann_whitney: Default::default(),
    };
    for error in config.problems() {
        problems.push(Problem::new("spec.analysis", error.to_string()));
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(yaml: &str) -> Canary {
        let documents = serin_spec::load_documents("canary.yaml", yaml).expect("valid test canary");
        documents
            .into_iter()
            .find_map(|d| d.as_canary().cloned())
            .expect("a canary")
    }

    const SEED: &str = r#"
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: myapp
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:8080
  upstreams:
    stable: http://127.0.0.1:9001
    canary: http://127.0.0.1:9002
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1m
      compare: {maxDelta: 1}
    - name: request-duration
      thresholdRange: {max: 500}
      interval: 30s
    webhooks:
    - name: gate
      type: confirm-promotion
      url: http://127.0.0.1:1/gate
"#;

    #[test]
    fn seed_maps_to_flaggers_plan() {
        let c = canary(SEED);
        let plan = plan_for(&c);
        assert_eq!(
            plan.strategy,
            Strategy::Canary {
                steps: vec![10, 20, 30, 40, 50]
            }
        );
        assert_eq!(plan.interval, std::time::Duration::from_secs(60));
        assert_eq!(plan.threshold, 5);
        assert!(plan.hooks.confirm_promotion);
        assert!(!plan.hooks.rollout);
        assert_eq!(plan.mirror, None);
    }

    #[test]
    fn seed_maps_to_analysis_with_compare_and_windows() {
        let c = canary(SEED);
        let catalog = serin_spec::Catalog::from_documents(
            serin_spec::load_documents("c.yaml", SEED).unwrap(),
        );
        let resolved = catalog.resolve_for_run(&c).unwrap();
        let config = analysis_for(&resolved, &plan_for(&c)).unwrap();
        assert_eq!(config.judge, JudgeKind::Sequential);
        assert_eq!(config.metrics.len(), 2);
        assert_eq!(config.metrics[0].threshold_range, (Some(99.0), None));
        assert_eq!(
            config.metrics[0].compare,
            Some(Compare {
                max_delta: Some(1.0),
                max_ratio: None
            })
        );
        assert_eq!(
            config.metrics[1].interval,
            std::time::Duration::from_secs(30)
        );
        assert_eq!(config.metrics[1].direction, Direction::LowerIsBetter);
        assert_eq!(config.steps, vec![10, 20, 30, 40, 50]);
    }

    #[test]
    fn step_weights_and_uneven_max_weight() {
        let c = canary(&SEED.replace(
            "maxWeight: 50\n    stepWeight: 10",
            "stepWeights: [10, 25, 50, 75, 100]",
        ));
        assert_eq!(steps_of(&c), vec![10, 25, 50, 75, 100]);
        let c = canary(&SEED.replace(
            "maxWeight: 50\n    stepWeight: 10",
            "maxWeight: 50\n    stepWeight: 20",
        ));
        assert_eq!(
            steps_of(&c),
            vec![20, 40, 50],
            "the last step is capped at maxWeight"
        );
    }

    #[test]
    fn ab_testing_and_mirroring() {
        let yaml = SEED.replace("maxWeight: 50\n    stepWeight: 10", "iterations: 3\n    match:\n    - headers:\n        x-canary:\n          exact: insider");
        let plan = plan_for(&canary(&yaml));
        assert_eq!(plan.strategy, Strategy::AbTesting { iterations: 3 });
        let yaml = SEED.replace(
            "maxWeight: 50\n    stepWeight: 10",
            "iterations: 4\n    mirror: true\n    mirrorWeight: 30",
        );
        let plan = plan_for(&canary(&yaml));
        assert_eq!(plan.strategy, Strategy::BlueGreen { iterations: 4 });
        assert_eq!(plan.mirror, Some(30));
    }

    #[test]
    fn templates_map_to_custom_metrics_with_direction_and_compare() {
        let with_metric = SEED.replace(
            "    webhooks:",
            "    - name: conversion\n      templateRef: {name: conv}\n      thresholdRange: {min: 1}\n      direction: higher\n      compare: {maxDelta: 0.5}\n      interval: 2m\n    webhooks:",
        );
        let yaml = format!(
            "{with_metric}---\napiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n  name: conv\nspec:\n  provider:\n    type: prometheus\n    address: http://127.0.0.1:9090\n  query: sum(rate(orders[1m]))\n"
        );
        let documents = serin_spec::load_documents("c.yaml", &yaml).unwrap();
        let catalog = serin_spec::Catalog::from_documents(documents);
        let c = catalog.canary("myapp").unwrap();
        let resolved = catalog.resolve_for_run(c).unwrap();
        let config = analysis_for(&resolved, &plan_for(c)).unwrap();
        let conversion = &config.metrics[2];
        assert_eq!(conversion.name, "conversion");
        assert_eq!(conversion.kind, MetricKind::Custom);
        assert_eq!(conversion.direction, Direction::HigherIsBetter);
        assert_eq!(conversion.threshold_range, (Some(1.0), None));
        assert_eq!(
            conversion.compare,
            Some(Compare {
                max_delta: Some(0.5),
                max_ratio: None
            })
        );
        assert_eq!(conversion.interval, std::time::Duration::from_secs(120));
    }
}
