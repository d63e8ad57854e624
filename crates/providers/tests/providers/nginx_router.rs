//! nginx behind the `Router` port, against a real nginx and real backends
//! on loopback: every file serin writes passes `nginx -t`, traffic follows
//! the weights after each reload, and a failed reload leaves the previous
//! file in place with an error naming the command and its stderr.

use serin_demo::{Backend, Behaviour};
use serin_providers::NginxRouter;
use serin_rollout::{
    Route,
    ports::{CanaryTarget, PortError, Router},
};
use serin_spec::NginxSpec;
use serin_testkit::nginx::Nginx;
use std::net::SocketAddr;

fn spec(nginx: &Nginx, reload: Vec<String>) -> NginxSpec {
    NginxSpec {
        upstream: "shop".into(),
        config_file: nginx.upstream_file.display().to_string(),
        reload_command: Some(reload),
        log_listen: "127.0.0.1:5140".into(),
    }
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

fn route(canary_weight: u8) -> Route {
    Route {
        canary_weight,
        mirror: None,
        match_active: false,
    }
}

/// nginx reloads gracefully: old workers may answer a little longer, so
/// traffic is checked until it matches (bounded).
async fn all_from(frontend: &str, name: &str) -> bool {
    for _ in 0..50 {
        if bodies(frontend, 4).await.iter().all(|b| b.contains(name)) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn every_written_file_passes_nginx_t_and_traffic_follows() {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary v2"))
        .await
        .unwrap();
    let nginx = Nginx::start(&stable.addr().to_string(), None).await;
    let router = NginxRouter::new(
        &spec(&nginx, nginx.argv(&["-s", "reload"])),
        &stable.addr().to_string(),
    )
    .unwrap();
    let target = CanaryTarget {
        address: canary.addr().to_string(),
        revision: "v2".into(),
    };
    router.set_canary(&target).await.unwrap();
    nginx.test_config().unwrap();
    assert!(all_from(&nginx.frontend, "stable v1").await);
    for weight in [10, 50, 100, 0] {
        router.set_route(route(weight)).await.unwrap();
        nginx.test_config().unwrap();
    }
    router.set_route(route(100)).await.unwrap();
    assert!(
        all_from(&nginx.frontend, "canary v2").await,
        "{}",
        nginx.error_log()
    );
    router.set_route(route(50)).await.unwrap();
    // Smooth weighted round robin with equal weights alternates; old
    // workers may still answer just after the reload, so a few tries.
    let mut mixed = false;
    for _ in 0..20 {
        let answers = bodies(&nginx.frontend, 10).await;
        if answers.iter().any(|b| b.contains("stable v1"))
            && answers.iter().any(|b| b.contains("canary v2"))
        {
            mixed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(mixed, "50/50 never served both versions");
    router.promote().await.unwrap();
    router.finalise().await.unwrap();
    nginx.test_config().unwrap();
    let file = std::fs::read_to_string(&nginx.upstream_file).unwrap();
    assert!(
        file.contains(&format!("server {} weight=100;", canary.addr())),
        "{file}"
    );
    assert!(!file.contains(&stable.addr().to_string()), "{file}");
    assert!(all_from(&nginx.frontend, "canary v2").await);
}

/// A file overwritten by hand (and nginx reloaded with it) is drift: the
/// router's repair rewrites serin's block, reloads, and says what it found;
/// a file that reads as desired is left alone.
#[tokio::test]
async fn a_file_overwritten_by_hand_is_rewritten_and_reloaded() {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary v2"))
        .await
        .unwrap();
    let nginx = Nginx::start(&stable.addr().to_string(), None).await;
    let router = NginxRouter::new(
        &spec(&nginx, nginx.argv(&["-s", "reload"])),
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
    router.set_route(route(100)).await.unwrap();
    assert!(all_from(&nginx.frontend, "canary v2").await);
    assert_eq!(router.repair().await.unwrap(), None);

    // Someone puts stable back by hand and reloads nginx.
    std::fs::write(
        &nginx.upstream_file,
        format!("upstream shop {{\n    server {};\n}}\n", stable.addr()),
    )
    .unwrap();
    let reloaded = std::process::Command::new(&nginx.argv(&[])[0])
        .args(&nginx.argv(&["-s", "reload"])[1..])
        .status()
        .unwrap();
    assert!(reloaded.success());
    assert!(all_from(&nginx.frontend, "stable v1").await);

    let drift = router.repair().await.unwrap().expect("drift is reported");
    assert!(
        drift.contains(&stable.addr().to_string()) && drift.contains("reloaded"),
        "{drift}"
    );
    assert_eq!(
        std::fs::read_to_string(&nginx.upstream_file).unwrap(),
        router.rendered()
    );
    nginx.test_config().unwrap();
    assert!(
        all_from(&nginx.frontend, "canary v2").await,
        "{}",
        nginx.error_log()
    );
    assert_eq!(router.repair().await.unwrap(), None);
}

#[tokio::test]
async fn a_failed_reload_restores_the_previous_file_and_names_the_command() {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let nginx = Nginx::start(&stable.addr().to_string(), None).await;
    let before = std::fs::read_to_string(&nginx.upstream_file).unwrap();
    // A reload that fails with a message on stderr (an argv, no shell
    // involved in serin: the test's command happens to be sh).
    let failing = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "echo 'nginx: [emerg] simulated' >&2; exit 1".to_owned(),
    ];
    let router = NginxRouter::new(&spec(&nginx, failing), &stable.addr().to_string()).unwrap();
    let error = router
        .set_canary(&CanaryTarget {
            address: "127.0.0.1:9".into(),
            revision: "v2".into(),
        })
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, PortError::Refused { .. }), "{message}");
    assert!(message.contains("nginx reload `sh -c"), "{message}");
    assert!(message.contains("[emerg] simulated"), "{message}");
    assert_eq!(
        std::fs::read_to_string(&nginx.upstream_file).unwrap(),
        before
    );
    nginx.test_config().unwrap();
    // No temporary file is left behind.
    let dir = nginx.upstream_file.parent().unwrap();
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1);

    // A missing program is an error too, and the file stays.
    let router = NginxRouter::new(
        &spec(&nginx, vec!["/nonexistent/nginx".into()]),
        &stable.addr().to_string(),
    )
    .unwrap();
    let error = router.set_route(route(0)).await.unwrap_err();
    assert!(error.to_string().contains("/nonexistent/nginx"), "{error}");
    assert_eq!(
        std::fs::read_to_string(&nginx.upstream_file).unwrap(),
        before
    );

    // The real reload accepts what serin writes.
    let router = NginxRouter::new(
        &spec(&nginx, nginx.argv(&["-s", "reload"])),
        &stable.addr().to_string(),
    )
    .unwrap();
    router.set_route(route(0)).await.unwrap();
    assert_ne!(
        std::fs::read_to_string(&nginx.upstream_file).unwrap(),
        before
    );
    nginx.test_config().unwrap();
    assert!(all_from(&nginx.frontend, "stable v1").await);
}

#[tokio::test]
async fn the_access_log_is_recorded_per_version() {
    use serin_providers::{NginxFormat, SyslogReceiver};
    use serin_stats::{Recorder, Version};
    use std::{sync::Arc, time::Duration};

    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .unwrap();
    let canary = Backend::start(local, Behaviour::healthy("canary v2"))
        .await
        .unwrap();
    let recorder = Arc::new(Recorder::new(Duration::from_secs(60)));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let log_addr = udp.local_addr().unwrap();
    drop(udp);
    let nginx = Nginx::start(&stable.addr().to_string(), Some(&log_addr.to_string())).await;
    let router = NginxRouter::new(
        &spec(&nginx, nginx.argv(&["-s", "reload"])),
        &stable.addr().to_string(),
    )
    .unwrap();
    let receiver = SyslogReceiver::bind_format(
        log_addr,
        Arc::new(NginxFormat(router.version_addrs())),
        recorder.clone(),
    )
    .await
    .unwrap();
    router
        .set_canary(&CanaryTarget {
            address: canary.addr().to_string(),
            revision: "v2".into(),
        })
        .await
        .unwrap();
    router.set_route(route(100)).await.unwrap();
    assert!(all_from(&nginx.frontend, "canary v2").await);
    // The log lines of those checks arrive over UDP a little later: wait
    // until the counts stand still (bounded) before counting from here.
    let mut before = recorder.totals();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = recorder.totals();
        if now == before {
            break;
        }
        before = now;
    }
    bodies(&nginx.frontend, 10).await;
    let mut counted = (0, 0);
    for _ in 0..50 {
        let totals = recorder.totals();
        counted = (
            totals.get(Version::Stable).requests - before.get(Version::Stable).requests,
            totals.get(Version::Canary).requests - before.get(Version::Canary).requests,
        );
        if counted.1 >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        counted,
        (0, 10),
        "dropped: {}",
        receiver.counters().dropped()
    );
    assert!(recorder.totals().get(Version::Canary).requests >= 10);
}
