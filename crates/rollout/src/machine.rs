//! The transition function: one event in, the actions it causes out.
//!
//! Flagger reconciles on a timer and calls webhooks and metric providers inline. Here
//! the same decisions are split at every place Flagger would wait for the outside
//! world: the machine records what it waits for in [`RolloutState::pending`], emits a
//! request, and continues when the answer arrives as an event. Within one interval the
//! order is Flagger's: deadline, rollback webhooks, pre-rollout hooks (at weight 0) or
//! rollout hooks then metrics, then the gate and the advancement.

use crate::{
    action::{Action, Record, Route, Severity},
    error::{Error, Result},
    event::{AnalysisResult, Event, HoldKind},
    manual::{Manual, before_promotion},
    plan::{GateKind, HookKind, Plan, Strategy},
    state::{Condition, ConditionStatus, Pending, Phase, RolloutState},
    time::{Timestamp, human},
};

/// Applies one event to `state` at time `now` and returns what to do, in order.
///
/// A refused event returns an [`Error`] and leaves `state` exactly as it was. `now`
/// earlier than a time already seen is read as that time, so a clock stepping back
/// cannot schedule ticks in the past or stretch the progress deadline.
pub fn step(
    state: &mut RolloutState,
    plan: &Plan,
    now: Timestamp,
    event: Event,
) -> Result<Vec<Action>> {
    plan.validate()?;
    let now = now.max(state.last_event_at);
    let backup = state.clone();
    let mut turn = Turn {
        state,
        plan,
        now,
        actions: Vec::new(),
        scheduled: false,
    };
    match turn.dispatch(event) {
        Ok(()) => {
            turn.finish();
            Ok(turn.actions)
        }
        Err(error) => {
            *turn.state = backup;
            Err(error)
        }
    }
}

/// The request action that asks for `pending`.
pub(crate) fn request_action(pending: Pending) -> Action {
    match pending {
        Pending::Analysis => Action::RunAnalysis,
        Pending::Gate(kind) => Action::CallGate(kind),
        Pending::Hook(kind) => Action::CallHook(kind),
    }
}

/// One event being applied.
struct Turn<'a> {
    state: &'a mut RolloutState,
    plan: &'a Plan,
    now: Timestamp,
    actions: Vec<Action>,
    /// Whether this turn already asked for a tick (a new rollout asks for one now).
    scheduled: bool,
}

// === impl Turn: dispatch ===

impl Turn<'_> {
    fn dispatch(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Initialize => self.initialize(),
            Event::Start { revision } => self.start(revision),
            Event::Tick => self.tick(),
            Event::Analysis(verdict) => self.on_analysis(verdict),
            Event::Gate { kind, approved } => self.on_gate(kind, approved),
            Event::Hook { kind, ok } => self.on_hook(kind, ok),
            Event::RollbackRequested => self.rollback_requested("rollback-requested"),
            Event::Harm { reasons } => self.harm(reasons),
            Event::Pause => self.pause(),
            Event::Resume => self.resume(),
            Event::PromoteNow => self.promote_now(),
            Event::Abort => self.abort(),
        }
    }

    fn finish(&mut self) {
        self.state.last_event_at = self.now;
        // While a person holds the rollout the deadline window slides along, so it
        // restarts in full when they let go.
        if self.deadline_held() {
            self.state.progressed_at = self.now;
        }
    }
}

// === impl Turn: lifecycle events ===

