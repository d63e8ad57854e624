//! `serin serve` as a real process: killed with SIGKILL at many points of a
//! rollout and restarted, it continues from its last recorded step with its
//! routes restored before its proxy answers; nothing is promoted, skipped or
//! repeated. Plus the client commands' exit codes for CI.

use crate::support::*;
use serde_json::Value;
use serin_demo::{Backend, Behaviour, LoadSpec, load};
use serin_testkit::poll;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

pub(crate) const TOKEN: &str = "s3cret-test-token";

/// One HTTP/1.1 exchange: status and body; `None` when nothing answered
/// (the daemon is down or starting).
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Option<(u16, String)> {
    let answer = serin_testkit::http::exchange(addr, method, path, token, b"")?;
    Some((answer.status, answer.body().to_owned()))
}

pub(crate) fn get_json(api: SocketAddr, path: &str) -> Option<Value> {
    let (status, body) = http(api, "GET", path, None)?;
    assert_eq!(status, 200, "GET {path}: {body}");
    Some(serde_json::from_str(&body).unwrap())
}

pub(crate) struct Serve {
    child: Child,
    api: SocketAddr,
}

impl Serve {
    /// Starts `serin serve` and waits until its API answers.
    pub(crate) fn start(dir: &Path, file: &Path, api: SocketAddr, run: usize) -> Serve {
        Serve::start_with(dir, file, api, run, &[])
    }

    /// [`Serve::start`] with more environment variables (credentials).
    pub(crate) fn start_with(
        dir: &Path,
        file: &Path,
        api: SocketAddr,
        run: usize,
        env: &[(&str, &str)],
    ) -> Serve {
        let log = std::fs::File::create(dir.join(format!("serve-{run}.log"))).unwrap();
        let child = serin()
            .arg("serve")
            .arg(file)
            .args(["--api", &api.to_string(), "--poll", "1s", "--state-dir"])
            .arg(dir.join("state"))
            .env("SERIN_TOKEN", TOKEN)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let serve = Serve { child, api };
        let answered = poll::until(Duration::from_secs(20), Duration::from_millis(20), || {
            http(api, "GET", "/healthz", None).is_some()
        });
        assert!(
            answered,
            "serin serve did not answer: {}",
            std::fs::read_to_string(dir.join(format!("serve-{run}.log"))).unwrap_or_default()
        );
        serve
    }

    pub(crate) fn status(&self, name: &str) -> Value {
        get_json(self.api, &format!("/api/v1/canaries/{name}")).expect("status answers")
    }

    /// SIGKILL: no shutdown, no last save.
    pub(crate) fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn canary_file(
    dir: &Path,
    name: &str,
    listen: u16,
    stable: &str,
    canary: &str,
    analysis: &str,
) -> PathBuf {
    write(
        dir,
        &format!("{name}.yaml"),
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
    stable: {stable}
    canary: {canary}
    revision: v2
  analysis:
{analysis}"
        ),
    )
}

/// Where a rollout stands, ordered: later phases, then higher weights.
fn progress(status: &Value) -> (u8, u64) {
    let phase = match status["phase"].as_str().unwrap() {
        "Initializing" | "Initialized" => 0,
        "Waiting" => 1,
        "Progressing" => 2,
        "WaitingPromotion" => 3,
        "Promoting" => 4,
        "Finalising" => 5,
        _ => 6,
    };
    let weight = if phase == 2 {
        status["canaryWeight"].as_u64().unwrap()
    } else {
        0
    };
    (phase, weight)
}

