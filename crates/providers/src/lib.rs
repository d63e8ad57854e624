//! Edge adapters: the implementations of the core's ports. The built-in proxy
//! as a router; webhooks over HTTP(S) and alerts (Slack, Teams, Discord,
//! Rocket.Chat, Google Chat, JSON); the `prometheus` and `web` (JSON/HTTP)
//! metric providers; HAProxy (a runtime API router and a syslog traffic
//! source); nginx (an upstream file it owns and reloads, and the same syslog
//! receiver for its access log); an AWS Application Load Balancer (the
//! forward action of a listener or rule, with the official AWS SDK). Later
//! Istio and the Gateway API, each one more implementation, never a branch
//! in the runtime.

#![forbid(unsafe_code)]

#[cfg(feature = "aws")]
pub mod alb;
pub mod alerts;
#[cfg(feature = "aws")]
pub mod aws;
pub mod builtin;
#[cfg(feature = "aws")]
pub mod cloudwatch;
pub mod desired;
pub mod haproxy;
pub mod metric_http;
pub mod metrics;
pub mod nginx;
pub mod outbound;
pub mod prometheus;
pub mod render;
pub mod syslog;
#[cfg(feature = "tls")]
pub mod tls;
pub mod web;
pub mod webhooks;

#[cfg(feature = "aws")]
pub use alb::AlbRouter;
pub use alerts::{Alert, AlertSeverity, AlertTarget, Notifier, ProviderKind};
pub use builtin::{BaseRoutes, ProxyRouter, RoutingError};
pub use desired::{Balancer, Desired, DesiredCell, Steered};
pub use haproxy::HaproxyRouter;
pub use metrics::metric_queries;
pub use nginx::{NginxFormat, NginxRouter};
pub use prometheus::PrometheusQuery;
pub use syslog::{HaproxyFormat, LogCounters, LogFormat, SyslogReceiver};
pub use web::WebQuery;
pub use webhooks::HttpWebhooks;
