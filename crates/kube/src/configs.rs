//! Flagger's config tracking (`pkg/canary/config_tracker.go`): the
//! ConfigMaps and Secrets the target's pods reference are copied as
//! `NAME-primary` for the primary, so a change to one reaches the primary
//! only at promotion, and their checksums (`status.trackedConfigs`) make a
//! change of their data a new revision, as a pod template change is.
//!
//! Which references count, as Flagger: volumes (`configMap`, `secret`,
//! projected sources), `envFrom` and `env[].valueFrom` of containers and
//! init containers. A config annotated `flagger.app/config-tracking:
//! disabled` is not tracked (the primary keeps the shared one), nor is a
//! Secret of a type other than Opaque, basic-auth, ssh-auth or TLS
//! (registry credentials belong to the service account). A reference every
//! mention of which is `optional` may name a config that does not exist;
//! it is then left alone.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::core::v1::{ConfigMap, PodSpec, Secret},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use sha2::{Digest, Sha256};

use crate::{Object, subject::CONFIG_TRACKING_ANNOTATION, subject::Subject};

/// The Secret types Flagger tracks; others (registry credentials, service
/// account tokens, bootstrap tokens) are left to the service account.
pub const TRACKED_SECRET_TYPES: [&str; 4] = [
    "Opaque",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/tls",
];

/// The ConfigMaps and Secrets a pod spec references, by name, each with
/// whether every reference to it is `optional` (one required reference
/// makes it required).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// ConfigMap name → optional.
    pub config_maps: BTreeMap<String, bool>,
    /// Secret name → optional.
    pub secrets: BTreeMap<String, bool>,
}

// === impl References ===

impl References {
    /// Every reference of `spec`, as Flagger's `GetTargetConfigs` scans it.
    pub fn of(spec: &PodSpec) -> Self {
        let mut references = Self::default();
        for volume in spec.volumes.iter().flatten() {
            if let Some(source) = &volume.config_map {
                mention(&mut references.config_maps, &source.name, source.optional);
            }
            if let Some(source) = &volume.secret
                && let Some(name) = &source.secret_name
            {
                mention(&mut references.secrets, name, source.optional);
            }
            for source in volume
                .projected
                .iter()
                .flat_map(|projected| projected.sources.iter().flatten())
            {
                if let Some(source) = &source.config_map {
                    mention(&mut references.config_maps, &source.name, source.optional);
                }
                if let Some(source) = &source.secret {
                    mention(&mut references.secrets, &source.name, source.optional);
                }
            }
        }
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter());
        for container in containers {
            for from in container.env_from.iter().flatten() {
                if let Some(source) = &from.config_map_ref {
                    mention(&mut references.config_maps, &source.name, source.optional);
                }
                if let Some(source) = &from.secret_ref {
                    mention(&mut references.secrets, &source.name, source.optional);
                }
            }
            for value in container
                .env
                .iter()
                .flatten()
                .filter_map(|var| var.value_from.as_ref())
            {
                if let Some(key) = &value.config_map_key_ref {
                    mention(&mut references.config_maps, &key.name, key.optional);
                }
                if let Some(key) = &value.secret_key_ref {
                    mention(&mut references.secrets, &key.name, key.optional);
                }
            }
        }
        references
    }
}

/// Records one mention of `name`: optional only while every mention is.
fn mention(names: &mut BTreeMap<String, bool>, name: &str, optional: Option<bool>) {
    if name.is_empty() {
        return;
    }
    let optional = optional == Some(true);
    names
        .entry(name.to_string())
        .and_modify(|all| *all = *all && optional)
        .or_insert(optional);
}

/// Flagger's `flagger.app/config-tracking: disabled` (any value starting
/// with `disabled`).
fn tracking_disabled(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|annotations| annotations.get(CONFIG_TRACKING_ANNOTATION))
        .is_some_and(|value| value.starts_with("disabled"))
}

/// Whether Flagger tracks this ConfigMap.
pub fn config_map_tracked(config: &ConfigMap) -> bool {
    !tracking_disabled(&config.metadata)
}

/// Whether Flagger tracks this Secret: not disabled, and of a type it
/// copies (absent is Opaque, the API server's default).
pub fn secret_tracked(secret: &Secret) -> bool {
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    !tracking_disabled(&secret.metadata) && TRACKED_SECRET_TYPES.contains(&kind)
}

/// The `status.trackedConfigs` key: `configmap/NAME` or `secret/NAME`.
pub fn key(kind: ConfigKind, name: &str) -> String {
    format!("{}/{name}", kind.as_str())
}

/// ConfigMap or Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

// === impl ConfigKind ===

impl ConfigKind {
    /// Flagger's `ConfigRefType`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        }
    }
}