pub(crate) fn messages(api: SocketAddr, name: &str) -> Vec<String> {
    let page = get_json(api, &format!("/api/v1/canaries/{name}/history?limit=1000")).unwrap();
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "record")
        .map(|e| e["body"]["record"]["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_many_points_neither_repeats_nor_skips() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary v2"))
        .await
        .unwrap();
    let listen = free_port();
    let file = canary_file(
        dir.path(),
        "shop",
        listen,
        &stable.url(),
        &canary.url(),
        "    interval: 1s
    threshold: 5
    stepWeight: 10
    maxWeight: 50
    judge: threshold
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1s
",
    );
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // Bounded load: 80 requests per second for at most 90 seconds.
    let mut spec = LoadSpec::new(
        format!("http://127.0.0.1:{listen}/").parse().unwrap(),
        Some(80.0),
        Duration::from_secs(90),
    );
    spec.concurrency = 4;
    let traffic = tokio::spawn(load::run(spec));

    let kill_after_ms = [
        250u64, 900, 1400, 60, 600, 1900, 300, 1100, 450, 1600, 150, 800,
    ];
    let mut serve = Serve::start(dir.path(), &file, api, 0);
    let mut kills = 0;
    for (run, delay) in kill_after_ms.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        let before = serve.status("shop");
        if before["phase"] == "Succeeded" {
            break;
        }
        serve.kill_9();
        kills += 1;
        serve = Serve::start(dir.path(), &file, api, run + 1);
        let after = serve.status("shop");
        assert!(
            progress(&after) >= progress(&before),
            "went back after restart {kills}: before {before}, after {after}"
        );
        assert_ne!(
            after["phase"], "Failed",
            "rolled back after restart {kills}: {after}"
        );
    }
    assert!(
        kills >= 4,
        "the rollout ended before it could be killed enough ({kills} kills)"
    );

    // The verdict, as CI waits for it.
    let waited = output(
        serin()
            .args([
                "status",
                "shop",
                "--wait",
                "--timeout",
                "60s",
                "--json",
                "--server",
            ])
            .arg(format!("http://{api}")),
    );
    assert_eq!(waited.status.code(), Some(0), "{}", stderr(&waited));
    let status: Value = serde_json::from_str(&stdout(&waited)).unwrap();
    assert_eq!(status["phase"], "Succeeded");
    assert_eq!(
        status["stable"],
        canary.url(),
        "the canary is the new stable"
    );
    traffic.abort();

    let messages = messages(api, "shop");
    let advances: Vec<&String> = messages
        .iter()
        .filter(|m| m.starts_with("Advance canary weight"))
        .collect();
    let expected: Vec<String> = [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)]
        .iter()
        .map(|(from, to)| format!("Advance canary weight {from} -> {to}"))
        .collect();
    assert_eq!(
        advances.len(),
        expected.len(),
        "every step once: {advances:#?}"
    );
    for (advance, expected) in advances.iter().zip(&expected) {
        assert!(
            advance.starts_with(expected.as_str()),
            "{advance} is not {expected}"
        );
    }
    let once = |prefix: &str| messages.iter().filter(|m| m.starts_with(prefix)).count();
    assert_eq!(once("New revision v2 detected"), 1, "{messages:#?}");
    assert_eq!(once("Promotion completed"), 1, "{messages:#?}");
    assert!(
        !messages.iter().any(|m| m.contains("Rolling back")),
        "{messages:#?}"
    );

    // Up and serving the promoted version to everyone.
    let (code, body) = http(SocketAddr::from(([127, 0, 0, 1], listen)), "GET", "/", None).unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("canary v2"), "{body}");
    serve.kill_9();
}

