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
use serin_providers::LogCounters;
use serin_proxy::{ProxyHandle, Recorder};
use serin_rollout::{Manual, Rollout, RolloutState, Timestamp, ports::CanaryTarget};
use serin_server::{
    Clock, Command, Lifetime, Persistence, Prepared, RunError, Running, Saved, StateStore,
    StoreError, TokioClock, Update,
};
use serin_spec::{Canary, Catalog};
use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};
use tokio::{
    sync::{Semaphore, broadcast, mpsc, watch},
    task::JoinHandle,
};

/// How long `start` and the manual actions wait for the rollout to take them.
pub const COMMAND_WAIT: Duration = Duration::from_secs(10);

/// Changes buffered for slow event-stream readers before they miss some.
const CHANGES_CAPACITY: usize = 4_096;

/// Store reads run at once for the API (history, revisions); further ones
/// wait their turn without holding a thread, so a slow disk cannot make
/// the API pile up blocked threads.
pub const STORE_READS: usize = 4;

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
    /// The canary's stored state is one no rollout could have written.
    #[error(
        "{bad}; to start the canary afresh (all traffic on stable, its history kept), stop serin serve and run `serin forget {} --state-dir {}`",
        .bad.canary,
        .state_dir.display()
    )]
    State {
        /// What is wrong, with the field.
        bad: crate::stored::BadState,
        /// The state directory, for the way out.
        state_dir: std::path::PathBuf,
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

/// An operator's manual action (not a webhook gate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManualAction {
    /// Hold the current weight.
    Pause,
    /// Advance again.
    Resume,
    /// Skip the remaining steps and promote.
    Promote,
    /// Roll back now.
    Abort,
}

// === impl ManualAction ===

