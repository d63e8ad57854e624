//! nginx as a [`Router`]: serin owns one `upstream NAME { ... }` block in a
//! file nginx includes (`spec.nginx.configFile`), rewrites it for every
//! change and runs `spec.nginx.reloadCommand` (an argv, never a shell).
//!
//! nginx has no `weight=0`: a version without traffic is left out of the
//! block, and the block always holds at least one server, so every file
//! serin writes passes `nginx -t`. Files are written atomically (a temporary
//! file in the same directory, then a rename); when the reload fails the
//! previous file is put back and the error names the command and its
//! stderr, so the runtime keeps the route pending and retries it.

use crate::{
    desired::{Balancer, DesiredCell, Steered},
    syslog::{Dropped, LogFormat, LoggedRequest},
};
use serin_rollout::ports::{BoxFuture, PortError};
use serin_spec::NginxSpec;
use serin_stats::Version;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// How long the reload command may run: `nginx -s reload` parses the
/// configuration and signals the master, which takes well under a second.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of the reload command's stderr an error quotes.
const MAX_STDERR_CHARS: usize = 600;
/// nginx's weights for the percentages serin sets (1..=99 when both serve).
const FULL_WEIGHT: u8 = 100;

/// The upstream serin wants nginx to hold.
type Desired = crate::desired::Desired<SocketAddr>;

/// The addresses of both versions as the router last set them, shared with
/// the log receiver: nginx logs `$upstream_addr`, and this tells which
/// version that is.
pub type VersionAddrs = DesiredCell<SocketAddr>;

// === impl VersionAddrs ===

impl DesiredCell<SocketAddr> {
    /// The version served from `addr` (`IP:port` as nginx logs it), if any.
    /// The canary is checked first: after a promotion both are the same.
    pub fn version_of(&self, addr: &str) -> Option<Version> {
        let addr: SocketAddr = addr.trim().parse().ok()?;
        let desired = self.get();
        if desired.canary == Some(addr) {
            Some(Version::Canary)
        } else if desired.stable == addr {
            Some(Version::Stable)
        } else {
            None
        }
    }
}

/// nginx's access log in serin's format
/// (`{"ts":$msec,"upstream":"$upstream_addr","status":$status,"request_time":$request_time}`
/// with `escape=json`), versions told apart by the address nginx connected
/// to, as the router last set them.
#[derive(Clone, Debug)]
pub struct NginxFormat(pub Arc<VersionAddrs>);

#[derive(serde::Deserialize)]
struct NginxMessage {
    #[allow(dead_code)] // Checked for presence: a line without it is not ours.
    ts: f64,
    upstream: String,
    status: i64,
    request_time: f64,
}

impl LogFormat for NginxFormat {
    fn request(&self, message: &str) -> Result<LoggedRequest, Dropped> {
        let message: NginxMessage = serde_json::from_str(message).map_err(|_| Dropped::Message)?;
        let status = u16::try_from(message.status)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or(Dropped::Message)?;
        // `$upstream_addr` lists every server tried (`a, b`), and those of
        // internal redirects (`a : b`); the last one gave the answer.
        let served_by = message
            .upstream
            .rsplit([',', ' '])
            .find(|part| !part.is_empty() && *part != ":")
            .unwrap_or_default();
        let version = self.0.version_of(served_by).ok_or(Dropped::ForeignServer)?;
        let latency = Duration::try_from_secs_f64(message.request_time).unwrap_or_default();
        Ok(LoggedRequest {
            version,
            status,
            latency,
        })
    }
}

/// The file serin writes for the upstream `upstream` with `stable` and
/// `canary` at `canary_weight` (for `serin render`: the router writes the
/// same text).
pub fn file_at(
    upstream: &str,
    stable: SocketAddr,
    canary: Option<SocketAddr>,
    canary_weight: u8,
) -> String {
    render(
        upstream,
        &Desired {
            stable,
            canary,
            canary_weight,
        },
    )
}

/// The text of the upstream block for `desired`: only servers with traffic,
/// at least one.
fn render(upstream: &str, desired: &Desired) -> String {
    let weight = desired.canary_weight.min(FULL_WEIGHT);
    let mut servers = Vec::new();
    match desired.canary {
        Some(canary) if canary == desired.stable => servers.push((canary, FULL_WEIGHT)),
        Some(canary) if weight > 0 => {
            if weight < FULL_WEIGHT {
                servers.push((desired.stable, FULL_WEIGHT - weight));
            }
            servers.push((canary, weight));
        }
        _ => servers.push((desired.stable, FULL_WEIGHT)),
    }
    let mut text = format!(
        "# Written by serin: the upstream of a canary, rewritten at every weight change.\n\
         # Edits are overwritten; a version without traffic is left out (nginx has no weight=0).\n\
         upstream {upstream} {{\n"
    );
    for (addr, weight) in servers {
        text.push_str(&format!("    server {addr} weight={weight};\n"));
    }
    text.push_str("}\n");
    text
}

