//! Prometheus as a metric provider: Flagger's `MetricTemplate` with
//! `provider.type: prometheus`, run as an instant query against the HTTP API
//! (`GET /api/v1/query`).
//!
//! The answer must be one number. The rules, and why:
//! - an empty vector is no value, explained ([`PortError::NoValue`]): PromQL
//!   returns nothing rather than 0 when no series match (no 5xx yet), which
//!   Flagger counts as a failed check without saying why; serin names the
//!   metric, the template and the version, and the fix (`or vector(0)`).
//!   The judges see a missing value and apply their own rules (hold, never a
//!   silent pass);
//! - `NaN` (almost always 0/0: a ratio over a window without traffic) and
//!   infinities are no value too, each explained;
//! - several series are an error: picking one would judge an arbitrary pod;
//!   the message asks for an aggregation (`sum(...)`);
//! - a scalar result is taken as is; range vectors and strings are refused;
//!   Prometheus's own errors are passed on.

use crate::metric_http::{
    HttpSource, QueryTemplate, SetupError, TemplateVars, check_address, excerpt, form_encode,
};
use bytes::Bytes;
use http::{Method, Uri};
use serde_json::Value;
use serin_rollout::{
    Timestamp,
    ports::{BoxFuture, MetricQuery, PortError},
};
use serin_spec::MetricProvider;
use serin_stats::Version;

/// One custom metric answered by a Prometheus instant query.
#[derive(Debug)]
pub struct PrometheusQuery {
    name: String,
    /// The `MetricTemplate` it comes from; `None` for an inline query.
    template: Option<String>,
    interval: String,
    endpoint: String,
    query: QueryTemplate,
    source: HttpSource,
}

// === impl PrometheusQuery ===

impl PrometheusQuery {
    /// The metric `name` from a template's provider and query, with the
    /// placeholders other than `{{ version }}` filled from `vars`.
    pub fn new(
        name: &str,
        provider: &MetricProvider,
        query: &str,
        vars: &TemplateVars,
    ) -> Result<Self, SetupError> {
        let address = provider.address.as_deref().unwrap_or_default();
        let base = check_address(address)?;
        let endpoint = format!("{}/api/v1/query", base.to_string().trim_end_matches('/'));
        let query = QueryTemplate::compile(query, vars, "spec.query")?;
        let source = HttpSource::new(format!("prometheus at {}", address.trim()), provider)?;
        Ok(PrometheusQuery {
            name: name.to_owned(),
            template: None,
            interval: vars.interval.clone(),
            endpoint,
            query,
            source,
        })
    }

    /// Names the `MetricTemplate` the query comes from, for messages.
    #[must_use]
    pub fn with_template(mut self, template: &str) -> Self {
        self.template = Some(template.to_owned());
        self
    }

    /// The PromQL this metric runs for `version`.
    pub fn promql(&self, version: Version) -> String {
        self.query.render(version)
    }

    async fn run(&self, version: Version) -> Result<Option<f64>, PortError> {
        if version == Version::Stable && !self.query.per_version() {
            return Ok(None);
        }
        let promql = self.promql(version);
        let uri: Uri = format!("{}?query={}", self.endpoint, form_encode(&promql))
            .parse()
            .map_err(|e| {
                self.source
                    .refused(format!("query does not fit in a URL: {e}"))
            })?;
        let (status, body) = self
            .source
            .fetch(Method::GET, uri, None, Bytes::new())
            .await?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            self.source.refused(format!(
                "HTTP {status}: not a Prometheus API answer: {}",
                excerpt(&body)
            ))
        })?;
        let reading = parse_answer(&answer, status)
            .map_err(|message| self.source.refused(format!("query {promql:?}: {message}")))?;
        match reading {
            Reading::Value(value) => Ok(Some(value)),
            Reading::Missing(missing) => {
                Err(PortError::NoValue(self.explain(version, &missing, &promql)))
            }
        }
    }

    /// Why `reading` holds no value, naming the metric, its template and the
    /// version, and what to do about it.
    fn explain(&self, version: Version, missing: &Missing, promql: &str) -> String {
        let origin = match &self.template {
            Some(template) => format!("template {template}"),
            None => "inline query".to_owned(),
        };
        let why = match missing {
            Missing::NoSeries if has_fallback(promql) => format!(
                "the query returned no series although it has an \"or vector(0)\" fallback: \
                 a part outside the fallback matched nothing (e.g. a ratio's denominator: \
                 no traffic for {version} in the window), so there is nothing to judge; \
                 if a value was expected, check that the selectors match what Prometheus holds for {version}"
            ),
            Missing::NoSeries => format!(
                "the query returned no series — Prometheus returns nothing rather than 0 \
                 when no series match (e.g. no 5xx yet); append \"or vector(0)\" to the query \
                 to read 0 (in a ratio, to its numerator: (sum(...) or vector(0)) / sum(...)); \
                 if a value was expected, check that the selectors match what Prometheus holds for {version}"
            ),
            Missing::NotANumber => format!(
                "the query returned NaN — no traffic in the window: a ratio divided 0 by 0 \
                 (its denominator counted nothing over {}), so there is nothing to judge yet; \
                 it reads a number once {version} serves requests",
                self.interval
            ),
            Missing::Infinite(text) => format!(
                "the query returned {text} — a division by zero: the denominator counted \
                 nothing over {} while the numerator did; check that both count the same requests",
                self.interval
            ),
        };
        format!(
            "{} ({origin}, {version}): {why}; query: {promql}",
            self.name
        )
    }
}

