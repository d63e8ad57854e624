//! The fast path's connection loop: reads a request head, routes it,
//! writes the rewritten head and the body to a pooled plain upstream
//! connection, and relays the answer back, on the connection's own task
//! with buffers it keeps between requests. What this path does not serve
//! (see [`RequestHead::hand_off`], mirroring, `https://` upstreams) is
//! handed to hyper with the bytes already read, before anything of the
//! request was acted on; the connection is hyper's from then on.
//!
//! Every wait is bounded by the limit hyper's path applies to the same
//! wait (`client_header_timeout`, `client_body_timeout`,
//! `response_header_timeout`, `upstream_body_timeout`), and every request
//! is counted and recorded as on hyper's path: an answer when its body
//! ended, 502 or 504 of its version when the body broke or stalled.

use super::wire::{self, Chunked, Framing, HeadError, Line, RequestHead, ResponseHead};
use crate::{
    connection::{Conn, RUNNING},
    counters::Counters,
    forward::Failure,
    listener::Worker,
    routes::{Routed, Upstream},
    server::Shared,
};
use bytes::BufMut;
use http::{StatusCode, request::Parts};
use std::{sync::Arc, time::Duration};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
    time::{Instant, timeout_at},
};

/// How a connection left the fast path.
pub(crate) enum Ended {
    /// It is closed, or must be.
    Closed,
    /// Hyper serves it from here: these bytes were read and not served.
    HandOff(Vec<u8>),
}

/// Most bytes read at once (nginx's `proxy_buffer_size` doubled).
const READ_CHUNK: usize = 16 * 1024;
/// How long an upstream that stopped taking a request's body is given to
/// have answered it: its answer, if any, arrived before it closed.
const EARLY_ANSWER_WAIT: Duration = Duration::from_millis(100);
/// The longest upstream response head accepted (longer: 502).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Buffers a connection keeps from one request to the next.
struct Buffers {
    /// Bytes read from the client not yet served.
    client: Vec<u8>,
    /// Bytes read from the upstream of the request in flight.
    upstream: Vec<u8>,
    /// What is written next, to either side.
    out: Vec<u8>,
    lines: Vec<Line>,
    upstream_lines: Vec<Line>,
}

/// One connection on the fast path.
struct Fast<'a, S> {
    worker: &'a Worker,
    shared: &'a Shared,
    conn: &'a Conn,
    io: &'a mut S,
    bufs: Buffers,
    state: watch::Receiver<u8>,
    /// The request parts handed to a table that reads none.
    blank: Parts,
}

/// What follows a request.
enum Next {
    KeepAlive,
    Close,
    HandOff,
}

/// Serves `io` until it closes or is handed to hyper.
pub(crate) async fn serve<S>(
    worker: &Worker,
    conn: &Conn,
    io: &mut S,
    state: watch::Receiver<u8>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut fast = Fast {
        worker,
        shared: &worker.shared,
        conn,
        io,
        bufs: Buffers {
            client: Vec::with_capacity(4096),
            upstream: Vec::new(),
            out: Vec::new(),
            lines: Vec::new(),
            upstream_lines: Vec::new(),
        },
        state,
        blank: http::Request::new(()).into_parts().0,
    };
    loop {
        let Some(head) = fast.read_head().await else {
            return Ended::Closed;
        };
        if head.hand_off.is_some() {
            return Ended::HandOff(std::mem::take(&mut fast.bufs.client));
        }
        match fast.exchange(head).await {
            Next::KeepAlive => {}
            Next::Close => {
                let _ = fast.io.shutdown().await;
                return Ended::Closed;
            }
            Next::HandOff => return Ended::HandOff(std::mem::take(&mut fast.bufs.client)),
        }
        if *fast.state.borrow() != RUNNING {
            // Draining: what was in flight is served.
            let _ = fast.io.shutdown().await;
            return Ended::Closed;
        }
        fast.bufs.trim();
    }
}

// === impl Buffers ===

