//! Servers the tests talk to: a small JSON endpoint and a real Prometheus.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::net::TcpListener;

/// One request the JSON endpoint received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub authorization: Option<String>,
    pub custom: Option<String>,
    pub body: String,
}

/// Answers: `(status, body, delay)` for a request path.
pub type Answer = fn(&str) -> (u16, String, Duration);

/// A JSON endpoint that records what it was asked.
pub struct JsonServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl JsonServer {
    pub async fn start(answer: Answer) -> JsonServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let log = log.clone();
                        async move {
                            let header = |name: &str| {
                                request
                                    .headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned)
                            };
                            let mut seen = Seen {
                                method: request.method().to_string(),
                                authorization: header("authorization"),
                                custom: header("x-tenant"),
                                body: String::new(),
                            };
                            let path = request.uri().path().to_owned();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            seen.body = String::from_utf8_lossy(&body).into_owned();
                            log.lock().unwrap().push(seen);
                            let (status, text, delay) = answer(&path);
                            tokio::time::sleep(delay).await;
                            let response = Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(text)))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        JsonServer { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for JsonServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real Prometheus on a loopback port, killed on drop.
pub struct Prometheus {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Debian's `prometheus` with `scrape_configs` (YAML list items;
    /// `{self}` stands for Prometheus's own address) and waits until it is ready.
    pub async fn start(scrape_configs: &str) -> Prometheus {
        Self::start_with_web_config(scrape_configs, None).await
    }

    /// Like [`start`](Self::start), with Prometheus's `--web.config.file`
    /// (TLS, basic auth). With TLS the URL is https and readiness is only
    /// "listening": the test's own queries wait for the rest.
    pub async fn start_with_web_config(
        scrape_configs: &str,
        web_config: Option<&str>,
    ) -> Prometheus {
        let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect(
                "prometheus is not installed: apt-get install -y prometheus (scripts/test.sh does)",
            );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{}",
                scrape_configs.replace("{self}", &format!("127.0.0.1:{port}"))
            ),
        )
        .unwrap();
        let mut command = Command::new(binary);
        if let Some(web) = web_config {
            let file = dir.path().join("web.yml");
            std::fs::write(&file, web).unwrap();
            command.arg(format!("--web.config.file={}", file.display()));
        }
        let tls = web_config.is_some_and(|w| w.contains("tls_server_config"));
        let child = command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let url = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
        let prometheus = Prometheus {
            url,
            child,
            _dir: dir,
        };
        // Bounded readiness loop: at most 30 s.
        for _ in 0..300 {
            let ready = if web_config.is_some() {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            } else {
                http_get_ok(port, "/-/ready").await
            };
            if ready {
                return prometheus;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus did not become ready within 30s");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free right now on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_get_ok(port: u16, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    answer.starts_with(b"HTTP/1.1 200")
}
