//! Many canaries in one process: each with its own proxy listener and its
//! own rollout loop (a [`serin_server::Driver`] that waits for the next
//! revision after each verdict), all saving to one [`Store`].
//!
//! The supervisor reconciles what the canary files say with what runs: a new
//! canary is launched (restored from the store when it was seen before), a
//! removed one stopped, a changed `upstreams.canary` or `upstreams.revision`
//! starts a rollout, and other changes relaunch the canary once no rollout is
//! in progress.

use crate::{
    status::{AnalysisView, CanaryStatus, Fault},
    store::{FileTarget, Store, StoredCanary},
};
use serde::Serialize;
use serin_proxy::{ProxyHandle, Recorder};
use serin_rollout::{Phase, RolloutState, Timestamp, ports::CanaryTarget};
use serin_server::{
    Clock, Command, DriverError, Persistence, Prepared, RunError, Saved, StateStore, StoreError,
    TokioClock, Update, run::Parts,
};
use serin_spec::{Canary, Catalog};
use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};
use tokio::{
    sync::{broadcast, mpsc, oneshot, watch},
    task::JoinHandle,
};

/// How long `start` and the manual gates wait for the rollout to take them.
pub const COMMAND_WAIT: Duration = Duration::from_secs(10);

/// Changes buffered for slow event-stream readers before they miss some.
const CHANGES_CAPACITY: usize = 4_096;

/// One change of one canary, for the event stream and the dashboard.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// The canary.
    pub canary: String,
    /// What changed.
    #[serde(flatten)]
    pub update: Update,
}

/// Why a canary could not be launched.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The canary file asks for something this daemon cannot run; each line
    /// names the file and field.
    #[error("{0}")]
    Invalid(String),
    /// The proxy could not listen.
    #[error("{name}: {source}")]
    Proxy {
        /// The canary.
        name: String,
        /// Why.
        source: serin_proxy::Error,
    },
    /// The state store failed.
    #[error("{name}: {source}")]
    Store {
        /// The canary.
        name: String,
        /// Why.
        source: crate::store::Error,
    },
}

/// Why a command to a canary was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No canary has this name.
    #[error("no canary named {name:?}{}", known_list(.known))]
    NotFound {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: Vec<String>,
    },
    /// The rollout is not in a phase where the command applies.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed; names the field.
    #[error("{0}")]
    Invalid(String),
    /// The canary's rollout loop is gone (the daemon is stopping).
    #[error("canary {0} is stopping")]
    Stopped(String),
    /// The rollout did not take the command in time.
    #[error("canary {name}: the rollout did not take the command within {}s: {message}", COMMAND_WAIT.as_secs())]
    Timeout {
        /// The canary.
        name: String,
        /// Its last message.
        message: String,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "; the daemon serves no canaries".to_owned()
    } else {
        format!("; known canaries: {}", known.join(", "))
    }
}

/// The manual gates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Hold the current weight.
    Pause,
    /// Advance again.
    Resume,
    /// Skip the remaining steps and promote.
    Promote,
    /// Roll back now.
    Abort,
}

// === impl Gate ===

impl Gate {
    /// The gate's name in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Pause => "pause",
            Gate::Resume => "resume",
            Gate::Promote => "promote",
            Gate::Abort => "abort",
        }
    }

    fn command(self) -> Command {
        match self {
            Gate::Pause => Command::Pause,
            Gate::Resume => Command::Resume,
            Gate::Promote => Command::PromoteNow,
            Gate::Abort => Command::Abort,
        }
    }

    /// Why the gate does not apply to a rollout at `status`, if it does not
    /// (the state machine's own rule: manual gates act before promotion).
    fn refusal(self, status: &CanaryStatus) -> Option<String> {
        let name = &status.name;
        if !status.phase.is_before_promotion() {
            return Some(format!(
                "canary {name} is {}: {} applies to a rollout before promotion only",
                status.phase,
                self.as_str()
            ));
        }
        match self {
            Gate::Pause if status.paused => Some(format!("canary {name} is already paused")),
            Gate::Resume if !status.paused => Some(format!("canary {name} is not paused")),
            _ => None,
        }
    }

    /// Whether `status` shows the gate was taken.
    fn taken(self, status: &CanaryStatus) -> bool {
        match self {
            Gate::Pause => status.paused,
            Gate::Resume => !status.paused,
            Gate::Promote | Gate::Abort => !status.phase.is_before_promotion(),
        }
    }
}

