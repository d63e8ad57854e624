//! Every webhook type's semantics during real rollouts: the built-in proxy,
//! real sample backends and a real receiver answering each hook.

mod alerts;

use serin_demo::{Backend, Behaviour};
use serin_rollout::{Phase, RolloutState};
use serin_server::{Prepared, Running, Update};
use serin_testkit::receiver::Receiver;
use std::time::Duration;
use tokio::sync::broadcast;

/// How long any one rollout in these tests may take.
const LIMIT: Duration = Duration::from_secs(30);

struct Rig {
    _stable: Backend,
    _canary: Backend,
    hooks: Receiver,
}

impl Rig {
    async fn new() -> Rig {
        let any = "127.0.0.1:0".parse().unwrap();
        Rig {
            _stable: Backend::start(any, Behaviour::healthy("stable v1"))
                .await
                .unwrap(),
            _canary: Backend::start(any, Behaviour::healthy("canary v2"))
                .await
                .unwrap(),
            hooks: Receiver::start().await,
        }
    }

    /// A canary with short intervals, no metrics (every analysis passes)
    /// and the given webhooks (`TYPE PATH [extra yaml]`).
    fn yaml(&self, threshold: u32, webhooks: &[(&str, &str, &str)]) -> String {
        let mut hooks = String::from(if webhooks.is_empty() {
            ""
        } else {
            "    webhooks:\n"
        });
        for (kind, path, extra) in webhooks {
            hooks.push_str(&format!(
                "    - name: {kind}{}\n      type: {kind}\n      url: {}\n      timeout: 2s\n{extra}",
                path.replace('/', "-"),
                self.hooks.url(path)
            ));
        }
        format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: web
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:0
  upstreams:
    stable: {}
    canary: {}
    revision: v2
  analysis:
    interval: 250ms
    threshold: {threshold}
    stepWeights: [20, 40]
{hooks}",
            self._stable.url(),
            self._canary.url()
        )
    }
}

async fn launch(yaml: &str) -> (Running, broadcast::Receiver<Update>) {
    let catalog = serin_spec::load_files([("canary.yaml", yaml)]).unwrap();
    let prepared = Prepared::from_catalog(&catalog, None, "canary.yaml").unwrap();
    let (updates, watch) = broadcast::channel(4096);
    let running = serin_server::start(prepared, updates).await.unwrap();
    (running, watch)
}

