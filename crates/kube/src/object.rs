//! One object of the model, typed, with what printing and applying need.

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ConfigMap, Secret, Service},
        networking::v1::Ingress,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::Resource;
use serde_json::Value;

use crate::crds::{DestinationRule, HttpRoute, ScaledObject, VirtualService};

/// An object serin writes for a canary.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// The primary Deployment.
    Deployment(Box<Deployment>),
    /// The primary HorizontalPodAutoscaler.
    Hpa(Box<HorizontalPodAutoscaler>),
    /// The primary KEDA ScaledObject.
    ScaledObject(Box<ScaledObject>),
    /// A tracked ConfigMap's `-primary` copy.
    ConfigMap(Box<ConfigMap>),
    /// A tracked Secret's `-primary` copy.
    Secret(Box<Secret>),
    /// A Service (apex, primary or canary).
    Service(Box<Service>),
    /// The nginx canary Ingress.
    Ingress(Box<Ingress>),
    /// The Istio VirtualService.
    VirtualService(Box<VirtualService>),
    /// An Istio DestinationRule.
    DestinationRule(Box<DestinationRule>),
    /// A Gateway API HTTPRoute; the API version (`v1`, `v1beta1`) is the
    /// provider's.
    HttpRoute(Box<HttpRoute>, &'static str),
}

// === impl Object ===

impl Object {
    /// The kind, as the API names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deployment(_) => "Deployment",
            Self::Hpa(_) => "HorizontalPodAutoscaler",
            Self::ScaledObject(_) => "ScaledObject",
            Self::ConfigMap(_) => "ConfigMap",
            Self::Secret(_) => "Secret",
            Self::Service(_) => "Service",
            Self::Ingress(_) => "Ingress",
            Self::VirtualService(_) => "VirtualService",
            Self::DestinationRule(_) => "DestinationRule",
            Self::HttpRoute(..) => "HTTPRoute",
        }
    }

    /// `apiVersion`.
    pub fn api_version(&self) -> String {
        match self {
            Self::Deployment(_) => Deployment::api_version(&()).into_owned(),
            Self::Hpa(_) => HorizontalPodAutoscaler::api_version(&()).into_owned(),
            Self::ScaledObject(_) => ScaledObject::api_version(&()).into_owned(),
            Self::ConfigMap(_) => ConfigMap::api_version(&()).into_owned(),
            Self::Secret(_) => Secret::api_version(&()).into_owned(),
            Self::Service(_) => Service::api_version(&()).into_owned(),
            Self::Ingress(_) => Ingress::api_version(&()).into_owned(),
            Self::VirtualService(_) => VirtualService::api_version(&()).into_owned(),
            Self::DestinationRule(_) => DestinationRule::api_version(&()).into_owned(),
            Self::HttpRoute(_, version) => format!("gateway.networking.k8s.io/{version}"),
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Deployment(object) => &object.metadata,
            Self::Hpa(object) => &object.metadata,
            Self::ScaledObject(object) => &object.metadata,
            Self::ConfigMap(object) => &object.metadata,
            Self::Secret(object) => &object.metadata,
            Self::Service(object) => &object.metadata,
            Self::Ingress(object) => &object.metadata,
            Self::VirtualService(object) => &object.metadata,
            Self::DestinationRule(object) => &object.metadata,
            Self::HttpRoute(object, _) => &object.metadata,
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object as JSON, with `apiVersion` and `kind` first.
    pub fn to_value(&self) -> Value {
        let body = match self {
            Self::Deployment(object) => serde_json::to_value(object),
            Self::Hpa(object) => serde_json::to_value(object),
            Self::ScaledObject(object) => serde_json::to_value(object),
            Self::ConfigMap(object) => serde_json::to_value(object),
            Self::Secret(object) => serde_json::to_value(object),
            Self::Service(object) => serde_json::to_value(object),
            Self::Ingress(object) => serde_json::to_value(object),
            Self::VirtualService(object) => serde_json::to_value(object),
            Self::DestinationRule(object) => serde_json::to_value(object),
            Self::HttpRoute(object, _) => serde_json::to_value(object),
        };
        // These types serialize to JSON objects (no maps with non-string
        // keys, no failing `Serialize` impls); `Null` is unreachable.
        let mut map = serde_json::Map::new();
        map.insert("apiVersion".into(), Value::String(self.api_version()));
        map.insert("kind".into(), Value::String(self.kind().into()));
        if let Ok(Value::Object(fields)) = body {
            for (key, value) in fields {
                if key != "apiVersion" && key != "kind" {
                    map.insert(key, value);
                }
            }
        }
        Value::Object(map)
    }
}
