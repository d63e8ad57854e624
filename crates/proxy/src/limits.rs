//! Timeouts and size limits: what keeps one slow or hostile peer from taking
//! the proxy, and with it both versions, down.

use std::time::Duration;

/// Timeouts and size limits of the proxy. The defaults follow nginx's where
/// nginx has one, so moving from nginx to serin changes nothing users notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long opening a TCP connection to an upstream may take (answered
    /// with 504 when exceeded, 502 when refused).
    pub connect_timeout: Duration,
    /// How long an upstream may take to send its response headers once the
    /// request, body included, has been sent (504 when exceeded, recorded
    /// against the version). While a streamed body is being sent it also
    /// bounds each wait for the upstream to take the next chunk (nginx's
    /// `proxy_send_timeout`); time spent waiting for the client's body is
    /// never counted here (see `client_body_timeout`). A body buffered for
    /// mirroring is already in memory: then the whole exchange, connecting
    /// included, is bounded. The response body is timed by
    /// `upstream_body_timeout`.
    pub response_header_timeout: Duration,
    /// How long the proxy waits for the next chunk of a response body from
    /// the upstream (nginx's `proxy_read_timeout`, same 60 s default). Past
    /// it the body is cut (the client sees it fail, never a short body that
    /// looks whole) and the request is recorded as a 504 of its version.
    /// Measured between chunks, and only while the proxy waits on the
    /// upstream: a long download that keeps flowing, or a client slow to
    /// read, is never cut.
    pub upstream_body_timeout: Duration,
    /// How long a client may take to send a complete request head; the
    /// connection is closed when exceeded (also bounds an idle HTTP/1
    /// connection waiting for its next request).
    pub client_header_timeout: Duration,
    /// How long the proxy waits for the next chunk of a request body from
    /// the client (408 when exceeded, counted in `client_body_timeouts` and
    /// recorded against neither version: a slow client says nothing about
    /// stable or canary). Measured between chunks, as nginx's
    /// `client_body_timeout` (same 60 s default), not for the whole body: a
    /// large upload that keeps arriving at any pace is never cut, while a
    /// stalled one is caught after this long whatever its size. A body
    /// buffered for mirroring (at most `mirror_max_body_bytes`) must arrive
    /// whole within it.
    pub client_body_timeout: Duration,
    /// A client connection without a request in flight for this long is
    /// closed gracefully (HTTP/1 and HTTP/2); one whose peer has not let the
    /// close finish after as long again (an HTTP/2 client that never
    /// acknowledges it) is dropped.
    pub idle_timeout: Duration,
    /// Largest request head (request line plus headers) accepted; larger ones
    /// are answered with 431. It also sets how many header lines an HTTP/1
    /// head may have (see [`Limits::h1_max_headers`]).
    pub max_header_bytes: usize,
    /// Largest request body accepted, when set; larger ones are answered with
    /// 413 (at once when `Content-Length` says so, else when the limit is
    /// crossed while streaming).
    pub max_request_body_bytes: Option<u64>,
    /// Most client connections served at once, when set; further clients wait
    /// in the listen backlog.
    pub max_connections: Option<usize>,
    /// How long an idle pooled upstream connection is kept. Keep it below the
    /// upstream's own keep-alive timeout so the proxy never reuses a
    /// connection the upstream is closing.
    pub upstream_idle_timeout: Duration,
    /// Most idle pooled connections kept per upstream.
    pub upstream_max_idle: usize,
    /// Bodies larger than this are not mirrored (the request itself still goes
    /// to stable, streamed); mirroring needs a buffered copy.
    pub mirror_max_body_bytes: usize,
    /// How long a mirrored request may take before it is abandoned (recorded
    /// as a canary 504).
    pub mirror_timeout: Duration,
    /// Most mirrored requests in flight; copies beyond it are dropped and
    /// counted, so a slow canary cannot pile up memory.
    pub max_in_flight_mirrors: usize,
    /// On shutdown, how long in-flight requests may take to finish before
    /// their connections are dropped.
    pub shutdown_grace: Duration,
    /// Threads serving client connections. `None` (the default) picks one
    /// per core when the proxy is served from a multi-threaded Tokio runtime,
    /// and the caller's runtime otherwise. `Some(0)` serves on the caller's
    /// runtime. `Some(n)` starts `n` dedicated threads, each with its own
    /// single-threaded runtime and upstream connection pool, all accepting
    /// from the one listener: a request and its upstream exchange never cross
    /// threads (nginx's worker layout).
    pub workers: Option<usize>,
    /// How long a client may take to complete the TLS handshake (with
    /// `service.tls`); the connection is closed when exceeded.
    pub tls_handshake_timeout: Duration,
    /// An upgraded connection (WebSocket) through which no byte has moved
    /// either way for this long is closed (nginx's `proxy_read_timeout`,
    /// same 60 s default); WebSocket pings keep a quiet one open.
    pub upgraded_idle_timeout: Duration,
    /// How often the certificate files are checked for a renewal (with
    /// `service.tls`); SIGHUP reloads them at once.
    pub tls_reload_interval: Duration,
}