impl Buffers {
    /// Gives back what one large message grew the buffers to.
    fn trim(&mut self) {
        for buf in [&mut self.upstream, &mut self.out] {
            if buf.capacity() > 4 * READ_CHUNK {
                *buf = Vec::new();
            }
        }
        if self.client.is_empty() && self.client.capacity() > 4 * READ_CHUNK {
            self.client = Vec::with_capacity(4096);
        }
    }
}

/// Reads into `buf`'s spare room (made if needed), at most `max` bytes,
/// without first zeroing it.
async fn read_some<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<usize> {
    let max = max.max(1);
    if buf.capacity() - buf.len() < max.min(READ_CHUNK) {
        buf.reserve(max.min(READ_CHUNK));
    }
    io.read_buf(&mut BufMut::limit(&mut *buf, max)).await
}

/// Why a request failed on its way up.
enum SendError {
    /// The upstream connection failed (closed, reset): a pooled one may
    /// have been closed by the upstream just before.
    Upstream,
    /// Writing to the upstream took longer than `response_header_timeout`.
    Timeout,
    Client(Failure),
}

/// Why reading the answer failed.
enum ReadError {
    /// The upstream closed before sending a byte.
    ClosedEarly,
    Failed(Failure),
}

// === impl Fast ===

impl<S> Fast<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// The next request head, whole; `None` when the connection is to end
    /// (closed, idle or too slow, draining, or refused with an answer).
    async fn read_head(&mut self) -> Option<RequestHead> {
        let limits = &self.shared.limits;
        let deadline = Instant::now() + limits.client_header_timeout.min(limits.idle_timeout);
        let max_lines = limits.h1_max_headers();
        loop {
            if !self.bufs.client.is_empty() {
                match wire::parse_request(&self.bufs.client, max_lines, &mut self.bufs.lines) {
                    Ok(Some(head)) if head.len > limits.max_header_bytes => {
                        self.refuse_too_large().await;
                        return None;
                    }
                    Ok(Some(head)) => return Some(head),
                    Ok(None) if self.bufs.client.len() >= limits.max_header_bytes => {
                        self.refuse_too_large().await;
                        return None;
                    }
                    Ok(None) => {}
                    Err(HeadError::TooManyLines) => {
                        self.refuse_too_large().await;
                        return None;
                    }
                    Err(HeadError::Malformed(why)) => {
                        tracing::debug!(why, "malformed request head");
                        self.answer(StatusCode::BAD_REQUEST, "malformed request\n", true)
                            .await;
                        return None;
                    }
                }
            } else if *self.state.borrow() != RUNNING {
                return None;
            }
            let idle = self.bufs.client.is_empty();
            let room =
                limits.max_header_bytes + 1 - self.bufs.client.len().min(limits.max_header_bytes);
            let read = tokio::select! {
                biased;
                read = timeout_at(deadline, read_some(self.io, &mut self.bufs.client, room)) => read,
                _ = self.state.changed(), if idle => return None,
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                // Closed, failed, or silent past the limit: hyper's path
                // ends such a connection without an answer too.
                _ => return None,
            }
        }
    }

    async fn refuse_too_large(&mut self) {
        Counters::incr(&self.shared.counters.rejected_header_too_large);
        self.answer(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header fields too large\n",
            true,
        )
        .await;
    }

    /// Answers the client with the proxy's own response.
    async fn answer(&mut self, status: StatusCode, text: &str, close: bool) {
        self.bufs.out.clear();
        wire::own_response(status, text, close, &mut self.bufs.out);
        let deadline = Instant::now() + self.shared.limits.idle_timeout;
        let _ = timeout_at(deadline, self.io.write_all(&self.bufs.out)).await;
    }

    /// One request, from its head to the end of its answer.
    async fn exchange(&mut self, head: RequestHead) -> Next {
        let start = Instant::now();
        let shared = self.shared;
        let limits = &shared.limits;
        let (decision, routed) = {
            let table = shared.table.load();
            if table.mirrors() {
                return Next::HandOff;
            }
            let roll = || fastrand::u8(0..100);
            let decision = if table.reads_request() {
                match parts(&self.bufs.client, &head, &self.bufs.lines) {
                    Some(parts) => table.route(&parts, roll),
                    None => return Next::HandOff,
                }
            } else {
                table.route(&self.blank, roll)
            };
            (decision, table.routed())
        };
        let upstream = decision.upstream;
        if upstream.key.tls.is_some() {
            return Next::HandOff;
        }
        Counters::incr(&shared.counters.requests_total);
        let host_ok = head.hosts == 1
            && head.host.as_ref().is_some_and(|host| {
                // The check hyper's path applies to `Host`.
                crate::headers::valid_host_bytes(
                    self.bufs.client.get(host.clone()).unwrap_or_default(),
                )
            });
        if !host_ok {
            Counters::incr(&shared.counters.rejected_invalid_host);
            self.answer(
                StatusCode::BAD_REQUEST,
                "missing or invalid Host header\n",
                true,
            )
            .await;
            return Next::Close;
        }
        if let (Some(max), Framing::Length(length)) = (limits.max_request_body_bytes, head.body)
            && length > max
        {
            Counters::incr(&shared.counters.rejected_body_too_large);
            self.answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                Failure::BodyTooLarge.text(),
                true,
            )
            .await;
            return Next::Close;
        }
        if head.expect_continue && head.body != Framing::Empty && self.bufs.client.len() == head.len
        {
            // The client waits before sending its body (RFC 9110 §10.1.1):
            // it may, now that nothing refused it.
            let deadline = Instant::now() + limits.idle_timeout;
            let sent = timeout_at(
                deadline,
                self.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n"),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                return Next::Close;
            }
        }
        self.bufs.out.clear();
        let client = wire::Client {
            ip: self.conn.client_ip.as_bytes(),
            trusted: self.conn.trusted,
            tls: self.conn.tls,
        };
        wire::request_upstream(
            &self.bufs.client,
            &head,
            &self.bufs.lines,
            &client,
            upstream.base_path.as_deref(),
            upstream.host.as_bytes(),
            &mut self.bufs.out,
        );
        // The head is in `out` now; what follows it is body or the next
        // request.
        self.bufs.client.drain(..head.len);
        let method = head.method;
        let body = head.body;
        let client_close = head.connection.close;

        // Set when the upstream answered before taking the whole body.
        let mut early = false;
        let (mut up, response) = loop {
            let (mut up, pooled) = match self.worker.client.pop_raw(&upstream.key.authority) {
                Some(stream) => (stream, true),
                None => match self
                    .worker
                    .client
                    .connect_raw(&upstream.key.authority)
                    .await
                {
                    Ok(stream) => (stream, false),
                    Err(failure) => {
                        return self
                            .fail(failure, &upstream, start, &routed, body == Framing::Empty)
                            .await;
                    }
                },
            };
            match self.send(&mut up, body).await {
                Ok(()) => {}
                Err(SendError::Upstream) if pooled && body == Framing::Empty => continue,
                Err(SendError::Upstream) => {
                    // An upstream may answer before taking the whole body
                    // (a 413 for an upload too large) and close: what it
                    // sent is still there to read, and is its answer.
                    let deadline = Instant::now() + EARLY_ANSWER_WAIT;
                    match self.read_response(&mut up, deadline).await {
                        Ok(response) => {
                            early = true;
                            break (up, response);
                        }
                        Err(_) => {
                            return self
                                .fail(Failure::Other, &upstream, start, &routed, false)
                                .await;
                        }
                    }
                }
                Err(SendError::Timeout) => {
                    return self
                        .fail(Failure::Timeout, &upstream, start, &routed, false)
                        .await;
                }
                Err(SendError::Client(failure)) => {
                    return self.fail(failure, &upstream, start, &routed, false).await;
                }
            }
            let deadline = Instant::now() + limits.response_header_timeout;
            match self.read_response(&mut up, deadline).await {
                Ok(response) => break (up, response),
                Err(ReadError::ClosedEarly)
                    if pooled && body == Framing::Empty && method.is_idempotent() =>
                {
                    continue;
                }
                Err(ReadError::ClosedEarly) => {
                    return self
                        .fail(
                            Failure::Other,
                            &upstream,
                            start,
                            &routed,
                            body == Framing::Empty,
                        )
                        .await;
                }
                Err(ReadError::Failed(failure)) => {
                    return self
                        .fail(failure, &upstream, start, &routed, body == Framing::Empty)
                        .await;
                }
            }
        };
        let latency = start.elapsed();
        let framing = response.framing(&method);
        // After an early answer the rest of the client's body is unread.
        let close =
            client_close || early || framing == Framing::Close || *self.state.borrow() != RUNNING;
        let status = response.status;
        let relayed = self
            .relay(
                &mut up,
                &response,
                framing,
                close,
                decision.set_cookie.as_ref(),
            )
            .await;
        let recorded = match relayed {
            Relayed::Whole { reusable } => {
                if reusable && !early && response.keeps_alive() {
                    self.worker.client.push_raw(&upstream.key.authority, up);
                }
                status
            }
            Relayed::ClientGone => {
                shared.record(upstream.version, status, latency, &routed);
                return Next::Close;
            }
            Relayed::Broke(failed) => {
                Counters::incr(&shared.counters.upstream_body_errors);
                shared.record(upstream.version, failed.as_u16(), latency, &routed);
                return Next::Close;
            }
        };
        shared.record(upstream.version, recorded, latency, &routed);
        if close { Next::Close } else { Next::KeepAlive }
    }

    /// Answers a failed exchange as hyper's path does: counted, recorded
    /// against the version when it is the upstream's failure. The client's
    /// connection is kept only when no body of its is left unread.
    async fn fail(
        &mut self,
        failure: Failure,
        upstream: &Arc<Upstream>,
        start: Instant,
        routed: &Routed,
        keep: bool,
    ) -> Next {
        let shared = self.shared;
        shared.count_failure(failure);
        if failure.is_upstream() {
            shared.record(
                upstream.version,
                failure.status().as_u16(),
                start.elapsed(),
                routed,
            );
        }
        let close = !keep || *self.state.borrow() != RUNNING;
        self.answer(failure.status(), failure.text(), close).await;
        if close { Next::Close } else { Next::KeepAlive }
    }

    /// Writes the request head in `out` and its body to the upstream.
    /// (Every slice below ends at a `min` of the buffer's length, or at
    /// what `Chunked::scan` took of it, which is at most its length.)
    async fn send(&mut self, up: &mut TcpStream, body: Framing) -> Result<(), SendError> {
        let limits = &self.shared.limits;
        let write_timeout = limits.response_header_timeout;
        match body {
            Framing::Empty | Framing::Close => {
                write(up, &self.bufs.out, write_timeout).await?;
            }
            Framing::Length(length) => {
                let mut left = length;
                let first = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(self.bufs.client.len());
                let mut head = std::mem::take(&mut self.bufs.out);
                head.extend_from_slice(&self.bufs.client[..first]);
                let sent = write(up, &head, write_timeout).await;
                head.truncate(0);
                self.bufs.out = head;
                sent?;
                self.bufs.client.drain(..first);
                left -= first as u64;
                while left > 0 {
                    let max = usize::try_from(left).unwrap_or(usize::MAX);
                    self.read_body(max).await?;
                    let take = self.bufs.client.len().min(max);
                    write(up, &self.bufs.client[..take], write_timeout).await?;
                    self.bufs.client.drain(..take);
                    left -= take as u64;
                }
            }
            Framing::Chunked => {
                let mut chunked = Chunked::new();
                let mut first = true;
                loop {
                    let used = chunked
                        .scan(&self.bufs.client)
                        .map_err(|_| SendError::Client(Failure::Client))?;
                    if let Some(max) = limits.max_request_body_bytes
                        && chunked.data > max
                    {
                        return Err(SendError::Client(Failure::BodyTooLarge));
                    }
                    if first {
                        let mut head = std::mem::take(&mut self.bufs.out);
                        head.extend_from_slice(&self.bufs.client[..used]);
                        let sent = write(up, &head, write_timeout).await;
                        head.truncate(0);
                        self.bufs.out = head;
                        sent?;
                        first = false;
                    } else if used > 0 {
                        write(up, &self.bufs.client[..used], write_timeout).await?;
                    }
                    self.bufs.client.drain(..used);
                    if chunked.done() {
                        break;
                    }
                    self.read_body(READ_CHUNK).await?;
                }
            }
        }
        Ok(())
    }

    /// Reads more of the client's body (at most `max` bytes) within
    /// `client_body_timeout`.
    async fn read_body(&mut self, max: usize) -> Result<(), SendError> {
        let deadline = Instant::now() + self.shared.limits.client_body_timeout;
        match timeout_at(deadline, read_some(self.io, &mut self.bufs.client, max)).await {
            Ok(Ok(n)) if n > 0 => Ok(()),
            Ok(_) => Err(SendError::Client(Failure::Client)),
            Err(_elapsed) => Err(SendError::Client(Failure::ClientTimeout)),
        }
    }

    /// Reads the upstream's answer head into `upstream`, skipping
    /// informational answers.
    async fn read_response(
        &mut self,
        up: &mut TcpStream,
        deadline: Instant,
    ) -> Result<ResponseHead, ReadError> {
        let max_lines = self.shared.limits.h1_max_headers();
        self.bufs.upstream.clear();
        let mut received = false;
        loop {
            if !self.bufs.upstream.is_empty() {
                match wire::parse_response(
                    &self.bufs.upstream,
                    max_lines,
                    &mut self.bufs.upstream_lines,
                ) {
                    Ok(Some(head)) if head.status == 101 => {
                        // A switch the request never asked for.
                        return Err(ReadError::Failed(Failure::Other));
                    }
                    Ok(Some(head)) if head.status < 200 => {
                        self.bufs.upstream.drain(..head.len);
                        continue;
                    }
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) if self.bufs.upstream.len() > MAX_RESPONSE_HEAD => {
                        return Err(ReadError::Failed(Failure::Other));
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(%error, "malformed upstream answer");
                        return Err(ReadError::Failed(Failure::Other));
                    }
                }
            }
            match timeout_at(deadline, read_some(up, &mut self.bufs.upstream, READ_CHUNK)).await {
                Ok(Ok(n)) if n > 0 => received = true,
                Ok(_) if !received => return Err(ReadError::ClosedEarly),
                Ok(_) => return Err(ReadError::Failed(Failure::Other)),
                Err(_elapsed) => return Err(ReadError::Failed(Failure::Timeout)),
            }
        }
    }

    /// Sends the answer's head and body to the client (slices bounded as
    /// in [`Self::send`]).
    async fn relay(
        &mut self,
        up: &mut TcpStream,
        response: &ResponseHead,
        framing: Framing,
        close: bool,
        set_cookie: Option<&http::HeaderValue>,
    ) -> Relayed {
        let limits = &self.shared.limits;
        let client_timeout = limits.idle_timeout;
        let stall = limits.upstream_body_timeout;
        self.bufs.out.clear();
        wire::response_client(
            &self.bufs.upstream,
            response,
            &self.bufs.upstream_lines,
            framing,
            close,
            set_cookie.map(http::HeaderValue::as_bytes),
            &mut self.bufs.out,
        );
        self.bufs.upstream.drain(..response.len);
        match framing {
            Framing::Empty => {
                if write(self.io, &self.bufs.out, client_timeout)
                    .await
                    .is_err()
                {
                    return Relayed::ClientGone;
                }
                Relayed::Whole {
                    reusable: self.bufs.upstream.is_empty(),
                }
            }
            Framing::Length(length) => {
                let mut left = length;
                let first = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(self.bufs.upstream.len());
                let extra = self.bufs.upstream.len() > first;
                self.bufs
                    .out
                    .extend_from_slice(&self.bufs.upstream[..first]);
                left -= first as u64;
                if write(self.io, &self.bufs.out, client_timeout)
                    .await
                    .is_err()
                {
                    return Relayed::ClientGone;
                }
                while left > 0 {
                    self.bufs.upstream.clear();
                    let max = usize::try_from(left).unwrap_or(usize::MAX);
                    match body_part(up, &mut self.bufs.upstream, max, stall).await {
                        Ok(0) => return Relayed::Broke(StatusCode::BAD_GATEWAY),
                        Ok(_) => {}
                        Err(failed) => return Relayed::Broke(failed),
                    }
                    let take = self.bufs.upstream.len().min(max);
                    if write(self.io, &self.bufs.upstream[..take], client_timeout)
                        .await
                        .is_err()
                    {
                        return Relayed::ClientGone;
                    }
                    left -= take as u64;
                }
                Relayed::Whole { reusable: !extra }
            }
            Framing::Chunked => {
                let mut chunked = Chunked::new();
                let mut pending = std::mem::take(&mut self.bufs.out);
                let result = loop {
                    let used = match chunked.scan(&self.bufs.upstream) {
                        Ok(used) => used,
                        Err(_) => break Relayed::Broke(StatusCode::BAD_GATEWAY),
                    };
                    pending.extend_from_slice(&self.bufs.upstream[..used]);
                    let extra = self.bufs.upstream.len() > used;
                    if write(self.io, &pending, client_timeout).await.is_err() {
                        break Relayed::ClientGone;
                    }
                    pending.clear();
                    if chunked.done() {
                        break Relayed::Whole { reusable: !extra };
                    }
                    self.bufs.upstream.clear();
                    match body_part(up, &mut self.bufs.upstream, READ_CHUNK, stall).await {
                        Ok(0) => break Relayed::Broke(StatusCode::BAD_GATEWAY),
                        Ok(_) => {}
                        Err(failed) => break Relayed::Broke(failed),
                    }
                };
                self.bufs.out = pending;
                result
            }
            Framing::Close => {
                self.bufs.out.extend_from_slice(&self.bufs.upstream);
                if write(self.io, &self.bufs.out, client_timeout)
                    .await
                    .is_err()
                {
                    return Relayed::ClientGone;
                }
                loop {
                    self.bufs.upstream.clear();
                    match body_part(up, &mut self.bufs.upstream, READ_CHUNK, stall).await {
                        Ok(0) => return Relayed::Whole { reusable: false },
                        Ok(_) => {}
                        Err(failed) => return Relayed::Broke(failed),
                    }
                    if write(self.io, &self.bufs.upstream, client_timeout)
                        .await
                        .is_err()
                    {
                        return Relayed::ClientGone;
                    }
                }
            }
        }
    }
}

