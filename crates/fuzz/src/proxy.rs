//! The built-in proxy's HTTP/1 request path: an input is the raw bytes a
//! client sends on one connection (one request or several, pipelined, well
//! formed or not). They go to a real [`serin_proxy::Proxy`] over loopback,
//! in front of two trivial upstreams (stable, and canary for requests with
//! `x-canary: 1`) that read what they are forwarded with the strict reader
//! of [`crate::wire`]; the client then reads the answer until the proxy
//! closes the connection (when the request says so, or when it has been idle
//! for the proxy's idle timeout). The client keeps its side open: a proxy
//! drops requests in flight when a client half-closes, as nginx does.
//!
//! Properties:
//! - nothing panics, in the proxy's tasks either;
//! - every request an upstream is forwarded is one unambiguous HTTP/1.1
//!   message: CRLF line ends only (no bare LF or CR), no obs-fold, header
//!   names that are tokens (no spaces), exactly one `Host`, at most one
//!   `Content-Length` of digits, never with `Transfer-Encoding`, which is
//!   `chunked` alone, and chunk sizes that are hex digits; nothing left over
//!   that an upstream would read as another request;
//! - an upstream never reads more requests than the proxy took from the
//!   client (a request smuggled through would be one more);
//! - the client reads well-formed responses and then the end of the
//!   connection, within a bound, never a hang.
//!
//! Everything runs on one single-threaded runtime, started once per process
//! and driven only while an input is checked, so runs are repeatable and
//! the proxy's code is seen by the fuzzer's coverage. Its clock is paused
//! and skips ahead whenever every task waits (loopback sockets deliver at
//! once), so the proxy's timeouts (a body that never comes, an idle
//! connection) pass without taking real time.

use crate::wire::{self, Parsed};
use serin_proxy::{
    Limits, MatchRule, Proxy, ProxyConfig, ProxyHandle, Recorder, Routes, StringMatch,
};
use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    runtime::Runtime,
};

/// How long one input may take, on the paused clock, before it counts as a
/// hang: well above every timeout the proxy is given below. (A loop that
/// never yields is the fuzzer's to catch, with its own timeout.)
const DEADLINE: Duration = Duration::from_secs(60);

/// Largest request head the proxy accepts here (small, so the limit is
/// reached by small inputs).
const MAX_HEADER_BYTES: usize = 2048;

/// Largest request body the proxy accepts here.
const MAX_BODY_BYTES: u64 = 4096;

/// Runs the target on one input.
///
/// # Panics
///
/// When a property above fails.
pub fn check(data: &[u8]) {
    let harness = Harness::get();
    let _one_at_a_time = harness
        .lock
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    crate::panicked();
    let requests_before = harness.proxy.counters().requests_total;
    let forwarded_before = harness.upstreams.forwarded.load(Ordering::SeqCst);
    let exchange = harness
        .runtime
        .block_on(async { tokio::time::timeout(DEADLINE, exchange(harness.listen, data)).await });
    let Ok(answer) = exchange else {
        panic!("no answer and no close within {DEADLINE:?}");
    };
    // What the proxy still does after the client is gone (an upstream
    // exchange it abandons) finishes before the counts are compared.
    harness.runtime.block_on(settle(&harness.proxy));
    assert!(
        !crate::panicked(),
        "a task panicked (see the message above)"
    );
    let violations = std::mem::take(
        &mut *harness
            .upstreams
            .violations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    if let Some(violation) = violations.first() {
        panic!("an upstream was forwarded a request no strict reader accepts: {violation}");
    }
    let requests = harness.proxy.counters().requests_total - requests_before;
    let forwarded = harness.upstreams.forwarded.load(Ordering::SeqCst) - forwarded_before;
    assert!(
        forwarded <= requests,
        "the upstreams read {forwarded} requests, the proxy took {requests} from the client"
    );
    if data.starts_with(H2_PREFACE) {
        // HTTP/2 with prior knowledge: the answer is frames, not HTTP/1
        // responses; what the upstreams were forwarded is checked above.
        return;
    }
    let responses = match wire::responses(&answer.bytes) {
        Ok(responses) => responses,
        // A connection reset may cut what was already sent: only what
        // arrived whole is checked.
        Err(_) if answer.reset => return,
        Err(why) => panic!(
            "the client was answered bytes that are not HTTP responses: {why}\n{:?}",
            String::from_utf8_lossy(&answer.bytes)
        ),
    };
    let from_upstream = responses
        .iter()
        .filter(|r| r.field("x-fuzz-upstream").is_some())
        .count() as u64;
    assert!(
        from_upstream <= forwarded,
        "{from_upstream} answers from upstreams that read {forwarded} requests"
    );
}

/// What opens an HTTP/2 connection (with prior knowledge), which the
/// proxy also serves.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a client read on its connection.
struct Answer {
    bytes: Vec<u8>,
    /// The connection ended with a reset rather than a close.
    reset: bool,
}

async fn exchange(proxy: SocketAddr, data: &[u8]) -> Answer {
    let mut stream = match TcpStream::connect(proxy).await {
        Ok(stream) => stream,
        Err(error) => panic!("cannot connect to the proxy: {error}"),
    };
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.split();
    let send = async {
        // The proxy may close before reading everything (after a 400):
        // what it did not read does not matter.
        let _ = write.write_all(data).await;
    };
    let receive = async {
        let mut bytes = Vec::new();
        let reset = read.read_to_end(&mut bytes).await.is_err();
        Answer { bytes, reset }
    };
    let ((), answer) = tokio::join!(send, receive);
    answer
}

/// Lets the proxy finish what it does after a client left: until no
/// connection is open, at most a second (of the paused clock).
async fn settle(proxy: &ProxyHandle) {
    for _ in 0..1000 {
        if proxy.counters().active_connections == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::task::yield_now().await;
}

/// The proxy and its upstreams, started once.
struct Harness {
    runtime: Runtime,
    listen: SocketAddr,
    proxy: ProxyHandle,
    upstreams: Arc<Upstreams>,
    lock: Mutex<()>,
}

impl Harness {
    fn get() -> &'static Harness {
        static HARNESS: OnceLock<Harness> = OnceLock::new();
        HARNESS.get_or_init(Harness::start)
    }

    fn start() -> Harness {
        crate::note_panics();
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => panic!("cannot start a runtime: {error}"),
        };
        let upstreams = Arc::new(Upstreams::default());
        let (listen, proxy) = runtime.block_on(async {
            let stable = upstreams.clone().listen("stable").await;
            let canary = upstreams.clone().listen("canary").await;
            let mut routes = Routes::stable_only(uri(stable));
            routes.canary = Some(uri(canary));
            routes.revision = Some("fuzz".into());
            routes.matches = vec![MatchRule {
                headers: vec![(
                    http::HeaderName::from_static("x-canary"),
                    StringMatch::Exact("1".into()),
                )],
                ..MatchRule::default()
            }];
            let config = ProxyConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                limits: limits(),
                access_log: None,
                trusted_proxies: Default::default(),
                tls: None,
                upstream_ca_file: None,
            };
            let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
            let proxy = match Proxy::bind(config, routes, recorder).await {
                Ok(proxy) => proxy,
                Err(error) => panic!("cannot start the proxy: {error}"),
            };
            let listen = proxy.local_addr();
            let handle = proxy.handle();
            tokio::spawn(proxy.serve(std::future::pending()));
            (listen, handle)
        });
        Harness {
            runtime,
            listen,
            proxy,
            upstreams,
            lock: Mutex::new(()),
        }
    }
}

