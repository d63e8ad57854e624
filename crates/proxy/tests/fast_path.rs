//! What the HTTP/1.1 fast path does itself: `100 Continue`, every framing
//! of an upstream's answer relayed whole, a pooled connection its upstream
//! closed never failing a request, and a connection handed to hyper's path
//! serving on.

use crate::support::*;
use serin_proxy::{Routes, Version};
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// The longest any read in these tests waits.
const WAIT: Duration = Duration::from_secs(5);

/// Reads from `stream` until `bytes` holds `want`, or fails the test.
async fn read_until(stream: &mut TcpStream, bytes: &mut Vec<u8>, want: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(bytes).contains(want) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&buf[..n]),
            other => panic!(
                "no {want:?} in {:?} ({other:?})",
                String::from_utf8_lossy(bytes)
            ),
        }
    }
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    let backend = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(backend.uri())).await;
    let mut stream = must(TcpStream::connect(proxy.addr).await);
    must(
        stream
            .write_all(
                b"POST /up HTTP/1.1\r\nHost: front\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            )
            .await,
    );
    let mut got = Vec::new();
    read_until(&mut stream, &mut got, "HTTP/1.1 100 Continue\r\n\r\n").await;
    assert!(backend.seen().is_empty(), "forwarded before the body came");
    must(stream.write_all(b"hello").await);
    read_until(&mut stream, &mut got, "stable").await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{text}"
    );
    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, "hello");
}

/// An upstream answering by path, as raw bytes: each framing an answer can
/// have. It keeps a connection open unless the answer ends with the close.
async fn framings() -> http::Uri {
    let listener = must(TcpListener::bind("127.0.0.1:0").await);
    let addr = must(listener.local_addr());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 0 => pending.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                    pending.drain(..end + 4);
                    let head_only = head.starts_with("HEAD ");
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    let (answer, close): (&[u8], bool) = match path.as_str() {
                        "/length" if head_only => (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
                        "/length" => (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false),
                        "/chunked" => (
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n",
                            false,
                        ),
                        "/empty" => (b"HTTP/1.1 204 No Content\r\nX-Why: none\r\n\r\n", false),
                        "/early" => (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
                        _ => (b"HTTP/1.1 200 OK\r\n\r\nuntil the close", true),
                    };
                    if stream.write_all(answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    must(format!("http://{addr}").parse())
}

#[tokio::test]
async fn every_framing_of_an_answer_reaches_the_client_whole() {
    let proxy = TestProxy::start(Routes::stable_only(framings().await)).await;
    let pipelined = [
        "GET /length HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /chunked HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
        "GET /empty HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD /length HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /early HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /close HTTP/1.1\r\nHost: a\r\n\r\n",
        // Never answered: the answer before it ends the connection.
        "GET /length HTTP/1.1\r\nHost: a\r\n\r\n",
    ]
    .concat();
    let answer = raw_exchange(proxy.addr, pipelined.as_bytes(), WAIT).await;
    let expected = [
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTrailer: x-sum\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nX-Why: none\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the close",
    ]
    .concat();
    assert_eq!(answer, expected);
    assert!(eventually(|| proxy.recorder.totals().stable.requests == 6).await);
    assert_eq!(
        proxy.recorder.status_codes(Version::Stable),
        [(200, 5), (204, 1)]
    );
}

#[tokio::test]
async fn a_pooled_connection_its_upstream_closed_fails_no_request() {
    // Answers keep-alive, then closes each connection soon after.
    let upstream = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Duration::from_millis(50),
    )
    .await;
    let proxy = TestProxy::start(Routes::stable_only(upstream)).await;
    for _ in 0..3 {
        let answer = raw_exchange(
            proxy.addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            WAIT,
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(eventually(|| proxy.recorder.totals().stable.requests == 3).await);
    assert_eq!(proxy.recorder.status_codes(Version::Stable), [(200, 3)]);
}

#[tokio::test]
async fn a_connection_handed_to_hyper_serves_on() {
    let backend = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(backend.uri())).await;
    let mut stream = must(TcpStream::connect(proxy.addr).await);
    let mut got = Vec::new();
    // Served by the fast path, then HTTP/1.0 (hyper's), then whatever
    // follows on hyper's.
    must(
        stream
            .write_all(b"GET /a HTTP/1.1\r\nHost: front\r\n\r\n")
            .await,
    );
    read_until(&mut stream, &mut got, "stable").await;
    must(
        stream
            .write_all(b"GET /b HTTP/1.0\r\nHost: front\r\nConnection: keep-alive\r\n\r\n")
            .await,
    );
    got.clear();
    read_until(&mut stream, &mut got, "stable").await;
    assert!(got.starts_with(b"HTTP/1.0 200 OK\r\n"));
    must(
        stream
            .write_all(b"GET /c HTTP/1.1\r\nHost: front\r\n\r\n")
            .await,
    );
    got.clear();
    read_until(&mut stream, &mut got, "stable").await;
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let paths: Vec<String> = backend
        .seen()
        .iter()
        .map(|s| s.uri.path().to_owned())
        .collect();
    assert_eq!(paths, ["/a", "/b", "/c"]);
}

#[tokio::test]
async fn an_answer_before_the_whole_body_is_relayed() {
    // Reads the head only, refuses the upload and closes with the body
    // unread (the kernel then resets the connection).
    let upstream = raw_upstream(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large",
        Duration::ZERO,
    )
    .await;
    let proxy = TestProxy::start(Routes::stable_only(upstream)).await;
    let body = vec![b'x'; 8 * 1024 * 1024];
    let mut stream = must(TcpStream::connect(proxy.addr).await);
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    must(stream.write_all(head.as_bytes()).await);
    // The proxy may stop reading the body: the write may fail, the answer
    // must come.
    let (mut reader, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(&body).await;
        writer
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !String::from_utf8_lossy(&got).contains("too large") {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!("{:?} ({other:?})", String::from_utf8_lossy(&got)),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{text}"
    );
    assert!(text.contains("connection: close\r\n"), "{text}");
    sending.abort();
    assert!(eventually(|| proxy.recorder.totals().stable.requests == 1).await);
    assert_eq!(proxy.recorder.status_codes(Version::Stable), [(413, 1)]);
}
