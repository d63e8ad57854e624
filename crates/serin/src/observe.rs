//! What `serin serve` adds to the daemon's API: the live dashboard (`/ui/`)
//! and `/metrics` with serin's own series folded from every canary's updates.

use serin_daemon::Supervisor;
use serin_telemetry::Telemetry;
use tokio::sync::broadcast;

/// The extra routes: the dashboard and `/metrics`.
pub fn routes(telemetry: &Telemetry) -> Vec<axum::Router> {
    let telemetry = telemetry.clone();
    let metrics = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let telemetry = telemetry.clone();
            async move { telemetry.response() }
        }),
    );
    vec![serin_dashboard::routes(), metrics]
}

/// Folds every canary's updates into `telemetry` until the daemon stops.
pub fn follow(telemetry: &Telemetry, supervisor: &Supervisor) -> tokio::task::JoinHandle<()> {
    let telemetry = telemetry.clone();
    let mut changes = supervisor.subscribe();
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(change) => telemetry.observe(&change.canary, &change.update),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}