/// Waits for the first state in `phase`; panics after [`LIMIT`].
async fn until_phase(watch: &mut broadcast::Receiver<Update>, phase: Phase) -> RolloutState {
    tokio::time::timeout(LIMIT, async {
        loop {
            match watch.recv().await {
                Ok(Update::State { state, .. }) if state.phase == phase => return *state,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("rollout ended before {phase}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {phase} within {LIMIT:?}"))
}

/// Every update until the rollout ends, and the final state.
async fn finish(
    running: Running,
    watch: &mut broadcast::Receiver<Update>,
) -> (RolloutState, Vec<Update>) {
    let state = tokio::time::timeout(LIMIT, running.outcome())
        .await
        .expect("rollout within the limit")
        .unwrap();
    let mut seen = Vec::new();
    while let Ok(update) = watch.try_recv() {
        seen.push(update);
    }
    (state, seen)
}

fn webhook_updates<'a>(
    updates: &'a [Update],
    kind: &str,
) -> Vec<&'a serin_rollout::ports::HookAnswer> {
    updates
        .iter()
        .filter_map(|u| match u {
            Update::Webhook {
                kind: k, answer, ..
            } if k == kind => Some(answer),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_closed_confirm_rollout_gate_holds_in_waiting_until_opened() {
    let rig = Rig::new().await;
    rig.hooks.answer("/confirm", 403);
    let (running, mut watch) = launch(&rig.yaml(2, &[("confirm-rollout", "/confirm", "")])).await;
    let waiting = until_phase(&mut watch, Phase::Waiting).await;
    assert_eq!(waiting.canary_weight, 0);
    // Held across several intervals: asked again, never advanced.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(rig.hooks.count("/confirm") >= 3, "asked every interval");
    rig.hooks.answer("/confirm", 200);
    let (state, updates) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Succeeded);
    let asked = webhook_updates(&updates, "confirm-rollout");
    assert!(asked.iter().any(|a| a.ok), "the approval is in the history");
    let first = &rig.hooks.received("/confirm")[0].body;
    assert_eq!(first["name"], "web");
    assert_eq!(first["namespace"], "default");
    assert_eq!(first["checksum"], "v2");
    assert_eq!(first["phase"], "Waiting");
}

#[tokio::test]
async fn a_failed_pre_rollout_hook_counts_as_a_failed_check_after_its_retries() {
    let rig = Rig::new().await;
    rig.hooks.answer("/pre", 500);
    let (running, mut watch) =
        launch(&rig.yaml(1, &[("pre-rollout", "/pre", "      retries: 2\n")])).await;
    let (state, updates) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(state.failed_checks, 1);
    assert_eq!(state.canary_weight, 0);
    // One call and two retries, all in the history as one call with status 500.
    assert_eq!(rig.hooks.count("/pre"), 3);
    let pre = webhook_updates(&updates, "pre-rollout");
    assert_eq!(pre.len(), 1);
    assert!(!pre[0].ok);
    assert_eq!(pre[0].calls[0].status, Some(500));
    assert_eq!(pre[0].calls[0].body.as_deref(), Some("answer 500"));
}

#[tokio::test]
async fn rollout_hooks_run_every_interval_and_post_rollout_after_the_verdict() {
    let rig = Rig::new().await;
    let (running, mut watch) = launch(&rig.yaml(
        2,
        &[
            ("pre-rollout", "/pre", ""),
            (
                "rollout",
                "/load",
                "      metadata:\n        cmd: hey -z 1m http://x/\n",
            ),
            ("post-rollout", "/post", ""),
        ],
    ))
    .await;
    let (state, updates) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Succeeded);
    assert_eq!(rig.hooks.count("/pre"), 1);
    // One rollout hook per analysis: at 20 and at 40 at least.
    assert!(
        rig.hooks.count("/load") >= 2,
        "{}",
        rig.hooks.count("/load")
    );
    assert_eq!(
        rig.hooks.received("/load")[0].body["metadata"]["cmd"],
        "hey -z 1m http://x/"
    );
    let post = rig.hooks.received("/post");
    assert_eq!(post.len(), 1);
    assert_eq!(post[0].body["phase"], "Succeeded");
    assert_eq!(webhook_updates(&updates, "post-rollout").len(), 1);
}

#[tokio::test]
async fn a_failing_rollout_hook_counts_toward_the_threshold_and_post_rollout_sees_the_failure() {
    let rig = Rig::new().await;
    rig.hooks.answer("/load", 500);
    let (running, mut watch) = launch(&rig.yaml(
        2,
        &[("rollout", "/load", ""), ("post-rollout", "/post", "")],
    ))
    .await;
    let (state, _) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(state.failed_checks, 2);
    assert_eq!(rig.hooks.count("/load"), 2);
    assert_eq!(rig.hooks.received("/post")[0].body["phase"], "Failed");
}

#[tokio::test]
async fn a_closed_traffic_increase_gate_holds_the_weight() {
    let rig = Rig::new().await;
    rig.hooks.answer("/traffic", 403);
    let (running, mut watch) =
        launch(&rig.yaml(2, &[("confirm-traffic-increase", "/traffic", "")])).await;
    // Asked before the first increase (on the next whole second); held at
    // weight 0 while closed.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let asked = rig.hooks.count("/traffic");
    assert!(asked >= 3, "asked every interval, got {asked}");
    while let Ok(update) = watch.try_recv() {
        if let Update::State { state, .. } = update {
            assert_eq!(
                state.canary_weight, 0,
                "no traffic moved while the gate is closed"
            );
        }
    }
    rig.hooks.answer("/traffic", 200);
    let (state, updates) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Succeeded);
    let weights: Vec<u8> = updates
        .iter()
        .filter_map(|u| match u {
            Update::State { state, .. } => Some(state.canary_weight),
            _ => None,
        })
        .collect();
    assert!(
        weights.contains(&20) && weights.contains(&40),
        "{weights:?}"
    );
}

#[tokio::test]
async fn confirm_promotion_holds_in_waiting_promotion_while_analysis_continues() {
    let rig = Rig::new().await;
    rig.hooks.answer("/promote", 403);
    let (running, mut watch) = launch(&rig.yaml(
        2,
        &[
            ("confirm-promotion", "/promote", ""),
            ("rollout", "/load", ""),
        ],
    ))
    .await;
    let waiting = until_phase(&mut watch, Phase::WaitingPromotion).await;
    assert_eq!(waiting.canary_weight, 40, "held at the last step");
    let analysed = rig.hooks.count("/load");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        rig.hooks.count("/load") >= analysed + 2,
        "analysis (and its rollout hooks) continues while waiting"
    );
    assert!(rig.hooks.count("/promote") >= 3);
    rig.hooks.answer("/promote", 200);
    let (state, _) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Succeeded);
}

#[tokio::test]
async fn a_rollback_hook_answering_2xx_rolls_back_now() {
    let rig = Rig::new().await;
    rig.hooks.answer("/rollback", 403);
    rig.hooks.answer("/promote", 403);
    let (running, mut watch) = launch(&rig.yaml(
        5,
        &[
            ("confirm-promotion", "/promote", ""),
            ("rollback", "/rollback", ""),
        ],
    ))
    .await;
    until_phase(&mut watch, Phase::WaitingPromotion).await;
    assert!(
        rig.hooks.count("/rollback") >= 1,
        "polled while progressing"
    );
    rig.hooks.answer("/rollback", 200);
    let (state, _) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(state.canary_weight, 0);
    assert!(
        state.message.contains("rollback webhook"),
        "{}",
        state.message
    );
}

#[tokio::test]
async fn event_hooks_receive_every_event_with_message_type_and_timestamp() {
    let rig = Rig::new().await;
    let (running, mut watch) = launch(&rig.yaml(2, &[("event", "/event", "")])).await;
    let (state, updates) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Succeeded);
    let records: Vec<&serin_rollout::Record> = updates
        .iter()
        .filter_map(|u| match u {
            Update::Record { record, .. } => Some(record),
            _ => None,
        })
        .collect();
    // Delivery is in the background: give the last events a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rig.hooks.count("/event") < records.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = rig.hooks.received("/event");
    assert_eq!(events.len(), records.len());
    for (event, record) in events.iter().zip(&records) {
        let metadata = &event.body["metadata"];
        assert_eq!(metadata["eventMessage"], record.message.as_str());
        assert_eq!(metadata["eventType"], "Normal");
        let ts: u64 = metadata["timestamp"].as_str().unwrap().parse().unwrap();
        assert!(ts > 1_700_000_000_000);
    }
    assert_eq!(events.last().unwrap().body["phase"], "Succeeded");
}
