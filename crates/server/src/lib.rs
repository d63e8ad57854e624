//! The runtime that drives rollouts: clock, timers, providers, routers and the state machine.

#![forbid(unsafe_code)]
