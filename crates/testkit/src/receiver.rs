//! A real HTTP receiver on loopback that records every request and answers
//! each path with a status the test can change while a rollout runs.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use tokio::net::TcpListener;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct State {
    statuses: HashMap<String, u16>,
    received: Vec<Received>,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            let body = Limited::new(request.into_body(), 1 << 20)
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let body =
                                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                            let status = {
                                let mut state = state.lock().unwrap();
                                state.received.push(Received {
                                    path: path.clone(),
                                    body,
                                });
                                state.statuses.get(&path).copied().unwrap_or(200)
                            };
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from(format!("answer {status}"))))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers `path` with `status` from now on (200 until set).
    pub fn answer(&self, path: &str, status: u16) {
        self.state
            .lock()
            .unwrap()
            .statuses
            .insert(path.to_owned(), status);
    }

    /// Everything received on `path`, in order.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.state
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn count(&self, path: &str) -> usize {
        self.received(path).len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
