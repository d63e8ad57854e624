//! Each rollout is judged on its own traffic: after a rollback, an abort, a
//! promotion or a restart with a new revision, the judge, its evidence and
//! the metric windows start empty, and requests the previous canary served
//! before the switch are never counted for the next one.
//!
//! The service here records into a real [`Recorder`] as requests happen: 100
//! per second split by the router's weight, the canary side answered by the
//! revision the router points at, each revision with its own error rate.
//! Time is tokio's paused clock, so rollouts of minutes take no time.

use serin_analysis::{AnalysisConfig, Analyzer, Decision, JudgeKind, MetricCheck};
use serin_rollout::{
    Phase, Plan, Rollout, RolloutState, Route, Strategy, Timestamp,
    ports::{BoxFuture, CanaryTarget, NoWebhooks, PortError, Router, TrafficSource},
};
use serin_server::{Clock, Command, Driver, TokioClock, Update};
use serin_stats::{Pair, Recorder, Version};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{broadcast, mpsc};

/// One request every 10 ms: 100 per second.
const EVERY_MS: u64 = 10;

/// The longest a scenario may take on the paused clock.
const BOUND: Duration = Duration::from_secs(6 * 3600);

/// A service behind the router and its traffic, in one.
struct Service {
    clock: TokioClock,
    recorder: Recorder,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Requests up to this time (ms) are recorded.
    until: u64,
    weight: u8,
    revision: Option<String>,
    /// Error rate by canary revision (0 when not set).
    errors: HashMap<String, f64>,
    /// Accumulators that split requests and errors evenly.
    split: u32,
    failed: f64,
}

impl Service {
    fn new(clock: TokioClock, config: &AnalysisConfig) -> Arc<Self> {
        let until = clock.now().as_millis();
        Arc::new(Service {
            clock,
            recorder: Recorder::new(config.longest_window() + Duration::from_secs(1)),
            inner: Mutex::new(Inner {
                until,
                weight: 0,
                revision: None,
                errors: HashMap::new(),
                split: 0,
                failed: 0.0,
            }),
        })
    }

    /// Records every request served up to now, as routed until now.
    fn serve(&self) -> std::sync::MutexGuard<'_, Inner> {
        let now = self.clock.now().as_millis();
        let mut inner = self.inner.lock().unwrap();
        while inner.until + EVERY_MS <= now {
            inner.until += EVERY_MS;
            let at = inner.until;
            inner.split += u32::from(inner.weight);
            if inner.split >= 100 {
                inner.split -= 100;
                let rate = inner
                    .revision
                    .as_ref()
                    .and_then(|revision| inner.errors.get(revision))
                    .copied()
                    .unwrap_or(0.0);
                inner.failed += rate;
                let status = if inner.failed >= 1.0 {
                    inner.failed -= 1.0;
                    500
                } else {
                    200
                };
                self.recorder
                    .record(Version::Canary, at, status, Duration::from_millis(20));
            } else {
                self.recorder
                    .record(Version::Stable, at, 200, Duration::from_millis(20));
            }
        }
        inner
    }

    /// From now on `revision` fails `rate` of its requests.
    fn set_errors(&self, revision: &str, rate: f64) {
        self.serve().errors.insert(revision.to_owned(), rate);
    }
}

impl Router for Service {
    fn name(&self) -> &str {
        "service"
    }
    fn set_canary(&self, canary: &CanaryTarget) -> BoxFuture<'_, Result<(), PortError>> {
        self.serve().revision = Some(canary.revision.clone());
        Box::pin(async { Ok(()) })
    }
    fn set_route(&self, route: Route) -> BoxFuture<'_, Result<(), PortError>> {
        self.serve().weight = route.canary_weight;
        Box::pin(async { Ok(()) })
    }
    fn promote(&self) -> BoxFuture<'_, Result<(), PortError>> {
        drop(self.serve());
        Box::pin(async { Ok(()) })
    }
    fn finalise(&self) -> BoxFuture<'_, Result<(), PortError>> {
        drop(self.serve());
        Box::pin(async { Ok(()) })
    }
}

impl TrafficSource for Service {
    fn totals(&self) -> Pair {
        drop(self.serve());
        self.recorder.totals()
    }
    fn last(&self, now: Timestamp, span: Duration) -> Pair {
        drop(self.serve());
        self.recorder.last(now.as_millis(), span)
    }
    fn reset_windows(&self) {
        drop(self.serve());
        self.recorder.reset_windows();
    }
}

/// A daemon-style rollout loop (it waits for the next revision after each
/// verdict) over one service.
struct Rig {
    service: Arc<Service>,
    commands: mpsc::Sender<Command>,
    watch: broadcast::Receiver<Update>,
}

