//! `serin controller`'s analysis against a real Prometheus scraping an
//! exporter of Istio's series for both versions: serin's judge fed both
//! versions' traffic, its evidence kept and resumed, a regression rolled
//! back, and what is not evaluated failing by name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::json;
use serin_kube::{
    Cluster, Subject,
    checks::PrometheusChecks,
    controller::{Checks, Judgement, Request, Verdict},
    resource::{AnalysisRecord, CanaryStatus},
};
use serin_spec::{Canary, Compare, ThresholdRange};
use serin_testkit::{ports::free_port, prometheus::Prometheus};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// Istio's request counter and latency histogram for `podinfo` and
/// `podinfo-primary` in two namespaces: each scrape adds 100 requests per
/// workload; in `test` the canary fails 1 of them, in `bad` 10, the
/// primary none. Latencies: 90 under 10 ms, the rest under 100 ms.
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
        let mut body = String::from(
            "# TYPE istio_requests_total counter\n# TYPE istio_request_duration_milliseconds histogram\n",
        );
        for (namespace, canary_errors) in [("test", 1), ("bad", 10)] {
            for (workload, errors) in [("podinfo", canary_errors), ("podinfo-primary", 0)] {
                let labels = format!(
                    r#"reporter="destination",destination_workload_namespace="{namespace}",destination_workload="{workload}""#
                );
                body.push_str(&format!(
                    "istio_requests_total{{{labels},response_code=\"200\"}} {}\n\
                     istio_requests_total{{{labels},response_code=\"500\"}} {}\n\
                     istio_request_duration_milliseconds_bucket{{{labels},le=\"10\"}} {}\n\
                     istio_request_duration_milliseconds_bucket{{{labels},le=\"100\"}} {}\n\
                     istio_request_duration_milliseconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                     istio_request_duration_milliseconds_sum{{{labels}}} {}\n\
                     istio_request_duration_milliseconds_count{{{labels}}} {}\n",
                    n * (100 - errors),
                    n * errors,
                    n * 90,
                    n * 100,
                    n * 100,
                    n * 1000,
                    n * 100,
                ));
            }
        }
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
    analysis.metrics[0].interval = Some("30s".parse().unwrap());
    analysis.metrics[0].threshold_range = Some(ThresholdRange {
        min: Some(min),
        max: None,
    });
    canary
}

