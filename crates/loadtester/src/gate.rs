//! Manual approval gates, as flagger-loadtester keeps them: per canary
//! (`name.namespace`), closed until someone opens them, in memory.
//!
//! A canary's `confirm-*` webhooks point at `/gate/check`, its `rollback`
//! webhook at `/rollback/check`; a person (or CI) POSTs the same payload to
//! `/gate/open` or `/rollback/open`.

use std::{collections::BTreeSet, sync::Mutex};

/// The most gates kept; opening more is refused, so a loop of POSTs cannot
/// grow memory without bound.
pub const MAX_GATES: usize = 10_000;

/// Which gate of a canary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateKind {
    /// Approval to advance (`/gate/*`).
    Advance,
    /// A request to roll back (`/rollback/*`).
    Rollback,
}

/// Open gates.
#[derive(Debug, Default)]
pub struct Gates {
    open: Mutex<BTreeSet<String>>,
}

// === impl Gates ===

impl Gates {
    fn key(kind: GateKind, canary: &str) -> String {
        match kind {
            GateKind::Advance => canary.to_owned(),
            GateKind::Rollback => format!("rollback.{canary}"),
        }
    }

    /// Opens a gate; `false` when [`MAX_GATES`] are already open.
    pub fn open(&self, kind: GateKind, canary: &str) -> bool {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if open.len() >= MAX_GATES {
            return open.contains(&Self::key(kind, canary));
        }
        open.insert(Self::key(kind, canary));
        true
    }

    /// Closes a gate.
    pub fn close(&self, kind: GateKind, canary: &str) {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&Self::key(kind, canary));
    }

    /// Whether a gate is open.
    pub fn is_open(&self, kind: GateKind, canary: &str) -> bool {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&Self::key(kind, canary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_start_closed_and_are_per_canary_and_kind() {
        let gates = Gates::default();
        assert!(!gates.is_open(GateKind::Advance, "web.default"));
        assert!(gates.open(GateKind::Advance, "web.default"));
        assert!(gates.is_open(GateKind::Advance, "web.default"));
        assert!(!gates.is_open(GateKind::Rollback, "web.default"));
        assert!(!gates.is_open(GateKind::Advance, "api.default"));
        gates.close(GateKind::Advance, "web.default");
        assert!(!gates.is_open(GateKind::Advance, "web.default"));
    }
}
