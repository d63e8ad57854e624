//! The generated Grafana dashboard: a snapshot, and the structure Grafana
//! needs to import it as is.

use serde_json::Value;
use serin_spec::Catalog;

const CANARY: &str = r#"
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: shop}
spec:
  provider: builtin
  service: {listen: 127.0.0.1:8080}
  upstreams: {stable: http://127.0.0.1:9001, canary: http://127.0.0.1:9002}
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
    - name: request-duration
      thresholdRange: {max: 500}
    - name: conversion-rate
      templateRef: {name: conversion-rate}
      direction: higher
      thresholdRange: {min: 2}
      compare: {maxDelta: 0.5}
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: conversion-rate}
spec:
  provider: {type: prometheus, address: "http://127.0.0.1:9090"}
  query: sum(rate(orders_total{version="{{ version }}"}[{{ interval }}])) / sum(rate(http_requests_total{canary="{{ name }}", version="{{ version }}"}[{{ interval }}])) * 100
"#;

fn dashboard() -> Value {
    let catalog = Catalog::from_documents(serin_spec::load_documents("shop.yaml", CANARY).unwrap());
    let canary = catalog.canary("shop").unwrap();
    let resolved = catalog.resolve_for_run(canary).unwrap();
    serin_telemetry::grafana::dashboard(&resolved)
}

#[test]
fn snapshot() {
    insta::assert_json_snapshot!(dashboard());
}

#[test]
fn importable_structure() {
    let d = dashboard();
    assert_eq!(d["title"], "Canary: shop");
    assert_eq!(d["uid"], "serin-shop");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(d.get("id").is_none(), "an id would clash on import");
    assert_eq!(d["templating"]["list"][0]["type"], "datasource");
    assert_eq!(d["templating"]["list"][0]["query"], "prometheus");

    let panels = d["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "unique ids");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24 && grid["h"].as_u64().unwrap() > 0, "{grid}");
        assert!(["timeseries", "stat", "table"].contains(&panel["type"].as_str().unwrap()));
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty());
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(!expr.contains("{{ "), "placeholders filled: {expr}");
            assert_eq!(target["datasource"]["uid"], "${datasource}");
            assert!(target["refId"].is_string());
        }
    }
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "Error Rate",
        "Latency P95",
        "Latency P99",
        "Throughput",
        "Canary Weight",
        "Metric Verdicts",
    ] {
        assert!(titles.contains(&wanted), "{wanted} in {titles:?}");
    }
    // The seed's queries, filtered to this canary; the 5xx side reads 0
    // rather than nothing while there is no 5xx series, so a healthy
    // version draws a 0 line instead of "No data".
    let error = &panels[0]["targets"];
    assert_eq!(
        error[1]["expr"],
        "(sum(rate(http_requests_total{canary=\"shop\", status=~\"5..\", version=\"canary\"}[$__rate_interval])) or vector(0)) / sum(rate(http_requests_total{canary=\"shop\", version=\"canary\"}[$__rate_interval])) * 100"
    );
    assert_eq!(error[0]["legendFormat"], "Stable");
    for (target, version) in error.as_array().unwrap().iter().zip(["stable", "canary"]) {
        let expr = target["expr"].as_str().unwrap();
        let (numerator, _) = expr.split_once(" / ").unwrap();
        assert!(
            numerator.contains(&format!("status=~\"5..\", version=\"{version}\""))
                && numerator.ends_with(" or vector(0))"),
            "{expr}"
        );
    }
    let throughput = panels.iter().find(|p| p["title"] == "Throughput").unwrap();
    for target in throughput["targets"].as_array().unwrap() {
        assert!(
            target["expr"].as_str().unwrap().ends_with(" or vector(0)"),
            "{target}"
        );
    }
    let p95 = panels.iter().find(|p| p["title"] == "Latency P95").unwrap();
    assert!(p95["targets"][1]["expr"]
        .as_str()
        .unwrap()
        .starts_with("histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{canary=\"shop\", version=\"canary\"}"));
    // The template metric: serin's judged value and the template's own query per version.
    let conversion = panels
        .iter()
        .find(|p| {
            p["title"]
                .as_str()
                .unwrap()
                .starts_with("Metric: conversion-rate")
        })
        .unwrap();
    let exprs: Vec<&str> = conversion["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(
        exprs[0]
            .starts_with("serin_canary_metric_value{canary=\"shop\", metric=\"conversion-rate\"}")
    );
    assert!(
        exprs[1].contains("version=\"stable\"}[1m]") && exprs[2].contains("version=\"canary\"")
    );
    // Verdicts as annotations.
    let annotations = d["annotations"]["list"].as_array().unwrap();
    assert!(annotations.iter().any(|a| {
        a["expr"]
            .as_str()
            .is_some_and(|e| e.contains("serin_canary_decisions_total"))
    }));
    // The API form wraps it.
    let api = serin_telemetry::grafana::for_api(d.clone());
    assert_eq!(api["dashboard"], d);
}
