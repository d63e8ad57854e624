//! A real nginx (Debian's `nginx-light` or `nginx`) on loopback, for the
//! tests of serin's nginx router and log receiver. It runs in the
//! foreground (`daemon off;`) with everything (configuration, pid file,
//! error log, temporary paths) in its own temporary directory, never
//! `/etc/nginx`, and is killed on drop.
//!
//! A missing binary fails the test with the command that installs it.

use crate::ports::free_port;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Where Debian (and a hand install) put the binary.
const BINARIES: [&str; 2] = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"];
/// Readiness is polled this often, this many times: at most 10 s.
const READY_EVERY: Duration = Duration::from_millis(50);
const READY_TRIES: u32 = 200;

/// serin's access log format, as the brief gives it.
pub const LOG_FORMAT: &str = r#"log_format serin escape=json '{"ts":$msec,"upstream":"$upstream_addr","status":$status,"request_time":$request_time}';"#;

/// A real nginx, killed on drop.
pub struct Nginx {
    /// `127.0.0.1:port` of the server that proxies to upstream `shop`.
    pub frontend: String,
    /// The upstream file serin owns (`include`d in `http`).
    pub upstream_file: PathBuf,
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
}

// === impl Nginx ===

impl Nginx {
    /// Starts nginx with `upstream shop` from `upstream_file` (a file in the
    /// temporary directory holding one server, `stable`), a server proxying
    /// every request to it, and the access log sent to `log_to` over UDP
    /// syslog in serin's format when given; returns once it listens.
    pub async fn start(stable: &str, log_to: Option<&str>) -> Nginx {
        let binary = BINARIES
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect(
                "nginx is not installed: apt-get install -y nginx-light (scripts/test.sh does)",
            );
        let dir = tempfile::tempdir().expect("temporary directory for nginx");
        let root = dir.path();
        std::fs::create_dir_all(root.join("serin")).expect("serin's directory");
        std::fs::create_dir_all(root.join("tmp")).expect("nginx's temporary directory");
        let upstream_file = root.join("serin").join("shop.conf");
        std::fs::write(
            &upstream_file,
            format!("upstream shop {{\n    server {stable};\n}}\n"),
        )
        .expect("upstream file written");
        let port = free_port();
        let access_log = match log_to {
            Some(addr) => format!("access_log syslog:server={addr},tag=serin serin;"),
            None => "access_log off;".to_owned(),
        };
        let r = root.display();
        let config = format!(
            "daemon off;\nworker_processes 1;\npid {r}/nginx.pid;\nerror_log {r}/error.log notice;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             client_body_temp_path {r}/tmp/client;\nproxy_temp_path {r}/tmp/proxy;\n\
             fastcgi_temp_path {r}/tmp/fastcgi;\nuwsgi_temp_path {r}/tmp/uwsgi;\nscgi_temp_path {r}/tmp/scgi;\n\
             {LOG_FORMAT}\n{access_log}\n\
             include {upstream};\n\
             server {{\n  listen 127.0.0.1:{port};\n  location / {{ proxy_pass http://shop; proxy_next_upstream off; }}\n}}\n\
             }}\n",
            upstream = upstream_file.display(),
        );
        std::fs::write(root.join("nginx.conf"), config).expect("nginx.conf written");
        let child = Command::new(&binary)
            .args(Self::base_args(root))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx {
            frontend: format!("127.0.0.1:{port}"),
            upstream_file,
            binary,
            dir,
            child,
        };
        for _ in 0..READY_TRIES {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return nginx;
            }
            tokio::time::sleep(READY_EVERY).await;
        }
        let log = std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default();
        panic!("nginx did not listen within 10s: {log}");
    }

    fn base_args(root: &Path) -> Vec<String> {
        let r = root.display();
        vec![
            "-p".into(),
            format!("{r}/"),
            "-c".into(),
            format!("{r}/nginx.conf"),
            "-e".into(),
            format!("{r}/error.log"),
        ]
    }

    /// The argv of this nginx with `extra` flags (e.g. `["-s", "reload"]`).
    pub fn argv(&self, extra: &[&str]) -> Vec<String> {
        let mut argv = vec![self.binary.display().to_string()];
        argv.extend(Self::base_args(self.dir.path()));
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        argv
    }

    /// Runs `nginx -t` on the whole configuration: `Ok` or its stderr.
    pub fn test_config(&self) -> Result<(), String> {
        let argv = self.argv(&["-t"]);
        let output = Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .expect("run nginx -t");
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// The error log so far, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // `-s stop` (SIGTERM to the master) takes the workers down with it;
        // a SIGKILL would leave them behind. Then at most 5 s, then kill.
        let argv = self.argv(&["-s", "stop"]);
        let _ = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(READY_EVERY);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
