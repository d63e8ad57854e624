//! From a resolved canary to its custom metrics: one [`MetricQuery`] per
//! metric backed by a `MetricTemplate` (or Flagger's inline `query`), each
//! chosen by the template's provider type, never by a branch in the runtime.

use crate::{
    metric_http::{SetupError, TemplateVars},
    prometheus::PrometheusQuery,
    web::WebQuery,
};
use serin_rollout::ports::MetricQuery;
use serin_spec::{Canary, Metric, MetricProvider, MetricSource, Problem, ResolvedCanary};
use std::sync::Arc;

/// Metric provider types `serin run` and `serin serve` can query.
pub const SUPPORTED_PROVIDERS: &[&str] = &["prometheus", "web"];

/// The custom metrics of `resolved`, in order, or one problem per metric
/// that cannot be queried (each naming its field). Built-in metrics are
/// measured by the proxy and yield nothing here. Credential files are read now.
pub fn metric_queries(
    resolved: &ResolvedCanary<'_>,
) -> Result<Vec<Arc<dyn MetricQuery>>, Vec<Problem>> {
    let canary = resolved.canary;
    let mut queries: Vec<Arc<dyn MetricQuery>> = Vec::new();
    let mut problems = Vec::new();
    for (index, resolved_metric) in resolved.metrics.iter().enumerate() {
        let metric = resolved_metric.metric;
        let path = format!("spec.analysis.metrics[{index}]");
        let vars = vars_for(canary, metric);
        match resolved_metric.source {
            MetricSource::Builtin(_) => {}
            MetricSource::Template(template) => {
                let provider = &template.spec.provider;
                let query = template.spec.query.as_deref();
                let built: Result<Arc<dyn MetricQuery>, SetupError> = match provider
                    .provider_type
                    .as_str()
                {
                    "prometheus" => PrometheusQuery::new(
                        &metric.name,
                        provider,
                        query.unwrap_or_default(),
                        &vars,
                    )
                    .map(|q| Arc::new(q.with_template(template.name())) as Arc<dyn MetricQuery>),
                    "web" => WebQuery::new(&metric.name, provider, query, &vars).map(|q| {
                        Arc::new(q.with_template(template.name())) as Arc<dyn MetricQuery>
                    }),
                    other => {
                        problems.push(Problem::new(
                                format!("{path}.templateRef"),
                                format!(
                                    "MetricTemplate {:?} uses provider type {other:?}, which serin cannot query yet; supported: {}",
                                    template.name(),
                                    SUPPORTED_PROVIDERS.join(", ")
                                ),
                            ));
                        continue;
                    }
                };
                match built {
                    Ok(query) => queries.push(query),
                    Err(error) => problems.push(Problem::new(
                        format!("{path}.templateRef"),
                        format!("MetricTemplate {:?}: {error}", template.name()),
                    )),
                }
            }
            MetricSource::InlineQuery(query) => {
                let Some(address) = canary.spec.metrics_server.clone() else {
                    problems.push(Problem::new(
                        format!("{path}.query"),
                        "an inline query runs against spec.metricsServer, which is not set; set it or use a MetricTemplate",
                    ));
                    continue;
                };
                let provider = MetricProvider {
                    provider_type: "prometheus".into(),
                    address: Some(address),
                    ..MetricProvider::default()
                };
                match PrometheusQuery::new(&metric.name, &provider, query, &vars) {
                    Ok(query) => queries.push(Arc::new(query)),
                    Err(error) => problems.push(Problem::new(
                        format!("{path}.query"),
                        format!("{error} (spec.metricsServer)"),
                    )),
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(queries)
    } else {
        Err(problems)
    }
}

/// Placeholder values for one metric of a canary, as Flagger fills them.
pub fn vars_for(canary: &Canary, metric: &Metric) -> TemplateVars {
    let name = canary.name().to_owned();
    let target = canary
        .spec
        .target_ref
        .as_ref()
        .map(|t| t.name.clone())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| name.clone());
    let service = canary
        .spec
        .service
        .name
        .clone()
        .unwrap_or_else(|| target.clone());
    TemplateVars {
        namespace: canary
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name,
        target,
        service,
        interval: metric
            .interval
            .as_ref()
            .map(|i| i.as_str().to_owned())
            .unwrap_or_else(|| "1m".into()),
        variables: metric.template_variables.clone(),
    }
}
