//! The API against hostile or sloppy clients: any spelling of the Bearer
//! scheme, refusals that say what was wrong, and JSON for every error.

use crate::support::*;
use std::time::Duration;

const ONE_STEP: &str = "    interval: 1h
    threshold: 2
    stepWeights: [50]
";

/// The answer is `{"error": MESSAGE}` with a JSON content type; the message.
fn json_error(status: u16, head: &str, body: &str) -> String {
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{status}: not JSON: {head}\n{body}"
    );
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{status}: {e}: {body}"));
    value["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}: no error field: {body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive_and_refusals_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", free_port(), "http://127.0.0.1:9", None, ONE_STEP),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    let api = daemon.api_addr();
    let pause = "POST /api/v1/canaries/web/pause HTTP/1.1";
    // Accepted in any case (RFC 9110 §11.1): past the token check, the
    // rollout refuses (nothing to pause).
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let (status, head, body) = tokio::task::spawn_blocking(move || {
            raw(api, &format!("{pause}\r\nAuthorization: {scheme} {TOKEN}"), b"")
        })
        .await
        .unwrap();
        assert_eq!(status, 409, "{scheme}: {head}\n{body}");
    }
    let cases = [
        ("", "no Authorization header"),
        ("\r\nAuthorization: bearer nope", "wrong token"),
        ("\r\nAuthorization: Basic dXNlcjpwYXNz", "not a Bearer token"),
        ("\r\nAuthorization: Bearer", "not a Bearer token"),
        ("\r\nAuthorization: Bearer   ", "not a Bearer token"),
        ("\r\nAuthorization: test-token", "not a Bearer token"),
    ];
    for (header, expected) in cases {
        let (status, head, body) =
            tokio::task::spawn_blocking(move || raw(api, &format!("{pause}{header}"), b""))
                .await
                .unwrap();
        assert_eq!(status, 401, "{header:?}: {body}");
        let message = json_error(status, &head, &body);
        assert!(message.contains(expected), "{header:?}: {message}");
        assert!(!message.contains("dXNlcjpwYXNz"), "echoes no credential");
    }
    daemon.shutdown().await;
}

/// Every error the API can give, from the handlers, from axum's own
/// extractors and from the router, is `{"error": ...}` with a JSON type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", free_port(), "http://127.0.0.1:9", None, ONE_STEP),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    let api = daemon.api_addr();
    let auth = format!("\r\nAuthorization: Bearer {TOKEN}");
    let huge = vec![b'x'; 20_000];
    let cases: Vec<(String, Vec<u8>, u16)> = vec![
        // Unknown route, wrong method.
        ("GET /api/v1/nothing HTTP/1.1".into(), vec![], 404),
        ("DELETE /api/v1/canaries/web HTTP/1.1".into(), vec![], 405),
        (
            format!("GET /api/v1/canaries/web/start HTTP/1.1{auth}"),
            vec![],
            405,
        ),
        // Query strings of the wrong type.
        (
            "GET /api/v1/canaries/web/history?limit=lots HTTP/1.1".into(),
            vec![],
            400,
        ),
        (
            "GET /api/v1/canaries/web/revisions?limit=-1 HTTP/1.1".into(),
            vec![],
            400,
        ),
        (
            "GET /api/v1/events?traffic=maybe HTTP/1.1".into(),
            vec![],
            400,
        ),
        // A path segment that is not UTF-8.
        ("GET /api/v1/canaries/%FF HTTP/1.1".into(), vec![], 400),
        // Bodies: too large, malformed, of the wrong shape.
        (
            format!("POST /api/v1/canaries/web/start HTTP/1.1{auth}"),
            huge,
            413,
        ),
        (
            format!("POST /api/v1/canaries/web/start HTTP/1.1{auth}"),
            b"{\"canary\": ".to_vec(),
            400,
        ),
        (
            format!("POST /api/v1/canaries/web/start HTTP/1.1{auth}\r\nContent-Type: text/plain"),
            b"canary=http://127.0.0.1:9".to_vec(),
            400,
        ),
        // Unknown canary, missing token.
        ("GET /api/v1/canaries/shop HTTP/1.1".into(), vec![], 404),
        (
            "POST /api/v1/canaries/web/abort HTTP/1.1".into(),
            vec![],
            401,
        ),
    ];
    for (head, body, expected) in cases {
        let line = head.lines().next().unwrap_or_default().to_owned();
        let (status, answer_head, answer) =
            tokio::task::spawn_blocking(move || raw(api, &head, &body))
                .await
                .unwrap();
        assert_eq!(status, expected, "{line}: {answer_head}\n{answer}");
        let message = json_error(status, &answer_head, &answer);
        assert!(!message.is_empty(), "{line}");
        if status == 405 {
            assert!(
                answer_head.to_ascii_lowercase().contains("allow: "),
                "{answer_head}"
            );
        }
    }
    daemon.shutdown().await;
}
