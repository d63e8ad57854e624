//! The ports the runtime drives (the core defines them; adapters implement them): how traffic moves, where request statistics
//! and metric values come from, and who is asked at the gates.
//!
//! Each router (the built-in proxy, HAProxy, nginx, an AWS ALB, Istio, the
//! Gateway API) and each metric provider (built-in, Prometheus, JSON/HTTP) is
//! an implementation of one of these traits, never a branch in the runtime.
//! The traits return boxed futures so implementations can be chosen at run
//! time (`Arc<dyn Router>`) from what a canary file says.

use crate::{GateKind, HookKind, Record, Route, Timestamp};
use serin_stats::Pair;
use std::{future::Future, pin::Pin, time::Duration};

/// A future that can be stored behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an adapter could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The system behind the adapter did not answer (connection refused, DNS).
    #[error("{system} unavailable: {message}")]
    Unavailable {
        /// Which system (e.g. `haproxy runtime API at 127.0.0.1:9999`).
        system: String,
        /// What went wrong.
        message: String,
    },
    /// The system answered but refused or returned something unusable.
    #[error("{system} refused: {message}")]
    Refused {
        /// Which system.
        system: String,
        /// Its answer, shortened.
        message: String,
    },
    /// The system did not answer in time.
    #[error("{system} timed out after {after:?}")]
    Timeout {
        /// Which system.
        system: String,
        /// How long the adapter waited.
        after: Duration,
    },
    /// What the canary asks for is not supported by this adapter.
    #[error("{0}")]
    Unsupported(String),
    /// The system answered, but with no value for the metric (a query
    /// matching no series, a ratio that is 0/0, a JSON path that finds
    /// nothing). The message names the metric, the version and the likely
    /// fix; judges see the value as missing, as with `Ok(None)`.
    #[error("{0}")]
    NoValue(String),
}

/// Moves traffic between the stable version and the canary.
pub trait Router: Send + Sync {
    /// A short name for messages, e.g. `builtin proxy`.
    fn name(&self) -> &str;

    /// Points the canary side at a revision (a new upstream, a new target
    /// group). Called when a rollout starts, before any traffic moves.
    fn set_canary(&self, canary: &CanaryTarget) -> BoxFuture<'_, Result<(), PortError>>;

    /// Applies a traffic split. Must be idempotent: the runtime re-applies the
    /// last route after a restart and retries after errors.
    fn set_route(&self, route: Route) -> BoxFuture<'_, Result<(), PortError>>;

    /// Points the canary side at the revision a rollout in progress already
    /// routes to and applies its route, in one write. The runtime calls it
    /// when it restores a rollout (a daemon restart) and when it retries a
    /// refused upstream, where the route is already the rollout's: a router
    /// whose [`set_canary`](Self::set_canary) starts a new canary at weight
    /// 0 (as a new revision must) would otherwise hold the restored
    /// canary at 0 between the two calls, and the balancer would send
    /// every request to stable meanwhile. By default the two calls in turn,
    /// which is right for a router whose `set_canary` keeps the route.
    fn restore_canary(
        &self,
        canary: &CanaryTarget,
        route: Route,
    ) -> BoxFuture<'_, Result<(), PortError>> {
        let canary = canary.clone();
        Box::pin(async move {
            self.set_canary(&canary).await?;
            self.set_route(route).await
        })
    }

    /// Makes the canary the new stable version.
    fn promote(&self) -> BoxFuture<'_, Result<(), PortError>>;

    /// Releases the canary: it takes no traffic until the next rollout.
    fn finalise(&self) -> BoxFuture<'_, Result<(), PortError>>;

    /// Reads the router's state back and re-applies what the last
    /// operations asked for where it differs: drift made behind serin's
    /// back (a balancer restarted with its configuration's weights, a file
    /// edited by hand, an action changed in a console). `Ok(None)` when
    /// nothing had drifted, `Ok(Some(what))` saying what differed and was
    /// repaired; an error when the state could not be read or written (the
    /// runtime then treats the route as refused: pending and retried, the
    /// analysis holding). The runtime calls it on observation ticks while
    /// nothing is pending. By default nothing can drift (the built-in
    /// proxy's table lives in serin's own memory).
    fn repair(&self) -> BoxFuture<'_, Result<Option<String>, PortError>> {
        Box::pin(async { Ok(None) })
    }
}

/// The revision a rollout moves traffic to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryTarget {
    /// Where the canary answers (an upstream URL for proxies and balancers).
    pub address: String,
    /// The revision's identity, shown in status and history.
    pub revision: String,
}

/// Per-request statistics of both versions, as the built-in proxy records them.
pub trait TrafficSource: Send + Sync {
    /// Everything since the source started: monotonic counters the runtime
    /// diffs every second to feed the sequential judge.
    fn totals(&self) -> Pair;

    /// Both versions over the last `span` before `now`, counting only
    /// requests recorded since the last [`reset_windows`](Self::reset_windows).
    fn last(&self, now: Timestamp, span: Duration) -> Pair;

    /// Forgets the windows: later [`last`](Self::last) answers count only
    /// requests recorded from now on; [`totals`](Self::totals) stay monotonic.
    /// The runtime calls it whenever a rollout starts, restarts with a new
    /// revision, is promoted or rolled back, so each rollout is judged on the
    /// traffic it served and never on the previous canary's.
    fn reset_windows(&self);
}

impl TrafficSource for serin_stats::Recorder {
    fn totals(&self) -> Pair {
        serin_stats::Recorder::totals(self)
    }

