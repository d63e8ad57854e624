//! The runtime loop on tokio's paused clock: whole rollouts through hours of
//! intervals without sleeping, against a router that records what it is told
//! and a traffic source that serves made-up requests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

/// Every webhook type during real rollouts over loopback.
mod hooks;
/// Each rollout judged on its own traffic, whatever came before it.
mod own_traffic;
/// Live rollouts replayed from their access logs.
mod replay;
/// A slow state store holds its own rollout only.
mod slow_store;

use serin_analysis::{AnalysisConfig, Analyzer, JudgeKind, MetricCheck};
use serin_rollout::{
    Phase, Plan, Rollout, RolloutState, Route, Strategy, Timestamp,
    ports::{BoxFuture, CanaryTarget, NoWebhooks, PortError, Router, TrafficSource},
};
use serin_server::{Clock, Command, Driver, TokioClock, Update};
use serin_stats::{Counts, Pair};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{broadcast, mpsc};

/// Whether the router refuses a route, given it and the calls so far.
type Refuse = Box<dyn FnMut(Route, &[String]) -> bool + Send>;

/// Remembers every route and lifecycle call, in order; refuses the routes
/// `refuse` says (recorded as `refused weight N`).
#[derive(Default)]
struct RecordingRouter {
    calls: Mutex<Vec<String>>,
    weight: Mutex<u8>,
    refuse: Mutex<Option<Refuse>>,
    /// How many more canary upstreams to refuse.
    refuse_canary: Mutex<u32>,
}

impl RecordingRouter {
    /// Refuses `times` calls for `weight` once `after` was applied (any
    /// time when `after` is `None`), then accepts.
    fn refusing(weight: u8, times: u32, after: Option<&str>) -> Self {
        let after = after.map(str::to_owned);
        let mut left = times;
        let refuse: Refuse = Box::new(move |route, calls| {
            let armed = after
                .as_deref()
                .is_none_or(|after| calls.iter().any(|c| c == after));
            if route.canary_weight == weight && armed && left > 0 {
                left -= 1;
                return true;
            }
            false
        });
        RecordingRouter {
            refuse: Mutex::new(Some(refuse)),
            ..RecordingRouter::default()
        }
    }
}

impl Router for RecordingRouter {
    fn name(&self) -> &str {
        "recording"
    }
    fn set_canary(&self, canary: &CanaryTarget) -> BoxFuture<'_, Result<(), PortError>> {
        let mut left = self.refuse_canary.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            self.calls
                .lock()
                .unwrap()
                .push(format!("refused canary {}", canary.revision));
            return Box::pin(async {
                Err(PortError::Unavailable {
                    system: "balancer".into(),
                    message: "connection refused".into(),
                })
            });
        }
        self.calls
            .lock()
            .unwrap()
            .push(format!("canary {}", canary.revision));
        Box::pin(async { Ok(()) })
    }
    fn set_route(&self, route: Route) -> BoxFuture<'_, Result<(), PortError>> {
        let mut calls = self.calls.lock().unwrap();
        if let Some(refuse) = self.refuse.lock().unwrap().as_mut()
            && refuse(route, &calls)
        {
            calls.push(format!("refused weight {}", route.canary_weight));
            return Box::pin(async {
                Err(PortError::Unavailable {
                    system: "balancer".into(),
                    message: "connection refused".into(),
                })
            });
        }
        drop(calls);
        *self.weight.lock().unwrap() = route.canary_weight;
        self.calls
            .lock()
            .unwrap()
            .push(format!("weight {}", route.canary_weight));
        Box::pin(async { Ok(()) })
    }
    fn promote(&self) -> BoxFuture<'_, Result<(), PortError>> {
        self.calls.lock().unwrap().push("promote".into());
        Box::pin(async { Ok(()) })
    }
    fn finalise(&self) -> BoxFuture<'_, Result<(), PortError>> {
        self.calls.lock().unwrap().push("finalise".into());
        Box::pin(async { Ok(()) })
    }
}

/// 100 requests per second split by the router's weight; the canary fails
/// `canary_errors` of its requests once `fail_after` has passed.
struct SyntheticTraffic {
    router: Arc<RecordingRouter>,
    clock: TokioClock,
    started: Timestamp,
    canary_errors: f64,
    /// (second, cumulative totals) so totals grow with paused time.
    totals: Mutex<(u64, Pair)>,
}

