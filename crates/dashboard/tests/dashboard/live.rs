//! A real rollout watched in the browser: the weight changes live, the pause
//! button (after the token dialog) pauses it, and hostile text stays text.

use super::browser::Chromium;
use serde_json::Value;
use serin_daemon::{Config, Daemon};
use serin_demo::{Backend, Behaviour, LoadSpec, load};
use serin_rollout::ports::CanaryTarget;
use serin_testkit::{free_port, http};
use std::time::Duration;

const TOKEN: &str = "dashboard-test-token";
const REVISION: &str = "<b id=\"injected\">v2</b><img src=x>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_rollout_pause_and_escaping() {
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxy_port = free_port();
    let file = dir.path().join("shop.yaml");
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: shop}}
spec:
  provider: builtin
  service: {{listen: "127.0.0.1:{proxy_port}"}}
  upstreams: {{stable: "{}"}}
  analysis:
    judge: threshold
    interval: 2s
    threshold: 5
    stepWeights: [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95]
    metrics:
    - name: request-success-rate
      thresholdRange: {{min: 90}}
      interval: 10s
"#,
            stable.url()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(
        Config {
            files: vec![file],
            api: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir.path().join("state"),
            token: Some(TOKEN.into()),
            poll: Duration::from_secs(1),
        },
        vec![serin_dashboard::routes()],
    )
    .await
    .unwrap();
    let api = daemon.api_addr();

    // The page and its assets are served with a strict CSP.
    let page = http::get(api.port(), "/ui/").await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'; script-src 'self'")
    );

    daemon
        .supervisor()
        .start(
            "shop",
            CanaryTarget {
                address: canary.url(),
                revision: REVISION.into(),
            },
        )
        .await
        .unwrap();
    let mut spec = LoadSpec::new(
        format!("http://127.0.0.1:{proxy_port}/").parse().unwrap(),
        Some(40.0),
        Duration::from_secs(90),
    );
    spec.concurrency = 4;
    spec.max_requests = Some(3_600);
    let load = tokio::spawn(load::run(spec));

    let chromium = Chromium::start().await;
    let mut page = chromium.page().await;
    page.call("Page.enable", serde_json::json!({})).await;
    page.call(
        "Page.navigate",
        serde_json::json!({"url": format!("http://{api}/ui/#/canary/shop")}),
    )
    .await;

    // Live: the weight changes without a reload.
    let weight = "document.querySelector('[data-testid=weight]')?.textContent ?? ''";
    let first = page
        .wait_for(weight, Duration::from_secs(20), |v| {
            v.as_str().is_some_and(|w| w.ends_with('%') && w != "0%")
        })
        .await;
    let second = page
        .wait_for(weight, Duration::from_secs(20), |v| {
            *v != first && v.as_str().is_some_and(|w| w.ends_with('%'))
        })
        .await;
    let live = page
        .eval("document.querySelector('[data-testid=live]').textContent")
        .await;
    assert_eq!(live, "live");

    // Hostile text is shown as text.
    let revision = page
        .eval("document.querySelector('[data-testid=revision]').textContent")
        .await;
    assert_eq!(revision, REVISION);
    let injected = page
        .eval("document.getElementById('injected') === null && document.querySelectorAll('main img').length === 0")
        .await;
    assert_eq!(injected, Value::Bool(true));

    // Pause asks for the token, then pauses; the phase shows it.
    page.eval("document.querySelector('[data-testid=action-pause]').click()")
        .await;
    let dialog_open = page
        .wait_for(
            "document.getElementById('token-dialog').open",
            Duration::from_secs(5),
            |v| *v == Value::Bool(true),
        )
        .await;
    assert_eq!(dialog_open, Value::Bool(true));
    page.eval(&format!(
        "document.getElementById('token-input').value = '{TOKEN}'; document.getElementById('token-submit').click()"
    ))
    .await;
    let phase = page
        .wait_for(
            "document.querySelector('[data-testid=phase]').textContent",
            Duration::from_secs(15),
            |v| v.as_str().is_some_and(|p| p.contains("(paused)")),
        )
        .await;
    assert_eq!(phase, "Progressing (paused)");
    assert!(daemon.supervisor().get("shop").unwrap().paused);
    // The charts and the evidence filled in.
    page.wait_for(
        "document.querySelectorAll('[data-testid=chart-success] polyline').length",
        Duration::from_secs(10),
        |v| v.as_u64().is_some_and(|n| n >= 2),
    )
    .await;
    page.wait_for(
        "document.querySelector('[data-testid=verdict]')?.textContent ?? ''",
        Duration::from_secs(10),
        |v| v.as_str().is_some_and(|s| !s.is_empty()),
    )
    .await;
    // A few more seconds of live data for the screenshot.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let png = page.screenshot().await;
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Ok(path) = std::env::var("SERIN_DASHBOARD_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }
    eprintln!("weights seen: {first} then {second}; phase after pause: {phase}");

    // The overview lists the canary with its phase, weight and revision.
    page.eval("location.hash = '#/'").await;
    let row = page
        .wait_for(
            "document.querySelector('[data-testid=row]')?.textContent ?? ''",
            Duration::from_secs(5),
            |v| v.as_str().is_some_and(|r| r.contains("(paused)")),
        )
        .await;
    let row = row.as_str().unwrap();
    assert!(row.starts_with("shop") && row.contains(REVISION), "{row}");

    load.abort();
    drop(page);
    drop(chromium);
    daemon.shutdown().await;
}
