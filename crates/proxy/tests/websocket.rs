//! WebSocket (and any `Upgrade`) through the proxy: a real client
//! (tokio-tungstenite) and real echo servers, through a weighted split and
//! over TLS; each upgrade counted once, as its version's 101.

use crate::{pki::Ca, support::*};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use serin_proxy::{Limits, Routes, TlsFiles, Version};
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket server answering each text message with `name: message`;
/// counts the sessions that ended (the client's close reached it).
struct EchoServer {
    addr: SocketAddr,
    ended: Arc<AtomicUsize>,
}

impl EchoServer {
    async fn start(name: &'static str) -> EchoServer {
        let listener = must(TcpListener::bind("127.0.0.1:0").await);
        let addr = must(listener.local_addr());
        let ended = Arc::new(AtomicUsize::new(0));
        let counter = ended.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(message)) = ws.next().await {
                        match message {
                            Message::Text(text) => {
                                let echo = format!("{name}: {text}");
                                if ws.send(Message::Text(echo.into())).await.is_err() {
                                    break;
                                }
                            }
                            Message::Close(_) => break,
                            _ => {}
                        }
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        EchoServer { addr, ended }
    }

    fn uri(&self) -> http::Uri {
        must(format!("http://{}", self.addr).parse())
    }
}

#[tokio::test]
async fn websockets_echo_through_a_weighted_split_and_count_once() {
    let stable = EchoServer::start("stable").await;
    let canary = EchoServer::start("canary").await;
    let routes = Routes {
        canary: Some(canary.uri()),
        canary_weight: 50,
        ..Routes::stable_only(stable.uri())
    };
    let proxy = TestProxy::start(routes).await;
    let (mut to_stable, mut to_canary) = (0u64, 0u64);
    const SESSIONS: usize = 24;
    for session in 0..SESSIONS {
        let url = format!("ws://{}/chat", proxy.addr);
        let (mut ws, response) = must(tokio_tungstenite::connect_async(url).await);
        assert_eq!(response.status(), 101);
        let mut version = None;
        for n in 0..3 {
            must(
                ws.send(Message::Text(format!("{session}.{n}").into()))
                    .await,
            );
            let echo = match ws.next().await {
                Some(Ok(Message::Text(text))) => text.to_string(),
                other => panic!("no echo: {other:?}"),
            };
            let (name, text) = echo.split_once(": ").unwrap_or_else(|| panic!("{echo}"));
            assert_eq!(text, format!("{session}.{n}"));
            // Every message of a session reaches the same version.
            assert_eq!(*version.get_or_insert(name.to_owned()), name);
        }
        must(ws.close(None).await);
        match version.as_deref() {
            Some("stable") => to_stable += 1,
            Some("canary") => to_canary += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(to_stable > 0 && to_canary > 0, "{to_stable}/{to_canary}");
    // Each session is one request of its version, recorded as 101.
    assert!(eventually(|| proxy.recorder.totals().stable.requests == to_stable).await);
    assert!(eventually(|| proxy.recorder.totals().canary.requests == to_canary).await);
    assert_eq!(
        proxy.recorder.status_codes(Version::Canary),
        [(101, to_canary)]
    );
    assert_eq!(
        proxy.recorder.status_codes(Version::Stable),
        [(101, to_stable)]
    );
    assert_eq!(proxy.handle.counters().upgrades_total, SESSIONS as u64);
    // The clients' closes reached the servers, and the proxy let go.
    let ended = || stable.ended.load(Ordering::Relaxed) + canary.ended.load(Ordering::Relaxed);
    assert!(eventually(|| ended() == SESSIONS).await, "{}", ended());
    assert!(eventually(|| proxy.handle.counters().active_connections == 0).await);
}

#[tokio::test]
async fn an_upstream_that_closes_closes_the_client() {
    // An upstream that upgrades, says one thing and hangs up.
    let listener = must(TcpListener::bind("127.0.0.1:0").await);
    let addr = must(listener.local_addr());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await {
                    let _ = ws.send(Message::Text("bye".into())).await;
                    let _ = ws.close(None).await;
                }
            });
        }
    });
    let proxy = TestProxy::start(Routes::stable_only(must(format!("http://{addr}").parse()))).await;
    let (mut ws, _) = must(tokio_tungstenite::connect_async(format!("ws://{}/", proxy.addr)).await);
    let mut got = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(message) => got.push(message),
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the client was never closed");
    assert_eq!(got.first(), Some(&Message::Text("bye".into())), "{got:?}");
    assert!(eventually(|| proxy.handle.counters().active_connections == 0).await);
}

#[tokio::test]
async fn an_idle_upgraded_connection_is_closed() {
    let stable = EchoServer::start("stable").await;
    let limits = Limits {
        upgraded_idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let proxy = TestProxy::start_with(Routes::stable_only(stable.uri()), limits, None).await;
    let (mut ws, _) = must(tokio_tungstenite::connect_async(format!("ws://{}/", proxy.addr)).await);
    must(ws.send(Message::Text("hello".into())).await);
    assert!(matches!(ws.next().await, Some(Ok(Message::Text(_)))));
    // Then silence: the proxy closes both sides.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the idle connection stayed open");
    assert!(eventually(|| stable.ended.load(Ordering::Relaxed) == 1).await);
    assert!(eventually(|| proxy.handle.counters().active_connections == 0).await);
}

#[tokio::test]
async fn a_refused_upgrade_is_an_ordinary_answer() {
    // An upstream that does not speak WebSocket answers the GET plainly.
    let stable = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(stable.uri())).await;
    let result = tokio_tungstenite::connect_async(format!("ws://{}/", proxy.addr)).await;
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 200);
        }
        other => panic!("{other:?}"),
    }
    // The upstream was asked for the upgrade, and it counts as its 200.
    let seen = stable.seen();
    assert_eq!(seen[0].headers["upgrade"], "websocket");
    assert_eq!(seen[0].headers["connection"], "upgrade");
    assert!(eventually(|| proxy.recorder.status_codes(Version::Stable) == [(200, 1)]).await);
    assert_eq!(proxy.handle.counters().upgrades_total, 0);
}

#[tokio::test]
async fn websockets_over_tls() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "wss");
    let leaf = ca.leaf("front", false);
    let stable = EchoServer::start("stable").await;
    let files = TlsFiles {
        cert_file: leaf.cert,
        key_file: leaf.key,
    };
    let proxy = TestProxy::start_config(Routes::stable_only(stable.uri()), move |config| {
        config.tls = Some(files)
    })
    .await;
    let tcp = must(tokio::net::TcpStream::connect(proxy.addr).await);
    let tls = must(
        ca.client(&[b"http/1.1"])
            .connect(must(ServerName::try_from("localhost")), tcp)
            .await,
    );
    let url = format!("wss://localhost:{}/secure", proxy.addr.port());
    let (mut ws, _) = must(tokio_tungstenite::client_async(url, tls).await);
    must(ws.send(Message::Text("over tls".into())).await);
    match ws.next().await {
        Some(Ok(Message::Text(text))) => assert_eq!(text.as_str(), "stable: over tls"),
        other => panic!("{other:?}"),
    }
    must(ws.close(None).await);
    assert!(eventually(|| proxy.recorder.status_codes(Version::Stable) == [(101, 1)]).await);
}
