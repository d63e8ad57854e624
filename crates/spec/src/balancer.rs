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
