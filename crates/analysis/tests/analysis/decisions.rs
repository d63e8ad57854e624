//! The verdicts users trust: no judge passes a step on which a metric fails
//! its check, a failing check is counted, statistics only make a verdict
//! stricter, and a healthy canary is not held for evidence forever.
//!
//! Each test reproduces a situation users met, at the level the runtime
//! drives the judges: `observe` every second, `evaluate` at each tick.

use proptest::prelude::*;
use serin_analysis::{
    AnalysisConfig, Analyzer, Decision, Direction, HoldReason, JudgeKind, MetricCheck,
    MetricStatus, TickInput, Verdict,
};
use serin_stats::{Counts, Pair};
use std::time::Duration;

/// `n` requests of which `errors` are 5xx, every one `ms` long.
fn counts(n: u64, errors: u64, ms: u64) -> Counts {
    let mut c = Counts::default();
    for i in 0..n {
        c.record(
            if i < errors { 503 } else { 200 },
            Duration::from_millis(ms),
        );
    }
    c
}

fn pair(canary: Counts, stable: Counts) -> Pair {
    Pair { canary, stable }
}

/// Drives an analyzer second by second: `per_second(t)` is what both
/// versions served in second `t`; every `tick` seconds the analysis runs on
/// the last `window` seconds. Returns every decision, stopping at the first
/// rollback. The weight advances through `steps` on each pass.
fn drive(
    config: &AnalysisConfig,
    seconds: u64,
    tick: u64,
    mut per_second: impl FnMut(u64, u8) -> Pair,
) -> Vec<(u8, Decision)> {
    let mut analyzer = Analyzer::new(config.clone()).expect("valid config");
    let window = config.longest_window().as_secs();
    let mut history: Vec<Pair> = Vec::new();
    let mut step = 0usize;
    let mut out = Vec::new();
    for t in 1..=seconds {
        let weight = config.steps[step];
        let delta = per_second(t, weight);
        history.push(delta.clone());
        analyzer.observe(t * 1000, weight, &delta);
        if let Some(d) = analyzer.early(t * 1000) {
            out.push((weight, d));
            return out;
        }
        if t % tick == 0 {
            let mut last = Pair::default();
            for p in history.iter().rev().take(window as usize) {
                last.merge(p);
            }
            let d = analyzer.evaluate(t * 1000, &TickInput::builtin(config, |_| last.clone()));
            let verdict = d.verdict;
            out.push((weight, d));
            match verdict {
                Verdict::Rollback => return out,
                Verdict::Pass if step + 1 == config.steps.len() => return out,
                Verdict::Pass => {
                    step += 1;
                    analyzer.step_advanced(t * 1000, config.steps[step]);
                }
                _ => {}
            }
        }
    }
    out
}

/// The README's canary: success rate min 99 with maxDelta 1, p99 max 500 ms
/// with maxRatio 1.2.
fn readme(interval: u64, steps: Vec<u8>) -> AnalysisConfig {
    let every = Duration::from_secs(interval);
    AnalysisConfig {
        interval: every,
        steps,
        metrics: vec![
            MetricCheck::named("request-success-rate")
                .range(Some(99.0), None)
                .compare(Some(1.0), None)
                .interval(every),
            MetricCheck::named("request-duration")
                .range(None, Some(500.0))
                .compare(None, Some(1.2))
                .interval(every),
        ],
        ..AnalysisConfig::flagger_defaults()
    }
}

/// `n` requests a second split at `weight` percent, with error rates
/// (canary, stable) spread evenly (deterministic: errors every 1/p requests).
fn split(t: u64, n: u64, weight: u8, p: (f64, f64)) -> Pair {
    let nc = n * u64::from(weight) / 100;
    let ns = n - nc;
    let due =
        |rate: f64, k: u64| ((t * k) as f64 * rate) as u64 - (((t - 1) * k) as f64 * rate) as u64;
    pair(counts(nc, due(p.0, nc), 20), counts(ns, due(p.1, ns), 20))
}

