//! TLS on the listener (`service.tls`): real clients (curl, openssl
//! s_client, rustls), certificates made by openssl for each test, and
//! renewals in place under load.

use crate::{
    pki::{Ca, Leaf, https_get},
    support::*,
};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serin_proxy::{Limits, Proxy, ProxyConfig, Recorder, Reloaded, Routes, TlsFiles};
use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

fn files(leaf: &Leaf) -> TlsFiles {
    TlsFiles {
        cert_file: leaf.cert.clone(),
        key_file: leaf.key.clone(),
    }
}

async fn tls_proxy(routes: Routes, leaf: &Leaf, limits: Limits) -> TestProxy {
    let tls = files(leaf);
    TestProxy::start_config(routes, move |config| {
        config.tls = Some(tls);
        config.limits = limits;
    })
    .await
}

/// Runs a command off the runtime; returns its stdout and stderr joined,
/// and whether it succeeded.
async fn run(program: &'static str, args: Vec<String>) -> (bool, String) {
    must(
        tokio::task::spawn_blocking(move || {
            let out = must(
                Command::new(program)
                    .args(&args)
                    .stdin(std::process::Stdio::null())
                    .output(),
            );
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.success(), text)
        })
        .await,
    )
}

async fn curl(ca: &Ca, port: u16, extra: &[&str]) -> (bool, String) {
    let mut args: Vec<String> = [
        "-sS",
        "--max-time",
        "10",
        "--cacert",
        ca.cert.to_str().unwrap_or_default(),
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        "-w",
        "\n%{http_version}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("https://localhost:{port}/hello"));
    run("curl", args).await
}

#[tokio::test]
async fn curl_gets_http1_and_http2_over_tls() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "curl");
    let leaf = ca.leaf("front", false);
    let stable = named("stable").await;
    let proxy = tls_proxy(Routes::stable_only(stable.uri()), &leaf, Limits::default()).await;
    let port = proxy.addr.port();

    let (ok, out) = curl(&ca, port, &["--http1.1"]).await;
    assert!(ok, "{out}");
    assert_eq!(out, "stable\n1.1");
    let (ok, out) = curl(&ca, port, &["--http2"]).await;
    assert!(ok, "{out}");
    assert_eq!(out, "stable\n2");

    let seen = stable.seen();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(request.headers["x-forwarded-proto"], "https");
        assert_eq!(
            request.headers["x-forwarded-host"],
            format!("localhost:{port}").as_str()
        );
    }
    // A client that does not trust the certificate refuses it.
    let (ok, out) = run(
        "curl",
        vec![
            "-sS".into(),
            "--max-time".into(),
            "10".into(),
            format!("https://127.0.0.1:{port}/"),
        ],
    )
    .await;
    assert!(!ok, "{out}");
    // Plain HTTP to the TLS port is a failed handshake, never a request.
    let before = proxy.handle.counters().tls_handshake_errors;
    let text = raw_exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(!text.contains("stable"), "{text}");
    assert!(eventually(|| proxy.handle.counters().tls_handshake_errors > before).await);
    assert_eq!(stable.seen().len(), 2);
}