impl Rig {
    /// `judge` with the success rate (at least 99 %) over `window`, stepping
    /// through `steps` every `interval`, rolling back at `threshold` failed
    /// checks.
    fn new(
        judge: JudgeKind,
        steps: &[u8],
        interval: Duration,
        window: Duration,
        threshold: u32,
    ) -> Self {
        let clock = TokioClock::starting_at(Timestamp::from_millis(1_764_150_000_000));
        let mut config = AnalysisConfig::flagger_defaults().with_judge(judge);
        config.interval = interval;
        config.threshold = threshold;
        config.steps = steps.to_vec();
        // An explicit count per step: each step passes on its requests.
        config.min_requests = Some(200);
        config.metrics = vec![
            MetricCheck::named("request-success-rate")
                .range(Some(99.0), None)
                .interval(window),
        ];
        let service = Service::new(clock.clone(), &config);
        let plan = Plan::new(
            Strategy::Canary {
                steps: steps.to_vec(),
            },
            interval,
            threshold,
        );
        let (updates, watch) = broadcast::channel(1 << 16);
        let driver = Driver {
            name: "shop".into(),
            rollout: Rollout::new(plan, clock.now()).unwrap(),
            judge: Analyzer::new(config).unwrap(),
            router: service.clone(),
            traffic: service.clone(),
            metrics: Vec::new(),
            webhooks: Arc::new(NoWebhooks),
            clock,
            updates,
            persistence: serin_server::driver::Persistence::none(),
        };
        let (commands, receiver) = mpsc::channel(4);
        tokio::spawn(async move { driver.serve_revisions(receiver).await });
        Rig {
            service,
            commands,
            watch,
        }
    }

    async fn send(&self, command: Command) {
        self.commands.send(command).await.unwrap();
    }

    async fn start(&self, revision: &str, errors: f64) {
        self.service.set_errors(revision, errors);
        self.send(Command::Start(CanaryTarget {
            address: format!("http://{revision}"),
            revision: revision.into(),
        }))
        .await;
    }

    /// Updates until `revision`'s rollout ends: its final state and the
    /// decisions taken while it was the revision rolled out.
    async fn verdict(&mut self, revision: &str) -> (RolloutState, Vec<Decision>) {
        let mut current = None::<String>;
        let mut decisions = Vec::new();
        let wait = async {
            loop {
                match self.watch.recv().await.unwrap() {
                    Update::State { state, .. } => {
                        current.clone_from(&state.revision);
                        if state.revision.as_deref() == Some(revision) && state.phase.is_terminal()
                        {
                            return *state;
                        }
                    }
                    Update::Decision { decision, .. } if current.as_deref() == Some(revision) => {
                        decisions.push(decision);
                    }
                    _ => {}
                }
            }
        };
        let state = tokio::time::timeout(BOUND, wait)
            .await
            .unwrap_or_else(|_| panic!("no verdict on {revision}"));
        (state, decisions)
    }

    /// The latest state published so far.
    fn latest(&mut self) -> RolloutState {
        let mut latest = None;
        while let Ok(update) = self.watch.try_recv() {
            if let Update::State { state, .. } = update {
                latest = Some(*state);
            }
        }
        latest.expect("a state was published")
    }

    /// Updates until the rollout reaches `phase`.
    async fn phase(&mut self, phase: Phase) {
        let wait = async {
            loop {
                if let Update::State { state, .. } = self.watch.recv().await.unwrap()
                    && state.phase == phase
                {
                    return;
                }
            }
        };
        tokio::time::timeout(BOUND, wait)
            .await
            .unwrap_or_else(|_| panic!("never {phase}"));
    }
}

fn rollbacks(decisions: &[Decision]) -> usize {
    decisions.iter().filter(|d| d.is_rollback()).count()
}

const MINUTE: Duration = Duration::from_secs(60);
const STEPS: [u8; 5] = [10, 20, 30, 40, 50];

#[tokio::test(start_paused = true)]
async fn a_fixed_build_after_a_rollback_is_promoted() {
    let mut rig = Rig::new(JudgeKind::Sequential, &STEPS, MINUTE, MINUTE, 5);
    rig.start("v2", 0.2).await;
    let (v2, decisions) = rig.verdict("v2").await;
    assert_eq!(v2.phase, Phase::Failed, "{}", v2.message);
    assert_eq!(rollbacks(&decisions), 1, "{decisions:?}");
    // The fix: the judge that rolled v2 back does not judge v3.
    rig.start("v3", 0.0).await;
    let (v3, decisions) = rig.verdict("v3").await;
    assert_eq!(v3.phase, Phase::Succeeded, "{}", v3.message);
    assert_eq!(rollbacks(&decisions), 0, "{decisions:?}");
    // And again: every later start is judged on its own.
    rig.start("v4", 0.0).await;
    let (v4, _) = rig.verdict("v4").await;
    assert_eq!(v4.phase, Phase::Succeeded, "{}", v4.message);
}

