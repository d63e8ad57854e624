//! Reconcile scenarios against the mocked API server: each asserts the
//! exact requests a pass makes and their bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod passes;
mod support;

use std::time::Duration;

use fixtures::{Exchange, mock};
use http::StatusCode;
use k8s_openapi::api::apps::v1::Deployment;
use passes::{applies, cluster_of, primary_applies, primary_autoscaler_in_step, reads, tracked};
use serde_json::{Value, json};
use serin_kube::{
    Routes,
    controller::{
        Checks, Judgement, Outcome, Reconciler, Request, Target, Verdict, canary_resource,
    },
    resource::CanaryStatus,
};
use serin_spec::Canary;

const NOW: &str = "2026-11-30T12:00:00Z";

struct Fixed(Verdict);

impl Checks for Fixed {
    fn check<'a>(&'a self, _: Request<'a>) -> futures_util::future::BoxFuture<'a, Judgement> {
        Box::pin(std::future::ready(Judgement::only(self.0.clone())))
    }
}

fn canary() -> Canary {
    let mut canary = support::canary_from(
        &support::compat_dir()
            .join("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml"),
    );
    canary.metadata.uid = Some("0a1b2c3d-0000-4000-8000-000000000001".into());
    // Its webhooks would be called (tests/hooks.rs covers them).
    canary.spec.analysis.as_mut().unwrap().webhooks.clear();
    canary
}

fn deployment(image: &str) -> Deployment {
    let text = std::fs::read_to_string(support::testdata().join("kube/podinfo-deployment.yaml"))
        .unwrap()
        .replace("podinfo:6.0.0", image);
    let split = serin_kube::documents::split(&text).unwrap();
    split.cluster.target.unwrap()
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/test/deployments";
const STATUS: &str = "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo/status";
const EVENTS: &str = "/api/v1/namespaces/test/events";

fn get_target(target: &Deployment) -> Exchange {
    Exchange::new("GET", format!("{DEPLOYMENTS}/podinfo"), None)
        .answer(serde_json::to_value(target).unwrap())
}

fn scale(replicas: i32) -> Exchange {
    Exchange::new(
        "PATCH",
        format!("{DEPLOYMENTS}/podinfo?"),
        Some(json!({"spec": {"replicas": replicas}})),
    )
    .answer(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "podinfo"}, "spec": {"selector": {}, "template": {}}}))
}

fn status(body: Value) -> Exchange {
    Exchange::new(
        "PATCH",
        format!("{STATUS}?"),
        Some(json!({ "status": body })),
    )
    .answer(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"}
    }))
}

fn event(event_type: &str, message: &str) -> Exchange {
    let name = format!(
        "podinfo.{}",
        serin_kube::hash::fingerprint(&format!("{NOW}{message}"))
    );
    let body = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "test"},
        "involvedObject": {
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
            "namespace": "test", "uid": "0a1b2c3d-0000-4000-8000-000000000001"
        },
        "action": "Synced", "count": 1, "reason": "Synced", "message": message,
        "type": event_type,
        "source": {"component": "serin"},
        "firstTimestamp": NOW, "lastTimestamp": NOW, "eventTime": "2026-11-30T12:00:00.000000Z",
        "reportingComponent": "serin", "reportingInstance": "serin"
    });
    Exchange::new("POST", format!("{EVENTS}?"), Some(body.clone())).answer(body)
}

fn promoted(status: &str, reason: &str, message: &str) -> Value {
    json!([{
        "type": "Promoted", "status": status, "reason": reason, "message": message,
        "lastUpdateTime": NOW, "lastTransitionTime": NOW
    }])
}

/// Runs one pass against the scripted API; both sides bounded in time.
async fn pass(
    canary: &Canary,
    status: CanaryStatus,
    verdict: Verdict,
    exchanges: Vec<Exchange>,
) -> Result<Outcome, serin_kube::controller::Error> {
    let (client, verifier) = mock();
    let expected = exchanges.len();
    let server = tokio::spawn(verifier.run(exchanges));
    let reconciler = Reconciler::new(client, Fixed(verdict), "istio");
    let target = Target {
        canary,
        status,
        resource: canary_resource("flagger.app/v1beta1"),
    };
    let outcome = tokio::time::timeout(Duration::from_secs(10), reconciler.reconcile(target, NOW))
        .await
        .expect("the pass ends");
    let answered = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the verifier ends")
        .unwrap();
    assert_eq!(answered, expected);
    outcome
}

