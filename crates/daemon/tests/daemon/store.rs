//! The store on real SQLite files: migration of older state directories,
//! refusal of newer ones and of other files, and a full disk that holds the
//! rollout without losing anything.

use crate::support::*;
use rusqlite::Connection;
use serin_daemon::store::{self, SCHEMA_VERSION, Store};
use serin_rollout::{Phase, RolloutState, Timestamp};
use serin_server::{Placement, Saved, StateStore, Update};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

fn state(weight: u8) -> RolloutState {
    RolloutState {
        phase: Phase::Progressing,
        canary_weight: weight,
        revision: Some("v2".into()),
        ..RolloutState::new(Timestamp::from_millis(1_000))
    }
}

fn record(message: &str) -> Update {
    Update::Record {
        at: Timestamp::from_millis(2_000),
        record: serin_rollout::Record {
            severity: serin_rollout::Severity::Normal,
            message: message.into(),
        },
    }
}

#[test]
fn saves_and_loads_state_placement_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let placement = Placement {
        stable: Some("http://127.0.0.1:1".into()),
        canary: Some("http://127.0.0.1:2".into()),
    };
    let history = [record("one"), record("two")];
    store
        .save(
            "web",
            Saved {
                state: &state(30),
                placement: &placement,
                history: &history,
                evidence: Some(r#"{"judge":"sequential","evidence":{}}"#),
            },
        )
        .unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let web = store.load("web").unwrap().unwrap();
    assert_eq!(web.state, state(30));
    assert_eq!(web.placement, placement);
    // The judge's evidence is saved with the state.
    assert_eq!(
        web.evidence.as_deref(),
        Some(r#"{"judge":"sequential","evidence":{}}"#)
    );
    let entries = store.history("web", 0, 10, None).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].body["record"]["message"], "two");
    assert_eq!(
        store.history("web", entries[0].id, 10, None).unwrap().len(),
        1
    );
    assert!(
        store
            .history("web", 0, 10, Some("decision"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn migrates_a_version_1_directory_keeping_its_rollouts() {
    let dir = tempfile::tempdir().unwrap();
    let db = Connection::open(dir.path().join(store::DATABASE_FILE)).unwrap();
    // Version 1's schema, as released.
    db.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);
         INSERT INTO schema_version (version) VALUES (1);
         CREATE TABLE canaries (name TEXT PRIMARY KEY, state TEXT NOT NULL,
             placement TEXT NOT NULL, updated_at INTEGER NOT NULL);
         CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, canary TEXT NOT NULL,
             at INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL);",
    )
    .unwrap();
    db.execute(
        "INSERT INTO canaries VALUES ('web', ?1, '{\"stable\":null,\"canary\":null}', 0)",
        [serde_json::to_string(&state(20)).unwrap()],
    )
    .unwrap();
    drop(db);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let web = store.load("web").unwrap().unwrap();
    assert_eq!(web.state.canary_weight, 20);
    assert_eq!(web.file_target, None);
}

#[test]
fn refuses_a_newer_directory_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(store::DATABASE_FILE);
    let db = Connection::open(&path).unwrap();
    db.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);
         INSERT INTO schema_version (version) VALUES (99);",
    )
    .unwrap();
    drop(db);
    let before = std::fs::read(&path).unwrap();
    let error = Store::open(dir.path()).unwrap_err().to_string();
    assert!(
        error.contains("written by a newer serin (schema version 99"),
        "{error}"
    );
    assert!(error.contains("upgrade serin"), "{error}");
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the newer directory was changed"
    );
}

#[test]
fn one_directory_one_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    let error = Store::open(dir.path()).unwrap_err().to_string();
    assert!(error.contains("in use by another serin"), "{error}");
    // The lock goes with its holder.
    drop(first);
    Store::open(dir.path()).unwrap();
}

#[test]
fn refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(store::DATABASE_FILE), vec![b'x'; 8192]).unwrap();
    let error = Store::open(dir.path()).unwrap_err().to_string();
    assert!(error.contains("cannot open serin.db"), "{error}");
}

#[test]
fn a_full_database_refuses_the_write_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.set_max_bytes(0).unwrap();
    let big: Vec<Update> = (0..200)
        .map(|i| record(&format!("{i} {}", "x".repeat(500))))
        .collect();
    let error = store
        .save(
            "web",
            Saved {
                state: &state(10),
                placement: &Placement::default(),
                history: &big,
                evidence: None,
            },
        )
        .unwrap_err();
    assert!(error.message.contains("full"), "{}", error.message);
    assert_eq!(store.load("web").unwrap(), None, "half a save was kept");
}

/// A store whose writes fail while `full` is set, as on a full disk.
struct Flaky {
    store: Arc<Store>,
    full: AtomicBool,
}

impl StateStore for Flaky {
    fn save(&self, canary: &str, saved: Saved<'_>) -> Result<(), serin_server::StoreError> {
        if self.full.load(Ordering::SeqCst) {
            return Err(serin_server::StoreError {
                message: "database or disk is full".into(),
            });
        }
        self.store.save(canary, saved)
    }
}

