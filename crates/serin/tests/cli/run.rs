//! `serin run`: a whole rollout through serin's own proxy against real
//! backends, with real load; exit 0 when promoted, 1 when rolled back.

use crate::support::*;
use serin_demo::{Backend, Behaviour, LoadSpec, load};
use serin_testkit::poll;
use std::{
    net::{SocketAddr, TcpStream},
    process::Stdio,
    time::Duration,
};

fn canary_file(
    dir: &std::path::Path,
    port: u16,
    stable: &str,
    canary: &str,
    judge: &str,
    log: &std::path::Path,
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
  provider: builtin
  service:
    listen: 127.0.0.1:{port}
    accessLog: {log}
  upstreams:
    stable: {stable}
    canary: {canary}
    revision: v2
  analysis:
    interval: 2s
    threshold: 2
    stepWeights: [20, 50]
    judge: {judge}
    minRequests: 30
    metrics:
    - name: request-success-rate
      thresholdRange: {{min: 99}}
      interval: 2s
    - name: request-duration
      thresholdRange: {{max: 500}}
      interval: 2s
",
            log = log.display()
        ),
    )
}

/// Runs `serin run` on a canary whose backend fails `error_rate` of requests
/// while a bounded load goes through the proxy; returns (exit code, stdout,
/// access log).
async fn rollout(error_rate: f64, judge: &str) -> (Option<i32>, String, String) {
    let stable = Backend::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Behaviour::healthy("stable"),
    )
    .await
    .unwrap();
    let behaviour = Behaviour {
        error_rate,
        ..Behaviour::healthy("canary")
    };
    let canary = Backend::start(SocketAddr::from(([127, 0, 0, 1], 0)), behaviour)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("access.log");
    let file = canary_file(dir.path(), port, &stable.url(), &canary.url(), judge, &log);
    let child = serin()
        .args(["run", "--output", "plain"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for the proxy to listen.
    let listening = poll::until_async(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || TcpStream::connect(("127.0.0.1", port)).is_ok(),
    )
    .await;
    assert!(listening, "proxy never listened");
    let mut spec = LoadSpec::new(
        format!("http://127.0.0.1:{port}/").parse().unwrap(),
        Some(150.0),
        Duration::from_secs(40),
    );
    spec.concurrency = 4;
    let load = tokio::spawn(load::run(spec));
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    load.abort();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    (
        output.status.code(),
        format!("{}\n{}", stdout(&output), stderr(&output)),
        log,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_and_exits_0() {
    let (code, out, log) = rollout(0.0, "sequential").await;
    assert_eq!(code, Some(0), "{out}");
    // The last line says which revision ended how.
    assert!(
        out.contains("shop: revision v2 promoted after 2 steps (canary weight 50 %) in "),
        "{out}"
    );
    assert!(out.contains("Advance canary weight 20 -> 50"), "{out}");
    // The access log is in the request-log format and saw both versions.
    let mut versions = std::collections::BTreeSet::new();
    for line in log.lines().take(5_000) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(record["ts"].as_f64().unwrap() > 1.7e9);
        assert!(record["status"].as_u64().is_some());
        assert!(record["latency_ms"].as_f64().is_some());
        versions.insert(record["version"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        versions.into_iter().collect::<Vec<_>>(),
        ["canary", "stable"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_and_exits_1() {
    let (code, out, _) = rollout(0.3, "sequential").await;
    assert_eq!(code, Some(1), "{out}");
    // The last line names the revision, the outcome and the reason, and
    // the reason's numbers are not repeated in the records.
    let last = out
        .lines()
        .find(|l| l.starts_with("shop: revision v2 rolled back at canary weight "))
        .unwrap_or_else(|| panic!("no verdict line: {out}"));
    assert!(
        last.contains(": request-success-rate canary "),
        "the reason names the metric: {out}"
    );
    assert_eq!(
        out.matches("min 99.0").count(),
        0,
        "the judge's full statistics stay out of the live output: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_threshold_judge_rolls_back_too() {
    let (code, out, _) = rollout(0.3, "threshold").await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines().any(
            |l| l.starts_with("shop: revision v2 rolled back at canary weight ")
                && l.ends_with("(2 failed checks of 2)")
        ),
        "{out}"
    );
}

#[test]
fn a_canary_for_another_provider_is_refused_with_the_field() {
    let file = testdata()
        .join("compat/flagger/docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml");
    let out = output(serin().arg("run").arg(&file));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("spec.provider"), "{}", stderr(&out));
}

#[test]
fn a_problem_with_the_canary_names_the_file_that_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let template = write(
        dir.path(),
        "template.yaml",
        "apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: errors
spec:
  provider:
    type: prometheus
    address: http://127.0.0.1:9090
  query: sum(rate(errors[1m]))
",
    );
    let canary = testdata()
        .join("compat/flagger/docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml");
    let out = output(serin().arg("run").arg(&template).arg(&canary));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let line = format!("{}: spec.provider", canary.display());
    assert!(stderr(&out).contains(&line), "{}", stderr(&out));
}

/// A webhook receiver on loopback answering every request with `answer`
/// (raw HTTP), or never answering when `answer` is `None`. Runs until the
/// test process ends; each connection is held at most 60 s.
fn webhook_receiver(answer: Option<&'static str>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
                let mut buffer = [0u8; 8192];
                let _ = stream.read(&mut buffer);
                match answer {
                    Some(answer) => {
                        let _ = stream.write_all(answer.as_bytes());
                    }
                    None => std::thread::sleep(Duration::from_secs(60)),
                }
            });
        }
    });
    port
}