/// The judge's evidence saved with the state: how many requests of each
/// version its e-processes have seen, `None` before the first save.
fn saved_evidence(state_dir: &Path, name: &str) -> Option<(u64, u64)> {
    let db = rusqlite::Connection::open(state_dir.join("serin.db")).unwrap();
    let evidence: Option<String> = db
        .query_row(
            "SELECT evidence FROM canaries WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .ok()
        .flatten();
    let evidence: Value = serde_json::from_str(&evidence?).unwrap();
    let seen = |side: &str| evidence["evidence"][side]["requests"].as_u64().unwrap();
    Some((seen("canary"), seen("stable")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judges_evidence_survives_kill_9() {
    // The default (sequential) judge, a healthy canary held at its first
    // steps by the requests each step needs, checked every second (so
    // saved every second). Killed with SIGKILL again and again: after each
    // restart the evidence goes on from what was saved — it never starts
    // over, which would hand the false-rollback budget back.
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary v2"))
        .await
        .unwrap();
    let listen = free_port();
    let file = canary_file(
        dir.path(),
        "shop",
        listen,
        &stable.url(),
        &canary.url(),
        "    interval: 1s
    threshold: 5
    stepWeight: 5
    maxWeight: 50
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1s
",
    );
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // Bounded load: 80 requests per second for at most 60 seconds.
    let mut spec = LoadSpec::new(
        format!("http://127.0.0.1:{listen}/").parse().unwrap(),
        Some(80.0),
        Duration::from_secs(60),
    );
    spec.concurrency = 4;
    let traffic = tokio::spawn(load::run(spec));
    let state_dir = dir.path().join("state");
    let mut serve = Serve::start(dir.path(), &file, api, 0);
    let mut seen: Vec<(u64, u64)> = Vec::new();
    for (run, delay) in [2500u64, 1800, 2200, 1500, 2600, 2000].iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        let before = serve.status("shop");
        serve.kill_9();
        assert_eq!(before["phase"], "Progressing", "{before}");
        if let Some(evidence) = saved_evidence(&state_dir, "shop") {
            seen.push(evidence);
        }
        serve = Serve::start(dir.path(), &file, api, run + 1);
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    // The status says how much power the evidence has reached.
    let status = serve.status("shop");
    let power = &status["analysis"]["metrics"][0]["power"];
    assert!(
        power.as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)),
        "{status}"
    );
    serve.kill_9();
    traffic.abort();
    seen.extend(saved_evidence(&state_dir, "shop"));
    assert!(seen.len() >= 5, "saved evidence at {} kills", seen.len());
    for pair in seen.windows(2) {
        let ((c0, s0), (c1, s1)) = (pair[0], pair[1]);
        assert!(
            c1 >= c0 && s1 >= s0,
            "evidence started over after a restart: {seen:?}"
        );
    }
    let (first, last) = (seen[0], seen[seen.len() - 1]);
    assert!(
        last.0 > first.0 && last.1 > first.1,
        "evidence did not grow across restarts: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_gates_survive_kill_9_and_ci_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary v2"))
        .await
        .unwrap();
    let listen = free_port();
    let proxy = SocketAddr::from(([127, 0, 0, 1], listen));
    // One step to 50 % at once, then an hour until the next interval.
    let file = canary_file(
        dir.path(),
        "cart",
        listen,
        &stable.url(),
        &canary.url(),
        "    interval: 1h
    threshold: 2
    stepWeights: [50]
",
    );
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = format!("http://{api}");
    let serve = Serve::start(dir.path(), &file, api, 0);
    let at_50 = poll::until(Duration::from_secs(10), Duration::from_millis(50), || {
        serve.status("cart")["canaryWeight"] == 50
    });
    assert!(at_50, "{}", serve.status("cart"));

    // A gate without the token is refused; with it, taken.
    let refused = output(serin().args(["pause", "cart", "--server", &server]));
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("Authorization: Bearer"),
        "{}",
        stderr(&refused)
    );
    let paused = output(
        serin()
            .args(["pause", "cart", "--server", &server])
            .env("SERIN_TOKEN", TOKEN),
    );
    assert_eq!(paused.status.code(), Some(0), "{}", stderr(&paused));
    let unknown = output(
        serin()
            .args(["pause", "nope", "--server", &server])
            .env("SERIN_TOKEN", TOKEN),
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no canary named \"nope\""),
        "{}",
        stderr(&unknown)
    );

    serve.kill_9();
    // Restart and send requests the moment the proxy accepts: every one is
    // routed by the restored 50 % split, none by a fresh all-stable table.
    let mut restart = serin()
        .arg("serve")
        .arg(&file)
        .args(["--api", &api.to_string(), "--state-dir"])
        .arg(dir.path().join("state"))
        .env("SERIN_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut canary_answers = 0;
    let mut answers = 0;
    while answers < 40 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the proxy did not come back"
        );
        if let Some((200, body)) = http(proxy, "GET", "/", None) {
            answers += 1;
            if body.contains("canary v2") {
                canary_answers += 1;
            }
        }
    }
    let _ = restart.kill();
    let _ = restart.wait();
    assert!(
        (8..=32).contains(&canary_answers),
        "{canary_answers} of the first 40 answers came from the canary; expected about 20 at weight 50"
    );

    let serve = Serve::start(dir.path(), &file, api, 2);
    let status = serve.status("cart");
    assert_eq!(status["phase"], "Progressing");
    assert_eq!(status["canaryWeight"], 50);
    assert_eq!(status["paused"], true, "the pause survived: {status}");

    // CI: no verdict within the timeout is 124; an abort is 1.
    let timed_out = output(serin().args([
        "status",
        "cart",
        "--wait",
        "--timeout",
        "1s",
        "--server",
        &server,
    ]));
    assert_eq!(timed_out.status.code(), Some(124), "{}", stderr(&timed_out));
    let aborted = output(
        serin()
            .args(["abort", "cart", "--server", &server])
            .env("SERIN_TOKEN", TOKEN),
    );
    assert_eq!(aborted.status.code(), Some(0), "{}", stderr(&aborted));
    let failed = output(serin().args([
        "status",
        "cart",
        "--wait",
        "--timeout",
        "30s",
        "--server",
        &server,
    ]));
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stdout(&failed).contains("Failed"), "{}", stdout(&failed));
    // After the rollback everything goes to stable.
    for _ in 0..10 {
        let (_, body) = http(proxy, "GET", "/", None).unwrap();
        assert!(body.contains("stable v1"), "{body}");
    }

    // A new revision from CI starts a new rollout; --json has Flagger's fields.
    let start = output(
        serin()
            .args([
                "start",
                "cart",
                "--canary",
                &canary.url(),
                "--revision",
                "v3",
                "--server",
                &server,
            ])
            .env("SERIN_TOKEN", TOKEN),
    );
    assert_eq!(start.status.code(), Some(0), "{}", stderr(&start));
    let listed = output(serin().args(["status", "--json", "--server", &server]));
    let listed: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    let cart = &listed[0];
    for field in [
        "name",
        "phase",
        "canaryWeight",
        "failedChecks",
        "iterations",
    ] {
        assert!(cart.get(field).is_some(), "{field} missing: {cart}");
    }
    assert_eq!(cart["revision"], "v3");
    assert_eq!(cart["phase"], "Progressing");
    serve.kill_9();
}

