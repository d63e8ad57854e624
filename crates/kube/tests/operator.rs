//! `serin controller`'s wiring against the mocked API server: the
//! kube-runtime Controller lists the canaries, decodes one (status
//! included), runs one pass through the reconciler and requeues it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use http::{Request, Response};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client, api::DynamicObject, client::Body};
use serde_json::{Value, json};
use serin_kube::{
    checks::PrometheusChecks,
    controller::{Reconciler, canary_resource},
    operator::{Context, backoff, controller},
};

const CANARIES: &str = "/apis/flagger.app/v1beta1/namespaces/test/canaries";
const TARGET: &str = "/apis/apps/v1/namespaces/test/deployments/podinfo";

fn deployment() -> Deployment {
    bundle().target.unwrap()
}

/// Flagger's podinfo objects: the target, its configs, its autoscaler.
fn bundle() -> serin_kube::Cluster {
    let text =
        std::fs::read_to_string(support::testdata().join("kube/podinfo-deployment.yaml")).unwrap();
    serin_kube::documents::split(&text).unwrap().cluster
}

/// What the stand-in API server holds besides the canaries, by path.
fn objects(target: Value) -> Vec<(String, Value)> {
    let cluster = bundle();
    let canary = support::canary_from(
        &support::compat_dir()
            .join("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml"),
    );
    let cluster = serin_kube::Cluster {
        target: Some(deployment()),
        ..cluster
    };
    let subject = serin_kube::Subject::new(&canary, &cluster, "istio").unwrap();
    let primary_hpa = serin_kube::workload::primary_hpa(&subject)
        .unwrap()
        .unwrap();
    vec![
        (TARGET.to_string(), target),
        (
            "/api/v1/namespaces/test/configmaps/podinfo-config".into(),
            serde_json::to_value(&cluster.config_maps["podinfo-config"]).unwrap(),
        ),
        (
            "/api/v1/namespaces/test/secrets/podinfo-token".into(),
            serde_json::to_value(&cluster.secrets["podinfo-token"]).unwrap(),
        ),
        (
            format!("{HPAS}/podinfo"),
            serde_json::to_value(cluster.autoscaler.as_ref().unwrap()).unwrap(),
        ),
        (
            format!("{HPAS}/podinfo-primary"),
            serde_json::to_value(&primary_hpa).unwrap(),
        ),
    ]
}

const HPAS: &str = "/apis/autoscaling/v2/namespaces/test/horizontalpodautoscalers";

/// Answers the list with `canary`, the target's GET with `target`, and
/// holds watches open; records every path.
async fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    canary: Value,
    objects: Vec<(String, Value)>,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut held = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let path = request
            .uri()
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default();
        seen.lock()
            .unwrap()
            .push(format!("{} {path}", request.method()));
        let body = if path.starts_with(CANARIES) && path.contains("watch=true") {
            held.push(send);
            continue;
        } else if path.starts_with(CANARIES) {
            json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "CanaryList",
                "metadata": {"resourceVersion": "1"}, "items": [canary.clone()]
            })
        } else if let Some((_, object)) = objects.iter().find(|(at, _)| *at == path) {
            object.clone()
        } else {
            panic!("unexpected request {path}");
        };
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
    }
}

#[tokio::test]
async fn the_controller_reconciles_a_listed_canary_with_its_status() {
    let target = deployment();
    let hash = serin_kube::workload::template_hash(&target.spec.template);
    let canary = support::canary_from(
        &support::compat_dir()
            .join("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml"),
    );
    let mut object = serde_json::to_value(&canary).unwrap();
    object["metadata"]["resourceVersion"] = json!("1");
    // Initialized at the target's revision: the pass reads the target,
    // finds no new revision and writes nothing.
    let bundle = bundle();
    let checksum = serin_kube::configs::config_map_checksum(&bundle.config_maps["podinfo-config"]);
    object["status"] = json!({
        "phase": "Initialized", "lastAppliedSpec": hash, "lastPromotedSpec": hash,
        "trackedConfigs": {"configmap/podinfo-config": checksum}
    });

    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(serve(
        handle,
        object,
        objects(serde_json::to_value(&target).unwrap()),
        seen.clone(),
    ));

    let resource = canary_resource("flagger.app/v1beta1");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "test", &resource);
    let context = Arc::new(Context::new(
        Reconciler::new(client, PrometheusChecks::default(), "istio"),
        resource.clone(),
    ));
    let mut stream = Box::pin(controller(api, resource, context));
    let first = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("one reconcile")
        .expect("the stream yields");
    assert_eq!(first, Ok(()));
    drop(stream);
    server.abort();

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|line| line.starts_with(&format!("GET {CANARIES}?"))),
        "{seen:?}"
    );
    assert!(seen.contains(&format!("GET {TARGET}")), "{seen:?}");
    assert!(
        !seen.iter().any(|line| !line.starts_with("GET ")),
        "no write for the same revision: {seen:?}"
    );
}

#[test]
fn errors_back_off_exponentially_up_to_five_minutes() {
    let delays: Vec<u64> = [1, 2, 3, 4, 7, 8, 50, u32::MAX]
        .map(|attempts| backoff(attempts).as_secs())
        .to_vec();
    assert_eq!(delays, [5, 10, 20, 40, 300, 300, 300, 300]);
}

