//! serin's own proxy as a [`Router`]: the default for teams without a mesh or
//! a balancer to drive.

use serin_proxy::{MatchRule, ProxyHandle, Routes, StickySessions, StringMatch};
use serin_rollout::{
    Route,
    ports::{BoxFuture, CanaryTarget, PortError, Router},
};
use serin_spec::{Canary, HttpMatchRequest, UpstreamUrl};
use std::{sync::Mutex, time::Duration};

/// Flagger's default cookie lifetime for session affinity.
const DEFAULT_COOKIE_MAX_AGE: Duration = Duration::from_secs(86_400);

/// Why a canary's routing cannot be expressed by the built-in proxy.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// A URL the proxy cannot forward to.
    #[error("{path}: {message}")]
    Upstream {
        /// The field, e.g. `spec.upstreams.stable`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A match rule the proxy cannot evaluate.
    #[error("{path}: {message}")]
    Match {
        /// The field, e.g. `spec.analysis.match[0].headers.x-canary`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The parts of the routing table that come from the canary file; weights
/// and mirroring come from the rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseRoutes {
    /// Stable upstream, canary upstream (when a rollout is on), A/B rules and
    /// sticky sessions; `canary_weight` and `mirror` are overwritten per route.
    pub routes: Routes,
}

// === impl BaseRoutes ===

impl BaseRoutes {
    /// The built-in proxy's routing from a canary file.
    pub fn from_canary(canary: &Canary) -> Result<Self, RoutingError> {
        let stable = parse_upstream("spec.upstreams.stable", canary.stable_upstream())?;
        let analysis = canary.analysis();
        let mut matches = Vec::with_capacity(analysis.match_rules.len());
        for (index, rule) in analysis.match_rules.iter().enumerate() {
            matches.push(match_rule(&format!("spec.analysis.match[{index}]"), rule)?);
        }
        let sticky = analysis
            .session_affinity
            .as_ref()
            .map(|affinity| StickySessions {
                cookie_name: affinity.cookie_name.clone(),
                max_age: affinity
                    .max_age
                    .and_then(|secs| u64::try_from(secs).ok())
                    .filter(|secs| *secs > 0)
                    .map_or(DEFAULT_COOKIE_MAX_AGE, Duration::from_secs),
                primary_cookie_name: affinity.primary_cookie_name.clone(),
                primary_max_age: analysis.interval(),
            });
        Ok(BaseRoutes {
            routes: Routes {
                stable,
                canary: None,
                canary_weight: 0,
                matches,
                sticky,
                mirror: None,
                revision: None,
            },
        })
    }
}

/// The built-in proxy behind the [`Router`] port.
#[derive(Debug)]
pub struct ProxyRouter {
    proxy: ProxyHandle,
    /// The table without the rollout's weights; the rollout's last route.
    state: Mutex<(Routes, Route)>,
}

// === impl ProxyRouter ===

impl ProxyRouter {
    /// Drives `proxy`, starting with everything on stable.
    pub fn new(proxy: ProxyHandle, base: BaseRoutes) -> Result<Self, PortError> {
        let router = ProxyRouter {
            proxy,
            state: Mutex::new((base.routes, Route::STABLE)),
        };
        router.apply(|_, _| Ok(()))?;
        Ok(router)
    }

    /// Changes the base table and/or route under the lock, then installs the
    /// resulting table in the proxy.
    fn apply(
        &self,
        change: impl FnOnce(&mut Routes, &mut Route) -> Result<(), PortError>,
    ) -> Result<(), PortError> {
        // A poisoned lock means a panic while changing two plain values; they
        // are still consistent enough to overwrite, so recover them.
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (base, route) = &mut *guard;
        change(base, route)?;
        let mut table = base.clone();
        let canary_on = table.canary.is_some();
        table.canary_weight = if canary_on { route.canary_weight } else { 0 };
        table.mirror = route.mirror.filter(|_| canary_on);
        if !route.match_active || !canary_on {
            table.matches.clear();
        }
        // Sticky sessions stay configured at weight 0 and between rollouts:
        // the proxy then pins nobody to the canary and deletes the canary
        // cookie of users who still carry one (Flagger's behaviour).
        self.proxy
            .set_routes(table)
            .map_err(|error| PortError::Refused {
                system: "builtin proxy".into(),
                message: error.to_string(),
            })
    }

    /// The table the proxy serves now.
    pub fn current(&self) -> std::sync::Arc<Routes> {
        self.proxy.routes()
    }
}

impl Router for ProxyRouter {
    fn name(&self) -> &str {
        "builtin proxy"
    }

    fn set_canary(&self, canary: &CanaryTarget) -> BoxFuture<'_, Result<(), PortError>> {
        let result = parse_upstream("spec.upstreams.canary", Some(&canary.address))
            .map_err(|error| PortError::Refused {
                system: "builtin proxy".into(),
                message: error.to_string(),
            })
            .and_then(|uri| {
                self.apply(|base, _| {
                    base.canary = Some(uri);
                    base.revision = Some(canary.revision.clone());
                    Ok(())
                })
            });
        Box::pin(async move { result })
    }

    fn set_route(&self, route: Route) -> BoxFuture<'_, Result<(), PortError>> {
        let result = self.apply(|_, current| {
            *current = route;
            Ok(())
        });
        Box::pin(async move { result })
    }

    fn restore_canary(
        &self,
        canary: &CanaryTarget,
        route: Route,
    ) -> BoxFuture<'_, Result<(), PortError>> {
        // One table: the canary upstream with its route.
        let result = parse_upstream("spec.upstreams.canary", Some(&canary.address))
            .map_err(|error| PortError::Refused {
                system: "builtin proxy".into(),
                message: error.to_string(),
            })
            .and_then(|uri| {
                self.apply(|base, current| {
                    base.canary = Some(uri);
                    base.revision = Some(canary.revision.clone());
                    *current = route;
                    Ok(())
                })
            });
        Box::pin(async move { result })
    }

    fn promote(&self) -> BoxFuture<'_, Result<(), PortError>> {
        let result = self.apply(|base, _| match base.canary.clone() {
            Some(canary) => {
                base.stable = canary;
                Ok(())
            }
            None => Err(PortError::Refused {
                system: "builtin proxy".into(),
                message: "no canary upstream to promote".into(),
            }),
        });
        Box::pin(async move { result })
    }

    fn finalise(&self) -> BoxFuture<'_, Result<(), PortError>> {
        let result = self.apply(|base, route| {
            base.canary = None;
            base.revision = None;
            *route = Route::STABLE;
            Ok(())
        });
        Box::pin(async move { result })
    }
}