/// A revision under analysis at `weight`.
fn progressing(weight: i64) -> CanaryStatus {
    CanaryStatus {
        phase: Some("Progressing".into()),
        canary_weight: weight,
        last_applied_spec: Some("rev".into()),
        ..CanaryStatus::default()
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

async fn judge(
    canary: &Canary,
    checks: &PrometheusChecks,
    status: &CanaryStatus,
    saved: Option<&AnalysisRecord>,
) -> Judgement {
    let cluster = Cluster::default();
    let subject = Subject::new(canary, &cluster, "istio").unwrap();
    checks
        .check(Request {
            subject: &subject,
            status,
            saved,
            now_ms: now_ms(),
        })
        .await
}

async fn verdict(canary: &Canary) -> Verdict {
    verdict_with(canary, PrometheusChecks::default()).await
}

async fn verdict_with(canary: &Canary, checks: PrometheusChecks) -> Verdict {
    judge(canary, &checks, &progressing(20), None).await.verdict
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
async fn the_judge_reads_both_versions_from_prometheus_and_keeps_its_evidence() {
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let exporter = tokio::spawn(exporter(listener));
    let prometheus = Prometheus::start(&format!(
        "- job_name: istio\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
    ))
    .await;
    let checks = PrometheusChecks::new(Some(prometheus.url.clone()), None);

    // Until Prometheus holds a few scrapes the judge has too few requests:
    // it holds, never passes or fails.
    let passing = canary(None, 98.0);
    let status = progressing(20);
    let mut first = None;
    for _ in 0..60 {
        let judgement = judge(&passing, &checks, &status, None).await;
        match &judgement.verdict {
            Verdict::Pass => {
                first = Some(judgement);
                break;
            }
            Verdict::Hold(_) => {}
            other => panic!("1% errors, p99 under 100 ms: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first = first
        .expect("the judge passes once it has the traffic")
        .record
        .unwrap();
    assert_eq!(first.revision, "rev");
    assert_eq!(first.weight, 20);
    assert!(first.evidence.is_some());
    let decision = first.decision.as_ref().unwrap();
    let success = &decision.metrics[0];
    assert_eq!(success.name, "request-success-rate");
    // Both versions' requests, read from Prometheus, are behind the estimates.
    assert!(success.canary_requests >= 200, "{success:?}");
    assert!(success.stable_requests >= 200, "{success:?}");
    let rate = success.canary.unwrap();
    assert!((98.5..=99.5).contains(&rate), "{rate}");
    assert_eq!(success.stable, Some(100.0));
    let duration = &decision.metrics[1];
    let p99 = duration.canary.unwrap();
    assert!((10.0..=100.0).contains(&p99), "{p99}");

    // The next pass resumes the saved evidence and reads only what came
    // since: the estimate's requests keep growing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = judge(&passing, &checks, &status, Some(&first))
        .await
        .record
        .unwrap();
    assert!(second.observed_until > first.observed_until);
    let resumed = &second.decision.as_ref().unwrap();
    assert!(
        resumed.metrics[0].canary_requests > success.canary_requests,
        "{resumed:?}"
    );
    assert!(
        !resumed
            .reasons
            .iter()
            .any(|reason| reason.contains("not resumed"))
    );
    // Evidence that cannot be resumed is said so, and judged afresh.
    let mut broken = first.clone();
    broken.evidence = Some("{}".into());
    let afresh = judge(&passing, &checks, &status, Some(&broken))
        .await
        .record
        .unwrap();
    let afresh = afresh.decision.unwrap();
    assert!(
        afresh
            .reasons
            .iter()
            .any(|reason| reason.contains("saved evidence not resumed")),
        "{afresh:?}"
    );
    // Another revision's evidence is not this one's.
    let mut other = first.clone();
    other.revision = "older".into();
    let fresh = judge(&passing, &checks, &status, Some(&other)).await;
    let fresh = fresh.record.unwrap().decision.unwrap();
    assert!(
        !fresh
            .reasons
            .iter()
            .any(|reason| reason.contains("not resumed"))
    );

    // A canary failing 10 % of its requests against a primary failing
    // none, with a margin of 1 point: rolled back on the evidence, never
    // passed on the way.
    let mut regressed = canary(None, 0.0);
    regressed.metadata.namespace = Some("bad".into());
    regressed.spec.analysis.as_mut().unwrap().metrics[0].compare = Some(Compare {
        max_delta: Some(1.0),
        max_ratio: None,
    });
    let mut saved: Option<AnalysisRecord> = None;
    let mut last = Verdict::Pass;
    for _ in 0..60 {
        let judgement = judge(&regressed, &checks, &status, saved.as_ref()).await;
        saved = judgement.record;
        last = judgement.verdict;
        match &last {
            Verdict::Rollback(_) => break,
            Verdict::Pass => panic!("a 10-point regression passed"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Verdict::Rollback(reason) = last else {
        panic!("not rolled back: {last:?}")
    };
    assert!(reason.contains("request-success-rate"), "{reason}");
    let harm = &saved.unwrap().decision.unwrap().metrics[0];
    assert!(harm.e_value.is_some_and(|e| e >= 100.0), "{harm:?}");

    // The Prometheus answers with the `kubernetes` provider: no built-in
    // series, said so.
    let mut blue_green = canary(None, 98.0);
    blue_green.spec.provider = Some("kubernetes".into());
    let cluster = Cluster::default();
    let subject = Subject::new(&blue_green, &cluster, "kubernetes").unwrap();
    let judgement = checks
        .check(Request {
            subject: &subject,
            status: &status,
            saved: None,
            now_ms: now_ms(),
        })
        .await;
    let Verdict::Fail(reason) = judgement.verdict else {
        panic!("no series cannot pass")
    };
    assert!(
        reason.contains("provider kubernetes has no built-in series"),
        "{reason}"
    );
    exporter.abort();
}

/// A `MetricTemplate` read from the API and run against Prometheus: its
/// value judged against the metric's range, as `serve` judges a template.
#[tokio::test]
async fn a_template_metric_is_read_from_the_api_and_judged() {
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let exporter = tokio::spawn(exporter(listener));
    let prometheus = Prometheus::start(&format!(
        "- job_name: istio\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
    ))
    .await;
    // The error rate in percent, 1 of every 100 requests.
    let mut templated = canary(Some(&prometheus.url), 0.0);
    let analysis = templated.spec.analysis.as_mut().unwrap();
    analysis.metrics.truncate(1);
    let metric = &mut analysis.metrics[0];
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
    // Until Prometheus holds two scrapes there is no rate: the check
    // fails (no value), never passes.
    let mut last = Verdict::Pass;
    for _ in 0..60 {
        let checks = PrometheusChecks::new(None, Some(api_answering(path, template.clone())));
        last = verdict_with(&templated, checks).await;
        let Verdict::Fail(reason) = &last else {
            panic!("1% errors is above 0.5: {last:?}")
        };
        assert!(reason.contains("error-rate"), "{reason}");
        if !reason.contains("no value") && !reason.contains("NaN") && !reason.contains("no series")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Verdict::Fail(reason) = last else {
        unreachable!()
    };
    assert!(reason.contains("> max 0.5"), "{reason}");
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

    // Webhooks are the reconciler's (tests/hooks.rs): the port judges
    // the metrics alone and does not fail a canary for having webhooks.
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
    assert!(!hooked.analysis().webhooks.is_empty());
    assert_eq!(verdict(&hooked).await, Verdict::Pass);

    let mut bare = canary.clone();
    bare.spec.analysis.as_mut().unwrap().metrics.clear();
    assert_eq!(verdict(&bare).await, Verdict::Pass);
}
