//! The listener, the per-connection tasks and the per-request path.
//!
//! Binding is separate from serving so callers learn the port before traffic
//! flows. Each accepted connection runs in its own task, serving HTTP/1.1 or
//! HTTP/2 (prior knowledge) through hyper-util's auto builder; the request
//! path reads the routing table with one atomic load, forwards with streaming
//! bodies and records the answer.

use crate::{
    Limits, ProxyConfig, Recorder, Result, Routes, Version,
    access_log::{self, AccessLog},
    body::{Limit, RequestBody, ResponseBody},
    counters::{Counters, CountersSnapshot},
    forward::{self, Failure, HttpClient},
    headers,
    matching::forwardable,
    mirror::{self, InFlight},
    routes::Table,
};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{
    HeaderValue, Request, Response, StatusCode,
    header::{CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE},
};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch},
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
    table: ArcSwap<Table>,
    /// Serialises `set_routes` so session tokens carry over from the table
    /// actually replaced.
    set_lock: Mutex<()>,
    recorder: Arc<Recorder>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) client: HttpClient,
    pub(crate) limits: Limits,
    log: Option<AccessLog>,
    pub(crate) mirrors: InFlight,
    builder: auto::Builder<TokioExecutor>,
    local_addr: SocketAddr,
    /// Origin of the monotonic milliseconds used for idle tracking.
    epoch: Instant,
}

/// Connection lifecycle broadcast to every connection task.
const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const CLOSING: u8 = 2;

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
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.client_header_timeout)
            .max_buf_size(limits.h1_max_buf_size())
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(256);
        let shared = Shared {
            table: ArcSwap::from_pointee(table),
            set_lock: Mutex::new(()),
            recorder,
            counters,
            client: forward::client(&limits),
            limits,
            log,
            mirrors: InFlight::default(),
            builder,
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
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let Proxy {
            listener,
            shared,
            log_writer,
            log_stop,
        } = self;
        let writer = log_writer.map(access_log::Writer::spawn);
        let (state_tx, state_rx) = watch::channel(RUNNING);
        // Every connection task holds a sender; when all are gone, `recv`
        // returns None: the drain is complete.
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let slots = shared
            .limits
            .max_connections
            .map(|n| Arc::new(Semaphore::new(n.max(1))));
        tokio::pin!(shutdown);
        loop {
            let permit = match &slots {
                Some(slots) => tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    permit = slots.clone().acquire_owned() => permit.ok(),
                },
                None => None,
            };
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: back off instead of
                    // spinning, connections in flight will free some.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            tokio::spawn(serve_connection(
                shared.clone(),
                stream,
                peer,
                state_rx.clone(),
                alive_tx.clone(),
                permit,
            ));
        }
        drop(listener);
        drop(alive_tx);
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
        let _serial = self
            .shared
            .set_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = self.shared.table.load();
        let table = Table::compile(routes, Some(&previous))?;
        self.shared.table.store(Arc::new(table));
        Ok(())
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

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }
}

// === impl Shared ===

impl Shared {
    /// Records one answered request in the recorder and the access log.
    pub(crate) fn record(&self, version: Version, status: u16, latency: Duration) {
        let now_ms = unix_ms();
        self.recorder.record(version, now_ms, status, latency);
        if let Some(log) = &self.log {
            log.record(access_log::Line {
                ts_ms: now_ms,
                version,
                status,
                latency,
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
        });
    }

    fn mono_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Milliseconds since the Unix epoch: the clock the recorder is read with.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One client connection's state, for `X-Forwarded-For` and idle tracking.
#[derive(Debug)]
struct Conn {
    client_ip: HeaderValue,
    in_flight: AtomicUsize,
    last_active_ms: AtomicU64,
}

/// Marks a request in flight on its connection for as long as it lives.
struct InFlightGuard<'a> {
    conn: &'a Conn,
    shared: &'a Shared,
}

impl<'a> InFlightGuard<'a> {
    fn new(conn: &'a Conn, shared: &'a Shared) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlightGuard { conn, shared }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.conn
            .last_active_ms
            .store(self.shared.mono_ms(), Ordering::Release);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Decrements the active-connection gauge when the connection ends.
struct ActiveGuard(Arc<Counters>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    mut state: watch::Receiver<u8>,
    _alive: mpsc::Sender<()>,
    _permit: Option<OwnedSemaphorePermit>,
) {
    let _ = stream.set_nodelay(true);
    Counters::incr(&shared.counters.connections_total);
    shared
        .counters
        .active_connections
        .fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(shared.counters.clone());
    let client_ip = HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    let conn = Arc::new(Conn {
        client_ip,
        in_flight: AtomicUsize::new(0),
        last_active_ms: AtomicU64::new(shared.mono_ms()),
    });
    let service = {
        let shared = shared.clone();
        let conn = conn.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(handle(&shared, &conn, req).await) }
        })
    };
    let connection = shared
        .builder
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let idle = shared.limits.idle_timeout;
    let idle_check = tokio::time::sleep(idle);
    tokio::pin!(idle_check);
    let mut draining = false;
    let mut state_open = true;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                return;
            }
            changed = state.changed(), if state_open => {
                let now = if changed.is_ok() { *state.borrow_and_update() } else { DRAINING };
                state_open = changed.is_ok();
                if now >= CLOSING {
                    return;
                }
                if !draining {
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
            () = &mut idle_check, if !draining => {
                let last = conn.last_active_ms.load(Ordering::Acquire);
                let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
                let now = shared.mono_ms();
                if conn.in_flight.load(Ordering::Acquire) == 0 && now.saturating_sub(last) >= idle_ms {
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                } else {
                    let due = last.saturating_add(idle_ms).max(now.saturating_add(1));
                    let wait = Duration::from_millis(due - now).min(idle);
                    idle_check.as_mut().reset(Instant::now() + wait);
                }
            }
        }
    }
}

