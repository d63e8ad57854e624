//! The access log and graceful shutdown.

use crate::support::*;
use http::Response;
use serin_proxy::{Limits, Routes};
use std::time::Duration;

#[tokio::test]
async fn access_log_lines_follow_the_request_log_format() {
    let stable = named("stable").await;
    let routes = Routes {
        canary: Some(dead_uri().await),
        canary_weight: 0,
        ..Routes::stable_only(stable.uri())
    };
    let dir = must(tempfile::tempdir());
    let path = dir.path().join("requests.jsonl");
    let mut proxy = TestProxy::start_with(routes, Limits::default(), Some(path.clone())).await;
    let c = client();
    for _ in 0..3 {
        get(&c, proxy.url("/"), &[]).await;
    }
    proxy.set(|r| {
        r.canary_weight = 100;
        r.revision = Some("v2".into());
    });
    get(&c, proxy.url("/"), &[]).await;
    drop(c);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    proxy.shutdown().await;

    let text = must(std::fs::read_to_string(&path));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| must(serde_json::from_str(l)))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (index, line) in lines.iter().enumerate() {
        let obj = line
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        // The contract's four fields, the weight, and the revision once set.
        let mut want = vec!["latency_ms", "status", "ts", "version", "weight"];
        if index == 3 {
            want.insert(1, "revision");
        }
        assert_eq!(keys, want);
        let ts = line["ts"].as_f64().unwrap_or_default();
        assert!(
            (before - 60.0..=before + 1.0).contains(&ts),
            "{ts} vs {before}"
        );
        assert!(line["latency_ms"].as_f64().is_some_and(|l| l >= 0.0));
    }
    assert_eq!(lines[0]["version"], "stable");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["weight"], 0);
    assert_eq!(lines[3]["version"], "canary");
    assert_eq!(lines[3]["status"], 502);
    assert_eq!(lines[3]["weight"], 100);
    assert_eq!(lines[3]["revision"], "v2");
    assert_eq!(proxy.handle.counters().log_lines_dropped, 0);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let slow = backend(|_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Response::new(full("done"))
    })
    .await;
    let mut proxy = TestProxy::start(Routes::stable_only(slow.uri())).await;
    let url = proxy.url("/");
    let request = tokio::spawn(async move { get(&client(), url, &[]).await });
    // Let the request reach the upstream, then shut down under it.
    for _ in 0..100 {
        if !slow.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.shutdown().await;
    let (status, _, body) = must(request.await);
    assert_eq!((status.as_u16(), body.as_str()), (200, "done"));
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(proxy.addr).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_after_the_grace_period() {
    let stuck = backend(|_| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Response::new(full("never"))
    })
    .await;
    let limits = Limits {
        shutdown_grace: Duration::from_secs(5),
        response_header_timeout: Duration::from_secs(7200),
        ..Limits::default()
    };
    let mut proxy = TestProxy::start_with(Routes::stable_only(stuck.uri()), limits, None).await;
    let url = proxy.url("/");
    let _request = tokio::spawn(async move { client().get(url).await });
    for _ in 0..100 {
        if !stuck.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let start = tokio::time::Instant::now();
    proxy.shutdown().await;
    assert!(start.elapsed() >= Duration::from_secs(5));
    assert!(start.elapsed() < Duration::from_secs(60));
}
