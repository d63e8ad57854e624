//! State read back from the store is checked like input: a row that no
//! rollout could have written (edited by hand, or by a broken disk) stops
//! the daemon at start with the canary and the field, instead of serving
//! "250 %" and hanging later commands.

use crate::support::*;
use rusqlite::Connection;
use serin_daemon::{Error, store::DATABASE_FILE};
use std::{path::Path, time::Duration};

const TWO_STEPS: &str = "    interval: 1h
    threshold: 2
    stepWeights: [10, 50]
";

/// Writes `myapp`'s file and a row for it as a daemon would (between
/// rollouts); returns the file.
async fn stored_once(dir: &Path) -> std::path::PathBuf {
    use serin_server::StateStore as _;
    let file = write(
        dir,
        "myapp.yaml",
        &canary_yaml("myapp", free_port(), "http://127.0.0.1:9", None, TWO_STEPS),
    );
    let store = serin_daemon::Store::open(&dir.join("state")).unwrap();
    let state = serin_rollout::RolloutState {
        phase: serin_rollout::Phase::Initialized,
        ..serin_rollout::RolloutState::new(serin_rollout::Timestamp::from_millis(1_000))
    };
    store
        .save(
            "myapp",
            serin_server::Saved {
                state: &state,
                placement: &serin_server::Placement::default(),
                history: &[],
                evidence: None,
            },
        )
        .unwrap();
    file
}

/// Sets `field` of `myapp`'s stored state to `value` (JSON), by hand.
fn tamper(dir: &Path, field: &str, value: &str) {
    let db = Connection::open(dir.join("state").join(DATABASE_FILE)).unwrap();
    let changed = db
        .execute(
            &format!(
                "UPDATE canaries SET state = json_set(state, '$.{field}', json('{value}')) WHERE name = 'myapp'"
            ),
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

async fn refused(dir: &Path, file: &Path) -> Vec<String> {
    let started = serin_daemon::Daemon::start(
        serin_daemon::Config {
            files: vec![file.to_path_buf()],
            api: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: dir.join("state"),
            token: None,
            poll: Duration::from_secs(60),
        },
        Vec::new(),
    )
    .await;
    match started {
        Err(Error::Invalid(problems)) => problems,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(daemon) => {
            let weight = daemon.supervisor().get("myapp").map(|s| s.canary_weight);
            daemon.shutdown().await;
            panic!("started with the tampered state (canary weight {weight:?})")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_over_100_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = stored_once(dir.path()).await;
    tamper(dir.path(), "canaryWeight", "250");
    let problems = refused(dir.path(), &file).await;
    assert!(
        problems.iter().any(|p| p.starts_with(
            "state for canary myapp: canaryWeight: must be between 0 and 100, got 250"
        )),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("serin forget myapp")),
        "says how to recover: {problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_no_rollout_could_reach_are_refused() {
    let long = format!("\"{}\"", "x".repeat(5_000));
    let cases: [(&[(&str, &str)], &str); 5] = [
        // More steps taken than the plan has (two).
        (
            &[
                ("phase", r#""Progressing""#),
                ("revision", r#""v2""#),
                ("stepIndex", "7"),
            ][..],
            "stepIndex: ",
        ),
        (
            &[("mirror", "101")][..],
            "mirror: must be between 0 and 100, got 101",
        ),
        // A rollout in progress without a revision.
        (
            &[("phase", r#""Progressing""#), ("revision", "null")][..],
            "revision: ",
        ),
        // A rolled-back canary still taking traffic.
        (
            &[
                ("phase", r#""Failed""#),
                ("revision", r#""v2""#),
                ("canaryWeight", "40"),
            ][..],
            "canaryWeight: ",
        ),
        (&[("revision", long.as_str())][..], "revision: "),
    ];
    for (edits, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = stored_once(dir.path()).await;
        for (field, value) in edits {
            tamper(dir.path(), field, value);
        }
        let problems = refused(dir.path(), &file).await;
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&format!("state for canary myapp: {expected}"))),
            "{edits:?}: {problems:?}"
        );
    }
}
