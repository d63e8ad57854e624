//! The routing table: what the rollout engine sets, and its compiled form the
//! hot path reads through an `ArcSwap` (one atomic load per request, no lock).

use crate::forward::PoolKey;
use crate::{
    Error, MatchRule, Result, Version,
    sticky::{Affinity, Sticky},
};
use http::{HeaderValue, Uri, request::Parts};
use rustls::pki_types::ServerName;
use serin_spec::{UpstreamScheme, UpstreamUrl, UpstreamUrlError};
use std::{sync::Arc, time::Duration};

/// Where requests go. Set as a whole; the proxy swaps it atomically, so a
/// weight change applies to the next request, on open connections too.
#[derive(Clone, Debug, PartialEq)]
pub struct Routes {
    /// Base URL of the stable upstream, e.g. `http://127.0.0.1:9001`; a path
    /// (`http://host/app`) is prefixed to every request path.
    pub stable: Uri,
    /// Base URL of the canary; `None` between rollouts sends everything to
    /// stable.
    pub canary: Option<Uri>,
    /// Percent (0..=100) of the requests no rule matched that go to the canary.
    pub canary_weight: u8,
    /// A/B rules: a request matching any of them goes to the canary.
    pub matches: Vec<MatchRule>,
    /// Flagger's `sessionAffinity`: keep users on the version the weight
    /// first gave them.
    pub sticky: Option<StickySessions>,
    /// Percent (0..=100) of stable-bound requests copied to the canary, whose
    /// answers are discarded but recorded as canary statistics.
    pub mirror: Option<u8>,
    /// The canary revision this table routes to, written to each access-log
    /// line (with the weight) so a replay can tell rollouts apart.
    pub revision: Option<String>,
}

/// Flagger's `analysis.sessionAffinity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StickySessions {
    /// `cookieName`: the cookie that pins a user to the canary.
    pub cookie_name: String,
    /// `maxAge`: lifetime of the canary cookie (Flagger's default: 86400 s).
    pub max_age: Duration,
    /// `primaryCookieName`: when set, users the weight sends to stable get
    /// this cookie and stay on stable while it lives.
    pub primary_cookie_name: Option<String>,
    /// Lifetime of the primary cookie; Flagger uses the analysis interval, so
    /// stable users are drawn again at each new weight.
    pub primary_max_age: Duration,
}

// === impl Routes ===

impl Routes {
    /// Everything to `stable`: the table between rollouts.
    pub fn stable_only(stable: Uri) -> Self {
        Routes {
            stable,
            canary: None,
            canary_weight: 0,
            matches: Vec::new(),
            sticky: None,
            mirror: None,
            revision: None,
        }
    }
}

/// One upstream, pre-parsed so building each request's URI copies no strings.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub version: Version,
    /// Where the pool dials: the authority, and TLS with the name the
    /// certificate must carry for `https://`.
    pub key: PoolKey,
    /// Base path without its trailing slash; `None` for `/` or no path.
    pub base_path: Option<String>,
    /// `Host` sent upstream (nginx's default `proxy_set_header Host $proxy_host`).
    pub host: HeaderValue,
}

// === impl Upstream ===

impl Upstream {
    /// Compiles a base URL by the rule every caller shares
    /// ([`UpstreamUrl`]): only `http://host[:port][/base]`.
    fn new(version: Version, uri: &Uri) -> Result<Self> {
        let invalid = |reason| Error::InvalidUpstream {
            which: version,
            uri: uri.to_string(),
            reason,
        };
        let url = UpstreamUrl::from_uri(uri).map_err(invalid)?;
        // An authority is visible ASCII, always a valid header value.
        let host = HeaderValue::from_str(url.authority().as_str())
            .map_err(|_| invalid(UpstreamUrlError::Invalid))?;
        let tls = match url.scheme() {
            UpstreamScheme::Http => None,
            // A host `UpstreamUrl` accepted is a DNS name or an IP address;
            // a name rustls refuses (`_` in it) is refused here alike.
            UpstreamScheme::Https => Some(
                ServerName::try_from(url.host().to_owned())
                    .map_err(|_| invalid(UpstreamUrlError::Invalid))?,
            ),
        };
        Ok(Upstream {
            version,
            key: PoolKey {
                authority: url.authority().clone(),
                tls,
            },
            base_path: url.path_prefix().map(str::to_owned),
            host,
        })
    }
}

