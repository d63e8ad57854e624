//! Real HTTP backends and a started proxy on loopback.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use serin_proxy::{Limits, Proxy, ProxyConfig, ProxyHandle, Recorder, Routes};
use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

pub type TestBody = BoxBody<Bytes, Infallible>;

/// What a backend saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A backend started in the test.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    pub fn uri(&self) -> Uri {
        must(format!("http://{}", self.addr).parse())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

pub fn must<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

pub fn full(s: impl Into<Bytes>) -> TestBody {
    Full::new(s.into()).boxed()
}

/// A backend answering every request with `f`, recording what it saw (the
/// body is read before `f` runs unless `f` takes the request itself: use
/// [`streaming_backend`] for that).
pub async fn backend<F, Fut>(f: F) -> Backend
where
    F: Fn(Seen) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let addr = serve_raw(move |req: Request<Incoming>| {
        let f = f.clone();
        let record = record.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let s = Seen {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                body,
            };
            if let Ok(mut v) = record.lock() {
                v.push(s.clone());
            }
            f(s).await
        }
    })
    .await;
    Backend { addr, seen }
}

/// A backend answering `200 <name>` with `x-backend: <name>`.
pub async fn named(name: &'static str) -> Backend {
    backend(move |_| async move {
        let mut r = Response::new(full(name));
        r.headers_mut()
            .insert("x-backend", http::HeaderValue::from_static(name));
        r
    })
    .await
}

/// Serves `f` on a fresh loopback port, HTTP/1 and HTTP/2.
pub async fn serve_raw<F, Fut>(f: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = must(TcpListener::bind("127.0.0.1:0").await);
    let addr = must(listener.local_addr());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let f = f.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let f = f.clone();
                    async move { Ok::<_, Infallible>(f(req).await) }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                // Whatever header count the proxy lets through.
                builder.http1().max_headers(8192);
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

/// A port nothing listens on.
pub async fn dead_uri() -> Uri {
    let listener = must(TcpListener::bind("127.0.0.1:0").await);
    let addr = must(listener.local_addr());
    drop(listener);
    must(format!("http://{addr}").parse())
}

/// A started proxy.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub handle: ProxyHandle,
    pub recorder: Arc<Recorder>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<serin_proxy::Result<()>>>,
}

impl TestProxy {
    pub async fn start(routes: Routes) -> TestProxy {
        Self::start_with(routes, Limits::default(), None).await
    }

    pub async fn start_with(
        routes: Routes,
        limits: Limits,
        access_log: Option<PathBuf>,
    ) -> TestProxy {
        Self::start_config(routes, |config| {
            config.limits = limits;
            config.access_log = access_log;
        })
        .await
    }

    /// Starts a proxy on a free loopback port with the configuration
    /// `configure` leaves.
    pub async fn start_config(
        routes: Routes,
        configure: impl FnOnce(&mut ProxyConfig),
    ) -> TestProxy {
        let recorder = Arc::new(Recorder::new(Duration::from_secs(600)));
        let mut config = ProxyConfig {
            listen: must("127.0.0.1:0".parse()),
            limits: Limits::default(),
            access_log: None,
            trusted_proxies: Default::default(),
            tls: None,
            upstream_ca_file: None,
        };
        configure(&mut config);
        let proxy = must(Proxy::bind(config, routes, recorder.clone()).await);
        let addr = proxy.local_addr();
        let handle = proxy.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.serve(async move {
            let _ = stopped.await;
        }));
        TestProxy {
            addr,
            handle,
            recorder,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> Uri {
        must(format!("http://{}{path}", self.addr).parse())
    }

    /// Stops accepting and waits for the proxy to finish.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            must(must(task.await));
        }
    }

    pub fn routes(&self) -> Routes {
        self.handle.routes().as_ref().clone()
    }

    pub fn set(&self, f: impl FnOnce(&mut Routes)) {
        let mut r = self.routes();
        f(&mut r);
        must(self.handle.set_routes(r));
    }
}

pub type TestClient = Client<HttpConnector, TestBody>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a GET with `headers`; returns status, headers and body text.
pub async fn get(
    client: &TestClient,
    uri: Uri,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let response = must(client.request(must(b.body(full(Bytes::new())))).await);
    let (parts, body) = response.into_parts();
    let body = must(body.collect().await).to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// A body fed from a channel: the test decides when each chunk exists.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// Sends raw bytes on a new connection and returns what came back before
/// the proxy closed it or `wait` passed.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = must(tokio::net::TcpStream::connect(addr).await);
    must(stream.write_all(bytes).await);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An upstream that speaks raw bytes: on every connection it reads a
/// request head, writes `answer`, keeps the connection open for `hold`, then
/// closes it. For answers a well-behaved server library would never send.
pub async fn raw_upstream(answer: &'static [u8], hold: Duration) -> Uri {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = must(TcpListener::bind("127.0.0.1:0").await);
    let addr = must(listener.local_addr());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
                    {
                        Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                if stream.write_all(answer).await.is_err() {
                    return;
                }
                tokio::time::sleep(hold).await;
            });
        }
    });
    must(format!("http://{addr}").parse())
}

/// Waits until `done` holds, checking every 10 ms for at most 5 s; returns
/// whether it did.
pub async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
