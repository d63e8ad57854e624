//! Helpers shared by serin's integration tests, so that every crate starts
//! a real Prometheus, picks a free port or speaks raw HTTP/1.1 the same way.
//!
//! This is test scaffolding and never part of the binary (`publish = false`,
//! only ever a dev-dependency). A failed setup (no port, a missing program,
//! a peer that never becomes ready) panics with a message that says what to
//! do: that fails the test that needed it, loudly, which is what a test
//! wants. So `unwrap`/`expect` are allowed here, as in the tests themselves.
//! Every wait is bounded; nothing is ever skipped.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Setup failures panic by design.

pub mod files;
pub mod haproxy;
pub mod http;
pub mod moto;
pub mod nginx;
pub mod poll;
pub mod ports;
pub mod prometheus;
pub mod receiver;
pub mod upstreams;

pub use files::write;
pub use poll::eventually;
pub use ports::free_port;
pub use prometheus::Prometheus;
pub use upstreams::UPSTREAM_URLS;
