//! One canary served by the built-in proxy: prepared from its file, wired
//! ([`assemble`]) and run ([`launch`]), to its verdict (`serin run`,
//! `serin demo`: [`start`]) or rollout after rollout (the daemon).

use crate::external::{Balancer, UNSERVED_LISTEN};
use crate::{
    clock::{Clock, TokioClock},
    driver::{Command, Driver, DriverError, Update},
    mapping,
};
use serin_analysis::{AnalysisConfig, Analyzer};
use serin_providers::{
    AlertTarget, BaseRoutes, HttpWebhooks, LogCounters, Notifier, SyslogReceiver,
};
use serin_proxy::{
    IpRange, Limits, Proxy, ProxyConfig, ProxyHandle, Recorder, TlsFiles, TrustedProxies,
};
use serin_rollout::{
    Phase, Plan, Rollout, RolloutState,
    ports::{CanaryTarget, MetricQuery, Router},
};
use serin_spec::{Canary, Catalog, Diagnostic};
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};
use tokio::sync::{Notify, broadcast, mpsc};

/// The environment variable with the dashboard's base URL, for alert links.
pub const DASHBOARD_URL_VAR: &str = "SERIN_DASHBOARD_URL";
/// How long the end of a rollout waits for its last alerts and events.
pub(crate) const FLUSH_ALERTS: Duration = Duration::from_secs(10);

/// Everything a rollout needs, checked before anything listens.
#[derive(Debug)]
pub struct Prepared {
    /// The canary.
    pub canary: Canary,
    /// The state machine's plan.
    pub plan: Plan,
    /// The judges' configuration.
    pub analysis: AnalysisConfig,
    /// The proxy's listener, limits, access log and trusted proxies.
    pub proxy: ProxyConfig,
    /// The proxy's routing without the rollout's weights.
    pub routes: BaseRoutes,
    /// The revision to roll out, when the file names a canary upstream.
    pub target: Option<CanaryTarget>,
    /// The custom metrics (templates), one query each.
    pub metrics: CustomMetrics,
    /// Where alerts go (`spec.analysis.alerts` with their providers).
    pub alerts: Vec<AlertTarget>,
    /// The external balancer that carries the traffic (HAProxy, nginx, an
    /// AWS ALB), serin driving it; `proxy` and `routes` are then not
    /// served. `None`: the built-in proxy.
    pub balancer: Option<Balancer>,
    /// Where the stable version is, in the router's terms (a URL, `IP:port`,
    /// a target group ARN): the file's, until [`Prepared::set_stable`] says
    /// a promoted canary is.
    pub stable: String,
}

/// The custom metrics of a canary: Prometheus and JSON/HTTP queries.
#[derive(Clone, Default)]
pub struct CustomMetrics(pub Vec<Arc<dyn MetricQuery>>);

impl std::fmt::Debug for CustomMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|metric| metric.name()))
            .finish()
    }
}

