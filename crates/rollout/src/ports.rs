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

    /// Makes the canary the new stable version.
    fn promote(&self) -> BoxFuture<'_, Result<(), PortError>>;

    /// Releases the canary: it takes no traffic until the next rollout.
    fn finalise(&self) -> BoxFuture<'_, Result<(), PortError>>;
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

    /// Both versions over the last `span` before `now`.
    fn last(&self, now: Timestamp, span: Duration) -> Pair;
}

impl TrafficSource for serin_stats::Recorder {
    fn totals(&self) -> Pair {
        serin_stats::Recorder::totals(self)
    }

    fn last(&self, now: Timestamp, span: Duration) -> Pair {
        serin_stats::Recorder::last(self, now.as_millis(), span)
    }
}

/// Answers the webhooks a canary configures (gates, hooks and events).
pub trait Webhooks: Send + Sync {
    /// Asks every gate webhook of `kind`; `true` when all answered 2xx.
    fn gate(&self, kind: GateKind) -> BoxFuture<'_, bool>;

    /// Runs every hook webhook of `kind`; `true` when all answered 2xx.
    fn hook(&self, kind: HookKind) -> BoxFuture<'_, bool>;

    /// Forwards an event record to the `event` webhooks; never blocks a rollout.
    fn event(&self, record: &Record) -> BoxFuture<'_, ()>;
}

/// For canaries without webhooks: every gate is open and every hook succeeds.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoWebhooks;

impl Webhooks for NoWebhooks {
    fn gate(&self, _kind: GateKind) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }

    fn hook(&self, kind: HookKind) -> BoxFuture<'_, bool> {
        // A rollback hook answering "ok" means "roll back now", so without
        // webhooks it must say no.
        Box::pin(async move { kind != HookKind::Rollback })
    }

    fn event(&self, _record: &Record) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
