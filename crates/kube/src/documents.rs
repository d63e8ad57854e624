//! Files that hold a canary next to the cluster objects it references
//! (kubectl bundles, kustomize output): the Kubernetes documents are taken
//! out as a [`Cluster`] and the rest is left for `serin-spec`, line for
//! line, so its problems keep their line numbers.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{ConfigMap, Secret},
    networking::v1::Ingress,
};
use serde_json::Value;

use crate::{Error, Result, crds::ScaledObject, subject::Cluster};

/// Kinds taken as cluster objects.
pub const CLUSTER_KINDS: [&str; 7] = [
    "Deployment",
    "HorizontalPodAutoscaler",
    "ScaledObject",
    "Ingress",
    "ConfigMap",
    "Secret",
    "Service",
];

/// Most documents one file may hold (as `serin-spec` bounds it).
const MAX_DOCUMENTS: usize = 1_000;

/// The split: the text with every cluster document blanked (comment lines,
/// so line numbers stay), and the cluster objects found.
#[derive(Debug, Default)]
pub struct Split {
    /// What remains for `serin-spec`.
    pub spec_text: String,
    /// The cluster objects (the last of each kind; [`Split::cluster_for`]
    /// picks those a canary names).
    pub cluster: Cluster,
    /// Every Deployment, by name.
    deployments: BTreeMap<String, Deployment>,
    /// Every HorizontalPodAutoscaler, by name.
    autoscalers: BTreeMap<String, HorizontalPodAutoscaler>,
    /// Every KEDA ScaledObject, by name.
    scaled_objects: BTreeMap<String, ScaledObject>,
    /// Every Ingress, by name.
    ingresses: BTreeMap<String, Ingress>,
}

// === impl Split ===

impl Split {
    /// The cluster as `canary` sees it: the Deployment, autoscaler and
    /// Ingress its references name (a bundle may hold several canaries).
    pub fn cluster_for(&self, canary: &serin_spec::Canary) -> Cluster {
        let named = |reference: Option<&serin_spec::ObjectReference>| {
            reference.map(|reference| reference.name.clone())
        };
        let spec = &canary.spec;
        Cluster {
            target: named(spec.target_ref.as_ref())
                .and_then(|name| self.deployments.get(&name).cloned()),
            autoscaler: spec
                .autoscaler_ref
                .as_ref()
                .and_then(|reference| self.autoscalers.get(&reference.name).cloned()),
            scaled_object: spec
                .autoscaler_ref
                .as_ref()
                .and_then(|reference| self.scaled_objects.get(&reference.name).cloned()),
            ingress: named(spec.ingress_ref.as_ref())
                .and_then(|name| self.ingresses.get(&name).cloned()),
            untracked_config_maps: self.cluster.untracked_config_maps.clone(),
            untracked_secrets: self.cluster.untracked_secrets.clone(),
            config_maps: self.cluster.config_maps.clone(),
            secrets: self.cluster.secrets.clone(),
        }
    }
}

/// Splits `text` at its document markers and takes out the documents whose
/// `kind` is one of [`CLUSTER_KINDS`]. A document that is not YAML is left
/// to `serin-spec`, which reports it with its position.
pub fn split(text: &str) -> Result<Split, Vec<Error>> {
    let mut split = Split::default();
    let mut errors = Vec::new();
    let chunks = chunks(text);
    if chunks.len() > MAX_DOCUMENTS {
        return Err(vec![Error::field(
            "",
            format!("more than {MAX_DOCUMENTS} documents"),
        )]);
    }
    for (index, chunk) in chunks.iter().enumerate() {
        let value: Option<Value> = serde_saphyr::from_str(chunk).ok();
        let kind = value
            .as_ref()
            .and_then(|value| value.get("kind"))
            .and_then(Value::as_str)
            .filter(|kind| CLUSTER_KINDS.contains(kind))
            .map(str::to_string);
        let (Some(kind), Some(value)) = (kind, value) else {
            split.spec_text.push_str(chunk);
            continue;
        };
        let at = format!("documents[{index}]");
        if let Err(message) = take(&mut split, &kind, value) {
            errors.push(Error::field(format!("{at} ({kind})"), message));
        }
        for line in chunk.split_inclusive('\n') {
            // Keep the separator so the documents around stay apart.
            if line.starts_with("---") {
                split.spec_text.push_str(line);
            } else {
                split.spec_text.push('#');
                split
                    .spec_text
                    .push_str(if line.ends_with('\n') { "\n" } else { "" });
            }
        }
    }
    if errors.is_empty() {
        Ok(split)
    } else {
        Err(errors)
    }
}

