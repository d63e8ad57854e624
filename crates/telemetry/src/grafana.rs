//! A Grafana dashboard for one canary, generated from its file: the seed's
//! panels (error rate and p95 latency, stable vs canary) plus p99,
//! throughput, canary weight, phase, failed checks, each template metric,
//! and the verdicts as annotations. Pure: canary in, JSON out.
//!
//! Every query filters on `canary="NAME"`, so one Prometheus scraping a
//! daemon with many canaries serves every dashboard. Panels pick the
//! Prometheus data source through the `datasource` variable, so the JSON
//! imports as is into any Grafana.

use serde_json::{Value, json};
use serin_spec::{BuiltinMetric, MetricSource, ResolvedCanary};

/// Grafana's dashboard schema version this generator writes.
pub const SCHEMA_VERSION: u64 = 39;

/// Panel width in Grafana's 24-column grid: two panels per row.
const HALF: u64 = 12;
/// Panel height in grid units.
const HEIGHT: u64 = 8;

/// The dashboard model (what Grafana's "Import dashboard" and provisioning
/// files take) for `resolved`.
pub fn dashboard(resolved: &ResolvedCanary<'_>) -> Value {
    let canary = resolved.canary;
    let name = canary.name();
    let sel = format!("canary=\"{}\"", promql_escape(name));
    let mut layout = Layout::default();
    let mut panels = Vec::new();

    let success_min = builtin_bound(resolved, BuiltinMetric::RequestSuccessRate, |r| r.0);
    let error_threshold = success_min.map(|min| 100.0 - min);
    // PromQL returns nothing, not 0, while there is no 5xx series: the
    // numerator falls back to 0 so a healthy version draws a 0 line rather
    // than "No data". The denominator does not: without requests there is
    // no error rate to draw.
    panels.push(timeseries(
        layout.next(),
        "Error Rate",
        "percent",
        ["stable", "canary"]
            .iter()
            .zip(["A", "B"])
            .map(|(version, id)| {
                target(
                    &format!(
                        "(sum(rate(http_requests_total{{{sel}, status=~\"5..\", version=\"{version}\"}}[$__rate_interval])) or vector(0)) / sum(rate(http_requests_total{{{sel}, version=\"{version}\"}}[$__rate_interval])) * 100"
                    ),
                    &capitalized(version),
                    id,
                )
            })
            .collect(),
        error_threshold,
    ));
    let duration_max = builtin_bound(resolved, BuiltinMetric::RequestDurationP95, |r| r.1);
    panels.push(latency_panel(layout.next(), &sel, 0.95, duration_max));
    let p99_max = builtin_bound(resolved, BuiltinMetric::RequestDuration, |r| r.1)
        .or_else(|| builtin_bound(resolved, BuiltinMetric::RequestDurationP99, |r| r.1));
    panels.push(latency_panel(layout.next(), &sel, 0.99, p99_max));
    panels.push(timeseries(
        layout.next(),
        "Throughput",
        "reqps",
        ["stable", "canary"]
            .iter()
            .zip(["A", "B"])
            .map(|(version, id)| {
                // A version without requests has no series: draw 0.
                target(
                    &format!(
                        "sum(rate(http_requests_total{{{sel}, version=\"{version}\"}}[$__rate_interval])) or vector(0)"
                    ),
                    &capitalized(version),
                    id,
                )
            })
            .collect(),
        None,
    ));
    let mut weight = timeseries(
        layout.next(),
        "Canary Weight",
        "percent",
        vec![target(
            &format!("serin_canary_weight{{{sel}}}"),
            "Canary weight",
            "A",
        )],
        None,
    );
    weight["fieldConfig"]["defaults"]["min"] = json!(0);
    weight["fieldConfig"]["defaults"]["max"] = json!(100);
    weight["fieldConfig"]["defaults"]["custom"]["lineInterpolation"] = json!("stepAfter");
    panels.push(weight);
    panels.push(json!({
        "type": "stat",
        "title": "Phase and Failed Checks",
        "datasource": datasource(),
        "gridPos": layout.next(),
        "targets": [
            target(&format!("serin_canary_phase{{{sel}}} == 1"), "{{phase}}", "A"),
            target(&format!("serin_canary_failed_checks{{{sel}}}"), "failed checks", "B"),
        ],
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
            "textMode": "value_and_name",
            "colorMode": "none",
            "graphMode": "none",
        },
        "fieldConfig": {"defaults": {}, "overrides": []},
    }));

    for resolved_metric in &resolved.metrics {
        let metric = resolved_metric.metric;
        let metric_name = promql_escape(&metric.name);
        let mut targets = vec![target(
            &format!("serin_canary_metric_value{{{sel}, metric=\"{metric_name}\"}}"),
            "{{version}} (as judged)",
            "A",
        )];
        let title = match resolved_metric.source {
            MetricSource::Builtin(_) => format!("Metric: {}", metric.name),
            MetricSource::Template(template) => {
                if template.spec.provider.provider_type == "prometheus"
                    && let Some(query) = &template.spec.query
                {
                    // The template's own query, straight from Prometheus:
                    // `{{ version }}` becomes each version in turn.
                    let vars = serin_providers::metrics::vars_for(canary, metric);
                    if let Ok(compiled) = serin_providers::metric_http::QueryTemplate::compile(
                        query,
                        &vars,
                        "spec.query",
                    ) {
                        let versions: &[serin_stats::Version] = if compiled.per_version() {
                            &serin_stats::Version::ALL
                        } else {
                            &[serin_stats::Version::Canary]
                        };
                        for (version, id) in versions.iter().zip(["B", "C"]) {
                            targets.push(target(
                                &compiled.render(*version),
                                &format!("{version} (template)"),
                                id,
                            ));
                        }
                    }
                }
                format!(
                    "Metric: {} ({} template {})",
                    metric.name,
                    template.spec.provider.provider_type,
                    template.name()
                )
            }
            MetricSource::InlineQuery(_) => format!("Metric: {} (inline query)", metric.name),
        };
        let range = metric.effective_range().unwrap_or_default();
        let mut panel = timeseries(layout.next(), &title, "short", targets, None);
        let mut steps = vec![json!({"color": "green", "value": null})];
        if let Some(max) = range.max {
            steps.push(json!({"color": "red", "value": max}));
        }
        if let Some(min) = range.min {
            steps[0] = json!({"color": "red", "value": null});
            steps.insert(1, json!({"color": "green", "value": min}));
        }
        if range.min.is_some() || range.max.is_some() {
            panel["fieldConfig"]["defaults"]["thresholds"] =
                json!({"mode": "absolute", "steps": steps});
            panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = json!({"mode": "line"});
        }
        panels.push(panel);
    }
    panels.push(json!({
        "type": "table",
        "title": "Metric Verdicts",
        "datasource": datasource(),
        "gridPos": layout.full(),
        "targets": [{
            "refId": "A",
            "datasource": datasource(),
            "expr": format!("serin_canary_metric_status{{{sel}}} == 1"),
            "format": "table",
            "instant": true,
        }],
        "options": {"showHeader": true},
        "fieldConfig": {"defaults": {}, "overrides": []},
        "transformations": [{
            "id": "organize",
            "options": {"excludeByName": {"Time": true, "Value": true, "__name__": true, "instance": true, "job": true}},
        }],
    }));
    for (index, panel) in panels.iter_mut().enumerate() {
        panel["id"] = json!(index + 1);
    }

    json!({
        "title": format!("Canary: {name}"),
        "uid": uid_for(name),
        "description": format!("serin canary {name}: stable vs canary, weight, decisions. Generated by `serin grafana`."),
        "tags": ["serin", "canary"],
        "timezone": "browser",
        "editable": true,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "options": [],
        }]},
        "annotations": {"list": [
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": true,
                "hide": true,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            },
            annotation(
                "Failed checks and rollbacks",
                "red",
                &format!("changes(serin_canary_decisions_total{{{sel}, verdict=~\"fail|rollback\"}}[1m]) > 0"),
                "{{verdict}}",
            ),
            annotation(
                "Promotions",
                "green",
                &format!("changes(serin_canary_promotions_total{{{sel}}}[1m]) > 0"),
                "promoted",
            ),
            annotation(
                "Rollbacks",
                "orange",
                &format!("changes(serin_canary_rollbacks_total{{{sel}}}[1m]) > 0"),
                "rolled back",
            ),
        ]},
        "panels": panels,
    })
}

