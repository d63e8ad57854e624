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

use crate::{Result, crds::ScaledObject, hash, subject::Subject};

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

/// KEDA's annotation that holds a ScaledObject's workload at a replica
/// count: Flagger sets it to `0` on the target's scaler while the target
/// is scaled to zero, so KEDA does not scale it back up.
pub const KEDA_PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";
/// KEDA's annotation that lets a ScaledObject take over an existing HPA of
/// the name its `advanced.horizontalPodAutoscalerConfig.name` gives.
pub const KEDA_TRANSFER_HPA_OWNERSHIP: &str = "scaledobject.keda.sh/transfer-hpa-ownership";

/// The kinds of `autoscalerRef` serin drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalerKind {
    /// `autoscaling/v2` HorizontalPodAutoscaler (the default kind).
    Hpa,
    /// KEDA's `keda.sh/v1alpha1` ScaledObject.
    ScaledObject,
}

/// The kind of the canary's `autoscalerRef` (`None` without one); any
/// other kind is refused naming the field.
pub fn scaler_kind(canary: &serin_spec::Canary) -> Result<Option<ScalerKind>> {
    let Some(reference) = canary.spec.autoscaler_ref.as_ref() else {
        return Ok(None);
    };
    match reference.kind.as_deref() {
        Some("HorizontalPodAutoscaler") | None => Ok(Some(ScalerKind::Hpa)),
        Some("ScaledObject") => Ok(Some(ScalerKind::ScaledObject)),
        Some(other) => Err(crate::Error::field(
            "spec.autoscalerRef.kind",
            format!(
                "serin's Kubernetes mode drives HorizontalPodAutoscalers and KEDA ScaledObjects, got {other:?}"
            ),
        )),
    }
}

/// `autoscalerRef.primaryScalerReplicas`, each as the `i32` the scalers
/// take (a count out of that range names its field).
fn primary_replicas(subject: &Subject<'_>) -> Result<(Option<i32>, Option<i32>)> {
    let Some(replicas) = subject
        .canary()
        .spec
        .autoscaler_ref
        .as_ref()
        .and_then(|reference| reference.primary_scaler_replicas.as_ref())
    else {
        return Ok((None, None));
    };
    let count = |value: Option<i64>, field: &str| {
        value
            .map(|value| {
                i32::try_from(value).map_err(|_| {
                    crate::Error::field(
                        format!("spec.autoscalerRef.primaryScalerReplicas.{field}"),
                        format!("must fit a replica count, got {value}"),
                    )
                })
            })
            .transpose()
    };
    Ok((
        count(replicas.min_replicas, "minReplicas")?,
        count(replicas.max_replicas, "maxReplicas")?,
    ))
}

/// The primary's autoscaler, of the kind the canary's `autoscalerRef`
/// names: `None` without one or when the target's is not known.
pub fn primary_autoscaler(subject: &Subject<'_>) -> Result<Option<crate::Object>> {
    Ok(match scaler_kind(subject.canary())? {
        None => None,
        Some(ScalerKind::Hpa) => primary_hpa(subject)?.map(|hpa| crate::Object::Hpa(Box::new(hpa))),
        Some(ScalerKind::ScaledObject) => primary_scaled_object(subject)?
            .map(|scaler| crate::Object::ScaledObject(Box::new(scaler))),
    })
}

/// The `NAME-primary` HorizontalPodAutoscaler: the target's autoscaler
/// pointed at the primary Deployment, with `primaryScalerReplicas` in
/// place of its bounds. `None` without an HPA `autoscalerRef` or when the
/// autoscaler itself is not known.
pub fn primary_hpa(subject: &Subject<'_>) -> Result<Option<HorizontalPodAutoscaler>> {
    if scaler_kind(subject.canary())? != Some(ScalerKind::Hpa) {
        return Ok(None);
    }
    let Some(hpa) = subject.cluster().autoscaler.as_ref() else {
        return Ok(None);
    };
    let name = autoscaler_name(subject);
    let (min, max) = primary_replicas(subject)?;
    let mut spec = hpa.spec.clone();
    spec.scale_target_ref = CrossVersionObjectReference {
        name: subject.primary_workload_name(),
        ..spec.scale_target_ref
    };
    if min.is_some() {
        spec.min_replicas = min;
    }
    if let Some(max) = max {
        spec.max_replicas = max;
    }
    Ok(Some(HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(format!("{name}-primary")),
            namespace: Some(subject.namespace().to_string()),
            labels: Some(managed_annotations(hpa.metadata.labels.as_ref())),
            owner_references: subject.owner_references(),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }))
}

