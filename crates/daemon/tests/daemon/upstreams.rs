//! `serin start --canary URL` (the API's start) refuses exactly the upstream
//! URLs `serin validate` and the proxy refuse, with the same message (one
//! shared table), before the start is accepted.

use crate::support::*;
use serin_demo::{Backend, Behaviour};
use std::{net::SocketAddr, time::Duration};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_follows_the_shared_upstream_table() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml(
            "web",
            free_port(),
            &stable.url(),
            None,
            "    interval: 1h\n    threshold: 2\n    stepWeights: [50]\n",
        ),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    let api = daemon.api_addr();
    for (index, (url, expected)) in serin_testkit::UPSTREAM_URLS.iter().enumerate() {
        let body = serde_json::json!({"canary": url, "revision": format!("r{index}")});
        let (status, answer) = request(
            api,
            "POST",
            "/api/v1/canaries/web/start",
            Some(TOKEN),
            body.to_string().as_bytes(),
        )
        .await;
        match expected {
            None => assert_eq!(status, 202, "{url:?}: {answer}"),
            Some(message) => {
                assert_eq!(status, 400, "{url:?}: {answer}");
                assert!(answer.contains(message), "{url:?}: {answer}");
            }
        }
    }
    // Accepted URLs are kept without the whitespace around them.
    let web = json(api, "/api/v1/canaries/web").await;
    assert!(web["canary"].is_string(), "{web}");
    assert_eq!(
        web["canary"],
        web["canary"].as_str().unwrap().trim(),
        "{web}"
    );
}