/// The dashboard wrapped for Grafana's HTTP API (`POST /api/dashboards/db`),
/// the seed's form.
pub fn for_api(dashboard: Value) -> Value {
    json!({"dashboard": dashboard, "overwrite": true})
}

/// A stable uid from the canary's name: Grafana allows 40 characters of
/// `[A-Za-z0-9_-]`.
pub fn uid_for(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut uid = format!("serin-{cleaned}");
    uid.truncate(40);
    uid
}

/// Escapes a label value for a PromQL string literal.
fn promql_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `thresholdRange` as (min, max).
type Bounds = (Option<f64>, Option<f64>);

/// A bound of a builtin metric's `thresholdRange`, picked by `pick`.
fn builtin_bound(
    resolved: &ResolvedCanary<'_>,
    builtin: BuiltinMetric,
    pick: fn(Bounds) -> Option<f64>,
) -> Option<f64> {
    resolved.metrics.iter().find_map(|m| match m.source {
        MetricSource::Builtin(b) if b == builtin => {
            let range = m.metric.effective_range().unwrap_or_default();
            pick((range.min, range.max))
        }
        _ => None,
    })
}

fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

fn target(expr: &str, legend: &str, ref_id: &str) -> Value {
    json!({
        "refId": ref_id,
        "datasource": datasource(),
        "expr": expr,
        "legendFormat": legend,
        "range": true,
    })
}

