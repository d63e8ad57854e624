//! `/metrics` over HTTP: the brief's names and labels, OpenMetrics, and
//! serin's own series folded from rollout updates.

use serin_analysis::{Decision, MetricEvidence, MetricStatus, Verdict};
use serin_demo::{Backend, Behaviour};
use serin_proxy::{Limits, Proxy, ProxyConfig, Routes};
use serin_rollout::{Phase, RolloutState, Timestamp};
use serin_server::Update;
use serin_stats::{Recorder, Version};
use serin_telemetry::{CONTENT_TYPE, Telemetry};
use serin_testkit::http;
use std::{sync::Arc, time::Duration};

fn state(phase: Phase, weight: u8, at_ms: u64) -> Update {
    let mut state = RolloutState::new(Timestamp::from_millis(0));
    state.phase = phase;
    state.canary_weight = weight;
    state.started_at = Some(Timestamp::from_millis(1_000));
    Update::State {
        at: Timestamp::from_millis(at_ms),
        state: Box::new(state),
    }
}

#[tokio::test]
async fn proxy_and_rollout_series_over_http() {
    let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
    for (version, status, ms) in [
        (Version::Stable, 200, 3),
        (Version::Stable, 200, 40),
        (Version::Canary, 200, 7),
        (Version::Canary, 503, 120),
    ] {
        recorder.record(version, 0, status, Duration::from_millis(ms));
    }
    let telemetry = Telemetry::new();
    telemetry.add_traffic("shop", recorder);
    telemetry.observe("shop", &state(Phase::Progressing, 20, 2_000));
    let mut evidence = MetricEvidence::new("conversion", MetricStatus::Fail, "low".into());
    evidence.canary = Some(2.5);
    evidence.stable = Some(3.0);
    telemetry.observe(
        "shop",
        &Update::Decision {
            at: Timestamp::from_millis(3_000),
            decision: Decision {
                verdict: Verdict::Fail,
                at_ms: 3_000,
                metrics: vec![evidence],
                reasons: vec!["low".into()],
                hold: None,
            },
        },
    );
    telemetry.observe("shop", &state(Phase::Failed, 0, 61_000));
    telemetry.observe("shop", &state(Phase::Failed, 0, 62_000));

    let server = serin_telemetry::serve("127.0.0.1:0".parse().unwrap(), telemetry)
        .await
        .unwrap();
    let answer = http::get(server.local_addr().port(), "/metrics")
        .await
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-type: {CONTENT_TYPE}")),
        "{head}"
    );
    for line in [
        "# TYPE http_requests counter",
        r#"http_requests_total{canary="shop",version="stable",status="200"} 2"#,
        r#"http_requests_total{canary="shop",version="canary",status="503"} 1"#,
        "# TYPE http_request_duration_seconds histogram",
        r#"http_request_duration_seconds_bucket{le="0.005",canary="shop",version="stable"} 1"#,
        r#"http_request_duration_seconds_bucket{le="0.05",canary="shop",version="stable"} 2"#,
        r#"http_request_duration_seconds_bucket{le="0.1",canary="shop",version="canary"} 1"#,
        r#"http_request_duration_seconds_bucket{le="+Inf",canary="shop",version="canary"} 2"#,
        r#"http_request_duration_seconds_count{canary="shop",version="canary"} 2"#,
        r#"serin_canary_weight{canary="shop"} 0"#,
        r#"serin_canary_status{canary="shop"} 2"#,
        r#"serin_canary_phase{canary="shop",phase="Failed"} 1"#,
        r#"serin_canary_phase{canary="shop",phase="Progressing"} 0"#,
        r#"serin_canary_rollbacks_total{canary="shop"} 1"#,
        r#"serin_canary_duration_seconds_sum{canary="shop"} 60.0"#,
        r#"serin_canary_duration_seconds_count{canary="shop"} 1"#,
        r#"serin_canary_decisions_total{canary="shop",verdict="fail"} 1"#,
        r#"serin_canary_metric_value{canary="shop",metric="conversion",version="canary"} 2.5"#,
        r#"serin_canary_metric_value{canary="shop",metric="conversion",version="stable"} 3.0"#,
        r#"serin_canary_metric_status{canary="shop",metric="conversion",status="fail"} 1"#,
        "# EOF",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in:\n{body}"
        );
    }
    assert!(
        !body.contains("serin_canary_promotions_total{"),
        "no promotion happened"
    );

    let missing = http::get(server.local_addr().port(), "/nope")
        .await
        .unwrap();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

