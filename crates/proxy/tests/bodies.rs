//! Response bodies: a request is recorded once its body has ended, and a
//! body that breaks off or stalls is an error of the version that sent it,
//! whatever status its head announced.

use crate::support::*;
use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use serin_proxy::{Limits, Routes, Version};
use std::time::Duration;
use tokio::sync::mpsc;

/// A head announcing 1000 bytes, then 10 of them.
const CUT_SHORT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789";

/// Routes sending everything to `canary`, with a healthy stable beside it.
async fn all_to(canary: http::Uri) -> (Routes, Backend) {
    let stable = named("stable").await;
    let routes = Routes {
        canary: Some(canary),
        canary_weight: 100,
        ..Routes::stable_only(stable.uri())
    };
    (routes, stable)
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_of_its_version() {
    let (routes, _stable) = all_to(raw_upstream(CUT_SHORT, Duration::ZERO).await).await;
    let dir = must(tempfile::tempdir());
    let path = dir.path().join("requests.jsonl");
    let mut proxy = TestProxy::start_with(routes, Limits::default(), Some(path.clone())).await;

    let response = must(client().get(proxy.url("/")).await);
    // The head went out before the body broke: the client learns it from
    // the body failing, never from a short body that looks whole.
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect()).await;
    assert!(
        matches!(body, Ok(Err(_))),
        "the client must see the body fail: {body:?}"
    );

    assert!(eventually(|| proxy.recorder.totals().canary.requests == 1).await);
    let totals = proxy.recorder.totals();
    assert_eq!(totals.canary.errors, 1, "{totals:?}");
    assert_eq!(totals.stable.requests, 0, "{totals:?}");
    assert_eq!(proxy.recorder.status_codes(Version::Canary), [(502, 1)]);
    assert_eq!(proxy.handle.counters().upstream_body_errors, 1);

    proxy.shutdown().await;
    let text = must(std::fs::read_to_string(&path));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| must(serde_json::from_str(l)))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["version"], "canary");
    assert_eq!(lines[0]["status"], 502);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stalls_is_cut_after_the_body_timeout() {
    let stalls = raw_upstream(CUT_SHORT, Duration::from_secs(3600)).await;
    let (routes, _stable) = all_to(stalls).await;
    let limits = Limits {
        upstream_body_timeout: Duration::from_secs(7),
        ..Limits::default()
    };
    let proxy = TestProxy::start_with(routes, limits, None).await;

    let response = must(client().get(proxy.url("/")).await);
    assert_eq!(response.status(), 200);
    let waiting = tokio::time::Instant::now();
    let body =
        tokio::time::timeout(Duration::from_secs(3000), response.into_body().collect()).await;
    assert!(
        matches!(body, Ok(Err(_))),
        "a stalled body must be cut: {body:?}"
    );
    let waited = waiting.elapsed();
    assert!(
        (Duration::from_secs(7)..Duration::from_secs(60)).contains(&waited),
        "{waited:?}"
    );

    assert!(eventually(|| proxy.recorder.totals().canary.requests == 1).await);
    assert_eq!(proxy.recorder.status_codes(Version::Canary), [(504, 1)]);
    assert_eq!(proxy.recorder.totals().canary.errors, 1);
    assert_eq!(proxy.handle.counters().upstream_body_errors, 1);
}

