//! `serin run` on a `provider: nginx` canary: a real nginx (foreground, in a
//! temporary directory) includes the upstream file serin owns and sends its
//! access log to serin over syslog; serin rewrites the file and reloads
//! nginx at each step and judges both versions from the log. A healthy
//! canary is promoted (exit 0) and the final file passes `nginx -t`.

use crate::support::*;
use serin_demo::{Backend, Behaviour, LoadSpec, load};
use serin_testkit::{nginx::Nginx, poll};
use std::{net::SocketAddr, process::Stdio, time::Duration};

fn canary_file(
    dir: &std::path::Path,
    nginx: &Nginx,
    log_listen: &str,
    stable: SocketAddr,
    canary: SocketAddr,
) -> std::path::PathBuf {
    let reload = nginx
        .argv(&["-s", "reload"])
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    write(
        dir,
        "canary.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: shop
spec:
  provider: nginx
  nginx:
    upstream: shop
    configFile: {config_file}
    reloadCommand: [{reload}]
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
",
            config_file = nginx.upstream_file.display(),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_behind_nginx_is_promoted_and_exits_0() {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary"))
        .await
        .unwrap();
    let log_listen = format!("127.0.0.1:{}", free_port());
    let nginx = Nginx::start(&stable.addr().to_string(), Some(&log_listen)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = canary_file(
        dir.path(),
        &nginx,
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
    let pid = child.id();
    // Wait (bounded) until serin holds the log socket.
    let receiving = poll::until_async(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || std::net::UdpSocket::bind(&log_listen).is_err(),
    )
    .await;
    assert!(receiving, "serin never bound {log_listen}");
    let mut spec = LoadSpec::new(
        format!("http://{}/", nginx.frontend).parse().unwrap(),
        Some(150.0),
        Duration::from_secs(40),
    );
    spec.concurrency = 4;
    let load = tokio::spawn(load::run(spec));
    let waited = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await;
    load.abort();
    let Ok(output) = waited else {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        panic!("serin run did not end within 90 s");
    };
    let output = output.unwrap();
    let out = format!("{}\n{}", stdout(&output), stderr(&output));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{out}\n{}",
        nginx.error_log()
    );
    assert!(out.contains("Advance canary weight 20 -> 50"), "{out}");
    assert!(out.contains("shop: revision v2 promoted"), "{out}");
    // The promoted version is the only server, and nginx accepts the file.
    let upstream = std::fs::read_to_string(&nginx.upstream_file).unwrap();
    assert!(
        upstream.contains(&format!("server {} weight=100;", canary.addr())),
        "{upstream}"
    );
    assert!(!upstream.contains(&stable.addr().to_string()), "{upstream}");
    nginx.test_config().unwrap();
}

#[test]
fn serin_validate_accepts_an_nginx_canary_and_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let text = "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: shop
spec:
  provider: nginx
  nginx:
    upstream: shop
    configFile: /etc/nginx/serin/shop.conf
    logListen: 127.0.0.1:5140
  upstreams:
    stable: 127.0.0.1:9001
    canary: 127.0.0.1:9002
  analysis:
    interval: 2s
    threshold: 2
    stepWeights: [20, 50]
";
    let good = write(dir.path(), "canary.yaml", text);
    let out = output(serin().arg("validate").arg(&good));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let text = text
        .replace("upstream: shop", "upstream: \"\"")
        .replace("stable: 127.0.0.1:9001", "stable: http://127.0.0.1:9001");
    let bad = write(dir.path(), "bad.yaml", &text);
    let out = output(serin().arg("validate").arg(&bad));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml: spec.nginx.upstream: required by provider nginx"),
        "{err}"
    );
    assert!(err.contains("bad.yaml: spec.upstreams.stable: "), "{err}");
}

/// `serin run --metrics` on an nginx canary exports the log receiver's
/// counters: nginx's own access-log lines are accepted, garbage sent to the
/// same socket is rejected by reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_metrics_counts_the_log_lines_of_nginx() {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary"))
        .await
        .unwrap();
    let log_listen = format!("127.0.0.1:{}", free_port());
    let nginx = Nginx::start(&stable.addr().to_string(), Some(&log_listen)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = canary_file(
        dir.path(),
        &nginx,
        &log_listen,
        stable.addr(),
        canary.addr(),
    );
    let metrics = free_port();
    let child = serin()
        .args(["run", "--output", "plain", "--metrics"])
        .arg(format!("127.0.0.1:{metrics}"))
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Killed(child);
    let receiving = poll::until_async(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || std::net::UdpSocket::bind(&log_listen).is_err(),
    )
    .await;
    assert!(receiving, "serin never bound {log_listen}");
    let frontend: SocketAddr = nginx.frontend.parse().unwrap();
    for _ in 0..5 {
        let answer = serin_testkit::http::get(frontend.port(), "/").await;
        assert!(answer.is_some(), "nginx did not answer");
    }
    let sender = std::net::UdpSocket::bind(local).unwrap();
    for garbage in [&b"hello"[..], b"<134>1 2025 host", b"\xff\xfe"] {
        sender.send_to(garbage, &log_listen).unwrap();
    }
    let mut text = String::new();
    let counted = poll::until_async(
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || match serin_testkit::http::get(metrics, "/metrics").await {
            Some(answer) => {
                let done = answer
                    .contains(r#"serin_log_lines_rejected_total{canary="shop",reason="frame"} 3"#)
                    && answer.contains(r#"serin_log_lines_accepted_total{canary="shop"} 5"#);
                text = answer;
                done
            }
            None => false,
        },
    )
    .await;
    assert!(
        counted,
        "log counters never reached 5 accepted, 3 rejected:\n{text}"
    );
    for line in [
        r#"serin_log_lines_rejected_total{canary="shop",reason="message"} 0"#,
        r#"serin_log_lines_rejected_total{canary="shop",reason="foreign_server"} 0"#,
        r#"serin_log_lines_rejected_total{canary="shop",reason="oversized"} 0"#,
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
}
