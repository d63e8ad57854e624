//! E-processes: nonnegative processes whose expectation stays at most 1 under
//! the null at every stopping time, so by Ville's inequality
//! `P(sup_t E_t ≥ 1/α) ≤ α` however often they are looked at.
//!
//! Everything here is one construction: a stream of binary events, each
//! "positive" with probability `σ(b + δ)` where `σ` is the logistic function,
//! `b` a baseline log-odds known before the event (predictable) and `δ` the
//! unknown effect. The null is `δ ≤ 0` (composite); the alternative `δ > 0`.
//! For a fixed `δ₁ > 0` the product of likelihood ratios
//! `Π σ(b+δ₁)^x σ(−b−δ₁)^(1−x) / (σ(b)^x σ(−b)^(1−x))` is a test
//! supermartingale under every `δ ≤ 0`: the one-step expectation is linear in
//! the event probability, equals 1 at `δ = 0`, and the coefficient is
//! positive because `σ(b+δ₁) > σ(b)`. A mixture over a grid of `δ₁` with
//! fixed weights is again a test supermartingale (Robbins' method of
//! mixtures; Grünwald, de Heide & Koolen, "Safe testing", 2024; Ramdas et
//! al., "Game-theoretic statistics and safe anytime-valid inference", 2023).
//!
//! Two tests use it:
//! - **Split test** ([`SplitTest`]): which version an error (or a slow
//!   request) came from. With `n_c` canary and `n_s` stable requests in one
//!   second, an event comes from the canary with probability
//!   `ρr / (ρr + 1 − ρ)` (`ρ = n_c/(n_c+n_s)`, `r` = canary/stable event-rate
//!   ratio), i.e. log-odds `logit ρ + ln r`. Testing `r ≤ r₀` is `δ = ln r − ln r₀ ≤ 0`
//!   with `b = logit ρ + ln r₀`. The split may change every second (steps,
//!   diurnal traffic): only the per-second counts enter. An incident that
//!   multiplies both versions' rates alike leaves `r` unchanged: the test
//!   does not see it. This is the e-process over error events of Lindon,
//!   Sanden & Shirikian (KDD 2022) specialised to two arms with a known split.
//!   *Exactness:* given a second's counts, with equal per-request error
//!   probabilities the canary's share of errors is hypergeometric, which is
//!   less dispersed than the binomial in the convex order (Hoeffding 1963);
//!   the likelihood ratio is convex in the count, so its expectation is at
//!   most 1: the test is exact for `r₀ = 1` (and for `r < 1` by monotone
//!   likelihood ratio). For `r₀ > 1` it is the rare-event (Poisson) approximation.
//! - **Rate test** ([`RateTest`]): one version's events against a fixed rate
//!   `p₀` (`b = logit p₀`): "the canary's error rate is above 1 %".

/// Effects of the grid prior, in log-odds: rate ratios from about 1.1 to 90.
/// Small effects get most of the grid points because large ones win quickly anyway.
const GRID: [f64; 11] = [0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0, 4.5, 7.0];

/// Prior weight of each grid point (they sum to 1). Not uniform: a quarter
/// on the largest effect, because at low traffic a gross regression shows
/// only a handful of events before a person would notice, and with this
/// weight three canary errors at a 10 % split (likelihood ratio ≈ 10 each)
/// reach an e-value of 250; small effects lose at most ln(1/0.06) ≈ 2.8
/// instead of ln 10 ≈ 2.3 against their best grid point, which the evidence
/// gate accounts for. Any fixed prior keeps the mixture a test
/// supermartingale (Robbins 1970; Ramdas et al. 2023).
const WEIGHTS: [f64; GRID.len()] = [
    0.06, 0.06, 0.06, 0.07, 0.07, 0.07, 0.08, 0.08, 0.09, 0.11, 0.25,
];

/// `−ln` of the smallest prior weight: what the mixture can lose against
/// the best single grid point.
pub(crate) fn grid_penalty() -> f64 {
    -WEIGHTS.iter().copied().fold(1.0, f64::min).ln()
}

/// `ln σ(x)`, stable for large |x|.
fn ln_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

/// `ln Σ exp(v)`.
pub(crate) fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY || max.is_nan() {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// A grid-mixture e-process over log-odds shifts of binary events.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogitMixture {
    /// ln of each grid point's likelihood ratio so far.
    log_lr: [f64; GRID.len()],
    /// Events seen.
    events: u64,
}

impl Default for LogitMixture {
    fn default() -> Self {
        LogitMixture {
            log_lr: [0.0; GRID.len()],
            events: 0,
        }
    }
}

// === impl LogitMixture ===

impl LogitMixture {
    /// A fresh e-process (value 1).
    pub fn new() -> Self {
        Self::default()
    }

    /// `positive` events and `negative` events, all with baseline log-odds `b`.
    /// Non-finite baselines are ignored (no information).
    pub fn update(&mut self, positive: u64, negative: u64, b: f64) {
        if !b.is_finite() || positive.saturating_add(negative) == 0 {
            return;
        }
        let (x, y) = (positive as f64, negative as f64);
        let (lp0, ln0) = (ln_sigmoid(b), ln_sigmoid(-b));
        for (l, d) in self.log_lr.iter_mut().zip(GRID) {
            *l += x * (ln_sigmoid(b + d) - lp0) + y * (ln_sigmoid(-b - d) - ln0);
        }
        self.events = self
            .events
            .saturating_add(positive.saturating_add(negative));
    }

    /// ln of the e-value: the equally weighted mixture over the grid.
    pub fn log_e(&self) -> f64 {
        log_sum_exp(self.log_lr.iter().zip(WEIGHTS).map(|(l, w)| l + w.ln()))
    }

    /// The e-value (may be `inf` for overwhelming evidence).
    pub fn e_value(&self) -> f64 {
        self.log_e().exp()
    }

    /// Events seen so far.
    pub fn events(&self) -> u64 {
        self.events
    }
}