/// Flagger's primary ScaledObject, `NAME-primary`: the target's scaler
/// pointed at the primary workload; each trigger's `query` taken from
/// `primaryScalerQueries` by the trigger's name, or else the target's
/// query with the target's name (and `TARGET-canary`) read as the
/// primary's; `primaryScalerReplicas` in place of its bounds; and the HPA
/// KEDA generates for it named `NAME-primary`, taken over if one exists.
/// `None` without a ScaledObject `autoscalerRef` or when the target's
/// scaler is not known.
pub fn primary_scaled_object(subject: &Subject<'_>) -> Result<Option<ScaledObject>> {
    if scaler_kind(subject.canary())? != Some(ScalerKind::ScaledObject) {
        return Ok(None);
    }
    let Some(target) = subject.cluster().scaled_object.as_ref() else {
        return Ok(None);
    };
    let primary_name = format!("{}-primary", autoscaler_name(subject));
    let queries = subject
        .canary()
        .spec
        .autoscaler_ref
        .as_ref()
        .map(|reference| &reference.primary_scaler_queries);
    let mut spec = target.spec.clone();
    spec.scale_target_ref.name = subject.primary_workload_name();
    for trigger in &mut spec.triggers {
        let given = trigger
            .name
            .as_ref()
            .and_then(|name| queries.and_then(|queries| queries.get(name)));
        if let Some(query) = given {
            trigger.metadata.insert("query".into(), query.clone());
        } else if let Some(query) = trigger.metadata.get_mut("query") {
            *query = primary_query(query, subject.target_name());
        }
    }
    let (min, max) = primary_replicas(subject)?;
    if min.is_some() {
        spec.min_replica_count = min;
    }
    if max.is_some() {
        spec.max_replica_count = max;
    }
    // The target's generated HPA has its own name; the primary's must not
    // take it over.
    let mut advanced = match spec.advanced.take() {
        Some(serde_json::Value::Object(advanced)) => advanced,
        _ => serde_json::Map::new(),
    };
    let hpa_config = advanced
        .entry("horizontalPodAutoscalerConfig")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !hpa_config.is_object() {
        *hpa_config = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(config) = hpa_config {
        config.insert(
            "name".into(),
            serde_json::Value::String(primary_name.clone()),
        );
    }
    spec.advanced = Some(serde_json::Value::Object(advanced));
    Ok(Some(ScaledObject {
        metadata: ObjectMeta {
            name: Some(primary_name),
            namespace: Some(subject.namespace().to_string()),
            labels: Some(managed_annotations(target.metadata.labels.as_ref())),
            annotations: Some(BTreeMap::from([(
                KEDA_TRANSFER_HPA_OWNERSHIP.to_string(),
                "true".to_string(),
            )])),
            owner_references: subject.owner_references(),
            ..ObjectMeta::default()
        },
        spec,
    }))
}

/// `autoscalerRef.name` (the subject has one when this is asked).
fn autoscaler_name(subject: &Subject<'_>) -> String {
    subject
        .canary()
        .spec
        .autoscaler_ref
        .as_ref()
        .map(|reference| reference.name.clone())
        .unwrap_or_default()
}

/// A target's scaler query as the primary's: `TARGET` and `TARGET-canary`
/// become `TARGET-primary`, and a `TARGET-primary` already there stays
/// (Flagger's best effort, without its `-primary-primary`: users with
/// other queries give `primaryScalerQueries`).
pub fn primary_query(query: &str, target: &str) -> String {
    if target.is_empty() {
        return query.to_string();
    }
    let primary = format!("{target}-primary");
    let canary = format!("{target}-canary");
    // One pass, longest name first, so no replacement is read again.
    let mut out = String::with_capacity(query.len() + primary.len());
    let mut rest = query;
    while let Some(at) = rest.find(target) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let taken = [primary.as_str(), canary.as_str(), target]
            .into_iter()
            .find(|name| tail.starts_with(name))
            .map_or(target.len(), str::len);
        out.push_str(&primary);
        rest = &tail[taken..];
    }
    out.push_str(rest);
    out
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
