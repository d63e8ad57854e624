//! Golden files: the objects of representative Flagger canaries at weights
//! 0, 10 and 50 and after promotion, compared with what Flagger documents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serin_kube::{Routes, Subject, documents};
use support::{Schemas, compat_dir, testdata};

/// The canary file with Flagger's podinfo cluster objects appended, as
/// `serin render` reads a bundle.
fn bundle(canary_file: &str, image: &str) -> String {
    let canary = std::fs::read_to_string(compat_dir().join(canary_file)).unwrap();
    let cluster = std::fs::read_to_string(testdata().join("kube/podinfo-deployment.yaml"))
        .unwrap()
        .replace("podinfo:6.0.0", image);
    format!("{canary}---\n{cluster}")
}

/// The YAML `serin render` prints for the bundle at `weight`, every object
/// checked against its schema.
fn render(text: &str, provider: &str, weight: i64) -> String {
    let split = documents::split(text).unwrap();
    let canary = support::canary_from_text("bundle.yaml", &split.spec_text);
    let cluster = split.cluster_for(&canary);
    let subject = Subject::new(&canary, &cluster, provider).unwrap();
    let routes = Routes::at(&canary, weight).unwrap();
    let objects = serin_kube::build(&subject, &routes).unwrap();
    let schemas = Schemas::load();
    for object in &objects {
        schemas.check(object, &format!("weight {weight}"));
    }
    documents::to_yaml(&objects)
}

fn golden(name: &str, canary_file: &str, provider: &str) {
    let text = bundle(canary_file, "podinfo:6.0.0");
    for weight in [0, 10, 50] {
        insta::assert_snapshot!(format!("{name}@{weight}"), render(&text, provider, weight));
    }
    // After promotion: the primary runs the canary's template (6.0.1) and
    // the routes are back on the primary.
    let promoted = bundle(canary_file, "podinfo:6.0.1");
    insta::assert_snapshot!(format!("{name}@promoted"), render(&promoted, provider, 0));
}

#[test]
fn istio_progressive() {
    golden(
        "istio",
        "docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml",
        "istio",
    );
}

#[test]
fn istio_ab_testing() {
    golden(
        "istio-ab",
        "docs_gitbook_tutorials_istio-ab-testing-033-canary.yaml",
        "istio",
    );
}

#[test]
fn istio_session_affinity() {
    golden(
        "istio-affinity",
        "test_istio_test-session-affinity-097-canary.yaml",
        "istio",
    );
}

#[test]
fn gatewayapi_progressive() {
    golden(
        "gatewayapi",
        "test_gatewayapi_test-canary-082-canary.yaml",
        "gatewayapi:v1",
    );
}

#[test]
fn gatewayapi_ab_testing() {
    golden(
        "gatewayapi-ab",
        "test_gatewayapi_test-ab-080-canary.yaml",
        "gatewayapi:v1",
    );
}

#[test]
fn gatewayapi_blue_green_mirror() {
    golden(
        "gatewayapi-bg",
        "test_gatewayapi_test-bg-081-canary.yaml",
        "gatewayapi:v1beta1",
    );
}

#[test]
fn kubernetes_blue_green() {
    golden(
        "kubernetes",
        "docs_gitbook_tutorials_kubernetes-blue-green-040-canary.yaml",
        "kubernetes",
    );
    // The switch before promotion: the apex selects the canary's pods.
    let text = bundle(
        "docs_gitbook_tutorials_kubernetes-blue-green-040-canary.yaml",
        "podinfo:6.0.0",
    );
    let yaml = render(&text, "kubernetes", 100);
    let apex = yaml
        .split("---\n")
        .find(|doc| doc.contains("kind: Service") && doc.contains("  name: podinfo\n"))
        .unwrap();
    assert!(apex.contains("selector:\n    app: podinfo\n"), "{apex}");
}

#[test]
fn nginx_ingress() {
    golden(
        "nginx",
        "docs_gitbook_tutorials_nginx-progressive-delivery-047-canary.yaml",
        "nginx",
    );
}

/// Flagger's Istio tutorial lists what it generates for podinfo; serin
/// generates exactly those (the HPA from the autoscalerRef).
#[test]
fn istio_objects_are_the_ones_flagger_documents() {
    let text = bundle(
        "docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml",
        "podinfo:6.0.0",
    );
    let split = documents::split(&text).unwrap();
    let canary = support::canary_from_text("bundle.yaml", &split.spec_text);
    let cluster = split.cluster_for(&canary);
    let subject = Subject::new(&canary, &cluster, "istio").unwrap();
    let objects = serin_kube::build(&subject, &Routes::primary()).unwrap();
    let mut names: Vec<String> = objects
        .iter()
        .map(|object| {
            let kind = match object.kind() {
                "HorizontalPodAutoscaler" => "horizontalpodautoscaler.autoscaling".to_string(),
                "DestinationRule" => "destinationrule.networking.istio.io".to_string(),
                "VirtualService" => "virtualservice.networking.istio.io".to_string(),
                kind => kind.to_lowercase(),
            };
            format!("{kind}/{}", object.name())
        })
        .collect();
    names.sort();
    // docs/gitbook/tutorials/istio-progressive-delivery.md, plus the copy
    // of the bundle's tracked ConfigMap (the tutorial's podinfo has none).
    assert_eq!(
        names,
        [
            "configmap/podinfo-config-primary",
            "deployment/podinfo-primary",
            "destinationrule.networking.istio.io/podinfo-canary",
            "destinationrule.networking.istio.io/podinfo-primary",
            "horizontalpodautoscaler.autoscaling/podinfo-primary",
            "service/podinfo",
            "service/podinfo-canary",
            "service/podinfo-primary",
            "virtualservice.networking.istio.io/podinfo",
        ]
    );
}

/// The A/B VirtualService Flagger's A/B tutorial shows during the analysis:
/// the matched route to the canary, the rest to the primary.
#[test]
fn istio_ab_matches_flaggers_documented_route() {
    let text = bundle(
        "docs_gitbook_tutorials_istio-ab-testing-033-canary.yaml",
        "podinfo:6.0.0",
    );
    let yaml = render(&text, "istio", 10);
    let vs: serde_json::Value = serde_saphyr::from_str(
        yaml.split("---\n")
            .find(|doc| doc.contains("kind: VirtualService"))
            .unwrap(),
    )
    .unwrap();
    let http = vs["spec"]["http"].as_array().unwrap();
    assert_eq!(http.len(), 2);
    assert_eq!(
        http[0]["route"][0]["destination"]["host"],
        "podinfo-primary"
    );
    assert_eq!(http[0]["route"][0]["weight"], 0);
    assert_eq!(http[0]["route"][1]["destination"]["host"], "podinfo-canary");
    assert_eq!(http[0]["route"][1]["weight"], 100);
    assert!(http[0]["match"].as_array().is_some_and(|m| !m.is_empty()));
    assert_eq!(http[1]["route"].as_array().unwrap().len(), 1);
    assert_eq!(
        http[1]["route"][0]["destination"]["host"],
        "podinfo-primary"
    );
    assert_eq!(http[1]["route"][0]["weight"], 100);
}
