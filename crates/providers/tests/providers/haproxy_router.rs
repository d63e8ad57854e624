//! HAProxy behind the `Router` port, against real HAProxy processes and real
//! backends on loopback: weights and addresses read back from `show servers
//! state`, traffic through the frontend, drift repair, and a fleet in which
//! one instance fails.

use serin_demo::{Backend, Behaviour};
use serin_providers::{
    HaproxyRouter,
    haproxy::{ServerState, command},
};
use serin_rollout::{
    Route,
    ports::{CanaryTarget, PortError, Router},
};
use serin_spec::{HaproxyServers, HaproxySpec, RuntimeApiAddr};
use serin_testkit::{haproxy::Haproxy, ports::free_port};
use std::net::SocketAddr;

fn spec(runtime_api: Vec<String>) -> HaproxySpec {
    HaproxySpec {
        runtime_api,
        backend: "shop".into(),
        servers: HaproxyServers {
            stable: "stable".into(),
            canary: "canary".into(),
        },
        log_listen: "127.0.0.1:5141".into(),
    }
}

async fn backends() -> (Backend, Backend, Backend) {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let start = |name: &'static str| Backend::start(local, Behaviour::healthy(name));
    (
        start("stable v1").await.unwrap(),
        start("canary v2").await.unwrap(),
        start("canary v3").await.unwrap(),
    )
}

/// `(port, weight)` of stable and canary, as HAProxy reports them.
async fn read(router: &HaproxyRouter, api: &str) -> ((u16, u32), (u16, u32)) {
    let servers = router
        .servers_state(&RuntimeApiAddr::Tcp(api.into()))
        .await
        .unwrap();
    let get =
        |name: &str| -> ServerState { servers.iter().find(|s| s.name == name).unwrap().clone() };
    let (stable, canary) = (get("stable"), get("canary"));
    ((stable.port, stable.weight), (canary.port, canary.weight))
}

/// Bodies of `n` requests through the frontend (bounded: 5 s each).
async fn bodies(frontend: &str, n: usize) -> Vec<String> {
    let port: u16 = frontend.rsplit(':').next().unwrap().parse().unwrap();
    let mut bodies = Vec::with_capacity(n);
    for _ in 0..n {
        bodies.push(serin_testkit::http::get(port, "/").await.unwrap());
    }
    bodies
}

#[tokio::test]
async fn weights_addresses_and_promotion_are_read_back() {
    let (stable, canary, next) = backends().await;
    let dead = format!("127.0.0.1:{}", free_port());
    let haproxy = Haproxy::start(&stable.addr().to_string(), &dead, None).await;
    let router = HaproxyRouter::new(
        &spec(vec![haproxy.runtime_api.clone()]),
        &stable.addr().to_string(),
    )
    .unwrap();
    let target = |addr: SocketAddr| CanaryTarget {
        address: addr.to_string(),
        revision: "v2".into(),
    };
    router.set_canary(&target(canary.addr())).await.unwrap();
    assert_eq!(
        read(&router, &haproxy.runtime_api).await,
        ((stable.addr().port(), 100), (canary.addr().port(), 0))
    );
    let route = |canary_weight| Route {
        canary_weight,
        ..Route::STABLE
    };
    router.set_route(route(50)).await.unwrap();
    assert_eq!(
        read(&router, &haproxy.runtime_api).await,
        ((stable.addr().port(), 50), (canary.addr().port(), 50))
    );
    let served = bodies(&haproxy.frontend, 20).await;
    assert!(served.iter().any(|b| b.contains("canary v2")), "{served:?}");
    assert!(served.iter().any(|b| b.contains("stable v1")), "{served:?}");

    // Drift (an operator, a reload) is repaired by the next operation.
    command(
        &RuntimeApiAddr::Tcp(haproxy.runtime_api.clone()),
        "set server shop/canary weight 7",
    )
    .await
    .unwrap();
    router.set_route(route(50)).await.unwrap();
    assert_eq!(
        read(&router, &haproxy.runtime_api).await.1,
        (canary.addr().port(), 50)
    );

    router.promote().await.unwrap();
    router.finalise().await.unwrap();
    assert_eq!(
        read(&router, &haproxy.runtime_api).await,
        ((canary.addr().port(), 100), (canary.addr().port(), 0))
    );
    let served = bodies(&haproxy.frontend, 5).await;
    assert!(served.iter().all(|b| b.contains("canary v2")), "{served:?}");

    // The next rollout starts from the promoted version.
    router.set_canary(&target(next.addr())).await.unwrap();
    router.set_route(route(100)).await.unwrap();
    let served = bodies(&haproxy.frontend, 5).await;
    assert!(served.iter().all(|b| b.contains("canary v3")), "{served:?}");
}

