//! The three ClusterIP Services Flagger creates: `APEX` (selecting the
//! primary pods, or the canary's during a blue/green switch on the
//! `kubernetes` provider), `APEX-primary` and `APEX-canary`.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use serin_spec::service::{CustomMetadata, IntOrString as SpecIntOrString};

use crate::{Error, Result, subject::Subject, workload::managed_annotations};

/// The Services, apex first. `apex_to_canary`: the apex selects the
/// canary's pods (the `kubernetes` router's switch).
pub fn services(subject: &Subject<'_>, apex_to_canary: bool) -> Result<Vec<Service>> {
    let service = &subject.canary().spec.service;
    let apex_selector = if apex_to_canary {
        subject.label_value().to_string()
    } else {
        subject.primary_label_value()
    };
    Ok(vec![
        make(
            subject,
            subject.apex_name().to_string(),
            apex_selector,
            service.apex.as_ref(),
        )?,
        make(
            subject,
            subject.primary_name(),
            subject.primary_label_value(),
            service.primary.as_ref(),
        )?,
        make(
            subject,
            subject.canary_name(),
            subject.label_value().to_string(),
            service.canary.as_ref(),
        )?,
    ])
}

/// Flagger's `reconcileService`.
fn make(
    subject: &Subject<'_>,
    name: String,
    selector_value: String,
    metadata: Option<&CustomMetadata>,
) -> Result<Service> {
    let spec = &subject.canary().spec.service;
    let target_port = match &spec.target_port {
        None | Some(SpecIntOrString::Int(0)) => IntOrString::Int(subject.port()),
        Some(SpecIntOrString::Int(port)) => IntOrString::Int(
            i32::try_from(*port)
                .ok()
                .filter(|port| (1..=65_535).contains(port))
                .ok_or_else(|| {
                    Error::field(
                        "spec.service.targetPort",
                        format!("must be between 1 and 65535, got {port}"),
                    )
                })?,
        ),
        Some(SpecIntOrString::String(name)) => IntOrString::String(name.clone()),
    };
    let mut ports = vec![ServicePort {
        name: Some(
            spec.port_name
                .clone()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "http".into()),
        ),
        protocol: Some("TCP".into()),
        port: subject.port(),
        target_port: Some(target_port),
        app_protocol: spec.app_protocol.clone().filter(|value| !value.is_empty()),
        ..ServicePort::default()
    }];
    for (port_name, port) in subject.discovered_ports() {
        ports.push(ServicePort {
            name: Some(port_name),
            protocol: Some("TCP".into()),
            port,
            target_port: Some(IntOrString::Int(port)),
            ..ServicePort::default()
        });
    }
    let mut labels: BTreeMap<String, String> =
        metadata.map(|meta| meta.labels.clone()).unwrap_or_default();
    labels.insert(subject.selector_label().to_string(), name.clone());
    let annotations = managed_annotations(metadata.map(|meta| &meta.annotations));
    Ok(Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(subject.namespace().to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: subject.owner_references(),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(BTreeMap::from([(
                subject.selector_label().to_string(),
                selector_value,
            )])),
            ports: Some(ports),
            traffic_distribution: spec.traffic_distribution.clone(),
            cluster_ip: spec.headless.then(|| "None".to_string()),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}
