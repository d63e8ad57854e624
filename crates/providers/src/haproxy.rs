//! HAProxy as a [`Router`]: serin sets the address and weight of two server
//! lines of one backend over HAProxy's runtime API, on every instance of a
//! fleet, and reads them back (`show servers state`) so that what HAProxy
//! serves is checked, not assumed.
//!
//! Every operation states the whole desired backend (stable address, canary
//! address, the two weights) and brings each instance to it: it reads the
//! instance's state, sends only the commands that differ, and reads again to
//! verify. So an operation is idempotent, repairs drift (a reload that put
//! the configuration's weights back, an operator's command), and an instance
//! that fails is named in the error while the runtime keeps the route pending
//! and retries it; nothing is half-applied silently.

use crate::desired::{Balancer, Steered};
use serin_rollout::ports::{BoxFuture, PortError};
use serin_spec::{HaproxySpec, RuntimeApiAddr};
use std::{net::SocketAddr, time::Duration};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long one runtime API command may take, connection included: the API
/// answers from memory, so a slower answer means a stuck instance.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer read from the runtime API; `show servers state` of one
/// backend is a few hundred bytes a server.
const MAX_ANSWER_BYTES: u64 = 1 << 20;
/// Admin state bits that keep a server from taking traffic and that `set
/// server ... state ready` clears: forced maintenance (0x01) and forced
/// drain (0x08).
const FORCED_OFF: u32 = 0x01 | 0x08;
/// HAProxy's full weight for the percentages serin sets (its scale is 0..256).
const FULL_WEIGHT: u32 = 100;

/// Why an answer of the runtime API could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// `show servers state` did not start with its format version line.
    #[error("not a `show servers state` answer: {0:?}")]
    NotState(String),
    /// The header line lacks a column serin reads.
    #[error("`show servers state` has no column {0}")]
    MissingColumn(&'static str),
    /// A row's field is not what its column holds.
    #[error("server {server:?}: column {column} is {value:?}")]
    BadField {
        /// The server's name.
        server: String,
        /// The column.
        column: &'static str,
        /// What it held.
        value: String,
    },
}

/// One server line as HAProxy reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerState {
    /// `srv_name`.
    pub name: String,
    /// `srv_addr`: the IP address.
    pub addr: String,
    /// `srv_port`.
    pub port: u16,
    /// `srv_uweight`: the weight set by the configuration or the API.
    pub weight: u32,
    /// `srv_admin_state`: maintenance and drain bits.
    pub admin: u32,
}

// === impl ServerState ===

impl ServerState {
    /// Whether the server is at `addr`.
    fn is_at(&self, addr: SocketAddr) -> bool {
        self.port == addr.port()
            && self
                .addr
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip == addr.ip())
    }
}

/// Parses `show servers state BACKEND` (format 1): the version line, a `#`
/// header naming the columns, one row per server. Columns are found by name,
/// so versions that add columns read alike.
pub fn parse_servers_state(text: &str) -> Result<Vec<ServerState>, StateError> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("1") {
        return Err(StateError::NotState(text.chars().take(120).collect()));
    }
    let header: Vec<&str> = match lines.next() {
        Some(header) if header.starts_with('#') => header[1..].split_whitespace().collect(),
        _ => return Err(StateError::NotState(text.chars().take(120).collect())),
    };
    let column = |name: &'static str| {
        header
            .iter()
            .position(|c| *c == name)
            .ok_or(StateError::MissingColumn(name))
    };
    let (name, addr, port, weight, admin) = (
        column("srv_name")?,
        column("srv_addr")?,
        column("srv_port")?,
        column("srv_uweight")?,
        column("srv_admin_state")?,
    );
    let mut servers = Vec::new();
    for line in lines.filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let field = |index: usize| fields.get(index).copied().unwrap_or_default();
        let server = field(name).to_owned();
        let number = |index: usize, column: &'static str| {
            field(index)
                .parse::<u32>()
                .map_err(|_| StateError::BadField {
                    server: server.clone(),
                    column,
                    value: field(index).to_owned(),
                })
        };
        let port_value = number(port, "srv_port")?;
        servers.push(ServerState {
            addr: field(addr).to_owned(),
            port: u16::try_from(port_value).map_err(|_| StateError::BadField {
                server: server.clone(),
                column: "srv_port",
                value: port_value.to_string(),
            })?,
            weight: number(weight, "srv_uweight")?,
            admin: number(admin, "srv_admin_state")?,
            name: server,
        });
    }
    Ok(servers)
}