/// Where one request goes, decided by [`Table::route`].
#[derive(Debug)]
pub(crate) struct Decision {
    pub upstream: Arc<Upstream>,
    /// `Set-Cookie` to add to the response (sticky sessions).
    pub set_cookie: Option<HeaderValue>,
    /// The canary, when this request is copied to it.
    pub mirror: Option<Arc<Upstream>>,
}

/// The compiled routing table.
#[derive(Debug)]
pub(crate) struct Table {
    pub config: Arc<Routes>,
    stable: Arc<Upstream>,
    canary: Option<Arc<Upstream>>,
    weight: u8,
    rules: Vec<MatchRule>,
    sticky: Option<Sticky>,
    mirror: u8,
    /// What the access log says of requests routed by this table.
    routed: Routed,
}

/// The route a request was sent by, as the access log records it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Routed {
    /// The canary weight in force.
    pub weight: u8,
    /// The canary revision in force, if a canary is set.
    pub revision: Option<Arc<str>>,
}

// === impl Table ===

impl Table {
    /// Compiles `routes`; `previous` lets the session tokens of a rollout in
    /// progress carry over (a weight step must not reassign every user).
    pub(crate) fn compile(routes: Routes, previous: Option<&Table>) -> Result<Self> {
        for (field, value) in [
            ("canary_weight", Some(routes.canary_weight)),
            ("mirror", routes.mirror),
        ] {
            if let Some(value) = value.filter(|v| *v > 100) {
                return Err(Error::InvalidPercent { field, value });
            }
        }
        let stable = Arc::new(Upstream::new(Version::Stable, &routes.stable)?);
        let canary = match &routes.canary {
            Some(uri) => Some(Arc::new(Upstream::new(Version::Canary, uri)?)),
            None => None,
        };
        let sticky = match &routes.sticky {
            Some(cfg) => {
                // Same rollout: same canary, still active, same cookies.
                let carried = previous.filter(|p| {
                    p.active()
                        && routes.canary_weight > 0
                        && p.config.canary == routes.canary
                        && p.config.sticky.as_ref() == Some(cfg)
                });
                let tokens = carried.and_then(|p| p.sticky.as_ref());
                Some(Sticky::new(
                    cfg,
                    tokens.map(Sticky::canary_token),
                    tokens.and_then(Sticky::primary_token),
                )?)
            }
            None => None,
        };
        let routed = Routed {
            weight: routes.canary_weight,
            revision: routes
                .revision
                .as_deref()
                .filter(|_| canary.is_some())
                .map(Arc::from),
        };
        Ok(Table {
            stable,
            canary,
            routed,
            weight: routes.canary_weight,
            rules: routes.matches.iter().map(MatchRule::anchored).collect(),
            sticky,
            mirror: routes.mirror.unwrap_or(0),
            config: Arc::new(routes),
        })
    }

    /// What the access log records of the requests this table routes.
    pub(crate) fn routed(&self) -> Routed {
        self.routed.clone()
    }

    /// Whether [`Self::route`] reads the request (match rules, session
    /// cookies): without, any request is routed alike.
    pub(crate) fn reads_request(&self) -> bool {
        !self.rules.is_empty() || self.sticky.is_some()
    }

    /// Whether some requests are copied to the canary.
    pub(crate) fn mirrors(&self) -> bool {
        self.mirror > 0 && self.canary.is_some()
    }

    /// A rollout is active while a canary takes weighted traffic; only then
    /// do session cookies pin users to it.
    fn active(&self) -> bool {
        self.canary.is_some() && self.weight > 0
    }

    /// Decides where a request goes. `roll` draws a percentile in 0..100 (a
    /// parameter so tests can be exact).
    pub(crate) fn route(&self, req: &Parts, mut roll: impl FnMut() -> u8) -> Decision {
        let stable = || Decision {
            upstream: self.stable.clone(),
            set_cookie: None,
            mirror: None,
        };
        let Some(canary) = &self.canary else {
            let mut d = stable();
            d.set_cookie = self.expire_if_carried(req);
            return d;
        };
        let to_canary = |set_cookie| Decision {
            upstream: canary.clone(),
            set_cookie,
            mirror: None,
        };
        if self.rules.iter().any(|r| r.matches(req)) {
            return to_canary(None);
        }
        let mut decision = match (&self.sticky, self.active()) {
            (Some(sticky), true) => match sticky.affinity(&req.headers) {
                Affinity::Canary => return to_canary(None),
                Affinity::Stable => stable(),
                affinity => {
                    if roll() < self.weight {
                        return to_canary(Some(sticky.set_canary()));
                    }
                    let mut d = stable();
                    d.set_cookie = sticky.set_primary();
                    if d.set_cookie.is_none() && affinity == Affinity::StaleCanary {
                        d.set_cookie = Some(sticky.expire_canary());
                    }
                    d
                }
            },
            _ => {
                if self.weight > 0 && roll() < self.weight {
                    return to_canary(None);
                }
                let mut d = stable();
                d.set_cookie = self.expire_if_carried(req);
                d
            }
        };
        if self.mirror > 0 && roll() < self.mirror {
            decision.mirror = Some(canary.clone());
        }
        decision
    }