/// What the stand-in API server answers the Lease with, by how many times
/// it has been read.
fn lease_answer(reads: usize) -> Option<Value> {
    let lease = |holder: &str, renewed: &str| {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "serin-controller", "namespace": "serin-system", "resourceVersion": "7"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "acquireTime": "2020-01-01T00:00:00.000000Z", "renewTime": renewed}
        })
    };
    match reads {
        // None yet: this replica creates it and leads.
        1 => None,
        // Another replica took it (renewed far ahead): this one follows,
        // for longer than the canary's interval (1m, every 5s), so a
        // controller still running would have come back to the canary.
        2..=15 => Some(lease("serin-1", "2999-01-01T00:00:00.000000Z")),
        // That replica stopped renewing: this one takes the Lease back.
        _ => Some(lease("serin-1", "2020-01-01T00:00:00.000000Z")),
    }
}

/// The Lease lost mid-rollout: the controller stops acting at once (no
/// request at all for canaries while another replica holds the Lease),
/// and takes the rollout up again from the cluster's state when it
/// regains it.
#[tokio::test(start_paused = true)]
async fn a_lost_lease_stops_every_write_until_it_is_regained() {
    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/serin-system/leases";
    let target = deployment();
    let canary = support::canary_from(
        &support::compat_dir()
            .join("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml"),
    );
    let mut object = serde_json::to_value(&canary).unwrap();
    object["metadata"]["resourceVersion"] = json!("1");
    // A new revision of the target: the pass writes (event, scale, status).
    object["status"] = json!({
        "phase": "Initialized", "lastAppliedSpec": "0000000000", "lastPromotedSpec": "0000000000"
    });

    // The target's configs and autoscaler, read with it.
    let cluster = objects(serde_json::to_value(&target).unwrap());
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut lease_reads = 0;
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request
                .uri()
                .path_and_query()
                .map(ToString::to_string)
                .unwrap_or_default();
            let body = request.into_body().collect_bytes().await.unwrap();
            let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            log.lock().unwrap().push(format!("{method} {path}"));
            let answer = if path.starts_with(LEASE) && method == "GET" {
                lease_reads += 1;
                lease_answer(lease_reads)
            } else if path.starts_with(LEASE) {
                Some(sent)
            } else if path.contains("/canaries") && path.contains("watch=true") {
                held.push(send);
                continue;
            } else if path.starts_with(CANARIES) && method == "GET" {
                Some(json!({
                    "apiVersion": "flagger.app/v1beta1", "kind": "CanaryList",
                    "metadata": {"resourceVersion": "1"}, "items": [object.clone()]
                }))
            } else if path.contains("/canaries") && method == "GET" {
                Some(json!({
                    "apiVersion": "serin.dev/v1alpha1", "kind": "CanaryList",
                    "metadata": {"resourceVersion": "1"}, "items": []
                }))
            } else if path.starts_with(CANARIES) {
                Some(object.clone())
            } else if path.contains("/deployments/") || path.contains("/deployments?") {
                Some(serde_json::to_value(&target).unwrap())
            } else if let Some((_, object)) = cluster.iter().find(|(at, _)| *at == path) {
                Some(object.clone())
            } else if path.contains("/events") {
                Some(sent)
            } else {
                panic!("unexpected {method} {path}");
            };
            let response = match answer {
                Some(answer) => Response::builder()
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
                None => Response::builder()
                    .status(404)
                    .body(Body::from(
                        serde_json::to_vec(&json!({
                            "kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "reason": "NotFound", "code": 404
                        }))
                        .unwrap(),
                    ))
                    .unwrap(),
            };
            send.send_response(response);
        }
    });

    let settings = serin_kube::operator::Settings {
        namespace: Some("test".into()),
        lease_namespace: "serin-system".into(),
        identity: "serin-0".into(),
        default_provider: "istio".into(),
    };
    let controller = tokio::spawn(serin_kube::operator::run(
        client,
        settings,
        PrometheusChecks::default(),
    ));
    // Virtual time: bounded in steps, never in wall-clock seconds.
    let lease_get = format!("GET {LEASE}/serin-controller");
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let seen = seen.lock().unwrap();
        if seen.iter().filter(|line| **line == lease_get).count() >= 17 {
            break;
        }
    }
    controller.abort();
    server.abort();
    let seen = seen.lock().unwrap().clone();
    let reads: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, line)| **line == lease_get)
        .map(|(index, _)| index)
        .collect();
    assert!(reads.len() >= 17, "{seen:#?}");
    let writes = |range: std::ops::Range<usize>| -> Vec<String> {
        seen[range]
            .iter()
            .filter(|line| !line.contains("/leases") && !line.starts_with("GET "))
            .cloned()
            .collect()
    };
    let status_patch = format!("PATCH {CANARIES}/podinfo/status?");
    // Leading: the Lease created, the pass wrote the new revision's status.
    assert_eq!(seen[1], format!("POST {LEASE}?"), "{seen:#?}");
    assert!(writes(0..reads[1]).contains(&status_patch), "{seen:#?}");
    // Following (reads 2 to 15 answered with another holder, 70 s):
    // nothing at all about canaries, let alone a write.
    let following = &seen[reads[1]..reads[15]];
    assert!(
        following.iter().all(|line| line.contains("/leases")),
        "{following:#?}"
    );
    // The Lease taken back: the rollout is picked up from the cluster.
    assert_eq!(
        seen[reads[15] + 1],
        format!("PUT {LEASE}/serin-controller?"),
        "{seen:#?}"
    );
    assert!(
        writes(reads[3]..seen.len()).contains(&status_patch),
        "{seen:#?}"
    );
}
