//! The analysis of `serin controller`: each built-in metric of a canary
//! (`request-success-rate`, `request-duration`, …) queried from Prometheus
//! with the PromQL its provider's series call for ([`builtin_query`]),
//! through serin's Prometheus adapter, and held against the metric's
//! accepted range as Flagger does; a metric's `MetricTemplate` (provider
//! `prometheus`) read from the API, or its inline `query` run against the
//! metrics server, likewise. What the controller does not evaluate yet
//! (other providers, credentials from Secrets, webhooks) fails the check
//! by name: a canary never advances unexamined.

use futures_util::future::BoxFuture;
use kube::{
    Api, Client,
    api::DynamicObject,
    core::{ApiResource, GroupVersionKind},
};
use serin_providers::{PrometheusQuery, metric_http::TemplateVars};
use serin_rollout::{Timestamp, ports::MetricQuery};
use serin_spec::{BuiltinMetric, Metric, MetricProvider, MetricTemplate, ThresholdRange};
use serin_stats::Version;

use crate::{
    Subject,
    controller::{Checks, Verdict},
    metrics::{Side, builtin_query},
    resource::CanaryStatus,
};

/// Flagger's default metric window.
const DEFAULT_INTERVAL: &str = "1m";

/// Checks a canary's metrics against Prometheus.
#[derive(Clone, Default)]
pub struct PrometheusChecks {
    /// The Prometheus where a canary names no `spec.metricsServer`
    /// (Flagger's `-metrics-server`); none: such canaries fail, saying so.
    pub default_address: Option<String>,
    /// Reads the `MetricTemplate`s metrics refer to; none: such metrics
    /// fail, saying so.
    pub client: Option<Client>,
}

// === impl PrometheusChecks ===

impl PrometheusChecks {
    /// Checks against `default_address` where a canary names no server.
    pub fn new(default_address: Option<String>, client: Option<Client>) -> Self {
        Self {
            default_address,
            client,
        }
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
        let canary = subject.canary();
        let interval = metric
            .interval
            .as_ref()
            .map_or_else(|| DEFAULT_INTERVAL.to_string(), ToString::to_string);
        let vars = TemplateVars {
            namespace: subject.namespace().to_string(),
            name: canary.name().to_string(),
            target: subject.target_name().to_string(),
            service: canary
                .spec
                .service
                .name
                .clone()
                .unwrap_or_else(|| subject.target_name().to_string()),
            interval: interval.clone(),
            variables: metric.template_variables.clone(),
        };
        let server = || {
            canary
                .spec
                .metrics_server
                .clone()
                .or_else(|| self.default_address.clone())
                .ok_or_else(|| {
                    format!(
                        "metric {name}: no Prometheus: set spec.metricsServer or --metrics-server"
                    )
                })
        };
        let prometheus = |address: String| MetricProvider {
            provider_type: "prometheus".into(),
            address: Some(address),
            ..MetricProvider::default()
        };
        let (query, range) = if let Some(builtin) = metric.builtin() {
            let promql =
                builtin_query(subject, builtin, Side::Canary, &interval).ok_or_else(|| {
                    format!(
                        "metric {name}: provider {} has no built-in series; use a MetricTemplate",
                        subject.provider()
                    )
                })?;
            let query = PrometheusQuery::new(name, &prometheus(server()?), &promql, &vars);
            (query, builtin_range(metric, builtin))
        } else if let Some(reference) = &metric.template_ref {
            let namespace = reference
                .namespace
                .as_deref()
                .unwrap_or_else(|| subject.namespace());
            let template = self
                .template(namespace, &reference.name)
                .await
                .map_err(|error| {
                    format!(
                        "metric {name}: MetricTemplate {namespace}/{}: {error}",
                        reference.name
                    )
                })?;
            let provider = &template.spec.provider;
            if provider.provider_type != "prometheus" {
                return Err(format!(
                    "metric {name}: MetricTemplate {namespace}/{}: provider type {:?} is not evaluated in controller mode yet (prometheus is)",
                    reference.name, provider.provider_type
                ));
            }
            if provider.secret_ref.is_some() {
                return Err(format!(
                    "metric {name}: MetricTemplate {namespace}/{}: provider.secretRef credentials are not read in controller mode yet",
                    reference.name
                ));
            }
            let query = template.spec.query.as_deref().ok_or_else(|| {
                format!(
                    "metric {name}: MetricTemplate {namespace}/{}: spec.query: required",
                    reference.name
                )
            })?;
            let query = PrometheusQuery::new(name, provider, query, &vars)
                .map(|query| query.with_template(&format!("{namespace}/{}", reference.name)));
            (query, metric.effective_range())
        } else if let Some(query) = &metric.query {
            let query = PrometheusQuery::new(name, &prometheus(server()?), query, &vars);
            (query, metric.effective_range())
        } else {
            return Err(format!(
                "metric {name}: not a built-in metric, and neither templateRef nor query is set"
            ));
        };
        let query = query.map_err(|error| format!("metric {name}: {error}"))?;
        let value = query
            .query(Version::Canary, Timestamp(0))
            .await
            .map_err(|error| format!("metric {name}: {error}"))?
            .ok_or_else(|| format!("metric {name}: no value"))?;
        let range = range.unwrap_or_default();
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

    /// Reads a `flagger.app/v1beta1` MetricTemplate.
    async fn template(&self, namespace: &str, name: &str) -> Result<MetricTemplate, String> {
        let client = self
            .client
            .clone()
            .ok_or_else(|| "no Kubernetes API to read it from".to_string())?;
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("flagger.app", "v1beta1", "MetricTemplate"),
            "metrictemplates",
        );
        let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &resource);
        let object = api.get(name).await.map_err(|error| error.to_string())?;
        let value = serde_json::to_value(&object).map_err(|error| error.to_string())?;
        serde_json::from_value(value).map_err(|error| error.to_string())
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

/// A built-in's accepted range: `thresholdRange`, else Flagger's
/// deprecated `threshold`, a minimum for the success rate and a maximum
/// otherwise.
fn builtin_range(metric: &Metric, builtin: BuiltinMetric) -> Option<ThresholdRange> {
    match (metric.threshold_range, metric.threshold) {
        (None, Some(min)) if builtin == BuiltinMetric::RequestSuccessRate => Some(ThresholdRange {
            min: Some(min),
            max: None,
        }),
        _ => metric.effective_range(),
    }
}
