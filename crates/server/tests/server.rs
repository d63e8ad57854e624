//! serin-server's integration tests: real rollouts through the built-in
//! proxy, with real HTTP backends and receivers on loopback.
#![allow(clippy::unwrap_used)]

mod hooks;