/// The documents of `text`, each with its leading `---` line.
fn chunks(text: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let is_marker =
            line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace);
        if is_marker && offset > start {
            chunks.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    if offset > start {
        chunks.push(&text[start..offset]);
    }
    chunks
}

fn take(split: &mut Split, kind: &str, value: Value) -> Result<(), String> {
    fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
        serde_json::from_value(value).map_err(|error| error.to_string())
    }
    let name = |value: &Value| {
        value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let cluster = &mut split.cluster;
    match kind {
        "Deployment" => {
            let deployment: Deployment = typed(value.clone())?;
            cluster.target = Some(deployment.clone());
            split.deployments.insert(name(&value), deployment);
        }
        "HorizontalPodAutoscaler" => {
            let autoscaler: HorizontalPodAutoscaler = typed(value.clone())?;
            cluster.autoscaler = Some(autoscaler.clone());
            split.autoscalers.insert(name(&value), autoscaler);
        }
        "ScaledObject" => {
            let scaler: ScaledObject = typed(value.clone())?;
            cluster.scaled_object = Some(scaler.clone());
            split.scaled_objects.insert(name(&value), scaler);
        }
        "Ingress" => {
            let ingress: Ingress = typed(value.clone())?;
            cluster.ingress = Some(ingress.clone());
            split.ingresses.insert(name(&value), ingress);
        }
        "ConfigMap" => {
            let config: ConfigMap = typed(value.clone())?;
            if !crate::configs::config_map_tracked(&config) {
                cluster.untracked_config_maps.insert(name(&value));
            }
            cluster.config_maps.insert(name(&value), config);
        }
        "Secret" => {
            let secret: Secret = typed(value.clone())?;
            if !crate::configs::secret_tracked(&secret) {
                cluster.untracked_secrets.insert(name(&value));
            }
            cluster.secrets.insert(name(&value), secret);
        }
        // User Services: nothing to model from them.
        _ => {}
    }
    Ok(())
}

/// The objects as multi-document YAML, `---` between documents.
pub fn to_yaml(objects: &[crate::Object]) -> String {
    objects
        .iter()
        .map(|object| serde_saphyr::to_string(&object.to_value()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_documents_are_blanked_line_for_line() {
        let text = "apiVersion: flagger.app/v1beta1\nkind: Canary\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo}\nspec:\n  selector: {matchLabels: {app: podinfo}}\n  template: {spec: {containers: []}}\n---\nkind: ConfigMap\nmetadata:\n  name: cfg\n  annotations: {flagger.app/config-tracking: disabled}\n";
        let split = split(text).expect("valid");
        assert_eq!(split.spec_text.lines().count(), text.lines().count());
        assert!(
            split
                .spec_text
                .starts_with("apiVersion: flagger.app/v1beta1\nkind: Canary\n---\n#\n")
        );
        assert!(split.cluster.target.is_some());
        assert!(split.cluster.untracked_config_maps.contains("cfg"));
        let canary = serin_spec::Canary {
            spec: serin_spec::CanarySpec {
                target_ref: Some(serin_spec::ObjectReference {
                    name: "other".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        // A Deployment the canary does not name is not its target.
        assert!(split.cluster_for(&canary).target.is_none());
    }

    #[test]
    fn a_malformed_cluster_document_names_its_place() {
        let text = "kind: Canary\n---\nkind: Deployment\nspec: 3\n";
        let errors = split(text).expect_err("invalid");
        assert!(
            errors[0]
                .to_string()
                .starts_with("documents[1] (Deployment): "),
            "{}",
            errors[0]
        );
    }
}
