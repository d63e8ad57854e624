//! Sample HTTP backends whose failure rate and latency are set by the caller,
//! so a demo or a test can stand up a healthy stable and a faulty canary.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;

/// How a sample backend behaves.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Text returned in every successful body, e.g. `stable v1`.
    pub name: String,
    /// Probability (0.0..=1.0) that a request is answered with 500.
    pub error_rate: f64,
    /// Typical latency added before answering.
    pub latency: Duration,
    /// Extra latency drawn uniformly from 0..=jitter.
    pub jitter: Duration,
}

// === impl Behaviour ===

impl Behaviour {
    /// A healthy backend: no errors, a few milliseconds of latency.
    pub fn healthy(name: impl Into<String>) -> Self {
        Behaviour {
            name: name.into(),
            error_rate: 0.0,
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(10),
        }
    }

    /// The latency of one request.
    fn draw_latency(&self) -> Duration {
        let jitter_us = u64::try_from(self.jitter.as_micros()).unwrap_or(u64::MAX);
        // Saturating: a caller's `Duration::MAX` means "never answer", not a panic.
        self.latency
            .saturating_add(Duration::from_micros(fastrand::u64(0..=jitter_us)))
    }
}

/// A running sample backend.
#[derive(Debug)]
pub struct Backend {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

// === impl Backend ===

impl Backend {
    /// Binds `addr` (use port 0 for any) and serves until dropped.
    pub async fn start(addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<Backend> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let behaviour = Arc::new(behaviour);
        let task = tokio::spawn(serve(listener, behaviour, std::future::pending()));
        Ok(Backend { addr, task })
    }

    /// Where the backend listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The backend's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    listener: TcpListener,
    behaviour: Arc<Behaviour>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let behaviour = behaviour.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(behaviour.clone(), request));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Clients hanging up mid-request are normal for a load test.
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    behaviour: Arc<Behaviour>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    tokio::time::sleep(behaviour.draw_latency()).await;
    let fail = behaviour.error_rate > 0.0 && fastrand::f64() < behaviour.error_rate;
    let (status, body) = if fail {
        (
            500,
            format!("{} failed {}\n", behaviour.name, request.uri().path()),
        )
    } else {
        (200, format!("hello from {}\n", behaviour.name))
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_latencies_saturate() {
        let behaviour = Behaviour {
            latency: Duration::MAX,
            jitter: Duration::from_millis(10),
            ..Behaviour::healthy("slow")
        };
        assert_eq!(behaviour.draw_latency(), Duration::MAX);
    }
}
