//! Serving the API's router on its listener, guarded as the proxy guards
//! user traffic: a request head must arrive within a deadline, an idle
//! keep-alive connection is closed, and the number of open connections is
//! capped, so idle or dribbling clients cannot hold the process's file
//! descriptors (every canary's proxy needs them too).
//!
//! At the cap a new connection is not left waiting: the connection idle
//! the longest (no request in flight, a half-sent head included) is closed
//! to make room, as nginx reuses idle keep-alive connections when it runs
//! out. When every connection has a request in flight (event streams, say)
//! the new one is answered 503 and closed at once.

use axum::{Router, body::Body};
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch},
    time::Instant,
};

/// How the API's listener guards itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// How long a client may take to send a whole request head (also bounds
    /// a keep-alive connection waiting for its next request); the connection
    /// is closed when exceeded. The proxy's default, as nginx's
    /// `client_header_timeout`.
    pub header_read_timeout: Duration,
    /// A connection without a request in flight for this long is closed.
    /// The proxy's default, as nginx's `keepalive_timeout`.
    pub idle_timeout: Duration,
    /// Most connections open at once. [`crate::Daemon::start`] lowers it
    /// when the open-file limit is too low to keep it beside the proxies
    /// (see [`crate::fds`]).
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take before their
    /// connections are dropped.
    pub shutdown_grace: Duration,
}

/// The API's connection cap when none is given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

impl Default for ApiLimits {
    fn default() -> Self {
        let proxy = serin_proxy::Limits::default();
        ApiLimits {
            header_read_timeout: proxy.client_header_timeout,
            idle_timeout: proxy.idle_timeout,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves,
/// then lets requests in flight finish for up to `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ApiLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let shared = Arc::new(Shared {
        builder,
        router,
        limits,
        registry: Registry::default(),
    });
    let (state_tx, state_rx) = watch::channel(RUNNING);
    // Every connection task holds a sender; `recv` returns `None` once all
    // are gone.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    // One permit per open connection, given back when its task ends (its
    // socket closed): the API never holds more than the cap, plus the one
    // connection being accepted.
    let permits = Arc::new(Semaphore::new(shared.limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors, usually: back off instead of
                // spinning; closing connections will free some.
                tracing::warn!(%error, "API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            // At the cap: close the connection idle the longest and take
            // its permit once its socket is closed.
            Err(_) if shared.registry.close_idle_longest() => {
                tokio::time::timeout(MAKE_ROOM, permits.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        match permit {
            Some(permit) => {
                let slot = shared.registry.register();
                tokio::spawn(serve_connection(
                    shared.clone(),
                    stream,
                    slot,
                    state_rx.clone(),
                    alive_tx.clone(),
                    permit,
                ));
            }
            None => refuse(&stream),
        }
    }
    drop(listener);
    drop(alive_tx);
    let _ = state_tx.send(DRAINING);
    let grace = shared.limits.shutdown_grace;
    if tokio::time::timeout(grace, alive_rx.recv()).await.is_err() {
        tracing::warn!(
            ?grace,
            "API connections still open after the grace period; closing them"
        );
        let _ = state_tx.send(CLOSING);
        let _ = tokio::time::timeout(Duration::from_secs(1), alive_rx.recv()).await;
    }
}

/// How long a new connection waits for the one closed to make room.
const MAKE_ROOM: Duration = Duration::from_secs(1);

/// Connection lifecycle broadcast to every connection task.
const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const CLOSING: u8 = 2;

struct Shared {
    builder: hyper::server::conn::http1::Builder,
    router: Router,
    limits: ApiLimits,
    registry: Registry,
}

/// The open connections, for the cap and for choosing one to close.
#[derive(Default)]
struct Registry {
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
    epoch: EpochCell,
}

/// The registry's time origin, for idle tracking in milliseconds.
struct EpochCell(Instant);

impl Default for EpochCell {
    fn default() -> Self {
        EpochCell(Instant::now())
    }
}

/// One open connection.
struct Slot {
    id: u64,
    /// Requests in flight (their response bodies included), or [`CLOSED`]
    /// once the connection was chosen to close: then no request may start.
    state: AtomicUsize,
    /// When the last request ended (or the connection opened).
    last_active_ms: AtomicU64,
    /// Wakes the connection's task to close it.
    close: Notify,
}

/// [`Slot::state`] of a connection that is closing.
const CLOSED: usize = 1 << (usize::BITS - 1);

// === impl Registry ===

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Registers a new connection.
    fn register(&self) -> Arc<Slot> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            id,
            state: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
        });
        self.lock().insert(id, slot.clone());
        slot
    }

