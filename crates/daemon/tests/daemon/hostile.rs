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
            raw(
                api,
                &format!("{pause}\r\nAuthorization: {scheme} {TOKEN}"),
                b"",
            )
        })
        .await
        .unwrap();
        assert_eq!(status, 409, "{scheme}: {head}\n{body}");
    }
    let cases = [
        ("", "no Authorization header"),
        ("\r\nAuthorization: bearer nope", "wrong token"),
        (
            "\r\nAuthorization: Basic dXNlcjpwYXNz",
            "not a Bearer token",
        ),
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

/// Whether the server closed `stream`: a read sees the end (or a reset)
/// within `wait`.
fn closed_within(stream: &mut std::net::TcpStream, wait: Duration) -> bool {
    use std::io::Read;
    stream
        .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .unwrap();
    let mut buffer = [0u8; 512];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            // A 503 or a timeout answer before the close: read on.
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// More idle connections than the API's cap: the API closes the ones idle
/// the longest instead of holding them all, and the canary's proxy,
/// `/healthz` and the API itself keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_over_the_cap_starve_nothing() {
    use serin_demo::{Backend, Behaviour};
    let dir = tempfile::tempdir().unwrap();
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let listen = free_port();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", listen, &stable.url(), None, ONE_STEP),
    );
    const CAP: usize = 8;
    let daemon = daemon_with(
        dir.path(),
        vec![file],
        Some(TOKEN),
        Duration::from_secs(60),
        serin_daemon::ApiLimits {
            max_connections: CAP,
            ..serin_daemon::ApiLimits::default()
        },
    )
    .await;
    let api = daemon.api_addr();
    let proxy = std::net::SocketAddr::from(([127, 0, 0, 1], listen));

    // 40 silent connections and 8 that stop half-way through a head.
    let idle = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut held = Vec::new();
        for i in 0..48 {
            let mut stream = std::net::TcpStream::connect(api).unwrap();
            if i % 6 == 0 {
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .unwrap();
            }
            held.push(stream);
        }
        held
    })
    .await
    .unwrap();

    let (status, body) = request(api, "GET", "/healthz", None, b"").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(
        json(api, "/api/v1/canaries").await["canaries"][0]["name"],
        "web"
    );
    let (status, body) = request(proxy, "GET", "/", None, b"").await;
    assert_eq!((status, body.contains("stable v1")), (200, true), "{body}");

    // The API holds at most its cap: the others were closed.
    let closed = tokio::task::spawn_blocking(move || {
        let mut idle = idle;
        idle.iter_mut()
            .map(|stream| closed_within(stream, Duration::from_millis(200)))
            .filter(|closed| *closed)
            .count()
    })
    .await
    .unwrap();
    assert!(
        closed >= 48 - CAP,
        "only {closed} of 48 idle connections were closed (cap {CAP})"
    );
    daemon.shutdown().await;
}

/// A head sent a byte at a time is cut at the header timeout; a keep-alive
/// connection left idle is closed at the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", free_port(), "http://127.0.0.1:9", None, ONE_STEP),
    );
    let daemon = daemon_with(
        dir.path(),
        vec![file],
        Some(TOKEN),
        Duration::from_secs(60),
        serin_daemon::ApiLimits {
            header_read_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_millis(800),
            ..serin_daemon::ApiLimits::default()
        },
    )
    .await;
    let api = daemon.api_addr();

    let dribbled = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let started = std::time::Instant::now();
        let mut stream = std::net::TcpStream::connect(api).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        // One header byte every 50 ms, for at most 5 s.
        for _ in 0..100 {
            if stream.write_all(b"a").is_err()
                || closed_within(&mut stream, Duration::from_millis(50))
            {
                return Some(started.elapsed());
            }
        }
        None
    })
    .await
    .unwrap();
    let dribbled = dribbled.expect("a dribbled head is cut");
    assert!(dribbled < Duration::from_secs(3), "cut after {dribbled:?}");

    let idle = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let started = std::time::Instant::now();
        let mut stream = std::net::TcpStream::connect(api).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut answer = [0u8; 256];
        let read = stream.read(&mut answer).unwrap();
        assert!(
            String::from_utf8_lossy(&answer[..read]).starts_with("HTTP/1.1 200"),
            "answered first"
        );
        closed_within(&mut stream, Duration::from_secs(5)).then(|| started.elapsed())
    })
    .await
    .unwrap();
    let idle = idle.expect("an idle keep-alive connection is closed");
    assert!(idle < Duration::from_secs(3), "closed after {idle:?}");
    daemon.shutdown().await;
}

/// An event stream is a request in flight, however quiet: neither the idle
/// timeout nor a full cap closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_event_stream_is_not_idle() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml("web", free_port(), "http://127.0.0.1:9", None, ONE_STEP),
    );
    let daemon = daemon_with(
        dir.path(),
        vec![file],
        Some(TOKEN),
        Duration::from_secs(60),
        serin_daemon::ApiLimits {
            idle_timeout: Duration::from_millis(300),
            max_connections: 2,
            ..serin_daemon::ApiLimits::default()
        },
    )
    .await;
    let api = daemon.api_addr();
    let quiet = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(api).unwrap();
        stream
            .write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut first = [0u8; 1024];
        let read = stream.read(&mut first).unwrap();
        assert!(
            String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"),
            "the stream begins"
        );
        stream
    })
    .await
    .unwrap();
    // Past the idle timeout, and more connections than the cap come and go.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..4 {
        assert_eq!(request(api, "GET", "/healthz", None, b"").await.0, 200);
    }
    let still_open = tokio::task::spawn_blocking(move || {
        let mut quiet = quiet;
        !closed_within(&mut quiet, Duration::from_millis(300))
    })
    .await
    .unwrap();
    assert!(still_open, "the event stream was closed");
    daemon.shutdown().await;
}
