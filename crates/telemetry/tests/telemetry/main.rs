//! serin-telemetry against real parts: `/metrics` scraped by a real
//! Prometheus (Debian's `prometheus`) during real rollouts through the
//! built-in proxy, a rollout decided by PromQL, and the Grafana dashboard's
//! structure. One test binary, as ripgrep does.

// Test scaffolding outside #[test] functions: a failed setup should panic.
#![allow(clippy::unwrap_used)]

mod docs_templates;
mod grafana;
mod metrics;
mod promql_rollout;