async fn s_client(ca: &Ca, port: u16, extra: &[&str]) -> String {
    let mut args: Vec<String> = vec![
        "s_client".into(),
        "-connect".into(),
        format!("127.0.0.1:{port}"),
        "-servername".into(),
        "localhost".into(),
        "-CAfile".into(),
        ca.cert.to_str().unwrap_or_default().into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run("openssl", args).await.1
}

#[tokio::test]
async fn openssl_sees_tls_1_2_and_1_3_only_and_alpn() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "sclient");
    let leaf = ca.leaf("front", true);
    let stable = named("stable").await;
    let proxy = tls_proxy(Routes::stable_only(stable.uri()), &leaf, Limits::default()).await;
    let port = proxy.addr.port();

    let out = s_client(&ca, port, &["-tls1_3", "-alpn", "h2,http/1.1"]).await;
    assert!(out.contains("New, TLSv1.3"), "{out}");
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    let out = s_client(&ca, port, &["-tls1_2", "-alpn", "http/1.1"]).await;
    assert!(out.contains("New, TLSv1.2"), "{out}");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");

    // TLS 1.1 and 1.0, offered for real (OpenSSL's own security level
    // lowered so the client sends them), are refused by the server.
    for old in ["-tls1_1", "-tls1"] {
        let before = proxy.handle.counters().tls_handshake_errors;
        let out = s_client(&ca, port, &[old, "-cipher", "DEFAULT@SECLEVEL=0"]).await;
        assert!(!out.contains("New, TLSv1"), "{old}: {out}");
        assert!(out.contains("Cipher is (NONE)"), "{old}: {out}");
        assert!(
            eventually(|| proxy.handle.counters().tls_handshake_errors > before).await,
            "{old}: the server saw no failed handshake"
        );
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_closed() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "slow");
    let leaf = ca.leaf("front", false);
    let stable = named("stable").await;
    let limits = Limits {
        tls_handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let proxy = tls_proxy(Routes::stable_only(stable.uri()), &leaf, limits).await;
    // A TCP connection that sends nothing: closed by the proxy, not kept.
    let text = raw_exchange(proxy.addr, b"", Duration::from_secs(10)).await;
    assert_eq!(text, "");
    assert!(eventually(|| proxy.handle.counters().tls_handshake_errors == 1).await);
    assert!(eventually(|| proxy.handle.counters().active_connections == 0).await);
}

#[tokio::test]
async fn bad_certificates_are_refused_naming_the_field() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "bad");
    let one = ca.leaf("one", false);
    let two = ca.leaf("two", true);
    let stable = named("stable").await;
    let bind = |tls: TlsFiles| {
        let routes = Routes::stable_only(stable.uri());
        async move {
            let config = ProxyConfig {
                listen: must("127.0.0.1:0".parse()),
                limits: Limits::default(),
                access_log: None,
                trusted_proxies: Default::default(),
                tls: Some(tls),
                upstream_ca_file: None,
            };
            let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
            Proxy::bind(config, routes, recorder)
                .await
                .err()
                .map(|e| e.to_string())
        }
    };
    assert_eq!(bind(files(&one)).await, None);
    assert_eq!(bind(files(&two)).await, None);

    let mismatch = TlsFiles {
        cert_file: one.cert.clone(),
        key_file: two.key.clone(),
    };
    let error = bind(mismatch).await.unwrap_or_default();
    assert!(error.starts_with("service.tls.keyFile: "), "{error}");
    assert!(error.contains("is not the private key"), "{error}");

    let missing = TlsFiles {
        cert_file: dir.path().join("nope.pem"),
        key_file: one.key.clone(),
    };
    let error = bind(missing).await.unwrap_or_default();
    assert!(
        error.starts_with("service.tls.certFile: cannot read"),
        "{error}"
    );

    let garbage = dir.path().join("garbage.pem");
    must(std::fs::write(&garbage, "not a certificate\n"));
    let error = bind(TlsFiles {
        cert_file: garbage.clone(),
        key_file: one.key.clone(),
    })
    .await
    .unwrap_or_default();
    assert!(error.starts_with("service.tls.certFile: "), "{error}");
    assert!(error.contains("no usable PEM certificate"), "{error}");

    let error = bind(TlsFiles {
        cert_file: one.cert.clone(),
        key_file: one.cert.clone(),
    })
    .await
    .unwrap_or_default();
    assert!(error.starts_with("service.tls.keyFile: "), "{error}");
    assert!(error.contains("no usable PEM private key"), "{error}");
}