/// nginx behind the [`Router`](serin_rollout::ports::Router) port: the
/// desired state ([`Steered`]) over the upstream file serin owns.
pub type NginxRouter = Steered<NginxUpstream>;

/// The upstream block serin owns: its name, the file it is written to,
/// and the command that makes nginx read it.
#[derive(Debug)]
pub struct NginxUpstream {
    upstream: String,
    config_file: PathBuf,
    reload: Vec<String>,
    /// Whether nginx was reloaded since serin started: the first sync
    /// reloads even when the file already reads as desired (nginx may not
    /// have read it yet).
    reloaded: AtomicBool,
}

// === impl NginxRouter ===

impl NginxRouter {
    /// A router for the canary's `spec.nginx`, everything on `stable`
    /// (`spec.upstreams.stable`). Validation checked both; should one be
    /// wrong anyway it is refused here, never guessed.
    pub fn new(spec: &NginxSpec, stable: &str) -> Result<Self, PortError> {
        let refused = |message: String| PortError::Refused {
            system: "nginx".into(),
            message,
        };
        let stable = serin_spec::nginx::server_addr(stable)
            .map_err(|e| refused(format!("spec.upstreams.stable: {e}")))?;
        let reload = spec.reload_argv();
        if reload.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(refused("spec.nginx.reloadCommand: names no program".into()));
        }
        if spec.config_file.trim().is_empty() {
            return Err(refused("spec.nginx.configFile: required".into()));
        }
        let upstream = NginxUpstream {
            upstream: spec.upstream.clone(),
            config_file: PathBuf::from(spec.config_file.trim()),
            reload,
            reloaded: AtomicBool::new(false),
        };
        Ok(Steered::new_with(upstream, stable))
    }

    /// The versions' addresses, for the log receiver.
    pub fn version_addrs(&self) -> Arc<VersionAddrs> {
        self.desired_cell()
    }

    /// The file serin writes.
    pub fn config_file(&self) -> &Path {
        &self.balancer().config_file
    }

    /// The upstream block as serin would write it now.
    pub fn rendered(&self) -> String {
        render(&self.balancer().upstream, &self.desired())
    }
}

// === impl NginxUpstream ===

impl NginxUpstream {
    /// Writes the block for `desired` and reloads, unless the file already
    /// holds it (and nginx was reloaded since serin started). When the
    /// write or the reload fails the previous file stays in place.
    async fn write(&self, desired: &Desired) -> Result<Option<String>, PortError> {
        let text = render(&self.upstream, desired);
        let previous = match tokio::fs::read(&self.config_file).await {
            Ok(bytes) => Some(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(self.file_error(&error)),
        };
        let held = previous.as_deref() == Some(text.as_bytes());
        if held && self.reloaded.load(Ordering::Acquire) {
            return Ok(None);
        }
        if !held {
            write_atomically(&self.config_file, text.as_bytes())
                .await
                .map_err(|error| self.file_error(&error))?;
        }
        if let Err(error) = self.run_reload().await {
            let restored = match &previous {
                Some(bytes) if !held => write_atomically(&self.config_file, bytes).await,
                Some(_) => Ok(()),
                None => tokio::fs::remove_file(&self.config_file).await,
            };
            if let Err(restore) = restored {
                tracing::error!(file = %self.config_file.display(), error = %restore, "could not restore the previous nginx upstream file");
            }
            return Err(error);
        }
        self.reloaded.store(true, Ordering::Release);
        Ok((!held).then(|| {
            let servers = |text: &str| {
                text.lines()
                    .filter_map(|l| l.trim().strip_prefix("server "))
                    .map(|l| l.trim_end_matches(';'))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let before = previous.as_deref().map(String::from_utf8_lossy);
            match before {
                Some(before) => format!(
                    "{} held [{}], rewritten to [{}] and reloaded",
                    self.config_file.display(),
                    servers(&before),
                    servers(&text)
                ),
                None => format!(
                    "{} was missing, written with [{}] and reloaded",
                    self.config_file.display(),
                    servers(&text)
                ),
            }
        }))
    }

    fn file_error(&self, error: &std::io::Error) -> PortError {
        PortError::Unavailable {
            system: format!("nginx upstream file {}", self.config_file.display()),
            message: error.to_string(),
        }
    }

    /// Runs the reload argv, bounded in time; its failure names the command
    /// and quotes its stderr.
    async fn run_reload(&self) -> Result<(), PortError> {
        let shown = self.reload.join(" ");
        let system = || format!("nginx reload `{shown}`");
        let Some((program, args)) = self.reload.split_first() else {
            return Err(PortError::Refused {
                system: system(),
                message: "no program".into(),
            });
        };
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| PortError::Unavailable {
                system: system(),
                message: error.to_string(),
            })?;
        let output = match tokio::time::timeout(RELOAD_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => {
                return Err(PortError::Unavailable {
                    system: system(),
                    message: error.to_string(),
                });
            }
            Err(_) => {
                return Err(PortError::Timeout {
                    system: system(),
                    after: RELOAD_TIMEOUT,
                });
            }
        };
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: String = stderr.trim().chars().take(MAX_STDERR_CHARS).collect();
        Err(PortError::Refused {
            system: system(),
            message: format!(
                "{} (the previous upstream file is back in place): {stderr}",
                output.status
            ),
        })
    }
}

/// Writes `bytes` to a temporary file in `path`'s directory, then renames it
/// over `path`: nginx (or a reader) sees the old file or the new one, whole.
async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let mut temporary = name.to_owned();
    temporary.push(format!(".serin-{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let result = async {
        let mut file = tokio::fs::File::create(&temporary).await?;
        tokio::io::AsyncWriteExt::write_all(&mut file, bytes).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temporary, path).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temporary).await;
    }
    result
}

