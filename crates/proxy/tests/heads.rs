//! Request heads the proxy refuses, and those it must not: `Host` as RFC 9112
//! §3.2 wants it, and header counts within the head size limit.

use crate::support::*;
use serin_proxy::{Limits, Routes};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn http11_requests_need_exactly_one_valid_host() {
    let upstream = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(upstream.uri())).await;
    for bad in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a\r\nhost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: user@shop.example\r\n\r\n",
        // Two Host lines are refused whatever the version.
        b"GET / HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n",
    ] {
        let answer = raw_exchange(proxy.addr, bad, WAIT).await;
        // hyper answers in the request's own version.
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.0 400"),
            "{:?} -> {answer:.80}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
    assert_eq!(proxy.recorder.totals().stable.requests, 0);
    assert_eq!(proxy.handle.counters().rejected_invalid_host, 6);

    for good in [
        // HTTP/1.0 predates Host.
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: shop.example:8080\r\nconnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: [::1]:8080\r\nconnection: close\r\n\r\n",
        // An empty Host is what a client sends for a target without one.
        b"GET / HTTP/1.1\r\nhost:\r\nconnection: close\r\n\r\n",
    ] {
        let answer = raw_exchange(proxy.addr, good, WAIT).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "{:?} -> {answer:.80}",
            String::from_utf8_lossy(good)
        );
    }
    assert_eq!(upstream.seen().len(), 4);
    assert_eq!(proxy.handle.counters().rejected_invalid_host, 6);
}

/// A request head with `n` small headers of about 24 bytes each.
fn many_headers(n: usize) -> String {
    let mut head = String::from("GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n");
    for i in 0..n {
        head.push_str(&format!("x-header-{i:04}: value-{i:04}\r\n"));
    }
    head.push_str("\r\n");
    head
}

#[tokio::test]
async fn many_small_headers_within_the_head_limit_pass() {
    let upstream = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(upstream.uri())).await;
    for n in [100, 150, 1000] {
        let head = many_headers(n);
        assert!(head.len() < 32 * 1024, "{}", head.len());
        let answer = raw_exchange(proxy.addr, head.as_bytes(), WAIT).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{n} headers, {} bytes -> {answer:.80}",
            head.len()
        );
        let seen = upstream.seen();
        let last = seen.last().map(|s| s.headers.len()).unwrap_or_default();
        assert!(last >= n, "{n} headers sent, {last} arrived");
    }
    assert_eq!(proxy.handle.counters().rejected_header_too_large, 0);
}

#[tokio::test]
async fn heads_hyper_refuses_itself_are_counted() {
    let upstream = named("stable").await;
    let limits = Limits {
        max_header_bytes: 16 * 1024,
        ..Limits::default()
    };
    let proxy = TestProxy::start_with(Routes::stable_only(upstream.uri()), limits, None).await;
    // More header lines than the head limit has room for at 32 bytes each.
    let mut head = String::from("GET / HTTP/1.1\r\nhost: a\r\n");
    for i in 0..1500 {
        head.push_str(&format!("h{i}:1\r\n"));
    }
    head.push_str("\r\n");
    assert!(head.len() < 16 * 1024);
    let answer = raw_exchange(proxy.addr, head.as_bytes(), WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    // Larger than hyper will buffer.
    let huge = format!(
        "GET / HTTP/1.1\r\nhost: a\r\nx-huge: {}\r\n\r\n",
        "y".repeat(200 * 1024)
    );
    let answer = raw_exchange(proxy.addr, huge.as_bytes(), WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    // Over the limit, under hyper's buffer: the proxy's own check.
    let big = format!(
        "GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\nx-big: {}\r\n\r\n",
        "z".repeat(20 * 1024)
    );
    let answer = raw_exchange(proxy.addr, big.as_bytes(), WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    assert!(
        eventually(|| proxy.handle.counters().rejected_header_too_large == 3).await,
        "{:?}",
        proxy.handle.counters()
    );
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn an_upstream_answer_with_many_headers_passes() {
    // 200 short lines: more than hyper's default count, within the 4 KiB
    // the proxy reads an upstream's head into (nginx's proxy_buffer_size).
    let upstream = backend(|_| async {
        let mut r = http::Response::new(full("ok"));
        for i in 0..200 {
            let name = must(http::HeaderName::from_bytes(format!("a{i}").as_bytes()));
            r.headers_mut()
                .insert(name, http::HeaderValue::from_static("v"));
        }
        r
    })
    .await;
    let proxy = TestProxy::start(Routes::stable_only(upstream.uri())).await;
    let answer = raw_exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.80}");
    assert!(answer.contains("a199: v"), "{answer:.80}");
    assert_eq!(proxy.recorder.totals().stable.errors, 0);
}

#[tokio::test]
async fn http2_requests_name_their_host_in_authority() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let upstream = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(upstream.uri())).await;
    let stream = must(tokio::net::TcpStream::connect(proxy.addr).await);
    let (mut sender, conn) = must(
        hyper::client::conn::http2::handshake::<_, _, TestBody>(
            TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await,
    );
    tokio::spawn(conn);
    let authority = proxy.addr.to_string();
    // The refusal leaves the connection serving.
    for (host, expected) in [
        (Some("other.example"), 400),
        (None, 200),
        (Some(authority.as_str()), 200),
    ] {
        let mut req = http::Request::get(proxy.url("/"));
        if let Some(host) = host {
            req = req.header("host", host);
        }
        let response = must(
            sender
                .send_request(must(req.body(full(bytes::Bytes::new()))))
                .await,
        );
        assert_eq!(response.status(), expected, "host {host:?}");
    }
    assert_eq!(upstream.seen().len(), 2);
    assert_eq!(proxy.handle.counters().rejected_invalid_host, 1);
}