/// Why a rollout could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The files hold no canary, several without a name to choose, or one
    /// that cannot run here; each diagnostic names the file and field.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
    /// The proxy could not start.
    #[error(transparent)]
    Proxy(#[from] serin_proxy::Error),
    /// The router refused the initial table.
    #[error("{0}")]
    Router(#[from] serin_rollout::ports::PortError),
    /// The rollout loop stopped without a verdict.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The canary's task ended abnormally (it panicked, or the runtime is
    /// shutting down).
    #[error("rollout task ended abnormally: {0}")]
    Task(String),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

// === impl Prepared ===

impl Prepared {
    /// Picks the canary (by name, or the only one), resolves its references,
    /// and maps it for the proxy, the state machine and the judges. `file`
    /// names where the canary came from, for diagnostics.
    pub fn from_catalog(
        catalog: &Catalog,
        name: Option<&str>,
        file: &str,
    ) -> Result<Prepared, RunError> {
        let invalid = |path: &str, message: String| {
            RunError::Invalid(vec![serin_spec::Problem::new(path, message).in_file(file)])
        };
        let canary = match name {
            Some(name) => catalog
                .canary(name)
                .ok_or_else(|| invalid("metadata.name", format!("no canary named {name:?}")))?,
            None => match catalog.canaries() {
                [one] => one,
                [] => return Err(invalid("kind", "no Canary document found".into())),
                _ => {
                    return Err(invalid(
                        "metadata.name",
                        "several canaries: name the one to run".into(),
                    ));
                }
            },
        };
        let prepared = Prepared::for_canary(catalog, canary, file)?;
        if prepared.target.is_none() {
            return Err(invalid(
                "spec.upstreams.canary",
                "nothing to roll out: set the canary's URL".into(),
            ));
        }
        Ok(prepared)
    }

    /// Resolves and maps one canary of `catalog`. Without a canary upstream
    /// the result has no target: the daemon serves such a canary, all
    /// traffic on stable, until a rollout is started.
    pub fn for_canary(
        catalog: &Catalog,
        canary: &Canary,
        file: &str,
    ) -> Result<Prepared, RunError> {
        let invalid = |path: &str, message: String| {
            RunError::Invalid(vec![serin_spec::Problem::new(path, message).in_file(file)])
        };
        if !canary.is_runnable() {
            return Err(invalid(
                "spec.provider",
                format!(
                    "{:?} is driven by neither `serin run` nor `serin serve`; use `provider: builtin` with `service.listen` and `upstreams`, `provider: haproxy`, `provider: nginx` or `provider: alb`",
                    canary.spec.provider.as_deref().unwrap_or("")
                ),
            ));
        }
        let resolved = catalog.resolve_for_run(canary).map_err(|problems| {
            RunError::Invalid(problems.into_iter().map(|p| p.in_file(file)).collect())
        })?;
        let plan = mapping::plan_for(canary);
        let analysis = mapping::analysis_for(&resolved, &plan).map_err(|problems| {
            RunError::Invalid(problems.into_iter().map(|p| p.in_file(file)).collect())
        })?;
        let metrics = serin_providers::metric_queries(&resolved).map_err(|problems| {
            RunError::Invalid(problems.into_iter().map(|p| p.in_file(file)).collect())
        })?;
        let alerts = resolved
            .alerts
            .iter()
            .enumerate()
            .map(|(index, alert)| AlertTarget::from_resolved(index, alert))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| invalid(error.path(), error.reason()))?;
        let balancer = Balancer::of(canary).map_err(|problems| {
            RunError::Invalid(problems.into_iter().map(|p| p.in_file(file)).collect())
        })?;
        let external = balancer.is_some();
        let routes = crate::external::base_routes(canary, external)
            .map_err(|error| invalid("spec", error.to_string()))?;
        let listen = canary
            .listen_addr()
            .or(external.then_some(crate::external::UNSERVED_LISTEN))
            .ok_or_else(|| {
                invalid(
                    "spec.service.listen",
                    "required by the builtin provider".into(),
                )
            })?;
        let target = target_of(canary);
        // Validation checked every entry; should one fail here anyway, it is
        // refused the same way rather than dropped.
        let trusted_proxies = canary
            .spec
            .service
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(index, range)| {
                range.parse::<IpRange>().map_err(|error| {
                    invalid(
                        &format!("spec.service.trustedProxies[{index}]"),
                        error.to_string(),
                    )
                })
            })
            .collect::<Result<TrustedProxies, _>>()?;
        let tls = match &canary.spec.service.tls {
            Some(tls) => {
                let files = TlsFiles {
                    cert_file: PathBuf::from(tls.cert_file.as_deref().unwrap_or_default().trim()),
                    key_file: PathBuf::from(tls.key_file.as_deref().unwrap_or_default().trim()),
                };
                // What the proxy would refuse at its start, refused here
                // (and so by `serin validate`) with the field named.
                files.check().map_err(|error| {
                    invalid(
                        &format!("spec.service.tls.{}", error.field()),
                        error.to_string(),
                    )
                })?;
                Some(files)
            }
            None => None,
        };
        let upstream_ca_file = match canary
            .spec
            .upstreams
            .as_ref()
            .and_then(|u| u.ca_file.as_deref())
        {
            Some(file) => {
                let path = PathBuf::from(file.trim());
                serin_proxy::check_upstream_ca_file(&path)
                    .map_err(|reason| invalid("spec.upstreams.caFile", reason))?;
                Some(path)
            }
            None => None,
        };
        let proxy = ProxyConfig {
            listen,
            limits: limits_for(canary),
            access_log: canary.spec.service.access_log.as_ref().map(PathBuf::from),
            trusted_proxies,
            tls,
            upstream_ca_file,
        };
        Ok(Prepared {
            canary: canary.clone(),
            plan,
            analysis,
            proxy,
            routes,
            target,
            metrics: CustomMetrics(metrics),
            alerts,
            balancer,
            stable: crate::external::file_stable(canary),
        })
    }

    /// Serves `stable` as the stable version instead of the file's (a
    /// promoted canary's address, as the daemon's store keeps it), in the
    /// router's terms; refused, naming the field, when the router could not
    /// use it.
    pub fn set_stable(&mut self, stable: &str) -> Result<(), RunError> {
        let invalid = |message: String| {
            RunError::Invalid(vec![
                serin_spec::Problem::new("spec.upstreams.stable", message)
                    .in_file(self.canary.name()),
            ])
        };
        if self.balancer.is_none() {
            self.routes.routes.stable = stable
                .parse()
                .map_err(|e| invalid(format!("promoted upstream {stable:?}: {e}")))?;
        }
        stable.clone_into(&mut self.stable);
        Ok(())
    }
}

