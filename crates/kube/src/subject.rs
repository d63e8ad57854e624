//! The canary being modelled, with the cluster objects it references.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ConfigMap, Container, Secret},
        networking::v1::Ingress,
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use serin_spec::{Canary, service::IntOrString};

use crate::{Error, Result};

/// Flagger's default `-selector-labels`: the first of these found in the
/// target's `spec.selector.matchLabels` is the label Flagger rewrites.
pub const SELECTOR_LABELS: [&str; 3] = ["app", "name", "app.kubernetes.io/name"];

/// The provider Flagger's `-mesh-provider` defaults to.
pub const DEFAULT_PROVIDER: &str = "istio";

/// The annotation that keeps a ConfigMap or Secret out of config tracking.
pub const CONFIG_TRACKING_ANNOTATION: &str = "flagger.app/config-tracking";

/// The cluster objects a canary references, when known. `serin render`
/// takes them from the documents next to the canary; the controller reads
/// them from the API. Absent objects are modelled from the canary alone
/// (the selector label `app` with the target's name as value).
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// The `targetRef` Deployment.
    pub target: Option<Deployment>,
    /// The `autoscalerRef` HorizontalPodAutoscaler.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    /// The `autoscalerRef` KEDA ScaledObject.
    pub scaled_object: Option<crate::crds::ScaledObject>,
    /// The `ingressRef` Ingress (nginx).
    pub ingress: Option<Ingress>,
    /// ConfigMaps (by name) the primary keeps as they are: opted out of
    /// tracking, or (in the controller) optional and absent.
    pub untracked_config_maps: BTreeSet<String>,
    /// Secrets (by name) the primary keeps as they are: opted out, of a
    /// type Flagger does not copy, or optional and absent.
    pub untracked_secrets: BTreeSet<String>,
    /// The ConfigMaps known, by name: those tracked are copied as
    /// `NAME-primary` and checksummed (`configs.rs`).
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// The Secrets known, by name, likewise.
    pub secrets: BTreeMap<String, Secret>,
}

/// A canary ready to be modelled: its fields, the provider in force, the
/// cluster objects and what is derived from them once.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    canary: &'a Canary,
    provider: String,
    namespace: String,
    target_name: String,
    cluster: &'a Cluster,
    selector_label: String,
    label_value: String,
    port: i32,
    owner: Option<OwnerReference>,
}

// === impl Subject ===

impl<'a> Subject<'a> {
    /// Checks what the model needs of `canary` (a `targetRef` Deployment, a
    /// service port) and derives the selector label. `default_provider`
    /// stands in where the canary names none (Flagger's `-mesh-provider`).
    pub fn new(canary: &'a Canary, cluster: &'a Cluster, default_provider: &str) -> Result<Self> {
        let target = canary
            .spec
            .target_ref
            .as_ref()
            .ok_or_else(|| Error::field("spec.targetRef", "required in Kubernetes mode"))?;
        match target.kind.as_deref() {
            Some("Deployment") | None => {}
            Some(other) => {
                return Err(Error::field(
                    "spec.targetRef.kind",
                    format!("serin's Kubernetes mode drives Deployments, got {other:?}"),
                ));
            }
        }
        if target.name.is_empty() {
            return Err(Error::field("spec.targetRef.name", "must not be empty"));
        }
        let port = canary
            .spec
            .service
            .port
            .ok_or_else(|| Error::field("spec.service.port", "required in Kubernetes mode"))?;
        let port = i32::try_from(port)
            .ok()
            .filter(|port| (1..=65_535).contains(port))
            .ok_or_else(|| {
                Error::field(
                    "spec.service.port",
                    format!("must be between 1 and 65535, got {port}"),
                )
            })?;
        let (selector_label, label_value) = match &cluster.target {
            Some(deployment) => selector_of(deployment)?,
            None => ("app".to_string(), target.name.clone()),
        };
        let provider = canary
            .spec
            .provider
            .clone()
            .filter(|provider| !provider.is_empty())
            .unwrap_or_else(|| default_provider.to_string());
        let owner = canary.metadata.uid.as_ref().map(|uid| OwnerReference {
            api_version: canary.api_version.clone(),
            kind: "Canary".to_string(),
            name: canary.name().to_string(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        });
        Ok(Self {
            canary,
            provider,
            namespace: canary
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            target_name: target.name.clone(),
            cluster,
            selector_label,
            label_value,
            port,
            owner,
        })
    }

    /// The canary.
    pub fn canary(&self) -> &'a Canary {
        self.canary
    }

