//! Flagger's behaviours, one test (or table) each.
#![allow(clippy::unwrap_used)]

mod support;

use serin_rollout::{
    Action, AnalysisResult, ConditionStatus, Error, Event, GateKind, HookKind, Pending, Phase,
    Plan, Route, Strategy,
};
use std::time::Duration;
use support::*;

// === canary progression ===

#[test]
fn whole_canary_run_then_promotion() {
    let mut h = Harness::new(canary(&[10, 20, 30, 40, 50]));
    let start = h.send(Event::Start {
        revision: "v2".into(),
    });
    assert_eq!(h.phase(), Phase::Progressing);
    assert!(has_message(&start, "New revision v2 detected"));
    // The first tick is due at once: pre-rollout (none here) and the first step.
    assert!(start.contains(&Action::ScheduleTick { at: h.now }));

    let all = h.run(&mut World::default(), 20);
    assert_eq!(h.phase(), Phase::Succeeded);
    assert_eq!(weights(&all), vec![10, 20, 30, 40, 50, 0]);
    assert_eq!(count(&all, &Action::Promote), 1);
    assert_eq!(count(&all, &Action::Finalise), 1);
    assert_eq!(
        count(&all, &Action::RunAnalysis),
        5,
        "one analysis per step"
    );
    for (from, to) in [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)] {
        assert!(
            has_message(&all, &format!("Advance canary weight {from} -> {to}")),
            "{from}->{to}"
        );
    }
    assert!(has_message(
        &all,
        "Routing all traffic to primary (canary weight 50 -> 0)"
    ));
    assert!(has_message(&all, "Promotion completed!"));
    // Promote comes after the last analysis, then Promoting -> Finalising -> Succeeded.
    let promote = all.iter().position(|a| *a == Action::Promote).unwrap();
    let last_analysis = all.iter().rposition(|a| *a == Action::RunAnalysis).unwrap();
    assert!(promote > last_analysis);
    let s = h.state();
    assert_eq!(
        (s.canary_weight, s.failed_checks, s.next_tick_at),
        (0, 0, None)
    );
    assert_eq!(s.condition.status, ConditionStatus::True);
    assert_eq!(s.condition.reason, Phase::Succeeded);
}

#[test]
fn phases_follow_flaggers_order() {
    let mut h = Harness::started(canary(&[50]));
    let mut phases = vec![h.phase()];
    let mut world = World::default();
    while h.state().next_tick_at.is_some() {
        h.interval(&mut world);
        if phases.last() != Some(&h.phase()) {
            phases.push(h.phase());
        }
    }
    assert_eq!(
        phases,
        [
            Phase::Progressing,
            Phase::Promoting,
            Phase::Finalising,
            Phase::Succeeded
        ]
    );
}

#[test]
fn step_weights_table() {
    let cases: &[(&[u8], &[u8])] = &[
        (&[10, 25, 50, 75, 100], &[10, 25, 50, 75, 100, 0]),
        (&[5], &[5, 0]),
        (&[100], &[100, 0]),
        (&[1, 2, 3], &[1, 2, 3, 0]),
    ];
    for (steps, want) in cases {
        let mut h = Harness::started(canary(steps));
        let all = h.run(&mut World::default(), 30);
        assert_eq!(h.phase(), Phase::Succeeded, "{steps:?}");
        assert_eq!(weights(&all), *want, "{steps:?}");
        assert_eq!(count(&all, &Action::RunAnalysis), steps.len(), "{steps:?}");
    }
}

#[test]
fn step_weight_promotion_moves_traffic_back_gradually() {
    let cases: &[(u8, &[u8])] = &[(20, &[30, 10, 0]), (25, &[25, 0]), (50, &[0]), (60, &[0])];
    for (step, want) in cases {
        let mut plan = canary(&[10, 50]);
        plan.step_weight_promotion = Some(*step);
        let mut h = Harness::started(plan);
        let mut world = World::default();
        h.run(&mut world, 3); // 0->10, 10->50, promote
        assert_eq!(h.phase(), Phase::Promoting, "step {step}");
        let rest = h.run(&mut world, 20);
        assert_eq!(weights(&rest), *want, "step {step}");
        assert_eq!(h.phase(), Phase::Succeeded);
    }
    let mut plan = canary(&[50]);
    plan.step_weight_promotion = Some(20);
    let mut h = Harness::started(plan);
    let all = h.run(&mut World::default(), 20);
    assert!(has_message(
        &all,
        "Advance primary weight 50 -> 70 (canary weight 50 -> 30)"
    ));
}

#[test]
fn mirroring_takes_one_interval_before_the_first_step() {
    let mut plan = canary(&[10, 20]);
    plan.mirror = Some(100);
    let mut h = Harness::started(plan);
    let all = h.run(&mut World::default(), 20);
    assert_eq!(h.phase(), Phase::Succeeded);
    let r = routes(&all);
    assert_eq!(
        r[0],
        Route {
            canary_weight: 0,
            mirror: Some(100),
            match_active: false
        }
    );
    assert_eq!(
        r[1],
        Route {
            canary_weight: 10,
            mirror: None,
            match_active: false
        }
    );
    assert_eq!(weights(&all), vec![0, 10, 20, 0]);
    // Analysis ran while mirroring, then at each step.
    assert_eq!(count(&all, &Action::RunAnalysis), 3);
    assert!(has_message(
        &all,
        "Stop traffic mirroring; Advance canary weight 0 -> 10"
    ));
}

// === failed checks ===

