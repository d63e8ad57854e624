//! Prometheus as a metric provider: Flagger's `MetricTemplate` with
//! `provider.type: prometheus`, run as an instant query against the HTTP API
//! (`GET /api/v1/query`).
//!
//! The answer must be one number. The rules, and why:
//! - an empty vector is no data (`Ok(None)`): the judges have their own rules
//!   for missing values (hold, never a silent pass);
//! - `NaN` and infinities are errors that say so: `NaN` is almost always 0/0,
//!   a ratio over a window without requests, and the runtime reports the
//!   error and counts the value as missing, as Flagger does;
//! - several series are an error: picking one would judge an arbitrary pod;
//!   the message asks for an aggregation (`sum(...)`);
//! - a scalar result is taken as is; range vectors and strings are refused.

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
            endpoint,
            query,
            source,
        })
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
        parse_answer(&answer, status)
            .map_err(|message| self.source.refused(format!("query {promql:?}: {message}")))
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

/// The one number in an `/api/v1/query` answer, or why there is none.
pub fn parse_answer(answer: &Value, status: http::StatusCode) -> Result<Option<f64>, String> {
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
                [] => Ok(None),
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

/// `[timestamp, "value"]` to a finite number.
fn sample_value(sample: &Value) -> Result<Option<f64>, String> {
    let text = sample
        .get(1)
        .and_then(Value::as_str)
        .ok_or("a sample is not [time, \"value\"]")?;
    let value: f64 = text
        .parse()
        .map_err(|_| format!("sample value {text:?} is not a number"))?;
    if value.is_nan() {
        Err("the result is NaN (usually 0/0: no requests in the window); counted as no data".into())
    } else if value.is_infinite() {
        Err(format!(
            "the result is {text} (a division by zero?); counted as no data"
        ))
    } else {
        Ok(Some(value))
    }
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
        assert_eq!(parse_answer(&a, StatusCode::OK), Ok(Some(99.5)));
        let a = ok("scalar", json!([1.5, "3"]));
        assert_eq!(parse_answer(&a, StatusCode::OK), Ok(Some(3.0)));
    }

    #[test]
    fn empty_is_no_data() {
        assert_eq!(
            parse_answer(&ok("vector", json!([])), StatusCode::OK),
            Ok(None)
        );
    }

    #[test]
    fn nan_inf_and_several_series_are_clear_errors() {
        let nan = ok("vector", json!([{"metric": {}, "value": [1, "NaN"]}]));
        assert!(
            parse_answer(&nan, StatusCode::OK)
                .unwrap_err()
                .contains("NaN")
        );
        let inf = ok("vector", json!([{"metric": {}, "value": [1, "+Inf"]}]));
        assert!(
            parse_answer(&inf, StatusCode::OK)
                .unwrap_err()
                .contains("+Inf")
        );
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
