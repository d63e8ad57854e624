//! The proxy's public face: binding, serving until shutdown, and the
//! handle that swaps routes and reads statistics; plus the state every
//! listener, connection and handle shares.
//!
//! Binding is separate from serving so callers learn the port before traffic
//! flows. Accepting lives in `listener.rs` (worker threads) and
//! `balance.rs` (spreading connections over them), each connection in
//! `connection.rs`, each request in `request.rs`.

use crate::upstream_tls::UpstreamTls;
use crate::{
    Limits, ProxyConfig, Recorder, Result, Routes, Version,
    access_log::{self, AccessLog},
    connection::{CLOSING, DRAINING, RUNNING},
    counters::{Counters, CountersSnapshot},
    forward::{self, Failure},
    listener::{Start, Worker, Workers, accept_loop},
    mirror::InFlight,
    routes::{Routed, Table},
    tls::{self, Reloaded, ServerTls, TlsError},
    trust::TrustedProxies,
    upstream_tls,
};
use arc_swap::ArcSwap;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{
    net::TcpListener,
    sync::{Notify, Semaphore, mpsc, watch},
    time::Instant,
};

/// A bound proxy, not yet serving.
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    shared: Arc<Shared>,
    log_writer: Option<access_log::Writer>,
    log_stop: Arc<Notify>,
}

/// Controls a proxy from elsewhere (the rollout engine, the API): cheap to
/// clone, valid before, during and after serving.
#[derive(Clone, Debug)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

/// State shared by the listener, every connection and every handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) table: ArcSwap<Table>,
    /// Serialises `set_routes` so session tokens carry over from the table
    /// actually replaced; counts the tables installed since the bind (a
    /// restore must take one write, not a table at weight 0 first).
    set_lock: Mutex<u64>,
    recorder: Arc<Recorder>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) limits: Limits,
    log: Option<AccessLog>,
    pub(crate) mirrors: InFlight,
    /// Peers whose `X-Forwarded-*` headers are kept.
    pub(crate) trusted_proxies: TrustedProxies,
    /// Serves HTTP/1.1 connections; `connection.rs` picks it or `h2` per
    /// connection (by ALPN, or the first bytes of a plain connection).
    pub(crate) h1: http1::Builder,
    /// Serves HTTP/2 connections.
    pub(crate) h2: http2::Builder<TokioExecutor>,
    /// TLS on the listener (`service.tls`), when configured.
    pub(crate) tls: Option<ServerTls>,
    /// Dials `https://` upstreams (`upstreams.caFile` or Mozilla's roots).
    pub(crate) upstream_tls: UpstreamTls,
    local_addr: SocketAddr,
    /// Origin of the monotonic milliseconds used for idle tracking.
    epoch: Instant,
}

// === impl Proxy ===

impl Proxy {
    /// Binds the listener and prepares the proxy; nothing is served until
    /// [`Proxy::serve`]. Must be called within a Tokio runtime.
    pub async fn bind(
        config: ProxyConfig,
        routes: Routes,
        recorder: Arc<Recorder>,
    ) -> Result<Proxy> {
        let table = Table::compile(routes, None)?;
        let tls = config.tls.as_ref().map(ServerTls::new).transpose()?;
        let upstream_tls = upstream_tls::connector(config.upstream_ca_file.as_deref())
            .map_err(crate::Error::UpstreamCa)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| crate::Error::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| crate::Error::Bind {
            addr: config.listen,
            source,
        })?;
        let counters = Arc::new(Counters::default());
        let log_stop = Arc::new(Notify::new());
        let (log, log_writer) = match &config.access_log {
            Some(path) => {
                let (log, writer) = AccessLog::open(path, counters.clone(), log_stop.clone())
                    .map_err(|source| crate::Error::AccessLog {
                        path: path.clone(),
                        source,
                    })?;
                (Some(log), Some(writer))
            }
            None => (None, None),
        };
        let limits = config.limits;
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.client_header_timeout)
            .max_buf_size(limits.h1_max_buf_size())
            .max_headers(limits.h1_max_headers())
            // While a request is in flight, hyper would otherwise read the
            // client's connection to notice a hang-up, into a second read
            // buffer (the first is held by the request's head): 8 KiB more
            // per request in flight and a read per request. Half-close
            // serves a client that shut its sending side after its request
            // and, as HAProxy's default (no `abortonclose`), lets a request
            // whose client left finish upstream; writing the answer then
            // fails and ends the connection.
            .half_close(true)
            .keep_alive(true);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(H2_MAX_STREAMS)
            // Fixed windows, not adaptive ones, so a client cannot make
            // the proxy buffer more than this per connection: enough for a
            // stream to upload at loopback speed, and a connection window
            // for a few streams in full flight.
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .adaptive_window(false)
            .max_send_buf_size(H2_STREAM_WINDOW as usize)
            .max_frame_size(16 * 1024)
            // Rapid-reset floods (CVE-2023-44487): streams a client opens
            // and resets before they are answered are bounded.
            .max_pending_accept_reset_streams(64)
            .max_local_error_reset_streams(1024);
        let shared = Shared {
            table: ArcSwap::from_pointee(table),
            set_lock: Mutex::new(0),
            recorder,
            counters,
            limits,
            log,
            mirrors: InFlight::default(),
            trusted_proxies: config.trusted_proxies,
            h1,
            h2,
            tls,
            upstream_tls,
            local_addr,
            epoch: Instant::now(),
        };
        Ok(Proxy {
            listener,
            shared: Arc::new(shared),
            log_writer,
            log_stop,
        })
    }

    /// The address actually bound (the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// A handle to change routes and read statistics while serving.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish for up to `limits.shutdown_grace`, closes
    /// what remains and flushes the access log.
    ///
    /// Connections are served by `limits.workers` dedicated threads (see
    /// [`Limits::workers`]) or, with none, on the caller's runtime.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let Proxy {
            listener,
            shared,
            log_writer,
            log_stop,
        } = self;
        let writer = log_writer.map(access_log::Writer::spawn);
        let tls_watch = shared
            .tls
            .clone()
            .map(|tls| tokio::spawn(tls.watch(shared.limits.tls_reload_interval, tls::hangup())));
        let (state_tx, state_rx) = watch::channel(RUNNING);
        // Every connection task holds a sender; when all are gone, `recv`
        // returns None: the drain is complete.
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let slots = shared
            .limits
            .max_connections
            .map(|n| Arc::new(Semaphore::new(n.max(1))));
        let threads = shared.limits.worker_threads();
        let (listener, workers) = if threads == 0 {
            (Some(listener), None)
        } else {
            let start = Start {
                shared: &shared,
                state: &state_rx,
                alive: &alive_tx,
                slots: &slots,
            };
            match Workers::start(threads, listener, start).await {
                Ok(workers) => (None, Some(workers)),
                Err((listener, error)) => {
                    tracing::warn!(%error, "cannot start proxy worker threads; serving on the caller's runtime");
                    (Some(listener), None)
                }
            }
        };
        match listener {
            Some(listener) => {
                let worker = Worker {
                    client: forward::client(&shared.limits, shared.upstream_tls.clone()),
                    shared: shared.clone(),
                    index: 0,
                    balance: None,
                    _local: None,
                };
                accept_loop(listener, worker, shutdown, state_rx, alive_tx, slots, None).await;
            }
            None => {
                drop(alive_tx);
                shutdown.await;
            }
        }
        if let Some(workers) = &workers {
            workers.stop_accepting();
        }
        let _ = state_tx.send(DRAINING);
        let grace = shared.limits.shutdown_grace;
        if tokio::time::timeout(grace, alive_rx.recv()).await.is_err() {
            tracing::warn!(
                ?grace,
                "connections still open after the grace period; closing them"
            );
            let _ = state_tx.send(CLOSING);
            let _ = tokio::time::timeout(Duration::from_secs(1), alive_rx.recv()).await;
        }
        if let Some(workers) = workers {
            workers.finish().await;
        }
        if let Some(watch) = tls_watch {
            watch.abort();
        }
        log_stop.notify_one();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        Ok(())
    }
}

