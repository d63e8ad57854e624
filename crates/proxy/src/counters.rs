//! The proxy's own counters, for `/metrics` (`serin_proxy_*`). Relaxed atomics:
//! each is an independent tally, read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters, shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub active_connections: AtomicU64,
    pub connections_total: AtomicU64,
    pub requests_total: AtomicU64,
    pub upstream_connect_errors: AtomicU64,
    pub upstream_timeouts: AtomicU64,
    pub upstream_other_errors: AtomicU64,
    pub upstream_body_errors: AtomicU64,
    pub rejected_header_too_large: AtomicU64,
    pub rejected_invalid_host: AtomicU64,
    pub rejected_body_too_large: AtomicU64,
    pub client_body_timeouts: AtomicU64,
    pub mirrors_sent: AtomicU64,
    pub mirrors_dropped: AtomicU64,
    pub mirrors_skipped_body: AtomicU64,
    pub log_lines_dropped: AtomicU64,
    pub log_write_errors: AtomicU64,
    pub tls_handshake_errors: AtomicU64,
    pub upgrades_total: AtomicU64,
}

/// A point-in-time copy of the proxy's counters. All are monotonic totals
/// except `active_connections`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Client connections open now.
    pub active_connections: u64,
    /// Client connections accepted since start.
    pub connections_total: u64,
    /// Requests received since start (mirrors not included).
    pub requests_total: u64,
    /// Upstream connections refused or failed (answered 502).
    pub upstream_connect_errors: u64,
    /// Upstream connect or response-header timeouts (answered 504).
    pub upstream_timeouts: u64,
    /// Other upstream failures: connection reset, malformed response (502).
    pub upstream_other_errors: u64,
    /// Response bodies that broke off (the upstream closed or reset the
    /// connection mid-body, or sent a malformed chunk) or stalled for
    /// `upstream_body_timeout`, after their head had gone to the client.
    /// Each is recorded as its version's 502 (broken) or 504 (stalled), so
    /// the judges count it as a failed request whatever status its head
    /// announced. Mirrored copies included.
    pub upstream_body_errors: u64,
    /// Requests refused with 431 because their head was too large: by the
    /// proxy's own check of `max_header_bytes` (the HTTP/1 fast path's
    /// included, which also counts a head of more lines than
    /// `h1_max_headers`), and by hyper itself on the connections it serves
    /// when an HTTP/1 head outgrows its buffer or has more lines than
    /// [`Limits::h1_max_headers`](crate::Limits::h1_max_headers) (hyper's
    /// 414 for a request line over 64 KiB counts here too: hyper reports
    /// both alike). Not counted: HTTP/2 header blocks over
    /// `max_header_bytes`, which the h2 library refuses with 431 on its own
    /// without telling hyper or the proxy.
    pub rejected_header_too_large: u64,
    /// Requests refused with 400 for their `Host` (RFC 9112 §3.2): an
    /// HTTP/1.1 request without one, any request with more than one, or
    /// one that is not `host[:port]`.
    pub rejected_invalid_host: u64,
    /// Requests refused with 413 because their body was too large.
    pub rejected_body_too_large: u64,
    /// Requests answered 408 because the client paused sending its body for
    /// longer than `client_body_timeout` (recorded against neither version).
    pub client_body_timeouts: u64,
    /// Mirrored copies sent to the canary.
    pub mirrors_sent: u64,
    /// Mirrored copies dropped because too many were in flight.
    pub mirrors_dropped: u64,
    /// Mirrored copies skipped because the body was too large or of unknown
    /// length.
    pub mirrors_skipped_body: u64,
    /// Access-log lines dropped because the writer fell behind.
    pub log_lines_dropped: u64,
    /// Access-log writes that failed (disk full, file removed).
    pub log_write_errors: u64,
    /// TLS handshakes that failed or timed out (`service.tls`): clients
    /// offering only TLS 1.1 or older, plain HTTP sent to a TLS listener,
    /// scanners, clients that stalled past `tls_handshake_timeout`.
    pub tls_handshake_errors: u64,
    /// Connections switched to another protocol (WebSocket and other
    /// `Upgrade` requests answered 101) and spliced to the upstream.
    pub upgrades_total: u64,
}

// === impl Counters ===

impl Counters {
    pub(crate) fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            active_connections: self.active_connections.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            requests_total: self.requests_total.load(Relaxed),
            upstream_connect_errors: self.upstream_connect_errors.load(Relaxed),
            upstream_timeouts: self.upstream_timeouts.load(Relaxed),
            upstream_other_errors: self.upstream_other_errors.load(Relaxed),
            upstream_body_errors: self.upstream_body_errors.load(Relaxed),
            rejected_header_too_large: self.rejected_header_too_large.load(Relaxed),
            rejected_invalid_host: self.rejected_invalid_host.load(Relaxed),
            rejected_body_too_large: self.rejected_body_too_large.load(Relaxed),
            client_body_timeouts: self.client_body_timeouts.load(Relaxed),
            mirrors_sent: self.mirrors_sent.load(Relaxed),
            mirrors_dropped: self.mirrors_dropped.load(Relaxed),
            mirrors_skipped_body: self.mirrors_skipped_body.load(Relaxed),
            log_lines_dropped: self.log_lines_dropped.load(Relaxed),
            log_write_errors: self.log_write_errors.load(Relaxed),
            tls_handshake_errors: self.tls_handshake_errors.load(Relaxed),
            upgrades_total: self.upgrades_total.load(Relaxed),
        }
    }
}
