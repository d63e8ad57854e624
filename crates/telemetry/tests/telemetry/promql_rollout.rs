//! Whole rollouts decided by PromQL: a real Prometheus scrapes serin's
//! `/metrics` every second, and the canary's only metric is a
//! MetricTemplate querying `http_requests_total` by version there.

use serin_demo::{Backend, Behaviour, LoadSpec, load};
use serin_server::{Prepared, Update};
use serin_spec::Catalog;
use serin_telemetry::Telemetry;
use serin_testkit::{Prometheus, free_port};
use std::time::Duration;
use tokio::sync::broadcast;

const CANARY: &str = r#"
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: shop}
spec:
  provider: builtin
  service: {listen: "127.0.0.1:{proxy_port}"}
  upstreams: {stable: "{stable}", canary: "{canary}"}
  analysis:
    judge: threshold
    interval: 4s
    threshold: 3
    stepWeights: [50]
    metrics:
{metrics}
---
{template}
"#;

const SUCCESS_RATE: (&str, &str) = (
    r#"    - name: success-by-promql
      templateRef: {name: success-rate}
      interval: 10s
      thresholdRange: {min: 95}"#,
    r#"apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: success-rate}
spec:
  provider:
    type: prometheus
    address: "{prometheus}"
  query: |
    sum(rate(http_requests_total{canary="{{ name }}", version="{{ version }}", status!~"5.."}[{{ interval }}]))
    /
    sum(rate(http_requests_total{canary="{{ name }}", version="{{ version }}"}[{{ interval }}]))
    * 100"#,
);

/// The docs' error-rate metric (docs/templates/error-rate.yaml), at most 1 %.
const ERROR_RATE_METRIC: &str = r#"    - name: error-rate
      templateRef: {name: error-rate}
      interval: 10s
      thresholdRange: {max: 1}"#;

fn error_rate_template(with_fallback: bool) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/templates/error-rate.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    // The document without its leading comment.
    let text =
        text[text.find("apiVersion:").unwrap()..].replace("http://127.0.0.1:9090", "{prometheus}");
    if with_fallback {
        text
    } else {
        let bare = text
            .replace(" or vector(0)", "")
            .replace("(sum(", "sum(")
            .replace("])))", "]))");
        assert!(!bare.contains("vector("), "{bare}");
        bare
    }
}

struct Outcome {
    promoted: bool,
    message: String,
    /// Values of the metric the judge saw, canary side.
    canary_values: Vec<f64>,
    /// Canary weights Prometheus recorded from serin's `/metrics`.
    weights_scraped: Vec<f64>,
    /// The rollout's warnings, as published.
    warnings: Vec<String>,
}

async fn rollout(canary_error_rate: f64) -> Outcome {
    rollout_with(canary_error_rate, SUCCESS_RATE.0, SUCCESS_RATE.1).await
}

