//! The `MetricTemplate` document: a query against a metrics provider.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    duration::Duration,
    meta::{ObjectMeta, SecretReference},
};

/// Metric providers Flagger knows, plus serin's `web` (JSON over HTTP).
pub const METRIC_PROVIDER_TYPES: &[&str] = &[
    "prometheus",
    "datadog",
    "cloudwatch",
    "newrelic",
    "graphite",
    "dynatrace",
    "influxdb",
    "stackdriver",
    "splunk",
    "keptn",
    "externalmetrics",
    "web",
];

/// A `MetricTemplate` document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplate {
    /// `flagger.app/v1beta1` or `serin.dev/v1alpha1`.
    pub api_version: String,
    /// Always `MetricTemplate`.
    pub kind: String,
    /// Name and namespace that `templateRef` finds it by.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Provider and query.
    #[serde(default)]
    pub spec: MetricTemplateSpec,
    /// Status written by a controller; kept and never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// `spec` of a [`MetricTemplate`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricTemplateSpec {
    /// Where the query runs.
    #[serde(default)]
    pub provider: MetricProvider,
    /// The query, a Go template: `{{ namespace }}`, `{{ target }}`, `{{ interval }}`,
    /// `{{ variables.NAME }}` and friends are substituted before it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// `spec.provider` of a [`MetricTemplate`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    /// One of [`METRIC_PROVIDER_TYPES`].
    #[serde(default, rename = "type")]
    pub provider_type: String,
    /// Address of the provider's API (`http://prometheus:9090`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Extra request headers, each with one or more values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Kubernetes secret with credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// Cloud region (CloudWatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Skip TLS verification.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// serin `web` provider: where the number sits in the JSON answer, as a
    /// dotted path (`data.result.0.value`) or Argo's JSONPath form
    /// (`{$.data.items[0].value}`); the whole body when absent. See
    /// [`parse_json_path`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// serin: a file holding a bearer token sent as `Authorization: Bearer`
    /// with every query. Read at start, so the token never sits in the canary file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    /// serin: HTTP basic authentication, the password read from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// serin: a PEM file of the CA that signed an https provider's certificate;
    /// Mozilla's roots (built in) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// serin: how long one query may take, connection included (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// serin: `spec.provider.basicAuth` of a [`MetricTemplate`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// A file holding the password (trailing newline ignored).
    pub password_file: String,
}

/// One step of a JSON path: a field of an object or an element of an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonPathStep {
    /// `.name` or `['name']`.
    Key(String),
    /// `[3]`, or `.3` in the dotted form (also a key, for objects with numeric keys).
    Index(usize),
}

/// Parses a `web` provider's `jsonPath`: either dotted (`data.result.0.value`)
/// or the subset of JSONPath Argo Rollouts' `web` metric uses
/// (`{$.data.items[0].value}`, `$.data['a.b']`). Filters and wildcards are
/// refused: a metric is one number, so the path must lead to one value.
pub fn parse_json_path(text: &str) -> Result<Vec<JsonPathStep>, String> {
    let mut rest = text.trim();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner
            .strip_suffix('}')
            .ok_or("opens with { but does not close with }")?
            .trim();
    }
    rest = rest.strip_prefix('$').unwrap_or(rest);
    let mut steps = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let mut expect_key = !rest.starts_with(['.', '[']);
    while let Some(&(at, c)) = chars.peek() {
        if expect_key || c == '.' {
            if c == '.' {
                chars.next();
            }
            expect_key = false;
            let mut key = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c == '.' || c == '[' {
                    break;
                }
                key.push(c);
                chars.next();
            }
            if key.is_empty() {
                return Err(format!("empty field name at character {}", at + 1));
            }
            if key == "*" || key.contains(['?', '(', ')', '@', '*']) {
                return Err(format!(
                    "{key:?}: wildcards and filters are not supported; the path must lead to one value"
                ));
            }
            steps.push(match key.parse::<usize>() {
                Ok(index) => JsonPathStep::Index(index),
                Err(_) => JsonPathStep::Key(key),
            });
        } else if c == '[' {
            chars.next();
            let mut inner = String::new();
            let mut closed = false;
            for (_, c) in chars.by_ref() {
                if c == ']' {
                    closed = true;
                    break;
                }
                inner.push(c);
            }
            if !closed {
                return Err(format!("[ at character {} is not closed", at + 1));
            }
            let inner = inner.trim();
            let quoted = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            match (quoted, inner.parse::<usize>()) {
                (Some(key), _) => steps.push(JsonPathStep::Key(key.to_owned())),
                (None, Ok(index)) => steps.push(JsonPathStep::Index(index)),
                (None, Err(_)) => {
                    return Err(format!(
                        "[{inner}]: expected an array index like [0] or a quoted key like ['name']; wildcards and filters are not supported"
                    ));
                }
            }
        } else {
            return Err(format!("unexpected {c:?} at character {}", at + 1));
        }
    }
    Ok(steps)
}

impl MetricTemplate {
    /// `metadata.name`, or an empty string for fragments without one.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::{JsonPathStep::*, parse_json_path};

    #[test]
    fn json_paths_in_both_forms() {
        let expected = vec![Key("data".into()), Index(0), Key("value".into())];
        assert_eq!(parse_json_path("data.0.value").unwrap(), expected);
        assert_eq!(parse_json_path("{$.data[0].value}").unwrap(), expected);
        assert_eq!(parse_json_path("$.data[0]['value']").unwrap(), expected);
        assert_eq!(parse_json_path("$").unwrap(), vec![]);
        assert_eq!(parse_json_path("").unwrap(), vec![]);
        assert_eq!(
            parse_json_path("$['a.b']").unwrap(),
            vec![Key("a.b".into())]
        );
    }

    #[test]
    fn json_path_errors_say_why() {
        assert!(parse_json_path("{$.a").unwrap_err().contains("close"));
        assert!(parse_json_path("$.a[*]").unwrap_err().contains("wildcards"));
        assert!(parse_json_path("a..b").unwrap_err().contains("empty field"));
        assert!(parse_json_path("a[0").unwrap_err().contains("not closed"));
        assert!(parse_json_path("$.items[?(@.x)]").is_err());
    }
}
