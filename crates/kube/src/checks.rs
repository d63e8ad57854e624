//! The analysis of `serin controller`: the same judge `serve` runs
//! (`serin-analysis`'s [`Analyzer`], configured from the canary by the
//! same mapping, `serin_server::mapping`), fed from Prometheus.
//!
//! At each due pass the built-in metrics' traffic (requests, server
//! errors, latency buckets of the canary and the primary, through the
//! provider's series: [`traffic_series`]) is read over a query range since
//! the last pass and fed to the judge step by step (`observe`, `early`),
//! then the judge evaluates the metrics' windows (`evaluate`). A metric's
//! `MetricTemplate` (provider `prometheus`) read from the API, or its
//! inline `query`, is run through serin's Prometheus adapter and judged as
//! a template is in `serve`. The judge's evidence and decision go back in
//! the [`AnalysisRecord`] the controller keeps on the canary, and are
//! resumed from it at the next pass, on this replica or another.
//!
//! What the controller does not evaluate yet (other providers, credentials
//! from Secrets) fails the check by name: a canary never advances
//! unexamined. Webhooks are not this port's: the reconciler calls them
//! (`controller/hooks.rs`), a failed `rollout` hook before the metrics.

use futures_util::future::BoxFuture;
use kube::{
    Api, Client,
    api::DynamicObject,
    core::{ApiResource, GroupVersionKind},
};
use serin_analysis::{Analyzer, Decision, TickInput};
use serin_providers::{
    PrometheusQuery,
    metric_http::{HttpSource, TemplateVars, check_address},
};
use serin_rollout::{Timestamp, ports::MetricQuery};
use serin_spec::{
    Metric, MetricProvider, MetricSource, MetricTemplate, ResolvedCanary, ResolvedMetric,
};
use serin_stats::{Pair, Version};

use crate::{
    Subject,
    controller::{Checks, Judgement, Request, Verdict},
    metrics::{Side, traffic_series},
    resource::AnalysisRecord,
    traffic,
};

