//! What the runtime hands a judge at an analysis tick.

use crate::config::{AnalysisConfig, MetricKind};
use serde::{Deserialize, Serialize};
use serin_stats::Pair;
use std::time::Duration;

/// One metric's input at a tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricValue {
    /// A builtin metric: both versions' requests over the metric's `interval`.
    Window(Pair),
    /// A custom metric: one value per version from a provider; `None` when the
    /// query returned nothing.
    Scalar {
        /// The canary's value.
        canary: Option<f64>,
        /// The stable version's value (absent when only the canary is queried).
        stable: Option<f64>,
    },
}

/// A metric's value, by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricInput {
    /// The metric's name, as in [`MetricCheck::name`](crate::MetricCheck::name).
    pub name: String,
    /// Its value.
    pub value: MetricValue,
}

/// Everything a judge needs at a tick. Metrics missing here have no data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TickInput {
    /// Per configured metric, in any order.
    pub metrics: Vec<MetricInput>,
}

// === impl TickInput ===

impl TickInput {
    /// The builtin metrics of `config`, each over its own interval, taken from
    /// `window(span)` (e.g. `|span| recorder.last(now_ms, span)`). Custom
    /// metrics are added with [`push_scalar`](Self::push_scalar).
    pub fn builtin(config: &AnalysisConfig, mut window: impl FnMut(Duration) -> Pair) -> Self {
        let metrics = config
            .metrics
            .iter()
            .filter(|m| matches!(m.kind, MetricKind::Builtin(_)))
            .map(|m| MetricInput {
                name: m.name.clone(),
                value: MetricValue::Window(window(m.interval)),
            })
            .collect();
        TickInput { metrics }
    }

    /// Adds a custom metric's values.
    pub fn push_scalar(&mut self, name: &str, canary: Option<f64>, stable: Option<f64>) {
        self.metrics.push(MetricInput {
            name: name.to_owned(),
            value: MetricValue::Scalar { canary, stable },
        });
    }

    /// The input for a metric, if any.
    pub fn get(&self, name: &str) -> Option<&MetricValue> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| &m.value)
    }
}
