//! The rollout state machine: a pure function of state, time and observations that
//! emits actions.
//!
//! serin moves traffic from a stable version to a canary step by step and promotes or
//! rolls back on its own, with Flagger's semantics (phases, failed-check threshold,
//! A/B testing, blue/green, mirroring, webhooks and gates). This crate decides; it does
//! no I/O, spawns nothing and never reads a clock, so every decision can be replayed
//! and tested, and a rollout restored from storage continues exactly where it stopped.
//!
//! # Driving a rollout
//!
//! The runtime owns a [`Rollout`] (or a [`RolloutState`] and a [`Plan`] with [`step`]),
//! feeds it [`Event`]s with the time they happened and carries out the [`Action`]s it
//! returns, in order:
//!
//! | action | runtime does | answers with |
//! |---|---|---|
//! | [`Action::SetRoute`] | applies the weights (retrying until applied) | nothing |
//! | [`Action::ScheduleTick`] | replaces its single timer | [`Event::Tick`] when due |
//! | [`Action::RunAnalysis`] | runs this interval's checks | [`Event::Analysis`] |
//! | [`Action::CallGate`] | calls the gate webhooks | [`Event::Gate`] |
//! | [`Action::CallHook`] pre-rollout/rollout | calls the webhooks | [`Event::Hook`] |
//! | [`Action::CallHook`] rollback | calls the webhooks | [`Event::RollbackRequested`] on 2xx |
//! | [`Action::CallHook`] post-rollout | calls the webhooks | optionally [`Event::Hook`] |
//! | [`Action::Promote`] | makes the canary the stable version | nothing |
//! | [`Action::Finalise`] | releases the canary | nothing |
//! | [`Action::Emit`] | records, alerts, `event` webhooks | nothing |
//!
//! Persist the state after every event; after a restart call [`Rollout::recover`] to
//! get the route to re-apply, the tick to re-arm and the request to send again.
//!
//! # Refused events
//!
//! An event that does not apply (a late answer, a tick from a stale timer, `pause` on
//! a finished rollout) returns an [`Error`] and changes nothing; see [`error`].

#![forbid(unsafe_code)]

mod action;
pub mod error;
mod event;
mod machine;
mod plan;
mod state;
mod time;

pub use crate::{
    action::{Action, Record, Route, Severity},
    error::{Error, Result},
    event::{Event, Verdict},
    machine::step,
    plan::{
        DEFAULT_PROGRESS_DEADLINE, GateKind, HookKind, HookSet, Plan, PlanError, Strategy,
        steps_from_step_weight,
    },
    state::{Condition, ConditionStatus, Pending, Phase, RolloutState},
    time::Timestamp,
};

use serde::{Deserialize, Serialize};

/// One canary's rollout: its plan and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    plan: Plan,
    state: RolloutState,
}

// === impl Rollout ===

impl Rollout {
    /// A canary seen for the first time at `now` (phase `Initializing`).
    pub fn new(plan: Plan, now: Timestamp) -> Result<Self> {
        plan.validate()?;
        Ok(Self {
            plan,
            state: RolloutState::new(now),
        })
    }

    /// A rollout restored from storage.
    pub fn restore(plan: Plan, state: RolloutState) -> Result<Self> {
        plan.validate()?;
        Ok(Self { plan, state })
    }

    /// Applies one event that happened at `now`; see [`step`].
    pub fn handle(&mut self, now: Timestamp, event: Event) -> Result<Vec<Action>> {
        step(&mut self.state, &self.plan, now, event)
    }

    /// What a restarted runtime must do to pick up where it stopped: re-apply the
    /// route, re-arm the tick and send again the request whose answer was lost.
    pub fn recover(&self) -> Vec<Action> {
        let mut actions = vec![Action::SetRoute(self.state.route())];
        if let Some(at) = self.state.next_tick_at {
            actions.push(Action::ScheduleTick { at });
        }
        if let Some(pending) = self.state.pending {
            actions.push(machine::request_action(pending));
        }
        actions
    }

    /// Replaces the plan (the canary document changed). Takes effect at the next
    /// event; a rollout in progress keeps its position.
    pub fn set_plan(&mut self, plan: Plan) -> Result<()> {
        plan.validate()?;
        self.plan = plan;
        Ok(())
    }

    /// Where the rollout stands.
    pub fn state(&self) -> &RolloutState {
        &self.state
    }

    /// The plan it follows.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The plan and the state, for storage.
    pub fn into_parts(self) -> (Plan, RolloutState) {
        (self.plan, self.state)
    }
}