fn hooked_canary(
    dir: &std::path::Path,
    proxy: u16,
    stable: &str,
    hooks: &str,
) -> std::path::PathBuf {
    write(
        dir,
        "canary.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: shop}}
spec:
  provider: builtin
  service: {{listen: \"127.0.0.1:{proxy}\"}}
  upstreams: {{stable: \"{stable}\", canary: \"{stable}\", revision: v2}}
  analysis:
    interval: 500ms
    threshold: 1
    stepWeights: [50]
    webhooks:
{hooks}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_webhook_says_why_in_the_log() {
    let stable = Backend::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Behaviour::healthy("stable"),
    )
    .await
    .unwrap();
    let receiver = webhook_receiver(Some(
        "HTTP/1.1 400 Bad Request\r\ncontent-length: 33\r\nconnection: close\r\n\r\nticket missing\n\x1b[2Jfrom the gate\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    let file = hooked_canary(
        dir.path(),
        free_port(),
        &stable.url(),
        &format!(
            "    - {{name: acceptance, type: pre-rollout, url: \"http://127.0.0.1:{receiver}/\", timeout: 5s}}\n"
        ),
    );
    let out = tokio::task::spawn_blocking(move || {
        serin()
            .args(["run", "--output", "plain"])
            .arg(&file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("pre-rollout webhook acceptance answered 400 in"))
        .unwrap_or_else(|| panic!("no webhook line in {text}"));
    assert!(
        line.ends_with(" ms: ticket missing\\n\\u{1b}[2Jfrom the gate"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_metrics_exports_the_canary_before_its_first_event() {
    let stable = Backend::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Behaviour::healthy("stable"),
    )
    .await
    .unwrap();
    // The confirm-rollout gate never answers: no rollout event for 20 s.
    let receiver = webhook_receiver(None);
    let dir = tempfile::tempdir().unwrap();
    let file = hooked_canary(
        dir.path(),
        free_port(),
        &stable.url(),
        &format!(
            "    - {{name: approval, type: confirm-rollout, url: \"http://127.0.0.1:{receiver}/\", timeout: 20s}}\n"
        ),
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
    let mut text = String::new();
    let scraped = poll::until_async(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || match serin_testkit::http::get(metrics, "/metrics").await {
            Some(answer) => {
                text = answer;
                true
            }
            None => false,
        },
    )
    .await;
    assert!(scraped, "/metrics never answered");
    // The first scrape, before any traffic or rollout event.
    for line in [
        r#"serin_canary_weight{canary="shop"} 0"#,
        r#"serin_canary_status{canary="shop"} "#,
        r#"serin_canary_failed_checks{canary="shop"} 0"#,
        r#"serin_canary_phase{canary="shop",phase="Initializing"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
}

/// The README's canary with short intervals and a one-minute progress
/// deadline: a healthy canary with no errors is promoted (it was held
/// "for evidence" with a requirement that grew as clean traffic came, until
/// the deadline rolled it back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_with_margins_beats_its_progress_deadline() {
    let stable = Backend::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Behaviour::healthy("stable"),
    )
    .await
    .unwrap();
    let canary = Backend::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Behaviour::healthy("canary"),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = write(
        dir.path(),
        "canary.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: myapp
spec:
  provider: builtin
  progressDeadlineSeconds: 60
  service:
    listen: 127.0.0.1:{port}
  upstreams:
    stable: {stable}
    canary: {canary}
    revision: v2
  analysis:
    interval: 2s
    threshold: 5
    maxWeight: 50
    stepWeight: 25
    metrics:
    - name: request-success-rate
      thresholdRange: {{min: 99}}
      compare: {{maxDelta: 1}}
      interval: 2s
    - name: request-duration
      thresholdRange: {{max: 500}}
      compare: {{maxRatio: 1.2}}
      interval: 2s
",
            stable = stable.url(),
            canary = canary.url(),
        ),
    );
    let child = serin()
        .args(["run", "--output", "plain"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let listening = poll::until_async(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || TcpStream::connect(("127.0.0.1", port)).is_ok(),
    )
    .await;
    assert!(listening, "proxy never listened");
    let mut spec = LoadSpec::new(
        format!("http://127.0.0.1:{port}/").parse().unwrap(),
        Some(100.0),
        Duration::from_secs(90),
    );
    spec.concurrency = 4;
    let load = tokio::spawn(load::run(spec));
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    load.abort();
    let out = format!("{}\n{}", stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("myapp: revision v2 promoted"), "{out}");
    assert!(!out.contains("progress deadline exceeded"), "{out}");
}