/// The revision a canary file asks to roll out: `upstreams.canary`, named by
/// `upstreams.revision` or else by its URL. `serin run` starts it and the
/// daemon compares it with the one last started, so both read it here.
pub fn target_of(canary: &Canary) -> Option<CanaryTarget> {
    let address = canary.canary_upstream()?;
    let revision = canary
        .spec
        .upstreams
        .as_ref()
        .and_then(|u| u.revision.clone())
        .unwrap_or_else(|| address.to_owned());
    Some(CanaryTarget {
        address: address.to_owned(),
        revision,
    })
}

/// The proxy's limits: serin's defaults, overridden by `spec.service.limits`.
pub fn limits_for(canary: &Canary) -> Limits {
    let mut limits = Limits::default();
    if let Some(set) = &canary.spec.service.limits {
        if let Some(bytes) = set.max_body_bytes {
            limits.max_request_body_bytes = Some(bytes);
        }
        if let Some(bytes) = set.max_header_bytes.and_then(|b| usize::try_from(b).ok()) {
            limits.max_header_bytes = bytes;
        }
        if let Some(d) = &set.connect_timeout {
            limits.connect_timeout = d.as_std();
        }
        if let Some(d) = &set.request_timeout {
            limits.response_header_timeout = d.as_std();
        }
        if let Some(d) = &set.idle_timeout {
            limits.idle_timeout = d.as_std();
        }
        if let Some(d) = &set.response_body_timeout {
            limits.upstream_body_timeout = d.as_std();
        }
    }
    limits
}

/// A canary running: its proxy's address, a way to send commands, and the
/// rollout loop's outcome. Made by [`launch`].
pub struct Running {
    /// Where serin receives the traffic: the proxy's listener, or for an
    /// external router the socket its request log arrives on.
    pub listen: SocketAddr,
    /// Starts and manual gates (pause, resume, promote now, abort).
    pub commands: mpsc::Sender<Command>,
    /// The statistics the proxy records.
    pub recorder: Arc<Recorder>,
    /// The proxy, for its own counters (`None`: an external router).
    pub proxy: Option<ProxyHandle>,
    /// The counters of the balancer's request-log receiver (`None`: the
    /// built-in proxy, or a balancer that sends no log), for `/metrics`.
    pub log: Option<Arc<LogCounters>>,
    /// Tells the proxy to stop accepting and drain.
    stop_proxy: Arc<Notify>,
    outcome: tokio::task::JoinHandle<Result<RolloutState, RunError>>,
}

/// How long a launched canary's rollout loop runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// To its first verdict ([`Driver::run_to_verdict`]); the verdict's
    /// alerts and events go out before the proxy stops. `serin run` and
    /// `serin demo`.
    Verdict,
    /// Rollout after rollout ([`Driver::serve_revisions`]) until
    /// [`Running::stop`]. The daemon: alerts still pending then are not
    /// waited for, so a relaunched canary gets its listener back at once.
    Revisions,
}

// === impl Running ===

impl Running {
    /// Waits for the rollout loop to end (the verdict, for
    /// [`Lifetime::Verdict`]), then for the proxy to drain.
    pub async fn outcome(self) -> Result<RolloutState, RunError> {
        match self.outcome.await {
            Ok(result) => result,
            Err(join) => Err(RunError::Task(join.to_string())),
        }
    }

    /// Stops a [`Lifetime::Revisions`] canary: its rollout loop ends (it
    /// saved after its last event) while its proxy drains; the loop's last
    /// state.
    pub async fn stop(self) -> Result<RolloutState, RunError> {
        let Running {
            commands,
            stop_proxy,
            outcome,
            ..
        } = self;
        drop(commands);
        stop_proxy.notify_one();
        match outcome.await {
            Ok(result) => result,
            Err(join) => Err(RunError::Task(join.to_string())),
        }
    }
}

