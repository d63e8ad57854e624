//! The normalized input of a rollout: what to do, independent of how it was written.
//!
//! A `Canary` document (Flagger's or serin's) is mapped into a [`Plan`] elsewhere; this
//! crate only needs the few numbers and switches that drive progression, so it does not
//! depend on the YAML types and can be tested on its own.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Flagger's default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);

/// Everything the state machine needs to know about one canary's analysis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// How traffic moves to the canary.
    pub strategy: Strategy,
    /// Time between two analysis runs (`analysis.interval`).
    pub interval: Duration,
    /// Failed checks, counted over the whole rollout, that cause a rollback
    /// (`analysis.threshold`).
    pub threshold: u32,
    /// Percentage of requests copied to the canary (`analysis.mirror` with
    /// `mirrorWeight`; plain `mirror: true` is 100). Canary: one mirroring interval
    /// before the first live step. Blue/green: mirroring during all iterations.
    /// A/B testing ignores it, as Flagger does.
    pub mirror: Option<u8>,
    /// Promote without analysis (`skipAnalysis`).
    pub skip_analysis: bool,
    /// A rollout that does not advance for this long is rolled back
    /// (`progressDeadlineSeconds`, default 600s). See [`Plan::effective_deadline`].
    pub progress_deadline: Duration,
    /// After promotion, move traffic back to the primary by this many points per
    /// interval (`stepWeightPromotion`); `None` moves it all at once.
    pub step_weight_promotion: Option<u8>,
    /// Which webhook kinds the canary configures.
    pub hooks: HookSet,
    /// Minimum canary requests per interval; the analysis uses it to answer
    /// [`AnalysisResult::Hold`](crate::AnalysisResult::Hold). Carried here only so one value travels
    /// with the plan.
    pub min_requests: Option<u64>,
}

/// How traffic moves from the stable version (Flagger's primary) to the canary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Strategy {
    /// Progressive traffic shifting through `steps` (canary weights in percent,
    /// strictly increasing, 1..=100), then promotion.
    Canary {
        /// The weights, in order: `stepWeights` as written, or `stepWeight`/`maxWeight`
        /// expanded with [`steps_from_step_weight`].
        steps: Vec<u8>,
    },
    /// A/B testing: users matched by header or cookie go to the canary for
    /// `iterations` intervals; everyone else stays on the primary (weight stays 0).
    AbTesting {
        /// Analysis intervals before promotion.
        iterations: u32,
    },
    /// Blue/green: the canary receives no live traffic (only mirrored traffic, if
    /// `mirror` is set, and whatever a load tester sends it) for `iterations`
    /// intervals, then all traffic switches to it for one more interval, then it is
    /// promoted.
    BlueGreen {
        /// Analysis intervals before the switch.
        iterations: u32,
    },
}

/// The webhook kinds configured on a canary (Flagger's `analysis.webhooks[].type`).
///
/// Only presence matters here: the runtime calls every webhook of a kind when the
/// machine asks for that kind and folds their answers into one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct HookSet {
    /// `confirm-rollout`: a gate before a new revision starts.
    pub confirm_rollout: bool,
    /// `pre-rollout`: checks before the first traffic goes to the canary.
    pub pre_rollout: bool,
    /// `rollout` (or no type): checks run every interval next to the metrics.
    pub rollout: bool,
    /// `confirm-traffic-increase`: a gate before each weight increase.
    pub confirm_traffic_increase: bool,
    /// `confirm-promotion`: a gate before promotion.
    pub confirm_promotion: bool,
    /// `post-rollout`: notified after success or failure.
    pub post_rollout: bool,
    /// `rollback`: polled every interval; a 2xx answer rolls back.
    pub rollback: bool,
    /// `event`: receives every event record; the runtime forwards
    /// [`Action::Emit`](crate::Action::Emit) records there, the machine never asks.
    pub event: bool,
}

/// The gates: webhooks whose answer lets the rollout continue or holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateKind {
    /// Asked before a new revision starts; while it declines the phase is `Waiting`.
    ConfirmRollout,
    /// Asked before each canary weight increase; a decline holds the weight.
    ConfirmTrafficIncrease,
    /// Asked before promotion; while it declines the phase is `WaitingPromotion`
    /// and analysis keeps running.
    ConfirmPromotion,
}

