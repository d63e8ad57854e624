//! One rollout, driven to its verdict: the loop that turns time and
//! observations into events for the state machine and carries out the
//! actions it returns.

use crate::clock::Clock;
use serde::Serialize;
use serin_analysis::{Analyzer, Decision, TickInput};
use serin_rollout::{
    Action, Event, Phase, Plan, Record, RolloutState, Route, Severity, Timestamp,
    ports::{
        CanaryTarget, HookAnswer, HookContext, MetricQuery, PortError, Router, TrafficSource,
        Webhooks,
    },
};
use serin_stats::{Pair, Version};
use std::{collections::VecDeque, sync::Arc, time::Duration};
use tokio::sync::{broadcast, mpsc};

/// How often the judge is fed the requests served since the last look.
pub const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// How long to wait before retrying a router that failed to apply a route.
const ROUTER_RETRY: Duration = Duration::from_secs(2);

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

/// Everything one rollout needs.
pub struct Driver<C: Clock> {
    /// The canary's name, for messages.
    pub name: String,
    /// What the state machine follows.
    pub plan: Plan,
    /// Where the machine stands.
    pub state: RolloutState,
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
    /// Every command sender is gone and the rollout has nothing left to do.
    #[error("rollout {0}: nothing left to wait for")]
    Idle(String),
}

// === impl Driver ===

impl<C: Clock> Driver<C> {
    /// Runs until the rollout succeeds or fails, returning the final phase.
    ///
    /// `commands` carries manual gates and new revisions; `stop_when_done`
    /// ends the loop at the first verdict (what `serin run` wants), otherwise
    /// the loop waits for the next revision (what the daemon wants).
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        stop_when_done: bool,
    ) -> Result<RolloutState, DriverError> {
        let mut next_tick: Option<Timestamp> = None;
        let mut last_totals = self.traffic.totals();
        let mut next_observe = self.clock.now().saturating_add(OBSERVE_EVERY);
        let mut commands_open = true;
        loop {
            if stop_when_done && matches!(self.state.phase, Phase::Succeeded | Phase::Failed) {
                return Ok(self.state);
            }
            let wake = match next_tick {
                Some(tick) if tick < next_observe => tick,
                _ => next_observe,
            };
            let command = tokio::select! {
                () = tokio::time::sleep_until(self.clock.instant_at(wake)) => None,
                command = commands.recv(), if commands_open => match command {
                    Some(command) => Some(command),
                    None => {
                        commands_open = false;
                        if !stop_when_done {
                            return Err(DriverError::Idle(self.name));
                        }
                        None
                    }
                },
            };
            let now = self.clock.now();
            if let Some(command) = command {
                let event = match command {
                    Command::Start(target) => {
                        if let Err(error) = self.router.set_canary(&target).await {
                            self.warn(
                                now,
                                format!("cannot point the router at {}: {error}", target.address),
                            );
                            continue;
                        }
                        Event::Start {
                            revision: target.revision,
                        }
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
                next_observe = now.saturating_add(OBSERVE_EVERY);
                let totals = self.traffic.totals();
                let delta = totals.since(&last_totals);
                last_totals = totals;
                if self.state.phase.is_active() {
                    self.judge
                        .observe(now.as_millis(), self.state.canary_weight, &delta);
                    if let Some(decision) = self.judge.early(now.as_millis()) {
                        self.publish(Update::Decision {
                            at: now,
                            decision: decision.clone(),
                        });
                        // The judge only speaks between ticks when the evidence
                        // of harm is decisive.
                        self.handle(
                            now,
                            Event::Harm {
                                reasons: decision.reasons,
                            },
                            &mut next_tick,
                        )
                        .await?;
                    }
                }
                self.publish(Update::Traffic {
                    at: now,
                    delta: Box::new(delta),
                });
            }
            if next_tick.is_some_and(|tick| now >= tick) {
                next_tick = None;
                self.handle(now, Event::Tick, &mut next_tick).await?;
            }
        }
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
            let weight_before = self.state.canary_weight;
            let step_before = self.state.step_index;
            let actions = match serin_rollout::step(&mut self.state, &self.plan, now, event) {
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
                    continue;
                }
            };
            if self.state.step_index != step_before || self.state.canary_weight != weight_before {
                self.judge
                    .step_advanced(now.as_millis(), self.state.canary_weight);
            }
            for action in actions {
                if let Some(answer) = self.perform(now, action, next_tick).await {
                    queue.push_back(answer);
                }
            }
            self.publish(Update::State {
                at: now,
                state: Box::new(self.state.clone()),
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
            Action::SetRoute(route) => {
                self.apply_route(now, route).await;
                None
            }
            Action::RunAnalysis => {
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
                let verdict = verdict_for_machine(&decision);
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
                self.publish(Update::Record { at: now, record });
                None
            }
        }
    }

    /// Applies a route, retrying a few times: a route is desired state and
    /// the rollout must not run its analysis on a split that was never set.
    async fn apply_route(&mut self, now: Timestamp, route: Route) {
        for attempt in 1..=3u32 {
            match self.router.set_route(route).await {
                Ok(()) => return,
                Err(error) => {
                    self.warn(
                        now,
                        format!(
                            "{} could not set canary weight {} (attempt {attempt}/3): {error}",
                            self.router.name(),
                            route.canary_weight
                        ),
                    );
                    tokio::time::sleep(ROUTER_RETRY).await;
                }
            }
        }
    }

    /// What webhooks are told about the rollout.
    fn context(&self) -> HookContext {
        HookContext {
            phase: self.state.phase.to_string(),
            revision: self.state.revision.clone().unwrap_or_default(),
        }
    }

    /// A custom metric's value, or no data with a warning saying why.
    fn value_or_warn(
        &self,
        at: Timestamp,
        name: &str,
        version: Version,
        result: Result<Option<f64>, PortError>,
    ) -> Option<f64> {
        match result {
            Ok(value) => value,
            Err(error) => {
                self.warn(at, format!("metric {name} ({version}): {error}"));
                None
            }
        }
    }

    fn warn(&self, at: Timestamp, message: String) {
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

    fn publish(&self, update: Update) {
        // No watcher is not an error: `serin run` without a terminal has none.
        let _ = self.updates.send(update);
    }
}

/// The state machine's verdict for an analysis decision.
pub fn verdict_for_machine(decision: &Decision) -> serin_rollout::Verdict {
    let reasons = decision.reasons.clone();
    match decision.verdict {
        serin_analysis::Verdict::Pass => serin_rollout::Verdict::Pass,
        serin_analysis::Verdict::Hold => serin_rollout::Verdict::Hold { reasons },
        serin_analysis::Verdict::Fail => serin_rollout::Verdict::Fail { reasons },
        serin_analysis::Verdict::Rollback => serin_rollout::Verdict::Rollback { reasons },
    }
}
