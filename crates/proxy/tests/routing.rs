//! Where requests go: weights, A/B matches, sticky sessions, live changes.

use crate::support::*;
use bytes::Bytes;
use http::{HeaderName, Request};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serin_proxy::{MatchRule, Routes, StickySessions, StringMatch};
use std::time::Duration;

async fn pair() -> (Backend, Backend) {
    (named("stable").await, named("canary").await)
}

fn split(stable: &Backend, canary: &Backend, weight: u8) -> Routes {
    Routes {
        canary: Some(canary.uri()),
        canary_weight: weight,
        ..Routes::stable_only(stable.uri())
    }
}

async fn count_canary(proxy: &TestProxy, n: usize, headers: &[(&str, &str)]) -> usize {
    let c = client();
    let mut canary = 0;
    for _ in 0..n {
        let (status, _, body) = get(&c, proxy.url("/"), headers).await;
        assert_eq!(status, 200);
        if body == "canary" {
            canary += 1;
        }
    }
    canary
}

#[tokio::test]
async fn weights_zero_and_hundred_are_exact() {
    let (stable, canary) = pair().await;
    let proxy = TestProxy::start(split(&stable, &canary, 0)).await;
    assert_eq!(count_canary(&proxy, 50, &[]).await, 0);
    proxy.set(|r| r.canary_weight = 100);
    assert_eq!(count_canary(&proxy, 50, &[]).await, 50);
    proxy.set(|r| r.canary = None);
    assert_eq!(count_canary(&proxy, 20, &[]).await, 0);
    let totals = proxy.recorder.totals();
    assert_eq!(totals.canary.requests, 50);
    assert_eq!(totals.stable.requests, 70);
}

#[tokio::test]
async fn ten_percent_is_about_ten_percent() {
    let (stable, canary) = pair().await;
    let proxy = TestProxy::start(split(&stable, &canary, 10)).await;
    // 1000 draws at 10%: mean 100, sd 9.5; the window is over 6 sd wide on
    // each side, so this cannot flake in practice.
    let n = count_canary(&proxy, 1000, &[]).await;
    assert!((40..=170).contains(&n), "canary got {n} of 1000");
}