    /// The provider in force (`istio`, `gatewayapi:v1`, …).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The namespace of the canary and of every object it owns.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The cluster objects referenced.
    pub fn cluster(&self) -> &'a Cluster {
        self.cluster
    }

    /// `spec.targetRef.name`.
    pub fn target_name(&self) -> &str {
        &self.target_name
    }

    /// The primary workload's name: `TARGET-primary`.
    pub fn primary_workload_name(&self) -> String {
        format!("{}-primary", self.target_name)
    }

    /// Flagger's `GetServiceNames`: `spec.service.name` or the target's
    /// name, then `-primary` and `-canary`.
    pub fn apex_name(&self) -> &str {
        self.canary
            .spec
            .service
            .name
            .as_deref()
            .filter(|name| !name.is_empty())
            .unwrap_or(&self.target_name)
    }

    /// `APEX-primary`.
    pub fn primary_name(&self) -> String {
        format!("{}-primary", self.apex_name())
    }

    /// `APEX-canary`.
    pub fn canary_name(&self) -> String {
        format!("{}-canary", self.apex_name())
    }

    /// The selector label Flagger rewrites (`app` by default).
    pub fn selector_label(&self) -> &str {
        &self.selector_label
    }

    /// The target's value of the selector label.
    pub fn label_value(&self) -> &str {
        &self.label_value
    }

    /// The primary's value of the selector label: `VALUE-primary`.
    pub fn primary_label_value(&self) -> String {
        format!("{}-primary", self.label_value)
    }

    /// `spec.service.port`.
    pub fn port(&self) -> i32 {
        self.port
    }

    /// The controller reference to the canary, when its `uid` is known
    /// (always in the cluster; in a file only when exported with one).
    pub fn owner_references(&self) -> Option<Vec<OwnerReference>> {
        self.owner.clone().map(|owner| vec![owner])
    }

    /// Flagger's `getPorts` with `portDiscovery`: every named container
    /// port of the target but the service's own, sidecars excluded.
    pub fn discovered_ports(&self) -> BTreeMap<String, i32> {
        let mut ports = BTreeMap::new();
        if !self.canary.spec.service.port_discovery {
            return ports;
        }
        let Some(spec) = self
            .cluster
            .target
            .as_ref()
            .and_then(|deployment| deployment.spec.template.spec.as_ref())
        else {
            return ports;
        };
        for container in &spec.containers {
            collect_ports(self, container, &mut ports);
        }
        ports
    }
}

fn collect_ports(subject: &Subject<'_>, container: &Container, ports: &mut BTreeMap<String, i32>) {
    if matches!(container.name.as_str(), "istio-proxy" | "envoy") {
        return;
    }
    for (index, port) in container.ports.iter().flatten().enumerate() {
        let excluded = match &subject.canary.spec.service.target_port {
            None | Some(IntOrString::Int(0)) => port.container_port == subject.port,
            Some(IntOrString::Int(target)) => i64::from(port.container_port) == *target,
            Some(IntOrString::String(name)) => port.name.as_deref() == Some(name.as_str()),
        };
        if excluded {
            continue;
        }
        let name = port
            .name
            .clone()
            .unwrap_or_else(|| format!("tcp-{}-{index}", container.name));
        ports.insert(name, port.container_port);
    }
}

/// Flagger's `getSelectorLabel`: the first of [`SELECTOR_LABELS`] in the
/// Deployment's `spec.selector.matchLabels`, with its value.
pub fn selector_of(deployment: &Deployment) -> Result<(String, String)> {
    let labels = deployment.spec.selector.match_labels.as_ref();
    SELECTOR_LABELS
        .iter()
        .find_map(|label| {
            labels
                .and_then(|labels| labels.get(*label))
                .map(|value| (label.to_string(), value.clone()))
        })
        .ok_or_else(|| {
            Error::field(
                "spec.targetRef",
                format!(
                    "Deployment {}: spec.selector.matchLabels must contain one of {}",
                    deployment.metadata.name.as_deref().unwrap_or_default(),
                    SELECTOR_LABELS.join(", ")
                ),
            )
        })
}
