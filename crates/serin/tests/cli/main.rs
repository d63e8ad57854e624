//! The `serin` binary end to end: real processes, real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod alb;
mod analyze;
mod balancers;
mod haproxy;
mod hostile;
mod kubernetes;
mod nginx;
mod observe;
mod packaging;
mod render;
mod run;
mod serve;
mod support;
mod upstreams;
mod validate;
