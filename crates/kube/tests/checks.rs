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

use serde_json::json;
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
    verdict_with(canary, PrometheusChecks::default()).await
}

async fn verdict_with(canary: &Canary, checks: PrometheusChecks) -> Verdict {
    let cluster = Cluster::default();
    let subject = Subject::new(canary, &cluster, "istio").unwrap();
    checks.check(&subject, &Default::default()).await
}

/// A client whose one request must be the GET of `path`, answered `answer`.
fn api_answering(path: &'static str, answer: serde_json::Value) -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("one request");
        assert_eq!(request.method().as_str(), "GET");
        assert_eq!(request.uri().path(), path);
        send.send_response(
            http::Response::builder()
                .body(kube::client::Body::from(
                    serde_json::to_vec(&answer).unwrap(),
                ))
                .unwrap(),
        );
    });
    kube::Client::new(service, "default")
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
        reason.starts_with("metric request-success-rate 9") && reason.contains("outside 99.5.."),
        "{reason}"
    );

    // A MetricTemplate read from the API, its query filled in: the error
    // rate in percent, 1 of every 100 requests.
    let mut templated = canary(Some(&prometheus.url), 0.0);
    let metric = &mut templated.spec.analysis.as_mut().unwrap().metrics[0];
    metric.name = "error-rate".into();
    metric.template_ref = Some(serin_spec::ObjectReference {
        name: "error-rate".into(),
        namespace: Some("flagger-system".into()),
        ..Default::default()
    });
    metric.threshold_range = Some(ThresholdRange {
        min: None,
        max: Some(0.5),
    });
    let template = json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
        "metadata": {"name": "error-rate", "namespace": "flagger-system"},
        "spec": {
            "provider": {"type": "prometheus", "address": prometheus.url},
            "query": "100 * sum(rate(istio_requests_total{destination_workload_namespace=\"{{ namespace }}\",destination_workload=\"{{ target }}\",response_code=~\"5.*\"}[{{ interval }}])) / sum(rate(istio_requests_total{destination_workload_namespace=\"{{ namespace }}\",destination_workload=\"{{ target }}\"}[{{ interval }}]))"
        }
    });
    let path = "/apis/flagger.app/v1beta1/namespaces/flagger-system/metrictemplates/error-rate";
    let checks = PrometheusChecks::new(None, Some(api_answering(path, template.clone())));
    let Verdict::Fail(reason) = verdict_with(&templated, checks).await else {
        panic!("1% errors is above 0.5")
    };
    assert!(
        reason.starts_with("metric error-rate 0.99") || reason.starts_with("metric error-rate 1"),
        "{reason}"
    );
    assert!(reason.contains("outside ..0.5"), "{reason}");
    templated.spec.analysis.as_mut().unwrap().metrics[0].threshold_range = Some(ThresholdRange {
        min: None,
        max: Some(2.0),
    });
    let checks = PrometheusChecks::new(None, Some(api_answering(path, template)));
    assert_eq!(verdict_with(&templated, checks).await, Verdict::Pass);
    exporter.abort();
}

#[tokio::test]
async fn what_is_not_evaluated_fails_by_name() {
    let mut canary = canary(None, 99.0);
    let Verdict::Fail(reason) = verdict(&canary).await else {
        panic!("no Prometheus cannot pass")
    };
    assert!(reason.contains("no Prometheus"), "{reason}");

    // A template of another provider.
    let metric = &mut canary.spec.analysis.as_mut().unwrap().metrics[0];
    metric.name = "latency".into();
    metric.template_ref = Some(serin_spec::ObjectReference {
        name: "latency".into(),
        ..Default::default()
    });
    let template = json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
        "metadata": {"name": "latency", "namespace": "test"},
        "spec": {"provider": {"type": "datadog"}, "query": "avg:latency{*}"}
    });
    let checks = PrometheusChecks::new(
        None,
        Some(api_answering(
            "/apis/flagger.app/v1beta1/namespaces/test/metrictemplates/latency",
            template,
        )),
    );
    let Verdict::Fail(reason) = verdict_with(&canary, checks).await else {
        panic!("datadog is not evaluated yet")
    };
    assert!(
        reason.contains("metric latency: MetricTemplate test/latency: provider type \"datadog\""),
        "{reason}"
    );

    // Webhooks.
    let mut hooked = canary.clone();
    let analysis = hooked.spec.analysis.as_mut().unwrap();
    analysis.metrics.clear();
    analysis.webhooks = support::canary_from(
        &support::compat_dir()
            .join("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml"),
    )
    .spec
    .analysis
    .unwrap()
    .webhooks;
    let Verdict::Fail(reason) = verdict(&hooked).await else {
        panic!("webhooks are not evaluated yet")
    };
    assert!(reason.contains("webhook "), "{reason}");

    let mut bare = canary.clone();
    bare.spec.analysis.as_mut().unwrap().metrics.clear();
    assert_eq!(verdict(&bare).await, Verdict::Pass);
}
