//! Kubernetes mode: Flagger's object model for a `Canary` with a `targetRef`
//! Deployment, built as values.
//!
//! [`build`] turns a canary (parsed by `serin-spec`, Flagger's
//! `flagger.app/v1beta1` or serin's `serin.dev/v1alpha1`), the cluster
//! objects it references when known ([`Cluster`]) and a traffic position
//! ([`Routes`]) into the objects Flagger would hold at that position: the
//! `NAME-primary` Deployment, the Services `NAME`, `NAME-primary` and
//! `NAME-canary`, and the router's own objects (Istio `VirtualService` and
//! `DestinationRule`s, a Gateway API `HTTPRoute`, the nginx canary
//! `Ingress`). The same names, labels, selectors, annotations and owner
//! references as Flagger, so a cluster can move between the two.
//!
//! Nothing here does I/O: `serin render` prints these objects and the
//! controller applies them, so both show and write the same thing.

#![forbid(unsafe_code)]

pub mod checks;
pub mod configs;
pub mod controller;
pub mod crds;
pub mod documents;
pub mod hash;
pub mod lease;
pub mod manual;
pub mod metrics;
pub mod object;
pub mod operator;
pub mod read;
pub mod resource;
pub mod router;
pub mod routes;
pub mod services;
pub mod status;
pub mod subject;
pub mod traffic;
pub mod workload;

pub use object::Object;
pub use router::{KubeRouter, router_for};
pub use routes::{Position, Routes};
pub use subject::{Cluster, Subject};

/// What the object model refuses: each names the canary field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field the model needs is missing or unusable.
    #[error("{path}: {message}")]
    Field {
        /// The field path, e.g. `spec.service.port`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The provider is not one the Kubernetes model renders.
    #[error(
        "spec.provider: {0:?} is not a Kubernetes router serin drives (istio, gatewayapi:v1, gatewayapi:v1beta1, kubernetes, nginx with ingressRef)"
    )]
    Provider(String),
}

impl Error {
    /// A problem with the field at `path`.
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Field {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every object Flagger holds for `subject` at `routes`, in the order they
/// are applied: the tracked configs' `-primary` copies, the primary
/// workload (and its autoscaler), the Services, then the router's objects.
pub fn build(subject: &Subject<'_>, routes: &Routes) -> Result<Vec<Object>> {
    let router = router_for(subject.provider())?;
    let mut objects = primary(subject)?;
    for service in services::services(subject, router.apex_selects_canary(routes))? {
        objects.push(Object::Service(Box::new(service)));
    }
    objects.extend(router.objects(subject, routes)?);
    Ok(objects)
}

/// The primary side Flagger writes at initialisation and at each
/// promotion, in order: the tracked configs' `-primary` copies (before the
/// pods that mount them), the primary Deployment, its autoscaler.
pub fn primary(subject: &Subject<'_>) -> Result<Vec<Object>> {
    let mut objects = configs::primary_configs(subject);
    objects.push(Object::Deployment(Box::new(workload::primary_deployment(
        subject,
    )?)));
    objects.extend(workload::primary_autoscaler(subject)?);
    Ok(objects)
}
