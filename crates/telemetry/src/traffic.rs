//! The proxy's per-version series, read from each canary's recorder at
//! scrape time (the recorder already counts; nothing is counted twice).

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter},
};
use serin_stats::{Pair, Recorder, Version};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

/// Prometheus's default latency buckets, in seconds: what the seed's
/// `histogram_quantile(0.95, … http_request_duration_seconds_bucket …)`
/// expects.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The recorders of every canary, by name; and, for canaries whose recorder
/// is out of reach (the daemon's), the traffic deltas their rollouts publish
/// every second, summed. Those carry status classes, not codes, so their
/// `status` label is `2xx`, `5xx`, … (the seed's `status=~"5.."` still matches).
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    recorders: Mutex<Vec<(String, Arc<Recorder>)>>,
    folded: Mutex<BTreeMap<String, Pair>>,
}

/// `status` label values of [`serin_stats::StatusClasses`] entries.
const CLASS_LABELS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

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
        lock(&self.folded).remove(canary);
    }

    /// Adds one traffic delta of `canary`, unless its recorder is exported.
    pub(crate) fn fold(&self, canary: &str, delta: &Pair) {
        if lock(&self.recorders).iter().any(|(name, _)| name == canary) {
            return;
        }
        let mut folded = lock(&self.folded);
        let totals = folded.entry(canary.to_owned()).or_default();
        totals.stable.merge(&delta.stable);
        totals.canary.merge(&delta.canary);
    }
}

impl Collector for Traffic {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Copies, so no lock is held while encoding.
        let recorders = lock(&self.recorders).clone();
        let folded: Vec<(String, Pair)> = lock(&self.folded)
            .iter()
            .filter(|(name, _)| !recorders.iter().any(|(n, _)| n == *name))
            .map(|(name, pair)| (name.clone(), pair.clone()))
            .collect();
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
            for (canary, totals) in &folded {
                for version in Version::ALL {
                    let classes = totals.get(version).classes;
                    for (class, count) in CLASS_LABELS.iter().zip(classes) {
                        if count == 0 {
                            continue;
                        }
                        let labels = [
                            ("canary", canary.clone()),
                            ("version", version.as_str().to_owned()),
                            ("status", (*class).to_owned()),
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
        let totals = recorders
            .iter()
            .map(|(canary, recorder)| (canary, recorder.totals()))
            .chain(folded.iter().map(|(canary, pair)| (canary, pair.clone())));
        for (canary, totals) in totals {
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
