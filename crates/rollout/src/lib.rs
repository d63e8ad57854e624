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
//! ```
//! use serin_rollout::{Action, AnalysisResult, Event, Phase, Plan, Rollout, Strategy, Timestamp};
//! use std::{collections::VecDeque, time::Duration};
//!
//! let plan = Plan::new(Strategy::Canary { steps: vec![10, 20] }, Duration::from_secs(60), 5);
//! let mut now = Timestamp::from_millis(1_764_150_000_000);
//! let mut rollout = Rollout::new(plan, now)?;
//! let mut todo = VecDeque::from(rollout.handle(now, Event::Start { revision: "v2".into() })?);
//! let mut timer = None;
//! loop {
//!     while let Some(action) = todo.pop_front() {
//!         match action {
//!             Action::ScheduleTick { at } => timer = Some(at), // replaces the timer
//!             Action::RunAnalysis => {
//!                 todo.extend(rollout.handle(now, Event::Analysis(AnalysisResult::Pass))?)
//!             }
//!             _ => {} // SetRoute, Promote, Finalise, Emit: carry out, no answer
//!         }
//!     }
//!     let Some(at) = timer.take() else { break };
//!     now = at; // a real runtime sleeps until `at`
//!     todo.extend(rollout.handle(now, Event::Tick)?);
//! }
//! assert_eq!(rollout.state().phase, Phase::Succeeded);
//! # Ok::<(), serin_rollout::Error>(())
//! ```
//!
//! Persist the state after every event; after a restart call [`Rollout::recover`] to
//! get the route to re-apply, the tick to re-arm and the request to send again.
//!
//! # Flagger's semantics, and where serin differs on purpose
//!
//! Same as Flagger: phase names and order (`Progressing` -> `Promoting` ->
//! `Finalising` -> `Succeeded`, or `Failed`); pre-rollout hooks at weight 0 instead
//! of analysis; rollout hooks before metrics; failed checks counted over the whole
//! rollout, a failed pre-rollout or rollout hook counting as one; confirm-rollout
//! holding in `Waiting` and asked every interval; confirm-traffic-increase before
//! weight increases; confirm-promotion holding in `WaitingPromotion` while analysis
//! keeps running; rollback webhooks polled and honoured before promotion only; A/B
//! testing with matching and weight 0; blue/green with optional mirroring, then one
//! interval at full traffic; one mirroring interval before the first canary step;
//! `stepWeightPromotion`; `skipAnalysis`; a new revision restarting the analysis, and
//! one arriving during promotion starting after it.
//!
//! Different, and why:
//! - the threshold rolls back as soon as failed checks reach it, not one interval
//!   later;
//! - [`AnalysisResult::Hold`] (inconclusive) and [`AnalysisResult::Rollback`] (decisive harm) exist
//!   besides pass and fail, for serin's sequential analysis;
//! - the progress deadline measures advancement (a step, an iteration or a phase),
//!   since serin has no pod readiness to watch; it is held while a person decides
//!   (pause, `Waiting`, `WaitingPromotion`, a declined traffic-increase gate), an
//!   analysis holding for evidence ([`HoldKind::Evidence`]: traffic flows, no harm,
//!   evidence grows) restarts it, and it is never shorter than three intervals
//!   ([`Plan::effective_deadline`]);
//! - a new revision starts at once rather than on the next timer tick;
//! - blue/green asks confirm-promotion once, before switching all traffic;
//! - `stepWeight`/`maxWeight` never overshoot `maxWeight` ([`steps_from_step_weight`]);
//! - A/B testing with `stepWeightPromotion` finishes instead of stalling in
//!   `Promoting`;
//! - people can pause, resume, promote now and abort (Argo Rollouts' manual gates).
//!
//! # Refused events
//!
//! An event that does not apply (a late answer, a tick from a stale timer, `pause` on
//! a finished rollout) returns an [`Error`] and changes nothing; see [`error`].

#![forbid(unsafe_code)]

mod action;
mod backoff;
pub mod error;
mod event;
mod machine;
mod manual;
mod plan;
pub mod ports;
mod state;
mod time;

pub use crate::{
    action::{Action, Record, Route, Severity},
    backoff::Backoff,
    error::{Error, Result},
    event::{AnalysisResult, Event, HoldKind},
    machine::step,
    manual::{Manual, Placement},
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

    /// A canary seen for the first time at `now`, set up: the stable version takes
    /// all traffic (phase `Initialized`). The actions that says so are not returned:
    /// a runtime routes a rollout as [`Rollout::recover`] says before it serves.
    pub fn initialized(plan: Plan, now: Timestamp) -> Result<Self> {
        let mut rollout = Self::new(plan, now)?;
        rollout.handle(now, Event::Initialize)?;
        Ok(rollout)
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
