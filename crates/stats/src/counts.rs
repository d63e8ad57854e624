//! What one version served: requests by status class and their latencies.

use crate::LatencyHistogram;
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr, time::Duration};

/// Which side of the split served a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// The version users get by default (Flagger's primary).
    Stable,
    /// The version being rolled out.
    Canary,
}

// === impl Version ===

impl Version {
    /// Both versions, stable first.
    pub const ALL: [Version; 2] = [Version::Stable, Version::Canary];

    /// The label value used in metrics and request logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Stable => "stable",
            Version::Canary => "canary",
        }
    }

    /// Position in arrays indexed by version.
    pub fn index(self) -> usize {
        match self {
            Version::Stable => 0,
            Version::Canary => 1,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version name that is neither `stable` nor `canary`.
#[derive(Debug, thiserror::Error)]
#[error("unknown version {0:?}: expected \"stable\" or \"canary\"")]
pub struct UnknownVersion(pub String);

impl FromStr for Version {
    type Err = UnknownVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stable" | "primary" => Ok(Version::Stable),
            "canary" => Ok(Version::Canary),
            other => Err(UnknownVersion(other.to_owned())),
        }
    }
}

/// Requests per status class: index 0 holds 1xx, 4 holds 5xx, 5 anything else.
pub type StatusClasses = [u64; 6];

/// Counters and latencies of one version over some span of time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests answered (including proxy-generated 502/504 for that version).
    pub requests: u64,
    /// Requests whose status was 5xx: what Flagger's request-success-rate counts as failed.
    pub errors: u64,
    /// Requests by status class (1xx..5xx, other).
    pub classes: StatusClasses,
    /// Latency from request received to response headers sent.
    pub latency: LatencyHistogram,
}

// === impl Counts ===

impl Counts {
    /// Records one answered request.
    pub fn record(&mut self, status: u16, latency: Duration) {
        self.requests = self.requests.saturating_add(1);
        if is_error(status) {
            self.errors = self.errors.saturating_add(1);
        }
        let class = status_class(status);
        if let Some(c) = self.classes.get_mut(class) {
            *c = c.saturating_add(1);
        }
        self.latency.record(latency);
    }

    /// Percent of requests that were not 5xx, or None without requests.
    pub fn success_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| {
            100.0 * (self.requests - self.errors.min(self.requests)) as f64 / self.requests as f64
        })
    }

    /// Fraction of requests that were 5xx, or None without requests.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors.min(self.requests) as f64 / self.requests as f64)
    }

    /// A latency quantile in milliseconds.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        self.latency.quantile_millis(q)
    }

    /// Adds `other` to these counts.
    pub fn merge(&mut self, other: &Counts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        for (mine, theirs) in self.classes.iter_mut().zip(other.classes) {
            *mine = mine.saturating_add(theirs);
        }
        self.latency.merge(&other.latency);
    }

    /// What happened since `earlier`, a previous copy of these cumulative counts.
    pub fn since(&self, earlier: &Counts) -> Counts {
        let mut classes = [0u64; 6];
        for ((out, now), then) in classes.iter_mut().zip(self.classes).zip(earlier.classes) {
            *out = now.saturating_sub(then);
        }
        Counts {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            classes,
            latency: self.latency.since(&earlier.latency),
        }
    }

    /// Forgets everything, keeping allocations.
    pub fn clear(&mut self) {
        self.requests = 0;
        self.errors = 0;
        self.classes = [0; 6];
        self.latency.clear();
    }
}

/// Whether a status counts as a failed request (5xx, as Flagger counts it).
pub fn is_error(status: u16) -> bool {
    (500..600).contains(&status)
}

/// Index into [`StatusClasses`].
pub fn status_class(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

/// Stable and canary side by side.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    /// The stable version's counts.
    pub stable: Counts,
    /// The canary version's counts.
    pub canary: Counts,
}

// === impl Pair ===

impl Pair {
    /// The counts of one version.
    pub fn get(&self, version: Version) -> &Counts {
        match version {
            Version::Stable => &self.stable,
            Version::Canary => &self.canary,
        }
    }

    /// The counts of one version, mutably.
    pub fn get_mut(&mut self, version: Version) -> &mut Counts {
        match version {
            Version::Stable => &mut self.stable,
            Version::Canary => &mut self.canary,
        }
    }

    /// What happened since `earlier`.
    pub fn since(&self, earlier: &Pair) -> Pair {
        Pair {
            stable: self.stable.since(&earlier.stable),
            canary: self.canary.since(&earlier.canary),
        }
    }

    /// Adds `other`.
    pub fn merge(&mut self, other: &Pair) {
        self.stable.merge(&other.stable);
        self.canary.merge(&other.canary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_rate_counts_only_5xx_as_failed() {
        let mut c = Counts::default();
        for status in [200, 201, 404, 429, 500, 503, 302, 200] {
            c.record(status, Duration::from_millis(3));
        }
        assert_eq!(c.requests, 8);
        assert_eq!(c.errors, 2);
        assert_eq!(c.success_rate(), Some(75.0));
        assert_eq!(c.classes, [0, 3, 1, 2, 2, 0]);
    }

    #[test]
    fn no_requests_no_rate() {
        assert_eq!(Counts::default().success_rate(), None);
        assert_eq!(Counts::default().latency_ms(0.99), None);
    }

    #[test]
    fn odd_statuses_are_other() {
        assert_eq!(status_class(99), 5);
        assert_eq!(status_class(600), 5);
        assert_eq!(status_class(599), 4);
        assert_eq!(status_class(100), 0);
    }

    #[test]
    fn version_parses_and_prints() {
        assert_eq!("canary".parse::<Version>().unwrap(), Version::Canary);
        assert_eq!("primary".parse::<Version>().unwrap(), Version::Stable);
        assert!("blue".parse::<Version>().is_err());
        assert_eq!(Version::Stable.to_string(), "stable");
    }
}