/// Is the canary's event rate more than `r₀` times stable's? Events are
/// attributed to versions under the known split of each second.
///
/// Seconds in which only one version had requests carry no information on
/// their own (the split of their events is certain), which at low traffic
/// would waste most canary errors. So seconds are pooled into a bucket until
/// both versions have served requests, for at most [`MAX_BUCKET_SECS`]
/// seconds (then the bucket is dropped). Closing a bucket depends only on
/// request arrivals, never on outcomes, so the conditional argument holds
/// for the bucket as it does for a second, provided rates are steady within
/// those few seconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitTest {
    mixture: LogitMixture,
    /// Pooled (canary requests, canary events, stable requests, stable events).
    pending: [u64; 4],
    /// Seconds pooled so far, and the null ratio fixed when the bucket opened.
    pending_secs: u32,
    pending_r0: f64,
    /// Planning alternative `(p_ref, r₁)`: see [`SplitTest::plan`].
    plan: Option<(f64, f64)>,
    /// Expected ln-likelihood ratio accumulated under the planning alternative.
    info: f64,
    /// The same for the last closed bucket, and its canary requests.
    last_info: (f64, u64),
}

/// Longest a bucket waits for both versions to have traffic.
pub const MAX_BUCKET_SECS: u32 = 10;

// === impl SplitTest ===

impl SplitTest {
    /// A fresh test.
    pub fn new() -> Self {
        Self::default()
    }

    /// One second: `canary_events` of `canary_requests`, `stable_events` of
    /// `stable_requests`, null ratio `r0` (≥ 1 is the useful range). Seconds
    /// where one version had no requests are pooled with the next ones.
    pub fn update(
        &mut self,
        canary_requests: u64,
        canary_events: u64,
        stable_requests: u64,
        stable_events: u64,
        r0: f64,
    ) {
        if r0.is_nan() || r0 <= 0.0 || canary_requests.saturating_add(stable_requests) == 0 {
            return;
        }
        if self.pending_secs == 0 {
            self.pending_r0 = r0;
        }
        let add = [
            canary_requests,
            canary_events.min(canary_requests),
            stable_requests,
            stable_events.min(stable_requests),
        ];
        for (p, a) in self.pending.iter_mut().zip(add) {
            *p = p.saturating_add(a);
        }
        self.pending_secs += 1;
        let [nc, xc, ns, xs] = self.pending;
        if nc > 0 && ns > 0 {
            let b = (nc as f64).ln() - (ns as f64).ln() + self.pending_r0.ln();
            self.mixture.update(xc, xs, b);
            if let Some((p_ref, r1)) = self.plan {
                let gain = expected_gain(nc, ns, p_ref, self.pending_r0, r1);
                self.info += gain;
                self.last_info = (gain, nc);
            }
            self.pending = [0; 4];
            self.pending_secs = 0;
        } else if self.pending_secs >= MAX_BUCKET_SECS {
            self.pending = [0; 4];
            self.pending_secs = 0;
        }
    }

    /// The e-value against "canary rate ≤ r₀ × stable rate".
    pub fn e_value(&self) -> f64 {
        self.mixture.e_value()
    }

    /// ln of the e-value.
    pub fn log_e(&self) -> f64 {
        self.mixture.log_e()
    }

    /// Events (from both versions) seen.
    pub fn events(&self) -> u64 {
        self.mixture.events()
    }

    /// Sets the planning alternative for the buckets to come: stable's event
    /// rate is about `p_ref` and a regression worth catching makes the
    /// canary's `r1` times that. Only [`info`](Self::info) uses it; the
    /// e-value never does.
    pub fn plan(&mut self, p_ref: f64, r1: f64) {
        self.plan =
            (p_ref > 0.0 && p_ref < 1.0 && r1.is_finite() && r1 > 0.0).then_some((p_ref, r1));
    }

    /// Expected growth of ln(e-value) so far had the canary regressed by the
    /// planning alternative (the sum over buckets of the Kullback-Leibler
    /// divergence of the split of events): how much a regression of that
    /// size would have been able to show by now. Depends only on request
    /// counts, never on outcomes.
    pub fn info(&self) -> f64 {
        self.info
    }

    /// Expected gain per canary request in the last bucket (0 before any).
    pub fn info_per_canary_request(&self) -> f64 {
        let (gain, nc) = self.last_info;
        if nc == 0 { 0.0 } else { gain / nc as f64 }
    }
}

/// Expected ln-likelihood ratio of one bucket at the grid point
/// `δ = ln(r₁/r₀)` when the canary's event rate is `r₁·p_ref` and stable's
/// `p_ref`: the expected events of each version times the log ratio of
/// attribution probabilities under the alternative and the null.
fn expected_gain(nc: u64, ns: u64, p_ref: f64, r0: f64, r1: f64) -> f64 {
    if r1 <= r0 || nc == 0 || ns == 0 {
        return 0.0;
    }
    let odds = (nc as f64).ln() - (ns as f64).ln();
    let (b0, b1) = (odds + r0.ln(), odds + r1.ln());
    let p1 = (p_ref * r1).min(1.0);
    let (ec, es) = (nc as f64 * p1, ns as f64 * p_ref);
    let v = ec * (ln_sigmoid(b1) - ln_sigmoid(b0)) + es * (ln_sigmoid(-b1) - ln_sigmoid(-b0));
    if v.is_finite() { v.max(0.0) } else { 0.0 }
}

/// Is the event rate above `p₀`? One version's trials, the null "every trial's
/// probability is at most `p₀`" (a supermartingale even when the rate drifts).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateTest {
    mixture: LogitMixture,
}

// === impl RateTest ===

impl RateTest {
    /// A fresh test.
    pub fn new() -> Self {
        Self::default()
    }

    /// `events` out of `trials`, against the rate `p0` (in (0, 1)).
    pub fn update(&mut self, trials: u64, events: u64, p0: f64) {
        if !(p0 > 0.0 && p0 < 1.0) {
            return;
        }
        let x = events.min(trials);
        self.mixture.update(x, trials - x, (p0 / (1.0 - p0)).ln());
    }

    /// The e-value against "rate ≤ p₀".
    pub fn e_value(&self) -> f64 {
        self.mixture.e_value()
    }

    /// ln of the e-value.
    pub fn log_e(&self) -> f64 {
        self.mixture.log_e()
    }
}