/// While the disk is full the rollout holds where it was saved and says
/// so; when space returns it goes on, and the history misses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_the_rollout_says_so_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = canary_yaml(
        "web",
        free_port(),
        "http://127.0.0.1:9",
        Some(("http://127.0.0.1:10", "v2")),
        "    interval: 1s
    threshold: 2
    stepWeights: [10, 20, 30, 40]
",
    );
    let catalog = serin_spec::load_files([("web.yaml", yaml.as_str())]).unwrap();
    let prepared = serin_server::Prepared::from_catalog(&catalog, None, "web.yaml").unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let flaky = Arc::new(Flaky {
        store: store.clone(),
        full: AtomicBool::new(false),
    });
    let recorder = Arc::new(serin_proxy::Recorder::new(Duration::from_secs(2)));
    let bound = serin_proxy::Proxy::bind(
        prepared.proxy,
        prepared.routes.routes.clone(),
        recorder.clone(),
    )
    .await
    .unwrap();
    let router =
        Arc::new(serin_providers::ProxyRouter::new(bound.handle(), prepared.routes).unwrap());
    let (updates, mut watch) = tokio::sync::broadcast::channel(1024);
    let clock = serin_server::TokioClock::new();
    let driver = serin_server::Driver {
        name: "web".into(),
        rollout: serin_rollout::Rollout::new(prepared.plan, serin_server::Clock::now(&clock))
            .unwrap(),
        judge: serin_analysis::Analyzer::new(prepared.analysis).unwrap(),
        router,
        traffic: recorder,
        metrics: Vec::new(),
        webhooks: Arc::new(serin_rollout::ports::NoWebhooks),
        clock,
        updates,
        persistence: serin_server::Persistence::new(flaky.clone(), Placement::default()),
    };
    let (commands, receiver) = tokio::sync::mpsc::channel(4);
    commands
        .send(serin_server::Command::Start(
            prepared.target.expect("the file names a canary"),
        ))
        .await
        .unwrap();
    let run = tokio::spawn(driver.run_to_verdict(receiver));

    // Wait for the second step, then fill the disk.
    let mut weight = 0;
    while weight < 20 {
        if let Update::State { state, .. } = watch.recv().await.unwrap() {
            weight = state.canary_weight;
        }
    }
    flaky.full.store(true, Ordering::SeqCst);
    let saved = store.load("web").unwrap().unwrap().state;
    let mut warned = false;
    let hold = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Ok(update)) = tokio::time::timeout_at(hold, watch.recv()).await {
        match update {
            Update::State { state, .. } => panic!("advanced without saving: {state:?}"),
            Update::Record { record, .. }
                if record.message.contains("cannot save the rollout's state") =>
            {
                assert!(
                    record.message.contains("database or disk is full"),
                    "{}",
                    record.message
                );
                warned = true;
            }
            _ => {}
        }
    }
    assert!(warned, "the rollout did not say why it holds");
    assert_eq!(
        store.load("web").unwrap().unwrap().state,
        saved,
        "the saved state moved while full"
    );

    flaky.full.store(false, Ordering::SeqCst);
    let done = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(done.phase, Phase::Succeeded);
    let messages: Vec<String> = store
        .history("web", 0, 1000, Some("record"))
        .unwrap()
        .into_iter()
        .map(|e| e.body["record"]["message"].as_str().unwrap().to_owned())
        .collect();
    let advances: Vec<&String> = messages
        .iter()
        .filter(|m| m.starts_with("Advance canary weight"))
        .collect();
    assert_eq!(advances.len(), 4, "each step once: {messages:#?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("cannot save the rollout's state")),
        "the warning itself was saved once space returned: {messages:#?}"
    );
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.starts_with("Promotion completed"))
            .count(),
        1
    );
}

#[test]
fn history_is_pruned_to_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let chunk: Vec<Update> = (0..300).map(|i| record(&i.to_string())).collect();
    for _ in 0..70 {
        store
            .save(
                "web",
                Saved {
                    state: &state(10),
                    placement: &Placement::default(),
                    history: &chunk,
                    evidence: None,
                },
            )
            .unwrap();
    }
    let mut count = 0;
    let mut after = 0;
    loop {
        let page = store.history("web", after, 1000, None).unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        count += page.len();
    }
    assert_eq!(count, usize::try_from(store::HISTORY_PER_CANARY).unwrap());
}