impl Turn<'_> {
    fn initialize(&mut self) -> Result<()> {
        if self.state.phase != Phase::Initializing {
            return Err(Error::AlreadyInitialized {
                phase: self.state.phase,
            });
        }
        self.init();
        Ok(())
    }

    fn init(&mut self) {
        self.set_route(Route::STABLE);
        self.transition(
            Phase::Initialized,
            Severity::Normal,
            "Initialization done! The stable version takes all traffic".to_string(),
        );
    }

    fn start(&mut self, revision: String) -> Result<()> {
        match self.state.phase {
            Phase::Initializing => {
                self.init();
                self.begin(revision);
            }
            Phase::Initialized | Phase::Succeeded | Phase::Failed => self.begin(revision),
            Phase::Waiting | Phase::Progressing | Phase::WaitingPromotion => {
                if self.state.revision.as_deref() == Some(revision.as_str()) {
                    return Err(Error::SameRevision { revision });
                }
                self.restart(revision);
            }
            Phase::Promoting | Phase::Finalising => {
                let current = self.state.revision.as_deref() == Some(revision.as_str());
                let queued = self.state.queued_revision.as_deref() == Some(revision.as_str());
                if current || queued {
                    return Err(Error::SameRevision { revision });
                }
                // Flagger only looks for new revisions before promotion; afterwards it
                // finishes promoting and picks the new revision up on a later tick.
                self.normal(format!(
                    "New revision {revision} detected during promotion of {}: it starts once promotion completes",
                    self.revision()
                ));
                self.state.queued_revision = Some(revision);
            }
        }
        Ok(())
    }

    /// Starts a fresh rollout of `revision` from a phase with no rollout in progress.
    fn begin(&mut self, revision: String) {
        self.reset(revision.clone());
        self.state.paused = false;
        if self.plan.hooks.confirm_rollout {
            self.transition(
                Phase::Waiting,
                Severity::Normal,
                format!("New revision {revision} detected: asking the confirm-rollout gate"),
            );
            self.request(Pending::Gate(GateKind::ConfirmRollout));
            self.schedule_next();
        } else {
            self.transition(
                Phase::Progressing,
                Severity::Normal,
                format!("New revision {revision} detected! Progressing canary analysis"),
            );
            // Flagger discovers revisions on its timer and starts one interval later;
            // serin is told at once, so it starts at once.
            self.schedule(self.now);
        }
    }

    /// A different revision replaces the one in progress: back to weight 0, counters
    /// reset, analysis restarts. Like Flagger, the confirm-rollout gate is not asked
    /// again unless it had not approved yet; a person's pause stays.
    fn restart(&mut self, revision: String) {
        let previous = format!(
            "revision {} was at {} with {} failed checks",
            self.revision(),
            self.position(),
            self.state.failed_checks
        );
        self.set_route(Route::STABLE);
        self.reset(revision.clone());
        if self.state.phase == Phase::Waiting {
            self.normal(format!(
                "New revision {revision} detected while waiting for approval ({previous})"
            ));
            self.request(Pending::Gate(GateKind::ConfirmRollout));
        } else {
            self.transition(
                Phase::Progressing,
                Severity::Normal,
                format!("New revision {revision} detected! Restarting analysis ({previous})"),
            );
            self.schedule(self.now);
        }
    }

    fn reset(&mut self, revision: String) {
        let s = &mut *self.state;
        s.revision = Some(revision);
        s.failed_checks = 0;
        s.iterations = 0;
        s.step_index = 0;
        s.pending = None;
        s.declined_gate = None;
        s.started_at = Some(self.now);
        self.progress();
    }
}

// === impl Turn: ticks ===

