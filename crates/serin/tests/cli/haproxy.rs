//! `serin run` on a `provider: haproxy` canary: a real HAProxy carries the
//! load, serin drives its weights over the runtime API and judges both
//! versions from HAProxy's request log; exit 0 when promoted (the weights
//! read back end as stable=100), 1 when rolled back.

use crate::support::*;
use serin_demo::{Backend, Behaviour, LoadSpec, load};
use serin_providers::haproxy::{command, parse_servers_state};
use serin_spec::RuntimeApiAddr;
use serin_testkit::{haproxy::Haproxy, poll};
use std::{net::SocketAddr, process::Stdio, time::Duration};

fn canary_file(
    dir: &std::path::Path,
    runtime_api: &str,
    log_listen: &str,
    stable: SocketAddr,
    canary: SocketAddr,
) -> std::path::PathBuf {
    write(
        dir,
        "canary.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: shop
spec:
  provider: haproxy
  haproxy:
    runtimeApi: [\"{runtime_api}\"]
    backend: shop
    servers: {{stable: stable, canary: canary}}
    logListen: {log_listen}
  upstreams:
    stable: {stable}
    canary: {canary}
    revision: v2
  analysis:
    interval: 2s
    threshold: 2
    stepWeights: [20, 50]
    minRequests: 30
    metrics:
    - name: request-success-rate
      thresholdRange: {{min: 99}}
      interval: 2s
    - name: request-duration
      thresholdRange: {{max: 500}}
      interval: 2s
"
        ),
    )
}

/// The outcome of `serin run` with a canary failing `error_rate` of its
/// requests: (exit code, output, `(port, weight)` of stable and canary read
/// back from HAProxy afterwards, the stable and canary backends' addresses).
async fn rollout(error_rate: f64) -> (Option<i32>, String, [(u16, u32); 2], [SocketAddr; 2]) {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable"))
        .await
        .unwrap();
    let behaviour = Behaviour {
        error_rate,
        ..Behaviour::healthy("canary")
    };
    let canary = Backend::start(local, behaviour).await.unwrap();
    let log_listen = format!("127.0.0.1:{}", free_port());
    let haproxy = Haproxy::start(
        &stable.addr().to_string(),
        &canary.addr().to_string(),
        Some(&log_listen),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = canary_file(
        dir.path(),
        &haproxy.runtime_api,
        &log_listen,
        stable.addr(),
        canary.addr(),
    );
    let child = serin()
        .args(["run", "--output", "plain"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until serin holds the log socket.
    let receiving = poll::until_async(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || std::net::UdpSocket::bind(&log_listen).is_err(),
    )
    .await;
    assert!(receiving, "serin never bound {log_listen}");
    let mut spec = LoadSpec::new(
        format!("http://{}/", haproxy.frontend).parse().unwrap(),
        Some(150.0),
        Duration::from_secs(40),
    );
    spec.concurrency = 4;
    let load = tokio::spawn(load::run(spec));
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    load.abort();
    let answer = command(
        &RuntimeApiAddr::Tcp(haproxy.runtime_api.clone()),
        "show servers state shop",
    )
    .await
    .unwrap();
    let servers = parse_servers_state(&answer).unwrap();
    let read = |name: &str| {
        let server = servers.iter().find(|s| s.name == name).unwrap();
        (server.port, server.weight)
    };
    (
        output.status.code(),
        format!("{}\n{}", stdout(&output), stderr(&output)),
        [read("stable"), read("canary")],
        [stable.addr(), canary.addr()],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_behind_haproxy_is_promoted_and_exits_0() {
    let (code, out, servers, [_, canary]) = rollout(0.0).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Advance canary weight 20 -> 50"), "{out}");
    assert!(out.contains("shop: revision v2 promoted"), "{out}");
    // The stable server now runs the promoted version with all the traffic.
    assert_eq!(servers, [(canary.port(), 100), (canary.port(), 0)], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_behind_haproxy_is_rolled_back_and_exits_1() {
    let (code, out, servers, [stable, _]) = rollout(0.2).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines().any(
            |l| l.starts_with("shop: revision v2 rolled back at canary weight ")
                && l.contains("request-success-rate")
        ),
        "{out}"
    );
    assert_eq!(servers[0], (stable.port(), 100), "{out}");
    assert_eq!(servers[1].1, 0, "{out}");
}

#[test]
fn serin_validate_accepts_a_haproxy_canary_and_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let stable: SocketAddr = "127.0.0.1:9001".parse().unwrap();
    let canary: SocketAddr = "127.0.0.1:9002".parse().unwrap();
    let good = canary_file(
        dir.path(),
        "127.0.0.1:9999",
        "127.0.0.1:5141",
        stable,
        canary,
    );
    let out = output(serin().arg("validate").arg(&good));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("backend: shop", "backend: \"\"")
        .replace("stable: 127.0.0.1:9001", "stable: http://127.0.0.1:9001");
    let bad = write(dir.path(), "bad.yaml", &text);
    let out = output(serin().arg("validate").arg(&bad));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml: spec.haproxy.backend: required by provider haproxy"),
        "{err}"
    );
    assert!(err.contains("bad.yaml: spec.upstreams.stable: "), "{err}");
}
