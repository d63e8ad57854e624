//! `spec.haproxy`: a canary whose traffic HAProxy carries. serin drives the
//! weights and addresses of two server lines of one backend over HAProxy's
//! runtime API and measures both versions from HAProxy's request log.
//!
//! The address rules live here so that `serin validate`, `serin run` and the
//! router parse alike: none accepts what another refuses.

use std::{fmt, net::SocketAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::problem::{Path, Problem};

/// The provider name of HAProxy.
pub const HAPROXY_PROVIDER: &str = "haproxy";

/// HAProxy's longest proxy and server names (`MAX_PROXY_ID_LEN`-ish); longer
/// names cannot be in its configuration, so they are typos.
const MAX_NAME_LEN: usize = 100;

/// `spec.haproxy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HaproxySpec {
    /// Every HAProxy instance serin keeps in step: `host:port` (TCP) or a
    /// unix socket path (`/run/haproxy/admin.sock`).
    #[serde(default)]
    pub runtime_api: Vec<String>,
    /// The backend holding both versions.
    #[serde(default)]
    pub backend: String,
    /// The backend's two server lines.
    #[serde(default)]
    pub servers: HaproxyServers,
    /// The UDP syslog address where serin receives HAProxy's request log.
    #[serde(default)]
    pub log_listen: String,
}

/// `spec.haproxy.servers`: the names of the stable and canary server lines.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HaproxyServers {
    /// The server line of the stable version.
    #[serde(default)]
    pub stable: String,
    /// The server line of the canary.
    #[serde(default)]
    pub canary: String,
}

/// Where one HAProxy instance's runtime API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeApiAddr {
    /// `stats socket ipv4@127.0.0.1:9999 level admin`.
    Tcp(String),
    /// `stats socket /run/haproxy/admin.sock level admin`.
    Unix(PathBuf),
}

// === impl RuntimeApiAddr ===

impl RuntimeApiAddr {
    /// A runtime API address: an absolute path is a unix socket, anything
    /// else must be `host:port` with a port from 1 to 65535.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.starts_with('/') {
            return Ok(RuntimeApiAddr::Unix(PathBuf::from(text)));
        }
        host_port(text).map(|_| RuntimeApiAddr::Tcp(text.to_owned()))
    }
}

impl fmt::Display for RuntimeApiAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeApiAddr::Tcp(addr) => f.write_str(addr),
            RuntimeApiAddr::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `host:port` split, for addresses given to HAProxy. HAProxy's `set server
/// addr` takes an IP address, so the host must be one (IPv6 in brackets).
pub fn server_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse::<SocketAddr>().map_err(|_| {
        format!("{text:?} is not an IP address and port, expected e.g. 127.0.0.1:9001 (HAProxy's runtime API sets servers by IP)")
    })
}

/// Checks `host:port` where the host may be a name (runtime API addresses).
fn host_port(text: &str) -> Result<(), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "{text:?} is neither host:port nor an absolute unix socket path"
        ));
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(format!("{text:?} has no host"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(format!("{text:?}: port must be from 1 to 65535")),
    }
}

/// A backend or server name HAProxy's configuration could hold: letters,
/// digits and `-_.:` (its rule for identifiers).
fn check_name(path: Path, name: &str, problems: &mut Vec<Problem>) {
    if name.is_empty() {
        problems.push(Problem::new(path, "required by provider haproxy"));
    } else if name.len() > MAX_NAME_LEN
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        problems.push(Problem::new(
            path,
            format!("{name:?} is not a HAProxy name: use letters, digits, '-', '_', '.' and ':'"),
        ));
    }
}

