//! Canary, MetricTemplate and AlertProvider documents: types, parsing and
//! validation, and the one loader every command reads canary files with.
//!
//! serin reads Flagger's `flagger.app/v1beta1` documents unchanged and its own
//! `serin.dev/v1alpha1` ones (Flagger's schema plus extensions for the built-in
//! proxy and statistical judges). Callers pass text in and get typed documents
//! or a list of [`Problem`]s, every one naming its field path. [`files`]
//! reads files (bounded; the crate's only I/O) and applies the rules between
//! documents and files, for `validate`, `run`, `serve` and reloads alike.
//!
//! ```
//! let text = "
//! apiVersion: serin.dev/v1alpha1
//! kind: Canary
//! metadata: {name: myapp}
//! spec:
//!   provider: builtin
//!   service: {listen: 127.0.0.1:8080}
//!   upstreams: {stable: http://127.0.0.1:9001}
//!   analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}
//! ";
//! let documents = serin_spec::load_documents("canary.yaml", text).unwrap();
//! let canary = documents[0].as_canary().unwrap();
//! assert_eq!(canary.analysis().steps(), [10, 20, 30, 40, 50]);
//! ```

#![forbid(unsafe_code)]

pub mod alb;
pub mod alert;
mod balancer;
pub mod builtin;
pub mod canary;
pub mod catalog;
mod de;
pub mod document;
pub mod duration;
pub mod files;
pub mod haproxy;
pub mod matching;
pub mod meta;
pub mod nginx;
pub mod parse;
pub mod problem;
pub mod service;
mod suggest;
pub mod template;
pub mod upstream;
pub mod validate;

pub use alb::{ALB_PROVIDER, AlbSpec};
pub use alert::{AlertProvider, AlertProviderSpec};
pub use builtin::{BuiltinMetric, Direction};
pub use canary::{
    Alert, Analysis, Canary, CanarySpec, Compare, JudgeKind, Metric, Pace, SessionAffinity,
    StrategyKind, ThresholdRange, Upstreams, Webhook, WebhookType,
};
pub use catalog::{Catalog, MetricSource, ResolvedAlert, ResolvedCanary, ResolvedMetric};
pub use document::Document;
pub use duration::{Duration, DurationError};
pub use files::{Loaded, load_paths, load_texts, read_file};
pub use haproxy::{HAPROXY_PROVIDER, HaproxyServers, HaproxySpec, RuntimeApiAddr};
pub use matching::{CompiledStringMatch, HttpMatchRequest, StringMatch, StringMatchRule};
pub use meta::{ObjectMeta, ObjectReference};
pub use nginx::{NGINX_PROVIDER, NginxSpec};
pub use parse::{load_documents, parse_collecting, parse_documents};
pub use problem::{Diagnostic, Problem, render_problems};
pub use service::{CanaryService, ProxyLimits, ServiceTls};
pub use template::{
    BasicAuth, JsonPathStep, MetricProvider, MetricTemplate, MetricTemplateSpec, parse_json_path,
};
pub use upstream::{UpstreamScheme, UpstreamUrl, UpstreamUrlError};
pub use validate::{validate, validate_documents};

/// Errors of this crate's fallible helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more files hold problems; each diagnostic names file, path and issue.
    #[error("{}", render_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
    /// A duration string could not be parsed.
    #[error(transparent)]
    Duration(#[from] DurationError),
    /// A string match could not be compiled.
    #[error(transparent)]
    StringMatch(#[from] matching::StringMatchError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses and validates several files (`(file name, text)` pairs) into one
/// [`Catalog`], reporting every problem of every file; the rules of
/// [`files`] ([`load_texts`]).
pub fn load_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Catalog> {
    load_texts(files)
        .map(|loaded| loaded.catalog)
        .map_err(Error::Invalid)
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
