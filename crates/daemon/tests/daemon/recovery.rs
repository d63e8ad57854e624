//! Property tests of crash recovery on the real code: the rollout loop
//! (`serin_server::Driver`) saving to the real SQLite [`Store`] in a temporary
//! directory, killed (dropped) at random points — inside a save before it
//! was written, after it was written but before any of its actions, in the
//! middle of its actions — and restarted from what the store holds, the way
//! the daemon restarts a canary: a fresh proxy, the routes restored from the
//! saved state before anything is served, then the loop, which recovers
//! (`Driver::run_to_verdict`). A rollout killed any number of times ends as
//! the same rollout never killed: the same verdict, the same records in the
//! same order (each step, the promotion and the rollback once: nothing
//! skipped, nothing repeated), the router never told to promote twice.

use proptest::prelude::*;
use serin_analysis::{AnalysisConfig, Analyzer, JudgeKind, MetricCheck};
use serin_daemon::Store;
use serin_rollout::{
    Phase, Placement, Plan, Rollout, RolloutState, Route, Strategy as Steps, Timestamp,
    ports::{BoxFuture, CanaryTarget, NoWebhooks, PortError, Router, TrafficSource},
};
use serin_server::{
    Clock, Command, Driver, Persistence, Saved, StateStore, StoreError, TokioClock,
};
use serin_stats::{Counts, Pair};
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};
use tokio::sync::Notify;

const NAME: &str = "web";
const FILE_STABLE: &str = "http://stable";
const CANARY: &str = "http://canary";
const INTERVAL: Duration = Duration::from_secs(10);
/// Requests per second, split by the route's weight.
const RATE: u64 = 100;
/// How long a killed save waits for the test to drop its loop.
const PATIENCE: Duration = Duration::from_secs(10);

/// Where the runtime dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    /// At the `nth` save of the run: before it is written (`written`
    /// false) or after it is written, before any of its actions.
    Save { nth: usize, written: bool },
    /// At the `nth` router call of the run, made from the loop: in the
    /// middle of an event's actions (or of a recovery).
    Call { nth: usize },
}

/// Counts saves and router calls and says when to die.
#[derive(Default)]
struct KillSwitch {
    kills: Mutex<Vec<Kill>>,
    saves: AtomicUsize,
    calls: AtomicUsize,
    /// Router calls count once the loop runs (restoring routes is the
    /// harness's, as the daemon's launch does it before the loop).
    armed: AtomicBool,
    /// A kill point was reached; the loop is stuck there until dropped.
    fired: Notify,
    /// Lets a killed save's thread go once its loop was dropped.
    resume: Mutex<Option<mpsc::Sender<()>>>,
    /// Kills that happened.
    deaths: AtomicUsize,
}

impl KillSwitch {
    fn new(kills: Vec<Kill>) -> Self {
        KillSwitch {
            kills: Mutex::new(kills),
            ..KillSwitch::default()
        }
    }

    /// Whether the save now beginning dies, and when.
    fn at_save(&self) -> Option<bool> {
        let nth = self.saves.fetch_add(1, Ordering::SeqCst) + 1;
        let mut kills = self.kills.lock().unwrap();
        let at = kills
            .iter()
            .position(|kill| matches!(kill, Kill::Save { nth: n, .. } if *n == nth))?;
        match kills.remove(at) {
            Kill::Save { written, .. } => Some(written),
            Kill::Call { .. } => None,
        }
    }

    /// Whether the router call now beginning dies.
    fn at_call(&self) -> bool {
        if !self.armed.load(Ordering::SeqCst) {
            return false;
        }
        let nth = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let mut kills = self.kills.lock().unwrap();
        match kills.iter().position(|kill| *kill == Kill::Call { nth }) {
            Some(at) => {
                kills.remove(at);
                self.deaths.fetch_add(1, Ordering::SeqCst);
                self.fired.notify_one();
                true
            }
            None => false,
        }
    }

    /// Dies inside a save: tells the test, then waits (on the blocking
    /// pool) until the loop that called it was dropped.
    fn die_in_save(&self) {
        let (resume, resumed) = mpsc::channel();
        *self.resume.lock().unwrap() = Some(resume);
        self.deaths.fetch_add(1, Ordering::SeqCst);
        self.fired.notify_one();
        let _ = resumed.recv_timeout(PATIENCE);
    }

