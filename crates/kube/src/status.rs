//! `serin status --kubernetes`: canaries read from the cluster rather than
//! the daemon, in either group, with Flagger's status fields and serin's
//! analysis (the judge's last decision, per metric: estimate, interval,
//! e-value) from the `serin.dev/analysis` annotation the controller keeps.

use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
};
use serde::Serialize;

use crate::{
    controller::canary_resource,
    operator::CANARY_VERSIONS,
    resource::{AnalysisRecord, CanaryCondition, CanaryStatus},
};

/// What reading canaries from the cluster can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// No canary of that name in either group.
    #[error(
        "canary {name} not found in namespace {namespace} (flagger.app/v1beta1 or serin.dev/v1alpha1)"
    )]
    NotFound {
        /// `metadata.name` asked for.
        name: String,
        /// Where it was looked for.
        namespace: String,
    },
    /// A canary's status is not Flagger's.
    #[error("canary {name}: status: {source}")]
    Status {
        /// `metadata.name`.
        name: String,
        /// Why it did not read.
        source: serde_json::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One canary as `serin status --kubernetes --json` prints it: Flagger's
/// status fields, flattened as `serin status --json` prints the daemon's,
/// and serin's analysis.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCanary {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `flagger.app/v1beta1` or `serin.dev/v1alpha1`.
    pub api_version: String,
    /// Flagger's phase (`Initializing` before the controller's first pass).
    pub phase: String,
    /// Percent of traffic on the canary.
    pub canary_weight: i64,
    /// Failed checks of the current analysis.
    pub failed_checks: i64,
    /// Iterations of the current analysis.
    pub iterations: i64,
    /// Fingerprint of the revision under analysis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,
    /// Fingerprint of the revision last promoted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,
    /// When the status was last written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Flagger's `Promoted` condition.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CanaryCondition>,
    /// serin's analysis of the revision under analysis, if the controller
    /// has judged it: the revision, how far traffic was read, the decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<ClusterAnalysis>,
}

/// serin's analysis as shown: the record without the judge's raw evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAnalysis {
    /// The revision the decision is about.
    pub revision: String,
    /// Whether that is the revision under analysis now.
    pub current: bool,
    /// Traffic up to this moment (Unix milliseconds) was judged.
    pub observed_until: u64,
    /// The judge's last decision, with every metric's numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<serin_analysis::Decision>,
}

/// The canaries of `namespace` (one, `name`, when given), in both groups.
/// A group whose CRD is not installed has none.
pub async fn read(
    client: Client,
    namespace: &str,
    name: Option<&str>,
) -> Result<Vec<ClusterCanary>> {
    let mut out = Vec::new();
    for api_version in CANARY_VERSIONS {
        let resource = canary_resource(api_version);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        match name {
            Some(name) => match api.get_opt(name).await {
                Ok(Some(object)) => out.push(canary(&object, api_version)?),
                Ok(None) => {}
                Err(error) if not_installed(&error) => {}
                Err(error) => return Err(error.into()),
            },
            None => match api.list(&ListParams::default()).await {
                Ok(list) => {
                    for object in &list.items {
                        out.push(canary(object, api_version)?);
                    }
                }
                Err(error) if not_installed(&error) => {}
                Err(error) => return Err(error.into()),
            },
        }
    }
    if let (Some(name), true) = (name, out.is_empty()) {
        return Err(Error::NotFound {
            name: name.to_string(),
            namespace: namespace.to_string(),
        });
    }
    Ok(out)
}

/// A 404 on a whole resource: the group's CRD is not installed.
fn not_installed(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// One watched object as shown.
fn canary(object: &DynamicObject, api_version: &str) -> Result<ClusterCanary> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let status: CanaryStatus = match object.data.get("status") {
        Some(status) if !status.is_null() => {
            serde_json::from_value(status.clone()).map_err(|source| Error::Status {
                name: name.clone(),
                source,
            })?
        }
        _ => CanaryStatus::default(),
    };
    let analysis = object
        .metadata
        .annotations
        .as_ref()
        .and_then(AnalysisRecord::from_annotations)
        .and_then(Result::ok)
        .map(|record| ClusterAnalysis {
            current: status.last_applied_spec.as_deref() == Some(record.revision.as_str()),
            revision: record.revision,
            observed_until: record.observed_until,
            decision: record.decision,
        });
    Ok(ClusterCanary {
        name,
        namespace: object.metadata.namespace.clone().unwrap_or_default(),
        api_version: api_version.to_string(),
        phase: status
            .phase
            .clone()
            .filter(|phase| !phase.is_empty())
            .unwrap_or_else(|| "Initializing".into()),
        canary_weight: status.canary_weight,
        failed_checks: status.failed_checks,
        iterations: status.iterations,
        last_applied_spec: status.last_applied_spec,
        last_promoted_spec: status.last_promoted_spec,
        last_transition_time: status.last_transition_time,
        conditions: status.conditions,
        analysis,
    })
}

/// Lines for people: one per canary, then its condition's message and one
/// per metric of serin's last decision.
pub fn text(canaries: &[ClusterCanary]) -> String {
    let mut out = String::new();
    for canary in canaries {
        out.push_str(&format!(
            "{}.{}  {}  weight {}%  failed checks {}\n",
            canary.name, canary.namespace, canary.phase, canary.canary_weight, canary.failed_checks
        ));
        if let Some(message) = canary
            .conditions
            .iter()
            .find(|condition| condition.condition_type == "Promoted")
            .and_then(|condition| condition.message.as_deref())
        {
            out.push_str(&format!("  {message}\n"));
        }
        let Some(decision) = canary
            .analysis
            .as_ref()
            .filter(|analysis| analysis.current)
            .and_then(|analysis| analysis.decision.as_ref())
        else {
            continue;
        };
        out.push_str(&format!("  serin's judge: {}\n", decision.verdict));
        for metric in &decision.metrics {
            let mut line = format!("    {}", metric.reason);
            if let Some(e) = metric.e_value {
                line.push_str(&format!(" (e-value {e:.3})"));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}
