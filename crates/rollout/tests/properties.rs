//! Properties over random plans and random event sequences with monotone times.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serin_rollout::{
    Action, AnalysisResult, Event, GateKind, HoldKind, HookKind, HookSet, Pending, Phase, Plan,
    Rollout, Route, Strategy as Traffic, Timestamp,
};
use std::time::Duration;

// === generators ===

fn strategy() -> impl Strategy<Value = Traffic> {
    prop_oneof![
        3 => proptest::collection::btree_set(1u8..=100, 1..6)
            .prop_map(|steps| Traffic::Canary { steps: steps.into_iter().collect() }),
        1 => (1u32..5).prop_map(|iterations| Traffic::AbTesting { iterations }),
        1 => (1u32..5).prop_map(|iterations| Traffic::BlueGreen { iterations }),
    ]
}

fn hooks() -> impl Strategy<Value = HookSet> {
    proptest::collection::vec(proptest::bool::weighted(0.3), 8).prop_map(|b| HookSet {
        confirm_rollout: b[0],
        pre_rollout: b[1],
        rollout: b[2],
        confirm_traffic_increase: b[3],
        confirm_promotion: b[4],
        post_rollout: b[5],
        rollback: b[6],
        event: b[7],
    })
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        strategy(),
        prop_oneof![Just(1u64), Just(30), Just(60), Just(300)],
        1u32..6,
        proptest::option::weighted(0.3, 1u8..=100),
        proptest::bool::weighted(0.1),
        60u64..1200,
        proptest::option::weighted(0.3, 1u8..=100),
        hooks(),
    )
        .prop_map(
            |(strategy, interval, threshold, mirror, skip, deadline, swp, hooks)| Plan {
                strategy,
                interval: Duration::from_secs(interval),
                threshold,
                mirror,
                skip_analysis: skip,
                progress_deadline: Duration::from_secs(deadline),
                step_weight_promotion: swp,
                hooks,
                min_requests: None,
            },
        )
}

fn verdict() -> impl Strategy<Value = AnalysisResult> {
    prop_oneof![
        12 => Just(AnalysisResult::Pass),
        3 => Just(AnalysisResult::system_hold(vec!["few requests".into()])),
        2 => Just(AnalysisResult::evidence_hold(vec!["evidence 2 of 9".into()])),
        3 => Just(AnalysisResult::Fail { reasons: vec!["error rate".into()] }),
        1 => Just(AnalysisResult::Rollback { reasons: vec!["harm".into()] }),
    ]
}

fn gate_kind() -> impl Strategy<Value = GateKind> {
    prop_oneof![
        Just(GateKind::ConfirmRollout),
        Just(GateKind::ConfirmTrafficIncrease),
        Just(GateKind::ConfirmPromotion)
    ]
}

fn hook_kind() -> impl Strategy<Value = HookKind> {
    prop_oneof![
        Just(HookKind::PreRollout),
        Just(HookKind::Rollout),
        Just(HookKind::PostRollout),
        Just(HookKind::Rollback),
        Just(HookKind::Event)
    ]
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => prop_oneof![Just("a"), Just("b"), Just("c")]
            .prop_map(|r| Event::Start { revision: r.to_string() }),
        1 => Just(Event::Initialize),
        1 => Just(Event::Tick),
        1 => verdict().prop_map(Event::Analysis),
        1 => (gate_kind(), any::<bool>()).prop_map(|(kind, approved)| Event::Gate { kind, approved }),
        1 => (hook_kind(), any::<bool>()).prop_map(|(kind, ok)| Event::Hook { kind, ok }),
        1 => Just(Event::RollbackRequested),
        2 => Just(Event::Pause),
        2 => Just(Event::Resume),
        1 => Just(Event::PromoteNow),
        1 => Just(Event::Abort),
    ]
}

/// One step of the outside world.
#[derive(Clone, Debug)]
enum Move {
    /// Time passes (milliseconds).
    Wait(u64),
    /// The scheduled tick fires when due.
    Tick,
    /// The pending request is answered: verdict, gate approval, hook outcome.
    Answer(AnalysisResult, bool, bool),
    /// Any event at all, expected or not.
    Raw(Event),
}

fn moves() -> impl Strategy<Value = Vec<Move>> {
    let one = prop_oneof![
        1 => (0u64..700_000).prop_map(Move::Wait),
        6 => Just(Move::Tick),
        6 => (verdict(), proptest::bool::weighted(0.8), proptest::bool::weighted(0.85))
            .prop_map(|(v, a, o)| Move::Answer(v, a, o)),
        3 => any_event().prop_map(Move::Raw),
    ];
    proptest::collection::vec(one, 1..150)
}

// === the model: what must hold ===

