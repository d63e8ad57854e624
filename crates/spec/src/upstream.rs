//! Upstream URLs: the one rule for what the built-in proxy can forward to.
//!
//! `serin validate` (`spec.upstreams`), `serin start --canary` (the daemon's
//! API), the built-in router and the proxy itself all parse upstreams with
//! [`UpstreamUrl`], so a URL one of them accepts is never refused by another
//! later, in the middle of a rollout.
//!
//! Accepted: `http://host[:port][/base/path]` and `https://...` (TLS to
//! the upstream, verified against Mozilla's roots or `upstreams.caFile`);
//! surrounding whitespace is ignored. Refused, each with its own message:
//! other schemes, relative URLs, a missing host, a query string and a
//! fragment (the proxy appends each request's own path and query to the
//! base path; a query or fragment in the base cannot be combined with it).

use http::{Uri, uri::Authority};
use std::fmt;

/// The port of an `http` upstream without one.
const HTTP_PORT: u16 = 80;
/// The port of an `https` upstream without one.
const HTTPS_PORT: u16 = 443;

/// An upstream the built-in proxy can forward to, parsed once.
///
/// ```
/// use serin_spec::UpstreamUrl;
///
/// let upstream = UpstreamUrl::parse(" http://127.0.0.1:9001/app/ ")?;
/// assert_eq!(upstream.host(), "127.0.0.1");
/// assert_eq!(upstream.port(), 9001);
/// assert_eq!(upstream.path_prefix(), Some("/app"));
/// let secure = UpstreamUrl::parse("https://backend.internal")?;
/// assert_eq!(secure.port(), 443);
/// assert_eq!(
///     UpstreamUrl::parse("ftp://example.com").unwrap_err().to_string(),
///     "only http:// and https:// upstreams are supported"
/// );
/// # Ok::<(), serin_spec::UpstreamUrlError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// The URL as parsed (trimmed), what the proxy's routing table holds.
    uri: Uri,
    scheme: UpstreamScheme,
    authority: Authority,
    /// The host without IPv6 brackets.
    host: String,
    port: u16,
    /// The base path without trailing slashes; `None` for no path or `/`.
    path_prefix: Option<String>,
}

/// How the proxy talks to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamScheme {
    /// Plain HTTP/1.1 over TCP.
    Http,
    /// HTTP/1.1 over TLS, the upstream's certificate verified.
    Https,
}

/// Why a URL is not an upstream the proxy can forward to. Every caller
/// shows it after the URL: `"URL": message`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamUrlError {
    /// Nothing but whitespace.
    #[error("no URL given; expected e.g. http://127.0.0.1:9001")]
    Empty,
    /// Not URL syntax at all (spaces, stray characters).
    #[error("not a valid URL; expected e.g. http://127.0.0.1:9001")]
    Invalid,
    /// No scheme: a host, a path or `host:port` alone.
    #[error("not an absolute URL; expected e.g. http://127.0.0.1:9001")]
    NotAbsolute,
    /// A scheme other than http or https.
    #[error("only http:// and https:// upstreams are supported")]
    Scheme,
    /// `http://` with nothing, or only a port, where the host goes.
    #[error("no host in the URL")]
    NoHost,
    /// A port that is not a number from 0 to 65535.
    #[error("the port must be a number from 0 to 65535")]
    Port,
    /// `?...`: each request brings its own query.
    #[error(
        "query strings are not supported in upstream URLs (each request's own query is forwarded)"
    )]
    Query,
    /// `#...`: never sent over HTTP, so it would be silently dropped.
    #[error("fragments (#...) are not supported in upstream URLs")]
    Fragment,
}

// === impl UpstreamUrl ===

