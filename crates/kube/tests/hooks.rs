//! Flagger's webhooks in controller mode: reconcile scenarios against the
//! mocked API server (the exact requests and bodies of each pass) with a
//! real HTTP receiver on loopback answering each hook as the scenario
//! needs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod passes;
mod support;

use fixtures::Exchange;
use passes::{
    DEPLOYMENTS, NOW, applies, canary, cluster_of, deployment, event, get_target, hash,
    initialized, pass, primary_applies, primary_autoscaler_in_step, progressing, promoted, reads,
    rollback, scale, status, tracked, written,
};
use serde_json::{Value, json};
use serin_kube::{
    Routes,
    controller::{Outcome, Verdict},
    resource::CanaryStatus,
};
use serin_testkit::receiver::Receiver;

/// One webhook of `kind` named `name`, sent to `path` on `receiver`.
fn hook(receiver: &Receiver, kind: &str, name: &str, path: &str) -> String {
    format!(
        "    - name: {name}\n      type: {kind}\n      url: {}\n      timeout: 5s\n      metadata:\n        ticket: \"42\"\n",
        receiver.url(path)
    )
}

/// Flagger's checksum of a status: tracked configs and last applied spec.
fn checksum(status: &CanaryStatus) -> String {
    let fields = json!({
        "trackedConfigs": status.tracked_configs,
        "lastAppliedSpec": status.last_applied_spec.clone().unwrap_or_default(),
    });
    serin_kube::hash::fingerprint(&fields.to_string())
}

/// Flagger's payload.
fn payload(phase: &str, status: &CanaryStatus) -> Value {
    json!({
        "name": "podinfo", "namespace": "test", "phase": phase,
        "checksum": checksum(status), "metadata": {"ticket": "42"}
    })
}

fn bodies(receiver: &Receiver, path: &str) -> Vec<Value> {
    receiver
        .received(path)
        .into_iter()
        .map(|received| received.body)
        .collect()
}