/// Row ids are shared by every canary: a canary whose single-entry saves
/// interleave with another's must be pruned all the same.
#[test]
fn history_of_interleaved_canaries_is_pruned_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let save = |name: &str, history: &[Update]| {
        store
            .save(
                name,
                Saved {
                    state: &state(10),
                    placement: &Placement::default(),
                    history,
                    evidence: None,
                },
            )
            .unwrap();
    };
    let chunk: Vec<Update> = (0..400).map(|i| record(&i.to_string())).collect();
    for _ in 0..50 {
        save("web", &chunk);
    }
    let cap = usize::try_from(store::HISTORY_PER_CANARY).unwrap();
    let count = |name: &str| {
        let (mut count, mut after, mut last_id) = (0, 0, 0);
        loop {
            let page = store.history(name, after, 1000, None).unwrap();
            let Some(last) = page.last() else { break };
            after = last.id;
            last_id = last.id;
            count += page.len();
        }
        (count, last_id)
    };
    let (filled, last_id) = count("web");
    assert_eq!(filled, cap);
    // Give `web` the odd ids from here on: none is a multiple of anything even.
    let web_first = (last_id + 1) % 2 == 1;
    let one = [record("one")];
    for _ in 0..600 {
        if web_first {
            save("web", &one);
            save("api", &one);
        } else {
            save("api", &one);
            save("web", &one);
        }
    }
    let (web, _) = count("web");
    assert!(web < cap + 256, "web kept {web} entries, cap {cap}");
}

/// The `StateSaveFailed` condition of `canary`, if it holds.
async fn save_condition(api: std::net::SocketAddr, canary: &str) -> Option<serde_json::Value> {
    json(api, &format!("/api/v1/canaries/{canary}")).await["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "StateSaveFailed")
        .cloned()
}

/// A full disk mid-rollout is a condition of the canary in the API until
/// a save succeeds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_condition_until_a_save_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let weights: Vec<String> = (1..100).map(|w| w.to_string()).collect();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml(
            "web",
            free_port(),
            "http://127.0.0.1:9",
            Some(("http://127.0.0.1:10", "v2")),
            &format!(
                "    interval: 100ms\n    threshold: 5\n    stepWeights: [{}]\n",
                weights.join(", ")
            ),
        ),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    let api = daemon.api_addr();
    eventually(Duration::from_secs(10), "the rollout runs", async || {
        json(api, "/api/v1/canaries/web").await["phase"] == "Progressing"
    })
    .await;
    assert_eq!(save_condition(api, "web").await, None);

    // The disk fills up (the database may not grow): a save fails soon.
    let store = daemon.supervisor().store().clone();
    store.set_max_bytes(0).unwrap();
    eventually(Duration::from_secs(15), "the condition", async || {
        save_condition(api, "web").await.is_some()
    })
    .await;
    let condition = save_condition(api, "web").await.unwrap();
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "StoreWriteFailed");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot save the rollout's state: ") && message.contains("full"),
        "{message}"
    );
    assert!(condition["lastTransitionTime"].as_u64().unwrap() > 1_700_000_000_000);

    // Room again: the rollout's retry saves, and the condition goes.
    store.set_max_bytes(1 << 30).unwrap();
    eventually(
        Duration::from_secs(20),
        "the condition cleared",
        async || save_condition(api, "web").await.is_none(),
    )
    .await;
    daemon.shutdown().await;
}

/// A database another writer holds locked looks, to the daemon, like a
/// disk that does not answer. The rollout that saves waits for it; the API
/// does not: statuses and history (read on their own connection) answer at
/// once, and the start goes through once the lock is gone.
#[tokio::test] // One thread: a save blocking it would hold up the API too.
async fn a_locked_database_holds_the_save_and_not_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "web.yaml",
        &canary_yaml(
            "web",
            free_port(),
            "http://127.0.0.1:9",
            None,
            "    interval: 1h\n    threshold: 2\n    stepWeights: [50]\n",
        ),
    );
    let daemon = daemon(dir.path(), vec![file], Some(TOKEN), Duration::from_secs(60)).await;
    let api = daemon.api_addr();
    let db = dir.path().join("state").join(store::DATABASE_FILE);
    let locker = Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let start = tokio::spawn(request(
        api,
        "POST",
        "/api/v1/canaries/web/start",
        Some(TOKEN),
        br#"{"canary": "http://127.0.0.1:10", "revision": "v2"}"#,
    ));
    // Let the rollout take the start and block on the lock (SQLite waits
    // up to five seconds for it).
    let asked = std::time::Instant::now();
    tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(300)))
        .await
        .unwrap();
    let list = json(api, "/api/v1/canaries").await;
    assert_eq!(
        list["canaries"][0]["phase"], "Initialized",
        "the start was acted on before it was saved: {list}"
    );
    let history = json(api, "/api/v1/canaries/web/history").await;
    assert!(history["entries"].is_array(), "{history}");
    let waited = asked.elapsed();
    assert!(
        waited < Duration::from_millis(1_500),
        "the API waited {waited:?} for a save"
    );

    locker.execute_batch("COMMIT").unwrap();
    let (status, body) = start.await.unwrap();
    assert_eq!(status, 202, "{body}");
    let web = json(api, "/api/v1/canaries/web").await;
    assert_eq!(web["phase"], "Progressing", "{web}");
    daemon.shutdown().await;
}
