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
#[cfg(feature = "aws")]
pub const SUPPORTED_PROVIDERS: &[&str] = &["prometheus", "web", "cloudwatch"];
/// Metric provider types `serin run` and `serin serve` can query (built
/// without the AWS SDK: no `cloudwatch`).
#[cfg(not(feature = "aws"))]
pub const SUPPORTED_PROVIDERS: &[&str] = &["prometheus", "web"];

/// The custom metrics of `resolved`, in order, or one problem per metric
/// that cannot be queried (each naming its field). Built-in metrics are
/// measured by the proxy and yield nothing here, except for `provider: alb`,
/// whose built-in metrics come from CloudWatch ([`builtin_from_cloudwatch`]).
/// Credential files are read now.
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
        let interval = metric
            .interval
            .as_ref()
            .map(serin_spec::Duration::as_std)
            .unwrap_or(std::time::Duration::from_secs(60));
        match resolved_metric.source {
            #[cfg(feature = "aws")]
            MetricSource::Builtin(builtin) if builtin_from_cloudwatch(canary) => {
                let kind = match builtin.name() {
                    "request-success-rate" => crate::cloudwatch::AlbMetric::RequestSuccessRate,
                    "request-duration" => crate::cloudwatch::AlbMetric::RequestDuration,
                    other => {
                        problems.push(Problem::new(
                            format!("{path}.name"),
                            format!("{other} is not measured for provider alb: CloudWatch gives request-success-rate and request-duration"),
                        ));
                        continue;
                    }
                };
                let Some(alb) = canary.spec.alb.as_ref() else {
                    problems.push(Problem::new("spec.alb", "required by provider alb"));
                    continue;
                };
                let canary_group = canary
                    .spec
                    .upstreams
                    .as_ref()
                    .and_then(|u| u.canary.as_deref());
                match crate::cloudwatch::AlbBuiltinQuery::new(
                    &metric.name,
                    kind,
                    alb,
                    canary_group,
                    interval,
                ) {
                    Ok(query) => queries.push(Arc::new(query)),
                    Err(error) => {
                        problems.push(Problem::new(format!("{path}.name"), error.to_string()))
                    }
                }
            }
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
                    #[cfg(feature = "aws")]
                    "cloudwatch" => crate::cloudwatch::CloudWatchQuery::new(
                        &metric.name,
                        provider,
                        query.unwrap_or_default(),
                        &vars,
                        interval,
                    )
                    .map(|q| Arc::new(q) as Arc<dyn MetricQuery>),
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

/// Whether `canary`'s built-in metrics come from CloudWatch rather than
/// from requests serin sees: an ALB sends serin no request log, so
/// `request-success-rate` and `request-duration` are read from
/// `AWS/ApplicationELB` per target group, one value per version per
/// analysis, like a template's.
pub fn builtin_from_cloudwatch(canary: &Canary) -> bool {
    cfg!(feature = "aws") && canary.is_alb()
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
