//! The JSON/HTTP provider against a real JSON endpoint on loopback.

use super::support::JsonServer;
use serin_providers::{WebQuery, metrics::vars_for};
use serin_rollout::{
    Timestamp,
    ports::{MetricQuery, PortError},
};
use serin_spec::{Catalog, MetricProvider, MetricSource, load_documents};
use serin_stats::Version;
use std::time::Duration;

fn answer(path: &str) -> (u16, String, Duration) {
    match path {
        "/orders/canary" => (
            200,
            r#"{"data": {"items": [{"value": 2.5}]}}"#.into(),
            Duration::ZERO,
        ),
        "/orders/stable" => (
            200,
            r#"{"data": {"items": [{"value": "3.25"}]}}"#.into(),
            Duration::ZERO,
        ),
        "/empty" => (
            200,
            r#"{"data": {"items": [{"value": null}]}}"#.into(),
            Duration::ZERO,
        ),
        "/no-items" => (200, r#"{"data": {"items": []}}"#.into(), Duration::ZERO),
        "/words" => (200, r#"{"data": {"items": "none"}}"#.into(), Duration::ZERO),
        "/slow" => (200, "{}".into(), Duration::from_secs(5)),
        "/huge" => (
            200,
            format!("\"{}\"", "x".repeat(2 * 1024 * 1024)),
            Duration::ZERO,
        ),
        "/down" => (503, r#"{"error": "warming up"}"#.into(), Duration::ZERO),
        _ => (404, "{}".into(), Duration::ZERO),
    }
}

fn provider(address: String) -> MetricProvider {
    MetricProvider {
        provider_type: "web".into(),
        address: Some(address),
        json_path: Some("{$.data.items[0].value}".into()),
        ..MetricProvider::default()
    }
}

fn query(provider: &MetricProvider, body: Option<&str>) -> WebQuery {
    WebQuery::new("orders", provider, body, &Default::default()).expect("valid web metric")
}

#[tokio::test]
async fn one_url_answers_for_both_versions_with_headers_and_token() {
    let server = JsonServer::start(answer).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let mut p = provider(format!("{}/orders/{{{{ version }}}}", server.url()));
    p.bearer_token_file = Some(token.display().to_string());
    p.headers.insert("X-Tenant".into(), vec!["shop".into()]);
    let q = query(&p, None);
    let now = Timestamp::from_millis(0);
    assert_eq!(q.query(Version::Canary, now).await.unwrap(), Some(2.5));
    assert_eq!(q.query(Version::Stable, now).await.unwrap(), Some(3.25));
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer t0ken"));
    assert_eq!(seen[0].custom.as_deref(), Some("shop"));
}

#[tokio::test]
async fn a_query_is_posted_and_null_is_no_value_explained() {
    let server = JsonServer::start(answer).await;
    let q = query(
        &provider(format!("{}/empty", server.url())),
        Some(r#"{"metric": "orders", "version": "{{ version }}"}"#),
    )
    .with_template("orders-per-minute");
    let e = q
        .query(Version::Canary, Timestamp::from_millis(0))
        .await
        .unwrap_err();
    assert!(matches!(e, PortError::NoValue(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "orders (template orders-per-minute, canary): jsonPath \"{{$.data.items[0].value}}\" found nothing: it leads to null — the endpoint has no value there for canary; have it answer 0 when there is nothing to count (or fix jsonPath); answer from {}/empty: {{\"data\": {{\"items\": [{{\"value\": null}}]}}}}",
            server.url()
        )
    );
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body, r#"{"metric": "orders", "version": "canary"}"#);
}

#[tokio::test]
async fn without_version_only_the_canary_is_asked() {
    let server = JsonServer::start(answer).await;
    let q = query(&provider(format!("{}/orders/canary", server.url())), None);
    assert_eq!(
        q.query(Version::Stable, Timestamp::from_millis(0))
            .await
            .unwrap(),
        None
    );
    assert!(server.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn failures_are_clear_errors() {
    let server = JsonServer::start(answer).await;
    let now = Timestamp::from_millis(0);
    let down = query(&provider(format!("{}/down", server.url())), None);
    let e = down
        .query(Version::Canary, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTP 503") && e.contains("warming up"), "{e}");

    let mut slow = provider(format!("{}/slow", server.url()));
    slow.timeout = Some(
        serin_spec::Duration::parse("300ms").unwrap_or_else(|_| serin_spec::Duration::from_secs(1)),
    );
    let started = std::time::Instant::now();
    let e = query(&slow, None)
        .query(Version::Canary, now)
        .await
        .unwrap_err();
    assert!(matches!(e, PortError::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // The path finds nothing: no value, explained.
    let empty = query(&provider(format!("{}/no-items", server.url())), None);
    let e = empty.query(Version::Canary, now).await.unwrap_err();
    assert!(matches!(e, PortError::NoValue(_)), "{e:?}");
    let e = e.to_string();
    assert!(
        e.starts_with("orders (web metric, canary): jsonPath \"{$.data.items[0].value}\" found nothing: no element 0 at step 3 (the array has 0 elements) — ")
            && e.contains("have it answer 0"),
        "{e}"
    );
    // The path runs into something that cannot hold it: an error.
    let words = query(&provider(format!("{}/words", server.url())), None);
    let e = words.query(Version::Canary, now).await.unwrap_err();
    assert!(matches!(e, PortError::Refused { .. }), "{e:?}");
    assert!(e.to_string().contains("(found a string)"), "{e}");

    let huge = query(&provider(format!("{}/huge", server.url())), None);
    let e = huge
        .query(Version::Canary, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than 1048576 bytes"), "{e}");

    let refused = query(&provider("http://127.0.0.1:1/x".into()), None);
    let e = refused.query(Version::Canary, now).await.unwrap_err();
    assert!(matches!(e, PortError::Unavailable { .. }), "{e}");
}

#[test]
fn a_canary_file_builds_its_web_metric_or_names_the_field() {
    let yaml = r#"
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: shop}
spec:
  provider: builtin
  service: {listen: 127.0.0.1:8080}
  upstreams: {stable: http://127.0.0.1:9001, canary: http://127.0.0.1:9002}
  analysis:
    interval: 10s
    stepWeight: 20
    metrics:
    - name: orders
      templateRef: {name: orders}
      templateVariables: {kind: paid}
      thresholdRange: {min: 1}
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: orders}
spec:
  provider:
    type: web
    address: "http://127.0.0.1:9/orders/{{ variables.kind }}/{{ version }}?ns={{ namespace }}"
    jsonPath: value
"#;
    let catalog = Catalog::from_documents(load_documents("shop.yaml", yaml).unwrap());
    let canary = catalog.canary("shop").unwrap();
    let resolved = catalog.resolve_for_run(canary).unwrap();
    let queries = serin_providers::metric_queries(&resolved).unwrap();
    assert_eq!(queries.len(), 1);
    assert_eq!(queries[0].name(), "orders");
    let MetricSource::Template(_) = resolved.metrics[0].source else {
        panic!("template")
    };
    let vars = vars_for(canary, resolved.metrics[0].metric);
    assert_eq!(vars.namespace, "default");
    assert_eq!(vars.interval, "1m");

    let broken = yaml.replace("{{ variables.kind }}", "{{ variables.zone }}");
    let catalog = Catalog::from_documents(load_documents("shop.yaml", &broken).unwrap());
    let resolved = catalog
        .resolve_for_run(catalog.canary("shop").unwrap())
        .unwrap();
    let problems = serin_providers::metric_queries(&resolved)
        .err()
        .expect("problems");
    assert_eq!(
        problems[0].to_string(),
        "spec.analysis.metrics[0].templateRef: MetricTemplate \"orders\": spec.provider.address: {{ variables.zone }} has no value: set templateVariables.zone on the metric"
    );
}
