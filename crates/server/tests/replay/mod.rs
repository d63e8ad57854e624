//! A live rollout, recorded by the proxy's access log and replayed: the
//! replay takes the same decisions at the same moments, tick by tick.
//!
//! Real time (a few seconds per rollout): the built-in proxy, the sample
//! backends and the load generator over loopback, the access log on disk.
//! The service has traffic before the rollout starts, as a live one does.

use serin_analysis::Verdict;
use serin_demo::{Backend, Behaviour, LoadSpec, load};
use serin_rollout::{Phase, RolloutState};
use serin_server::{
    Clock, Command, Persistence, Prepared, Update,
    replay::{Collect, Outcome, ReplaySetup, RolloutOutcome, replay},
    run::{Parts, assemble},
};
use std::{path::Path, time::Duration};
use tokio::sync::{broadcast, mpsc, oneshot};

/// How long any one live rollout here may take.
const LIMIT: Duration = Duration::from_secs(60);

/// The decisions of a rollout: (milliseconds, verdict), in order.
type Decisions = Vec<(u64, Verdict)>;

struct Live {
    state: RolloutState,
    decisions: Decisions,
    setup: ReplaySetup,
}

/// Runs one rollout of a canary failing `error_rate` of its requests under
/// 200 requests per second, writing the access log to `log`.
async fn live(log: &Path, error_rate: f64, analysis: &str) -> Live {
    let any = "127.0.0.1:0".parse().unwrap();
    let stable = Backend::start(any, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let canary = Backend::start(
        any,
        Behaviour {
            error_rate,
            ..Behaviour::healthy("canary v2")
        },
    )
    .await
    .unwrap();
    let yaml = format!(
        "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: web
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:0
    accessLog: {}
  upstreams:
    stable: {}
    canary: {}
    revision: v2
  analysis:
{analysis}",
        log.display(),
        stable.url(),
        canary.url(),
    );
    let catalog = serin_spec::load_files([("canary.yaml", yaml.as_str())]).unwrap();
    let prepared = Prepared::from_catalog(&catalog, None, "canary.yaml").unwrap();
    let setup = ReplaySetup::new(prepared.plan.clone(), prepared.analysis.clone());
    let (updates, mut watch) = broadcast::channel(16 * 1024);
    let assembled = assemble(prepared).await.unwrap();
    let state = RolloutState::new(serin_server::TokioClock::new().now());
    let (driver, parts) = assembled
        .into_driver(state, updates, Persistence::none())
        .unwrap();
    let Parts {
        proxy,
        recorder,
        target,
        ..
    } = parts;
    let proxy = proxy.expect("a builtin canary has a proxy");
    let mut spec = LoadSpec::new(
        format!("http://{}/", proxy.local_addr()).parse().unwrap(),
        Some(200.0),
        LIMIT,
    );
    spec.concurrency = 8;
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(proxy.serve(async move {
        let _ = stopped.await;
    }));
    let load = tokio::spawn(load::run(spec));
    // Traffic first, all of it on stable; then the new revision.
    for _ in 0..500 {
        if recorder.totals().stable.requests >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (commands, receiver) = mpsc::channel(4);
    commands
        .send(Command::Start(target.unwrap()))
        .await
        .unwrap();
    let state = tokio::time::timeout(LIMIT, driver.run_to_verdict(receiver))
        .await
        .expect("a verdict within the limit")
        .unwrap();
    load.abort();
    // Stopping the proxy writes out the rest of the access log.
    let _ = stop.send(());
    served.await.unwrap().unwrap();
    let mut decisions = Vec::new();
    while let Ok(update) = watch.try_recv() {
        if let Update::Decision { at, decision } = update {
            decisions.push((at.as_millis(), decision.verdict));
        }
    }
    Live {
        state,
        decisions,
        setup,
    }
}

/// Replays `log` as `live` was judged and checks every decision.
fn same_decisions(log: &Path, live: &Live) -> Collect {
    let text = std::fs::read_to_string(log).unwrap();
    let mut out = Collect::default();
    let summary = replay(text.as_bytes(), &live.setup, &mut out).unwrap();
    let replayed: Decisions = out
        .ticks
        .iter()
        .map(|t| ((t.ts * 1000.0).round() as u64, t.verdict))
        .collect();
    assert_eq!(
        replayed, live.decisions,
        "replayed decisions (left) differ from the live ones (right); live ended {:?}: {}; replay: {:#?}",
        live.state.phase, live.state.message, out.rollouts
    );
    assert_eq!(summary.rollouts, 1, "{:#?}", out.rollouts);
    assert_eq!(summary.malformed, 0, "{:?}", out.malformed);
    let rollout = &out.rollouts[0];
    assert_eq!(rollout.revision.as_deref(), Some("v2"));
    assert_eq!(rollout.failed_checks, live.state.failed_checks);
    assert_eq!(rollout.diverged, None);
    let want = match live.state.phase {
        Phase::Failed => RolloutOutcome::RolledBack,
        Phase::Succeeded => RolloutOutcome::Promoted,
        other => panic!("live rollout ended {other:?}"),
    };
    assert_eq!(rollout.outcome, want, "{rollout:#?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_rolled_back_between_ticks_live_is_rolled_back_at_the_same_second_in_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.jsonl");
    let live = live(
        &log,
        0.15,
        "    interval: 2s
    threshold: 3
    stepWeights: [10, 25, 50]
    alpha: 0.01
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      compare: {maxDelta: 1}
      interval: 2s
    - name: request-duration
      thresholdRange: {max: 500}
      interval: 2s
",
    )
    .await;
    assert_eq!(live.state.phase, Phase::Failed, "{}", live.state.message);
    assert!(
        live.state.message.contains("between intervals"),
        "{}",
        live.state.message
    );
    let out = same_decisions(&log, &live);
    let last = out.ticks.last().unwrap();
    assert_eq!(last.decision, Outcome::Rollback);
    assert!(out.rollouts[0].between_ticks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_checks_counted_live_roll_back_at_the_same_tick_in_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.jsonl");
    let live = live(
        &log,
        0.12,
        "    interval: 2s
    threshold: 3
    stepWeights: [10, 25, 50]
    judge: threshold
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 2s
",
    )
    .await;
    assert_eq!(live.state.phase, Phase::Failed, "{}", live.state.message);
    assert_eq!(live.state.failed_checks, 3);
    let out = same_decisions(&log, &live);
    assert_eq!(out.ticks.last().unwrap().decision, Outcome::Rollback);
    assert_eq!(out.ticks.last().unwrap().failed_checks, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_promoted_live_walks_the_same_steps_in_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.jsonl");
    let live = live(
        &log,
        0.0,
        "    interval: 1s
    threshold: 2
    stepWeights: [20, 50]
    judge: threshold
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1s
",
    )
    .await;
    assert_eq!(live.state.phase, Phase::Succeeded, "{}", live.state.message);
    let out = same_decisions(&log, &live);
    let weights: Vec<u8> = out.ticks.iter().map(|t| t.weight).collect();
    assert_eq!(weights, [20, 50]);
    assert_eq!(out.ticks.last().unwrap().decision, Outcome::Promote);
}
