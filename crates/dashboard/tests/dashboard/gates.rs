//! The manual gates in a real browser: only the actions that apply to the
//! rollout's phase are enabled, promote and abort ask for a second click,
//! the margins read as configured (×R, +D unit), and a refused reload shows
//! as a condition of the canary.

use super::browser::{Chromium, Page};
use serde_json::Value;
use serin_daemon::{Config, Daemon};
use serin_demo::{Backend, Behaviour, LoadSpec, load};
use serin_rollout::{Phase, ports::CanaryTarget};
use serin_testkit::free_port;
use std::time::Duration;

const TOKEN: &str = "gates-test-token";

async fn click(page: &mut Page, action: &str) {
    page.eval(&format!(
        "document.querySelector('[data-testid=action-{action}]').click()"
    ))
    .await;
}

/// Waits until the action buttons read `expected`: each `[text, disabled]`.
async fn wait_buttons(page: &mut Page, expected: Value, within: Duration) {
    let expression = "JSON.stringify(Object.fromEntries(['promote','pause','resume','abort'].map((a) => { const b = document.querySelector('[data-testid=action-' + a + ']'); return [a, b ? [b.textContent, b.disabled] : null]; })))";
    page.wait_for(expression, within, |v| {
        v.as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .is_some_and(|v| v == expected)
    })
    .await;
}

fn state(promote: (&str, bool), pause: bool, resume: bool, abort: (&str, bool)) -> Value {
    serde_json::json!({
        "promote": [promote.0, promote.1],
        "pause": ["Pause", pause],
        "resume": ["Resume", resume],
        "abort": [abort.0, abort.1],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_apply_to_the_phase_confirm_and_margins_read_as_configured() {
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
    let yaml = format!(
        r#"apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: shop}}
spec:
  provider: builtin
  service: {{listen: "127.0.0.1:{proxy_port}"}}
  upstreams: {{stable: "{}"}}
  analysis:
    judge: threshold
    interval: 1s
    threshold: 50
    stepWeights: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40]
    metrics:
    - name: request-success-rate
      thresholdRange: {{min: 50}}
      compare: {{maxDelta: 1}}
      interval: 10s
    - name: request-duration
      thresholdRange: {{max: 5000}}
      compare: {{maxRatio: 5}}
      interval: 10s
"#,
        stable.url()
    );
    std::fs::write(&file, &yaml).unwrap();
    let daemon = Daemon::start(
        Config {
            files: vec![file.clone()],
            api: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir.path().join("state"),
            token: Some(TOKEN.into()),
            poll: Duration::from_millis(200),
        },
        vec![serin_dashboard::routes()],
    )
    .await
    .unwrap();
    let api = daemon.api_addr();

    let chromium = Chromium::start().await;
    let mut page = chromium.page().await;
    page.call("Page.enable", serde_json::json!({})).await;
    page.call(
        "Page.navigate",
        serde_json::json!({"url": format!("http://{api}/ui/#/canary/shop")}),
    )
    .await;
    page.wait_for(
        "document.querySelector('[data-testid=phase]')?.textContent ?? ''",
        Duration::from_secs(10),
        |v| *v == "Initialized",
    )
    .await;
    page.eval(&format!("sessionStorage.setItem('serin-token', '{TOKEN}')"))
        .await;

    // No rollout: nothing to promote, pause, resume or abort.
    wait_buttons(
        &mut page,
        state(("Promote", true), true, true, ("Abort", true)),
        Duration::from_secs(5),
    )
    .await;

    daemon
        .supervisor()
        .start(
            "shop",
            CanaryTarget {
                address: canary.url(),
                revision: "v2".into(),
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
    // (Healthy versions and loose checks: the rollout runs until aborted.)

    // In progress: promote, pause and abort apply; resume does not.
    wait_buttons(
        &mut page,
        state(("Promote", false), false, true, ("Abort", false)),
        Duration::from_secs(10),
    )
    .await;

    // The margins read as the file configures them.
    let margins = page
        .wait_for(
            "Object.fromEntries([...document.querySelectorAll('[data-testid=metrics] tbody tr')].map((r) => [r.cells[0].textContent, r.querySelector('[data-testid=margin]').textContent]))",
            Duration::from_secs(20),
            |v| v.as_object().is_some_and(|o| o.len() == 2),
        )
        .await;
    assert_eq!(
        margins,
        serde_json::json!({"request-success-rate": "+1 points", "request-duration": "×5"})
    );

    // One click on promote only arms it; unconfirmed, it disarms and nothing happens.
    click(&mut page, "promote").await;
    wait_buttons(
        &mut page,
        state(("Confirm promote?", false), false, true, ("Abort", false)),
        Duration::from_secs(2),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    wait_buttons(
        &mut page,
        state(("Promote", false), false, true, ("Abort", false)),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        daemon.supervisor().get("shop").unwrap().phase,
        Phase::Progressing
    );

    // Pause needs no confirmation; then only resume (and promote, abort) apply.
    click(&mut page, "pause").await;
    wait_buttons(
        &mut page,
        state(("Promote", false), true, false, ("Abort", false)),
        Duration::from_secs(10),
    )
    .await;
    assert!(daemon.supervisor().get("shop").unwrap().paused);
    click(&mut page, "resume").await;
    wait_buttons(
        &mut page,
        state(("Promote", false), false, true, ("Abort", false)),
        Duration::from_secs(10),
    )
    .await;

    // Abort: the first click arms, the second aborts; then nothing applies.
    click(&mut page, "abort").await;
    wait_buttons(
        &mut page,
        state(("Promote", false), false, true, ("Confirm abort?", false)),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        daemon.supervisor().get("shop").unwrap().phase,
        Phase::Progressing
    );
    click(&mut page, "abort").await;
    page.wait_for(
        "document.querySelector('[data-testid=phase]').textContent",
        Duration::from_secs(15),
        |v| *v == "Failed",
    )
    .await;
    assert_eq!(
        daemon.supervisor().get("shop").unwrap().phase,
        Phase::Failed
    );
    wait_buttons(
        &mut page,
        state(("Promote", true), true, true, ("Abort", true)),
        Duration::from_secs(5),
    )
    .await;
    load.abort();

    // A refused reload shows on the canary's page, and goes once fixed.
    std::fs::write(&file, yaml.replace("threshold: 50", "threshold: -5")).unwrap();
    let fault = page
        .wait_for(
            "document.querySelector('[data-testid=condition-ConfigReloadFailed]')?.textContent ?? ''",
            Duration::from_secs(15),
            |v| v.as_str().is_some_and(|s| !s.is_empty()),
        )
        .await;
    let fault = fault.as_str().unwrap();
    assert!(
        fault.starts_with("ConfigReloadFailed since ") && fault.contains("spec.analysis.threshold"),
        "{fault}"
    );
    std::fs::write(&file, &yaml).unwrap();
    page.wait_for(
        "document.querySelector('[data-testid=condition-ConfigReloadFailed]') === null",
        Duration::from_secs(15),
        |v| *v == Value::Bool(true),
    )
    .await;

    drop(page);
    drop(chromium);
    daemon.shutdown().await;
}