/// Runs the canaries.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    canaries: RwLock<BTreeMap<String, Entry>>,
    changes: broadcast::Sender<Change>,
}

/// A canary's command sender, status receiver and status sender.
type Handles = (
    mpsc::Sender<Command>,
    watch::Receiver<CanaryStatus>,
    Arc<watch::Sender<CanaryStatus>>,
);

/// One running canary.
struct Entry {
    canary: Canary,
    file: String,
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<CanaryStatus>,
    status_tx: Arc<watch::Sender<CanaryStatus>>,
    /// What the file names, as last recorded in the store.
    file_target: Option<FileTarget>,
    stop_proxy: oneshot::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
    /// What the canary's proxy records, for `/metrics`.
    recorder: Arc<Recorder>,
    /// The canary's proxy, for its own counters on `/metrics`.
    proxy: ProxyHandle,
}

// === impl Supervisor ===

impl Supervisor {
    /// A supervisor saving to `store`, running nothing yet.
    pub fn new(store: Arc<Store>) -> Self {
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        Supervisor {
            inner: Arc::new(Inner {
                store,
                canaries: RwLock::new(BTreeMap::new()),
                changes,
            }),
        }
    }

    /// The store (history for the API and the dashboard).
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Every change of every canary, as it happens. A reader that falls
    /// more than a few thousand changes behind misses some (it is told).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    /// Every canary's status, by name.
    pub fn list(&self) -> Vec<CanaryStatus> {
        self.read()
            .values()
            .map(|entry| entry.status.borrow().clone())
            .collect()
    }

    /// One canary's status.
    pub fn get(&self, name: &str) -> Result<CanaryStatus, CommandError> {
        let canaries = self.read();
        match canaries.get(name) {
            Some(entry) => Ok(entry.status.borrow().clone()),
            None => Err(not_found(name, &canaries)),
        }
    }

    /// What a running canary's proxy records (exact status codes and
    /// latencies per version), for `/metrics`.
    pub fn recorder(&self, name: &str) -> Option<Arc<Recorder>> {
        self.read().get(name).map(|entry| entry.recorder.clone())
    }

    /// A running canary's proxy (its own counters: connections, upstream
    /// errors, rejections, mirrors), for `/metrics`.
    pub fn proxy(&self, name: &str) -> Option<ProxyHandle> {
        self.read().get(name).map(|entry| entry.proxy.clone())
    }

