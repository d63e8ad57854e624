//! The API on a real daemon: status fields, 404s, tokens, body limits, the
//! event stream, and the OpenAPI description against the routes.

use crate::support::*;
use serin_demo::{Backend, Behaviour};
use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

const ONE_STEP: &str = "    interval: 1h
    threshold: 2
    stepWeights: [50]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_commands_tokens_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary v2"))
        .await
        .unwrap();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", free_port(), &stable.url(), None, ONE_STEP),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    let api = daemon.api_addr();

    assert_eq!(request(api, "GET", "/healthz", None, b"").await.0, 200);
    let list = json(api, "/api/v1/canaries").await;
    let web = &list["canaries"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["phase"], "Initialized", "between rollouts: {web}");
    assert_eq!(web["canaryWeight"], 0);
    assert_eq!(web["conditions"][0]["type"], "Promoted");

    let (status, body) = request(api, "GET", "/api/v1/canaries/shop", None, b"").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("no canary named \\\"shop\\\"; known canaries: web"),
        "{body}"
    );
    let (status, body) = request(api, "GET", "/api/v1/nothing", None, b"").await;
    assert_eq!(status, 404);
    assert!(body.contains("no route GET /api/v1/nothing"), "{body}");

    // Changes need the token.
    let start = format!(r#"{{"canary": "{}", "revision": "v2"}}"#, canary.url());
    let (status, body) = request(
        api,
        "POST",
        "/api/v1/canaries/web/start",
        None,
        start.as_bytes(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = request(
        api,
        "POST",
        "/api/v1/canaries/web/start",
        Some("wrong"),
        start.as_bytes(),
    )
    .await;
    assert_eq!(
        (status, body.contains("wrong token")),
        (401, true),
        "{body}"
    );

    // Bad bodies name the field; big ones are refused before parsing.
    let (status, body) = request(
        api,
        "POST",
        "/api/v1/canaries/web/start",
        Some(TOKEN),
        br#"{"canary": 5}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("canary"), "{body}");
    let (status, body) = request(
        api,
        "POST",
        "/api/v1/canaries/web/start",
        Some(TOKEN),
        br#"{"canary": "ftp://x"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("canary: \\\"ftp://x\\\": only http:// and https:// upstreams are supported"),
        "{body}"
    );
    let huge = format!(
        r#"{{"canary": "{}", "revision": "{}"}}"#,
        canary.url(),
        "x".repeat(20_000)
    );
    let (status, _) = request(
        api,
        "POST",
        "/api/v1/canaries/web/start",
        Some(TOKEN),
        huge.as_bytes(),
    )
    .await;
    assert_eq!(status, 413);
    let (status, body) = request(api, "POST", "/api/v1/canaries/web/pause", Some(TOKEN), b"").await;
    assert_eq!(status, 409, "nothing to pause yet: {body}");

    // The event stream: a status per canary first, then changes as they come.
    let mut events = TcpStream::connect(api).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(events, "GET /api/v1/events HTTP/1.1\r\nHost: {api}\r\n\r\n").unwrap();
    let reader = std::thread::spawn(move || {
        let mut kinds = Vec::new();
        for line in BufReader::new(events).lines() {
            let Ok(line) = line else { break };
            if let Some(kind) = line.strip_prefix("event: ") {
                kinds.push(kind.to_owned());
                if kind == "state" {
                    break;
                }
            }
        }
        kinds
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, body) = request(
        api,
        "POST",
        "/api/v1/canaries/web/start",
        Some(TOKEN),
        start.as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let started: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(started["revision"], "v2");
    assert_eq!(started["phase"], "Progressing");
    eventually(
        Duration::from_secs(5),
        "the first step at once",
        async || json(api, "/api/v1/canaries/web").await["canaryWeight"] == 50,
    )
    .await;
    // Starting the same revision again is a no-op CI may retry.
    let (status, _) = request(
        api,
        "POST",
        "/api/v1/canaries/web/start",
        Some(TOKEN),
        start.as_bytes(),
    )
    .await;
    assert_eq!(status, 202);
    let kinds = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("status"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "record"), "{kinds:?}");

    let (status, body) = request(api, "POST", "/api/v1/canaries/web/pause", Some(TOKEN), b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""paused":true"#), "{body}");
    let (status, body) = request(api, "POST", "/api/v1/canaries/web/pause", Some(TOKEN), b"").await;
    assert_eq!(
        (status, body.contains("already paused")),
        (409, true),
        "{body}"
    );
    let (status, _) = request(api, "POST", "/api/v1/canaries/web/resume", Some(TOKEN), b"").await;
    assert_eq!(status, 200);
    let (status, body) = request(
        api,
        "POST",
        "/api/v1/canaries/web/promote",
        Some(TOKEN),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""phase":"Promoting""#), "{body}");
    let (status, body) = request(api, "POST", "/api/v1/canaries/web/abort", Some(TOKEN), b"").await;
    assert_eq!(
        (status, body.contains("promotion")),
        (409, true),
        "too late to abort: {body}"
    );
    let history = json(api, "/api/v1/canaries/web/history?limit=2").await;
    assert_eq!(history["entries"].as_array().unwrap().len(), 2);
    let next = history["next"].as_i64().unwrap();
    let rest = json(
        api,
        &format!("/api/v1/canaries/web/history?after={next}&limit=1000"),
    )
    .await;
    assert!(rest["entries"][0]["id"].as_i64().unwrap() > next);
    let decisions = json(api, "/api/v1/canaries/web/decisions").await;
    assert!(
        decisions["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "decision")
    );
    daemon.shutdown().await;
}

#[tokio::test]
async fn without_a_token_nothing_changes_and_beyond_loopback_reads_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", free_port(), "http://127.0.0.1:9", None, ONE_STEP),
    );
    let daemon = daemon(
        dir.path(),
        vec![file.clone()],
        None,
        Duration::from_secs(60),
    )
    .await;
    let (status, body) = request(
        daemon.api_addr(),
        "POST",
        "/api/v1/canaries/web/abort",
        Some("x"),
        b"",
    )
    .await;
    assert_eq!(status, 401);
    assert!(body.contains("no API token"), "{body}");
    daemon.shutdown().await;

    let open = serin_daemon::Daemon::start(
        serin_daemon::Config {
            files: vec![file],
            api: SocketAddr::from(([0, 0, 0, 0], 0)),
            state_dir: dir.path().join("state"),
            token: Some(TOKEN.into()),
            poll: Duration::from_secs(60),
        },
        Vec::new(),
    )
    .await
    .unwrap();
    let api = SocketAddr::from(([127, 0, 0, 1], open.api_addr().port()));
    assert_eq!(
        request(api, "GET", "/api/v1/canaries", None, b"").await.0,
        401
    );
    assert_eq!(
        request(api, "GET", "/api/v1/canaries", Some(TOKEN), b"")
            .await
            .0,
        200
    );
    open.shutdown().await;
}

/// `docs/openapi.yaml` and the code list the same routes, and every route
/// it describes is served (not the fallback, not a wrong method).
#[tokio::test]
async fn openapi_matches_the_routes() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.yaml"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let mut described = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                described.insert((method.clone(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = serin_daemon::api::ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(
        described, served,
        "docs/openapi.yaml and api::ROUTES differ"
    );

    let dir = tempfile::tempdir().unwrap();
    let analysis = format!(
        "{ONE_STEP}    metrics:\n    - name: request-duration\n      thresholdRange: {{max: 500}}\n      compare: {{maxRatio: 1.2}}\n"
    );
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", free_port(), "http://127.0.0.1:9", None, &analysis),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    for (method, path) in &described {
        if path.ends_with("/events") {
            continue; // a stream: checked above
        }
        let path = path.replace("{name}", "web");
        let (status, body) = request(
            daemon.api_addr(),
            &method.to_uppercase(),
            &path,
            Some(TOKEN),
            b"{}",
        )
        .await;
        assert_ne!(status, 405, "{method} {path}");
        assert!(!body.contains("no route"), "{method} {path}: {body}");
    }
    // Every field of a canary's JSON is described, down to its conditions
    // and its analysis metrics.
    let schema = &doc["components"]["schemas"]["CanaryStatus"];
    let mut status = json(daemon.api_addr(), "/api/v1/canaries/web").await;
    status["conditions"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "ConfigReloadFailed", "status": "True", "reason": "ReloadRefused", "message": "m", "lastTransitionTime": 1}));
    let described_keys = |schema: &serde_json::Value, value: &serde_json::Value, at: &str| {
        for key in value.as_object().unwrap().keys() {
            assert!(
                schema["properties"].get(key).is_some(),
                "{at}.{key} is not in docs/openapi.yaml"
            );
        }
        for key in schema["required"].as_array().into_iter().flatten() {
            assert!(
                value.get(key.as_str().unwrap()).is_some(),
                "{at}.{key} is required by docs/openapi.yaml but not served"
            );
        }
    };
    described_keys(schema, &status, "canary");
    for condition in status["conditions"].as_array().unwrap() {
        described_keys(
            &schema["properties"]["conditions"]["items"],
            condition,
            "conditions[]",
        );
        let kinds = &schema["properties"]["conditions"]["items"]["properties"]["type"]["enum"];
        assert!(
            kinds.as_array().unwrap().contains(&condition["type"]),
            "{condition}"
        );
    }
    let analysis = &schema["properties"]["analysis"];
    described_keys(analysis, &status["analysis"], "analysis");
    let metrics = status["analysis"]["metrics"].as_array().unwrap();
    assert_eq!(
        metrics[0],
        serde_json::json!({"name": "request-duration", "unit": "ms", "thresholdRange": {"min": null, "max": 500.0}, "compare": {"maxDelta": null, "maxRatio": 1.2}, "power": null})
    );
    for metric in metrics {
        described_keys(
            &analysis["properties"]["metrics"]["items"],
            metric,
            "analysis.metrics[]",
        );
    }
    daemon.shutdown().await;
}

