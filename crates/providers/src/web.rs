//! The JSON/HTTP metric provider (`provider.type: web`, Argo Rollouts' `web`
//! metric): an HTTP request whose JSON answer holds the number at a path.
//!
//! `spec.provider.address` is the URL, with the template's placeholders
//! (`{{ version }}` among them, so one endpoint can answer for both
//! versions). Without `spec.query` serin sends a GET; with one, a POST whose
//! body is the rendered query (`application/json` when it is JSON).
//! `spec.provider.jsonPath` finds the value; the value may be a number, a
//! numeric string, or a boolean (1 or 0); `null` is no data.

use crate::metric_http::{
    HttpSource, QueryTemplate, SetupError, TemplateVars, check_address, excerpt,
};
use bytes::Bytes;
use http::{Method, Uri};
use serde_json::Value;
use serin_rollout::{
    Timestamp,
    ports::{BoxFuture, MetricQuery, PortError},
};
use serin_spec::{JsonPathStep, MetricProvider, parse_json_path};
use serin_stats::Version;

/// One custom metric read from a JSON endpoint.
#[derive(Debug)]
pub struct WebQuery {
    name: String,
    url: QueryTemplate,
    body: Option<QueryTemplate>,
    path: Vec<JsonPathStep>,
    path_text: String,
    source: HttpSource,
}

// === impl WebQuery ===

impl WebQuery {
    /// The metric `name` from a `web` template's provider and optional query.
    pub fn new(
        name: &str,
        provider: &MetricProvider,
        query: Option<&str>,
        vars: &TemplateVars,
    ) -> Result<Self, SetupError> {
        let address = provider.address.as_deref().unwrap_or_default();
        let url = QueryTemplate::compile(address.trim(), vars, "spec.provider.address")?;
        // Both renderings must be dialable; checked now rather than at each query.
        for version in Version::ALL {
            check_address(&url.render(version))?;
        }
        let body = query
            .map(|q| QueryTemplate::compile(q, vars, "spec.query"))
            .transpose()?;
        let path_text = provider.json_path.clone().unwrap_or_default();
        let path = parse_json_path(&path_text).map_err(|reason| SetupError::JsonPath {
            path: path_text.clone(),
            reason,
        })?;
        let source = HttpSource::new(format!("web metric at {}", address.trim()), provider)?;
        Ok(WebQuery {
            name: name.to_owned(),
            url,
            body,
            path,
            path_text,
            source,
        })
    }

    fn per_version(&self) -> bool {
        self.url.per_version() || self.body.as_ref().is_some_and(QueryTemplate::per_version)
    }

    async fn run(&self, version: Version) -> Result<Option<f64>, PortError> {
        if version == Version::Stable && !self.per_version() {
            return Ok(None);
        }
        let url = self.url.render(version);
        let uri: Uri = url
            .parse()
            .map_err(|e| self.source.refused(format!("{url:?} is not a URL: {e}")))?;
        let (method, content_type, body) = match &self.body {
            None => (Method::GET, None, Bytes::new()),
            Some(template) => {
                let text = template.render(version);
                let content_type = if serde_json::from_str::<Value>(&text).is_ok() {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                };
                (Method::POST, Some(content_type), Bytes::from(text))
            }
        };
        let (status, answer) = self.source.fetch(method, uri, content_type, body).await?;
        if !status.is_success() {
            return Err(self
                .source
                .refused(format!("HTTP {status}: {}", excerpt(&answer))));
        }
        let json: Value = serde_json::from_slice(&answer).map_err(|e| {
            self.source
                .refused(format!("answer is not JSON ({e}): {}", excerpt(&answer)))
        })?;
        value_at(&json, &self.path).map_err(|m| {
            self.source
                .refused(format!("jsonPath {:?}: {m}", self.path_text))
        })
    }
}

impl MetricQuery for WebQuery {
    fn name(&self) -> &str {
        &self.name
    }

    fn query(
        &self,
        version: Version,
        _now: Timestamp,
    ) -> BoxFuture<'_, Result<Option<f64>, PortError>> {
        Box::pin(self.run(version))
    }
}

/// The number at `path` in `json`.
pub fn value_at(json: &Value, path: &[JsonPathStep]) -> Result<Option<f64>, String> {
    let mut here = json;
    for (depth, step) in path.iter().enumerate() {
        let next = match (step, here) {
            (JsonPathStep::Key(key), Value::Object(map)) => map.get(key),
            (JsonPathStep::Index(index), Value::Array(items)) => items.get(*index),
            // `.0` in the dotted form may also name an object's key "0".
            (JsonPathStep::Index(index), Value::Object(map)) => map.get(&index.to_string()),
            _ => None,
        };
        here = next.ok_or_else(|| {
            let step = match step {
                JsonPathStep::Key(key) => format!("field {key:?}"),
                JsonPathStep::Index(index) => format!("element {index}"),
            };
            format!("no {step} at step {} (found {})", depth + 1, kind_of(here))
        })?;
    }
    let value = match here {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64().ok_or("the number does not fit in a float")?,
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("leads to the string {s:?}, not a number"))?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        other => {
            return Err(format!(
                "leads to {}; point it at one number",
                kind_of(other)
            ));
        }
    };
    if value.is_finite() {
        Ok(Some(value))
    } else {
        Err(format!("the value is {value}; counted as no data"))
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(json: Value, path: &str) -> Result<Option<f64>, String> {
        value_at(&json, &parse_json_path(path).unwrap())
    }

    #[test]
    fn numbers_strings_booleans_and_null() {
        let j =
            json!({"data": {"items": [{"value": 4.5}, {"value": "7"}], "ok": true, "none": null}});
        assert_eq!(at(j.clone(), "{$.data.items[0].value}"), Ok(Some(4.5)));
        assert_eq!(at(j.clone(), "data.items.1.value"), Ok(Some(7.0)));
        assert_eq!(at(j.clone(), "$.data.ok"), Ok(Some(1.0)));
        assert_eq!(at(j.clone(), "$.data.none"), Ok(None));
        assert_eq!(at(json!(12), ""), Ok(Some(12.0)));
    }

    #[test]
    fn a_bad_json_path_names_its_field() {
        let provider = MetricProvider {
            provider_type: "web".into(),
            address: Some("http://127.0.0.1:9/metric".into()),
            json_path: Some("$.data[".into()),
            ..MetricProvider::default()
        };
        let error = WebQuery::new("m", &provider, None, &TemplateVars::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("spec.provider.jsonPath: \"$.data[\": "),
            "{error}"
        );
    }

    #[test]
    fn wrong_paths_say_where() {
        let j = json!({"data": {"items": []}});
        assert_eq!(
            at(j.clone(), "data.items[0]").unwrap_err(),
            "no element 0 at step 3 (found an array)"
        );
        assert_eq!(
            at(j.clone(), "data.x").unwrap_err(),
            "no field \"x\" at step 2 (found an object)"
        );
        assert!(
            at(j.clone(), "data")
                .unwrap_err()
                .contains("point it at one number")
        );
        assert!(
            at(json!({"v": "n/a"}), "v")
                .unwrap_err()
                .contains("not a number")
        );
    }
}