/// The confirm-rollout gate holds a new revision in `Waiting` (written
/// and recorded once), is asked again at each due pass, and once it
/// answers 2xx the revision is scaled up. Every event also reaches the
/// `event` webhook.
#[tokio::test]
async fn a_closed_confirm_rollout_gate_waits_then_opens() {
    let receiver = Receiver::start().await;
    receiver.answer("/gate", 403);
    let canary = canary(
        &(hook(&receiver, "confirm-rollout", "gate", "/gate")
            + &hook(&receiver, "event", "events", "/events")),
        &[],
    );
    let old = deployment("podinfo:6.0.0");
    let new = deployment("podinfo:6.0.1");
    let before = initialized(&old);

    // Closed: the canary waits, not scaled up.
    let mut waiting = written(&before);
    waiting["phase"] = json!("Waiting");
    waiting["conditions"] = json!([{
        "type": "Promoted", "status": "Unknown", "reason": "Waiting",
        "message": "Waiting for approval.", "lastUpdateTime": NOW, "lastTransitionTime": NOW
    }]);
    // A canary waiting for a new revision is settled: each pass reads its
    // configs and autoscaler (config tracking), as from `Initialized`.
    let cluster = cluster_of(&new);
    let mut exchanges = vec![get_target(&new)];
    exchanges.extend(reads(&cluster));
    exchanges.push(status(waiting.clone()));
    exchanges.push(event(
        "Warning",
        "Halt podinfo.test advancement waiting for approval gate",
    ));
    let (outcome, asked) = pass(&canary, before.clone(), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Waiting".into()));
    assert_eq!(asked, 0);
    assert_eq!(
        bodies(&receiver, "/gate"),
        [payload("Initialized", &before)]
    );

    // The pass the status write causes comes before the interval: the
    // gate is not asked again then.
    let waiting: CanaryStatus = serde_json::from_value(waiting).unwrap();
    let mut exchanges = vec![get_target(&new)];
    exchanges.extend(reads(&cluster));
    let (outcome, _) = pass(&canary, waiting.clone(), Verdict::Pass, exchanges).await;
    assert!(matches!(outcome.unwrap(), Outcome::Wait(_)));
    assert_eq!(receiver.count("/gate"), 1);

    // One interval later, still closed: asked, nothing written.
    let mut due = waiting.clone();
    due.last_transition_time = Some("2026-11-30T11:59:00Z".into());
    let mut exchanges = vec![get_target(&new)];
    exchanges.extend(reads(&cluster));
    let (outcome, _) = pass(&canary, due.clone(), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Waiting".into()));
    assert_eq!(receiver.count("/gate"), 2);
    assert_eq!(bodies(&receiver, "/gate")[1], payload("Waiting", &due));

    // Open: the revision starts.
    receiver.answer("/gate", 200);
    let primary = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "podinfo-primary", "namespace": "test"},
        "spec": {"replicas": 2, "selector": {}, "template": {}}
    });
    let mut exchanges = vec![get_target(&new)];
    exchanges.extend(reads(&cluster));
    exchanges.extend([
        event("Normal", "Confirm-rollout check gate passed"),
        event("Normal", "New revision detected! Scaling up podinfo.test"),
        Exchange::new("GET", format!("{DEPLOYMENTS}/podinfo-primary"), None).answer(primary),
        scale(2),
        status(json!({
            "phase": "Progressing", "canaryWeight": 0, "failedChecks": 0, "iterations": 0,
            "lastAppliedSpec": hash(&new), "lastPromotedSpec": hash(&old),
            "trackedConfigs": tracked(&cluster),
            "lastTransitionTime": NOW,
            "conditions": promoted("Unknown", "Progressing", "New revision detected, progressing canary analysis.")
        })),
    ]);
    let (outcome, _) = pass(&canary, due, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(receiver.count("/gate"), 3);

    // Every event went to the event webhook, in order, with Flagger's
    // metadata (the webhook's own keys added).
    let events = bodies(&receiver, "/events");
    let messages: Vec<&str> = events
        .iter()
        .map(|body| body["metadata"]["eventMessage"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "Halt podinfo.test advancement waiting for approval gate",
            "Confirm-rollout check gate passed",
            "New revision detected! Scaling up podinfo.test",
        ]
    );
    assert_eq!(events[0]["metadata"]["eventType"], "Warning");
    assert_eq!(events[1]["metadata"]["eventType"], "Normal");
    assert_eq!(events[0]["metadata"]["ticket"], "42");
    assert_eq!(events[0]["phase"], "Waiting", "sent after the status write");
    assert_eq!(events[0]["name"], "podinfo");
    assert!(
        events[0]["metadata"]["timestamp"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
}

/// A failing `rollout` hook is a failed check: the weight holds, the
/// metrics are not asked that step, and at the threshold it rolls back.
#[tokio::test]
async fn a_failing_rollout_hook_counts_as_a_failed_check() {
    let receiver = Receiver::start().await;
    receiver.answer("/load", 500);
    let canary = canary(&hook(&receiver, "rollout", "load", "/load"), &[]);
    let target = deployment("podinfo:6.0.1");

    let before = progressing(&target, 20, 0);
    let mut halted = written(&progressing(&target, 20, 1));
    halted["conditions"] = promoted(
        "Unknown",
        "Progressing",
        "Halt advancement podinfo.test external check load failed answer 500",
    );
    let exchanges = vec![
        get_target(&target),
        event(
            "Warning",
            "Halt podinfo.test advancement external check load failed answer 500",
        ),
        status(halted),
    ];
    let (outcome, asked) = pass(&canary, before.clone(), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(asked, 0, "the metrics are not read after a failed hook");
    assert_eq!(
        bodies(&receiver, "/load"),
        [payload("Progressing", &before)]
    );

    // The fifth failure reaches the threshold.
    let before = progressing(&target, 20, 4);
    let mut exchanges = vec![
        get_target(&target),
        event(
            "Warning",
            "Halt podinfo.test advancement external check load failed answer 500",
        ),
    ];
    let mut counted = progressing(&target, 20, 5);
    counted.phase = Some("Progressing".into());
    exchanges.extend(rollback(
        &canary,
        &target,
        &counted,
        "Rolling back podinfo.test failed checks threshold reached 5",
    ));
    let (outcome, _) = pass(&canary, before, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Failed".into()));

    // Answering 2xx, the step is judged and advances.
    receiver.answer("/load", 200);
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(applies(
        &canary,
        &target,
        &Routes::at(&canary, 30).unwrap(),
        true,
    ));
    exchanges.push(status(written(&progressing(&target, 30, 0))));
    exchanges.push(event("Normal", "Advance podinfo.test canary weight 30"));
    let (outcome, asked) = pass(
        &canary,
        progressing(&target, 20, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(asked, 1);
}

/// `pre-rollout` runs when the analysis starts: passing, the first step
/// is taken; failing, it is a failed check with Flagger's two events.
#[tokio::test]
async fn pre_rollout_hooks_run_when_the_analysis_starts() {
    let receiver = Receiver::start().await;
    let canary = canary(
        &hook(&receiver, "pre-rollout", "acceptance", "/acceptance"),
        &[],
    );
    let target = deployment("podinfo:6.0.1");

    let mut exchanges = vec![
        get_target(&target),
        event("Normal", "Starting canary analysis for podinfo.test"),
        event("Normal", "Pre-rollout check acceptance passed"),
    ];
    exchanges.extend(applies(
        &canary,
        &target,
        &Routes::at(&canary, 10).unwrap(),
        true,
    ));
    exchanges.push(status(written(&progressing(&target, 10, 0))));
    exchanges.push(event("Normal", "Advance podinfo.test canary weight 10"));
    let (outcome, _) = pass(
        &canary,
        progressing(&target, 0, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(receiver.count("/acceptance"), 1);

    receiver.answer("/acceptance", 400);
    let mut halted = written(&progressing(&target, 0, 1));
    halted["conditions"] = promoted(
        "Unknown",
        "Progressing",
        "Halt advancement podinfo.test pre-rollout check acceptance failed answer 400",
    );
    let exchanges = vec![
        get_target(&target),
        event("Normal", "Starting canary analysis for podinfo.test"),
        event(
            "Warning",
            "Halt podinfo.test advancement pre-rollout check acceptance failed answer 400",
        ),
        status(halted),
        event("Normal", "Pre-rollout webhooks error"),
    ];
    let (outcome, _) = pass(
        &canary,
        progressing(&target, 0, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(receiver.count("/acceptance"), 2);
}

/// A closed `confirm-traffic-increase` gate holds the weight.
#[tokio::test]
async fn a_closed_traffic_increase_gate_holds_the_weight() {
    let receiver = Receiver::start().await;
    receiver.answer("/more", 403);
    let canary = canary(
        &hook(&receiver, "confirm-traffic-increase", "more", "/more"),
        &[],
    );
    let target = deployment("podinfo:6.0.1");
    let halt = "Halt podinfo.test advancement waiting for traffic increase approval more";
    let mut held = written(&progressing(&target, 10, 0));
    held["conditions"] = promoted("Unknown", "Progressing", halt);
    let exchanges = vec![get_target(&target), status(held), event("Warning", halt)];
    let (outcome, asked) = pass(
        &canary,
        progressing(&target, 10, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(asked, 1, "the step is judged before the gate is asked");

    receiver.answer("/more", 202);
    let mut exchanges = vec![
        get_target(&target),
        event("Normal", "Confirm-traffic-increase check more passed"),
    ];
    exchanges.extend(applies(
        &canary,
        &target,
        &Routes::at(&canary, 20).unwrap(),
        true,
    ));
    exchanges.push(status(written(&progressing(&target, 20, 0))));
    exchanges.push(event("Normal", "Advance podinfo.test canary weight 20"));
    let (outcome, _) = pass(
        &canary,
        progressing(&target, 10, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(receiver.count("/more"), 2);
}

/// At the last step a closed `confirm-promotion` gate moves the canary to
/// `WaitingPromotion` (recorded once); its analysis goes on there, and
/// once the gate opens the canary is promoted.
#[tokio::test]
async fn a_closed_promotion_gate_waits_in_waiting_promotion() {
    let receiver = Receiver::start().await;
    receiver.answer("/promote", 403);
    let canary = canary(
        &hook(&receiver, "confirm-promotion", "promote", "/promote"),
        &[],
    );
    let target = deployment("podinfo:6.0.1");

    let mut waiting = written(&progressing(&target, 50, 0));
    waiting["phase"] = json!("WaitingPromotion");
    waiting["conditions"] = json!([{
        "type": "Promoted", "status": "Unknown", "reason": "WaitingPromotion",
        "message": "Waiting for approval.", "lastUpdateTime": NOW, "lastTransitionTime": NOW
    }]);
    let exchanges = vec![
        get_target(&target),
        status(waiting.clone()),
        event(
            "Warning",
            "Halt podinfo.test advancement waiting for promotion approval promote",
        ),
    ];
    let (outcome, asked) = pass(
        &canary,
        progressing(&target, 50, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("WaitingPromotion".into()));
    assert_eq!(asked, 1);

    // Still closed one interval later: judged again, no new event.
    let mut still: CanaryStatus = serde_json::from_value(waiting.clone()).unwrap();
    still.last_transition_time = Some("2026-11-30T11:59:00Z".into());
    let exchanges = vec![get_target(&target), status(waiting)];
    let (outcome, asked) = pass(&canary, still.clone(), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("WaitingPromotion".into()));
    assert_eq!(asked, 1, "the analysis goes on while waiting");

    // A failed check there counts, as in Progressing.
    let mut halted = written(&still);
    halted["failedChecks"] = json!(1);
    halted["conditions"] = promoted(
        "Unknown",
        "Progressing",
        "Halt advancement podinfo.test request-success-rate 95 < 99",
    );
    let exchanges = vec![
        get_target(&target),
        status(halted),
        event(
            "Warning",
            "Halt advancement podinfo.test request-success-rate 95 < 99",
        ),
    ];
    let (outcome, _) = pass(
        &canary,
        still.clone(),
        Verdict::Fail("request-success-rate 95 < 99".into()),
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("WaitingPromotion".into()));
    assert_eq!(
        receiver.count("/promote"),
        2,
        "not asked after a failed check"
    );

    // Open: promoted.
    receiver.answer("/promote", 200);
    let mut promoting = written(&still);
    promoting["phase"] = json!("Promoting");
    // The promotion reads the configs and the autoscaler afresh and
    // writes the whole primary side (config copies, Deployment, HPA).
    let mut exchanges = vec![
        get_target(&target),
        event("Normal", "Confirm-promotion check promote passed"),
        event(
            "Normal",
            "Copying podinfo.test template spec to podinfo-primary.test",
        ),
    ];
    exchanges.extend(reads(&cluster_of(&target)));
    exchanges.extend(primary_applies(&canary, &target));
    exchanges.push(status(promoting));
    let (outcome, _) = pass(&canary, still, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Promoting".into()));
    assert_eq!(receiver.count("/promote"), 3);
}

/// A `rollback` hook answering 2xx rolls the canary back at once (before
/// any check); answering otherwise it is recorded as not signalling. The
/// `post-rollout` hook then gets the final phase.
#[tokio::test]
async fn a_rollback_hook_answering_2xx_rolls_back() {
    let receiver = Receiver::start().await;
    receiver.answer("/rollback", 404);
    let canary = canary(
        &(hook(&receiver, "rollback", "manual", "/rollback")
            + &hook(&receiver, "post-rollout", "notify", "/post")),
        &[],
    );
    let target = deployment("podinfo:6.0.1");

    let mut exchanges = vec![
        get_target(&target),
        event("Normal", "Rollback hook manual not signaling a rollback"),
    ];
    exchanges.extend(applies(
        &canary,
        &target,
        &Routes::at(&canary, 30).unwrap(),
        true,
    ));
    exchanges.push(status(written(&progressing(&target, 30, 0))));
    exchanges.push(event("Normal", "Advance podinfo.test canary weight 30"));
    let (outcome, _) = pass(
        &canary,
        progressing(&target, 20, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(receiver.count("/post"), 0);

    receiver.answer("/rollback", 200);
    let before = progressing(&target, 20, 0);
    let mut exchanges = vec![
        get_target(&target),
        event("Warning", "Rollback check manual passed"),
    ];
    exchanges.extend(rollback(
        &canary,
        &target,
        &before,
        "Rolling back podinfo.test manual webhook invoked",
    ));
    exchanges.push(event("Normal", "Post-rollout check notify passed"));
    let (outcome, asked) = pass(&canary, before.clone(), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Failed".into()));
    assert_eq!(asked, 0);
    assert_eq!(
        bodies(&receiver, "/rollback")[1],
        payload("Progressing", &before)
    );
    let mut failed = before.clone();
    failed.phase = Some("Failed".into());
    assert_eq!(bodies(&receiver, "/post"), [payload("Failed", &failed)]);
}

/// `post-rollout` runs once, when the promotion finishes, with the phase
/// `Succeeded`; its failure is recorded and changes nothing.
#[tokio::test]
async fn post_rollout_runs_once_after_the_promotion() {
    let receiver = Receiver::start().await;
    receiver.answer("/post", 500);
    let canary = canary(&hook(&receiver, "post-rollout", "notify", "/post"), &[]);
    let target = deployment("podinfo:6.0.1");

    let mut finalising = progressing(&target, 0, 0);
    finalising.phase = Some("Finalising".into());
    let mut succeeded = written(&finalising);
    succeeded["phase"] = json!("Succeeded");
    succeeded["lastPromotedSpec"] = json!(hash(&target));
    succeeded["conditions"] = promoted(
        "True",
        "Succeeded",
        "Canary analysis completed successfully, promotion finished.",
    );
    let exchanges = vec![
        get_target(&target),
        scale(0),
        status(succeeded.clone()),
        event("Warning", "Post-rollout hook notify failed answer 500"),
        event("Normal", "Promotion completed! Scaling down podinfo.test"),
    ];
    let (outcome, _) = pass(&canary, finalising, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Succeeded".into()));
    let done: CanaryStatus = serde_json::from_value(succeeded).unwrap();
    assert_eq!(bodies(&receiver, "/post"), [payload("Succeeded", &done)]);

    // The next passes find nothing to do and call nothing.
    // (Settled: the configs and autoscaler are read, the primary's found
    // in step.)
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(reads(&cluster_of(&target)));
    exchanges.push(primary_autoscaler_in_step(&canary, &target));
    let (outcome, _) = pass(&canary, done, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);
    assert_eq!(receiver.count("/post"), 1);
}

/// Iterations (A/B, blue/green) ask the `confirm-promotion` gate too, as
/// Flagger's `runAB` and `runBlueGreen` do once the iterations are done:
/// closed, a blue/green canary neither switches its traffic nor is
/// promoted, and waits in `WaitingPromotion`.
#[tokio::test]
async fn a_closed_promotion_gate_holds_iterations_too() {
    let receiver = Receiver::start().await;
    receiver.answer("/promote", 403);
    let mut canary = canary(
        &hook(&receiver, "confirm-promotion", "promote", "/promote"),
        &[],
    );
    // Blue/green: iterations without `match`.
    canary.spec.analysis.as_mut().unwrap().iterations = Some(5);
    let target = deployment("podinfo:6.0.1");
    let halt = "Halt podinfo.test advancement waiting for promotion approval promote";

    // The iterations done: the gate is asked before the switch.
    for done in [5, 6] {
        let mut before = progressing(&target, 0, 0);
        before.iterations = done;
        let mut waiting = written(&before);
        waiting["phase"] = json!("WaitingPromotion");
        waiting["conditions"] = json!([{
            "type": "Promoted", "status": "Unknown", "reason": "WaitingPromotion",
            "message": "Waiting for approval.", "lastUpdateTime": NOW, "lastTransitionTime": NOW
        }]);
        let exchanges = vec![get_target(&target), status(waiting), event("Warning", halt)];
        let (outcome, asked) = pass(&canary, before, Verdict::Pass, exchanges).await;
        assert_eq!(outcome.unwrap(), Outcome::Moved("WaitingPromotion".into()));
        assert_eq!(asked, 1);
    }
    assert_eq!(receiver.count("/promote"), 2);

    // Mid-way the gate is not asked: the iteration is counted.
    let mut before = progressing(&target, 0, 0);
    before.iterations = 2;
    let mut counted = written(&before);
    counted["iterations"] = json!(3);
    let exchanges = vec![
        get_target(&target),
        status(counted),
        event("Normal", "Advance podinfo.test canary iteration 3/5"),
    ];
    let (outcome, _) = pass(&canary, before, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(receiver.count("/promote"), 2);
}
