//! Helpers: canary files, a daemon in this process, its JSON; ports, raw
//! HTTP/1.1 and polling come from `serin-testkit`.

use serin_daemon::{ApiLimits, Config, Daemon};
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
    daemon_with(dir, files, token, poll, ApiLimits::default()).await
}

/// [`daemon`] with the API's limits.
pub async fn daemon_with(
    dir: &Path,
    files: Vec<PathBuf>,
    token: Option<&str>,
    poll: Duration,
    api_limits: ApiLimits,
) -> Daemon {
    Daemon::start_with(
        Config {
            files,
            api: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: dir.join("state"),
            token: token.map(str::to_owned),
            poll,
        },
        Vec::new(),
        api_limits,
    )
    .await
    .unwrap()
}

pub async fn json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = request(addr, "GET", path, None, b"").await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// One raw exchange: `head` is sent as written (request line and headers,
/// without the blank line), then `body`; returns the status, the head and
/// the body of the answer.
pub fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}
