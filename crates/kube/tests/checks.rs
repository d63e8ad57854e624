//! `serin controller`'s analysis against a real Prometheus scraping an
//! exporter of Istio's series: the built-in success rate held against its
//! range, and what is not evaluated failing by name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serin_kube::{
    Cluster, Subject,
    checks::PrometheusChecks,
    controller::{Checks, Verdict},
};
use serin_spec::{Canary, ThresholdRange};
use serin_testkit::{ports::free_port, prometheus::Prometheus};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// Istio's request counter for `podinfo` in `test`: each scrape adds 99
/// successes and 1 server error (a 99% success rate).
async fn exporter(listener: TcpListener) {
    let scrapes = Arc::new(AtomicU64::new(0));
    // Bounded: a test lasts well under 2000 one-second scrapes.
    for _ in 0..2000 {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).await;
        let labels = r#"reporter="destination",destination_workload_namespace="test",destination_workload="podinfo""#;
        let body = format!(
            "# TYPE istio_requests_total counter\n\
             istio_requests_total{{{labels},response_code=\"200\"}} {}\n\
             istio_requests_total{{{labels},response_code=\"500\"}} {}\n",
            n * 99,
            n
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
    }
}

fn canary(metrics_server: Option<&str>, min: f64) -> Canary {
    let mut canary = support::canary_from(
        &support::compat_dir()
            .join("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml"),
    );
    canary.spec.metrics_server = metrics_server.map(str::to_string);
    let analysis = canary.spec.analysis.as_mut().unwrap();
    analysis.webhooks.clear();
    analysis
        .metrics
        .retain(|metric| metric.name == "request-success-rate");
    analysis.metrics[0].interval = Some("30s".parse().unwrap());
    analysis.metrics[0].threshold_range = Some(ThresholdRange {
        min: Some(min),
        max: None,
    });
    canary
}

async fn verdict(canary: &Canary) -> Verdict {
    let cluster = Cluster::default();
    let subject = Subject::new(canary, &cluster, "istio").unwrap();
    PrometheusChecks::default()
        .check(&subject, &Default::default())
        .await
}

#[tokio::test]
async fn the_success_rate_is_read_from_prometheus_and_held_against_its_range() {
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let exporter = tokio::spawn(exporter(listener));
    let prometheus = Prometheus::start(&format!(
        "- job_name: istio\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
    ))
    .await;

    // Until Prometheus holds two scrapes there is no rate: the check
    // fails (no value), never passes.
    let passing = canary(Some(&prometheus.url), 98.0);
    let mut last = Verdict::Fail(String::new());
    for _ in 0..60 {
        last = verdict(&passing).await;
        if last == Verdict::Pass {
            break;
        }
        let Verdict::Fail(reason) = &last else {
            unreachable!()
        };
        assert!(reason.contains("metric request-success-rate"), "{reason}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(last, Verdict::Pass);

    let failing = canary(Some(&prometheus.url), 99.5);
    let Verdict::Fail(reason) = verdict(&failing).await else {
        panic!("99% is below 99.5")
    };
    assert!(
        reason.starts_with("metric request-success-rate 99") && reason.contains("outside 99.5.."),
        "{reason}"
    );
    exporter.abort();
}

#[tokio::test]
async fn what_is_not_evaluated_fails_by_name() {
    let mut canary = canary(None, 99.0);
    let Verdict::Fail(reason) = verdict(&canary).await else {
        panic!("no Prometheus cannot pass")
    };
    assert!(reason.contains("no Prometheus"), "{reason}");

    canary.spec.metrics_server = Some("http://127.0.0.1:9".into());
    let analysis = canary.spec.analysis.as_mut().unwrap();
    analysis.metrics[0].name = "error-rate".into();
    analysis.metrics[0].query = Some("sum(rate(errors[1m]))".into());
    let Verdict::Fail(reason) = verdict(&canary).await else {
        panic!("an inline query is not evaluated yet")
    };
    assert!(reason.contains("metric error-rate: template"), "{reason}");

    let bare = {
        let mut bare = canary.clone();
        bare.spec.analysis.as_mut().unwrap().metrics.clear();
        bare
    };
    assert_eq!(verdict(&bare).await, Verdict::Pass);
}
