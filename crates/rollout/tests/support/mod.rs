//! A small driver for tests: a rollout, a clock, and a scripted outside world.
#![allow(dead_code, clippy::unwrap_used)]

use serin_rollout::{
    Action, AnalysisResult, Event, GateKind, HookKind, Phase, Plan, Record, Result, Rollout, Route,
    Severity, Strategy, Timestamp,
};
use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

pub const T0: u64 = 1_764_150_000_000;
pub const MINUTE: Duration = Duration::from_secs(60);

pub fn canary(steps: &[u8]) -> Plan {
    Plan::new(
        Strategy::Canary {
            steps: steps.to_vec(),
        },
        MINUTE,
        5,
    )
}

/// How the outside world answers requests.
#[derive(Clone, Debug)]
pub struct World {
    /// Verdicts to give, in order; then `default_verdict`.
    pub verdicts: VecDeque<AnalysisResult>,
    pub default_verdict: AnalysisResult,
    /// Gate answers (default: approved).
    pub gates: HashMap<GateKind, bool>,
    /// Hook answers (default: ok; rollback default: not signalling).
    pub hooks: HashMap<HookKind, bool>,
}

impl Default for World {
    fn default() -> Self {
        Self {
            verdicts: VecDeque::new(),
            default_verdict: AnalysisResult::Pass,
            gates: HashMap::new(),
            hooks: HashMap::new(),
        }
    }
}

impl World {
    pub fn verdicts(verdicts: impl IntoIterator<Item = AnalysisResult>) -> Self {
        Self {
            verdicts: verdicts.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn gate(mut self, kind: GateKind, approved: bool) -> Self {
        self.gates.insert(kind, approved);
        self
    }

    pub fn hook(mut self, kind: HookKind, ok: bool) -> Self {
        self.hooks.insert(kind, ok);
        self
    }

    fn answer(&mut self, action: &Action) -> Option<Event> {
        match action {
            Action::RunAnalysis => Some(Event::Analysis(
                self.verdicts
                    .pop_front()
                    .unwrap_or_else(|| self.default_verdict.clone()),
            )),
            Action::CallGate(kind) => Some(Event::Gate {
                kind: *kind,
                approved: self.gates.get(kind).copied().unwrap_or(true),
            }),
            Action::CallHook(kind @ (HookKind::PreRollout | HookKind::Rollout)) => {
                Some(Event::Hook {
                    kind: *kind,
                    ok: self.hooks.get(kind).copied().unwrap_or(true),
                })
            }
            Action::CallHook(HookKind::Rollback) => self
                .hooks
                .get(&HookKind::Rollback)
                .copied()
                .unwrap_or(false)
                .then_some(Event::RollbackRequested),
            _ => None,
        }
    }
}

pub fn fail(reason: &str) -> AnalysisResult {
    AnalysisResult::Fail {
        reasons: vec![reason.to_string()],
    }
}

/// A hold caused by the system (too few requests, a route not applied):
/// counts against the progress deadline.
pub fn hold(reason: &str) -> AnalysisResult {
    AnalysisResult::system_hold(vec![reason.to_string()])
}

/// A hold while evidence accumulates: not counted against the progress deadline.
pub fn evidence_hold(reason: &str) -> AnalysisResult {
    AnalysisResult::evidence_hold(vec![reason.to_string()])
}

/// A rollout with a clock.
pub struct Harness {
    pub rollout: Rollout,
    pub now: Timestamp,
    /// Every action returned so far.
    pub actions: Vec<Action>,
}

impl Harness {
    pub fn new(plan: Plan) -> Self {
        let now = Timestamp::from_millis(T0);
        Self {
            rollout: Rollout::new(plan, now).unwrap(),
            now,
            actions: Vec::new(),
        }
    }

    pub fn started(plan: Plan) -> Self {
        let mut h = Self::new(plan);
        h.send(Event::Start {
            revision: "v2".into(),
        });
        h
    }

    pub fn state(&self) -> &serin_rollout::RolloutState {
        self.rollout.state()
    }

    pub fn phase(&self) -> Phase {
        self.state().phase
    }

    pub fn weight(&self) -> u8 {
        self.state().canary_weight
    }

    pub fn advance_clock(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
    }

    pub fn try_send(&mut self, event: Event) -> Result<Vec<Action>> {
        let out = self.rollout.handle(self.now, event)?;
        self.actions.extend(out.iter().cloned());
        Ok(out)
    }

    pub fn send(&mut self, event: Event) -> Vec<Action> {
        let name = format!("{event:?}");
        self.try_send(event)
            .unwrap_or_else(|e| panic!("{name} refused: {e}"))
    }

    /// Moves the clock to the next tick and sends it.
    pub fn tick(&mut self) -> Vec<Action> {
        let due = self.state().next_tick_at.expect("a tick is scheduled");
        self.now = self.now.max(due);
        self.send(Event::Tick)
    }

    /// Answers every request in `actions` (and in the answers' actions) from `world`.
    pub fn answer(&mut self, actions: &[Action], world: &mut World) -> Vec<Action> {
        let mut all = Vec::new();
        let mut queue: VecDeque<Action> = actions.iter().cloned().collect();
        while let Some(action) = queue.pop_front() {
            if let Some(event) = world.answer(&action) {
                // A request superseded by a rollback in the same batch is dropped, as
                // the runtime drops refused late answers.
                let out = match self.try_send(event.clone()) {
                    Ok(out) => out,
                    Err(serin_rollout::Error::Unexpected { .. }) if self.phase().is_terminal() => {
                        continue;
                    }
                    Err(e) => panic!("{event:?} refused: {e}"),
                };
                all.extend(out.iter().cloned());
                queue.extend(out);
            }
        }
        all
    }

    /// One interval: the tick and every answer.
    pub fn interval(&mut self, world: &mut World) -> Vec<Action> {
        let mut all = self.tick();
        let answers = self.answer(&all.clone(), world);
        all.extend(answers);
        all
    }

    /// Intervals until the rollout ends (or `max` intervals).
    pub fn run(&mut self, world: &mut World, max: usize) -> Vec<Action> {
        let mut all = Vec::new();
        for _ in 0..max {
            if self.state().next_tick_at.is_none() {
                break;
            }
            all.extend(self.interval(world));
        }
        all
    }
}

pub fn routes(actions: &[Action]) -> Vec<Route> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetRoute(r) => Some(*r),
            _ => None,
        })
        .collect()
}

pub fn weights(actions: &[Action]) -> Vec<u8> {
    routes(actions).iter().map(|r| r.canary_weight).collect()
}

pub fn records(actions: &[Action]) -> Vec<Record> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

pub fn messages(actions: &[Action]) -> Vec<String> {
    records(actions).into_iter().map(|r| r.message).collect()
}

pub fn warnings(actions: &[Action]) -> Vec<String> {
    records(actions)
        .into_iter()
        .filter(|r| r.severity == Severity::Warning)
        .map(|r| r.message)
        .collect()
}

pub fn has_message(actions: &[Action], needle: &str) -> bool {
    messages(actions).iter().any(|m| m.contains(needle))
}

pub fn count(actions: &[Action], wanted: &Action) -> usize {
    actions.iter().filter(|a| *a == wanted).count()
}
