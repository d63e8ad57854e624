//! Alerts in controller mode: reconcile scenarios against the mocked API
//! server (the AlertProvider and its Secret read when an alert is due)
//! with real receivers on loopback standing in for Slack and Teams.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod passes;
mod support;

use fixtures::Exchange;
use k8s_openapi::ByteString;
use passes::{
    canary, deployment, event, get_target, hash, pass, progressing, promoted, rollback, scale,
    status, written,
};
use serde_json::{Value, json};
use serin_kube::controller::{Outcome, Verdict};
use serin_spec::Canary;
use serin_testkit::receiver::Receiver;

/// The tutorial canary with two alert entries: `on-call` (errors only,
/// Slack, its address in a Secret) and `team` (everything, Teams).
fn alerted() -> Canary {
    let mut canary = canary("", &[]);
    canary.spec.analysis.as_mut().unwrap().alerts = serde_json::from_value(json!([
        {"name": "on-call", "severity": "error", "providerRef": {"name": "on-call"}},
        {"name": "team", "providerRef": {"name": "team-teams"}}
    ]))
    .unwrap();
    canary
}

fn get_provider(name: &str, spec: Value) -> Exchange {
    Exchange::new(
        "GET",
        format!("/apis/flagger.app/v1beta1/namespaces/test/alertproviders/{name}"),
        None,
    )
    .answer(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider",
        "metadata": {"name": name, "namespace": "test"}, "spec": spec
    }))
}

fn get_secret(name: &str, address: &str) -> Exchange {
    let data = serde_json::to_value(ByteString(address.as_bytes().to_vec())).unwrap();
    Exchange::new(
        "GET",
        format!("/api/v1/namespaces/test/secrets/{name}"),
        None,
    )
    .answer(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "test"}, "data": {"address": data}
    }))
}

fn bodies(receiver: &Receiver, path: &str) -> Vec<Value> {
    receiver
        .received(path)
        .into_iter()
        .map(|received| received.body)
        .collect()
}

/// A rollback at the threshold is an error: both entries send it, the
/// on-call one to the address its Secret holds.
#[tokio::test]
async fn a_rollback_alerts_every_entry() {
    let receiver = Receiver::start().await;
    let canary = alerted();
    let target = deployment("podinfo:6.0.1");
    let reason = "Rolling back podinfo.test failed checks threshold reached 5";
    let mut counted = progressing(&target, 20, 5);
    counted.phase = Some("Progressing".into());
    let mut exchanges = vec![get_target(&target)];
    exchanges.extend(rollback(&canary, &target, &counted, reason));
    exchanges.push(get_provider(
        "on-call",
        json!({"type": "slack", "channel": "on-call", "secretRef": {"name": "on-call-url"}}),
    ));
    exchanges.push(get_secret("on-call-url", &receiver.url("/slack")));
    exchanges.push(get_provider(
        "team-teams",
        json!({"type": "msteams", "address": receiver.url("/teams")}),
    ));
    let (outcome, _) = pass(
        &canary,
        progressing(&target, 20, 4),
        Verdict::Fail("request-success-rate 95 < 99".into()),
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Failed".into()));

    let slack = bodies(&receiver, "/slack");
    assert_eq!(slack.len(), 1);
    assert_eq!(slack[0]["text"], format!("podinfo.test: {reason}"));
    assert_eq!(slack[0]["channel"], "on-call");
    assert_eq!(slack[0]["attachments"][0]["color"], "#d00000");
    let teams = bodies(&receiver, "/teams");
    assert_eq!(teams.len(), 1);
    assert_eq!(teams[0]["summary"], format!("podinfo.test: {reason}"));
    let facts = &teams[0]["sections"][0]["facts"];
    assert_eq!(
        facts[0],
        json!({"name": "Revision", "value": hash(&target)})
    );
    assert_eq!(facts[1], json!({"name": "Phase", "value": "Failed"}));
}

/// A promotion is info: the errors-only entry is not even read; an
/// entry whose receiver refuses is recorded as a Warning event.
#[tokio::test]
async fn a_promotion_alerts_the_entries_that_want_info() {
    let receiver = Receiver::start().await;
    let canary = alerted();
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
    let teams = json!({"type": "msteams", "address": receiver.url("/teams")});
    let exchanges = vec![
        get_target(&target),
        scale(0),
        status(succeeded.clone()),
        event("Normal", "Promotion completed! Scaling down podinfo.test"),
        get_provider("team-teams", teams.clone()),
    ];
    let (outcome, _) = pass(&canary, finalising.clone(), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Succeeded".into()));
    let sent = bodies(&receiver, "/teams");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["sections"][0]["activitySubtitle"],
        "Canary analysis completed successfully, promotion finished."
    );
    assert_eq!(receiver.count("/slack"), 0);

    receiver.answer("/teams", 500);
    let exchanges = vec![
        get_target(&target),
        scale(0),
        status(succeeded),
        event("Normal", "Promotion completed! Scaling down podinfo.test"),
        get_provider("team-teams", teams),
        event("Warning", "Alert team not delivered: answered 500"),
    ];
    let (outcome, _) = pass(&canary, finalising, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Succeeded".into()));
    assert_eq!(receiver.count("/teams"), 2);
}

/// A closed promotion gate is a warning: sent to the entries that want
/// warnings, unless the gate's webhook has `muteAlert`.
#[tokio::test]
async fn a_held_promotion_warns_unless_its_webhook_mutes_alerts() {
    let receiver = Receiver::start().await;
    receiver.answer("/promote", 403);
    let target = deployment("podinfo:6.0.1");
    let halt = "Halt podinfo.test advancement waiting for promotion approval promote";
    let mut waiting = written(&progressing(&target, 50, 0));
    waiting["phase"] = json!("WaitingPromotion");
    waiting["conditions"] = json!([{
        "type": "Promoted", "status": "Unknown", "reason": "WaitingPromotion",
        "message": "Waiting for approval.", "lastUpdateTime": passes::NOW,
        "lastTransitionTime": passes::NOW
    }]);
    for mute in [false, true] {
        let gate = format!(
            "    - name: promote\n      type: confirm-promotion\n      url: {}\n      muteAlert: {mute}\n",
            receiver.url("/promote")
        );
        let mut canary = canary(&gate, &[]);
        canary.spec.analysis.as_mut().unwrap().alerts = alerted().analysis().alerts.clone();
        let mut exchanges = vec![
            get_target(&target),
            status(waiting.clone()),
            event("Warning", halt),
        ];
        if !mute {
            exchanges.push(get_provider(
                "team-teams",
                json!({"type": "msteams", "address": receiver.url("/teams")}),
            ));
        }
        let (outcome, _) = pass(
            &canary,
            progressing(&target, 50, 0),
            Verdict::Pass,
            exchanges,
        )
        .await;
        assert_eq!(outcome.unwrap(), Outcome::Moved("WaitingPromotion".into()));
    }
    let sent = bodies(&receiver, "/teams");
    assert_eq!(sent.len(), 1, "the muted gate sent nothing");
    assert_eq!(sent[0]["sections"][0]["activitySubtitle"], halt);
    assert_eq!(sent[0]["themeColor"], "daa038");
    assert_eq!(receiver.count("/slack"), 0);
}
