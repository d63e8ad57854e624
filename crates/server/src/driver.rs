//! One rollout, driven to its verdict: the loop that turns time and
//! observations into events for the state machine and carries out the
//! actions it returns.

use crate::{cadence, clock::Clock};
use serde::Serialize;
use serin_analysis::{Analyzer, Decision, TickInput};
pub use serin_rollout::Placement;
use serin_rollout::{
    Action, Backoff, Event, Phase, Record, Rollout, RolloutState, Route, Severity, Timestamp,
    ports::{
        CanaryTarget, HookAnswer, HookContext, MetricQuery, PortError, Router, TrafficSource,
        Webhooks,
    },
};
use serin_stats::{Pair, Version};
use std::{collections::VecDeque, sync::Arc, time::Duration};
use tokio::sync::{broadcast, mpsc};

pub use crate::cadence::OBSERVE_EVERY;

/// When a refused route is tried again: 1 s after the first refusal, each
/// further refusal doubling the wait, up to 30 s. Retries happen on
/// observation ticks, so the loop never sleeps on a router.
const ROUTE_RETRY: Backoff = Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(30));

/// How often the router is read back for drift ([`Router::repair`]) while
/// nothing is pending: on the first observation tick this long after the
/// last look, so a balancer restarted with its configuration's weights is
/// repaired within this time (and a second of observation).
pub const REPAIR_EVERY: Duration = Duration::from_secs(5);

/// How long a rollout holds after its state could not be saved before it
/// tries again (from its last saved state, as after a restart).
pub const STORE_RETRY: Duration = Duration::from_secs(5);

/// History entries kept in memory while the store refuses writes; older
/// ones are dropped past this, so a long outage cannot exhaust memory.
const MAX_UNSAVED: usize = 1_024;

/// What a rollout reports to whoever watches it (the terminal, the API's
/// event stream, the history). Sent on a broadcast channel: a slow watcher
/// misses updates, it never slows the rollout.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "update", rename_all = "kebab-case")]
pub enum Update {
    /// The state machine recorded an event (a transition, a decision, a hold).
    Record {
        /// When.
        at: Timestamp,
        /// What and why.
        record: Record,
    },
    /// The analysis decided; carries every metric's evidence.
    Decision {
        /// When.
        at: Timestamp,
        /// The verdict with its evidence.
        decision: Decision,
    },
    /// The state after an event: phase, weight, failed checks.
    State {
        /// When.
        at: Timestamp,
        /// A copy of the machine's state.
        state: Box<RolloutState>,
    },
    /// Webhooks of one kind were called.
    Webhook {
        /// When.
        at: Timestamp,
        /// Flagger's webhook type.
        kind: String,
        /// Each call and the folded answer.
        answer: HookAnswer,
    },
    /// The router had drifted from what serin set (a balancer restarted
    /// with its configuration's weights, a file edited by hand, an action
    /// changed in a console) and was repaired. Counted on `/metrics`
    /// (`serin_router_drift_repairs_total`); the history keeps the warning
    /// record that goes with it.
    Repaired {
        /// When.
        at: Timestamp,
        /// The router's name (`haproxy`, `nginx`, `alb`).
        router: String,
        /// What differed and what was written.
        drift: String,
    },
    /// Requests both versions served in the last observation period.
    Traffic {
        /// When.
        at: Timestamp,
        /// Requests, errors and latencies since the previous update.
        delta: Box<Pair>,
    },
}

/// What a person (or CI) asks of a running rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Start (or restart with) a new canary revision.
    Start(CanaryTarget),
    /// Hold the current weight; analysis continues.
    Pause,
    /// Let a paused rollout advance again.
    Resume,
    /// Promote now, skipping remaining steps.
    PromoteNow,
    /// Roll back now.
    Abort,
}

/// What is saved after every event, before its actions are carried out.
#[derive(Clone, Copy, Debug)]
pub struct Saved<'a> {
    /// The state after the event.
    pub state: &'a RolloutState,
    /// Where the upstreams point after the event.
    pub placement: &'a Placement,
    /// History produced since the last save (records, decisions with their
    /// evidence, webhook calls), oldest first.
    pub history: &'a [Update],
    /// The judge's accumulated evidence ([`Analyzer::evidence`]): saved with
    /// the state so a restart neither hands back the false-rollback budget
    /// spent nor loses the evidence gathered.
    pub evidence: Option<&'a str>,
}

/// Why a store could not save.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    /// What went wrong, e.g. `database or disk is full`.
    pub message: String,
}

