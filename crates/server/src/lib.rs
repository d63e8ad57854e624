//! The runtime that drives rollouts: it reads the clock, feeds the judges,
//! hands events to the state machine and carries out its actions through the
//! ports (routers, traffic sources, webhooks).

#![forbid(unsafe_code)]

pub mod cadence;
pub mod clock;
pub mod driver;
pub mod external;
pub mod mapping;
pub mod replay;

pub use clock::{Clock, TokioClock};
pub use driver::{
    Command, Driver, DriverError, NoStore, OBSERVE_EVERY, Persistence, Placement, STORE_RETRY,
    Saved, StateStore, StoreError, Update, analysis_result,
};
pub mod run;

pub use run::{Lifetime, Prepared, RunError, Running, launch, promoted, start};
