//! Telling a slow client from a slow upstream: a client that takes its time
//! sending a body is answered 408 and recorded against neither version; an
//! upstream that takes its time answering is a 504 recorded against it; the
//! time spent waiting for one is never charged to the other.
//!
//! Clients are raw TCP connections writing the head, then the body piece by
//! piece; the clock is paused, so the waits cost no real time.

use crate::support::*;
use http::Response;
use serin_proxy::{Limits, Routes};
use std::{net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

/// Timeouts short enough to pass in the tests, the client's longer than the
/// upstream's so a wait charged to the wrong side shows.
fn limits() -> Limits {
    Limits {
        response_header_timeout: Duration::from_secs(2),
        client_body_timeout: Duration::from_secs(10),
        ..Limits::default()
    }
}

/// Opens a connection and sends a POST head announcing `len` body bytes.
async fn post_head(addr: SocketAddr, len: usize) -> TcpStream {
    let mut stream = must(TcpStream::connect(addr).await);
    let head = format!("POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: {len}\r\n\r\n");
    must(stream.write_all(head.as_bytes()).await);
    stream
}

/// Reads until a whole response head has arrived (or the connection ends, or
/// `wait` passes) and returns what came.
async fn read_head(stream: &mut TcpStream, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A backend that reads the whole body and answers with its length.
async fn counting() -> Backend {
    backend(|seen| async move { Response::new(full(seen.body.len().to_string())) }).await
}

#[tokio::test(start_paused = true)]
async fn a_client_slow_to_send_its_body_is_a_408_against_neither_version() {
    let stable = counting().await;
    let canary = counting().await;
    let routes = Routes {
        canary: Some(canary.uri()),
        canary_weight: 100,
        ..Routes::stable_only(stable.uri())
    };
    let proxy = TestProxy::start_with(routes, limits(), None).await;
    let mut stream = post_head(proxy.addr, 100).await;
    must(stream.write_all(b"0123456789").await);
    // Longer than the upstream's timeout, shorter than the client's: the
    // upstream is not blamed for waiting on the client.
    tokio::time::sleep(Duration::from_secs(5)).await;
    must(stream.write_all(b"0123456789").await);
    let stalled = Instant::now();
    // Then the client goes quiet for good.
    let head = read_head(&mut stream, Duration::from_secs(3600)).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head:?}");
    assert!(
        stalled.elapsed() >= Duration::from_secs(10),
        "{:?}",
        stalled.elapsed()
    );
    assert!(
        stalled.elapsed() < Duration::from_secs(60),
        "{:?}",
        stalled.elapsed()
    );

    let totals = proxy.recorder.totals();
    assert_eq!(totals.canary.requests, 0, "{totals:?}");
    assert_eq!(totals.canary.errors, 0, "{totals:?}");
    assert_eq!(totals.stable.requests, 0, "{totals:?}");
    let counters = proxy.handle.counters();
    assert_eq!(counters.client_body_timeouts, 1, "{counters:?}");
    assert_eq!(counters.upstream_timeouts, 0, "{counters:?}");
    assert_eq!(counters.upstream_other_errors, 0, "{counters:?}");
    assert!(
        canary.seen().is_empty(),
        "the canary never saw a whole request"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upstream_slow_to_answer_a_slowly_sent_body_is_a_504_against_it() {
    let stable = counting().await;
    let canary = backend(|_| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Response::new(full("late"))
    })
    .await;
    let routes = Routes {
        canary: Some(canary.uri()),
        canary_weight: 100,
        ..Routes::stable_only(stable.uri())
    };
    let proxy = TestProxy::start_with(routes, limits(), None).await;
    let mut stream = post_head(proxy.addr, 20).await;
    must(stream.write_all(b"0123456789").await);
    // The client's pause is longer than the upstream's timeout: not charged.
    tokio::time::sleep(Duration::from_secs(5)).await;
    must(stream.write_all(b"0123456789").await);
    let sent = Instant::now();
    let head = read_head(&mut stream, Duration::from_secs(3600)).await;
    assert!(head.starts_with("HTTP/1.1 504"), "{head:?}");
    // The upstream's clock starts once the body is sent.
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "{:?}",
        sent.elapsed()
    );

    let totals = proxy.recorder.totals();
    assert_eq!(totals.canary.requests, 1, "{totals:?}");
    assert_eq!(totals.canary.errors, 1, "{totals:?}");
    assert_eq!(totals.stable.requests, 0, "{totals:?}");
    let counters = proxy.handle.counters();
    assert_eq!(counters.upstream_timeouts, 1, "{counters:?}");
    assert_eq!(counters.client_body_timeouts, 0, "{counters:?}");
    let seen = canary.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.as_ref(), b"01234567890123456789");
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_large_upload_passes() {
    const CHUNK: usize = 16 * 1024;
    const CHUNKS: usize = 64;
    let stable = counting().await;
    let proxy = TestProxy::start_with(Routes::stable_only(stable.uri()), limits(), None).await;
    let mut stream = post_head(proxy.addr, CHUNK * CHUNKS).await;
    let start = Instant::now();
    let chunk = vec![b'x'; CHUNK];
    for _ in 0..CHUNKS {
        must(stream.write_all(&chunk).await);
        // Each pause is under the client's timeout but over the upstream's;
        // the whole upload takes far longer than either.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let head = read_head(&mut stream, Duration::from_secs(3600)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    assert!(
        start.elapsed() >= Duration::from_secs(300),
        "{:?}",
        start.elapsed()
    );

    let seen = stable.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.len(), CHUNK * CHUNKS);
    let totals = proxy.recorder.totals();
    assert_eq!(totals.stable.requests, 1, "{totals:?}");
    assert_eq!(totals.stable.errors, 0, "{totals:?}");
    let counters = proxy.handle.counters();
    assert_eq!(counters.client_body_timeouts, 0, "{counters:?}");
    assert_eq!(counters.upstream_timeouts, 0, "{counters:?}");
}

