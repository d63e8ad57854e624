use crate::support::{payload, start};
use serde_json::json;
use serin_demo::{Backend, Behaviour};
use serin_loadtester::Config;
use std::time::Duration;

#[tokio::test]
async fn gates_are_closed_until_opened_per_canary() {
    let tester = start(Config::default()).await;
    let web = payload(json!({}));
    let mut api = web.clone();
    api["name"] = json!("api");
    assert_eq!(tester.post("/gate/check", &web).await.0, 403);
    assert_eq!(tester.post("/gate/open", &web).await.0, 202);
    assert_eq!(
        tester.post("/gate/check", &web).await,
        (200, "Approved".into())
    );
    assert_eq!(tester.post("/gate/check", &api).await.0, 403, "per canary");
    assert_eq!(
        tester.post("/rollback/check", &web).await.0,
        403,
        "per kind"
    );
    assert_eq!(tester.post("/rollback/open", &web).await.0, 202);
    assert_eq!(tester.post("/rollback/check", &web).await.0, 200);
    assert_eq!(tester.post("/rollback/close", &web).await.0, 202);
    assert_eq!(tester.post("/rollback/check", &web).await.0, 403);
    assert_eq!(tester.post("/gate/close", &web).await.0, 202);
    assert_eq!(tester.post("/gate/check", &web).await.0, 403);
    assert_eq!(tester.post("/gate/approve", &web).await.0, 200);
    assert_eq!(tester.post("/gate/halt", &web).await.0, 403);
}

#[tokio::test]
async fn bad_payloads_are_refused_with_reasons() {
    let tester = start(Config {
        max_body_bytes: 1024,
        ..Config::default()
    })
    .await;
    let (status, body) = tester.send("/", "not json".into()).await;
    assert_eq!(status, 400);
    assert!(body.starts_with("payload:"), "{body}");
    let (status, body) = tester.post("/", &payload(json!({}))).await;
    assert_eq!(
        (status, body.trim()),
        (400, "metadata not found in payload")
    );
    let big = payload(json!({"cmd": "x".repeat(4096)}));
    assert_eq!(tester.post("/", &big).await.0, 413);
    let (status, body) = tester
        .post("/", &payload(json!({"type": "helm", "cmd": "test run"})))
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("\"helm\" is not supported"), "{body}");
}

