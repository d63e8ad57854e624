//! Request and response bodies as enums rather than boxed trait objects: the
//! common case (a streamed `Incoming`) is not boxed; a request body that is
//! not empty adds one shared [`Progress`], which times the client apart from
//! the upstream. A response body carries its request's [`Outcome`], recorded
//! when the body ends, and a [`Stall`] timer on the upstream.

use crate::{Version, counters::Counters, forward::Checkin, routes::Routed, server::Shared};
use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    sync::{Notify, futures::Notified},
    time::{Instant, Sleep},
};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed request body grew past `max_request_body_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {0} bytes")]
pub(crate) struct BodyTooLarge(pub u64);

/// The client's own body failed (it hung up mid-upload, or sent a malformed
/// chunk). Wrapped so the forwarder can tell it from an upstream failure:
/// it is answered 400 and never recorded as the version's error.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub(crate) struct ClientBodyError(#[source] pub hyper::Error);

/// The client sent no chunk of its body for `client_body_timeout` while the
/// proxy waited for one: answered 408 and never recorded as the version's
/// error.
#[derive(Debug, thiserror::Error)]
#[error("client sent no request body for {0:?}")]
pub(crate) struct ClientBodyTimeout(pub Duration);

pin_project! {
    /// What is sent upstream.
    #[project = RequestBodyProj]
    pub(crate) enum RequestBody {
        /// The client's body, streamed; `limit` counts down what may still
        /// come, `watch` times the client and tells the forwarder how far
        /// the body has got.
        Stream {
            #[pin]
            inner: Incoming,
            // Boxed: only bodies of unknown length have one, and the
            // request (body included) fills the slots of hyper's queue to
            // each upstream connection (two blocks of 32 when it is busy).
            limit: Option<Box<Limit>>,
            watch: Option<Watch>,
        },
        /// A buffered body (mirrored requests and their stable original).
        Full { data: Option<Bytes> },
    }
}

/// A streaming size limit; `tripped` tells the forwarder that the upstream
/// error it sees was this limit (answered 413, not 502).
#[derive(Debug)]
pub(crate) struct Limit {
    pub max: u64,
    pub remaining: u64,
    pub tripped: Arc<AtomicBool>,
}

/// How far a streamed request body has got, shared by the body (polled by
/// the upstream connection as it writes) and the forwarder waiting for the
/// answer: it tells waiting on the client (timed by `client_body_timeout`)
/// from waiting on the upstream (timed by `response_header_timeout`).
#[derive(Debug)]
pub(crate) struct Progress {
    clock: Mutex<Clock>,
    /// Woken when the proxy stops waiting on the client or the body ends.
    wake: Notify,
    client_timeout: Duration,
}

#[derive(Debug)]
struct Clock {
    /// When the upstream last took a chunk (at first: when the request
    /// started).
    last_taken: Instant,
    /// Since when the proxy has been waiting for the client's next chunk.
    waiting_since: Option<Instant>,
    /// When the whole body had been handed to the upstream connection.
    done_at: Option<Instant>,
    /// The client let `client_timeout` pass without sending.
    timed_out: bool,
}

/// The body's side of a [`Progress`]: the timer on the client.
#[derive(Debug)]
pub(crate) struct Watch {
    progress: Arc<Progress>,
    /// Made the first time the client keeps the proxy waiting.
    timer: Option<Pin<Box<Sleep>>>,
}

// === impl Progress ===

impl Progress {
    /// A body starting now; the client may pause `client_timeout` between
    /// chunks.
    pub(crate) fn start(client_timeout: Duration) -> (Arc<Progress>, Watch) {
        let progress = Arc::new(Progress {
            clock: Mutex::new(Clock {
                last_taken: Instant::now(),
                waiting_since: None,
                done_at: None,
                timed_out: false,
            }),
            wake: Notify::new(),
            client_timeout,
        });
        let watch = Watch {
            progress: progress.clone(),
            timer: None,
        };
        (progress, watch)
    }

    fn clock(&self) -> MutexGuard<'_, Clock> {
        self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the upstream has kept the proxy waiting too long, given
    /// `header_timeout`: that long after the body was sent in full, or,
    /// while it is being sent, that long after the upstream last took a
    /// chunk. `None` while the proxy waits on the client instead.
    pub(crate) fn upstream_deadline(&self, header_timeout: Duration) -> Option<Instant> {
        let clock = self.clock();
        match (clock.done_at, clock.waiting_since) {
            _ if clock.timed_out => None,
            (Some(done), _) => Some(done + header_timeout),
            (None, Some(_)) => None,
            (None, None) => Some(clock.last_taken + header_timeout),
        }
    }

    /// Completes when the proxy stops waiting on the client or the body
    /// ends (or did since the last call).
    pub(crate) fn changed(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// Whether the client let `client_body_timeout` pass without sending.
    pub(crate) fn client_timed_out(&self) -> bool {
        self.clock().timed_out
    }

    /// The upstream connection took a chunk (`ended`: the last one).
    fn took(&self, ended: bool) {
        let now = Instant::now();
        let was_waiting = {
            let mut clock = self.clock();
            clock.last_taken = now;
            if ended {
                clock.done_at = Some(now);
            }
            clock.waiting_since.take().is_some()
        };
        if was_waiting || ended {
            self.wake.notify_one();
        }
    }
}

// === impl Watch ===

impl Watch {
    /// The client has no chunk ready: starts or checks the timer on it.
    /// True when the client has kept the proxy waiting too long.
    fn client_pending(&mut self, cx: &mut Context<'_>) -> bool {
        let progress = &self.progress;
        let deadline = {
            let mut clock = progress.clock();
            let since = *clock.waiting_since.get_or_insert_with(Instant::now);
            since + progress.client_timeout
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_ready() {
            progress.clock().timed_out = true;
            return true;
        }
        false
    }
}

// === impl RequestBody ===

impl RequestBody {
    pub(crate) fn full(data: Bytes) -> Self {
        RequestBody::Full {
            data: (!data.is_empty()).then_some(data),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            RequestBodyProj::Stream {
                mut inner,
                limit,
                watch,
            } => {
                let polled = inner.as_mut().poll_frame(cx);
                if let Some(watch) = watch {
                    match &polled {
                        Poll::Pending => {
                            if watch.client_pending(cx) {
                                let timeout = watch.progress.client_timeout;
                                return Poll::Ready(Some(Err(ClientBodyTimeout(timeout).into())));
                            }
                        }
                        Poll::Ready(Some(Ok(_))) => watch.progress.took(inner.is_end_stream()),
                        Poll::Ready(None) => watch.progress.took(true),
                        Poll::Ready(Some(Err(_))) => {}
                    }
                }
                let frame = match polled {
                    Poll::Ready(Some(Ok(frame))) => frame,
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Some(Err(ClientBodyError(e).into())));
                    }
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                };
                if let (Some(limit), Some(data)) = (limit.as_mut(), frame.data_ref()) {
                    let len = data.len() as u64;
                    if len > limit.remaining {
                        limit.tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(BodyTooLarge(limit.max).into())));
                    }
                    limit.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            RequestBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Stream { inner, .. } => inner.is_end_stream(),
            RequestBody::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Stream { inner, .. } => inner.size_hint(),
            RequestBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

pin_project! {
    /// What is sent back to the client.
    #[project = ResponseBodyProj]
    pub(crate) enum ResponseBody {
        /// The upstream's body, streamed; its connection goes back to the
        /// pool once the body has been read to the end, and the request is
        /// recorded then (see [`Outcome`]). `stall` times each wait for the
        /// upstream's next chunk.
        Upstream {
            #[pin]
            inner: Incoming,
            checkin: Option<Checkin>,
            outcome: Option<Outcome>,
            stall: Stall,
        },
        /// A response the proxy made itself (errors).
        Full { data: Option<Bytes> },
    }
}

/// The upstream sent no chunk of its response body for
/// `upstream_body_timeout` while the proxy waited for one: the body is cut
/// and the request recorded as its version's 504.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent no response body for {0:?}")]
pub(crate) struct UpstreamBodyTimeout(pub Duration);

/// A forwarded request whose answer is still streaming: it is recorded
/// once, when its body ends, breaks or is dropped, so the status the judges
/// read is the one the client really got. A body that ends, or that the
/// client stops reading (it hung up: the upstream did nothing wrong), keeps
/// the status its head announced; one that breaks off or stalls is the
/// upstream's failure, recorded as 502 or 504. The latency stays the time
/// to the response headers, as for every request.
#[derive(Debug)]
pub(crate) struct Outcome {
    shared: Arc<Shared>,
    version: Version,
    status: u16,
    latency: Duration,
    /// The route the request was sent by, for the access log.
    routed: Routed,
}

/// Times the waits for the upstream's next response chunk, as [`Watch`]
/// times the client's: only while the proxy waits on the upstream, so a
/// client slow to read is never charged to it.
#[derive(Debug)]
pub(crate) struct Stall {
    timeout: Duration,
    /// Since when the proxy has been waiting for the next chunk.
    waiting_since: Option<Instant>,
    /// Made the first time the upstream keeps the proxy waiting.
    timer: Option<Pin<Box<Sleep>>>,
}

// === impl Outcome ===

impl Outcome {
    /// A request answered with `status` after `latency`, by `version`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        version: Version,
        status: u16,
        latency: Duration,
        routed: Routed,
    ) -> Self {
        Outcome {
            shared,
            version,
            status,
            latency,
            routed,
        }
    }

    /// The body broke off or stalled: the upstream's failure, recorded as
    /// `status` (502 or 504) whatever its head said.
    fn failed(mut self, status: StatusCode) {
        Counters::incr(&self.shared.counters.upstream_body_errors);
        self.status = status.as_u16();
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.shared
            .record(self.version, self.status, self.latency, &self.routed);
    }
}

// === impl Stall ===

impl Stall {
    pub(crate) fn new(timeout: Duration) -> Self {
        Stall {
            timeout,
            waiting_since: None,
            timer: None,
        }
    }

    /// The upstream has no chunk ready: starts or checks the timer on it.
    /// True when it has kept the proxy waiting too long.
    fn pending(&mut self, cx: &mut Context<'_>) -> bool {
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        let deadline = since + self.timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// A chunk came (or the body ended): the next wait starts afresh.
    fn took(&mut self) {
        self.waiting_since = None;
    }
}

// === impl ResponseBody ===

impl ResponseBody {
    /// The upstream's body; gives the connection back and records the
    /// request at once when there is no body to read.
    pub(crate) fn upstream(
        inner: Incoming,
        checkin: Checkin,
        outcome: Outcome,
        stall_timeout: Duration,
    ) -> Self {
        let (checkin, outcome) = if inner.is_end_stream() {
            checkin.release();
            drop(outcome);
            (None, None)
        } else {
            (Some(checkin), Some(outcome))
        };
        ResponseBody::Upstream {
            inner,
            checkin,
            outcome,
            stall: Stall::new(stall_timeout),
        }
    }

    /// No body (a 101's).
    pub(crate) fn empty() -> Self {
        ResponseBody::Full { data: None }
    }

    pub(crate) fn text(s: &'static str) -> Self {
        ResponseBody::Full {
            data: Some(Bytes::from_static(s.as_bytes())),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            ResponseBodyProj::Upstream {
                mut inner,
                checkin,
                outcome,
                stall,
            } => {
                let polled = inner.as_mut().poll_frame(cx);
                match &polled {
                    Poll::Pending => {
                        if stall.pending(cx) {
                            // The connection is mid-response: close it.
                            drop(checkin.take());
                            if let Some(outcome) = outcome.take() {
                                outcome.failed(StatusCode::GATEWAY_TIMEOUT);
                            }
                            let timeout = stall.timeout;
                            return Poll::Ready(Some(Err(UpstreamBodyTimeout(timeout).into())));
                        }
                    }
                    // hyper stops polling once `is_end_stream` says so.
                    Poll::Ready(Some(Ok(_))) if !inner.is_end_stream() => stall.took(),
                    Poll::Ready(Some(Ok(_)) | None) => {
                        stall.took();
                        if let Some(checkin) = checkin.take() {
                            checkin.release();
                        }
                        drop(outcome.take());
                    }
                    // Cut short, reset, or a malformed chunk. The
                    // connection is in an unknown state: close it.
                    Poll::Ready(Some(Err(_))) => {
                        drop(checkin.take());
                        if let Some(outcome) = outcome.take() {
                            outcome.failed(StatusCode::BAD_GATEWAY);
                        }
                    }
                }
                polled.map(|frame| frame.map(|result| result.map_err(Into::into)))
            }
            ResponseBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream { inner, .. } => inner.is_end_stream(),
            ResponseBody::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream { inner, .. } => inner.size_hint(),
            ResponseBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
