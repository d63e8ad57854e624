//! Traffic mirroring (shadowing): a copy of a stable-bound request goes to
//! the canary, its answer is thrown away, but its status and latency are
//! recorded as the canary's. That is how analysis sees a canary that takes no
//! user traffic (Flagger's Blue/Green mirroring, Istio's `mirrorPercentage`).
//!
//! Copies are bounded: the body must be small and of known length (it is
//! buffered once and shared), and at most `max_in_flight_mirrors` copies run
//! at once; extra ones are dropped and counted, never queued.

use crate::{
    body::RequestBody,
    counters::Counters,
    forward,
    routes::{Routed, Upstream},
    server::Shared,
};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::BodyExt;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use tokio::time::Instant;

/// What is copied of the original request.
pub(crate) struct Copy {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The route the original request was sent by.
    pub routed: Routed,
}

/// Counts mirrors in flight; a slot is given back when its guard drops.
#[derive(Debug, Default)]
pub(crate) struct InFlight(AtomicUsize);

struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.mirrors.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sends `copy` to `canary` in the background, unless too many are in flight.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    client: &forward::HttpClient,
    canary: Arc<Upstream>,
    copy: Copy,
) {
    let max = shared.limits.max_in_flight_mirrors;
    if shared.mirrors.0.fetch_add(1, Ordering::AcqRel) >= max {
        shared.mirrors.0.fetch_sub(1, Ordering::AcqRel);
        Counters::incr(&shared.counters.mirrors_dropped);
        return;
    }
    let slot = Slot(shared.clone());
    let client = client.clone();
    Counters::incr(&shared.counters.mirrors_sent);
    tokio::spawn(async move {
        let shared = &slot.0;
        let start = Instant::now();
        let Ok(uri) = forward::upstream_path(&canary, &copy.uri) else {
            return;
        };
        let copy_routed = copy.routed;
        let mut req = Request::new(RequestBody::full(copy.body));
        *req.method_mut() = copy.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = copy.headers;
        req.headers_mut()
            .insert(http::header::HOST, canary.host.clone());
        let timeout = shared.limits.mirror_timeout;
        let (response, checkin) = match forward::send(&client, &canary, req, timeout, None).await {
            Ok(answer) => answer,
            Err(failure) => {
                shared.count_failure(failure);
                shared.record(
                    canary.version,
                    failure.status().as_u16(),
                    start.elapsed(),
                    &copy_routed,
                );
                return;
            }
        };
        let latency = start.elapsed();
        // Read the answer to its end (within the deadline), then discard
        // it: the pooled connection can be reused, and the copy is recorded
        // as a user's request would be, once it is known to have come whole.
        let left = timeout.saturating_sub(latency);
        let mut status = response.status().as_u16();
        let mut body = response.into_body();
        let drain = async {
            loop {
                match body.frame().await {
                    Some(Ok(_)) => {}
                    Some(Err(_)) => return false,
                    None => return true,
                }
            }
        };
        match tokio::time::timeout(left, drain).await {
            Ok(true) => checkin.release(),
            Ok(false) => {
                Counters::incr(&shared.counters.upstream_body_errors);
                status = 502;
            }
            Err(_elapsed) => {
                Counters::incr(&shared.counters.upstream_body_errors);
                status = 504;
            }
        }
        shared.record(canary.version, status, latency, &copy_routed);
    });
}
