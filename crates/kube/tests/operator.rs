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
    let text =
        std::fs::read_to_string(support::testdata().join("kube/podinfo-deployment.yaml")).unwrap();
    serin_kube::documents::split(&text)
        .unwrap()
        .cluster
        .target
        .unwrap()
}

/// Answers the list with `canary`, the target's GET with `target`, and
/// holds watches open; records every path.
async fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    canary: Value,
    target: Value,
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
        } else if path == TARGET {
            target.clone()
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
    object["status"] = json!({
        "phase": "Initialized", "lastAppliedSpec": hash, "lastPromotedSpec": hash
    });

    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(serve(
        handle,
        object,
        serde_json::to_value(&target).unwrap(),
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
