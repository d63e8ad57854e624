//! Traffic mirroring: the canary sees copies, users see only stable.

use crate::support::*;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serin_proxy::{Limits, Routes};
use std::time::Duration;

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn mirrored_copies_reach_the_canary_and_count_as_its_statistics() {
    let stable = named("stable").await;
    let canary = backend(|_| async {
        let mut r = Response::new(full("canary"));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        r
    })
    .await;
    let routes = Routes {
        canary: Some(canary.uri()),
        canary_weight: 0,
        mirror: Some(100),
        ..Routes::stable_only(stable.uri())
    };
    let proxy = TestProxy::start(routes).await;
    let c = client();
    for i in 0..10 {
        let req = must(
            Request::post(proxy.url(&format!("/orders?n={i}")))
                .header("x-user", "u1")
                .body(full(format!("order {i}"))),
        );
        let response = must(c.request(req).await);
        assert_eq!(response.status(), 200);
        let body = must(response.into_body().collect().await).to_bytes();
        assert_eq!(body, "stable");
    }
    wait_for(|| canary.seen().len() == 10).await;
    wait_for(|| proxy.recorder.totals().canary.requests == 10).await;
    let copies = canary.seen();
    assert!(
        copies
            .iter()
            .any(|s| s.body == "order 3" && s.uri.query() == Some("n=3"))
    );
    assert!(
        copies
            .iter()
            .all(|s| s.headers["x-user"] == "u1" && s.method == "POST")
    );
    assert_eq!(stable.seen().len(), 10);
    let totals = proxy.recorder.totals();
    assert_eq!(totals.stable.requests, 10);
    assert_eq!(totals.stable.errors, 0);
    // The canary's 503s are its errors, though no user saw them.
    assert_eq!(totals.canary.errors, 10);
    assert_eq!(proxy.handle.counters().mirrors_sent, 10);
}

#[tokio::test]
async fn large_bodies_are_not_mirrored() {
    let stable = named("stable").await;
    let canary = named("canary").await;
    let routes = Routes {
        canary: Some(canary.uri()),
        mirror: Some(100),
        ..Routes::stable_only(stable.uri())
    };
    let limits = Limits {
        mirror_max_body_bytes: 100,
        ..Limits::default()
    };
    let proxy = TestProxy::start_with(routes, limits, None).await;
    let req = must(Request::post(proxy.url("/")).body(full(vec![7u8; 1000])));
    let response = must(client().request(req).await);
    assert_eq!(response.status(), 200);
    let seen = stable.seen();
    assert_eq!(seen[0].body.len(), 1000);
    assert_eq!(proxy.handle.counters().mirrors_skipped_body, 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(canary.seen().is_empty());
}

#[tokio::test]
async fn mirrors_beyond_the_in_flight_bound_are_dropped() {
    let stable = named("stable").await;
    // A canary that never answers keeps every mirror in flight.
    let canary = backend(|_| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Response::new(full("never"))
    })
    .await;
    let routes = Routes {
        canary: Some(canary.uri()),
        mirror: Some(100),
        ..Routes::stable_only(stable.uri())
    };
    let limits = Limits {
        max_in_flight_mirrors: 2,
        ..Limits::default()
    };
    let proxy = TestProxy::start_with(routes, limits, None).await;
    let c = client();
    for _ in 0..5 {
        let (status, _, _) = get(&c, proxy.url("/"), &[]).await;
        assert_eq!(status, 200);
    }
    let counters = proxy.handle.counters();
    assert_eq!(counters.mirrors_sent, 2, "{counters:?}");
    assert_eq!(counters.mirrors_dropped, 3, "{counters:?}");
}

#[tokio::test]
async fn a_mirrored_copy_whose_body_breaks_is_a_canary_error() {
    let stable = named("stable").await;
    let canary = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789",
        Duration::ZERO,
    )
    .await;
    let routes = Routes {
        canary: Some(canary),
        canary_weight: 0,
        mirror: Some(100),
        ..Routes::stable_only(stable.uri())
    };
    let proxy = TestProxy::start(routes).await;
    let (status, _, body) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "stable"));
    wait_for(|| proxy.recorder.totals().canary.requests == 1).await;
    assert_eq!(
        proxy.recorder.status_codes(serin_proxy::Version::Canary),
        [(502, 1)]
    );
    assert_eq!(proxy.handle.counters().upstream_body_errors, 1);
    assert_eq!(
        proxy.recorder.status_codes(serin_proxy::Version::Stable),
        [(200, 1)]
    );
}
