//! The proxy's own counters (`serin_proxy_*`), per canary, read from each
//! canary's [`ProxyHandle`] at scrape time (the proxy already counts).

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};
use serin_proxy::{CountersSnapshot, ProxyHandle};
use std::sync::Mutex;

/// The proxy of every canary, by name.
#[derive(Debug, Default)]
pub(crate) struct Proxies {
    handles: Mutex<Vec<(String, ProxyHandle)>>,
}

/// One monotonic counter: its name (without `_total`), help, and field.
type CounterSeries = (&'static str, &'static str, fn(&CountersSnapshot) -> u64);

/// Every monotonic counter of [`CountersSnapshot`].
const COUNTERS: [CounterSeries; 17] = [
    (
        "serin_proxy_connections",
        "Client connections the proxy accepted",
        |c| c.connections_total,
    ),
    (
        "serin_proxy_requests",
        "Requests the proxy received (mirrored copies not included)",
        |c| c.requests_total,
    ),
    (
        "serin_proxy_upstream_connect_errors",
        "Upstream connections refused or failed (answered 502)",
        |c| c.upstream_connect_errors,
    ),
    (
        "serin_proxy_upstream_timeouts",
        "Upstream connect or response-header timeouts (answered 504)",
        |c| c.upstream_timeouts,
    ),
    (
        "serin_proxy_upstream_other_errors",
        "Other upstream failures: reset, malformed response (answered 502)",
        |c| c.upstream_other_errors,
    ),
    (
        "serin_proxy_upstream_body_errors",
        "Response bodies that broke off or stalled after their head was sent (recorded as the version's 502 or 504)",
        |c| c.upstream_body_errors,
    ),
    (
        "serin_proxy_rejected_header_too_large",
        "Requests refused with 431 because their head was too large",
        |c| c.rejected_header_too_large,
    ),
    (
        "serin_proxy_rejected_invalid_host",
        "Requests refused with 400 because their Host was missing, repeated or invalid",
        |c| c.rejected_invalid_host,
    ),
    (
        "serin_proxy_rejected_body_too_large",
        "Requests refused with 413 because their body was too large",
        |c| c.rejected_body_too_large,
    ),
    (
        "serin_proxy_client_body_timeouts",
        "Requests answered 408 because the client paused sending its body",
        |c| c.client_body_timeouts,
    ),
    (
        "serin_proxy_mirrors_sent",
        "Mirrored copies sent to the canary",
        |c| c.mirrors_sent,
    ),
    (
        "serin_proxy_mirrors_dropped",
        "Mirrored copies dropped because too many were in flight",
        |c| c.mirrors_dropped,
    ),
    (
        "serin_proxy_mirrors_skipped_body",
        "Mirrored copies skipped because the body was too large or of unknown length",
        |c| c.mirrors_skipped_body,
    ),
    (
        "serin_proxy_log_lines_dropped",
        "Access-log lines dropped because the writer fell behind",
        |c| c.log_lines_dropped,
    ),
    (
        "serin_proxy_log_write_errors",
        "Access-log writes that failed",
        |c| c.log_write_errors,
    ),
    (
        "serin_proxy_tls_handshake_errors",
        "TLS handshakes that failed or timed out",
        |c| c.tls_handshake_errors,
    ),
    (
        "serin_proxy_upgrades",
        "Connections upgraded (WebSocket and other Upgrade requests answered 101) and spliced to the upstream",
        |c| c.upgrades_total,
    ),
];

// === impl Proxies ===

impl Proxies {
    pub(crate) fn add(&self, canary: &str, handle: ProxyHandle) {
        let mut handles = lock(&self.handles);
        handles.retain(|(name, _)| name != canary);
        handles.push((canary.to_owned(), handle));
        handles.sort_by(|a, b| a.0.cmp(&b.0));
    }

    pub(crate) fn remove(&self, canary: &str) {
        lock(&self.handles).retain(|(name, _)| name != canary);
    }
}

impl Collector for Proxies {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Snapshots, so no lock is held while encoding.
        let snapshots: Vec<(String, CountersSnapshot)> = lock(&self.handles)
            .iter()
            .map(|(name, handle)| (name.clone(), handle.counters()))
            .collect();
        if snapshots.is_empty() {
            return Ok(());
        }
        {
            let mut active = encoder.encode_descriptor(
                "serin_proxy_active_connections",
                "Client connections open now",
                None,
                MetricType::Gauge,
            )?;
            for (canary, counters) in &snapshots {
                let labels = [("canary", canary.clone())];
                // Saturates rather than wraps: a count of open connections
                // never nears i64::MAX.
                let open = i64::try_from(counters.active_connections).unwrap_or(i64::MAX);
                ConstGauge::new(open).encode(active.encode_family(&labels)?)?;
            }
        }
        for (name, help, read) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (canary, counters) in &snapshots {
                let labels = [("canary", canary.clone())];
                ConstCounter::new(read(counters)).encode(family.encode_family(&labels)?)?;
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
