//! Reconcile scenarios of Flagger's object model beyond weight steps,
//! against the mocked API server, each asserting the exact requests and
//! bodies: tracked ConfigMaps and Secrets (copies, checksums, a changed
//! config as a new revision), the primary HPA, `revertOnDeletion`, and the
//! iterations of A/B testing and blue/green (with mirroring).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod passes;
mod support;

use std::time::Duration;

use fixtures::{Exchange, mock};
use http::StatusCode;
use k8s_openapi::api::apps::v1::Deployment;
use passes::{reads, tracked};
use serde_json::{Value, json};
use serin_kube::{
    Cluster, Object, Routes, Subject,
    controller::{
        Checks, FINALIZER, Judgement, Outcome, Reconciler, Request, Target, Verdict,
        canary_resource,
    },
    resource::CanaryStatus,
};
use serin_spec::Canary;

const NOW: &str = "2026-11-30T12:00:00Z";
const UID: &str = "0a1b2c3d-0000-4000-8000-000000000001";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/test/deployments";
const CANARY: &str = "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo";
const EVENTS: &str = "/api/v1/namespaces/test/events";
const CONFIG_MAPS: &str = "/api/v1/namespaces/test/configmaps";
const HPAS: &str = "/apis/autoscaling/v2/namespaces/test/horizontalpodautoscalers";
const APPLY: &str = "?&force=true&fieldManager=serin";

struct Fixed(Verdict);

impl Checks for Fixed {
    fn check<'a>(&'a self, _: Request<'a>) -> futures_util::future::BoxFuture<'a, Judgement> {
        Box::pin(std::future::ready(Judgement::only(self.0.clone())))
    }
}

fn canary_file(file: &str) -> Canary {
    let mut canary = support::canary_from(&support::compat_dir().join(file));
    canary.metadata.uid = Some(UID.into());
    canary.metadata.namespace = Some("test".into());
    // The tutorials' webhooks (load tests, smoke tests) would be called at
    // their phases, iterations included; tests/hooks.rs covers them.
    if let Some(analysis) = canary.spec.analysis.as_mut() {
        analysis.webhooks.clear();
    }
    canary
}

fn istio() -> Canary {
    canary_file("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml")
}

/// Flagger's podinfo bundle (target, tracked ConfigMap, opted-out Secret,
/// HPA) with the target at `image`.
fn bundle(image: &str) -> Cluster {
    let text = std::fs::read_to_string(support::testdata().join("kube/podinfo-deployment.yaml"))
        .unwrap()
        .replace("podinfo:6.0.0", image);
    serin_kube::documents::split(&text)
        .unwrap()
        .cluster_for(&istio())
}

fn target(cluster: &Cluster) -> Deployment {
    cluster.target.clone().unwrap()
}

fn hash(cluster: &Cluster) -> String {
    serin_kube::workload::template_hash(&target(cluster).spec.template)
}

fn path_of(object: &Object) -> String {
    let api_version = object.api_version();
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let plural = serin_kube::controller::plural(object.kind());
    format!("{base}/namespaces/test/{plural}/{}{APPLY}", object.name())
}

fn apply(object: &Object) -> Exchange {
    let value = object.to_value();
    Exchange::new("PATCH", path_of(object), Some(value.clone())).answer(value)
}

fn get(path: impl Into<String>, answer: &impl serde::Serialize) -> Exchange {
    Exchange::new("GET", path, None).answer(serde_json::to_value(answer).unwrap())
}

fn not_found(path: impl Into<String>) -> Exchange {
    Exchange::new("GET", path, None).fail(StatusCode::NOT_FOUND, "NotFound")
}

/// The model's objects for `canary` in `cluster` at `routes`.
fn model(canary: &Canary, cluster: &Cluster, provider: &str, routes: &Routes) -> Vec<Object> {
    let subject = Subject::new(canary, cluster, provider).unwrap();
    serin_kube::build(&subject, routes).unwrap()
}

fn is_primary_side(object: &Object) -> bool {
    matches!(
        object.kind(),
        "ConfigMap" | "Secret" | "Deployment" | "HorizontalPodAutoscaler" | "ScaledObject"
    )
}

/// Applies of the Services and router objects at `routes`.
fn route_applies(
    canary: &Canary,
    cluster: &Cluster,
    provider: &str,
    routes: &Routes,
) -> Vec<Exchange> {
    model(canary, cluster, provider, routes)
        .iter()
        .filter(|object| !is_primary_side(object))
        .map(apply)
        .collect()
}

/// Applies of the primary side (configs, Deployment, HPA).
fn primary_applies(canary: &Canary, cluster: &Cluster, provider: &str) -> Vec<Exchange> {
    let subject = Subject::new(canary, cluster, provider).unwrap();
    serin_kube::primary(&subject)
        .unwrap()
        .iter()
        .map(apply)
        .collect()
}

fn scale(replicas: i32) -> Exchange {
    Exchange::new(
        "PATCH",
        format!("{DEPLOYMENTS}/podinfo?"),
        Some(json!({"spec": {"replicas": replicas}})),
    )
    .answer(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "podinfo"}, "spec": {"selector": {}, "template": {}}}))
}

fn status(mut body: Value) -> Exchange {
    body["lastTransitionTime"] = json!(NOW);
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

fn event(message: &str) -> Exchange {
    let name = format!(
        "podinfo.{}",
        serin_kube::hash::fingerprint(&format!("{NOW}{message}"))
    );
    let body = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "test"},
        "involvedObject": {
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
            "namespace": "test", "uid": UID
        },
        "action": "Synced", "count": 1, "reason": "Synced", "message": message,
        "type": "Normal",
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

const PROGRESSING: &str = "New revision detected, progressing canary analysis.";

/// The status written when the revision of `after` starts after `before`.
fn started(before: &Cluster, after: &Cluster) -> Exchange {
    status(json!({
        "phase": "Progressing", "canaryWeight": 0, "failedChecks": 0, "iterations": 0,
        "lastAppliedSpec": hash(after), "lastPromotedSpec": hash(before),
        "trackedConfigs": tracked(after),
        "conditions": promoted("Unknown", "Progressing", PROGRESSING)
    }))
}

/// The primary Deployment as read back, with `replicas`.
fn primary_with_replicas(replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "podinfo-primary", "namespace": "test"},
        "spec": {"replicas": replicas, "selector": {}, "template": {}}
    })
}

