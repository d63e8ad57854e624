//! serin's live web dashboard: an overview of every canary and a page per
//! canary with live charts, the metric verdicts with their evidence, the
//! rollout history and the manual gates.
//!
//! The pages are static and embedded in the binary (`include_str!`): no CDN,
//! no build step, works offline. They read the daemon's JSON API and its
//! server-sent-events stream (`/api/v1/events`) from the same origin, so
//! the dashboard holds no state and needs no access of its own: gates go
//! through the API with the token the user types in.
//!
//! Everything shown is set as text (`textContent`), never parsed as HTML,
//! and a Content-Security-Policy allows only this origin's scripts and
//! styles, so a hostile canary message or revision cannot run code.

#![forbid(unsafe_code)]

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};

/// Where the dashboard lives.
pub const PATH: &str = "/ui/";

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// Only this origin's scripts, styles and API; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard's routes: `/` and `/ui` redirect to `/ui/`, which serves the
/// page; `/ui/app.js` and `/ui/app.css` its script and style. Merge them
/// into the daemon's router (`serin_daemon::api::router_with`).
pub fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to(PATH) }))
        .route("/ui", get(|| async { Redirect::to(PATH) }))
        .route(
            PATH,
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The assets change with the binary; revalidate rather than cache stale code.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn assets_load_nothing_from_elsewhere() {
        for asset in [super::INDEX, super::SCRIPT, super::STYLE] {
            // The SVG namespace is a name, not a download.
            let asset = asset.replace("http://www.w3.org/2000/svg", "");
            assert!(!asset.contains("http://") && !asset.contains("https://"));
            assert!(!asset.contains("innerHTML"), "text only, never parsed HTML");
        }
    }
}