#[tokio::test(start_paused = true)]
async fn the_body_timeout_defaults_to_a_minute() {
    let stalls = raw_upstream(CUT_SHORT, Duration::from_secs(3600)).await;
    let (routes, _stable) = all_to(stalls).await;
    let proxy = TestProxy::start(routes).await;
    let response = must(client().get(proxy.url("/")).await);
    let waiting = tokio::time::Instant::now();
    let body =
        tokio::time::timeout(Duration::from_secs(3000), response.into_body().collect()).await;
    assert!(matches!(body, Ok(Err(_))), "{body:?}");
    let waited = waiting.elapsed();
    assert!(
        (Duration::from_secs(60)..Duration::from_secs(61)).contains(&waited),
        "{waited:?}"
    );
    assert!(eventually(|| proxy.recorder.totals().canary.errors == 1).await);
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_body_is_never_cut() {
    // A chunk every 5 s for a minute: each wait is under the body timeout,
    // the whole is far over it.
    let addr = serve_raw(|_req| async {
        let (tx, rx) = mpsc::channel::<Bytes>(1);
        tokio::spawn(async move {
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if tx.send(Bytes::from_static(b"tick\n")).await.is_err() {
                    return;
                }
            }
        });
        Response::new(ChannelBody(rx).boxed())
    })
    .await;
    let limits = Limits {
        upstream_body_timeout: Duration::from_secs(7),
        ..Limits::default()
    };
    let proxy = TestProxy::start_with(
        Routes::stable_only(must(format!("http://{addr}").parse())),
        limits,
        None,
    )
    .await;
    let response = must(client().get(proxy.url("/")).await);
    let body = must(response.into_body().collect().await).to_bytes();
    assert_eq!(body.len(), 12 * 5);
    assert!(eventually(|| proxy.recorder.totals().stable.requests == 1).await);
    assert_eq!(proxy.recorder.status_codes(Version::Stable), [(200, 1)]);
    assert_eq!(proxy.handle.counters().upstream_body_errors, 0);
}

#[tokio::test]
async fn a_request_is_recorded_when_its_body_ends() {
    let (release_tx, release_rx) = mpsc::channel::<()>(1);
    let release_rx = std::sync::Arc::new(tokio::sync::Mutex::new(release_rx));
    let addr = serve_raw(move |_req| {
        let release_rx = release_rx.clone();
        async move {
            let (tx, rx) = mpsc::channel::<Bytes>(1);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first ")).await;
                let _ = release_rx.lock().await.recv().await;
                let _ = tx.send(Bytes::from_static(b"last")).await;
            });
            Response::new(ChannelBody(rx).boxed())
        }
    })
    .await;
    let proxy = TestProxy::start(Routes::stable_only(must(format!("http://{addr}").parse()))).await;
    let response = must(client().get(proxy.url("/")).await);
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "{first:?}");
    // The head and a first chunk have passed, the body has not ended: not
    // yet known to have succeeded.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(proxy.recorder.totals().stable.requests, 0);
    must(release_tx.send(()).await);
    let rest = must(body.collect().await).to_bytes();
    assert_eq!(rest, "last");
    assert!(eventually(|| proxy.recorder.totals().stable.requests == 1).await);
    assert_eq!(proxy.recorder.status_codes(Version::Stable), [(200, 1)]);
}

#[tokio::test]
async fn a_client_leaving_mid_body_is_not_the_versions_error() {
    let addr = serve_raw(|_req| async {
        let (tx, rx) = mpsc::channel::<Bytes>(1);
        tokio::spawn(async move {
            // Streams for as long as someone reads, at most 10 s.
            for _ in 0..1000 {
                if tx.send(Bytes::from(vec![b'x'; 1024])).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Response::new(ChannelBody(rx).boxed())
    })
    .await;
    let proxy = TestProxy::start(Routes::stable_only(must(format!("http://{addr}").parse()))).await;
    let response = must(client().get(proxy.url("/")).await);
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "{first:?}");
    drop(body);
    // The request ends once the proxy sees the client gone; it is the
    // upstream's 200, not an error of its.
    assert!(eventually(|| proxy.recorder.totals().stable.requests == 1).await);
    assert_eq!(proxy.recorder.status_codes(Version::Stable), [(200, 1)]);
    assert_eq!(proxy.handle.counters().upstream_body_errors, 0);
}

#[tokio::test]
async fn bodyless_answers_are_recorded_at_once() {
    let upstream = backend(|_| async {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = http::StatusCode::NO_CONTENT;
        r
    })
    .await;
    let proxy = TestProxy::start(Routes::stable_only(upstream.uri())).await;
    let (status, _, _) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!(status, 204);
    assert!(eventually(|| proxy.recorder.totals().stable.requests == 1).await);
    assert_eq!(proxy.recorder.status_codes(Version::Stable), [(204, 1)]);
}