    /// The names of the running canaries.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Starts a rollout of `target` and waits until the rollout took it.
    pub async fn start(
        &self,
        name: &str,
        target: CanaryTarget,
    ) -> Result<CanaryStatus, CommandError> {
        check_upstream(&target.address)?;
        if target.revision.is_empty() || target.revision.len() > 256 {
            return Err(CommandError::Invalid(
                "revision: must be 1 to 256 characters".into(),
            ));
        }
        let (commands, mut status, status_tx) = self.handles(name)?;
        let current = status.borrow().clone();
        if matches!(current.phase, Phase::Promoting | Phase::Finalising) {
            return Err(CommandError::Conflict(format!(
                "canary {name} is {}: promotion of {} is underway; start {} when it finishes",
                current.phase,
                current.revision.as_deref().unwrap_or("?"),
                target.revision
            )));
        }
        if current.phase.is_before_promotion()
            && current.revision.as_deref() == Some(target.revision.as_str())
        {
            // Already rolling out this revision: starting it again is a no-op,
            // so CI jobs can retry.
            return Ok(current);
        }
        let address = target.address.clone();
        let revision = target.revision.clone();
        commands
            .send(Command::Start(target))
            .await
            .map_err(|_| CommandError::Stopped(name.to_owned()))?;
        let taken = tokio::time::timeout(
            COMMAND_WAIT,
            status.wait_for(|s| {
                s.revision.as_deref() == Some(revision.as_str())
                    && (current.revision.as_deref() != Some(revision.as_str())
                        || s.phase != current.phase
                        || s.last_transition_time != current.last_transition_time)
            }),
        )
        .await
        .map(|taken| taken.map(|s| s.clone()));
        match taken {
            Ok(Ok(_)) => {
                status_tx.send_modify(|s| s.canary = Some(address));
                Ok(status_tx.borrow().clone())
            }
            Ok(Err(_)) => Err(CommandError::Stopped(name.to_owned())),
            Err(_) => Err(CommandError::Timeout {
                name: name.to_owned(),
                message: status.borrow().message.clone(),
            }),
        }
    }

    /// A manual gate: pause, resume, promote now or abort.
    pub async fn gate(&self, name: &str, gate: Gate) -> Result<CanaryStatus, CommandError> {
        let (commands, mut status, _) = self.handles(name)?;
        if let Some(refusal) = gate.refusal(&status.borrow()) {
            return Err(CommandError::Conflict(refusal));
        }
        commands
            .send(gate.command())
            .await
            .map_err(|_| CommandError::Stopped(name.to_owned()))?;
        let taken = tokio::time::timeout(COMMAND_WAIT, status.wait_for(|s| gate.taken(s)))
            .await
            .map(|taken| taken.map(|s| s.clone()));
        match taken {
            Ok(Ok(now)) => Ok(now),
            Ok(Err(_)) => Err(CommandError::Stopped(name.to_owned())),
            Err(_) => Err(CommandError::Timeout {
                name: name.to_owned(),
                message: status.borrow().message.clone(),
            }),
        }
    }

    /// Makes the running canaries match `catalog`: launches new ones,
    /// stops removed ones, starts rollouts of changed revisions and
    /// relaunches changed canaries that are between rollouts. `files` names
    /// the file each canary came from. Returns one line per problem.
    pub async fn reconcile(
        &self,
        catalog: &Catalog,
        files: &BTreeMap<String, String>,
    ) -> Vec<String> {
        self.reconcile_each(catalog, files)
            .await
            .into_iter()
            .map(|(_, problem)| problem)
            .collect()
    }

