//! HTTP/2 to clients: by ALPN over TLS and by prior knowledge on plain
//! listeners (told from HTTP/1.1 by the first bytes, however they are cut);
//! many concurrent streams on one connection, `:authority` checked as
//! `Host` is, and trailers (gRPC's status) passed through.

use crate::{pki::Ca, support::*};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use serin_proxy::{Routes, TlsFiles, Version};
use std::{process::Command, time::Duration};

/// One HTTP/2 connection over TLS (ALPN `h2`) to `addr` as `localhost`.
async fn h2_over_tls(ca: &Ca, addr: std::net::SocketAddr) -> SendRequest<Empty<Bytes>> {
    let tcp = must(tokio::net::TcpStream::connect(addr).await);
    let tls = must(
        ca.client(&[b"h2"])
            .connect(must(ServerName::try_from("localhost")), tcp)
            .await,
    );
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) = must(
        hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(tls))
            .await,
    );
    tokio::spawn(conn);
    sender
}

async fn tls_proxy(ca: &Ca, routes: Routes) -> TestProxy {
    let leaf = ca.leaf("front", false);
    let files = TlsFiles {
        cert_file: leaf.cert,
        key_file: leaf.key,
    };
    TestProxy::start_config(routes, move |config| config.tls = Some(files)).await
}

#[tokio::test]
async fn many_concurrent_streams_on_one_tls_connection_are_split_and_counted() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "streams");
    // Slow enough that the streams overlap.
    let slow = |name: &'static str| {
        backend(move |_| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Response::new(full(name))
        })
    };
    let (stable, canary) = (slow("stable").await, slow("canary").await);
    let routes = Routes {
        canary: Some(canary.uri()),
        canary_weight: 30,
        ..Routes::stable_only(stable.uri())
    };
    let proxy = tls_proxy(&ca, routes).await;
    let sender = h2_over_tls(&ca, proxy.addr).await;
    let url = format!("https://localhost:{}/stream", proxy.addr.port());
    // More than the proxy's 256 concurrent streams: the client queues the
    // rest as the proxy's SETTINGS ask.
    const STREAMS: usize = 400;
    let mut tasks = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let mut sender = sender.clone();
        let req = must(Request::get(url.as_str()).body(Empty::<Bytes>::new()));
        tasks.push(tokio::spawn(async move {
            let response = must(sender.send_request(req).await);
            assert_eq!(response.version(), http::Version::HTTP_2);
            let status = response.status();
            let body = must(response.into_body().collect().await).to_bytes();
            (status, body)
        }));
    }
    let (mut to_stable, mut to_canary) = (0u64, 0u64);
    for task in tasks {
        let (status, body) = must(task.await);
        assert_eq!(status, StatusCode::OK);
        match &body[..] {
            b"stable" => to_stable += 1,
            b"canary" => to_canary += 1,
            other => panic!("unexpected body {other:?}"),
        }
    }
    assert_eq!(to_stable + to_canary, STREAMS as u64);
    // A 30% split of 400: far from either end.
    assert!((60..=180).contains(&to_canary), "{to_canary} to the canary");
    assert_eq!(proxy.handle.counters().connections_total, 1);
    assert!(eventually(|| proxy.recorder.totals().stable.requests == to_stable).await);
    assert!(eventually(|| proxy.recorder.totals().canary.requests == to_canary).await);
    assert_eq!(
        proxy.recorder.status_codes(Version::Canary),
        [(200, to_canary)]
    );
}

#[tokio::test]
async fn h2c_with_prior_knowledge_on_a_plain_listener() {
    let stable = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(stable.uri())).await;
    let url = format!("http://127.0.0.1:{}/", proxy.addr.port());
    let out = must(
        tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args([
                    "-sS",
                    "--max-time",
                    "10",
                    "--http2-prior-knowledge",
                    "-w",
                    "\n%{http_version}",
                    &url,
                ])
                .output()
        })
        .await,
    );
    let out = must(out);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stable\n2");
}

/// Sends `pieces` on one plain connection, a pause between them, and
/// returns what the proxy answered within a few seconds.
async fn send_in_pieces(addr: std::net::SocketAddr, pieces: &[&[u8]]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = must(tokio::net::TcpStream::connect(addr).await);
    for piece in pieces {
        must(stream.write_all(piece).await);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        // The first frame or answer is all the tests look at.
        if out.len() >= 9 {
            break;
        }
    }
    out
}