#[test]
fn traffic_updates_feed_canaries_without_a_recorder() {
    let telemetry = Telemetry::new();
    for _ in 0..3 {
        let mut delta = serin_stats::Pair::default();
        delta.canary.record(200, Duration::from_millis(4));
        delta.canary.record(502, Duration::from_millis(30));
        delta.stable.record(200, Duration::from_millis(8));
        telemetry.observe(
            "api",
            &Update::Traffic {
                at: Timestamp::from_millis(0),
                delta: Box::new(delta),
            },
        );
    }
    let body = telemetry.render();
    for line in [
        r#"http_requests_total{canary="api",version="canary",status="2xx"} 3"#,
        r#"http_requests_total{canary="api",version="canary",status="5xx"} 3"#,
        r#"http_requests_total{canary="api",version="stable",status="2xx"} 3"#,
        r#"http_request_duration_seconds_count{canary="api",version="canary"} 6"#,
        r#"http_request_duration_seconds_bucket{le="0.005",canary="api",version="canary"} 3"#,
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in:\n{body}"
        );
    }
    // Once the recorder is known, it wins: exact codes, no double counting.
    let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
    recorder.record(Version::Canary, 0, 204, Duration::from_millis(1));
    telemetry.add_traffic("api", recorder);
    let body = telemetry.render();
    assert!(body.contains(r#"http_requests_total{canary="api",version="canary",status="204"} 1"#));
    assert!(!body.contains(r#"status="5xx""#), "{body}");
}

#[test]
fn removing_a_canary_removes_every_series_of_it() {
    let telemetry = Telemetry::new();
    for canary in ["shop", "cart"] {
        telemetry.observe(canary, &state(Phase::Progressing, 20, 2_000));
        let mut evidence = MetricEvidence::new("conversion", MetricStatus::Pass, "ok".into());
        evidence.canary = Some(2.5);
        evidence.stable = Some(3.0);
        telemetry.observe(
            canary,
            &Update::Decision {
                at: Timestamp::from_millis(3_000),
                decision: Decision {
                    verdict: Verdict::Pass,
                    at_ms: 3_000,
                    metrics: vec![evidence],
                    reasons: vec![],
                    hold: None,
                },
            },
        );
    }
    telemetry.remove("shop");
    let body = telemetry.render();
    assert!(!body.contains(r#"canary="shop""#), "{body}");
    for series in [
        r#"serin_canary_decisions_total{canary="cart",verdict="pass"} 1"#,
        r#"serin_canary_metric_value{canary="cart",metric="conversion",version="canary"} 2.5"#,
        r#"serin_canary_metric_status{canary="cart",metric="conversion",status="pass"} 1"#,
    ] {
        assert!(
            body.lines().any(|l| l == series),
            "missing {series:?} in:\n{body}"
        );
    }
}

#[tokio::test]
async fn proxy_counters_over_http() {
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let upstream = Backend::start(local, Behaviour::healthy("stable"))
        .await
        .unwrap();
    // A port nothing listens on: bound, then released.
    let dead = std::net::TcpListener::bind(local)
        .unwrap()
        .local_addr()
        .unwrap();
    let config = ProxyConfig {
        listen: local,
        limits: Limits {
            workers: Some(1),
            ..Limits::default()
        },
        access_log: None,
        trusted_proxies: Default::default(),
        tls: None,
        upstream_ca_file: None,
    };
    let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
    let proxy = Proxy::bind(
        config,
        Routes::stable_only(upstream.url().parse().unwrap()),
        recorder.clone(),
    )
    .await
    .unwrap();
    let handle = proxy.handle();
    let port = handle.local_addr().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(proxy.serve(async move {
        let _ = stopped.await;
    }));

    let telemetry = Telemetry::new();
    telemetry.add_traffic("web", recorder);
    telemetry.add_proxy("web", handle.clone());
    for _ in 0..3 {
        let answer = http::get(port, "/").await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    handle
        .set_routes(Routes::stable_only(
            format!("http://{dead}").parse().unwrap(),
        ))
        .unwrap();
    let answer = http::get(port, "/").await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    // The last connection is counted closed once its task ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while handle.counters().active_connections > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let server = serin_telemetry::serve(local, telemetry.clone())
        .await
        .unwrap();
    let answer = http::get(server.local_addr().port(), "/metrics")
        .await
        .unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    for line in [
        "# TYPE serin_proxy_active_connections gauge",
        r#"serin_proxy_active_connections{canary="web"} 0"#,
        "# TYPE serin_proxy_connections counter",
        r#"serin_proxy_connections_total{canary="web"} 4"#,
        r#"serin_proxy_requests_total{canary="web"} 4"#,
        r#"serin_proxy_upstream_connect_errors_total{canary="web"} 1"#,
        r#"serin_proxy_upstream_timeouts_total{canary="web"} 0"#,
        r#"serin_proxy_upstream_other_errors_total{canary="web"} 0"#,
        r#"serin_proxy_upstream_body_errors_total{canary="web"} 0"#,
        r#"serin_proxy_rejected_header_too_large_total{canary="web"} 0"#,
        r#"serin_proxy_rejected_invalid_host_total{canary="web"} 0"#,
        r#"serin_proxy_rejected_body_too_large_total{canary="web"} 0"#,
        r#"serin_proxy_client_body_timeouts_total{canary="web"} 0"#,
        r#"serin_proxy_mirrors_sent_total{canary="web"} 0"#,
        r#"serin_proxy_mirrors_dropped_total{canary="web"} 0"#,
        r#"serin_proxy_mirrors_skipped_body_total{canary="web"} 0"#,
        r#"serin_proxy_log_lines_dropped_total{canary="web"} 0"#,
        r#"serin_proxy_log_write_errors_total{canary="web"} 0"#,
        r#"http_requests_total{canary="web",version="stable",status="200"} 3"#,
        r#"http_requests_total{canary="web",version="stable",status="502"} 1"#,
        "# EOF",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in:\n{body}"
        );
    }

    // Removing the canary removes its proxy series too.
    telemetry.remove("web");
    assert!(!telemetry.render().contains("serin_proxy_"));
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}

#[test]
fn a_registered_canary_is_exported_before_its_first_update() {
    let telemetry = Telemetry::new();
    let idle = serin_telemetry::Snapshot {
        phase: Phase::Initialized,
        canary_weight: 0,
        failed_checks: 0,
        iterations: 0,
    };
    telemetry.register("shop", idle);
    let text = telemetry.render();
    for line in [
        r#"serin_canary_weight{canary="shop"} 0"#,
        r#"serin_canary_status{canary="shop"} 1"#,
        r#"serin_canary_failed_checks{canary="shop"} 0"#,
        r#"serin_canary_phase{canary="shop",phase="Initialized"} 1"#,
        r#"serin_canary_phase{canary="shop",phase="Progressing"} 0"#,
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    // What the rollout reports wins; registering again changes nothing.
    telemetry.observe("shop", &state(Phase::Progressing, 20, 2_000));
    telemetry.register("shop", idle);
    let text = telemetry.render();
    assert!(
        text.contains(r#"serin_canary_weight{canary="shop"} 20"#),
        "{text}"
    );
    assert!(
        text.contains(r#"serin_canary_status{canary="shop"} 0"#),
        "{text}"
    );
    // A rollout that was in progress when registered counts its verdict once.
    let restored = Telemetry::new();
    restored.register(
        "shop",
        serin_telemetry::Snapshot {
            phase: Phase::Progressing,
            canary_weight: 50,
            failed_checks: 1,
            iterations: 0,
        },
    );
    restored.observe("shop", &state(Phase::Succeeded, 0, 9_000));
    restored.observe("shop", &state(Phase::Succeeded, 0, 9_500));
    let text = restored.render();
    assert!(
        text.contains(r#"serin_canary_promotions_total{canary="shop"} 1"#),
        "{text}"
    );
}

/// The request-log receiver's counters: good, malformed, truncated and
/// foreign lines sent over UDP to a real receiver, read back from
/// `/metrics` by reason.
#[tokio::test]
async fn log_receiver_counters_over_http() {
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
    let servers = serin_spec::HaproxyServers {
        stable: "stable".into(),
        canary: "canary".into(),
    };
    let receiver = serin_providers::SyslogReceiver::bind(local, servers, recorder.clone())
        .await
        .unwrap();
    let line = |server: &str, status: u16| {
        format!(
            r#"<134>Nov 26 10:00:00 haproxy[1]: {{"ts":1.0,"server":"{server}","status":{status},"tr":5}}"#
        )
    };
    let good = line("canary", 200);
    let truncated = &good[..good.len() - 12];
    let datagrams: Vec<Vec<u8>> = vec![
        good.clone().into_bytes(),
        line("stable", 500).into_bytes(),
        good.clone().into_bytes(),
        // Malformed: no syslog frame at all.
        b"hello".to_vec(),
        // Truncated: an RFC 5424 header cut short, then a JSON message cut short.
        b"<134>1 2025 host".to_vec(),
        truncated.as_bytes().to_vec(),
        // Foreign: a request served by no server serin drives.
        line("<NOSRV>", 503).into_bytes(),
        // Oversized: no line of serin's format is this long.
        vec![b'x'; 9000],
    ];
    let sender = std::net::UdpSocket::bind(local).unwrap();
    for datagram in &datagrams {
        sender.send_to(datagram, receiver.local_addr()).unwrap();
    }
    // Bounded wait until every datagram is counted (UDP on loopback).
    let counters = receiver.counters();
    let counted =
        || counters.recorded.load(std::sync::atomic::Ordering::Relaxed) + counters.dropped();
    for _ in 0..500 {
        if counted() >= datagrams.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counted(), datagrams.len() as u64);

    let telemetry = Telemetry::new();
    telemetry.add_traffic("web", recorder);
    telemetry.add_log("web", receiver.counters());
    let server = serin_telemetry::serve(local, telemetry.clone())
        .await
        .unwrap();
    let answer = http::get(server.local_addr().port(), "/metrics")
        .await
        .unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    for line in [
        "# TYPE serin_log_lines_accepted counter",
        r#"serin_log_lines_accepted_total{canary="web"} 3"#,
        "# TYPE serin_log_lines_rejected counter",
        r#"serin_log_lines_rejected_total{canary="web",reason="frame"} 2"#,
        r#"serin_log_lines_rejected_total{canary="web",reason="message"} 1"#,
        r#"serin_log_lines_rejected_total{canary="web",reason="foreign_server"} 1"#,
        r#"serin_log_lines_rejected_total{canary="web",reason="oversized"} 1"#,
        r#"http_requests_total{canary="web",version="canary",status="200"} 2"#,
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    assert!(body.ends_with("# EOF\n"), "{body}");

    telemetry.remove("web");
    assert!(!telemetry.render().contains("serin_log_lines"));
}
