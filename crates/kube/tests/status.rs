//! `serin status --kubernetes`: canaries read from the mocked API in both
//! groups, with serin's analysis from the annotation the controller keeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

use std::time::Duration;

use fixtures::{Exchange, mock};
use http::StatusCode;
use serde_json::json;
use serin_kube::{
    resource::AnalysisRecord,
    status::{Error, read, text},
};

const FLAGGER: &str = "/apis/flagger.app/v1beta1/namespaces/test/canaries";
const SERIN: &str = "/apis/serin.dev/v1alpha1/namespaces/test/canaries";

fn decision() -> serin_analysis::Decision {
    serin_analysis::Decision {
        verdict: serin_analysis::Verdict::Hold,
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
    }
}

fn podinfo() -> serde_json::Value {
    let record = AnalysisRecord {
        revision: "5f7c9d8b6".into(),
        observed_until: 1_796_039_999_000,
        weight: 20,
        evidence: Some("{\"judge\":\"sequential\",\"evidence\":{}}".into()),
        decision: Some(decision()),
    };
    json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "annotations": {
            "serin.dev/analysis": serde_json::to_string(&record).unwrap()
        }},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}},
        "status": {
            "phase": "Progressing", "canaryWeight": 20, "failedChecks": 1, "iterations": 0,
            "lastAppliedSpec": "5f7c9d8b6",
            "conditions": [{"type": "Promoted", "status": "Unknown", "reason": "Progressing",
                "message": "Holding podinfo.test at canary weight 20: holding: more evidence needed"}]
        }
    })
}

async fn run<T>(exchanges: Vec<Exchange>, call: impl FnOnce(kube::Client) -> T) -> T::Output
where
    T: std::future::Future,
{
    let (client, verifier) = mock();
    let expected = exchanges.len();
    let server = tokio::spawn(verifier.run(exchanges));
    let out = tokio::time::timeout(Duration::from_secs(10), call(client))
        .await
        .expect("the read ends");
    let answered = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the verifier ends")
        .unwrap();
    assert_eq!(answered, expected);
    out
}

#[tokio::test]
async fn one_canary_is_read_with_serins_evidence() {
    let exchanges = vec![
        Exchange::new("GET", format!("{FLAGGER}/podinfo"), None).answer(podinfo()),
        Exchange::new("GET", format!("{SERIN}/podinfo"), None)
            .fail(StatusCode::NOT_FOUND, "NotFound"),
    ];
    let canaries = run(exchanges, |client| read(client, "test", Some("podinfo")))
        .await
        .unwrap();
    let shown = serde_json::to_value(&canaries).unwrap();
    assert_eq!(
        shown,
        json!([{
            "name": "podinfo", "namespace": "test", "apiVersion": "flagger.app/v1beta1",
            "phase": "Progressing", "canaryWeight": 20, "failedChecks": 1, "iterations": 0,
            "lastAppliedSpec": "5f7c9d8b6",
            "conditions": [{"type": "Promoted", "status": "Unknown", "reason": "Progressing",
                "message": "Holding podinfo.test at canary weight 20: holding: more evidence needed"}],
            "analysis": {
                "revision": "5f7c9d8b6", "current": true, "observedUntil": 1_796_039_999_000_u64,
                "decision": serde_json::to_value(decision()).unwrap()
            }
        }])
    );
    // The judge's raw evidence is not shown.
    assert!(!shown.to_string().contains("\"evidence\""));
    assert_eq!(
        text(&canaries),
        "podinfo.test  Progressing  weight 20%  failed checks 1\n  Holding podinfo.test at canary weight 20: holding: more evidence needed\n  serin's judge: hold\n    request-success-rate canary 99.2 % (e-value 2.500)\n"
    );
}

#[tokio::test]
async fn every_canary_of_the_namespace_in_both_groups() {
    let list = |items: serde_json::Value| json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items});
    let serin = json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "shop", "namespace": "test"},
        "spec": {}
    });
    let exchanges = vec![
        Exchange::new("GET", format!("{FLAGGER}?"), None).answer(list(json!([podinfo()]))),
        Exchange::new("GET", format!("{SERIN}?"), None).answer(list(json!([serin]))),
    ];
    let canaries = run(exchanges, |client| read(client, "test", None))
        .await
        .unwrap();
    assert_eq!(canaries.len(), 2);
    assert_eq!(canaries[1].name, "shop");
    assert_eq!(canaries[1].api_version, "serin.dev/v1alpha1");
    // Not yet seen by the controller.
    assert_eq!(canaries[1].phase, "Initializing");
    assert_eq!(canaries[1].analysis, None);
}

#[tokio::test]
async fn a_canary_in_neither_group_is_named() {
    let exchanges = vec![
        Exchange::new("GET", format!("{FLAGGER}/missing"), None)
            .fail(StatusCode::NOT_FOUND, "NotFound"),
        Exchange::new("GET", format!("{SERIN}/missing"), None)
            .fail(StatusCode::NOT_FOUND, "NotFound"),
    ];
    let error = run(exchanges, |client| read(client, "test", Some("missing")))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }));
    assert_eq!(
        error.to_string(),
        "canary missing not found in namespace test (flagger.app/v1beta1 or serin.dev/v1alpha1)"
    );
    // Any other API error is passed on.
    let exchanges = vec![
        Exchange::new("GET", format!("{FLAGGER}/podinfo"), None)
            .fail(StatusCode::FORBIDDEN, "Forbidden"),
    ];
    let error = run(exchanges, |client| read(client, "test", Some("podinfo")))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("Forbidden"), "{error}");
}
