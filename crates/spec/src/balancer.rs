//! What the balancer providers (`haproxy`, `nginx`) check alike.

use crate::problem::{Path, Problem};
use std::net::SocketAddr;

/// `logListen`: required, an `IP:port` where serin receives the balancer's
/// request log over UDP (`example` shows one).
pub(crate) fn check_log_listen(
    path: Path,
    provider: &str,
    what: &str,
    example: &str,
    value: &str,
    problems: &mut Vec<Problem>,
) {
    if value.trim().is_empty() {
        problems.push(Problem::new(
            path,
            format!("required by provider {provider}: the UDP address serin receives {what} on, e.g. {example}"),
        ));
    } else if value.trim().parse::<SocketAddr>().is_err() {
        problems.push(Problem::new(
            path,
            format!("{value:?} is not an IP address and port, e.g. {example}"),
        ));
    }
}

/// The problems of `spec.upstreams` for a balancer that names its versions
/// by `IP:port` (HAProxy, nginx): `stable` required, both read by `addr`
/// (the provider's rule, whose message says why it needs an IP).
pub(crate) fn check_upstream_addrs(
    provider: &str,
    upstreams_path: &Path,
    stable: Option<&str>,
    canary: Option<&str>,
    addr: fn(&str) -> Result<SocketAddr, String>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    match stable {
        Some(stable) => {
            if let Err(reason) = addr(stable) {
                problems.push(Problem::new(upstreams_path.key("stable"), reason));
            }
        }
        None => problems.push(Problem::new(
            upstreams_path.key("stable"),
            format!("required by provider {provider}: the stable version's IP:port"),
        )),
    }
    if let Some(canary) = canary
        && let Err(reason) = addr(canary)
    {
        problems.push(Problem::new(upstreams_path.key("canary"), reason));
    }
    problems
}