#[test]
fn a_template_metric_far_outside_its_range_is_never_passed() {
    // A Prometheus error-rate template, max 1 %, the canary failing 20 %:
    // every tick is a failed check for every judge that is not rolled back
    // first, never a pass.
    for judge in [
        JudgeKind::Sequential,
        JudgeKind::MannWhitney,
        JudgeKind::Threshold,
    ] {
        let config = AnalysisConfig {
            judge,
            interval: Duration::from_secs(4),
            threshold: 2,
            steps: vec![50, 100],
            metrics: vec![
                MetricCheck::named("error-rate")
                    .range(None, Some(1.0))
                    .interval(Duration::from_secs(4)),
            ],
            ..AnalysisConfig::flagger_defaults()
        };
        let mut analyzer = Analyzer::new(config).unwrap();
        for (tick, value) in [16.7, 22.9, 19.5].into_iter().enumerate() {
            let mut input = TickInput::default();
            input.push_scalar("error-rate", Some(value), Some(0.0));
            let d = analyzer.evaluate(tick as u64 * 4000, &input);
            assert!(
                d.verdict >= Verdict::Fail,
                "{judge:?} tick {tick}: {:?} {:?}",
                d.verdict,
                d.reasons
            );
            assert!(
                d.reasons
                    .iter()
                    .any(|r| r.contains("error-rate 16.7 > max 1")
                        || r.contains("error-rate 22.9 > max 1")
                        || r.contains("error-rate 19.5 > max 1")),
                "{:?}",
                d.reasons
            );
        }
    }
}

#[test]
fn traffic_is_not_increased_on_a_canary_every_check_fails() {
    // 2.95 % errors against stable's 0 % under min 99, 40 requests a
    // second at a 10 % step: the first tick must not pass.
    for judge in [JudgeKind::Sequential, JudgeKind::MannWhitney] {
        let mut config = readme(10, vec![10, 20, 30]);
        config.judge = judge;
        config.metrics[0].compare = None;
        let decisions = drive(&config, 120, 10, |t, w| split(t, 40, w, (0.0295, 0.0)));
        for (weight, d) in &decisions {
            assert_eq!(*weight, 10, "{judge:?} raised the weight: {:?}", d.reasons);
            assert_ne!(d.verdict, Verdict::Pass, "{judge:?}: {:?}", d.reasons);
        }
        assert!(
            decisions.iter().any(|(_, d)| d.verdict >= Verdict::Fail),
            "{judge:?}: {:?}",
            decisions.last()
        );
    }
}

