//! A canary's status as the API shows it: Flagger's status fields
//! (`phase`, `canaryWeight`, `failedChecks`, `iterations`, `conditions`,
//! `lastTransitionTime`) plus where its proxy listens and what it routes to.

use serde::{Deserialize, Serialize};
use serin_rollout::{ConditionStatus, Phase, RolloutState, Timestamp};
use serin_server::Placement;

/// One canary's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The canary's name.
    pub name: String,
    /// Flagger's phase.
    pub phase: Phase,
    /// Percent of live traffic on the canary.
    pub canary_weight: u8,
    /// Failed checks of the current revision.
    pub failed_checks: u32,
    /// Iterations done (A/B testing, blue/green).
    pub iterations: u32,
    /// The revision rolled out (or last rolled out).
    pub revision: Option<String>,
    /// Whether a person paused the rollout.
    pub paused: bool,
    /// The last decision, in words.
    pub message: String,
    /// When the phase last changed (milliseconds since the Unix epoch).
    pub last_transition_time: Timestamp,
    /// Flagger's conditions (`Promoted`).
    pub conditions: Vec<ConditionView>,
    /// Where the proxy accepts user traffic.
    pub listen: String,
    /// The stable upstream now.
    pub stable: String,
    /// The canary upstream of the revision last started.
    pub canary: Option<String>,
    /// When the next interval is due, while a rollout is in progress.
    pub next_tick_at: Option<Timestamp>,
    /// The file the canary came from.
    pub file: String,
}

/// A Kubernetes-style condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// Always `Promoted`, Flagger's only condition.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// The phase that set it.
    pub reason: Phase,
    /// Why.
    pub message: String,
    /// When it last changed.
    pub last_transition_time: Timestamp,
}

// === impl CanaryStatus ===

impl CanaryStatus {
    /// The status of a canary whose rollout stands at `state`.
    pub fn new(
        name: &str,
        file: &str,
        listen: String,
        file_stable: &str,
        state: &RolloutState,
        placement: &Placement,
    ) -> Self {
        CanaryStatus {
            name: name.to_owned(),
            phase: state.phase,
            canary_weight: state.canary_weight,
            failed_checks: state.failed_checks,
            iterations: state.iterations,
            revision: state.revision.clone(),
            paused: state.paused,
            message: state.message.clone(),
            last_transition_time: state.last_transition_time,
            conditions: vec![ConditionView {
                kind: "Promoted".into(),
                status: state.condition.status,
                reason: state.condition.reason,
                message: state.condition.message.clone(),
                last_transition_time: state.condition.last_transition_time,
            }],
            listen,
            stable: placement
                .stable
                .clone()
                .unwrap_or_else(|| file_stable.to_owned()),
            canary: placement.canary.clone(),
            next_tick_at: state.next_tick_at,
            file: file.to_owned(),
        }
    }

    /// Updates the fields a rollout changes.
    pub fn apply(&mut self, state: &RolloutState) {
        self.phase = state.phase;
        self.canary_weight = state.canary_weight;
        self.failed_checks = state.failed_checks;
        self.iterations = state.iterations;
        self.revision.clone_from(&state.revision);
        self.paused = state.paused;
        self.message.clone_from(&state.message);
        self.last_transition_time = state.last_transition_time;
        self.next_tick_at = state.next_tick_at;
        if let Some(condition) = self.conditions.first_mut() {
            condition.status = state.condition.status;
            condition.reason = state.condition.reason;
            condition.message.clone_from(&state.condition.message);
            condition.last_transition_time = state.condition.last_transition_time;
        }
    }

    /// The rollout ended: promoted (`Succeeded`) or rolled back (`Failed`).
    pub fn is_done(&self) -> bool {
        self.phase.is_terminal()
    }
}
