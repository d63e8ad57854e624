//! The `Canary` custom resources the controller watches: serin's own
//! `serin.dev/v1alpha1` (its CRD generated here, `serin crdgen`) and
//! Flagger's `flagger.app/v1beta1` (Flagger's CRD, unchanged). Both carry
//! the same spec (`serin_spec::CanarySpec`) and Flagger's status.
//!
//! The CRD's schema is Flagger's (v1.44), extended with serin's fields (the
//! built-in proxy's `upstreams`, the balancers' blocks, the judges'
//! settings, `compare` and `direction`), so a Flagger canary moved to
//! `serin.dev` keeps every field and the API server prunes nothing serin
//! reads. It is assembled here rather than derived by `schemars`: Flagger's
//! schema uses `oneOf` forms that kube's structural rewriter refuses.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Flagger's `Canary.spec` schema (v1.44), the base of serin's.
const FLAGGER_SCHEMA: &str = include_str!("flagger-canary-schema.json");

/// `serin.dev/v1alpha1` `Canary`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "Canary",
    root = "SerinCanary",
    namespaced,
    status = "CanaryStatus",
    schema = "disabled",
    derive = "PartialEq"
)]
pub struct SerinCanarySpec {
    /// The spec as `serin-spec` reads it.
    #[serde(flatten)]
    pub inner: serin_spec::CanarySpec,
}

/// `flagger.app/v1beta1` `Canary`, read and written as Flagger's CRD defines it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "Canary",
    root = "FlaggerCanary",
    namespaced,
    status = "CanaryStatus",
    schema = "disabled",
    derive = "PartialEq"
)]
pub struct FlaggerCanarySpec {
    /// The spec as `serin-spec` reads it.
    #[serde(flatten)]
    pub inner: serin_spec::CanarySpec,
}

/// Flagger's `CanaryStatus`: what the controller writes to the status
/// subresource, field for field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The phase (Flagger's names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Failed checks of the current analysis.
    #[serde(default)]
    pub failed_checks: i64,
    /// Percent of traffic on the canary.
    #[serde(default)]
    pub canary_weight: i64,
    /// Iterations of the current A/B or blue/green analysis.
    #[serde(default)]
    pub iterations: i64,
    /// Checksums of the tracked ConfigMaps and Secrets, by `kind/name`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tracked_configs: BTreeMap<String, String>,
    /// Fingerprint of the target's pod template under analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,
    /// Fingerprint of the pod template last promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,
    /// When the phase last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The session affinity cookie of this run (`NAME=VALUE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_cookie: Option<String>,
    /// The primary's session affinity cookie of this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_session_affinity_cookie: Option<String>,
    /// The session affinity cookie of the previous run, expired by the routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_affinity_cookie: Option<String>,
    /// Conditions; Flagger's `Promoted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CanaryCondition>,
    /// serin's last decision on the revision under analysis (per metric:
    /// estimate, interval, e-value, reason). Written for `serin.dev`
    /// canaries only: Flagger's status schema has no such field and the API
    /// server would prune it; every canary has it in [`ANALYSIS_ANNOTATION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<serin_analysis::Decision>,
}

/// The annotation on a Canary that holds serin's analysis of its current
/// revision ([`AnalysisRecord`], JSON): an annotation rather than a status
/// field because Flagger's CRD prunes unknown status fields, and the judge's
/// evidence must survive a controller restarted or moved for both groups.
pub const ANALYSIS_ANNOTATION: &str = "serin.dev/analysis";

/// serin's analysis of one revision, kept in the cluster so that a
/// controller restarted or moved to another node resumes the judge with its
/// false-rollback budget spent and its evidence kept, as `serve` does from
/// SQLite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRecord {
    /// The revision (`status.lastAppliedSpec`) the evidence is about; a new
    /// revision starts afresh.
    pub revision: String,
    /// Traffic up to this moment (Unix milliseconds) has been fed to the judge.
    pub observed_until: u64,
    /// The canary weight the judge last observed at; a different weight
    /// at the next pass is a step (the judge's per-step counts restart).
    pub weight: i64,
    /// The judge's accumulated evidence (`Analyzer::evidence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// The judge's last decision, with its numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<serin_analysis::Decision>,
}

// === impl AnalysisRecord ===

impl AnalysisRecord {
    /// The record in a canary's annotations; `None` when absent or not one
    /// serin wrote (the analysis then starts afresh).
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Option<Result<Self, serde_json::Error>> {
        annotations
            .get(ANALYSIS_ANNOTATION)
            .map(|text| serde_json::from_str(text))
    }
}

/// A status condition (Flagger's `CanaryCondition`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryCondition {
    /// `Promoted`.
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// When the condition was last written (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Flagger's reason: `Initialized`, `Progressing`, `Succeeded`, `Failed`, …
    pub reason: String,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Flagger's CRD version (`openAPIV3Schema` and printer columns) as shipped.