impl Balancer for NginxUpstream {
    type Addr = SocketAddr;

    fn name(&self) -> &str {
        "nginx"
    }

    fn canary_addr(&self, address: &str) -> Result<SocketAddr, PortError> {
        serin_spec::nginx::server_addr(address).map_err(|message| PortError::Refused {
            system: "nginx".into(),
            message: format!("canary {message}"),
        })
    }

    fn sync<'a>(
        &'a self,
        desired: &'a Desired,
    ) -> BoxFuture<'a, Result<Option<String>, PortError>> {
        Box::pin(self.write(desired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    fn servers(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("server "))
            .collect()
    }

    #[test]
    fn weight_zero_leaves_the_version_out_and_one_server_stays() {
        let stable = addr("127.0.0.1:9001");
        let canary = addr("127.0.0.1:9002");
        let at = |canary_addr, canary_weight| {
            render(
                "shop",
                &Desired {
                    stable,
                    canary: canary_addr,
                    canary_weight,
                },
            )
        };
        assert_eq!(servers(&at(None, 0)), ["127.0.0.1:9001 weight=100;"]);
        assert_eq!(
            servers(&at(Some(canary), 0)),
            ["127.0.0.1:9001 weight=100;"]
        );
        assert_eq!(
            servers(&at(Some(canary), 10)),
            ["127.0.0.1:9001 weight=90;", "127.0.0.1:9002 weight=10;"]
        );
        assert_eq!(
            servers(&at(Some(canary), 100)),
            ["127.0.0.1:9002 weight=100;"]
        );
        assert_eq!(
            servers(&at(Some(stable), 50)),
            ["127.0.0.1:9001 weight=100;"]
        );
        assert!(at(None, 0).contains("upstream shop {\n"));
    }

    #[test]
    fn versions_are_told_apart_by_address() {
        let spec = NginxSpec {
            upstream: "shop".into(),
            config_file: "/tmp/x.conf".into(),
            reload_command: None,
            log_listen: "127.0.0.1:5140".into(),
        };
        let router = NginxRouter::new(&spec, "127.0.0.1:9001").expect("valid");
        let addrs = router.version_addrs();
        addrs.update(|desired| desired.canary = Some(addr("127.0.0.1:9002")));
        assert_eq!(addrs.version_of("127.0.0.1:9001"), Some(Version::Stable));
        assert_eq!(addrs.version_of("127.0.0.1:9002"), Some(Version::Canary));
        assert_eq!(addrs.version_of("127.0.0.1:9003"), None);
        assert_eq!(addrs.version_of("-"), None);

        let format = NginxFormat(addrs);
        let line = |upstream: &str, status: u16| {
            format!(
                r#"{{"ts":1764150000.123,"upstream":"{upstream}","status":{status},"request_time":0.250}}"#
            )
        };
        assert_eq!(
            format.request(&line("127.0.0.1:9002", 503)),
            Ok(LoggedRequest {
                version: Version::Canary,
                status: 503,
                latency: Duration::from_millis(250),
            })
        );
        assert_eq!(
            format
                .request(&line("127.0.0.1:9002, 127.0.0.1:9001", 200))
                .map(|r| r.version),
            Ok(Version::Stable)
        );
        assert_eq!(
            format
                .request(&line("127.0.0.1:9003 : 127.0.0.1:9002", 200))
                .map(|r| r.version),
            Ok(Version::Canary)
        );
        assert_eq!(format.request(&line("", 404)), Err(Dropped::ForeignServer));
        assert_eq!(format.request("GET / 200"), Err(Dropped::Message));
        assert_eq!(
            format.request(&line("127.0.0.1:9001", 0)),
            Err(Dropped::Message)
        );
    }
}