/// Evidence seen for the current revision, to check promotions against.
#[derive(Default)]
struct Evidence {
    started_at: Option<Timestamp>,
    /// Canary weights (or iteration numbers) at which an analysis passed.
    passed_weights: Vec<u8>,
    passes: u32,
}

struct World {
    rollout: Rollout,
    now: Timestamp,
    evidence: Evidence,
    /// When the analysis last held for evidence (accepted by the machine).
    evidence_hold_at: Option<Timestamp>,
}

impl World {
    fn new(plan: Plan) -> Self {
        let now = Timestamp::from_millis(1_764_150_000_000);
        Self {
            rollout: Rollout::new(plan, now).unwrap(),
            now,
            evidence: Evidence::default(),
            evidence_hold_at: None,
        }
    }

    fn event_for(&mut self, m: &Move) -> Option<Event> {
        let state = self.rollout.state();
        match m {
            Move::Wait(ms) => {
                self.now = Timestamp::from_millis(self.now.as_millis() + ms);
                None
            }
            Move::Tick => {
                let due = state.next_tick_at?;
                self.now = self.now.max(due);
                Some(Event::Tick)
            }
            Move::Answer(verdict, approved, ok) => Some(match state.pending? {
                Pending::Analysis => Event::Analysis(verdict.clone()),
                Pending::Gate(kind) => Event::Gate {
                    kind,
                    approved: *approved,
                },
                Pending::Hook(kind) => Event::Hook { kind, ok: *ok },
            }),
            Move::Raw(event) => Some(event.clone()),
        }
    }

    /// Applies `event` to the rollout and to a copy restored from JSON, checks they
    /// agree, and checks every invariant.
    fn apply(&mut self, event: Event) -> Result<Vec<Action>, TestCaseError> {
        let before = self.rollout.state().clone();
        let json = serde_json::to_string(&self.rollout).unwrap();
        let mut restored: Rollout = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&restored, &self.rollout, "serde round trip");

        let result = self.rollout.handle(self.now, event.clone());
        let again = restored.handle(self.now, event.clone());
        prop_assert_eq!(&result, &again, "restored state behaves the same");
        prop_assert_eq!(restored.state(), self.rollout.state());

