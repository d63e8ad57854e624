//! The rollout state machine: a pure function of state, time and observations that emits actions.

#![forbid(unsafe_code)]