#[tokio::test]
async fn a_fleet_moves_in_step_and_a_failing_instance_is_named() {
    let (stable, canary, _next) = backends().await;
    let one = Haproxy::start(&stable.addr().to_string(), &stable.addr().to_string(), None).await;
    let two = Haproxy::start(&stable.addr().to_string(), &stable.addr().to_string(), None).await;
    let gone = format!("127.0.0.1:{}", free_port());
    let fleet = vec![
        one.runtime_api.clone(),
        gone.clone(),
        two.runtime_api.clone(),
    ];
    let router = HaproxyRouter::new(&spec(fleet), &stable.addr().to_string()).unwrap();
    router
        .set_canary(&CanaryTarget {
            address: canary.addr().to_string(),
            revision: "v2".into(),
        })
        .await
        .unwrap_err();
    let error = router
        .set_route(Route {
            canary_weight: 25,
            ..Route::STABLE
        })
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, PortError::Unavailable { .. }), "{message}");
    assert!(
        message.contains(&gone) && message.contains("1 of 3"),
        "{message}"
    );
    // The instances that answer hold the route all the same.
    for api in [&one.runtime_api, &two.runtime_api] {
        assert_eq!(
            read(&router, api).await,
            ((stable.addr().port(), 75), (canary.addr().port(), 25))
        );
    }

    // A backend without the named server is refused, naming both.
    let mut wrong = spec(vec![one.runtime_api.clone()]);
    wrong.servers.canary = "missing".into();
    let router = HaproxyRouter::new(&wrong, &stable.addr().to_string()).unwrap();
    let message = router
        .set_route(Route::STABLE)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("no server \"missing\""), "{message}");
}

/// A fleet of two in which one instance stops mid-rollout: the step fails
/// naming it while the other takes it; once the instance is back (its
/// weights the configuration's), a repair brings it in step and says so.
#[tokio::test]
async fn a_fleet_instance_stopped_mid_rollout_is_named_then_repaired() {
    let (stable, canary, _next) = backends().await;
    let one = Haproxy::start(&stable.addr().to_string(), &stable.addr().to_string(), None).await;
    let mut two =
        Haproxy::start(&stable.addr().to_string(), &stable.addr().to_string(), None).await;
    let fleet = vec![one.runtime_api.clone(), two.runtime_api.clone()];
    let router = HaproxyRouter::new(&spec(fleet), &stable.addr().to_string()).unwrap();
    let route = |canary_weight| Route {
        canary_weight,
        ..Route::STABLE
    };
    router
        .set_canary(&CanaryTarget {
            address: canary.addr().to_string(),
            revision: "v2".into(),
        })
        .await
        .unwrap();
    router.set_route(route(20)).await.unwrap();
    assert_eq!(router.repair().await.unwrap(), None);

    two.stop();
    let message = router.set_route(route(50)).await.unwrap_err().to_string();
    assert!(
        message.contains(&two.runtime_api) && message.contains("1 of 2"),
        "{message}"
    );
    let step = ((stable.addr().port(), 50), (canary.addr().port(), 50));
    assert_eq!(read(&router, &one.runtime_api).await, step);
    assert!(
        router.repair().await.is_err(),
        "a stopped instance is an error"
    );

    two.restart().await;
    let drift = router.repair().await.unwrap().expect("drift is reported");
    assert!(drift.contains(&two.runtime_api), "{drift}");
    assert!(!drift.contains(&one.runtime_api), "{drift}");
    for api in [&one.runtime_api, &two.runtime_api] {
        assert_eq!(read(&router, api).await, step);
    }
    assert_eq!(router.repair().await.unwrap(), None);
}

#[tokio::test]
async fn haproxy_s_real_log_is_recorded_per_version() {
    use serin_stats::{Recorder, Version};
    use std::{sync::Arc, time::Duration};
    let (stable, canary, _next) = backends().await;
    let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
    let receiver = serin_providers::SyslogReceiver::bind(
        "127.0.0.1:0".parse().unwrap(),
        spec(Vec::new()).servers,
        recorder.clone(),
    )
    .await
    .unwrap();
    let log_to = receiver.local_addr().to_string();
    let haproxy = Haproxy::start(
        &stable.addr().to_string(),
        &canary.addr().to_string(),
        Some(&log_to),
    )
    .await;
    let router = HaproxyRouter::new(
        &spec(vec![haproxy.runtime_api.clone()]),
        &stable.addr().to_string(),
    )
    .unwrap();
    router
        .set_canary(&CanaryTarget {
            address: canary.addr().to_string(),
            revision: "v2".into(),
        })
        .await
        .unwrap();
    router
        .set_route(Route {
            canary_weight: 50,
            ..Route::STABLE
        })
        .await
        .unwrap();
    bodies(&haproxy.frontend, 20).await;
    serin_testkit::poll::eventually(Duration::from_secs(5), "20 requests logged", async || {
        let totals = recorder.totals();
        totals.get(Version::Stable).requests + totals.get(Version::Canary).requests == 20
    })
    .await;
    let totals = recorder.totals();
    assert_eq!(totals.get(Version::Canary).requests, 10);
    assert_eq!(totals.get(Version::Canary).errors, 0);
    // The test's readiness probe (a connection without a request) is logged
    // as `<NOSRV>` 400 and counted as a foreign server; nothing else drops.
    let counters = receiver.counters();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&counters.recorded), 20);
    assert_eq!(load(&counters.bad_frame) + load(&counters.bad_message), 0);
}
