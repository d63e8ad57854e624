//! Flagger's built-in metrics as PromQL per provider: what
//! `request-success-rate` and `request-duration` mean against a mesh's or
//! an ingress's own series (Flagger's `pkg/metrics/observers`), for the
//! canary's workload (`canary`) or the primary's (`primary`, the baseline
//! serin's `compare` and sequential judge read).
//!
//! `{{ interval }}` is the metric's window (`analysis.metrics[].interval`).

use serin_spec::BuiltinMetric;

use crate::subject::Subject;

/// Which side of the rollout a query measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The canary workload (`TARGET`).
    Canary,
    /// The primary workload (`TARGET-primary`).
    Primary,
}

/// The PromQL of a built-in metric for `subject` on `side` over `interval`
/// (Prometheus duration text, e.g. `1m`); `None` where the provider has no
/// built-in series (Gateway API, `kubernetes`: use a `MetricTemplate`).
pub fn builtin_query(
    subject: &Subject<'_>,
    metric: BuiltinMetric,
    side: Side,
    interval: &str,
) -> Option<String> {
    let namespace = subject.namespace();
    match subject.provider() {
        "istio" => {
            let workload = match side {
                Side::Canary => subject.target_name().to_string(),
                Side::Primary => subject.primary_workload_name(),
            };
            let selector = format!(
                "reporter=\"destination\",destination_workload_namespace=\"{namespace}\",destination_workload=~\"{workload}\""
            );
            Some(match metric {
                BuiltinMetric::RequestSuccessRate => format!(
                    "sum(rate(istio_requests_total{{{selector},response_code!~\"5.*\"}}[{interval}])) / sum(rate(istio_requests_total{{{selector}}}[{interval}])) * 100"
                ),
                BuiltinMetric::RequestRate => {
                    format!("sum(rate(istio_requests_total{{{selector}}}[{interval}]))")
                }
                duration => format!(
                    "histogram_quantile({}, sum(rate(istio_request_duration_milliseconds_bucket{{{selector}}}[{interval}])) by (le))",
                    quantile(duration)
                ),
            })
        }
        "nginx" => {
            let ingress = &subject.canary().spec.ingress_ref.as_ref()?.name;
            // ingress-nginx labels canary traffic with the canary Ingress's
            // name in `canary`; the primary's has it empty.
            let canary = match side {
                Side::Canary => "canary!=\"\"",
                Side::Primary => "canary=\"\"",
            };
            let selector = format!("namespace=\"{namespace}\",ingress=\"{ingress}\",{canary}");
            Some(match metric {
                BuiltinMetric::RequestSuccessRate => format!(
                    "sum(rate(nginx_ingress_controller_requests{{{selector},status!~\"5.*\"}}[{interval}])) / sum(rate(nginx_ingress_controller_requests{{{selector}}}[{interval}])) * 100"
                ),
                // Flagger's `request-duration` for nginx is the mean.
                BuiltinMetric::RequestDuration => format!(
                    "sum(rate(nginx_ingress_controller_response_duration_seconds_sum{{{selector}}}[{interval}])) / sum(rate(nginx_ingress_controller_response_duration_seconds_count{{{selector}}}[{interval}])) * 1000"
                ),
                BuiltinMetric::RequestRate => format!(
                    "sum(rate(nginx_ingress_controller_requests{{{selector}}}[{interval}]))"
                ),
                percentile => format!(
                    "histogram_quantile({}, sum(rate(nginx_ingress_controller_request_duration_seconds_bucket{{{selector}}}[{interval}])) by (le)) * 1000",
                    quantile(percentile)
                ),
            })
        }
        _ => None,
    }
}

/// The cumulative series serin's own judge reads for one side: its request
/// counter, the same counter for server errors, and its latency histogram's
/// buckets, each summed over the side's pods (`sum`, `sum by (le)`). The
/// controller reads them over a query range and takes differences between
/// consecutive points, so the judge sees per-step counts of both versions
/// as `serve` sees per-second counts from its proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficSeries {
    /// Requests answered (a counter).
    pub requests: String,
    /// Requests answered with a 5xx (a counter).
    pub errors: String,
    /// The latency histogram's buckets, by `le`.
    pub buckets: String,
    /// Milliseconds per unit of the buckets' `le` (1 for Istio's
    /// milliseconds, 1000 for ingress-nginx's seconds).
    pub bucket_unit_ms: f64,
}

/// The series of [`TrafficSeries`] for `subject` on `side`; `None` where
/// the provider has no built-in series (as [`builtin_query`]).
pub fn traffic_series(subject: &Subject<'_>, side: Side) -> Option<TrafficSeries> {
    let namespace = subject.namespace();
    match subject.provider() {
        "istio" => {
            let workload = match side {
                Side::Canary => subject.target_name().to_string(),
                Side::Primary => subject.primary_workload_name(),
            };
            let selector = format!(
                "reporter=\"destination\",destination_workload_namespace=\"{namespace}\",destination_workload=~\"{workload}\""
            );
            Some(TrafficSeries {
                requests: format!("sum(istio_requests_total{{{selector}}})"),
                errors: format!("sum(istio_requests_total{{{selector},response_code=~\"5.*\"}})"),
                buckets: format!(
                    "sum by (le) (istio_request_duration_milliseconds_bucket{{{selector}}})"
                ),
                bucket_unit_ms: 1.0,
            })
        }
        "nginx" => {
            let ingress = &subject.canary().spec.ingress_ref.as_ref()?.name;
            let canary = match side {
                Side::Canary => "canary!=\"\"",
                Side::Primary => "canary=\"\"",
            };
            let selector = format!("namespace=\"{namespace}\",ingress=\"{ingress}\",{canary}");
            Some(TrafficSeries {
                requests: format!("sum(nginx_ingress_controller_requests{{{selector}}})"),
                errors: format!(
                    "sum(nginx_ingress_controller_requests{{{selector},status=~\"5.*\"}})"
                ),
                buckets: format!(
                    "sum by (le) (nginx_ingress_controller_request_duration_seconds_bucket{{{selector}}})"
                ),
                bucket_unit_ms: 1000.0,
            })
        }
        _ => None,
    }
}

