//! Each rollout is judged on its own traffic, end to end: a daemon with real
//! sample backends and load through its proxy, several `start`s in a row.
//! The judge and the windows of one rollout never carry over to the next.

use crate::support::*;
use serin_demo::{Backend, Behaviour};
use std::{net::SocketAddr, time::Duration};

/// Load through the canary's proxy for the whole test.
fn load(listen: u16) -> tokio::task::JoinHandle<()> {
    let mut spec = serin_demo::LoadSpec::new(
        format!("http://127.0.0.1:{listen}/").parse().unwrap(),
        Some(200.0),
        Duration::from_secs(90),
    );
    spec.concurrency = 4;
    tokio::spawn(async move {
        let _ = serin_demo::load::run(spec).await;
    })
}

async fn start(api: SocketAddr, backend: &Backend, revision: &str) {
    let body = format!(
        r#"{{"canary": "{}", "revision": "{revision}"}}"#,
        backend.url()
    );
    let (status, answer) = request(
        api,
        "POST",
        "/api/v1/canaries/web/start",
        Some(TOKEN),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "start {revision}: {answer}");
}

/// The status once `revision`'s rollout ended (promoted or rolled back).
async fn verdict(api: SocketAddr, revision: &str, within: Duration) -> serde_json::Value {
    eventually(within, &format!("a verdict on {revision}"), async || {
        let web = json(api, "/api/v1/canaries/web").await;
        web["revision"] == revision && (web["phase"] == "Succeeded" || web["phase"] == "Failed")
    })
    .await;
    json(api, "/api/v1/canaries/web").await
}

fn failing(name: &str, error_rate: f64) -> Behaviour {
    Behaviour {
        error_rate,
        ..Behaviour::healthy(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_build_after_a_rolled_back_one_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let broken = Backend::start(local, failing("canary v2", 0.2))
        .await
        .unwrap();
    let fixed = Backend::start(local, Behaviour::healthy("canary v3"))
        .await
        .unwrap();
    let listen = free_port();
    // The default (sequential) judge.
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml(
            "web",
            listen,
            &stable.url(),
            None,
            "    interval: 2s
    threshold: 2
    stepWeights: [20, 50]
    minRequests: 50
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 10s
",
        ),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    let api = daemon.api_addr();
    let traffic = load(listen);

    start(api, &broken, "v2").await;
    let v2 = verdict(api, "v2", Duration::from_secs(20)).await;
    assert_eq!(v2["phase"], "Failed", "{v2}");
    assert!(
        v2["message"].as_str().unwrap().contains("evidence of harm"),
        "{v2}"
    );
    // The fixed build is judged on its own requests, not on v2's.
    start(api, &fixed, "v3").await;
    let v3 = verdict(api, "v3", Duration::from_secs(40)).await;
    assert_eq!(v3["phase"], "Succeeded", "{v3}");
    assert_eq!(v3["failedChecks"], 0, "{v3}");
    traffic.abort();
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_after_a_promoted_one_is_not_diluted() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let healthy = Backend::start(local, Behaviour::healthy("canary v2"))
        .await
        .unwrap();
    let failing = Backend::start(local, failing("canary v3", 0.05))
        .await
        .unwrap();
    let listen = free_port();
    // Flagger's judge over a one-minute window, analysed every 4 s: the
    // window is longer than a rollout, so it held the previous build's
    // requests (a 5 % failing build read as 0.7 % at its first step).
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml(
            "web",
            listen,
            &stable.url(),
            None,
            "    interval: 4s
    threshold: 1
    stepWeights: [20, 50]
    judge: threshold
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1m
",
        ),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    let api = daemon.api_addr();
    let traffic = load(listen);

    start(api, &healthy, "v2").await;
    let v2 = verdict(api, "v2", Duration::from_secs(40)).await;
    assert_eq!(v2["phase"], "Succeeded", "{v2}");
    start(api, &failing, "v3").await;
    let v3 = verdict(api, "v3", Duration::from_secs(30)).await;
    assert_eq!(v3["phase"], "Failed", "{v3}");
    // Stopped at its first step, on its own 5 %: it never took half the traffic.
    let message = v3["message"].as_str().unwrap();
    assert!(message.contains("at canary weight 20"), "{v3}");
    traffic.abort();
    daemon.shutdown().await;
}