/// An upstream by the rule every caller shares ([`UpstreamUrl`]).
fn parse_upstream(path: &str, url: Option<&str>) -> Result<http::Uri, RoutingError> {
    let Some(url) = url else {
        return Err(RoutingError::Upstream {
            path: path.into(),
            message: "required by the builtin provider".into(),
        });
    };
    UpstreamUrl::parse(url)
        .map(UpstreamUrl::into_uri)
        .map_err(|error| RoutingError::Upstream {
            path: path.into(),
            message: format!("{url:?}: {error}"),
        })
}

fn match_rule(path: &str, rule: &HttpMatchRequest) -> Result<MatchRule, RoutingError> {
    let convert = |field: String,
                   m: &serin_spec::StringMatch|
     -> Result<StringMatch, RoutingError> {
        use serin_spec::StringMatchRule as Rule;
        match m.rule() {
            Some(Rule::Exact(s)) => Ok(StringMatch::Exact(s.to_owned())),
            Some(Rule::Prefix(s)) => Ok(StringMatch::Prefix(s.to_owned())),
            Some(Rule::Suffix(s)) => Ok(StringMatch::Suffix(s.to_owned())),
            Some(Rule::Any) => Ok(StringMatch::Prefix(String::new())),
            Some(Rule::Regex(s)) => StringMatch::regex(s).map_err(|error| RoutingError::Match {
                path: field,
                message: format!("invalid regex: {error}"),
            }),
            None => Err(RoutingError::Match {
                path: field,
                message: "needs one of exact, prefix, suffix or regex".into(),
            }),
        }
    };
    let mut out = MatchRule::default();
    for (name, m) in &rule.headers {
        let field = format!("{path}.headers.{name}");
        // Istio matches cookies through the Cookie header with a regex; the
        // proxy does the same, so `cookie` stays a header condition.
        let header =
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                RoutingError::Match {
                    path: field.clone(),
                    message: "not a valid header name".into(),
                }
            })?;
        out.headers.push((header, convert(field, m)?));
    }
    if let Some(uri) = &rule.uri {
        out.uri = Some(convert(format!("{path}.uri"), uri)?);
    }
    if let Some(method) = &rule.method {
        out.method = Some(convert(format!("{path}.method"), method)?);
    }
    for (name, m) in &rule.query_params {
        out.query_params.push((
            name.clone(),
            convert(format!("{path}.queryParams.{name}"), m)?,
        ));
    }
    Ok(out)
}