impl UpstreamUrl {
    /// Parses an upstream as written in a canary file or given to
    /// `serin start --canary`.
    pub fn parse(text: &str) -> Result<Self, UpstreamUrlError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UpstreamUrlError::Empty);
        }
        let uri: Uri = text.parse().map_err(|_| {
            // `host:port` parses as a scheme and a path, or not at all.
            if text.contains("://") {
                UpstreamUrlError::Invalid
            } else {
                UpstreamUrlError::NotAbsolute
            }
        })?;
        let upstream = Self::from_uri(&uri)?;
        // `Uri` drops a fragment without a word; the text still has it.
        if text.contains('#') {
            return Err(UpstreamUrlError::Fragment);
        }
        Ok(upstream)
    }

    /// Checks an already parsed URI by the same rule (the proxy's routing
    /// table holds `Uri`s). A fragment cannot be seen here: `Uri` drops it
    /// when parsing, so text goes through [`UpstreamUrl::parse`].
    pub fn from_uri(uri: &Uri) -> Result<Self, UpstreamUrlError> {
        let scheme = match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => UpstreamScheme::Http,
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => UpstreamScheme::Https,
            Some(_) => return Err(UpstreamUrlError::Scheme),
            None => return Err(UpstreamUrlError::NotAbsolute),
        };
        let authority = uri.authority().ok_or(UpstreamUrlError::NoHost)?;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(UpstreamUrlError::NoHost);
        }
        let default_port = match scheme {
            UpstreamScheme::Http => HTTP_PORT,
            UpstreamScheme::Https => HTTPS_PORT,
        };
        let port = port(authority, default_port)?;
        if uri.query().is_some() {
            return Err(UpstreamUrlError::Query);
        }
        let path = uri.path().trim_end_matches('/');
        Ok(UpstreamUrl {
            uri: uri.clone(),
            scheme,
            authority: authority.clone(),
            host: host.to_owned(),
            port,
            path_prefix: (!path.is_empty()).then(|| path.to_owned()),
        })
    }

    /// The URL as parsed.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The URL as parsed, for the proxy's routing table.
    pub fn into_uri(self) -> Uri {
        self.uri
    }

    /// How the proxy talks to it.
    pub fn scheme(&self) -> UpstreamScheme {
        self.scheme
    }

    /// `host[:port]` as written: what the proxy sends as `Host`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The host (a name or an IP address, IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, 80 (http) or 443 (https) when none is written.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base path prefixed to every request path, without trailing
    /// slashes; `None` when the URL has no path or only `/`.
    pub fn path_prefix(&self) -> Option<&str> {
        self.path_prefix.as_deref()
    }
}

/// The port written in `authority`, the scheme's `default` when there is
/// none (or an empty one, as RFC 3986 allows). Read from the text:
/// `Authority::port` is `None` for `:99999` as for no port at all, which
/// would dial the default.
fn port(authority: &Authority, default: u16) -> Result<u16, UpstreamUrlError> {
    let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
    // Past an IPv6 literal's brackets, the only colon is the port's.
    let after_host = host_port
        .rsplit_once(']')
        .map_or(host_port, |(_, rest)| rest);
    match after_host.rsplit_once(':') {
        None | Some((_, "")) => Ok(default),
        Some((_, digits)) => digits
            .parse::<u16>()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(UpstreamUrlError::Port),
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uri.fmt(f)
    }
}

impl std::str::FromStr for UpstreamUrl {
    type Err = UpstreamUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_testkit::{UPSTREAM_URLS, upstreams::judged_from_uri};

    fn verdict(result: Result<UpstreamUrl, UpstreamUrlError>) -> Option<String> {
        result.err().map(|error| error.to_string())
    }

    #[test]
    fn the_shared_table() {
        for (text, expected) in UPSTREAM_URLS {
            let got = verdict(UpstreamUrl::parse(text));
            match (expected, &got) {
                (None, None) => {}
                (Some(message), Some(error)) if error.contains(message) => {}
                _ => panic!("{text:?}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn parsed_uris_follow_the_same_rule() {
        for (text, expected) in UPSTREAM_URLS {
            let Ok(uri) = text.trim().parse::<Uri>() else {
                continue;
            };
            let got = verdict(UpstreamUrl::from_uri(&uri));
            if judged_from_uri(text) {
                assert_eq!(
                    got.as_deref().map(|e| e.contains(expected.unwrap_or("?"))),
                    expected.map(|_| true),
                    "{text:?}: {got:?}"
                );
            } else {
                // `Uri` has already dropped the fragment.
                assert_eq!(got, None, "{text:?}");
            }
        }
    }

    #[test]
    fn parts() {
        let parse = |text| UpstreamUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let plain = parse("http://backend");
        assert_eq!(plain.scheme(), UpstreamScheme::Http);
        assert_eq!(
            (plain.host(), plain.port(), plain.path_prefix()),
            ("backend", 80, None)
        );
        assert_eq!(plain.authority().as_str(), "backend");
        let v6 = parse("http://[::1]:9001//app//");
        assert_eq!(
            (v6.host(), v6.port(), v6.path_prefix()),
            ("::1", 9001, Some("//app"))
        );
        assert_eq!(v6.authority().as_str(), "[::1]:9001");
        assert_eq!(parse(" http://x:1/ ").to_string(), "http://x:1/");
        assert_eq!(parse("http://x:/").port(), 80);
        let secure = parse("HTTPS://backend.internal/app");
        assert_eq!(secure.scheme(), UpstreamScheme::Https);
        assert_eq!(
            (secure.host(), secure.port(), secure.path_prefix()),
            ("backend.internal", 443, Some("/app"))
        );
        assert_eq!(parse("https://x:8443").port(), 8443);
        assert_eq!(parse("http://u:p@x:81").port(), 81);
        assert_eq!(
            UpstreamUrl::parse("http://x:99999").map(|u| u.port()),
            Err(UpstreamUrlError::Port)
        );
    }
}