fn hash(target: &Deployment) -> String {
    serin_kube::workload::template_hash(&target.spec.template)
}

#[tokio::test]
async fn initialise_creates_flaggers_objects_and_scales_the_target_down() {
    let canary = canary();
    let target = deployment("podinfo:6.0.0");
    let cluster = cluster_of(&target);
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(reads(&cluster));
    exchanges.extend(applies(&canary, &target, &Routes::primary(), false));
    exchanges.push(scale(0));
    exchanges.push(status(json!({
        "phase": "Initialized", "canaryWeight": 0, "failedChecks": 0, "iterations": 0,
        "trackedConfigs": tracked(&cluster),
        "lastAppliedSpec": hash(&target), "lastPromotedSpec": hash(&target),
        "lastTransitionTime": NOW,
        "conditions": promoted("True", "Initialized", "Deployment initialization completed.")
    })));
    exchanges.push(event("Normal", "Initialization done! podinfo.test"));
    let outcome = pass(&canary, CanaryStatus::default(), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Initialized".into()));
}

fn initialized(target: &Deployment) -> CanaryStatus {
    serde_json::from_value(json!({
        "phase": "Initialized", "lastAppliedSpec": hash(target), "lastPromotedSpec": hash(target),
        "trackedConfigs": tracked(&cluster_of(target)),
        "conditions": promoted("True", "Initialized", "Deployment initialization completed.")
    }))
    .unwrap()
}

fn progressing(target: &Deployment, weight: i64, failed: i64) -> CanaryStatus {
    serde_json::from_value(json!({
        "phase": "Progressing", "canaryWeight": weight, "failedChecks": failed,
        "lastAppliedSpec": hash(target), "lastPromotedSpec": "0000000000000000",
        "conditions": promoted("Unknown", "Progressing", "New revision detected, progressing canary analysis.")
    }))
    .unwrap()
}

#[tokio::test]
async fn the_same_revision_is_left_alone() {
    let canary = canary();
    let target = deployment("podinfo:6.0.0");
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(reads(&cluster_of(&target)));
    // The primary's autoscaler is in step with the target's: read, not written.
    exchanges.push(primary_autoscaler_in_step(&canary, &target));
    let outcome = pass(&canary, initialized(&target), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);
}

#[tokio::test]
async fn a_new_revision_scales_the_canary_up_and_starts_the_analysis() {
    let canary = canary();
    let old = deployment("podinfo:6.0.0");
    let new = deployment("podinfo:6.0.1");
    let primary = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "podinfo-primary", "namespace": "test"},
        "spec": {"replicas": 2, "selector": {}, "template": {}}
    });
    let mut exchanges = vec![get_target(&new)];
    exchanges.extend(reads(&cluster_of(&new)));
    exchanges.extend([
        event("Normal", "New revision detected! Scaling up podinfo.test"),
        Exchange::new("GET", format!("{DEPLOYMENTS}/podinfo-primary"), None).answer(primary),
        scale(2),
        status(json!({
            "phase": "Progressing", "canaryWeight": 0, "failedChecks": 0, "iterations": 0,
            "trackedConfigs": tracked(&cluster_of(&new)),
            "lastAppliedSpec": hash(&new), "lastPromotedSpec": hash(&old),
            "lastTransitionTime": NOW,
            "conditions": [{
                "type": "Promoted", "status": "Unknown", "reason": "Progressing",
                "message": "New revision detected, progressing canary analysis.",
                "lastUpdateTime": NOW, "lastTransitionTime": NOW
            }]
        })),
    ]);
    let outcome = pass(&canary, initialized(&old), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
}