/// A canary's runtime parts, bound and wired but not yet running: the
/// proxy (listening, not serving), its statistics, the router, the judge,
/// the webhooks with alerts, and the custom metric queries. `serin run` and
/// the daemon both build rollouts from these.
pub struct Assembled {
    /// The canary.
    pub canary: Canary,
    /// The state machine's plan.
    pub plan: Plan,
    /// The proxy, bound; serve it once routes are set (`None`: an external
    /// balancer carries the traffic).
    pub proxy: Option<Proxy>,
    /// The receiver of the balancer's request log, listening (HAProxy,
    /// nginx); it stops when dropped.
    pub log: Option<SyslogReceiver>,
    /// What the proxy (or the balancer's log) records.
    pub recorder: Arc<Recorder>,
    /// The router (the built-in proxy or a balancer), tapped for alerts.
    pub router: Arc<dyn Router>,
    /// The analysis.
    pub judge: Analyzer,
    /// Webhooks and alerts.
    pub notifier: Arc<Notifier>,
    /// Custom metric queries.
    pub metrics: Vec<Arc<dyn MetricQuery>>,
    /// The revision the file names, if any.
    pub target: Option<CanaryTarget>,
}

/// What is left of [`Assembled`] once its rollout loop is built: the proxy
/// to serve, and what the caller still needs beside the loop.
pub struct Parts {
    /// The proxy, bound; serve it once routes are set (`None`: an external
    /// balancer carries the traffic).
    pub proxy: Option<Proxy>,
    /// The receiver of the balancer's request log, listening.
    pub log: Option<SyslogReceiver>,
    /// What the proxy records.
    pub recorder: Arc<Recorder>,
    /// Webhooks and alerts (flush them before exiting).
    pub notifier: Arc<Notifier>,
    /// The revision the file names, if any.
    pub target: Option<CanaryTarget>,
}

// === impl Assembled ===

impl Assembled {
    /// Where serin receives the traffic: the proxy's listener, the socket
    /// a balancer's request log arrives on, or (an ALB) [`UNSERVED_LISTEN`].
    pub fn listen(&self) -> SocketAddr {
        match (&self.proxy, &self.log) {
            (Some(proxy), _) => proxy.local_addr(),
            (None, Some(log)) => log.local_addr(),
            (None, None) => UNSERVED_LISTEN,
        }
    }

    /// The rollout loop over these parts, starting from `state` and saving
    /// through `persistence`; `serin run` and the daemon differ only there.
    /// Refused when the state machine refuses the plan.
    pub fn into_driver(
        self,
        state: RolloutState,
        updates: broadcast::Sender<Update>,
        persistence: crate::driver::Persistence,
    ) -> Result<(Driver<TokioClock>, Parts), DriverError> {
        let name = self.canary.name().to_owned();
        let rollout =
            Rollout::restore(self.plan, state).map_err(|source| DriverError::Machine {
                name: name.clone(),
                source,
            })?;
        let driver = Driver {
            name,
            rollout,
            judge: self.judge,
            router: self.router,
            traffic: self.recorder.clone(),
            metrics: self.metrics,
            webhooks: self.notifier.clone(),
            clock: TokioClock::new(),
            updates,
            persistence,
        };
        let parts = Parts {
            proxy: self.proxy,
            log: self.log,
            recorder: self.recorder,
            notifier: self.notifier,
            target: self.target,
        };
        Ok((driver, parts))
    }
}

/// Binds the proxy (or the receiver of a balancer's log), builds the
/// router and wires the ports of a prepared canary: the one way `serin
/// run`, `serin demo` and the daemon build a canary, whatever its router.
pub async fn assemble(prepared: Prepared) -> Result<Assembled, RunError> {
    let Prepared {
        canary,
        plan,
        analysis,
        proxy,
        routes,
        target,
        metrics,
        alerts,
        balancer,
        stable,
    } = prepared;
    // Windows cover the longest metric interval in whole slots; a replay of
    // the access log builds the same ones.
    let recorder = Arc::new(Recorder::new(crate::cadence::window_span(&analysis)));
    let judge = Analyzer::new(analysis).map_err(|error| {
        RunError::Invalid(vec![
            serin_spec::Problem::new("spec.analysis", error.to_string()).in_file(canary.name()),
        ])
    })?;
    let carrier = crate::external::carrier(
        &canary,
        balancer.as_ref(),
        proxy,
        routes,
        &stable,
        recorder.clone(),
    )
    .await?;
    // Alerts ride on the webhooks port and watch the router for the weight.
    let notifier = Notifier::new(
        HttpWebhooks::from_canary(&canary),
        canary.name(),
        canary.metadata.namespace.as_deref().unwrap_or("default"),
        alerts,
        std::env::var(DASHBOARD_URL_VAR).ok(),
    );
    let router: Arc<dyn Router> = notifier.tap(carrier.router);
    Ok(Assembled {
        canary,
        plan,
        proxy: carrier.proxy,
        log: carrier.log,
        recorder,
        router,
        judge,
        notifier,
        metrics: metrics.0,
        target,
    })
}

