//! What `serin serve` adds to the daemon's API: the live dashboard (`/ui/`)
//! and `/metrics` with serin's own series folded from every canary's updates.

use serin_daemon::Supervisor;
use serin_proxy::Recorder;
use serin_telemetry::Telemetry;
use std::{collections::BTreeMap, sync::Arc, time::Duration};
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

/// How often canaries that are gone are looked for: a removed canary sends
/// no more changes, so only a timer can notice it.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Folds every canary's updates into `telemetry` until the daemon stops,
/// and stops exporting canaries the daemon no longer runs.
pub fn follow(telemetry: &Telemetry, supervisor: &Supervisor) -> tokio::task::JoinHandle<()> {
    let telemetry = telemetry.clone();
    let supervisor = supervisor.clone();
    let mut changes = supervisor.subscribe();
    tokio::spawn(async move {
        // The recorder exported per canary; a relaunched canary has a new one.
        let mut exported: BTreeMap<String, Arc<Recorder>> = BTreeMap::new();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let change = tokio::select! {
                change = changes.recv() => change,
                _ = sweep.tick() => {
                    exported.retain(|name, _| {
                        let running = supervisor.recorder(name).is_some();
                        if !running {
                            telemetry.remove(name);
                        }
                        running
                    });
                    continue;
                }
            };
            match change {
                Ok(change) => {
                    match supervisor.recorder(&change.canary) {
                        Some(recorder) => {
                            let known = exported.get(&change.canary);
                            if !known.is_some_and(|known| Arc::ptr_eq(known, &recorder)) {
                                telemetry.add_traffic(&change.canary, recorder.clone());
                                // The proxy relaunched with the recorder.
                                if let Some(proxy) = supervisor.proxy(&change.canary) {
                                    telemetry.add_proxy(&change.canary, proxy);
                                }
                                exported.insert(change.canary.clone(), recorder);
                            }
                        }
                        None => {
                            if exported.remove(&change.canary).is_some() {
                                telemetry.remove(&change.canary);
                            }
                        }
                    }
                    telemetry.observe(&change.canary, &change.update);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}