/// Every problem of `spec.haproxy` (at `path`) and of the upstreams it
/// needs (`spec.upstreams.stable` required, both as `IP:port`).
pub fn validate(
    path: &Path,
    haproxy: Option<&HaproxySpec>,
    upstreams_path: &Path,
    stable: Option<&str>,
    canary: Option<&str>,
) -> Vec<Problem> {
    let mut problems = crate::balancer::check_upstream_addrs(
        "haproxy",
        upstreams_path,
        stable,
        canary,
        server_addr,
    );
    let Some(haproxy) = haproxy else {
        problems.push(Problem::new(
            path.clone(),
            "required by provider haproxy: runtimeApi, backend, servers and logListen",
        ));
        return problems;
    };
    if haproxy.runtime_api.is_empty() {
        problems.push(Problem::new(
            path.key("runtimeApi"),
            "required by provider haproxy: at least one runtime API address",
        ));
    }
    for (index, addr) in haproxy.runtime_api.iter().enumerate() {
        if let Err(reason) = RuntimeApiAddr::parse(addr) {
            problems.push(Problem::new(path.key("runtimeApi").index(index), reason));
        } else if haproxy.runtime_api[..index]
            .iter()
            .any(|a| a.trim() == addr.trim())
        {
            problems.push(Problem::new(
                path.key("runtimeApi").index(index),
                format!("{addr:?} is listed twice"),
            ));
        }
    }
    check_name(path.key("backend"), &haproxy.backend, &mut problems);
    let servers = path.key("servers");
    check_name(
        servers.key("stable"),
        &haproxy.servers.stable,
        &mut problems,
    );
    check_name(
        servers.key("canary"),
        &haproxy.servers.canary,
        &mut problems,
    );
    if !haproxy.servers.stable.is_empty() && haproxy.servers.stable == haproxy.servers.canary {
        problems.push(Problem::new(
            servers.key("canary"),
            format!(
                "{:?} is also the stable server: the versions need two server lines",
                haproxy.servers.canary
            ),
        ));
    }
    crate::balancer::check_log_listen(
        path.key("logListen"),
        "haproxy",
        "HAProxy's log",
        "127.0.0.1:5141",
        &haproxy.log_listen,
        &mut problems,
    );
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(haproxy: &HaproxySpec, stable: Option<&str>) -> Vec<String> {
        let spec = Path::root().key("spec");
        validate(
            &spec.key("haproxy"),
            Some(haproxy),
            &spec.key("upstreams"),
            stable,
            None,
        )
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    fn good() -> HaproxySpec {
        HaproxySpec {
            runtime_api: vec!["127.0.0.1:9999".into(), "/run/haproxy.sock".into()],
            backend: "shop".into(),
            servers: HaproxyServers {
                stable: "stable".into(),
                canary: "canary".into(),
            },
            log_listen: "127.0.0.1:5141".into(),
        }
    }

    #[test]
    fn a_complete_block_is_valid() {
        assert!(problems(&good(), Some("127.0.0.1:9001")).is_empty());
    }

    #[test]
    fn every_problem_names_its_field() {
        let bad = HaproxySpec {
            runtime_api: vec!["localhost".into(), "h:0".into()],
            backend: "sh op".into(),
            servers: HaproxyServers {
                stable: "same".into(),
                canary: "same".into(),
            },
            log_listen: "nowhere".into(),
        };
        let found = problems(&bad, Some("http://127.0.0.1:9001"));
        let paths: Vec<&str> = found.iter().filter_map(|p| p.split(':').next()).collect();
        assert_eq!(
            paths,
            [
                "spec.upstreams.stable",
                "spec.haproxy.runtimeApi[0]",
                "spec.haproxy.runtimeApi[1]",
                "spec.haproxy.backend",
                "spec.haproxy.servers.canary",
                "spec.haproxy.logListen",
            ],
            "{found:#?}"
        );
        let missing = problems(&HaproxySpec::default(), None);
        assert!(
            missing
                .iter()
                .any(|p| p.starts_with("spec.haproxy.backend: required"))
        );
        assert!(
            missing
                .iter()
                .any(|p| p.starts_with("spec.upstreams.stable: required"))
        );
    }

    #[test]
    fn runtime_api_addresses_are_tcp_or_unix() {
        assert_eq!(
            RuntimeApiAddr::parse("lb1:9999"),
            Ok(RuntimeApiAddr::Tcp("lb1:9999".into()))
        );
        assert_eq!(
            RuntimeApiAddr::parse("/run/haproxy/admin.sock"),
            Ok(RuntimeApiAddr::Unix("/run/haproxy/admin.sock".into()))
        );
        assert!(RuntimeApiAddr::parse("").is_err());
        assert!(server_addr("[::1]:80").is_ok());
        assert!(server_addr("example.com:80").is_err());
    }
}
