//! A real HAProxy (Debian's `haproxy` package) on loopback, for the tests of
//! serin's HAProxy router and log receiver: the runtime API and the log
//! format are checked against the real thing, not a fake that agrees with us.
//!
//! A missing binary fails the test with the command that installs it.

use crate::ports::free_port;
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Where Debian (and a hand install) put the binary.
const BINARIES: [&str; 2] = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"];
/// Readiness is polled this often, this many times: at most 10 s.
const READY_EVERY: Duration = Duration::from_millis(50);
const READY_TRIES: u32 = 200;

/// A real HAProxy, killed on drop.
pub struct Haproxy {
    /// `127.0.0.1:port` of the runtime API (`stats socket ... level admin`).
    pub runtime_api: String,
    /// `127.0.0.1:port` of the frontend `web`.
    pub frontend: String,
    child: Child,
    binary: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

// === impl Haproxy ===

impl Haproxy {
    /// Starts HAProxy with a frontend `web` (logging to `log_to` over UDP in
    /// serin's JSON log format when given) and a backend `shop` with servers
    /// `stable` at `stable` and `canary` at `canary` (weights 100 and 0);
    /// returns once the runtime API answers.
    pub async fn start(stable: &str, canary: &str, log_to: Option<&str>) -> Haproxy {
        let binary = BINARIES
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("haproxy is not installed: apt-get install -y haproxy (scripts/test.sh does)");
        let dir = tempfile::tempdir().expect("temporary directory for haproxy");
        let (api, front) = (free_port(), free_port());
        let log = match log_to {
            Some(addr) => format!(
                "    log {addr} local0\n    log-format '{{\"ts\":%Ts.%ms,\"server\":\"%s\",\"status\":%ST,\"tr\":%Tr}}'\n"
            ),
            None => String::new(),
        };
        let config = format!(
            "global\n    stats socket ipv4@127.0.0.1:{api} level admin\n    maxconn 512\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
             frontend web\n    bind 127.0.0.1:{front}\n{log}    default_backend shop\n\
             backend shop\n    balance roundrobin\n    server stable {stable} weight 100\n    server canary {canary} weight 0\n"
        );
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, config).expect("haproxy.cfg written");
        let child = spawn(&binary, &file);
        let haproxy = Haproxy {
            runtime_api: format!("127.0.0.1:{api}"),
            frontend: format!("127.0.0.1:{front}"),
            child,
            binary,
            config: file,
            _dir: dir,
        };
        haproxy.ready().await;
        haproxy
    }

    /// Stops HAProxy (SIGKILL) and starts it again from the same
    /// configuration on the same ports: every weight and address set over
    /// the runtime API is lost, as after a reload or a crash. Returns once
    /// it listens again.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.binary, &self.config);
        self.ready().await;
    }

    /// Stops HAProxy (SIGKILL); its runtime API and frontend refuse
    /// connections until [`Self::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the runtime API and the frontend accept connections.
    async fn ready(&self) {
        for _ in 0..READY_TRIES {
            let api_up = tokio::net::TcpStream::connect(&self.runtime_api)
                .await
                .is_ok();
            let front_up = tokio::net::TcpStream::connect(&self.frontend).await.is_ok();
            if api_up && front_up {
                return;
            }
            tokio::time::sleep(READY_EVERY).await;
        }
        panic!("haproxy did not listen within 10s");
    }
}

fn spawn(binary: &std::path::Path, config: &std::path::Path) -> Child {
    Command::new(binary)
        .arg("-db")
        .arg("-f")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy")
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
