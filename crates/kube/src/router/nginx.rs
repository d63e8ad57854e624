//! `provider: nginx` with `ingressRef`: the `INGRESS-canary` copy of the
//! user's Ingress, its backend pointed at `APEX-canary`, carrying
//! ingress-nginx's canary annotations, as Flagger's Ingress router writes it.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::networking::v1::{
        HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
        IngressServiceBackend, IngressSpec, ServiceBackendPort,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use super::KubeRouter;
use crate::{Error, Object, Result, Routes, subject::Subject, workload::KUBECTL_LAST_APPLIED};

/// ingress-nginx's annotation prefix.
const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// The nginx Ingress router.
#[derive(Clone, Copy, Debug)]
pub struct NginxIngress;

impl KubeRouter for NginxIngress {
    fn provider(&self) -> &'static str {
        "nginx"
    }

    fn objects(&self, subject: &Subject<'_>, routes: &Routes) -> Result<Vec<Object>> {
        Ok(vec![Object::Ingress(Box::new(canary_ingress(
            subject, routes,
        )?))])
    }
}

fn canary_ingress(subject: &Subject<'_>, routes: &Routes) -> Result<Ingress> {
    let canary = subject.canary();
    let reference = canary.spec.ingress_ref.as_ref().ok_or_else(|| {
        Error::field(
            "spec.ingressRef",
            "required with provider nginx in Kubernetes mode (the Ingress Flagger copies)",
        )
    })?;
    let apex = subject.apex_name();
    let (spec, labels, annotations) = match &subject.cluster().ingress {
        Some(ingress) => {
            let mut spec = ingress.spec.clone().unwrap_or_default();
            let mut found = false;
            for rule in spec.rules.iter_mut().flatten() {
                for path in rule.http.iter_mut().flat_map(|http| http.paths.iter_mut()) {
                    if let Some(service) = path.backend.service.as_mut()
                        && service.name == apex
                    {
                        service.name = subject.canary_name();
                        found = true;
                    }
                }
            }
            if !found {
                return Err(Error::field(
                    "spec.ingressRef",
                    format!("backend {apex} not found in Ingress {}", reference.name),
                ));
            }
            (
                spec,
                ingress.metadata.labels.clone(),
                ingress.metadata.annotations.clone().unwrap_or_default(),
            )
        }
        // Without the Ingress: one rule for every host and path to the
        // canary Service, the shape of Flagger's tutorial Ingress.
        None => (
            IngressSpec {
                rules: Some(vec![IngressRule {
                    host: None,
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some("/".into()),
                            path_type: "Prefix".into(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: subject.canary_name(),
                                    port: Some(ServiceBackendPort {
                                        number: Some(subject.port()),
                                        name: None,
                                    }),
                                }),
                                resource: None,
                            },
                        }],
                    }),
                }]),
                ..IngressSpec::default()
            },
            None,
            BTreeMap::new(),
        ),
    };
    Ok(Ingress {
        metadata: ObjectMeta {
            name: Some(format!("{}-canary", reference.name)),
            namespace: Some(subject.namespace().to_string()),
            labels,
            annotations: Some(annotations_at(subject, annotations, routes)),
            owner_references: subject.owner_references(),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// The canary annotations at `routes`: the weight for a progressive canary;
/// for A/B testing during the analysis, the header and cookie of the
/// analysis match (ingress-nginx supports one of each).
fn annotations_at(
    subject: &Subject<'_>,
    annotations: BTreeMap<String, String>,
    routes: &Routes,
) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = annotations
        .into_iter()
        .filter(|(key, _)| {
            !key.starts_with(&format!("{PREFIX}canary")) && key != KUBECTL_LAST_APPLIED
        })
        .collect();
    annotations.insert(format!("{PREFIX}canary"), "true".into());
    let analysis = subject.canary().analysis();
    if analysis.match_rules.is_empty() {
        annotations.insert(format!("{PREFIX}canary-weight"), routes.canary.to_string());
        return annotations;
    }
    if routes.canary == 0 {
        annotations.insert(format!("{PREFIX}canary-weight"), "0".into());
        return annotations;
    }
    for rule in &analysis.match_rules {
        for (name, value) in &rule.headers {
            if name.eq_ignore_ascii_case("cookie") {
                if let Some(exact) = &value.exact {
                    annotations.insert(format!("{PREFIX}canary-by-cookie"), exact.clone());
                }
                continue;
            }
            annotations.insert(format!("{PREFIX}canary-by-header"), name.clone());
            if let Some(exact) = &value.exact {
                annotations.insert(format!("{PREFIX}canary-by-header-value"), exact.clone());
            }
            if let Some(regex) = &value.regex {
                annotations.insert(format!("{PREFIX}canary-by-header-pattern"), regex.clone());
            }
        }
    }
    annotations
}
