//! The documents serin reads, told apart by `apiVersion` and `kind`.

use serde::Serialize;

use crate::{alert::AlertProvider, canary::Canary, meta::ObjectMeta, template::MetricTemplate};

/// serin's native API version.
pub const SERIN_API_VERSION: &str = "serin.dev/v1alpha1";
/// Flagger's current API version.
pub const FLAGGER_API_VERSION: &str = "flagger.app/v1beta1";
/// Every API version accepted. Flagger's older versions are read as v1beta1:
/// their documents only use fields v1beta1 kept.
pub const API_VERSIONS: &[&str] = &[
    SERIN_API_VERSION,
    FLAGGER_API_VERSION,
    "flagger.app/v1alpha3",
    "flagger.app/v1alpha2",
    "flagger.app/v1alpha1",
];
/// Every kind accepted.
pub const KINDS: &[&str] = &["Canary", "MetricTemplate", "AlertProvider"];

/// One parsed document.
// A file holds a handful of documents, so the size difference between variants
// costs nothing worth the `Box` that callers would have to look through.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Document {
    /// A rollout.
    Canary(Canary),
    /// A metric query.
    MetricTemplate(MetricTemplate),
    /// A notification target.
    AlertProvider(AlertProvider),
}

// === impl Document ===

impl Document {
    /// `Canary`, `MetricTemplate` or `AlertProvider`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Canary(_) => "Canary",
            Self::MetricTemplate(_) => "MetricTemplate",
            Self::AlertProvider(_) => "AlertProvider",
        }
    }

    /// The document's `apiVersion`.
    pub fn api_version(&self) -> &str {
        match self {
            Self::Canary(canary) => &canary.api_version,
            Self::MetricTemplate(template) => &template.api_version,
            Self::AlertProvider(provider) => &provider.api_version,
        }
    }

    /// The document's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Canary(canary) => &canary.metadata,
            Self::MetricTemplate(template) => &template.metadata,
            Self::AlertProvider(provider) => &provider.metadata,
        }
    }

    /// `metadata.name`, or an empty string for fragments without one.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// Whether the document uses serin's native API version.
    pub fn is_native(&self) -> bool {
        self.api_version() == SERIN_API_VERSION
    }

    /// The canary, if this is one.
    pub fn as_canary(&self) -> Option<&Canary> {
        match self {
            Self::Canary(canary) => Some(canary),
            _ => None,
        }
    }
}