/// Runs one pass against the scripted API; both sides bounded in time.
async fn pass(
    canary: &Canary,
    status: &Value,
    verdict: Verdict,
    exchanges: Vec<Exchange>,
) -> Result<Outcome, serin_kube::controller::Error> {
    let (client, verifier) = mock();
    let expected = exchanges.len();
    let server = tokio::spawn(verifier.run(exchanges));
    let reconciler = Reconciler::new(client, Fixed(verdict), "istio");
    let status: CanaryStatus = serde_json::from_value(status.clone()).unwrap();
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

fn settled(cluster: &Cluster, phase: &str) -> Value {
    json!({
        "phase": phase, "canaryWeight": 0, "failedChecks": 0, "iterations": 0,
        "lastAppliedSpec": hash(cluster), "lastPromotedSpec": hash(cluster),
        "trackedConfigs": tracked(cluster),
        "conditions": promoted("True", "Succeeded", "Canary analysis completed successfully, promotion finished.")
    })
}

// --- tracked configs ---

/// The primary mounts the `-primary` copy of the tracked ConfigMap and the
/// Secret that opted out as it is; the copy carries the data and is owned
/// by the canary; every object validates against k8s-openapi's types.
#[test]
fn the_primary_mounts_the_copies_of_tracked_configs() {
    let canary = istio();
    let cluster = bundle("podinfo:6.0.0");
    let objects = model(&canary, &cluster, "istio", &Routes::primary());
    let schemas = support::Schemas::load();
    for object in &objects {
        schemas.check(object, "initialised");
    }
    let copy = objects[0].to_value();
    assert_eq!(
        copy,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "podinfo-config-primary", "namespace": "test",
                "ownerReferences": [{
                    "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
                    "uid": UID, "controller": true, "blockOwnerDeletion": true
                }]
            },
            "data": {"PODINFO_UI_COLOR": "#34577c"}
        })
    );
    let primary = objects[1].to_value();
    let container = &primary["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["envFrom"][0]["configMapRef"]["name"],
        "podinfo-config-primary"
    );
    assert_eq!(
        container["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        "podinfo-token"
    );
    // The HPA owns the primary's replicas: none applied.
    assert!(primary["spec"].get("replicas").is_none(), "{primary}");
    assert!(
        !objects.iter().any(|object| object.kind() == "Secret"),
        "the opted-out Secret is not copied"
    );
}