impl MetricQuery for PrometheusQuery {
    fn name(&self) -> &str {
        &self.name
    }

    fn query(
        &self,
        version: Version,
        _now: Timestamp,
    ) -> BoxFuture<'_, Result<Option<f64>, PortError>> {
        // Instant queries are evaluated at Prometheus's own "now": the
        // runtime's clock may be simulated, Prometheus's samples are not.
        Box::pin(self.run(version))
    }
}

/// What an `/api/v1/query` answer holds for one metric.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// One finite number.
    Value(f64),
    /// No number, for a reason worth explaining.
    Missing(Missing),
}

/// Why a readable answer holds no number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    /// An empty vector: no series matched.
    NoSeries,
    /// `NaN`: almost always 0/0, a ratio over a window without traffic.
    NotANumber,
    /// `+Inf` or `-Inf`, as written: a division by zero.
    Infinite(String),
}

/// The one number in an `/api/v1/query` answer, the reason there is none,
/// or (`Err`) why the answer cannot be read as one number.
pub fn parse_answer(answer: &Value, status: http::StatusCode) -> Result<Reading, String> {
    if answer.get("status").and_then(Value::as_str) != Some("success") {
        let kind = answer
            .get("errorType")
            .and_then(Value::as_str)
            .unwrap_or("error");
        let error = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        return Err(format!("HTTP {status}: {kind}: {error}"));
    }
    let data = answer.get("data").ok_or("answer has no data")?;
    let result = data.get("result").ok_or("answer has no data.result")?;
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {
            let series = result.as_array().ok_or("data.result is not a list")?;
            match series.as_slice() {
                [] => Ok(Reading::Missing(Missing::NoSeries)),
                [one] => sample_value(one.get("value").ok_or("a series without value")?),
                several => Err(format!(
                    "{} series returned ({}{}); aggregate them into one, e.g. sum(...) or avg(...)",
                    several.len(),
                    several
                        .iter()
                        .take(2)
                        .map(|s| s.get("metric").map(Value::to_string).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if several.len() > 2 { ", …" } else { "" }
                )),
            }
        }
        Some("scalar") => sample_value(result),
        Some("matrix") => Err(
            "a range vector was returned; use an instant vector, e.g. wrap the range in rate(...)"
                .into(),
        ),
        Some(other) => Err(format!("a {other} was returned; expected one number")),
        None => Err("answer has no data.resultType".into()),
    }
}

/// `[timestamp, "value"]` to a reading.
fn sample_value(sample: &Value) -> Result<Reading, String> {
    let text = sample
        .get(1)
        .and_then(Value::as_str)
        .ok_or("a sample is not [time, \"value\"]")?;
    let value: f64 = text
        .parse()
        .map_err(|_| format!("sample value {text:?} is not a number"))?;
    Ok(if value.is_nan() {
        Reading::Missing(Missing::NotANumber)
    } else if value.is_infinite() {
        Reading::Missing(Missing::Infinite(text.to_owned()))
    } else {
        Reading::Value(value)
    })
}