/// Starts the proxy and the rollout of a prepared canary to its verdict
/// (`serin run`, `serin demo`): a fresh state, saved nowhere, and the
/// revision the file names started at once.
pub async fn start(
    prepared: Prepared,
    updates: broadcast::Sender<Update>,
) -> Result<Running, RunError> {
    let assembled = assemble(prepared).await?;
    let target = assembled.target.clone();
    let state = RolloutState::new(TokioClock::new().now());
    let running = launch(
        assembled,
        state,
        crate::driver::Persistence::none(),
        updates,
        Lifetime::Verdict,
    )
    .await?;
    if let Some(target) = target {
        // The channel has room for 16 commands and is empty: this cannot
        // fail (and the loop cannot have ended: nothing started it yet).
        let _ = running.commands.try_send(Command::Start(target));
    }
    Ok(running)
}

/// A canary's whole life, the one way `serin run`, `serin demo` and the
/// daemon run one: routes as `state` says before a single request is
/// accepted, then the proxy serves while the rollout loop runs for
/// `lifetime`; when the loop ends the proxy stops and drains. Returns once
/// the proxy listens; refused when the state machine refuses the plan.
pub async fn launch(
    assembled: Assembled,
    state: RolloutState,
    persistence: crate::driver::Persistence,
    updates: broadcast::Sender<Update>,
    lifetime: Lifetime,
) -> Result<Running, RunError> {
    let name = assembled.canary.name().to_owned();
    let listen = assembled.listen();
    let (mut driver, parts) = assembled.into_driver(state, updates, persistence)?;
    let Parts {
        proxy,
        log,
        recorder,
        notifier,
        ..
    } = parts;
    // Reconciles the router with the state: for a balancer, its state is
    // read back and what the state says re-applied. A refusal stays
    // pending: the loop retries it, and analyses hold.
    if let Err(error) = driver.restore_routes().await {
        tracing::warn!(canary = %name, %error, "could not restore routes");
    }
    let handle = proxy.as_ref().map(Proxy::handle);
    let log_counters = log.as_ref().map(SyslogReceiver::counters);
    let stop_proxy = Arc::new(Notify::new());
    let proxy_task = proxy.map(|proxy| {
        let stop = stop_proxy.clone();
        // A stored permit: a stop signalled before the proxy waits still
        // stops it.
        tokio::spawn(proxy.serve(async move { stop.notified().await }))
    });
    let (commands, receiver) = mpsc::channel(16);
    let stop = stop_proxy.clone();
    let outcome = tokio::spawn(async move {
        let result = match lifetime {
            Lifetime::Verdict => driver.run_to_verdict(receiver).await,
            Lifetime::Revisions => driver.serve_revisions(receiver).await,
        };
        // The verdict's alerts and events go out before the process may exit.
        if lifetime == Lifetime::Verdict && !notifier.flush(FLUSH_ALERTS).await {
            tracing::warn!(canary = %name, "alerts or event webhooks still pending after {FLUSH_ALERTS:?}");
        }
        stop.notify_one();
        // The proxy drains in-flight requests before the outcome is reported.
        if let Some(task) = proxy_task {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(canary = %name, %error, "proxy stopped"),
                Err(join) => {
                    tracing::error!(canary = %name, error = %join, "proxy task ended abnormally")
                }
            }
        }
        // The balancer's log is received until the loop ends; its socket is
        // closed before the outcome is reported, so a relaunch binds it again.
        if let Some(log) = log {
            log.stop().await;
        }
        result.map_err(RunError::from)
    });
    Ok(Running {
        listen,
        commands,
        recorder,
        proxy: handle,
        log: log_counters,
        stop_proxy,
        outcome,
    })
}

/// Whether a final state means the canary was promoted.
pub fn promoted(state: &RolloutState) -> bool {
    state.phase == Phase::Succeeded
}