#[tokio::test]
async fn smuggled_commands_are_refused_and_nothing_runs() {
    let tester = start(Config::default()).await;
    let marker = std::env::temp_dir().join(format!("serin-smuggled-{}", std::process::id()));
    let target = marker.display().to_string();
    for (cmd, says) in [
        (format!("hey http://127.0.0.1:1/; touch {target}"), "`;`"),
        (format!("hey http://127.0.0.1:1/ && touch {target}"), "`&`"),
        (format!("hey http://127.0.0.1:1/ | touch {target}"), "pipe"),
        (format!("hey $(touch {target}) http://127.0.0.1:1/"), "`$`"),
        (
            format!("hey `touch {target}` http://127.0.0.1:1/"),
            "backticks",
        ),
        (format!("hey http://127.0.0.1:1/ > {target}"), "redirection"),
        ("/usr/bin/hey http://127.0.0.1:1/".to_owned(), "not a path"),
        (format!("touch {target}"), "not allowed"),
        (format!("bash -c 'touch {target}'"), "shell or interpreter"),
        (
            "hey -D /etc/passwd -m POST http://127.0.0.1:1/".to_owned(),
            "local file",
        ),
    ] {
        let (status, body) = tester.post("/", &payload(json!({"cmd": cmd}))).await;
        assert_eq!(status, 400, "{cmd}: {body}");
        assert!(body.contains(says), "{cmd}: {body}");
    }
    let (status, body) = tester
        .post(
            "/",
            &payload(json!({"type": "bash", "cmd": format!("touch {target}")})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("--allow-shell"), "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!marker.exists(), "a refused command ran");
}

#[tokio::test]
async fn commands_run_in_an_empty_directory_of_their_own() {
    let tester = start(Config {
        allow_shell: true,
        ..Config::default()
    })
    .await;
    let (status, body) = tester
        .post(
            "/",
            &payload(
                json!({"type": "bash", "cmd": "pwd; ls -A | wc -l", "returnCmdOutput": "true"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let output = answer["output"].as_str().unwrap();
    let mut lines = output.lines();
    let dir = lines.next().unwrap();
    assert_ne!(
        std::path::Path::new(dir),
        std::env::current_dir().unwrap(),
        "not the loadtester's own directory"
    );
    assert!(dir.contains("serin-loadtest-"), "{output}");
    assert_eq!(lines.next().map(str::trim), Some("0"), "empty: {output}");
    // The directory goes with the run.
    assert!(!std::path::Path::new(dir).exists());
}

#[tokio::test]
async fn bash_runs_only_when_the_operator_allows_shells() {
    let tester = start(Config {
        allow_shell: true,
        ..Config::default()
    })
    .await;
    let (status, body) = tester
        .post(
            "/",
            &payload(
                json!({"type": "bash", "cmd": "echo one; echo two", "returnCmdOutput": "true"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["output"], "one\ntwo\n");
    let (status, _) = tester
        .post("/", &payload(json!({"type": "bash", "cmd": "exit 3"})))
        .await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn hey_runs_as_an_argument_vector_and_reports_results() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap(), Behaviour::healthy("app"))
        .await
        .unwrap();
    let tester = start(Config::default()).await;
    let cmd = format!("hey -n 200 -c 4 -H 'x-canary: insider' {}/", backend.url());
    let (status, body) = tester
        .post(
            "/",
            &payload(json!({"cmd": cmd, "blocking": "true", "logCmdOutput": "true"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["exitCode"], 0);
    assert_eq!(answer["results"]["requests"], 200);
    assert_eq!(answer["results"]["errors"], 0);
    assert!(answer["results"]["p99Ms"].as_f64().unwrap() > 0.0);
    // As flagger-loadtester: in the background by default, answered 202.
    let (status, _) = tester
        .post(
            "/",
            &payload(json!({"cmd": format!("hey -n 10 -c 1 {}/", backend.url())})),
        )
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn runs_are_bounded_in_time_and_number() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap(), Behaviour::healthy("app"))
        .await
        .unwrap();
    let tester = start(Config {
        max_concurrent: 1,
        max_duration: Duration::from_millis(500),
        ..Config::default()
    })
    .await;
    let long = payload(json!({"cmd": format!("hey -z 30s -q 5 -c 1 {}/", backend.url())}));
    assert_eq!(tester.post("/", &long).await.0, 202);
    // The same canary and command again: already running, not started twice.
    assert_eq!(tester.post("/", &long).await.0, 202);
    // Another run while the only slot is taken.
    let other =
        payload(json!({"cmd": format!("hey -n 5 -c 1 {}/", backend.url()), "blocking": "true"}));
    let (status, body) = tester.post("/", &other).await;
    assert_eq!(status, 503, "{body}");
    // The long run is killed at the limit, which frees the slot.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(tester.post("/", &other).await.0, 200);
}

#[tokio::test]
async fn the_built_in_load_generator_needs_nothing_installed() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap(), Behaviour::healthy("app"))
        .await
        .unwrap();
    let tester = start(Config::default()).await;
    let (status, body) = tester
        .post(
            "/",
            &payload(json!({
                "type": "load", "url": format!("{}/", backend.url()), "rate": 100,
                "duration": "500ms", "concurrency": 2, "headers": "x-canary: insider",
                "blocking": "true",
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let requests = answer["results"]["requests"].as_u64().unwrap();
    assert!(
        (30..=60).contains(&requests),
        "{requests} requests at 100/s for 0.5s"
    );
    assert_eq!(answer["results"]["errors"], 0);
    let (status, body) = tester
        .post(
            "/",
            &payload(json!({"type": "load", "url": "ftp://x/", "blocking": "true"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("http://"), "{body}");
    let (status, body) = tester
        .post(
            "/",
            &payload(json!({"type": "load", "url": "http://x/", "duration": "2h"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("metadata.duration"), "{body}");
}

#[tokio::test]
async fn a_payload_trickled_too_slowly_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tester = start(Config {
        body_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(tester.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"na")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "still waiting for the body: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}