/// Where rollouts are kept across restarts (the daemon's SQLite store).
///
/// `save` runs after the state machine took an event and before any of the
/// actions it returned are carried out: a crash after the save repeats no
/// decision (the state says it was taken) and a crash before it loses none
/// that had an effect. A store that refuses a write makes the rollout hold.
///
/// `save` may block (a slow disk, a database lock): the driver calls it on
/// tokio's blocking pool and awaits the answer there, so a slow store holds
/// the rollout that saves and nothing else: not the async workers that run
/// the other rollouts, the proxies and the API.
pub trait StateStore: Send + Sync {
    /// Saves one rollout's state and appends its history, atomically.
    fn save(&self, canary: &str, saved: Saved<'_>) -> Result<(), StoreError>;
}

/// Keeps nothing: `serin run` lives and dies with its process.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStore;

impl StateStore for NoStore {
    fn save(&self, _canary: &str, _saved: Saved<'_>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A driver's link to its store: the store, the placement saved with the
/// state, history not saved yet, and the route and canary upstream the
/// router has not applied yet (the saved state and placement carry the
/// desired ones; this is how far the router is behind them).
pub struct Persistence {
    store: Arc<dyn StateStore>,
    placement: Placement,
    unsaved: Vec<Update>,
    /// When the last save failed: hold, then recover from the saved state.
    retry_at: Option<Timestamp>,
    /// Saves refused so far.
    failures: u64,
    /// The desired route while the router refuses it.
    pending: Option<PendingRoute>,
    /// The desired canary upstream while the router refuses it.
    pending_canary: Option<PendingCanary>,
}

/// A canary upstream the router refused: desired state like a route,
/// retried on observation ticks with the routes' backoff until applied.
/// Meanwhile no route that sends the canary traffic is applied (it would
/// reach the previous canary) and analyses hold.
#[derive(Clone, Debug)]
struct PendingCanary {
    /// The newest desired upstream (a later start replaces it).
    target: CanaryTarget,
    /// When the router first refused (this target or one it replaced).
    since: Timestamp,
    /// When to try again.
    retry_at: Timestamp,
    /// The waits after refusals ([`ROUTE_RETRY`], as for routes).
    backoff: Backoff,
    /// Tries refused so far.
    refusals: u64,
    /// The router's last error.
    error: String,
}

/// A route the router refused: desired state, retried until applied.
#[derive(Clone, Debug)]
struct PendingRoute {
    /// The newest desired route (a later one replaces it).
    route: Route,
    /// When the router first refused (this route or one it replaced).
    since: Timestamp,
    /// When this route was first refused (a finished rollout waits for it
    /// at most the progress deadline from here).
    desired_at: Timestamp,
    /// When to try again.
    retry_at: Timestamp,
    /// The waits after refusals ([`ROUTE_RETRY`]), from the first refusal of
    /// this route.
    backoff: Backoff,
    /// Tries refused so far.
    refusals: u64,
    /// The router's last error.
    error: String,
}

// === impl Persistence ===

impl Persistence {
    /// Saves to `store`, starting from a placement restored from it (or the
    /// default for a new canary).
    pub fn new(store: Arc<dyn StateStore>, placement: Placement) -> Self {
        Persistence {
            store,
            placement,
            unsaved: Vec::new(),
            retry_at: None,
            failures: 0,
            pending: None,
            pending_canary: None,
        }
    }

    /// Saves nothing.
    pub fn none() -> Self {
        Self::new(Arc::new(NoStore), Placement::default())
    }

    /// Where the upstreams point now.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    fn remember(&mut self, update: &Update) {
        if matches!(
            update,
            Update::Traffic { .. } | Update::State { .. } | Update::Repaired { .. }
        ) {
            return;
        }
        if self.unsaved.len() >= MAX_UNSAVED {
            self.unsaved.remove(0);
        }
        self.unsaved.push(update.clone());
    }
}

/// Everything one rollout needs.
pub struct Driver<C: Clock> {
    /// The canary's name, for messages.
    pub name: String,
    /// The state machine: its plan and where it stands.
    pub rollout: Rollout,
    /// The analysis.
    pub judge: Analyzer,
    /// Moves traffic.
    pub router: Arc<dyn Router>,
    /// Per-request statistics of both versions.
    pub traffic: Arc<dyn TrafficSource>,
    /// Custom metrics (templates), queried for both versions at each analysis.
    pub metrics: Vec<Arc<dyn MetricQuery>>,
    /// Gates and hooks.
    pub webhooks: Arc<dyn Webhooks>,
    /// Where time comes from.
    pub clock: C,
    /// Where updates go.
    pub updates: broadcast::Sender<Update>,
    /// Where the state and history are saved after every event.
    pub persistence: Persistence,
}

/// Why a rollout loop stopped without a verdict.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The plan was refused by the state machine.
    #[error("rollout {name}: {source}")]
    Machine {
        /// The canary.
        name: String,
        /// The machine's refusal.
        source: serin_rollout::Error,
    },
}

/// When a rollout loop ends: the one difference between
/// [`Driver::run_to_verdict`] and [`Driver::serve_revisions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    /// At the first verdict, once its last route is applied.
    Verdict,
    /// When every command sender is gone.
    Stopped,
}

// === impl Driver ===

impl<C: Clock> Driver<C> {
    /// Runs one rollout to its verdict (promoted or rolled back, its last
    /// route applied) and returns the final state: what `serin run` and
    /// `serin demo` want. `commands` carries the start and manual gates;
    /// once every sender is gone the rollout goes on alone.
    pub async fn run_to_verdict(
        self,
        commands: mpsc::Receiver<Command>,
    ) -> Result<RolloutState, DriverError> {
        self.run(commands, Until::Verdict).await
    }

    /// Serves rollout after rollout: after each verdict it waits for the
    /// next revision, until every command sender is gone; returns the state
    /// then (saved after its last event). What the daemon wants.
    pub async fn serve_revisions(
        self,
        commands: mpsc::Receiver<Command>,
    ) -> Result<RolloutState, DriverError> {
        self.run(commands, Until::Stopped).await
    }

