//! Following the files: a changed revision starts a rollout, a broken file
//! changes nothing, a removed canary stops, a new one starts serving.

use crate::support::*;
use std::time::Duration;

const STEPS: &str = "    interval: 1h
    threshold: 2
    stepWeights: [50]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_files_start_rollouts_and_broken_ones_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let stable = "http://127.0.0.1:9";
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", port, stable, None, STEPS),
    );
    let daemon = daemon(
        dir.path(),
        vec![file.clone()],
        Some(TOKEN),
        Duration::from_millis(100),
    )
    .await;
    let api = daemon.api_addr();
    assert_eq!(
        json(api, "/api/v1/canaries/web").await["phase"],
        "Initialized"
    );

    // A canary upstream appears: a rollout starts, once.
    let v2 = canary_yaml(
        "web",
        port,
        stable,
        Some(("http://127.0.0.1:10", "v2")),
        STEPS,
    );
    write(dir.path(), "web.yaml", &v2);
    eventually(Duration::from_secs(5), "v2 started", async || {
        json(api, "/api/v1/canaries/web").await["revision"] == "v2"
    })
    .await;

    // A broken file is refused; what runs keeps running.
    write(
        dir.path(),
        "web.yaml",
        "apiVersion: serin.dev/v1alpha1\nkind: Canary\nspec: [",
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let web = json(api, "/api/v1/canaries/web").await;
    assert_eq!(
        (web["revision"].as_str(), web["phase"].as_str()),
        (Some("v2"), Some("Progressing"))
    );

    // An empty file (one caught mid-write) stops nothing either.
    write(dir.path(), "web.yaml", "");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let web = json(api, "/api/v1/canaries/web").await;
    assert_eq!(web["revision"].as_str(), Some("v2"));

    // A new revision restarts the rollout with it.
    write(
        dir.path(),
        "web.yaml",
        &canary_yaml(
            "web",
            port,
            stable,
            Some(("http://127.0.0.1:10", "v3")),
            STEPS,
        ),
    );
    eventually(Duration::from_secs(5), "v3 started", async || {
        json(api, "/api/v1/canaries/web").await["revision"] == "v3"
    })
    .await;
    let starts = json(api, "/api/v1/canaries/web/history?limit=1000").await["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["body"]["record"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("New revision v2 detected"))
        })
        .count();
    assert_eq!(starts, 1, "v2 was started once");

    // The canary is renamed: the old one stops, the new one serves.
    let other_port = free_port();
    write(
        dir.path(),
        "web.yaml",
        &canary_yaml("api", other_port, stable, None, STEPS),
    );
    eventually(Duration::from_secs(5), "api replaces web", async || {
        let list = json(api, "/api/v1/canaries").await;
        let names: Vec<&str> = list["canaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        names == ["api"]
    })
    .await;
    assert!(std::net::TcpStream::connect(("127.0.0.1", other_port)).is_ok());
    daemon.shutdown().await;
}

/// The `ConfigReloadFailed` condition of `canary`, if it holds.
async fn reload_condition(api: std::net::SocketAddr, canary: &str) -> Option<serde_json::Value> {
    json(api, &format!("/api/v1/canaries/{canary}")).await["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ConfigReloadFailed")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_is_a_condition_of_the_canaries_it_concerns_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let stable = "http://127.0.0.1:9";
    let web = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", free_port(), stable, None, STEPS),
    );
    let shop_port = free_port();
    let shop_yaml = canary_yaml("shop", shop_port, stable, None, STEPS);
    let shop = write(dir.path(), "shop.yaml", &shop_yaml);
    let daemon = daemon(
        dir.path(),
        vec![web, shop.clone()],
        Some(TOKEN),
        Duration::from_millis(100),
    )
    .await;
    let api = daemon.api_addr();
    assert_eq!(reload_condition(api, "shop").await, None);

    // shop's file breaks: shop says so, web (another file) does not.
    write(
        dir.path(),
        "shop.yaml",
        &shop_yaml.replace("stepWeights: [50]", "stepWeights: [500]"),
    );
    eventually(Duration::from_secs(5), "shop's condition", async || {
        reload_condition(api, "shop").await.is_some()
    })
    .await;
    let condition = reload_condition(api, "shop").await.unwrap();
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "ReloadRefused");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.starts_with("reload refused, the canary runs as before: ")
            && message.contains("shop.yaml: spec.analysis.stepWeights"),
        "{message}"
    );
    let since = condition["lastTransitionTime"].as_u64().unwrap();
    assert!(
        since > 1_700_000_000_000,
        "milliseconds since the epoch: {since}"
    );
    assert_eq!(reload_condition(api, "web").await, None);
    // The status lists it after Flagger's `Promoted`, and what runs is unchanged.
    let status = json(api, "/api/v1/canaries/shop").await;
    assert_eq!(status["conditions"][0]["type"], "Promoted");
    assert_eq!(status["phase"], "Initialized");

    // Still broken a while later: the same condition, since the same time.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = reload_condition(api, "shop").await.unwrap();
    assert_eq!(later["lastTransitionTime"].as_u64(), Some(since));

    // Fixed: the condition goes.
    write(dir.path(), "shop.yaml", &shop_yaml);
    eventually(
        Duration::from_secs(5),
        "the condition cleared",
        async || reload_condition(api, "shop").await.is_none(),
    )
    .await;
    daemon.shutdown().await;
}

/// A reload that would give two canaries one name or one listen address is
/// refused with the lines `serin validate` prints for those files, and the
/// canaries keep running as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_duplicate_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (web_port, api_port) = (free_port(), free_port());
    let stable = "http://127.0.0.1:9";
    let web = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", web_port, stable, None, STEPS),
    );
    let api_file = write(
        dir.path(),
        "api.yaml",
        &canary_yaml("api", api_port, stable, None, STEPS),
    );
    let files = vec![web.clone(), api_file.clone()];
    let daemon = daemon(
        dir.path(),
        files.clone(),
        Some(TOKEN),
        Duration::from_millis(100),
    )
    .await;
    let api = daemon.api_addr();
    let names = async || {
        json(api, "/api/v1/canaries").await["canaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["listen"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = names().await;
    assert_eq!(before.len(), 2, "{before:?}");

    let cases = [
        (
            canary_yaml("api", web_port, stable, None, STEPS),
            format!(
                "{}: spec.service.listen: 127.0.0.1:{web_port} is taken: canary \"web\" in {} listens on 127.0.0.1:{web_port}; each canary needs its own address",
                api_file.display(),
                web.display()
            ),
        ),
        (
            canary_yaml("web", api_port, stable, None, STEPS),
            format!(
                "{}: metadata.name: canary \"web\" is also defined in {}; canary names must be unique",
                api_file.display(),
                web.display()
            ),
        ),
    ];
    for (text, expected) in cases {
        write(dir.path(), "api.yaml", &text);
        let problems = serin_daemon::reload::load(&files).unwrap_err();
        assert_eq!(problems, std::slice::from_ref(&expected));
        // Several polls later, nothing changed.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(names().await, before, "after {expected}");
        for port in [web_port, api_port] {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
                "a proxy stopped listening on {port}"
            );
        }
    }
    daemon.shutdown().await;
}
