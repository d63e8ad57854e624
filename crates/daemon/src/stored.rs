//! Stored state is input: a row read back from the store is checked before
//! a canary is launched from it, as a canary file is before it runs.
//!
//! The store only ever holds what a rollout wrote, unless someone edited
//! the database, restored a wrong backup, or a disk broke. Trusted blindly,
//! a `canaryWeight` of 250 served "250 %" and a later `start` hung with a
//! 504; a `stepIndex` past the plan's steps would skip straight to
//! promotion. [`check`] refuses any state the rollout state machine could
//! not have produced under this canary's plan, naming the field.

use crate::store::StoredCanary;
use serin_rollout::{Phase, Plan, RolloutState};
use std::fmt;

/// Longest revision (and upstream address) kept in a state.
pub const MAX_REVISION_BYTES: usize = 4096;

/// Longest message kept in a state.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A stored state no rollout of this canary could have written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("state for canary {canary}: {field}: {message}")]
pub struct BadState {
    /// The canary.
    pub canary: String,
    /// The field of the stored state, as the store writes it
    /// (`canaryWeight`, `placement.stable`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Checks a stored canary against the plan it is about to run under.
pub fn check(stored: &StoredCanary, plan: &Plan) -> Result<(), BadState> {
    let bad = |field: &'static str, message: String| BadState {
        canary: stored.name.clone(),
        field,
        message,
    };
    let state = &stored.state;
    percent(state.canary_weight).map_err(|message| bad("canaryWeight", message))?;
    if let Some(mirror) = state.mirror {
        percent(mirror).map_err(|message| bad("mirror", message))?;
    }
    bounded(state.revision.as_deref(), MAX_REVISION_BYTES)
        .map_err(|message| bad("revision", message))?;
    bounded(state.queued_revision.as_deref(), MAX_REVISION_BYTES)
        .map_err(|message| bad("queuedRevision", message))?;
    too_long_message(&state.message).map_err(|message| bad("message", message))?;
    bounded(state.stall_reason.as_deref(), MAX_MESSAGE_BYTES)
        .map_err(|message| bad("stallReason", message))?;
    steps(state, plan).map_err(|message| bad("stepIndex", message))?;
    phase(state).map_err(|(field, message)| bad(field, message))?;
    bounded(stored.placement.stable.as_deref(), MAX_REVISION_BYTES)
        .map_err(|message| bad("placement.stable", message))?;
    bounded(stored.placement.canary.as_deref(), MAX_REVISION_BYTES)
        .map_err(|message| bad("placement.canary", message))?;
    if let Some(target) = &stored.file_target {
        bounded(Some(&target.address), MAX_REVISION_BYTES)
            .map_err(|message| bad("fileTarget.address", message))?;
        bounded(Some(&target.revision), MAX_REVISION_BYTES)
            .map_err(|message| bad("fileTarget.revision", message))?;
    }
    Ok(())
}

fn percent(value: u8) -> Result<(), String> {
    if value <= 100 {
        Ok(())
    } else {
        Err(format!("must be between 0 and 100, got {value}"))
    }
}

/// A present string is 1 to `max` bytes long.
fn bounded(value: Option<&str>, max: usize) -> Result<(), String> {
    match value {
        Some("") => Err("must not be empty".into()),
        Some(text) if text.len() > max => {
            Err(format!("must be at most {max} bytes, got {}", text.len()))
        }
        _ => Ok(()),
    }
}

/// Messages may be empty (a canary never started has none); only length
/// counts.
fn too_long_message(message: &str) -> Result<(), String> {
    if message.len() > MAX_MESSAGE_BYTES {
        Err(format!(
            "must be at most {MAX_MESSAGE_BYTES} bytes, got {}",
            message.len()
        ))
    } else {
        Ok(())
    }
}

fn steps(state: &RolloutState, plan: &Plan) -> Result<(), String> {
    let taken = usize::try_from(state.step_index).unwrap_or(usize::MAX);
    let steps = plan.steps().len();
    if taken <= steps {
        return Ok(());
    }
    Err(if steps == 0 {
        format!(
            "{taken} weight steps taken, but the canary's analysis has none (A/B testing or blue/green); was spec.analysis changed during a rollout?"
        )
    } else {
        format!(
            "{taken} steps taken, but the canary's analysis has {steps}; was spec.analysis changed during a rollout?"
        )
    })
}