impl SyntheticTraffic {
    fn advance(&self) -> Pair {
        let now = self.clock.now();
        let second = now.saturating_since(self.started).as_secs();
        let mut guard = self.totals.lock().unwrap();
        while guard.0 < second {
            guard.0 += 1;
            let weight = u64::from(*self.router.weight.lock().unwrap());
            let canary = weight;
            let stable = 100 - weight;
            let errors = (canary as f64 * self.canary_errors).round() as u64;
            let latency = Duration::from_millis(20);
            for i in 0..canary {
                guard
                    .1
                    .canary
                    .record(if i < errors { 500 } else { 200 }, latency);
            }
            for _ in 0..stable {
                guard.1.stable.record(200, latency);
            }
        }
        guard.1.clone()
    }
}

impl TrafficSource for SyntheticTraffic {
    fn totals(&self) -> Pair {
        self.advance()
    }
    fn last(&self, _now: Timestamp, span: Duration) -> Pair {
        // Steady traffic: the last `span` is the per-second rate times span.
        let weight = u64::from(*self.router.weight.lock().unwrap());
        let secs = span.as_secs();
        let mut pair = Pair::default();
        let record = |counts: &mut Counts, n: u64, errors: u64| {
            for i in 0..n {
                counts.record(
                    if i < errors { 500 } else { 200 },
                    Duration::from_millis(20),
                );
            }
        };
        let canary = weight * secs;
        record(
            &mut pair.canary,
            canary,
            (canary as f64 * self.canary_errors).round() as u64,
        );
        record(&mut pair.stable, (100 - weight) * secs, 0);
        pair
    }
    fn reset_windows(&self) {
        // Steady traffic at the current weight: nothing to forget.
    }
}

async fn rollout(canary_errors: f64, judge: JudgeKind) -> (RolloutState, Vec<String>, Vec<Update>) {
    rollout_through(RecordingRouter::default(), canary_errors, judge).await
}

/// A rollout to its verdict; also returns the running driver's command sender.
fn spawn_rollout(
    router: RecordingRouter,
    canary_errors: f64,
    judge: JudgeKind,
) -> (
    Arc<RecordingRouter>,
    mpsc::Sender<Command>,
    broadcast::Receiver<Update>,
    tokio::task::JoinHandle<RolloutState>,
) {
    spawn_saving_rollout(
        router,
        canary_errors,
        judge,
        serin_server::driver::Persistence::none(),
    )
}

/// [`spawn_rollout`], saving through `persistence`.
fn spawn_saving_rollout(
    router: RecordingRouter,
    canary_errors: f64,
    judge: JudgeKind,
    persistence: serin_server::driver::Persistence,
) -> (
    Arc<RecordingRouter>,
    mpsc::Sender<Command>,
    broadcast::Receiver<Update>,
    tokio::task::JoinHandle<RolloutState>,
) {
    let clock = TokioClock::starting_at(Timestamp::from_millis(1_764_150_000_000));
    let router = Arc::new(router);
    let traffic = Arc::new(SyntheticTraffic {
        router: router.clone(),
        clock: clock.clone(),
        started: clock.now(),
        canary_errors,
        totals: Mutex::new((0, Pair::default())),
    });
    let interval = Duration::from_secs(60);
    let plan = Plan::new(
        Strategy::Canary {
            steps: vec![10, 20, 30, 40, 50],
        },
        interval,
        5,
    );
    let mut config = AnalysisConfig::flagger_defaults().with_judge(judge);
    config.metrics = vec![MetricCheck::named("request-success-rate").range(Some(99.0), None)];
    let (updates, watch) = broadcast::channel(4096);
    let driver = Driver {
        name: "shop".into(),
        rollout: Rollout::new(plan, clock.now()).unwrap(),
        judge: Analyzer::new(config).unwrap(),
        router: router.clone(),
        traffic,
        metrics: Vec::new(),
        webhooks: Arc::new(NoWebhooks),
        clock,
        updates,
        persistence,
    };
    let (commands, receiver) = mpsc::channel(4);
    commands
        .try_send(Command::Start(CanaryTarget {
            address: "http://canary".into(),
            revision: "v2".into(),
        }))
        .unwrap();
    let task = tokio::spawn(async move { driver.run_to_verdict(receiver).await.unwrap() });
    (router, commands, watch, task)
}