    /// Outside a rollout, a carried canary cookie is deleted (Flagger sends
    /// `Max-Age=-1` for the previous rollout's cookie).
    fn expire_if_carried(&self, req: &Parts) -> Option<HeaderValue> {
        let sticky = self.sticky.as_ref()?;
        (!self.active() && sticky.has_canary_cookie(&req.headers)).then(|| sticky.expire_canary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StringMatch;
    use http::{HeaderName, Request};

    fn uri(s: &str) -> Uri {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn routes(weight: u8) -> Routes {
        Routes {
            canary: Some(uri("http://127.0.0.1:2")),
            canary_weight: weight,
            ..Routes::stable_only(uri("http://127.0.0.1:1/base/"))
        }
    }

    fn table(r: Routes) -> Table {
        Table::compile(r, None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn req(headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn share(t: &Table, n: usize, seed: u64) -> usize {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n)
            .filter(|_| t.route(&req(&[]), || rng.u8(0..100)).upstream.version == Version::Canary)
            .count()
    }

    #[test]
    fn weights_split_exactly_at_the_ends() {
        assert_eq!(share(&table(routes(0)), 1000, 1), 0);
        assert_eq!(share(&table(routes(100)), 1000, 1), 1000);
        let ten = share(&table(routes(10)), 100_000, 7);
        assert!((9_500..10_500).contains(&ten), "{ten}");
        let none = Routes::stable_only(uri("http://127.0.0.1:1"));
        assert_eq!(share(&table(none), 100, 1), 0);
    }

    #[test]
    fn invalid_tables_are_refused() {
        assert!(Table::compile(routes(101), None).is_err());
        let mut r = routes(10);
        r.stable = uri("ftp://example.com");
        assert!(Table::compile(r, None).is_err());
        let mut r = routes(10);
        r.mirror = Some(200);
        assert!(Table::compile(r, None).is_err());
    }

    #[test]
    fn base_path_is_trimmed() {
        let t = table(routes(0));
        assert_eq!(t.stable.base_path.as_deref(), Some("/base"));
        assert_eq!(t.canary.as_ref().and_then(|c| c.base_path.clone()), None);
    }

    #[test]
    fn matches_win_over_weight() {
        let mut r = routes(0);
        r.matches = vec![MatchRule {
            headers: vec![(
                HeaderName::from_static("x-canary"),
                StringMatch::Exact("insider".into()),
            )],
            ..MatchRule::default()
        }];
        let t = table(r);
        let d = t.route(&req(&[("x-canary", "insider")]), || 99);
        assert_eq!(d.upstream.version, Version::Canary);
        let d = t.route(&req(&[("x-canary", "other")]), || 0);
        assert_eq!(d.upstream.version, Version::Stable);
    }

    #[test]
    fn sticky_tokens_survive_weight_steps_only() {
        let mut r = routes(10);
        r.sticky = Some(StickySessions {
            cookie_name: "c".into(),
            max_age: Duration::from_secs(10),
            primary_cookie_name: None,
            primary_max_age: Duration::from_secs(60),
        });
        let first = table(r.clone());
        let token = first.sticky.as_ref().map(|s| s.canary_token().to_owned());
        r.canary_weight = 20;
        let second = Table::compile(r.clone(), Some(&first)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            second.sticky.as_ref().map(|s| s.canary_token().to_owned()),
            token
        );
        r.canary = Some(uri("http://127.0.0.1:3"));
        let other = Table::compile(r, Some(&second)).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(
            other.sticky.as_ref().map(|s| s.canary_token().to_owned()),
            token
        );
    }

    #[test]
    fn mirror_copies_stable_traffic_only() {
        let mut r = routes(0);
        r.mirror = Some(100);
        let t = table(r);
        let d = t.route(&req(&[]), || 0);
        assert_eq!(d.upstream.version, Version::Stable);
        assert!(d.mirror.is_some());
        let mut r = routes(100);
        r.mirror = Some(100);
        let d = table(r).route(&req(&[]), || 0);
        assert!(d.mirror.is_none());
    }
}