/// A tracked Secret is copied with its type and data, as a ConfigMap is.
#[test]
fn a_tracked_secret_is_copied_with_its_type() {
    let canary = istio();
    let mut cluster = bundle("podinfo:6.0.0");
    let secret = cluster.secrets.get_mut("podinfo-token").unwrap();
    secret.metadata.annotations = None;
    secret.type_ = Some("kubernetes.io/basic-auth".into());
    cluster.untracked_secrets.clear();
    let objects = model(&canary, &cluster, "istio", &Routes::primary());
    let copy = objects
        .iter()
        .find(|object| object.kind() == "Secret")
        .unwrap()
        .to_value();
    assert_eq!(copy["metadata"]["name"], "podinfo-token-primary");
    assert_eq!(copy["type"], "kubernetes.io/basic-auth");
    // `stringData` of the bundle becomes `data`, as the API server stores it.
    assert_eq!(copy["data"]["token"], "bm90LWEtc2VjcmV0");
    let primary = objects
        .iter()
        .find(|object| object.kind() == "Deployment")
        .unwrap()
        .to_value();
    assert_eq!(
        primary["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]
            ["name"],
        "podinfo-token-primary"
    );
}

/// Initialisation reads the configs and the autoscaler, writes the copies
/// before the primary, and records the checksums in `trackedConfigs`.
#[tokio::test]
async fn initialisation_copies_the_configs_and_records_their_checksums() {
    let canary = istio();
    let cluster = bundle("podinfo:6.0.0");
    let mut exchanges = vec![get(format!("{DEPLOYMENTS}/podinfo"), &target(&cluster))];
    exchanges.extend(reads(&cluster));
    exchanges.extend(
        model(&canary, &cluster, "istio", &Routes::primary())
            .iter()
            .map(apply),
    );
    assert_eq!(
        exchanges[4].path,
        format!("{CONFIG_MAPS}/podinfo-config-primary{APPLY}")
    );
    assert_eq!(
        exchanges[5].path,
        format!("{DEPLOYMENTS}/podinfo-primary{APPLY}")
    );
    assert_eq!(exchanges[6].path, format!("{HPAS}/podinfo-primary{APPLY}"));
    exchanges.push(scale(0));
    let mut initialized = settled(&cluster, "Initialized");
    initialized["conditions"] = promoted(
        "True",
        "Initialized",
        "Deployment initialization completed.",
    );
    exchanges.push(status(initialized));
    exchanges.push(event("Initialization done! podinfo.test"));
    let outcome = pass(&canary, &json!({}), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Initialized".into()));
}

/// A tracked ConfigMap's new data, with the same pod template, is a new
/// revision: the canary is scaled up and the new checksum recorded.
#[tokio::test]
async fn a_changed_config_is_a_new_revision() {
    let canary = istio();
    let before = bundle("podinfo:6.0.0");
    let mut after = before.clone();
    after
        .config_maps
        .get_mut("podinfo-config")
        .unwrap()
        .data
        .as_mut()
        .unwrap()
        .insert("PODINFO_UI_COLOR".into(), "#ff0000".into());
    assert_ne!(tracked(&before), tracked(&after));
    let primary = primary_with_replicas(3);
    let mut exchanges = vec![get(format!("{DEPLOYMENTS}/podinfo"), &target(&after))];
    exchanges.extend(reads(&after));
    exchanges.extend([
        event("New revision detected! Scaling up podinfo.test"),
        get(format!("{DEPLOYMENTS}/podinfo-primary"), &primary),
        scale(3),
        started(&before, &after),
    ]);
    let outcome = pass(
        &canary,
        &settled(&before, "Succeeded"),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
}

/// A reference every mention of which is optional may name a config that
/// does not exist: it is left alone. A required one stops the pass with
/// the field at fault.
#[tokio::test]
async fn a_missing_config_is_skipped_only_when_optional() {
    let canary = istio();
    for optional in [true, false] {
        let mut cluster = bundle("podinfo:6.0.0");
        let mut deployment = target(&cluster);
        let spec = deployment.spec.template.spec.as_mut().unwrap();
        spec.volumes = Some(vec![
            serde_json::from_value(json!({
                "name": "extra", "configMap": {"name": "extra", "optional": optional}
            }))
            .unwrap(),
        ]);
        cluster.target = Some(deployment.clone());
        let mut exchanges = vec![
            get(format!("{DEPLOYMENTS}/podinfo"), &deployment),
            not_found(format!("{CONFIG_MAPS}/extra")),
        ];
        if !optional {
            let error = pass(&canary, &json!({}), Verdict::Pass, exchanges)
                .await
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                "spec.targetRef: Deployment podinfo.test references ConfigMap extra, which does not exist (and is not optional)"
            );
            continue;
        }
        exchanges.extend(reads(&cluster));
        cluster.untracked_config_maps.insert("extra".into());
        let objects = model(&canary, &cluster, "istio", &Routes::primary());
        let primary = objects[1].to_value();
        assert_eq!(
            primary["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
            "extra"
        );
        exchanges.extend(objects.iter().map(apply));
        exchanges.push(scale(0));
        let mut initialized = settled(&cluster, "Initialized");
        initialized["lastAppliedSpec"] = json!(serin_kube::workload::template_hash(
            &deployment.spec.template
        ));
        initialized["lastPromotedSpec"] = initialized["lastAppliedSpec"].clone();
        initialized["conditions"] = promoted(
            "True",
            "Initialized",
            "Deployment initialization completed.",
        );
        exchanges.push(status(initialized));
        exchanges.push(event("Initialization done! podinfo.test"));
        let outcome = pass(&canary, &json!({}), Verdict::Pass, exchanges).await;
        assert_eq!(outcome.unwrap(), Outcome::Moved("Initialized".into()));
    }
}

// --- the primary HPA ---

/// Between revisions the primary's autoscaler follows the target's: an
/// out-of-step one (another `maxReplicas`) is applied again, an in-step
/// one only read. The target's own autoscaler is never written.
#[tokio::test]
async fn the_primary_autoscaler_is_kept_in_step() {
    let canary = istio();
    let cluster = bundle("podinfo:6.0.0");
    let subject = Subject::new(&canary, &cluster, "istio").unwrap();
    let desired = serin_kube::workload::primary_hpa(&subject)
        .unwrap()
        .unwrap();
    assert_eq!(desired.spec.scale_target_ref.name, "podinfo-primary");
    assert_eq!(desired.spec.max_replicas, 4);
    let mut stale = desired.clone();
    stale.spec.max_replicas = 2;

    let mut exchanges = vec![get(format!("{DEPLOYMENTS}/podinfo"), &target(&cluster))];
    exchanges.extend(reads(&cluster));
    exchanges.push(get(format!("{HPAS}/podinfo-primary"), &stale));
    exchanges.push(apply(&Object::Hpa(Box::new(desired.clone()))));
    let outcome = pass(
        &canary,
        &settled(&cluster, "Succeeded"),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);

    // Missing (deleted by hand): created again.
    let mut exchanges = vec![get(format!("{DEPLOYMENTS}/podinfo"), &target(&cluster))];
    exchanges.extend(reads(&cluster));
    exchanges.push(not_found(format!("{HPAS}/podinfo-primary")));
    exchanges.push(apply(&Object::Hpa(Box::new(desired))));
    let outcome = pass(
        &canary,
        &settled(&cluster, "Succeeded"),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);
}

/// An `autoscalerRef` naming no HPA is refused with the field at fault.
#[tokio::test]
async fn a_missing_autoscaler_names_the_field() {
    let canary = istio();
    let cluster = bundle("podinfo:6.0.0");
    let mut exchanges = vec![get(format!("{DEPLOYMENTS}/podinfo"), &target(&cluster))];
    exchanges.extend(reads(&cluster).into_iter().take(2));
    exchanges.push(not_found(format!("{HPAS}/podinfo")));
    let error = pass(&canary, &json!({}), Verdict::Pass, exchanges)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "spec.autoscalerRef.name: HorizontalPodAutoscaler podinfo.test does not exist"
    );
}

// --- KEDA ScaledObjects ---

const SCALED_OBJECTS: &str = "/apis/keda.sh/v1alpha1/namespaces/test/scaledobjects";

/// Flagger's KEDA tutorial canary (its `primaryScalerQueries` and
/// `primaryScalerReplicas`) with the podinfo bundle and its ScaledObject.
fn keda() -> (Canary, Cluster) {
    let canary = canary_file("docs_gitbook_tutorials_keda-scaledobject-038-canary.yaml");
    let mut cluster = bundle("podinfo:6.0.0");
    let text = std::fs::read_to_string(support::testdata().join("kube/podinfo-scaledobject.yaml"))
        .unwrap();
    cluster.scaled_object = serin_kube::documents::split(&text)
        .unwrap()
        .cluster
        .scaled_object;
    assert!(cluster.scaled_object.is_some());
    (canary, cluster)
}

/// The reads of a KEDA canary's settled pass: its configs, then its
/// ScaledObject.
fn keda_reads(cluster: &Cluster) -> Vec<Exchange> {
    let mut exchanges: Vec<Exchange> = reads(cluster).into_iter().take(2).collect();
    exchanges.push(get(
        format!("{SCALED_OBJECTS}/podinfo-so"),
        cluster.scaled_object.as_ref().unwrap(),
    ));
    exchanges
}

/// KEDA's `paused-replicas` set on (`Some("0")`) or taken off (`None`)
/// the target's ScaledObject.
fn pause_scaler(paused: Option<&str>) -> Exchange {
    Exchange::new(
        "PATCH",
        format!("{SCALED_OBJECTS}/podinfo-so?"),
        Some(json!({"metadata": {"annotations": {"autoscaling.keda.sh/paused-replicas": paused}}})),
    )
    .answer(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "podinfo-so", "namespace": "test"},
        "spec": {"scaleTargetRef": {"name": "podinfo"}}
    }))
}

