//! Being a correct reverse proxy: streaming, headers, paths, HTTP/2.

use crate::support::*;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serin_proxy::Routes;
use std::time::Duration;
use tokio::sync::mpsc;

const CHUNK: usize = 64 * 1024;

#[tokio::test]
async fn response_bodies_stream_through() {
    // The upstream sends one chunk, then waits for the test to release the
    // rest: the client must see the first chunk while the rest does not exist.
    let (release_tx, release_rx) = mpsc::channel::<()>(1);
    let release_rx = std::sync::Arc::new(tokio::sync::Mutex::new(release_rx));
    let addr = serve_raw(move |_req| {
        let release_rx = release_rx.clone();
        async move {
            let (tx, rx) = mpsc::channel::<Bytes>(1);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from(vec![b'a'; CHUNK])).await;
                let _ = release_rx.lock().await.recv().await;
                for _ in 0..16 {
                    let _ = tx.send(Bytes::from(vec![b'b'; CHUNK])).await;
                }
            });
            Response::new(ChannelBody(rx).boxed())
        }
    })
    .await;
    let proxy = TestProxy::start(Routes::stable_only(must(format!("http://{addr}").parse()))).await;
    let response = must(client().get(proxy.url("/big")).await);
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0usize;
    // Before release: at least the first chunk arrives.
    while received < CHUNK {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap_or_else(|_| panic!("first chunk not streamed (got {received} bytes)"));
        let frame = must(frame.unwrap_or_else(|| panic!("body ended early")));
        if let Some(data) = frame.data_ref() {
            assert!(data.iter().all(|b| *b == b'a'));
            received += data.len();
        }
    }
    must(release_tx.send(()).await);
    let rest = must(body.collect().await).to_bytes();
    assert_eq!(received + rest.len(), 17 * CHUNK);
}

#[tokio::test]
async fn request_bodies_stream_through() {
    // The upstream reports the first chunk it reads before the client has
    // sent the last one.
    let (first_tx, mut first_rx) = mpsc::channel::<usize>(1);
    let addr = serve_raw(move |req: Request<hyper::body::Incoming>| {
        let first_tx = first_tx.clone();
        async move {
            let mut body = req.into_body();
            let mut total = 0;
            let mut told = false;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    total += d.len();
                    if !told {
                        let _ = first_tx.send(d.len()).await;
                        told = true;
                    }
                }
            }
            Response::new(full(total.to_string()))
        }
    })
    .await;
    let proxy = TestProxy::start(Routes::stable_only(must(format!("http://{addr}").parse()))).await;
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let req = must(Request::post(proxy.url("/upload")).body(ChannelBody(rx).boxed()));
    let c = client();
    let response = tokio::spawn(async move { c.request(req).await });
    must(tx.send(Bytes::from(vec![1u8; CHUNK])).await);
    let first = tokio::time::timeout(Duration::from_secs(5), first_rx.recv())
        .await
        .unwrap_or_else(|_| panic!("upstream saw nothing before the body ended"));
    assert!(first.is_some_and(|n| n > 0));
    for _ in 0..8 {
        must(tx.send(Bytes::from(vec![2u8; CHUNK])).await);
    }
    drop(tx);
    let response = must(must(response.await));
    let body = must(response.into_body().collect().await).to_bytes();
    assert_eq!(body, (9 * CHUNK).to_string());
}