    /// [`Self::reconcile`], each problem with the canary it is about.
    pub(crate) async fn reconcile_each(
        &self,
        catalog: &Catalog,
        files: &BTreeMap<String, String>,
    ) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let wanted: BTreeMap<&str, &Canary> = catalog
            .canaries()
            .iter()
            .map(|canary| (canary.name(), canary))
            .collect();
        // Removed canaries stop; changed ones between rollouts relaunch.
        let mut stopping = Vec::new();
        {
            let mut canaries = self.write();
            let names: Vec<String> = canaries.keys().cloned().collect();
            for name in names {
                let relaunch = match (wanted.get(name.as_str()), canaries.get(&name)) {
                    (None, _) => true,
                    (Some(canary), Some(entry)) => {
                        without_target(canary) != without_target(&entry.canary)
                            && !entry.status.borrow().phase.is_active()
                    }
                    (Some(_), None) => false,
                };
                if relaunch && let Some(entry) = canaries.remove(&name) {
                    tracing::info!(canary = %name, "stopping");
                    stopping.push(entry);
                }
            }
        }
        for entry in stopping {
            entry.stop().await;
        }
        for (name, canary) in wanted {
            let file = files.get(name).cloned().unwrap_or_default();
            let running = self.read().contains_key(name);
            if !running {
                match self.launch(catalog, canary, &file).await {
                    Ok(entry) => {
                        self.write().insert(name.to_owned(), entry);
                    }
                    Err(error) => {
                        problems.push((name.to_owned(), error.to_string()));
                        continue;
                    }
                }
            }
            if let Err(error) = self.follow_file(name, canary).await {
                problems.push((name.to_owned(), format!("{file}: {name}: {error}")));
            }
        }
        problems
    }

    /// Shows `ConfigReloadFailed` on each canary named in `faults` (with
    /// its message; since `at` when it is new) and clears it on the others.
    pub(crate) fn set_config_faults(&self, faults: &BTreeMap<String, String>, at: Timestamp) {
        let canaries = self.read();
        for (name, entry) in canaries.iter() {
            entry
                .status_tx
                .send_if_modified(|status| match faults.get(name) {
                    Some(message) => status.set_fault(Fault::ConfigReloadFailed, message, at),
                    None => status.clear_fault(Fault::ConfigReloadFailed),
                });
        }
    }

    /// Stops every canary: drivers save and end, proxies drain.
    pub async fn shutdown(&self) {
        let entries: Vec<Entry> = std::mem::take(&mut *self.write()).into_values().collect();
        for entry in entries {
            entry.stop().await;
        }
    }

    /// Starts the rollout a canary file asks for, once: a revision the file
    /// names is started when it differs from the one last recorded, or when
    /// its start was never taken (the daemon stopped in between).
    async fn follow_file(&self, name: &str, canary: &Canary) -> Result<(), CommandError> {
        let Some(CanaryTarget { address, revision }) = serin_server::run::target_of(canary) else {
            return Ok(());
        };
        let (recorded, state_revision, phase) = {
            let canaries = self.read();
            let Some(entry) = canaries.get(name) else {
                return Ok(());
            };
            let status = entry.status.borrow();
            (
                entry.file_target.clone(),
                status.revision.clone(),
                status.phase,
            )
        };
        let same = recorded
            .as_ref()
            .is_some_and(|r| r.address == address && r.revision == revision);
        if same && recorded.as_ref().is_some_and(|r| r.started) {
            return Ok(());
        }
        if matches!(phase, Phase::Promoting | Phase::Finalising) {
            // Picked up by a later reconcile, once promotion is over.
            return Ok(());
        }
        let mut target = FileTarget {
            address: address.clone(),
            revision: revision.clone(),
            started: false,
        };
        // Recorded before the start: a crash in between is seen as "never
        // taken" and the start is sent again, unless the state shows it ran.
        if same && state_revision.as_deref() == Some(revision.as_str()) {
            target.started = true;
            self.record_target(name, &target)?;
            return Ok(());
        }
        self.record_target(name, &target)?;
        tracing::info!(canary = %name, %revision, "canary file names a new revision: starting a rollout");
        self.start(name, CanaryTarget { address, revision }).await?;
        target.started = true;
        self.record_target(name, &target)
    }

    fn record_target(&self, name: &str, target: &FileTarget) -> Result<(), CommandError> {
        self.inner
            .store
            .set_file_target(name, Some(target), &RolloutState::default())
            .map_err(|error| {
                CommandError::Conflict(format!("cannot record the file's revision: {error}"))
            })?;
        if let Some(entry) = self.write().get_mut(name) {
            entry.file_target = Some(target.clone());
        }
        Ok(())
    }

    /// Launches one canary: restores its state, binds its proxy, routes as
    /// the state says, and only then serves and runs the rollout loop.
    async fn launch(
        &self,
        catalog: &Catalog,
        canary: &Canary,
        file: &str,
    ) -> Result<Entry, LaunchError> {
        let name = canary.name().to_owned();
        let invalid = |path: &str, message: String| {
            LaunchError::Invalid(format!("{file}: {name}: {path}: {message}"))
        };
        let mut prepared =
            Prepared::for_canary(catalog, canary, file).map_err(|error| match error {
                RunError::Invalid(diagnostics) => LaunchError::Invalid(
                    diagnostics
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                other => LaunchError::Invalid(format!("{file}: {name}: {other}")),
            })?;
        let file_stable = canary.stable_upstream().unwrap_or_default().to_owned();
        let store_error = |source| LaunchError::Store {
            name: name.clone(),
            source,
        };
        let clock = TokioClock::new();
        let stored = self.inner.store.load(&name).map_err(store_error)?;
        let plan = prepared.plan.clone();
        let StoredCanary {
            state,
            placement,
            file_target,
            ..
        } = stored.unwrap_or_else(|| {
            // A canary seen for the first time: stable takes all traffic.
            let now = clock.now();
            let mut state = RolloutState::new(now);
            let _ = serin_rollout::step(&mut state, &plan, now, serin_rollout::Event::Initialize);
            StoredCanary {
                name: name.clone(),
                state,
                placement: serin_server::Placement::default(),
                file_target: None,
            }
        });
        if let Some(stable) = &placement.stable {
            // A promoted canary is the stable version, whatever the file says.
            prepared.routes.routes.stable = stable.parse().map_err(|e| {
                invalid(
                    "spec.upstreams.stable",
                    format!("promoted upstream {stable:?}: {e}"),
                )
            })?;
        }
        let analysis = AnalysisView::of(&prepared.analysis);
        let assembled =
            serin_server::run::assemble(prepared)
                .await
                .map_err(|error| match error {
                    RunError::Proxy(source) => LaunchError::Proxy {
                        name: name.clone(),
                        source,
                    },
                    other => invalid("spec", other.to_string()),
                })?;
        let (updates, updates_rx) = broadcast::channel(256);
        let mut status = CanaryStatus::new(
            &name,
            file,
            assembled.proxy.local_addr().to_string(),
            &file_stable,
            &state,
            &placement,
        );
        status.analysis = analysis;
        let (status_tx, status_rx) = watch::channel(status);
        let status_tx = Arc::new(status_tx);
        let store = Arc::new(WatchedStore {
            store: self.inner.store.clone(),
            threshold: plan.threshold,
            status: status_tx.clone(),
            clock: clock.clone(),
        });
        let (mut driver, parts) =
            assembled.into_driver(state, updates, Persistence::new(store, placement));
        let Parts {
            proxy: bound,
            recorder,
            ..
        } = parts;
        // Routes as saved before a single request is accepted.
        if let Err(error) = driver.restore_routes().await {
            tracing::warn!(canary = %name, %error, "could not restore routes");
        }
        let proxy = bound.handle();
        let (stop_proxy, proxy_stopped) = oneshot::channel::<()>();
        let proxy_name = name.clone();
        let proxy_task = tokio::spawn(async move {
            if let Err(error) = bound
                .serve(async move {
                    let _ = proxy_stopped.await;
                })
                .await
            {
                tracing::error!(canary = %proxy_name, %error, "proxy stopped");
            }
        });
        let forward = tokio::spawn(forward(
            name.clone(),
            updates_rx,
            status_tx.clone(),
            self.inner.changes.clone(),
        ));
        let (commands, receiver) = mpsc::channel(16);
        let driver_name = name.clone();
        let driver_task = tokio::spawn(async move {
            match driver.run(receiver, false).await {
                Ok(_) | Err(DriverError::Idle(_)) => {}
                Err(error) => {
                    tracing::error!(canary = %driver_name, %error, "rollout loop stopped")
                }
            }
        });
        tracing::info!(canary = %name, listen = %status_rx.borrow().listen, "serving");
        Ok(Entry {
            canary: canary.clone(),
            file: file.to_owned(),
            commands,
            status: status_rx,
            status_tx,
            file_target,
            stop_proxy,
            tasks: vec![driver_task, forward, proxy_task],
            recorder,
            proxy,
        })
    }

    fn handles(&self, name: &str) -> Result<Handles, CommandError> {
        let canaries = self.read();
        match canaries.get(name) {
            Some(entry) => Ok((
                entry.commands.clone(),
                entry.status.clone(),
                entry.status_tx.clone(),
            )),
            None => Err(not_found(name, &canaries)),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        // Entries are replaced whole under the lock; a poisoned lock still
        // holds a consistent map.
        self.inner
            .canaries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .canaries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The store as one canary's rollout sees it: a save that fails shows as
/// the canary's `StateSaveFailed` condition until a save succeeds. (The
/// rollout itself holds and says so in its history.)
struct WatchedStore {
    store: Arc<Store>,
    /// The canary's `threshold`, for the revision records.
    threshold: u32,
    status: Arc<watch::Sender<CanaryStatus>>,
    clock: TokioClock,
}

impl StateStore for WatchedStore {
    fn save(&self, canary: &str, saved: Saved<'_>) -> Result<(), StoreError> {
        let result = self
            .store
            .save_rows(canary, saved, Some(self.threshold))
            .map_err(|error| StoreError {
                message: format!("{}: {error}", self.store.dir().display()),
            });
        match &result {
            Ok(()) => {
                self.status
                    .send_if_modified(|status| status.clear_fault(Fault::StateSaveFailed));
            }
            Err(error) => {
                let message = format!(
                    "cannot save the rollout's state: {error}; the rollout holds where it was last saved and retries"
                );
                let at = self.clock.now();
                self.status.send_if_modified(|status| {
                    status.set_fault(Fault::StateSaveFailed, &message, at)
                });
            }
        }
        result
    }
}

// === impl Entry ===

impl Entry {
    /// Ends the rollout loop (it saved after its last event), then drains
    /// the proxy.
    async fn stop(self) {
        let Entry {
            commands,
            stop_proxy,
            tasks,
            file,
            ..
        } = self;
        drop(commands);
        let _ = stop_proxy.send(());
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%file, %error, "canary task ended abnormally");
            }
        }
    }
}

