//! `serin serve` against hostile input, as a real process: a flood of idle
//! API connections under a low open-file limit.

use crate::support::*;
use serin_demo::{Backend, Behaviour};
use serin_testkit::poll;
use std::{
    net::{SocketAddr, TcpStream},
    process::{Child, Stdio},
    time::Duration,
};

/// Kills the daemon when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn answer(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let answer = serin_testkit::http::exchange(addr, "GET", path, None, b"")?;
    Some((answer.status, answer.body().to_owned()))
}

/// Under an open-file limit of 200 (soft and hard, so it cannot be
/// raised), 300 idle API connections: the API closes those idle the
/// longest instead of taking every descriptor, so the canary's proxy and
/// `/healthz` still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_api_connections_do_not_starve_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let listen = free_port();
    let file = write(
        dir.path(),
        "web.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: web
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:{listen}
  upstreams:
    stable: {}
  analysis:
    interval: 1h
    threshold: 2
    stepWeights: [50]
",
            stable.url()
        ),
    );
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy = SocketAddr::from(([127, 0, 0, 1], listen));
    let log = dir.path().join("serve.log");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 200 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_serin"))
        .arg("serve")
        .arg(&file)
        .args(["--api", &api.to_string(), "--state-dir"])
        .arg(dir.path().join("state"))
        .env_remove("SERIN_TOKEN")
        .env("SERIN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _daemon = Killed(child);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        poll::until(Duration::from_secs(20), Duration::from_millis(20), || {
            answer(api, "/healthz").is_some()
        }),
        "serin serve did not answer: {}",
        log_text()
    );

    let flood = tokio::task::spawn_blocking(move || {
        (0..300)
            .filter_map(|_| TcpStream::connect_timeout(&api, Duration::from_secs(1)).ok())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(flood.len() >= 250, "only {} connected", flood.len());

    let checks = tokio::task::spawn_blocking(move || {
        let healthz = answer(api, "/healthz");
        let proxied = answer(proxy, "/");
        (healthz, proxied)
    })
    .await
    .unwrap();
    drop(flood);
    let (healthz, proxied) = checks;
    assert_eq!(
        healthz.as_ref().map(|(status, _)| *status),
        Some(200),
        "/healthz: {healthz:?}\n{}",
        log_text()
    );
    assert!(
        proxied
            .as_ref()
            .is_some_and(|(status, body)| *status == 200 && body.contains("stable v1")),
        "the proxy: {proxied:?}\n{}",
        log_text()
    );
    assert!(
        !log_text().contains("Too many open files"),
        "{}",
        log_text()
    );
}

/// Waits for `child` to exit, at most `limit`; its exit code.
fn exit_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A stored `canaryWeight` of 250 (a hand-edited or broken database) stops
/// `serin serve` at start with exit 2, naming the canary and the field;
/// `serin forget` clears the state and the next start serves.
#[test]
fn a_stored_weight_of_250_is_refused_at_start_and_forget_clears_it() {
    use serin_server::StateStore as _;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "myapp.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: myapp
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:{}
  upstreams:
    stable: http://127.0.0.1:9
  analysis:
    interval: 1h
    threshold: 2
    stepWeights: [50]
",
            free_port()
        ),
    );
    let state_dir = dir.path().join("state");
    {
        let store = serin_daemon::Store::open(&state_dir).unwrap();
        let state = serin_rollout::RolloutState {
            phase: serin_rollout::Phase::Progressing,
            revision: Some("v2".into()),
            canary_weight: 50,
            step_index: 1,
            ..serin_rollout::RolloutState::new(serin_rollout::Timestamp::from_millis(1))
        };
        let saved = serin_server::Saved {
            state: &state,
            placement: &serin_server::Placement::default(),
            history: &[],
            evidence: None,
        };
        store.save("myapp", saved).unwrap();
    }
    let db =
        rusqlite::Connection::open(state_dir.join(serin_daemon::store::DATABASE_FILE)).unwrap();
    db.execute(
        "UPDATE canaries SET state = json_set(state, '$.canaryWeight', 250) WHERE name = 'myapp'",
        [],
    )
    .unwrap();
    drop(db);

    let serve = || {
        serin()
            .arg("serve")
            .arg(&file)
            .args(["--api", "127.0.0.1:0", "--state-dir"])
            .arg(&state_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut refused = serve();
    let code = exit_within(&mut refused, Duration::from_secs(20));
    let _ = refused.kill();
    let out = refused.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("state for canary myapp: canaryWeight: must be between 0 and 100, got 250"),
        "{err}"
    );
    assert!(err.contains("serin forget myapp --state-dir"), "{err}");

    let out = output(
        serin()
            .args(["forget", "myapp", "--state-dir"])
            .arg(&state_dir),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("myapp: state forgotten"),
        "{}",
        stdout(&out)
    );

    let mut started = serve();
    let code = exit_within(&mut started, Duration::from_secs(2));
    let _ = started.kill();
    let out = started.wait_with_output().unwrap();
    assert_eq!(code, None, "serves after forget: {}", stderr(&out));
}