fn flagger_version() -> Value {
    // The file is checked in and read by a test; a broken edit fails it.
    serde_json::from_str(FLAGGER_SCHEMA).unwrap_or_else(|_| json!({}))
}

/// Flagger's spec schema as shipped.
pub fn flagger_spec_schema() -> Value {
    flagger_version()["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// Flagger's spec schema with serin's extensions.
pub fn serin_spec_schema() -> Value {
    let mut schema = flagger_spec_schema();
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    if let Some(properties) = schema["properties"].as_object_mut() {
        properties.insert(
            "upstreams".into(),
            json!({
                "description": "serin: the stable and canary backends of the built-in proxy",
                "type": "object",
                "properties": {
                    "stable": {"type": "string"},
                    "canary": {"type": "string"},
                    "revision": {"type": "string"},
                    "caFile": {"type": "string"}
                }
            }),
        );
        if let Some(providers) = properties
            .get_mut("provider")
            .and_then(|provider| provider.get_mut("enum"))
            .and_then(Value::as_array_mut)
        {
            for name in ["builtin", "haproxy", "alb", "nginx"] {
                if !providers.iter().any(|known| known == name) {
                    providers.push(Value::String(name.into()));
                }
            }
        }
        properties.insert("haproxy".into(), open.clone());
        properties.insert("nginx".into(), open.clone());
        properties.insert("alb".into(), open.clone());
    }
    // `spec.service` gains the built-in proxy's settings.
    if let Some(service) = schema["properties"]["service"]["properties"].as_object_mut() {
        for field in ["listen", "accessLog"] {
            service.insert(field.into(), json!({"type": "string"}));
        }
        service.insert("limits".into(), open.clone());
        service.insert("tls".into(), open.clone());
        service.insert(
            "trustedProxies".into(),
            json!({"type": "array", "items": {"type": "string"}}),
        );
    }
    // The port is the built-in proxy's `listen` outside Kubernetes.
    if let Some(required) = schema["properties"]["service"]
        .as_object_mut()
        .and_then(|service| service.remove("required"))
    {
        let _ = required;
    }
    if let Some(analysis) = schema["properties"]["analysis"]["properties"].as_object_mut() {
        analysis.insert(
            "judge".into(),
            json!({"type": "string", "enum": ["sequential", "threshold", "mann-whitney"]}),
        );
        analysis.insert("alpha".into(), json!({"type": "number"}));
        analysis.insert("minRequests".into(), json!({"type": "integer"}));
        analysis.insert(
            "pace".into(),
            json!({"type": "string", "enum": ["evidence", "schedule"]}),
        );
    }
    if let Some(metric) =
        schema["properties"]["analysis"]["properties"]["metrics"]["items"]["properties"]
            .as_object_mut()
    {
        metric.insert(
            "compare".into(),
            json!({"type": "object", "properties": {
                "maxDelta": {"type": "number"},
                "maxRatio": {"type": "number"}
            }}),
        );
        metric.insert(
            "direction".into(),
            json!({"type": "string", "enum": ["lower", "higher"]}),
        );
    }
    if let Some(required) = schema["required"].as_array_mut() {
        // A built-in canary has no targetRef; serin defaults the analysis.
        required.retain(|field| field != "targetRef" && field != "analysis");
    }
    schema
}

/// `serin.dev/v1alpha1`'s CustomResourceDefinition.
pub fn serin_crd() -> Value {
    let version = flagger_version();
    let mut schema = version["openAPIV3Schema"].clone();
    schema["properties"]["spec"] = serin_spec_schema();
    // serin's decision on the revision under analysis (see
    // `CanaryStatus::analysis`): its shape is serin-analysis's `Decision`.
    schema["properties"]["status"]["properties"]["analysis"] = json!({
        "description": "serin: the judge's last decision on the revision under analysis (per metric: estimate, interval, e-value, reason)",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    });
    schema["description"] = json!(
        "Canary is serin's progressive delivery resource: Flagger's Canary plus serin's extensions."
    );
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "canaries.serin.dev"},
        "spec": {
            "group": "serin.dev",
            "names": {
                "kind": "Canary",
                "listKind": "CanaryList",
                "plural": "canaries",
                "singular": "canary",
                "categories": ["all"]
            },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": version["additionalPrinterColumns"].clone(),
                "schema": {"openAPIV3Schema": schema}
            }]
        }
    })
}

/// `serin.dev/v1alpha1`'s CRD as YAML, what `crdgen` prints and
/// `deploy/crds/` holds.
pub fn serin_crd_yaml() -> String {
    serde_saphyr::to_string(&serin_crd()).unwrap_or_default()
}