/// The hooks: webhooks that check or get notified, but do not gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    /// Before the first traffic reaches the canary; a failure counts as a failed check.
    PreRollout,
    /// Every interval, before metrics; a failure counts as a failed check.
    Rollout,
    /// After the rollout ended, with the final phase.
    PostRollout,
    /// Polled every interval; `ok` (2xx) means "roll back now".
    Rollback,
    /// Event notifications; answers are accepted and ignored.
    Event,
}

/// Why a plan cannot drive a rollout. The spec crate reports these against the
/// document's fields; here they guard against plans built by hand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A canary strategy without any step would promote with no analysis at all.
    #[error("a canary strategy needs at least one step weight")]
    NoSteps,
    /// Weights are percentages of traffic.
    #[error("step weight {weight} is not between 1 and 100")]
    StepOutOfRange {
        /// The offending weight.
        weight: u8,
    },
    /// Steps must increase, or the rollout would move traffic back to the primary.
    #[error("step weights must increase strictly, got {previous} then {next}")]
    StepsNotIncreasing {
        /// The earlier weight.
        previous: u8,
        /// The weight that does not exceed it.
        next: u8,
    },
    /// A/B testing and blue/green promote after this many intervals; zero would skip
    /// analysis silently (use `skip_analysis` for that).
    #[error("iterations must be at least 1")]
    NoIterations,
    /// A zero interval would tick forever without time passing.
    #[error("interval must be longer than zero")]
    ZeroInterval,
    /// With a zero threshold the first interval would roll back before any check.
    #[error("threshold must be at least 1")]
    ZeroThreshold,
    /// Mirroring percentages are percentages.
    #[error("mirror weight {weight} is not between 1 and 100")]
    MirrorOutOfRange {
        /// The offending percentage.
        weight: u8,
    },
    /// Promotion steps are percentages, and a zero step would never finish.
    #[error("stepWeightPromotion {weight} is not between 1 and 100")]
    PromotionStepOutOfRange {
        /// The offending step.
        weight: u8,
    },
}

// === impl GateKind ===

impl GateKind {
    /// Flagger's webhook type name.
    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::ConfirmRollout => "confirm-rollout",
            GateKind::ConfirmTrafficIncrease => "confirm-traffic-increase",
            GateKind::ConfirmPromotion => "confirm-promotion",
        }
    }
}

// === impl HookKind ===

impl HookKind {
    /// Flagger's webhook type name.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PreRollout => "pre-rollout",
            HookKind::Rollout => "rollout",
            HookKind::PostRollout => "post-rollout",
            HookKind::Rollback => "rollback",
            HookKind::Event => "event",
        }
    }
}

// === impl Plan ===

impl Plan {
    /// A plan with Flagger's defaults for everything but the strategy, interval and
    /// threshold: no mirroring, analysis on, 600s progress deadline, promotion at
    /// once, no webhooks.
    pub fn new(strategy: Strategy, interval: Duration, threshold: u32) -> Self {
        Self {
            strategy,
            interval,
            threshold,
            mirror: None,
            skip_analysis: false,
            progress_deadline: DEFAULT_PROGRESS_DEADLINE,
            step_weight_promotion: None,
            hooks: HookSet::default(),
            min_requests: None,
        }
    }

    /// Checks the invariants the machine relies on.
    pub fn validate(&self) -> Result<(), PlanError> {
        match &self.strategy {
            Strategy::Canary { steps } => {
                if steps.is_empty() {
                    return Err(PlanError::NoSteps);
                }
                for &weight in steps {
                    if !(1..=100).contains(&weight) {
                        return Err(PlanError::StepOutOfRange { weight });
                    }
                }
                for pair in steps.windows(2) {
                    if let [previous, next] = *pair
                        && next <= previous
                    {
                        return Err(PlanError::StepsNotIncreasing { previous, next });
                    }
                }
            }
            Strategy::AbTesting { iterations } | Strategy::BlueGreen { iterations } => {
                if *iterations == 0 {
                    return Err(PlanError::NoIterations);
                }
            }
        }
        if self.interval.is_zero() {
            return Err(PlanError::ZeroInterval);
        }
        if self.threshold == 0 {
            return Err(PlanError::ZeroThreshold);
        }
        if let Some(weight) = self.mirror
            && !(1..=100).contains(&weight)
        {
            return Err(PlanError::MirrorOutOfRange { weight });
        }
        if let Some(weight) = self.step_weight_promotion
            && !(1..=100).contains(&weight)
        {
            return Err(PlanError::PromotionStepOutOfRange { weight });
        }
        Ok(())
    }