/// Keeps a canary's status current and passes its updates on to the
/// daemon-wide stream (only when someone listens: traffic updates are many).
async fn forward(
    name: String,
    mut updates: broadcast::Receiver<Update>,
    status: Arc<watch::Sender<CanaryStatus>>,
    changes: broadcast::Sender<Change>,
) {
    loop {
        match updates.recv().await {
            Ok(update) => {
                if let Update::State { state, .. } = &update {
                    status.send_modify(|s| {
                        s.apply(state);
                        if matches!(
                            s.phase,
                            Phase::Promoting | Phase::Finalising | Phase::Succeeded
                        ) && let Some(canary) = &s.canary
                        {
                            s.stable.clone_from(canary);
                        }
                    });
                }
                if changes.receiver_count() > 0 {
                    let _ = changes.send(Change {
                        canary: name.clone(),
                        update,
                    });
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(canary = %name, missed, "status watcher lagged");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn not_found(name: &str, canaries: &BTreeMap<String, Entry>) -> CommandError {
    CommandError::NotFound {
        name: name.to_owned(),
        known: canaries.keys().take(20).cloned().collect(),
    }
}

/// The canary without its rollout target: what a relaunch compares.
fn without_target(canary: &Canary) -> Canary {
    let mut canary = canary.clone();
    if let Some(upstreams) = canary.spec.upstreams.as_mut() {
        upstreams.canary = None;
        upstreams.revision = None;
    }
    canary
}

fn check_upstream(address: &str) -> Result<(), CommandError> {
    let invalid =
        |message: &str| CommandError::Invalid(format!("canary: {message}, got {address:?}"));
    let uri: http::Uri = address
        .parse()
        .map_err(|_| invalid("must be an http:// URL"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(invalid("must be an http:// URL with a host"));
    }
    if let Some(reason) = serin_proxy::upstream_problem(&uri) {
        return Err(invalid(reason));
    }
    Ok(())
}
