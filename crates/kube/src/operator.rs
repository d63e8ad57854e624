//! `serin controller`: watches `Canary` in both groups (`flagger.app/v1beta1`
//! and `serin.dev/v1alpha1`) through kube-runtime's [`Controller`] and runs
//! the [`Reconciler`] per canary, only while this replica holds the Lease.
//!
//! kube-runtime gives the rate limiting (a debounce, bounded concurrency,
//! one reconcile per object at a time); this module adds the requeue after
//! the canary's analysis interval and an exponential backoff per canary on
//! errors, reset by the next successful pass. Losing the Lease (a renewal
//! refused, or another replica's identity on it) stops both controllers at
//! once: two replicas never write the same canary.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client,
    api::DynamicObject,
    core::ApiResource,
    runtime::{
        Controller,
        controller::{Action, Config},
        watcher,
    },
};
use serin_spec::Canary;

use crate::{
    controller::{Checks, Error as PassError, Outcome, Reconciler, Target, canary_resource},
    lease::{Leadership, LeaseLock},
    resource::CanaryStatus,
};

/// The two API versions a `Canary` is served in.
pub const CANARY_VERSIONS: [&str; 2] = ["flagger.app/v1beta1", "serin.dev/v1alpha1"];

/// The Lease's name (in the controller's own namespace).
pub const LEASE_NAME: &str = "serin-controller";

/// How long a Lease holds without renewal.
pub const LEASE_DURATION_SECS: i32 = 15;

/// The first backoff after an error; doubled per consecutive error.
const BACKOFF_BASE: Duration = Duration::from_secs(5);

/// The longest backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Errors of one reconcile through the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The watched object is not a readable Canary (a field at fault).
    #[error("canary {name}: {source}")]
    Decode {
        /// `name.namespace`.
        name: String,
        /// Why serde refused it.
        source: serde_json::Error,
    },
    /// The pass failed (API error, model error).
    #[error("canary {name}: {source}")]
    Pass {
        /// `name.namespace`.
        name: String,
        /// The pass's error.
        source: PassError,
    },
}

/// Where and as whom the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace (`--namespace`); all namespaces otherwise.
    pub namespace: Option<String>,
    /// The namespace of the Lease (the controller's own).
    pub lease_namespace: String,
    /// This replica's identity on the Lease (its pod name).
    pub identity: String,
    /// The provider where a canary names none (Flagger's `-mesh-provider`).
    pub default_provider: String,
}

/// The state shared by the reconciles of one controller.
pub struct Context<C> {
    reconciler: Reconciler<C>,
    resource: ApiResource,
    /// Consecutive errors per canary (`namespace/name`), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

/// Runs the controller until the process is stopped: leads when it can,
/// follows otherwise, and acts only while leading.
pub async fn run<C: Checks + Clone + 'static>(
    client: Client,
    settings: Settings,
    checks: C,
) -> Result<(), kube::Error> {
    let lock = LeaseLock::new(
        client.clone(),
        &settings.lease_namespace,
        LEASE_NAME,
        &settings.identity,
        LEASE_DURATION_SECS,
    );
    // Renew three times per duration: one lost request does not cost the Lease.
    let renew = Duration::from_secs(u64::from(LEASE_DURATION_SECS.unsigned_abs() / 3).max(1));
    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let leading = match lock.try_acquire_or_renew(Timestamp::now()).await {
            Ok(Leadership::Leading) => true,
            Ok(Leadership::Follower(holder)) => {
                if running.is_some() {
                    eprintln!(
                        "serin controller: lost the Lease to {}; stopping",
                        holder.as_deref().unwrap_or("another replica")
                    );
                }
                false
            }
            Err(error) => {
                eprintln!("serin controller: Lease {LEASE_NAME}: {error}");
                false
            }
        };
        match (leading, running.take()) {
            (true, Some(task)) if !task.is_finished() => running = Some(task),
            (true, _) => {
                eprintln!(
                    "serin controller: leading as {}; watching canaries in {}",
                    settings.identity,
                    settings.namespace.as_deref().unwrap_or("all namespaces")
                );
                running = Some(tokio::spawn(controllers(
                    client.clone(),
                    settings.clone(),
                    checks.clone(),
                )));
            }
            (false, Some(task)) => task.abort(),
            (false, None) => {}
        }
        tokio::time::sleep(renew).await;
    }
}