#[test]
fn mann_whitney_respects_threshold_range() {
    // Canary mean 98.8 vs baseline 100, min 99: not a pass.
    let config = AnalysisConfig {
        judge: JudgeKind::MannWhitney,
        metrics: vec![
            MetricCheck::named("success")
                .direction(Direction::HigherIsBetter)
                .range(Some(99.0), None),
        ],
        ..AnalysisConfig::flagger_defaults()
    };
    // Noisy points: the rank test finds no significant shift (p > 0.3),
    // but the last point is below the range.
    let mut analyzer = Analyzer::new(config).unwrap();
    for (t, (c, s)) in [
        (99.9, 99.1),
        (99.2, 99.8),
        (99.6, 99.5),
        (99.1, 99.9),
        (98.8, 100.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut input = TickInput::default();
        input.push_scalar("success", Some(c), Some(s));
        let d = analyzer.evaluate(t as u64 * 60_000, &input);
        if t < 4 {
            assert_eq!(d.verdict, Verdict::Pass, "{:?}", d.reasons);
        }
    }
    let mut input = TickInput::default();
    input.push_scalar("success", Some(98.8), Some(100.0));
    let d = analyzer.evaluate(5 * 60_000, &input);
    assert_eq!(d.verdict, Verdict::Fail, "{:?}", d.reasons);
    assert_eq!(d.metrics[0].status, MetricStatus::Fail);
    assert!(
        d.reasons.iter().any(|r| r.contains("98.8 < min 99")),
        "{:?}",
        d.reasons
    );
}

#[test]
fn one_error_in_sixty_holds_but_does_not_fail_a_99_percent_check() {
    // Flagger's threshold judge fails it; the others hold: the check would
    // pass with that one error set aside.
    let window = pair(counts(60, 1, 20), counts(600, 0, 20));
    let input = |c: &AnalysisConfig| TickInput::builtin(c, |_| window.clone());
    let exact = AnalysisConfig::flagger_defaults().with_judge(JudgeKind::Threshold);
    let d = Analyzer::new(exact.clone())
        .unwrap()
        .evaluate(0, &input(&exact));
    assert_eq!(d.verdict, Verdict::Fail);
    let guarded = AnalysisConfig::flagger_defaults().with_judge(JudgeKind::MannWhitney);
    let d = Analyzer::new(guarded.clone())
        .unwrap()
        .evaluate(0, &input(&guarded));
    assert_eq!(d.verdict, Verdict::Hold, "{:?}", d.reasons);
    assert!(
        d.reasons.iter().any(|r| r.contains("one error of 60")),
        "{:?}",
        d.reasons
    );
    // Two errors in sixty: a failed check.
    let window = pair(counts(60, 2, 20), counts(600, 0, 20));
    let d = Analyzer::new(guarded.clone())
        .unwrap()
        .evaluate(0, &TickInput::builtin(&guarded, |_| window.clone()));
    assert_eq!(d.verdict, Verdict::Fail, "{:?}", d.reasons);
}

#[test]
fn an_incident_shared_by_both_versions_holds_without_counting() {
    // Both versions at 95 % under min 99: not the canary's doing. Holding
    // (the weight stays, nothing is counted), never passing.
    let config = AnalysisConfig::flagger_defaults();
    let window = pair(counts(400, 20, 20), counts(3600, 185, 20));
    let mut analyzer = Analyzer::new(config.clone()).unwrap();
    analyzer.observe(1000, 10, &window);
    let d = analyzer.evaluate(60_000, &TickInput::builtin(&config, |_| window.clone()));
    assert_eq!(d.verdict, Verdict::Hold, "{:?}", d.reasons);
    assert!(
        d.reasons.iter().any(|r| r.contains("so is stable")),
        "{:?}",
        d.reasons
    );
    // The canary clearly worse than a stable that also breaks the range:
    // a failed check.
    let window = pair(counts(400, 60, 20), counts(3600, 185, 20));
    let mut analyzer = Analyzer::new(config.clone()).unwrap();
    let d = analyzer.evaluate(60_000, &TickInput::builtin(&config, |_| window.clone()));
    assert!(d.verdict >= Verdict::Fail, "{:?}", d.reasons);
}

#[test]
fn a_healthy_canary_is_promoted_and_its_evidence_requirement_shrinks() {
    // The README's canary with short intervals, both versions without
    // errors at 100 or 20 requests a second: promoted within two (five)
    // minutes, and while it waits the requests still wanted only fall. Both
    // at 2 % errors (a noisy service: +1 point is then hard to rule out): it
    // holds at the last step for evidence, and is promoted within fifteen
    // minutes.
    for (rate, errors, limit) in [(100, 0.0, 120), (20, 0.0, 300), (100, 0.02, 900)] {
        let mut config = readme(5, vec![10, 25, 50]);
        if errors > 0.0 {
            // No margin: the planning regression is stable + 1 point; no
            // range (both versions break `min 99`).
            config.metrics[0] = config.metrics[0].clone().range(None, None);
            config.metrics[0].compare = None;
        }
        let decisions = drive(&config, 1200, 5, |t, w| split(t, rate, w, (errors, errors)));
        let (weight, last) = decisions.last().unwrap();
        assert_eq!(
            (*weight, last.verdict),
            (50, Verdict::Pass),
            "{rate}/s: {:?}",
            last.reasons
        );
        let took = decisions.len() as u64 * 5;
        assert!(took <= limit, "{rate}/s: promotion took {took}s");
        // The promotion says the power it reached, in the reasons and in
        // each comparison's evidence.
        assert!(
            last.reasons
                .iter()
                .any(|r| r.starts_with("request-success-rate: promoting with")),
            "{:?}",
            last.reasons
        );
        assert!(
            last.metrics[0].power.is_some_and(|p| p >= 0.95),
            "{:?}",
            last.metrics[0]
        );
        // Holding for evidence is said to be that (the progress deadline
        // does not count it); other holds are not.
        for (_, d) in &decisions {
            let for_evidence = d
                .reasons
                .iter()
                .any(|r| r.contains("holding promotion for evidence"));
            if d.verdict == Verdict::Hold {
                let expected = if for_evidence {
                    HoldReason::Evidence
                } else {
                    HoldReason::System
                };
                assert_eq!(d.hold, Some(expected), "{:?}", d.reasons);
            } else {
                assert_eq!(d.hold, None);
            }
        }
        let wanted: Vec<f64> = decisions
            .iter()
            .flat_map(|(_, d)| &d.reasons)
            .filter_map(|r| {
                let at = r.find("about ")? + "about ".len();
                r[at..].split(' ').next()?.parse().ok()
            })
            .collect();
        if errors == 0.0 {
            for w in wanted.windows(2) {
                assert!(w[1] <= w[0], "{rate}/s: the requirement grew: {wanted:?}");
            }
        } else {
            assert!(
                decisions
                    .iter()
                    .any(|(_, d)| d.hold == Some(HoldReason::Evidence)),
                "the last step never held for evidence: {:?}",
                decisions
                    .iter()
                    .map(|(w, d)| (w, &d.reasons))
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn a_failing_canary_is_rolled_back() {
    // A 20 % failing canary at the first step: rolled back, never advanced.
    let config = readme(10, vec![10, 20, 30]);
    let decisions = drive(&config, 300, 10, |t, w| split(t, 50, w, (0.2, 0.0)));
    let (weight, last) = decisions.last().unwrap();
    assert_eq!(*weight, 10);
    assert_eq!(last.verdict, Verdict::Rollback, "{:?}", last.reasons);
}

/// A random window of both versions' traffic.
fn window() -> impl Strategy<Value = Pair> {
    let side = (
        0u64..400,
        0u64..60,
        prop_oneof![Just(20u64), Just(300), Just(900)],
    );
    (side.clone(), side).prop_map(|((nc, ec, mc), (ns, es, ms))| {
        pair(counts(nc, ec.min(nc), mc), counts(ns, es.min(ns), ms))
    })
}

fn judged() -> impl Strategy<Value = JudgeKind> {
    prop_oneof![Just(JudgeKind::Sequential), Just(JudgeKind::MannWhitney)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No judge passes a step on which Flagger's check fails, and where
    /// Flagger's check fails the verdict is a failed check or a hold — never
    /// a pass. Where the check passes, a judge may still hold or roll back.
    #[test]
    fn statistics_never_turn_a_failing_check_into_a_pass(
        judge in judged(),
        seconds in proptest::collection::vec(window(), 1..30),
        scalar in (0.0f64..5.0, 0.0f64..5.0),
        min in prop_oneof![Just(None), (90.0f64..100.0).prop_map(Some)],
        max_ms in prop_oneof![Just(None), (10.0f64..1000.0).prop_map(Some)],
        delta in prop_oneof![Just(None), (0.0f64..3.0).prop_map(Some)],
    ) {
        let mut config = AnalysisConfig::flagger_defaults().with_judge(judge);
        config.min_requests = Some(1);
        config.metrics = vec![
            MetricCheck::named("request-success-rate").range(min, None),
            MetricCheck::named("request-duration").range(None, max_ms),
            MetricCheck::named("error-rate").range(None, Some(1.0)),
        ];
        if delta.is_some() {
            config.metrics[0] = config.metrics[0].clone().compare(delta, None);
        }
        let exact = config.clone().with_judge(JudgeKind::Threshold);
        let mut analyzer = Analyzer::new(config.clone()).unwrap();
        let mut total = Pair::default();
        for (t, p) in seconds.iter().enumerate() {
            analyzer.observe(t as u64 * 1000, 10, p);
            total.merge(p);
        }
        let mut input = TickInput::builtin(&config, |_| total.clone());
        input.push_scalar("error-rate", Some(scalar.0), Some(scalar.1));
        let d = analyzer.evaluate(60_000, &input);
        let flagger = Analyzer::new(exact).unwrap().evaluate(60_000, &input);
        if flagger.verdict == Verdict::Fail {
            prop_assert_ne!(d.verdict, Verdict::Pass, "{:?} vs {:?}", d.reasons, flagger.reasons);
        }
        if d.verdict == Verdict::Pass {
            prop_assert_eq!(flagger.verdict, Verdict::Pass);
            for m in &d.metrics {
                prop_assert!(m.status == MetricStatus::Pass, "{:?}", m);
            }
        }
        // A failed check on the custom metric (no request counts, no
        // guard) is always counted.
        if scalar.0 > 1.0 && scalar.1 <= 1.0 {
            prop_assert!(d.verdict >= Verdict::Fail, "{:?}", d.reasons);
        }
    }
}

/// The minimal input proptest found: Kayenta's judge had no time point in
/// the metric's window (the one second it saw lies just outside it) while
/// the tick's totals have requests. Flagger's check passes the success rate;
/// the judge's "no data" must not stand in a passing verdict: the check
/// decides that metric.
#[test]
fn a_judge_without_time_points_defers_to_the_check_in_a_pass() {
    let mut config = AnalysisConfig::flagger_defaults().with_judge(JudgeKind::MannWhitney);
    config.min_requests = Some(1);
    config.metrics = vec![
        MetricCheck::named("request-success-rate"),
        MetricCheck::named("request-duration"),
        MetricCheck::named("error-rate").range(None, Some(1.0)),
    ];
    let second = pair(counts(137, 0, 20), counts(1, 0, 20));
    let mut analyzer = Analyzer::new(config.clone()).unwrap();
    analyzer.observe(0, 10, &second);
    let mut input = TickInput::builtin(&config, |_| second.clone());
    input.push_scalar("error-rate", Some(0.0), Some(0.0));
    let d = analyzer.evaluate(60_000, &input);
    assert_eq!(d.verdict, Verdict::Pass, "{:?}", d.reasons);
    for m in &d.metrics {
        assert_eq!(m.status, MetricStatus::Pass, "{m:?}");
    }
    let rate = &d.metrics[0];
    assert!(
        rate.reason.contains("no data") && rate.reason.contains("judged by the check alone"),
        "{}",
        rate.reason
    );
}

#[test]
fn pace_schedule_promotes_at_the_end_of_the_schedule_and_says_what_power_it_had() {
    // Both versions at 2 % errors, no margin, no range: with the default pace the
    // last step holds for evidence; with `pace: schedule` it passes at once
    // and says how much power it had, as Flagger's pace would.
    let mut config = readme(5, vec![10, 25, 50]);
    config.metrics[0] = config.metrics[0].clone().range(None, None);
    config.metrics[0].compare = None;
    let run =
        |config: &AnalysisConfig| drive(config, 1200, 5, |t, w| split(t, 100, w, (0.02, 0.02)));
    let held = run(&config);
    assert!(
        held.iter()
            .any(|(_, d)| d.hold == Some(HoldReason::Evidence))
    );
    config.pace = serin_analysis::Pace::Schedule;
    let paced = run(&config);
    let (weight, last) = paced.last().unwrap();
    assert_eq!(
        (*weight, last.verdict),
        (50, Verdict::Pass),
        "{:?}",
        last.reasons
    );
    assert!(
        paced
            .iter()
            .all(|(_, d)| d.hold != Some(HoldReason::Evidence))
    );
    assert!(
        paced.len() < held.len(),
        "{} vs {} ticks",
        paced.len(),
        held.len()
    );
    let said = last
        .reasons
        .iter()
        .find(|r| r.contains("promoting at the end of the schedule"))
        .unwrap_or_else(|| panic!("{:?}", last.reasons));
    assert!(
        said.contains("% power to have caught a regression of +1.00 point"),
        "{said}"
    );
    // The power reached is in the evidence, for the JSON and the dashboard.
    let power = last.metrics[0].power.expect("power reported");
    assert!((0.0..0.95).contains(&power), "{power}");
    let (_, promoted) = held.last().unwrap();
    assert!(
        promoted.metrics[0].power.unwrap() >= 0.95,
        "{:?}",
        promoted.metrics[0]
    );
}

/// A restart resumes the evidence where it was saved: the resumed judge
/// decides exactly as one that never stopped, with the same e-value (the
/// budget spent is not handed back), and evidence saved under another
/// configuration is refused.
#[test]
fn saved_evidence_resumes_where_it_stood() {
    let mut config = readme(5, vec![10, 25, 50]);
    config.metrics[0].compare = Some(serin_analysis::Compare {
        max_delta: Some(0.5),
        max_ratio: None,
    });
    let traffic = |t: u64| split(t, 60, 25, (0.012, 0.004));
    let mut whole = Analyzer::new(config.clone()).unwrap();
    let mut first = Analyzer::new(config.clone()).unwrap();
    for t in 1..=40 {
        whole.observe(t * 1000, 25, &traffic(t));
        first.observe(t * 1000, 25, &traffic(t));
        if t % 5 == 0 {
            // The windows judged so far are saved too: a failed check of
            // the tenth window counts as the tenth's, after a restart too.
            let input = TickInput::builtin(&config, |_| traffic(t));
            assert_eq!(
                whole.evaluate(t * 1000, &input),
                first.evaluate(t * 1000, &input)
            );
        }
    }
    let saved = first
        .evidence()
        .expect("the sequential judge keeps evidence");
    let mut resumed = Analyzer::new(config.clone()).unwrap();
    resumed.resume(&saved).unwrap();
    assert_eq!(resumed.evidence().as_deref(), Some(saved.as_str()));
    for t in 41..=120 {
        whole.observe(t * 1000, 25, &traffic(t));
        resumed.observe(t * 1000, 25, &traffic(t));
        assert_eq!(whole.early(t * 1000), resumed.early(t * 1000), "second {t}");
    }
    let input = TickInput::builtin(&config, |_| traffic(120));
    assert_eq!(
        whole.evaluate(120_000, &input),
        resumed.evaluate(120_000, &input)
    );
    // Another budget, other metrics, another judge: refused, nothing changed.
    let mut other = config.clone();
    other.alpha = 0.05;
    let mut fresh = Analyzer::new(other).unwrap();
    let before = fresh.evidence();
    assert!(fresh.resume(&saved).is_err());
    assert_eq!(fresh.evidence(), before);
    let mut fewer = config.clone();
    fewer.metrics.pop();
    assert!(Analyzer::new(fewer).unwrap().resume(&saved).is_err());
    let threshold = config.clone().with_judge(JudgeKind::Threshold);
    let mut flagger = Analyzer::new(threshold).unwrap();
    assert_eq!(flagger.evidence(), None);
    assert!(flagger.resume(&saved).is_err());
    assert!(
        Analyzer::new(config)
            .unwrap()
            .resume("not evidence")
            .is_err()
    );
}

/// stable 0.5 %, canary 1.5 %, `maxDelta: 0.5` (the canary half a point
/// beyond its margin), 100 requests a second at a 10 % share. Its
/// one-minute failures soon stop counting (each alone is within sampling
/// noise), but it is not promoted: its record over the analysis is beyond
/// the margin, so the last step holds for evidence until the e-value rolls
/// it back.
#[test]
fn a_canary_beyond_its_margin_is_held_until_the_evidence_rolls_it_back() {
    let minute = Duration::from_secs(60);
    let config = AnalysisConfig {
        steps: vec![10],
        metrics: vec![
            MetricCheck::named("request-success-rate")
                .compare(Some(0.5), None)
                .interval(minute),
        ],
        ..AnalysisConfig::flagger_defaults()
    };
    let decisions = drive(&config, 1800, 60, |t, w| split(t, 100, w, (0.015, 0.005)));
    let (_, last) = decisions.last().expect("decisions");
    assert_eq!(last.verdict, Verdict::Rollback, "{:?}", last.reasons);
    assert!(decisions.iter().all(|(_, d)| d.verdict != Verdict::Pass));
    let fails = decisions
        .iter()
        .filter(|(_, d)| d.verdict == Verdict::Fail)
        .count();
    assert!(fails < 5, "{fails} failed checks counted");
    let held = decisions
        .iter()
        .filter(|(_, d)| {
            d.verdict == Verdict::Hold
                && d.hold == Some(HoldReason::Evidence)
                && d.reasons.iter().any(|r| r.contains("beyond stable's"))
        })
        .count();
    assert!(held > 0, "{decisions:#?}");
}

/// The same margin with the canary as good as stable: its record is within
/// the margin, and it is promoted.
#[test]
fn a_canary_within_its_margin_is_promoted() {
    let minute = Duration::from_secs(60);
    let config = AnalysisConfig {
        steps: vec![10],
        metrics: vec![
            MetricCheck::named("request-success-rate")
                .compare(None, Some(1.2))
                .interval(minute),
        ],
        ..AnalysisConfig::flagger_defaults()
    };
    let decisions = drive(&config, 1800, 60, |t, w| split(t, 100, w, (0.005, 0.005)));
    let (_, last) = decisions.last().expect("decisions");
    assert_eq!(last.verdict, Verdict::Pass, "{:?}", last.reasons);
    assert!(
        decisions
            .iter()
            .all(|(_, d)| d.reasons.iter().all(|r| !r.contains("beyond stable's")))
    );
}