async fn rollout_through(
    router: RecordingRouter,
    canary_errors: f64,
    judge: JudgeKind,
) -> (RolloutState, Vec<String>, Vec<Update>) {
    let (router, _commands, mut watch, task) = spawn_rollout(router, canary_errors, judge);
    let state = task.await.unwrap();
    let mut seen = Vec::new();
    while let Ok(update) = watch.try_recv() {
        seen.push(update);
    }
    let calls = router.calls.lock().unwrap().clone();
    (state, calls, seen)
}

#[tokio::test(start_paused = true)]
async fn a_healthy_canary_walks_every_step_then_is_promoted() {
    let started = tokio::time::Instant::now();
    let (state, calls, updates) = rollout(0.0, JudgeKind::Sequential).await;
    assert_eq!(state.phase, Phase::Succeeded);
    // The router learns the canary before any traffic moves to it.
    let canary_at = calls.iter().position(|c| c == "canary v2").unwrap();
    let first_traffic = calls
        .iter()
        .position(|c| c.starts_with("weight") && c != "weight 0")
        .unwrap();
    assert!(canary_at < first_traffic, "{calls:?}");
    let weights: Vec<&str> = calls
        .iter()
        .filter(|c| c.starts_with("weight") && *c != "weight 0")
        .map(String::as_str)
        .collect();
    assert_eq!(
        weights,
        [
            "weight 10",
            "weight 20",
            "weight 30",
            "weight 40",
            "weight 50"
        ]
    );
    assert!(calls.contains(&"promote".to_owned()));
    assert_eq!(calls.last().map(String::as_str), Some("finalise"));
    // Five steps of a minute each, then promotion: virtual time, not real.
    assert!(started.elapsed() >= Duration::from_secs(5 * 60));
    assert!(updates.iter().any(|u| matches!(u, Update::Decision { .. })));
}

#[tokio::test(start_paused = true)]
async fn the_sequential_judge_rolls_back_between_ticks() {
    let started = tokio::time::Instant::now();
    let (state, calls, _) = rollout(0.2, JudgeKind::Sequential).await;
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(state.canary_weight, 0);
    assert!(!calls.contains(&"promote".to_owned()));
    assert!(
        state.message.contains("between intervals"),
        "{}",
        state.message
    );
    // Harm is decisive within seconds at 10 canary requests per second, long
    // before the first interval ends.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn the_threshold_judge_waits_for_five_failed_checks() {
    let started = tokio::time::Instant::now();
    let (state, calls, _) = rollout(0.2, JudgeKind::Threshold).await;
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(state.failed_checks, 5);
    assert!(!calls.contains(&"promote".to_owned()));
    assert!(
        started.elapsed() >= Duration::from_secs(4 * 60),
        "{:?}",
        started.elapsed()
    );
}

