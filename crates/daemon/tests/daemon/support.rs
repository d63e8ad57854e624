//! Helpers: canary files, a daemon in this process, raw HTTP/1.1.

use serin_daemon::{Config, Daemon};
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

pub const TOKEN: &str = "test-token";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
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

/// One HTTP/1.1 exchange (blocking, run off the runtime).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let (method, path, token, body) = (
        method.to_owned(),
        path.to_owned(),
        token.map(str::to_owned),
        body.to_vec(),
    );
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let _ = stream.write_all(&body);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap()
}

pub async fn json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = http(addr, "GET", path, None, b"").await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls `check` every 50 ms for up to `within`.
pub async fn eventually(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