    /// The loop of both.
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        until: Until,
    ) -> Result<RolloutState, DriverError> {
        let mut next_tick: Option<Timestamp> = None;
        let mut last_totals = self.traffic.totals();
        // Where the judge's next observation starts when a rollout began
        // since the last one (the traffic stream still counts everything).
        let mut judged_from: Option<Pair> = None;
        // Observations fall on whole seconds (see `cadence`).
        let mut next_observe =
            cadence::observation_at(self.clock.now()).saturating_add(OBSERVE_EVERY);
        // The start reconciled the router already: the first look for drift
        // is one period later.
        let mut next_repair = self.clock.now().saturating_add(REPAIR_EVERY);
        let mut commands_open = true;
        // A restored rollout picks up where it stopped; a new one only
        // routes everything to stable.
        self.recover(self.clock.now(), &mut next_tick).await?;
        // After a restart the judge and the windows are new already.
        let mut epoch = Epoch::of(self.rollout.state());
        loop {
            // Every event is handled before the loop comes back here, with
            // its actions carried out (the route switched): a start, a
            // restart, a promotion or a rollback since the last pass begins
            // a new rollout of evidence.
            let now_epoch = Epoch::of(self.rollout.state());
            if now_epoch != epoch {
                epoch = now_epoch;
                judged_from = Some(self.fresh_evidence(self.clock.now()));
            }
            if until == Until::Verdict
                && matches!(self.rollout.state().phase, Phase::Succeeded | Phase::Failed)
                && self.final_route_settled(self.clock.now())
            {
                return Ok(self.rollout.into_parts().1);
            }
            // A rollout's first step falls on a whole second (see `cadence`).
            let due = next_tick.map(|tick| cadence::tick_at(self.rollout.state(), tick));
            let mut wake = match due {
                Some(tick) if tick < next_observe => tick,
                _ => next_observe,
            };
            if let Some(retry) = self.persistence.retry_at {
                wake = wake.min(retry);
            }
            let command = tokio::select! {
                () = tokio::time::sleep_until(self.clock.instant_at(wake)) => None,
                command = commands.recv(), if commands_open => match command {
                    Some(command) => Some(command),
                    None => {
                        commands_open = false;
                        if until == Until::Stopped {
                            return Ok(self.rollout.into_parts().1);
                        }
                        None
                    }
                },
            };
            let now = self.clock.now();
            if self
                .persistence
                .retry_at
                .is_some_and(|retry| now >= retry && command.is_none())
            {
                self.persistence.retry_at = None;
                self.recover(now, &mut next_tick).await?;
                continue;
            }
            if let Some(command) = command {
                let event = match command {
                    Command::Start(target) => {
                        let previous = self
                            .persistence
                            .placement
                            .canary
                            .replace(target.address.clone());
                        let revision = target.revision.clone();
                        let failures = self.persistence.failures;
                        self.handle(
                            now,
                            Event::Start {
                                revision: revision.clone(),
                            },
                            &mut next_tick,
                        )
                        .await?;
                        let taken = self.rollout.state().revision.as_deref()
                            == Some(revision.as_str())
                            || self.rollout.state().queued_revision.as_deref()
                                == Some(revision.as_str());
                        if !taken || self.persistence.failures != failures {
                            // Refused, or not saved: the router was asked
                            // nothing for it.
                            self.persistence.placement.canary = previous;
                            continue;
                        }
                        // Saved: point the router at the new canary before
                        // the first step sends it traffic (a refusal stays
                        // pending and holds the rollout).
                        let _ = self.apply_canary(now, target, None).await;
                        continue;
                    }
                    Command::Pause => Event::Pause,
                    Command::Resume => Event::Resume,
                    Command::PromoteNow => Event::PromoteNow,
                    Command::Abort => Event::Abort,
                };
                self.handle(now, event, &mut next_tick).await?;
                continue;
            }
            if now >= next_observe {
                // The second just ended (or, after a stall, the seconds since
                // the last look, as one).
                let at = cadence::observation_at(now);
                next_observe = at.saturating_add(OBSERVE_EVERY);
                self.retry_canary(now).await;
                if !self.route_waits_for_canary() {
                    self.retry_route(now).await;
                }
                if now >= next_repair {
                    next_repair = now.saturating_add(REPAIR_EVERY);
                    self.repair(now).await;
                }
                let totals = self.traffic.totals();
                let delta = totals.since(&last_totals);
                // Requests served before the rollout began are not its own.
                let judged = match judged_from.take() {
                    Some(from) => totals.since(&from),
                    None => delta.clone(),
                };
                last_totals = totals;
                if cadence::judged(self.rollout.state()) {
                    self.judge
                        .observe(at.as_millis(), self.rollout.state().canary_weight, &judged);
                    if let Some(decision) = self.judge.early(at.as_millis()) {
                        self.publish(Update::Decision {
                            at,
                            decision: decision.clone(),
                        });
                        // The judge only speaks between ticks when the evidence
                        // of harm is decisive.
                        self.handle(
                            at,
                            Event::Harm {
                                reasons: decision.reasons,
                            },
                            &mut next_tick,
                        )
                        .await?;
                    }
                }
                self.publish(Update::Traffic {
                    at,
                    delta: Box::new(delta),
                });
            }
            // Asked again: the observation may have moved the machine on.
            let due = next_tick.map(|tick| cadence::tick_at(self.rollout.state(), tick));
            if let Some(tick) = due.filter(|tick| now >= *tick) {
                next_tick = None;
                // At the time it was due, so ticks keep the rollout's cadence;
                // one late by a whole interval happens when it does, so a
                // stalled loop fires no burst of catch-up ticks.
                let at = if now.saturating_since(tick)
                    < self.rollout.plan().interval.max(OBSERVE_EVERY)
                {
                    tick
                } else {
                    now
                };
                self.handle(at, Event::Tick, &mut next_tick).await?;
            }
        }
    }

    /// Starts the evidence of a new rollout (a start, a restart with a new
    /// revision, a promotion, a rollback or an abort): a new judge with empty
    /// e-processes, empty metric windows. Returns the traffic totals the
    /// judge's next observation starts from, so the requests the previous
    /// canary served before the switch are not counted for this one.
    fn fresh_evidence(&mut self, now: Timestamp) -> Pair {
        match Analyzer::new(self.judge.config().clone()) {
            Ok(judge) => self.judge = judge,
            // Not expected: the configuration was accepted when the first
            // judge was built from it. Keep judging rather than stop.
            Err(error) => self.warn(
                now,
                format!("cannot start a fresh analysis ({error}): the previous one continues"),
            ),
        }
        self.traffic.reset_windows();
        self.traffic.totals()
    }

    /// Applies one event and carries out every action it causes, feeding the
    /// answers back until the machine has nothing more to ask.
    async fn handle(
        &mut self,
        now: Timestamp,
        event: Event,
        next_tick: &mut Option<Timestamp>,
    ) -> Result<(), DriverError> {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let weight_before = self.rollout.state().canary_weight;
            let step_before = self.rollout.state().step_index;
            let saved_rollout = self.rollout.clone();
            let saved_placement = self.persistence.placement.clone();
            let actions = match self.rollout.handle(now, event) {
                Ok(actions) => actions,
                Err(serin_rollout::Error::InvalidPlan(source)) => {
                    return Err(DriverError::Machine {
                        name: self.name.clone(),
                        source: serin_rollout::Error::InvalidPlan(source),
                    });
                }
                Err(refused) => {
                    // An answer that arrives after the machine moved on (a
                    // manual abort while a gate was asked) is stale, not fatal.
                    tracing::debug!(canary = %self.name, %refused, "event refused");
                    self.persistence.placement = saved_placement;
                    continue;
                }
            };
            if let Err(error) = self.save(now, &actions).await {
                // Nothing of this event happened: go back to the saved state,
                // say so, and try again later from there.
                self.rollout = saved_rollout;
                self.persistence.placement = saved_placement;
                self.persistence.retry_at = Some(now.saturating_add(STORE_RETRY));
                self.persistence.failures += 1;
                self.warn(
                    now,
                    format!(
                        "cannot save the rollout's state ({error}): holding at canary weight {} and retrying in {}s",
                        self.rollout.state().canary_weight,
                        STORE_RETRY.as_secs()
                    ),
                );
                return Ok(());
            }
            if self.rollout.state().step_index != step_before
                || self.rollout.state().canary_weight != weight_before
            {
                self.judge
                    .step_advanced(now.as_millis(), self.rollout.state().canary_weight);
            }
            for action in actions {
                if let Some(answer) = self.perform(now, action, next_tick).await {
                    queue.push_back(answer);
                }
            }
            self.publish(Update::State {
                at: now,
                state: Box::new(self.rollout.state().clone()),
            });
        }
        Ok(())
    }

    /// Carries out one action; returns the event that answers it, if any.
    async fn perform(
        &mut self,
        now: Timestamp,
        action: Action,
        next_tick: &mut Option<Timestamp>,
    ) -> Option<Event> {
        match action {
            Action::SetRoute(route)
                if route != Route::STABLE && self.persistence.pending_canary.is_some() =>
            {
                // Sent once the router points at the new canary (see
                // `apply_canary`): until then it would reach the old one.
                None
            }
            Action::SetRoute(route) => {
                // A refusal is remembered and retried on observation ticks.
                let _ = self.apply_route(now, route).await;
                None
            }
            Action::RunAnalysis => {
                if let Some(pending) = &self.persistence.pending_canary {
                    // Nothing is judged before the canary is the one started.
                    let reason = format!(
                        "{} does not point at canary {} ({}) yet (refused for {}s: {})",
                        self.router.name(),
                        pending.target.revision,
                        pending.target.address,
                        now.saturating_since(pending.since).as_secs(),
                        pending.error
                    );
                    return Some(Event::Analysis(serin_rollout::AnalysisResult::system_hold(
                        vec![reason],
                    )));
                }
                if let Some(pending) = &self.persistence.pending {
                    // Nothing is judged on a split that was never set: hold
                    // (no failed check); the progress deadline bounds this.
                    let reason = format!(
                        "{} has not applied canary weight {} yet (refused for {}s: {})",
                        self.router.name(),
                        pending.route.canary_weight,
                        now.saturating_since(pending.since).as_secs(),
                        pending.error
                    );
                    return Some(Event::Analysis(serin_rollout::AnalysisResult::system_hold(
                        vec![reason],
                    )));
                }
                let traffic = self.traffic.clone();
                let mut input =
                    TickInput::builtin(self.judge.config(), |span| traffic.last(now, span));
                for metric in self.metrics.clone() {
                    let (canary, stable) = tokio::join!(
                        metric.query(Version::Canary, now),
                        metric.query(Version::Stable, now)
                    );
                    let canary = self.value_or_warn(now, metric.name(), Version::Canary, canary);
                    let stable = self.value_or_warn(now, metric.name(), Version::Stable, stable);
                    input.push_scalar(metric.name(), canary, stable);
                }
                let decision = self.judge.evaluate(now.as_millis(), &input);
                let verdict = analysis_result(&decision);
                self.publish(Update::Decision { at: now, decision });
                Some(Event::Analysis(verdict))
            }
            Action::CallGate(kind) => {
                let answer = self.webhooks.gate(kind, &self.context()).await;
                let approved = answer.ok;
                self.publish(Update::Webhook {
                    at: now,
                    kind: kind.as_str().to_owned(),
                    answer,
                });
                Some(Event::Gate { kind, approved })
            }
            Action::CallHook(kind) => {
                let answer = self.webhooks.hook(kind, &self.context()).await;
                let ok = answer.ok;
                if !answer.calls.is_empty() {
                    self.publish(Update::Webhook {
                        at: now,
                        kind: kind.as_str().to_owned(),
                        answer,
                    });
                }
                match (kind, ok) {
                    // A rollback hook answers only when it asks for a rollback.
                    (serin_rollout::HookKind::Rollback, true) => Some(Event::RollbackRequested),
                    (serin_rollout::HookKind::Rollback, false) => None,
                    _ => Some(Event::Hook { kind, ok }),
                }
            }
            Action::Promote => {
                if let Err(error) = self.router.promote().await {
                    self.warn(
                        now,
                        format!("{} could not promote: {error}", self.router.name()),
                    );
                }
                None
            }
            Action::Finalise => {
                if let Err(error) = self.router.finalise().await {
                    self.warn(
                        now,
                        format!(
                            "{} could not release the canary: {error}",
                            self.router.name()
                        ),
                    );
                }
                None
            }
            Action::ScheduleTick { at } => {
                *next_tick = Some(at);
                None
            }
            Action::Emit(record) => {
                self.webhooks.event(&record, &self.context()).await;
                self.log(now, &record);
                // Saved with the state already: only watchers need it now.
                let _ = self.updates.send(Update::Record { at: now, record });
                None
            }
        }
    }

    /// Saves the state an event led to, with the records its actions emit
    /// and the history gathered since the last save. The store is called on
    /// tokio's blocking pool (see [`StateStore`]); the loop awaits its answer
    /// before carrying out a single action.
    async fn save(&mut self, now: Timestamp, actions: &[Action]) -> Result<(), StoreError> {
        let mut history = std::mem::take(&mut self.persistence.unsaved);
        // A promotion makes the canary the stable version: saved before the
        // router is told, so a restart routes to it either way.
        self.persistence.placement.follow(actions);
        for action in actions {
            if let Action::Emit(record) = action {
                history.push(Update::Record {
                    at: now,
                    record: record.clone(),
                });
            }
        }
        let history = Arc::new(history);
        let job = {
            let store = self.persistence.store.clone();
            let name = self.name.clone();
            let state = self.rollout.state().clone();
            let placement = self.persistence.placement.clone();
            let history = history.clone();
            let evidence = self.judge.evidence();
            move || {
                store.save(
                    &name,
                    Saved {
                        state: &state,
                        placement: &placement,
                        history: &history,
                        evidence: evidence.as_deref(),
                    },
                )
            }
        };
        let result = tokio::task::spawn_blocking(job)
            .await
            .unwrap_or_else(|error| {
                Err(StoreError {
                    message: format!("the save did not finish: {error}"),
                })
            });
        match result {
            Ok(()) => Ok(()),
            Err(error) => {
                // Keep what was gathered before this event; this event's own
                // records go with it, as it did not happen. (The job is over:
                // its copy of the history is dropped, so this takes it back.)
                let mut history =
                    Arc::try_unwrap(history).unwrap_or_else(|shared| shared.as_ref().clone());
                let own = actions
                    .iter()
                    .filter(|action| matches!(action, Action::Emit(_)))
                    .count();
                history.truncate(history.len().saturating_sub(own));
                self.persistence.unsaved = history;
                Err(error)
            }
        }
    }

    /// Routes as the saved state says: the canary upstream of a rollout in
    /// progress and its weights. The daemon calls this before its proxy
    /// accepts a request; it is idempotent. A refused upstream or route
    /// stays pending (warned once) and the loop retries it, as any desired
    /// state; the first refusal is returned.
    pub async fn restore_routes(&mut self) -> Result<(), PortError> {
        let now = self.clock.now();
        self.reroute(now).await
    }

    /// The canary upstream of a rollout in progress, as saved.
    fn restored_canary(&self) -> Option<CanaryTarget> {
        if !self.rollout.state().phase.is_active() {
            return None;
        }
        let address = self.persistence.placement.canary.clone()?;
        let revision = self.rollout.state().revision.clone()?;
        Some(CanaryTarget { address, revision })
    }

    /// [`Self::restore_routes`]: the saved canary upstream with the saved
    /// route in one write (the canary keeps its weight through a restart:
    /// no moment at weight 0 in between), or the route alone when no
    /// rollout is on or it gives the canary nothing. A refused upstream
    /// stays pending and the route follows it once taken.
    async fn reroute(&mut self, now: Timestamp) -> Result<(), PortError> {
        let route = self.rollout.state().route();
        match self.restored_canary() {
            Some(target) if route != Route::STABLE => {
                self.apply_canary(now, target, Some(route)).await
            }
            Some(target) => {
                let first = self.apply_canary(now, target, None).await;
                first.and(self.apply_route(now, route).await)
            }
            None => self.apply_route(now, route).await,
        }
    }

    /// Points the router at a canary upstream: desired state, like a
    /// route. A refusal is remembered as pending (a newer target replaces
    /// it) and retried by [`Self::retry_canary`] on observation ticks with
    /// the routes' backoff; meanwhile routes that send the canary traffic
    /// wait and analyses hold. Once the router takes it, the state's route
    /// follows. One warning when the router first refuses, one record when
    /// it finally takes the upstream.
    ///
    /// `with_route`: the route of a rollout already under way (a restore,
    /// a retry), written with the upstream in one operation
    /// ([`Router::restore_canary`]); `None` for a new canary, which the
    /// router starts without traffic.
    async fn apply_canary(
        &mut self,
        now: Timestamp,
        target: CanaryTarget,
        with_route: Option<Route>,
    ) -> Result<(), PortError> {
        let result = match with_route {
            Some(route) => self.router.restore_canary(&target, route).await,
            None => self.router.set_canary(&target).await,
        };
        match result {
            Ok(()) => {
                if let Some(route) = with_route {
                    self.route_taken(now, route);
                }
                if let Some(pending) = self.persistence.pending_canary.take() {
                    self.note(
                        now,
                        format!(
                            "{} points at canary {} ({}) after {}s ({})",
                            self.router.name(),
                            target.revision,
                            target.address,
                            now.saturating_since(pending.since).as_secs(),
                            refused(pending.refusals),
                        ),
                    );
                    // The route waited for the upstream.
                    if with_route.is_none() {
                        let _ = self.apply_route(now, self.rollout.state().route()).await;
                    }
                }
                Ok(())
            }
            Err(error) => {
                match &mut self.persistence.pending_canary {
                    Some(pending) => {
                        if pending.target != target {
                            // A newer desired upstream starts a fresh backoff.
                            pending.target = target;
                            pending.backoff.reset();
                        }
                        pending.retry_at = now.saturating_add(pending.backoff.next());
                        pending.refusals += 1;
                        pending.error = error.to_string();
                    }
                    None => {
                        self.warn(
                            now,
                            format!(
                                "{} could not point at canary {} ({}): {error}; analysis holds, no traffic goes to the canary, and the upstream is retried (every {}s up to {}s) until applied",
                                self.router.name(),
                                target.revision,
                                target.address,
                                ROUTE_RETRY.first().as_secs(),
                                ROUTE_RETRY.max().as_secs()
                            ),
                        );
                        let mut backoff = ROUTE_RETRY;
                        self.persistence.pending_canary = Some(PendingCanary {
                            target,
                            since: now,
                            retry_at: now.saturating_add(backoff.next()),
                            backoff,
                            refusals: 1,
                            error: error.to_string(),
                        });
                    }
                }
                Err(error)
            }
        }
    }

    /// Tries the pending canary upstream again when its backoff has passed;
    /// forgets it once the rollout is over (its canary takes no traffic).
    async fn retry_canary(&mut self, now: Timestamp) {
        let Some(pending) = &self.persistence.pending_canary else {
            return;
        };
        if !self.rollout.state().phase.is_active() {
            self.persistence.pending_canary = None;
            return;
        }
        if now >= pending.retry_at {
            let target = pending.target.clone();
            // The route waited for this upstream: both go in one write.
            let route = Some(self.rollout.state().route()).filter(|r| *r != Route::STABLE);
            let _ = self.apply_canary(now, target, route).await;
        }
    }

    /// Whether the pending route sends traffic to a canary upstream the
    /// router has not taken: it is tried again once the upstream is.
    fn route_waits_for_canary(&self) -> bool {
        self.persistence.pending_canary.is_some()
            && self
                .persistence
                .pending
                .as_ref()
                .is_some_and(|pending| pending.route != Route::STABLE)
    }

    /// Picks up where the saved state stopped: re-applies the route, re-arms
    /// the tick and asks again the question whose answer was lost
    /// ([`Rollout::recover`]), at the tick when one is armed.
    async fn recover(
        &mut self,
        now: Timestamp,
        next_tick: &mut Option<Timestamp>,
    ) -> Result<(), DriverError> {
        let _ = self.reroute(now).await;
        // The proxy's statistics start empty after a restart: the next
        // interval waits until a window of fresh traffic was seen, and the
        // tick asks again the question whose answer was lost (the machine
        // re-asks what is pending on a tick). Nothing is skipped: the
        // machine's position is the saved one.
        let warmup = self
            .judge
            .config()
            .longest_window()
            .min(self.rollout.plan().interval);
        let rearmed =
            self.rollout.state().phase.is_active() && self.rollout.state().next_tick_at.is_some();
        let mut answers = Vec::new();
        for action in self.rollout.recover() {
            match action {
                Action::SetRoute(_) => continue, // applied above, with the canary upstream
                Action::ScheduleTick { at } if rearmed => {
                    *next_tick = Some(at.max(now.saturating_add(warmup)));
                }
                Action::RunAnalysis | Action::CallGate(_) | Action::CallHook(_) if rearmed => {}
                action => {
                    if let Some(answer) = self.perform(now, action, next_tick).await {
                        answers.push(answer);
                    }
                }
            }
        }
        for answer in answers {
            self.handle(now, answer, next_tick).await?;
        }
        Ok(())
    }

    /// Tries a route once: a route is desired state, so a refusal is
    /// remembered as pending (replacing any older pending route: the newest
    /// wins) and retried by [`Self::retry_route`] on observation ticks with a
    /// bounded backoff, while analyses hold. Never waits. One warning when the
    /// router first refuses, one record when a route is finally applied.
    async fn apply_route(&mut self, now: Timestamp, route: Route) -> Result<(), PortError> {
        match self.router.set_route(route).await {
            Ok(()) => {
                self.route_taken(now, route);
                Ok(())
            }
            Err(error) => {
                match &mut self.persistence.pending {
                    Some(pending) => {
                        if pending.route != route {
                            // A newer desired route starts a fresh backoff.
                            pending.route = route;
                            pending.desired_at = now;
                            pending.backoff.reset();
                        }
                        pending.retry_at = now.saturating_add(pending.backoff.next());
                        pending.refusals += 1;
                        pending.error = error.to_string();
                    }
                    None => {
                        let mut backoff = ROUTE_RETRY;
                        self.persistence.pending = Some(PendingRoute {
                            route,
                            since: now,
                            desired_at: now,
                            retry_at: now.saturating_add(backoff.next()),
                            backoff,
                            refusals: 1,
                            error: error.to_string(),
                        });
                        self.warn(
                            now,
                            format!(
                                "{} could not set canary weight {}: {error}; analysis holds and the route is retried (every {}s up to {}s) until applied",
                                self.router.name(),
                                route.canary_weight,
                                ROUTE_RETRY.first().as_secs(),
                                ROUTE_RETRY.max().as_secs()
                            ),
                        );
                    }
                }
                Err(error)
            }
        }
    }

    /// The router took `route`: a pending route is over, with one record
    /// saying after how long.
    fn route_taken(&mut self, now: Timestamp, route: Route) {
        if let Some(pending) = self.persistence.pending.take() {
            self.note(
                now,
                format!(
                    "{} applied canary weight {} after {}s ({})",
                    self.router.name(),
                    route.canary_weight,
                    now.saturating_since(pending.since).as_secs(),
                    refused(pending.refusals),
                ),
            );
        }
    }

    /// Reads the router back and repairs drift, while nothing is pending (a
    /// pending route or canary is retried on its own backoff, and each try
    /// brings the whole desired state about). A repair says so, once per
    /// drift, in the history and the log; a router that cannot be read or
    /// written makes the current route pending, as any refusal: analyses
    /// hold and it is retried until applied.
    async fn repair(&mut self, now: Timestamp) {
        if self.persistence.pending.is_some() || self.persistence.pending_canary.is_some() {
            return;
        }
        match self.router.repair().await {
            Ok(None) => {}
            Ok(Some(drift)) => {
                let router = self.router.name().to_owned();
                self.warn(
                    now,
                    format!("{router} had drifted from the state serin set, repaired: {drift}"),
                );
                self.publish(Update::Repaired {
                    at: now,
                    router,
                    drift,
                });
            }
            Err(error) => {
                tracing::debug!(canary = %self.name, %error, "router read back failed");
                let _ = self.apply_route(now, self.rollout.state().route()).await;
            }
        }
    }

    /// Tries the pending route again when its backoff has passed.
    async fn retry_route(&mut self, now: Timestamp) {
        let due = self
            .persistence
            .pending
            .as_ref()
            .filter(|pending| now >= pending.retry_at)
            .map(|pending| pending.route);
        if let Some(route) = due {
            let _ = self.apply_route(now, route).await;
        }
    }

    /// Whether a finished rollout's last route is applied, or the router has
    /// refused it for longer than the progress deadline (then the loop stops
    /// waiting for it, saying so).
    fn final_route_settled(&mut self, now: Timestamp) -> bool {
        let Some(pending) = &self.persistence.pending else {
            return true;
        };
        let waited = now.saturating_since(pending.desired_at);
        if waited < self.rollout.plan().effective_deadline() {
            return false;
        }
        let message = format!(
            "{} still refuses canary weight {} after {}s ({}): giving up",
            self.router.name(),
            pending.route.canary_weight,
            waited.as_secs(),
            pending.error
        );
        self.warn(now, message);
        true
    }

    /// What webhooks are told about the rollout.
    fn context(&self) -> HookContext {
        HookContext {
            phase: self.rollout.state().phase.to_string(),
            revision: self.rollout.state().revision.clone().unwrap_or_default(),
        }
    }

    /// A custom metric's value, or no data with a warning saying why.
    fn value_or_warn(
        &mut self,
        at: Timestamp,
        name: &str,
        version: Version,
        result: Result<Option<f64>, PortError>,
    ) -> Option<f64> {
        match result {
            Ok(value) => value,
            Err(error) => {
                let message = match error {
                    // Already names the metric, the version and the fix.
                    PortError::NoValue(message) => message,
                    other => format!("metric {name} ({version}): {other}"),
                };
                self.warn(at, message);
                None
            }
        }
    }

    fn note(&mut self, at: Timestamp, message: String) {
        let record = Record {
            severity: Severity::Normal,
            message,
        };
        self.log(at, &record);
        self.publish(Update::Record { at, record });
    }

    fn warn(&mut self, at: Timestamp, message: String) {
        let record = Record {
            severity: Severity::Warning,
            message,
        };
        self.log(at, &record);
        self.publish(Update::Record { at, record });
    }

    fn log(&self, _at: Timestamp, record: &Record) {
        match record.severity {
            Severity::Normal => tracing::info!(canary = %self.name, "{}", record.message),
            Severity::Warning => tracing::warn!(canary = %self.name, "{}", record.message),
        }
    }

    fn publish(&mut self, update: Update) {
        self.persistence.remember(&update);
        // No watcher is not an error: `serin run` without a terminal has none.
        let _ = self.updates.send(update);
    }
}

