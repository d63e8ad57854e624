//! Leader election against the mocked API server: the exact requests of
//! each case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

use std::time::Duration;

use fixtures::{Exchange, mock};
use http::StatusCode;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use serin_kube::lease::{Leadership, LeaseLock};

const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/serin-system/leases/serin-controller";
const POST: &str = "/apis/coordination.k8s.io/v1/namespaces/serin-system/leases?";

fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

fn lease(holder: &str, version: &str, acquired: &str, renewed: &str, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "serin-controller", "namespace": "serin-system", "resourceVersion": version},
        "spec": {
            "holderIdentity": holder, "leaseDurationSeconds": 15,
            "acquireTime": acquired, "renewTime": renewed, "leaseTransitions": transitions
        }
    })
}

fn without_version(mut value: Value) -> Value {
    value["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    value
}

async fn attempt(exchanges: Vec<Exchange>) -> Leadership {
    let (client, verifier) = mock();
    let expected = exchanges.len();
    let server = tokio::spawn(verifier.run(exchanges));
    let lock = LeaseLock::new(client, "serin-system", "serin-controller", "serin-a", 15);
    let result = tokio::time::timeout(Duration::from_secs(10), lock.try_acquire_or_renew(now()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.await.unwrap(), expected);
    result
}

const NOW_MICRO: &str = "2026-11-30T12:00:00.000000Z";

#[tokio::test]
async fn a_missing_lease_is_created() {
    let created = without_version(lease("serin-a", "", NOW_MICRO, NOW_MICRO, 0));
    let result = attempt(vec![
        Exchange::new("GET", PATH, None).fail(StatusCode::NOT_FOUND, "NotFound"),
        Exchange::new("POST", POST, Some(created.clone())).answer(created),
    ])
    .await;
    assert_eq!(result, Leadership::Leading);
}

#[tokio::test]
async fn the_holder_renews_with_the_version_it_read() {
    let held = lease(
        "serin-a",
        "41",
        "2026-11-30T11:00:00Z",
        "2026-11-30T11:59:55Z",
        2,
    );
    let renewed = lease("serin-a", "41", "2026-11-30T11:00:00.000000Z", NOW_MICRO, 2);
    let result = attempt(vec![
        Exchange::new("GET", PATH, None).answer(held),
        Exchange::new("PUT", format!("{PATH}?"), Some(renewed.clone())).answer(renewed),
    ])
    .await;
    assert_eq!(result, Leadership::Leading);
}

#[tokio::test]
async fn a_fresh_lease_of_another_replica_is_followed() {
    let held = lease(
        "serin-b",
        "41",
        "2026-11-30T11:00:00Z",
        "2026-11-30T11:59:50Z",
        2,
    );
    let result = attempt(vec![Exchange::new("GET", PATH, None).answer(held)]).await;
    assert_eq!(result, Leadership::Follower(Some("serin-b".into())));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_a_lost_race_follows() {
    let stale = lease(
        "serin-b",
        "41",
        "2026-11-30T11:00:00Z",
        "2026-11-30T11:59:44Z",
        2,
    );
    let taken = lease("serin-a", "41", NOW_MICRO, NOW_MICRO, 3);
    let result = attempt(vec![
        Exchange::new("GET", PATH, None).answer(stale.clone()),
        Exchange::new("PUT", format!("{PATH}?"), Some(taken.clone())).answer(taken.clone()),
    ])
    .await;
    assert_eq!(result, Leadership::Leading);

    // Another replica wrote first: the API refuses the stale version.
    let result = attempt(vec![
        Exchange::new("GET", PATH, None).answer(stale),
        Exchange::new("PUT", format!("{PATH}?"), Some(taken))
            .fail(StatusCode::CONFLICT, "Conflict"),
    ])
    .await;
    assert_eq!(result, Leadership::Follower(None));
}