/// The phase agrees with the rest: a rollout in progress has a revision;
/// one that is not waits for no answer; before any rollout and after a
/// rollback the canary takes no traffic.
fn phase(state: &RolloutState) -> Result<(), (&'static str, String)> {
    let phase = state.phase;
    if phase.is_active() && state.revision.is_none() {
        return Err((
            "revision",
            format!(
                "phase {phase} is a rollout in progress, which needs a revision; none is stored"
            ),
        ));
    }
    if !phase.is_active()
        && let Some(pending) = state.pending
    {
        return Err((
            "pending",
            format!(
                "phase {phase} waits for no answer, got {}",
                Pending(pending)
            ),
        ));
    }
    if matches!(
        phase,
        Phase::Initializing | Phase::Initialized | Phase::Failed
    ) {
        if state.canary_weight != 0 {
            return Err((
                "canaryWeight",
                format!(
                    "must be 0 in phase {phase} (all traffic on stable), got {}",
                    state.canary_weight
                ),
            ));
        }
        if let Some(mirror) = state.mirror {
            return Err((
                "mirror",
                format!("must be null in phase {phase} (nothing mirrored), got {mirror}"),
            ));
        }
    }
    Ok(())
}

/// A pending answer, for messages.
struct Pending(serin_rollout::Pending);

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_value(self.0) {
            Ok(value) => write!(f, "{value}"),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_rollout::Timestamp;

    fn plan(steps: Vec<u8>) -> Plan {
        let canary: serin_spec::Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.dev/v1alpha1",
            "kind": "Canary",
            "metadata": {"name": "myapp"},
            "spec": {"analysis": {"interval": "1m", "threshold": 2, "stepWeights": steps}},
        }))
        .expect("a canary");
        serin_server::mapping::plan_for(&canary)
    }

    fn stored(state: RolloutState) -> StoredCanary {
        StoredCanary {
            name: "myapp".into(),
            state,
            placement: serin_server::Placement::default(),
            file_target: None,
            evidence: None,
        }
    }

    fn progressing(step_index: u32, weight: u8) -> RolloutState {
        RolloutState {
            phase: Phase::Progressing,
            revision: Some("v2".into()),
            step_index,
            canary_weight: weight,
            ..RolloutState::new(Timestamp::from_millis(1))
        }
    }

    #[test]
    fn states_a_rollout_writes_pass() {
        let plan = plan(vec![10, 50]);
        assert_eq!(check(&stored(RolloutState::default()), &plan), Ok(()));
        assert_eq!(check(&stored(progressing(2, 50)), &plan), Ok(()));
    }

    #[test]
    fn each_field_is_named() {
        let plan = plan(vec![10, 50]);
        let field = |state: RolloutState| check(&stored(state), &plan).expect_err("refused").field;
        assert_eq!(field(progressing(1, 250)), "canaryWeight");
        assert_eq!(field(progressing(3, 50)), "stepIndex");
        let mut failed = progressing(2, 50);
        failed.phase = Phase::Failed;
        assert_eq!(field(failed), "canaryWeight");
        let mut no_revision = progressing(1, 10);
        no_revision.revision = None;
        assert_eq!(field(no_revision), "revision");
        let mut empty = progressing(1, 10);
        empty.revision = Some(String::new());
        assert_eq!(field(empty), "revision");
        let mut queued = progressing(1, 10);
        queued.queued_revision = Some("q".repeat(MAX_REVISION_BYTES + 1));
        assert_eq!(field(queued), "queuedRevision");
        let mut pending = RolloutState {
            phase: Phase::Succeeded,
            ..RolloutState::default()
        };
        pending.pending = Some(serin_rollout::Pending::Analysis);
        assert_eq!(field(pending), "pending");
        let message = check(&stored(progressing(1, 250)), &plan)
            .expect_err("refused")
            .to_string();
        assert_eq!(
            message,
            "state for canary myapp: canaryWeight: must be between 0 and 100, got 250"
        );
    }
}
