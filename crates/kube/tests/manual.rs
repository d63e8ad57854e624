//! Manual actions against the cluster: the annotations `serin
//! promote|abort|pause|resume --kubernetes` write, and the reconcile
//! passes that honour them, each asserting the exact requests and bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod passes;
mod support;

use std::time::Duration;

use fixtures::{Exchange, mock};
use http::StatusCode;
use passes::{
    CANARY, applies, canary, cluster_of, deployment, event, get_target, hash, initialized, pass,
    patch_canary, primary_applies, primary_autoscaler_in_step, progressing, promoted, reads,
    rollback, status, written,
};
use serde_json::json;
use serin_kube::{
    Routes,
    controller::{Outcome, Verdict},
    manual::{Request, request},
    resource::CanaryStatus,
};

/// The merge patch removing the one-shot action.
fn clear_action() -> Exchange {
    patch_canary(json!({"metadata": {"annotations": {"serin.dev/action": null}}}))
}

/// A status written just now: a pass it causes is not due.
fn recent(mut status: CanaryStatus) -> CanaryStatus {
    status.last_transition_time = Some(passes::NOW.into());
    status
}

/// Paused, the rollout holds its weight without asking the analysis:
/// written and recorded once, at once (not one interval later); then
/// nothing until resumed.
#[tokio::test]
async fn a_pause_holds_the_weight_without_checks_until_resumed() {
    let paused = canary("", &[("serin.dev/paused", "true")]);
    let target = deployment("podinfo:6.0.1");
    let hold = "Paused by serin.dev/paused: holding podinfo.test at canary weight 20";
    let mut held = written(&progressing(&target, 20, 0));
    held["conditions"] = promoted("Unknown", "Progressing", hold);
    let exchanges = vec![
        get_target(&target),
        status(held.clone()),
        event("Normal", hold),
    ];
    let (outcome, asked) = pass(
        &paused,
        recent(progressing(&target, 20, 0)),
        Verdict::Fail("asked".into()),
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(asked, 0);

    // Held: later passes write nothing and ask nothing.
    let mut held: CanaryStatus = serde_json::from_value(held).unwrap();
    held.last_transition_time = Some("2026-11-30T11:50:00Z".into());
    let (outcome, asked) = pass(
        &paused,
        held.clone(),
        Verdict::Fail("asked".into()),
        vec![get_target(&target)],
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);
    assert_eq!(asked, 0);

    // Resumed (the annotation removed): judged and advanced.
    let resumed = canary("", &[]);
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(applies(
        &resumed,
        &target,
        &Routes::at(&resumed, 30).unwrap(),
        true,
    ));
    let mut advanced = written(&held);
    advanced["canaryWeight"] = json!(30);
    advanced["conditions"] = promoted(
        "Unknown",
        "Progressing",
        "New revision detected, progressing canary analysis.",
    );
    exchanges.push(status(advanced));
    exchanges.push(event("Normal", "Advance podinfo.test canary weight 30"));
    let (outcome, asked) = pass(&resumed, held, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    assert_eq!(asked, 1);
}

/// `promote` skips the rest of the analysis at once, then removes the
/// annotation.
#[tokio::test]
async fn promote_skips_the_remaining_analysis() {
    let canary = canary("", &[("serin.dev/action", "promote")]);
    let target = deployment("podinfo:6.0.1");
    let before = recent(progressing(&target, 20, 2));
    let mut promoting = written(&before);
    promoting["phase"] = json!("Promoting");
    // The primary side written as by an analysis's own promotion: the
    // configs and autoscaler read afresh, their copies applied with the
    // primary Deployment.
    let mut exchanges = vec![
        get_target(&target),
        event(
            "Normal",
            "Promoting podinfo.test now: serin.dev/action promote skips the remaining analysis",
        ),
        event(
            "Normal",
            "Copying podinfo.test template spec to podinfo-primary.test",
        ),
    ];
    exchanges.extend(reads(&cluster_of(&target)));
    exchanges.extend(primary_applies(&canary, &target));
    exchanges.push(status(promoting));
    exchanges.push(clear_action());
    let (outcome, asked) = pass(&canary, before, Verdict::Fail("asked".into()), exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Promoting".into()));
    assert_eq!(asked, 0);
}

/// `abort` rolls back at once, then removes the annotation.
#[tokio::test]
async fn abort_rolls_back() {
    let canary = canary("", &[("serin.dev/action", "abort")]);
    let target = deployment("podinfo:6.0.1");
    let before = recent(progressing(&target, 20, 0));
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(rollback(
        &canary,
        &target,
        &before,
        "Rolling back podinfo.test: aborted by serin.dev/action",
    ));
    exchanges.push(clear_action());
    let (outcome, asked) = pass(&canary, before, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Failed".into()));
    assert_eq!(asked, 0);
}

/// A revision not started yet: `abort` marks it failed (never started),
/// a pause keeps it from starting.
#[tokio::test]
async fn a_pending_revision_is_aborted_or_held() {
    let old = deployment("podinfo:6.0.0");
    let new = deployment("podinfo:6.0.1");

    let aborting = canary("", &[("serin.dev/action", "abort")]);
    let mut marked = initialized(&old);
    marked.last_applied_spec = Some(hash(&new));
    // A pending revision's pass is settled: configs and autoscaler read.
    let mut exchanges = vec![get_target(&new)];
    exchanges.extend(reads(&cluster_of(&new)));
    exchanges.extend(rollback(
        &aborting,
        &new,
        &marked,
        "Rolling back podinfo.test: aborted by serin.dev/action",
    ));
    exchanges.push(clear_action());
    let (outcome, _) = pass(&aborting, initialized(&old), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Failed".into()));

    let paused = canary("", &[("serin.dev/paused", "true")]);
    let mut exchanges = vec![get_target(&new)];
    exchanges.extend(reads(&cluster_of(&new)));
    let (outcome, _) = pass(&paused, initialized(&old), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);
}

/// An action with no rollout to act on (or no such action) is dropped
/// with a Warning saying why.
#[tokio::test]
async fn an_action_without_a_rollout_is_dropped_saying_why() {
    let target = deployment("podinfo:6.0.1");
    let mut done = initialized(&target);
    done.phase = Some("Succeeded".into());
    let stale = canary("", &[("serin.dev/action", "promote")]);
    // Settled: the configs and autoscaler are read (nothing new), the
    // action dropped, the primary autoscaler found in step.
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(reads(&cluster_of(&target)));
    exchanges.extend([
        event(
            "Warning",
            "serin.dev/action promote ignored: podinfo.test has no rollout in progress (phase Succeeded)",
        ),
        clear_action(),
        primary_autoscaler_in_step(&stale, &target),
    ]);
    let (outcome, _) = pass(&stale, done.clone(), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);

    let odd = canary("", &[("serin.dev/action", "yolo")]);
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(reads(&cluster_of(&target)));
    exchanges.extend([
        event(
            "Warning",
            "serin.dev/action \"yolo\" ignored: not an action (promote or abort)",
        ),
        clear_action(),
        primary_autoscaler_in_step(&odd, &target),
    ]);
    let (outcome, _) = pass(&odd, done, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);
}

/// What the command writes: a merge patch of the annotation, on the
/// canary in Flagger's group, else serin's.
#[tokio::test]
async fn requests_patch_the_canary_in_either_group() {
    assert_eq!(
        Request::Resume.patch(),
        json!({"metadata": {"annotations": {"serin.dev/paused": null}}})
    );
    let serin = "/apis/serin.dev/v1alpha1/namespaces/test/canaries/podinfo?";
    let answer = json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"}
    });
    for (request_of, body) in [
        (Request::Pause, json!({"serin.dev/paused": "true"})),
        (Request::Promote, json!({"serin.dev/action": "promote"})),
        (Request::Abort, json!({"serin.dev/action": "abort"})),
    ] {
        let body = json!({"metadata": {"annotations": body}});
        let (client, verifier) = mock();
        let server = tokio::spawn(verifier.run(vec![
            Exchange::new("PATCH", format!("{CANARY}?"), Some(body.clone()))
                .fail(StatusCode::NOT_FOUND, "NotFound"),
            Exchange::new("PATCH", serin, Some(body)).answer(answer.clone()),
        ]));
        let found = tokio::time::timeout(
            Duration::from_secs(10),
            request(client, "test", "podinfo", request_of),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(found, "serin.dev/v1alpha1");
        assert_eq!(server.await.unwrap(), 2);
    }

    // In neither group: said so, by name.
    let (client, verifier) = mock();
    let body = Request::Pause.patch();
    let server = tokio::spawn(verifier.run(vec![
        Exchange::new("PATCH", format!("{CANARY}?"), Some(body.clone()))
            .fail(StatusCode::NOT_FOUND, "NotFound"),
        Exchange::new("PATCH", serin, Some(body)).fail(StatusCode::NOT_FOUND, "NotFound"),
    ]));
    let error = request(client, "test", "podinfo", Request::Pause)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "canary podinfo not found in namespace test (flagger.app/v1beta1 or serin.dev/v1alpha1)"
    );
    server.await.unwrap();

    // Another refusal is not hidden.
    let (client, verifier) = mock();
    let server = tokio::spawn(verifier.run(vec![
        Exchange::new("PATCH", format!("{CANARY}?"), Some(Request::Abort.patch()))
            .fail(StatusCode::FORBIDDEN, "Forbidden"),
    ]));
    let error = request(client, "test", "podinfo", Request::Abort)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("Forbidden"), "{error}");
    server.await.unwrap();
}

/// `abort` of a revision made by a tracked config's new data (the same
/// template) records that data as the aborted revision's: the next pass,
/// the annotation gone, finds nothing new and starts nothing.
#[tokio::test]
async fn an_aborted_config_revision_is_not_started_afterwards() {
    let target = deployment("podinfo:6.0.0");
    let cluster = cluster_of(&target);
    let mut before = initialized(&target);
    before.phase = Some("Succeeded".into());
    before
        .tracked_configs
        .insert("configmap/podinfo-config".into(), "0000000000000000".into());

    let aborting = canary("", &[("serin.dev/action", "abort")]);
    let mut marked = before.clone();
    marked.tracked_configs = initialized(&target).tracked_configs;
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(reads(&cluster));
    exchanges.extend(rollback(
        &aborting,
        &target,
        &marked,
        "Rolling back podinfo.test: aborted by serin.dev/action",
    ));
    exchanges.push(clear_action());
    let (outcome, _) = pass(&aborting, before, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Failed".into()));

    let mut failed = marked;
    failed.phase = Some("Failed".into());
    let resumed = canary("", &[]);
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(reads(&cluster));
    exchanges.push(primary_autoscaler_in_step(&resumed, &target));
    let (outcome, _) = pass(&resumed, failed, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);
}
