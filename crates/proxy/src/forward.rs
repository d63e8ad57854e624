//! Sending a request to an upstream over a pool of keep-alive HTTP/1.1
//! connections (over TLS for `https://` upstreams), and naming what went
//! wrong when it fails (the status the user sees).
//!
//! Each worker has its own pool, so a connection is only ever used by the
//! thread that opened it: hyper's connection task runs on the same
//! single-threaded runtime as the requests that use it. A connection goes
//! back to the pool when its response body has been read to the end (see
//! [`Checkin`]).

use crate::upstream_tls::UpstreamTls;
use crate::{
    Limits,
    body::{BodyTooLarge, ClientBodyError, ClientBodyTimeout, Progress, RequestBody},
    routes::Upstream,
};
use http::{
    Request, Response, StatusCode, Uri,
    uri::{Authority, PathAndQuery},
};
use hyper::{
    body::Incoming,
    client::conn::http1::{self, SendRequest},
};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::{
    error::Error as _,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{net::TcpStream, time::Instant};

/// Idle keep-alive connections to the upstreams, most recently used last.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient(Arc<Pool>);

#[derive(Debug)]
struct Pool {
    /// hyper's connections, by what they were opened to.
    idle: IdleLists<PoolKey, SendRequest<RequestBody>>,
    builder: http1::Builder,
    /// Dials `https://` upstreams (shared by every worker's pool).
    tls: UpstreamTls,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// Plain connections of the HTTP/1 fast path (`h1/serve.rs`), kept
    /// apart from hyper's: the fast path reads and writes them itself.
    raw: IdleLists<Authority, TcpStream>,
    /// Whether the task closing expired idle connections runs (read at
    /// every connection given back: an atomic, not a lock; the reaper
    /// looks at the lists again after clearing it, so a connection given
    /// back meanwhile is never left without one).
    reaping: AtomicBool,
    /// When a failed TLS handshake with an upstream was last warned about:
    /// a certificate that does not verify fails every request, and the
    /// log says so every [`TLS_WARN_EVERY`], not every time.
    tls_warned: Mutex<Option<Instant>>,
}

/// How often a failing TLS handshake with upstreams is logged at most.
const TLS_WARN_EVERY: Duration = Duration::from_secs(10);

/// What a pooled connection was opened to: an authority, over TLS (with
/// the name its certificate must carry) or not. Connections to one never
/// serve the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PoolKey {
    pub(crate) authority: Authority,
    pub(crate) tls: Option<ServerName<'static>>,
}

/// Idle connections by what they were opened to, each list most
/// recently used last. Per upstream there are a handful at most (stable,
/// canary, and those of tables just replaced), so a list beats a map.
#[derive(Debug)]
struct IdleLists<K, C>(Mutex<Vec<(K, Vec<Since<C>>)>>);

/// A connection and when it was given back.
type Since<C> = (C, Instant);

/// A pooled connection that can tell, without waiting, whether its
/// upstream closed it.
trait Pooled {
    fn is_open(&self) -> bool;
}

impl Pooled for SendRequest<RequestBody> {
    fn is_open(&self) -> bool {
        !self.is_closed()
    }
}

