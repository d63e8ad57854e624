use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serin_loadtester::{Config, LoadTester};
use std::net::SocketAddr;

pub struct Tester {
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn start(config: Config) -> Tester {
    let tester = LoadTester::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let addr = tester.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tester.serve(async move {
        let _ = stopped.await;
    }));
    Tester { addr, _stop: stop }
}

/// A Flagger webhook payload for canary `web` with this metadata.
pub fn payload(metadata: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "name": "web", "namespace": "test", "phase": "Progressing",
        "checksum": "v2", "metadata": metadata,
    })
}

impl Tester {
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, String) {
        self.send(path, Bytes::from(serde_json::to_vec(body).unwrap()))
            .await
    }

    pub async fn send(&self, path: &str, body: Bytes) -> (u16, String) {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = http::Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}