/// Which rollout the judge's evidence and the metric windows belong to: a new
/// one begins at every start or restart (a new revision, or the same one
/// started again), at promotion and at rollback (an abort included).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Epoch {
    revision: Option<String>,
    started_at: Option<Timestamp>,
    stage: Stage,
}

/// Where a rollout is, as far as its evidence goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// No rollout yet.
    Idle,
    /// Judged: waiting for approval or progressing.
    Judged,
    /// Promoted (promoting, finalising or done).
    Promoted,
    /// Rolled back or aborted.
    RolledBack,
}

// === impl Epoch ===

impl Epoch {
    fn of(state: &RolloutState) -> Self {
        let stage = match state.phase {
            Phase::Initializing | Phase::Initialized => Stage::Idle,
            Phase::Waiting | Phase::Progressing | Phase::WaitingPromotion => Stage::Judged,
            Phase::Promoting | Phase::Finalising | Phase::Succeeded => Stage::Promoted,
            Phase::Failed => Stage::RolledBack,
        };
        Epoch {
            revision: state.revision.clone(),
            started_at: state.started_at,
            stage,
        }
    }
}

/// What the state machine is told about an analysis decision. A hold the judge
/// says waits for evidence is an evidence hold (not counted against the
/// progress deadline); any other hold is the system's.
pub fn analysis_result(decision: &Decision) -> serin_rollout::AnalysisResult {
    // The machine's records are read by people: only what explains the
    // verdict; the whole decision is published alongside.
    let reasons = decision.why();
    match decision.verdict {
        serin_analysis::Verdict::Pass => serin_rollout::AnalysisResult::Pass,
        serin_analysis::Verdict::Hold => match decision.hold {
            Some(serin_analysis::HoldReason::Evidence) => {
                serin_rollout::AnalysisResult::evidence_hold(reasons)
            }
            Some(serin_analysis::HoldReason::System) | None => {
                serin_rollout::AnalysisResult::system_hold(reasons)
            }
        },
        serin_analysis::Verdict::Fail => serin_rollout::AnalysisResult::Fail { reasons },
        serin_analysis::Verdict::Rollback => serin_rollout::AnalysisResult::Rollback { reasons },
    }
}

