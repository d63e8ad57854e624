//! The primary workload as Flagger builds it from the target Deployment:
//! `TARGET-primary`, its selector label rewritten to `VALUE-primary`, its
//! ConfigMaps and Secrets renamed to their `-primary` copies, and a
//! `flagger-id` pod annotation that changes with the template so every
//! promotion rolls the pods.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        autoscaling::v2::{CrossVersionObjectReference, HorizontalPodAutoscaler},
        core::v1::{Container, PodSpec, PodTemplateSpec},
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta},
};

use crate::{Result, hash, subject::Subject};

/// The pod template annotation Flagger sets so a promotion rolls the pods.
pub const FLAGGER_ID: &str = "flagger-id";
/// Flux's reconcile marker, set on every object Flagger manages.
pub const KUSTOMIZE_RECONCILE: &str = "kustomize.toolkit.fluxcd.io/reconcile";
/// Helm controller's drift detection marker, set likewise.
pub const HELM_DRIFT_DETECTION: &str = "helm.toolkit.fluxcd.io/driftDetection";
/// kubectl's record of the applied object, never copied.
pub const KUBECTL_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Flagger's `filterMetadata`: annotations with Flux's markers set so Flux
/// does not undo what the controller writes.
pub fn managed_annotations(
    annotations: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = annotations
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.as_str() != KUBECTL_LAST_APPLIED)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    annotations.insert(KUSTOMIZE_RECONCILE.into(), "disabled".into());
    annotations.insert(HELM_DRIFT_DETECTION.into(), "disabled".into());
    annotations
}

/// Flagger's `makePrimaryLabels`: `labels` with the selector label set to
/// the primary's value.
fn primary_labels(
    labels: Option<&BTreeMap<String, String>>,
    label: &str,
    value: &str,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = labels.cloned().unwrap_or_default();
    labels.insert(label.to_string(), value.to_string());
    labels
}

/// The revision fingerprint of a pod template: what the controller records
/// as `lastAppliedSpec` and compares to detect a new revision.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    // A PodTemplateSpec always serializes (string keys, no failing impls).
    let text = serde_json::to_string(template).unwrap_or_default();
    hash::fingerprint(&text)
}

