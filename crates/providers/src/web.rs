//! The JSON/HTTP metric provider (`provider.type: web`, Argo Rollouts' `web`
//! metric): an HTTP request whose JSON answer holds the number at a path.
//!
//! `spec.provider.address` is the URL, with the template's placeholders
//! (`{{ version }}` among them, so one endpoint can answer for both
//! versions). Without `spec.query` serin sends a GET; with one, a POST whose
//! body is the rendered query (`application/json` when it is JSON).
//! `spec.provider.jsonPath` finds the value; the value may be a number, a
//! numeric string, or a boolean (1 or 0). When the path finds nothing (a
//! missing field or element, `null`) there is no value, explained
//! ([`PortError::NoValue`]): the metric, the template, the version, and the
//! fix (have the endpoint answer 0 when there is nothing to count). A path
//! that leads to something other than one number is an error.

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
    /// The `MetricTemplate` it comes from, for messages.
    template: Option<String>,
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
            template: None,
            url,
            body,
            path,
            path_text,
            source,
        })
    }

    /// Names the `MetricTemplate` the metric comes from, for messages.
    #[must_use]
    pub fn with_template(mut self, template: &str) -> Self {
        self.template = Some(template.to_owned());
        self
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
        match value_at(&json, &self.path) {
            Ok(value) => Ok(Some(value)),
            Err(PathError::Nothing(why)) => Err(PortError::NoValue(format!(
                "{} ({}, {version}): jsonPath {:?} found nothing: {why} — the endpoint has no \
                 value there for {version}; have it answer 0 when there is nothing to count \
                 (or fix jsonPath); answer from {url}: {}",
                self.name,
                match &self.template {
                    Some(template) => format!("template {template}"),
                    None => "web metric".to_owned(),
                },
                self.path_text,
                excerpt(&answer)
            ))),
            Err(PathError::Unusable(why)) => Err(self
                .source
                .refused(format!("jsonPath {:?}: {why}", self.path_text))),
        }
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

/// Why `jsonPath` gave no number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The path leads nowhere in this answer (a missing field or element,
    /// `null`, a non-finite number): no value for now.
    Nothing(String),
    /// The path leads to something that is not one number (an object, a
    /// word), or through something that cannot hold its next step.
    Unusable(String),
}

/// The number at `path` in `json`.
pub fn value_at(json: &Value, path: &[JsonPathStep]) -> Result<f64, PathError> {
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
            let step_text = match step {
                JsonPathStep::Key(key) => format!("field {key:?}"),
                JsonPathStep::Index(index) => format!("element {index}"),
            };
            let message = format!("no {step_text} at step {}", depth + 1);
            match (step, here) {
                (_, Value::Null) => PathError::Nothing(format!("{message} (found null)")),
                (JsonPathStep::Index(_), Value::Array(items)) => PathError::Nothing(format!(
                    "{message} (the array has {} element{})",
                    items.len(),
                    if items.len() == 1 { "" } else { "s" }
                )),
                (_, Value::Object(_)) => PathError::Nothing(message),
                (_, other) => PathError::Unusable(format!("{message} (found {})", kind_of(other))),
            }
        })?;
    }
    let value = match here {
        Value::Null => return Err(PathError::Nothing("it leads to null".into())),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| PathError::Unusable("the number does not fit in a float".into()))?,
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| PathError::Unusable(format!("leads to the string {s:?}, not a number")))?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        other => {
            return Err(PathError::Unusable(format!(
                "leads to {}; point it at one number",
                kind_of(other)
            )));
        }
    };
    if value.is_finite() {
        Ok(value)
    } else {
        Err(PathError::Nothing(format!(
            "the value is {value} (NaN is often 0/0: no traffic in the window)"
        )))
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

    fn at(json: Value, path: &str) -> Result<f64, PathError> {
        value_at(&json, &parse_json_path(path).unwrap())
    }

    fn nothing(text: &str) -> Result<f64, PathError> {
        Err(PathError::Nothing(text.into()))
    }

    #[test]
    fn numbers_strings_booleans_and_null() {
        let j =
            json!({"data": {"items": [{"value": 4.5}, {"value": "7"}], "ok": true, "none": null}});
        assert_eq!(at(j.clone(), "{$.data.items[0].value}"), Ok(4.5));
        assert_eq!(at(j.clone(), "data.items.1.value"), Ok(7.0));
        assert_eq!(at(j.clone(), "$.data.ok"), Ok(1.0));
        assert_eq!(at(j.clone(), "$.data.none"), nothing("it leads to null"));
        assert_eq!(
            at(j.clone(), "$.data.none.x"),
            nothing("no field \"x\" at step 3 (found null)")
        );
        assert_eq!(at(json!(12), ""), Ok(12.0));
        assert_eq!(
            at(json!({"v": "NaN"}), "v"),
            nothing("the value is NaN (NaN is often 0/0: no traffic in the window)")
        );
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
        let j = json!({"data": {"items": [], "name": "x"}});
        assert_eq!(
            at(j.clone(), "data.items[0]"),
            nothing("no element 0 at step 3 (the array has 0 elements)")
        );
        assert_eq!(at(j.clone(), "data.x"), nothing("no field \"x\" at step 2"));
        assert_eq!(
            at(j.clone(), "data.name.x"),
            Err(PathError::Unusable(
                "no field \"x\" at step 3 (found a string)".into()
            ))
        );
        let Err(PathError::Unusable(e)) = at(j.clone(), "data") else {
            panic!("an object is not a number")
        };
        assert!(e.contains("point it at one number"), "{e}");
        let Err(PathError::Unusable(e)) = at(json!({"v": "n/a"}), "v") else {
            panic!("a word is not a number")
        };
        assert!(e.contains("not a number"), "{e}");
    }
}