    /// Tells the connection idle the longest (no request in flight) to
    /// close; `false` when every connection has a request in flight.
    fn close_idle_longest(&self) -> bool {
        let mut slots = self.lock();
        // A request may begin on the chosen connection before it is marked
        // closing; then another is chosen, a few times at most.
        for _ in 0..8 {
            let Some(victim) = slots
                .values()
                .filter(|slot| slot.state.load(Ordering::Acquire) == 0)
                .min_by_key(|slot| slot.last_active_ms.load(Ordering::Acquire))
                .cloned()
            else {
                return false;
            };
            if victim.close_if_idle() {
                slots.remove(&victim.id);
                victim.close.notify_one();
                return true;
            }
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

// === impl Slot ===

impl Slot {
    /// A request begins; `false` when the connection is closing.
    fn enter(&self) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state & CLOSED == 0).then_some(state + 1)
            })
            .is_ok()
    }

    /// A request (its response body included) ended at `now_ms`.
    fn leave(&self, now_ms: u64) {
        self.last_active_ms.store(now_ms, Ordering::Release);
        self.state.fetch_sub(1, Ordering::AcqRel);
    }

    /// Marks the connection closing if no request is in flight.
    fn close_if_idle(&self) -> bool {
        self.state
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Answers 503 and closes, without waiting: a fresh socket's send buffer
/// takes the few bytes at once, and a client that cannot take them loses
/// nothing it was promised.
fn refuse(stream: &TcpStream) {
    const BODY: &str = r#"{"error":"the API serves as many connections as it may; every one has a request in flight: try again"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.try_write(answer.as_bytes());
    tracing::warn!("API: connection cap reached with every connection busy; refused one");
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    slot: Arc<Slot>,
    mut state: watch::Receiver<u8>,
    _alive: mpsc::Sender<()>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let _registered = Registered {
        shared: shared.clone(),
        id: slot.id,
    };
    let service = {
        let router = TowerToHyperService::new(shared.router.clone());
        let shared = shared.clone();
        let slot = slot.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let router = router.clone();
            let shared = shared.clone();
            let slot = slot.clone();
            async move { Ok::<_, std::convert::Infallible>(call(router, shared, slot, request).await) }
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
                    tracing::debug!(%error, "API connection ended with an error");
                }
                return;
            }
            () = slot.close.notified() => return,
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
                let last = slot.last_active_ms.load(Ordering::Acquire);
                let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
                let now = shared.registry.now_ms();
                if now.saturating_sub(last) >= idle_ms && slot.close_if_idle() {
                    return;
                }
                let due = last.saturating_add(idle_ms).max(now.saturating_add(1));
                let wait = Duration::from_millis(due - now).min(idle);
                idle_check.as_mut().reset(Instant::now() + wait);
            }
        }
    }
}

/// Takes the connection out of the registry when its task ends.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.registry.remove(self.id);
    }
}

/// One request through the router, counted in flight until its response
/// body (an event stream, say) ends.
async fn call(
    router: TowerToHyperService<Router>,
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    request: Request<Incoming>,
) -> Response<Body> {
    if !slot.enter() {
        // Chosen to close between reading the head and getting here.
        let mut response = crate::api::ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "the API closed this connection to make room for another: try again",
        )
        .into_response();
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        return response;
    }
    let guard = InFlight { shared, slot };
    match hyper::service::Service::call(&router, request).await {
        Ok(response) => response.map(|body| {
            Body::new(Guarded {
                body,
                _guard: guard,
            })
        }),
        Err(never) => match never {},
    }
}

use axum::response::IntoResponse as _;

/// A request in flight on a connection.
struct InFlight {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.slot.leave(self.shared.registry.now_ms());
    }
}

/// A response body that keeps its request counted in flight until it ends.
struct Guarded {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_idle_the_longest_makes_room() {
        let registry = Registry::default();
        let first = registry.register();
        first.last_active_ms.store(5, Ordering::Release);
        let second = registry.register();
        second.last_active_ms.store(10, Ordering::Release);
        assert!(registry.close_idle_longest());
        assert_eq!(first.state.load(Ordering::Acquire), CLOSED);
        assert!(!first.enter(), "no request starts on a closing connection");
        assert_eq!(second.state.load(Ordering::Acquire), 0);
        let third = registry.register();
        assert!(second.enter() && third.enter());
        assert!(
            !registry.close_idle_longest(),
            "every connection busy: none to close"
        );
        third.leave(20);
        assert!(registry.close_idle_longest());
        assert_eq!(third.state.load(Ordering::Acquire), CLOSED);
        assert_eq!(registry.lock().len(), 1, "only the busy one is left");
    }
}
