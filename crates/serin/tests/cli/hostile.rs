//! `serin serve` against hostile input, as a real process: a flood of idle
//! API connections under a low open-file limit.

use crate::support::*;
use serin_demo::{Backend, Behaviour};
use serin_testkit::poll;
use std::{
    net::{SocketAddr, TcpStream},
    process::{Child, Stdio},
    time::Duration,
};

/// Kills the daemon when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn answer(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let answer = serin_testkit::http::exchange(addr, "GET", path, None, b"")?;
    Some((answer.status, answer.body().to_owned()))
}

/// Under an open-file limit of 200 (soft and hard, so it cannot be
/// raised), 300 idle API connections: the API closes those idle the
/// longest instead of taking every descriptor, so the canary's proxy and
/// `/healthz` still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_api_connections_do_not_starve_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let listen = free_port();
    let file = write(
        dir.path(),
        "web.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: web
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:{listen}
  upstreams:
    stable: {}
  analysis:
    interval: 1h
    threshold: 2
    stepWeights: [50]
",
            stable.url()
        ),
    );
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy = SocketAddr::from(([127, 0, 0, 1], listen));
    let log = dir.path().join("serve.log");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 200 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_serin"))
        .arg("serve")
        .arg(&file)
        .args(["--api", &api.to_string(), "--state-dir"])
        .arg(dir.path().join("state"))
        .env_remove("SERIN_TOKEN")
        .env("SERIN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _daemon = Killed(child);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        poll::until(Duration::from_secs(20), Duration::from_millis(20), || {
            answer(api, "/healthz").is_some()
        }),
        "serin serve did not answer: {}",
        log_text()
    );

    let flood = tokio::task::spawn_blocking(move || {
        (0..300)
            .filter_map(|_| TcpStream::connect_timeout(&api, Duration::from_secs(1)).ok())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(flood.len() >= 250, "only {} connected", flood.len());

    let checks = tokio::task::spawn_blocking(move || {
        let healthz = answer(api, "/healthz");
        let proxied = answer(proxy, "/");
        (healthz, proxied)
    })
    .await
    .unwrap();
    drop(flood);
    let (healthz, proxied) = checks;
    assert_eq!(
        healthz.as_ref().map(|(status, _)| *status),
        Some(200),
        "/healthz: {healthz:?}\n{}",
        log_text()
    );
    assert!(
        proxied
            .as_ref()
            .is_some_and(|(status, body)| *status == 200 && body.contains("stable v1")),
        "the proxy: {proxied:?}\n{}",
        log_text()
    );
    assert!(
        !log_text().contains("Too many open files"),
        "{}",
        log_text()
    );
}
