//! One client connection: its task completes the TLS handshake (with
//! `service.tls`), serves HTTP/1.1 or HTTP/2 (by ALPN, or prior knowledge)
//! with hyper's server, hands an upgraded connection to its splice
//! (`upgrade.rs`), closes it when idle, and drains or closes it when the
//! proxy shuts down.
//!
//! Which protocol a plain connection speaks is seen by peeking at its first
//! bytes, never by reading them: a sniffing read (hyper-util's auto
//! builder's) hands hyper a first request cut after 24 bytes, and hyper
//! then doubles the connection's 8 KiB read buffer to fit the rest, for the
//! connection's whole life (8 KiB more per client connection, measured in
//! `bench/proxy/RESULTS.md`).

use crate::{
    balance::LoadGuard, counters::Counters, h1, listener::Worker, request::handle, server::Shared,
    tls::ServerTls,
};
use http::HeaderValue;
use hyper_util::rt::TokioIo;
use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::{
    net::TcpStream,
    sync::{OwnedSemaphorePermit, mpsc, watch},
    time::Instant,
};

/// Connection lifecycle broadcast to every connection task.
pub(crate) const RUNNING: u8 = 0;
pub(crate) const DRAINING: u8 = 1;
pub(crate) const CLOSING: u8 = 2;

/// What a connection's requests are served with.
struct Ctx {
    worker: Worker,
    conn: Conn,
}

/// One client connection's state, for `X-Forwarded-For` and idle tracking.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) client_ip: HeaderValue,
    /// The client came over TLS (`X-Forwarded-Proto: https`).
    pub(crate) tls: bool,
    /// The peer is a trusted proxy: its `X-Forwarded-*` headers are kept.
    pub(crate) trusted: bool,
    in_flight: AtomicUsize,
    last_active_ms: AtomicU64,
    /// Shared with the splice of an upgraded connection, which outlives
    /// hyper's part of it.
    pub(crate) held: Arc<Held>,
}

/// What keeps a client connection counted (the active gauge, its worker's
/// load, its `max_connections` slot, the drain on shutdown), held by its
/// task and by the splice of an upgraded connection (WebSocket), whichever
/// ends last.
pub(crate) struct Held {
    /// The proxy's lifecycle: an upgraded connection ends on `CLOSING`.
    pub(crate) state: watch::Receiver<u8>,
    _alive: mpsc::Sender<()>,
    _permit: Option<OwnedSemaphorePermit>,
    _load: LoadGuard,
    _active: ActiveGuard,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").finish_non_exhaustive()
    }
}

/// Marks a request in flight on its connection for as long as it lives.
pub(crate) struct InFlightGuard<'a> {
    conn: &'a Conn,
    shared: &'a Shared,
}

// === impl InFlightGuard ===