#[test]
fn failed_checks_are_cumulative_and_roll_back_at_threshold() {
    // (verdicts, threshold, rolled back after this many analyses, weight before rollback)
    let cases: Vec<(Vec<AnalysisResult>, u32, Option<usize>)> = vec![
        (vec![fail("x"); 5], 5, Some(5)),
        (
            vec![
                fail("x"),
                AnalysisResult::Pass,
                fail("x"),
                AnalysisResult::Pass,
                fail("x"),
            ],
            3,
            Some(5),
        ),
        (
            vec![
                fail("x"),
                AnalysisResult::Pass,
                fail("x"),
                AnalysisResult::Pass,
            ],
            3,
            None,
        ),
        (vec![fail("x")], 1, Some(1)),
    ];
    for (verdicts, threshold, rollback_after) in cases {
        let mut plan = canary(&[10, 20, 30, 40, 50]);
        plan.threshold = threshold;
        let mut h = Harness::started(plan);
        let n = verdicts.len();
        let mut world = World::verdicts(verdicts.clone());
        let all = h.run(&mut world, 40);
        let analyses = count(&all, &Action::RunAnalysis);
        match rollback_after {
            Some(k) => {
                assert_eq!(h.phase(), Phase::Failed, "{verdicts:?}");
                assert_eq!(analyses, k, "{verdicts:?}");
                assert_eq!(h.weight(), 0);
                assert_eq!(*weights(&all).last().unwrap(), 0);
                let want = format!("failed checks {threshold} reached threshold {threshold}");
                assert!(has_message(&all, &want), "{:?}", warnings(&all));
                assert_eq!(h.state().condition.status, ConditionStatus::False);
            }
            None => {
                assert_eq!(h.phase(), Phase::Succeeded, "{verdicts:?}");
                assert!(analyses >= n);
                assert_eq!(h.state().failed_checks, 2);
            }
        }
    }
}

#[test]
fn a_failed_check_holds_the_weight_and_says_why() {
    let mut h = Harness::started(canary(&[10, 20]));
    let mut world = World::verdicts([fail("request-success-rate 97.1% < 99%")]);
    h.interval(&mut world); // 0 -> 10
    let second = h.interval(&mut world); // fail at 10
    assert_eq!(h.weight(), 10);
    assert_eq!(h.state().failed_checks, 1);
    assert_eq!(
        warnings(&second),
        [
            "Halt advancement at canary weight 10: analysis failed: request-success-rate 97.1% < 99% (failed checks 1/5)"
        ]
    );
}

#[test]
fn rollback_verdict_rolls_back_at_once() {
    let mut h = Harness::started(canary(&[10, 20, 30]));
    let mut world = World::verdicts([AnalysisResult::Rollback {
        reasons: vec!["error rate 12% vs 0.1% (p < 0.001)".into()],
    }]);
    let _ = h.interval(&mut world);
    let all = h.interval(&mut world);
    assert_eq!(h.phase(), Phase::Failed);
    assert_eq!(h.state().failed_checks, 0, "no threshold needed");
    assert_eq!(routes(&all).last(), Some(&Route::STABLE));
    assert!(has_message(
        &all,
        "decisive evidence of harm at canary weight 10: error rate 12%"
    ));
    assert!(all.contains(&Action::Finalise));
    assert_eq!(h.state().next_tick_at, None);
}

#[test]
fn harm_between_ticks_rolls_back_whatever_is_pending() {
    let mut h = Harness::started(canary(&[10, 20, 30]));
    let mut world = World::verdicts([AnalysisResult::Pass]);
    let _ = h.interval(&mut world);
    assert_eq!(h.weight(), 10);
    h.advance_clock(Duration::from_secs(7));
    let out = h.send(Event::Harm {
        reasons: vec!["canary error rate 9.0% vs stable 0.2%, e-value 312 >= 100".into()],
    });
    assert_eq!(h.phase(), Phase::Failed);
    assert_eq!(h.weight(), 0);
    assert_eq!(routes(&out).last(), Some(&Route::STABLE));
    assert!(has_message(
        &out,
        "between intervals: canary error rate 9.0%"
    ));
    // Once rolled back there is nothing left to harm.
    assert!(h.try_send(Event::Harm { reasons: vec![] }).is_err());
}

#[test]
fn hold_never_counts_as_a_failure() {
    let mut plan = canary(&[10, 20]);
    plan.progress_deadline = Duration::from_secs(3600);
    let mut h = Harness::started(plan);
    let mut world = World::verdicts(vec![hold("12 canary requests < 50"); 40]);
    h.interval(&mut world);
    for _ in 0..40 {
        let out = h.interval(&mut world);
        assert!(has_message(&out, "Hold at canary weight 10"));
        if h.phase() == Phase::Failed {
            break;
        }
    }
    // 40 holds at 1m: the 60m deadline fires eventually, but no check ever failed.
    assert_eq!(h.state().failed_checks, 0);
    let mut h2 = Harness::started(canary(&[10, 20]));
    let mut world = World::verdicts([
        hold("few requests"),
        hold("few requests"),
        AnalysisResult::Pass,
    ]);
    let all = h2.run(&mut world, 20);
    assert_eq!(h2.phase(), Phase::Succeeded);
    assert_eq!(h2.state().failed_checks, 0);
    assert_eq!(weights(&all), vec![10, 20, 0]);
}

// === progress deadline ===

#[test]
fn progress_deadline_bounds_holds() {
    let mut h = Harness::started(canary(&[10, 20])); // deadline 600s, interval 60s
    let mut world = World {
        default_verdict: hold("3 canary requests < 50"),
        ..World::default()
    };
    let all = h.run(&mut world, 30);
    assert_eq!(h.phase(), Phase::Failed);
    assert_eq!(h.weight(), 0);
    let failed = warnings(&all);
    let last = failed.last().unwrap();
    assert!(
        last.contains("progress deadline exceeded: no advancement for 11m (deadline 10m) at canary weight 10; last interval: held: 3 canary requests < 50"),
        "{last}"
    );
}

#[test]
fn progress_deadline_counts_unanswered_requests() {
    let mut h = Harness::started(canary(&[10, 20]));
    let mut world = World::default();
    h.interval(&mut world); // 0 -> 10
    // The analysis never answers: every interval asks again, then the deadline fires.
    let mut asked = 0;
    for _ in 0..20 {
        let out = h.tick();
        asked += count(&out, &Action::RunAnalysis);
        if h.phase() == Phase::Failed {
            break;
        }
    }
    assert_eq!(h.phase(), Phase::Failed);
    assert!(asked >= 10);
    assert!(has_message(
        &h.actions,
        "No answer from the analysis within an interval: asking again"
    ));
}

