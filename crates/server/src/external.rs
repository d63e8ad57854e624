//! Canaries whose traffic an external balancer carries (`provider:
//! haproxy`, `provider: nginx`, `provider: alb`): serin drives the balancer
//! through its `Router` and measures both versions from the balancer's
//! request log (HAProxy, nginx) or from CloudWatch (an ALB, whose built-in
//! metrics are then metric queries) instead of its own proxy.
//! Everything else (plan, judges, webhooks, alerts, the rollout loop, the
//! daemon's store) is the same as for the built-in proxy: [`carrier`] is the
//! one place that builds a canary's router, for `serin run` and `serin
//! serve` alike, and [`check_canary_address`] the one rule for the address
//! `serin start --canary` names.

use crate::run::RunError;
use serin_providers::{
    BaseRoutes, HaproxyFormat, HaproxyRouter, LogFormat, NginxFormat, NginxRouter, ProxyRouter,
    RoutingError, SyslogReceiver,
};
use serin_proxy::{Proxy, ProxyConfig, Recorder};
use serin_rollout::ports::{PortError, Router};
use serin_spec::{AlbSpec, Canary, HaproxySpec, NginxSpec, Problem, UpstreamUrl};
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

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

/// The external balancer a canary file names (`None` in [`crate::Prepared`]:
/// the built-in proxy), with its block checked by the rule `serin validate`
/// applies.
#[derive(Clone, Debug)]
pub enum Balancer {
    /// `provider: haproxy`: the runtime API of every instance, the backend
    /// and its two servers, where HAProxy's request log arrives.
    Haproxy(HaproxySpec),
    /// `provider: nginx` outside Kubernetes: the upstream file serin owns,
    /// the reload command, where nginx's access log arrives.
    Nginx(NginxSpec),
    /// `provider: alb`: the listener (or rule) whose forward action serin
    /// owns, the stable target group, the region and endpoint.
    Alb(AlbSpec),
}

// === impl Balancer ===

impl Balancer {
    /// The external balancer of `canary`, `None` for the built-in proxy;
    /// every problem of its block, with the field, otherwise.
    pub fn of(canary: &Canary) -> Result<Option<Balancer>, Vec<Problem>> {
        if let Some(haproxy) = haproxy_of(canary)? {
            return Ok(Some(Balancer::Haproxy(haproxy)));
        }
        if let Some(nginx) = nginx_of(canary)? {
            return Ok(Some(Balancer::Nginx(nginx)));
        }
        Ok(alb_of(canary)?.map(Balancer::Alb))
    }

    /// The provider's name, as `spec.provider` spells it.
    pub fn provider(&self) -> &'static str {
        match self {
            Balancer::Haproxy(_) => "haproxy",
            Balancer::Nginx(_) => "nginx",
            Balancer::Alb(_) => "alb",
        }
    }
}

/// The stable version a canary file names, in its router's terms: the
/// stable upstream (a URL for the built-in proxy, `IP:port` for HAProxy and
/// nginx) or an ALB's stable target group ARN.
pub fn file_stable(canary: &Canary) -> String {
    match (&canary.spec.alb, canary.is_alb()) {
        (Some(alb), true) => alb.stable_target_group_arn.trim().to_owned(),
        _ => canary
            .stable_upstream()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// Checks the address `serin start NAME --canary X` gives (and a file's
/// `upstreams.canary`) in the router's own terms: a URL the proxy can
/// forward to for the built-in proxy, `IP:port` for HAProxy and nginx, a
/// target group ARN for an ALB. The error starts with the field,
/// `canary: `, and says what was expected.
pub fn check_canary_address(canary: &Canary, address: &str) -> Result<(), String> {
    let address = address.trim();
    let refused = |error: String| format!("canary: {error}");
    if canary.is_haproxy() {
        serin_spec::haproxy::server_addr(address)
            .map(drop)
            .map_err(refused)
    } else if canary.is_nginx() {
        serin_spec::nginx::server_addr(address)
            .map(drop)
            .map_err(refused)
    } else if canary.is_alb() {
        serin_spec::alb::parse_arn(address, serin_spec::alb::ArnKind::TargetGroup)
            .map_err(|error| format!("canary: {address:?}: {error}"))?;
        if address == file_stable(canary) {
            return Err(format!(
                "canary: {address:?} is the stable target group: the canary needs its own"
            ));
        }
        Ok(())
    } else {
        UpstreamUrl::parse(address)
            .map(drop)
            .map_err(|error| format!("canary: {address:?}: {error}"))
    }
}

/// What carries a canary's traffic: its router and where the per-version
/// statistics come from (the built-in proxy's own recording, or the syslog
/// receiver of a balancer's request log filling the same recorder).
pub struct Carrier {
    /// The router, not yet tapped for alerts.
    pub router: Arc<dyn Router>,
    /// The built-in proxy, bound, not serving yet (`None`: a balancer
    /// carries the traffic).
    pub proxy: Option<Proxy>,
    /// The receiver of the balancer's request log (HAProxy, nginx),
    /// listening; dropping it stops it.
    pub log: Option<SyslogReceiver>,
}

impl std::fmt::Debug for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Carrier")
            .field("router", &self.router.name())
            .field("proxy", &self.proxy.as_ref().map(Proxy::local_addr))
            .field("log", &self.log.as_ref().map(SyslogReceiver::local_addr))
            .finish()
    }
}

