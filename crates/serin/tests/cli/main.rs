//! The `serin` binary end to end: real processes, real HTTP on loopback.

mod analyze;
mod run;
mod support;
mod validate;