/// Has the canary's event rate been shown to be below a limit `p₁`? The
/// other side of the evidence gate: an e-process against "the rate is at
/// least `p₁`" (a planning-size regression), so that promoting once it
/// reaches `1/β` lets such a regression through with probability at most
/// `β` however often it is looked at.
///
/// Each second contributes the likelihood ratio of the canary's counts
/// under a bet `q < p₁` against `p₁`; its expectation at a rate `p` is
/// linear in `p` with a negative slope, 1 at `p = p₁`, so it is at most 1
/// for every rate at or above `p₁`, even when the rate drifts. The bet is
/// predictable: the canary's rate so far, shrunk toward stable's (a healthy
/// canary is like stable). A canary without errors next to a stable without
/// errors is shown below +1 point at β = 5 % after about 300 requests (the
/// oracle's 306), at β = 1 % after about 460; a confidence sequence for the
/// canary's rate alone needs about 690 at 5 %, paying for not knowing the
/// rate it bets on.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleOut {
    /// ln of the e-value so far.
    log_e: f64,
    /// Canary trials and events seen.
    trials: u64,
    events: u64,
}

/// Pseudo-trials of the [`RuleOut`] bet's shrinkage toward stable's rate.
const RULE_OUT_PRIOR: f64 = 100.0;

// === impl RuleOut ===

impl RuleOut {
    /// A fresh test (e-value 1).
    pub fn new() -> Self {
        Self::default()
    }

    /// The bet for the next trials: the canary's rate so far, shrunk toward
    /// `reference` (stable's rate), if it is below `limit`.
    fn bet(&self, reference: f64, limit: f64) -> Option<f64> {
        let q = (self.events as f64 + RULE_OUT_PRIOR * reference.clamp(0.0, 1.0))
            / (self.trials as f64 + RULE_OUT_PRIOR);
        (q.is_finite() && limit > 0.0 && limit < 1.0 && q < limit * 0.999).then_some(q)
    }

    /// `events` of `trials` against the limit `limit`, betting near
    /// `reference` (both fixed before these trials were seen).
    pub fn update(&mut self, trials: u64, events: u64, reference: f64, limit: f64) {
        let events = events.min(trials);
        if trials == 0 {
            return;
        }
        if let Some(q) = self.bet(reference, limit) {
            let step = bernoulli_log_lr(events as f64, trials as f64, q, limit);
            if step.is_finite() {
                self.log_e += step;
            }
        }
        self.trials = self.trials.saturating_add(trials);
        self.events = self.events.saturating_add(events);
    }

    /// ln of the e-value against "the rate is at least the limit".
    pub fn log_e(&self) -> f64 {
        self.log_e
    }

    /// Roughly how many more trials until the e-value reaches `1/beta` if
    /// the canary's rate stays as seen (`None`: it would not).
    pub fn trials_to(&self, beta: f64, reference: f64, limit: f64) -> Option<f64> {
        let left = (1.0 / beta).ln() - self.log_e;
        if left <= 0.0 {
            return Some(0.0);
        }
        let q = self.bet(reference, limit)?;
        let seen = if self.trials > 0 {
            self.events as f64 / self.trials as f64
        } else {
            reference
        };
        let per = bernoulli_log_lr(seen.min(1.0), 1.0, q, limit);
        (per.is_finite() && per > 0.0).then(|| (left / per).ceil())
    }
}

/// The null a [`TableTest`] tests: the canary's event rate is at most
/// stable's plus a margin.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Margin {
    /// `p_c ≤ p_s + d` (`d` a fraction, ≥ 0).
    Delta(f64),
    /// `p_c ≤ r · p_s` (`r ≥ 1`).
    Ratio(f64),
}

// === impl Margin ===

impl Margin {
    /// The highest canary rate the null allows when stable's rate is `p_s`.
    pub fn boundary(self, p_s: f64) -> f64 {
        match self {
            Margin::Delta(d) => p_s + d,
            Margin::Ratio(r) => p_s * r,
        }
    }

    /// The slope of the boundary in `p_s`.
    fn slope(self) -> f64 {
        match self {
            Margin::Delta(_) => 1.0,
            Margin::Ratio(r) => r,
        }
    }

    /// The largest stable rate at which the boundary is still below 1.
    fn max_stable(self) -> f64 {
        match self {
            Margin::Delta(d) => (1.0 - d).min(1.0),
            Margin::Ratio(r) => (1.0 / r).min(1.0),
        }
    }
}

/// `(q − p) / (p (1 − p))`: the derivative of a Bernoulli log-likelihood
/// ratio's expectation, decreasing in `p` on (0, 1).
fn score(q: f64, p: f64) -> f64 {
    (q - p) / (p * (1.0 - p))
}

