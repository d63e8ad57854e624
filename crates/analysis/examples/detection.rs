//! Detection benchmark: every judge on the same synthetic traffic.
//!
//! Closed loop: each run is one rollout through Flagger's default steps
//! (10 → 50 %, interval 1m, threshold 5, success rate ≥ 99 %, p99 ≤ 500 ms).
//! Users are the same for every judge: second `t` of run `r` draws its
//! requests from an RNG seeded by (scenario, r, t), and each request carries
//! fixed uniforms for routing, failure and latency; the judge's current
//! weight only decides which version a request goes to. So the judges see
//! the very same users and differ only in what they decide.
//!
//! `cargo run --release -p serin-analysis --example detection [RUNS_AA] [RUNS_AB] [FILTER]`
//! (FILTER: only scenarios whose name contains it).

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serin_analysis::{AnalysisConfig, Analyzer, JudgeKind, TickInput, Verdict};
use serin_stats::Pair;
use std::time::{Duration, Instant};

const BASE_ERR: f64 = 0.001;
const MEDIAN_MS: f64 = 50.0;
const SIGMA: f64 = 0.5;

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    /// Requests per second, both versions together.
    rps: f64,
    /// Stable's error probability.
    base: f64,
    /// Added to the canary's error probability (points / 100).
    err_delta: f64,
    /// Canary latency factor.
    slow: f64,
    /// Shared incident: (from s, to s, error prob, latency factor), both versions.
    incident: Option<(u64, u64, f64, f64)>,
    /// Canary weights.
    steps: &'static [u8],
    /// Longest simulated rollout, seconds.
    cap: u64,
}

impl Scenario {
    fn is_null(&self) -> bool {
        self.err_delta == 0.0 && self.slow == 1.0
    }
}

const FLAGGER_STEPS: &[u8] = &[10, 20, 30, 40, 50];
const HEAVY_STEPS: &[u8] = &[50];
const LIGHT_STEPS: &[u8] = &[2, 5, 10];

fn scenarios() -> Vec<Scenario> {
    let s = |name, rps, cap| Scenario {
        name,
        rps,
        base: BASE_ERR,
        err_delta: 0.0,
        slow: 1.0,
        incident: None,
        steps: FLAGGER_STEPS,
        cap,
    };
    let low = |n| s(n, 1.5, 7200);
    let med = |n| s(n, 20.0, 3600);
    let high = |n| s(n, 200.0, 3600);
    vec![
        low("A/A low (0.15-0.75 canary rps)"),
        med("A/A medium (20 rps)"),
        high("A/A high (200 rps)"),
        Scenario {
            incident: Some((120, 420, 0.10, 3.0)),
            ..med("A/A shared incident (10% errors, 3x latency, 5 min)")
        },
        Scenario {
            base: 0.012,
            ..med("A/A noisy baseline (1.2% errors)")
        },
        Scenario {
            base: 0.012,
            ..high("A/A noisy baseline, high")
        },
        Scenario {
            err_delta: 0.005,
            ..low("errors +0.5 pt, low")
        },
        Scenario {
            err_delta: 0.005,
            ..med("errors +0.5 pt, medium")
        },
        Scenario {
            err_delta: 0.005,
            ..high("errors +0.5 pt, high")
        },
        Scenario {
            err_delta: 0.01,
            ..low("errors +1 pt, low")
        },
        Scenario {
            err_delta: 0.01,
            ..med("errors +1 pt, medium")
        },
        Scenario {
            err_delta: 0.01,
            ..high("errors +1 pt, high")
        },
        Scenario {
            err_delta: 0.05,
            ..low("errors +5 pt, low")
        },
        Scenario {
            err_delta: 0.05,
            ..med("errors +5 pt, medium")
        },
        Scenario {
            err_delta: 0.05,
            ..high("errors +5 pt, high")
        },
        Scenario {
            err_delta: 0.01,
            base: 0.012,
            ..med("errors +1 pt on 1.2% base, medium")
        },
        Scenario {
            err_delta: 0.01,
            steps: HEAVY_STEPS,
            ..med("errors +1 pt, medium, weight 50")
        },
        Scenario {
            err_delta: 0.01,
            steps: LIGHT_STEPS,
            ..high("errors +1 pt, high, weights 2-5-10")
        },
        Scenario {
            slow: 1.1,
            ..low("latency +10%, low")
        },
        Scenario {
            slow: 1.1,
            ..med("latency +10%, medium")
        },
        Scenario {
            slow: 1.1,
            ..high("latency +10%, high")
        },
        Scenario {
            slow: 1.5,
            ..low("latency +50%, low")
        },
        Scenario {
            slow: 1.5,
            ..med("latency +50%, medium")
        },
        Scenario {
            slow: 1.5,
            ..high("latency +50%, high")
        },
        Scenario {
            slow: 4.0,
            ..med("latency x4 (p99 > 500 ms), medium")
        },
    ]
}