    fn resume(&self) {
        if let Some(resume) = self.resume.lock().unwrap().take() {
            let _ = resume.send(());
        }
    }
}

/// The real store, with kill points.
struct KillingStore {
    store: Arc<Store>,
    switch: Arc<KillSwitch>,
}

impl StateStore for KillingStore {
    fn save(&self, canary: &str, saved: Saved<'_>) -> Result<(), StoreError> {
        match self.switch.at_save() {
            None => self.store.save(canary, saved),
            Some(false) => {
                self.switch.die_in_save();
                Err(StoreError {
                    message: "killed".into(),
                })
            }
            Some(true) => {
                let result = self.store.save(canary, saved);
                self.switch.die_in_save();
                result
            }
        }
    }
}

/// What the balancer does now, and what it was told over all lives.
#[derive(Clone, Debug, Default)]
struct Table {
    stable: String,
    canary: Option<String>,
    route: Route,
    /// Weights applied, a repeat of the last one left out.
    weights: Vec<u8>,
    promotions: u32,
}

/// A balancer that outlives the runtime's crashes (its table is reset to
/// a fresh proxy's at each restart) and whose calls are kill points.
struct Balancer {
    table: Mutex<Table>,
    switch: Arc<KillSwitch>,
}

impl Balancer {
    fn change(&self, change: impl FnOnce(&mut Table)) -> BoxFuture<'_, Result<(), PortError>> {
        if self.switch.at_call() {
            // Killed mid-call: the loop never hears back.
            return Box::pin(std::future::pending());
        }
        change(&mut self.table.lock().unwrap());
        Box::pin(async { Ok(()) })
    }

    /// A fresh proxy, as a restarted daemon binds: everything on `stable`.
    fn restart(&self, stable: &str) {
        let mut table = self.table.lock().unwrap();
        stable.clone_into(&mut table.stable);
        table.canary = None;
        table.route = Route::STABLE;
    }

    fn table(&self) -> Table {
        self.table.lock().unwrap().clone()
    }

    fn weight(&self) -> u64 {
        u64::from(self.table.lock().unwrap().route.canary_weight)
    }
}

impl Router for Balancer {
    fn name(&self) -> &str {
        "balancer"
    }
    fn set_canary(&self, canary: &CanaryTarget) -> BoxFuture<'_, Result<(), PortError>> {
        let address = canary.address.clone();
        self.change(move |table| table.canary = Some(address))
    }
    fn set_route(&self, route: Route) -> BoxFuture<'_, Result<(), PortError>> {
        self.change(move |table| {
            table.route = route;
            if table.weights.last() != Some(&route.canary_weight) {
                table.weights.push(route.canary_weight);
            }
        })
    }
    fn promote(&self) -> BoxFuture<'_, Result<(), PortError>> {
        self.change(|table| {
            if let Some(canary) = table.canary.clone() {
                table.stable = canary;
            }
            table.promotions += 1;
        })
    }
    fn finalise(&self) -> BoxFuture<'_, Result<(), PortError>> {
        self.change(|table| {
            table.canary = None;
            table.route = Route::STABLE;
        })
    }
}

/// [`RATE`] requests a second split by the balancer's weight; the canary
/// fails `canary_errors` of its own. Windows are steady traffic at the
/// current weight, so a restarted judge sees what the first one saw.
struct Traffic {
    balancer: Arc<Balancer>,
    clock: TokioClock,
    started: Timestamp,
    canary_errors: f64,
    totals: Mutex<(u64, Pair)>,
}

impl Traffic {
    fn record(counts: &mut Counts, requests: u64, errors: u64) {
        for i in 0..requests {
            let status = if i < errors { 500 } else { 200 };
            counts.record(status, Duration::from_millis(20));
        }
    }

    fn split(&self, seconds: u64) -> Pair {
        let weight = self.balancer.weight();
        let canary = RATE * weight / 100 * seconds;
        let errors = (canary as f64 * self.canary_errors).round() as u64;
        let mut pair = Pair::default();
        Self::record(&mut pair.canary, canary, errors);
        Self::record(&mut pair.stable, RATE * (100 - weight) / 100 * seconds, 0);
        pair
    }
}