/// Every `serin` command in docs/ci is one the binary accepts.
#[test]
fn ci_examples_use_real_commands() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ci");
    let mut checked = 0;
    for file in ["github-actions.yml", "gitlab-ci.yml"] {
        let text = std::fs::read_to_string(docs.join(file)).unwrap();
        for line in text.lines() {
            let Some((_, command)) = line.split_once("serin ") else {
                continue;
            };
            let words: Vec<String> = command
                .split(" |")
                .next()
                .unwrap()
                .split(" >")
                .next()
                .unwrap()
                .split_whitespace()
                .map(|w| w.trim_matches('"').to_owned())
                .map(|w| {
                    if w.starts_with('$') {
                        "x".to_owned()
                    } else {
                        w
                    }
                })
                .collect();
            if !["start", "status", "promote", "abort", "pause", "resume"]
                .contains(&words[0].as_str())
            {
                continue;
            }
            // An unreachable daemon and a short timeout: only the arguments matter.
            let words: Vec<String> = words
                .iter()
                .map(|w| {
                    if w == "30m" {
                        "1s".to_owned()
                    } else {
                        w.clone()
                    }
                })
                .collect();
            let ran = output(
                serin()
                    .args(&words)
                    .args(["--server", "http://127.0.0.1:9"]),
            );
            let err = stderr(&ran);
            assert!(
                !err.contains("Usage:"),
                "{file}: serin {}: {err}",
                words.join(" ")
            );
            assert!(matches!(ran.status.code(), Some(2 | 124)), "{file}: {err}");
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} commands found");
}

