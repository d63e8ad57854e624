//! The proxy's per-version series, read from each canary's recorder at
//! scrape time (the recorder already counts; nothing is counted twice).

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter},
};
use serin_stats::{Recorder, Version};
use std::sync::{Arc, Mutex};

/// Prometheus's default latency buckets, in seconds: what the seed's
/// `histogram_quantile(0.95, … http_request_duration_seconds_bucket …)`
/// expects.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The recorders of every canary, by name.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    recorders: Mutex<Vec<(String, Arc<Recorder>)>>,
}

// === impl Traffic ===

impl Traffic {
    pub(crate) fn add(&self, canary: &str, recorder: Arc<Recorder>) {
        let mut recorders = lock(&self.recorders);
        recorders.retain(|(name, _)| name != canary);
        recorders.push((canary.to_owned(), recorder));
        recorders.sort_by(|a, b| a.0.cmp(&b.0));
    }

    pub(crate) fn remove(&self, canary: &str) {
        lock(&self.recorders).retain(|(name, _)| name != canary);
    }
}

impl Collector for Traffic {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // A copy, so no lock is held while encoding.
        let recorders = lock(&self.recorders).clone();
        {
            let mut requests = encoder.encode_descriptor(
                "http_requests",
                "Requests the proxy answered, by version and exact status code",
                None,
                MetricType::Counter,
            )?;
            for (canary, recorder) in &recorders {
                for version in Version::ALL {
                    for (code, count) in recorder.status_codes(version) {
                        let labels = [
                            ("canary", canary.clone()),
                            ("version", version.as_str().to_owned()),
                            ("status", code.to_string()),
                        ];
                        ConstCounter::new(count).encode(requests.encode_family(&labels)?)?;
                    }
                }
            }
        }
        let mut durations = encoder.encode_descriptor(
            "http_request_duration_seconds",
            "Time from request received to response headers sent, by version",
            None,
            MetricType::Histogram,
        )?;
        for (canary, recorder) in &recorders {
            let totals = recorder.totals();
            for version in Version::ALL {
                let counts = totals.get(version);
                let (buckets, sum) = histogram_of(&counts.latency);
                let labels = [
                    ("canary", canary.clone()),
                    ("version", version.as_str().to_owned()),
                ];
                durations
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(sum, counts.latency.count(), &buckets, None)?;
            }
        }
        Ok(())
    }
}

/// Per-bucket (not cumulative) counts at [`LATENCY_BUCKETS`] plus `+Inf`,
/// and the sum in seconds. serin's histogram has 16 sub-buckets per power of
/// two, so a bound is placed within 1/16 (6 %) of its value: the bucket
/// holding the bound counts as at or below it.
pub fn histogram_of(latency: &serin_stats::LatencyHistogram) -> (Vec<(f64, u64)>, f64) {
    let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
    let mut below = 0u64;
    for bound in LATENCY_BUCKETS {
        let micros = (bound * 1_000_000.0) as u64;
        let cumulative = latency.count_at_or_below(micros).max(below);
        buckets.push((bound, cumulative - below));
        below = cumulative;
    }
    buckets.push((f64::INFINITY, latency.count().saturating_sub(below)));
    let sum = latency.mean_micros().unwrap_or(0.0) * latency.count() as f64 / 1_000_000.0;
    (buckets, sum)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere mid-update; the list is
    // still consistent (each update is one Vec operation).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_add_up_and_place_values() {
        let mut h = serin_stats::LatencyHistogram::new();
        for ms in [1u64, 3, 7, 20, 20, 80, 300, 20_000] {
            h.record(Duration::from_millis(ms));
        }
        let (buckets, sum) = histogram_of(&h);
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 8);
        let counts: Vec<u64> = buckets.iter().map(|b| b.1).collect();
        // 1, 3 ≤ 5ms; 7 ≤ 10ms; 20, 20 ≤ 25ms; 80 ≤ 100ms; 300 ≤ 500ms; 20s > 10s.
        assert_eq!(counts, vec![2, 1, 2, 0, 1, 0, 1, 0, 0, 0, 0, 1]);
        assert!((sum - 20.431).abs() < 0.05, "{sum}");
    }
}
