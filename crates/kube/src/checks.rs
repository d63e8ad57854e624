//! The analysis of `serin controller`: each built-in metric of a canary
//! (`request-success-rate`, `request-duration`, …) queried from Prometheus
//! with the PromQL its provider's series call for ([`builtin_query`]),
//! through serin's Prometheus adapter, and held against the metric's
//! accepted range as Flagger does. What the controller does not evaluate
//! yet (template and inline-query metrics, webhooks) fails the check by
//! name: a canary never advances unexamined.

use futures_util::future::BoxFuture;
use serin_providers::{PrometheusQuery, metric_http::TemplateVars};
use serin_rollout::{Timestamp, ports::MetricQuery};
use serin_spec::{BuiltinMetric, Metric, MetricProvider, ThresholdRange};
use serin_stats::Version;

use crate::{
    Subject,
    controller::{Checks, Verdict},
    metrics::{Side, builtin_query},
    resource::CanaryStatus,
};

/// Flagger's default metric window.
const DEFAULT_INTERVAL: &str = "1m";

/// Checks a canary's built-in metrics against Prometheus.
#[derive(Clone, Debug, Default)]
pub struct PrometheusChecks {
    /// The Prometheus where a canary names no `spec.metricsServer`
    /// (Flagger's `-metrics-server`); none: such canaries fail, saying so.
    pub default_address: Option<String>,
}

// === impl PrometheusChecks ===

impl PrometheusChecks {
    /// Checks against `default_address` where a canary names no server.
    pub fn new(default_address: Option<String>) -> Self {
        Self { default_address }
    }

    async fn verdict(&self, subject: &Subject<'_>) -> Verdict {
        let canary = subject.canary();
        let analysis = canary.analysis();
        let mut failures = Vec::new();
        for metric in &analysis.metrics {
            if let Err(reason) = self.metric(subject, metric).await {
                failures.push(reason);
            }
        }
        failures.extend(analysis.webhooks.iter().map(|webhook| {
            format!(
                "webhook {}: not evaluated in controller mode yet",
                webhook.name
            )
        }));
        if failures.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(failures.join("; "))
        }
    }

    /// One metric: `Ok` when its value is in range.
    async fn metric(&self, subject: &Subject<'_>, metric: &Metric) -> Result<(), String> {
        let name = &metric.name;
        let Some(builtin) = metric.builtin() else {
            return Err(format!(
                "metric {name}: template and inline-query metrics are not evaluated in controller mode yet"
            ));
        };
        let interval = metric
            .interval
            .as_ref()
            .map_or_else(|| DEFAULT_INTERVAL.to_string(), ToString::to_string);
        let promql = builtin_query(subject, builtin, Side::Canary, &interval).ok_or_else(|| {
            format!(
                "metric {name}: provider {} has no built-in series; use a MetricTemplate",
                subject.provider()
            )
        })?;
        let canary = subject.canary();
        let address = canary
            .spec
            .metrics_server
            .clone()
            .or_else(|| self.default_address.clone())
            .ok_or_else(|| {
                format!("metric {name}: no Prometheus: set spec.metricsServer or --metrics-server")
            })?;
        let provider = MetricProvider {
            provider_type: "prometheus".into(),
            address: Some(address),
            ..MetricProvider::default()
        };
        let vars = TemplateVars {
            namespace: subject.namespace().to_string(),
            name: canary.name().to_string(),
            target: subject.target_name().to_string(),
            service: subject.target_name().to_string(),
            interval,
            variables: Default::default(),
        };
        let query = PrometheusQuery::new(name, &provider, &promql, &vars)
            .map_err(|error| format!("metric {name}: {error}"))?;
        let value = query
            .query(Version::Canary, Timestamp(0))
            .await
            .map_err(|error| format!("metric {name}: {error}"))?
            .ok_or_else(|| format!("metric {name}: no value"))?;
        let range = range(metric, builtin);
        let below = range.min.is_some_and(|min| value < min);
        let above = range.max.is_some_and(|max| value > max);
        if below || above {
            return Err(format!(
                "metric {name} {value} outside {}..{}",
                range.min.map(|min| min.to_string()).unwrap_or_default(),
                range.max.map(|max| max.to_string()).unwrap_or_default(),
            ));
        }
        Ok(())
    }
}

impl Checks for PrometheusChecks {
    fn check<'a>(
        &'a self,
        subject: &'a Subject<'a>,
        _status: &'a CanaryStatus,
    ) -> BoxFuture<'a, Verdict> {
        Box::pin(self.verdict(subject))
    }
}

/// The accepted range: `thresholdRange`, else Flagger's deprecated
/// `threshold`, a minimum for the success rate and a maximum otherwise.
fn range(metric: &Metric, builtin: BuiltinMetric) -> ThresholdRange {
    match (metric.threshold_range, metric.threshold) {
        (Some(range), _) => range,
        (None, Some(min)) if builtin == BuiltinMetric::RequestSuccessRate => ThresholdRange {
            min: Some(min),
            max: None,
        },
        (None, threshold) => ThresholdRange {
            min: None,
            max: threshold,
        },
    }
}