impl TrafficSource for Traffic {
    fn totals(&self) -> Pair {
        let second = self.clock.now().saturating_since(self.started).as_secs();
        let mut totals = self.totals.lock().unwrap();
        while totals.0 < second {
            totals.0 += 1;
            let more = self.split(1);
            totals.1.merge(&more);
        }
        totals.1.clone()
    }
    fn last(&self, _now: Timestamp, span: Duration) -> Pair {
        self.split(span.as_secs())
    }
    fn reset_windows(&self) {}
}

/// One rollout's setting.
#[derive(Clone, Debug)]
struct Case {
    steps: Vec<u8>,
    threshold: u32,
    confirm_promotion: bool,
    canary_errors: f64,
}

impl Case {
    fn plan(&self) -> Plan {
        let mut plan = Plan::new(
            Steps::Canary {
                steps: self.steps.clone(),
            },
            INTERVAL,
            self.threshold,
        );
        plan.hooks.confirm_promotion = self.confirm_promotion;
        // Each death costs an interval of waiting for a lost answer; the
        // deadline is not what this test is about.
        plan.progress_deadline = Duration::from_secs(24 * 3_600);
        plan
    }

    fn analysis(&self) -> AnalysisConfig {
        let mut config = AnalysisConfig::flagger_defaults().with_judge(JudgeKind::Threshold);
        config.interval = INTERVAL;
        config.threshold = self.threshold;
        config.steps = self.steps.clone();
        config.metrics = vec![
            MetricCheck::named("request-success-rate")
                .range(Some(99.0), None)
                .interval(INTERVAL),
        ];
        config
    }
}

/// How a run ended.
#[derive(Debug)]
struct Ended {
    state: RolloutState,
    /// The records the store kept, asked-again questions left out (a lost
    /// answer is asked again after a restart: that is the recovery).
    records: Vec<String>,
    balancer: Table,
    deaths: usize,
}

/// Runs one rollout to its verdict, dying at `kills` and restarting from
/// the store each time.
async fn run(case: &Case, kills: Vec<Kill>) -> Ended {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let switch = Arc::new(KillSwitch::new(kills));
    let balancer = Arc::new(Balancer {
        table: Mutex::new(Table::default()),
        switch: switch.clone(),
    });
    let clock = TokioClock::starting_at(Timestamp::from_millis(1_764_150_000_000));
    let traffic = Arc::new(Traffic {
        balancer: balancer.clone(),
        clock: clock.clone(),
        started: clock.now(),
        canary_errors: case.canary_errors,
        totals: Mutex::new((0, Pair::default())),
    });
    let killing: Arc<dyn StateStore> = Arc::new(KillingStore {
        store: store.clone(),
        switch: switch.clone(),
    });
    let target = CanaryTarget {
        address: CANARY.into(),
        revision: "v2".into(),
    };
    let (updates, _) = tokio::sync::broadcast::channel(1 << 12);
    // Far more than any case needs, even dying an interval at a time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6 * 3_600);
    for _life in 0..64 {
        // (Re)start as the daemon does: the stored state, or a canary seen
        // for the first time; a fresh proxy on the stable upstream.
        let (state, placement) = match store.load(NAME).unwrap() {
            Some(stored) => (stored.state, stored.placement),
            None => {
                let (_, state) = Rollout::initialized(case.plan(), clock.now())
                    .unwrap()
                    .into_parts();
                (state, Placement::default())
            }
        };
        balancer.restart(placement.stable_or(FILE_STABLE));
        let mut driver = Driver {
            name: NAME.into(),
            rollout: Rollout::restore(case.plan(), state.clone()).unwrap(),
            judge: Analyzer::new(case.analysis()).unwrap(),
            router: balancer.clone(),
            traffic: traffic.clone(),
            metrics: Vec::new(),
            webhooks: Arc::new(NoWebhooks),
            clock: clock.clone(),
            updates: updates.clone(),
            persistence: Persistence::new(killing.clone(), placement.clone()),
        };
        driver.restore_routes().await.unwrap();
        // Routes as saved before a request is served.
        let table = balancer.table();
        assert_eq!(table.route, state.route(), "restored route");
        if state.phase.is_active() {
            assert_eq!(table.canary, placement.canary, "restored canary upstream");
        }
        switch.armed.store(true, Ordering::SeqCst);
        let (commands, receiver) = tokio::sync::mpsc::channel(4);
        if state.revision.is_none() {
            // The start was never saved: whoever asked asks again (the
            // daemon's file target, a CI client).
            commands.try_send(Command::Start(target.clone())).unwrap();
        }
        let mut task = tokio::spawn(driver.run_to_verdict(receiver));
        let fired = switch.fired.notified();
        tokio::pin!(fired);
        let ended = tokio::select! {
            ended = &mut task => Some(ended.unwrap().unwrap()),
            () = &mut fired => None,
            () = tokio::time::sleep_until(deadline) => panic!("no verdict: {case:?}"),
        };
        switch.armed.store(false, Ordering::SeqCst);
        drop(commands);
        if let Some(state) = ended {
            let records = store
                .history(NAME, 0, 10_000, Some("record"))
                .unwrap()
                .into_iter()
                .map(|entry| entry.body["record"]["message"].as_str().unwrap().to_owned())
                .filter(|message| !message.starts_with("No answer from the"))
                .collect();
            assert_eq!(store.load(NAME).unwrap().unwrap().state, state);
            return Ended {
                state,
                records,
                balancer: balancer.table(),
                deaths: switch.deaths.load(Ordering::SeqCst),
            };
        }
        // Dead: the loop is dropped wherever it was, then its save's
        // thread (if it died in a save) lets go.
        task.abort();
        let _ = task.await;
        switch.resume();
    }
    panic!("no verdict after 64 lives");
}

