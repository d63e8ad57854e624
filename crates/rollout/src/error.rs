//! Events the machine refuses.
//!
//! An event that does not apply in the current phase is refused with a typed error
//! and leaves the state untouched, rather than being silently dropped: late answers
//! after a restart, a double `pause` or a tick from a cancelled timer are normal in a
//! distributed runtime, and the caller decides whether to log them (the runtime) or to
//! show them (`serin pause` on a finished rollout).

use crate::{
    plan::PlanError,
    state::{Pending, Phase},
    time::Timestamp,
};

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an event was refused. The state is unchanged when an event is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The plan breaks an invariant the machine relies on.
    #[error("invalid plan: {0}")]
    InvalidPlan(#[from] PlanError),

    /// The event needs a rollout in progress before promotion (pause, resume,
    /// promote, abort, rollback), but there is none.
    #[error("no rollout in progress (phase {phase}): cannot {event}")]
    NotInProgress {
        /// The current phase.
        phase: Phase,
        /// The refused event.
        event: &'static str,
    },

    /// The canary has already been copied to the primary: there is nothing left to
    /// pause, promote or roll back (Flagger ignores rollback webhooks from here on).
    #[error("promotion is underway (phase {phase}): cannot {event}")]
    PromotionUnderway {
        /// The current phase.
        phase: Phase,
        /// The refused event.
        event: &'static str,
    },

    /// `Initialize` on a canary that is already set up.
    #[error("already initialized (phase {phase})")]
    AlreadyInitialized {
        /// The current phase.
        phase: Phase,
    },

    /// `Start` with the revision that is already being rolled out (or queued).
    #[error("revision {revision} is already being rolled out")]
    SameRevision {
        /// The repeated revision.
        revision: String,
    },

    /// An answer nobody asked for: a late answer for a superseded revision or a
    /// duplicate. Dropping it is always safe.
    #[error("unexpected {event} answer: waiting for {}", describe(.awaiting))]
    Unexpected {
        /// The refused answer.
        event: String,
        /// What the machine is waiting for.
        awaiting: Option<Pending>,
    },

    /// A tick before the time the machine asked for: a stale timer.
    #[error("tick at {now} is early: next tick is due at {due}")]
    TickEarly {
        /// When the tick is due.
        due: Timestamp,
        /// When the refused tick came.
        now: Timestamp,
    },

    /// A tick while no rollout is in progress: a timer that outlived its rollout.
    #[error("no tick is scheduled (phase {phase})")]
    NoTickScheduled {
        /// The current phase.
        phase: Phase,
    },

    /// `Pause` on a paused rollout.
    #[error("the rollout is already paused")]
    AlreadyPaused,

    /// `Resume` on a rollout that is not paused.
    #[error("the rollout is not paused")]
    NotPaused,
}

fn describe(awaiting: &Option<Pending>) -> String {
    match awaiting {
        None => "nothing".to_string(),
        Some(Pending::Analysis) => "analysis".to_string(),
        Some(Pending::Gate(kind)) => format!("{} gate", kind.as_str()),
        Some(Pending::Hook(kind)) => format!("{} hook", kind.as_str()),
    }
}
