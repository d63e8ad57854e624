//! False rollbacks of healthy canaries when the daemon is killed every few
//! seconds: the judge resumed from the evidence saved with the state (what
//! `serin serve` does) against a judge started afresh at each restart (what
//! it did before the evidence was saved).
//!
//! A/A rollouts: both versions serve the same error rate and latency. The
//! rollout's state (step, failed checks) survives every kill, as the store
//! keeps it; the judge's evidence is saved at each analysis tick (with the
//! state), so a kill loses the seconds observed since the last tick. Kills
//! come every 2 to 8 seconds (uniform).
//!
//! `cargo run --release -p serin-analysis --example restarts [RUNS] [ALPHA]`

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serin_analysis::{AnalysisConfig, Analyzer, TickInput, Verdict};
use serin_stats::Pair;
use std::time::Duration;

/// Requests per second, both versions together.
const RPS: u64 = 50;
/// Both versions' error rate.
const ERRORS: f64 = 0.005;
/// Longest rollout simulated, seconds.
const CAP: u64 = 1800;
/// Analysis interval, seconds.
const INTERVAL: u64 = 10;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// No kills at all.
    Never,
    /// Killed every few seconds, the judge resumed from the saved evidence.
    Resume,
    /// Killed every few seconds, a fresh judge each time.
    Fresh,
}

#[derive(Default)]
struct Outcome {
    rolled_back: bool,
    promoted: bool,
    kills: u64,
}

fn config(alpha: f64) -> AnalysisConfig {
    let mut config = AnalysisConfig::flagger_defaults();
    config.alpha = alpha;
    config.interval = Duration::from_secs(INTERVAL);
    for m in &mut config.metrics {
        m.interval = Duration::from_secs(INTERVAL);
    }
    config
}

/// One second of both versions at `weight` percent.
fn second(rng: &mut Pcg64Mcg, weight: u8) -> Pair {
    let mut pair = Pair::default();
    for _ in 0..RPS {
        let side = if rng.random_range(0..100) < weight {
            &mut pair.canary
        } else {
            &mut pair.stable
        };
        let status = if rng.random_bool(ERRORS) { 503 } else { 200 };
        let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
        let ms = 50.0 * (0.5 * z).exp();
        side.record(status, Duration::from_micros((ms * 1000.0) as u64));
    }
    pair
}

fn run(config: &AnalysisConfig, restart: Restart, seed: u64) -> Outcome {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut kills = Pcg64Mcg::seed_from_u64(seed ^ 0x5EED);
    let fresh = || match Analyzer::new(config.clone()) {
        Ok(a) => a,
        // The configuration is a constant of this file.
        Err(e) => panic!("benchmark config is valid: {e}"),
    };
    let mut judge = fresh();
    let mut saved = judge.evidence();
    let mut next_kill = kills.random_range(2..=8u64);
    let (mut step, mut failed) = (0usize, 0u32);
    let mut window = Pair::default();
    let mut out = Outcome::default();
    for t in 1..=CAP {
        if restart != Restart::Never && t == next_kill {
            out.kills += 1;
            judge = fresh();
            if restart == Restart::Resume
                && let Some(evidence) = &saved
                && let Err(e) = judge.resume(evidence)
            {
                panic!("saved evidence resumes: {e}");
            }
            // The windows are the new process's own.
            window = Pair::default();
            next_kill = t + kills.random_range(2..=8u64);
        }
        let weight = config.steps[step];
        let delta = second(&mut rng, weight);
        window.merge(&delta);
        judge.observe(t * 1000, weight, &delta);
        if judge.early(t * 1000).is_some() {
            out.rolled_back = true;
            return out;
        }
        if t % INTERVAL == 0 {
            let input = TickInput::builtin(config, |_| window.clone());
            window = Pair::default();
            let verdict = judge.evaluate(t * 1000, &input).verdict;
            match verdict {
                Verdict::Pass if step + 1 == config.steps.len() => {
                    out.promoted = true;
                    return out;
                }
                Verdict::Pass => {
                    step += 1;
                    judge.step_advanced(t * 1000, config.steps[step]);
                }
                Verdict::Fail => {
                    failed += 1;
                    if failed >= config.threshold {
                        out.rolled_back = true;
                        return out;
                    }
                }
                Verdict::Rollback => {
                    out.rolled_back = true;
                    return out;
                }
                Verdict::Hold => {}
            }
            // Saved with the state after the tick.
            saved = judge.evidence();
        }
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let alpha: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.05);
    let config = config(alpha);
    println!(
        "A/A, {RPS} req/s, both versions at {} % errors, interval {INTERVAL}s, steps {:?}, alpha {alpha}, {runs} runs, cap {CAP} s",
        ERRORS * 100.0,
        config.steps
    );
    println!();
    println!("| restarts | false rollbacks | promoted | kills per run (mean) |");
    println!("|---|---:|---:|---:|");
    for (name, restart) in [
        ("none", Restart::Never),
        ("kill every 2-8 s, evidence resumed", Restart::Resume),
        ("kill every 2-8 s, judge afresh", Restart::Fresh),
    ] {
        let outcomes: Vec<Outcome> = (0..runs).map(|r| run(&config, restart, r)).collect();
        let n = runs as f64;
        let share = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count() as f64 / n;
        println!(
            "| {name} | {:.1} % | {:.1} % | {:.0} |",
            100.0 * share(|o| o.rolled_back),
            100.0 * share(|o| o.promoted),
            outcomes.iter().map(|o| o.kills as f64).sum::<f64>() / n
        );
    }
}
