//! `serin run --metrics ADDR`: `/metrics` for a standalone rollout, so a
//! Prometheus can scrape it (and a MetricTemplate can query what it scraped).

use anyhow::Result;
use serin_rollout::RolloutState;
use serin_server::{Running, Update};
use serin_telemetry::{MetricsServer, Snapshot, Telemetry};
use std::net::SocketAddr;
use tokio::sync::broadcast;

/// Serves the proxy's and the rollout's series on `addr`, when asked.
/// `updates` must be subscribed before the rollout starts so its first
/// state is seen.
pub async fn serve_run(
    addr: Option<SocketAddr>,
    name: &str,
    running: &Running,
    updates: broadcast::Receiver<Update>,
) -> Result<Option<MetricsServer>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let telemetry = Telemetry::new();
    telemetry.add_traffic(name, running.recorder.clone());
    if let Some(proxy) = &running.proxy {
        telemetry.add_proxy(name, proxy.clone());
    }
    if let Some(log) = &running.log {
        telemetry.add_log(name, log.clone());
    }
    // Exported from the start (weight 0, idle), before the rollout's first
    // event: that may wait on a gate or a webhook for a while.
    telemetry.register(name, Snapshot::from(&RolloutState::default()));
    telemetry.watch(name.to_owned(), updates);
    let server = serin_telemetry::serve(addr, telemetry).await?;
    eprintln!(
        "serin: {name}: metrics at http://{}/metrics",
        server.local_addr()
    );
    Ok(Some(server))
}