/// How an answer's relay ended.
enum Relayed {
    /// Whole; the upstream connection is reusable unless it sent more.
    Whole { reusable: bool },
    /// The client stopped reading: the answer keeps its status.
    ClientGone,
    /// The upstream's body broke off (502) or stalled (504).
    Broke(StatusCode),
}

/// Reads more of an answer's body (at most `max` bytes), waiting at most
/// `stall` (`upstream_body_timeout`): how many bytes (0 at the close), or
/// what the body is recorded as when it broke (502) or stalled (504).
async fn body_part(
    up: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
    stall: Duration,
) -> Result<usize, StatusCode> {
    match timeout_at(Instant::now() + stall, read_some(up, buf, max)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(_)) => Err(StatusCode::BAD_GATEWAY),
        Err(_elapsed) => Err(StatusCode::GATEWAY_TIMEOUT),
    }
}

/// Writes all of `bytes` within `timeout`.
async fn write<W: AsyncWrite + Unpin>(
    io: &mut W,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), SendError> {
    match timeout_at(Instant::now() + timeout, io.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendError::Upstream),
        Err(_elapsed) => Err(SendError::Timeout),
    }
}

/// The request as `http` parts, for tables that match on it; `None` when
/// `http` refuses part of it (hyper's path then decides).
fn parts(buf: &[u8], head: &RequestHead, lines: &[Line]) -> Option<Parts> {
    let target = buf.get(head.target.clone())?;
    let mut builder = http::Request::builder()
        .method(head.method.clone())
        .uri(http::Uri::try_from(target).ok()?)
        .version(http::Version::HTTP_11);
    let headers = builder.headers_mut()?;
    headers.reserve(lines.len());
    for line in lines {
        let name = http::HeaderName::from_bytes(buf.get(line.name.clone())?).ok()?;
        let value = http::HeaderValue::from_bytes(buf.get(line.value.clone())?).ok()?;
        headers.append(name, value);
    }
    builder.body(()).ok().map(|r| r.into_parts().0)
}
