//! The CRDs in `deploy/crds/`: serin's is what `crdgen` prints, Flagger's is
//! Flagger's unchanged, and every Flagger canary (moved to `serin.dev`) and
//! serin's own canaries validate against serin's, nothing pruned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use serin_kube::resource::{FlaggerCanary, SerinCanary, serin_crd_yaml};
use support::{compat_dir, testdata};

fn deploy(file: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/crds")
            .join(file),
    )
    .unwrap()
}

#[test]
fn the_checked_in_crds_are_current() {
    assert_eq!(
        deploy("serin.dev_canaries.yaml"),
        serin_crd_yaml(),
        "run `cargo run -p serin-kube --bin crdgen > deploy/crds/serin.dev_canaries.yaml`"
    );
    assert_eq!(
        deploy("flagger.app_crds.yaml"),
        std::fs::read_to_string(testdata().join("schemas/flagger-crd-v1.44.0.yaml")).unwrap(),
        "Flagger's CRDs are installed unchanged"
    );
}

fn serin_schema() -> Value {
    let crd: Value = serde_saphyr::from_str(&serin_crd_yaml()).unwrap();
    let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    support::make_strict(&mut schema);
    schema
}

#[test]
fn every_canary_validates_against_serins_crd() {
    let validator = jsonschema::validator_for(&serin_schema()).unwrap();
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(compat_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with("-canary.yaml"))
        .collect();
    files.push(testdata().join("kube/serin-builtin.yaml"));
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut value: Value = serde_saphyr::from_str(&text).unwrap();
        if value["spec"]["targetRef"].is_null() && value["spec"]["upstreams"].is_null() {
            continue; // documentation fragments
        }
        value["apiVersion"] = Value::String("serin.dev/v1alpha1".into());
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|error| format!("{}: {error}", error.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        let typed: SerinCanary = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(
            typed.metadata.name.as_deref(),
            value["metadata"]["name"].as_str()
        );
        value["apiVersion"] = Value::String("flagger.app/v1beta1".into());
        let _: FlaggerCanary = serde_json::from_value(value).unwrap();
        checked += 1;
    }
    assert!(checked > 60, "{checked}");
}

#[test]
fn an_unknown_field_is_caught_not_pruned() {
    let validator = jsonschema::validator_for(&serin_schema()).unwrap();
    let text = std::fs::read_to_string(testdata().join("kube/serin-builtin.yaml")).unwrap();
    let mut value: Value = serde_saphyr::from_str(&text).unwrap();
    value["spec"]["analysis"]["stepWieght"] = Value::from(10);
    assert!(!validator.is_valid(&value));
}

#[test]
fn the_kustomization_lists_files_that_exist() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let value: Value = serde_saphyr::from_str(&text).unwrap();
    let resources: Vec<&str> = value["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| resource.as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            "crds/flagger.app_crds.yaml",
            "crds/serin.dev_canaries.yaml",
            "namespace.yaml",
            "rbac.yaml",
            "controller.yaml"
        ]
    );
    for resource in resources {
        let path = dir.join(resource);
        let text = std::fs::read_to_string(&path).unwrap();
        let documents: Vec<Value> = text
            .split("\n---\n")
            .map(|document| serde_saphyr::from_str(document).unwrap())
            .collect();
        for document in &documents {
            assert!(document["kind"].is_string(), "{}", path.display());
        }
        if resource.starts_with("crds/") {
            assert_eq!(
                documents[0]["kind"],
                "CustomResourceDefinition",
                "{}",
                path.display()
            );
            assert_eq!(documents[0]["spec"]["names"]["kind"], "Canary");
        }
    }
}