#[tokio::test(start_paused = true)]
async fn a_fixed_build_after_an_abort_is_judged_on_its_own_window() {
    // The threshold judge reads a five-minute window at each 30s interval.
    let interval = Duration::from_secs(30);
    let mut rig = Rig::new(JudgeKind::Threshold, &[50], interval, 5 * MINUTE, 1);
    rig.start("v2", 0.2).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    rig.send(Command::Abort).await;
    rig.phase(Phase::Failed).await;
    rig.start("v3", 0.0).await;
    let (v3, decisions) = rig.verdict("v3").await;
    assert_eq!(v3.phase, Phase::Succeeded, "{}", v3.message);
    let first = &decisions[0].metrics[0];
    assert_eq!(first.canary, Some(100.0), "{first:?}");
    // Up to 30 s at 50 % of 100 requests per second (windows count whole
    // seconds, and the first step waits for one to begin), and nothing of
    // v2's.
    assert!(
        (1_200..=1_550).contains(&first.canary_requests),
        "{first:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_build_after_a_promotion_is_not_diluted() {
    let interval = Duration::from_secs(30);
    let mut rig = Rig::new(JudgeKind::Threshold, &STEPS, interval, 5 * MINUTE, 1);
    rig.start("v2", 0.0).await;
    let (v2, _) = rig.verdict("v2").await;
    assert_eq!(v2.phase, Phase::Succeeded, "{}", v2.message);
    rig.start("v3", 0.05).await;
    let (v3, decisions) = rig.verdict("v3").await;
    assert_eq!(v3.phase, Phase::Failed, "{}", v3.message);
    // At its first analysis: 5 % of its own requests, not of v2's too.
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let first = &decisions[0].metrics[0];
    let rate = first.canary.unwrap();
    assert!((94.0..=96.0).contains(&rate), "{first:?}");
    assert!(v3.message.contains("at canary weight 10"), "{}", v3.message);
}

#[tokio::test(start_paused = true)]
async fn a_new_revision_mid_rollout_is_judged_on_its_own_window() {
    let interval = Duration::from_secs(30);
    let mut rig = Rig::new(JudgeKind::Threshold, &[50], interval, 5 * MINUTE, 1);
    rig.start("v2", 0.2).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    // v3 replaces v2 before v2's first analysis.
    let v2 = rig.latest();
    assert_eq!((v2.phase, v2.canary_weight), (Phase::Progressing, 50));
    rig.start("v3", 0.0).await;
    let (v3, decisions) = rig.verdict("v3").await;
    assert_eq!(v3.phase, Phase::Succeeded, "{}", v3.message);
    assert!(v3.message.contains("revision v3"), "{}", v3.message);
    let first = &decisions[0].metrics[0];
    assert_eq!(first.canary, Some(100.0), "{first:?}");
}

#[tokio::test(start_paused = true)]
async fn the_old_canary_requests_before_a_restart_never_reach_the_new_judge() {
    let mut rig = Rig::new(JudgeKind::Sequential, &STEPS, MINUTE, MINUTE, 5);
    rig.start("v2", 0.0).await;
    // v2 takes its first steps, then breaks just after an observation and
    // serves a second of errors before v3 replaces it.
    tokio::time::sleep(Duration::from_millis(2 * 60_000 + 10)).await;
    rig.service.set_errors("v2", 1.0);
    tokio::time::sleep(Duration::from_millis(980)).await;
    let v2 = rig.latest();
    assert_eq!((v2.phase, v2.canary_weight), (Phase::Progressing, 30));
    rig.start("v3", 0.0).await;
    let (v3, decisions) = rig.verdict("v3").await;
    assert_eq!(v3.phase, Phase::Succeeded, "{}", v3.message);
    assert_eq!(rollbacks(&decisions), 0, "{decisions:?}");
}

#[tokio::test(start_paused = true)]
async fn a_restart_with_a_new_revision_is_judged_by_a_fresh_judge() {
    let mut rig = Rig::new(JudgeKind::Sequential, &STEPS, MINUTE, MINUTE, 5);
    rig.start("v2", 0.0).await;
    tokio::time::sleep(Duration::from_secs(90)).await;
    let v2 = rig.latest();
    assert_eq!((v2.phase, v2.canary_weight), (Phase::Progressing, 20));
    rig.start("v3", 0.0).await;
    let (v3, decisions) = rig.verdict("v3").await;
    assert_eq!(v3.phase, Phase::Succeeded, "{}", v3.message);
    assert_eq!(rollbacks(&decisions), 0, "{decisions:?}");
    // Its first analysis, a minute at 10 %, counts v3's requests only.
    let first = &decisions[0].metrics[0];
    assert!((550..=650).contains(&first.canary_requests), "{first:?}");
}