impl Turn<'_> {
    fn tick(&mut self) -> Result<()> {
        let phase = self.state.phase;
        let due = match self.state.next_tick_at {
            Some(due) if phase.is_active() => due,
            _ => return Err(Error::NoTickScheduled { phase }),
        };
        if self.now < due {
            return Err(Error::TickEarly { due, now: self.now });
        }
        match phase {
            Phase::Waiting => self.waiting_tick(),
            Phase::Progressing | Phase::WaitingPromotion => self.progressing_tick(),
            Phase::Promoting => self.shift_to_primary(),
            Phase::Finalising => self.finalise(
                "Promotion completed! The canary is the new stable version; scaling down the canary",
            ),
            Phase::Initializing | Phase::Initialized | Phase::Succeeded | Phase::Failed => {}
        }
        // Scheduled from the time the tick was handled, not from when it was due, so
        // a runtime that was down does not fire a burst of catch-up ticks.
        if self.state.phase.is_active() && !self.scheduled {
            self.schedule_next();
        }
        Ok(())
    }

    fn waiting_tick(&mut self) {
        self.poll_rollback_hooks();
        match self.state.pending {
            Some(pending) => self.ask_again(pending),
            None => self.request(Pending::Gate(GateKind::ConfirmRollout)),
        }
    }

    fn progressing_tick(&mut self) {
        if let Some(reason) = self.deadline_exceeded() {
            self.rollback(reason);
            return;
        }
        if self.plan.skip_analysis {
            self.skip_analysis();
            return;
        }
        self.poll_rollback_hooks();
        if let Some(pending) = self.state.pending {
            self.ask_again(pending);
            return;
        }
        self.run_checks();
    }

    /// Starts this interval's checks: pre-rollout hooks before any traffic reached the
    /// canary (Flagger has nothing to measure then), rollout hooks and metrics after.
    fn run_checks(&mut self) {
        let untouched = self.state.canary_weight == 0
            && self.state.iterations == 0
            && self.state.mirror.is_none()
            && self.state.step_index == 0;
        if untouched {
            self.normal(format!(
                "Starting canary analysis for revision {}",
                self.revision()
            ));
            if self.plan.hooks.pre_rollout {
                self.request(Pending::Hook(HookKind::PreRollout));
            } else {
                self.advance();
            }
        } else if self.plan.hooks.rollout {
            self.request(Pending::Hook(HookKind::Rollout));
        } else {
            self.request(Pending::Analysis);
        }
    }

    fn deadline_exceeded(&mut self) -> Option<String> {
        if self.deadline_held() {
            self.state.progressed_at = self.now;
            return None;
        }
        let waited = self.now.saturating_since(self.state.progressed_at);
        let limit = self.plan.effective_deadline();
        if waited <= limit {
            return None;
        }
        let last = match &self.state.stall_reason {
            Some(reason) => format!("; last interval: {reason}"),
            None => String::new(),
        };
        Some(format!(
            "progress deadline exceeded: no advancement for {} (deadline {}) at {}{last}",
            human(waited),
            human(limit),
            self.position()
        ))
    }

    /// The deadline bounds waiting on the system (low traffic, failing checks, a hung
    /// provider), never waiting on a person: a pause, the confirm-rollout and
    /// confirm-promotion phases and a declined traffic-increase gate hold it. (Nor
    /// waiting on evidence: an evidence hold restarts it, see `on_analysis`.)
    fn deadline_held(&self) -> bool {
        self.state.paused
            || self.state.declined_gate.is_some()
            || matches!(self.state.phase, Phase::Waiting | Phase::WaitingPromotion)
    }

    fn ask_again(&mut self, pending: Pending) {
        let what = match pending {
            Pending::Analysis => "analysis".to_string(),
            Pending::Gate(kind) => format!("{} gate", kind.as_str()),
            Pending::Hook(kind) => format!("{} hook", kind.as_str()),
        };
        self.warning(format!(
            "No answer from the {what} within an interval: asking again"
        ));
        self.actions.push(request_action(pending));
    }

    fn poll_rollback_hooks(&mut self) {
        if self.plan.hooks.rollback {
            self.actions.push(Action::CallHook(HookKind::Rollback));
        }
    }
}

// === impl Turn: answers ===