/// The tracked configs of `subject`'s target: those its pods reference
/// that the cluster holds and Flagger tracks.
fn tracked<'a>(subject: &Subject<'a>) -> (Vec<&'a ConfigMap>, Vec<&'a Secret>) {
    let cluster = subject.cluster();
    let Some(spec) = cluster
        .target
        .as_ref()
        .and_then(|deployment| deployment.spec.template.spec.as_ref())
    else {
        return (Vec::new(), Vec::new());
    };
    let references = References::of(spec);
    let config_maps = references
        .config_maps
        .keys()
        .filter_map(|name| cluster.config_maps.get(name))
        .filter(|config| config_map_tracked(config))
        .collect();
    let secrets = references
        .secrets
        .keys()
        .filter_map(|name| cluster.secrets.get(name))
        .filter(|secret| secret_tracked(secret))
        .collect();
    (config_maps, secrets)
}

/// `status.trackedConfigs`: the checksum of each tracked config, by key.
pub fn checksums(subject: &Subject<'_>) -> BTreeMap<String, String> {
    let (config_maps, secrets) = tracked(subject);
    let mut sums = BTreeMap::new();
    for config in config_maps {
        let name = config.metadata.name.as_deref().unwrap_or_default();
        sums.insert(
            key(ConfigKind::ConfigMap, name),
            config_map_checksum(config),
        );
    }
    for secret in secrets {
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        sums.insert(key(ConfigKind::Secret, name), secret_checksum(secret));
    }
    sums
}

/// The `-primary` copies of the tracked configs, owned by the canary as
/// Flagger's are (they go with it). Labels are not copied: Flagger copies
/// only those matching its `-include-label-prefix`, empty by default.
pub fn primary_configs(subject: &Subject<'_>) -> Vec<Object> {
    let (config_maps, secrets) = tracked(subject);
    let meta = |name: Option<&String>| ObjectMeta {
        name: Some(format!("{}-primary", name.map_or("", String::as_str))),
        namespace: Some(subject.namespace().to_string()),
        owner_references: subject.owner_references(),
        ..ObjectMeta::default()
    };
    let mut objects: Vec<Object> = config_maps
        .into_iter()
        .map(|config| {
            Object::ConfigMap(Box::new(ConfigMap {
                metadata: meta(config.metadata.name.as_ref()),
                data: config.data.clone(),
                binary_data: config.binary_data.clone(),
                immutable: None,
            }))
        })
        .collect();
    objects.extend(secrets.into_iter().map(|secret| {
        Object::Secret(Box::new(Secret {
            metadata: meta(secret.metadata.name.as_ref()),
            data: Some(secret_data(secret)).filter(|data| !data.is_empty()),
            type_: secret.type_.clone(),
            string_data: None,
            immutable: None,
        }))
    }));
    objects
}

/// The names the primary keeps as they are: referenced but not tracked
/// (opted out, a type Flagger does not copy, or optional and absent).
pub fn untracked(
    references: &References,
    config_maps: &BTreeMap<String, ConfigMap>,
    secrets: &BTreeMap<String, Secret>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let config_maps = references
        .config_maps
        .keys()
        .filter(|name| !config_maps.get(*name).is_some_and(config_map_tracked))
        .cloned()
        .collect();
    let secrets = references
        .secrets
        .keys()
        .filter(|name| !secrets.get(*name).is_some_and(secret_tracked))
        .cloned()
        .collect();
    (config_maps, secrets)
}

/// A Secret's data as the API server holds it: `stringData` merged into
/// `data` (a file bundle may carry `stringData`; the API never returns it).
fn secret_data(secret: &Secret) -> BTreeMap<String, k8s_openapi::ByteString> {
    let mut data = secret.data.clone().unwrap_or_default();
    for (key, value) in secret.string_data.iter().flatten() {
        data.insert(
            key.clone(),
            k8s_openapi::ByteString(value.as_bytes().to_vec()),
        );
    }
    data
}

/// Flagger's checksum of a ConfigMap: of its `data` as Go's
/// `json.Marshal` writes it, so a cluster moved from Flagger sees no
/// change. `binaryData`, which Flagger ignores, is added when present, so
/// a change to it is a revision too.
pub fn config_map_checksum(config: &ConfigMap) -> String {
    let data = go_json(config.data.as_ref());
    match config
        .binary_data
        .as_ref()
        .filter(|binary| !binary.is_empty())
    {
        None => checksum(&data),
        Some(binary) => {
            let binary: BTreeMap<String, String> = binary
                .iter()
                .map(|(key, value)| (key.clone(), base64(&value.0)))
                .collect();
            checksum(&format!(
                "{{\"binaryData\":{},\"data\":{data}}}",
                go_json(Some(&binary))
            ))
        }
    }
}

