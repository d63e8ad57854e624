//! The `MetricTemplate` document: a query against a metrics provider.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::meta::{ObjectMeta, SecretReference};

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
    /// dotted path (`data.result.0.value`); the whole body when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
}

impl MetricTemplate {
    /// `metadata.name`, or an empty string for fragments without one.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}