/// The null point a block's likelihood ratio is taken against: the reverse
/// information projection of the alternative `(q_c, q_s)` onto the null's
/// boundary `p_c = g(p_s)` for a block of `n_c` canary and `n_s` stable
/// requests. Returns `(p_c*, p_s*)`.
///
/// For Bernoulli blocks `E_p[LR]` factorises into
/// `(p_c a_c + (1−p_c) b_c)^{n_c} (p_s a_s + (1−p_s) b_s)^{n_s}`, whose ln is
/// concave in `(p_c, p_s)`; it is 0 at `p*`, and `p*` is where its gradient
/// is normal to the boundary: `n_c g' score(q_c, p_c*) + n_s score(q_s,
/// p_s*) = 0`. With `q_c > g(q_s)` the gradient points out of the null
/// region (`q_c ≥ p_c*`), so by concavity `p*` is the maximum over the whole
/// region `p_c ≤ g(p_s)`: `E_p[LR] ≤ 1` for every null point (Turner, Ly &
/// Grünwald, "Generic E-variables for exact sequential k-sample tests that
/// allow for optional stopping", 2024, for `g(p) = p`).
fn null_point(margin: Margin, n_c: f64, n_s: f64, q_c: f64, q_s: f64) -> Option<(f64, f64)> {
    let g = |p: f64| margin.boundary(p);
    let slope = margin.slope();
    let h = |p_s: f64| n_c * slope * score(q_c, g(p_s)) + n_s * score(q_s, p_s);
    // h decreases from +∞ (p_s → 0, when n_s > 0 and q_s > 0) to −∞.
    let (mut lo, mut hi) = (0.0f64, margin.max_stable());
    for _ in 0..56 {
        let mid = (lo + hi) / 2.0;
        if mid <= 0.0 || mid >= 1.0 || g(mid) >= 1.0 {
            hi = mid;
            continue;
        }
        if h(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let p_s = (lo + hi) / 2.0;
    let p_c = g(p_s);
    (p_s > 0.0 && p_s < 1.0 && p_c > 0.0 && p_c < 1.0).then_some((p_c, p_s))
}

/// `ln` of a Bernoulli likelihood ratio of `x` events in `n` trials, `q`
/// against `p`.
fn bernoulli_log_lr(x: f64, n: f64, q: f64, p: f64) -> f64 {
    let mut v = 0.0;
    if x > 0.0 {
        v += x * (q / p).ln();
    }
    if n > x {
        v += (n - x) * ((1.0 - q) / (1.0 - p)).ln();
    }
    v
}

/// Is the canary's event rate above stable's plus a margin? The safe test
/// for 2×2 tables: each block (a second, or a few pooled while one version
/// has no requests) contributes the likelihood ratio of its counts under a
/// predictable alternative `(q_c, q_s)` against the null point closest to
/// it ([`null_point`]), which has expectation at most 1 under *every*
/// null point. So the product is a test supermartingale even when both
/// rates move from second to second (a shared incident), as long as within
/// a block the canary's rate is at most stable's plus the margin.
///
/// Unlike the [`SplitTest`], which only sees who got the errors, this test
/// also uses how many requests succeeded, and so gets close to an oracle
/// that knows stable's rate: with a fixed split the per-block null points
/// coincide with the pooled one, so stratifying by second costs nothing.
///
/// The alternative is a plug-in: stable's rate so far, and the canary's rate
/// so far shrunk toward the null boundary plus the planning regression
/// (so the first blocks bet on a regression worth catching, and a healthy
/// canary's bets fade to nothing).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableTest {
    /// The null's margins (one or two); each block tests the one tighter
    /// at stable's rate so far (a superset of the null, so still valid).
    margins: Vec<Margin>,
    /// ln of the plug-in bet's likelihood ratio so far (see
    /// [`TableTest::log_e`] for the mixture).
    log_e: f64,
    /// ln of each fixed bet's likelihood ratio so far, one per
    /// [`TABLE_SHIFTS`]. Absent from evidence saved before these bets
    /// existed: they start afresh (a bet that starts later is still an
    /// e-process from then on, and so is the mixture).
    #[serde(default)]
    shifts: Vec<f64>,
    /// Everything seen in closed blocks: canary requests, events, stable
    /// requests, events.
    total: [u64; 4],
    /// The open block.
    pending: [u64; 4],
    pending_secs: u32,
    /// Planning regression above the boundary (a fraction).
    planned: f64,
    /// Expected ln likelihood ratio of each fixed bet had the canary
    /// regressed by `planned` (one per [`TABLE_SHIFTS`]; absent from
    /// evidence saved before the fixed bets: counted afresh).
    #[serde(default)]
    shift_info: Vec<f64>,
    /// The best bet's expected gain in the last closed block, and the
    /// block's canary requests.
    last_info: (f64, u64),
}

/// Pseudo-requests of the canary's plug-in prior.
const PRIOR_REQUESTS: f64 = 50.0;

/// The table test's fixed bets: the canary's rate this far above the
/// boundary, in log-odds (0.41 is a canary at 1.5 % on a 1 % boundary,
/// 0.7 one at 2 %, 1.0 the planning regression +1 point on a 0.6 %
/// boundary). A plug-in bet alone learns the canary's rate from its own
/// noisy record and pays for it (its early bets are far off, and later
/// ones jitter by ± a third of a point at a thousand requests); a bet
/// fixed near the truth pays only the ln of its prior weight (Robbins'
/// method of mixtures). Measured with `--example margin_power` on a
/// canary half a point beyond its margin at 100 requests/s, 10 % share:
/// the plug-in alone (with the comparison's previous ¾) needs 695 s
/// (median), this mixture (with 9/10) 617 s, the best single bet, known
/// in advance and given the whole weight, 443 s, the oracle 353 s.
const TABLE_SHIFTS: [f64; 8] = [0.15, 0.25, 0.35, 0.5, 0.7, 1.0, 1.6, 2.8];

/// Prior weights of [`TABLE_SHIFTS`]; the plug-in has the rest
/// ([`PLUG_IN_WEIGHT`]). Most of it on shifts 0.25–0.7 (a canary 30–100 %
/// above the boundary's odds), where each request carries least
/// information and a nat of prior costs most requests; a larger shift's
/// requests carry several times more (the divergence grows as the shift
/// squared), so its smaller weight costs few of them.
const TABLE_SHIFT_WEIGHTS: [f64; TABLE_SHIFTS.len()] =
    [0.04, 0.14, 0.22, 0.22, 0.12, 0.07, 0.045, 0.045];

/// The plug-in bet's prior weight: it adapts to a canary's rate off the
/// grid (and is what evidence saved before the fixed bets holds).
const PLUG_IN_WEIGHT: f64 = 0.1;

/// `ln(p / (1 − p))`.
fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// `1 / (1 + e^{−x})`.
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

// === impl TableTest ===

impl TableTest {
    /// A fresh test of the null "canary rate ≤ every one of `margins`'
    /// boundaries" (none: equal rates), planning to catch a regression
    /// `planned` (a fraction) above the boundary.
    pub fn new(margins: &[Margin], planned: f64) -> Self {
        let mut margins: Vec<Margin> = margins
            .iter()
            .filter_map(|m| match *m {
                Margin::Delta(d) if (0.0..1.0).contains(&d) => Some(*m),
                Margin::Ratio(r) if r.is_finite() && r >= 1.0 => Some(*m),
                _ => None,
            })
            .collect();
        if margins.is_empty() {
            margins.push(Margin::Ratio(1.0));
        }
        TableTest {
            margins,
            log_e: 0.0,
            shifts: vec![0.0; TABLE_SHIFTS.len()],
            total: [0; 4],
            pending: [0; 4],
            pending_secs: 0,
            planned: planned.max(1e-6),
            shift_info: vec![0.0; TABLE_SHIFTS.len()],
            last_info: (0.0, 0),
        }
    }

    /// Stable's rate so far, shrunk toward nothing (never 0 or 1).
    fn stable_rate(&self) -> f64 {
        (self.total[3] as f64 + 0.5) / (self.total[2] as f64 + 1.0)
    }

    /// The margin tighter at stable's rate `q_s`.
    fn margin(&self, q_s: f64) -> Margin {
        self.margins
            .iter()
            .copied()
            .min_by(|a, b| a.boundary(q_s).total_cmp(&b.boundary(q_s)))
            .unwrap_or(Margin::Ratio(1.0))
    }

    /// The alternative bet on for the next block, and the margin tested.
    fn alternative(&self) -> (f64, f64, Margin) {
        let q_s = self.stable_rate();
        let margin = self.margin(q_s);
        let edge = margin.boundary(q_s);
        let prior = (edge + self.planned).min(0.999);
        let q_c = (self.total[1] as f64 + PRIOR_REQUESTS * prior)
            / (self.total[0] as f64 + PRIOR_REQUESTS);
        let floor = edge + (edge * 1e-3).max(1e-9);
        (q_c.max(floor).min(0.9999), q_s, margin)
    }

    /// One second's counts. Seconds where one version had no requests are
    /// pooled with the next ones (at most [`MAX_BUCKET_SECS`]).
    pub fn update(
        &mut self,
        canary_requests: u64,
        canary_events: u64,
        stable_requests: u64,
        stable_events: u64,
    ) {
        if canary_requests.saturating_add(stable_requests) == 0 {
            return;
        }
        let add = [
            canary_requests,
            canary_events.min(canary_requests),
            stable_requests,
            stable_events.min(stable_requests),
        ];
        for (p, a) in self.pending.iter_mut().zip(add) {
            *p = p.saturating_add(a);
        }
        self.pending_secs += 1;
        let [nc, xc, ns, xs] = self.pending;
        if nc > 0 && ns > 0 {
            let (n_c, n_s) = (nc as f64, ns as f64);
            let (q_c, q_s, margin) = self.alternative();
            // Only an alternative strictly beyond the boundary makes the
            // projection the null's worst point (a boundary at or above 1,
            // e.g. a margin on a service failing most requests, leaves
            // nothing to test).
            // The planning regression, for the expected gains (counts only).
            let planned = (margin.boundary(q_s) + self.planned).min(0.999);
            // One bet on the canary at `q_c`: the block's ln likelihood
            // ratio against its null point, and what it would be expected
            // to gain had the canary been at `planned`.
            let bet = |q_c: f64, x_c: f64, x_s: f64| -> Option<(f64, f64)> {
                if !(q_c < 1.0 && q_c > margin.boundary(q_s)) {
                    return None;
                }
                let (p_c, p_s) = null_point(margin, n_c, n_s, q_c, q_s)?;
                let step =
                    bernoulli_log_lr(x_c, n_c, q_c, p_c) + bernoulli_log_lr(x_s, n_s, q_s, p_s);
                let gain = n_c * bernoulli_log_lr(planned, 1.0, q_c, p_c)
                    + n_s * bernoulli_log_lr(q_s, 1.0, q_s, p_s);
                (step.is_finite() && gain.is_finite()).then_some((step, gain))
            };
            let (x_c, x_s) = (xc as f64, xs as f64);
            if let Some((step, _)) = bet(q_c, x_c, x_s) {
                self.log_e += step;
            }
            for v in [&mut self.shifts, &mut self.shift_info] {
                if v.len() != TABLE_SHIFTS.len() {
                    v.resize(TABLE_SHIFTS.len(), 0.0);
                }
            }
            let edge = logit(margin.boundary(q_s));
            let mut gains = [0.0; TABLE_SHIFTS.len()];
            for (i, d) in TABLE_SHIFTS.iter().enumerate() {
                if let Some((step, gain)) = bet(sigmoid(edge + d), x_c, x_s) {
                    self.shifts[i] += step;
                    self.shift_info[i] += gain;
                    gains[i] = gain;
                }
            }
            let best = self.best_bet();
            self.last_info = (best.map_or(0.0, |i| gains[i]), nc);
            for (t, p) in self.total.iter_mut().zip(self.pending) {
                *t = t.saturating_add(p);
            }
            self.pending = [0; 4];
            self.pending_secs = 0;
        } else if self.pending_secs >= MAX_BUCKET_SECS {
            // Counted for the plug-in rates (they only steer the bets), not
            // tested.
            for (t, p) in self.total.iter_mut().zip(self.pending) {
                *t = t.saturating_add(p);
            }
            self.pending = [0; 4];
            self.pending_secs = 0;
        }
    }

    /// The fixed bet that would have gained most under the planning
    /// regression, its prior weight counted.
    fn best_bet(&self) -> Option<usize> {
        self.shift_info
            .iter()
            .zip(TABLE_SHIFT_WEIGHTS)
            .map(|(i, w)| i + w.ln())
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// ln of the e-value against "canary rate ≤ stable's plus the margin":
    /// the mixture, with fixed weights, of the plug-in bet and the fixed
    /// bets (`TABLE_SHIFTS`). Each is a test supermartingale on its own,
    /// so their average is one too.
    pub fn log_e(&self) -> f64 {
        let fixed = self
            .shifts
            .iter()
            .zip(TABLE_SHIFT_WEIGHTS)
            .map(|(l, w)| l + w.ln());
        let v = log_sum_exp(std::iter::once(self.log_e + PLUG_IN_WEIGHT.ln()).chain(fixed));
        if v.is_nan() { 0.0 } else { v }
    }

    /// ln of each bet's likelihood ratio so far: the plug-in's, then the
    /// fixed bets' with their shifts above the boundary (log-odds) and prior
    /// weights. For benchmarks that weigh the bets otherwise.
    pub fn bets(&self) -> (f64, Vec<(f64, f64, f64)>) {
        let fixed = TABLE_SHIFTS
            .iter()
            .zip(TABLE_SHIFT_WEIGHTS)
            .enumerate()
            .map(|(i, (d, w))| (*d, w, self.shifts.get(i).copied().unwrap_or(0.0)))
            .collect();
        (self.log_e, fixed)
    }

    /// The e-value.
    pub fn e_value(&self) -> f64 {
        self.log_e().exp()
    }

    /// Expected growth so far, under the planning regression, of the ln
    /// likelihood ratio of the fixed bet that gains most from it (its
    /// weight counted in choosing it; see [`info_cost`](Self::info_cost)).
    /// Depends on request counts only, never on outcomes.
    pub fn info(&self) -> f64 {
        self.best_bet()
            .map(|i| self.shift_info[i])
            .filter(|v| v.is_finite())
            .map_or(0.0, |v| v.max(0.0))
    }

    /// What the mixture gives up against that bet's own likelihood ratio:
    /// `−ln` of its prior weight (the mixture is at least each bet times
    /// its weight).
    pub fn info_cost(&self) -> f64 {
        let w = self
            .best_bet()
            .map_or(TABLE_SHIFT_WEIGHTS[0], |i| TABLE_SHIFT_WEIGHTS[i]);
        -w.ln()
    }

    /// Expected gain per canary request in the last block (0 before any).
    pub fn info_per_canary_request(&self) -> f64 {
        let (gain, nc) = self.last_info;
        if nc == 0 { 0.0 } else { gain / nc as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64Mcg;

    #[test]
    fn prior_weights_sum_to_one() {
        assert!((WEIGHTS.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(WEIGHTS.iter().all(|w| *w > 0.0));
    }

    #[test]
    fn information_grows_with_requests_only() {
        // Planning alternative: stable 0.1 %, canary 11× (+1 point).
        let mut t = SplitTest::new();
        t.plan(0.001, 11.0);
        assert_eq!(t.info(), 0.0);
        t.update(10, 0, 90, 0, 1.0);
        let one = t.info();
        assert!(one > 0.0);
        // Outcomes do not matter, only counts.
        let mut u = SplitTest::new();
        u.plan(0.001, 11.0);
        u.update(10, 7, 90, 3, 1.0);
        assert!((u.info() - one).abs() < 1e-15);
        // KL of the split of events, by hand: π₀ = 0.1, π₁ = 1.1/2.
        let (p0, p1) = (0.1f64, 1.1 / 2.0);
        let by_hand = 10.0 * 0.011 * (p1 / p0).ln() + 90.0 * 0.001 * ((1.0 - p1) / (1.0 - p0)).ln();
        assert!((one - by_hand).abs() < 1e-12, "{one} {by_hand}");
        assert!((t.info_per_canary_request() - one / 10.0).abs() < 1e-15);
        // No alternative beyond the null: nothing to gain.
        let mut v = SplitTest::new();
        v.plan(0.001, 1.0);
        v.update(10, 0, 90, 0, 1.0);
        assert_eq!(v.info(), 0.0);
    }

    #[test]
    fn starts_at_one() {
        assert!((SplitTest::new().e_value() - 1.0).abs() < 1e-12);
        assert!((RateTest::new().e_value() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn known_value_single_grid_point() {
        // One positive event at b = 0 (p0 = 1/2): each grid LR is 2σ(δ).
        let mut m = LogitMixture::new();
        m.update(1, 0, 0.0);
        let expected: f64 = GRID
            .iter()
            .zip(WEIGHTS)
            .map(|(d, w)| w * 2.0 / (1.0 + (-d).exp()))
            .sum();
        assert!((m.e_value() - expected).abs() < 1e-12);
    }

    #[test]
    fn expectation_is_one_at_the_null_boundary() {
        // E[LR] = 1 exactly: check the one-step average analytically.
        for b in [-5.0, -1.0, 0.0, 2.0] {
            let p = 1.0 / (1.0 + f64::exp(-b));
            let mut pos = LogitMixture::new();
            pos.update(1, 0, b);
            let mut neg = LogitMixture::new();
            neg.update(0, 1, b);
            let mean = p * pos.e_value() + (1.0 - p) * neg.e_value();
            assert!((mean - 1.0).abs() < 1e-12, "b={b} mean={mean}");
        }
    }

    #[test]
    fn all_errors_on_a_10_percent_canary_is_strong_evidence() {
        let mut t = SplitTest::new();
        for _ in 0..6 {
            t.update(10, 1, 90, 0, 1.0);
        }
        assert!(t.e_value() > 1000.0, "{}", t.e_value());
        // Errors in proportion to the split carry evidence for the null.
        let mut t = SplitTest::new();
        for _ in 0..100 {
            t.update(10, 1, 90, 9, 1.0);
        }
        assert!(t.e_value() < 0.2, "{}", t.e_value());
    }

    #[test]
    fn degenerate_inputs_are_ignored() {
        let mut t = SplitTest::new();
        t.update(0, 0, 10, 5, 1.0);
        t.update(10, 20, 0, 0, 1.0);
        t.update(10, 1, 10, 1, f64::NAN);
        t.update(u64::MAX, u64::MAX, u64::MAX, 0, 1.0);
        assert!(t.e_value().is_finite() || t.e_value() == f64::INFINITY);
        let mut r = RateTest::new();
        r.update(10, 11, 0.0);
        r.update(10, 11, 1.0);
        assert_eq!(r.e_value(), 1.0);
    }

    /// Ville's inequality in action: under the null the running maximum of
    /// the e-process crosses 1/α in at most α of the runs. 2000 runs of 300
    /// seconds with α = 0.05: the expected count is at most 100 (usually far
    /// fewer since the bound is conservative); 130 is 3 standard deviations
    /// above 100, so a correct test cannot fail this while a test that
    /// forgets the split (rate-based) would cross in nearly every run.
    #[test]
    fn split_test_is_calibrated_under_changing_splits() {
        let mut rng = Pcg64Mcg::seed_from_u64(7);
        let mut crossed = 0;
        for _ in 0..2000 {
            let mut t = SplitTest::new();
            for s in 0..300u64 {
                let w = [0.05, 0.1, 0.3, 0.5][(s / 75) as usize];
                let n = rng.random_range(0..40u64);
                let mut nc = 0;
                let mut ec = 0;
                let mut es = 0;
                // Error rate shared by both versions, with an incident.
                let p = if (100..150).contains(&s) { 0.3 } else { 0.02 };
                for _ in 0..n {
                    let canary = rng.random_bool(w);
                    let err = rng.random_bool(p);
                    if canary {
                        nc += 1;
                        ec += u64::from(err);
                    } else {
                        es += u64::from(err);
                    }
                }
                t.update(nc, ec, n - nc, es, 1.0);
                if t.e_value() >= 20.0 {
                    crossed += 1;
                    break;
                }
            }
        }
        assert!(crossed <= 130, "crossed {crossed} of 2000 at alpha 0.05");
    }

    #[test]
    fn rate_test_detects_and_stays_calibrated() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let mut crossed = 0;
        let mut detected = 0;
        for _ in 0..500 {
            let mut null = RateTest::new();
            let mut alt = RateTest::new();
            for _ in 0..200 {
                let e0 = (0..20).filter(|_| rng.random_bool(0.01)).count() as u64;
                let e1 = (0..20).filter(|_| rng.random_bool(0.03)).count() as u64;
                null.update(20, e0, 0.01);
                alt.update(20, e1, 0.01);
                if null.e_value() >= 20.0 {
                    crossed += 1;
                    break;
                }
            }
            if alt.e_value() >= 20.0 {
                detected += 1;
            }
        }
        assert!(crossed <= 40, "crossed {crossed} of 500 at alpha 0.05");
        assert!(detected >= 450, "detected {detected} of 500");
    }

    /// `E_p[LR]` of one block, from its factorised form.
    fn block_expectation(
        n_c: f64,
        n_s: f64,
        q: (f64, f64),
        star: (f64, f64),
        p: (f64, f64),
    ) -> f64 {
        let side = |n: f64, q: f64, star: f64, p: f64| {
            (p * q / star + (1.0 - p) * (1.0 - q) / (1.0 - star)).powf(n)
        };
        side(n_c, q.0, star.0, p.0) * side(n_s, q.1, star.1, p.1)
    }

    #[test]
    fn a_block_is_an_e_value_at_every_null_point() {
        for margin in [
            Margin::Delta(0.0),
            Margin::Delta(0.005),
            Margin::Delta(0.01),
            Margin::Ratio(1.2),
            Margin::Ratio(3.0),
        ] {
            for (n_c, n_s) in [(1.0, 9.0), (10.0, 90.0), (60.0, 40.0), (3.0, 1.0)] {
                for q_s in [0.0005, 0.005, 0.05] {
                    let q_c = margin.boundary(q_s) + 0.01;
                    let star = null_point(margin, n_c, n_s, q_c, q_s).unwrap();
                    assert!((star.0 - margin.boundary(star.1)).abs() < 1e-12);
                    let mut worst: f64 = 0.0;
                    for i in 1..400 {
                        let p_s = i as f64 / 400.0;
                        for j in 0..=40 {
                            let p_c = margin.boundary(p_s).min(1.0) * j as f64 / 40.0;
                            worst = worst.max(block_expectation(
                                n_c,
                                n_s,
                                (q_c, q_s),
                                star,
                                (p_c, p_s),
                            ));
                        }
                    }
                    assert!(
                        worst <= 1.0 + 1e-9,
                        "{margin:?} {n_c}/{n_s} q_s {q_s}: {worst}"
                    );
                }
            }
        }
    }

    /// Canary at the null's edge, both rates moving (an incident), the split
    /// changing: rejections stay within α.
    #[test]
    fn table_test_is_calibrated_at_the_margin_under_moving_rates() {
        let mut rng = Pcg64Mcg::seed_from_u64(11);
        for margin in [Margin::Delta(0.005), Margin::Ratio(1.5), Margin::Delta(0.0)] {
            let mut crossed = 0;
            for _ in 0..1000 {
                let mut t = TableTest::new(&[margin], 0.01);
                for s in 0..400u64 {
                    let w = [0.05, 0.1, 0.3, 0.6][(s / 100) as usize];
                    let n = rng.random_range(0..60u64);
                    let p_s = if (100..160).contains(&s) { 0.2 } else { 0.004 };
                    let p_c = margin.boundary(p_s).min(1.0);
                    let (mut nc, mut ec, mut es) = (0, 0, 0);
                    for _ in 0..n {
                        if rng.random_bool(w) {
                            nc += 1;
                            ec += u64::from(rng.random_bool(p_c));
                        } else {
                            es += u64::from(rng.random_bool(p_s));
                        }
                    }
                    t.update(nc, ec, n - nc, es);
                    if t.e_value() >= 20.0 {
                        crossed += 1;
                        break;
                    }
                }
            }
            assert!(
                crossed <= 65,
                "{margin:?}: crossed {crossed} of 1000 at alpha 0.05"
            );
        }
    }

    /// Stable 0.5 %, canary 1.5 %, margin +0.5 point, 10 % of 100 requests a
    /// second: close to the oracle's ≈ 450 s (a sequential probability ratio
    /// test of 1 % against 1.5 % on the canary's requests alone).
    #[test]
    fn table_test_catches_a_regression_beyond_the_margin() {
        let mut rng = Pcg64Mcg::seed_from_u64(5);
        let mut times = Vec::new();
        for _ in 0..50 {
            let mut t = TableTest::new(&[Margin::Delta(0.005)], 0.01);
            let mut at = None;
            for s in 0..1800u64 {
                let nc = 10;
                let ec = (0..nc).filter(|_| rng.random_bool(0.015)).count() as u64;
                let es = (0..90).filter(|_| rng.random_bool(0.005)).count() as u64;
                t.update(nc, ec, 90, es);
                if t.e_value() >= 100.0 {
                    at = Some(s);
                    break;
                }
            }
            times.push(at.unwrap_or(u64::MAX));
        }
        times.sort_unstable();
        let median = times[times.len() / 2];
        assert!(median < 1000, "median {median} s");
    }

    /// The same canary as above, against the bound the judge uses for an
    /// error comparison with a margin (e ≥ 1/α at α = 1 %, with half the
    /// rollout's budget and nine tenths of the metric's): the mixture of
    /// fixed bets gets there sooner than its plug-in bet alone would with
    /// the whole weight (measured 600 s against 700 s, the oracle ≈ 350 s).
    #[test]
    fn fixed_bets_beat_the_plug_in() {
        let bound = (200.0f64 / 0.9).ln();
        let mut rng = Pcg64Mcg::seed_from_u64(17);
        let (mut mixture, mut plug_in) = (Vec::new(), Vec::new());
        for _ in 0..60 {
            let mut t = TableTest::new(&[Margin::Delta(0.005)], 0.01);
            let (mut at_mixture, mut at_plug_in) = (1800, 1800);
            for s in 0..1800u64 {
                let nc = 10;
                let ec = (0..nc).filter(|_| rng.random_bool(0.015)).count() as u64;
                let es = (0..90).filter(|_| rng.random_bool(0.005)).count() as u64;
                t.update(nc, ec, 90, es);
                if at_mixture == 1800 && t.log_e() >= bound {
                    at_mixture = s;
                }
                if at_plug_in == 1800 && t.bets().0 >= bound {
                    at_plug_in = s;
                }
                if at_mixture < 1800 && at_plug_in < 1800 {
                    break;
                }
            }
            mixture.push(at_mixture);
            plug_in.push(at_plug_in);
        }
        mixture.sort_unstable();
        plug_in.sort_unstable();
        let (m, p) = (mixture[30], plug_in[30]);
        eprintln!("median s: mixture {m}, plug-in alone {p}");
        assert!(m < 660 && m * 10 < p * 9, "mixture {m} s, plug-in {p} s");
    }

    /// Saved and restored, the test goes on where it stood; evidence saved
    /// before the fixed bets existed keeps its plug-in's evidence and the
    /// fixed bets start afresh.
    #[test]
    fn table_test_round_trips() {
        let mut t = TableTest::new(&[Margin::Ratio(1.2)], 0.01);
        for s in 0..300u64 {
            t.update(10, u64::from(s % 50 == 0), 90, u64::from(s % 40 == 0));
        }
        let saved = serde_json::to_value(&t).unwrap();
        let back: TableTest = serde_json::from_value(saved.clone()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.log_e(), t.log_e());
        assert_eq!(back.info(), t.info());
        assert!(t.info() > 0.0 && t.bets().1.iter().any(|b| b.2 != 0.0));
        let mut old = saved;
        let fields = old.as_object_mut().unwrap();
        fields.remove("shifts");
        fields.remove("shift_info");
        let mut old: TableTest = serde_json::from_value(old).unwrap();
        assert_eq!(old.bets().0, t.bets().0);
        assert!((old.log_e() - (t.bets().0 + PLUG_IN_WEIGHT.ln())).abs() < 1e-9);
        old.update(10, 1, 90, 0);
        assert_eq!(old.bets().1.len(), TABLE_SHIFTS.len());
        assert!(old.log_e().is_finite() && old.info().is_finite());
    }

    /// At the limit (the planning regression) the rule-out test crosses
    /// 1/β in at most β of the runs (here β = 5 %, 1000 runs: a broken
    /// bet, e.g. one above the limit, crosses far more often); a canary
    /// like a clean stable is ruled out after about 300 requests.
    #[test]
    fn rule_out_keeps_its_level_and_is_quick_when_clean() {
        let mut rng = Pcg64Mcg::seed_from_u64(23);
        let bound = 20f64.ln();
        let mut crossed = 0;
        for _ in 0..1000 {
            let mut t = RuleOut::new();
            for _ in 0..600 {
                let x = (0..10).filter(|_| rng.random_bool(0.015)).count() as u64;
                t.update(10, x, 0.005, 0.015);
                if t.log_e() >= bound {
                    crossed += 1;
                    break;
                }
            }
        }
        assert!(crossed <= 65, "crossed {crossed} of 1000 at beta 0.05");
        // Clean: stable's rate (shrunk) near 0, limit +1 point.
        let mut t = RuleOut::new();
        let mut n = 0;
        while t.log_e() < bound {
            t.update(1, 0, 0.0005, 0.01);
            n += 1;
        }
        assert!((280..=340).contains(&n), "{n} requests");
        let mut u = RuleOut::new();
        u.update(100, 0, 0.0005, 0.01);
        let more = u.trials_to(0.05, 0.0005, 0.01).unwrap();
        assert!((180.0..=240.0).contains(&more), "{more}");
        // A canary at or beyond the limit is never ruled out by its bets.
        let mut w = RuleOut::new();
        w.update(1000, 30, 0.02, 0.01);
        assert_eq!(w.log_e(), 0.0);
        assert_eq!(w.trials_to(0.05, 0.02, 0.01), None);
    }

    #[test]
    fn fixed_bet_weights_sum_to_one() {
        let sum = TABLE_SHIFT_WEIGHTS.iter().sum::<f64>() + PLUG_IN_WEIGHT;
        assert!((sum - 1.0).abs() < 1e-12, "{sum}");
        assert!(TABLE_SHIFT_WEIGHTS.iter().all(|w| *w > 0.0));
    }

    #[test]
    fn table_test_takes_any_counts() {
        for margins in [
            vec![Margin::Delta(0.5)],
            vec![Margin::Ratio(50.0)],
            vec![Margin::Delta(0.0), Margin::Ratio(1.0)],
            vec![Margin::Delta(f64::NAN), Margin::Ratio(0.5)],
            vec![],
        ] {
            let mut t = TableTest::new(&margins, 0.01);
            for (nc, xc, ns, xs) in [
                (0, 0, 0, 0),
                (5, 5, 0, 0),
                (0, 0, 7, 7),
                (10, 10, 10, 10),
                (1, 1, 1_000_000, 999_999),
                (u64::MAX, u64::MAX, u64::MAX, 0),
                (3, 9, 2, 8),
            ] {
                t.update(nc, xc, ns, xs);
                assert!(t.log_e().is_finite() && t.info().is_finite(), "{margins:?}");
            }
        }
    }
}