fn served_canary(dir: &std::path::Path, file: &str, name: &str, listen: u16) -> std::path::PathBuf {
    write(
        dir,
        file,
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: {name}
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:{listen}
  upstreams:
    stable: http://127.0.0.1:9
  analysis:
    interval: 1h
    threshold: 2
    stepWeights: [50]
"
        ),
    )
}

/// What `serve` says about `files` when it refuses them: its exit code and
/// its problem lines (the startup banner is not a problem).
fn serve_refusal(
    dir: &std::path::Path,
    files: &[std::path::PathBuf],
) -> (Option<i32>, Vec<String>) {
    let mut child = serin()
        .arg("serve")
        .args(files)
        .args(["--api", "127.0.0.1:0", "--state-dir"])
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = exit_within(&mut child, Duration::from_secs(20));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let lines = stderr(&out)
        .lines()
        .filter(|line| !line.starts_with("serin serve: no API token"))
        .map(str::to_owned)
        .collect();
    (code, lines)
}

/// Two canaries with one name, on one listen address, or one whose metric
/// serin cannot query: `validate` refuses them with exit 2 naming the file
/// and the field, and `serve` refuses them with the very same lines, before
/// anything listens.
#[test]
fn validate_refuses_what_serve_refuses_with_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two, three) = (free_port(), free_port(), free_port());
    let web = served_canary(dir.path(), "web.yaml", "web", one);
    let same_name = served_canary(dir.path(), "web-again.yaml", "web", two);
    let same_listen = served_canary(dir.path(), "api.yaml", "api", one);
    let shop = served_canary(dir.path(), "shop.yaml", "shop", three);
    let unqueryable = write(
        dir.path(),
        "shop.yaml",
        &(std::fs::read_to_string(&shop).unwrap().replace(
            "stepWeights: [50]\n",
            "stepWeights: [50]
    metrics:
    - name: errors
      templateRef: {name: errors}
      thresholdRange: {max: 1}
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: errors}
spec:
  provider: {type: datadog, address: http://127.0.0.1:9}
  query: errors
",
        )),
    );
    let cases = [
        (
            same_name,
            format!(
                "web-again.yaml: metadata.name: canary \"web\" is also defined in {}",
                web.display()
            ),
        ),
        (
            same_listen,
            format!(
                "api.yaml: spec.service.listen: 127.0.0.1:{one} is taken: canary \"web\" in {} listens on 127.0.0.1:{one}",
                web.display()
            ),
        ),
        (
            unqueryable,
            "shop.yaml: spec.analysis.metrics[0].templateRef: MetricTemplate \"errors\" uses provider type \"datadog\", which serin cannot query yet".to_owned(),
        ),
    ];
    for (other, expected) in cases {
        let files = [web.clone(), other];
        let out = output(serin().arg("validate").args(&files));
        let validate_lines: Vec<String> = stderr(&out).lines().map(str::to_owned).collect();
        assert_eq!(out.status.code(), Some(2), "{validate_lines:?}");
        assert!(
            validate_lines.iter().any(|line| line.contains(&expected)),
            "{expected}\n{validate_lines:?}"
        );
        let (code, serve_lines) = serve_refusal(dir.path(), &files);
        assert_eq!(code, Some(2), "{serve_lines:?}");
        assert_eq!(serve_lines, validate_lines, "serve says what validate says");
    }
}
