//! The object model against Flagger's own manifests and the official
//! schemas: every Istio, Gateway API, Kubernetes and nginx canary of
//! Flagger's repository renders at every weight, and every object validates
//! against the CRD schema of its kind (Istio 1.30, Gateway API 1.6) or
//! deserializes into k8s-openapi's type without losing a field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use serin_kube::{Cluster, Object, Routes, Subject};
use support::{Schemas, canary_from, compat_dir, strip_status};

/// The provider a compat manifest is written for, from its name (Flagger's
/// tutorials and e2e tests install Flagger with that `-mesh-provider`).
fn provider_of(path: &std::path::Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    if !name.contains("canary.yaml") {
        return None;
    }
    if name.contains("istio") {
        Some("istio")
    } else if name.contains("gatewayapi") {
        Some("gatewayapi:v1")
    } else if name.contains("kubernetes") {
        Some("kubernetes")
    } else if name.contains("nginx") {
        Some("nginx")
    } else {
        None
    }
}

fn compat_canaries() -> Vec<(PathBuf, &'static str)> {
    let mut files: Vec<_> = std::fs::read_dir(compat_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| provider_of(&path).map(|provider| (path, provider)))
        .collect();
    files.sort();
    files
}

#[test]
fn every_flagger_manifest_renders_and_validates() {
    let schemas = Schemas::load();
    let files = compat_canaries();
    assert!(
        files.len() >= 30,
        "only {} compat canaries found",
        files.len()
    );
    let mut checked = 0;
    let mut daemonsets = 0;
    let mut fragments = 0;
    for (path, provider) in &files {
        let canary = canary_from(path);
        if canary
            .spec
            .target_ref
            .as_ref()
            .is_some_and(|target| target.kind.as_deref() == Some("DaemonSet"))
        {
            let cluster = Cluster::default();
            let error = Subject::new(&canary, &cluster, provider).unwrap_err();
            assert!(
                error.to_string().starts_with("spec.targetRef.kind: "),
                "{error}"
            );
            daemonsets += 1;
            continue;
        }
        let cluster = Cluster::default();
        if canary.spec.target_ref.is_none() {
            // Documentation fragments (a `service` block alone) name no
            // workload: refused by field, never rendered half.
            let error = Subject::new(&canary, &cluster, provider).unwrap_err();
            assert_eq!(
                error.to_string(),
                "spec.targetRef: required in Kubernetes mode"
            );
            fragments += 1;
            continue;
        }
        let subject = Subject::new(&canary, &cluster, provider)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        for weight in [0, 10, 50, 100] {
            let routes = Routes::at(&canary, weight).unwrap();
            let objects = serin_kube::build(&subject, &routes)
                .unwrap_or_else(|error| panic!("{} at {weight}: {error}", path.display()));
            for object in &objects {
                schemas.check(object, &format!("{} at {weight}", path.display()));
                checked += 1;
            }
            let names: Vec<_> = objects
                .iter()
                .map(|object| format!("{}/{}", object.kind(), object.name()))
                .collect();
            let apex = subject.apex_name();
            for expected in [
                format!("Deployment/{}-primary", subject.target_name()),
                format!("Service/{apex}"),
                format!("Service/{apex}-primary"),
                format!("Service/{apex}-canary"),
            ] {
                assert!(names.contains(&expected), "{}: {names:?}", path.display());
            }
        }
    }
    assert_eq!(fragments, 7, "the documentation fragments");
    assert_eq!(
        daemonsets, 2,
        "the two DaemonSet canaries are refused by name"
    );
    assert!(checked > 400, "{checked} objects checked");
}

#[test]
fn objects_are_checked_strictly() {
    // A field the schema does not know fails, so a misspelt field in the
    // model cannot pass by being pruned.
    let schemas = Schemas::load();
    let canary = canary_from(&compat_dir().join("test_istio_test-canary-091-canary.yaml"));
    let cluster = Cluster::default();
    let subject = Subject::new(&canary, &cluster, "istio").unwrap();
    let objects = serin_kube::build(&subject, &Routes::primary()).unwrap();
    let vs = objects
        .iter()
        .find(|object| object.kind() == "VirtualService")
        .unwrap();
    let mut value = vs.to_value();
    value["spec"]["http"][0]["routes"] = serde_json::json!([]);
    assert!(
        !schemas
            .errors("VirtualService", "v1beta1", &value)
            .is_empty()
    );
    let mut value = vs.to_value();
    value["spec"]["http"][0]["route"][0]["weight"] = serde_json::json!("ten");
    assert!(
        !schemas
            .errors("VirtualService", "v1beta1", &value)
            .is_empty()
    );
    let _ = strip_status;
}

#[test]
fn a_gatewayapi_canary_without_gateway_refs_is_refused_by_field() {
    let canary = canary_from(&compat_dir().join("test_istio_test-canary-091-canary.yaml"));
    let cluster = Cluster::default();
    let subject = Subject::new(&canary, &cluster, "gatewayapi:v1").unwrap();
    let error = serin_kube::build(&subject, &Routes::primary()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "spec.service.gatewayRefs: required with the Gateway API provider"
    );
}

#[test]
fn unknown_providers_are_refused() {
    let canary = canary_from(&compat_dir().join("test_istio_test-canary-091-canary.yaml"));
    let cluster = Cluster::default();
    let subject = Subject::new(&canary, &cluster, "linkerd").unwrap();
    let error = serin_kube::build(&subject, &Routes::primary()).unwrap_err();
    assert!(
        error.to_string().starts_with("spec.provider: \"linkerd\""),
        "{error}"
    );
    let _: Option<Object> = None;
}
