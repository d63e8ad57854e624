//! What the model tests share: the compat manifests and the official CRD
//! schemas, made strict.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use serin_kube::Object;
use serin_spec::Canary;

pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

pub fn compat_dir() -> PathBuf {
    testdata().join("compat/flagger")
}

/// The one Canary of a file.
pub fn canary_from(path: &Path) -> Canary {
    let text = std::fs::read_to_string(path).unwrap();
    canary_from_text(&path.display().to_string(), &text)
}

pub fn canary_from_text(name: &str, text: &str) -> Canary {
    let documents = serin_spec::load_documents(name, text)
        .unwrap_or_else(|problems| panic!("{name}: {problems:?}"));
    documents
        .iter()
        .find_map(|document| document.as_canary().cloned())
        .unwrap_or_else(|| panic!("{name}: no canary"))
}

pub fn strip_status(value: &mut Value) {
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
}

/// The official schemas, by kind and version.
pub struct Schemas {
    crds: Vec<Value>,
}

impl Schemas {
    pub fn load() -> Self {
        let dir = testdata().join("schemas");
        let mut crds = Vec::new();
        for file in [
            "istio-virtualservices-v1.30.3.yaml",
            "istio-destinationrules-v1.30.3.yaml",
            "gateway-api-httproutes-v1.6.1.yaml",
            "flagger-crd-v1.44.0.yaml",
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let options = serde_saphyr::options! {
                budget: serde_saphyr::budget! {
                    max_nodes: 10_000_000,
                    max_events: 40_000_000,
                    max_total_scalar_bytes: 100_000_000,
                },
            };
            let documents: Vec<Value> =
                serde_saphyr::from_multiple_with_options(&text, options).unwrap();
            crds.extend(documents.into_iter().filter(|doc| !doc.is_null()));
        }
        Self { crds }
    }

    /// The strict schema of `kind` at `version`.
    pub fn schema(&self, kind: &str, version: &str) -> Value {
        let crd = self
            .crds
            .iter()
            .find(|crd| crd["spec"]["names"]["kind"] == kind)
            .unwrap_or_else(|| panic!("no CRD for {kind}"));
        let versions = crd["spec"]["versions"].as_array().unwrap();
        let served = versions
            .iter()
            .find(|entry| entry["name"] == version)
            .unwrap_or_else(|| panic!("{kind} has no version {version}"));
        let mut schema = served["schema"]["openAPIV3Schema"].clone();
        // The API server adds these to every CRD schema.
        if let Some(properties) = schema["properties"].as_object_mut() {
            properties
                .entry("apiVersion")
                .or_insert(serde_json::json!({"type": "string"}));
            properties
                .entry("kind")
                .or_insert(serde_json::json!({"type": "string"}));
            properties
                .entry("metadata")
                .or_insert(serde_json::json!({"type": "object"}));
        }
        strict(&mut schema);
        schema
    }

    /// The schema's complaints about `value`.
    pub fn errors(&self, kind: &str, version: &str, value: &Value) -> Vec<String> {
        let schema = self.schema(kind, version);
        let validator = jsonschema::validator_for(&schema).unwrap();
        validator
            .iter_errors(value)
            .map(|error| format!("{}: {error}", error.instance_path()))
            .collect()
    }

    /// Checks one object: against its CRD schema, or by a lossless round
    /// trip through k8s-openapi's type.
    pub fn check(&self, object: &Object, context: &str) {
        let value = object.to_value();
        let version = object.api_version().rsplit('/').next().unwrap().to_string();
        match object {
            Object::VirtualService(_) | Object::DestinationRule(_) | Object::HttpRoute(..) => {
                let errors = self.errors(object.kind(), &version, &value);
                assert!(
                    errors.is_empty(),
                    "{context}: {} {}: {errors:#?}\n{}",
                    object.kind(),
                    object.name(),
                    serde_json::to_string_pretty(&value).unwrap()
                );
            }
            Object::Deployment(_) => {
                round_trip::<k8s_openapi::api::apps::v1::Deployment>(&value, context)
            }
            Object::Service(_) => {
                round_trip::<k8s_openapi::api::core::v1::Service>(&value, context)
            }
            Object::Ingress(_) => {
                round_trip::<k8s_openapi::api::networking::v1::Ingress>(&value, context)
            }
            Object::ConfigMap(_) => {
                round_trip::<k8s_openapi::api::core::v1::ConfigMap>(&value, context)
            }
            Object::Secret(_) => round_trip::<k8s_openapi::api::core::v1::Secret>(&value, context),
            Object::Hpa(_) => round_trip::<
                k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
            >(&value, context),
            // No official schema for KEDA's CRD here: the type's own round
            // trip (nothing dropped), the fields asserted in lifecycle.rs.
            Object::ScaledObject(_) => {
                round_trip::<serin_kube::crds::ScaledObject>(&value, context)
            }
        }
        assert_eq!(value["metadata"]["name"], object.name(), "{context}");
        assert!(value["metadata"]["namespace"].is_string(), "{context}");
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value, context: &str) {
    let typed: T =
        serde_json::from_value(value.clone()).unwrap_or_else(|error| panic!("{context}: {error}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, value,
        "{context}: a field was lost in the round trip"
    );
}

/// Refuses fields a schema does not declare, as the API server's pruning
/// would silently drop them.
/// Public name for the CRD tests.
pub fn make_strict(schema: &mut Value) {
    strict(schema);
}

fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let open = map.contains_key("additionalProperties")
                || map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            if map.contains_key("properties") && !open {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for value in map.values_mut() {
                strict(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}