fn cases() -> impl proptest::strategy::Strategy<Value = Case> {
    (
        proptest::collection::btree_set(1u8..=20, 1..5),
        1u32..4,
        any::<bool>(),
        prop_oneof![3 => Just(0.0), 1 => Just(0.2)],
    )
        .prop_map(
            |(steps, threshold, confirm_promotion, canary_errors)| Case {
                steps: steps.into_iter().map(|step| step * 5).collect(),
                threshold,
                confirm_promotion,
                canary_errors,
            },
        )
}

fn kills() -> impl proptest::strategy::Strategy<Value = Vec<Kill>> {
    let kill = prop_oneof![
        (1usize..16, any::<bool>()).prop_map(|(nth, written)| Kill::Save { nth, written }),
        (1usize..20).prop_map(|nth| Kill::Call { nth }),
    ];
    proptest::collection::vec(kill, 1..5)
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn killing_the_runtime_changes_nothing(case in cases(), kills in kills()) {
        let (calm, killed) = paused_runtime().block_on(async {
            let calm = run(&case, Vec::new()).await;
            let killed = run(&case, kills.clone()).await;
            (calm, killed)
        });
        prop_assert!(calm.state.phase.is_terminal(), "{:?}", calm.state.phase);
        prop_assert_eq!(calm.deaths, 0);
        // Same verdict, same way there.
        prop_assert_eq!(killed.state.phase, calm.state.phase);
        prop_assert_eq!(killed.state.failed_checks, calm.state.failed_checks);
        // (When it happened differs: each death costs time.)
        prop_assert_eq!(killed.state.condition.status, calm.state.condition.status);
        prop_assert_eq!(&killed.state.condition.message, &calm.state.condition.message);
        prop_assert_eq!(&killed.records, &calm.records, "{} deaths", killed.deaths);
        // No step skipped or taken twice on the balancer, never promoted
        // twice; promoted exactly when the verdict says so.
        prop_assert_eq!(&killed.balancer.weights, &calm.balancer.weights);
        prop_assert!(killed.balancer.promotions <= 1);
        let promoted = calm.state.phase == Phase::Succeeded;
        let stable = if promoted { CANARY } else { FILE_STABLE };
        prop_assert_eq!(killed.balancer.stable.as_str(), stable);
        prop_assert_eq!(killed.balancer.route, Route::STABLE);
        let copies = killed.records.iter().filter(|r| r.starts_with("Copying")).count();
        prop_assert_eq!(copies, usize::from(promoted));
    }
}