/// The quantile of a latency metric (`request-duration` is Flagger's p99).
fn quantile(metric: BuiltinMetric) -> &'static str {
    match metric {
        BuiltinMetric::RequestDurationP50 => "0.5",
        BuiltinMetric::RequestDurationP95 => "0.95",
        _ => "0.99",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cluster;

    fn canary(provider: &str) -> serin_spec::Canary {
        let text = format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test}}\nspec:\n  provider: {provider}\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\n  ingressRef: {{apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}}\n  service: {{port: 80}}\n"
        );
        serin_spec::load_documents("c.yaml", &text)
            .expect("valid")
            .first()
            .and_then(|document| document.as_canary().cloned())
            .expect("a canary")
    }

    /// Flagger's Istio observer, `request-success-rate` and `request-duration`.
    #[test]
    fn istio_queries_are_flaggers() {
        let canary = canary("istio");
        let cluster = Cluster::default();
        let subject = Subject::new(&canary, &cluster, "istio").expect("valid");
        assert_eq!(
            builtin_query(
                &subject,
                BuiltinMetric::RequestSuccessRate,
                Side::Canary,
                "1m"
            )
            .as_deref(),
            Some(
                "sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"podinfo\",response_code!~\"5.*\"}[1m])) / sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"podinfo\"}[1m])) * 100"
            )
        );
        assert_eq!(
            builtin_query(
                &subject,
                BuiltinMetric::RequestDuration,
                Side::Primary,
                "30s"
            )
            .as_deref(),
            Some(
                "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"podinfo-primary\"}[30s])) by (le))"
            )
        );
    }

    /// Flagger's nginx observer.
    #[test]
    fn nginx_queries_are_flaggers() {
        let canary = canary("nginx");
        let cluster = Cluster::default();
        let subject = Subject::new(&canary, &cluster, "nginx").expect("valid");
        assert_eq!(
            builtin_query(
                &subject,
                BuiltinMetric::RequestSuccessRate,
                Side::Canary,
                "1m"
            )
            .as_deref(),
            Some(
                "sum(rate(nginx_ingress_controller_requests{namespace=\"test\",ingress=\"podinfo\",canary!=\"\",status!~\"5.*\"}[1m])) / sum(rate(nginx_ingress_controller_requests{namespace=\"test\",ingress=\"podinfo\",canary!=\"\"}[1m])) * 100"
            )
        );
        assert_eq!(
            builtin_query(&subject, BuiltinMetric::RequestDuration, Side::Canary, "1m").as_deref(),
            Some(
                "sum(rate(nginx_ingress_controller_response_duration_seconds_sum{namespace=\"test\",ingress=\"podinfo\",canary!=\"\"}[1m])) / sum(rate(nginx_ingress_controller_response_duration_seconds_count{namespace=\"test\",ingress=\"podinfo\",canary!=\"\"}[1m])) * 1000"
            )
        );
    }

    /// The counters and buckets the judge reads, per side.
    #[test]
    fn traffic_series_are_the_providers_counters() {
        let canary = canary("istio");
        let cluster = Cluster::default();
        let subject = Subject::new(&canary, &cluster, "istio").expect("valid");
        let primary = traffic_series(&subject, Side::Primary).expect("istio has series");
        let selector = "reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"podinfo-primary\"";
        assert_eq!(
            primary.requests,
            format!("sum(istio_requests_total{{{selector}}})")
        );
        assert_eq!(
            primary.errors,
            format!("sum(istio_requests_total{{{selector},response_code=~\"5.*\"}})")
        );
        assert_eq!(
            primary.buckets,
            format!("sum by (le) (istio_request_duration_milliseconds_bucket{{{selector}}})")
        );
        let canary = self::canary("nginx");
        let subject = Subject::new(&canary, &cluster, "nginx").expect("valid");
        let series = traffic_series(&subject, Side::Canary).expect("nginx has series");
        assert_eq!(
            series.errors,
            "sum(nginx_ingress_controller_requests{namespace=\"test\",ingress=\"podinfo\",canary!=\"\",status=~\"5.*\"})"
        );
        assert_eq!(series.bucket_unit_ms, 1000.0);
        let canary = self::canary("kubernetes");
        let subject = Subject::new(&canary, &cluster, "kubernetes").expect("valid");
        assert_eq!(traffic_series(&subject, Side::Canary), None);
    }

    #[test]
    fn providers_without_builtin_series_say_so() {
        let canary = canary("kubernetes");
        let cluster = Cluster::default();
        let subject = Subject::new(&canary, &cluster, "kubernetes").expect("valid");
        assert_eq!(
            builtin_query(
                &subject,
                BuiltinMetric::RequestSuccessRate,
                Side::Canary,
                "1m"
            ),
            None
        );
    }
}
