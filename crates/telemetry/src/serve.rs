//! A small HTTP server for `/metrics`, for `serin run --metrics ADDR`: a
//! standalone rollout Prometheus can scrape. The daemon mounts
//! [`Telemetry::response`](crate::Telemetry::response) on its own router instead.

use crate::Telemetry;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::{convert::Infallible, net::SocketAddr, time::Duration};
use tokio::net::TcpListener;

/// A connection may stay idle this long before its headers arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr} for /metrics: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// A running `/metrics` server; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

// === impl MetricsServer ===

impl MetricsServer {
    /// Where it listens (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `GET /metrics` (and `/`, which points there) on `addr`.
pub async fn serve(addr: SocketAddr, telemetry: Telemetry) -> Result<MetricsServer, ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "/metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let telemetry = telemetry.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<Incoming>| {
                    let telemetry = telemetry.clone();
                    async move { Ok::<_, Infallible>(answer(&telemetry, &request)) }
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(MetricsServer { addr, task })
}

fn answer(telemetry: &Telemetry, request: &http::Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
    }
    match request.uri().path() {
        "/metrics" => telemetry
            .response()
            .map(|body| Full::new(Bytes::from(body))),
        "/" => text(StatusCode::OK, "serin: metrics at /metrics\n"),
        _ => text(StatusCode::NOT_FOUND, "not found; metrics at /metrics\n"),
    }
}