/// SIGHUP reloads at once (the poll is an hour here); SIGTERM stops cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_sigterm_stops() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let analysis = "    interval: 1h\n    threshold: 2\n    stepWeights: [50]\n";
    let file = canary_file(
        dir.path(),
        "pay",
        listen,
        "http://127.0.0.1:9",
        "http://127.0.0.1:10",
        analysis,
    );
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut child = serin()
        .arg("serve")
        .arg(&file)
        .args(["--api", &api.to_string(), "--poll", "1h", "--state-dir"])
        .arg(dir.path().join("state"))
        .stderr(log)
        .spawn()
        .unwrap();
    let revision = |revision: &str| {
        get_json(api, "/api/v1/canaries/pay").is_some_and(|s| s["revision"] == revision)
    };
    assert!(
        poll::until(Duration::from_secs(20), Duration::from_millis(50), || {
            revision("v2")
        }),
        "v2 did not start"
    );
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("revision: v2", "revision: v3"),
    )
    .unwrap();
    let signal = |name: &str| {
        let sent = std::process::Command::new("kill")
            .args([name, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    signal("-HUP");
    assert!(
        poll::until(Duration::from_secs(10), Duration::from_millis(50), || {
            revision("v3")
        }),
        "SIGHUP did not reload"
    );
    signal("-TERM");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "SIGTERM did not stop the daemon"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A self-signed certificate for `localhost` whose subject is `CN=cn`,
/// made by openssl: `(cn.pem, cn.key)` in `dir`.
fn self_signed(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{cn}.pem")), dir.join(format!("{cn}.key")));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={cn}")])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl req failed");
    (cert, key)
}

/// The subject of the certificate the listener on `port` serves to
/// `localhost`, as `openssl s_client` prints it.
fn served_subject(port: u16) -> Option<String> {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .map(|s| s.replace(' ', ""))
}

/// Whether curl completes a request to `https://localhost:port/`, trusting
/// only `ca` (any HTTP status: the certificate verified).
fn curl_trusts(port: u16, ca: &Path) -> bool {
    std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/"))
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A canary file pointed at another certificate and key: SIGHUP makes the
/// listener serve them (openssl sees the new subject, curl verifies it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_after_new_tls_paths_serves_the_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (first_cert, first_key) = self_signed(dir.path(), "first");
    let (second_cert, second_key) = self_signed(dir.path(), "second");
    let listen = free_port();
    let yaml = |cert: &Path, key: &Path| {
        format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: front
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:{listen}
    tls:
      certFile: {}
      keyFile: {}
  upstreams:
    stable: http://127.0.0.1:9
  analysis:
    interval: 1h
    threshold: 2
    stepWeights: [50]
",
            cert.display(),
            key.display()
        )
    };
    let file = dir.path().join("front.yaml");
    std::fs::write(&file, yaml(&first_cert, &first_key)).unwrap();
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut child = serin()
        .arg("serve")
        .arg(&file)
        .args(["--api", &api.to_string(), "--poll", "1h", "--state-dir"])
        .arg(dir.path().join("state"))
        .stderr(log)
        .spawn()
        .unwrap();
    let serves = |cn: &str| served_subject(listen).is_some_and(|s| s == format!("CN={cn}"));
    // Everything is looked at first and asserted after the daemon is
    // stopped, so a failure leaves no process behind.
    let first = poll::until(Duration::from_secs(20), Duration::from_millis(100), || {
        serves("first")
    });
    let first_trusted = (
        curl_trusts(listen, &first_cert),
        curl_trusts(listen, &second_cert),
    );
    std::fs::write(&file, yaml(&second_cert, &second_key)).unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let second = poll::until(Duration::from_secs(10), Duration::from_millis(100), || {
        serves("second")
    });
    let second_trusted = (
        curl_trusts(listen, &first_cert),
        curl_trusts(listen, &second_cert),
    );
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert!(first, "the first certificate is not served: {log}");
    assert_eq!(first_trusted, (true, false), "{log}");
    assert!(sent.success());
    assert!(second, "SIGHUP did not switch certificates: {log}");
    assert_eq!(second_trusted, (false, true), "{log}");
}

