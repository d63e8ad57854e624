//! The error comparison with a margin alone, against the oracle: how often
//! and how fast the table test of [`serin_analysis::eprocess::TableTest`]
//! reaches the judge's rollback bound on a canary beyond its margin (and on
//! one at the boundary, where any crossing is a false one), next to a
//! sequential probability ratio test that knows both true rates.
//!
//! `cargo run --release -p serin-analysis --example margin_power [RUNS]`

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serin_analysis::eprocess::{Margin, TableTest};

const ALPHA: f64 = 0.01;
const BETA: f64 = 0.05;
const STABLE: f64 = 0.005;
const CAP: u64 = 1800;

/// ln of a comparison's e-value, from the table test's bets.
type Score = Box<dyn Fn(&TableTest) -> f64>;

fn binomial(rng: &mut Pcg64Mcg, n: u64, p: f64) -> u64 {
    (0..n).filter(|_| rng.random_bool(p)).count() as u64
}

fn poisson(rng: &mut Pcg64Mcg, lambda: f64) -> u64 {
    let limit = (-lambda).exp();
    if lambda > 30.0 {
        let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
        return (lambda + lambda.sqrt() * z).round().max(0.0) as u64;
    }
    let mut k = 0;
    let mut p = rng.random::<f64>();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

fn median(mut v: Vec<u64>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_unstable();
    v[v.len() / 2].to_string()
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    // Weighting variants: (name, plug-in weight, fixed bets' weights scale, table share of the comparison).
    // Ways of weighing the table test's bets (ln of the comparison's
    // e-value): the plug-in bet alone with the comparison's previous share
    // (¾), the mixture as the judge weighs it (9/10), and each fixed bet
    // alone with the whole weight (what knowing the regression's size in
    // advance would give).
    let mut variants: Vec<(String, Score)> = vec![
        (
            "plug-in alone, ¾ (before)".into(),
            Box::new(|t: &TableTest| t.bets().0 + 0.75f64.ln()),
        ),
        (
            "mixture, 9/10 (now)".into(),
            Box::new(|t: &TableTest| t.log_e() + 0.9f64.ln()),
        ),
    ];
    let shifts: Vec<f64> = TableTest::new(&[], 0.01)
        .bets()
        .1
        .iter()
        .map(|b| b.0)
        .collect();
    for (i, shift) in shifts.iter().enumerate() {
        variants.push((
            format!("bet {shift} alone"),
            Box::new(move |t: &TableTest| t.bets().1[i].2),
        ));
    }
    let bound = (1.0 / ALPHA).ln() + 2f64.ln();
    println!(
        "| margin | rps | canary | oracle caught / median s | {} |",
        variants
            .iter()
            .map(|v| v.0.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|---|---|{}", "---|".repeat(variants.len()));
    for (name, margin) in [
        ("maxDelta 0.5", Margin::Delta(0.005)),
        ("maxDelta 1", Margin::Delta(0.01)),
        ("maxRatio 1.2", Margin::Ratio(1.2)),
    ] {
        for rps in [20.0, 100.0] {
            let edge = margin.boundary(STABLE);
            for (what, p_c) in [("beyond", edge + 0.005), ("boundary", edge)] {
                let mut oracle = Vec::new();
                let mut caught: Vec<Vec<u64>> = vec![Vec::new(); variants.len()];
                let truth_alt = if p_c > edge { p_c } else { edge + 0.01 };
                for r in 0..runs {
                    let mut rng = Pcg64Mcg::seed_from_u64(r as u64 * 7919 + (rps as u64));
                    let mut t = TableTest::new(&[margin], 0.01);
                    let mut llr = 0.0;
                    let mut oracle_done = false;
                    let mut done = vec![false; variants.len()];
                    for s in 0..CAP {
                        let nc = poisson(&mut rng, rps * 0.1);
                        let ns = poisson(&mut rng, rps * 0.9);
                        let xc = binomial(&mut rng, nc, p_c);
                        let xs = binomial(&mut rng, ns, STABLE);
                        t.update(nc, xc, ns, xs);
                        if !oracle_done {
                            llr += xc as f64 * (truth_alt / edge).ln()
                                + (nc - xc) as f64 * ((1.0 - truth_alt) / (1.0 - edge)).ln();
                            if llr >= ((1.0 - BETA) / ALPHA).ln() {
                                oracle.push(s);
                                oracle_done = true;
                            } else if llr <= (BETA / (1.0 - ALPHA)).ln() {
                                oracle_done = true;
                            }
                        }
                        for (i, (_, f)) in variants.iter().enumerate() {
                            if !done[i] && f(&t) >= bound {
                                done[i] = true;
                                caught[i].push(s);
                            }
                        }
                    }
                }
                let pct = |n: usize| 100.0 * n as f64 / runs as f64;
                println!(
                    "| {name} | {rps} | {what} {:.2}% | {:.1}% / {} | {} |",
                    p_c * 100.0,
                    pct(oracle.len()),
                    median(oracle.clone()),
                    caught
                        .iter()
                        .map(|c| format!("{:.1}% / {}", pct(c.len()), median(c.clone())))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
        }
    }
}
