//! `serin serve` driving the balancers users already run, as a user runs
//! it: a real HAProxy or nginx in front of real backends, real traffic
//! through the balancer, `serin start NAME --canary IP:port` from another
//! process, `serin status --wait` for the verdict. Promotion leaves all
//! traffic on the new version, a rollback on the old one, and a `kill -9`
//! of the daemon mid-rollout (with HAProxy restarted meanwhile, its weights
//! back to the configuration's) resumes where it stood and repairs the
//! balancer. While the daemon runs, an HAProxy restarted mid-rollout is
//! repaired on the next look for drift, and the repair is counted on
//! `/metrics`. A daemon restarted while HAProxy keeps running restores the
//! canary with its weight in one write: no command after the restart ever
//! sets the canary to weight 0 (every request on stable for a moment).

use crate::serve::{Serve, TOKEN, http, messages};
use crate::support::*;
use serde_json::Value;
use serin_demo::{Backend, Behaviour, LoadSpec, load};
use serin_providers::haproxy::{command, parse_servers_state};
use serin_spec::RuntimeApiAddr;
use serin_testkit::{haproxy::Haproxy, nginx::Nginx, poll};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const ANALYSIS: &str = "  analysis:
    interval: 2s
    threshold: 2
    stepWeights: [20, 50]
    minRequests: 30
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 2s
    - name: request-duration
      thresholdRange: {max: 500}
      interval: 2s
";

/// The analysis of the tests that restart HAProxy mid-rollout. A restart
/// and its repair (`set server … addr`) leave the canary server's
/// connections cold while stable's are warm again at once, and on a
/// loaded machine a new connection costs milliseconds: the judge's default
/// latency comparison (any excess over stable is harm) has rightly seen
/// that as a slower canary (18.9 ms against 16.9 ms, 2.45 % of its
/// requests above stable's p99 against 0.44 %). These tests are about the
/// repair, so their canary may be up to 1.5 times stable's latency.
fn restarted(analysis: &str) -> String {
    analysis.replace(
        "thresholdRange: {max: 500}\n",
        "thresholdRange: {max: 500}\n      compare: {maxRatio: 1.5}\n",
    )
}

fn haproxy_file(dir: &Path, haproxy: &Haproxy, log_listen: &str, stable: SocketAddr) -> PathBuf {
    haproxy_file_with(dir, &haproxy.runtime_api, log_listen, stable, ANALYSIS)
}

fn haproxy_file_with(
    dir: &Path,
    runtime_api: &str,
    log_listen: &str,
    stable: SocketAddr,
    analysis: &str,
) -> PathBuf {
    write(
        dir,
        "shop.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: shop
spec:
  provider: haproxy
  haproxy:
    runtimeApi: [\"{runtime_api}\"]
    backend: shop
    servers: {{stable: stable, canary: canary}}
    logListen: {log_listen}
  upstreams:
    stable: {stable}
{analysis}",
        ),
    )
}

fn nginx_file(dir: &Path, nginx: &Nginx, log_listen: &str, stable: SocketAddr) -> PathBuf {
    let reload = nginx
        .argv(&["-s", "reload"])
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    write(
        dir,
        "shop.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: shop
spec:
  provider: nginx
  nginx:
    upstream: shop
    configFile: {}
    reloadCommand: [{reload}]
    logListen: {log_listen}
  upstreams:
    stable: {stable}
{ANALYSIS}",
            nginx.upstream_file.display()
        ),
    )
}

async fn backends(canary_errors: f64) -> (Backend, Backend) {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let behaviour = Behaviour {
        error_rate: canary_errors,
        ..Behaviour::healthy("canary v2")
    };
    (stable, Backend::start(local, behaviour).await.unwrap())
}

/// Waits (bounded) until serin holds the UDP socket of the balancer's log.
async fn receiving(log_listen: &str) {
    let bound = poll::until_async(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || std::net::UdpSocket::bind(log_listen).is_err(),
    )
    .await;
    assert!(bound, "serin never bound {log_listen}");
}

/// Bounded load through the balancer's frontend.
fn traffic(
    frontend: &str,
    limit: Duration,
) -> tokio::task::JoinHandle<Result<load::LoadReport, load::LoadError>> {
    let mut spec = LoadSpec::new(
        format!("http://{frontend}/").parse().unwrap(),
        Some(150.0),
        limit,
    );
    spec.concurrency = 4;
    tokio::spawn(load::run(spec))
}

/// `serin start` as a user types it.
fn start(api: SocketAddr, canary: &str) -> std::process::Output {
    output(
        serin()
            .args(["start", "shop", "--canary", canary, "--revision", "v2"])
            .args(["--server", &format!("http://{api}")])
            .env("SERIN_TOKEN", TOKEN),
    )
}