/// Flagger's checksum of a Secret: of its `data` (base64 values).
pub fn secret_checksum(secret: &Secret) -> String {
    let data = secret_data(secret);
    if data.is_empty() && secret.data.is_none() {
        return checksum("null");
    }
    let data: BTreeMap<String, String> = data
        .iter()
        .map(|(key, value)| (key.clone(), base64(&value.0)))
        .collect();
    checksum(&go_json(Some(&data)))
}

/// Flagger's `checksum`: the first 8 bytes of SHA-256, in hex.
fn checksum(json: &str) -> String {
    let digest = Sha256::digest(json.as_bytes());
    digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A string map as Go's `json.Marshal` writes it: keys sorted, no spaces,
/// HTML characters and the JS line separators escaped; `null` for none
/// (the API server omits an empty `data`, which Go reads as nil).
fn go_json(map: Option<&BTreeMap<String, String>>) -> String {
    let Some(map) = map.filter(|map| !map.is_empty()) else {
        return "null".into();
    };
    let mut out = String::from("{");
    for (index, (key, value)) in map.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        go_string(&mut out, key);
        out.push(':');
        go_string(&mut out, value);
    }
    out.push('}');
    out
}

fn go_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Standard base64 with padding, as Go writes a `[]byte` in JSON (and
/// k8s-openapi's `ByteString` serializes).
fn base64(bytes: &[u8]) -> String {
    match serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())) {
        Ok(serde_json::Value::String(text)) => text,
        // `ByteString` always serializes to a string.
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_json_escapes_as_go_does() {
        let map = BTreeMap::from([
            ("b".to_string(), "<a href=\"x\">&\n\u{1}".to_string()),
            ("a".to_string(), "é\u{2028}".to_string()),
        ]);
        assert_eq!(
            go_json(Some(&map)),
            r#"{"a":"é\u2028","b":"\u003ca href=\"x\"\u003e\u0026\n\u0001"}"#
        );
        assert_eq!(go_json(None), "null");
        assert_eq!(go_json(Some(&BTreeMap::new())), "null");
    }

    #[test]
    fn base64_pads_as_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    /// The checksum Flagger computes for `data: {color: red}`:
    /// `sha256("{\"color\":\"red\"}")[:8]`.
    #[test]
    fn the_checksum_is_flaggers() {
        let config = ConfigMap {
            data: Some(BTreeMap::from([("color".to_string(), "red".to_string())])),
            ..ConfigMap::default()
        };
        let expected: String = Sha256::digest(br#"{"color":"red"}"#)
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(config_map_checksum(&config), expected);
        assert_eq!(expected.len(), 16);
        let secret = Secret {
            data: Some(BTreeMap::from([(
                "token".to_string(),
                k8s_openapi::ByteString(b"red".to_vec()),
            )])),
            ..Secret::default()
        };
        let expected: String = Sha256::digest(br#"{"token":"cmVk"}"#)
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(secret_checksum(&secret), expected);
    }

    #[test]
    fn a_required_mention_makes_a_reference_required() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "volumes": [
                {"name": "a", "configMap": {"name": "cfg", "optional": true}},
                {"name": "b", "projected": {"sources": [
                    {"secret": {"name": "tls", "optional": true}},
                    {"configMap": {"name": "proj"}}
                ]}}
            ],
            "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "cfg"}}]}],
            "containers": [{"name": "app", "env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "key", "key": "k", "optional": true}}}
            ]}]
        }))
        .expect("a pod spec");
        let references = References::of(&spec);
        assert_eq!(
            references.config_maps,
            BTreeMap::from([("cfg".to_string(), false), ("proj".to_string(), false)])
        );
        assert_eq!(
            references.secrets,
            BTreeMap::from([("key".to_string(), true), ("tls".to_string(), true)])
        );
    }

    #[test]
    fn registry_and_opted_out_secrets_are_not_tracked() {
        let secret = |kind: Option<&str>, annotation: Option<&str>| Secret {
            type_: kind.map(str::to_string),
            metadata: ObjectMeta {
                annotations: annotation.map(|value| {
                    BTreeMap::from([(CONFIG_TRACKING_ANNOTATION.to_string(), value.to_string())])
                }),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        assert!(secret_tracked(&secret(None, None)));
        assert!(secret_tracked(&secret(Some("kubernetes.io/tls"), None)));
        assert!(!secret_tracked(&secret(
            Some("kubernetes.io/dockerconfigjson"),
            None
        )));
        assert!(!secret_tracked(&secret(None, Some("disabled"))));
        assert!(secret_tracked(&secret(None, Some("enabled"))));
    }
}