/// A canary removed from its file leaves `/metrics` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_canary_leaves_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let analysis = "    interval: 1h\n    threshold: 2\n    stepWeights: [50]\n";
    let text = |name: &str| {
        let file = canary_file(
            dir.path(),
            name,
            free_port(),
            "http://127.0.0.1:9",
            "http://127.0.0.1:10",
            analysis,
        );
        std::fs::read_to_string(file).unwrap()
    };
    let (kept, gone) = (text("kept"), text("gone"));
    let file = write(dir.path(), "both.yaml", &format!("{kept}---\n{gone}"));
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut child = serin()
        .arg("serve")
        .arg(&file)
        .args(["--api", &api.to_string(), "--poll", "1h", "--state-dir"])
        .arg(dir.path().join("state"))
        .stderr(log)
        .spawn()
        .unwrap();
    let metrics = || {
        http(api, "GET", "/metrics", None)
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    assert!(
        poll::until(Duration::from_secs(20), Duration::from_millis(50), || {
            let body = metrics();
            body.contains("canary=\"kept\"") && body.contains("canary=\"gone\"")
        }),
        "both canaries on /metrics: {}",
        metrics()
    );
    std::fs::write(&file, &kept).unwrap();
    let hangup = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    let left = poll::until(Duration::from_secs(10), Duration::from_millis(50), || {
        let body = metrics();
        body.contains("canary=\"kept\"") && !body.contains("canary=\"gone\"")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(left, "the removed canary is still exported: {}", metrics());
}

/// A `serin status --wait` running in the background; its stderr lines are
/// collected as they come.
struct Waiting {
    child: Child,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Waiting {
    fn start(args: &[&str]) -> Waiting {
        use std::io::BufRead;
        let mut child = serin()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Waiting {
            child,
            stderr,
            reader,
        }
    }

    /// Waits (bounded) until a stderr line contains `text`.
    fn said(&self, text: &str) -> bool {
        poll::until(Duration::from_secs(20), Duration::from_millis(20), || {
            self.stderr.lock().unwrap().iter().any(|l| l.contains(text))
        })
    }

    /// Exit code, stdout, stderr.
    fn finish(self) -> (Option<i32>, String, String) {
        let output = self.child.wait_with_output().unwrap();
        self.reader.join().unwrap();
        let stderr = self.stderr.lock().unwrap().join("\n");
        (output.status.code(), stdout(&output), stderr)
    }
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or("")
}

/// CI waits on the revision it started: a later revision that fails is
/// never reported as its failure; each revision's verdict stays readable
/// after later ones started; every wait ends with one sentence saying which
/// revision ended how and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_wait_is_on_its_own_revision() {
    let dir = tempfile::tempdir().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v12"))
        .await
        .unwrap();
    let v13 = Backend::start(local, Behaviour::healthy("canary v13"))
        .await
        .unwrap();
    let v14 = Backend::start(
        local,
        Behaviour {
            error_rate: 0.5,
            ..Behaviour::healthy("canary v14 (faulty)")
        },
    )
    .await
    .unwrap();
    let listen = free_port();
    // No canary in the file: rollouts start from CI. An hour per step, so
    // only the judge's decisive evidence of harm ends a rollout here.
    let file = write(
        dir.path(),
        "shop.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: shop
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:{listen}
  upstreams:
    stable: {stable}
  analysis:
    interval: 1h
    threshold: 2
    stepWeights: [20, 50]
    metrics:
    - name: request-success-rate
      thresholdRange: {{min: 99}}
      compare: {{maxDelta: 1}}
      interval: 30s
",
            stable = stable.url()
        ),
    );
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = format!("http://{api}");
    let serve = Serve::start(dir.path(), &file, api, 0);
    let mut spec = LoadSpec::new(
        format!("http://127.0.0.1:{listen}/").parse().unwrap(),
        Some(100.0),
        Duration::from_secs(90),
    );
    spec.concurrency = 4;
    let traffic = tokio::spawn(load::run(spec));
    let start = |url: &str, revision: &str| {
        output(
            serin()
                .args(["start", "shop", "--canary", url, "--revision", revision])
                .args(["--server", &server])
                .env("SERIN_TOKEN", TOKEN),
        )
    };

    // `start` says which revision it started.
    let started = start(&v13.url(), "v13");
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    assert_eq!(
        stdout(&started).trim(),
        format!("shop: started revision v13 ({})", v13.url())
    );

    // Two pipelines wait on v13: one names it, one waits on the revision
    // current when it began.
    let named = Waiting::start(&[
        "status",
        "shop",
        "--wait",
        "--revision",
        "v13",
        "--timeout",
        "60s",
        "--server",
        &server,
    ]);
    let current = Waiting::start(&[
        "status",
        "shop",
        "--wait",
        "--timeout",
        "60s",
        "--server",
        &server,
    ]);
    assert!(named.said("revision v13"), "{:?}", named.stderr);
    assert!(current.said("revision v13"), "{:?}", current.stderr);

    // v14 starts before v13's verdict, and fails.
    let started = start(&v14.url(), "v14");
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    for waiting in [named, current] {
        let (code, out, err) = waiting.finish();
        assert_eq!(code, Some(1), "{out}\n{err}");
        assert_eq!(
            last_line(&out),
            "shop: revision v13 was superseded by v14 before its verdict",
            "{out}\n{err}"
        );
        assert!(
            !out.contains("rolled back"),
            "v14's failure is not v13's: {out}"
        );
    }
    let v14_wait = output(serin().args([
        "status",
        "shop",
        "--wait",
        "--revision",
        "v14",
        "--timeout",
        "60s",
        "--server",
        &server,
    ]));
    let out = stdout(&v14_wait);
    assert_eq!(
        v14_wait.status.code(),
        Some(1),
        "{out}{}",
        stderr(&v14_wait)
    );
    let line = last_line(&out);
    assert!(
        line.starts_with(
            "shop: revision v14 rolled back at canary weight 20 %: request-success-rate canary "
        ),
        "{out}"
    );
    assert!(line.contains("< min 99"), "{line}");

    // A later revision runs; the finished ones answer at once, each with
    // its own verdict.
    let started = start(&v13.url(), "v15");
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    let began = Instant::now();
    let finished = output(serin().args([
        "status",
        "shop",
        "--wait",
        "--revision",
        "v14",
        "--timeout",
        "60s",
        "--json",
        "--server",
        &server,
    ]));
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(finished.status.code(), Some(1), "{}", stderr(&finished));
    let verdict: Value = serde_json::from_str(&stdout(&finished)).unwrap();
    assert_eq!(verdict["name"], "shop", "{verdict}");
    assert_eq!(verdict["revision"], "v14", "{verdict}");
    assert_eq!(verdict["phase"], "Failed", "{verdict}");
    assert_eq!(verdict["outcome"], "rolled-back", "{verdict}");
    assert!(
        verdict["reason"]
            .as_str()
            .unwrap()
            .starts_with("request-success-rate canary "),
        "{verdict}"
    );
    for field in ["canaryWeight", "failedChecks", "iterations"] {
        assert!(verdict.get(field).is_some(), "{field} missing: {verdict}");
    }
    assert!(
        last_line(&stderr(&finished)).starts_with("shop: revision v14 rolled back"),
        "{}",
        stderr(&finished)
    );
    let superseded = output(serin().args([
        "status",
        "shop",
        "--wait",
        "--revision",
        "v13",
        "--timeout",
        "60s",
        "--server",
        &server,
    ]));
    assert_eq!(superseded.status.code(), Some(1), "{}", stderr(&superseded));
    assert_eq!(
        last_line(&stdout(&superseded)),
        "shop: revision v13 was superseded by v14 before its verdict"
    );

    // A revision the daemon never saw: waited for, said once, then 124.
    let unknown = output(serin().args([
        "status",
        "shop",
        "--wait",
        "--revision",
        "v99",
        "--timeout",
        "2s",
        "--server",
        &server,
    ]));
    assert_eq!(unknown.status.code(), Some(124), "{}", stderr(&unknown));
    assert_eq!(
        stderr(&unknown)
            .matches("revision v99 is not known")
            .count(),
        1,
        "{}",
        stderr(&unknown)
    );

    // `status --json` has the revision with Flagger's fields.
    let listed = output(serin().args(["status", "shop", "--json", "--server", &server]));
    let shop: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(shop["revision"], "v15", "{shop}");
    for field in [
        "name",
        "phase",
        "canaryWeight",
        "failedChecks",
        "iterations",
    ] {
        assert!(shop.get(field).is_some(), "{field} missing: {shop}");
    }
    traffic.abort();
    serve.kill_9();
}
