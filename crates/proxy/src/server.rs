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
    body::{Limit, Outcome, Progress, RequestBody, ResponseBody},
    counters::{Counters, CountersSnapshot},
    forward::{self, Failure, HttpClient},
    headers,
    matching::forwardable,
    mirror::{self, InFlight},
    routes::{Routed, Table},
    trust::TrustedProxies,
};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{
    HeaderValue, Request, Response, StatusCode,
    header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE},
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
    io,
    net::SocketAddr,
    os::fd::AsFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch},
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
    pub(crate) limits: Limits,
    log: Option<AccessLog>,
    pub(crate) mirrors: InFlight,
    /// Peers whose `X-Forwarded-*` headers are kept.
    trusted_proxies: TrustedProxies,
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
            .max_headers(limits.h1_max_headers())
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
            limits,
            log,
            mirrors: InFlight::default(),
            trusted_proxies: config.trusted_proxies,
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
                    client: forward::client(&shared.limits),
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
        log_stop.notify_one();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        Ok(())
    }
}

/// Accepts connections until `stop` completes and serves each in its own
/// task on the current runtime. With dedicated workers, a connection this
/// worker accepted while it serves more than another is handed to the least
/// loaded one, and connections handed here arrive through `inbox`.
async fn accept_loop(
    listener: TcpListener,
    worker: Worker,
    stop: impl Future<Output = ()>,
    state_rx: watch::Receiver<u8>,
    alive_tx: mpsc::Sender<()>,
    slots: Option<Arc<Semaphore>>,
    mut inbox: Option<mpsc::UnboundedReceiver<Handoff>>,
) {
    tokio::pin!(stop);
    let mut permit = None;
    loop {
        if let (Some(slots), None) = (&slots, &permit) {
            permit = tokio::select! {
                biased;
                () = &mut stop => break,
                permit = slots.clone().acquire_owned() => permit.ok(),
            };
        }
        let accepted = tokio::select! {
            biased;
            () = &mut stop => break,
            Some(handoff) = next_handoff(&mut inbox) => {
                match TcpStream::from_std(handoff.stream) {
                    Ok(stream) => {
                        tokio::spawn(serve_connection(
                            worker.clone(),
                            stream,
                            handoff.peer,
                            state_rx.clone(),
                            alive_tx.clone(),
                            handoff.permit,
                        ));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot take over a connection");
                        if let Some(balance) = &worker.balance {
                            balance.loads[worker.index].fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                }
                continue;
            }
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
        let permit = permit.take();
        if let Some(balance) = &worker.balance {
            let target = balance.pick(worker.index);
            balance.loads[target].fetch_add(1, Ordering::Relaxed);
            if target != worker.index {
                let handed = stream.into_std().map(|stream| Handoff {
                    stream,
                    peer,
                    permit,
                });
                let sent = match handed {
                    Ok(handoff) => balance.inboxes[target].send(handoff).is_ok(),
                    Err(_) => false,
                };
                if !sent {
                    // The connection is dropped: the target worker stopped.
                    balance.loads[target].fetch_sub(1, Ordering::Relaxed);
                }
                continue;
            }
        }
        tokio::spawn(serve_connection(
            worker.clone(),
            stream,
            peer,
            state_rx.clone(),
            alive_tx.clone(),
            permit,
        ));
    }
}

async fn next_handoff(inbox: &mut Option<mpsc::UnboundedReceiver<Handoff>>) -> Option<Handoff> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// A connection accepted by one worker and served by another.
#[derive(Debug)]
struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
}

/// Spreads connections over dedicated workers: the kernel wakes whichever
/// worker is idle first, which under a burst of connections is one worker
/// taking nearly all of them.
#[derive(Debug)]
struct Balance {
    /// Connections each worker serves or has been handed.
    loads: Vec<AtomicUsize>,
    inboxes: Vec<mpsc::UnboundedSender<Handoff>>,
}

impl Balance {
    /// The least loaded worker, `me` on a tie.
    fn pick(&self, me: usize) -> usize {
        let mut best = me;
        let mut least = self.loads.get(me).map_or(0, |l| l.load(Ordering::Relaxed));
        for (i, load) in self.loads.iter().enumerate() {
            let load = load.load(Ordering::Relaxed);
            if load < least {
                best = i;
                least = load;
            }
        }
        best
    }
}

/// Gives a connection's share of its worker's load back when it ends.
struct LoadGuard(Option<(Arc<Balance>, usize)>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        if let Some((balance, index)) = &self.0
            && let Some(load) = balance.loads.get(*index)
        {
            load.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What connections are served with: the shared state and this thread's
/// upstream pool.
#[derive(Clone, Debug)]
struct Worker {
    shared: Arc<Shared>,
    client: HttpClient,
    /// This worker's place in `balance` (dedicated threads only).
    index: usize,
    balance: Option<Arc<Balance>>,
    /// Held by this worker thread's connections (dedicated threads only):
    /// the thread ends once every clone is gone.
    _local: Option<mpsc::Sender<()>>,
}

/// What a worker thread starts from.
struct Start<'a> {
    shared: &'a Arc<Shared>,
    state: &'a watch::Receiver<u8>,
    alive: &'a mpsc::Sender<()>,
    slots: &'a Option<Arc<Semaphore>>,
}

/// Dedicated worker threads, each running a single-threaded runtime that
/// accepts from a duplicate of the listener and serves what it accepted.
struct Workers {
    stop: watch::Sender<bool>,
    done: watch::Sender<bool>,
    exited: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts `n` threads; on failure, stops those started and gives the
    /// listener back.
    async fn start(
        n: usize,
        listener: TcpListener,
        start: Start<'_>,
    ) -> std::result::Result<Workers, (TcpListener, io::Error)> {
        let (stop, stop_rx) = watch::channel(false);
        let (done, done_rx) = watch::channel(false);
        let mut workers = Workers {
            stop,
            done,
            exited: Vec::with_capacity(n),
        };
        let mut ready = Vec::with_capacity(n);
        let (inboxes, mut receivers): (Vec<_>, Vec<_>) =
            (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        let balance = Arc::new(Balance {
            loads: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            inboxes,
        });
        for (i, inbox) in receivers.drain(..).enumerate() {
            // A duplicate descriptor of the same listening socket: the
            // kernel hands each connection to one of the accepting threads.
            let dup = match listener.as_fd().try_clone_to_owned() {
                Ok(fd) => std::net::TcpListener::from(fd),
                Err(error) => return Err(workers.abort(listener, error).await),
            };
            let (ready_tx, ready_rx) = oneshot::channel();
            let (exited_tx, exited_rx) = oneshot::channel();
            let thread = WorkerThread {
                index: i,
                balance: balance.clone(),
                inbox,
                listener: dup,
                shared: start.shared.clone(),
                state: start.state.clone(),
                alive: start.alive.clone(),
                slots: start.slots.clone(),
                stop: stop_rx.clone(),
                done: done_rx.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("serin-proxy-{i}"))
                .spawn(move || {
                    thread.run(ready_tx);
                    let _ = exited_tx.send(());
                });
            if let Err(error) = spawned {
                return Err(workers.abort(listener, error).await);
            }
            workers.exited.push(exited_rx);
            ready.push(ready_rx);
        }
        for ready in ready {
            let error = match ready.await {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(_) => io::Error::other("worker thread ended while starting"),
            };
            return Err(workers.abort(listener, error).await);
        }
        // The workers hold their own descriptors; this one would only wake
        // the caller's runtime on every new connection.
        drop(listener);
        Ok(workers)
    }

    async fn abort(self, listener: TcpListener, error: io::Error) -> (TcpListener, io::Error) {
        self.stop_accepting();
        self.finish().await;
        (listener, error)
    }

    fn stop_accepting(&self) {
        let _ = self.stop.send(true);
    }

    /// Ends the workers (closing what connections remain) and waits for
    /// their threads to exit.
    async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.done.send(true);
        for exited in self.exited {
            let _ = exited.await;
        }
    }
}

/// One worker thread's share of the proxy.
struct WorkerThread {
    index: usize,
    balance: Arc<Balance>,
    inbox: mpsc::UnboundedReceiver<Handoff>,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    state: watch::Receiver<u8>,
    alive: mpsc::Sender<()>,
    slots: Option<Arc<Semaphore>>,
    stop: watch::Receiver<bool>,
    done: watch::Receiver<bool>,
}

impl WorkerThread {
    fn run(self, ready: oneshot::Sender<io::Result<()>>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let WorkerThread {
            index,
            balance,
            inbox,
            listener,
            shared,
            state,
            alive,
            slots,
            mut stop,
            mut done,
        } = self;
        runtime.block_on(async move {
            let listener = match listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
            {
                Ok(listener) => listener,
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            let (local, mut local_rx) = mpsc::channel::<()>(1);
            let worker = Worker {
                client: forward::client(&shared.limits),
                shared,
                index,
                balance: Some(balance),
                _local: Some(local),
            };
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            accept_loop(listener, worker, stopped, state, alive, slots, Some(inbox)).await;
            // Serve what was accepted until it is done or the proxy ends it.
            // Should the proxy's `serve` be dropped instead, connections
            // drain on their own (the state channel closes).
            tokio::select! {
                _ = local_rx.recv() => {}
                () = async {
                    if done.wait_for(|done| *done).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => {}
            }
        });
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
    /// Records one answered request, sent by the route `routed`, in the
    /// recorder and the access log. `latency` is the time to the response
    /// headers (the histogram's meaning); the request is recorded, and
    /// stamped, when its answer ended (see [`Outcome`]), so `status` is what
    /// the client really got.
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

/// What a connection's requests are served with.
struct Ctx {
    worker: Worker,
    conn: Conn,
}

/// One client connection's state, for `X-Forwarded-For` and idle tracking.
#[derive(Debug)]
struct Conn {
    client_ip: HeaderValue,
    /// The peer is a trusted proxy: its `X-Forwarded-*` headers are kept.
    trusted: bool,
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
    worker: Worker,
    stream: TcpStream,
    peer: SocketAddr,
    mut state: watch::Receiver<u8>,
    _alive: mpsc::Sender<()>,
    _permit: Option<OwnedSemaphorePermit>,
) {
    let _ = stream.set_nodelay(true);
    let _load = LoadGuard(worker.balance.clone().map(|b| (b, worker.index)));
    let shared = worker.shared.clone();
    Counters::incr(&shared.counters.connections_total);
    shared
        .counters
        .active_connections
        .fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(shared.counters.clone());
    // A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`.
    let peer_ip = peer.ip().to_canonical();
    let client_ip = HeaderValue::from_str(&peer_ip.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    let trusted = shared.trusted_proxies.contains(peer_ip);
    let ctx = Arc::new(Ctx {
        worker,
        conn: Conn {
            client_ip,
            trusted,
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(shared.mono_ms()),
        },
    });
    let service = {
        let ctx = ctx.clone();
        hyper::service::service_fn(move |req| {
            let ctx = ctx.clone();
            // Boxed: hyper keeps the request's future inline in every
            // connection, idle ones included; boxed it costs memory only
            // while a request is in flight.
            Box::pin(async move { Ok::<_, Infallible>(handle(&ctx.worker, &ctx.conn, req).await) })
        })
    };
    let conn = &ctx.conn;
    let connection = shared
        .builder
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let idle = shared.limits.idle_timeout;
    let idle_check = tokio::time::sleep(idle);
    tokio::pin!(idle_check);
    let mut draining = false;
    // Set when the connection was closed for being idle: a peer that does
    // not finish the graceful close within another idle timeout, with no
    // request in flight (an HTTP/2 client that never acknowledges the
    // close), is dropped.
    let mut idle_closing = false;
    let mut state_open = true;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    if answered_431(&*error) {
                        Counters::incr(&shared.counters.rejected_header_too_large);
                    }
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
            () = &mut idle_check, if !draining || idle_closing => {
                if idle_closing {
                    if conn.in_flight.load(Ordering::Acquire) == 0 {
                        return;
                    }
                    // A request that raced the close: it may finish.
                    idle_check.as_mut().reset(Instant::now() + idle);
                    continue;
                }
                let last = conn.last_active_ms.load(Ordering::Acquire);
                let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
                let now = shared.mono_ms();
                if conn.in_flight.load(Ordering::Acquire) == 0 && now.saturating_sub(last) >= idle_ms {
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                    idle_closing = true;
                    idle_check.as_mut().reset(Instant::now() + idle);
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
async fn handle(worker: &Worker, conn: &Conn, req: Request<Incoming>) -> Response<ResponseBody> {
    let start = Instant::now();
    let shared = &worker.shared;
    let _in_flight = InFlightGuard::new(conn, shared);
    Counters::incr(&shared.counters.requests_total);
    let limits = &shared.limits;

    if !forwardable(req.method()) {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not supported by the proxy\n",
        );
    }
    if !headers::host_is_valid(req.version(), req.uri(), req.headers()) {
        Counters::incr(&shared.counters.rejected_invalid_host);
        let mut response = error(StatusCode::BAD_REQUEST, "missing or invalid Host header\n");
        // Which host, hence which request, an HTTP/1 client meant is
        // unclear: nothing more is read on its connection. (HTTP/2 streams
        // are framed apart, and forbid the header.)
        if req.version() < http::Version::HTTP_2 {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        return response;
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

    let (decision, routed) = {
        let table = shared.table.load();
        let decision = table.route(&parts, || fastrand::u8(0..100));
        (decision, table.routed())
    };
    let upstream = decision.upstream;
    let Ok(uri) = forward::upstream_path(&upstream, &parts.uri) else {
        return error(StatusCode::BAD_REQUEST, "invalid request target\n");
    };
    headers::to_upstream(
        &mut parts.headers,
        &conn.client_ip,
        conn.trusted,
        parts.uri.authority(),
        &upstream.host,
    );
    let original_uri = std::mem::replace(&mut parts.uri, uri);
    parts.version = http::Version::HTTP_11;

    let mut tripped = None;
    let mut progress = None;
    let body = match decision.mirror {
        // Boxed: the buffering future is rare and would otherwise enlarge
        // every request's future, which hyper keeps per connection.
        Some(canary) => match Box::pin(buffer_for_mirror(body, content_length, limits)).await {
            Buffered::Copy(bytes) => {
                mirror::spawn(
                    shared,
                    &worker.client,
                    canary,
                    mirror::Copy {
                        method: parts.method.clone(),
                        uri: original_uri,
                        headers: parts.headers.clone(),
                        body: bytes.clone(),
                        routed: routed.clone(),
                    },
                );
                RequestBody::full(bytes)
            }
            Buffered::Skipped(body) => {
                Counters::incr(&shared.counters.mirrors_skipped_body);
                stream_body(body, content_length, limits, &mut tripped, &mut progress)
            }
            Buffered::ClientError => {
                return error(StatusCode::BAD_REQUEST, "request body could not be read\n");
            }
            Buffered::TimedOut => {
                shared.count_failure(Failure::ClientTimeout);
                return error(Failure::ClientTimeout.status(), CLIENT_TIMEOUT_TEXT);
            }
        },
        None => stream_body(body, content_length, limits, &mut tripped, &mut progress),
    };

    let result = forward::send(
        &worker.client,
        &upstream,
        Request::from_parts(parts, body),
        limits.response_header_timeout,
        progress.as_deref(),
    )
    .await;
    let latency = start.elapsed();
    match result {
        Ok((response, checkin)) => {
            let (mut head, body) = response.into_parts();
            // Recorded when the body ends: only then is it known whether
            // the answer arrived whole.
            let outcome = Outcome::new(
                shared.clone(),
                upstream.version,
                head.status.as_u16(),
                latency,
                routed,
            );
            headers::remove_hop_by_hop(&mut head.headers);
            if let Some(cookie) = decision.set_cookie {
                head.headers.append(SET_COOKIE, cookie);
            }
            let body = ResponseBody::upstream(body, checkin, outcome, limits.upstream_body_timeout);
            Response::from_parts(head, body)
        }
        Err(failure) => {
            let failure = if tripped.is_some_and(|t: Arc<AtomicBool>| t.load(Ordering::Relaxed)) {
                Failure::BodyTooLarge
            } else {
                failure
            };
            shared.count_failure(failure);
            if failure.is_upstream() {
                shared.record(
                    upstream.version,
                    failure.status().as_u16(),
                    latency,
                    &routed,
                );
            }
            let text = match failure {
                Failure::Connect | Failure::Other => "upstream unavailable\n",
                Failure::Timeout => "upstream timed out\n",
                Failure::BodyTooLarge => "request body too large\n",
                Failure::Client => "request body could not be read\n",
                Failure::ClientTimeout => CLIENT_TIMEOUT_TEXT,
            };
            error(failure.status(), text)
        }
    }
}

/// Whether a connection ended because hyper refused a request head as too
/// large and answered 431 itself (HTTP/1: a head past its buffer, or with
/// more lines than `h1_max_headers`). hyper reports a request line over
/// 64 KiB, which it answers 414, alike; with the buffer capped near
/// `max_header_bytes` a head that long is refused as too large first,
/// unless the limit is raised past 64 KiB.
fn answered_431(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_parse_too_large)
}

/// What a client too slow to send its body is answered (with 408).
const CLIENT_TIMEOUT_TEXT: &str = "request body timed out\n";

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
    progress: &mut Option<Arc<Progress>>,
) -> RequestBody {
    if body.is_end_stream() {
        return RequestBody::Stream {
            inner: body,
            limit: None,
            watch: None,
        };
    }
    // A declared length was checked already and hyper enforces it; only
    // bodies of unknown length need counting.
    let limit = match (limits.max_request_body_bytes, content_length) {
        (Some(max), None) => {
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
    let (shared, watch) = Progress::start(limits.client_body_timeout);
    *progress = Some(shared);
    RequestBody::Stream {
        inner: body,
        limit,
        watch: Some(watch),
    }
}

enum Buffered {
    Copy(Bytes),
    Skipped(Incoming),
    ClientError,
    /// The client did not send the whole body within `client_body_timeout`.
    TimedOut,
}

/// Buffers a body for mirroring when it is empty or of known, small length;
/// the client has `client_body_timeout` to send it whole.
async fn buffer_for_mirror(
    body: Incoming,
    content_length: Option<u64>,
    limits: &Limits,
) -> Buffered {
    if body.is_end_stream() {
        return Buffered::Copy(Bytes::new());
    }
    match content_length {
        Some(len) if len <= limits.mirror_max_body_bytes as u64 => {
            match tokio::time::timeout(limits.client_body_timeout, body.collect()).await {
                Ok(Ok(collected)) => Buffered::Copy(collected.to_bytes()),
                Ok(Err(_)) => Buffered::ClientError,
                Err(_elapsed) => Buffered::TimedOut,
            }
        }
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
