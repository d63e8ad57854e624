//! Canaries whose traffic an external balancer carries (`provider:
//! haproxy`, `provider: nginx`, `provider: alb`): serin drives the balancer
//! through its `Router` and measures both versions from the balancer's
//! request log (HAProxy, nginx) or from CloudWatch (an ALB, whose built-in
//! metrics are then metric queries) instead of its own proxy.
//! Everything else (plan, judges, webhooks, alerts, the rollout loop) is the
//! same as for the built-in proxy.

use crate::{
    clock::{Clock, TokioClock},
    driver::{Command, Driver, Persistence, Update},
    run::{DASHBOARD_URL_VAR, FLUSH_ALERTS, Prepared, RunError, Running},
};
use serin_analysis::Analyzer;
use serin_providers::{
    BaseRoutes, HaproxyFormat, HaproxyRouter, HttpWebhooks, LogFormat, NginxFormat, NginxRouter,
    Notifier, RoutingError, SyslogReceiver,
};
use serin_proxy::Recorder;
use serin_rollout::{
    Rollout, RolloutState,
    ports::{PortError, Router},
};
use serin_spec::{AlbSpec, Canary, HaproxySpec, NginxSpec, Problem};
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};
use tokio::sync::{broadcast, mpsc};

/// The proxy listen address of a canary the proxy does not serve: never
/// bound, it only fills [`Prepared::proxy`].
pub const UNSERVED_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// The HAProxy settings of a `provider: haproxy` canary (`None` for other
/// providers), checked by the rule `serin validate` applies.
pub fn haproxy_of(canary: &Canary) -> Result<Option<HaproxySpec>, Vec<Problem>> {
    if !canary.is_haproxy() {
        return Ok(None);
    }
    let spec = serin_spec::problem::Path::root().key("spec");
    let upstreams = canary.spec.upstreams.as_ref();
    let problems = serin_spec::haproxy::validate(
        &spec.key("haproxy"),
        canary.spec.haproxy.as_ref(),
        &spec.key("upstreams"),
        upstreams.and_then(|u| u.stable.as_deref()),
        upstreams.and_then(|u| u.canary.as_deref()),
    );
    if problems.is_empty() {
        Ok(canary.spec.haproxy.clone())
    } else {
        Err(problems)
    }
}

/// The nginx settings of a `provider: nginx` canary outside Kubernetes
/// (`None` for other providers), checked by the rule `serin validate`
/// applies.
pub fn nginx_of(canary: &Canary) -> Result<Option<NginxSpec>, Vec<Problem>> {
    if !canary.is_nginx() {
        return Ok(None);
    }
    let spec = serin_spec::problem::Path::root().key("spec");
    let upstreams = canary.spec.upstreams.as_ref();
    let problems = serin_spec::nginx::validate(
        &spec.key("nginx"),
        canary.spec.nginx.as_ref(),
        &spec.key("upstreams"),
        upstreams.and_then(|u| u.stable.as_deref()),
        upstreams.and_then(|u| u.canary.as_deref()),
    );
    match (problems.is_empty(), &canary.spec.nginx) {
        (true, Some(nginx)) => Ok(Some(nginx.clone())),
        _ => Err(problems),
    }
}

/// The ALB settings of a `provider: alb` canary (`None` for other
/// providers), checked by the rule `serin validate` applies.
pub fn alb_of(canary: &Canary) -> Result<Option<AlbSpec>, Vec<Problem>> {
    if !canary.is_alb() {
        return Ok(None);
    }
    let spec = serin_spec::problem::Path::root().key("spec");
    let upstreams = canary.spec.upstreams.as_ref();
    let problems = serin_spec::alb::validate(
        &spec.key("alb"),
        canary.spec.alb.as_ref(),
        &spec.key("upstreams"),
        upstreams.and_then(|u| u.stable.as_deref()),
        upstreams.and_then(|u| u.canary.as_deref()),
    );
    match (problems.is_empty(), &canary.spec.alb) {
        (true, Some(alb)) => Ok(Some(alb.clone())),
        _ => Err(problems),
    }
}

