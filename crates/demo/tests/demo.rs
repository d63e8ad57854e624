//! The sample backends and the load generator against each other on loopback.

use serin_demo::{Backend, Behaviour, LoadSpec, load};
use std::time::Duration;

fn local() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn healthy_backend_answers_every_request() {
    let backend = Backend::start(local(), Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let mut spec = LoadSpec::new(
        backend.url().parse().unwrap(),
        Some(200.0),
        Duration::from_millis(500),
    );
    spec.max_requests = Some(80);
    let report = load::run(spec).await.unwrap();
    assert!(report.requests > 10 && report.requests <= 80, "{report:?}");
    assert_eq!(report.errors, 0);
    assert_eq!(report.latency.count(), report.requests);
}

#[tokio::test]
async fn faulty_backend_fails_about_as_often_as_asked() {
    let behaviour = Behaviour {
        error_rate: 0.5,
        latency: Duration::ZERO,
        jitter: Duration::ZERO,
        ..Behaviour::healthy("canary")
    };
    let backend = Backend::start(local(), behaviour).await.unwrap();
    let mut spec = LoadSpec::new(backend.url().parse().unwrap(), None, Duration::from_secs(5));
    spec.max_requests = Some(400);
    spec.concurrency = 4;
    let report = load::run(spec).await.unwrap();
    assert_eq!(report.requests, 400);
    // Binomial(400, 0.5): 5 standard deviations is 50 either side.
    assert!((150..=250).contains(&report.errors), "{report:?}");
    assert_eq!(report.transport_errors, 0);
}

#[tokio::test]
async fn dead_target_counts_transport_errors() {
    let port = std::net::TcpListener::bind(local())
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut spec = LoadSpec::new(
        format!("http://127.0.0.1:{port}/").parse().unwrap(),
        Some(50.0),
        Duration::from_millis(200),
    );
    spec.max_requests = Some(5);
    let report = load::run(spec).await.unwrap();
    assert!(report.requests >= 1);
    assert_eq!(report.transport_errors, report.requests);
}

#[test]
fn bounds_are_enforced() {
    let url: http::Uri = "http://127.0.0.1:1/".parse().unwrap();
    let mut spec = LoadSpec::new(url.clone(), Some(10.0), Duration::from_secs(1));
    spec.concurrency = 0;
    assert!(
        spec.check()
            .unwrap_err()
            .to_string()
            .starts_with("concurrency:")
    );
    let spec = LoadSpec::new(url.clone(), Some(-1.0), Duration::from_secs(1));
    assert!(spec.check().unwrap_err().to_string().starts_with("rate:"));
    let spec = LoadSpec::new(url, None, Duration::from_secs(100_000));
    assert!(
        spec.check()
            .unwrap_err()
            .to_string()
            .starts_with("duration:")
    );
    let spec = LoadSpec::new("ftp://x/".parse().unwrap(), None, Duration::from_secs(1));
    assert!(spec.check().is_err());
}
