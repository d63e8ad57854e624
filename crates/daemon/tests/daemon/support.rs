//! Helpers: canary files, a daemon in this process, its JSON; ports, raw
//! HTTP/1.1 and polling come from `serin-testkit`.

use serin_daemon::{Config, Daemon};
pub use serin_testkit::{eventually, free_port, http::request, write};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

pub const TOKEN: &str = "test-token";

/// A native canary file; `extra` is appended under `spec.analysis`.
pub fn canary_yaml(
    name: &str,
    listen: u16,
    stable: &str,
    canary: Option<(&str, &str)>,
    analysis: &str,
) -> String {
    let canary = canary
        .map(|(url, revision)| format!("    canary: {url}\n    revision: {revision}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: {name}
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:{listen}
  upstreams:
    stable: {stable}
{canary}  analysis:
{analysis}"
    )
}

pub async fn daemon(
    dir: &Path,
    files: Vec<PathBuf>,
    token: Option<&str>,
    poll: Duration,
) -> Daemon {
    Daemon::start(
        Config {
            files,
            api: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: dir.join("state"),
            token: token.map(str::to_owned),
            poll,
        },
        Vec::new(),
    )
    .await
    .unwrap()
}

pub async fn json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = request(addr, "GET", path, None, b"").await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}
