//! Time-uniform confidence sequences: intervals that cover the true value at
//! every moment simultaneously with probability at least 1 − α, so they may
//! be recomputed after every request.
//!
//! [`bernoulli`] is the beta-binomial mixture ("method of mixtures", Robbins
//! 1970; Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric,
//! nonasymptotic confidence sequences", Ann. Statist. 2021, §3): with a
//! Beta(a, b) prior over the rate, `M_n(p) = B(a+s, b+n−s) / B(a, b) /
//! (p^s (1−p)^(n−s))` is a test martingale for the true `p`, and Ville's
//! inequality makes `{p : M_n(p) < 1/α}` a confidence sequence. It is used to
//! show a canary's success rate against `thresholdRange` ("bound wholly
//! outside the range" is then a statement valid under continuous monitoring).
//! The quantile version (Howard & Ramdas, "Sequential estimation of quantiles
//! with applications to A/B-testing and best-arm identification", Bernoulli
//! 2022) reduces to the same Bernoulli sequence for the indicator "latency
//! above x", which is how [`exceedance`] is used for latency bounds.

use statrs::function::gamma::ln_gamma;

/// Prior of the mixture: Jeffreys' Beta(1/2, 1/2), which keeps mass near 0
/// where error rates live.
const PRIOR: (f64, f64) = (0.5, 0.5);

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// The confidence sequence for a Bernoulli rate after `events` in `trials`,
/// at level 1 − `alpha`: `(low, high)`, always within [0, 1]. Without trials
/// it is [0, 1].
pub fn bernoulli(trials: u64, events: u64, alpha: f64) -> (f64, f64) {
    if trials == 0 || !(alpha > 0.0 && alpha < 1.0) {
        return (0.0, 1.0);
    }
    let s = events.min(trials) as f64;
    let n = trials as f64;
    let (a, b) = PRIOR;
    let log_marginal = ln_beta(a + s, b + n - s) - ln_beta(a, b);
    let bound = (1.0 / alpha).ln();
    // ln M(p) = log_marginal − s ln p − (n−s) ln(1−p): convex in p with its
    // minimum at s/n, so the set below `bound` is an interval around s/n.
    let log_m = |p: f64| {
        let lp = if s > 0.0 { s * p.ln() } else { 0.0 };
        let lq = if n - s > 0.0 {
            (n - s) * (1.0 - p).ln()
        } else {
            0.0
        };
        log_marginal - lp - lq
    };
    let center = s / n;
    let solve = |mut inside: f64, mut outside: f64| {
        for _ in 0..60 {
            let mid = 0.5 * (inside + outside);
            if log_m(mid) < bound {
                inside = mid;
            } else {
                outside = mid;
            }
        }
        inside
    };
    let low = if log_m(0.0) < bound {
        0.0
    } else {
        solve(center, 0.0)
    };
    let high = if log_m(1.0) < bound {
        1.0
    } else {
        solve(center, 1.0)
    };
    (low.clamp(0.0, 1.0), high.clamp(0.0, 1.0))
}

/// The confidence sequence for the fraction of requests above a latency
/// threshold: the same as [`bernoulli`] with "slower than x" as the event.
pub fn exceedance(requests: u64, above: u64, alpha: f64) -> (f64, f64) {
    bernoulli(requests, above, alpha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64Mcg;

    #[test]
    fn shrinks_with_data_and_contains_the_estimate() {
        let (l1, h1) = bernoulli(100, 2, 0.05);
        let (l2, h2) = bernoulli(10_000, 200, 0.05);
        assert!(l1 < 0.02 && 0.02 < h1);
        assert!(l2 < 0.02 && 0.02 < h2);
        assert!(h2 - l2 < h1 - l1);
        assert!(h2 - l2 < 0.015, "{l2} {h2}");
        assert_eq!(bernoulli(0, 0, 0.05), (0.0, 1.0));
        let (l, h) = bernoulli(50, 0, 0.05);
        assert_eq!(l, 0.0);
        assert!(h > 0.0 && h < 0.2, "{h}");
        let (l, h) = bernoulli(50, 50, 0.05);
        assert_eq!(h, 1.0);
        assert!(l > 0.8);
    }

    /// Time-uniform coverage: over 400 runs of 2000 trials each, the true
    /// rate leaves the sequence at some point in at most α = 5 % of runs
    /// (20 expected at most; 38 is far above and cannot flake).
    #[test]
    fn covers_uniformly_over_time() {
        let mut rng = Pcg64Mcg::seed_from_u64(11);
        let p = 0.03;
        let mut missed = 0;
        for _ in 0..400 {
            let mut events = 0;
            for n in 1..=2000u64 {
                events += u64::from(rng.random_bool(p));
                if n % 25 == 0 {
                    let (l, h) = bernoulli(n, events, 0.05);
                    if p < l || p > h {
                        missed += 1;
                        break;
                    }
                }
            }
        }
        assert!(missed <= 38, "missed {missed} of 400");
    }
}

/// A confidence sequence for the `q`-quantile of the latencies in `hist`, in
/// milliseconds, at level 1 − `alpha`; `None` without data. Each end is the
/// edge of a histogram bucket; an end that cannot be bounded yet is 0 or +∞.
///
/// Why it is valid: `F(x) = P(latency ≤ x)`. If the upper end of the Bernoulli
/// sequence for `F(x)` is below `q`, the quantile is above `x`; the sequence's
/// ends are monotone in the count, so a wrong claim at any `x` implies the
/// sequence at the true quantile itself is wrong, which has probability ≤ α
/// at all times (Howard & Ramdas 2022, the fixed-quantile case).
pub fn quantile(hist: &serin_stats::LatencyHistogram, q: f64, alpha: f64) -> Option<(f64, f64)> {
    let n = hist.count();
    if n == 0 || !(q > 0.0 && q < 1.0) {
        return None;
    }
    let mut low = 0.0;
    let mut high = f64::INFINITY;
    let mut seen = 0u64;
    for (_, upper, count) in hist.buckets() {
        seen = seen.saturating_add(count);
        let (f_low, f_high) = bernoulli(n, seen, alpha);
        let edge = (upper as f64 + 1.0) / 1000.0;
        if f_high < q {
            low = edge;
        }
        if f_low >= q {
            high = edge;
            break;
        }
    }
    Some((low, high))
}

#[cfg(test)]
mod quantile_tests {
    use super::*;

    #[test]
    fn quantile_bounds_bracket_the_truth() {
        let mut h = serin_stats::LatencyHistogram::new();
        for ms in 1..=10_000u64 {
            h.record_micros(ms * 100); // 0.1 ms .. 1000 ms, uniform
        }
        let (lo, hi) = quantile(&h, 0.99, 0.01).unwrap();
        assert!(lo < 990.0 && 990.0 < hi, "{lo} {hi}");
        assert!(lo > 900.0 && hi < 1100.0, "{lo} {hi}");
        assert_eq!(
            quantile(&serin_stats::LatencyHistogram::new(), 0.5, 0.01),
            None
        );
        let mut few = serin_stats::LatencyHistogram::new();
        few.record_micros(5_000);
        let (lo, hi) = quantile(&few, 0.99, 0.01).unwrap();
        assert_eq!(lo, 0.0);
        assert_eq!(hi, f64::INFINITY);
    }
}