fn annotation(name: &str, color: &str, expr: &str, title: &str) -> Value {
    json!({
        "name": name,
        "datasource": datasource(),
        "enable": true,
        "iconColor": color,
        "expr": expr,
        "step": "15s",
        "titleFormat": title,
        "useValueForTime": false,
    })
}

fn latency_panel(grid: Value, sel: &str, quantile: f64, max_ms: Option<f64>) -> Value {
    let title = format!("Latency P{}", (quantile * 100.0).round());
    timeseries(
        grid,
        &title,
        "s",
        ["stable", "canary"]
            .iter()
            .zip(["A", "B"])
            .map(|(version, id)| {
                target(
                    &format!(
                        "histogram_quantile({quantile}, sum(rate(http_request_duration_seconds_bucket{{{sel}, version=\"{version}\"}}[$__rate_interval])) by (le))"
                    ),
                    &capitalized(version),
                    id,
                )
            })
            .collect(),
        // Thresholds are in milliseconds in canary files, seconds here.
        max_ms.map(|ms| ms / 1000.0),
    )
}

fn timeseries(
    grid: Value,
    title: &str,
    unit: &str,
    targets: Vec<Value>,
    limit: Option<f64>,
) -> Value {
    let mut panel = json!({
        "type": "timeseries",
        "title": title,
        "datasource": datasource(),
        "gridPos": grid,
        "targets": targets,
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 10, "spanNulls": true},
            },
            "overrides": [
                {"matcher": {"id": "byName", "options": "Stable"},
                 "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]},
                {"matcher": {"id": "byName", "options": "Canary"},
                 "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "orange"}}]},
            ],
        },
    });
    if let Some(limit) = limit {
        panel["fieldConfig"]["defaults"]["thresholds"] = json!({
            "mode": "absolute",
            "steps": [{"color": "green", "value": null}, {"color": "red", "value": limit}],
        });
        panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = json!({"mode": "line"});
    }
    panel
}

/// Places panels two per row, top to bottom.
#[derive(Default)]
struct Layout {
    index: u64,
    y: u64,
}

impl Layout {
    fn next(&mut self) -> Value {
        let x = if self.index.is_multiple_of(2) {
            0
        } else {
            HALF
        };
        let grid = json!({"h": HEIGHT, "w": HALF, "x": x, "y": self.y});
        self.index += 1;
        if self.index.is_multiple_of(2) {
            self.y += HEIGHT;
        }
        grid
    }

    fn full(&mut self) -> Value {
        if !self.index.is_multiple_of(2) {
            self.index += 1;
            self.y += HEIGHT;
        }
        let grid = json!({"h": HEIGHT, "w": 2 * HALF, "x": 0, "y": self.y});
        self.y += HEIGHT;
        grid
    }
}
