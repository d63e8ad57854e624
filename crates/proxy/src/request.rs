//! The request path: check, route with one atomic load of the table,
//! rewrite the head, forward with a streaming (or, to mirror, buffered)
//! body, and answer; the answer is recorded when its body ends.

use crate::{
    Limits,
    body::{Limit, Outcome, Progress, RequestBody, ResponseBody},
    connection::{Conn, InFlightGuard},
    counters::Counters,
    forward::{self, Failure},
    headers,
    listener::Worker,
    matching::forwardable,
    mirror, upgrade,
};
use bytes::Bytes;
use http::{
    HeaderValue, Request, Response, StatusCode,
    header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE},
};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use tokio::time::Instant;

/// The request path: route, rewrite, forward, record.
pub(crate) async fn handle(
    worker: &Worker,
    conn: &Conn,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
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
    // A WebSocket (or other) upgrade: the client's connection is taken
    // from hyper once the upstream has agreed and the 101 has gone out.
    let switch = upgrade::requested(&req).map(|protocol| (protocol, hyper::upgrade::on(&mut req)));
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
        conn.tls,
        parts.uri.authority(),
        &upstream.host,
    );
    let (protocol, on_client) = match switch {
        Some((protocol, on_client)) => (Some(protocol), Some(on_client)),
        None => (None, None),
    };
    if let Some(protocol) = &protocol {
        upgrade::ask(&mut parts.headers, protocol.clone());
    }
    let original_uri = std::mem::replace(&mut parts.uri, uri);
    parts.version = http::Version::HTTP_11;

    let mut tripped = None;
    let mut progress = None;
    // An upgraded connection cannot be copied: it is not mirrored.
    let body = match decision.mirror.filter(|_| protocol.is_none()) {
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
                return error(
                    Failure::ClientTimeout.status(),
                    Failure::ClientTimeout.text(),
                );
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
        Ok((mut response, checkin)) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            // The pooled connection is the upstream's half of the splice
            // now, never to go back to the pool.
            drop(checkin);
            let Some(on_client) = on_client else {
                // A switch the client never asked for cannot reach it.
                shared.count_failure(Failure::Other);
                shared.record(upstream.version, 502, latency, &routed);
                return error(StatusCode::BAD_GATEWAY, "upstream unavailable\n");
            };
            Counters::incr(&shared.counters.upgrades_total);
            // Counted once, as what it is: a 101 of its version.
            shared.record(upstream.version, 101, latency, &routed);
            let on_upstream = hyper::upgrade::on(&mut response);
            upgrade::answer(&mut response);
            if let Some(cookie) = decision.set_cookie {
                response.headers_mut().append(SET_COOKIE, cookie);
            }
            upgrade::spawn(
                on_client,
                on_upstream,
                limits.upgraded_idle_timeout,
                conn.held.clone(),
            );
            let (head, _) = response.into_parts();
            Response::from_parts(head, ResponseBody::empty())
        }
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
            error(failure.status(), failure.text())
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
            Some(Box::new(Limit {
                max,
                remaining: max,
                tripped: flag,
            }))
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