impl ManualAction {
    /// The action's name in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ManualAction::Pause => "pause",
            ManualAction::Resume => "resume",
            ManualAction::Promote => "promote",
            ManualAction::Abort => "abort",
        }
    }

    /// The state machine's name for it.
    fn manual(self) -> Manual {
        match self {
            ManualAction::Pause => Manual::Pause,
            ManualAction::Resume => Manual::Resume,
            ManualAction::Promote => Manual::PromoteNow,
            ManualAction::Abort => Manual::Abort,
        }
    }

    fn command(self) -> Command {
        match self {
            ManualAction::Pause => Command::Pause,
            ManualAction::Resume => Command::Resume,
            ManualAction::Promote => Command::PromoteNow,
            ManualAction::Abort => Command::Abort,
        }
    }

    /// Why the action does not apply to a rollout at `status`, if it does not:
    /// the state machine's own rule ([`Manual::check`]), asked before the
    /// rollout is, so the refusal is answered at once.
    fn refusal(self, status: &CanaryStatus) -> Option<String> {
        self.manual()
            .check(status.phase, status.paused)
            .err()
            .map(|refused| format!("canary {}: {refused}", status.name))
    }

    /// Whether `status` shows the action was taken.
    fn taken(self, status: &CanaryStatus) -> bool {
        match self {
            ManualAction::Pause => status.paused,
            ManualAction::Resume => !status.paused,
            ManualAction::Promote | ManualAction::Abort => !status.phase.is_before_promotion(),
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
    /// Permits for the API's store reads ([`STORE_READS`]).
    reads: Arc<Semaphore>,
    canaries: RwLock<BTreeMap<String, Entry>>,
    changes: broadcast::Sender<Change>,
    /// The open-file limit and the API's share of it, when known: each
    /// proxy's connection cap is computed from them (see [`crate::fds`]).
    open_files: RwLock<Option<(Option<u64>, usize)>>,
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
    /// Its proxy and rollout loop (commands, recorder, proxy handle).
    running: Running,
    status: watch::Receiver<CanaryStatus>,
    status_tx: Arc<watch::Sender<CanaryStatus>>,
    /// What the file names, as last recorded in the store.
    file_target: Option<FileTarget>,
    /// Keeps `status` current from the rollout's updates.
    forward: JoinHandle<()>,
}

// === impl Supervisor ===

impl Supervisor {
    /// A supervisor saving to `store`, running nothing yet.
    pub fn new(store: Arc<Store>) -> Self {
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        Supervisor {
            inner: Arc::new(Inner {
                store,
                reads: Arc::new(Semaphore::new(STORE_READS)),
                canaries: RwLock::new(BTreeMap::new()),
                changes,
                open_files: RwLock::new(None),
            }),
        }
    }

    /// Caps each proxy launched from now on to its share of `open_files`
    /// (the soft limit; `None`: unlimited) beside the API's
    /// `api_connections` (see [`crate::fds::budget`]).
    pub fn share_open_files(&self, open_files: Option<u64>, api_connections: usize) {
        *self
            .inner
            .open_files
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((open_files, api_connections));
    }

    /// Each proxy's connection cap for `canaries` canaries, when shared.
    fn proxy_connections(&self, canaries: usize) -> Option<usize> {
        let share = *self
            .inner
            .open_files
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (open_files, api) = share?;
        crate::fds::budget(open_files, canaries, api).per_proxy
    }

    /// The store (history for the API and the dashboard). Its calls block:
    /// from async code, go through [`Self::read_store`].
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Runs a read of the store off the async workers, at most
    /// [`STORE_READS`] at a time; a caller that stops waiting gives its
    /// turn back (or, once running, lets the read finish on its own).
    pub async fn read_store<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Store) -> crate::store::Result<T> + Send + 'static,
    ) -> crate::store::Result<T> {
        let permit = self
            .inner
            .reads
            .clone()
            .acquire_owned()
            .await
            .map_err(|closed| crate::store::Error::Interrupted(closed.to_string()))?;
        crate::store::blocking(&self.inner.store, move |store| {
            let _permit = permit;
            job(store)
        })
        .await
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
        self.read()
            .get(name)
            .map(|entry| entry.running.recorder.clone())
    }

    /// A running canary's proxy (its own counters: connections, upstream
    /// errors, rejections, mirrors), for `/metrics`.
    pub fn proxy(&self, name: &str) -> Option<ProxyHandle> {
        self.read()
            .get(name)
            .and_then(|entry| entry.running.proxy.clone())
    }

    /// The counters of a running canary's balancer-log receiver (HAProxy,
    /// nginx), for `/metrics`.
    pub fn log(&self, name: &str) -> Option<Arc<LogCounters>> {
        self.read()
            .get(name)
            .and_then(|entry| entry.running.log.clone())
    }

    /// Checks the address a start names in the canary's router's terms (a
    /// URL, `IP:port`, a target group ARN), so one the router would refuse
    /// is refused here, before it is accepted.
    fn check_canary(&self, name: &str, address: &str) -> Result<(), CommandError> {
        let canaries = self.read();
        let entry = canaries
            .get(name)
            .ok_or_else(|| not_found(name, &canaries))?;
        serin_server::external::check_canary_address(&entry.canary, address)
            .map_err(CommandError::Invalid)
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
        self.check_canary(name, &target.address)?;
        // Surrounding whitespace is no part of the URL (the rule ignores it):
        // keep it out of the status and the store.
        let target = CanaryTarget {
            address: target.address.trim().to_owned(),
            ..target
        };
        if target.revision.is_empty() || target.revision.len() > 256 {
            return Err(CommandError::Invalid(
                "revision: must be 1 to 256 characters".into(),
            ));
        }
        let (commands, mut status, _) = self.handles(name)?;
        let current = status.borrow().clone();
        if current.phase.is_promoting() {
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
            // The canary upstream shows once saved (see `WatchedStore`).
            Ok(Ok(taken)) => Ok(taken),
            Ok(Err(_)) => Err(CommandError::Stopped(name.to_owned())),
            Err(_) => Err(CommandError::Timeout {
                name: name.to_owned(),
                message: status.borrow().message.clone(),
            }),
        }
    }

    /// A manual action: pause, resume, promote now or abort.
    pub async fn manual_action(
        &self,
        name: &str,
        action: ManualAction,
    ) -> Result<CanaryStatus, CommandError> {
        let (commands, mut status, _) = self.handles(name)?;
        if let Some(refusal) = action.refusal(&status.borrow()) {
            return Err(CommandError::Conflict(refusal));
        }
        commands
            .send(action.command())
            .await
            .map_err(|_| CommandError::Stopped(name.to_owned()))?;
        let taken = tokio::time::timeout(COMMAND_WAIT, status.wait_for(|s| action.taken(s)))
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
        let proxy_connections = self.proxy_connections(wanted.len());
        for (name, canary) in wanted {
            let file = files.get(name).cloned().unwrap_or_default();
            let running = self.read().contains_key(name);
            if !running {
                match self.launch(catalog, canary, &file, proxy_connections).await {
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

    /// The canaries whose file changed while their rollout runs: their
    /// change waits until the rollout ends (a rollout keeps the proxy,
    /// router and analysis it started with), and the reload says so.
    pub(crate) fn deferred(&self, catalog: &Catalog) -> Vec<String> {
        let canaries = self.read();
        catalog
            .canaries()
            .iter()
            .filter(|canary| {
                canaries.get(canary.name()).is_some_and(|entry| {
                    without_target(canary) != without_target(&entry.canary)
                        && entry.status.borrow().phase.is_active()
                })
            })
            .map(|canary| canary.name().to_owned())
            .collect()
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
        if phase.is_promoting() {
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
            self.record_target(name, &target).await?;
            return Ok(());
        }
        self.record_target(name, &target).await?;
        tracing::info!(canary = %name, %revision, "canary file names a new revision: starting a rollout");
        self.start(name, CanaryTarget { address, revision }).await?;
        target.started = true;
        self.record_target(name, &target).await
    }

    async fn record_target(&self, name: &str, target: &FileTarget) -> Result<(), CommandError> {
        let (canary, recorded) = (name.to_owned(), target.clone());
        crate::store::blocking(&self.inner.store, move |store| {
            store.set_file_target(&canary, Some(&recorded), &RolloutState::default())
        })
        .await
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
        proxy_connections: Option<usize>,
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
        if let Some(cap) = proxy_connections {
            // Beyond it, clients wait in the listen backlog, which holds
            // no descriptor of this process.
            prepared.proxy.limits.max_connections.get_or_insert(cap);
        }
        let file_stable = prepared.stable.clone();
        let store_error = |source| LaunchError::Store {
            name: name.clone(),
            source,
        };
        let clock = TokioClock::new();
        let stored = {
            let name = name.clone();
            crate::store::blocking(&self.inner.store, move |store| store.load(&name))
                .await
                .map_err(store_error)?
        };
        let plan = prepared.plan.clone();
        if let Some(stored) = &stored {
            crate::stored::check(stored, &plan).map_err(|bad| LaunchError::State {
                bad,
                state_dir: self.inner.store.dir().to_path_buf(),
            })?;
        }
        let StoredCanary {
            state,
            placement,
            file_target,
            evidence,
            ..
        } = match stored {
            Some(stored) => stored,
            None => {
                // A canary seen for the first time: stable takes all traffic.
                let (_, state) = Rollout::initialized(plan.clone(), clock.now())
                    .map_err(|refused| invalid("spec.analysis", refused.to_string()))?
                    .into_parts();
                StoredCanary {
                    name: name.clone(),
                    state,
                    placement: serin_server::Placement::default(),
                    file_target: None,
                    evidence: None,
                }
            }
        };
        if let Some(stable) = &placement.stable {
            // A promoted canary is the stable version, whatever the file says.
            prepared.set_stable(stable).map_err(|error| match error {
                RunError::Invalid(diagnostics) => LaunchError::Invalid(
                    diagnostics
                        .iter()
                        .map(|d| format!("{file}: {name}: {}", d.problem))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                other => invalid("spec.upstreams.stable", other.to_string()),
            })?;
        }
        let analysis = AnalysisView::of(&prepared.analysis);
        let mut assembled =
            serin_server::run::assemble(prepared)
                .await
                .map_err(|error| match error {
                    RunError::Proxy(source) => LaunchError::Proxy {
                        name: name.clone(),
                        source,
                    },
                    RunError::Router(error) => invalid("spec.provider", error.to_string()),
                    other => invalid("spec", other.to_string()),
                })?;
        // The evidence saved with the state goes on: the false-rollback
        // budget spent is not handed back by a restart. Evidence of another
        // configuration (the file changed meanwhile) is not resumed from.
        if let Some(evidence) = &evidence
            && let Err(error) = assembled.judge.resume(evidence)
        {
            tracing::warn!(canary = %name, %error, "analysis starts afresh");
        }
        let (updates, updates_rx) = broadcast::channel(256);
        let mut status = CanaryStatus::new(
            &name,
            file,
            assembled.listen().to_string(),
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
            file_stable,
            status: status_tx.clone(),
            clock: clock.clone(),
        });
        let running = serin_server::launch(
            assembled,
            state,
            Persistence::new(store, placement),
            updates,
            Lifetime::Revisions,
        )
        .await
        .map_err(|error| invalid("spec", error.to_string()))?;
        let forward = tokio::spawn(forward(
            name.clone(),
            updates_rx,
            status_tx.clone(),
            self.inner.changes.clone(),
        ));
        tracing::info!(canary = %name, listen = %running.listen, "serving");
        Ok(Entry {
            canary: canary.clone(),
            file: file.to_owned(),
            running,
            status: status_rx,
            status_tx,
            file_target,
            forward,
        })
    }

    fn handles(&self, name: &str) -> Result<Handles, CommandError> {
        let canaries = self.read();
        match canaries.get(name) {
            Some(entry) => Ok((
                entry.running.commands.clone(),
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
/// the canary's `StateSaveFailed` condition until a save succeeds (the
/// rollout itself holds and says so in its history); one that succeeds
/// shows where the upstreams point, as saved before anything acts on it.
struct WatchedStore {
    store: Arc<Store>,
    /// The canary's `threshold`, for the revision records.
    threshold: u32,
    /// The stable upstream the canary file names.
    file_stable: String,
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
                let placement = saved.placement;
                self.status.send_if_modified(|status| {
                    let stable = placement.stable_or(&self.file_stable);
                    let moved = status.stable != stable || status.canary != placement.canary;
                    if moved {
                        stable.clone_into(&mut status.stable);
                        status.canary.clone_from(&placement.canary);
                    }
                    status.clear_fault(Fault::StateSaveFailed) || moved
                });
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
    /// Ends the rollout loop (it saved after its last event) while the
    /// proxy drains.
    async fn stop(self) {
        let Entry {
            running,
            forward,
            file,
            ..
        } = self;
        if let Err(error) = running.stop().await {
            tracing::error!(%file, %error, "rollout loop stopped");
        }
        if let Err(error) = forward.await {
            tracing::warn!(%file, %error, "canary task ended abnormally");
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
                match &update {
                    // Where the upstreams point comes with each save.
                    Update::State { state, .. } => status.send_modify(|s| s.apply(state)),
                    // The power the evidence reached, as the judge said.
                    Update::Decision { decision, .. } => {
                        status.send_modify(|s| s.analysis.follow(decision));
                    }
                    _ => {}
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
