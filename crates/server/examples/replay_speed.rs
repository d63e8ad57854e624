//! Measures `replay` on a generated 1,000,000-request log (held in memory, so
//! only parsing and judging are timed). Run in release:
//! `cargo run --release -p serin-server --example replay_speed [REQUESTS] [RPS]`.

use serin_analysis::JudgeKind;
use serin_rollout::{Plan, Strategy};
use serin_server::replay::{ReplaySetup, ReplaySink, RolloutSummary, TickReport, replay};
use std::{fmt::Write, time::Instant};

/// Counts reports and drops them.
#[derive(Default)]
struct Count(u64);

impl ReplaySink for Count {
    fn tick(&mut self, _report: &TickReport) -> std::io::Result<()> {
        self.0 += 1;
        Ok(())
    }
    fn rollout(&mut self, _summary: &RolloutSummary) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rps: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(500.0);
    // xorshift64: deterministic and dependency-free.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut log = String::with_capacity(n as usize * 80);
    for i in 0..n {
        let ts = 1_764_150_000.0 + i as f64 / rps;
        let canary = next() < 0.1;
        let status = if next() < 0.002 { 503 } else { 200 };
        let latency = 10.0 + next() * 30.0;
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
        let mut setup = ReplaySetup::defaults();
        setup.analysis = setup.analysis.with_judge(judge);
        // A hundred steps, a threshold never reached and no deadline in
        // reach, so the rollout rarely ends before the log does.
        setup.plan = Plan::new(
            Strategy::Canary {
                steps: (1..=100).collect(),
            },
            setup.analysis.interval,
            u32::MAX,
        );
        setup.plan.progress_deadline = std::time::Duration::from_secs(1 << 40);
        let start = Instant::now();
        let mut count = Count::default();
        if let Err(error) = replay(log.as_bytes(), &setup, &mut count) {
            eprintln!("{error}");
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{judge:>12}: {} ticks in {secs:.3} s ({:.0} requests/s)",
            count.0,
            n as f64 / secs
        );
    }
}