/// The primary's ScaledObject: pointed at the primary, the named
/// trigger's query the canary's, the other rewritten for the primary, the
/// CPU trigger as it was, the bounds the canary's, and the HPA KEDA
/// generates for it named after it.
#[test]
fn the_primary_scaled_object_follows_the_targets() {
    let (canary, cluster) = keda();
    let subject = Subject::new(&canary, &cluster, "kubernetes").unwrap();
    let objects = serin_kube::primary(&subject).unwrap();
    let kinds: Vec<&str> = objects.iter().map(Object::kind).collect();
    // The bundle's HPA is not the canary's autoscaler: no primary HPA.
    assert_eq!(kinds, ["ConfigMap", "Deployment", "ScaledObject"]);
    let primary = objects[2].to_value();
    assert_eq!(
        primary,
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {
                "name": "podinfo-so-primary", "namespace": "test",
                "labels": {
                    "app": "podinfo",
                    "helm.toolkit.fluxcd.io/driftDetection": "disabled",
                    "kustomize.toolkit.fluxcd.io/reconcile": "disabled"
                },
                "annotations": {"scaledobject.keda.sh/transfer-hpa-ownership": "true"},
                "ownerReferences": [{
                    "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
                    "uid": UID, "controller": true, "blockOwnerDeletion": true
                }]
            },
            "spec": {
                "scaleTargetRef": {"name": "podinfo-primary"},
                "pollingInterval": 10,
                "cooldownPeriod": 20,
                "minReplicaCount": 2,
                "maxReplicaCount": 5,
                "advanced": {"horizontalPodAutoscalerConfig": {
                    "name": "podinfo-so-primary",
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}
                }},
                "triggers": [
                    {
                        "type": "prometheus", "name": "prom-trigger",
                        "metadata": {
                            "serverAddress": "http://prometheus.istio-system:9090",
                            "threshold": "3",
                            "query": "sum(rate(http_requests_total{ app=\"podinfo-primary\" }[30s]))"
                        }
                    },
                    {
                        "type": "prometheus",
                        "metadata": {
                            "serverAddress": "http://prometheus.istio-system:9090",
                            "threshold": "10",
                            "query": "sum(rate(http_requests_total{ app=\"podinfo-primary\", svc=\"podinfo-primary\" }[1m]))"
                        }
                    },
                    {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}}
                ]
            }
        })
    );
    // The primary's replicas are the scaler's to set.
    assert!(objects[1].to_value()["spec"].get("replicas").is_none());
}

/// A query is read as the primary's once: the target's name and its
/// canary's become the primary's, the primary's own name stays.
#[test]
fn a_scaler_query_is_rewritten_for_the_primary_once() {
    use serin_kube::workload::primary_query;
    for (query, want) in [
        (
            r#"rate(x{app="podinfo"}[2m])"#,
            r#"rate(x{app="podinfo-primary"}[2m])"#,
        ),
        (
            r#"rate(x{app="podinfo-canary"}[2m])"#,
            r#"rate(x{app="podinfo-primary"}[2m])"#,
        ),
        (
            r#"rate(x{app="podinfo-canary",svc="podinfo"}[2m])"#,
            r#"rate(x{app="podinfo-primary",svc="podinfo-primary"}[2m])"#,
        ),
        (
            r#"rate(x{cluster="test_podinfo-primary_80"}[30s])"#,
            r#"rate(x{cluster="test_podinfo-primary_80"}[30s])"#,
        ),
        ("up", "up"),
        ("podinfopodinfo", "podinfo-primarypodinfo-primary"),
    ] {
        assert_eq!(primary_query(query, "podinfo"), want, "{query}");
    }
    assert_eq!(primary_query("anything", ""), "anything");
}

/// An HPA's bounds are also the canary's `primaryScalerReplicas` when it
/// gives them.
#[test]
fn primary_scaler_replicas_bound_the_primary_hpa() {
    let mut canary = istio();
    let cluster = bundle("podinfo:6.0.0");
    let reference = canary.spec.autoscaler_ref.as_mut().unwrap();
    reference.primary_scaler_replicas = Some(serin_spec::canary::ScalerReplicas {
        min_replicas: Some(3),
        max_replicas: Some(9),
    });
    let subject = Subject::new(&canary, &cluster, "istio").unwrap();
    let hpa = serin_kube::workload::primary_hpa(&subject)
        .unwrap()
        .unwrap();
    assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(3), 9));

    let reference = canary.spec.autoscaler_ref.as_mut().unwrap();
    reference.primary_scaler_replicas = Some(serin_spec::canary::ScalerReplicas {
        min_replicas: None,
        max_replicas: Some(1 << 40),
    });
    let subject = Subject::new(&canary, &cluster, "istio").unwrap();
    let error = serin_kube::workload::primary_hpa(&subject).unwrap_err();
    assert_eq!(
        error.to_string(),
        "spec.autoscalerRef.primaryScalerReplicas.maxReplicas: must fit a replica count, got 1099511627776"
    );

    // A kind serin does not drive names the field.
    canary.spec.autoscaler_ref.as_mut().unwrap().kind = Some("HTTPScaledObject".into());
    let subject = Subject::new(&canary, &cluster, "istio").unwrap();
    let error = serin_kube::primary(&subject).unwrap_err();
    assert!(
        error.to_string().starts_with("spec.autoscalerRef.kind: "),
        "{error}"
    );
}