#[test]
fn progress_deadline_is_held_while_paused_and_restarts_on_resume() {
    let mut h = Harness::started(canary(&[10, 20]));
    let mut world = World::default();
    h.interval(&mut world);
    h.send(Event::Pause);
    for _ in 0..30 {
        h.interval(&mut world); // passes, but paused
    }
    assert_eq!(h.phase(), Phase::Progressing);
    assert_eq!(h.weight(), 10);
    h.send(Event::Resume);
    world.default_verdict = hold("low traffic");
    for _ in 0..10 {
        h.interval(&mut world);
    }
    assert_eq!(
        h.phase(),
        Phase::Progressing,
        "a full deadline after resume"
    );
    h.run(&mut world, 5);
    assert_eq!(h.phase(), Phase::Failed);
}

#[test]
fn progress_deadline_never_shorter_than_three_intervals() {
    let mut plan = canary(&[10, 20, 30]);
    plan.interval = Duration::from_secs(900); // longer than the 600s deadline
    let mut h = Harness::started(plan);
    let mut world = World::verdicts([AnalysisResult::Pass, hold("few"), AnalysisResult::Pass]);
    h.run(&mut world, 20);
    assert_eq!(h.phase(), Phase::Succeeded);
}

#[test]
fn evidence_holds_past_the_deadline_do_not_fail_the_rollout() {
    // deadline 600s, interval 60s: 30 evidence holds at the last step are 30m.
    let mut h = Harness::started(canary(&[10, 20]));
    let mut world = World::default();
    h.interval(&mut world); // 0 -> 10
    h.interval(&mut world); // 10 -> 20
    assert_eq!(h.weight(), 20);
    world.default_verdict = evidence_hold("evidence 3.1 of 9.2");
    let mut all = Vec::new();
    for _ in 0..30 {
        all.extend(h.interval(&mut world));
    }
    assert_eq!(h.phase(), Phase::Progressing, "{:?}", warnings(&all));
    assert_eq!((h.weight(), h.state().failed_checks), (20, 0));
    assert!(!has_message(&all, "progress deadline exceeded"));
    assert!(has_message(
        &all,
        "Hold at canary weight 20: holding for evidence (not counted against the progress deadline)"
    ));
    assert_eq!(
        h.state().stall_reason.as_deref(),
        Some("held for evidence: evidence 3.1 of 9.2")
    );
    // Once the evidence is in, the canary is promoted.
    world.default_verdict = AnalysisResult::Pass;
    h.run(&mut world, 10);
    assert_eq!(h.phase(), Phase::Succeeded);
}

#[test]
fn system_holds_past_the_deadline_fail_the_rollout() {
    // The same place as above, but the holds are the system's (few requests).
    let mut h = Harness::started(canary(&[10, 20]));
    let mut world = World::default();
    h.interval(&mut world);
    h.interval(&mut world);
    assert_eq!(h.weight(), 20);
    world.default_verdict = hold("12 of the 200 requests this step needs");
    let all = h.run(&mut world, 30);
    assert_eq!(h.phase(), Phase::Failed);
    let last = warnings(&all).pop().unwrap();
    assert!(
        last.contains("progress deadline exceeded: no advancement for 11m (deadline 10m) at canary weight 20; last interval: held: 12 of the 200"),
        "{last}"
    );
    assert!(!has_message(&all, "holding for evidence"));
}

#[test]
fn an_evidence_hold_restarts_the_deadline_and_system_holds_count_from_it() {
    let mut h = Harness::started(canary(&[10, 20]));
    let mut world = World::default();
    h.interval(&mut world); // 0 -> 10 at T0
    // Nine minutes of system holds, then an evidence hold at T0 + 10m: the
    // deadline (10m, exceeded at 11m) restarts there.
    world.verdicts.extend(vec![hold("few requests"); 9]);
    world.verdicts.push_back(evidence_hold("evidence 1 of 9"));
    for _ in 0..10 {
        h.interval(&mut world);
    }
    assert_eq!(h.phase(), Phase::Progressing);
    let held_at = h.now;
    assert_eq!(h.state().progressed_at, held_at);
    // System holds again: they count from the evidence hold, so ten more
    // intervals are within the deadline and the eleventh exceeds it.
    world.default_verdict = hold("few requests");
    for minute in 1..=10 {
        h.interval(&mut world);
        assert_eq!(h.phase(), Phase::Progressing, "minute {minute}");
    }
    let out = h.interval(&mut world);
    assert_eq!(h.phase(), Phase::Failed);
    assert_eq!(h.now.saturating_since(held_at), Duration::from_secs(660));
    assert!(
        warnings(&out).iter().any(|w| w.contains(
            "progress deadline exceeded: no advancement for 11m (deadline 10m) at canary weight 10; last interval: held: few requests"
        )),
        "{:?}",
        warnings(&out)
    );
    assert_eq!(h.state().failed_checks, 0);
}