#[tokio::test]
async fn a_passed_check_advances_one_step() {
    let canary = canary();
    let target = deployment("podinfo:6.0.1");
    let routes = Routes::at(&canary, 20).unwrap();
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(applies(&canary, &target, &routes, true));
    let mut expected = serde_json::to_value(progressing(&target, 20, 0)).unwrap();
    expected["lastTransitionTime"] = json!(NOW);
    exchanges.push(status(expected));
    exchanges.push(event("Normal", "Advance podinfo.test canary weight 20"));
    let outcome = pass(
        &canary,
        progressing(&target, 10, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    // The VirtualService of that step carries 80/20.
    let vs = applies(&canary, &target, &routes, true)
        .pop()
        .unwrap()
        .body
        .unwrap();
    assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], 20);
}

#[tokio::test]
async fn at_max_weight_the_canary_is_promoted_then_finalised() {
    let canary = canary();
    let target = deployment("podinfo:6.0.1");

    // Progressing at maxWeight: the primary takes the canary's template.
    let mut exchanges = vec![
        get_target(&target),
        event(
            "Normal",
            "Copying podinfo.test template spec to podinfo-primary.test",
        ),
    ];
    exchanges.extend(reads(&cluster_of(&target)));
    exchanges.extend(primary_applies(&canary, &target));
    let mut promoting = serde_json::to_value(progressing(&target, 50, 0)).unwrap();
    promoting["phase"] = json!("Promoting");
    promoting["lastTransitionTime"] = json!(NOW);
    exchanges.push(status(promoting.clone()));
    let outcome = pass(
        &canary,
        progressing(&target, 50, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Promoting".into()));

    // Promoting: all traffic back to the primary.
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(applies(&canary, &target, &Routes::primary(), true));
    let mut finalising = promoting.clone();
    finalising["phase"] = json!("Finalising");
    finalising["canaryWeight"] = json!(0);
    exchanges.push(status(finalising.clone()));
    exchanges.push(event("Normal", "Routing all traffic to primary"));
    let status_in: CanaryStatus = serde_json::from_value(promoting).unwrap();
    let outcome = pass(&canary, status_in, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Finalising".into()));

    // Finalising: the canary scaled to zero, the revision promoted.
    let mut succeeded = finalising.clone();
    succeeded["phase"] = json!("Succeeded");
    succeeded["lastPromotedSpec"] = json!(hash(&target));
    succeeded["conditions"] = json!([{
        "type": "Promoted", "status": "True", "reason": "Succeeded",
        "message": "Canary analysis completed successfully, promotion finished.",
        "lastUpdateTime": NOW, "lastTransitionTime": NOW
    }]);
    let exchanges = vec![
        get_target(&target),
        scale(0),
        status(succeeded),
        event("Normal", "Promotion completed! Scaling down podinfo.test"),
    ];
    let status_in: CanaryStatus = serde_json::from_value(finalising).unwrap();
    let outcome = pass(&canary, status_in, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Succeeded".into()));
}

#[tokio::test]
async fn failed_checks_halt_then_roll_back_at_the_threshold() {
    let canary = canary(); // threshold: 5
    let target = deployment("podinfo:6.0.1");

    let mut halted = serde_json::to_value(progressing(&target, 20, 1)).unwrap();
    halted["lastTransitionTime"] = json!(NOW);
    // The reason is in the condition too.
    halted["conditions"] = promoted(
        "Unknown",
        "Progressing",
        "Halt advancement podinfo.test request-success-rate 95.2 < 99",
    );
    let exchanges = vec![
        get_target(&target),
        status(halted),
        event(
            "Warning",
            "Halt advancement podinfo.test request-success-rate 95.2 < 99",
        ),
    ];
    let outcome = pass(
        &canary,
        progressing(&target, 20, 0),
        Verdict::Fail("request-success-rate 95.2 < 99".into()),
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));

    let mut exchanges = vec![
        get_target(&target),
        event(
            "Warning",
            "Rolling back podinfo.test failed checks threshold reached 5",
        ),
    ];
    exchanges.extend(applies(&canary, &target, &Routes::primary(), true));
    exchanges.push(scale(0));
    let mut failed = serde_json::to_value(progressing(&target, 0, 5)).unwrap();
    failed["phase"] = json!("Failed");
    failed["lastTransitionTime"] = json!(NOW);
    failed["conditions"] = json!([{
        "type": "Promoted", "status": "False", "reason": "Failed",
        "message": "Canary analysis failed, Deployment scaled to zero.",
        "lastUpdateTime": NOW, "lastTransitionTime": NOW
    }]);
    exchanges.push(status(failed));
    exchanges.push(event("Warning", "Canary failed! Scaling down podinfo.test"));
    let outcome = pass(
        &canary,
        progressing(&target, 20, 4),
        Verdict::Fail("request-success-rate 95.2 < 99".into()),
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Failed".into()));
}

/// A 409 or a 500 ends the pass with an error (the controller requeues it
/// with backoff); the next pass makes the same requests and completes,
/// since every write is an apply or a merge patch.
#[tokio::test]
async fn conflicts_and_server_errors_are_retried_by_the_next_pass() {
    let canary = canary();
    let target = deployment("podinfo:6.0.1");
    for (code, reason) in [
        (StatusCode::CONFLICT, "Conflict"),
        (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    ] {
        let routes = Routes::at(&canary, 20).unwrap();
        let mut exchanges = vec![get_target(&target)];
        let mut writes = applies(&canary, &target, &routes, true);
        let first = writes.remove(0);
        exchanges.push(
            Exchange::new(first.method, first.path.clone(), first.body.clone()).fail(code, reason),
        );
        let error = pass(
            &canary,
            progressing(&target, 10, 0),
            Verdict::Pass,
            exchanges,
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains(reason), "{error}");

        let mut exchanges = vec![get_target(&target)];
        exchanges.extend(applies(&canary, &target, &routes, true));
        let mut expected = serde_json::to_value(progressing(&target, 20, 0)).unwrap();
        expected["lastTransitionTime"] = json!(NOW);
        exchanges.push(status(expected));
        exchanges.push(event("Normal", "Advance podinfo.test canary weight 20"));
        let outcome = pass(
            &canary,
            progressing(&target, 10, 0),
            Verdict::Pass,
            exchanges,
        )
        .await;
        assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    }
}

/// The analysis port answering a fixed judgement with a record to keep.
struct Judging(Judgement);

impl Checks for Judging {
    fn check<'a>(&'a self, request: Request<'a>) -> futures_util::future::BoxFuture<'a, Judgement> {
        // The pass hands the port its time and the record it read.
        assert_eq!(request.now_ms, 1_796_040_000_000);
        Box::pin(std::future::ready(self.0.clone()))
    }
}

const CANARY: &str = "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo";

fn record(verdict: serin_analysis::Verdict) -> serin_kube::resource::AnalysisRecord {
    serin_kube::resource::AnalysisRecord {
        revision: "rev".into(),
        observed_until: 1_796_039_999_000,
        weight: 20,
        evidence: Some("{\"judge\":\"sequential\",\"evidence\":{}}".into()),
        decision: Some(serin_analysis::Decision {
            verdict,
            at_ms: 1_796_040_000_000,
            metrics: vec![serin_analysis::MetricEvidence {
                e_value: Some(2.5),
                interval: Some(serin_analysis::Bounds {
                    low: 98.5,
                    high: 99.9,
                }),
                canary: Some(99.2),
                ..serin_analysis::MetricEvidence::new(
                    "request-success-rate",
                    serin_analysis::MetricStatus::Inconclusive,
                    "request-success-rate canary 99.2 %".into(),
                )
            }],
            reasons: vec!["holding: more evidence needed".into()],
            hold: None,
        }),
    }
}

/// The merge patch keeping `record` in the canary's annotation.
fn save(record: &serin_kube::resource::AnalysisRecord) -> Exchange {
    Exchange::new(
        "PATCH",
        format!("{CANARY}?"),
        Some(json!({"metadata": {"annotations": {
            "serin.dev/analysis": serde_json::to_string(record).unwrap()
        }}})),
    )
    .answer(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"}
    }))
}

async fn judged_pass(
    canary: &Canary,
    status: CanaryStatus,
    judgement: Judgement,
    exchanges: Vec<Exchange>,
) -> Result<Outcome, serin_kube::controller::Error> {
    let (client, verifier) = mock();
    let expected = exchanges.len();
    let server = tokio::spawn(verifier.run(exchanges));
    let reconciler = Reconciler::new(client, Judging(judgement), "istio");
    let target = Target {
        canary,
        status,
        resource: canary_resource(&canary.api_version),
    };
    let outcome = tokio::time::timeout(Duration::from_secs(10), reconciler.reconcile(target, NOW))
        .await
        .expect("the pass ends");
    let answered = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the verifier ends")
        .unwrap();
    assert_eq!(answered, expected);
    outcome
}

/// As Flagger: at weight 0 the canary has no traffic to judge; the pass
/// says the analysis starts and moves to the first step unjudged.
#[tokio::test]
async fn the_first_step_is_taken_without_judging_an_idle_canary() {
    let canary = canary();
    let target = deployment("podinfo:6.0.1");
    let routes = Routes::at(&canary, 10).unwrap();
    let mut exchanges = vec![
        get_target(&target),
        event("Normal", "Starting canary analysis for podinfo.test"),
    ];
    exchanges.extend(applies(&canary, &target, &routes, true));
    let mut expected = serde_json::to_value(progressing(&target, 10, 0)).unwrap();
    expected["lastTransitionTime"] = json!(NOW);
    exchanges.push(status(expected));
    exchanges.push(event("Normal", "Advance podinfo.test canary weight 10"));
    // A port that would fail the step is never asked.
    let outcome = pass(
        &canary,
        progressing(&target, 0, 0),
        Verdict::Fail("asked".into()),
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
}

/// A pass that comes back before the interval (the controller's own
/// status write wakes it) reads the target and waits.
#[tokio::test]
async fn an_analysis_not_due_waits_for_the_rest_of_the_interval() {
    let canary = canary(); // interval: 1m
    let target = deployment("podinfo:6.0.1");
    let mut status_in = progressing(&target, 20, 0);
    status_in.last_transition_time = Some("2026-11-30T11:59:30Z".into());
    let outcome = pass(
        &canary,
        status_in,
        Verdict::Fail("asked".into()),
        vec![get_target(&target)],
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Wait(Duration::from_secs(30)));
}

/// A hold keeps the weight and counts no failed check; the judge's record
/// is saved on the canary before anything else is written.
#[tokio::test]
async fn a_hold_saves_the_evidence_and_keeps_the_weight() {
    let canary = canary();
    let target = deployment("podinfo:6.0.1");
    let record = record(serin_analysis::Verdict::Hold);
    let mut held = serde_json::to_value(progressing(&target, 20, 1)).unwrap();
    held["lastTransitionTime"] = json!(NOW);
    held["conditions"] = promoted(
        "Unknown",
        "Progressing",
        "Holding podinfo.test at canary weight 20: holding: more evidence needed",
    );
    let exchanges = vec![get_target(&target), save(&record), status(held)];
    let outcome = judged_pass(
        &canary,
        progressing(&target, 20, 1),
        Judgement {
            verdict: Verdict::Hold("holding: more evidence needed".into()),
            record: Some(record.clone()),
        },
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
}

/// Decisive harm rolls back at once, below the failed-checks threshold.
#[tokio::test]
async fn decisive_harm_rolls_back_at_once() {
    let canary = canary();
    let target = deployment("podinfo:6.0.1");
    let record = record(serin_analysis::Verdict::Rollback);
    let reason = "request-success-rate: canary errors above stable's, e-value 210 > 1/alpha";
    let mut exchanges = vec![
        get_target(&target),
        save(&record),
        event("Warning", &format!("Rolling back podinfo.test: {reason}")),
    ];
    exchanges.extend(applies(&canary, &target, &Routes::primary(), true));
    exchanges.push(scale(0));
    let mut failed = serde_json::to_value(progressing(&target, 0, 0)).unwrap();
    failed["phase"] = json!("Failed");
    failed["lastTransitionTime"] = json!(NOW);
    failed["conditions"] = json!([{
        "type": "Promoted", "status": "False", "reason": "Failed",
        "message": "Canary analysis failed, Deployment scaled to zero.",
        "lastUpdateTime": NOW, "lastTransitionTime": NOW
    }]);
    exchanges.push(status(failed));
    exchanges.push(event("Warning", "Canary failed! Scaling down podinfo.test"));
    let outcome = judged_pass(
        &canary,
        progressing(&target, 20, 0),
        Judgement {
            verdict: Verdict::Rollback(reason.into()),
            record: Some(record),
        },
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Failed".into()));
}

/// A `serin.dev` canary carries serin's decision in its status too
/// (Flagger's status schema would prune it; its annotation has it).
#[tokio::test]
async fn a_serin_canary_shows_the_decision_in_its_status() {
    let mut canary = canary();
    canary.api_version = "serin.dev/v1alpha1".into();
    let target = deployment("podinfo:6.0.1");
    let record = record(serin_analysis::Verdict::Hold);
    let base = "/apis/serin.dev/v1alpha1/namespaces/test/canaries/podinfo";
    let answer = json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"}
    });
    let mut held = serde_json::to_value(progressing(&target, 20, 0)).unwrap();
    held["lastTransitionTime"] = json!(NOW);
    held["conditions"] = promoted(
        "Unknown",
        "Progressing",
        "Holding podinfo.test at canary weight 20: holding: more evidence needed",
    );
    held["analysis"] = serde_json::to_value(record.decision.as_ref().unwrap()).unwrap();
    assert_eq!(held["analysis"]["metrics"][0]["e_value"], json!(2.5));
    let exchanges = vec![
        get_target(&target),
        Exchange::new(
            "PATCH",
            format!("{base}?"),
            Some(json!({"metadata": {"annotations": {
                "serin.dev/analysis": serde_json::to_string(&record).unwrap()
            }}})),
        )
        .answer(answer.clone()),
        Exchange::new(
            "PATCH",
            format!("{base}/status?"),
            Some(json!({ "status": held })),
        )
        .answer(answer),
    ];
    let outcome = judged_pass(
        &canary,
        progressing(&target, 20, 0),
        Judgement {
            verdict: Verdict::Hold("holding: more evidence needed".into()),
            record: Some(record.clone()),
        },
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
    // serin's CRD keeps the field: its status schema declares it.
    let crd = serin_kube::resource::serin_crd();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        ["analysis"];
    assert_eq!(schema["x-kubernetes-preserve-unknown-fields"], json!(true));
}

/// Flagger's `skipAnalysis`: the new revision is promoted in one pass,
/// with Flagger's messages, and no check is asked.
#[tokio::test]
async fn skip_analysis_promotes_in_one_pass() {
    let mut canary = canary();
    canary.spec.skip_analysis = true;
    let target = deployment("podinfo:6.0.1");
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(applies(&canary, &target, &Routes::primary(), true));
    exchanges.push(event(
        "Normal",
        "Copying podinfo.test template spec to podinfo-primary.test",
    ));
    exchanges.extend(reads(&cluster_of(&target)));
    exchanges.extend(primary_applies(&canary, &target));
    exchanges.push(scale(0));
    let mut succeeded = serde_json::to_value(progressing(&target, 0, 0)).unwrap();
    succeeded["phase"] = json!("Succeeded");
    succeeded["lastPromotedSpec"] = json!(hash(&target));
    succeeded["lastTransitionTime"] = json!(NOW);
    succeeded["conditions"] = json!([{
        "type": "Promoted", "status": "True", "reason": "Succeeded",
        "message": "Canary analysis completed successfully, promotion finished.",
        "lastUpdateTime": NOW, "lastTransitionTime": NOW
    }]);
    exchanges.push(status(succeeded));
    exchanges.push(event(
        "Normal",
        "Promotion completed! Canary analysis was skipped for podinfo.test",
    ));
    let outcome = pass(
        &canary,
        progressing(&target, 10, 0),
        Verdict::Fail("asked".into()),
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Succeeded".into()));
}
