//! serin's own proxy behind the `Router` port: weights, A/B matches, sticky
//! cookies, promotion and release, against real backends on loopback.

use serin_demo::{Backend, Behaviour};
use serin_providers::{BaseRoutes, ProxyRouter};
use serin_proxy::{Proxy, ProxyConfig, Recorder};
use serin_rollout::{
    Route,
    ports::{CanaryTarget, Router},
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One GET with extra header lines; the whole answer, head and body.
async fn get(proxy: SocketAddr, headers: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: shop\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

struct Setup {
    router: ProxyRouter,
    proxy: SocketAddr,
    stable: Backend,
    canary: Backend,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn setup(analysis: &str) -> Setup {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary"))
        .await
        .unwrap();
    let yaml = format!(
        "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: shop}}
spec:
  provider: builtin
  service: {{listen: 127.0.0.1:0}}
  upstreams: {{stable: {}}}
  analysis:
    interval: 1m
{analysis}",
        stable.url()
    );
    let documents = serin_spec::load_documents("shop.yaml", &yaml).unwrap();
    let canary_doc = documents
        .into_iter()
        .find_map(|d| d.as_canary().cloned())
        .unwrap();
    let base = BaseRoutes::from_canary(&canary_doc).unwrap();
    let config = ProxyConfig {
        listen: local,
        limits: Default::default(),
        access_log: None,
        trusted_proxies: Default::default(),
        tls: None,
        upstream_ca_file: None,
    };
    let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
    let bound = Proxy::bind(config, base.routes.clone(), recorder)
        .await
        .unwrap();
    let proxy = bound.local_addr();
    let router = ProxyRouter::new(bound.handle(), base).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));
    router
        .set_canary(&CanaryTarget {
            address: canary.url(),
            revision: "v2".into(),
        })
        .await
        .unwrap();
    Setup {
        router,
        proxy,
        stable,
        canary,
        _stop: stop,
    }
}

fn weight(canary_weight: u8) -> Route {
    Route {
        canary_weight,
        mirror: None,
        match_active: false,
    }
}

#[tokio::test]
async fn weights_promotion_and_release() {
    let s = setup("    stepWeight: 10\n").await;
    assert!(get(s.proxy, "").await.contains("hello from stable"));
    s.router.set_route(weight(100)).await.unwrap();
    assert!(get(s.proxy, "").await.contains("hello from canary"));
    s.router.set_route(weight(0)).await.unwrap();
    assert!(get(s.proxy, "").await.contains("hello from stable"));
    // Promotion makes the canary the stable version; release keeps it there.
    s.router.promote().await.unwrap();
    s.router.finalise().await.unwrap();
    assert!(get(s.proxy, "").await.contains("hello from canary"));
    assert_eq!(
        s.router.current().stable.to_string().trim_end_matches('/'),
        s.canary.url()
    );
    assert!(s.router.current().canary.is_none());
    drop(s.stable);
}

#[tokio::test]
async fn ab_matches_apply_only_while_active() {
    let s = setup("    iterations: 2\n    match:\n    - headers:\n        x-canary:\n          exact: insider\n").await;
    let insider = "x-canary: insider\r\n";
    // Not yet active: insiders stay on stable.
    assert!(get(s.proxy, insider).await.contains("hello from stable"));
    s.router
        .set_route(Route {
            canary_weight: 0,
            mirror: None,
            match_active: true,
        })
        .await
        .unwrap();
    assert!(get(s.proxy, insider).await.contains("hello from canary"));
    assert!(get(s.proxy, "").await.contains("hello from stable"));
}

#[tokio::test]
async fn a_rollback_deletes_the_canary_cookie() {
    let s =
        setup("    stepWeight: 10\n    sessionAffinity:\n      cookieName: canary-user\n").await;
    s.router.set_route(weight(100)).await.unwrap();
    let first = get(s.proxy, "").await;
    assert!(first.contains("hello from canary"), "{first}");
    let cookie = first
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .expect("the canary user gets a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // Rolled back: the user goes back to stable and the cookie is deleted.
    s.router.set_route(weight(0)).await.unwrap();
    s.router.finalise().await.unwrap();
    let after = get(s.proxy, &format!("Cookie: {cookie}\r\n")).await;
    assert!(after.contains("hello from stable"), "{after}");
    assert!(after.to_ascii_lowercase().contains("max-age=0"), "{after}");
}

/// The router refuses exactly the canary URLs `serin validate`, the
/// daemon and the proxy refuse, with the same message (one shared table).
#[tokio::test]
async fn canary_urls_follow_the_shared_upstream_table() {
    let s = setup("    stepWeight: 10\n").await;
    for (text, expected) in serin_testkit::UPSTREAM_URLS {
        let got = s
            .router
            .set_canary(&CanaryTarget {
                address: (*text).to_owned(),
                revision: "v3".into(),
            })
            .await
            .err()
            .map(|e| e.to_string());
        match (expected, &got) {
            (None, None) => {}
            (Some(message), Some(error)) if error.contains(message) => {}
            _ => panic!("{text:?}: expected {expected:?}, got {got:?}"),
        }
    }
}