    fn last(&self, now: Timestamp, span: Duration) -> Pair {
        serin_stats::Recorder::last(self, now.as_millis(), span)
    }

    fn reset_windows(&self) {
        serin_stats::Recorder::reset_windows(self);
    }
}

/// What webhooks are told about the rollout when they are called (Flagger's
/// payload: the canary, its phase and the revision's checksum).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookContext {
    /// The rollout's phase, Flagger's name.
    pub phase: String,
    /// The canary revision being rolled out.
    pub revision: String,
}

/// One webhook call and how it went, for the rollout history.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookCall {
    /// The webhook's name.
    pub name: String,
    /// Where it was sent.
    pub url: String,
    /// The HTTP status, when one came back.
    pub status: Option<u16>,
    /// What went wrong, when nothing usable came back. (Records written
    /// before `body` existed kept a refusal's answer here too.)
    pub error: Option<String>,
    /// The start of the answer's body when the webhook did not answer 2xx
    /// (what the receiver says is wrong): its first kibibyte as text on one
    /// line, control characters escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// How long the call took, all attempts included.
    pub millis: u64,
}

// === impl WebhookCall ===

impl WebhookCall {
    /// How the call went, in words: `answered 403: not approved`,
    /// `failed: connection refused`, `no answer`.
    pub fn outcome(&self) -> String {
        match (self.status, &self.body, &self.error) {
            (Some(status), Some(body), _) | (Some(status), None, Some(body)) => {
                format!("answered {status}: {body}")
            }
            (Some(status), None, None) => format!("answered {status}"),
            (None, _, Some(error)) => format!("failed: {error}"),
            (None, _, None) => "no answer".to_owned(),
        }
    }
}

/// The folded answer of every webhook of one kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HookAnswer {
    /// Every webhook answered 2xx (for a rollback hook: "roll back now").
    pub ok: bool,
    /// Each call, in order.
    pub calls: Vec<WebhookCall>,
}

// === impl HookAnswer ===

impl HookAnswer {
    /// An answer without calls: nothing was configured.
    pub fn without_calls(ok: bool) -> Self {
        HookAnswer {
            ok,
            calls: Vec::new(),
        }
    }
}

/// Answers the webhooks a canary configures (gates, hooks and events).
pub trait Webhooks: Send + Sync {
    /// Asks every gate webhook of `kind`; `ok` when all answered 2xx.
    fn gate<'a>(&'a self, kind: GateKind, context: &'a HookContext) -> BoxFuture<'a, HookAnswer>;

    /// Runs every hook webhook of `kind`; `ok` when all answered 2xx.
    fn hook<'a>(&'a self, kind: HookKind, context: &'a HookContext) -> BoxFuture<'a, HookAnswer>;

    /// Forwards an event record to the `event` webhooks; never blocks a rollout.
    fn event<'a>(&'a self, record: &'a Record, context: &'a HookContext) -> BoxFuture<'a, ()>;
}

/// A metric whose value comes from outside the proxy (a Prometheus query, a
/// JSON endpoint): one per custom metric of a canary, built by an adapter
/// from the metric and its template.
pub trait MetricQuery: Send + Sync {
    /// The metric's name, as in the canary's `analysis.metrics[].name`.
    fn name(&self) -> &str;

    /// The metric's value for one version at `now`; `Ok(None)` when there
    /// is deliberately no value (a template that cannot tell the versions
    /// apart has no stable side), `Err(PortError::NoValue)` when the provider
    /// answered without one and can say why. Judges treat both as missing,
    /// by their own rules.
    fn query(
        &self,
        version: serin_stats::Version,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Option<f64>, PortError>>;
}

/// For canaries without webhooks: every gate is open and every hook succeeds.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoWebhooks;

impl Webhooks for NoWebhooks {
    fn gate<'a>(&'a self, _kind: GateKind, _context: &'a HookContext) -> BoxFuture<'a, HookAnswer> {
        Box::pin(async { HookAnswer::without_calls(true) })
    }

    fn hook<'a>(&'a self, kind: HookKind, _context: &'a HookContext) -> BoxFuture<'a, HookAnswer> {
        // A rollback hook answering "ok" means "roll back now", so without
        // webhooks it must say no.
        Box::pin(async move { HookAnswer::without_calls(kind != HookKind::Rollback) })
    }

    fn event<'a>(&'a self, _record: &'a Record, _context: &'a HookContext) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_what_the_receiver_answered() {
        let call = WebhookCall {
            name: "gate".into(),
            status: Some(400),
            body: Some("missing field \\\"ticket\\\"".into()),
            ..WebhookCall::default()
        };
        assert_eq!(call.outcome(), "answered 400: missing field \\\"ticket\\\"");
        let failed = WebhookCall {
            error: Some("connection refused".into()),
            ..WebhookCall::default()
        };
        assert_eq!(failed.outcome(), "failed: connection refused");
        assert_eq!(WebhookCall::default().outcome(), "no answer");
    }

    #[test]
    fn calls_recorded_before_the_body_was_kept_still_read() {
        let old = r#"{"name":"gate","url":"http://127.0.0.1:9/","status":403,"error":"closed","millis":3}"#;
        let call: WebhookCall = serde_json::from_str(old).expect("an old record reads");
        assert_eq!(call.body, None);
        assert_eq!(call.outcome(), "answered 403: closed");
        // Without a body, nothing new is written: old readers see the same shape.
        let written = serde_json::to_string(&call).expect("serializes");
        assert!(!written.contains("body"), "{written}");
    }
}