/// The routing table [`Prepared`] carries. An external balancer's upstreams
/// are `IP:port`; they are written as URLs so the table still says which
/// version is where, though no proxy serves it.
pub fn base_routes(canary: &Canary, external: bool) -> Result<BaseRoutes, RoutingError> {
    if !external {
        return BaseRoutes::from_canary(canary);
    }
    let mut as_urls = canary.clone();
    if canary.is_alb() {
        // Target groups are no addresses: the table names a host that
        // never resolves (`.invalid` is reserved for that).
        let upstreams = as_urls.spec.upstreams.get_or_insert_with(Default::default);
        upstreams.stable = Some("http://alb-target-group.invalid".into());
        upstreams.canary = None;
    } else if let Some(upstreams) = as_urls.spec.upstreams.as_mut() {
        upstreams.stable = upstreams.stable.as_ref().map(|s| format!("http://{s}"));
        upstreams.canary = None;
    }
    BaseRoutes::from_canary(&as_urls)
}

/// Starts the rollout of a `provider: haproxy` canary: the HAProxy router,
/// the syslog receiver as its traffic source, and the rollout loop; returns
/// once the receiver listens. [`Running::listen`] is the receiver's address.
pub async fn start_haproxy(
    prepared: Prepared,
    haproxy: HaproxySpec,
    updates: broadcast::Sender<Update>,
) -> Result<Running, RunError> {
    let router = HaproxyRouter::new(
        &haproxy,
        prepared.canary.stable_upstream().unwrap_or_default(),
    )?;
    let format = Arc::new(HaproxyFormat(haproxy.servers.clone()));
    let log = LogSource {
        balancer: "haproxy",
        listen: haproxy.log_listen.clone(),
        format,
    };
    start_external(prepared, Arc::new(router), Some(log), updates).await
}

/// Starts the rollout of a `provider: nginx` canary: the nginx router (the
/// upstream file it owns), the syslog receiver of nginx's access log, and
/// the rollout loop; returns once the receiver listens.
pub async fn start_nginx(
    prepared: Prepared,
    nginx: NginxSpec,
    updates: broadcast::Sender<Update>,
) -> Result<Running, RunError> {
    let router = NginxRouter::new(
        &nginx,
        prepared.canary.stable_upstream().unwrap_or_default(),
    )?;
    let format = Arc::new(NginxFormat(router.version_addrs()));
    let log = LogSource {
        balancer: "nginx",
        listen: nginx.log_listen.clone(),
        format,
    };
    start_external(prepared, Arc::new(router), Some(log), updates).await
}

/// Starts the rollout of a `provider: alb` canary: the ALB router (the
/// forward action it owns) and the rollout loop. An ALB sends no request
/// log: the built-in metrics are CloudWatch queries among the metrics, and
/// the traffic source stays empty. [`Running::listen`] is
/// [`UNSERVED_LISTEN`].
#[cfg(feature = "aws")]
pub async fn start_alb(
    prepared: Prepared,
    alb: AlbSpec,
    updates: broadcast::Sender<Update>,
) -> Result<Running, RunError> {
    let stickiness = serin_providers::alb::stickiness_of(&prepared.canary);
    let router = serin_providers::AlbRouter::new(&alb, stickiness).await?;
    start_external(prepared, Arc::new(router), None, updates).await
}

/// Without the AWS SDK (`serin-providers` built without `aws`) an ALB
/// canary is refused with a clear error.
#[cfg(not(feature = "aws"))]
pub async fn start_alb(
    _prepared: Prepared,
    _alb: AlbSpec,
    _updates: broadcast::Sender<Update>,
) -> Result<Running, RunError> {
    Err(RunError::Router(PortError::Unsupported(
        "provider alb: this serin was built without the AWS SDK (feature aws)".into(),
    )))
}

/// Where and how an external balancer's request log arrives.
struct LogSource {
    /// `haproxy`, `nginx`: for messages.
    balancer: &'static str,
    /// `spec.<balancer>.logListen`.
    listen: String,
    /// How its lines name the versions.
    format: Arc<dyn LogFormat>,
}

