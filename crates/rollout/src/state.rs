//! The persisted state of one rollout.
//!
//! Everything needed to continue exactly where a rollout stopped lives here, so the
//! runtime can store it after every event and restore it after a crash. Nothing is
//! derived from a clock except recorded timestamps.

use crate::{
    action::Route,
    plan::{GateKind, HookKind},
    time::Timestamp,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Flagger's canary phases; serde writes exactly these names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Known, not yet set up.
    #[default]
    Initializing,
    /// The stable version takes all traffic; no rollout yet.
    Initialized,
    /// A new revision waits for the `confirm-rollout` gate.
    Waiting,
    /// Analysis runs and traffic moves to the canary step by step.
    Progressing,
    /// Analysis passed every step; waiting for the `confirm-promotion` gate while
    /// analysis keeps running.
    WaitingPromotion,
    /// The canary became the primary; traffic moves back to the primary.
    Promoting,
    /// All traffic is on the primary; the canary is being released.
    Finalising,
    /// The canary was promoted.
    Succeeded,
    /// The canary was rolled back.
    Failed,
}

/// The answer the machine is waiting for, at most one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pending {
    /// An [`Event::Analysis`](crate::Event::Analysis).
    Analysis,
    /// An [`Event::Gate`](crate::Event::Gate) of this kind.
    Gate(GateKind),
    /// An [`Event::Hook`](crate::Event::Hook) of this kind (`pre-rollout` or `rollout`).
    Hook(HookKind),
}

/// Flagger's `Promoted` status condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `True` once promoted, `False` after a rollback, `Unknown` otherwise.
    pub status: ConditionStatus,
    /// The phase that set it.
    pub reason: Phase,
    /// Why, in words.
    pub message: String,
    /// When it last changed.
    pub last_transition_time: Timestamp,
}

/// Kubernetes condition status values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// Promoted.
    True,
    /// Rolled back.
    False,
    /// Not decided yet.
    #[default]
    Unknown,
}

/// Where one canary's rollout stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutState {
    /// The current phase.
    pub phase: Phase,
    /// The canary revision being rolled out (or last rolled out).
    pub revision: Option<String>,
    /// A revision that arrived during promotion; it starts when promotion ends.
    pub queued_revision: Option<String>,
    /// Percentage of live traffic on the canary.
    pub canary_weight: u8,
    /// Percentage of requests mirrored to the canary right now.
    pub mirror: Option<u8>,
    /// Whether header/cookie matching sends chosen users to the canary right now.
    pub match_active: bool,
    /// Failed checks since this revision started (never reset by a pass).
    pub failed_checks: u32,
    /// Iterations done (A/B testing and blue/green).
    pub iterations: u32,
    /// How many canary steps were taken: the weight is `steps[step_index - 1]`.
    pub step_index: u32,
    /// Whether a person paused the rollout.
    pub paused: bool,
    /// The answer the machine is waiting for.
    pub pending: Option<Pending>,
    /// The gate whose last answer declined; holds the progress deadline, and keeps
    /// "waiting for approval" from being recorded every interval.
    pub declined_gate: Option<GateKind>,
    /// When the tick last asked for is due; `None` when no rollout is in progress.
    pub next_tick_at: Option<Timestamp>,
    /// When this revision's rollout started.
    pub started_at: Option<Timestamp>,
    /// When the rollout last advanced (step, iteration or phase), when a pause or
    /// declined gate last held it, or when the analysis last held for evidence
    /// ([`HoldKind::Evidence`](crate::HoldKind::Evidence)): the progress deadline
    /// counts from here.
    pub progressed_at: Timestamp,
    /// When the phase last changed.
    pub last_transition_time: Timestamp,
    /// The latest time the machine has seen; earlier times are read as this one.
    pub last_event_at: Timestamp,
    /// Why the rollout did not advance at the last interval, for the deadline message.
    pub stall_reason: Option<String>,
    /// The last decision, in words.
    pub message: String,
    /// Flagger's `Promoted` condition.
    pub condition: Condition,
}

// === impl Phase ===

impl Phase {
    /// Flagger's name for the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Initializing => "Initializing",
            Phase::Initialized => "Initialized",
            Phase::Waiting => "Waiting",
            Phase::Progressing => "Progressing",
            Phase::WaitingPromotion => "WaitingPromotion",
            Phase::Promoting => "Promoting",
            Phase::Finalising => "Finalising",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    /// A rollout is over: promoted or rolled back.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }

    /// A rollout is running and ticks are scheduled.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Phase::Waiting
                | Phase::Progressing
                | Phase::WaitingPromotion
                | Phase::Promoting
                | Phase::Finalising
        )
    }

    /// Promotion has begun and not finished: the canary was copied to the primary and
    /// traffic moves back to it. A new revision waits for the end of it.
    pub fn is_promoting(self) -> bool {
        matches!(self, Phase::Promoting | Phase::Finalising)
    }

    /// The rollout can still be paused, aborted or promoted by a person: promotion has
    /// not begun.
    pub fn is_before_promotion(self) -> bool {
        matches!(
            self,
            Phase::Waiting | Phase::Progressing | Phase::WaitingPromotion
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl RolloutState ===

impl RolloutState {
    /// A canary seen for the first time at `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            progressed_at: now,
            last_transition_time: now,
            last_event_at: now,
            condition: Condition {
                last_transition_time: now,
                ..Condition::default()
            },
            ..Self::default()
        }
    }

    /// The route the router should apply now (also after a restart).
    pub fn route(&self) -> Route {
        Route {
            canary_weight: self.canary_weight,
            mirror: self.mirror,
            match_active: self.match_active,
        }
    }
}
