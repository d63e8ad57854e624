//! A real Prometheus (Debian's `prometheus` package) on loopback, for the
//! tests that check serin's PromQL queries and `/metrics` against the real
//! thing rather than a fake that agrees with us.
//!
//! A missing binary fails the test with the command that installs it;
//! skipping would let CI pass without ever having talked to Prometheus.

use crate::{http, ports::free_port};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Where Debian (and a hand install) put the binary.
const BINARIES: [&str; 2] = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"];
/// Readiness is polled this often, this many times: at most 30 s.
const READY_EVERY: Duration = Duration::from_millis(100);
const READY_TRIES: u32 = 300;

/// A real Prometheus on a loopback port, killed on drop.
pub struct Prometheus {
    /// `http://127.0.0.1:port`, or https with a TLS web config.
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

// === impl Prometheus ===

impl Prometheus {
    /// Starts Debian's `prometheus` with `scrape_configs` (YAML list items;
    /// `{self}` stands for Prometheus's own address) and waits until it is ready.
    pub async fn start(scrape_configs: &str) -> Prometheus {
        Self::start_with_web_config(scrape_configs, None).await
    }

    /// Like [`start`](Self::start), with Prometheus's `--web.config.file`
    /// (TLS, basic auth). With a web config readiness is only "listening"
    /// (`/-/ready` may need credentials or TLS): the test's own queries wait
    /// for the rest.
    pub async fn start_with_web_config(
        scrape_configs: &str,
        web_config: Option<&str>,
    ) -> Prometheus {
        let binary = BINARIES
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect(
                "prometheus is not installed: apt-get install -y prometheus (scripts/test.sh does)",
            );
        let dir = tempfile::tempdir().expect("temporary directory for prometheus");
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{}",
                scrape_configs.replace("{self}", &format!("127.0.0.1:{port}"))
            ),
        )
        .expect("prometheus.yml written");
        let mut command = Command::new(binary);
        if let Some(web) = web_config {
            let file = dir.path().join("web.yml");
            std::fs::write(&file, web).expect("web.yml written");
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
        // Built before waiting, so a panic below still kills the child.
        let prometheus = Prometheus {
            url,
            child,
            _dir: dir,
        };
        for _ in 0..READY_TRIES {
            let ready = if web_config.is_some() {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            } else {
                http::get(port, "/-/ready")
                    .await
                    .is_some_and(|answer| answer.starts_with("HTTP/1.1 200"))
            };
            if ready {
                return prometheus;
            }
            tokio::time::sleep(READY_EVERY).await;
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