#[tokio::test(start_paused = true)]
async fn a_body_buffered_for_mirroring_must_arrive_within_the_client_timeout() {
    let stable = counting().await;
    let canary = counting().await;
    let routes = Routes {
        canary: Some(canary.uri()),
        mirror: Some(100),
        ..Routes::stable_only(stable.uri())
    };
    let proxy = TestProxy::start_with(routes, limits(), None).await;
    let mut stream = post_head(proxy.addr, 100).await;
    must(stream.write_all(b"0123456789").await);
    let stalled = Instant::now();
    let head = read_head(&mut stream, Duration::from_secs(3600)).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head:?}");
    assert!(
        stalled.elapsed() >= Duration::from_secs(10),
        "{:?}",
        stalled.elapsed()
    );
    assert!(
        stalled.elapsed() < Duration::from_secs(60),
        "{:?}",
        stalled.elapsed()
    );

    let totals = proxy.recorder.totals();
    assert_eq!(totals.stable.requests, 0, "{totals:?}");
    assert_eq!(totals.canary.requests, 0, "{totals:?}");
    let counters = proxy.handle.counters();
    assert_eq!(counters.client_body_timeouts, 1, "{counters:?}");
    assert_eq!(counters.mirrors_sent, 0, "{counters:?}");
    assert!(stable.seen().is_empty());
    assert!(canary.seen().is_empty());
}

/// A client that opens an HTTP/2 connection and then says nothing, not even
/// the acknowledgement the graceful close waits for, is closed all the same
/// soon after the idle timeout: a silent peer cannot hold a connection (and
/// its slot under `max_connections`) until the proxy stops.
#[tokio::test(start_paused = true)]
async fn a_silent_http2_client_is_closed_after_the_idle_timeout() {
    let stable = counting().await;
    let idle = Duration::from_secs(5);
    let limits = Limits {
        idle_timeout: idle,
        ..limits()
    };
    let mut proxy = TestProxy::start_with(Routes::stable_only(stable.uri()), limits, None).await;
    let mut stream = must(TcpStream::connect(proxy.addr).await);
    must(stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await);
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(3600), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => {}
            Err(_) => break false,
        }
    };
    assert!(closed, "still open after an hour");
    assert!(
        started.elapsed() <= idle * 2 + Duration::from_secs(1),
        "closed after {:?}",
        started.elapsed()
    );
    proxy.shutdown().await;
}