/// The longest span of traffic read at one pass: a controller away for
/// longer (stopped, without the Lease) judges the last hour, not what the
/// canary served before.
const MAX_SPAN_MS: u64 = 3_600_000;

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

    /// The judge's pass: traffic since the last pass observed, the metrics
    /// evaluated, the evidence kept.
    async fn judge(&self, request: Request<'_>) -> Judgement {
        let subject = request.subject;
        let canary = subject.canary();
        let analysis = canary.analysis();
        let revision = request.status.last_applied_spec.clone().unwrap_or_default();
        let weight = u8::try_from(request.status.canary_weight.clamp(0, 100)).unwrap_or(0);
        let now = request.now_ms;

        // The analysis configuration `serve` would judge this canary by.
        let metrics = analysis
            .metrics
            .iter()
            .map(|metric| ResolvedMetric {
                metric,
                // Only the kind matters to the mapping: a template's or an
                // inline query's value is judged the same way, read below.
                source: metric
                    .builtin()
                    .map_or(MetricSource::InlineQuery(""), MetricSource::Builtin),
            })
            .collect();
        let resolved = ResolvedCanary {
            canary,
            metrics,
            alerts: Vec::new(),
        };
        let plan = serin_server::mapping::plan_for(canary);
        let config = match serin_server::mapping::analysis_for(&resolved, &plan) {
            Ok(config) => config,
            Err(problems) => {
                let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
                return Judgement::only(Verdict::Fail(reasons.join("; ")));
            }
        };
        let mut analyzer = match Analyzer::new(config.clone()) {
            Ok(analyzer) => analyzer,
            Err(error) => return Judgement::only(Verdict::Fail(format!("spec.analysis: {error}"))),
        };

        // The evidence of this revision so far, if any.
        let interval_ms = u64::try_from(analysis.interval().as_millis()).unwrap_or(u64::MAX);
        let mut from = now.saturating_sub(interval_ms);
        let mut notes = Vec::new();
        if let Some(saved) = request.saved.filter(|saved| saved.revision == revision) {
            from = saved.observed_until.min(now);
            if let Some(evidence) = &saved.evidence
                && let Err(error) = analyzer.resume(evidence)
            {
                notes.push(format!(
                    "saved evidence not resumed ({error}); judging afresh"
                ));
            }
            if saved.weight != i64::from(weight) {
                analyzer.step_advanced(from, weight);
            }
        }
        from = from.max(now.saturating_sub(MAX_SPAN_MS));

        let mut failures = Vec::new();
        let has_builtin = analysis
            .metrics
            .iter()
            .any(|metric| metric.builtin().is_some());
        let steps = if has_builtin {
            match self.traffic(subject, &config, from, now).await {
                Ok(steps) => steps,
                Err(reason) => {
                    failures.push(reason);
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let mut observed_until = from;
        let mut early: Option<Decision> = None;
        for (at, delta) in steps.iter().filter(|(at, _)| *at > from) {
            analyzer.observe(*at, weight, delta);
            observed_until = observed_until.max(*at);
            if early.is_none() {
                early = analyzer.early(*at);
            }
        }
        let decision = match early {
            Some(decision) => decision,
            None => {
                let mut input = TickInput::builtin(&config, |span| {
                    let start =
                        now.saturating_sub(u64::try_from(span.as_millis()).unwrap_or(u64::MAX));
                    let mut window = Pair::default();
                    for (_, delta) in steps.iter().filter(|(at, _)| *at > start) {
                        window.merge(delta);
                    }
                    window
                });
                for metric in analysis
                    .metrics
                    .iter()
                    .filter(|metric| metric.builtin().is_none())
                {
                    match self.value(subject, metric).await {
                        Ok(value) => input.push_scalar(&metric.name, Some(value), None),
                        Err(reason) => failures.push(reason),
                    }
                }
                analyzer.evaluate(now, &input)
            }
        };
        let mut decision = decision;
        decision.reasons.extend(notes);
        let why = decision.why();
        let verdict = match decision.verdict {
            serin_analysis::Verdict::Rollback => Verdict::Rollback(why.join("; ")),
            _ if !failures.is_empty() => Verdict::Fail(failures.join("; ")),
            serin_analysis::Verdict::Fail => Verdict::Fail(why.join("; ")),
            serin_analysis::Verdict::Hold => Verdict::Hold(why.join("; ")),
            serin_analysis::Verdict::Pass => Verdict::Pass,
        };
        let record = AnalysisRecord {
            revision,
            observed_until,
            weight: i64::from(weight),
            evidence: analyzer.evidence(),
            decision: Some(decision),
        };
        Judgement {
            verdict,
            record: Some(record),
        }
    }

    /// Both versions' traffic from `from` to `now`, per step, covering the
    /// metrics' longest window too (for `evaluate`).
    async fn traffic(
        &self,
        subject: &Subject<'_>,
        config: &serin_analysis::AnalysisConfig,
        from: u64,
        now: u64,
    ) -> Result<traffic::Steps, String> {
        let (Some(canary), Some(primary)) = (
            traffic_series(subject, Side::Canary),
            traffic_series(subject, Side::Primary),
        ) else {
            return Err(format!(
                "built-in metrics: provider {} has no built-in series; use a MetricTemplate",
                subject.provider()
            ));
        };
        let address = self.server(subject, "built-in metrics")?;
        let base = check_address(&address).map_err(|error| format!("built-in metrics: {error}"))?;
        let endpoint = format!(
            "{}/api/v1/query_range",
            base.to_string().trim_end_matches('/')
        );
        let provider = MetricProvider {
            provider_type: "prometheus".into(),
            address: Some(address.clone()),
            ..MetricProvider::default()
        };
        let source = HttpSource::new(format!("prometheus at {address}"), &provider)
            .map_err(|error| format!("built-in metrics: {error}"))?;
        let window = u64::try_from(config.longest_window().as_millis()).unwrap_or(u64::MAX);
        // One step before `from`, so the first step after it has a baseline.
        let start = from
            .min(now.saturating_sub(window))
            .max(now.saturating_sub(MAX_SPAN_MS))
            .saturating_sub(1000);
        traffic::read(&source, &endpoint, &canary, &primary, start, now)
            .await
            .map_err(|error| format!("built-in metrics: {error}"))
    }

    /// The Prometheus of `subject`: its `spec.metricsServer`, else the
    /// controller's `--metrics-server`.
    fn server(&self, subject: &Subject<'_>, name: &str) -> Result<String, String> {
        subject
            .canary()
            .spec
            .metrics_server
            .clone()
            .or_else(|| self.default_address.clone())
            .ok_or_else(|| {
                format!("{name}: no Prometheus: set spec.metricsServer or --metrics-server")
            })
    }

    /// One template or inline-query metric's canary value.
    async fn value(&self, subject: &Subject<'_>, metric: &Metric) -> Result<f64, String> {
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
        let prometheus = |address: String| MetricProvider {
            provider_type: "prometheus".into(),
            address: Some(address),
            ..MetricProvider::default()
        };
        let query = if let Some(reference) = &metric.template_ref {
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
            PrometheusQuery::new(name, provider, query, &vars)
                .map(|query| query.with_template(&format!("{namespace}/{}", reference.name)))
        } else if let Some(query) = &metric.query {
            PrometheusQuery::new(
                name,
                &prometheus(self.server(subject, &format!("metric {name}"))?),
                query,
                &vars,
            )
        } else {
            return Err(format!(
                "metric {name}: not a built-in metric, and neither templateRef nor query is set"
            ));
        };
        let query = query.map_err(|error| format!("metric {name}: {error}"))?;
        query
            .query(Version::Canary, Timestamp(0))
            .await
            .map_err(|error| format!("metric {name}: {error}"))?
            .ok_or_else(|| format!("metric {name}: no value"))
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
    fn check<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Judgement> {
        Box::pin(self.judge(request))
    }
}