/// Whether `promql` already falls back to a constant where nothing matches
/// (`or vector(0)`, any spacing or constant).
fn has_fallback(promql: &str) -> bool {
    let compact: String = promql.split_whitespace().collect();
    compact.contains("orvector(")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde_json::json;

    fn ok(result_type: &str, result: Value) -> Value {
        json!({"status": "success", "data": {"resultType": result_type, "result": result}})
    }

    #[test]
    fn one_series_one_number() {
        let a = ok("vector", json!([{"metric": {}, "value": [1.5, "99.5"]}]));
        assert_eq!(parse_answer(&a, StatusCode::OK), Ok(Reading::Value(99.5)));
        let a = ok("scalar", json!([1.5, "3"]));
        assert_eq!(parse_answer(&a, StatusCode::OK), Ok(Reading::Value(3.0)));
    }

    #[test]
    fn empty_nan_and_inf_are_readings_not_errors() {
        assert_eq!(
            parse_answer(&ok("vector", json!([])), StatusCode::OK),
            Ok(Reading::Missing(Missing::NoSeries))
        );
        let nan = ok("vector", json!([{"metric": {}, "value": [1, "NaN"]}]));
        assert_eq!(
            parse_answer(&nan, StatusCode::OK),
            Ok(Reading::Missing(Missing::NotANumber))
        );
        let inf = ok("vector", json!([{"metric": {}, "value": [1, "+Inf"]}]));
        assert_eq!(
            parse_answer(&inf, StatusCode::OK),
            Ok(Reading::Missing(Missing::Infinite("+Inf".into())))
        );
    }

    #[test]
    fn several_series_and_ranges_are_clear_errors() {
        let two = ok(
            "vector",
            json!([
                {"metric": {"pod": "a"}, "value": [1, "1"]},
                {"metric": {"pod": "b"}, "value": [1, "2"]},
                {"metric": {"pod": "c"}, "value": [1, "2"]}
            ]),
        );
        let e = parse_answer(&two, StatusCode::OK).unwrap_err();
        assert!(
            e.starts_with("3 series returned ({\"pod\":\"a\"}, {\"pod\":\"b\"}, …)"),
            "{e}"
        );
        assert!(e.contains("sum(...)"));
        let m = ok("matrix", json!([]));
        assert!(
            parse_answer(&m, StatusCode::OK)
                .unwrap_err()
                .contains("range vector")
        );
    }

    fn errors(template: Option<&str>) -> PrometheusQuery {
        let provider = MetricProvider {
            provider_type: "prometheus".into(),
            address: Some("http://127.0.0.1:9090".into()),
            ..MetricProvider::default()
        };
        let vars = TemplateVars {
            interval: "1m".into(),
            ..TemplateVars::default()
        };
        let query = PrometheusQuery::new(
            "error-rate",
            &provider,
            "sum(rate(http_requests_total{version=\"{{ version }}\", status=~\"5..\"}[1m]))",
            &vars,
        )
        .unwrap();
        match template {
            Some(name) => query.with_template(name),
            None => query,
        }
    }

    #[test]
    fn no_series_names_metric_template_version_and_fix() {
        let q = errors(Some("error-rate"));
        let promql = q.promql(Version::Canary);
        let e = q.explain(Version::Canary, &Missing::NoSeries, &promql);
        assert!(
            e.starts_with(
                "error-rate (template error-rate, canary): the query returned no series — Prometheus returns nothing rather than 0 when no series match (e.g. no 5xx yet); append \"or vector(0)\" to the query to read 0"
            ),
            "{e}"
        );
        assert!(e.ends_with(&format!("; query: {promql}")), "{e}");
        let e = errors(None).explain(Version::Stable, &Missing::NoSeries, "x");
        assert!(e.starts_with("error-rate (inline query, stable): "), "{e}");
        // A fallback that did not help: the rest of the query matched nothing.
        let e = q.explain(
            Version::Canary,
            &Missing::NoSeries,
            "(sum(a) or  vector(0)) / sum(b)",
        );
        assert!(e.contains("although it has an \"or vector(0)\""), "{e}");
        assert!(!e.contains("append"), "{e}");
    }

    #[test]
    fn nan_and_inf_explain_no_traffic_and_division_by_zero() {
        let q = errors(Some("error-rate"));
        let e = q.explain(Version::Canary, &Missing::NotANumber, "a / b");
        assert!(
            e.starts_with(
                "error-rate (template error-rate, canary): the query returned NaN — no traffic in the window"
            ),
            "{e}"
        );
        assert!(e.contains("over 1m"), "{e}");
        let e = q.explain(Version::Stable, &Missing::Infinite("+Inf".into()), "a / b");
        assert!(
            e.starts_with(
                "error-rate (template error-rate, stable): the query returned +Inf — a division by zero"
            ),
            "{e}"
        );
    }

    #[test]
    fn api_errors_carry_type_and_message() {
        let a =
            json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 4"});
        assert_eq!(
            parse_answer(&a, StatusCode::BAD_REQUEST).unwrap_err(),
            "HTTP 400 Bad Request: bad_data: parse error at char 4"
        );
    }
}
