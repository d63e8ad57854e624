//! Alerts during real rollouts: every provider's format at a local
//! receiver, severities, muteAlert, weight, reasons and retries.

use super::{Rig, finish, launch};
use serde_json::Value;
use serin_rollout::Phase;
use std::time::Duration;

const PROVIDERS: [&str; 6] = ["slack", "msteams", "discord", "rocket", "gchat", "webhook"];

/// The canary's YAML plus one AlertProvider per type, each alert entry at
/// `severity`, plus an `error`-only generic webhook at `/errors`.
fn with_alerts(rig: &Rig, canary: String, severity: &str) -> String {
    let mut entries = String::from("    alerts:\n");
    let mut providers = String::new();
    for kind in PROVIDERS {
        entries.push_str(&format!(
            "    - name: to-{kind}\n      severity: {severity}\n      providerRef:\n        name: {kind}\n"
        ));
        providers.push_str(&format!(
            "---\napiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: {kind}\nspec:\n  type: {kind}\n  channel: releases\n  username: serin-bot\n  address: {}\n",
            rig.hooks.url(&format!("/{kind}"))
        ));
    }
    entries.push_str("    - name: errors-only\n      severity: error\n      providerRef:\n        name: errors\n");
    providers.push_str(&format!(
        "---\napiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: errors\nspec:\n  type: webhook\n  address: {}\n",
        rig.hooks.url("/errors")
    ));
    format!("{canary}{entries}{providers}")
}

fn bodies(rig: &Rig, path: &str) -> Vec<Value> {
    rig.hooks
        .received(path)
        .into_iter()
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn every_provider_gets_its_own_format_for_a_promotion() {
    let rig = Rig::new().await;
    let yaml = with_alerts(&rig, rig.yaml(2, &[("event", "/event", "")]), "info");
    let (running, mut watch) = launch(&yaml).await;
    let (state, _) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Succeeded);

    // Generic webhook: the alert as it is, one when the revision starts, one
    // when it is promoted.
    let generic = bodies(&rig, "/webhook");
    assert_eq!(generic.len(), 2, "{generic:#?}");
    assert_eq!(generic[0]["severity"], "info");
    assert_eq!(generic[0]["phase"], "Progressing");
    assert!(
        generic[0]["message"]
            .as_str()
            .unwrap()
            .contains("New revision v2"),
        "{}",
        generic[0]
    );
    let done = &generic[1];
    assert_eq!(done["canary"], "web");
    assert_eq!(done["namespace"], "default");
    assert_eq!(done["revision"], "v2");
    assert_eq!(done["phase"], "Succeeded");
    assert_eq!(done["weight"], 40, "the weight the canary reached");
    assert!(
        done["message"].as_str().unwrap().contains("revision v2"),
        "{done}"
    );
    assert!(done["timestamp"].as_u64().unwrap() > 1_700_000_000_000);

    let slack = bodies(&rig, "/slack");
    assert_eq!(slack.len(), 2);
    assert_eq!(slack[1]["channel"], "releases");
    assert_eq!(slack[1]["username"], "serin-bot");
    let attachment = &slack[1]["attachments"][0];
    assert_eq!(attachment["color"], "#2eb886");
    assert_eq!(attachment["author_name"], "web.default");
    let fields = attachment["fields"].as_array().unwrap();
    assert!(
        fields
            .iter()
            .any(|f| f["title"] == "Canary weight" && f["value"] == "40%")
    );
    assert!(
        fields
            .iter()
            .any(|f| f["title"] == "Revision" && f["value"] == "v2")
    );
    assert_eq!(
        bodies(&rig, "/rocket")[1]["attachments"][0]["author_name"],
        "web.default"
    );

    let teams = &bodies(&rig, "/msteams")[1];
    assert_eq!(teams["@type"], "MessageCard");
    assert_eq!(teams["themeColor"], "2eb886");
    assert_eq!(teams["sections"][0]["activityTitle"], "web.default");
    assert!(
        teams["sections"][0]["facts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Phase" && f["value"] == "Succeeded")
    );

    let discord = &bodies(&rig, "/discord")[1];
    assert_eq!(discord["username"], "serin-bot");
    assert_eq!(discord["embeds"][0]["title"], "web.default");
    assert_eq!(discord["embeds"][0]["color"], 0x2e_b8_86);

    let gchat = &bodies(&rig, "/gchat")[1];
    assert_eq!(gchat["cards"][0]["header"]["title"], "web.default");
    assert!(
        gchat["cards"][0]["sections"][0]["widgets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["keyValue"]["topLabel"] == "Revision")
    );

    assert!(
        bodies(&rig, "/errors").is_empty(),
        "nothing at error severity"
    );
}

#[tokio::test]
async fn a_rollback_says_why_with_the_weight_and_reaches_error_only_alerts() {
    let rig = Rig::new().await;
    rig.hooks.answer("/load", 500);
    let yaml = with_alerts(&rig, rig.yaml(2, &[("rollout", "/load", "")]), "warn");
    let (running, mut watch) = launch(&yaml).await;
    let (state, _) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Failed);
    let errors = bodies(&rig, "/errors");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let rollback = &errors[0];
    assert_eq!(rollback["severity"], "error");
    assert_eq!(rollback["phase"], "Failed");
    assert_eq!(rollback["weight"], 20, "the weight it was rolled back from");
    assert!(
        rollback["message"]
            .as_str()
            .unwrap()
            .contains("Rolling back"),
        "{rollback}"
    );
    let reasons = rollback["reasons"].to_string();
    assert!(
        reasons.contains("rollout webhook rollout-load answered 500"),
        "{reasons}"
    );
    // warn-level entries also got the failed check, not the start (info).
    let generic = bodies(&rig, "/webhook");
    assert_eq!(generic.first().unwrap()["severity"], "warn", "{generic:#?}");
    assert_eq!(generic.last().unwrap()["severity"], "error");
    assert_eq!(
        bodies(&rig, "/slack").last().unwrap()["attachments"][0]["color"],
        "#d00000"
    );
}

#[tokio::test]
async fn mute_alert_silences_a_webhook_failure_but_not_the_rollback() {
    let rig = Rig::new().await;
    rig.hooks.answer("/load", 500);
    let yaml = with_alerts(
        &rig,
        rig.yaml(2, &[("rollout", "/load", "      muteAlert: true\n")]),
        "warn",
    );
    let (running, mut watch) = launch(&yaml).await;
    let (state, _) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Failed);
    let generic = bodies(&rig, "/webhook");
    assert_eq!(generic.len(), 1, "only the rollback: {generic:#?}");
    assert_eq!(generic[0]["severity"], "error");
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_never_hold_the_rollout() {
    let rig = Rig::new().await;
    rig.hooks.answer("/webhook", 503);
    let yaml = with_alerts(&rig, rig.yaml(2, &[]), "info");
    let started = tokio::time::Instant::now();
    let (running, mut watch) = launch(&yaml).await;
    let (state, _) = finish(running, &mut watch).await;
    assert_eq!(state.phase, Phase::Succeeded);
    // Two alerts, four attempts each, with backoff: delivered before the
    // outcome (the run flushes), yet the rollout itself did not wait on them.
    assert_eq!(rig.hooks.count("/webhook"), 8);
    assert_eq!(rig.hooks.count("/slack"), 2);
    assert!(started.elapsed() < Duration::from_secs(20));
}
