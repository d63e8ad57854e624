//! What `serin serve` adds to the daemon's API: the live dashboard (`/ui/`)
//! and `/metrics` with serin's own series folded from every canary's updates.

use serin_daemon::Supervisor;
use serin_proxy::Recorder;
use serin_telemetry::{Snapshot, Telemetry};
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

/// How often canaries that are gone, or new, are looked for: a removed
/// canary sends no more changes, and a loaded one none until its first
/// event, so only a timer can notice them.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// The recorder exported per canary; a relaunched canary has a new one.
type Exported = BTreeMap<String, Arc<Recorder>>;

/// Folds every canary's updates into `telemetry` until the daemon stops,
/// and stops exporting canaries the daemon no longer runs. Every canary
/// running now is exported before this returns, so `/metrics` shows each
/// one (weight, status, phase) from the start, before its first event.
pub fn follow(telemetry: &Telemetry, supervisor: &Supervisor) -> tokio::task::JoinHandle<()> {
    let telemetry = telemetry.clone();
    let supervisor = supervisor.clone();
    let mut changes = supervisor.subscribe();
    let mut exported = Exported::new();
    for name in supervisor.names() {
        export(&telemetry, &supervisor, &mut exported, &name);
    }
    tokio::spawn(async move {
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
                    for name in supervisor.names() {
                        if !exported.contains_key(&name) {
                            export(&telemetry, &supervisor, &mut exported, &name);
                        }
                    }
                    continue;
                }
            };
            match change {
                Ok(change) => {
                    export(&telemetry, &supervisor, &mut exported, &change.canary);
                    telemetry.observe(&change.canary, &change.update);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

/// Exports `name`'s proxy series (again when it relaunched with a new
/// recorder) and its rollout as it stands; stops exporting it when the
/// daemon no longer runs it.
fn export(telemetry: &Telemetry, supervisor: &Supervisor, exported: &mut Exported, name: &str) {
    let Some(recorder) = supervisor.recorder(name) else {
        if exported.remove(name).is_some() {
            telemetry.remove(name);
        }
        return;
    };
    if exported
        .get(name)
        .is_some_and(|known| Arc::ptr_eq(known, &recorder))
    {
        return;
    }
    telemetry.add_traffic(name, recorder.clone());
    if let Some(proxy) = supervisor.proxy(name) {
        telemetry.add_proxy(name, proxy);
    }
    if let Some(log) = supervisor.log(name) {
        telemetry.add_log(name, log);
    }
    if let Ok(status) = supervisor.get(name) {
        telemetry.register(
            name,
            Snapshot {
                phase: status.phase,
                canary_weight: status.canary_weight,
                failed_checks: status.failed_checks,
                iterations: status.iterations,
            },
        );
    }
    exported.insert(name.to_owned(), recorder);
}