fn poisson(rng: &mut Pcg64Mcg, lambda: f64) -> u64 {
    if lambda < 30.0 {
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = rng.random::<f64>();
        while p > limit {
            k += 1;
            p *= rng.random::<f64>();
        }
        k
    } else {
        (lambda + lambda.sqrt() * normal(rng)).round().max(0.0) as u64
    }
}

fn normal(rng: &mut Pcg64Mcg) -> f64 {
    let u1 = rng.random::<f64>().max(1e-300);
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One second of users, routed at `weight` percent.
fn second(sc: &Scenario, seed: u64, t: u64, weight: u8, pair: &mut Pair) {
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (mut p_s, mut f) = (sc.base, 1.0);
    if let Some((from, to, p, lat)) = sc.incident
        && (from..to).contains(&t)
    {
        p_s = p;
        f = lat;
    }
    let p_c = (p_s + sc.err_delta).min(1.0);
    let w = f64::from(weight) / 100.0;
    for _ in 0..poisson(&mut rng, sc.rps) {
        let route = rng.random::<f64>();
        let fail = rng.random::<f64>();
        let z = normal(&mut rng);
        let canary = route < w;
        let (counts, p, slow) = if canary {
            (&mut pair.canary, p_c, sc.slow)
        } else {
            (&mut pair.stable, p_s, 1.0)
        };
        let ms = MEDIAN_MS * f * slow * (SIGMA * z).exp();
        counts.record(
            if fail < p { 500 } else { 200 },
            Duration::from_micros((ms * 1000.0) as u64),
        );
    }
}

#[derive(Clone, Copy, Debug)]
struct RunResult {
    rolled_back: bool,
    promoted: bool,
    /// Seconds from the start to the decision (or the cap).
    secs: u64,
    canary_requests: u64,
    /// Canary errors beyond what stable's rate would have produced.
    excess: f64,
}

fn run(sc: &Scenario, judge: JudgeKind, seed: u64) -> RunResult {
    let mut cfg = AnalysisConfig::flagger_defaults().with_judge(judge);
    cfg.steps = sc.steps.to_vec();
    let mut analyzer = match Analyzer::new(cfg.clone()) {
        Ok(a) => a,
        // The benchmark's configs are constants; an invalid one is a bug in
        // this file, and the run must stop rather than report numbers.
        Err(e) => panic!("benchmark config is valid: {e}"),
    };
    let (mut step, mut failed) = (0usize, 0u32);
    let mut window = Pair::default();
    let mut res = RunResult {
        rolled_back: false,
        promoted: false,
        secs: sc.cap,
        canary_requests: 0,
        excess: 0.0,
    };
    let mut delta = Pair::default();
    for t in 0..sc.cap {
        let weight = sc.steps[step];
        delta.stable.clear();
        delta.canary.clear();
        second(sc, seed, t, weight, &mut delta);
        res.canary_requests += delta.canary.requests;
        let p_s = match sc.incident {
            Some((from, to, p, _)) if (from..to).contains(&t) => p,
            _ => sc.base,
        };
        res.excess += delta.canary.errors as f64 - delta.canary.requests as f64 * p_s;
        window.merge(&delta);
        let at = (t + 1) * 1000;
        analyzer.observe(at, weight, &delta);
        if analyzer.early(at).is_some() {
            res.rolled_back = true;
            res.secs = t + 1;
            return res;
        }
        if (t + 1) % 60 == 0 {
            let input = TickInput::builtin(&cfg, |_| window.clone());
            window = Pair::default();
            match analyzer.evaluate(at, &input).verdict {
                Verdict::Pass if step + 1 >= sc.steps.len() => {
                    res.promoted = true;
                    res.secs = t + 1;
                    return res;
                }
                Verdict::Pass => {
                    step += 1;
                    analyzer.step_advanced(at, sc.steps[step]);
                }
                Verdict::Hold => {}
                Verdict::Fail => {
                    failed += 1;
                    if failed >= cfg.threshold {
                        res.rolled_back = true;
                        res.secs = t + 1;
                        return res;
                    }
                }
                Verdict::Rollback => {
                    res.rolled_back = true;
                    res.secs = t + 1;
                    return res;
                }
            }
        }
    }
    res
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let k = v.len();
    Some(if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    })
}