/// The CI examples are well-formed YAML.
#[test]
fn ci_examples_are_yaml() {
    for file in ["github-actions.yml", "gitlab-ci.yml"] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ci/").to_owned() + file;
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert!(doc.is_object(), "{file}");
    }
}

/// Many API clients at once while a rollout runs against a dead canary:
/// every read answers, the dead upstream fails the analysis and the
/// rollout rolls back, and the proxy keeps serving stable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_and_a_dead_canary() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let listen = free_port();
    // Nothing listens on the canary's port.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml(
            "web",
            listen,
            &stable.url(),
            Some((&dead, "v2")),
            "    interval: 1s
    threshold: 2
    stepWeights: [50]
    judge: threshold
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1s
",
        ),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    let api = daemon.api_addr();
    let mut spec = serin_demo::LoadSpec::new(
        format!("http://127.0.0.1:{listen}/").parse().unwrap(),
        Some(100.0),
        Duration::from_secs(20),
    );
    spec.concurrency = 4;
    let traffic = tokio::spawn(serin_demo::load::run(spec));

    let clients: Vec<_> = (0..64)
        .map(|i| {
            tokio::spawn(async move {
                for _ in 0..10 {
                    let path = if i % 2 == 0 {
                        "/api/v1/canaries"
                    } else {
                        "/api/v1/canaries/web/history"
                    };
                    assert_eq!(request(api, "GET", path, None, b"").await.0, 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    eventually(Duration::from_secs(15), "rolled back", async || {
        json(api, "/api/v1/canaries/web").await["phase"] == "Failed"
    })
    .await;
    traffic.abort();
    let web = json(api, "/api/v1/canaries/web").await;
    assert_eq!(web["canaryWeight"], 0, "{web}");
    assert!(web["failedChecks"].as_u64().unwrap() >= 1, "{web}");
    let (status, body) = request(
        SocketAddr::from(([127, 0, 0, 1], listen)),
        "GET",
        "/",
        None,
        b"",
    )
    .await;
    assert_eq!((status, body.contains("stable v1")), (200, true), "{body}");
    daemon.shutdown().await;
}

/// Each revision keeps its own verdict: one superseded by a later start,
/// one aborted, one named by its URL; an unknown one is a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_revision_keeps_its_own_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary v2"))
        .await
        .unwrap();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", free_port(), &stable.url(), None, ONE_STEP),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    let api = daemon.api_addr();
    let start = |revision: Option<&str>| {
        let body = match revision {
            Some(revision) => format!(
                r#"{{"canary": "{}", "revision": "{revision}"}}"#,
                canary.url()
            ),
            None => format!(r#"{{"canary": "{}"}}"#, canary.url()),
        };
        async move {
            let (status, body) = request(
                api,
                "POST",
                "/api/v1/canaries/web/start",
                Some(TOKEN),
                body.as_bytes(),
            )
            .await;
            assert_eq!(status, 202, "{body}");
        }
    };
    start(Some("v2")).await;
    let v2 = json(api, "/api/v1/canaries/web/revisions/v2").await;
    assert_eq!(v2["outcome"], "in-progress", "{v2}");
    start(Some("v3")).await;
    eventually(
        Duration::from_secs(10),
        "v3 at canary weight 50",
        async || json(api, "/api/v1/canaries/web").await["canaryWeight"] == 50,
    )
    .await;
    let (status, body) = request(api, "POST", "/api/v1/canaries/web/abort", Some(TOKEN), b"").await;
    assert_eq!(status, 200, "{body}");

    let v2 = json(api, "/api/v1/canaries/web/revisions/v2").await;
    assert_eq!(v2["outcome"], "superseded", "{v2}");
    assert_eq!(v2["supersededBy"], "v3", "{v2}");
    let v3 = json(api, "/api/v1/canaries/web/revisions/v3").await;
    assert_eq!(v3["outcome"], "rolled-back", "{v3}");
    assert_eq!(v3["phase"], "Failed", "{v3}");
    assert_eq!(v3["canaryWeight"], 50, "rolled back at 50: {v3}");
    assert!(
        v3["reason"]
            .as_str()
            .unwrap()
            .starts_with("aborted by operator"),
        "{v3}"
    );
    let listed = json(api, "/api/v1/canaries/web/revisions").await;
    let names: Vec<&str> = listed["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["v3", "v2"], "newest first: {listed}");

    // A revision named by its URL, escaped as one path segment.
    start(None).await;
    let escaped: String = canary.url().replace(':', "%3A").replace('/', "%2F");
    let by_url = json(api, &format!("/api/v1/canaries/web/revisions/{escaped}")).await;
    assert_eq!(by_url["revision"], canary.url(), "{by_url}");

    let (status, body) = request(api, "GET", "/api/v1/canaries/web/revisions/v9", None, b"").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no revision \\\"v9\\\""), "{body}");
    daemon.shutdown().await;
}
