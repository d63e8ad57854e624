//! What the promotion gate asks of a healthy canary: canary requests served
//! until the sequential judge lets the last step pass, against the oracle
//! (an SPRT that knows both true rates: stable's rate `p` against `p` + 1
//! point, 95 % power). `cargo run --release -p serin-analysis --example gate`.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serin_analysis::{AnalysisConfig, Analyzer, MetricCheck, TickInput, Verdict};
use serin_stats::Pair;
use std::time::Duration;

/// Canary requests until the last step passes (median of `runs`), for
/// stable and canary both at error rate `p`, `rps` requests a second,
/// `interval` 2 s, steps 20/40/60.
fn requests_to_promote(p: f64, rps: u64, runs: u64) -> (u64, u64) {
    let mut needed = Vec::new();
    let mut seconds = Vec::new();
    for run in 0..runs {
        let mut rng = Pcg64Mcg::seed_from_u64(run * 7919 + (p * 1e6) as u64);
        let config = AnalysisConfig {
            interval: Duration::from_secs(2),
            steps: vec![20, 40, 60],
            metrics: vec![
                MetricCheck::named("request-success-rate").interval(Duration::from_secs(2)),
            ],
            ..AnalysisConfig::flagger_defaults()
        };
        let mut analyzer = Analyzer::new(config.clone()).expect("valid");
        let mut step = 0;
        let mut canary_total = 0;
        let mut window = Vec::<Pair>::new();
        for t in 1..=3600u64 {
            let weight = config.steps[step];
            let mut pair = Pair::default();
            for _ in 0..rps {
                let canary = rng.random_range(0..100) < weight;
                let status = if rng.random_bool(p) { 503 } else { 200 };
                let c = if canary {
                    &mut pair.canary
                } else {
                    &mut pair.stable
                };
                c.record(status, Duration::from_millis(20));
            }
            canary_total += pair.canary.requests;
            analyzer.observe(t * 1000, weight, &pair);
            window.push(pair);
            if t % 2 == 0 {
                let mut last = Pair::default();
                for w in window.iter().rev().take(2) {
                    last.merge(w);
                }
                let d = analyzer.evaluate(t * 1000, &TickInput::builtin(&config, |_| last.clone()));
                if d.verdict == Verdict::Pass {
                    if step + 1 == config.steps.len() {
                        needed.push(canary_total);
                        seconds.push(t);
                        break;
                    }
                    step += 1;
                    analyzer.step_advanced(t * 1000, config.steps[step]);
                }
            }
        }
    }
    needed.sort_unstable();
    seconds.sort_unstable();
    (needed[needed.len() / 2], seconds[seconds.len() / 2])
}

fn main() {
    println!(
        "| stable = canary error rate | oracle canary requests (95 % power, +1 pt) | serin: median canary requests to promote | median s at 100 req/s |"
    );
    println!("|---:|---:|---:|---:|");
    for (p, oracle) in [(0.0, 306), (0.001, 904), (0.005, 1847)] {
        let (n, s) = requests_to_promote(p, 100, 21);
        println!("| {:.1} % | {oracle} | {n} | {s} |", p * 100.0);
    }
}