    /// The canary weights of a canary strategy; empty for the others.
    pub fn steps(&self) -> &[u8] {
        match &self.strategy {
            Strategy::Canary { steps } => steps,
            Strategy::AbTesting { .. } | Strategy::BlueGreen { .. } => &[],
        }
    }

    /// The progress deadline actually enforced: `progress_deadline`, but never less
    /// than three intervals.
    ///
    /// Progress can only happen on a tick, so a deadline shorter than the interval
    /// would fail every rollout, and one of two intervals would fail a rollout after a
    /// single inconclusive interval plus a few milliseconds of timer jitter. Flagger
    /// has no such interaction because its deadline watches pod readiness instead.
    pub fn effective_deadline(&self) -> Duration {
        self.progress_deadline.max(self.interval.saturating_mul(3))
    }
}

/// Expands Flagger's `stepWeight`/`maxWeight` into explicit steps: `step`, `2*step`,
/// ... up to `max`.
///
/// Flagger adds `stepWeight` until the weight reaches `maxWeight`, which can overshoot
/// it (step 30, max 50 gives 30, 60). serin caps the last step at `max` (30, 50): the
/// field is documented as the maximum traffic routed to the canary, and people rely on
/// it. A zero step or max yields no steps (which [`Plan::validate`] refuses).
pub fn steps_from_step_weight(step: u8, max: u8) -> Vec<u8> {
    let max = max.min(100);
    if step == 0 || max == 0 {
        return Vec::new();
    }
    let mut steps = Vec::new();
    let mut weight: u8 = 0;
    while weight < max {
        weight = weight.saturating_add(step).min(max);
        steps.push(weight);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_step_weight() {
        let cases: &[(u8, u8, &[u8])] = &[
            (10, 50, &[10, 20, 30, 40, 50]),
            (30, 50, &[30, 50]),
            (20, 100, &[20, 40, 60, 80, 100]),
            (100, 100, &[100]),
            (60, 255, &[60, 100]),
            (0, 50, &[]),
            (10, 0, &[]),
        ];
        for (step, max, want) in cases {
            assert_eq!(
                steps_from_step_weight(*step, *max),
                *want,
                "step {step} max {max}"
            );
        }
    }

    #[test]
    fn validation() {
        let ok = Plan::new(
            Strategy::Canary {
                steps: vec![10, 25, 50],
            },
            Duration::from_secs(60),
            5,
        );
        assert_eq!(ok.validate(), Ok(()));
        let cases = [
            (Strategy::Canary { steps: vec![] }, PlanError::NoSteps),
            (
                Strategy::Canary { steps: vec![0] },
                PlanError::StepOutOfRange { weight: 0 },
            ),
            (
                Strategy::Canary { steps: vec![101] },
                PlanError::StepOutOfRange { weight: 101 },
            ),
            (
                Strategy::Canary {
                    steps: vec![10, 10],
                },
                PlanError::StepsNotIncreasing {
                    previous: 10,
                    next: 10,
                },
            ),
            (
                Strategy::AbTesting { iterations: 0 },
                PlanError::NoIterations,
            ),
            (
                Strategy::BlueGreen { iterations: 0 },
                PlanError::NoIterations,
            ),
        ];
        for (strategy, want) in cases {
            let plan = Plan {
                strategy,
                ..ok.clone()
            };
            assert_eq!(plan.validate(), Err(want));
        }
        assert_eq!(
            Plan {
                interval: Duration::ZERO,
                ..ok.clone()
            }
            .validate(),
            Err(PlanError::ZeroInterval)
        );
        assert_eq!(
            Plan {
                threshold: 0,
                ..ok.clone()
            }
            .validate(),
            Err(PlanError::ZeroThreshold)
        );
        assert_eq!(
            Plan {
                mirror: Some(0),
                ..ok.clone()
            }
            .validate(),
            Err(PlanError::MirrorOutOfRange { weight: 0 })
        );
        assert_eq!(
            Plan {
                step_weight_promotion: Some(0),
                ..ok
            }
            .validate(),
            Err(PlanError::PromotionStepOutOfRange { weight: 0 })
        );
    }

    #[test]
    fn deadline_is_never_shorter_than_three_intervals() {
        let mut plan = Plan::new(
            Strategy::BlueGreen { iterations: 3 },
            Duration::from_secs(60),
            5,
        );
        assert_eq!(plan.effective_deadline(), Duration::from_secs(600));
        plan.interval = Duration::from_secs(300);
        assert_eq!(plan.effective_deadline(), Duration::from_secs(900));
    }
}
