//! The dashboard in a real browser: headless Chromium (Debian's `chromium`)
//! driven over the DevTools protocol, against a real daemon running a real
//! rollout through the built-in proxy. One test binary, as ripgrep does.

// Test scaffolding outside #[test] functions: a failed setup should panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod gates;
mod live;