/// The records the rollout published, as (warning?, message).
fn records(updates: &[Update]) -> Vec<(bool, String)> {
    updates
        .iter()
        .filter_map(|u| match u {
            Update::Record { record, .. } => Some((
                record.severity == serin_rollout::Severity::Warning,
                record.message.clone(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_refused_step_holds_until_the_router_accepts_then_the_rollout_promotes() {
    let started = tokio::time::Instant::now();
    // Refused at the step to 20 for ~2 minutes of backoff (1+2+4+8+16+30+30 s).
    let router = RecordingRouter::refusing(20, 8, None);
    let (state, calls, updates) = rollout_through(router, 0.0, JudgeKind::Sequential).await;
    assert_eq!(state.phase, Phase::Succeeded);
    assert_eq!(state.failed_checks, 0);
    let refused = calls.iter().filter(|c| *c == "refused weight 20").count();
    assert_eq!(refused, 8, "{calls:?}");
    // Nothing advanced on the unapplied split: 30 only after 20 was applied.
    let last_refusal = calls
        .iter()
        .rposition(|c| c == "refused weight 20")
        .unwrap();
    let applied = calls.iter().position(|c| c == "weight 20").unwrap();
    let next = calls.iter().position(|c| c == "weight 30").unwrap();
    assert!(last_refusal < applied && applied < next, "{calls:?}");
    let weights: Vec<&str> = calls
        .iter()
        .filter(|c| c.starts_with("weight") && *c != "weight 0")
        .map(String::as_str)
        .collect();
    assert_eq!(
        weights,
        [
            "weight 10",
            "weight 20",
            "weight 30",
            "weight 40",
            "weight 50"
        ]
    );
    assert_eq!(calls.last().map(String::as_str), Some("finalise"));
    let records = records(&updates);
    let holds: Vec<&String> = records
        .iter()
        .filter(|(_, m)| m.starts_with("Hold"))
        .map(|(_, m)| m)
        .collect();
    assert!(!holds.is_empty(), "{records:?}");
    assert!(
        holds
            .iter()
            .all(|m| m.contains("recording") && m.contains("connection refused")),
        "{holds:?}"
    );
    let warnings: Vec<&String> = records.iter().filter(|(w, _)| *w).map(|(_, m)| m).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("canary weight 20"), "{warnings:?}");
    let recovered: Vec<&String> = records
        .iter()
        .filter(|(w, m)| !w && m.starts_with("recording applied canary weight"))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert!(recovered[0].contains("after 121s"), "{recovered:?}");
    // The hold cost time: five steps plus the refused two minutes.
    assert!(started.elapsed() >= Duration::from_secs(7 * 60));
}

#[tokio::test(start_paused = true)]
async fn a_refused_canary_upstream_holds_until_the_router_takes_it_then_the_rollout_promotes() {
    // Refused for two minutes of backoff (1+2+4+8+16+30+30+30 s): past
    // the first interval's analysis.
    let router = RecordingRouter {
        refuse_canary: Mutex::new(8),
        ..RecordingRouter::default()
    };
    let (state, calls, updates) = tokio::time::timeout(
        Duration::from_secs(3_600),
        rollout_through(router, 0.0, JudgeKind::Sequential),
    )
    .await
    .expect("the start was dropped: no verdict within an hour");
    assert_eq!(state.phase, Phase::Succeeded);
    assert_eq!(state.failed_checks, 0);
    let refused = calls.iter().filter(|c| *c == "refused canary v2").count();
    assert_eq!(refused, 8, "{calls:?}");
    // No traffic reached the canary before the router pointed at it.
    let taken = calls.iter().position(|c| c == "canary v2").unwrap();
    let first_traffic = calls
        .iter()
        .position(|c| c.starts_with("weight") && c != "weight 0")
        .unwrap();
    assert!(taken < first_traffic, "{calls:?}");
    let weights: Vec<&str> = calls
        .iter()
        .filter(|c| c.starts_with("weight") && *c != "weight 0")
        .map(String::as_str)
        .collect();
    assert_eq!(
        weights,
        [
            "weight 10",
            "weight 20",
            "weight 30",
            "weight 40",
            "weight 50"
        ]
    );
    let records = records(&updates);
    let holds: Vec<&String> = records
        .iter()
        .filter(|(_, m)| m.starts_with("Hold"))
        .map(|(_, m)| m)
        .collect();
    assert!(!holds.is_empty(), "{records:?}");
    assert!(
        holds.iter().all(|m| m.contains("recording")
            && m.contains("http://canary")
            && m.contains("connection refused")),
        "{holds:?}"
    );
    let warnings: Vec<&String> = records.iter().filter(|(w, _)| *w).map(|(_, m)| m).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("could not point at canary v2"),
        "{warnings:?}"
    );
    let recovered: Vec<&String> = records
        .iter()
        .filter(|(w, m)| !w && m.starts_with("recording points at canary v2"))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert!(recovered[0].contains("after 121s"), "{recovered:?}");
}

#[tokio::test(start_paused = true)]
async fn a_refused_rollback_still_ends_at_weight_zero_once_accepted() {
    // Harm at weight 10; the rollback's route to stable is refused 3 times.
    let router = RecordingRouter::refusing(0, 3, Some("weight 10"));
    let (state, calls, updates) = rollout_through(router, 0.2, JudgeKind::Sequential).await;
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(state.canary_weight, 0);
    assert_eq!(
        calls.iter().filter(|c| *c == "refused weight 0").count(),
        3,
        "{calls:?}"
    );
    // The loop stops only once stable has all traffic.
    let last_refusal = calls.iter().rposition(|c| c == "refused weight 0").unwrap();
    assert!(
        calls[last_refusal..].iter().any(|c| c == "weight 0"),
        "{calls:?}"
    );
    let records = records(&updates);
    assert_eq!(
        records
            .iter()
            .filter(|(w, m)| *w && m.contains("could not set"))
            .count(),
        1
    );
    assert_eq!(
        records
            .iter()
            .filter(|(w, m)| !w && m.starts_with("recording applied canary weight 0"))
            .count(),
        1,
        "{records:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_abort_is_handled_at_once_while_a_route_is_pending() {
    // The first step is refused for good (far past the test's horizon).
    let router = RecordingRouter::refusing(10, u32::MAX, None);
    let (router, commands, _watch, task) = spawn_rollout(router, 0.0, JudgeKind::Threshold);
    tokio::time::sleep(Duration::from_secs(150)).await;
    {
        let calls = router.calls.lock().unwrap();
        assert!(calls.iter().any(|c| c == "refused weight 10"), "{calls:?}");
        assert!(!calls.iter().any(|c| c == "weight 10" || c == "weight 20"));
    }
    let asked = tokio::time::Instant::now();
    commands.send(Command::Abort).await.unwrap();
    let state = task.await.unwrap();
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(state.failed_checks, 0);
    assert_eq!(*router.weight.lock().unwrap(), 0);
}

#[test]
fn the_proxy_gets_the_trusted_proxies_and_body_timeout_of_the_file() {
    let yaml = "\
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: front}
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:0
    trustedProxies: [10.0.0.0/8, 127.0.0.1]
    limits: {responseBodyTimeout: 15s}
  upstreams: {stable: http://127.0.0.1:9001, canary: http://127.0.0.1:9002}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}
";
    let catalog = serin_spec::load_files([("front.yaml", yaml)]).unwrap();
    let prepared = serin_server::Prepared::from_catalog(&catalog, None, "front.yaml").unwrap();
    let trusted = &prepared.proxy.trusted_proxies;
    assert!(trusted.contains("10.1.2.3".parse().unwrap()));
    assert!(trusted.contains("127.0.0.1".parse().unwrap()));
    assert!(!trusted.contains("192.168.1.1".parse().unwrap()));
    assert_eq!(
        prepared.proxy.limits.upstream_body_timeout,
        Duration::from_secs(15)
    );

    // None by default.
    let plain = yaml.replace("    trustedProxies: [10.0.0.0/8, 127.0.0.1]\n", "");
    let catalog = serin_spec::load_files([("front.yaml", plain.as_str())]).unwrap();
    let prepared = serin_server::Prepared::from_catalog(&catalog, None, "front.yaml").unwrap();
    assert!(prepared.proxy.trusted_proxies.is_empty());
}

/// `launch` routes as the starting state says before it returns, so before
/// its proxy's task (or its loop's) ever ran on this one-thread runtime: a
/// restarted canary serves no request on a table the state does not say.
/// The restore is one table, the canary upstream with its stored weight
/// (never a table with the canary at weight 0 first).
#[tokio::test]
async fn a_launched_canary_routes_as_its_state_says_before_it_serves() {
    let yaml = "\
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: web}
spec:
  provider: builtin
  service: {listen: 127.0.0.1:0}
  upstreams: {stable: http://127.0.0.1:9001}
  analysis: {interval: 1m, threshold: 5, stepWeights: [10, 30, 50]}
";
    let catalog = serin_spec::load_files([("web.yaml", yaml)]).unwrap();
    let catalog_canary = &catalog.canaries()[0];
    let prepared =
        serin_server::Prepared::for_canary(&catalog, catalog_canary, "web.yaml").unwrap();
    let assembled = serin_server::run::assemble(prepared).await.unwrap();
    let now = TokioClock::new().now();
    let state = RolloutState {
        phase: Phase::Progressing,
        revision: Some("v2".into()),
        canary_weight: 30,
        step_index: 2,
        started_at: Some(now),
        next_tick_at: Some(now.saturating_add(Duration::from_secs(60))),
        ..RolloutState::new(now)
    };
    let placement = serin_server::Placement {
        stable: None,
        canary: Some("http://127.0.0.1:9002".into()),
    };
    let (updates, _watch) = broadcast::channel(16);
    let fresh = assembled.proxy.as_ref().expect("a built-in proxy").handle();
    let installed = fresh.tables_installed();
    let running = serin_server::launch(
        assembled,
        state,
        serin_server::Persistence::new(Arc::new(serin_server::NoStore), placement),
        updates,
        serin_server::Lifetime::Revisions,
    )
    .await
    .unwrap();
    let proxy = running.proxy.clone().expect("a built-in proxy");
    let table = proxy.routes();
    assert_eq!(table.canary_weight, 30);
    assert_eq!(
        table
            .canary
            .as_ref()
            .and_then(|uri| uri.authority())
            .map(|a| a.as_str()),
        Some("127.0.0.1:9002")
    );
    assert_eq!(
        proxy.tables_installed(),
        installed + 1,
        "the canary and its weight in one table"
    );
    let state = running.stop().await.unwrap();
    assert_eq!(state.canary_weight, 30, "stopped where it was");
}

/// `service.tls` and `upstreams.caFile` are read when a canary is prepared
/// (so by `serin validate` too): files that cannot serve are refused with
/// the field named, before anything listens.
#[test]
fn tls_files_are_checked_when_a_canary_is_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM\n").unwrap();
    let yaml = |tls: &str, ca: &str| {
        format!(
            "\
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: front}}
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:0
    tls: {tls}
  upstreams: {{stable: https://127.0.0.1:9001, caFile: {ca:?}}}
  analysis: {{interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}}
"
        )
    };
    let problems = |text: String| {
        let catalog = serin_spec::load_files([("front.yaml", text.as_str())]).unwrap();
        match serin_server::Prepared::from_catalog(&catalog, None, "front.yaml") {
            Err(serin_server::RunError::Invalid(problems)) => problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            Err(other) => panic!("{other}"),
            Ok(_) => String::new(),
        }
    };
    let tls = format!(
        "{{certFile: {missing:?}, keyFile: {garbage:?}}}",
        missing = missing.display().to_string(),
        garbage = garbage.display().to_string()
    );
    let ca = garbage.display().to_string();
    let text = problems(yaml(&tls, &ca));
    assert!(
        text.contains("spec.service.tls.certFile: ") && text.contains("cannot read"),
        "{text}"
    );
    let tls = format!(
        "{{certFile: {garbage:?}, keyFile: {garbage:?}}}",
        garbage = garbage.display().to_string()
    );
    let text = problems(yaml(&tls, &ca));
    assert!(
        text.contains("spec.service.tls.certFile: ") && text.contains("no usable PEM certificate"),
        "{text}"
    );
    let text = problems(yaml("null", &ca));
    assert!(
        text.contains("spec.upstreams.caFile: ") && text.contains("holds no PEM certificate"),
        "{text}"
    );
}

/// An ALB canary is prepared for `serin run`: its built-in metrics are
/// CloudWatch queries judged as custom metrics (an ALB sends serin no
/// request log), and the file's canary target group is the revision.
#[test]
fn an_alb_canary_reads_its_builtin_metrics_from_cloudwatch() {
    let yaml = "
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: shop}
spec:
  provider: alb
  alb:
    listenerArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2
    stableTargetGroupArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-v1/73e2d6bc24d8a067
    region: us-east-1
  upstreams:
    canary: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-v2/83e2d6bc24d8a067
  analysis:
    interval: 1m
    threshold: 5
    stepWeights: [10, 30, 50]
    metrics:
      - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}
      - {name: request-duration, thresholdRange: {max: 500}, interval: 1m}
";
    let catalog = serin_spec::load_files([("shop.yaml", yaml)]).unwrap();
    let canary = &catalog.canaries()[0];
    let prepared = serin_server::Prepared::for_canary(&catalog, canary, "shop.yaml").unwrap();
    assert!(matches!(
        prepared.balancer,
        Some(serin_server::external::Balancer::Alb(_))
    ));
    let names: Vec<&str> = prepared.metrics.0.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["request-success-rate", "request-duration"]);
    assert!(
        prepared
            .analysis
            .metrics
            .iter()
            .all(|m| m.kind == serin_analysis::MetricKind::Custom),
        "{:?}",
        prepared.analysis.metrics
    );
    assert_eq!(
        prepared.target.map(|t| t.address),
        Some(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-v2/83e2d6bc24d8a067"
                .to_owned()
        )
    );

    let rate = yaml.replace("request-duration", "request-rate");
    let catalog = serin_spec::load_files([("shop.yaml", rate.as_str())]).unwrap();
    let refused = serin_server::Prepared::for_canary(&catalog, &catalog.canaries()[0], "shop.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("request-rate is not measured for provider alb"),
        "{refused}"
    );
}