impl Turn<'_> {
    fn accept(&mut self, pending: Pending, event: String) -> Result<()> {
        if self.state.pending != Some(pending) {
            return Err(Error::Unexpected {
                event,
                awaiting: self.state.pending,
            });
        }
        self.state.pending = None;
        Ok(())
    }

    fn on_analysis(&mut self, verdict: AnalysisResult) -> Result<()> {
        self.accept(Pending::Analysis, "analysis".to_string())?;
        let position = self.position();
        match verdict {
            AnalysisResult::Pass => {
                self.normal(format!("Analysis passed at {position}"));
                self.advance();
            }
            AnalysisResult::Hold {
                reasons,
                kind: HoldKind::System,
            } => {
                let reasons = join(&reasons);
                self.normal(format!(
                    "Hold at {position}: analysis inconclusive, not counted as a failed check: {reasons}"
                ));
                self.state.stall_reason = Some(format!("held: {reasons}"));
            }
            AnalysisResult::Hold {
                reasons,
                kind: HoldKind::Evidence,
            } => {
                // Traffic flows and the judge sees no harm: the rollout is not
                // stuck, it is gathering evidence, so the deadline restarts
                // here. Holds caused by the system still count from here on.
                let reasons = join(&reasons);
                self.normal(format!(
                    "Hold at {position}: holding for evidence (not counted against the progress deadline), not counted as a failed check: {reasons}"
                ));
                self.state.progressed_at = self.now;
                self.state.stall_reason = Some(format!("held for evidence: {reasons}"));
            }
            AnalysisResult::Fail { reasons } => {
                self.failed_check(format!("analysis failed: {}", join(&reasons)));
            }
            AnalysisResult::Rollback { reasons } => {
                self.rollback(format!(
                    "decisive evidence of harm at {position}: {}",
                    join(&reasons)
                ));
            }
        }
        Ok(())
    }

    fn on_gate(&mut self, kind: GateKind, approved: bool) -> Result<()> {
        self.accept(Pending::Gate(kind), format!("{} gate", kind.as_str()))?;
        let name = kind.as_str();
        if approved {
            self.state.declined_gate = None;
            match kind {
                GateKind::ConfirmRollout => {
                    self.progress();
                    self.transition(
                        Phase::Progressing,
                        Severity::Normal,
                        format!(
                            "Confirm-rollout approved: new revision {} detected! Progressing canary analysis",
                            self.revision()
                        ),
                    );
                    self.schedule(self.now);
                }
                GateKind::ConfirmTrafficIncrease => {
                    self.normal(format!(
                        "Confirm-traffic-increase approved at {}",
                        self.position()
                    ));
                    if !self.held_by_pause() {
                        self.increase_weight();
                    }
                }
                GateKind::ConfirmPromotion => {
                    self.normal(format!("Confirm-promotion approved at {}", self.position()));
                    if !self.held_by_pause() {
                        self.promotion_approved();
                    }
                }
            }
            return Ok(());
        }
        let first = self.state.declined_gate != Some(kind);
        self.state.declined_gate = Some(kind);
        self.state.stall_reason = Some(format!("{name} not approved"));
        match kind {
            GateKind::ConfirmRollout => {
                if first {
                    self.warning(format!(
                        "Halt advancement: revision {} waiting for approval ({name})",
                        self.revision()
                    ));
                }
            }
            GateKind::ConfirmTrafficIncrease => {
                self.warning(format!(
                    "Halt advancement at {}: {name} not approved",
                    self.position()
                ));
            }
            GateKind::ConfirmPromotion => {
                if self.state.phase != Phase::WaitingPromotion {
                    self.transition(
                        Phase::WaitingPromotion,
                        Severity::Warning,
                        format!(
                            "Halt advancement at {}: waiting for promotion approval ({name}); analysis continues",
                            self.position()
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    fn on_hook(&mut self, kind: HookKind, ok: bool) -> Result<()> {
        match kind {
            HookKind::PreRollout => {
                self.accept(Pending::Hook(kind), "pre-rollout hook".to_string())?;
                if ok {
                    self.normal("Pre-rollout checks passed".to_string());
                    self.advance();
                } else {
                    self.failed_check("pre-rollout hook failed".to_string());
                }
            }
            HookKind::Rollout => {
                self.accept(Pending::Hook(kind), "rollout hook".to_string())?;
                if ok {
                    self.request(Pending::Analysis);
                } else {
                    self.failed_check("rollout hook failed".to_string());
                }
            }
            // Informational only, and it may arrive after a queued revision already
            // started, so it is recorded in any phase.
            HookKind::PostRollout => {
                if ok {
                    self.normal("Post-rollout hooks passed".to_string());
                } else {
                    self.warning("Post-rollout hook failed".to_string());
                }
            }
            // A non-2xx rollback webhook means "no rollback": nothing to do.
            HookKind::Rollback if ok => self.rollback_requested("rollback hook")?,
            HookKind::Rollback | HookKind::Event => {}
        }
        Ok(())
    }

    fn failed_check(&mut self, what: String) {
        self.state.failed_checks = self.state.failed_checks.saturating_add(1);
        let (failed, threshold) = (self.state.failed_checks, self.plan.threshold);
        self.state.stall_reason = Some(what.clone());
        // Flagger notices the threshold at the next interval; serin rolls back as soon
        // as the count reaches it, one interval earlier with the same count.
        if failed >= threshold {
            self.rollback(format!(
                "failed checks {failed} reached threshold {threshold} at {} (last: {what})",
                self.position()
            ));
        } else {
            self.warning(format!(
                "Halt advancement at {}: {what} (failed checks {failed}/{threshold})",
                self.position()
            ));
        }
    }
}

// === impl Turn: people ===

impl Turn<'_> {
    /// A person's action applies when [`Manual::check`] says so.
    fn manual(&self, manual: Manual) -> Result<()> {
        manual.check(self.state.phase, self.state.paused)
    }

    /// Rollback webhooks and decisive harm act before promotion only, as people do.
    fn before_promotion(&self, event: &'static str) -> Result<()> {
        before_promotion(self.state.phase, event)
    }

    fn pause(&mut self) -> Result<()> {
        self.manual(Manual::Pause)?;
        self.state.paused = true;
        self.normal(format!(
            "Paused by operator at {}: analysis continues and failures still count; advancement and progress deadline held",
            self.position()
        ));
        Ok(())
    }

    fn resume(&mut self) -> Result<()> {
        self.manual(Manual::Resume)?;
        self.state.paused = false;
        self.state.progressed_at = self.now;
        self.normal(format!("Resumed by operator at {}", self.position()));
        Ok(())
    }

    fn promote_now(&mut self) -> Result<()> {
        self.manual(Manual::PromoteNow)?;
        let reason = format!(
            "promoted by operator at {}, skipping remaining steps and gates",
            self.position()
        );
        self.promote(reason);
        Ok(())
    }

    fn abort(&mut self) -> Result<()> {
        self.manual(Manual::Abort)?;
        self.rollback(format!("aborted by operator at {}", self.position()));
        Ok(())
    }

    fn rollback_requested(&mut self, event: &'static str) -> Result<()> {
        self.before_promotion(event)?;
        self.rollback(format!(
            "rollback webhook signalled a rollback at {}",
            self.position()
        ));
        Ok(())
    }

    fn harm(&mut self, reasons: Vec<String>) -> Result<()> {
        self.before_promotion("harm")?;
        self.rollback(format!(
            "decisive evidence of harm at {} between intervals: {}",
            self.position(),
            join(&reasons)
        ));
        Ok(())
    }

    fn held_by_pause(&mut self) -> bool {
        if self.state.paused {
            self.normal(format!(
                "Advancement paused by operator: holding {}",
                self.position()
            ));
            self.state.stall_reason = Some("paused by operator".to_string());
        }
        self.state.paused
    }
}

// === impl Turn: advancement ===

impl Turn<'_> {
    /// This interval's checks passed: take the next step of the strategy.
    fn advance(&mut self) {
        if self.held_by_pause() {
            return;
        }
        match self.plan.strategy {
            Strategy::Canary { .. } => self.canary_advance(),
            Strategy::AbTesting { iterations } => self.ab_advance(iterations),
            Strategy::BlueGreen { iterations } => self.blue_green_advance(iterations),
        }
    }

    fn canary_advance(&mut self) {
        let taken = self.steps_taken();
        if taken >= self.plan.steps().len() {
            self.promotion_gate();
            return;
        }
        match self.plan.mirror {
            // One interval of mirroring before any user sees the canary.
            Some(mirror) if taken == 0 && self.state.mirror.is_none() => {
                self.set_route(Route {
                    canary_weight: 0,
                    mirror: Some(mirror),
                    match_active: false,
                });
                self.normal(format!(
                    "Start traffic mirroring: {mirror}% of requests copied to the canary, canary weight 0"
                ));
                self.progress();
            }
            // Asked before every increase of live traffic; starting to mirror exposes
            // no user, so it is not asked then.
            _ if self.plan.hooks.confirm_traffic_increase => {
                self.request(Pending::Gate(GateKind::ConfirmTrafficIncrease));
            }
            _ => self.increase_weight(),
        }
    }

    fn increase_weight(&mut self) {
        let taken = self.steps_taken();
        let steps = self.plan.steps();
        let Some(&next) = steps.get(taken) else {
            self.promotion_gate();
            return;
        };
        let from = self.state.canary_weight;
        let mirroring = self.state.mirror.is_some();
        self.state.step_index = self.state.step_index.saturating_add(1);
        self.set_route(Route {
            canary_weight: next,
            mirror: None,
            match_active: false,
        });
        let stop = if mirroring {
            "Stop traffic mirroring; "
        } else {
            ""
        };
        self.normal(format!(
            "{stop}Advance canary weight {from} -> {next} (step {}/{})",
            taken + 1,
            steps.len()
        ));
        self.progress();
    }

    fn ab_advance(&mut self, iterations: u32) {
        if self.state.iterations >= iterations {
            self.promotion_gate();
            return;
        }
        if !self.state.match_active {
            self.set_route(Route {
                canary_weight: 0,
                mirror: None,
                match_active: true,
            });
        }
        self.state.iterations += 1;
        self.normal(format!(
            "Advance canary iteration {}/{iterations}: users matching the canary's rules go to the canary",
            self.state.iterations
        ));
        self.progress();
    }

    fn blue_green_advance(&mut self, iterations: u32) {
        let done = self.state.iterations;
        if done < iterations {
            if let Some(mirror) = self.plan.mirror
                && self.state.mirror.is_none()
            {
                self.set_route(Route {
                    canary_weight: 0,
                    mirror: Some(mirror),
                    match_active: false,
                });
                self.normal(format!(
                    "Start traffic mirroring: {mirror}% of requests copied to the canary for the whole test"
                ));
            }
            self.state.iterations += 1;
            self.normal(format!(
                "Advance canary iteration {}/{iterations}",
                self.state.iterations
            ));
            self.progress();
        } else if done == iterations {
            self.promotion_gate();
        } else {
            self.promote(format!(
                "analysis passed {iterations} iterations and one interval with all traffic"
            ));
        }
    }

    fn promotion_gate(&mut self) {
        if self.plan.hooks.confirm_promotion {
            self.request(Pending::Gate(GateKind::ConfirmPromotion));
        } else {
            self.promotion_approved();
        }
    }

    /// Flagger asks confirm-promotion twice in blue/green (before switching traffic
    /// and before copying the spec); serin asks once, before the switch, which is the
    /// step that exposes every user.
    fn promotion_approved(&mut self) {
        match self.plan.strategy {
            Strategy::BlueGreen { iterations } if self.state.iterations == iterations => {
                let from = if self.state.mirror.is_some() {
                    "Stop traffic mirroring and route"
                } else {
                    "Route"
                };
                self.set_route(Route {
                    canary_weight: 100,
                    mirror: None,
                    match_active: false,
                });
                self.state.iterations += 1;
                self.progress();
                let message = format!(
                    "{from} all traffic to canary (canary weight 0 -> 100) for one more interval of analysis before promotion"
                );
                if self.state.phase == Phase::WaitingPromotion {
                    self.transition(Phase::Progressing, Severity::Normal, message);
                } else {
                    self.normal(message);
                }
            }
            Strategy::BlueGreen { .. } => self.promote("analysis passed".to_string()),
            Strategy::Canary { .. } => {
                let reason = format!(
                    "analysis passed at every step up to canary weight {}",
                    self.state.canary_weight
                );
                self.promote(reason);
            }
            Strategy::AbTesting { iterations } => {
                self.promote(format!("analysis passed {iterations} iterations"));
            }
        }
    }

    fn promote(&mut self, reason: String) {
        self.state.pending = None;
        self.state.paused = false;
        self.state.declined_gate = None;
        self.actions.push(Action::Promote);
        self.progress();
        self.transition(
            Phase::Promoting,
            Severity::Normal,
            format!(
                "Copying canary revision {} to primary: {reason}",
                self.revision()
            ),
        );
    }

    /// Promoting: move traffic back to the primary, which now runs the canary's
    /// revision, at once or by `step_weight_promotion` per interval.
    fn shift_to_primary(&mut self) {
        let from = self.state.canary_weight;
        self.progress();
        match self.plan.step_weight_promotion {
            Some(step) if from > step => {
                let to = from - step;
                self.set_route(Route {
                    canary_weight: to,
                    mirror: None,
                    match_active: false,
                });
                self.normal(format!(
                    "Advance primary weight {} -> {} (canary weight {from} -> {to})",
                    100 - from.min(100),
                    100 - to.min(100)
                ));
            }
            _ => {
                self.set_route(Route::STABLE);
                self.transition(
                    Phase::Finalising,
                    Severity::Normal,
                    format!("Routing all traffic to primary (canary weight {from} -> 0)"),
                );
            }
        }
    }

    fn skip_analysis(&mut self) {
        self.set_route(Route::STABLE);
        self.promote("canary analysis skipped (skipAnalysis)".to_string());
        self.transition(
            Phase::Finalising,
            Severity::Normal,
            "Routing all traffic to primary".to_string(),
        );
        self.finalise("Promotion completed! Canary analysis was skipped");
    }

    fn finalise(&mut self, message: &str) {
        self.state.next_tick_at = None;
        self.state.pending = None;
        self.actions.push(Action::Finalise);
        self.transition(
            Phase::Succeeded,
            Severity::Normal,
            format!("{message} (revision {})", self.revision()),
        );
        self.post_rollout();
        if let Some(revision) = self.state.queued_revision.take() {
            self.begin(revision);
        }
    }

    /// Every way a rollout fails ends here: weight 0, phase Failed, canary released.
    fn rollback(&mut self, reason: String) {
        self.set_route(Route::STABLE);
        let s = &mut *self.state;
        s.pending = None;
        s.paused = false;
        s.declined_gate = None;
        s.next_tick_at = None;
        self.actions.push(Action::Finalise);
        self.transition(
            Phase::Failed,
            Severity::Warning,
            format!(
                "Rolling back: {reason}. Canary failed! All traffic on the stable version, scaling down revision {}",
                self.revision()
            ),
        );
        self.post_rollout();
    }

    fn post_rollout(&mut self) {
        if self.plan.hooks.post_rollout {
            self.actions.push(Action::CallHook(HookKind::PostRollout));
        }
    }
}

// === impl Turn: helpers ===

impl Turn<'_> {
    fn steps_taken(&self) -> usize {
        usize::try_from(self.state.step_index).unwrap_or(usize::MAX)
    }

    fn revision(&self) -> &str {
        self.state.revision.as_deref().unwrap_or("(none)")
    }

    /// Where the rollout stands, for messages.
    fn position(&self) -> String {
        let s = &*self.state;
        match self.plan.strategy {
            Strategy::Canary { .. } => match s.mirror {
                Some(mirror) if s.canary_weight == 0 => {
                    format!("canary weight 0 (mirroring {mirror}%)")
                }
                _ => format!("canary weight {}", s.canary_weight),
            },
            Strategy::AbTesting { iterations } => {
                format!("iteration {}/{iterations}", s.iterations)
            }
            Strategy::BlueGreen { iterations } if s.iterations > iterations => {
                format!(
                    "canary weight {} after {iterations} iterations",
                    s.canary_weight
                )
            }
            Strategy::BlueGreen { iterations } => {
                format!("iteration {}/{iterations}", s.iterations)
            }
        }
    }

    fn progress(&mut self) {
        self.state.progressed_at = self.now;
        self.state.stall_reason = None;
        self.state.declined_gate = None;
    }

    fn request(&mut self, pending: Pending) {
        self.state.pending = Some(pending);
        self.actions.push(request_action(pending));
    }

    fn set_route(&mut self, route: Route) {
        self.state.canary_weight = route.canary_weight;
        self.state.mirror = route.mirror;
        self.state.match_active = route.match_active;
        self.actions.push(Action::SetRoute(route));
    }

    fn schedule(&mut self, at: Timestamp) {
        self.scheduled = true;
        self.state.next_tick_at = Some(at);
        self.actions.push(Action::ScheduleTick { at });
    }

    fn schedule_next(&mut self) {
        self.schedule(self.now.saturating_add(self.plan.interval));
    }

    fn transition(&mut self, phase: Phase, severity: Severity, message: String) {
        self.record(severity, message);
        if self.state.phase == phase {
            return;
        }
        self.state.phase = phase;
        self.state.last_transition_time = self.now;
        let status = match phase {
            Phase::Succeeded => ConditionStatus::True,
            Phase::Failed => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        };
        self.state.condition = Condition {
            status,
            reason: phase,
            message: self.state.message.clone(),
            last_transition_time: self.now,
        };
    }

    fn normal(&mut self, message: String) {
        self.record(Severity::Normal, message);
    }

    fn warning(&mut self, message: String) {
        self.record(Severity::Warning, message);
    }

    fn record(&mut self, severity: Severity, message: String) {
        self.state.message.clone_from(&message);
        self.actions
            .push(Action::Emit(Record { severity, message }));
    }
}

fn join(reasons: &[String]) -> String {
    if reasons.is_empty() {
        "no reason given".to_string()
    } else {
        reasons.join("; ")
    }
}
