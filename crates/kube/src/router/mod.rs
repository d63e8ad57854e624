//! The routers of Kubernetes mode, one file each behind one trait: what a
//! provider's objects look like at a traffic position. The controller
//! applies them and the `render` command prints them; neither has a branch
//! per router.

mod gateway;
mod istio;
mod kubernetes;
mod nginx;

pub use gateway::GatewayApi;
pub use istio::Istio;
pub use kubernetes::KubernetesService;
pub use nginx::NginxIngress;

use crate::{Error, Object, Result, Routes, subject::Subject};

/// The Set-Cookie header name.
pub(crate) const SET_COOKIE: &str = "Set-Cookie";
/// The Cookie header name, as Flagger matches it.
pub(crate) const COOKIE: &str = "Cookie";

/// A router of Kubernetes mode.
pub trait KubeRouter: Send + Sync {
    /// The provider name as a canary writes it.
    fn provider(&self) -> &'static str;

    /// The router's own objects (beyond the workload and the Services) for
    /// `subject` at `routes`.
    fn objects(&self, subject: &Subject<'_>, routes: &Routes) -> Result<Vec<Object>>;

    /// Whether the apex Service selects the canary's pods at `routes`
    /// (only the `kubernetes` router moves traffic that way).
    fn apex_selects_canary(&self, routes: &Routes) -> bool {
        let _ = routes;
        false
    }
}

/// The router for a provider name (Flagger's spelling).
pub fn router_for(provider: &str) -> Result<Box<dyn KubeRouter>> {
    Ok(match provider {
        "istio" => Box::new(Istio),
        "gatewayapi" | "gatewayapi:v1" => Box::new(GatewayApi::V1),
        "gatewayapi:v1beta1" => Box::new(GatewayApi::V1Beta1),
        "kubernetes" => Box::new(KubernetesService),
        "nginx" => Box::new(NginxIngress),
        other => return Err(Error::Provider(other.to_string())),
    })
}

/// The cookie attributes Flagger appends (`SessionAffinity.BuildCookie`).
pub(crate) fn build_cookie(affinity: &serin_spec::SessionAffinity, cookie: &str) -> String {
    let mut text = format!(
        "{cookie}; Max-Age={}",
        affinity
            .max_age
            .filter(|age| *age > 0)
            .unwrap_or(serin_spec::canary::DEFAULT_COOKIE_MAX_AGE_SECS)
    );
    if let Some(domain) = affinity.domain.as_deref().filter(|d| !d.is_empty()) {
        text.push_str(&format!("; Domain={domain}"));
    }
    if let Some(path) = affinity.path.as_deref().filter(|p| !p.is_empty()) {
        text.push_str(&format!("; Path={path}"));
    }
    if affinity.http_only == Some(true) {
        text.push_str("; HttpOnly");
    }
    if affinity.secure == Some(true) {
        text.push_str("; Secure");
    }
    if let Some(same_site) = affinity.same_site.as_deref().filter(|s| !s.is_empty()) {
        text.push_str(&format!("; SameSite={same_site}"));
    }
    if affinity.partitioned == Some(true) {
        text.push_str("; Partitioned");
    }
    text
}

/// The regex Flagger matches a session cookie with: `.*NAME.*VALUE.*`.
pub(crate) fn cookie_regex(cookie: &str) -> String {
    let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
    format!(".*{name}.*{value}.*")
}
