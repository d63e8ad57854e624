//! Edge adapters: the implementations of the core's ports. The built-in proxy
//! as a router, webhooks over HTTP; later Prometheus, HAProxy, nginx, ALB,
//! Istio and the Gateway API, each one more implementation, never a branch in
//! the runtime.

#![forbid(unsafe_code)]

pub mod builtin;
pub mod webhooks;

pub use builtin::{BaseRoutes, ProxyRouter, RoutingError};
pub use webhooks::HttpWebhooks;
