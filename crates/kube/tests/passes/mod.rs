//! What the reconcile scenarios of webhooks and manual actions share: the
//! podinfo canary with chosen webhooks, the exact requests a pass makes
//! (applies, scales, status patches, events), and a pass run against the
//! scripted API with both sides bounded in time.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};
use serin_kube::{
    Cluster, Object, Routes, Subject,
    controller::{
        Checks, Judgement, Outcome, Reconciler, Request, Target, Verdict, canary_resource,
    },
    resource::CanaryStatus,
};
use serin_spec::Canary;

use crate::{
    fixtures::{Exchange, mock},
    support,
};

pub const NOW: &str = "2026-11-30T12:00:00Z";
pub const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/test/deployments";
pub const CANARY: &str = "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo";
pub const EVENTS: &str = "/api/v1/namespaces/test/events";
const APPLY: &str = "?&force=true&fieldManager=serin";

/// The analysis port answering one verdict, counting how often it is asked.
pub struct Fixed(
    pub Verdict,
    pub std::sync::Arc<std::sync::atomic::AtomicUsize>,
);

impl Checks for Fixed {
    fn check<'a>(&'a self, _: Request<'a>) -> futures_util::future::BoxFuture<'a, Judgement> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(std::future::ready(Judgement::only(self.0.clone())))
    }
}

/// Flagger's Istio tutorial canary (threshold 5, steps of 10 up to 50)
/// with `webhooks` (YAML list items, indented for `spec.analysis`) in
/// place of its own, and `annotations` on it.
pub fn canary(webhooks: &str, annotations: &[(&str, &str)]) -> Canary {
    let text = std::fs::read_to_string(
        support::compat_dir()
            .join("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml"),
    )
    .unwrap();
    let (head, _) = text.split_once("    webhooks:\n").unwrap();
    let text = if webhooks.is_empty() {
        head.to_string()
    } else {
        format!("{head}    webhooks:\n{webhooks}")
    };
    let mut canary = support::canary_from_text("hooks.yaml", &text);
    canary.metadata.uid = Some("0a1b2c3d-0000-4000-8000-000000000001".into());
    for (key, value) in annotations {
        canary
            .metadata
            .annotations
            .insert((*key).to_string(), (*value).to_string());
    }
    canary
}

pub fn deployment(image: &str) -> Deployment {
    let text = std::fs::read_to_string(support::testdata().join("kube/podinfo-deployment.yaml"))
        .unwrap()
        .replace("podinfo:6.0.0", image);
    let split = serin_kube::documents::split(&text).unwrap();
    split.cluster.target.unwrap()
}

pub fn hash(target: &Deployment) -> String {
    serin_kube::workload::template_hash(&target.spec.template)
}

fn path_of(object: &Object) -> String {
    let api_version = object.api_version();
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let plural = match object.kind() {
        "Deployment" => "deployments",
        "ConfigMap" => "configmaps",
        "Secret" => "secrets",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        "Service" => "services",
        "VirtualService" => "virtualservices",
        "DestinationRule" => "destinationrules",
        other => panic!("{other}"),
    };
    format!("{base}/namespaces/test/{plural}/{}{APPLY}", object.name())
}

/// The cluster of Flagger's podinfo bundle around `target`: its tracked
/// ConfigMap, its opted-out Secret, its HPA (what the mocked API answers
/// the reads of a pass with).
pub fn cluster_of(target: &Deployment) -> Cluster {
    let text =
        std::fs::read_to_string(support::testdata().join("kube/podinfo-deployment.yaml")).unwrap();
    let mut cluster = serin_kube::documents::split(&text)
        .unwrap()
        .cluster_for(&canary("", &[]));
    cluster.target = Some(target.clone());
    cluster
}

pub const CONFIG_MAP: &str = "/api/v1/namespaces/test/configmaps/podinfo-config";
pub const SECRET: &str = "/api/v1/namespaces/test/secrets/podinfo-token";
pub const HPAS: &str = "/apis/autoscaling/v2/namespaces/test/horizontalpodautoscalers";

/// The reads of a settled canary's pass (or a promotion's) after the
/// target: its configs, then its autoscaler.
pub fn reads(cluster: &Cluster) -> Vec<Exchange> {
    vec![
        Exchange::new("GET", CONFIG_MAP, None)
            .answer(serde_json::to_value(&cluster.config_maps["podinfo-config"]).unwrap()),
        Exchange::new("GET", SECRET, None)
            .answer(serde_json::to_value(&cluster.secrets["podinfo-token"]).unwrap()),
        Exchange::new("GET", format!("{HPAS}/podinfo"), None)
            .answer(serde_json::to_value(cluster.autoscaler.as_ref().unwrap()).unwrap()),
    ]
}

/// `status.trackedConfigs` of the bundle: the ConfigMap only (the Secret
/// opted out).
pub fn tracked(cluster: &Cluster) -> Value {
    let checksum = serin_kube::configs::config_map_checksum(&cluster.config_maps["podinfo-config"]);
    json!({ "configmap/podinfo-config": checksum })
}

/// The read of the primary autoscaler by an idle pass, answered in step
/// (so nothing is applied).
pub fn primary_autoscaler_in_step(canary: &Canary, target: &Deployment) -> Exchange {
    let cluster = cluster_of(target);
    let subject = Subject::new(canary, &cluster, "istio").unwrap();
    let hpa = serin_kube::workload::primary_hpa(&subject)
        .unwrap()
        .unwrap();
    Exchange::new("GET", format!("{HPAS}/podinfo-primary"), None)
        .answer(serde_json::to_value(hpa).unwrap())
}