fn uri(addr: SocketAddr) -> http::Uri {
    match format!("http://{addr}").parse() {
        Ok(uri) => uri,
        Err(error) => panic!("{addr}: {error}"),
    }
}

/// serin's defaults with short timeouts (an input waits on none for long),
/// small limits (reached by small inputs), no upstream connection kept
/// between inputs, and every connection served on the harness's runtime.
fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(1),
        response_header_timeout: Duration::from_secs(2),
        upstream_body_timeout: Duration::from_secs(2),
        client_header_timeout: Duration::from_secs(1),
        client_body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        max_header_bytes: MAX_HEADER_BYTES,
        max_request_body_bytes: Some(MAX_BODY_BYTES),
        upstream_max_idle: 0,
        shutdown_grace: Duration::from_secs(1),
        workers: Some(0),
        ..Limits::default()
    }
}

/// The upstreams: they read each request strictly, answer it, and record
/// what no strict reader would accept.
#[derive(Default)]
struct Upstreams {
    /// Requests read whole.
    forwarded: AtomicU64,
    violations: Mutex<Vec<String>>,
}

impl Upstreams {
    async fn listen(self: Arc<Self>, name: &'static str) -> SocketAddr {
        let listener = match TcpListener::bind(("127.0.0.1", 0)).await {
            Ok(listener) => listener,
            Err(error) => panic!("cannot start an upstream: {error}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(error) => panic!("{error}"),
        };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(self.clone().serve(stream, name));
            }
        });
        addr
    }

    async fn serve(self: Arc<Self>, mut stream: TcpStream, name: &'static str) {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            match wire::request(&buf) {
                Parsed::Complete(request) => {
                    self.forwarded.fetch_add(1, Ordering::SeqCst);
                    buf.drain(..request.len);
                    let answer = if request.method == "HEAD" {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-fuzz-upstream: {name}\r\n\r\n"
                        )
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-fuzz-upstream: {name}\r\n\r\nok"
                        )
                    };
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    continue;
                }
                Parsed::Invalid(why) => {
                    let mut violations = self
                        .violations
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    violations.push(format!(
                        "{why}\nforwarded to {name}: {:?}",
                        String::from_utf8_lossy(&buf[..buf.len().min(2048)])
                    ));
                    return;
                }
                Parsed::Partial => {}
            }
            match stream.read(&mut chunk).await {
                // The proxy closed: a request cut short is its way of
                // abandoning one (the client's body ended early), not
                // an ambiguity.
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}