/// One controller per canary API version, run together.
async fn controllers<C: Checks + Clone + 'static>(client: Client, settings: Settings, checks: C) {
    let streams = CANARY_VERSIONS.map(|api_version| {
        let resource = canary_resource(api_version);
        let api: Api<DynamicObject> = match &settings.namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let context = Arc::new(Context {
            reconciler: Reconciler::new(
                client.clone(),
                checks.clone(),
                settings.default_provider.clone(),
            ),
            resource: resource.clone(),
            failures: Mutex::new(HashMap::new()),
        });
        controller(api, resource, context).boxed()
    });
    futures_util::stream::select_all(streams)
        .for_each(|result| async move {
            if let Err(error) = result {
                eprintln!("serin controller: {error}");
            }
        })
        .await;
}

/// The kube-runtime controller of one canary API version, as a stream of
/// reconcile results (the caller drives it).
pub fn controller<C: Checks + 'static>(
    api: Api<DynamicObject>,
    resource: ApiResource,
    context: Arc<Context<C>>,
) -> impl futures_util::Stream<Item = Result<(), String>> + Send {
    Controller::new_with(api, watcher::Config::default(), resource)
        .with_config(
            Config::default()
                .debounce(Duration::from_secs(1))
                .concurrency(8),
        )
        .run(reconcile, error_policy, context)
        .map(|result| result.map(|_| ()).map_err(|error| error.to_string()))
}

impl<C: Checks> Context<C> {
    /// The context of a controller of `resource` running `reconciler`.
    pub fn new(reconciler: Reconciler<C>, resource: ApiResource) -> Self {
        Self {
            reconciler,
            resource,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

/// One pass for one watched canary, then the requeue after its interval.
async fn reconcile<C: Checks>(
    object: Arc<DynamicObject>,
    context: Arc<Context<C>>,
) -> Result<Action, Error> {
    let key = key(&object);
    let value = serde_json::to_value(object.as_ref()).map_err(|source| Error::Decode {
        name: key.clone(),
        source,
    })?;
    let status: CanaryStatus = match value.get("status") {
        Some(status) if !status.is_null() => {
            serde_json::from_value(status.clone()).map_err(|source| Error::Decode {
                name: key.clone(),
                source,
            })?
        }
        _ => CanaryStatus::default(),
    };
    let canary: Canary = serde_json::from_value(value).map_err(|source| Error::Decode {
        name: key.clone(),
        source,
    })?;
    let now = Timestamp::now().to_string();
    let target = Target {
        canary: &canary,
        status,
        resource: context.resource.clone(),
    };
    let outcome = context
        .reconciler
        .reconcile(target, &now)
        .await
        .map_err(|source| Error::Pass {
            name: key.clone(),
            source,
        })?;
    if let Ok(mut failures) = context.failures.lock() {
        failures.remove(&key);
    }
    Ok(Action::requeue(match outcome {
        // Back when the analysis is due (at least a second from now).
        Outcome::Wait(wait) => wait.max(Duration::from_secs(1)),
        Outcome::Idle | Outcome::Moved(_) => canary.analysis().interval(),
    }))
}

/// Requeues a failed canary after an exponential backoff.
fn error_policy<C: Checks>(
    object: Arc<DynamicObject>,
    error: &Error,
    context: Arc<Context<C>>,
) -> Action {
    let key = key(&object);
    let attempts = match context.failures.lock() {
        Ok(mut failures) => {
            let attempts = failures.entry(key).or_insert(0);
            *attempts = attempts.saturating_add(1);
            *attempts
        }
        Err(_) => 1,
    };
    let delay = backoff(attempts);
    eprintln!(
        "serin controller: {error}; retrying in {}s",
        delay.as_secs()
    );
    Action::requeue(delay)
}

/// The delay after `attempts` consecutive errors: 5s, 10s, 20s, … up to 5m.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

/// `namespace/name` of a watched object.
fn key(object: &DynamicObject) -> String {
    format!(
        "{}/{}",
        object.metadata.namespace.as_deref().unwrap_or_default(),
        object.metadata.name.as_deref().unwrap_or_default()
    )
}