/// `serin status --wait` for revision v2: its exit code and JSON.
fn wait(api: SocketAddr) -> (Option<i32>, Value) {
    let waited = output(
        serin()
            .args(["status", "shop", "--wait", "--revision", "v2"])
            .args(["--timeout", "90s", "--json", "--server"])
            .arg(format!("http://{api}")),
    );
    let status = serde_json::from_str(&stdout(&waited))
        .unwrap_or_else(|_| panic!("{}\n{}", stdout(&waited), stderr(&waited)));
    (waited.status.code(), status)
}

/// `(port, weight)` of the stable and canary servers, read from HAProxy.
async fn servers(haproxy: &Haproxy) -> [(u16, u32); 2] {
    let answer = command(
        &RuntimeApiAddr::Tcp(haproxy.runtime_api.clone()),
        "show servers state shop",
    )
    .await
    .unwrap();
    let servers = parse_servers_state(&answer).unwrap();
    let read = |name: &str| {
        let server = servers.iter().find(|s| s.name == name).unwrap();
        (server.port, server.weight)
    };
    [read("stable"), read("canary")]
}

/// Bodies of `n` requests through a balancer's frontend.
async fn bodies(frontend: &str, n: usize) -> Vec<String> {
    let port: u16 = frontend.rsplit(':').next().unwrap().parse().unwrap();
    let mut bodies = Vec::with_capacity(n);
    for _ in 0..n {
        bodies.push(serin_testkit::http::get(port, "/").await.unwrap());
    }
    bodies
}

