//! `https://` upstreams: real TLS backends with a test CA
//! (`upstreams.caFile`), certificates verified, and slow, dead and
//! untrusted upstreams recorded against their version as over plain HTTP.

use crate::{
    pki::{Ca, Leaf},
    support::*,
};
use http::{Response, StatusCode, Uri};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use serin_proxy::{Limits, Proxy, ProxyConfig, Recorder, Routes, Version};
use std::{
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// An HTTPS backend answering `name` after `delay`, recording the `Host`
/// and `X-Forwarded-Proto` it saw.
struct HttpsBackend {
    addr: SocketAddr,
    hosts: Arc<Mutex<Vec<String>>>,
}

impl HttpsBackend {
    async fn start(leaf: &Leaf, name: &'static str, delay: Duration) -> HttpsBackend {
        let chain: Vec<CertificateDer<'static>> = must(CertificateDer::pem_file_iter(&leaf.cert))
            .map(must)
            .collect();
        let key = must(PrivateKeyDer::from_pem_file(&leaf.key));
        let config = must(
            ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions(),
        )
        .with_no_client_auth();
        let config = must(config.with_single_cert(chain, key));
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = must(TcpListener::bind("127.0.0.1:0").await);
        let addr = must(listener.local_addr());
        let hosts: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = hosts.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                        let seen = seen.clone();
                        async move {
                            let host = req
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            must(seen.lock()).push(host);
                            tokio::time::sleep(delay).await;
                            Ok::<_, Infallible>(Response::new(full(name)))
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        HttpsBackend { addr, hosts }
    }

    fn uri(&self, host: &str) -> Uri {
        must(format!("https://{host}:{}", self.addr.port()).parse())
    }
}

fn with_ca(ca: Option<PathBuf>, limits: Limits) -> impl FnOnce(&mut ProxyConfig) {
    move |config| {
        config.upstream_ca_file = ca;
        config.limits = limits;
    }
}

#[tokio::test]
async fn https_upstreams_verified_against_the_ca_file_split_and_counted() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "upstreams");
    let leaf = ca.leaf("backend", false);
    let stable = HttpsBackend::start(&leaf, "stable", Duration::ZERO).await;
    let canary = HttpsBackend::start(&leaf, "canary", Duration::ZERO).await;
    let routes = Routes {
        canary: Some(canary.uri("localhost")),
        canary_weight: 50,
        // By address: the certificate names 127.0.0.1 too.
        ..Routes::stable_only(stable.uri("127.0.0.1"))
    };
    let proxy =
        TestProxy::start_config(routes, with_ca(Some(ca.cert.clone()), Limits::default())).await;
    let c = client();
    let (mut to_stable, mut to_canary) = (0u64, 0u64);
    for _ in 0..40 {
        let (status, _, body) = get(&c, proxy.url("/"), &[]).await;
        assert_eq!(status, StatusCode::OK);
        match body.as_str() {
            "stable" => to_stable += 1,
            "canary" => to_canary += 1,
            other => panic!("{other}"),
        }
    }
    assert!(to_stable > 0 && to_canary > 0, "{to_stable}/{to_canary}");
    assert!(eventually(|| proxy.recorder.totals().canary.requests == to_canary).await);
    assert_eq!(
        proxy.recorder.status_codes(Version::Stable),
        [(200, to_stable)]
    );
    // The upstream's own name as Host, as over plain HTTP.
    let hosts = must(canary.hosts.lock()).clone();
    assert!(
        hosts
            .iter()
            .all(|h| *h == format!("localhost:{}", canary.addr.port()))
    );
    // Keep-alive over TLS: far fewer connections than requests.
    assert_eq!(proxy.handle.counters().upstream_connect_errors, 0);
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_is_the_versions_502() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "private");
    let leaf = ca.leaf("backend", false);
    let stable = HttpsBackend::start(&leaf, "stable", Duration::ZERO).await;
    // Mozilla's roots (no caFile) do not know the test CA.
    let proxy = TestProxy::start(Routes::stable_only(stable.uri("localhost"))).await;
    let (status, _, _) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(eventually(|| proxy.recorder.status_codes(Version::Stable) == [(502, 1)]).await);
    assert_eq!(proxy.handle.counters().upstream_connect_errors, 1);
    assert!(must(stable.hosts.lock()).is_empty());

    // Nor does another CA's file.
    let other = Ca::new(dir.path(), "other");
    let proxy = TestProxy::start_config(
        Routes::stable_only(stable.uri("localhost")),
        with_ca(Some(other.cert.clone()), Limits::default()),
    )
    .await;
    let (status, _, _) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn slow_and_dead_upstreams_over_tls() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "failing");
    let leaf = ca.leaf("backend", false);
    let slow = HttpsBackend::start(&leaf, "slow", Duration::from_secs(5)).await;
    // Accepts TCP, never says a TLS word.
    let mute = must(TcpListener::bind("127.0.0.1:0").await);
    let mute_addr = must(mute.local_addr());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = mute.accept().await {
            must(keep.lock()).push(stream);
        }
    });
    let dead = dead_uri().await;
    let dead_https: Uri =
        must(format!("https://{}", dead.authority().map_or("", |a| a.as_str())).parse());
    let limits = Limits {
        response_header_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        ..Limits::default()
    };

    // Slow to answer: 504, the stable's.
    let proxy = TestProxy::start_config(
        Routes::stable_only(slow.uri("localhost")),
        with_ca(Some(ca.cert.clone()), limits.clone()),
    )
    .await;
    let (status, _, _) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(eventually(|| proxy.recorder.status_codes(Version::Stable) == [(504, 1)]).await);

    // A TLS handshake that never completes: 504 (connect_timeout).
    let mute_uri: Uri = must(format!("https://localhost:{}", mute_addr.port()).parse());
    let proxy = TestProxy::start_config(
        Routes {
            canary: Some(mute_uri),
            canary_weight: 100,
            ..Routes::stable_only(slow.uri("localhost"))
        },
        with_ca(Some(ca.cert.clone()), limits.clone()),
    )
    .await;
    let (status, _, _) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(eventually(|| proxy.recorder.status_codes(Version::Canary) == [(504, 1)]).await);
    assert_eq!(proxy.handle.counters().upstream_timeouts, 1);

    // Nothing listening: 502.
    let proxy = TestProxy::start_config(
        Routes::stable_only(dead_https),
        with_ca(Some(ca.cert.clone()), limits),
    )
    .await;
    let (status, _, _) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(eventually(|| proxy.recorder.status_codes(Version::Stable) == [(502, 1)]).await);
    assert_eq!(proxy.handle.counters().upstream_connect_errors, 1);
}

#[tokio::test]
async fn a_ca_file_that_holds_no_certificate_is_refused() {
    let dir = must(tempfile::tempdir());
    let garbage = dir.path().join("ca.pem");
    must(std::fs::write(&garbage, "nothing here\n"));
    let stable = named("stable").await;
    for (file, expected) in [
        (garbage, "holds no PEM certificate"),
        (dir.path().join("missing.pem"), "cannot read"),
    ] {
        let config = ProxyConfig {
            listen: must("127.0.0.1:0".parse()),
            limits: Limits::default(),
            access_log: None,
            trusted_proxies: Default::default(),
            tls: None,
            upstream_ca_file: Some(file),
        };
        let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
        let error = Proxy::bind(config, Routes::stable_only(stable.uri()), recorder)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("upstreams.caFile: "), "{error}");
        assert!(error.contains(expected), "{error}");
    }
}
