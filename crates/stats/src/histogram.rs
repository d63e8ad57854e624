//! A latency histogram with fixed, log-linear buckets.
//!
//! Why not store samples: the proxy sees millions of requests and analysis only
//! needs quantiles and tail counts, so memory must not grow with traffic. Why
//! not a full HDR histogram: a canary keeps one histogram per version per
//! window slot, so each must stay small; 16 linear sub-buckets per power of
//! two bound the relative error of any quantile by 1/16 (6.25 %) of the value,
//! and ~3 % when the bucket midpoint is reported.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 4;
const SUB_COUNT: u64 = 1 << SUB_BITS;
/// Values are microseconds; anything at or above 2^32 µs (~71 minutes) lands
/// in the last bucket.
const MAX_BITS: u32 = 32;
/// Number of buckets: values below `SUB_COUNT` are exact, then `SUB_COUNT`
/// buckets for each power of two up to `MAX_BITS`.
pub const BUCKETS: usize = ((MAX_BITS - SUB_BITS + 1) as usize) * SUB_COUNT as usize;

/// Latencies in microseconds, bucketed so memory is constant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Counts per bucket; empty until the first value so idle slots cost nothing.
    counts: Vec<u64>,
    total: u64,
    sum_micros: u64,
}

// === impl LatencyHistogram ===

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_micros(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one latency given in microseconds.
    pub fn record_micros(&mut self, micros: u64) {
        self.record_n(micros, 1);
    }

    /// Records `n` values of `micros`.
    pub fn record_n(&mut self, micros: u64, n: u64) {
        if n == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        let index = bucket_index(micros);
        // `bucket_index` returns at most BUCKETS - 1, and `counts` has BUCKETS entries.
        if let Some(slot) = self.counts.get_mut(index) {
            *slot = slot.saturating_add(n);
        }
        self.total = self.total.saturating_add(n);
        self.sum_micros = self.sum_micros.saturating_add(micros.saturating_mul(n));
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Mean in microseconds, if any value was recorded.
    pub fn mean_micros(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum_micros as f64 / self.total as f64)
    }

    /// The `q`-quantile (0.0..=1.0) in microseconds: the midpoint of the bucket
    /// holding the value of rank ceil(q * n), the nearest-rank definition.
    pub fn quantile_micros(&self, q: f64) -> Option<f64> {
        if self.total == 0 || !q.is_finite() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(count);
            if seen >= rank {
                let (low, high) = bucket_bounds(index);
                return Some((low as f64 + high as f64) / 2.0);
            }
        }
        None
    }

    /// The `q`-quantile in milliseconds.
    pub fn quantile_millis(&self, q: f64) -> Option<f64> {
        self.quantile_micros(q).map(|us| us / 1000.0)
    }

    /// How many values are strictly above `micros`, counting a bucket as
    /// above when its lower bound is. Exact at bucket boundaries, which is
    /// where tail-exceedance tests place their thresholds.
    pub fn count_above(&self, micros: u64) -> u64 {
        let boundary = bucket_index(micros);
        self.counts
            .iter()
            .skip(boundary.saturating_add(1))
            .fold(0u64, |acc, c| acc.saturating_add(*c))
    }

    /// How many values are at or below `micros`, with the same bucket rule as
    /// [`count_above`](Self::count_above).
    pub fn count_at_or_below(&self, micros: u64) -> u64 {
        self.total.saturating_sub(self.count_above(micros))
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.total == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
        self.total = self.total.saturating_add(other.total);
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
    }

    /// What was recorded since `earlier`, a previous copy of this cumulative
    /// histogram. Saturates at zero so a reset never yields negative counts.
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        if earlier.total == 0 {
            return self.clone();
        }
        let counts: Vec<u64> = self
            .counts
            .iter()
            .zip(earlier.counts.iter().chain(std::iter::repeat(&0)))
            .map(|(now, then)| now.saturating_sub(*then))
            .collect();
        let total = counts.iter().fold(0u64, |a, c| a.saturating_add(*c));
        LatencyHistogram {
            counts: if total == 0 { Vec::new() } else { counts },
            total,
            sum_micros: self.sum_micros.saturating_sub(earlier.sum_micros),
        }
    }

    /// Non-empty buckets as (lower bound µs, upper bound µs, count), low to high.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| {
                let (low, high) = bucket_bounds(i);
                (low, high, *c)
            })
    }

    /// Forgets every value, keeping the allocation.
    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.sum_micros = 0;
    }
}

