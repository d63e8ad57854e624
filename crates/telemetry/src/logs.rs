//! The request-log receiver's counters (`serin_log_lines_*`), per canary,
//! for canaries behind an external balancer (HAProxy, nginx) that logs its
//! requests to serin over syslog. Read from the receiver's
//! [`LogCounters`] at scrape time (the receiver already counts), so a
//! balancer logging in the wrong format shows up as rejected lines instead
//! of as an analysis that silently sees no traffic.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter},
};
use serin_providers::LogCounters;
use std::sync::{Arc, Mutex, atomic::Ordering};

/// The receiver of every canary, by name.
#[derive(Debug, Default)]
pub(crate) struct Logs {
    counters: Mutex<Vec<(String, Arc<LogCounters>)>>,
}

/// One rejection reason: its `reason` label and its counter.
type Reason = (&'static str, fn(&LogCounters) -> u64);

/// Why a line was dropped, as the `reason` label says it.
const REASONS: [Reason; 4] = [
    // Not a syslog frame (no `<PRI>`, a header cut short, not UTF-8).
    ("frame", |c| c.bad_frame.load(Ordering::Relaxed)),
    // A frame whose message is not serin's log format (or is cut short).
    ("message", |c| c.bad_message.load(Ordering::Relaxed)),
    // A request served by a server serin does not drive.
    ("foreign_server", |c| {
        c.foreign_server.load(Ordering::Relaxed)
    }),
    // A datagram larger than any line of serin's format.
    ("oversized", |c| c.oversized.load(Ordering::Relaxed)),
];

// === impl Logs ===

impl Logs {
    pub(crate) fn add(&self, canary: &str, counters: Arc<LogCounters>) {
        let mut all = lock(&self.counters);
        all.retain(|(name, _)| name != canary);
        all.push((canary.to_owned(), counters));
        all.sort_by(|a, b| a.0.cmp(&b.0));
    }

    pub(crate) fn remove(&self, canary: &str) {
        lock(&self.counters).retain(|(name, _)| name != canary);
    }
}

impl Collector for Logs {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Clones of the Arcs, so no lock is held while encoding.
        let all: Vec<(String, Arc<LogCounters>)> = lock(&self.counters).clone();
        if all.is_empty() {
            return Ok(());
        }
        {
            let mut accepted = encoder.encode_descriptor(
                "serin_log_lines_accepted",
                "Balancer log lines recorded as a request of the stable or the canary version",
                None,
                MetricType::Counter,
            )?;
            for (canary, counters) in &all {
                let labels = [("canary", canary.clone())];
                let value = counters.recorded.load(Ordering::Relaxed);
                ConstCounter::new(value).encode(accepted.encode_family(&labels)?)?;
            }
        }
        let mut rejected = encoder.encode_descriptor(
            "serin_log_lines_rejected",
            "Balancer log lines dropped, by reason (frame, message, foreign_server, oversized)",
            None,
            MetricType::Counter,
        )?;
        for (canary, counters) in &all {
            for (reason, read) in REASONS {
                let labels = [("canary", canary.clone()), ("reason", reason.to_owned())];
                ConstCounter::new(read(counters)).encode(rejected.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere mid-update; the list is
    // still consistent (each update is one Vec operation).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
