//! Measures `replay` on a generated 1,000,000-request log (held in memory, so
//! only parsing and judging are timed). Run in release:
//! `cargo run --release -p serin-analysis --example replay_speed [REQUESTS] [RPS]`.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serin_analysis::{AnalysisConfig, JudgeKind, replay};
use std::{fmt::Write, time::Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rps: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(500.0);
    let mut rng = Pcg64Mcg::seed_from_u64(1);
    let mut log = String::with_capacity(n as usize * 80);
    for i in 0..n {
        let ts = 1_764_150_000.0 + i as f64 / rps;
        let canary = rng.random_bool(0.1);
        let status = if rng.random_bool(0.002) { 503 } else { 200 };
        let latency = 10.0 + rng.random::<f64>() * 30.0;
        let _ = writeln!(
            log,
            r#"{{"ts": {ts:.3}, "version": "{}", "status": {status}, "latency_ms": {latency:.2}}}"#,
            if canary { "canary" } else { "stable" }
        );
    }
    println!(
        "log: {n} requests at {rps} req/s, {} MB",
        log.len() / 1_000_000
    );
    for judge in JudgeKind::ALL {
        let mut cfg = AnalysisConfig::flagger_defaults().with_judge(judge);
        // Many steps so the rollout neither promotes nor stops before the end.
        cfg.steps = vec![10; 10_000];
        cfg.threshold = u32::MAX;
        let start = Instant::now();
        let mut ticks = 0;
        for r in replay(log.as_bytes(), &cfg) {
            if r.is_err() {
                eprintln!("{r:?}");
                break;
            }
            ticks += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{judge:>12}: {ticks} ticks in {secs:.3} s ({:.0} requests/s)",
            n as f64 / secs
        );
    }
}
