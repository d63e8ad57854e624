//! The load tester over loopback: Flagger's webhook protocol, gates,
//! refusals of smuggled commands, the Debian `hey` package and the built-in
//! load generator against real sample backends.
#![allow(clippy::unwrap_used)]

mod protocol;
mod support;
