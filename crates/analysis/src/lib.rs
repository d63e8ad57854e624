//! Canary analysis: judges that compare the canary with stable and with fixed
//! bounds. Pure: no I/O, no clocks; time is passed in as milliseconds. The
//! replay of request logs drives them with the state machine, in
//! `serin-server`.
//!
//! Three judges share one interface ([`Analyzer`]):
//! - [`JudgeKind::Sequential`] (default): anytime-valid e-processes comparing
//!   canary with stable under the known traffic split; see [`judge::sequential`].
//! - [`JudgeKind::Threshold`]: Flagger's point checks; see [`judge::threshold`].
//! - [`JudgeKind::MannWhitney`]: Kayenta's NetflixACAJudge; see [`judge::mann_whitney`].

#![forbid(unsafe_code)]

mod config;
pub mod confseq;
mod decision;
pub mod eprocess;
mod input;
pub mod judge;

pub use config::{
    AnalysisConfig, BuiltinMetric, Compare, ConfigError, DEFAULT_MIN_REQUESTS, Direction,
    JudgeKind, MannWhitneyConfig, MetricCheck, MetricKind, Pace,
};
pub use decision::{Bounds, Decision, HoldReason, MetricEvidence, MetricStatus, Verdict};
pub use input::{MetricInput, MetricValue, TickInput};
pub use judge::{Analyzer, Judge, ResumeError};