/// Builds what carries `canary`'s traffic: the one constructor of every
/// router, for `serin run` and the daemon alike. `stable` is where the
/// stable version is now (the file's, or a promoted canary's), in the
/// router's terms; `recorder` receives both versions' requests.
pub async fn carrier(
    canary: &Canary,
    balancer: Option<&Balancer>,
    proxy: ProxyConfig,
    routes: BaseRoutes,
    stable: &str,
    recorder: Arc<Recorder>,
) -> Result<Carrier, RunError> {
    match balancer {
        None => {
            let bound = Proxy::bind(proxy, routes.routes.clone(), recorder).await?;
            let router = ProxyRouter::new(bound.handle(), routes)?;
            Ok(Carrier {
                router: Arc::new(router),
                proxy: Some(bound),
                log: None,
            })
        }
        Some(Balancer::Haproxy(haproxy)) => {
            let router = HaproxyRouter::new(haproxy, stable)?;
            let format = Arc::new(HaproxyFormat(haproxy.servers.clone()));
            let log = bind_log("haproxy", &haproxy.log_listen, format, recorder).await?;
            Ok(Carrier {
                router: Arc::new(router),
                proxy: None,
                log: Some(log),
            })
        }
        Some(Balancer::Nginx(nginx)) => {
            let router = NginxRouter::new(nginx, stable)?;
            let format = Arc::new(NginxFormat(router.version_addrs()));
            let log = bind_log("nginx", &nginx.log_listen, format, recorder).await?;
            Ok(Carrier {
                router: Arc::new(router),
                proxy: None,
                log: Some(log),
            })
        }
        Some(Balancer::Alb(alb)) => alb_carrier(canary, alb, stable).await,
    }
}

/// An ALB sends no request log: the built-in metrics are CloudWatch
/// queries among the metrics, and the recorder stays empty.
#[cfg(feature = "aws")]
async fn alb_carrier(canary: &Canary, alb: &AlbSpec, stable: &str) -> Result<Carrier, RunError> {
    let stickiness = serin_providers::alb::stickiness_of(canary);
    let mut alb = alb.clone();
    stable.clone_into(&mut alb.stable_target_group_arn);
    let router = serin_providers::AlbRouter::new(&alb, stickiness).await?;
    Ok(Carrier {
        router: Arc::new(router),
        proxy: None,
        log: None,
    })
}

/// Without the AWS SDK (`serin-providers` built without `aws`) an ALB
/// canary is refused with a clear error.
#[cfg(not(feature = "aws"))]
async fn alb_carrier(_canary: &Canary, _alb: &AlbSpec, _stable: &str) -> Result<Carrier, RunError> {
    Err(RunError::Router(PortError::Unsupported(
        "provider alb: this serin was built without the AWS SDK (feature aws)".into(),
    )))
}

/// Binds the syslog receiver of a balancer's request log (`balancer`:
/// `haproxy`, `nginx`), filling `recorder`.
async fn bind_log(
    balancer: &'static str,
    log_listen: &str,
    format: Arc<dyn LogFormat>,
    recorder: Arc<Recorder>,
) -> Result<SyslogReceiver, RunError> {
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
    SyslogReceiver::bind_format(addr, format, recorder)
        .await
        .map_err(|error| unavailable(error.to_string()))
}
