//! serin's observability: `/metrics` in the OpenMetrics text format and
//! Grafana dashboards generated for a canary.
//!
//! `/metrics` carries two kinds of series:
//! - the proxy's, per version, with the names and labels the seed's Grafana
//!   queries use (`http_requests_total{version,status}`,
//!   `http_request_duration_seconds_bucket{version,le}`), read from the
//!   proxy's [`Recorder`](serin_stats::Recorder) at scrape time, and the
//!   proxy's own counters (`serin_proxy_*`, per canary) read from its
//!   [`ProxyHandle`];
//! - for a canary behind HAProxy or nginx, the request-log receiver's
//!   counters (`serin_log_lines_accepted_total{canary}`,
//!   `serin_log_lines_rejected_total{canary,reason}`);
//! - serin's own, as Flagger's controller exports its own
//!   (`serin_canary_weight`, `serin_canary_status`, phases, rollout
//!   durations, promotions and rollbacks, per-metric values and verdicts),
//!   folded from the rollouts' [`Update`](serin_server::Update)s.
//!
//! [`Telemetry`] is cheap to clone and holds no web framework: the daemon
//! mounts [`Telemetry::response`] on its router, `serin run --metrics` uses
//! [`serve`].

#![forbid(unsafe_code)]

pub mod grafana;
mod logs;
mod proxy;
mod rollouts;
mod serve;
mod traffic;

pub use serve::{MetricsServer, ServeError, serve};

use prometheus_client::registry::Registry;
use serin_providers::LogCounters;
use serin_proxy::ProxyHandle;
use serin_rollout::{Phase, RolloutState};
use serin_server::Update;
use serin_stats::Recorder;
use std::sync::Arc;
use tokio::sync::broadcast;

/// The content type of [`Telemetry::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A canary's rollout as it stands: what `serin_canary_weight`,
/// `serin_canary_status`, `serin_canary_phase`,
/// `serin_canary_failed_checks` and `serin_canary_iterations` show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Flagger's phase.
    pub phase: Phase,
    /// Percent of traffic on the canary.
    pub canary_weight: u8,
    /// Failed checks counted against the threshold.
    pub failed_checks: u32,
    /// Iterations done (A/B testing, blue/green).
    pub iterations: u32,
}

impl From<&RolloutState> for Snapshot {
    fn from(state: &RolloutState) -> Self {
        Snapshot {
            phase: state.phase,
            canary_weight: state.canary_weight,
            failed_checks: state.failed_checks,
            iterations: state.iterations,
        }
    }
}

/// Everything `/metrics` shows. Clones share the same series.
#[derive(Clone, Debug)]
pub struct Telemetry {
    registry: Arc<Registry>,
    traffic: Arc<traffic::Traffic>,
    proxies: Arc<proxy::Proxies>,
    logs: Arc<logs::Logs>,
    rollouts: Arc<rollouts::Rollouts>,
}

// === impl Telemetry ===

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Empty telemetry: no canaries yet.
    pub fn new() -> Self {
        let traffic = Arc::new(traffic::Traffic::default());
        let proxies = Arc::new(proxy::Proxies::default());
        let logs = Arc::new(logs::Logs::default());
        let rollouts = Arc::new(rollouts::Rollouts::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(traffic.clone()));
        registry.register_collector(Box::new(proxies.clone()));
        registry.register_collector(Box::new(logs.clone()));
        rollouts.register(&mut registry);
        Telemetry {
            registry: Arc::new(registry),
            traffic,
            proxies,
            logs,
            rollouts,
        }
    }

    /// Exports the requests `canary`'s proxy records, labelled
    /// `canary="NAME"`. Adding a canary again replaces its recorder (a
    /// restarted proxy starts its counters over, which Prometheus's
    /// `rate()` treats as a counter reset).
    pub fn add_traffic(&self, canary: &str, recorder: Arc<Recorder>) {
        self.traffic.add(canary, recorder);
    }

    /// Exports the counters of `canary`'s proxy (`serin_proxy_*`: connections,
    /// requests, upstream errors, rejections, mirrors, access-log losses),
    /// labelled `canary="NAME"`, read at scrape time. Adding a canary again
    /// replaces its proxy.
    pub fn add_proxy(&self, canary: &str, proxy: ProxyHandle) {
        self.proxies.add(canary, proxy);
    }

    /// Exports the counters of the receiver of `canary`'s balancer log
    /// (`serin_log_lines_accepted_total`, `serin_log_lines_rejected_total`
    /// by reason), labelled `canary="NAME"`, read at scrape time. Adding a
    /// canary again replaces its receiver.
    pub fn add_log(&self, canary: &str, counters: Arc<LogCounters>) {
        self.logs.add(canary, counters);
    }

    /// Exports `canary`'s rollout series (weight, status, phase, failed
    /// checks, iterations) as `snapshot` says, from the moment the canary is
    /// loaded, as Flagger exports `flagger_canary_status` at
    /// initialisation: before its first rollout event, `/metrics` already
    /// shows it (weight 0, idle). A canary whose rollout already reported
    /// a state keeps what it reported; a removed one can be registered again.
    pub fn register(&self, canary: &str, snapshot: Snapshot) {
        self.rollouts.register_canary(canary, snapshot);
    }

    /// Stops exporting `canary`'s requests, proxy counters, log-receiver
    /// counters and rollout series.
    pub fn remove(&self, canary: &str) {
        self.traffic.remove(canary);
        self.proxies.remove(canary);
        self.logs.remove(canary);
        self.rollouts.remove(canary);
    }

    /// Folds one rollout update into serin's own series; traffic updates
    /// feed the proxy series of canaries without a recorder here.
    pub fn observe(&self, canary: &str, update: &Update) {
        if let Update::Traffic { delta, .. } = update {
            self.traffic.fold(canary, delta);
        }
        self.rollouts.observe(canary, update);
    }

    /// Folds every update of `canary` until its sender is gone. A watcher
    /// that falls behind skips the updates it missed; the next state update
    /// sets weight and phase right again.
    pub fn watch(
        &self,
        canary: String,
        mut updates: broadcast::Receiver<Update>,
    ) -> tokio::task::JoinHandle<()> {
        let telemetry = self.clone();
        tokio::spawn(async move {
            loop {
                match updates.recv().await {
                    Ok(update) => telemetry.observe(&canary, &update),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    /// The OpenMetrics text of every series, ending with `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would mean a bug
        // in a collector, so it is logged and the partial text served.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "encoding /metrics failed");
        }
        out
    }

    /// A complete `/metrics` answer (status, content type, body), so any
    /// server (the daemon's axum router, [`serve`]) can mount it.
    pub fn response(&self) -> http::Response<String> {
        let mut response = http::Response::new(self.render());
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(CONTENT_TYPE),
        );
        response
    }
}
