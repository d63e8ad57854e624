//! deploy/rbac.yaml grants what `serin controller` does, read off the
//! objects it writes for every router, and no wildcard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use serin_kube::{Routes, Subject, controller::plural, documents};
use support::{compat_dir, testdata};

/// `(group, resource)` → verbs of the document of `kind` in rbac.yaml.
fn rules(kind: &str) -> BTreeMap<(String, String), BTreeSet<String>> {
    let path = testdata().join("../deploy/rbac.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut granted: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for document in text.split("\n---\n") {
        let value: Value = serde_saphyr::from_str(document).unwrap();
        if value["kind"] != kind {
            continue;
        }
        for rule in value["rules"].as_array().unwrap() {
            let strings = |field: &str| -> Vec<String> {
                rule[field]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| item.as_str().unwrap().to_string())
                    .collect()
            };
            for list in ["apiGroups", "resources", "verbs"] {
                assert!(!strings(list).contains(&"*".to_string()), "no wildcard");
            }
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    granted
                        .entry((group.clone(), resource))
                        .or_default()
                        .extend(strings("verbs"));
                }
            }
        }
    }
    granted
}

fn verbs(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(ToString::to_string).collect()
}

#[test]
fn the_cluster_role_grants_exactly_what_the_controller_writes() {
    let mut needed: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (file, provider) in [
        (
            "docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml",
            "istio",
        ),
        (
            "docs_gitbook_tutorials_kubernetes-blue-green-040-canary.yaml",
            "kubernetes",
        ),
        (
            "docs_gitbook_tutorials_nginx-progressive-delivery-047-canary.yaml",
            "nginx",
        ),
        (
            "docs_gitbook_tutorials_gatewayapi-progressive-delivery-022-canary.yaml",
            "gatewayapi:v1",
        ),
    ] {
        let canary = std::fs::read_to_string(compat_dir().join(file)).unwrap();
        let cluster =
            std::fs::read_to_string(testdata().join("kube/podinfo-deployment.yaml")).unwrap();
        let split = documents::split(&format!("{canary}---\n{cluster}")).unwrap();
        let canary = support::canary_from_text(file, &split.spec_text);
        let cluster = split.cluster_for(&canary);
        let subject = Subject::new(&canary, &cluster, provider).unwrap();
        for weight in [0, 10] {
            let routes = Routes::at(&canary, weight).unwrap();
            for object in serin_kube::build(&subject, &routes).unwrap() {
                let api_version = object.api_version();
                let group = api_version
                    .rsplit_once('/')
                    .map_or("", |(group, _)| group)
                    .to_string();
                // Server-side apply: a patch that creates the first time.
                needed
                    .entry((group, plural(object.kind()).to_string()))
                    .or_default()
                    .extend(verbs(&["create", "patch"]));
            }
        }
    }
    // The target is read each pass.
    needed
        .entry(("apps".into(), "deployments".into()))
        .or_default()
        .insert("get".into());
    // The target's autoscaler and the primary's are read (the primary's
    // kept in step; a KEDA target's paused and resumed); the target's
    // ConfigMaps and Secrets are read for tracking, and a tracked Secret
    // is copied as a ConfigMap is.
    for (group, resource) in [
        ("autoscaling", "horizontalpodautoscalers"),
        ("keda.sh", "scaledobjects"),
        ("", "configmaps"),
        ("", "secrets"),
    ] {
        needed
            .entry((group.into(), resource.into()))
            .or_default()
            .extend(verbs(&["get", "create", "patch"]));
    }
    for group in ["flagger.app", "serin.dev"] {
        needed.insert(
            (group.into(), "canaries".into()),
            // patch: serin's analysis kept in the canary's annotation.
            verbs(&["get", "list", "watch", "patch"]),
        );
        needed.insert((group.into(), "canaries/status".into()), verbs(&["patch"]));
    }
    needed.insert(
        ("flagger.app".into(), "metrictemplates".into()),
        verbs(&["get"]),
    );
    // Alerts: the AlertProvider, and the Secret holding its address.
    needed.insert(
        ("flagger.app".into(), "alertproviders".into()),
        verbs(&["get"]),
    );
    needed
        .entry(("".into(), "secrets".into()))
        .or_default()
        .insert("get".into());
    needed.insert(("".into(), "events".into()), verbs(&["create"]));
    assert_eq!(rules("ClusterRole"), needed);

    let lease = rules("Role");
    assert_eq!(
        lease,
        BTreeMap::from([(
            ("coordination.k8s.io".to_string(), "leases".to_string()),
            verbs(&["create", "get", "update"])
        )])
    );
}
