//! What users get when something fails, and what it counts as.

use crate::support::*;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use serin_proxy::{Limits, Routes};
use std::time::Duration;
use tokio::sync::mpsc;

#[tokio::test]
async fn dead_upstream_is_a_502_counted_against_its_version() {
    let stable = named("stable").await;
    let routes = Routes {
        canary: Some(dead_uri().await),
        canary_weight: 100,
        ..Routes::stable_only(stable.uri())
    };
    let proxy = TestProxy::start(routes).await;
    let (status, _, _) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!(status, 502);
    let totals = proxy.recorder.totals();
    assert_eq!(totals.canary.requests, 1);
    assert_eq!(totals.canary.errors, 1);
    assert_eq!(totals.stable.requests, 0);
    assert_eq!(proxy.handle.counters().upstream_connect_errors, 1);
}

#[tokio::test(start_paused = true)]
async fn slow_upstream_headers_are_a_504() {
    let slow = backend(|_| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Response::new(full("late"))
    })
    .await;
    let limits = Limits {
        response_header_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let proxy = TestProxy::start_with(Routes::stable_only(slow.uri()), limits, None).await;
    let start = tokio::time::Instant::now();
    let (status, _, _) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!(status, 504);
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert!(start.elapsed() < Duration::from_secs(3600));
    let totals = proxy.recorder.totals();
    assert_eq!(totals.stable.errors, 1);
    assert_eq!(proxy.handle.counters().upstream_timeouts, 1);
}

#[tokio::test]
async fn huge_headers_are_a_431() {
    let upstream = named("stable").await;
    let limits = Limits {
        max_header_bytes: 16 * 1024,
        ..Limits::default()
    };
    let proxy = TestProxy::start_with(Routes::stable_only(upstream.uri()), limits, None).await;
    let c = client();
    // Over the configured limit, under hyper's buffer: the proxy's own check.
    let big = "x".repeat(20 * 1024);
    let (status, _, _) = get(&c, proxy.url("/"), &[("x-big", &big)]).await;
    assert_eq!(status, 431);
    // Far over: hyper refuses to buffer it and answers 431 itself.
    let huge = format!(
        "GET / HTTP/1.1\r\nhost: a\r\nx-huge: {}\r\n\r\n",
        "y".repeat(200 * 1024)
    );
    let answer = raw_exchange(proxy.addr, huge.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    assert!(upstream.seen().is_empty());
    assert_eq!(proxy.recorder.totals().stable.requests, 0);
    let (status, _, _) = get(&c, proxy.url("/"), &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bodies_over_the_limit_are_a_413() {
    let upstream = named("stable").await;
    let limits = Limits {
        max_request_body_bytes: Some(1000),
        ..Limits::default()
    };
    let proxy = TestProxy::start_with(Routes::stable_only(upstream.uri()), limits, None).await;
    let c = client();
    // Declared length: refused before the upstream is contacted.
    let req = must(Request::post(proxy.url("/")).body(full(vec![0u8; 2000])));
    assert_eq!(must(c.request(req).await).status(), 413);
    assert!(upstream.seen().is_empty());
    // Within the limit: forwarded.
    let req = must(Request::post(proxy.url("/")).body(full(vec![0u8; 500])));
    assert_eq!(must(c.request(req).await).status(), 200);
    // Unknown length (chunked): refused once the limit is crossed.
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let req = must(Request::post(proxy.url("/")).body(ChannelBody(rx).boxed()));
    let pending = tokio::spawn({
        let c = c.clone();
        async move { c.request(req).await }
    });
    for _ in 0..3 {
        if tx.send(Bytes::from(vec![1u8; 600])).await.is_err() {
            break;
        }
    }
    drop(tx);
    let response = must(must(pending.await));
    assert_eq!(response.status(), 413);
    let counters = proxy.handle.counters();
    assert_eq!(counters.rejected_body_too_large, 2, "{counters:?}");
    // Client errors are not the version's: only the one forwarded request counts.
    assert_eq!(proxy.recorder.totals().stable.requests, 1);
}

#[tokio::test]
async fn malformed_requests_are_a_400_and_the_proxy_keeps_serving() {
    let upstream = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(upstream.uri())).await;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: nope\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ] {
        let answer = raw_exchange(proxy.addr, garbage, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{garbage:?} -> {answer:.80}"
        );
    }
    let (status, _, body) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "stable"));
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_closed() {
    let upstream = named("stable").await;
    let limits = Limits {
        idle_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let proxy = TestProxy::start_with(Routes::stable_only(upstream.uri()), limits, None).await;
    let stream = must(tokio::net::TcpStream::connect(proxy.addr).await);
    let (mut sender, conn) = must(
        hyper::client::conn::http1::handshake::<_, TestBody>(hyper_util::rt::TokioIo::new(stream))
            .await,
    );
    let conn = tokio::spawn(conn);
    let req = must(
        Request::get("/")
            .header("host", "a")
            .body(full(Bytes::new())),
    );
    let response = must(sender.send_request(req).await);
    must(response.into_body().collect().await);
    assert_eq!(proxy.handle.counters().active_connections, 1);
    // After the idle timeout the proxy closes the connection.
    let ended = tokio::time::timeout(Duration::from_secs(30), conn).await;
    assert!(
        ended.is_ok(),
        "connection still open after the idle timeout"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(proxy.handle.counters().active_connections, 0);
}

#[tokio::test]
async fn a_client_abandoning_its_upload_is_not_the_versions_error() {
    use tokio::io::AsyncWriteExt;
    let upstream = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(upstream.uri())).await;
    let mut stream = must(tokio::net::TcpStream::connect(proxy.addr).await);
    must(
        stream
            .write_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\n0123456789")
            .await,
    );
    // Give the proxy time to start forwarding, then hang up mid-body.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while proxy.handle.counters().active_connections > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let totals = proxy.recorder.totals();
    assert_eq!(totals.stable.errors, 0, "{totals:?}");
    assert_eq!(proxy.handle.counters().upstream_other_errors, 0);
}