/// The rollout of a canary behind an external balancer: `router` moves
/// traffic, the syslog receiver measures it (when the balancer logs to
/// serin).
async fn start_external(
    prepared: Prepared,
    router: Arc<dyn Router>,
    log: Option<LogSource>,
    updates: broadcast::Sender<Update>,
) -> Result<Running, RunError> {
    let Prepared {
        canary,
        plan,
        analysis,
        target,
        metrics,
        alerts,
        ..
    } = prepared;
    // Windows cover the longest metric interval in whole slots, as for the
    // built-in proxy.
    let recorder = Arc::new(Recorder::new(crate::cadence::window_span(&analysis)));
    let judge = Analyzer::new(analysis).map_err(|error| {
        RunError::Invalid(vec![
            Problem::new("spec.analysis", error.to_string()).in_file(canary.name()),
        ])
    })?;
    let receiver = match log {
        Some(log) => Some(bind_log(log, recorder.clone()).await?),
        None => None,
    };
    let notifier = Notifier::new(
        HttpWebhooks::from_canary(&canary),
        canary.name(),
        canary.metadata.namespace.as_deref().unwrap_or("default"),
        alerts,
        std::env::var(DASHBOARD_URL_VAR).ok(),
    );
    let router: Arc<dyn Router> = notifier.tap(router);
    let clock = TokioClock::new();
    let rollout = Rollout::restore(plan, RolloutState::new(clock.now())).map_err(|source| {
        RunError::from(crate::driver::DriverError::Machine {
            name: canary.name().to_owned(),
            source,
        })
    })?;
    let driver = Driver {
        name: canary.name().to_owned(),
        rollout,
        judge,
        router,
        traffic: recorder.clone(),
        metrics: metrics.0,
        webhooks: notifier.clone(),
        clock,
        updates,
        persistence: Persistence::none(),
    };
    let listen = receiver
        .as_ref()
        .map_or(UNSERVED_LISTEN, |(receiver, _)| receiver.local_addr());
    let log_counters = receiver.as_ref().map(|(receiver, _)| receiver.counters());
    let (commands, commands_rx) = mpsc::channel(16);
    if let Some(target) = target {
        // The channel has room for 16 commands and is empty: this cannot fail.
        let _ = commands.try_send(Command::Start(target));
    }
    let outcome = tokio::spawn(async move {
        let result = driver.run_to_verdict(commands_rx).await;
        if !notifier.flush(FLUSH_ALERTS).await {
            tracing::warn!("alerts or event webhooks still pending after {FLUSH_ALERTS:?}");
        }
        if let Some((receiver, balancer)) = receiver {
            let counters = receiver.counters();
            tracing::info!(
                dropped = counters.dropped(),
                balancer,
                "log lines dropped (not serin's format or another server)"
            );
            drop(receiver);
        }
        result.map_err(RunError::from)
    });
    Ok(Running::external(
        listen,
        commands,
        recorder,
        log_counters,
        outcome,
    ))
}

/// Binds the syslog receiver of a balancer's request log, filling
/// `recorder`; returns it with the balancer's name.
async fn bind_log(
    log: LogSource,
    recorder: Arc<Recorder>,
) -> Result<(SyslogReceiver, &'static str), RunError> {
    let LogSource {
        balancer,
        listen: log_listen,
        format,
    } = log;
    let log_listen = log_listen.trim();
    let unavailable = |message: String| {
        RunError::Router(PortError::Unavailable {
            system: format!("{balancer} log receiver at {log_listen}"),
            message,
        })
    };
    let addr: SocketAddr = log_listen
        .parse()
        .map_err(|_| unavailable(format!("spec.{balancer}.logListen is not IP:port")))?;
    let receiver = SyslogReceiver::bind_format(addr, format, recorder)
        .await
        .map_err(|error| unavailable(error.to_string()))?;
    Ok((receiver, balancer))
}
