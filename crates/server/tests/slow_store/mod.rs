//! A state store that blocks (a slow disk, a locked database) holds the
//! rollout whose state it saves, and nothing else: the driver calls it on
//! tokio's blocking pool, so the other rollouts keep going.

use super::{JudgeKind, RecordingRouter, spawn_saving_rollout};
use serin_rollout::Phase;
use serin_server::{Persistence, Placement, Saved, StateStore, StoreError, Update};
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

/// How long the blocked save waits for the test before giving up on it:
/// far longer than the test needs when nothing else is held up.
const PATIENCE: Duration = Duration::from_secs(10);

/// A store whose first save blocks its thread until the test releases it.
struct BlockingStore {
    release: Mutex<Option<mpsc::Receiver<()>>>,
    /// The first save has begun (and is blocked).
    entered: AtomicBool,
    /// The first save is over.
    finished: AtomicBool,
    /// The first save was released by the test, not by its patience.
    released: AtomicBool,
}

impl StateStore for BlockingStore {
    fn save(&self, _canary: &str, _saved: Saved<'_>) -> Result<(), StoreError> {
        let release = self.release.lock().unwrap().take();
        if let Some(release) = release {
            self.entered.store(true, Ordering::SeqCst);
            let in_time = release.recv_timeout(PATIENCE).is_ok();
            self.released.store(in_time, Ordering::SeqCst);
            self.finished.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Yields to the runtime until `done`, for at most [`PATIENCE`] of real
/// time (paused tokio time does not move while a blocking save runs).
async fn until(done: impl Fn() -> bool) {
    let began = Instant::now();
    while !done() && began.elapsed() < PATIENCE {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_blocked_save_holds_its_own_rollout_and_no_other() {
    let (release, released) = mpsc::channel();
    let store = Arc::new(BlockingStore {
        release: Mutex::new(Some(released)),
        entered: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        released: AtomicBool::new(false),
    });
    let (_slow_router, _slow_commands, mut slow_updates, _slow_task) = spawn_saving_rollout(
        RecordingRouter::default(),
        0.0,
        JudgeKind::Threshold,
        Persistence::new(store.clone(), Placement::default()),
    );
    // The slow rollout takes its start and blocks saving it. (On this
    // one-thread runtime a save made on the async worker would block the
    // test too, until the store gives up waiting.)
    until(|| store.entered.load(Ordering::SeqCst)).await;
    assert!(store.entered.load(Ordering::SeqCst), "the save never began");

    // Meanwhile another rollout takes its start, saves and says so.
    let (_router, _commands, mut updates, _task) = spawn_rollout_of_another_canary();
    let state = loop {
        if let Update::State { state, .. } = updates.recv().await.unwrap() {
            break state;
        }
    };
    assert_eq!(state.phase, Phase::Progressing);
    assert!(
        !store.finished.load(Ordering::SeqCst),
        "the other rollout waited for the blocked save"
    );

    // The slow rollout goes on once its save is done, not before.
    assert!(slow_updates.try_recv().is_err(), "acted before its save");
    release.send(()).unwrap();
    let state = loop {
        if let Update::State { state, .. } = slow_updates.recv().await.unwrap() {
            break state;
        }
    };
    assert_eq!(state.phase, Phase::Progressing);
    assert!(
        store.released.load(Ordering::SeqCst),
        "the blocked save held up the runtime until it gave up"
    );
}

fn spawn_rollout_of_another_canary() -> (
    Arc<RecordingRouter>,
    tokio::sync::mpsc::Sender<serin_server::Command>,
    tokio::sync::broadcast::Receiver<Update>,
    tokio::task::JoinHandle<serin_rollout::RolloutState>,
) {
    spawn_saving_rollout(
        RecordingRouter::default(),
        0.0,
        JudgeKind::Threshold,
        Persistence::none(),
    )
}