#[tokio::test]
async fn a_preface_cut_in_pieces_is_still_http2() {
    let stable = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(stable.uri())).await;
    // The preface in two pieces, then an empty SETTINGS frame: an HTTP/2
    // server answers with its own SETTINGS frame (type 4).
    let out = send_in_pieces(
        proxy.addr,
        &[
            b"PRI * HTTP/2.0\r\n",
            b"\r\nSM\r\n\r\n",
            &[0, 0, 0, 4, 0, 0, 0, 0, 0],
        ],
    )
    .await;
    assert!(out.len() >= 9, "no frame: {out:?}");
    assert_eq!(out[3], 4, "not a SETTINGS frame: {out:?}");
}

#[tokio::test]
async fn http1_starting_like_the_preface_is_http1() {
    let stable = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(stable.uri())).await;
    // "P" could begin the preface; "POST" cannot.
    let out = send_in_pieces(
        proxy.addr,
        &[
            b"P",
            b"OST / HTTP/1.1\r\nHost: front.example\r\nContent-Length: 0\r\n\r\n",
        ],
    )
    .await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test]
async fn authority_is_checked_and_forwarded_as_host() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "authority");
    let stable = named("stable").await;
    let proxy = tls_proxy(&ca, Routes::stable_only(stable.uri())).await;
    let mut sender = h2_over_tls(&ca, proxy.addr).await;
    let url = format!("https://front.example:{}/a", proxy.addr.port());

    let response = must(
        sender
            .send_request(must(Request::get(url.as_str()).body(Empty::new())))
            .await,
    );
    assert_eq!(response.status(), StatusCode::OK);
    let seen = stable.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].headers["x-forwarded-host"],
        format!("front.example:{}", proxy.addr.port()).as_str()
    );
    assert_eq!(seen[0].headers["host"], stable.addr.to_string().as_str());
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");

    // A Host naming another host than :authority is refused, as two
    // Host headers are on HTTP/1.
    let req = must(
        Request::get(url.as_str())
            .header("host", "other.example")
            .body(Empty::new()),
    );
    let response = must(sender.send_request(req).await);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(proxy.handle.counters().rejected_invalid_host, 1);
    assert_eq!(stable.seen().len(), 1);
}

/// A body that does not tell its length.
struct UnknownLength<B>(B);

impl<B: http_body::Body + Unpin> http_body::Body for UnknownLength<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        std::pin::Pin::new(&mut self.0).poll_frame(cx)
    }
}

#[tokio::test]
async fn trailers_pass_through_to_http2_and_http1_clients() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "trailers");
    // A gRPC-style answer: status in the trailers, announced by `Trailer`.
    let grpc = backend(|_| async {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers.insert("grpc-message", HeaderValue::from_static("fine"));
        let body = Full::new(Bytes::from_static(b"\x00\x00\x00\x00\x02hi"))
            .with_trailers(async move { Some(Ok(trailers)) });
        // Of unknown length, as a streamed gRPC answer: HTTP/1 sends it
        // chunked, with the trailers after the last chunk.
        let mut response = Response::new(UnknownLength(body.boxed()).boxed());
        response.headers_mut().insert(
            "trailer",
            HeaderValue::from_static("grpc-status, grpc-message"),
        );
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        response
    })
    .await;
    let proxy = tls_proxy(&ca, Routes::stable_only(grpc.uri())).await;
    let mut sender = h2_over_tls(&ca, proxy.addr).await;
    let url = format!("https://localhost:{}/pkg.Service/Call", proxy.addr.port());
    let req = must(
        Request::post(url.as_str())
            .header("te", "trailers")
            .header("content-type", "application/grpc")
            .body(Empty::new()),
    );
    let response = must(sender.send_request(req).await);
    assert_eq!(response.status(), StatusCode::OK);
    let collected = must(response.into_body().collect().await);
    let trailers = collected.trailers().cloned().unwrap_or_default();
    assert_eq!(&collected.to_bytes()[..], b"\x00\x00\x00\x00\x02hi");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "fine");

    // An HTTP/1.1 client gets them in the chunked body's trailer.
    let text = raw_exchange(
        TestProxy::start(Routes::stable_only(grpc.uri())).await.addr,
        b"POST /pkg.Service/Call HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked"), "{text}");
    assert!(lower.contains("\r\n0\r\ngrpc-status: 0\r\n"), "{text}");
}
