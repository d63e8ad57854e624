//! What `serin serve` adds to its API (the dashboard and `/metrics`) and
//! `serin grafana`, as real processes.

use crate::support::*;
use serde_json::Value;
use serin_demo::{Backend, Behaviour};
use serin_testkit::poll;
use std::{
    net::SocketAddr,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

const TOKEN: &str = "observe-test-token";

/// One HTTP/1.1 exchange; the whole answer (head and body), or None.
fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Option<String> {
    let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
    serin_testkit::http::exchange(addr, method, path, token, body).map(|answer| answer.raw)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_mounts_the_dashboard_and_metrics() {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let file = write(
        dir.path(),
        "web.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata: {{name: web}}\nspec:\n  provider: builtin\n  service: {{listen: \"{proxy}\"}}\n  upstreams: {{stable: \"{}\"}}\n  analysis: {{interval: 1m, stepWeight: 10}}\n",
            stable.url()
        ),
    );
    let _serve = Killed(
        serin()
            .arg("serve")
            .arg(&file)
            .args(["--api", &api.to_string(), "--state-dir"])
            .arg(dir.path().join("state"))
            .env("SERIN_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let answered = poll::until_async(
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || http(api, "GET", "/healthz", None).is_some(),
    )
    .await;
    assert!(answered, "serin serve did not answer");
    // Before any traffic or rollout event, the canary is on /metrics: idle
    // at weight 0 (the daemon exports it as soon as it is loaded).
    let metrics = http(api, "GET", "/metrics", None).unwrap();
    for line in [
        r#"serin_canary_weight{canary="web"} 0"#,
        r#"serin_canary_status{canary="web"} 1"#,
        r#"serin_canary_failed_checks{canary="web"} 0"#,
        r#"serin_canary_phase{canary="web",phase="Initialized"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    // Bounded traffic through the proxy: 20 requests.
    for _ in 0..20 {
        let answer = http(proxy, "GET", "/", None).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    let page = http(api, "GET", "/ui/", None).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<script src=\"/ui/app.js\""));
    let root = http(api, "GET", "/", None).unwrap();
    assert!(
        root.starts_with("HTTP/1.1 303") && root.contains("location: /ui/"),
        "{root}"
    );

    // The proxy's series are read from its recorder at scrape time.
    let started = Instant::now();
    loop {
        let metrics = http(api, "GET", "/metrics", None).unwrap();
        assert!(
            metrics
                .to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text"),
            "{metrics}"
        );
        // Exact status codes, read from the canary's own recorder.
        if metrics.contains(r#"http_requests_total{canary="web",version="stable",status="200"} 20"#)
            && metrics.contains(r#"serin_proxy_requests_total{canary="web"} 20"#)
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A refused reload shows in `serin status`, as text and in `--json`,
/// until the file is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_refused_reload_as_a_condition() {
    let dir = tempfile::tempdir().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let good = format!(
        "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata: {{name: web}}\nspec:\n  provider: builtin\n  service: {{listen: \"127.0.0.1:{}\"}}\n  upstreams: {{stable: \"http://127.0.0.1:9\"}}\n  analysis: {{interval: 1m, stepWeight: 10}}\n",
        free_port()
    );
    let file = write(dir.path(), "web.yaml", &good);
    let _serve = Killed(
        serin()
            .arg("serve")
            .arg(&file)
            .args(["--api", &api.to_string(), "--poll", "100ms", "--state-dir"])
            .arg(dir.path().join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let answered = poll::until_async(
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || http(api, "GET", "/healthz", None).is_some(),
    )
    .await;
    assert!(answered, "serin serve did not answer");
    let status = |json: bool| {
        let mut command = serin();
        command.args(["status", "web", "--server", &format!("http://{api}")]);
        if json {
            command.arg("--json");
        }
        let out = output(&mut command);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    assert!(!status(false).contains("ConfigReloadFailed"));

    write(
        dir.path(),
        "web.yaml",
        &good.replace("stepWeight: 10", "stepWeight: 0"),
    );
    let shown = poll::until(Duration::from_secs(10), Duration::from_millis(100), || {
        status(false).contains("ConfigReloadFailed")
    });
    assert!(shown, "{}", status(false));
    let text = status(false);
    let line = text
        .lines()
        .find(|l| l.starts_with("web: ConfigReloadFailed since "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(" UTC: reload refused, the canary runs as before: ")
            && line.contains("web.yaml: spec.analysis.stepWeight"),
        "{line}"
    );
    let json: Value = serde_json::from_str(&status(true)).unwrap();
    let condition = json["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ConfigReloadFailed")
        .cloned()
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(condition["status"], "True");
    assert!(
        condition["lastTransitionTime"].as_u64().is_some(),
        "{condition}"
    );

    write(dir.path(), "web.yaml", &good);
    let cleared = poll::until(Duration::from_secs(10), Duration::from_millis(100), || {
        !status(false).contains("ConfigReloadFailed")
    });
    assert!(cleared, "{}", status(false));
}

#[test]
fn grafana_prints_an_importable_dashboard_or_refuses_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "shop.yaml",
        "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata: {name: shop}\nspec:\n  provider: builtin\n  service: {listen: 127.0.0.1:8080}\n  upstreams: {stable: http://127.0.0.1:9001}\n  analysis:\n    interval: 1m\n    stepWeight: 10\n    metrics:\n    - name: request-success-rate\n      thresholdRange: {min: 99}\n",
    );
    let out = output(serin().arg("grafana").arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    let dashboard: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(dashboard["title"], "Canary: shop");
    assert!(dashboard["panels"].as_array().unwrap().len() >= 6);

    let api = output(serin().arg("grafana").arg("--api").arg(&file));
    let wrapped: Value = serde_json::from_str(&stdout(&api)).unwrap();
    assert_eq!(wrapped["dashboard"]["uid"], "serin-shop");

    let missing = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata: {name: shop}\nspec:\n  provider: builtin\n  service: {listen: 127.0.0.1:8080}\n  upstreams: {stable: http://127.0.0.1:9001}\n  analysis:\n    interval: 1m\n    stepWeight: 10\n    metrics:\n    - name: orders\n      templateRef: {name: nowhere}\n",
    );
    let out = output(serin().arg("grafana").arg(&missing));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("spec.analysis.metrics[0].templateRef: MetricTemplate \"nowhere\" not found"),
        "{}",
        stderr(&out)
    );
}

/// The dashboard of the documented canary: the error-rate panels read 0
/// rather than nothing while there is no 5xx, and each template panel runs
/// the shipped template's own query, fallback included.
#[test]
fn grafana_for_the_documented_canary_reads_0_where_nothing_was_counted() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/templates");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    let out = output(serin().arg("grafana").args(&files).args(["--name", "shop"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let dashboard: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let panel = |title: &str| {
        panels
            .iter()
            .find(|p| p["title"].as_str().unwrap().starts_with(title))
            .unwrap_or_else(|| panic!("{title}"))
    };
    let exprs = |title: &str| -> Vec<String> {
        panel(title)["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["expr"].as_str().unwrap().to_owned())
            .collect()
    };
    for expr in exprs("Error Rate") {
        assert!(
            expr.starts_with("(sum(rate(http_requests_total{canary=\"shop\", status=~\"5..\"")
                && expr.contains("[$__rate_interval])) or vector(0)) / "),
            "{expr}"
        );
    }
    let conversion = exprs("Metric: conversion-rate");
    assert_eq!(conversion.len(), 3, "{conversion:?}");
    for expr in &conversion[1..] {
        assert!(
            expr.contains("shop_checkouts_total{app=\"shop\"") && expr.contains("or vector(0)"),
            "{expr}"
        );
    }
}