// === impl ProxyHandle ===

impl ProxyHandle {
    /// Installs a new routing table for the next request, on every open
    /// connection. Refused (and the old table kept) when invalid. Session
    /// cookies of a rollout in progress stay valid across weight changes.
    pub fn set_routes(&self, routes: Routes) -> Result<()> {
        let mut installed = self
            .shared
            .set_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = self.shared.table.load();
        let table = Table::compile(routes, Some(&previous))?;
        self.shared.table.store(Arc::new(table));
        *installed += 1;
        Ok(())
    }

    /// How many tables [`Self::set_routes`] installed since the proxy was
    /// bound (refusals not counted): each is a moment some request may be
    /// routed by, so a caller that means one change can check it took one.
    pub fn tables_installed(&self) -> u64 {
        *self
            .shared
            .set_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The routing table in force.
    pub fn routes(&self) -> Arc<Routes> {
        self.shared.table.load().config.clone()
    }

    /// Where answered requests are recorded.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.shared.recorder
    }

    /// The proxy's own counters now.
    pub fn counters(&self) -> CountersSnapshot {
        self.shared.counters.snapshot()
    }

    /// Re-reads the listener's certificate files now (what SIGHUP and the
    /// poll of their contents do): a new pair that checks out serves from
    /// the next handshake on; a bad one is refused and the old one kept.
    /// `None` without `service.tls`.
    pub fn reload_tls(&self) -> Option<Result<Reloaded, TlsError>> {
        self.shared.tls.as_ref().map(|tls| tls.reload(true))
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }
}

// === impl Shared ===

impl Shared {
    /// Records one answered request, sent by the route `routed`, in the
    /// recorder and the access log. `latency` is the time to the response
    /// headers (the histogram's meaning); the request is recorded, and
    /// stamped, when its answer ended (see [`crate::body::Outcome`]), so
    /// `status` is what the client really got.
    pub(crate) fn record(&self, version: Version, status: u16, latency: Duration, routed: &Routed) {
        let now_ms = unix_ms();
        self.recorder.record(version, now_ms, status, latency);
        if let Some(log) = &self.log {
            log.record(access_log::Line {
                ts_ms: now_ms,
                version,
                status,
                latency,
                routed: routed.clone(),
            });
        }
    }

    pub(crate) fn count_failure(&self, failure: Failure) {
        let c = &self.counters;
        Counters::incr(match failure {
            Failure::Connect => &c.upstream_connect_errors,
            Failure::Timeout => &c.upstream_timeouts,
            Failure::Other => &c.upstream_other_errors,
            Failure::BodyTooLarge => &c.rejected_body_too_large,
            Failure::ClientTimeout => &c.client_body_timeouts,
            // The client hung up: nothing of the proxy's or an upstream's to count.
            Failure::Client => return,
        });
    }

    pub(crate) fn mono_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Most HTTP/2 streams a client may have open on one connection (nginx's
/// `http2_max_concurrent_streams` is 128, HAProxy's 100; gRPC clients open
/// more).
const H2_MAX_STREAMS: u32 = 256;
/// HTTP/2 flow-control window per stream.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
/// HTTP/2 flow-control window per connection.
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Milliseconds since the Unix epoch: the clock the recorder is read with.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
