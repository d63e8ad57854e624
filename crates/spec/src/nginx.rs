//! `spec.nginx`: a canary whose traffic nginx carries outside Kubernetes.
//! serin owns one `upstream NAME { ... }` block in a file nginx includes,
//! rewrites it for every weight change and reloads nginx; both versions are
//! measured from nginx's access log, sent to serin over syslog.
//!
//! The address rules live here so that `serin validate`, `serin run` and the
//! router parse alike: none accepts what another refuses.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::problem::{Path, Problem};

/// The provider name of nginx.
pub const NGINX_PROVIDER: &str = "nginx";

/// The reload command when `reloadCommand` is not given.
pub const DEFAULT_RELOAD_COMMAND: [&str; 3] = ["nginx", "-s", "reload"];

/// `spec.nginx`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NginxSpec {
    /// The name of the upstream block serin owns.
    #[serde(default)]
    pub upstream: String,
    /// The file serin writes that block to; nginx.conf includes it.
    #[serde(default)]
    pub config_file: String,
    /// The argv run after each write (never through a shell); `None` is
    /// [`DEFAULT_RELOAD_COMMAND`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_command: Option<Vec<String>>,
    /// The UDP syslog address where serin receives nginx's access log.
    #[serde(default)]
    pub log_listen: String,
}

// === impl NginxSpec ===

impl NginxSpec {
    /// The reload argv, the default filled in.
    pub fn reload_argv(&self) -> Vec<String> {
        match &self.reload_command {
            Some(argv) => argv.clone(),
            None => DEFAULT_RELOAD_COMMAND.map(String::from).to_vec(),
        }
    }
}

/// An address of a server line serin writes: `IP:port` (IPv6 in brackets).
/// nginx logs `$upstream_addr` as the address it connected to, which is how
/// serin tells the versions apart, so a host name would never match.
pub fn server_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse::<SocketAddr>().map_err(|_| {
        format!("{text:?} is not an IP address and port, expected e.g. 127.0.0.1:9001 (nginx logs $upstream_addr as IP:port, which tells the versions apart)")
    })
}

/// Every problem of `spec.nginx` (at `path`) and of the upstreams it needs
/// (`spec.upstreams.stable` required, both as `IP:port`).
pub fn validate(
    path: &Path,
    nginx: Option<&NginxSpec>,
    upstreams_path: &Path,
    stable: Option<&str>,
    canary: Option<&str>,
) -> Vec<Problem> {
    let mut problems =
        crate::balancer::check_upstream_addrs("nginx", upstreams_path, stable, canary, server_addr);
    let Some(nginx) = nginx else {
        problems.push(Problem::new(
            path.clone(),
            "required by provider nginx: upstream, configFile and logListen",
        ));
        return problems;
    };
    if nginx.upstream.is_empty() {
        problems.push(Problem::new(
            path.key("upstream"),
            "required by provider nginx: the name of the upstream block serin owns",
        ));
    } else if !nginx
        .upstream
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        problems.push(Problem::new(
            path.key("upstream"),
            format!(
                "{:?} is not an nginx upstream name: use letters, digits, '-', '_' and '.'",
                nginx.upstream
            ),
        ));
    }
    let file = nginx.config_file.trim();
    if file.is_empty() {
        problems.push(Problem::new(
            path.key("configFile"),
            "required by provider nginx: the file serin writes the upstream block to",
        ));
    } else if file.ends_with('/') {
        problems.push(Problem::new(
            path.key("configFile"),
            format!("{file:?} is a directory, expected a file path"),
        ));
    }
    if let Some(argv) = &nginx.reload_command
        && argv.first().is_none_or(|program| program.trim().is_empty())
    {
        problems.push(Problem::new(
            path.key("reloadCommand"),
            "must name a program: an argv such as [\"nginx\", \"-s\", \"reload\"]",
        ));
    }
    crate::balancer::check_log_listen(
        path.key("logListen"),
        "nginx",
        "nginx's access log",
        "127.0.0.1:5140",
        &nginx.log_listen,
        &mut problems,
    );
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(nginx: &NginxSpec, stable: Option<&str>) -> Vec<String> {
        let spec = Path::root().key("spec");
        validate(
            &spec.key("nginx"),
            Some(nginx),
            &spec.key("upstreams"),
            stable,
            None,
        )
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    fn good() -> NginxSpec {
        NginxSpec {
            upstream: "shop".into(),
            config_file: "/etc/nginx/serin/shop.conf".into(),
            reload_command: None,
            log_listen: "127.0.0.1:5140".into(),
        }
    }

    #[test]
    fn a_complete_block_is_valid_and_reloads_by_default() {
        assert!(problems(&good(), Some("127.0.0.1:9001")).is_empty());
        assert_eq!(good().reload_argv(), ["nginx", "-s", "reload"]);
    }

    #[test]
    fn every_problem_names_its_field() {
        let bad = NginxSpec {
            upstream: "sh op".into(),
            config_file: "/etc/nginx/".into(),
            reload_command: Some(vec![]),
            log_listen: "nowhere".into(),
        };
        let found = problems(&bad, Some("http://127.0.0.1:9001"));
        let paths: Vec<&str> = found.iter().filter_map(|p| p.split(':').next()).collect();
        assert_eq!(
            paths,
            [
                "spec.upstreams.stable",
                "spec.nginx.upstream",
                "spec.nginx.configFile",
                "spec.nginx.reloadCommand",
                "spec.nginx.logListen",
            ],
            "{found:#?}"
        );
        let missing = problems(&NginxSpec::default(), None);
        for field in [
            "upstreams.stable",
            "nginx.upstream",
            "nginx.configFile",
            "nginx.logListen",
        ] {
            assert!(
                missing
                    .iter()
                    .any(|p| p.starts_with(&format!("spec.{field}: required"))),
                "{field}: {missing:#?}"
            );
        }
    }
}