/// Whether `object` is of the primary side (configs, workload, autoscaler).
fn primary_side(object: &Object) -> bool {
    matches!(
        object.kind(),
        "ConfigMap" | "Secret" | "Deployment" | "HorizontalPodAutoscaler" | "ScaledObject"
    )
}

/// The applies of the objects serin's model gives for `routes` (all but
/// the primary side when `routes_only`).
pub fn applies(
    canary: &Canary,
    target: &Deployment,
    routes: &Routes,
    routes_only: bool,
) -> Vec<Exchange> {
    let cluster = cluster_of(target);
    let subject = Subject::new(canary, &cluster, "istio").unwrap();
    serin_kube::build(&subject, routes)
        .unwrap()
        .into_iter()
        .filter(|object| !(routes_only && primary_side(object)))
        .map(|object| {
            let value = object.to_value();
            Exchange::new("PATCH", path_of(&object), Some(value.clone())).answer(value)
        })
        .collect()
}

/// The applies of the primary side alone (at a promotion): the config
/// copies, the primary Deployment, its autoscaler.
pub fn primary_applies(canary: &Canary, target: &Deployment) -> Vec<Exchange> {
    let cluster = cluster_of(target);
    let subject = Subject::new(canary, &cluster, "istio").unwrap();
    serin_kube::primary(&subject)
        .unwrap()
        .into_iter()
        .map(|object| {
            let value = object.to_value();
            Exchange::new("PATCH", path_of(&object), Some(value.clone())).answer(value)
        })
        .collect()
}

pub fn get_target(target: &Deployment) -> Exchange {
    Exchange::new("GET", format!("{DEPLOYMENTS}/podinfo"), None)
        .answer(serde_json::to_value(target).unwrap())
}

pub fn scale(replicas: i32) -> Exchange {
    Exchange::new(
        "PATCH",
        format!("{DEPLOYMENTS}/podinfo?"),
        Some(json!({"spec": {"replicas": replicas}})),
    )
    .answer(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "podinfo"}, "spec": {"selector": {}, "template": {}}}))
}

/// The status merge patch with `body`.
pub fn status(body: Value) -> Exchange {
    Exchange::new(
        "PATCH",
        format!("{CANARY}/status?"),
        Some(json!({ "status": body })),
    )
    .answer(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"}
    }))
}

/// A merge patch of the canary itself (its annotations).
pub fn patch_canary(body: Value) -> Exchange {
    Exchange::new("PATCH", format!("{CANARY}?"), Some(body)).answer(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"}
    }))
}

/// The Event the pass records with `message`.
pub fn event(event_type: &str, message: &str) -> Exchange {
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

pub fn promoted(status: &str, reason: &str, message: &str) -> Value {
    json!([{
        "type": "Promoted", "status": status, "reason": reason, "message": message,
        "lastUpdateTime": NOW, "lastTransitionTime": NOW
    }])
}

pub fn initialized(target: &Deployment) -> CanaryStatus {
    serde_json::from_value(json!({
        "phase": "Initialized", "lastAppliedSpec": hash(target), "lastPromotedSpec": hash(target),
        "trackedConfigs": tracked(&cluster_of(target)),
        "conditions": promoted("True", "Initialized", "Deployment initialization completed.")
    }))
    .unwrap()
}

/// A canary progressing at `weight` with `failed` checks.
pub fn progressing(target: &Deployment, weight: i64, failed: i64) -> CanaryStatus {
    serde_json::from_value(json!({
        "phase": "Progressing", "canaryWeight": weight, "failedChecks": failed,
        "lastAppliedSpec": hash(target), "lastPromotedSpec": "0000000000000000",
        "trackedConfigs": tracked(&cluster_of(target)),
        "conditions": promoted("Unknown", "Progressing", "New revision detected, progressing canary analysis.")
    }))
    .unwrap()
}

/// `status` as the pass writes it back (its transition time now).
pub fn written(status: &CanaryStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap();
    value["lastTransitionTime"] = json!(NOW);
    value
}

/// The status patch and events of a rollback from `status_in` (Flagger's
/// order: the reason, the routes back to the primary, the canary scaled
/// down, the status, then "Canary failed!").
pub fn rollback(
    canary: &Canary,
    target: &Deployment,
    status_in: &CanaryStatus,
    reason: &str,
) -> Vec<Exchange> {
    let mut exchanges = vec![event("Warning", reason)];
    exchanges.extend(applies(canary, target, &Routes::primary(), true));
    exchanges.push(scale(0));
    let mut failed = written(status_in);
    failed["phase"] = json!("Failed");
    failed["canaryWeight"] = json!(0);
    failed["conditions"] = promoted(
        "False",
        "Failed",
        "Canary analysis failed, Deployment scaled to zero.",
    );
    exchanges.push(status(failed));
    exchanges.push(event("Warning", "Canary failed! Scaling down podinfo.test"));
    exchanges
}

/// Runs one pass against the scripted API; returns its outcome and how
/// often the analysis port was asked.
pub async fn pass(
    canary: &Canary,
    status: CanaryStatus,
    verdict: Verdict,
    exchanges: Vec<Exchange>,
) -> (Result<Outcome, serin_kube::controller::Error>, usize) {
    let (client, verifier) = mock();
    let expected = exchanges.len();
    let server = tokio::spawn(verifier.run(exchanges));
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reconciler = Reconciler::new(client, Fixed(verdict, asked.clone()), "istio");
    let target = Target {
        canary,
        status,
        resource: canary_resource("flagger.app/v1beta1"),
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), reconciler.reconcile(target, NOW))
        .await
        .expect("the pass ends");
    let answered = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the verifier ends")
        .unwrap();
    assert_eq!(answered, expected, "requests answered");
    (outcome, asked.load(std::sync::atomic::Ordering::SeqCst))
}
