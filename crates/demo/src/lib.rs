//! Sample stable and canary backends and a bounded HTTP load generator, so
//! `serin demo` needs nothing installed and tests have real HTTP peers.

#![forbid(unsafe_code)]

mod backend;
pub mod load;

pub use backend::{Backend, Behaviour};
pub use load::{LoadError, LoadReport, LoadSpec};