#[tokio::test]
async fn hop_by_hop_headers_stay_on_their_hop() {
    let upstream = backend(|_| async {
        let mut r = Response::new(full("ok"));
        let h = r.headers_mut();
        h.insert(
            "connection",
            http::HeaderValue::from_static("x-upstream-secret"),
        );
        h.insert("x-upstream-secret", http::HeaderValue::from_static("1"));
        h.insert("keep-alive", http::HeaderValue::from_static("timeout=5"));
        h.insert(
            "proxy-authenticate",
            http::HeaderValue::from_static("Basic"),
        );
        h.insert("x-app", http::HeaderValue::from_static("kept"));
        r
    })
    .await;
    let proxy = TestProxy::start(Routes::stable_only(upstream.uri())).await;
    let (status, headers, _) = get(
        &client(),
        proxy.url("/"),
        &[
            ("connection", "x-client-secret"),
            ("x-client-secret", "1"),
            ("proxy-authorization", "Basic abc"),
            ("te", "gzip, deflate"),
            ("upgrade", "websocket"),
            ("x-app", "kept"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("x-upstream-secret").is_none());
    assert!(headers.get("proxy-authenticate").is_none());
    assert!(headers.get("keep-alive").is_none());
    assert_eq!(headers["x-app"], "kept");
    let seen = upstream.seen();
    let h = &seen[0].headers;
    for gone in ["x-client-secret", "proxy-authorization", "te", "upgrade"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(h["x-app"], "kept");
}

#[tokio::test]
async fn forwarded_headers_and_paths() {
    let upstream = named("stable").await;
    let base: http::Uri = must(format!("http://{}/app/", upstream.addr).parse());
    let proxy = TestProxy::start(Routes::stable_only(base)).await;
    let c = client();
    let (status, _, _) = get(
        &c,
        proxy.url("/cart/items?id=7&x"),
        &[("host", "shop.example")],
    )
    .await;
    assert_eq!(status, 200);
    let seen = upstream.seen();
    let s = &seen[0];
    assert_eq!(s.uri.path(), "/app/cart/items");
    assert_eq!(s.uri.query(), Some("id=7&x"));
    assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(s.headers["x-forwarded-proto"], "http");
    assert_eq!(s.headers["x-forwarded-host"], "shop.example");
    assert_eq!(s.headers["host"], upstream.addr.to_string().as_str());
}

#[tokio::test]
async fn http2_prior_knowledge_clients_are_served() {
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
    for _ in 0..3 {
        let req = must(Request::get(proxy.url("/h2")).body(full(Bytes::new())));
        let response = must(sender.send_request(req).await);
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = must(response.into_body().collect().await).to_bytes();
        assert_eq!(body, "stable");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].uri.path(), "/h2");
    assert_eq!(
        seen[0].headers["x-forwarded-host"],
        proxy.addr.to_string().as_str()
    );
}

/// What a client claims in `X-Forwarded-*`.
const CLAIMS: [(&str, &str); 5] = [
    ("host", "shop.example"),
    ("x-forwarded-for", "203.0.113.9"),
    ("x-forwarded-for", "198.51.100.7"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "admin.internal"),
];

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_replaced() {
    let upstream = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(upstream.uri())).await;
    let (status, _, _) = get(&client(), proxy.url("/"), &CLAIMS).await;
    assert_eq!(status, 200);
    let seen = upstream.seen();
    let h = &seen[0].headers;
    // Only what serin saw itself: the peer, its own scheme, the Host it got.
    assert_eq!(
        h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
        ["127.0.0.1"]
    );
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert_eq!(h.get_all("x-forwarded-host").iter().count(), 1);
}

#[tokio::test]
async fn forwarded_headers_from_a_trusted_proxy_are_kept() {
    for trusted in [
        &["127.0.0.0/8"][..],
        &["10.0.0.0/8", "127.0.0.1"],
        &["::1", "127.0.0.1/32"],
    ] {
        let upstream = named("stable").await;
        let trusted = trusted.iter().map(|t| must(t.parse())).collect();
        let proxy = TestProxy::start_config(Routes::stable_only(upstream.uri()), |config| {
            config.trusted_proxies = trusted;
        })
        .await;
        let (status, _, _) = get(&client(), proxy.url("/"), &CLAIMS).await;
        assert_eq!(status, 200);
        let seen = upstream.seen();
        let h = &seen[0].headers;
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 198.51.100.7, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "admin.internal");
    }
    // A list that leaves the peer out trusts nothing it says.
    let upstream = named("stable").await;
    let proxy = TestProxy::start_config(Routes::stable_only(upstream.uri()), |config| {
        config.trusted_proxies = [must("10.0.0.0/8".parse())].into_iter().collect();
    })
    .await;
    get(&client(), proxy.url("/"), &CLAIMS).await;
    let seen = upstream.seen();
    assert_eq!(seen[0].headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen[0].headers["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_is_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stable = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(stable.uri())).await;
    let mut stream = must(tokio::net::TcpStream::connect(proxy.addr).await);
    must(
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: front.example\r\n\r\n")
            .await,
    );
    // Done sending: the request is still answered, then the proxy closes.
    must(stream.shutdown().await);
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the proxy did not close after answering");
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("stable"), "{out}");
}
