//! What a pass reads of the cluster besides the canary and its target: the
//! ConfigMaps and Secrets the target references (config tracking) and the
//! `autoscalerRef` HorizontalPodAutoscaler or KEDA ScaledObject. Reads only; the model
//! (`configs.rs`, `workload.rs`) decides what is written from them.

use k8s_openapi::api::{
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{ConfigMap, Secret},
};
use kube::{Api, Client};

use crate::{
    Cluster, configs::References, controller::Error, crds::ScaledObject, workload::ScalerKind,
};

/// Reads the configs `cluster.target` references into `cluster`, and
/// names those the primary keeps as they are. A missing config is refused
/// unless every reference to it is `optional` (Kubernetes would not start
/// the pods either); an optional one is left out, as Flagger does.
pub async fn configs(client: &Client, namespace: &str, cluster: &mut Cluster) -> Result<(), Error> {
    let Some(spec) = cluster
        .target
        .as_ref()
        .and_then(|deployment| deployment.spec.template.spec.as_ref())
    else {
        return Ok(());
    };
    let references = References::of(spec);
    let target = cluster
        .target
        .as_ref()
        .and_then(|deployment| deployment.metadata.name.clone())
        .unwrap_or_default();
    let missing = |kind: &str, name: &str| {
        crate::Error::field(
            "spec.targetRef",
            format!(
                "Deployment {target}.{namespace} references {kind} {name}, which does not exist (and is not optional)"
            ),
        )
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for (name, optional) in &references.config_maps {
        match config_maps.get_opt(name).await? {
            Some(config) => {
                cluster.config_maps.insert(name.clone(), config);
            }
            None if *optional => {}
            None => return Err(missing("ConfigMap", name).into()),
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for (name, optional) in &references.secrets {
        match secrets.get_opt(name).await? {
            Some(secret) => {
                cluster.secrets.insert(name.clone(), secret);
            }
            None if *optional => {}
            None => return Err(missing("Secret", name).into()),
        }
    }
    let (config_maps, secrets) =
        crate::configs::untracked(&references, &cluster.config_maps, &cluster.secrets);
    cluster.untracked_config_maps = config_maps;
    cluster.untracked_secrets = secrets;
    Ok(())
}

/// Reads the canary's `autoscalerRef` into `cluster` (nothing without one):
/// an HPA or a KEDA ScaledObject, as its `kind` says.
pub async fn autoscaler(
    client: &Client,
    namespace: &str,
    canary: &serin_spec::Canary,
    cluster: &mut Cluster,
) -> Result<(), Error> {
    let (Some(kind), Some(reference)) = (
        crate::workload::scaler_kind(canary)?,
        canary.spec.autoscaler_ref.as_ref(),
    ) else {
        return Ok(());
    };
    let missing = |kind: &str| {
        crate::Error::field(
            "spec.autoscalerRef.name",
            format!("{kind} {}.{namespace} does not exist", reference.name),
        )
    };
    match kind {
        ScalerKind::Hpa => {
            let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
            let hpa = api.get_opt(&reference.name).await?;
            cluster.autoscaler = Some(hpa.ok_or_else(|| missing("HorizontalPodAutoscaler"))?);
        }
        ScalerKind::ScaledObject => {
            let api: Api<ScaledObject> = Api::namespaced(client.clone(), namespace);
            let scaler = api.get_opt(&reference.name).await?;
            cluster.scaled_object = Some(scaler.ok_or_else(|| missing("ScaledObject"))?);
        }
    }
    Ok(())
}