/// Initialisation with a KEDA scaler: the primary's ScaledObject applied
/// with the primary, and the target's held at zero replicas (KEDA's
/// `paused-replicas`) before the target is scaled to zero, as Flagger's
/// `PauseTargetScaler` does; a missing scaler names the field.
#[tokio::test]
async fn initialisation_pauses_the_targets_scaled_object() {
    let (canary, cluster) = keda();
    let mut exchanges = vec![get(format!("{DEPLOYMENTS}/podinfo"), &target(&cluster))];
    exchanges.extend(keda_reads(&cluster));
    exchanges.extend(primary_applies(&canary, &cluster, "kubernetes"));
    exchanges.extend(route_applies(
        &canary,
        &cluster,
        "kubernetes",
        &Routes::primary(),
    ));
    assert!(
        exchanges
            .iter()
            .any(|exchange| exchange.path == format!("{SCALED_OBJECTS}/podinfo-so-primary{APPLY}"))
    );
    exchanges.push(pause_scaler(Some("0")));
    exchanges.push(scale(0));
    let mut initialized = settled(&cluster, "Initialized");
    initialized["conditions"] = promoted(
        "True",
        "Initialized",
        "Deployment initialization completed.",
    );
    exchanges.push(status(initialized));
    exchanges.push(event("Initialization done! podinfo.test"));
    let outcome = pass(&canary, &json!({}), Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Initialized".into()));

    let mut exchanges = vec![get(format!("{DEPLOYMENTS}/podinfo"), &target(&cluster))];
    exchanges.extend(keda_reads(&cluster).into_iter().take(2));
    exchanges.push(not_found(format!("{SCALED_OBJECTS}/podinfo-so")));
    let error = pass(&canary, &json!({}), Verdict::Pass, exchanges)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "spec.autoscalerRef.name: ScaledObject podinfo-so.test does not exist"
    );
}

/// A new revision lets the target's ScaledObject go (`paused-replicas`
/// taken off) before the target is scaled up; between revisions the
/// primary's follows the target's.
#[tokio::test]
async fn a_new_revision_resumes_the_targets_scaled_object() {
    let (canary, before) = keda();
    let mut after = before.clone();
    after.target = Some(target(&bundle("podinfo:6.0.1")));
    let primary = primary_with_replicas(2);
    let mut exchanges = vec![get(format!("{DEPLOYMENTS}/podinfo"), &target(&after))];
    exchanges.extend(keda_reads(&after));
    exchanges.extend([
        event("New revision detected! Scaling up podinfo.test"),
        get(format!("{DEPLOYMENTS}/podinfo-primary"), &primary),
        pause_scaler(None),
        scale(2),
        started(&before, &after),
    ]);
    let outcome = pass(
        &canary,
        &settled(&before, "Succeeded"),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));

    // Settled: the primary's ScaledObject read; out of step (another
    // polling interval on the target's), applied again.
    let subject = Subject::new(&canary, &before, "kubernetes").unwrap();
    let desired = serin_kube::workload::primary_scaled_object(&subject)
        .unwrap()
        .unwrap();
    let mut stale = desired.clone();
    stale.spec.polling_interval = Some(30);
    for (current, writes) in [(&desired, false), (&stale, true)] {
        let mut exchanges = vec![get(format!("{DEPLOYMENTS}/podinfo"), &target(&before))];
        exchanges.extend(keda_reads(&before));
        exchanges.push(get(format!("{SCALED_OBJECTS}/podinfo-so-primary"), current));
        if writes {
            exchanges.push(apply(&Object::ScaledObject(Box::new(desired.clone()))));
        }
        let outcome = pass(
            &canary,
            &settled(&before, "Succeeded"),
            Verdict::Pass,
            exchanges,
        )
        .await;
        assert_eq!(outcome.unwrap(), Outcome::Idle);
    }
}

// --- revertOnDeletion ---

fn reverting() -> Canary {
    let mut canary = istio();
    canary.spec.revert_on_deletion = true;
    canary.metadata.resource_version = Some("7".into());
    canary
}

fn finalizers(list: &[&str]) -> Exchange {
    Exchange::new(
        "PATCH",
        format!("{CANARY}?"),
        Some(json!({"metadata": {"finalizers": list, "resourceVersion": "7"}})),
    )
    .answer(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"}
    }))
}

/// `revertOnDeletion` puts Flagger's finalizer on the canary (guarded by
/// the resource version read); unset, serin's finalizer is taken off.
#[tokio::test]
async fn revert_on_deletion_keeps_flaggers_finalizer() {
    let cluster = bundle("podinfo:6.0.0");
    let subject_hpa = {
        let canary = istio();
        let subject = Subject::new(&canary, &cluster, "istio").unwrap();
        serin_kube::workload::primary_hpa(&subject)
            .unwrap()
            .unwrap()
    };
    let idle = |first: Exchange| {
        let mut exchanges = vec![
            first,
            get(format!("{DEPLOYMENTS}/podinfo"), &target(&cluster)),
        ];
        exchanges.extend(reads(&cluster));
        exchanges.push(get(format!("{HPAS}/podinfo-primary"), &subject_hpa));
        exchanges
    };
    assert_eq!(FINALIZER, "finalizer.flagger.app");
    let canary = reverting();
    let outcome = pass(
        &canary,
        &settled(&cluster, "Succeeded"),
        Verdict::Pass,
        idle(finalizers(&[FINALIZER])),
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);
    // Another controller's finalizer is kept alongside.
    let mut canary = canary;
    canary.metadata.finalizers = vec!["other.example.com".into()];
    let outcome = pass(
        &canary,
        &settled(&cluster, "Succeeded"),
        Verdict::Pass,
        idle(finalizers(&["other.example.com", FINALIZER])),
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);

    let mut canary = istio();
    canary.metadata.resource_version = Some("7".into());
    canary.metadata.finalizers = vec![FINALIZER.into()];
    let outcome = pass(
        &canary,
        &settled(&cluster, "Succeeded"),
        Verdict::Pass,
        idle(finalizers(&[])),
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);
}

