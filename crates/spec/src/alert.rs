//! The `AlertProvider` document: where notifications go.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::meta::{ObjectMeta, SecretReference};

/// Alert provider types: Flagger's, plus serin's generic JSON `webhook`.
pub const ALERT_PROVIDER_TYPES: &[&str] =
    &["slack", "msteams", "discord", "rocket", "gchat", "webhook"];

/// An `AlertProvider` document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertProvider {
    /// `flagger.app/v1beta1` or `serin.dev/v1alpha1`.
    pub api_version: String,
    /// Always `AlertProvider`.
    pub kind: String,
    /// Name and namespace that `providerRef` finds it by.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Type and destination.
    #[serde(default)]
    pub spec: AlertProviderSpec,
    /// Status written by a controller; kept and never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// `spec` of an [`AlertProvider`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertProviderSpec {
    /// One of [`ALERT_PROVIDER_TYPES`].
    #[serde(default, rename = "type")]
    pub provider_type: String,
    /// Channel (Slack, Rocket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Sender name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Webhook URL. Outside Kubernetes this is how the address is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTP proxy for the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Kubernetes secret holding the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

impl AlertProvider {
    /// `metadata.name`, or an empty string for fragments without one.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}