/// The request path: route, rewrite, forward, record.
async fn handle(
    shared: &Arc<Shared>,
    conn: &Conn,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let start = Instant::now();
    let _in_flight = InFlightGuard::new(conn, shared);
    Counters::incr(&shared.counters.requests_total);
    let limits = &shared.limits;

    if !forwardable(req.method()) {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not supported by the proxy\n",
        );
    }
    if head_bytes(&req) > limits.max_header_bytes {
        Counters::incr(&shared.counters.rejected_header_too_large);
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header fields too large\n",
        );
    }
    let (mut parts, body) = req.into_parts();
    let content_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(max), Some(len)) = (limits.max_request_body_bytes, content_length)
        && len > max
    {
        Counters::incr(&shared.counters.rejected_body_too_large);
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }

    let decision = shared.table.load().route(&parts, || fastrand::u8(0..100));
    let upstream = decision.upstream;
    let Ok(uri) = forward::upstream_uri(&upstream, &parts.uri) else {
        return error(StatusCode::BAD_REQUEST, "invalid request target\n");
    };
    headers::to_upstream(
        &mut parts.headers,
        &conn.client_ip,
        parts.uri.authority(),
        &upstream.host,
    );
    let original_uri = std::mem::replace(&mut parts.uri, uri);
    parts.version = http::Version::HTTP_11;

    let mut tripped = None;
    let body = match decision.mirror {
        // Boxed: the buffering future is rare and would otherwise enlarge
        // every request's future, which hyper keeps per connection.
        Some(canary) => match Box::pin(buffer_for_mirror(body, content_length, limits)).await {
            Buffered::Copy(bytes) => {
                mirror::spawn(
                    shared,
                    canary,
                    mirror::Copy {
                        method: parts.method.clone(),
                        uri: original_uri,
                        headers: parts.headers.clone(),
                        body: bytes.clone(),
                    },
                );
                RequestBody::full(bytes)
            }
            Buffered::Skipped(body) => {
                Counters::incr(&shared.counters.mirrors_skipped_body);
                stream_body(body, content_length, limits, &mut tripped)
            }
            Buffered::ClientError => {
                return error(StatusCode::BAD_REQUEST, "request body could not be read\n");
            }
        },
        None => stream_body(body, content_length, limits, &mut tripped),
    };

    let result = forward::send(
        &shared.client,
        Request::from_parts(parts, body),
        limits.response_header_timeout,
    )
    .await;
    let latency = start.elapsed();
    match result {
        Ok(response) => {
            let (mut head, body) = response.into_parts();
            shared.record(upstream.version, head.status.as_u16(), latency);
            headers::remove_hop_by_hop(&mut head.headers);
            if let Some(cookie) = decision.set_cookie {
                head.headers.append(SET_COOKIE, cookie);
            }
            Response::from_parts(head, ResponseBody::Upstream { inner: body })
        }
        Err(failure) => {
            let failure = if tripped.is_some_and(|t: Arc<AtomicBool>| t.load(Ordering::Relaxed)) {
                Failure::BodyTooLarge
            } else {
                failure
            };
            shared.count_failure(failure);
            if failure.is_upstream() {
                shared.record(upstream.version, failure.status().as_u16(), latency);
            }
            let text = match failure {
                Failure::Connect | Failure::Other => "upstream unavailable\n",
                Failure::Timeout => "upstream timed out\n",
                Failure::BodyTooLarge => "request body too large\n",
            };
            error(failure.status(), text)
        }
    }
}

/// Size of the request head as it came: request line and header lines.
fn head_bytes<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |pq| pq.as_str().len())
        + 11;
    req.headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

fn stream_body(
    body: Incoming,
    content_length: Option<u64>,
    limits: &Limits,
    tripped: &mut Option<Arc<AtomicBool>>,
) -> RequestBody {
    // A declared length was checked already and hyper enforces it; only
    // bodies of unknown length need counting.
    let limit = match (limits.max_request_body_bytes, content_length) {
        (Some(max), None) if !body.is_end_stream() => {
            let flag = Arc::new(AtomicBool::new(false));
            *tripped = Some(flag.clone());
            Some(Limit {
                max,
                remaining: max,
                tripped: flag,
            })
        }
        _ => None,
    };
    RequestBody::Stream { inner: body, limit }
}

enum Buffered {
    Copy(Bytes),
    Skipped(Incoming),
    ClientError,
}

/// Buffers a body for mirroring when it is empty or of known, small length.
async fn buffer_for_mirror(
    body: Incoming,
    content_length: Option<u64>,
    limits: &Limits,
) -> Buffered {
    if body.is_end_stream() {
        return Buffered::Copy(Bytes::new());
    }
    match content_length {
        Some(len) if len <= limits.mirror_max_body_bytes as u64 => match body.collect().await {
            Ok(collected) => Buffered::Copy(collected.to_bytes()),
            Err(_) => Buffered::ClientError,
        },
        _ => Buffered::Skipped(body),
    }
}

fn error(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