/// Deleting a canary with `revertOnDeletion`: the target gets the
/// primary's replicas back; once they are ready the apex Service selects
/// the target's pods and is released from the canary; then the finalizer
/// goes and garbage collection takes what the canary owns.
#[tokio::test]
async fn deletion_with_revert_restores_the_target_then_releases_the_canary() {
    let mut canary = reverting();
    canary.metadata.deletion_timestamp = Some("2026-11-30T11:59:00Z".into());
    canary.metadata.finalizers = vec![FINALIZER.into()];
    let cluster = bundle("podinfo:6.0.0");
    let mut scaled_down = target(&cluster);
    scaled_down.spec.replicas = Some(0);
    let primary = primary_with_replicas(3);

    // First pass: Terminating, the target scaled to the primary's replicas.
    let mut terminating = settled(&cluster, "Succeeded");
    terminating["phase"] = json!("Terminating");
    let exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &scaled_down),
        status(terminating.clone()),
        event("Terminating canary podinfo.test"),
        get(format!("{DEPLOYMENTS}/podinfo-primary"), &primary),
        scale(3),
    ];
    let outcome = pass(
        &canary,
        &settled(&cluster, "Succeeded"),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Wait(Duration::from_secs(5)));

    // Scaled but not ready yet: nothing moves.
    let mut rolling = target(&cluster);
    rolling.spec.replicas = Some(3);
    rolling.status = Some(
        serde_json::from_value(
            json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 1}),
        )
        .unwrap(),
    );
    let exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &rolling),
        get(format!("{DEPLOYMENTS}/podinfo-primary"), &primary),
    ];
    let outcome = pass(&canary, &terminating, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Wait(Duration::from_secs(5)));

    // Ready: the apex Service back on the target's pods, unowned.
    let mut ready = rolling.clone();
    ready.status = Some(
        serde_json::from_value(
            json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        )
        .unwrap(),
    );
    let subject_cluster = Cluster {
        target: Some(ready.clone()),
        ..Cluster::default()
    };
    let subject = Subject::new(&canary, &subject_cluster, "istio").unwrap();
    let mut apex = serin_kube::services::services(&subject, true)
        .unwrap()
        .remove(0);
    apex.metadata.owner_references = None;
    let apex = Object::Service(Box::new(apex));
    let body = apex.to_value();
    assert_eq!(body["metadata"]["name"], "podinfo");
    assert_eq!(body["spec"]["selector"], json!({"app": "podinfo"}));
    assert!(body["metadata"].get("ownerReferences").is_none());
    let mut terminated = terminating.clone();
    terminated["phase"] = json!("Terminated");
    let exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &ready),
        get(format!("{DEPLOYMENTS}/podinfo-primary"), &primary),
        apply(&apex),
        status(terminated),
        event("Terminated canary podinfo.test"),
        finalizers(&[]),
    ];
    let outcome = pass(&canary, &terminating, Verdict::Pass, exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Terminated".into()));
}

/// Without `revertOnDeletion` a deleted canary is left to garbage
/// collection: no request at all. With it but the target already gone,
/// the finalizer is released at once.
#[tokio::test]
async fn deletion_without_revert_is_left_to_garbage_collection() {
    let mut canary = istio();
    canary.metadata.deletion_timestamp = Some("2026-11-30T11:59:00Z".into());
    let outcome = pass(
        &canary,
        &json!({"phase": "Succeeded"}),
        Verdict::Pass,
        vec![],
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Idle);

    let mut canary = reverting();
    canary.metadata.deletion_timestamp = Some("2026-11-30T11:59:00Z".into());
    canary.metadata.finalizers = vec![FINALIZER.into()];
    let exchanges = vec![not_found(format!("{DEPLOYMENTS}/podinfo")), finalizers(&[])];
    let outcome = pass(
        &canary,
        &json!({"phase": "Succeeded"}),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Terminated".into()));

    // A spec serin refuses (no service port) has nothing to revert: the
    // finalizer does not hold the deletion.
    canary.spec.service.port = None;
    let cluster = bundle("podinfo:6.0.0");
    let exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &target(&cluster)),
        finalizers(&[]),
    ];
    let outcome = pass(
        &canary,
        &json!({"phase": "Succeeded"}),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Terminated".into()));
}

// --- iterations: A/B testing and blue/green ---

fn progressing(cluster: &Cluster, iterations: i64, failed: i64) -> Value {
    json!({
        "phase": "Progressing", "canaryWeight": 0, "failedChecks": failed,
        "iterations": iterations,
        "lastAppliedSpec": hash(cluster), "lastPromotedSpec": "0000000000000000",
        "trackedConfigs": tracked(cluster),
        "conditions": promoted("Unknown", "Progressing", PROGRESSING)
    })
}

