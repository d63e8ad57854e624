//! The built-in reverse proxy: weighted, header- and cookie-matched, sticky and
//! mirrored routing with per-version statistics.
//!
//! serin's default router. One listener accepts HTTP/1.1 and HTTP/2 (prior
//! knowledge) from users and forwards every request to the stable or the
//! canary upstream over pooled keep-alive HTTP/1.1 connections. The routing
//! table ([`Routes`]) is swapped atomically, so the rollout engine changes
//! weights without dropping a connection, and every answered request is
//! recorded in a [`serin_stats::Recorder`] so analysis reads both versions side
//! by side.
//!
//! Like nginx, the proxy serves from worker threads (one per core by default,
//! see [`Limits::workers`]), each with its own single-threaded runtime and
//! upstream connection pool, so a request never crosses threads.
//!
//! ```no_run
//! # async fn run() -> serin_proxy::Result<()> {
//! use std::{sync::Arc, time::Duration};
//! use serin_proxy::{Limits, Proxy, ProxyConfig, Recorder, Routes};
//!
//! let config = ProxyConfig {
//!     listen: "127.0.0.1:8080".parse().expect("valid address"),
//!     limits: Limits::default(),
//!     access_log: None,
//!     trusted_proxies: Default::default(),
//!     tls: None,
//!     upstream_ca_file: None,
//! };
//! let routes = Routes::stable_only("http://127.0.0.1:9001".parse().expect("valid uri"));
//! let recorder = Arc::new(Recorder::new(Duration::from_secs(3600)));
//! let proxy = Proxy::bind(config, routes, recorder).await?;
//! let handle = proxy.handle();
//! tokio::spawn(proxy.serve(async { let _ = tokio::signal::ctrl_c().await; }));
//! let mut next = handle.routes().as_ref().clone();
//! next.canary = Some("http://127.0.0.1:9002".parse().expect("valid uri"));
//! next.canary_weight = 10;
//! handle.set_routes(next)?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod access_log;
mod balance;
mod body;
mod connection;
mod counters;
mod forward;
mod h1;
mod headers;
mod limits;
mod listener;
mod matching;
mod mirror;
mod request;
mod routes;
mod server;
mod sticky;
mod tls;
mod trust;
mod upgrade;
mod upstream_tls;

use std::{io, net::SocketAddr, path::PathBuf};

pub use counters::CountersSnapshot;
pub use limits::Limits;
pub use matching::{MatchRule, StringMatch};
pub use routes::{Routes, StickySessions};
pub use serin_stats::{Recorder, Version};
pub use server::{Proxy, ProxyHandle};
pub use tls::{Reloaded, TlsError, TlsField, TlsFiles};
pub use trust::{InvalidIpRange, IpRange, TrustedProxies};
pub use upstream_tls::check_upstream_ca_file;

/// Where the proxy listens and how it protects itself.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Address user traffic arrives on (`service.listen`); port 0 picks a free
    /// port, which [`Proxy::local_addr`] then reports.
    pub listen: SocketAddr,
    /// Timeouts and size limits.
    pub limits: Limits,
    /// Appends one JSON line per answered request (the request-log format
    /// `analyze --replay` reads) to this file when set.
    pub access_log: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For`, `-Proto` and `-Host` headers are
    /// kept (`service.trustedProxies`): the proxies in front of serin. From
    /// any other peer they are replaced by what serin saw. Empty by default.
    pub trusted_proxies: TrustedProxies,
    /// Terminates TLS on the listener with this certificate
    /// (`service.tls`); plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// CA certificates (PEM) that `https://` upstreams are verified
    /// against (`upstreams.caFile`); Mozilla's roots when `None`.
    pub upstream_ca_file: Option<PathBuf>,
}

/// Why the proxy could not start or refused a routing table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound (in use, or not permitted).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// The access log file could not be opened for appending.
    #[error("cannot open access log {path}: {source}")]
    AccessLog {
        /// The file asked for.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// An upstream URL the proxy cannot forward to: only
    /// `http(s)://host[:port]` with an optional base path is supported, by
    /// the rule of [`serin_spec::UpstreamUrl`] that every caller shares.
    #[error("upstream {which} {uri:?}: {reason}")]
    InvalidUpstream {
        /// `stable` or `canary`.
        which: Version,
        /// The URL as given.
        uri: String,
        /// What is wrong with it.
        reason: serin_spec::UpstreamUrlError,
    },
    /// A percentage outside 0..=100 (`canary_weight` or `mirror`).
    #[error("{field} must be between 0 and 100, got {value}")]
    InvalidPercent {
        /// The field holding the value.
        field: &'static str,
        /// The value given.
        value: u8,
    },
    /// The listener's certificate and key (`service.tls`) cannot serve.
    #[error("service.tls.{field}: {0}", field = .0.field())]
    Tls(#[from] TlsError),
    /// The CA file for `https://` upstreams (`upstreams.caFile`) cannot be
    /// used.
    #[error("upstreams.caFile: {0}")]
    UpstreamCa(String),
    /// A sticky-session cookie name that cannot appear in a cookie header.
    #[error("invalid session cookie name {0:?}")]
    InvalidCookieName(String),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
