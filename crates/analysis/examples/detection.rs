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
    /// `compare` on the success rate (maxDelta in points, maxRatio); when
    /// set, the success rate has no `thresholdRange` ("canary at most
    /// stable plus a margin").
    compare: Option<(Option<f64>, Option<f64>)>,
    /// The canary sits exactly on the margin's boundary: as bad as the
    /// margin allows, and no worse. A null point: a rollback is a false one.
    at_boundary: bool,
}

impl Scenario {
    fn is_null(&self) -> bool {
        self.at_boundary || (self.err_delta == 0.0 && self.slow == 1.0)
    }

    /// The highest canary error rate the comparison's null allows when
    /// stable's is `p_s`.
    fn boundary(&self, p_s: f64) -> f64 {
        match self.compare {
            Some((delta, ratio)) => {
                let mut b = f64::INFINITY;
                if let Some(d) = delta {
                    b = b.min(p_s + d / 100.0);
                }
                if let Some(r) = ratio {
                    b = b.min(p_s * r);
                }
                if b.is_finite() { b } else { p_s }
            }
            None => p_s,
        }
    }

    /// Stable's error rate at second `t`.
    fn stable_rate(&self, t: u64) -> f64 {
        match self.incident {
            Some((from, to, p, _)) if (from..to).contains(&t) => p,
            _ => self.base,
        }
    }

    fn config(&self, judge: JudgeKind) -> AnalysisConfig {
        let mut cfg = AnalysisConfig::flagger_defaults().with_judge(judge);
        cfg.steps = self.steps.to_vec();
        if let Some((delta, ratio)) = self.compare {
            cfg.metrics[0] = cfg.metrics[0]
                .clone()
                .range(None, None)
                .compare(delta, ratio);
        }
        cfg
    }
}

const FLAGGER_STEPS: &[u8] = &[10, 20, 30, 40, 50];
const HEAVY_STEPS: &[u8] = &[50];
const LIGHT_STEPS: &[u8] = &[2, 5, 10];
const FIXED_10: &[u8] = &[10];
/// Stable's error rate in the margin scenarios.
const MARGIN_BASE: f64 = 0.005;

/// Margins on the success rate (maxDelta 0.5 and 1 point, maxRatio 1.2)
/// at 1.5, 20 and 100 requests a second, the canary's share fixed at 10 %
/// or following Flagger's steps: an A/A twin, and a canary half a point
/// beyond the margin (stable 0.5 %: canary 1.5 %, 2 %, 1.1 %); and at 20
/// and 100 requests a second a canary on the margin's boundary (1.0 %,
/// 1.5 %, 0.6 %), the worst the margin allows: a rollback there is a
/// false one, as in the A/A twin.
fn margin_scenarios() -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut edges = Vec::new();
    let margins: [(&str, Option<f64>, Option<f64>); 3] = [
        ("maxDelta 0.5", Some(0.5), None),
        ("maxDelta 1", Some(1.0), None),
        ("maxRatio 1.2", None, Some(1.2)),
    ];
    let traffic: [(&str, f64, u64); 3] = [
        ("1.5 rps", 1.5, 7200),
        ("20 rps", 20.0, 1800),
        ("100 rps", 100.0, 1800),
    ];
    for (steps_name, steps) in [("share 10%", FIXED_10), ("steps", FLAGGER_STEPS)] {
        for (margin_name, delta, ratio) in margins {
            for (traffic_name, rps, cap) in traffic {
                let sc = Scenario {
                    name: "",
                    rps,
                    base: MARGIN_BASE,
                    err_delta: 0.0,
                    slow: 1.0,
                    incident: None,
                    steps,
                    cap,
                    compare: Some((delta, ratio)),
                    at_boundary: false,
                };
                let name = |what: &str| -> &'static str {
                    Box::leak(
                        format!("margin {margin_name}, {what}, {traffic_name}, {steps_name}")
                            .into_boxed_str(),
                    )
                };
                let bad = sc.boundary(MARGIN_BASE) + 0.005;
                out.push(Scenario {
                    name: name("A/A 0.5%"),
                    ..sc
                });
                out.push(Scenario {
                    name: name(&format!("canary {:.1}%", bad * 100.0)),
                    err_delta: bad - MARGIN_BASE,
                    ..sc
                });
                // Where a judge has enough traffic to decide within the
                // cap: a canary on the boundary itself (listed last, so
                // the other scenarios keep their seeds).
                if rps >= 20.0 {
                    let edge = sc.boundary(MARGIN_BASE);
                    edges.push(Scenario {
                        name: name(&format!("at the boundary {:.1}%", edge * 100.0)),
                        err_delta: edge - MARGIN_BASE,
                        at_boundary: true,
                        ..sc
                    });
                }
            }
        }
    }
    out.append(&mut edges);
    out
}

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
        compare: None,
        at_boundary: false,
    };
    let low = |n| s(n, 1.5, 7200);
    let med = |n| s(n, 20.0, 3600);
    let high = |n| s(n, 200.0, 3600);
    let mut all = vec![
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
    ];
    all.extend(margin_scenarios());
    all
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
    /// The rollback came from the judge's evidence (the sequential tests'
    /// e-value, or the oracle's likelihood ratio), not from counting
    /// failed checks.
    by_evidence: bool,
}