impl<'a> InFlightGuard<'a> {
    pub(crate) fn new(conn: &'a Conn, shared: &'a Shared) -> Self {
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

pub(crate) async fn serve_connection(
    worker: Worker,
    stream: TcpStream,
    peer: SocketAddr,
    mut state: watch::Receiver<u8>,
    alive: mpsc::Sender<()>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let _ = stream.set_nodelay(true);
    let load = LoadGuard::new(worker.balance.clone(), worker.index);
    let shared = worker.shared.clone();
    Counters::incr(&shared.counters.connections_total);
    shared
        .counters
        .active_connections
        .fetch_add(1, Ordering::Relaxed);
    let held = Arc::new(Held {
        state: state.clone(),
        _alive: alive,
        _permit: permit,
        _load: load,
        _active: ActiveGuard(shared.counters.clone()),
    });
    // A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`.
    let peer_ip = peer.ip().to_canonical();
    let client_ip = HeaderValue::from_str(&peer_ip.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    let trusted = shared.trusted_proxies.contains(peer_ip);
    let ctx = Arc::new(Ctx {
        worker,
        conn: Conn {
            client_ip,
            tls: shared.tls.is_some(),
            trusted,
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(shared.mono_ms()),
            held,
        },
    });
    match shared.tls.clone() {
        None => {
            let sniffed = tokio::select! {
                sniffed = sniff(&stream, &shared.limits) => sniffed,
                // Nothing was served yet: a draining proxy ends it at once.
                _ = state.wait_for(|now| *now != RUNNING) => return,
            };
            match sniffed {
                Some(Protocol::Http1) => serve_h1(&shared, &ctx, stream, peer, state).await,
                Some(protocol) => {
                    drive(&shared, &ctx, TokioIo::new(stream), peer, state, protocol).await;
                }
                None => {}
            }
        }
        // Boxed: a TLS connection's state (rustls' buffers, hyper's
        // connection over the TLS stream) would otherwise size every plain
        // connection's task too.
        Some(tls) => Box::pin(serve_tls(&shared, &ctx, tls, stream, peer, state)).await,
    }
}

/// Completes the TLS handshake within `tls_handshake_timeout`, then serves
/// the connection with the protocol the client chose by ALPN.
async fn serve_tls(
    shared: &Arc<Shared>,
    ctx: &Arc<Ctx>,
    tls: ServerTls,
    stream: TcpStream,
    peer: SocketAddr,
    mut state: watch::Receiver<u8>,
) {
    let handshake = tokio::time::timeout(
        shared.limits.tls_handshake_timeout,
        tls.acceptor.accept(stream),
    );
    let stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                Counters::incr(&shared.counters.tls_handshake_errors);
                tracing::debug!(%error, %peer, "TLS handshake failed");
                return;
            }
            Err(_elapsed) => {
                Counters::incr(&shared.counters.tls_handshake_errors);
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        // Nothing was served yet: a draining proxy ends it at once.
        _ = state.wait_for(|now| *now != RUNNING) => return,
    };
    // HTTP/2 over TLS is chosen by ALPN only (RFC 9113, 3.2).
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        drive(
            shared,
            ctx,
            TokioIo::new(stream),
            peer,
            state,
            Protocol::Http2,
        )
        .await;
    } else {
        serve_h1(shared, ctx, stream, peer, state).await;
    }
}

/// Serves an HTTP/1.1 connection on the fast path (`h1/`), then, should it
/// hand the connection on, with hyper's server from the request it could
/// not serve. Ends at once when the proxy closes.
async fn serve_h1<S>(
    shared: &Arc<Shared>,
    ctx: &Arc<Ctx>,
    mut io: S,
    peer: SocketAddr,
    state: watch::Receiver<u8>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut closing = state.clone();
    let ended = tokio::select! {
        ended = h1::serve(&ctx.worker, &ctx.conn, &mut io, state.clone()) => ended,
        _ = closing.wait_for(|now| *now >= CLOSING) => return,
    };
    if let h1::Ended::HandOff(read) = ended {
        let io = TokioIo::new(h1::Rewind::new(read, io));
        drive(shared, ctx, io, peer, state, Protocol::Http1).await;
    }
}

/// Which of hyper's servers a connection is handed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113, 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long to wait before peeking again at a plain connection whose first
/// bytes are a strict beginning of the HTTP/2 preface.
const SNIFF_RETRY: Duration = Duration::from_millis(5);

/// The protocol of a plain connection, from its first bytes, peeked so that
/// hyper reads the whole first request itself: HTTP/2 for the preface,
/// HTTP/1.1 as soon as a byte differs from it. `None` when the client
/// closes or sends nothing for `idle_timeout`, or when a beginning of the
/// preface is not completed within `client_header_timeout`.
async fn sniff(stream: &TcpStream, limits: &crate::Limits) -> Option<Protocol> {
    let mut buf = [0u8; H2_PREFACE.len()];
    let first = tokio::time::timeout(limits.idle_timeout, stream.peek(&mut buf)).await;
    let mut n = match first {
        Ok(Ok(n)) => n,
        Ok(Err(_)) | Err(_) => return None,
    };
    let deadline = Instant::now() + limits.client_header_timeout;
    loop {
        let seen = buf.get(..n).unwrap_or(&buf);
        if seen.is_empty() {
            return None;
        }
        if !H2_PREFACE.starts_with(seen) {
            return Some(Protocol::Http1);
        }
        if seen.len() == H2_PREFACE.len() {
            return Some(Protocol::Http2);
        }
        // A strict beginning of the preface (rare: a client that sends its
        // first bytes in pieces): a peek returns at once while anything is
        // unread, so wait a little before looking again.
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(SNIFF_RETRY).await;
        n = match stream.peek(&mut buf).await {
            Ok(n) => n,
            Err(_) => return None,
        };
    }
}

/// Serves HTTP/1.1 or HTTP/2 (by the client's preface; on TLS the client
/// chose by ALPN) on an established connection until it ends, is idle too
/// long, or the proxy closes it.
async fn drive<I>(
    shared: &Arc<Shared>,
    ctx: &Arc<Ctx>,
    io: I,
    peer: SocketAddr,
    state: watch::Receiver<u8>,
    protocol: Protocol,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
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
    match protocol {
        Protocol::Http1 => {
            let connection = shared.h1.serve_connection(io, service).with_upgrades();
            tokio::pin!(connection);
            run(shared, &ctx.conn, connection, peer, state, |c| {
                c.graceful_shutdown();
            })
            .await;
        }
        Protocol::Http2 => {
            // Boxed: hyper's HTTP/2 connection is large, and most
            // connections are HTTP/1.1.
            let mut connection = Box::pin(shared.h2.serve_connection(io, service));
            run(shared, &ctx.conn, connection.as_mut(), peer, state, |c| {
                c.graceful_shutdown();
            })
            .await;
        }
    }
}

/// Drives a connection hyper serves until it ends, is idle too long, or the
/// proxy closes it; `shut_down` starts its graceful close.
async fn run<C>(
    shared: &Arc<Shared>,
    conn: &Conn,
    mut connection: Pin<&mut C>,
    peer: SocketAddr,
    mut state: watch::Receiver<u8>,
    shut_down: impl Fn(Pin<&mut C>),
) where
    C: Future<Output = Result<(), hyper::Error>>,
{
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
                    if answered_431(&error) {
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
                    shut_down(connection.as_mut());
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
                    shut_down(connection.as_mut());
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

/// Whether a connection ended because hyper refused a request head as too
/// large and answered 431 itself (HTTP/1: a head past its buffer, or with
/// more lines than `h1_max_headers`). hyper reports a request line over
/// 64 KiB, which it answers 414, alike; with the buffer capped near
/// `max_header_bytes` a head that long is refused as too large first,
/// unless the limit is raised past 64 KiB.
fn answered_431(error: &hyper::Error) -> bool {
    error.is_parse_too_large()
}