/// A/B testing: the first pass starts the analysis and routes the matched
/// requests to the canary (iteration 1/10), each passed analysis counts
/// one more, and after the tenth the canary is promoted.
#[tokio::test]
async fn ab_testing_walks_its_iterations_to_promotion() {
    let canary = canary_file("docs_gitbook_tutorials_istio-ab-testing-033-canary.yaml");
    let cluster = bundle("podinfo:6.0.1");
    let deployment = target(&cluster);
    let routes = Routes::iteration(&canary).unwrap();
    assert_eq!((routes.primary, routes.canary), (0, 100));
    let vs = model(&canary, &cluster, "istio", &routes)
        .into_iter()
        .find(|object| object.kind() == "VirtualService")
        .unwrap()
        .to_value();
    // The matched requests (Flagger's A/B tutorial: a header or a cookie)
    // to the canary, the rest to the primary.
    let http = &vs["spec"]["http"];
    assert_eq!(http[0]["route"][1]["destination"]["host"], "podinfo-canary");
    assert_eq!(http[0]["route"][1]["weight"], 100);
    assert_eq!(
        http[1]["route"][0]["destination"]["host"],
        "podinfo-primary"
    );
    assert_eq!(http[1]["route"][0]["weight"], 100);

    let mut exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &deployment),
        event("Starting canary analysis for podinfo.test"),
    ];
    exchanges.extend(route_applies(&canary, &cluster, "istio", &routes));
    exchanges.push(status(progressing(&cluster, 1, 0)));
    exchanges.push(event("Advance podinfo.test canary iteration 1/10"));
    // A check that would fail is never asked: nothing is judged before
    // the canary gets traffic.
    let outcome = pass(
        &canary,
        &progressing(&cluster, 0, 0),
        Verdict::Fail("asked".into()),
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));

    // A passed analysis mid-way: one more iteration, the route kept.
    let mut exchanges = vec![get(format!("{DEPLOYMENTS}/podinfo"), &deployment)];
    exchanges.extend(route_applies(&canary, &cluster, "istio", &routes));
    exchanges.push(status(progressing(&cluster, 5, 0)));
    exchanges.push(event("Advance podinfo.test canary iteration 5/10"));
    let outcome = pass(
        &canary,
        &progressing(&cluster, 4, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));

    // After the tenth: promotion.
    let mut exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &deployment),
        event("Copying podinfo.test template spec to podinfo-primary.test"),
    ];
    exchanges.extend(reads(&cluster));
    exchanges.extend(primary_applies(&canary, &cluster, "istio"));
    let mut promoting = progressing(&cluster, 10, 0);
    promoting["phase"] = json!("Promoting");
    exchanges.push(status(promoting));
    let outcome = pass(
        &canary,
        &progressing(&cluster, 10, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Promoting".into()));
}

/// A failed check during the iterations counts as for weight steps: at the
/// threshold (2) the canary is rolled back, all traffic on the primary.
#[tokio::test]
async fn a_failing_ab_test_rolls_back_at_the_threshold() {
    let canary = canary_file("docs_gitbook_tutorials_istio-ab-testing-033-canary.yaml");
    let cluster = bundle("podinfo:6.0.1");
    let reason = "request-success-rate 95.2 < 99";
    let mut halted = progressing(&cluster, 3, 1);
    halted["conditions"] = promoted(
        "Unknown",
        "Progressing",
        &format!("Halt advancement podinfo.test {reason}"),
    );
    let mut warning = event(&format!("Halt advancement podinfo.test {reason}"));
    if let Some(body) = warning.body.as_mut() {
        body["type"] = json!("Warning");
        warning.response = body.clone();
    }
    let exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &target(&cluster)),
        status(halted.clone()),
        warning,
    ];
    let outcome = pass(
        &canary,
        &progressing(&cluster, 3, 0),
        Verdict::Fail(reason.into()),
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));

    let warn = |message: &str| {
        let mut exchange = event(message);
        if let Some(body) = exchange.body.as_mut() {
            body["type"] = json!("Warning");
            exchange.response = body.clone();
        }
        exchange
    };
    let mut exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &target(&cluster)),
        warn("Rolling back podinfo.test failed checks threshold reached 2"),
    ];
    exchanges.extend(route_applies(
        &canary,
        &cluster,
        "istio",
        &Routes::primary(),
    ));
    exchanges.push(scale(0));
    let mut failed = progressing(&cluster, 3, 2);
    failed["phase"] = json!("Failed");
    failed["conditions"] = promoted(
        "False",
        "Failed",
        "Canary analysis failed, Deployment scaled to zero.",
    );
    exchanges.push(status(failed));
    exchanges.push(warn("Canary failed! Scaling down podinfo.test"));
    let outcome = pass(&canary, &halted, Verdict::Fail(reason.into()), exchanges).await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Failed".into()));
}