#[test]
fn holds_recorded_before_their_kind_existed_read_as_system_holds() {
    let old = r#"{"Analysis":{"Hold":{"reasons":["few requests"]}}}"#;
    let event: Event = serde_json::from_str(old).unwrap();
    assert_eq!(event, Event::Analysis(hold("few requests")));
    let new = serde_json::to_string(&Event::Analysis(evidence_hold("x"))).unwrap();
    assert!(new.contains(r#""kind":"evidence""#), "{new}");
    assert_eq!(
        serde_json::from_str::<Event>(&new).unwrap(),
        Event::Analysis(evidence_hold("x"))
    );
}

// === A/B testing and blue/green ===

#[test]
fn ab_testing_matches_users_for_n_iterations() {
    let plan = Plan::new(Strategy::AbTesting { iterations: 3 }, MINUTE, 2);
    let mut h = Harness::started(plan);
    let all = h.run(&mut World::default(), 20);
    assert_eq!(h.phase(), Phase::Succeeded);
    let r = routes(&all);
    assert_eq!(
        r,
        vec![
            Route {
                canary_weight: 0,
                mirror: None,
                match_active: true
            },
            Route::STABLE
        ]
    );
    assert_eq!(count(&all, &Action::RunAnalysis), 3);
    for i in 1..=3 {
        assert!(has_message(
            &all,
            &format!("Advance canary iteration {i}/3")
        ));
    }
    assert_eq!(h.state().iterations, 3);
    assert!(has_message(&all, "analysis passed 3 iterations"));
}

#[test]
fn ab_testing_ignores_mirror_and_step_weight_promotion_cannot_stall() {
    let mut plan = Plan::new(Strategy::AbTesting { iterations: 2 }, MINUTE, 2);
    plan.mirror = Some(100);
    plan.step_weight_promotion = Some(10);
    let mut h = Harness::started(plan);
    let all = h.run(&mut World::default(), 20);
    assert_eq!(h.phase(), Phase::Succeeded);
    assert!(
        routes(&all)
            .iter()
            .all(|r| r.mirror.is_none() && r.canary_weight == 0)
    );
}

#[test]
fn blue_green_without_mirror_keeps_live_traffic_off_the_canary() {
    let plan = Plan::new(Strategy::BlueGreen { iterations: 3 }, MINUTE, 2);
    let mut h = Harness::started(plan);
    let mut world = World::default();
    let mut seen = Vec::new();
    while h.state().next_tick_at.is_some() {
        seen.extend(h.interval(&mut world));
        if h.state().iterations <= 3 {
            assert_eq!(h.weight(), 0);
        }
    }
    assert_eq!(h.phase(), Phase::Succeeded);
    // The switch to the canary, then back to the promoted primary.
    assert_eq!(weights(&seen), vec![100, 0]);
    assert_eq!(
        count(&seen, &Action::RunAnalysis),
        4,
        "3 iterations + 1 at full traffic"
    );
    assert!(has_message(
        &seen,
        "Route all traffic to canary (canary weight 0 -> 100)"
    ));
}

#[test]
fn blue_green_mirrors_during_the_whole_test() {
    let mut plan = Plan::new(Strategy::BlueGreen { iterations: 2 }, MINUTE, 2);
    plan.mirror = Some(50);
    let mut h = Harness::started(plan);
    let all = h.run(&mut World::default(), 20);
    assert_eq!(
        routes(&all),
        vec![
            Route {
                canary_weight: 0,
                mirror: Some(50),
                match_active: false
            },
            Route {
                canary_weight: 100,
                mirror: None,
                match_active: false
            },
            Route::STABLE,
        ]
    );
    assert!(has_message(
        &all,
        "Stop traffic mirroring and route all traffic to canary"
    ));
}

#[test]
fn blue_green_failure_at_full_traffic_rolls_back() {
    let mut plan = Plan::new(Strategy::BlueGreen { iterations: 1 }, MINUTE, 1);
    plan.hooks.post_rollout = true;
    let mut h = Harness::started(plan);
    let mut world = World::verdicts([AnalysisResult::Pass, fail("p99 812ms > 500ms")]);
    let all = h.run(&mut world, 20);
    assert_eq!(h.phase(), Phase::Failed);
    assert_eq!(weights(&all), vec![100, 0]);
    assert_eq!(count(&all, &Action::Promote), 0);
    assert!(all.ends_with(&[Action::CallHook(HookKind::PostRollout)]));
}

// === skipAnalysis ===

#[test]
fn skip_analysis_promotes_without_analysis() {
    let mut plan = canary(&[10, 20]);
    plan.skip_analysis = true;
    plan.hooks.post_rollout = true;
    let mut h = Harness::started(plan);
    let out = h.tick();
    assert_eq!(h.phase(), Phase::Succeeded);
    assert_eq!(count(&out, &Action::RunAnalysis), 0);
    assert_eq!(count(&out, &Action::Promote), 1);
    assert_eq!(count(&out, &Action::Finalise), 1);
    assert_eq!(weights(&out), vec![0]);
    assert!(has_message(&out, "Canary analysis was skipped"));
    assert!(out.contains(&Action::CallHook(HookKind::PostRollout)));
    assert_eq!(h.state().next_tick_at, None);
}

// === gates ===

#[test]
fn confirm_rollout_waits_then_progresses() {
    let mut plan = canary(&[10, 20]);
    plan.hooks.confirm_rollout = true;
    let mut h = Harness::new(plan);
    let start = h.send(Event::Start {
        revision: "v2".into(),
    });
    assert_eq!(h.phase(), Phase::Waiting);
    assert!(start.contains(&Action::CallGate(GateKind::ConfirmRollout)));
    let declined = h.send(Event::Gate {
        kind: GateKind::ConfirmRollout,
        approved: false,
    });
    assert_eq!(
        warnings(&declined),
        ["Halt advancement: revision v2 waiting for approval (confirm-rollout)"]
    );
    let mut world = World::default().gate(GateKind::ConfirmRollout, false);
    for _ in 0..30 {
        let out = h.interval(&mut world);
        assert!(
            out.contains(&Action::CallGate(GateKind::ConfirmRollout)),
            "asked every interval"
        );
        assert!(warnings(&out).is_empty(), "recorded once");
    }
    assert_eq!(
        h.phase(),
        Phase::Waiting,
        "a person's gate never hits the deadline"
    );
    assert_eq!(h.weight(), 0);
    world.gates.insert(GateKind::ConfirmRollout, true);
    let out = h.interval(&mut world);
    assert_eq!(h.phase(), Phase::Progressing);
    assert!(has_message(&out, "Confirm-rollout approved"));
    h.run(&mut world, 20);
    assert_eq!(h.phase(), Phase::Succeeded);
}

#[test]
fn confirm_traffic_increase_is_asked_before_each_increase() {
    let mut plan = canary(&[10, 20, 30]);
    plan.hooks.confirm_traffic_increase = true;
    let mut h = Harness::started(plan);
    let mut world = World::default();
    let all = h.run(&mut world, 20);
    assert_eq!(h.phase(), Phase::Succeeded);
    assert_eq!(
        count(&all, &Action::CallGate(GateKind::ConfirmTrafficIncrease)),
        3
    );

    let mut plan = canary(&[10, 20]);
    plan.hooks.confirm_traffic_increase = true;
    let mut h = Harness::started(plan);
    let mut world = World::default();
    h.interval(&mut world); // 0 -> 10
    world.gates.insert(GateKind::ConfirmTrafficIncrease, false);
    for _ in 0..20 {
        let out = h.interval(&mut world);
        assert!(
            warnings(&out).contains(
                &"Halt advancement at canary weight 10: confirm-traffic-increase not approved"
                    .to_string()
            )
        );
    }
    assert_eq!(
        (h.phase(), h.weight()),
        (Phase::Progressing, 10),
        "held, no deadline"
    );
    world.gates.insert(GateKind::ConfirmTrafficIncrease, true);
    h.interval(&mut world);
    assert_eq!(h.weight(), 20);
}

#[test]
fn confirm_traffic_increase_is_not_asked_to_start_mirroring() {
    let mut plan = canary(&[10]);
    plan.hooks.confirm_traffic_increase = true;
    plan.mirror = Some(100);
    let mut h = Harness::started(plan);
    let first = h.interval(&mut World::default().gate(GateKind::ConfirmTrafficIncrease, false));
    assert_eq!(
        count(&first, &Action::CallGate(GateKind::ConfirmTrafficIncrease)),
        0
    );
    assert_eq!(h.state().mirror, Some(100));
}

#[test]
fn confirm_promotion_waits_while_analysis_continues() {
    let mut plan = canary(&[10, 20]);
    plan.hooks.confirm_promotion = true;
    plan.threshold = 2;
    let mut h = Harness::started(plan);
    let mut world = World::default().gate(GateKind::ConfirmPromotion, false);
    h.run(&mut world, 3);
    assert_eq!(h.phase(), Phase::WaitingPromotion);
    assert_eq!(h.weight(), 20);
    assert!(has_message(
        &h.actions,
        "waiting for promotion approval (confirm-promotion)"
    ));
    // Analysis keeps running; passes do not promote; the deadline is held.
    for _ in 0..20 {
        let out = h.interval(&mut world);
        assert_eq!(count(&out, &Action::RunAnalysis), 1);
    }
    assert_eq!(h.phase(), Phase::WaitingPromotion);
    // Failures still count and roll back at the threshold.
    world.verdicts.extend([fail("x"), fail("x")]);
    h.run(&mut world, 2);
    assert_eq!(h.phase(), Phase::Failed);
    assert_eq!(h.weight(), 0);

    let mut plan = canary(&[10]);
    plan.hooks.confirm_promotion = true;
    let mut h = Harness::started(plan);
    let mut world = World::default().gate(GateKind::ConfirmPromotion, false);
    h.run(&mut world, 4);
    assert_eq!(h.phase(), Phase::WaitingPromotion);
    world.gates.insert(GateKind::ConfirmPromotion, true);
    let out = h.interval(&mut world);
    assert_eq!(h.phase(), Phase::Promoting);
    assert!(out.contains(&Action::Promote));
}

#[test]
fn confirm_promotion_gates_the_blue_green_switch() {
    let mut plan = Plan::new(Strategy::BlueGreen { iterations: 2 }, MINUTE, 2);
    plan.hooks.confirm_promotion = true;
    let mut h = Harness::started(plan);
    let mut world = World::default().gate(GateKind::ConfirmPromotion, false);
    h.run(&mut world, 5);
    assert_eq!((h.phase(), h.weight()), (Phase::WaitingPromotion, 0));
    world.gates.insert(GateKind::ConfirmPromotion, true);
    h.interval(&mut world);
    assert_eq!((h.phase(), h.weight()), (Phase::Progressing, 100));
    let rest = h.run(&mut world, 10);
    assert_eq!(h.phase(), Phase::Succeeded);
    assert_eq!(
        count(&rest, &Action::CallGate(GateKind::ConfirmPromotion)),
        0,
        "asked once"
    );
}

// === hooks ===

#[test]
fn pre_rollout_hook_runs_before_traffic_and_failures_count() {
    let mut plan = canary(&[10]);
    plan.hooks.pre_rollout = true;
    plan.threshold = 2;
    let mut h = Harness::started(plan.clone());
    let first = h.tick();
    assert_eq!(
        first
            .iter()
            .filter(|a| matches!(a, Action::SetRoute(_)))
            .count(),
        0
    );
    assert!(first.contains(&Action::CallHook(HookKind::PreRollout)));
    let out = h.send(Event::Hook {
        kind: HookKind::PreRollout,
        ok: true,
    });
    assert_eq!(weights(&out), vec![10]);

    let mut h = Harness::started(plan);
    let mut world = World::default().hook(HookKind::PreRollout, false);
    let all = h.run(&mut world, 10);
    assert_eq!(h.phase(), Phase::Failed);
    assert_eq!(h.state().failed_checks, 2);
    assert!(has_message(
        &all,
        "pre-rollout hook failed (failed checks 1/2)"
    ));
    assert!(has_message(&all, "failed checks 2 reached threshold 2"));
    assert!(weights(&all).iter().all(|w| *w == 0));
}

#[test]
fn rollout_hooks_run_before_metrics_and_failures_count() {
    let mut plan = canary(&[10, 20]);
    plan.hooks.rollout = true;
    let mut h = Harness::started(plan);
    let mut world = World::default();
    h.interval(&mut world);
    let out = h.tick();
    assert!(out.contains(&Action::CallHook(HookKind::Rollout)));
    assert!(!out.contains(&Action::RunAnalysis));
    let out = h.send(Event::Hook {
        kind: HookKind::Rollout,
        ok: true,
    });
    assert_eq!(out, vec![Action::RunAnalysis]);
    h.send(Event::Analysis(AnalysisResult::Pass));
    assert_eq!(h.weight(), 20);
    let out = h.tick();
    assert!(out.contains(&Action::CallHook(HookKind::Rollout)));
    let out = h.send(Event::Hook {
        kind: HookKind::Rollout,
        ok: false,
    });
    assert!(has_message(&out, "rollout hook failed (failed checks 1/5)"));
    assert!(
        !out.contains(&Action::RunAnalysis),
        "metrics skipped after a failed hook"
    );
}

#[test]
fn post_rollout_hook_after_success_and_failure() {
    for (verdict, phase) in [
        (AnalysisResult::Pass, Phase::Succeeded),
        (AnalysisResult::Rollback { reasons: vec![] }, Phase::Failed),
    ] {
        let mut plan = canary(&[10]);
        plan.hooks.post_rollout = true;
        let mut h = Harness::started(plan);
        let mut world = World {
            default_verdict: verdict,
            ..World::default()
        };
        let all = h.run(&mut world, 10);
        assert_eq!(h.phase(), phase);
        assert_eq!(count(&all, &Action::CallHook(HookKind::PostRollout)), 1);
        let out = h.send(Event::Hook {
            kind: HookKind::PostRollout,
            ok: false,
        });
        assert_eq!(warnings(&out), ["Post-rollout hook failed"]);
    }
}

#[test]
fn rollback_hook_is_polled_and_honoured_before_promotion() {
    let mut plan = canary(&[10, 20, 30]);
    plan.hooks.rollback = true;
    plan.hooks.post_rollout = true;
    let mut h = Harness::started(plan.clone());
    let mut world = World::default();
    let first = h.interval(&mut world);
    assert!(first.contains(&Action::CallHook(HookKind::Rollback)));
    assert_eq!(
        h.try_send(Event::Hook {
            kind: HookKind::Rollback,
            ok: false
        })
        .unwrap(),
        vec![]
    );
    world.hooks.insert(HookKind::Rollback, true);
    let out = h.interval(&mut world);
    assert_eq!(h.phase(), Phase::Failed);
    assert!(has_message(
        &out,
        "rollback webhook signalled a rollback at canary weight 10"
    ));

    // In WaitingPromotion it is honoured too (Flagger polls it there).
    plan.hooks.confirm_promotion = true;
    let mut h = Harness::started(plan);
    let mut world = World::default().gate(GateKind::ConfirmPromotion, false);
    h.run(&mut world, 5);
    assert_eq!(h.phase(), Phase::WaitingPromotion);
    h.send(Event::Hook {
        kind: HookKind::Rollback,
        ok: true,
    });
    assert_eq!((h.phase(), h.weight()), (Phase::Failed, 0));
}

#[test]
fn event_hook_answers_are_ignored() {
    let mut h = Harness::started(canary(&[10]));
    let before = h.state().clone();
    assert_eq!(
        h.try_send(Event::Hook {
            kind: HookKind::Event,
            ok: false
        })
        .unwrap(),
        vec![]
    );
    assert_eq!(h.state().phase, before.phase);
}

// === people: pause, resume, promote, abort ===

/// Drives a rollout with every gate configured into `phase`.
fn in_phase(phase: Phase) -> Harness {
    let mut plan = canary(&[10, 20]);
    plan.hooks.confirm_rollout = true;
    plan.hooks.confirm_promotion = true;
    let mut h = Harness::new(plan);
    if phase == Phase::Initializing {
        return h;
    }
    if phase == Phase::Initialized {
        h.send(Event::Initialize);
        return h;
    }
    h.send(Event::Start {
        revision: "v2".into(),
    });
    if phase == Phase::Waiting {
        h.send(Event::Gate {
            kind: GateKind::ConfirmRollout,
            approved: false,
        });
        return h;
    }
    h.send(Event::Gate {
        kind: GateKind::ConfirmRollout,
        approved: true,
    });
    let mut world = World::default();
    if phase == Phase::Progressing {
        h.interval(&mut world);
        return h;
    }
    if phase == Phase::Failed {
        h.send(Event::Abort);
        return h;
    }
    world.gates.insert(GateKind::ConfirmPromotion, false);
    h.run(&mut world, 4);
    assert_eq!(h.phase(), Phase::WaitingPromotion);
    if phase == Phase::WaitingPromotion {
        return h;
    }
    h.send(Event::PromoteNow);
    for target in [Phase::Promoting, Phase::Finalising, Phase::Succeeded] {
        if phase == target {
            return h;
        }
        h.tick();
    }
    unreachable!("{phase}")
}

#[test]
fn manual_gates_in_every_phase() {
    use Phase::*;
    // (phase, pause, promote, abort): Ok(phase after) or the refusal.
    type Want = Result<Phase, fn(&Error) -> bool>;
    let not_in_progress: fn(&Error) -> bool = |e| matches!(e, Error::NotInProgress { .. });
    let underway: fn(&Error) -> bool = |e| matches!(e, Error::PromotionUnderway { .. });
    let table: Vec<(Phase, Want, Want, Want)> = vec![
        (
            Initializing,
            Err(not_in_progress),
            Err(not_in_progress),
            Err(not_in_progress),
        ),
        (
            Initialized,
            Err(not_in_progress),
            Err(not_in_progress),
            Err(not_in_progress),
        ),
        (Waiting, Ok(Waiting), Ok(Promoting), Ok(Failed)),
        (Progressing, Ok(Progressing), Ok(Promoting), Ok(Failed)),
        (
            WaitingPromotion,
            Ok(WaitingPromotion),
            Ok(Promoting),
            Ok(Failed),
        ),
        (Promoting, Err(underway), Err(underway), Err(underway)),
        (Finalising, Err(underway), Err(underway), Err(underway)),
        (
            Succeeded,
            Err(not_in_progress),
            Err(not_in_progress),
            Err(not_in_progress),
        ),
        (
            Failed,
            Err(not_in_progress),
            Err(not_in_progress),
            Err(not_in_progress),
        ),
    ];
    for (phase, pause, promote, abort) in table {
        for (event, want) in [
            (Event::Pause, pause),
            (Event::PromoteNow, promote),
            (Event::Abort, abort),
        ] {
            let mut h = in_phase(phase);
            assert_eq!(h.phase(), phase);
            let before = h.state().clone();
            let name = format!("{event:?} in {phase}");
            match (h.try_send(event.clone()), want) {
                (Ok(out), Ok(after)) => {
                    assert_eq!(h.phase(), after, "{name}");
                    match event {
                        Event::Abort => {
                            assert_eq!(h.weight(), 0, "{name}");
                            assert!(has_message(&out, "aborted by operator"), "{name}");
                            assert!(out.contains(&Action::SetRoute(Route::STABLE)), "{name}");
                        }
                        Event::PromoteNow => {
                            assert!(out.contains(&Action::Promote), "{name}");
                            assert!(has_message(&out, "promoted by operator"), "{name}");
                        }
                        _ => assert!(h.state().paused, "{name}"),
                    }
                }
                (Err(e), Err(check)) => {
                    assert!(check(&e), "{name}: {e}");
                    assert_eq!(*h.state(), before, "{name}: refused events change nothing");
                }
                (got, _) => panic!("{name}: unexpected {got:?}"),
            }
        }
        // Resume: only a paused rollout.
        let mut h = in_phase(phase);
        let e = h.try_send(Event::Resume).unwrap_err();
        if phase.is_before_promotion() {
            assert_eq!(e, Error::NotPaused);
            h.send(Event::Pause);
            assert_eq!(h.try_send(Event::Pause).unwrap_err(), Error::AlreadyPaused);
            h.send(Event::Resume);
            assert!(!h.state().paused);
        }
    }
}

#[test]
fn paused_rollouts_keep_analysing_and_can_still_fail() {
    let mut plan = canary(&[10, 20]);
    plan.threshold = 2;
    let mut h = Harness::started(plan);
    let mut world = World::default();
    h.interval(&mut world);
    h.send(Event::Pause);
    let out = h.interval(&mut world);
    assert_eq!(count(&out, &Action::RunAnalysis), 1);
    assert!(has_message(
        &out,
        "Advancement paused by operator: holding canary weight 10"
    ));
    assert_eq!(h.weight(), 10);
    world.verdicts.extend([fail("x"), fail("x")]);
    h.run(&mut world, 2);
    assert_eq!((h.phase(), h.weight()), (Phase::Failed, 0));
    assert!(!h.state().paused);
}

#[test]
fn promote_now_skips_remaining_steps() {
    let mut h = Harness::started(canary(&[10, 20, 30, 40, 50]));
    let mut world = World::default();
    h.interval(&mut world);
    h.interval(&mut world);
    let out = h.send(Event::PromoteNow);
    assert!(has_message(
        &out,
        "promoted by operator at canary weight 20, skipping remaining steps"
    ));
    let rest = h.run(&mut world, 10);
    assert_eq!(h.phase(), Phase::Succeeded);
    assert_eq!(weights(&rest), vec![0]);
    assert_eq!(count(&rest, &Action::RunAnalysis), 0);
}

#[test]
fn late_answers_after_promote_now_are_refused() {
    let mut h = Harness::started(canary(&[10, 20]));
    h.interval(&mut World::default());
    h.tick(); // asks for analysis
    h.send(Event::PromoteNow);
    let e = h
        .try_send(Event::Analysis(AnalysisResult::Pass))
        .unwrap_err();
    assert!(matches!(e, Error::Unexpected { awaiting: None, .. }), "{e}");
}

// === revisions ===

#[test]
fn new_revision_mid_rollout_restarts_analysis() {
    let mut h = Harness::started(canary(&[10, 20, 30]));
    let mut world = World::verdicts([AnalysisResult::Pass, fail("x"), AnalysisResult::Pass]);
    h.run(&mut world, 3);
    assert_eq!((h.weight(), h.state().failed_checks), (20, 1));
    let out = h.send(Event::Start {
        revision: "v3".into(),
    });
    assert_eq!(routes(&out), vec![Route::STABLE]);
    let s = h.state();
    assert_eq!(
        (
            s.phase,
            s.canary_weight,
            s.failed_checks,
            s.step_index,
            s.revision.as_deref()
        ),
        (Phase::Progressing, 0, 0, 0, Some("v3"))
    );
    assert!(has_message(
        &out,
        "New revision v3 detected! Restarting analysis (revision v2 was at canary weight 20 with 1 failed checks)"
    ));
    let all = h.run(&mut world, 20);
    assert_eq!(h.phase(), Phase::Succeeded);
    assert_eq!(weights(&all), vec![10, 20, 30, 0]);

    let mut h = Harness::started(canary(&[10]));
    assert_eq!(
        h.try_send(Event::Start {
            revision: "v2".into()
        })
        .unwrap_err(),
        Error::SameRevision {
            revision: "v2".into()
        }
    );
}

#[test]
fn new_revision_during_promotion_is_queued() {
    let mut h = Harness::started(canary(&[10]));
    let mut world = World::default();
    h.run(&mut world, 2);
    assert_eq!(h.phase(), Phase::Promoting);
    let out = h.send(Event::Start {
        revision: "v3".into(),
    });
    assert!(has_message(&out, "it starts once promotion completes"));
    assert!(
        h.try_send(Event::Start {
            revision: "v3".into()
        })
        .is_err()
    );
    h.tick(); // Finalising
    let out = h.tick(); // Succeeded, then v3 begins
    assert!(has_message(&out, "Promotion completed!"));
    assert!(has_message(&out, "New revision v3 detected!"));
    assert_eq!(h.phase(), Phase::Progressing);
    assert_eq!(h.state().revision.as_deref(), Some("v3"));
    // The finished rollout's post-rollout answer may arrive now: it is only recorded.
    let out = h.send(Event::Hook {
        kind: HookKind::PostRollout,
        ok: true,
    });
    assert_eq!(messages(&out), ["Post-rollout hooks passed"]);
    assert_eq!(h.phase(), Phase::Progressing);
    h.run(&mut world, 10);
    assert_eq!(h.phase(), Phase::Succeeded);
}

#[test]
fn new_revision_while_waiting_for_approval_asks_again() {
    let mut h = in_phase(Phase::Waiting);
    let out = h.send(Event::Start {
        revision: "v3".into(),
    });
    assert_eq!(h.phase(), Phase::Waiting);
    assert!(out.contains(&Action::CallGate(GateKind::ConfirmRollout)));
    assert_eq!(
        h.state().pending,
        Some(Pending::Gate(GateKind::ConfirmRollout))
    );
}

#[test]
fn a_finished_rollout_starts_again_on_a_new_revision() {
    for phase in [
        Phase::Succeeded,
        Phase::Failed,
        Phase::Initialized,
        Phase::Initializing,
    ] {
        let mut h = in_phase(phase);
        h.send(Event::Start {
            revision: "v9".into(),
        });
        assert_eq!(
            h.phase(),
            Phase::Waiting,
            "{phase}: confirm-rollout configured"
        );
        assert_eq!(h.state().failed_checks, 0);
        assert!(h.state().next_tick_at.is_some());
    }
}

// === refusals, time, persistence ===

#[test]
fn refused_events_change_nothing() {
    let mut h = Harness::started(canary(&[10, 20]));
    h.interval(&mut World::default());
    let before = h.state().clone();
    let due = before.next_tick_at.unwrap();
    let cases = [
        (Event::Tick, Error::TickEarly { due, now: h.now }),
        (
            Event::Analysis(AnalysisResult::Pass),
            Error::Unexpected {
                event: "analysis".into(),
                awaiting: None,
            },
        ),
        (
            Event::Gate {
                kind: GateKind::ConfirmPromotion,
                approved: true,
            },
            Error::Unexpected {
                event: "confirm-promotion gate".into(),
                awaiting: None,
            },
        ),
        (
            Event::Hook {
                kind: HookKind::PreRollout,
                ok: true,
            },
            Error::Unexpected {
                event: "pre-rollout hook".into(),
                awaiting: None,
            },
        ),
        (
            Event::Initialize,
            Error::AlreadyInitialized {
                phase: Phase::Progressing,
            },
        ),
        (Event::Resume, Error::NotPaused),
    ];
    for (event, want) in cases {
        assert_eq!(h.try_send(event).unwrap_err(), want);
        assert_eq!(*h.state(), before);
    }
    let mut done = Harness::started(canary(&[10]));
    done.send(Event::Abort);
    assert_eq!(
        done.try_send(Event::Tick).unwrap_err(),
        Error::NoTickScheduled {
            phase: Phase::Failed
        }
    );
}

#[test]
fn time_never_goes_backwards() {
    let mut h = Harness::started(canary(&[10, 20]));
    h.interval(&mut World::default());
    let seen = h.state().last_event_at;
    h.now = serin_rollout::Timestamp::from_millis(T0 - 3_600_000);
    h.send(Event::Pause);
    assert_eq!(h.state().last_event_at, seen);
}

#[test]
fn initialize_routes_everything_to_stable() {
    let mut h = Harness::new(canary(&[10]));
    assert_eq!(h.phase(), Phase::Initializing);
    let out = h.send(Event::Initialize);
    assert_eq!(h.phase(), Phase::Initialized);
    assert_eq!(routes(&out), vec![Route::STABLE]);
    assert!(has_message(&out, "Initialization done!"));
    assert_eq!(h.state().next_tick_at, None);
}

#[test]
fn recover_reissues_route_tick_and_request() {
    let mut h = Harness::started(canary(&[10, 20]));
    h.interval(&mut World::default());
    h.tick();
    let json = serde_json::to_string(h.rollout.state()).unwrap();
    let state = serde_json::from_str(&json).unwrap();
    let restored = serin_rollout::Rollout::restore(h.rollout.plan().clone(), state).unwrap();
    assert_eq!(
        restored.recover(),
        vec![
            Action::SetRoute(Route {
                canary_weight: 10,
                mirror: None,
                match_active: false
            }),
            Action::ScheduleTick {
                at: h.state().next_tick_at.unwrap()
            },
            Action::RunAnalysis,
        ]
    );
}

#[test]
fn serde_uses_flaggers_names() {
    let names: Vec<String> = [
        Phase::Initializing,
        Phase::Initialized,
        Phase::Waiting,
        Phase::Progressing,
        Phase::WaitingPromotion,
        Phase::Promoting,
        Phase::Finalising,
        Phase::Succeeded,
        Phase::Failed,
    ]
    .iter()
    .map(|p| {
        let json = serde_json::to_string(p).unwrap();
        assert_eq!(json, format!("\"{}\"", p.as_str()));
        p.as_str().to_string()
    })
    .collect();
    assert_eq!(
        names.join(","),
        "Initializing,Initialized,Waiting,Progressing,WaitingPromotion,Promoting,Finalising,Succeeded,Failed"
    );
    assert_eq!(
        serde_json::to_string(&GateKind::ConfirmTrafficIncrease).unwrap(),
        "\"confirm-traffic-increase\""
    );
    let h = Harness::started(canary(&[10]));
    let json = serde_json::to_value(h.state()).unwrap();
    for field in [
        "phase",
        "canaryWeight",
        "failedChecks",
        "iterations",
        "lastTransitionTime",
    ] {
        assert!(json.get(field).is_some(), "{field} in {json}");
    }
    let record = serde_json::to_value(Action::Emit(serin_rollout::Record {
        severity: serin_rollout::Severity::Warning,
        message: "m".into(),
    }))
    .unwrap();
    assert_eq!(
        record,
        serde_json::json!({"Emit": {"type": "Warning", "message": "m"}})
    );
}

#[test]
fn invalid_plans_are_refused() {
    let plan = canary(&[]);
    assert!(matches!(
        serin_rollout::Rollout::new(plan.clone(), serin_rollout::Timestamp::from_millis(0)),
        Err(Error::InvalidPlan(_))
    ));
    let mut state = serin_rollout::RolloutState::default();
    assert!(
        serin_rollout::step(
            &mut state,
            &plan,
            serin_rollout::Timestamp::from_millis(0),
            Event::Initialize
        )
        .is_err()
    );
}