fn run(sc: &Scenario, judge: JudgeKind, seed: u64) -> RunResult {
    let cfg = sc.config(judge);
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
        by_evidence: false,
    };
    let mut delta = Pair::default();
    for t in 0..sc.cap {
        let weight = sc.steps[step];
        delta.stable.clear();
        delta.canary.clear();
        second(sc, seed, t, weight, &mut delta);
        res.canary_requests += delta.canary.requests;
        let p_s = sc.stable_rate(t);
        res.excess += delta.canary.errors as f64 - delta.canary.requests as f64 * p_s;
        window.merge(&delta);
        let at = (t + 1) * 1000;
        analyzer.observe(at, weight, &delta);
        if analyzer.early(at).is_some() {
            res.rolled_back = true;
            res.by_evidence = true;
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
                    res.by_evidence = true;
                    res.secs = t + 1;
                    return res;
                }
            }
        }
    }
    res
}

/// The oracle: Wald's sequential probability ratio test on the canary's
/// requests, knowing both true rates every second: the null is the canary
/// at the comparison's boundary (stable's true rate plus the margin), the
/// alternative its true rate (or, for a canary within the margin, the
/// boundary plus one point). It rolls back when the likelihood ratio
/// reaches 1/α (α = 0.01, as the judges), accepts the null at β = 0.05,
/// and follows the steps one per interval, promoting at the end of the
/// schedule once it has accepted. The limit no real test beats on
/// average: nothing about the rates is estimated.
///
/// For a slower canary the events are the canary's requests above stable's
/// true p99 (known: the latency model is lognormal): the null is stable's
/// 1 % above it (the judges' default latency margin, ratio 1), the
/// alternative the canary's true share above it.
fn run_oracle(sc: &Scenario, seed: u64) -> RunResult {
    let alpha: f64 = 0.01;
    let beta: f64 = 0.05;
    let (upper, lower) = ((1.0 / alpha).ln(), (beta / (1.0 - alpha)).ln());
    let mut res = RunResult {
        rolled_back: false,
        promoted: false,
        secs: sc.cap,
        canary_requests: 0,
        excess: 0.0,
        by_evidence: false,
    };
    let (mut step, mut llr, mut accepted) = (0usize, 0.0f64, false);
    let mut delta = Pair::default();
    for t in 0..sc.cap {
        let weight = sc.steps[step];
        delta.stable.clear();
        delta.canary.clear();
        second(sc, seed, t, weight, &mut delta);
        res.canary_requests += delta.canary.requests;
        let p_s = sc.stable_rate(t);
        res.excess += delta.canary.errors as f64 - delta.canary.requests as f64 * p_s;
        if !accepted {
            let (p0, p1, x, n) = if sc.slow != 1.0 {
                // Stable's true p99 this second, and the canary's true share
                // above it.
                let f = match sc.incident {
                    Some((from, to, _, lat)) if (from..to).contains(&t) => lat,
                    _ => 1.0,
                };
                let z99 = 2.326_347_874;
                let p99_micros = MEDIAN_MS * f * (SIGMA * z99).exp() * 1000.0;
                let tail = statrs::distribution::ContinuousCDF::sf(
                    &statrs::distribution::Normal::standard(),
                    z99 - sc.slow.ln() / SIGMA,
                );
                (
                    0.01,
                    tail,
                    delta.canary.latency.count_above(p99_micros as u64) as f64,
                    delta.canary.latency.count() as f64,
                )
            } else {
                let p0 = sc.boundary(p_s).min(1.0);
                let truth = (p_s + sc.err_delta).min(1.0);
                let p1 = if truth > p0 + 1e-12 {
                    truth
                } else {
                    (p0 + 0.01).min(1.0)
                };
                (
                    p0,
                    p1,
                    delta.canary.errors as f64,
                    delta.canary.requests as f64,
                )
            };
            let step_llr = if p0 <= 0.0 {
                if x > 0.0 {
                    f64::INFINITY
                } else {
                    n * (1.0 - p1).ln()
                }
            } else {
                x * (p1 / p0).ln() + (n - x) * ((1.0 - p1) / (1.0 - p0)).ln()
            };
            llr += step_llr;
            if llr >= upper {
                res.rolled_back = true;
                res.by_evidence = true;
                res.secs = t + 1;
                return res;
            }
            accepted = llr <= lower;
        }
        if (t + 1) % 60 == 0 {
            if step + 1 < sc.steps.len() {
                step += 1;
            } else if accepted {
                res.promoted = true;
                res.secs = t + 1;
                return res;
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
    /// Share of runs rolled back by evidence, and their median time.
    evidence_rate: f64,
    median_evidence_secs: Option<f64>,
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
        evidence_rate: results.iter().filter(|r| r.by_evidence).count() as f64 / n,
        median_evidence_secs: median(
            &mut results
                .iter()
                .filter(|r| r.by_evidence)
                .map(|r| r.secs as f64)
                .collect::<Vec<_>>(),
        ),
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
    let mut against_oracle = Vec::new();
    for (i, sc) in scenarios().iter().enumerate() {
        if !sc.name.contains(filter.as_str()) {
            continue;
        }
        let runs = if sc.is_null() { runs_aa } else { runs_ab };
        let mut per_judge = Vec::new();
        let oracle = {
            let results: Vec<RunResult> = (0..runs)
                .map(|r| run_oracle(sc, (i as u64) << 32 | r))
                .collect();
            Some(summarize(&results))
        };
        if let Some(s) = &oracle {
            println!(
                "| {} | oracle SPRT | {runs} | {:.1}% | {:.1}% | {} | {} | {} | {:.1} |",
                sc.name,
                100.0 * s.rollback_rate,
                100.0 * s.promote_rate,
                fmt(s.median_secs),
                fmt(s.median_requests),
                fmt(s.median_promote_secs),
                s.mean_excess
            );
        }
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
        if let Some(o) = &oracle {
            let seq = &per_judge[0];
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "-".to_owned(),
            };
            against_oracle.push(if sc.is_null() {
                format!(
                    "| {} | false rollbacks {:.1}% (oracle {:.1}%) | - | {:.1}% | promote in {} vs {} s ({}x) |",
                    sc.name,
                    100.0 * seq.rollback_rate,
                    100.0 * o.rollback_rate,
                    100.0 * seq.evidence_rate,
                    fmt(seq.median_promote_secs),
                    fmt(o.median_promote_secs),
                    ratio(seq.median_promote_secs, o.median_promote_secs)
                )
            } else {
                format!(
                    "| {} | caught {:.0}% vs oracle {:.0}% ({}) | {} vs {} s ({}x) | {:.0}% in {} s | {:.1} vs {:.1} ({}x) |",
                    sc.name,
                    100.0 * seq.rollback_rate,
                    100.0 * o.rollback_rate,
                    ratio(Some(seq.rollback_rate), Some(o.rollback_rate)),
                    fmt(seq.median_secs),
                    fmt(o.median_secs),
                    ratio(seq.median_secs, o.median_secs),
                    100.0 * seq.evidence_rate,
                    fmt(seq.median_evidence_secs),
                    seq.mean_excess,
                    o.mean_excess,
                    ratio(Some(seq.mean_excess), Some(o.mean_excess))
                )
            });
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
    println!();
    println!("Sequential against the oracle SPRT (same users):");
    println!();
    println!(
        "| scenario | rollbacks (sequential vs oracle) | median s to rollback | rolled back by the e-value | mean excess failed requests / healthy: median s to promote |"
    );
    println!("|---|---|---|---|---|");
    for line in &against_oracle {
        println!("{line}");
    }
    eprintln!("benchmark took {:.1} s", start.elapsed().as_secs_f64());
}
