//! What the runtime tells the machine.

use crate::plan::{GateKind, HookKind};
use serde::{Deserialize, Serialize};

/// Something that happened; every event is handed to the machine with the time it
/// happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The stable version is known and takes all traffic; no canary yet. Moves
    /// `Initializing` to `Initialized`. Optional: `Start` initializes on its own.
    Initialize,
    /// A canary revision appeared (first one, or a new one). While a rollout is in
    /// progress, a different revision restarts the analysis from weight 0, as Flagger
    /// does; during promotion it is queued and starts when promotion ends.
    Start {
        /// Opaque identity of the canary (image digest, upstream URL, CI revision).
        revision: String,
    },
    /// The tick requested by the last [`Action::ScheduleTick`](crate::Action::ScheduleTick) fired.
    Tick,
    /// The outcome of the checks requested by
    /// [`Action::RunAnalysis`](crate::Action::RunAnalysis).
    Analysis(AnalysisResult),
    /// The answer of the gate requested by [`Action::CallGate`](crate::Action::CallGate).
    Gate {
        /// Which gate answered.
        kind: GateKind,
        /// `true` when every webhook of that kind answered 2xx.
        approved: bool,
    },
    /// The outcome of the hooks requested by [`Action::CallHook`](crate::Action::CallHook).
    Hook {
        /// Which hook kind ran.
        kind: HookKind,
        /// `true` when every webhook of that kind answered 2xx. For
        /// [`HookKind::Rollback`] that means "roll back now".
        ok: bool,
    },
    /// A `rollback` webhook answered 2xx: roll back now.
    RollbackRequested,
    /// The analysis found decisive evidence of harm between two ticks (serin's
    /// sequential judge watches continuously): roll back now, whatever the
    /// machine was waiting for.
    Harm {
        /// The evidence, with numbers.
        reasons: Vec<String>,
    },
    /// A person holds the rollout at its current weight. Analysis keeps running, so a
    /// failure still counts and can roll back; the progress deadline is held, because
    /// it bounds waiting on the system, not on people.
    Pause,
    /// A person lets a paused rollout advance again.
    Resume,
    /// A person promotes now, skipping the remaining steps and gates.
    PromoteNow,
    /// A person rolls back now.
    Abort,
}

/// What the analysis concluded for one interval, as the state machine is told it:
/// the judge's verdict (`serin_analysis::Verdict`) with its reasons and, for a
/// hold, what the hold waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnalysisResult {
    /// Every check passed: advance.
    Pass,
    /// At least one check failed: counts one failed check; the rollout rolls back when
    /// failed checks reach the threshold (cumulative over the rollout, as Flagger).
    Fail {
        /// Each failed check, with numbers.
        reasons: Vec<String>,
    },
    /// Inconclusive (for instance too few canary requests yet): stay at this weight
    /// without counting a failure. What bounds how long this lasts depends on
    /// [`HoldKind`]: the progress deadline for a [`HoldKind::System`] hold; the
    /// judge's own evidence requirement for a [`HoldKind::Evidence`] hold.
    Hold {
        /// Why the evidence is not enough yet.
        reasons: Vec<String>,
        /// What the hold waits for. Absent in events recorded before serin knew
        /// the difference: those read as [`HoldKind::System`], as they counted then.
        #[serde(default)]
        kind: HoldKind,
    },
    /// Decisive evidence of harm: roll back now, without waiting for the threshold.
    Rollback {
        /// The evidence.
        reasons: Vec<String>,
    },
}

/// What a [`AnalysisResult::Hold`] waits for, which decides whether it counts as "no
/// progress" for the progress deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldKind {
    /// The system is behind: no traffic or fewer requests than the step needs, a
    /// route the router has not applied, a gate not approved, a custom metric
    /// without a value. Counts against the progress deadline, as in Flagger.
    #[default]
    System,
    /// The judge has the data, sees no harm, and waits for evidence to
    /// accumulate (traffic flows and evidence grows). Not counted against the
    /// progress deadline.
    Evidence,
}

// === impl AnalysisResult ===

impl AnalysisResult {
    /// A hold caused by the system ([`HoldKind::System`]).
    pub fn system_hold(reasons: Vec<String>) -> Self {
        AnalysisResult::Hold {
            reasons,
            kind: HoldKind::System,
        }
    }

    /// A hold while evidence accumulates ([`HoldKind::Evidence`]).
    pub fn evidence_hold(reasons: Vec<String>) -> Self {
        AnalysisResult::Hold {
            reasons,
            kind: HoldKind::Evidence,
        }
    }
}

// === impl Event ===

impl Event {
    /// A short name for messages and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Initialize => "initialize",
            Event::Start { .. } => "start",
            Event::Tick => "tick",
            Event::Analysis(_) => "analysis",
            Event::Gate { .. } => "gate",
            Event::Hook { .. } => "hook",
            Event::RollbackRequested => "rollback-requested",
            Event::Harm { .. } => "harm",
            Event::Pause => "pause",
            Event::Resume => "resume",
            Event::PromoteNow => "promote",
            Event::Abort => "abort",
        }
    }
}