/// "1 refused try", "3 refused tries": how many times a router refused a
/// change before it took it, for the history.
fn refused(refusals: u64) -> String {
    let tries = if refusals == 1 { "try" } else { "tries" };
    format!("{refusals} refused {tries}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use serin_analysis::AnalysisConfig;
    use serin_rollout::{
        Plan, Strategy,
        ports::{BoxFuture, NoWebhooks},
    };
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A router that refuses every route.
    #[derive(Default)]
    struct Refusing {
        tries: AtomicU32,
    }

    impl Router for Refusing {
        fn name(&self) -> &str {
            "refusing"
        }
        fn set_canary(&self, _canary: &CanaryTarget) -> BoxFuture<'_, Result<(), PortError>> {
            Box::pin(async { Ok(()) })
        }
        fn set_route(&self, _route: Route) -> BoxFuture<'_, Result<(), PortError>> {
            self.tries.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                Err(PortError::Unavailable {
                    system: "test".into(),
                    message: "down".into(),
                })
            })
        }
        fn promote(&self) -> BoxFuture<'_, Result<(), PortError>> {
            Box::pin(async { Ok(()) })
        }
        fn finalise(&self) -> BoxFuture<'_, Result<(), PortError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_route_is_tried_once_without_a_wait_and_stays_pending() {
        let clock = TokioClock::new();
        let router = Arc::new(Refusing::default());
        let (updates, mut watch) = broadcast::channel(16);
        let mut driver = Driver {
            name: "shop".into(),
            rollout: Rollout::new(
                Plan::new(
                    Strategy::Canary { steps: vec![50] },
                    Duration::from_secs(60),
                    5,
                ),
                clock.now(),
            )
            .expect("a valid plan"),
            judge: Analyzer::new(AnalysisConfig::flagger_defaults()).expect("default analysis"),
            router: router.clone(),
            traffic: Arc::new(serin_stats::Recorder::new(Duration::from_secs(60))),
            metrics: Vec::new(),
            webhooks: Arc::new(NoWebhooks),
            clock: clock.clone(),
            updates,
            persistence: Persistence::none(),
        };
        let started = tokio::time::Instant::now();
        let first = Route {
            canary_weight: 10,
            ..Route::default()
        };
        assert!(driver.apply_route(clock.now(), first).await.is_err());
        assert!(
            driver
                .apply_route(clock.now(), Route::default())
                .await
                .is_err()
        );
        assert_eq!(router.tries.load(Ordering::SeqCst), 2);
        assert_eq!(started.elapsed(), Duration::ZERO);
        // The newest desired route is the pending one.
        let pending = driver.persistence.pending.clone().expect("pending route");
        assert_eq!(pending.route, Route::default());
        assert_eq!(pending.refusals, 2);
        // Not retried before its backoff, retried after it.
        driver.retry_route(clock.now()).await;
        assert_eq!(router.tries.load(Ordering::SeqCst), 2);
        driver
            .retry_route(clock.now().saturating_add(ROUTE_RETRY.first()))
            .await;
        assert_eq!(router.tries.load(Ordering::SeqCst), 3);
        // The analysis holds while the route is pending.
        let answer = driver
            .perform(clock.now(), Action::RunAnalysis, &mut None)
            .await;
        match answer {
            Some(Event::Analysis(serin_rollout::AnalysisResult::Hold {
                reasons,
                kind: serin_rollout::HoldKind::System,
            })) => {
                assert!(reasons[0].contains("refusing"), "{reasons:?}");
                assert!(reasons[0].contains("down"), "{reasons:?}");
            }
            other => panic!("expected a hold, got {other:?}"),
        }
        // One warning for the whole outage.
        let mut warnings = 0;
        while let Ok(update) = watch.try_recv() {
            if let Update::Record { record, .. } = update {
                assert_eq!(record.severity, Severity::Warning);
                warnings += 1;
            }
        }
        assert_eq!(warnings, 1);
    }

    #[test]
    fn holds_map_to_the_machine_with_their_kind() {
        let decision = |hold| Decision {
            verdict: serin_analysis::Verdict::Hold,
            at_ms: 0,
            metrics: Vec::new(),
            reasons: vec!["why".into()],
            hold,
        };
        let why = vec!["why".to_owned()];
        assert_eq!(
            analysis_result(&decision(Some(serin_analysis::HoldReason::Evidence))),
            serin_rollout::AnalysisResult::evidence_hold(why.clone())
        );
        assert_eq!(
            analysis_result(&decision(Some(serin_analysis::HoldReason::System))),
            serin_rollout::AnalysisResult::system_hold(why.clone())
        );
        assert_eq!(
            analysis_result(&decision(None)),
            serin_rollout::AnalysisResult::system_hold(why)
        );
    }

    #[test]
    fn the_route_backoff_doubles_up_to_its_bound() {
        let mut backoff = ROUTE_RETRY;
        let waits: Vec<u64> = (0..8).map(|_| backoff.next().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
