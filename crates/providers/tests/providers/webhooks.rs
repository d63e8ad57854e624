//! What a refusing webhook said: a real receiver on loopback answers with
//! raw HTTP (long, hostile and endless bodies), and the call's record keeps
//! the start of the body, escaped, without reading more than it keeps.

use serin_providers::HttpWebhooks;
use serin_rollout::{
    HookKind,
    ports::{HookContext, Webhooks},
};
use std::time::{Duration, Instant};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// How a receiver answers every request.
#[derive(Clone, Copy)]
enum Answer {
    /// A status with a fixed body.
    Fixed(u16, &'static str),
    /// A status with a chunked body that never ends (until the client goes).
    Endless(u16),
}

/// A receiver answering raw HTTP/1.1; returns its port.
async fn receiver(answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                // The request: headers and a small JSON body; read what came.
                let mut buffer = vec![0u8; 64 * 1024];
                let _ = tokio::time::timeout(Duration::from_millis(200), async {
                    let mut seen = Vec::new();
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        seen.extend_from_slice(&buffer[..n]);
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.ends_with(b"}") {
                            break;
                        }
                    }
                })
                .await;
                match answer {
                    Answer::Fixed(status, body) => {
                        let head = format!(
                            "HTTP/1.1 {status} Whatever\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.write_all(body.as_bytes()).await;
                    }
                    Answer::Endless(status) => {
                        let head = format!(
                            "HTTP/1.1 {status} Whatever\r\ntransfer-encoding: chunked\r\n\r\n"
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        let chunk = format!("1000\r\n{}\r\n", "y".repeat(4096));
                        // Bounded: 64 MiB at most, far beyond what is read.
                        for _ in 0..16_384 {
                            if stream.write_all(chunk.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

fn webhooks(port: u16) -> std::sync::Arc<HttpWebhooks> {
    let yaml = format!(
        "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: shop}}
spec:
  provider: builtin
  service: {{listen: 127.0.0.1:8080}}
  upstreams: {{stable: http://127.0.0.1:9001}}
  analysis:
    interval: 1m
    stepWeight: 10
    webhooks:
    - name: acceptance
      type: pre-rollout
      url: http://127.0.0.1:{port}/
      timeout: 10s
"
    );
    let documents = serin_spec::load_documents("shop.yaml", &yaml).unwrap();
    let canary = documents
        .into_iter()
        .find_map(|d| d.as_canary().cloned())
        .unwrap();
    HttpWebhooks::from_canary(&canary)
}

#[tokio::test]
async fn a_refusal_keeps_the_first_kibibyte_of_its_body_escaped() {
    const BODY: &str = "ticket missing\n\u{1b}[2J\u{202e}spoof\r\n";
    let long: &'static str = Box::leak(format!("{BODY}{}", "z".repeat(3000)).into_boxed_str());
    let port = receiver(Answer::Fixed(400, long)).await;
    let answer = webhooks(port)
        .hook(HookKind::PreRollout, &HookContext::default())
        .await;
    assert!(!answer.ok);
    let call = &answer.calls[0];
    assert_eq!(call.status, Some(400));
    assert_eq!(call.error, None, "an answer is not an error");
    let body = call.body.as_deref().expect("the refusal's body is kept");
    assert!(
        body.starts_with("ticket missing\\n\\u{1b}[2J\\u{202e}spoof\\r\\nzzz"),
        "{body}"
    );
    assert!(!body.chars().any(char::is_control), "{body:?}");
    // The first 1024 bytes of the body (some escaped) and a mark that there was more.
    let zs = body.chars().filter(|c| *c == 'z').count();
    assert_eq!(zs, 1024 - BODY.len());
    assert!(body.ends_with('…'), "{body}");
    assert!(call.outcome().starts_with("answered 400: ticket missing"));

    // A short refusal is kept whole, without the mark.
    let port = receiver(Answer::Fixed(403, "  not approved by alice  \n")).await;
    let answer = webhooks(port)
        .hook(HookKind::PreRollout, &HookContext::default())
        .await;
    assert_eq!(
        answer.calls[0].body.as_deref(),
        Some("not approved by alice")
    );
}

#[tokio::test]
async fn an_endless_body_is_not_read_past_what_is_kept() {
    let port = receiver(Answer::Endless(422)).await;
    let started = Instant::now();
    let answer = webhooks(port)
        .hook(HookKind::PreRollout, &HookContext::default())
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let call = &answer.calls[0];
    assert_eq!(call.status, Some(422));
    let body = call.body.as_deref().unwrap_or_default();
    assert_eq!(body, format!("{}…", "y".repeat(1024)));

    // A 2xx answer with an endless body is a yes, and does not hang either.
    let port = receiver(Answer::Endless(200)).await;
    let started = Instant::now();
    let answer = webhooks(port)
        .hook(HookKind::PreRollout, &HookContext::default())
        .await;
    assert!(answer.ok, "{:?}", answer.calls);
    assert_eq!(answer.calls[0].body, None);
    assert!(started.elapsed() < Duration::from_secs(5));
}