struct Summary {
    rollback_rate: f64,
    promote_rate: f64,
    median_secs: Option<f64>,
    median_requests: Option<f64>,
    median_promote_secs: Option<f64>,
    mean_excess: f64,
}

fn summarize(results: &[RunResult]) -> Summary {
    let n = results.len() as f64;
    let rb: Vec<&RunResult> = results.iter().filter(|r| r.rolled_back).collect();
    let mut secs: Vec<f64> = rb.iter().map(|r| r.secs as f64).collect();
    let mut reqs: Vec<f64> = rb.iter().map(|r| r.canary_requests as f64).collect();
    Summary {
        rollback_rate: rb.len() as f64 / n,
        promote_rate: results.iter().filter(|r| r.promoted).count() as f64 / n,
        median_secs: median(&mut secs),
        median_requests: median(&mut reqs),
        median_promote_secs: median(
            &mut results
                .iter()
                .filter(|r| r.promoted)
                .map(|r| r.secs as f64)
                .collect::<Vec<_>>(),
        ),
        mean_excess: results.iter().map(|r| r.excess.max(0.0)).sum::<f64>() / n,
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.0}"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs_aa: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let runs_ab: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let filter = args.next().unwrap_or_default();
    let start = Instant::now();
    println!(
        "| scenario | judge | runs | rollbacks | promoted | median s to rollback | median canary requests to rollback | median s to promote | mean excess failed requests |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut speedups = Vec::new();
    let mut excess_ratios = Vec::new();
    let mut notes = Vec::new();
    for (i, sc) in scenarios().iter().enumerate() {
        if !sc.name.contains(filter.as_str()) {
            continue;
        }
        let runs = if sc.is_null() { runs_aa } else { runs_ab };
        let mut per_judge = Vec::new();
        for judge in JudgeKind::ALL {
            let results: Vec<RunResult> = (0..runs)
                .map(|r| run(sc, judge, (i as u64) << 32 | r))
                .collect();
            let s = summarize(&results);
            println!(
                "| {} | {} | {runs} | {:.1}% | {:.1}% | {} | {} | {} | {:.1} |",
                sc.name,
                judge,
                100.0 * s.rollback_rate,
                100.0 * s.promote_rate,
                fmt(s.median_secs),
                fmt(s.median_requests),
                fmt(s.median_promote_secs),
                s.mean_excess
            );
            per_judge.push(s);
        }
        if !sc.is_null() {
            let (seq, thr) = (&per_judge[0], &per_judge[1]);
            match (seq.median_secs, thr.median_secs) {
                (Some(a), Some(b)) if thr.rollback_rate >= 0.5 => {
                    speedups.push((sc.name, b / a));
                    if sc.err_delta > 0.0 && thr.mean_excess > 0.0 {
                        excess_ratios.push((sc.name, seq.mean_excess / thr.mean_excess));
                    }
                }
                _ => notes.push(format!(
                    "{}: threshold detects {:.0}%, sequential {:.0}%",
                    sc.name,
                    100.0 * thr.rollback_rate,
                    100.0 * seq.rollback_rate
                )),
            }
        }
    }
    println!();
    println!(
        "Sequential vs threshold, scenarios where threshold detects in at least half the runs (ratio of median times to rollback):"
    );
    println!();
    for (name, s) in &speedups {
        println!("- {name}: {s:.1}x faster");
    }
    if !speedups.is_empty() {
        let g = (speedups.iter().map(|(_, s)| s.ln()).sum::<f64>() / speedups.len() as f64).exp();
        println!(
            "- geometric mean: {g:.1}x; slowest: {:.1}x",
            speedups
                .iter()
                .map(|(_, s)| *s)
                .fold(f64::INFINITY, f64::min)
        );
    }
    println!();
    println!("Excess failed requests, sequential / threshold (error scenarios above):");
    println!();
    for (name, r) in &excess_ratios {
        println!("- {name}: {r:.2}");
    }
    println!();
    println!("Scenarios where threshold detects in fewer than half the runs:");
    println!();
    for n in &notes {
        println!("- {n}");
    }
    eprintln!("benchmark took {:.1} s", start.elapsed().as_secs_f64());
}