/// Blue/green with mirroring (Gateway API): the iterations keep all
/// traffic on the primary and mirror it to the canary; after the last,
/// mirroring stops and all traffic goes to the canary (one more counted
/// iteration, judged), then the promotion.
#[tokio::test]
async fn blue_green_mirrors_then_switches_then_promotes() {
    let mut canary = canary_file("test_gatewayapi_test-bg-081-canary.yaml"); // iterations: 5
    canary.spec.analysis.as_mut().unwrap().mirror = true;
    let provider = "gatewayapi:v1beta1";
    let cluster = bundle("podinfo:6.0.1");
    let deployment = target(&cluster);
    let mirrored = Routes::iteration(&canary).unwrap();
    assert_eq!(
        (mirrored.primary, mirrored.canary, mirrored.mirrored),
        (100, 0, true)
    );
    let route = model(&canary, &cluster, provider, &mirrored)
        .into_iter()
        .find(|object| object.kind() == "HTTPRoute")
        .unwrap()
        .to_value();
    let filters = &route["spec"]["rules"][0]["filters"];
    assert!(filters.to_string().contains("RequestMirror"), "{route}");

    let reconcile = |status: Value, exchanges: Vec<Exchange>| {
        let canary = canary.clone();
        async move {
            let (client, verifier) = mock();
            let expected = exchanges.len();
            let server = tokio::spawn(verifier.run(exchanges));
            let reconciler = Reconciler::new(client, Fixed(Verdict::Pass), provider);
            let target = Target {
                canary: &canary,
                status: serde_json::from_value(status).unwrap(),
                resource: canary_resource("flagger.app/v1beta1"),
            };
            let outcome =
                tokio::time::timeout(Duration::from_secs(10), reconciler.reconcile(target, NOW))
                    .await
                    .expect("the pass ends");
            let answered = tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the verifier ends")
                .unwrap();
            assert_eq!(answered, expected);
            outcome.unwrap()
        }
    };

    // Iteration 1: the analysis starts, traffic mirrored.
    let mut exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &deployment),
        event("Starting canary analysis for podinfo.test"),
    ];
    exchanges.extend(route_applies(&canary, &cluster, provider, &mirrored));
    exchanges.push(status(progressing(&cluster, 1, 0)));
    exchanges.push(event("Advance podinfo.test canary iteration 1/5"));
    let outcome = reconcile(progressing(&cluster, 0, 0), exchanges).await;
    assert_eq!(outcome, Outcome::Moved("Progressing".into()));

    // After the fifth: mirroring stops, all traffic to the canary.
    let switched = Routes::switched(&canary).unwrap();
    assert_eq!(
        (switched.primary, switched.canary, switched.mirrored),
        (0, 100, false)
    );
    let mut exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &deployment),
        event("Stop traffic mirroring and route all traffic to canary"),
    ];
    exchanges.extend(route_applies(&canary, &cluster, provider, &switched));
    exchanges.push(status(progressing(&cluster, 6, 0)));
    exchanges.push(event("Advance podinfo.test canary iteration 6/5"));
    let outcome = reconcile(progressing(&cluster, 5, 0), exchanges).await;
    assert_eq!(outcome, Outcome::Moved("Progressing".into()));

    // The switched canary judged once more: promotion (this canary has no
    // autoscaler: the configs alone are read).
    let mut exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &deployment),
        event("Copying podinfo.test template spec to podinfo-primary.test"),
    ];
    exchanges.extend(reads(&cluster).into_iter().take(2));
    let no_hpa = Cluster {
        autoscaler: None,
        ..cluster.clone()
    };
    exchanges.extend(primary_applies(&canary, &no_hpa, provider));
    let mut promoting = progressing(&cluster, 6, 0);
    promoting["phase"] = json!("Promoting");
    exchanges.push(status(promoting));
    let outcome = reconcile(progressing(&cluster, 6, 0), exchanges).await;
    assert_eq!(outcome, Outcome::Moved("Promoting".into()));
}

/// Blue/green on the `kubernetes` provider: no mirror and no switch (its
/// Services move only at promotion); the iterations are counted alone.
#[tokio::test]
async fn kubernetes_blue_green_counts_iterations_without_routing() {
    let canary = canary_file("docs_gitbook_tutorials_kubernetes-blue-green-040-canary.yaml");
    let cluster = bundle("podinfo:6.0.1");
    let deployment = target(&cluster);
    let exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &deployment),
        status(progressing(&cluster, 4, 0)),
        event("Advance podinfo.test canary iteration 4/10"),
    ];
    let outcome = pass(
        &canary,
        &progressing(&cluster, 3, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));

    let exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &deployment),
        status(progressing(&cluster, 11, 0)),
        event("Advance podinfo.test canary iteration 11/10"),
    ];
    let outcome = pass(
        &canary,
        &progressing(&cluster, 10, 0),
        Verdict::Pass,
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
}

/// The statuses these scenarios write (tracked configs, iterations, the
/// deletion's phases) validate against Flagger's CRD, unknown fields
/// refused rather than pruned.
#[test]
fn the_statuses_written_fit_flaggers_crd() {
    let cluster = bundle("podinfo:6.0.0");
    let schemas = support::Schemas::load();
    let mut terminating = settled(&cluster, "Succeeded");
    terminating["phase"] = json!("Terminating");
    let mut terminated = terminating.clone();
    terminated["phase"] = json!("Terminated");
    for status in [
        settled(&cluster, "Initialized"),
        progressing(&cluster, 6, 1),
        terminating,
        terminated,
    ] {
        let mut canary = serde_json::to_value(istio()).unwrap();
        canary["status"] = status;
        canary["status"]["lastTransitionTime"] = json!(NOW);
        let errors = schemas.errors("Canary", "v1beta1", &canary);
        assert!(errors.is_empty(), "{errors:#?}\n{:#}", canary["status"]);
    }
    // The check can fail: a phase Flagger does not know, a field it lacks.
    let mut canary = serde_json::to_value(istio()).unwrap();
    canary["status"] = json!({"phase": "Mirroring", "mirrored": true});
    assert_eq!(schemas.errors("Canary", "v1beta1", &canary).len(), 2);
}

/// A new pod template during the analysis restarts it (Flagger's
/// "Restarting analysis"): all traffic back on the primary, the weight,
/// failed checks and iterations at zero, the new fingerprint recorded.
#[tokio::test]
async fn a_new_template_during_the_analysis_restarts_it() {
    let canary = istio();
    let judged = bundle("podinfo:6.0.1");
    let newer = bundle("podinfo:6.0.2");
    let mut status_in = progressing(&judged, 0, 1);
    status_in["canaryWeight"] = json!(30);
    let mut exchanges = vec![
        get(format!("{DEPLOYMENTS}/podinfo"), &target(&newer)),
        event("New revision detected! Restarting analysis for podinfo.test"),
    ];
    exchanges.extend(route_applies(&canary, &newer, "istio", &Routes::primary()));
    let mut restarted = progressing(&judged, 0, 0);
    restarted["lastAppliedSpec"] = json!(hash(&newer));
    exchanges.push(status(restarted));
    // A check that would fail is not asked: the new pods are not judged
    // before the analysis starts again.
    let outcome = pass(
        &canary,
        &status_in,
        Verdict::Fail("asked".into()),
        exchanges,
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Moved("Progressing".into()));
}