/// Sends one command to one instance's runtime API and returns its answer:
/// one connection per command (HAProxy answers and closes), bounded in time
/// and size.
pub async fn command(addr: &RuntimeApiAddr, line: &str) -> Result<String, PortError> {
    let system = || format!("haproxy runtime API at {addr}");
    let exchange = async {
        match addr {
            RuntimeApiAddr::Tcp(host_port) => {
                let stream = tokio::net::TcpStream::connect(host_port.as_str()).await?;
                exchange(stream, line).await
            }
            RuntimeApiAddr::Unix(path) => {
                #[cfg(unix)]
                {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    exchange(stream, line).await
                }
                #[cfg(not(unix))]
                {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        format!("unix sockets are not supported here: {}", path.display()),
                    ))
                }
            }
        }
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err(PortError::Unavailable {
            system: system(),
            message: error.to_string(),
        }),
        Err(_) => Err(PortError::Timeout {
            system: system(),
            after: COMMAND_TIMEOUT,
        }),
    }
}

async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    line: &str,
) -> std::io::Result<String> {
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut answer)
        .await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The backend serin wants every instance to hold.
type Desired = crate::desired::Desired<SocketAddr>;

/// HAProxy behind the [`Router`](serin_rollout::ports::Router) port: the
/// desired state ([`Steered`]) over a fleet of instances.
pub type HaproxyRouter = Steered<HaproxyFleet>;

/// Every HAProxy instance of a fleet, and the backend and servers serin
/// sets on each.
#[derive(Debug)]
pub struct HaproxyFleet {
    instances: Vec<RuntimeApiAddr>,
    backend: String,
    stable_server: String,
    canary_server: String,
}

// === impl HaproxyRouter ===