async fn rollout_with(canary_error_rate: f64, metrics: &str, template: &str) -> Outcome {
    let started = std::time::Instant::now();
    let metrics_port = free_port();
    let prometheus = Prometheus::start(&format!(
        "- job_name: serin\n  static_configs:\n  - targets: ['127.0.0.1:{metrics_port}']\n"
    ))
    .await;
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable"))
        .await
        .unwrap();
    let canary = Backend::start(
        local,
        Behaviour {
            error_rate: canary_error_rate,
            ..Behaviour::healthy("canary")
        },
    )
    .await
    .unwrap();
    let proxy_port = free_port();
    let yaml = CANARY
        .replace("{metrics}", metrics)
        .replace("{template}", template)
        .replace("{proxy_port}", &proxy_port.to_string())
        .replace("{stable}", &stable.url())
        .replace("{canary}", &canary.url())
        .replace("{prometheus}", &prometheus.url);
    let catalog = Catalog::from_documents(serin_spec::load_documents("shop.yaml", &yaml).unwrap());
    let prepared = Prepared::from_catalog(&catalog, None, "shop.yaml").unwrap();
    assert_eq!(prepared.analysis.metrics.len(), 1, "PromQL alone decides");

    let (updates, mut watch) = broadcast::channel(4096);
    let telemetry = Telemetry::new();
    telemetry.watch("shop".into(), updates.subscribe());
    let running = serin_server::start(prepared, updates).await.unwrap();
    telemetry.add_traffic("shop", running.recorder.clone());
    let _server = serin_telemetry::serve(
        std::net::SocketAddr::from(([127, 0, 0, 1], metrics_port)),
        telemetry.clone(),
    )
    .await
    .unwrap();

    // Bounded load: 60 requests/s for at most 60 s.
    let mut spec = LoadSpec::new(
        format!("http://{}/", running.listen).parse().unwrap(),
        Some(60.0),
        Duration::from_secs(60),
    );
    spec.concurrency = 4;
    spec.max_requests = Some(3_600);
    let load = tokio::spawn(load::run(spec));

    let collect = tokio::spawn(async move {
        let mut values = Vec::new();
        let mut warnings = Vec::new();
        while let Ok(update) = watch.recv().await {
            match update {
                Update::Decision { decision, .. } => {
                    values.extend(decision.metrics.iter().filter_map(|m| m.canary));
                }
                Update::Record { record, .. }
                    if record.severity == serin_rollout::Severity::Warning =>
                {
                    warnings.push(record.message);
                }
                _ => {}
            }
        }
        (values, warnings)
    });
    let state = tokio::time::timeout(Duration::from_secs(90), running.outcome())
        .await
        .expect("rollout within 90 s")
        .unwrap();
    load.abort();
    let (canary_values, warnings) = collect.await.unwrap();

    // What Prometheus scraped from serin while the rollout ran.
    let weights = serin_providers::PrometheusQuery::new(
        "w",
        &serin_spec::MetricProvider {
            provider_type: "prometheus".into(),
            address: Some(prometheus.url.clone()),
            ..Default::default()
        },
        "max_over_time(serin_canary_weight{canary=\"shop\"}[2m])",
        &Default::default(),
    )
    .unwrap();
    use serin_rollout::ports::MetricQuery;
    let max_weight = weights
        .query(
            serin_stats::Version::Canary,
            serin_rollout::Timestamp::from_millis(0),
        )
        .await
        .unwrap();
    eprintln!(
        "canary error rate {canary_error_rate}: {} after {:?}; judged canary values {canary_values:?}; max weight scraped {max_weight:?}",
        state.phase,
        started.elapsed()
    );
    Outcome {
        promoted: serin_server::promoted(&state),
        message: state.message.clone(),
        canary_values,
        weights_scraped: max_weight.into_iter().collect(),
        warnings,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_by_promql() {
    let outcome = rollout(0.0).await;
    assert!(outcome.promoted, "{}", outcome.message);
    assert!(
        outcome
            .canary_values
            .iter()
            .any(|v| (*v - 100.0).abs() < 1e-9),
        "the judge saw Prometheus's 100 % success: {:?}",
        outcome.canary_values
    );
    assert_eq!(
        outcome.weights_scraped,
        vec![50.0],
        "Prometheus scraped the 50 % step"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_by_promql() {
    let outcome = rollout(0.4).await;
    assert!(!outcome.promoted, "{}", outcome.message);
    assert!(
        outcome.canary_values.iter().any(|v| *v < 90.0),
        "the judge saw Prometheus's low success rate: {:?}",
        outcome.canary_values
    );
}

/// The docs' error-rate template on a healthy canary: no 5xx series at all,
/// yet the judge reads 0 % and promotes, instead of counting "no values" as
/// failed checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_error_rate_template_promotes_a_canary_without_5xx() {
    let outcome = rollout_with(0.0, ERROR_RATE_METRIC, &error_rate_template(true)).await;
    assert!(
        outcome.promoted,
        "{}: {:?}",
        outcome.message, outcome.warnings
    );
    assert!(
        outcome.canary_values.contains(&0.0),
        "the judge saw 0 %: {:?}",
        outcome.canary_values
    );
    assert!(
        !outcome
            .warnings
            .iter()
            .any(|w| w.contains("returned no series")),
        "{:?}",
        outcome.warnings
    );
}

/// The same query without "or vector(0)": what Flagger users see, a healthy
/// canary failing its checks, but with every warning saying why and how to
/// fix it, once (the runtime adds no second metric name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_or_vector_0_the_warnings_explain_the_failed_checks() {
    let outcome = rollout_with(0.0, ERROR_RATE_METRIC, &error_rate_template(false)).await;
    assert!(!outcome.promoted, "{}", outcome.message);
    let explained: Vec<_> = outcome
        .warnings
        .iter()
        .filter(|w| w.contains("returned no series"))
        .collect();
    assert!(!explained.is_empty(), "{:?}", outcome.warnings);
    for warning in explained {
        assert!(
            (warning.starts_with(
                "error-rate (template error-rate, canary): the query returned no series — "
            ) || warning.starts_with(
                "error-rate (template error-rate, stable): the query returned no series — "
            )) && warning.contains("append \"or vector(0)\" to the query to read 0"),
            "{warning}"
        );
    }
}
