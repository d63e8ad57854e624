//! Dedicated worker threads: the same proxy, served nginx-style.

use crate::support::*;
use serin_proxy::{Limits, Routes};

fn workers(n: usize) -> Limits {
    Limits {
        workers: Some(n),
        ..Limits::default()
    }
}

#[tokio::test]
async fn worker_threads_forward_record_and_shut_down() {
    let stable = named("stable").await;
    let canary = named("canary").await;
    let mut routes = Routes::stable_only(stable.uri());
    routes.canary = Some(canary.uri());
    routes.canary_weight = 50;
    let mut proxy = TestProxy::start_with(routes, workers(2), None).await;
    // Separate clients: separate connections, spread over both workers.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = proxy.url("/x");
        tasks.push(tokio::spawn(async move {
            let client = client();
            let mut names = Vec::new();
            for _ in 0..10 {
                let (status, _, body) = get(&client, url.clone(), &[]).await;
                assert_eq!(status, 200);
                names.push(body);
            }
            names
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(must(task.await));
    }
    assert!(seen.iter().any(|b| b == "stable") && seen.iter().any(|b| b == "canary"));
    let totals = proxy.recorder.totals();
    assert_eq!(totals.stable.requests + totals.canary.requests, 80);
    assert_eq!(
        totals.canary.requests,
        seen.iter().filter(|b| *b == "canary").count() as u64
    );
    let counters = proxy.handle.counters();
    assert_eq!(counters.requests_total, 80);
    assert_eq!(counters.connections_total, 8);
    proxy.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(proxy.addr).await.is_err(),
        "the listener is closed once serve returns"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_threaded_runtime_gets_workers_by_default() {
    let stable = named("stable").await;
    let mut proxy = TestProxy::start(Routes::stable_only(stable.uri())).await;
    let (status, _, body) = get(&client(), proxy.url("/"), &[]).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "stable"));
    proxy.shutdown().await;
}