/// The `NAME-primary` Deployment for the target as it is now (at
/// initialisation and at promotion alike: Flagger copies the same fields).
/// Without the target Deployment, the skeleton the canary alone defines
/// (names, labels, selector, owner); its pod spec comes from the target.
pub fn primary_deployment(subject: &Subject<'_>) -> Result<Deployment> {
    let label = subject.selector_label();
    let primary_value = subject.primary_label_value();
    let target = subject.cluster().target.as_ref();
    let target_spec = target.map(|deployment| &deployment.spec);
    let template = target_spec.map(|spec| &spec.template);
    let template_meta = template.and_then(|template| template.metadata.as_ref());

    let mut pod_annotations: BTreeMap<String, String> = template_meta
        .and_then(|meta| meta.annotations.clone())
        .unwrap_or_default();
    pod_annotations.remove(FLAGGER_ID);
    pod_annotations.insert(
        FLAGGER_ID.into(),
        hash::uuid(&template.map(template_hash).unwrap_or_default()),
    );
    let mut pod_labels = template_meta.and_then(|meta| meta.labels.clone());
    if pod_labels.is_none() {
        pod_labels = Some(BTreeMap::from([(
            label.to_string(),
            subject.label_value().to_string(),
        )]));
    }

    let replicas = target_spec
        .and_then(|spec| spec.replicas)
        .filter(|replicas| *replicas > 0)
        .unwrap_or(1);
    let pod_spec = template
        .and_then(|template| template.spec.as_ref())
        .map(|spec| primary_pod_spec(subject, spec))
        .unwrap_or_default();

    Ok(Deployment {
        metadata: ObjectMeta {
            name: Some(subject.primary_workload_name()),
            namespace: Some(subject.namespace().to_string()),
            labels: Some(primary_labels(None, label, &primary_value)),
            annotations: Some(managed_annotations(
                target.and_then(|deployment| deployment.metadata.annotations.as_ref()),
            )),
            owner_references: subject.owner_references(),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            progress_deadline_seconds: target_spec.and_then(|spec| spec.progress_deadline_seconds),
            min_ready_seconds: target_spec.and_then(|spec| spec.min_ready_seconds),
            revision_history_limit: target_spec.and_then(|spec| spec.revision_history_limit),
            // With an autoscaler the HPA owns the replicas (Flagger leaves
            // them to it): applying a count would fight every scaling.
            replicas: subject
                .canary()
                .spec
                .autoscaler_ref
                .is_none()
                .then_some(replicas),
            strategy: target_spec.and_then(|spec| spec.strategy.clone()),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(label.to_string(), primary_value.clone())])),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(primary_labels(pod_labels.as_ref(), label, &primary_value)),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

/// Flagger's `getPrimaryDeploymentTemplateSpec`: tracked ConfigMaps and
/// Secrets point at their `-primary` copies, and label selectors of
/// topology spread and anti-affinity that name the target name the primary.
pub fn primary_pod_spec(subject: &Subject<'_>, spec: &PodSpec) -> PodSpec {
    let mut spec = spec.clone();
    let cluster = subject.cluster();
    let config_map = |name: &mut String| {
        if !cluster.untracked_config_maps.contains(name.as_str()) {
            name.push_str("-primary");
        }
    };
    let secret = |name: &mut String| {
        if !cluster.untracked_secrets.contains(name.as_str()) {
            name.push_str("-primary");
        }
    };
    for volume in spec.volumes.iter_mut().flatten() {
        if let Some(source) = volume.config_map.as_mut() {
            config_map(&mut source.name);
        }
        if let Some(name) = volume
            .secret
            .as_mut()
            .and_then(|source| source.secret_name.as_mut())
        {
            secret(name);
        }
        if let Some(projected) = volume.projected.as_mut() {
            for source in projected.sources.iter_mut().flatten() {
                if let Some(source) = source.config_map.as_mut() {
                    config_map(&mut source.name);
                }
                if let Some(source) = source.secret.as_mut() {
                    secret(&mut source.name);
                }
            }
        }
    }
    let rename_container = |container: &mut Container| {
        for from in container.env_from.iter_mut().flatten() {
            if let Some(source) = from.config_map_ref.as_mut() {
                config_map(&mut source.name);
            }
            if let Some(source) = from.secret_ref.as_mut() {
                secret(&mut source.name);
            }
        }
        for var in container.env.iter_mut().flatten() {
            if let Some(from) = var.value_from.as_mut() {
                if let Some(key) = from.config_map_key_ref.as_mut() {
                    config_map(&mut key.name);
                }
                if let Some(key) = from.secret_key_ref.as_mut() {
                    secret(&mut key.name);
                }
            }
        }
    };
    spec.containers.iter_mut().for_each(rename_container);
    spec.init_containers
        .iter_mut()
        .flatten()
        .for_each(rename_container);

    let target = subject.target_name().to_string();
    let rewrite = |selector: &mut Option<LabelSelector>| {
        let Some(selector) = selector.as_mut() else {
            return;
        };
        for expression in selector.match_expressions.iter_mut().flatten() {
            if crate::subject::SELECTOR_LABELS.contains(&expression.key.as_str())
                && let Some(value) = expression
                    .values
                    .iter_mut()
                    .flatten()
                    .find(|value| **value == target)
            {
                value.push_str("-primary");
            }
        }
        for (key, value) in selector.match_labels.iter_mut().flatten() {
            if crate::subject::SELECTOR_LABELS.contains(&key.as_str()) && *value == target {
                value.push_str("-primary");
            }
        }
    };
    for constraint in spec.topology_spread_constraints.iter_mut().flatten() {
        rewrite(&mut constraint.label_selector);
    }
    if let Some(anti) = spec
        .affinity
        .as_mut()
        .and_then(|affinity| affinity.pod_anti_affinity.as_mut())
    {
        for term in anti
            .preferred_during_scheduling_ignored_during_execution
            .iter_mut()
            .flatten()
        {
            rewrite(&mut term.pod_affinity_term.label_selector);
        }
        for term in anti
            .required_during_scheduling_ignored_during_execution
            .iter_mut()
            .flatten()
        {
            rewrite(&mut term.label_selector);
        }
    }
    spec
}

/// The `NAME-primary` HorizontalPodAutoscaler: the target's autoscaler
/// pointed at the primary Deployment. `None` without `autoscalerRef` or
/// when the autoscaler itself is not known.
pub fn primary_hpa(subject: &Subject<'_>) -> Result<Option<HorizontalPodAutoscaler>> {
    let Some(reference) = subject.canary().spec.autoscaler_ref.as_ref() else {
        return Ok(None);
    };
    match reference.kind.as_deref() {
        Some("HorizontalPodAutoscaler") | None => {}
        Some(other) => {
            return Err(crate::Error::field(
                "spec.autoscalerRef.kind",
                format!("serin's Kubernetes mode drives HorizontalPodAutoscalers, got {other:?}"),
            ));
        }
    }
    let Some(hpa) = subject.cluster().autoscaler.as_ref() else {
        return Ok(None);
    };
    let mut spec = hpa.spec.clone();
    spec.scale_target_ref = CrossVersionObjectReference {
        name: subject.primary_workload_name(),
        ..spec.scale_target_ref
    };
    Ok(Some(HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(format!("{}-primary", reference.name)),
            namespace: Some(subject.namespace().to_string()),
            labels: Some(managed_annotations(hpa.metadata.labels.as_ref())),
            owner_references: subject.owner_references(),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }))
}

/// Flagger's `IsCanaryReady` for a Deployment: why its rollout is not
/// done yet (`None` when every replica is updated and available).
pub fn rollout_pending(deployment: &Deployment) -> Option<String> {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Some(format!("waiting for rollout of {name} to be observed"));
    }
    let replicas = deployment.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if updated < replicas {
        Some(format!(
            "waiting for rollout of {name} to finish: {updated} out of {replicas} new replicas have been updated"
        ))
    } else if total > updated {
        Some(format!(
            "waiting for rollout of {name} to finish: {} old replicas are pending termination",
            total - updated
        ))
    } else if available < updated {
        Some(format!(
            "waiting for rollout of {name} to finish: {available} of {updated} updated replicas are available"
        ))
    } else {
        None
    }
}

/// The target scaled to `replicas` (Flagger scales the canary to zero
/// after initialisation, promotion and rollback, and back up for a run).
pub fn scaled(deployment: &Deployment, replicas: i32) -> Deployment {
    let mut deployment = deployment.clone();
    deployment.spec.replicas = Some(replicas);
    deployment.status = None;
    deployment
}
