//! Metrics serin measures itself from the proxy's traffic, no `templateRef` needed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which way of a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smaller values are better (latency, error counts).
    Lower,
    /// Larger values are better (success rate, conversions).
    Higher,
}

/// A built-in metric: Flagger's two, plus serin's percentiles and rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinMetric {
    /// `request-success-rate`: percent of requests not answered with a 5xx.
    RequestSuccessRate,
    /// `request-duration`: p99 latency in milliseconds (Flagger's meaning).
    RequestDuration,
    /// `request-duration-p50`: median latency in milliseconds.
    RequestDurationP50,
    /// `request-duration-p95`: p95 latency in milliseconds.
    RequestDurationP95,
    /// `request-duration-p99`: p99 latency in milliseconds.
    RequestDurationP99,
    /// `request-rate`: requests per second.
    RequestRate,
}

// === impl BuiltinMetric ===

impl BuiltinMetric {
    /// Every built-in metric.
    pub const ALL: [Self; 6] = [
        Self::RequestSuccessRate,
        Self::RequestDuration,
        Self::RequestDurationP50,
        Self::RequestDurationP95,
        Self::RequestDurationP99,
        Self::RequestRate,
    ];

    /// The metric with this name, if it is built in.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|metric| metric.name() == name)
    }

    /// The name as written in `spec.analysis.metrics[].name`.
    pub fn name(self) -> &'static str {
        match self {
            Self::RequestSuccessRate => "request-success-rate",
            Self::RequestDuration => "request-duration",
            Self::RequestDurationP50 => "request-duration-p50",
            Self::RequestDurationP95 => "request-duration-p95",
            Self::RequestDurationP99 => "request-duration-p99",
            Self::RequestRate => "request-rate",
        }
    }

    /// The unit of values, used in messages and for `compare.maxDelta`.
    pub fn unit(self) -> &'static str {
        match self {
            Self::RequestSuccessRate => "%",
            Self::RequestDuration
            | Self::RequestDurationP50
            | Self::RequestDurationP95
            | Self::RequestDurationP99 => "ms",
            Self::RequestRate => "req/s",
        }
    }

    /// Which way is better. Fixed: a `direction:` that disagrees is refused.
    pub fn direction(self) -> Direction {
        match self {
            Self::RequestSuccessRate | Self::RequestRate => Direction::Higher,
            Self::RequestDuration
            | Self::RequestDurationP50
            | Self::RequestDurationP95
            | Self::RequestDurationP99 => Direction::Lower,
        }
    }

    /// The latency quantile for duration metrics (0.5, 0.95, 0.99).
    pub fn quantile(self) -> Option<f64> {
        match self {
            Self::RequestDuration | Self::RequestDurationP99 => Some(0.99),
            Self::RequestDurationP95 => Some(0.95),
            Self::RequestDurationP50 => Some(0.5),
            Self::RequestSuccessRate | Self::RequestRate => None,
        }
    }
}

impl fmt::Display for BuiltinMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Lower => "lower",
            Self::Higher => "higher",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for metric in BuiltinMetric::ALL {
            assert_eq!(BuiltinMetric::from_name(metric.name()), Some(metric));
        }
        assert_eq!(BuiltinMetric::from_name("cpu"), None);
        assert_eq!(BuiltinMetric::RequestDuration.direction(), Direction::Lower);
        assert_eq!(BuiltinMetric::RequestSuccessRate.unit(), "%");
    }
}