/// Bounded load while certificates change: fresh TLS connections (one
/// request each) and one keep-alive connection, counting every failure.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(ca: &Ca, addr: std::net::SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let connector = ca.client(&[b"http/1.1"]);
            tasks.push(tokio::spawn(async move {
                // Bounded in count; the test stops it far sooner.
                for _ in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match https_get(&connector, addr, "/").await {
                        Ok(got) if got.status == 200 && got.body == "stable" => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(got) => must(failed.lock()).push(format!("{got:?}")),
                        Err(error) => must(failed.lock()).push(error),
                    }
                }
            }));
        }
        // One connection kept alive across every rotation.
        let (stop2, ok2, failed2) = (stop.clone(), ok.clone(), failed.clone());
        let connector = ca.client(&[b"http/1.1"]);
        tasks.push(tokio::spawn(async move {
            let result: Result<(), String> = async {
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| e.to_string())?;
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                for _ in 0..50_000 {
                    if stop2.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let req = Request::get("/")
                        .header("host", "localhost")
                        .body(Empty::<Bytes>::new())
                        .map_err(|e| e.to_string())?;
                    let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?
                        .to_bytes();
                    if body != "stable" {
                        return Err(format!("kept-alive body {body:?}"));
                    }
                    ok2.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            .await;
            if let Err(error) = result {
                must(failed2.lock()).push(format!("kept-alive connection: {error}"));
            }
        }));
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            must(task.await);
        }
        let failed = must(self.failed.lock()).clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

/// Waits (bounded) until a fresh handshake presents `leaf`.
async fn served(ca: &Ca, addr: std::net::SocketAddr, leaf: &Leaf) -> bool {
    let connector = ca.client(&[b"http/1.1"]);
    let want = leaf.der();
    for _ in 0..200 {
        if let Ok(got) = https_get(&connector, addr, "/").await
            && got.leaf == want
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn certificates_rotate_in_place_under_load_without_a_failed_request() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "rotate");
    let live = ca.leaf("live", false);
    let second = ca.leaf("second", true);
    let third = ca.leaf("third", false);
    let stable = named("stable").await;
    let limits = Limits {
        tls_reload_interval: Duration::from_millis(100),
        ..Limits::default()
    };
    let original = live.der();
    let proxy = tls_proxy(Routes::stable_only(stable.uri()), &live, limits).await;
    assert!(served(&ca, proxy.addr, &live).await);
    let load = Load::start(&ca, proxy.addr);

    // A renewal in place (key, then chain): served from then on.
    second.install(&live);
    assert!(
        served(&ca, proxy.addr, &second).await,
        "the renewal was not picked up"
    );

    // A broken renewal: garbage, then a chain with another leaf's key. The
    // previous certificate keeps serving through several polls.
    must(std::fs::write(
        &live.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(served(&ca, proxy.addr, &second).await);
    must(std::fs::write(&live.key, must(std::fs::read(&third.key))));
    must(std::fs::write(
        &live.cert,
        must(std::fs::read(&second.cert)),
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(served(&ca, proxy.addr, &second).await);
    // Asked directly, the refusal names the field.
    let refused = proxy
        .handle
        .reload_tls()
        .map(|r| r.map_err(|e| e.to_string()));
    match refused {
        Some(Err(error)) => assert!(error.contains("is not the private key"), "{error}"),
        other => panic!("{other:?}"),
    }

    // The fixed renewal goes through.
    third.install(&live);
    assert!(served(&ca, proxy.addr, &third).await);
    assert_ne!(third.der(), original);

    let (ok, failed) = load.finish().await;
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(ok > 20, "only {ok} requests ran");
}

#[tokio::test]
async fn sighup_reloads_at_once() {
    let dir = must(tempfile::tempdir());
    let ca = Ca::new(dir.path(), "hup");
    let live = ca.leaf("live", false);
    let next = ca.leaf("next", false);
    let stable = named("stable").await;
    // Polling far too slow to matter: only the signal can reload in time.
    let limits = Limits {
        tls_reload_interval: Duration::from_secs(3600),
        ..Limits::default()
    };
    let proxy = tls_proxy(Routes::stable_only(stable.uri()), &live, limits).await;
    assert!(served(&ca, proxy.addr, &live).await);
    next.install(&live);
    let (ok, out) = run("kill", vec!["-HUP".into(), std::process::id().to_string()]).await;
    assert!(ok, "{out}");
    assert!(served(&ca, proxy.addr, &next).await);
    // Nothing changed since: a reload asked for is a no-op.
    assert!(matches!(
        proxy.handle.reload_tls(),
        Some(Ok(Reloaded::Unchanged))
    ));
}