#[tokio::test]
async fn header_and_cookie_matches_send_chosen_users_to_canary() {
    let (stable, canary) = pair().await;
    let mut routes = split(&stable, &canary, 0);
    let header = |name: &'static str, m| MatchRule {
        headers: vec![(HeaderName::from_static(name), m)],
        ..MatchRule::default()
    };
    routes.matches = vec![
        header("x-canary", StringMatch::Exact("insider".into())),
        header("x-tier", StringMatch::Prefix("beta-".into())),
        header("user-agent", must(StringMatch::regex(".*Firefox.*"))),
        MatchRule {
            cookies: vec![("canary".into(), StringMatch::Exact("always".into()))],
            ..MatchRule::default()
        },
        MatchRule {
            // Flagger's cookie regex on the raw header.
            headers: vec![(
                HeaderName::from_static("cookie"),
                must(StringMatch::regex("^(.*?;)?(flag=on)(;.*)?$")),
            )],
            ..MatchRule::default()
        },
    ];
    let proxy = TestProxy::start(routes).await;
    let c = client();
    let to = |headers: &'static [(&'static str, &'static str)]| {
        let c = c.clone();
        let url = proxy.url("/");
        async move { get(&c, url, headers).await.2 }
    };
    assert_eq!(to(&[("x-canary", "insider")]).await, "canary");
    assert_eq!(to(&[("x-canary", "insiders")]).await, "stable");
    assert_eq!(to(&[("x-tier", "beta-7")]).await, "canary");
    assert_eq!(to(&[("x-tier", "gamma")]).await, "stable");
    assert_eq!(to(&[("user-agent", "Mozilla Firefox 140")]).await, "canary");
    assert_eq!(to(&[("user-agent", "curl")]).await, "stable");
    assert_eq!(to(&[("cookie", "a=1; canary=always")]).await, "canary");
    assert_eq!(to(&[("cookie", "canary=never")]).await, "stable");
    assert_eq!(to(&[("cookie", "x=1;flag=on")]).await, "canary");
    assert_eq!(to(&[]).await, "stable");
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn sticky_sessions_keep_users_where_the_weight_sent_them() {
    let (stable, canary) = pair().await;
    let mut routes = split(&stable, &canary, 50);
    routes.sticky = Some(StickySessions {
        cookie_name: "flagger-cookie".into(),
        max_age: Duration::from_secs(3600),
        primary_cookie_name: Some("primary-cookie".into()),
        primary_max_age: Duration::from_secs(60),
    });
    let proxy = TestProxy::start(routes).await;
    let c = client();
    let (mut canary_cookie, mut primary_cookie) = (None, None);
    for _ in 0..200 {
        let (_, headers, body) = get(&c, proxy.url("/"), &[]).await;
        let set = headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set = set.unwrap_or_else(|| panic!("no Set-Cookie from {body}"));
        if body == "canary" {
            assert!(set.starts_with("flagger-cookie="), "{set}");
            assert!(set.contains("Max-Age=3600"), "{set}");
            canary_cookie = Some(cookie_pair(&set));
        } else {
            assert!(set.starts_with("primary-cookie="), "{set}");
            assert!(set.contains("Max-Age=60"), "{set}");
            primary_cookie = Some(cookie_pair(&set));
        }
        if canary_cookie.is_some() && primary_cookie.is_some() {
            break;
        }
    }
    let canary_cookie = canary_cookie.unwrap_or_else(|| panic!("never routed to canary"));
    let primary_cookie = primary_cookie.unwrap_or_else(|| panic!("never routed to stable"));
    let with = |cookie: &str| format!("other=1; {cookie}");
    assert_eq!(
        count_canary(&proxy, 30, &[("cookie", &with(&canary_cookie))]).await,
        30
    );
    assert_eq!(
        count_canary(&proxy, 30, &[("cookie", &with(&primary_cookie))]).await,
        0
    );

    // A weight step keeps the assignment.
    proxy.set(|r| r.canary_weight = 60);
    assert_eq!(
        count_canary(&proxy, 10, &[("cookie", &canary_cookie)]).await,
        10
    );

    // Rollback (weight 0): the cookie no longer pins, and it is deleted.
    proxy.set(|r| r.canary_weight = 0);
    let (_, headers, body) = get(&c, proxy.url("/"), &[("cookie", &canary_cookie)]).await;
    assert_eq!(body, "stable");
    let set = headers.get("set-cookie").and_then(|v| v.to_str().ok());
    assert_eq!(set, Some("flagger-cookie=; Max-Age=0; Path=/"));

    // A new rollout draws new tokens: the old cookie means nothing.
    proxy.set(|r| r.canary_weight = 1);
    let stale = count_canary(&proxy, 30, &[("cookie", &canary_cookie)]).await;
    assert!(stale < 10, "stale cookie still pinned {stale} of 30");
}

#[tokio::test]
async fn weight_change_applies_on_a_live_keep_alive_connection() {
    let (stable, canary) = pair().await;
    let proxy = TestProxy::start(split(&stable, &canary, 0)).await;
    let stream = must(tokio::net::TcpStream::connect(proxy.addr).await);
    let (mut sender, conn) =
        must(hyper::client::conn::http1::handshake::<_, TestBody>(TokioIo::new(stream)).await);
    tokio::spawn(conn);
    let send = async |sender: &mut hyper::client::conn::http1::SendRequest<TestBody>| {
        let req = must(
            Request::get("/")
                .header("host", "shop.example")
                .body(full(Bytes::new())),
        );
        let response = must(sender.send_request(req).await);
        let body = must(response.into_body().collect().await).to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    };
    for _ in 0..5 {
        assert_eq!(send(&mut sender).await, "stable");
    }
    proxy.set(|r| r.canary_weight = 100);
    for _ in 0..5 {
        assert_eq!(send(&mut sender).await, "canary");
    }
    let counters = proxy.handle.counters();
    assert_eq!(counters.connections_total, 1, "{counters:?}");
    assert_eq!(counters.active_connections, 1, "{counters:?}");
}

#[tokio::test]
async fn invalid_routes_are_refused_and_the_old_ones_kept() {
    let (stable, canary) = pair().await;
    let proxy = TestProxy::start(split(&stable, &canary, 0)).await;
    let mut bad = proxy.routes();
    bad.canary_weight = 120;
    assert!(proxy.handle.set_routes(bad).is_err());
    let mut bad = proxy.routes();
    bad.canary = Some(must("ftp://example.com".parse()));
    assert!(proxy.handle.set_routes(bad).is_err());
    assert_eq!(proxy.routes().canary_weight, 0);
    assert_eq!(count_canary(&proxy, 5, &[]).await, 0);
}
