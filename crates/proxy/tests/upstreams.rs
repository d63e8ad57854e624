//! The proxy refuses exactly the upstream URLs that `serin validate` and
//! the daemon's start refuse, with the same message (one shared table).

use crate::support::*;
use http::Uri;
use serin_proxy::Routes;
use serin_testkit::{UPSTREAM_URLS, upstreams::judged_from_uri};

#[tokio::test]
async fn the_shared_upstream_table() {
    let stable = named("stable").await;
    let proxy = TestProxy::start(Routes::stable_only(stable.uri())).await;
    let mut judged = 0;
    for (text, expected) in UPSTREAM_URLS {
        // The proxy takes parsed URIs: text that is no URI, or whose
        // fragment the parser drops, is judged by the caller that parses.
        let Ok(uri) = text.trim().parse::<Uri>() else {
            continue;
        };
        if !judged_from_uri(text) {
            continue;
        }
        judged += 1;
        let as_canary = Routes {
            canary: Some(uri.clone()),
            canary_weight: 10,
            ..Routes::stable_only(stable.uri())
        };
        let as_stable = Routes::stable_only(uri);
        for routes in [as_canary, as_stable] {
            let got = proxy.handle.set_routes(routes).err().map(|e| e.to_string());
            match (expected, &got) {
                (None, None) => {}
                (Some(message), Some(error)) if error.contains(message) => {}
                _ => panic!("{text:?}: expected {expected:?}, got {got:?}"),
            }
        }
    }
    assert!(judged > 10, "{judged}");
}