// === impl Limits ===

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(5),
            response_header_timeout: Duration::from_secs(60),
            upstream_body_timeout: Duration::from_secs(60),
            client_header_timeout: Duration::from_secs(60),
            client_body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            max_header_bytes: 32 * 1024,
            max_request_body_bytes: None,
            max_connections: None,
            upstream_idle_timeout: Duration::from_secs(50),
            upstream_max_idle: 1024,
            mirror_max_body_bytes: 64 * 1024,
            mirror_timeout: Duration::from_secs(10),
            max_in_flight_mirrors: 256,
            shutdown_grace: Duration::from_secs(30),
            workers: None,
            upgraded_idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            tls_reload_interval: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// Dedicated worker threads to start; 0 serves on the caller's runtime.
    /// Must be called within a Tokio runtime.
    pub(crate) fn worker_threads(&self) -> usize {
        match self.workers {
            Some(n) => n,
            None => match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                }
                _ => 0,
            },
        }
    }

    /// Most header lines parsed in one HTTP/1 head, request or response,
    /// by the fast path and hyper alike; a request head with more is
    /// answered 431 (an upstream's answer, 502).
    ///
    /// hyper counts header lines apart from bytes, and its default of 100
    /// refused heads of a few KiB that the byte limit allows. One line per
    /// 16 bytes of `max_header_bytes` (2048 for the default 32 KiB) lets
    /// any head of realistic lines (a name, a value, `: ` and CRLF rarely
    /// make less) reach the byte limit first; only a flood of near-empty
    /// lines meets this one. Never below hyper's own 100, and never above
    /// 2048: hyper reserves two arrays of 32 bytes per line for every head
    /// it parses, allocated and freed at once. Up to 2048 lines (64 KiB
    /// each) that costs about what hyper's default does (~0.1 µs a head,
    /// measured); past it the allocator hands the memory back to the
    /// system after every head, and each head costs microseconds.
    pub fn h1_max_headers(&self) -> usize {
        const BYTES_PER_LINE: usize = 16;
        const HYPER_DEFAULT: usize = 100;
        const MOST: usize = 2048;
        (self.max_header_bytes / BYTES_PER_LINE).clamp(HYPER_DEFAULT, MOST)
    }

    /// hyper's read buffer cap for HTTP/1: heads beyond it are answered with
    /// 431 by hyper itself. hyper refuses (panics on) caps below 8 KiB, so the
    /// exact `max_header_bytes` check happens in the proxy and this only adds
    /// a hard backstop.
    pub(crate) fn h1_max_buf_size(&self) -> usize {
        const HYPER_MINIMUM: usize = 8192;
        self.max_header_bytes
            .saturating_add(1024)
            .max(HYPER_MINIMUM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_follow_the_head_size() {
        let with = |bytes| Limits {
            max_header_bytes: bytes,
            ..Limits::default()
        };
        assert_eq!(Limits::default().h1_max_headers(), 2048);
        assert_eq!(with(16 * 1024).h1_max_headers(), 1024);
        assert_eq!(with(1024).h1_max_headers(), 100);
        assert_eq!(with(1024 * 1024).h1_max_headers(), 2048);
    }
}
