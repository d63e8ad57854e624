//! One table of upstream URLs and the verdict every caller must give them:
//! `serin validate`, `serin start --canary` (the daemon's API), the
//! built-in router and the proxy. Each caller's tests run the whole table,
//! so they cannot drift apart again.

/// Each URL and `None` when it is accepted, else the message it is refused
/// with (`serin_spec::UpstreamUrlError`'s text, which every caller shows).
pub const UPSTREAM_URLS: &[(&str, Option<&str>)] = &[
    ("http://127.0.0.1:9001", None),
    ("http://127.0.0.1:9001/", None),
    ("http://backend/app/", None),
    ("HTTP://backend:8080", None),
    ("http://[::1]:9001/x", None),
    ("  http://127.0.0.1:9001  ", None),
    ("https://127.0.0.1:9001", None),
    ("HTTPS://backend.example/app/", None),
    ("https://[::1]", None),
    (
        "ftp://127.0.0.1",
        Some("only http:// and https:// upstreams are supported"),
    ),
    ("127.0.0.1:9001", Some("not an absolute URL")),
    ("/just/a/path", Some("not an absolute URL")),
    ("", Some("no URL given")),
    ("http://", Some("not a valid URL")),
    ("http://:9001", Some("no host in the URL")),
    ("http://a b", Some("not a valid URL")),
    (
        "http://127.0.0.1:9001/?x=1",
        Some("query strings are not supported"),
    ),
    (
        "http://127.0.0.1:9001?",
        Some("query strings are not supported"),
    ),
    (
        "http://127.0.0.1:9001/#top",
        Some("fragments (#...) are not supported"),
    ),
    ("http://127.0.0.1:99999", Some("the port must be a number")),
];

/// Whether `http::Uri` keeps enough of `url` for a caller that takes a
/// parsed URI (the proxy's routing table) to judge it: a fragment is
/// dropped by the parser, so only callers that take text can refuse it.
pub fn judged_from_uri(url: &str) -> bool {
    !url.contains('#')
}