fn serve_log(dir: &Path) -> String {
    (0..3)
        .map(|run| {
            std::fs::read_to_string(dir.join(format!("serve-{run}.log"))).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_promotes_a_canary_behind_haproxy_started_with_serin_start() {
    let (stable, canary) = backends(0.0).await;
    let log_listen = format!("127.0.0.1:{}", free_port());
    // The canary server line starts at stable's address, weight 0: only
    // serin points it at the canary.
    let haproxy = Haproxy::start(
        &stable.addr().to_string(),
        &stable.addr().to_string(),
        Some(&log_listen),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = haproxy_file(dir.path(), &haproxy, &log_listen, stable.addr());
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let serve = Serve::start(dir.path(), &file, api, 0);
    receiving(&log_listen).await;
    let load = traffic(&haproxy.frontend, Duration::from_secs(60));

    // The canary is named in HAProxy's terms; a URL is refused, naming the field.
    let refused = start(api, &format!("http://{}", canary.addr()));
    assert_ne!(refused.status.code(), Some(0));
    let error = stderr(&refused);
    assert!(
        error.contains("canary: ") && error.contains("is not an IP address and port"),
        "{error}"
    );
    let started = start(api, &canary.addr().to_string());
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));

    let (code, status) = wait(api);
    load.abort();
    assert_eq!(code, Some(0), "{status}\n{}", serve_log(dir.path()));
    assert_eq!(status["phase"], "Succeeded");
    assert_eq!(status["stable"], canary.addr().to_string());
    // The stable server runs the new version with all the traffic.
    assert_eq!(
        servers(&haproxy).await,
        [(canary.addr().port(), 100), (canary.addr().port(), 0)]
    );
    let answered = bodies(&haproxy.frontend, 20).await;
    assert!(
        answered.iter().all(|b| b.contains("canary v2")),
        "{answered:?}"
    );
    // The log receiver's counters are on the daemon's /metrics.
    let (_, metrics) = http(api, "GET", "/metrics", None).unwrap();
    assert!(
        metrics.contains("serin_log_lines_accepted_total{canary=\"shop\"}"),
        "{metrics}"
    );
    assert_eq!(serve.status("shop")["phase"], "Succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_rolls_back_a_failing_canary_behind_nginx() {
    let (stable, canary) = backends(0.2).await;
    let log_listen = format!("127.0.0.1:{}", free_port());
    let nginx = Nginx::start(&stable.addr().to_string(), Some(&log_listen)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = nginx_file(dir.path(), &nginx, &log_listen, stable.addr());
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _serve = Serve::start(dir.path(), &file, api, 0);
    receiving(&log_listen).await;
    let load = traffic(&nginx.frontend, Duration::from_secs(60));

    let started = start(api, &canary.addr().to_string());
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    let (code, status) = wait(api);
    load.abort();
    assert_eq!(code, Some(1), "{status}\n{}", serve_log(dir.path()));
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["stable"], stable.addr().to_string());
    // Only the old version is left in the file, which nginx accepts, and
    // it takes every request.
    let upstream = std::fs::read_to_string(&nginx.upstream_file).unwrap();
    assert!(
        upstream.contains(&format!("server {} weight=100;", stable.addr())),
        "{upstream}"
    );
    assert!(!upstream.contains(&canary.addr().to_string()), "{upstream}");
    nginx.test_config().unwrap();
    let answered = bodies(&nginx.frontend, 20).await;
    assert!(
        answered.iter().all(|b| b.contains("stable v1")),
        "{answered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_mid_rollout_resumes_and_repairs_a_restarted_haproxy() {
    let (stable, canary) = backends(0.0).await;
    let log_listen = format!("127.0.0.1:{}", free_port());
    let mut haproxy = Haproxy::start(
        &stable.addr().to_string(),
        &stable.addr().to_string(),
        Some(&log_listen),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = haproxy_file_with(
        dir.path(),
        &haproxy.runtime_api,
        &log_listen,
        stable.addr(),
        &restarted(ANALYSIS),
    );
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let serve = Serve::start(dir.path(), &file, api, 0);
    receiving(&log_listen).await;
    let load = traffic(&haproxy.frontend, Duration::from_secs(90));
    let started = start(api, &canary.addr().to_string());
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));

    // Mid-rollout: the canary has its first step's weight.
    let stepped = poll::until(Duration::from_secs(30), Duration::from_millis(50), || {
        let status = serve.status("shop");
        status["phase"] == "Progressing" && status["canaryWeight"] == 20
    });
    assert!(stepped, "{}", serve.status("shop"));
    serve.kill_9();
    // Meanwhile HAProxy restarts: its weights and addresses are the
    // configuration's again (the canary server at stable's address, 0).
    haproxy.restart().await;
    assert_eq!(
        servers(&haproxy).await,
        [(stable.addr().port(), 100), (stable.addr().port(), 0)]
    );

    let serve = Serve::start(dir.path(), &file, api, 1);
    let resumed = serve.status("shop");
    assert_eq!(resumed["revision"], "v2", "{resumed}");
    // The restart re-applied what the store says before serving: the canary
    // server at the canary, with the weight of the step it stood at.
    let weight = u32::try_from(resumed["canaryWeight"].as_u64().unwrap()).unwrap();
    assert_eq!(resumed["phase"], "Progressing", "{resumed}");
    let repaired = poll::until_async(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            servers(&haproxy).await
                == [
                    (stable.addr().port(), 100 - weight),
                    (canary.addr().port(), weight),
                ]
        },
    )
    .await;
    assert!(repaired, "{:?} at {weight}", servers(&haproxy).await);

    let (code, status) = wait(api);
    load.abort();
    assert_eq!(code, Some(0), "{status}\n{}", serve_log(dir.path()));
    assert_eq!(
        servers(&haproxy).await,
        [(canary.addr().port(), 100), (canary.addr().port(), 0)]
    );
    // Each step was taken once, across the restart.
    let messages = messages(api, "shop");
    let advances: Vec<&String> = messages
        .iter()
        .filter(|m| m.starts_with("Advance canary weight"))
        .collect();
    assert_eq!(
        advances,
        [
            "Advance canary weight 0 -> 20 (step 1/2)",
            "Advance canary weight 20 -> 50 (step 2/2)"
        ],
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_restarted_mid_rollout_is_repaired_while_serve_runs() {
    let (stable, canary) = backends(0.0).await;
    let log_listen = format!("127.0.0.1:{}", free_port());
    let mut haproxy = Haproxy::start(
        &stable.addr().to_string(),
        &stable.addr().to_string(),
        Some(&log_listen),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Steps long enough for a restart and its repair within the first one.
    let slow = restarted(&ANALYSIS.replace("interval: 2s", "interval: 15s"));
    let file = haproxy_file_with(
        dir.path(),
        &haproxy.runtime_api,
        &log_listen,
        stable.addr(),
        &slow,
    );
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let serve = Serve::start(dir.path(), &file, api, 0);
    receiving(&log_listen).await;
    let load = traffic(&haproxy.frontend, Duration::from_secs(120));
    let started = start(api, &canary.addr().to_string());
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    let stepped = poll::until(Duration::from_secs(30), Duration::from_millis(50), || {
        let status = serve.status("shop");
        status["phase"] == "Progressing" && status["canaryWeight"] == 20
    });
    assert!(stepped, "{}", serve.status("shop"));
    assert_eq!(
        servers(&haproxy).await,
        [(stable.addr().port(), 80), (canary.addr().port(), 20)]
    );

    haproxy.restart().await;
    let restarted = std::time::Instant::now();
    // Bounded well beyond one period of drift repair (5 s).
    let repaired = poll::until_async(
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            servers(&haproxy).await == [(stable.addr().port(), 80), (canary.addr().port(), 20)]
        },
    )
    .await;
    let took = restarted.elapsed();
    assert!(
        repaired,
        "{:?}\n{}",
        servers(&haproxy).await,
        serve_log(dir.path())
    );
    eprintln!("haproxy repaired {took:?} after its restart");
    assert_eq!(serve.status("shop")["canaryWeight"], 20);
    let (_, metrics) = http(api, "GET", "/metrics", None).unwrap();
    assert!(
        metrics.contains("serin_router_drift_repairs_total{canary=\"shop\",router=\"haproxy\"} 1"),
        "{metrics}"
    );

    let (code, status) = wait(api);
    load.abort();
    assert_eq!(code, Some(0), "{status}\n{}", serve_log(dir.path()));
    assert_eq!(
        servers(&haproxy).await,
        [(canary.addr().port(), 100), (canary.addr().port(), 0)]
    );
    // The repair is in the history (saved with the next event's state).
    let history = messages(api, "shop");
    assert!(
        history.iter().any(|m| m
            .starts_with("haproxy had drifted from the state serin set, repaired: ")
            && m.contains(&canary.addr().port().to_string())),
        "{history:?}"
    );
}

/// A relay in front of HAProxy's runtime API that keeps every command line
/// serin sends (one per connection, as HAProxy answers and closes).
struct CommandTap {
    addr: String,
    commands: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CommandTap {
    async fn start(runtime_api: &str) -> CommandTap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let (target, kept) = (runtime_api.to_owned(), commands.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, kept) = (target.clone(), kept.clone());
                tokio::spawn(async move {
                    let mut client = tokio::io::BufReader::new(client);
                    let mut line = String::new();
                    // Bounded: serin's commands are one short line.
                    let read =
                        tokio::time::timeout(Duration::from_secs(5), client.read_line(&mut line))
                            .await;
                    if !matches!(read, Ok(Ok(n)) if n > 0) {
                        return;
                    }
                    kept.lock().unwrap().push(line.trim_end().to_owned());
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    if server.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut client = client.into_inner();
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::io::copy(&mut server, &mut client),
                    )
                    .await;
                });
            }
        });
        CommandTap {
            addr,
            commands,
            task,
        }
    }

    fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
}