        let actions = match result {
            Ok(actions) => actions,
            Err(_) => {
                prop_assert_eq!(
                    self.rollout.state(),
                    &before,
                    "refused events change nothing"
                );
                return Ok(Vec::new());
            }
        };
        self.check(&before, &event, &actions)?;
        Ok(actions)
    }

    fn check(
        &mut self,
        before: &serin_rollout::RolloutState,
        event: &Event,
        actions: &[Action],
    ) -> Result<(), TestCaseError> {
        let plan = self.rollout.plan().clone();
        let s = self.rollout.state().clone();

        // Weights are percentages; before promotion a canary never exceeds its last step.
        for a in actions {
            if let Action::SetRoute(r) = a {
                prop_assert!(r.canary_weight <= 100);
                prop_assert!(r.mirror.is_none_or(|m| (1..=100).contains(&m)));
            }
        }
        prop_assert!(s.canary_weight <= 100);
        if let Traffic::Canary { steps } = &plan.strategy
            && s.phase.is_before_promotion()
        {
            let max = *steps.last().unwrap();
            prop_assert!(
                s.canary_weight <= max,
                "weight {} above max step {}",
                s.canary_weight,
                max
            );
            prop_assert!(s.canary_weight == 0 || steps.contains(&s.canary_weight));
        }
        // The state's route is the last route asked for.
        if let Some(route) = actions.iter().rev().find_map(|a| match a {
            Action::SetRoute(r) => Some(*r),
            _ => None,
        }) {
            prop_assert_eq!(route, s.route());
        }

        // A rollback always ends at weight 0, phase Failed, nothing scheduled.
        if s.phase == Phase::Failed {
            prop_assert_eq!(s.route(), Route::STABLE);
            if before.phase != Phase::Failed {
                prop_assert!(actions.contains(&Action::SetRoute(Route::STABLE)));
                prop_assert!(actions.contains(&Action::Finalise));
            }
        }
        if s.phase.is_terminal() {
            prop_assert_eq!(s.next_tick_at, None);
            prop_assert_eq!(s.pending, None);
            prop_assert_eq!(s.canary_weight, 0);
            prop_assert!(!s.paused);
        }
        if s.phase == Phase::Succeeded && before.phase != Phase::Succeeded {
            prop_assert!(actions.contains(&Action::Finalise));
        }
        // A rollout in progress always has a tick scheduled.
        if s.phase.is_active() {
            prop_assert!(s.next_tick_at.is_some(), "{:?} without a tick", s.phase);
        }
        if !s.phase.is_active() && !s.phase.is_terminal() {
            prop_assert_eq!(s.next_tick_at, None);
        }

        // The progress deadline never fires within a deadline of an evidence hold:
        // waiting for evidence is not "no progress".
        let deadline_rollback = actions.iter().any(
            |a| matches!(a, Action::Emit(r) if r.message.contains("progress deadline exceeded")),
        );
        if deadline_rollback && let Some(held) = self.evidence_hold_at {
            let since = s.last_event_at.saturating_since(held);
            prop_assert!(
                since > plan.effective_deadline(),
                "deadline rollback {since:?} after an evidence hold"
            );
        }
        if let Event::Analysis(AnalysisResult::Hold {
            kind: HoldKind::Evidence,
            ..
        }) = event
        {
            self.evidence_hold_at = Some(s.last_event_at);
        }

        // Evidence for the revision that was in progress when the event came: a pass
        // counts for the weight it was measured at.
        if before.started_at != self.evidence.started_at {
            self.evidence = Evidence {
                started_at: before.started_at,
                ..Evidence::default()
            };
        }
        if let Event::Analysis(AnalysisResult::Pass) = event {
            self.evidence.passed_weights.push(before.canary_weight);
            self.evidence.passes += 1;
        }

        // Promotion only after every step's analysis passed, unless skipped or forced.
        let promoted = actions.contains(&Action::Promote);
        let forced = matches!(event, Event::PromoteNow) || plan.skip_analysis;
        if promoted && !forced {
            match &plan.strategy {
                Traffic::Canary { steps } => {
                    for w in steps {
                        prop_assert!(
                            self.evidence.passed_weights.contains(w),
                            "promoted without a pass at weight {} (passes at {:?})",
                            w,
                            self.evidence.passed_weights
                        );
                    }
                }
                Traffic::AbTesting { iterations } => {
                    prop_assert!(self.evidence.passes >= *iterations)
                }
                Traffic::BlueGreen { iterations } => {
                    prop_assert!(self.evidence.passes > *iterations)
                }
            }
        }

        if s.started_at != self.evidence.started_at {
            self.evidence = Evidence {
                started_at: s.started_at,
                ..Evidence::default()
            };
        }
        Ok(())
    }

    /// The friendliest outside world: approve, pass, resume, tick. Returns the phase
    /// reached, or `None` when stuck.
    fn drive_to_end(&mut self) -> Result<Option<Phase>, TestCaseError> {
        if !self.rollout.state().phase.is_active() {
            self.apply(Event::Start {
                revision: "final".into(),
            })?;
        }
        for _ in 0..500 {
            let s = self.rollout.state().clone();
            if s.phase.is_terminal() {
                return Ok(Some(s.phase));
            }
            let event = if s.paused {
                Event::Resume
            } else if let Some(e) = self.event_for(&Move::Answer(AnalysisResult::Pass, true, true))
            {
                e
            } else {
                self.event_for(&Move::Tick).unwrap()
            };
            self.apply(event)?;
        }
        Ok(None)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_runs_keep_every_invariant_and_never_get_stuck(plan in plan(), moves in moves()) {
        prop_assume!(plan.validate().is_ok());
        let mut world = World::new(plan);
        world.apply(Event::Start { revision: "a".into() })?;
        for m in &moves {
            if let Some(event) = world.event_for(m) {
                world.apply(event)?;
            }
        }
        // From wherever the run stopped, a sequence of answers and ticks ends it.
        let end = world.drive_to_end()?;
        prop_assert!(end.is_some(), "stuck in {:?}", world.rollout.state());
    }

    #[test]
    fn friendly_world_always_promotes(plan in plan()) {
        prop_assume!(plan.validate().is_ok());
        let mut world = World::new(plan);
        let end = world.drive_to_end()?;
        prop_assert_eq!(end, Some(Phase::Succeeded), "{:?}", world.rollout.state());
    }

    #[test]
    fn abort_before_promotion_always_fails_at_weight_zero(plan in plan(), moves in moves()) {
        prop_assume!(plan.validate().is_ok());
        let mut world = World::new(plan);
        world.apply(Event::Start { revision: "a".into() })?;
        for m in &moves {
            if let Some(event) = world.event_for(m) {
                world.apply(event)?;
            }
        }
        let before = world.rollout.state().phase;
        let actions = world.apply(Event::Abort)?;
        if before.is_before_promotion() {
            prop_assert_eq!(world.rollout.state().phase, Phase::Failed);
            prop_assert_eq!(world.rollout.state().canary_weight, 0);
            prop_assert!(actions.contains(&Action::SetRoute(Route::STABLE)));
        } else {
            prop_assert!(actions.is_empty());
            prop_assert_eq!(world.rollout.state().phase, before);
        }
    }
}
