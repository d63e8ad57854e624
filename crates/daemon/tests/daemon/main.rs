//! serin-daemon's integration tests: the store on real SQLite files, the
//! API and reloading on a real daemon with real backends on loopback, and
//! property tests of crash recovery.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod api;
mod hostile;
mod own_traffic;
mod recovery;
mod reload;
mod store;
mod stored;
mod support;
mod upstreams;