/// The bucket a value falls in.
pub fn bucket_index(micros: u64) -> usize {
    let capped = micros.min((1u64 << MAX_BITS) - 1);
    if capped < SUB_COUNT {
        return capped as usize;
    }
    // capped >= 16, so the highest set bit is at least SUB_BITS.
    let msb = 63 - capped.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = (capped >> shift) & (SUB_COUNT - 1);
    ((shift as u64 + 1) * SUB_COUNT + sub) as usize
}

/// The inclusive range of microsecond values a bucket holds. Indices past
/// the last bucket (a histogram deserialized from elsewhere may carry more
/// counts than [`BUCKETS`]) get the last bucket's range: shifting by them
/// would overflow.
pub fn bucket_bounds(index: usize) -> (u64, u64) {
    let index = index.min(BUCKETS - 1) as u64;
    if index < SUB_COUNT {
        return (index, index);
    }
    let shift = index / SUB_COUNT - 1;
    let sub = index % SUB_COUNT;
    let low = (SUB_COUNT + sub) << shift;
    let high = low + (1u64 << shift) - 1;
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_bounds_cover_every_value_once() {
        let mut expected_low = 0u64;
        for index in 0..BUCKETS {
            let (low, high) = bucket_bounds(index);
            assert_eq!(
                low, expected_low,
                "bucket {index} starts where the previous ended"
            );
            assert!(high >= low);
            assert_eq!(bucket_index(low), index);
            assert_eq!(bucket_index(high), index);
            expected_low = high + 1;
        }
        assert_eq!(expected_low, 1u64 << MAX_BITS);
    }

    #[test]
    fn indices_past_the_last_bucket_do_not_overflow() {
        let last = bucket_bounds(BUCKETS - 1);
        assert_eq!(bucket_bounds(BUCKETS), last);
        assert_eq!(bucket_bounds(1_100), last);
        assert_eq!(bucket_bounds(usize::MAX), last);
    }

    #[test]
    fn quantiles_of_uniform_values() {
        let mut h = LatencyHistogram::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile_millis(0.5).unwrap();
        let p99 = h.quantile_millis(0.99).unwrap();
        assert!((p50 - 500.0).abs() / 500.0 < 0.04, "p50 {p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.04, "p99 {p99}");
        assert_eq!(h.count(), 1000);
        assert!((h.mean_micros().unwrap() - 500_500.0).abs() < 1.0);
    }

    #[test]
    fn empty_histogram_has_no_quantile() {
        let h = LatencyHistogram::new();
        assert_eq!(h.quantile_micros(0.99), None);
        assert_eq!(h.mean_micros(), None);
        assert_eq!(h.count_above(0), 0);
    }

    #[test]
    fn since_gives_the_difference() {
        let mut h = LatencyHistogram::new();
        h.record_micros(100);
        let before = h.clone();
        h.record_micros(5000);
        h.record_micros(5000);
        let delta = h.since(&before);
        assert_eq!(delta.count(), 2);
        assert_eq!(delta.count_above(4000), 2);
        assert_eq!(h.since(&h).count(), 0);
    }

    #[test]
    fn huge_values_are_capped_not_lost() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_secs(100_000));
        h.record_micros(u64::MAX);
        assert_eq!(h.count(), 2);
        assert!(h.quantile_micros(1.0).is_some());
    }

    proptest! {
        #[test]
        fn quantile_error_is_bounded(values in proptest::collection::vec(16u64..10_000_000, 1..300), q in 0.0f64..=1.0) {
            let mut h = LatencyHistogram::new();
            for v in &values { h.record_micros(*v); }
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let exact = sorted[rank - 1] as f64;
            let approx = h.quantile_micros(q).unwrap();
            prop_assert!((approx - exact).abs() <= exact / 16.0 + 1.0, "exact {} approx {}", exact, approx);
        }

        #[test]
        fn merge_then_since_round_trips(a in proptest::collection::vec(0u64..1_000_000, 0..50), b in proptest::collection::vec(0u64..1_000_000, 0..50)) {
            let mut ha = LatencyHistogram::new();
            a.iter().for_each(|v| ha.record_micros(*v));
            let mut hb = LatencyHistogram::new();
            b.iter().for_each(|v| hb.record_micros(*v));
            let mut merged = ha.clone();
            merged.merge(&hb);
            prop_assert_eq!(merged.count(), (a.len() + b.len()) as u64);
            let back = merged.since(&ha);
            prop_assert_eq!(back.count(), hb.count());
            prop_assert_eq!(back.buckets().collect::<Vec<_>>(), hb.buckets().collect::<Vec<_>>());
        }
    }
}