impl HaproxyRouter {
    /// A router for the canary's `spec.haproxy`, everything on `stable`
    /// (`spec.upstreams.stable`). Validation checked both; should one be
    /// wrong anyway it is refused here, never guessed.
    pub fn new(spec: &HaproxySpec, stable: &str) -> Result<Self, PortError> {
        let refused = |message: String| PortError::Refused {
            system: "haproxy".into(),
            message,
        };
        let instances = spec
            .runtime_api
            .iter()
            .map(|addr| {
                RuntimeApiAddr::parse(addr)
                    .map_err(|e| refused(format!("spec.haproxy.runtimeApi: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if instances.is_empty() {
            return Err(refused("spec.haproxy.runtimeApi: no instance".into()));
        }
        let stable = serin_spec::haproxy::server_addr(stable)
            .map_err(|e| refused(format!("spec.upstreams.stable: {e}")))?;
        let fleet = HaproxyFleet {
            instances,
            backend: spec.backend.clone(),
            stable_server: spec.servers.stable.clone(),
            canary_server: spec.servers.canary.clone(),
        };
        Ok(Steered::new_with(fleet, stable))
    }

    /// The server lines of the backend on one instance, as HAProxy reports them.
    pub async fn servers_state(
        &self,
        instance: &RuntimeApiAddr,
    ) -> Result<Vec<ServerState>, PortError> {
        self.balancer().servers_state(instance).await
    }
}

// === impl HaproxyFleet ===

impl HaproxyFleet {
    /// The server lines of the backend on one instance, as HAProxy reports them.
    pub async fn servers_state(
        &self,
        instance: &RuntimeApiAddr,
    ) -> Result<Vec<ServerState>, PortError> {
        let answer = command(instance, &format!("show servers state {}", self.backend)).await?;
        parse_servers_state(&answer).map_err(|error| PortError::Refused {
            system: format!("haproxy runtime API at {instance}"),
            message: format!("backend {}: {error}: {}", self.backend, shorten(&answer)),
        })
    }

    /// Every instance, in order; all are tried even after a failure, and the
    /// error names each instance that failed. Says which instances were
    /// not in step and what was sent to each.
    async fn sync_all(&self, desired: &Desired) -> Result<Option<String>, PortError> {
        let mut failures = Vec::new();
        let mut timeout = None;
        let mut sent = Vec::new();
        for instance in &self.instances {
            match self.sync_one(instance, desired).await {
                Ok(commands) if commands.is_empty() => {}
                Ok(commands) => sent.push(format!("{instance}: {}", commands.join(", "))),
                Err(error) => {
                    tracing::warn!(%instance, %error, "haproxy instance not in step");
                    if let PortError::Timeout { after, .. } = &error {
                        timeout = Some(*after);
                    }
                    failures.push(error.to_string());
                }
            }
        }
        match (failures.len(), timeout) {
            (0, _) => Ok((!sent.is_empty()).then(|| sent.join("; "))),
            (1, Some(after)) => Err(PortError::Timeout {
                system: self.instances_failed(&failures),
                after,
            }),
            _ => Err(PortError::Unavailable {
                system: self.instances_failed(&failures),
                message: failures.join("; "),
            }),
        }
    }

    fn instances_failed(&self, failures: &[String]) -> String {
        format!(
            "haproxy backend {} ({} of {} instances failed)",
            self.backend,
            failures.len(),
            self.instances.len()
        )
    }

    /// Reads one instance, sends the commands that differ, reads again;
    /// returns the commands sent.
    async fn sync_one(
        &self,
        instance: &RuntimeApiAddr,
        desired: &Desired,
    ) -> Result<Vec<String>, PortError> {
        let before = self.servers_state(instance).await?;
        let commands = self.commands_for(instance, &before, desired)?;
        if commands.is_empty() {
            return Ok(commands);
        }
        let mut answers = Vec::new();
        for line in &commands {
            let answer = command(instance, line).await?;
            let answer = answer.trim();
            if !answer.is_empty() {
                answers.push(format!("{line}: {}", shorten(answer)));
            }
        }
        let after = self.servers_state(instance).await?;
        let left = self.commands_for(instance, &after, desired)?;
        if left.is_empty() {
            Ok(commands)
        } else {
            Err(PortError::Refused {
                system: format!("haproxy runtime API at {instance}"),
                message: format!(
                    "backend {} still differs after {:?} (answers: {})",
                    self.backend,
                    left,
                    if answers.is_empty() {
                        "none".to_owned()
                    } else {
                        answers.join("; ")
                    }
                ),
            })
        }
    }

    /// The commands that bring `state` to `desired` (empty: in step).
    fn commands_for(
        &self,
        instance: &RuntimeApiAddr,
        state: &[ServerState],
        desired: &Desired,
    ) -> Result<Vec<String>, PortError> {
        let find = |name: &str| {
            state
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| PortError::Refused {
                    system: format!("haproxy runtime API at {instance}"),
                    message: format!("backend {} has no server {name:?}", self.backend),
                })
        };
        let (stable, canary) = (find(&self.stable_server)?, find(&self.canary_server)?);
        let canary_weight = if desired.canary.is_some() {
            u32::from(desired.canary_weight.min(100))
        } else {
            0
        };
        let server = |name: &str| format!("{}/{name}", self.backend);
        let mut commands = Vec::new();
        if !stable.is_at(desired.stable) {
            commands.push(set_addr(&server(&self.stable_server), desired.stable));
        }
        if stable.admin & FORCED_OFF != 0 && canary_weight < FULL_WEIGHT {
            commands.push(format!(
                "set server {} state ready",
                server(&self.stable_server)
            ));
        }
        if stable.weight != FULL_WEIGHT - canary_weight {
            commands.push(format!(
                "set server {} weight {}",
                server(&self.stable_server),
                FULL_WEIGHT - canary_weight
            ));
        }
        if let Some(addr) = desired.canary {
            if !canary.is_at(addr) {
                commands.push(set_addr(&server(&self.canary_server), addr));
            }
            if canary.admin & FORCED_OFF != 0 {
                commands.push(format!(
                    "set server {} state ready",
                    server(&self.canary_server)
                ));
            }
        }
        if canary.weight != canary_weight {
            commands.push(format!(
                "set server {} weight {canary_weight}",
                server(&self.canary_server)
            ));
        }
        Ok(commands)
    }
}

/// The runtime API commands that set a backend in any state to `stable`
/// and `canary` at `canary_weight`: every command the router would send to
/// a fresh instance, built by the code that builds the router's (for
/// `serin render`).
pub fn commands_at(
    spec: &HaproxySpec,
    stable: SocketAddr,
    canary: Option<SocketAddr>,
    canary_weight: u8,
) -> Result<Vec<String>, PortError> {
    let router = HaproxyRouter::new(spec, &stable.to_string())?;
    let fleet = router.balancer();
    let desired = Desired {
        stable,
        canary,
        canary_weight,
    };
    // A state that matches nothing: no address, a weight HAProxy cannot
    // hold, not forced off. Every setting then gets its command.
    let unknown = |name: &str| ServerState {
        name: name.to_owned(),
        addr: String::new(),
        port: 0,
        weight: u32::MAX,
        admin: 0,
    };
    let state = [unknown(&fleet.stable_server), unknown(&fleet.canary_server)];
    let instance = fleet
        .instances
        .first()
        .cloned()
        .unwrap_or_else(|| RuntimeApiAddr::Tcp(String::new()));
    fleet.commands_for(&instance, &state, &desired)
}

fn set_addr(server: &str, addr: SocketAddr) -> String {
    format!(
        "set server {server} addr {} port {}",
        addr.ip(),
        addr.port()
    )
}

/// An answer on one line, at most 200 characters, for error messages.
fn shorten(answer: &str) -> String {
    let line = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(200).collect()
}

impl Balancer for HaproxyFleet {
    type Addr = SocketAddr;

    fn name(&self) -> &str {
        "haproxy"
    }

    fn canary_addr(&self, address: &str) -> Result<SocketAddr, PortError> {
        serin_spec::haproxy::server_addr(address).map_err(|message| PortError::Refused {
            system: "haproxy".into(),
            message: format!("canary {message}"),
        })
    }

    fn sync<'a>(
        &'a self,
        desired: &'a Desired,
    ) -> BoxFuture<'a, Result<Option<String>, PortError>> {
        Box::pin(self.sync_all(desired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 shop 1 stable 127.0.0.1 2 0 100 100 12 1 0 0 0 0 0 0 - 9001 - 0 0 - - 0\n3 shop 2 canary 127.0.0.1 2 1 0 100 12 1 0 0 0 0 0 0 - 9002 - 0 0 - - 0\n";

    fn router() -> HaproxyRouter {
        let spec = HaproxySpec {
            runtime_api: vec!["127.0.0.1:1".into()],
            backend: "shop".into(),
            servers: serin_spec::HaproxyServers {
                stable: "stable".into(),
                canary: "canary".into(),
            },
            log_listen: "127.0.0.1:5141".into(),
        };
        HaproxyRouter::new(&spec, "127.0.0.1:9001").expect("valid")
    }

    #[test]
    fn reads_servers_state_by_column_name() {
        let servers = parse_servers_state(STATE).expect("parses");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[1].name, "canary");
        assert_eq!(
            (servers[1].port, servers[1].weight, servers[1].admin),
            (9002, 0, 1)
        );
        assert!(parse_servers_state("Can't find backend.\n").is_err());
        assert!(parse_servers_state("1\n# be_id srv_name\n3 x\n").is_err());
    }

    #[test]
    fn only_what_differs_is_sent() {
        let router = router();
        let state = parse_servers_state(STATE).expect("parses");
        let instance = RuntimeApiAddr::Tcp("127.0.0.1:1".into());
        let stable_only = Desired {
            stable: "127.0.0.1:9001".parse().expect("addr"),
            canary: None,
            canary_weight: 30,
        };
        assert!(
            router
                .balancer()
                .commands_for(&instance, &state, &stable_only)
                .expect("found")
                .is_empty()
        );
        let rollout = Desired {
            canary: Some("127.0.0.1:9003".parse().expect("addr")),
            ..stable_only
        };
        assert_eq!(
            router
                .balancer()
                .commands_for(&instance, &state, &rollout)
                .expect("found"),
            [
                "set server shop/stable weight 70",
                "set server shop/canary addr 127.0.0.1 port 9003",
                "set server shop/canary state ready",
                "set server shop/canary weight 30",
            ]
        );
    }
}