impl Drop for CommandTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_restarted_mid_rollout_keeps_the_haproxy_canary_weight() {
    let (stable, canary) = backends(0.0).await;
    let log_listen = format!("127.0.0.1:{}", free_port());
    let haproxy = Haproxy::start(
        &stable.addr().to_string(),
        &stable.addr().to_string(),
        Some(&log_listen),
    )
    .await;
    let tap = CommandTap::start(&haproxy.runtime_api).await;
    let dir = tempfile::tempdir().unwrap();
    // Steps long enough for a restart within the first one.
    let slow = ANALYSIS.replace("interval: 2s", "interval: 60s");
    let file = haproxy_file_with(dir.path(), &tap.addr, &log_listen, stable.addr(), &slow);
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let serve = Serve::start(dir.path(), &file, api, 0);
    receiving(&log_listen).await;
    let started = start(api, &canary.addr().to_string());
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    let stepped = poll::until(Duration::from_secs(30), Duration::from_millis(50), || {
        let status = serve.status("shop");
        status["phase"] == "Progressing" && status["canaryWeight"] == 20
    });
    assert!(stepped, "{}", serve.status("shop"));
    let at_step = [(stable.addr().port(), 80), (canary.addr().port(), 20)];
    assert_eq!(servers(&haproxy).await, at_step);
    // The tap sees what serin sends: the rollout's start pointed the
    // canary server at the canary.
    assert!(
        tap.commands()
            .iter()
            .any(|c| c.starts_with("set server shop/canary addr")),
        "{:?}",
        tap.commands()
    );

    serve.kill_9();
    let before = tap.commands().len();
    let serve = Serve::start(dir.path(), &file, api, 1);
    let resumed = serve.status("shop");
    assert_eq!(resumed["phase"], "Progressing", "{resumed}");
    assert_eq!(resumed["canaryWeight"], 20, "{resumed}");
    // The restore (before the daemon serves), the loop's recovery and a
    // look for drift (every 5 s) have all read HAProxy back.
    let looked = poll::until(Duration::from_secs(30), Duration::from_millis(100), || {
        tap.commands()[before..]
            .iter()
            .filter(|c| c.starts_with("show servers state"))
            .count()
            >= 3
    });
    assert!(looked, "{:?}", &tap.commands()[before..]);
    let sent: Vec<String> = tap.commands()[before..]
        .iter()
        .filter(|c| c.starts_with("set server"))
        .cloned()
        .collect();
    // HAProxy kept its weights through the daemon's restart: nothing to
    // write, and above all never the canary at 0 with stable at 100.
    assert!(
        sent.is_empty(),
        "the restart wrote {sent:?}\n{}",
        serve_log(dir.path())
    );
    assert_eq!(servers(&haproxy).await, at_step);
}
