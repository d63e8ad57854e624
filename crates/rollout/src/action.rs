//! What the machine asks the runtime to do.

use crate::{
    plan::{GateKind, HookKind},
    time::Timestamp,
};
use serde::{Deserialize, Serialize};

/// One thing to do, in order. Requests (`RunAnalysis`, `CallGate`, `CallHook` except
/// `post-rollout`, `rollback` and `event`) expect exactly one answering event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Make the router send traffic this way. Desired state: the runtime retries until
    /// it is applied, and re-applies [`RolloutState::route`](crate::RolloutState::route)
    /// after a restart.
    SetRoute(Route),
    /// Run this interval's checks (metrics and comparisons) and answer with
    /// [`Event::Analysis`](crate::Event::Analysis).
    RunAnalysis,
    /// Call every webhook of this gate kind; answer with
    /// [`Event::Gate`](crate::Event::Gate).
    CallGate(GateKind),
    /// Call every webhook of this hook kind. `pre-rollout` and `rollout` expect
    /// [`Event::Hook`](crate::Event::Hook); `rollback` expects `Event::Hook` or
    /// [`Event::RollbackRequested`](crate::Event::RollbackRequested) only when it
    /// signals a rollback; `post-rollout` answers are optional and only recorded.
    CallHook(HookKind),
    /// Make the canary the new stable version (Flagger copies the canary spec to the
    /// primary). Traffic still flows as the last `SetRoute` says; the machine then
    /// moves it back to the (now updated) primary.
    Promote,
    /// The rollout is over and the canary takes no live traffic any more: release it
    /// (Flagger scales the canary workload to zero). Emitted after success and after a
    /// rollback.
    Finalise,
    /// Send [`Event::Tick`](crate::Event::Tick) at this time. At most one tick is
    /// outstanding: a new `ScheduleTick` replaces the previous one.
    ScheduleTick {
        /// When the tick is due.
        at: Timestamp,
    },
    /// Record an event (Kubernetes event, history, alerts, `event` webhooks).
    Emit(Record),
}

/// How traffic is split between the stable version and the canary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Percentage of live traffic sent to the canary; the stable version gets the rest.
    pub canary_weight: u8,
    /// Percentage of requests also copied to the canary, whose responses are dropped.
    pub mirror: Option<u8>,
    /// Users matched by the canary's header/cookie rules go to the canary (A/B).
    pub match_active: bool,
}

/// An event record: every transition and decision says why, with numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Kubernetes event type.
    #[serde(rename = "type")]
    pub severity: Severity,
    /// What happened and why.
    pub message: String,
}

/// Kubernetes event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Severity {
    /// Progress as planned.
    Normal,
    /// Something held or failed the rollout.
    Warning,
}

// === impl Route ===

impl Route {
    /// Everything to the stable version, no mirroring, no matching.
    pub const STABLE: Route = Route {
        canary_weight: 0,
        mirror: None,
        match_active: false,
    };
}