impl Pooled for TcpStream {
    /// One the reactor has seen become readable was closed by its upstream
    /// (or holds bytes nobody asked for). Costs no system call while it
    /// has not.
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

// === impl IdleLists ===

impl<K: PartialEq + Clone, C: Pooled> IdleLists<K, C> {
    fn new() -> Self {
        IdleLists(Mutex::new(Vec::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(K, Vec<Since<C>>)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used connection to `key` still open, unless it
    /// has been idle for `timeout` (then so have all the others).
    fn pop(&self, key: &K, timeout: Duration) -> Option<C> {
        let mut lists = self.lock();
        let (_, list) = lists.iter_mut().find(|(k, _)| k == key)?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() >= timeout {
                list.clear();
                return None;
            }
            if conn.is_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn`; with `max` kept already, the oldest goes (it is the
    /// likeliest to expire).
    fn push(&self, key: &K, conn: C, max: usize) {
        let mut lists = self.lock();
        let entry = (conn, Instant::now());
        match lists.iter_mut().find(|(k, _)| k == key) {
            Some((_, list)) => {
                if list.len() >= max {
                    list.remove(0);
                }
                list.push(entry);
            }
            None => lists.push((key.clone(), vec![entry])),
        }
    }

    /// Closes the connections idle for `timeout` or closed by their
    /// upstream; says whether any are left.
    fn reap(&self, timeout: Duration) -> bool {
        let mut lists = self.lock();
        for (_, list) in lists.iter_mut() {
            list.retain(|(conn, since)| since.elapsed() < timeout && conn.is_open());
        }
        lists.retain(|(_, list)| !list.is_empty());
        !lists.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// A connection in use: given back to the pool with [`Checkin::release`]
/// once its response is read to the end; dropped otherwise, which closes it.
#[derive(Debug)]
pub(crate) struct Checkin {
    pool: HttpClient,
    key: PoolKey,
    sender: SendRequest<RequestBody>,
}

/// The buffer an upstream's answer is read into, its head whole (nginx's
/// `proxy_buffer_size`): a longer head is refused by hyper.
const UPSTREAM_READ_BUFFER: usize = 4096;

/// The most header lines a head that fits [`UPSTREAM_READ_BUFFER`] can
/// hold: a line is at least a name byte, `:` and a bare LF. A higher count
/// could never be reached, and only enlarges the two arrays of 32 bytes
/// per line hyper reserves (and frees) for every head it parses: 2 × 64 KiB
/// at the default limits, 2 × 43 KiB with this cap.
const UPSTREAM_MAX_HEAD_LINES: usize = UPSTREAM_READ_BUFFER / 3;

/// A pool for this worker's upstream connections.
pub(crate) fn client(limits: &Limits, tls: UpstreamTls) -> HttpClient {
    let mut builder = http1::Builder::new();
    builder.read_buf_exact_size(Some(UPSTREAM_READ_BUFFER));
    // As many header lines as a client may send (hyper's default of 100
    // would make a healthy version's answer with more a 502 against it),
    // up to what the read buffer can hold.
    builder.max_headers(limits.h1_max_headers().min(UPSTREAM_MAX_HEAD_LINES));
    HttpClient(Arc::new(Pool {
        idle: IdleLists::new(),
        raw: IdleLists::new(),
        builder,
        tls,
        connect_timeout: limits.connect_timeout,
        idle_timeout: limits.upstream_idle_timeout,
        max_idle: limits.upstream_max_idle,
        reaping: AtomicBool::new(false),
        tls_warned: Mutex::new(None),
    }))
}

// === impl HttpClient ===

impl HttpClient {
    fn push(&self, key: &PoolKey, sender: SendRequest<RequestBody>) {
        if self.0.max_idle == 0 || sender.is_closed() {
            return;
        }
        self.0.idle.push(key, sender, self.0.max_idle);
        self.start_reaper();
    }

    /// Closes expired idle connections every `idle_timeout` while there are
    /// any, as nginx's `keepalive_timeout` for upstreams does.
    fn start_reaper(&self) {
        if self.0.reaping.load(Ordering::Acquire) || self.0.reaping.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.0);
        let every = self.0.idle_timeout.max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = weak.upgrade() else { return };
                let hyper_left = pool.idle.reap(pool.idle_timeout);
                let raw_left = pool.raw.reap(pool.idle_timeout);
                if !hyper_left && !raw_left {
                    // Restarted by the next connection given back; one
                    // given back before the flag was cleared found it set
                    // and started none, so this one goes on for it.
                    pool.reaping.store(false, Ordering::Release);
                    let given_back = !pool.idle.is_empty() || !pool.raw.is_empty();
                    if !given_back || pool.reaping.swap(true, Ordering::AcqRel) {
                        return;
                    }
                }
            }
        });
    }

    /// A connection ready for a request: a pooled one, else a new one. The
    /// flag tells whether it was pooled.
    async fn checkout(&self, key: &PoolKey) -> Result<(SendRequest<RequestBody>, bool), Failure> {
        while let Some(mut sender) = self.0.idle.pop(key, self.0.idle_timeout) {
            // Given back when its response ended; hyper marks it ready as
            // soon as its task has seen that, or fails it if it closed.
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Ok((sender, true));
            }
        }
        // Boxed: dialling (TCP, TLS, hyper's handshake) is a large future
        // that only a new connection needs; inline, it would enlarge every
        // request's future, which is allocated and moved per request.
        Box::pin(self.connect(key))
            .await
            .map(|sender| (sender, false))
    }

    /// An idle plain connection to `authority` for the fast path, still
    /// open as far as can be told without waiting.
    pub(crate) fn pop_raw(&self, authority: &Authority) -> Option<TcpStream> {
        self.0.raw.pop(authority, self.0.idle_timeout)
    }

    /// Keeps a plain connection whose last answer was read whole.
    pub(crate) fn push_raw(&self, authority: &Authority, stream: TcpStream) {
        if self.0.max_idle == 0 {
            return;
        }
        self.0.raw.push(authority, stream, self.0.max_idle);
        self.start_reaper();
    }

    /// Opens a plain TCP connection for the fast path, as [`Self::connect`]
    /// does for hyper's.
    pub(crate) async fn connect_raw(&self, authority: &Authority) -> Result<TcpStream, Failure> {
        let deadline = Instant::now() + self.0.connect_timeout;
        self.dial(authority, false, deadline).await
    }

    /// TCP to `upstream` by `deadline` (504 past it; refused or
    /// unreachable, 502), with no delay and keep-alive probes.
    async fn dial(
        &self,
        upstream: &Authority,
        tls: bool,
        deadline: Instant,
    ) -> Result<TcpStream, Failure> {
        let host = upstream.host();
        // IPv6 literals come bracketed in an authority.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let default_port = if tls { 443 } else { 80 };
        let port = upstream.port_u16().unwrap_or(default_port);
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect((host, port))).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, %upstream, "upstream connect failed");
                return Err(Failure::Connect);
            }
            Err(_elapsed) => return Err(Failure::Timeout),
        };
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        Ok(stream)
    }

    /// Opens a connection: TCP, then TLS for `https://`, both within
    /// `connect_timeout` (504 past it); refused, unreachable or failing
    /// the TLS handshake (an unverifiable certificate) is a 502.
    async fn connect(&self, key: &PoolKey) -> Result<SendRequest<RequestBody>, Failure> {
        let upstream = &key.authority;
        let deadline = Instant::now() + self.0.connect_timeout;
        let stream = self.dial(upstream, key.tls.is_some(), deadline).await?;
        match &key.tls {
            None => self.handshake(TokioIo::new(stream), upstream).await,
            Some(name) => {
                let tls = self.0.tls.0.connect(name.clone(), stream);
                match tokio::time::timeout_at(deadline, tls).await {
                    Ok(Ok(stream)) => self.handshake(TokioIo::new(stream), upstream).await,
                    Ok(Err(error)) => {
                        if self.should_warn_tls() {
                            tracing::warn!(%error, %upstream, "TLS handshake with the upstream failed");
                        } else {
                            tracing::debug!(%error, %upstream, "TLS handshake with the upstream failed");
                        }
                        Err(Failure::Connect)
                    }
                    Err(_elapsed) => Err(Failure::Timeout),
                }
            }
        }
    }

    fn should_warn_tls(&self) -> bool {
        let mut last = self.0.tls_warned.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= TLS_WARN_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    async fn handshake<I>(
        &self,
        io: I,
        upstream: &Authority,
    ) -> Result<SendRequest<RequestBody>, Failure>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, conn) = match self.0.builder.handshake(io).await {
            Ok(handshake) => handshake,
            Err(error) => {
                tracing::debug!(%error, %upstream, "upstream handshake failed");
                return Err(Failure::Other);
            }
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            // With upgrades: a 101 hands the connection to the splice.
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, %upstream, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

// === impl Checkin ===

impl Checkin {
    /// Gives the connection back for the next request.
    pub(crate) fn release(self) {
        let Checkin { pool, key, sender } = self;
        pool.push(&key, sender);
    }
}

/// The upstream URI for a request: the upstream's base path joined with the
/// request's path and query. Without a base path nothing is copied.
#[cfg(test)]
pub(crate) fn upstream_uri(upstream: &Upstream, original: &Uri) -> Result<Uri, http::Error> {
    let path = upstream_path(upstream, original)?;
    Uri::builder()
        .scheme(http::uri::Scheme::HTTP)
        .authority(upstream.key.authority.clone())
        .path_and_query(path.path_and_query().map_or("/", |pq| pq.as_str()))
        .build()
}

/// The request target sent upstream (origin form): the upstream's base
/// path joined with the request's path and query. Without a base path
/// nothing is copied.
pub(crate) fn upstream_path(upstream: &Upstream, original: &Uri) -> Result<Uri, http::Error> {
    let path_and_query = match (&upstream.base_path, original.path_and_query()) {
        (None, Some(pq)) => pq.clone(),
        (None, None) => PathAndQuery::from_static("/"),
        (Some(base), pq) => {
            let path = pq.map_or("/", |pq| pq.path());
            let mut joined = String::with_capacity(base.len() + path.len() + 32);
            joined.push_str(base);
            if !path.starts_with('/') {
                joined.push('/');
            }
            // `*` (OPTIONS *) becomes the base path itself.
            if path != "*" {
                joined.push_str(path);
            }
            if let Some(q) = pq.and_then(|pq| pq.query()) {
                joined.push('?');
                joined.push_str(q);
            }
            PathAndQuery::try_from(joined)?
        }
    };
    let uri = Uri::from(path_and_query);
    // An absolute-form target with nothing after its authority but a
    // fragment (`http://host#top`) keeps an empty path, which hyper would
    // send as an empty request target: origin form needs at least `/`.
    if uri.path().is_empty() {
        return Ok(Uri::from_static("/"));
    }
    Ok(uri)
}

/// Why forwarding failed, and so what the client is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The upstream refused or could not be reached: 502.
    Connect,
    /// Connecting or waiting for response headers took too long: 504.
    Timeout,
    /// The client's body crossed `max_request_body_bytes`: 413.
    BodyTooLarge,
    /// Anything else (reset, malformed response): 502.
    Other,
    /// The client's body failed mid-request (it hung up): 400, and not the
    /// upstream's doing.
    Client,
    /// The client sent no body for `client_body_timeout`: 408, and not the
    /// upstream's doing.
    ClientTimeout,
}

// === impl Failure ===

impl Failure {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Failure::Connect | Failure::Other => StatusCode::BAD_GATEWAY,
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Client => StatusCode::BAD_REQUEST,
            Failure::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// What the client is told, with [`Self::status`].
    pub(crate) fn text(self) -> &'static str {
        match self {
            Failure::Connect | Failure::Other => "upstream unavailable\n",
            Failure::Timeout => "upstream timed out\n",
            Failure::BodyTooLarge => "request body too large\n",
            Failure::Client => "request body could not be read\n",
            Failure::ClientTimeout => "request body timed out\n",
        }
    }

    /// Whether the failure is the upstream's (recorded as that version's
    /// error) rather than the client's.
    pub(crate) fn is_upstream(self) -> bool {
        !matches!(
            self,
            Failure::BodyTooLarge | Failure::Client | Failure::ClientTimeout
        )
    }

    fn classify(error: &hyper::Error) -> Failure {
        let mut source = error.source();
        while let Some(e) = source {
            if e.is::<BodyTooLarge>() {
                return Failure::BodyTooLarge;
            }
            if e.is::<ClientBodyTimeout>() {
                return Failure::ClientTimeout;
            }
            // Before the I/O check: the client's own errors wrap I/O errors.
            if e.is::<ClientBodyError>() {
                return Failure::Client;
            }
            if let Some(io) = e.downcast_ref::<io::Error>()
                && io.kind() == io::ErrorKind::TimedOut
            {
                return Failure::Timeout;
            }
            source = e.source();
        }
        Failure::Other
    }
}

/// Sends `req` to `upstream` and waits for the response headers.
///
/// Without `progress` (a body already in memory, or none), the whole
/// exchange, connecting included, may take at most `header_timeout`. With
/// the `progress` of a streamed body, the time spent waiting for the client
/// is not the upstream's: `header_timeout` runs from when the body was sent
/// in full, and while it is being sent it bounds each wait for the upstream
/// to take the next chunk; the client is timed by the body itself, whose
/// timeout ends the exchange as [`Failure::ClientTimeout`].
///
/// A request a pooled connection refused unsent (the upstream had just
/// closed it) is retried on another.
pub(crate) async fn send(
    client: &HttpClient,
    upstream: &Upstream,
    req: Request<RequestBody>,
    header_timeout: Duration,
    progress: Option<&Progress>,
) -> Result<(Response<Incoming>, Checkin), Failure> {
    let key = &upstream.key;
    let exchange = async {
        let mut req = req;
        loop {
            let (mut sender, pooled) = client.checkout(key).await?;
            match sender.try_send_request(req).await {
                Ok(response) => {
                    let checkin = Checkin {
                        pool: client.clone(),
                        key: key.clone(),
                        sender,
                    };
                    return Ok((response, checkin));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if pooled => req = unsent,
                    _ => {
                        let error = error.into_error();
                        let failure = Failure::classify(&error);
                        tracing::debug!(%error, source = ?error.source(), ?failure, "upstream request failed");
                        return Err(failure);
                    }
                },
            }
        }
    };
    let Some(progress) = progress else {
        return match tokio::time::timeout(header_timeout, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => Err(Failure::Timeout),
        };
    };
    tokio::pin!(exchange);
    let timer = tokio::time::sleep(header_timeout);
    tokio::pin!(timer);
    let result = loop {
        let deadline = progress.upstream_deadline(header_timeout);
        if let Some(deadline) = deadline {
            if deadline <= Instant::now() {
                break Err(Failure::Timeout);
            }
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
        }
        tokio::select! {
            biased;
            result = &mut exchange => break result,
            () = progress.changed() => {}
            () = &mut timer, if deadline.is_some() => {}
        }
    };
    match result {
        // However hyper reports the failed body, the client's silence caused it.
        Err(_) if progress.client_timed_out() => Err(Failure::ClientTimeout),
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Version;
    use http::HeaderValue;

    fn upstream(base: Option<&str>) -> Upstream {
        Upstream {
            version: Version::Stable,
            key: PoolKey {
                authority: http::uri::Authority::from_static("127.0.0.1:9001"),
                tls: None,
            },
            base_path: base.map(str::to_owned),
            host: HeaderValue::from_static("127.0.0.1:9001"),
        }
    }

    fn join(base: Option<&str>, uri: &str) -> String {
        let uri: Uri = uri.parse().unwrap_or_else(|e| panic!("{e}"));
        upstream_uri(&upstream(base), &uri)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string()
    }

    #[test]
    fn a_target_without_a_path_is_sent_as_the_root() {
        let path = |uri: &str| {
            let uri: Uri = uri.parse().unwrap_or_else(|e| panic!("{e}"));
            upstream_path(&upstream(None), &uri)
                .unwrap_or_else(|e| panic!("{e}"))
                .to_string()
        };
        assert_eq!(path("http://front.example#top"), "/");
        assert_eq!(path("http://front.example?q=1"), "/?q=1");
        assert_eq!(path("http://front.example"), "/");
        assert_eq!(path("/a?b"), "/a?b");
        assert_eq!(path("*"), "*");
    }

    #[test]
    fn paths_join_onto_the_base() {
        assert_eq!(join(None, "/a/b?x=1"), "http://127.0.0.1:9001/a/b?x=1");
        assert_eq!(
            join(Some("/app"), "/a?x=1&y"),
            "http://127.0.0.1:9001/app/a?x=1&y"
        );
        assert_eq!(join(Some("/app"), "/"), "http://127.0.0.1:9001/app/");
        assert_eq!(
            join(Some("/app"), "http://front.example/z?q"),
            "http://127.0.0.1:9001/app/z?q"
        );
    }
}
