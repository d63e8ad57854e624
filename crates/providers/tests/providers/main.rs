//! The metric providers against real servers on loopback: a real
//! Prometheus (Debian's `prometheus`, scraping itself) and a JSON endpoint.

// Test scaffolding outside #[test] functions: a failed setup should panic.
#![allow(clippy::unwrap_used)]

mod alb_router;
mod builtin_router;
mod cloudwatch;
mod haproxy_router;
mod nginx_router;
mod prometheus;
mod secured;
mod support;
mod tls_receivers;
mod web;
mod webhooks;
