//! Header rewriting between client and upstream: hop-by-hop headers stay on
//! their hop (RFC 9110 §7.6.1), the upstream learns who the client was (and
//! believes only what serin or a trusted proxy saw), and a request must name
//! its host as its HTTP version requires.

use http::{
    HeaderMap, HeaderName, HeaderValue, Uri, Version,
    header::{
        CONNECTION, FORWARDED, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
        TRANSFER_ENCODING, UPGRADE,
    },
    uri::Authority,
};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The scheme clients reach serin with: plain listeners.
static HTTP: HeaderValue = HeaderValue::from_static("http");
/// The scheme clients reach serin with: listeners with `service.tls`.
static HTTPS: HeaderValue = HeaderValue::from_static("https");

/// Headers that describe one connection, never the message. `Trailer` is
/// not one (RFC 9110 §6.6.2 made it end to end): it announces the trailer
/// fields, and HTTP/1 peers (hyper among them) send in a chunked body's
/// trailer only the fields it names, so gRPC's `grpc-status` would be lost
/// without it.
const HOP_BY_HOP: [&HeaderName; 7] = [
    &CONNECTION,
    &KEEP_ALIVE,
    &PROXY_AUTHENTICATE,
    &PROXY_AUTHORIZATION,
    &TE,
    &TRANSFER_ENCODING,
    &UPGRADE,
];

/// Which of the headers the proxy rewrites a map holds, found in one pass
/// over its names (comparing a name is cheaper than hashing it, and most
/// of these are absent): only those present are then looked up, removed
/// or appended to.
#[derive(Clone, Copy, Debug, Default)]
struct Present {
    /// Bit i: `HOP_BY_HOP[i]` is present.
    hop_by_hop: u8,
    /// A `Proxy-*` header outside the fixed set.
    proxy: bool,
    forwarded: bool,
    x_real_ip: bool,
    x_forwarded_for: bool,
    x_forwarded_proto: bool,
    x_forwarded_host: bool,
}

// === impl Present ===

impl Present {
    fn scan(headers: &HeaderMap) -> Present {
        let mut present = Present::default();
        for name in headers.keys() {
            // Every name looked for begins with one of these letters; most
            // of a request's (accept, host, user-agent…) are passed over
            // after one byte.
            if !matches!(
                name.as_str().as_bytes().first(),
                Some(b'c' | b'f' | b'k' | b'p' | b't' | b'u' | b'x')
            ) {
                continue;
            }
            if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == name) {
                present.hop_by_hop |= 1 << i;
            } else if name == FORWARDED {
                present.forwarded = true;
            } else if name == X_FORWARDED_FOR {
                present.x_forwarded_for = true;
            } else if name == X_FORWARDED_PROTO {
                present.x_forwarded_proto = true;
            } else if name == X_FORWARDED_HOST {
                present.x_forwarded_host = true;
            } else if name == X_REAL_IP {
                present.x_real_ip = true;
            } else if name.as_str().starts_with("proxy-") {
                present.proxy = true;
            }
        }
        present
    }

    /// `TE` is `HOP_BY_HOP[4]`.
    fn te(self) -> bool {
        self.hop_by_hop & (1 << 4) != 0
    }
}

/// Removes hop-by-hop headers: the fixed set, every `Proxy-*` header, and
/// whatever `Connection` names. One pass over the names finds which are
/// there; only those are removed (each removal hashes its name), so the
/// common answer with `Connection: keep-alive` costs one removal, not one
/// per name of the set. Allocates only for several `Connection` lines or
/// `Proxy-*` headers outside the set.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let _ = remove_present_hop_by_hop(headers, Present::scan(headers));
}

/// [`remove_hop_by_hop`] with the scan done. Says whether `Connection`
/// named a header outside the fixed set that was there (and is gone now:
/// the scan no longer describes the map).
fn remove_present_hop_by_hop(headers: &mut HeaderMap, present: Present) -> bool {
    if present.hop_by_hop == 0 && !present.proxy {
        return false;
    }
    let mut listed_removed = false;
    // `CONNECTION` is `HOP_BY_HOP[0]`.
    if present.hop_by_hop & 1 != 0 {
        let mut values = headers.get_all(&CONNECTION).iter();
        match (values.next().cloned(), values.next()) {
            (Some(only), None) => listed_removed = remove_listed(headers, &only),
            _ => {
                let listed: Vec<HeaderValue> =
                    headers.get_all(&CONNECTION).iter().cloned().collect();
                for value in &listed {
                    listed_removed |= remove_listed(headers, value);
                }
            }
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present.hop_by_hop & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
    if present.proxy {
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in names {
            headers.remove(name);
        }
    }
    listed_removed
}

/// Removes the headers one `Connection` value names, but those of the fixed
/// set, which the caller removes when present. Says whether it removed any.
fn remove_listed(headers: &mut HeaderMap, value: &HeaderValue) -> bool {
    // What nearly every peer sends names only the fixed set.
    let bytes = value.as_bytes();
    if bytes.eq_ignore_ascii_case(b"keep-alive") || bytes.eq_ignore_ascii_case(b"close") {
        return false;
    }
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mut removed = false;
    for name in value.split(',') {
        let name = name.trim();
        if name.is_empty()
            || HOP_BY_HOP
                .iter()
                .any(|h| h.as_str().eq_ignore_ascii_case(name))
        {
            continue;
        }
        removed |= headers.remove(name).is_some();
    }
    removed
}

/// Prepares a request's headers for the upstream: hop-by-hop headers
/// removed, `Host` replaced by the upstream's, and the `X-Forwarded-*`
/// headers set.
///
/// From a `trusted` peer (a proxy in `service.trustedProxies`) its word is
/// kept: its `X-Forwarded-For` is appended to with its own address, its
/// `X-Forwarded-Proto` and `-Host` kept when set. From any other peer
/// nothing it claims is: `X-Forwarded-For` is the peer's address alone,
/// `X-Forwarded-Proto` serin's own scheme (`https` when the client came
/// over TLS), `X-Forwarded-Host` the host the
/// request named, and `Forwarded` and `X-Real-IP` (which serin does not
/// write) are removed, so an upstream never reads a client's claim as a
/// proxy's.
///
/// The host the request named is its target's authority when it has one
/// (HTTP/2's `:authority`, or an absolute-form target, which RFC 9112
/// §3.2.2 puts before `Host`), else its `Host`.
pub(crate) fn to_upstream(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    trusted: bool,
    tls: bool,
    authority: Option<&Authority>,
    upstream_host: &HeaderValue,
) {
    let mut present = Present::scan(headers);
    let trailers = present.te() && accepts_trailers(headers);
    if remove_present_hop_by_hop(headers, present) {
        // `Connection` named headers beyond its own: look again (rare).
        present = Present::scan(headers);
    }
    if trailers {
        // The proxy passes trailers on: a client that takes them (gRPC
        // always does) gets them from upstreams that send them only when
        // asked (hyper and most HTTP/1 servers).
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    // Replaced in place (one lookup), the request's own kept for
    // `X-Forwarded-Host`.
    let original_host = headers.insert(HOST, upstream_host.clone());
    let (mut has_proto, mut has_host) = (false, false);
    if trusted {
        append_forwarded_for(headers, client_ip, present.x_forwarded_for);
        has_proto = present.x_forwarded_proto;
        has_host = present.x_forwarded_host;
    } else {
        for (there, name) in [
            (present.forwarded, &FORWARDED),
            (present.x_real_ip, &X_REAL_IP),
            (present.x_forwarded_proto, &X_FORWARDED_PROTO),
            (present.x_forwarded_host, &X_FORWARDED_HOST),
        ] {
            if there {
                headers.remove(name);
            }
        }
        headers.insert(X_FORWARDED_FOR.clone(), client_ip.clone());
    }
    if !has_proto {
        let scheme = if tls { &HTTPS } else { &HTTP };
        headers.insert(X_FORWARDED_PROTO.clone(), scheme.clone());
    }
    if !has_host {
        let host = authority
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or(original_host);
        if let Some(host) = host {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
    }
}

/// Whether the client's `TE` accepts trailers.
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(TE).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',').any(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        })
    })
}

/// Whether a request names its host as its version requires (a proxy that
/// forwards a request without one lets the upstream guess, and two that
/// disagree let the proxy and the upstream each pick a different one):
///
/// - HTTP/1 (RFC 9112 §3.2): at most one `Host`, required from HTTP/1.1
///   on (HTTP/1.0 predates it), and a valid `host[:port]` when not empty
///   (an empty one is what a client sends for a target without a host);
/// - HTTP/2 (RFC 9113 §8.3.1): the host is in `:authority`; a `Host`
///   beside it must be single and name the same host.
pub(crate) fn host_is_valid(version: Version, uri: &Uri, headers: &HeaderMap) -> bool {
    let mut hosts = headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return false;
    }
    let Some(host) = host else {
        // HTTP/2 may have no authority to convey at all (`OPTIONS *`).
        return version != Version::HTTP_11;
    };
    if !valid_host_value(host) {
        return false;
    }
    match (version, uri.authority()) {
        (Version::HTTP_2, Some(authority)) => host
            .as_bytes()
            .eq_ignore_ascii_case(authority.as_str().as_bytes()),
        _ => true,
    }
}

/// `uri-host [":" port]`, or empty.
fn valid_host_value(value: &HeaderValue) -> bool {
    valid_host_bytes(value.as_bytes())
}

/// [`valid_host_value`] of a value still in the bytes it was read in.
pub(crate) fn valid_host_bytes(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    if let Some(valid) = plain_host(bytes) {
        return valid;
    }
    valid_authority(bytes)
}

/// The common `Host` (a name or an IPv4 address, letters, digits, dots and
/// dashes, with an optional numeric port) decided without copying it into
/// an [`Authority`]: every value this accepts `valid_authority` accepts
/// too (a unit test holds the two together). `None`: not of that plain
/// shape, for the full check to decide.
fn plain_host(bytes: &[u8]) -> Option<bool> {
    // The longest authority `http` parses.
    const MOST: usize = u16::MAX as usize - 1;
    if bytes.len() > MOST {
        return None;
    }
    let (host, port) = match bytes.iter().position(|b| *b == b':') {
        Some(colon) => (bytes.get(..colon)?, Some(bytes.get(colon + 1..)?)),
        None => (bytes, None),
    };
    let plain = |b: &u8| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-';
    if host.is_empty() || !host.iter().all(plain) {
        return None;
    }
    match port {
        None => Some(true),
        Some([]) => Some(true),
        Some(port) if port.iter().all(u8::is_ascii_digit) => {
            // Digits only: a port when it fits 16 bits, else refused.
            Some(std::str::from_utf8(port).ok()?.parse::<u16>().is_ok())
        }
        Some(_) => None,
    }
}

/// `uri-host [":" port]` as `http` parses an authority, not empty.
fn valid_authority(bytes: &[u8]) -> bool {
    // An authority may carry `user@`; a Host may not.
    if bytes.contains(&b'@') {
        return false;
    }
    let Ok(authority) = Authority::try_from(bytes) else {
        return false;
    };
    let port = authority
        .as_str()
        .get(authority.host().len()..)
        .unwrap_or_default();
    port.is_empty() || port == ":" || authority.port_u16().is_some()
}

fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue, present: bool) {
    if !present {
        headers.insert(X_FORWARDED_FOR.clone(), client_ip.clone());
        return;
    }
    // Several X-Forwarded-For headers form one list; join them and append.
    let mut joined = Vec::with_capacity(64);
    for value in headers.get_all(&X_FORWARDED_FOR) {
        joined.extend_from_slice(value.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(client_ip.as_bytes());
    match HeaderValue::from_bytes(&joined) {
        Ok(value) => {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
        // Existing values were valid header bytes and so is the address;
        // should the join still be refused, the client address alone is the
        // one value the proxy vouches for.
        Err(_) => {
            headers.insert(X_FORWARDED_FOR.clone(), client_ip.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-anything", "1"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("x-kept", "1"),
            ("trailer", "grpc-status"),
        ]);
        remove_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["trailer", "x-kept"]);
    }

    #[test]
    fn every_connection_line_names_headers_to_remove() {
        let mut h = map(&[
            ("connection", "Keep-Alive"),
            ("connection", "x-one,, X-Two "),
            ("x-one", "1"),
            ("x-two", "2"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-kept", "1"),
        ]);
        remove_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);

        // Names of the fixed set are removed only once, and one absent
        // from the map is no error.
        let mut h = map(&[("connection", "close, upgrade, x-gone"), ("x-kept", "1")]);
        remove_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn forwarded_headers_are_added() {
        let ip = HeaderValue::from_static("10.0.0.9");
        let upstream = HeaderValue::from_static("127.0.0.1:9001");
        let mut h = map(&[
            ("host", "shop.example"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
        ]);
        to_upstream(&mut h, &ip, true, false, None, &upstream);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert_eq!(h["host"], "127.0.0.1:9001");
        let mut h = HeaderMap::new();
        to_upstream(&mut h, &ip, true, false, None, &upstream);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
    }

    #[test]
    fn headers_a_connection_line_names_are_gone_before_forwarded_ones_are_set() {
        let ip = HeaderValue::from_static("10.0.0.9");
        let upstream = HeaderValue::from_static("127.0.0.1:9001");
        // Even a trusted peer's claims go when it marks them hop-by-hop:
        // serin then writes its own.
        let mut h = map(&[
            ("host", "shop.example"),
            (
                "connection",
                "X-Forwarded-Proto, x-forwarded-host, X-Forwarded-For",
            ),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "admin.internal"),
            ("x-forwarded-for", "1.1.1.1"),
        ]);
        to_upstream(&mut h, &ip, true, false, None, &upstream);
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert!(h.get("connection").is_none());
        // `Host` is replaced where it stood, and a client's `TE: trailers`
        // is passed on as the one `TE` value.
        let mut h = map(&[
            ("host", "shop.example"),
            ("te", "gzip, trailers;q=1"),
            ("accept", "*/*"),
        ]);
        to_upstream(&mut h, &ip, false, true, None, &upstream);
        assert_eq!(h.keys().next().map(HeaderName::as_str), Some("host"));
        assert_eq!(h["host"], "127.0.0.1:9001");
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn the_plain_host_shortcut_agrees_with_the_full_check() {
        let hosts = [
            "shop.example",
            "shop.example:8080",
            "shop.example:",
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:65535",
            "127.0.0.1:65536",
            "127.0.0.1:99999999999999999999",
            "a-b.c-d",
            "-",
            ".",
            "a..b",
            "A.B",
            "x:0080",
            ":80",
            "a:b",
            "a:1:2",
            "a b",
            "[::1]:80",
            "[::1]",
            "user@host",
            "h%41st",
            "h_st",
            "host:80a",
        ];
        let mut decided = 0;
        for host in hosts {
            let full = valid_authority(host.as_bytes());
            if let Some(quick) = plain_host(host.as_bytes()) {
                decided += 1;
                assert_eq!(quick, full, "{host}");
            }
        }
        // The shortcut decides the common shapes; the rest fall through.
        assert!(decided >= 12, "{decided}");
        assert!(plain_host(b"[::1]:80").is_none());
        assert!(plain_host(b"user@host").is_none());
        let long = "a".repeat(70_000);
        assert!(plain_host(long.as_bytes()).is_none());
    }

    #[test]
    fn an_untrusted_peer_claims_nothing() {
        let ip = HeaderValue::from_static("10.0.0.9");
        let upstream = HeaderValue::from_static("127.0.0.1:9001");
        let claims = [
            ("host", "shop.example"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "admin.internal"),
            ("forwarded", "for=1.1.1.1;proto=https"),
            ("x-real-ip", "1.1.1.1"),
        ];
        let mut h = map(&claims);
        to_upstream(&mut h, &ip, false, false, None, &upstream);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert!(h.get("forwarded").is_none());
        assert!(h.get("x-real-ip").is_none());
        // A trusted proxy's word is kept.
        let mut h = map(&claims);
        to_upstream(&mut h, &ip, true, false, None, &upstream);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "admin.internal");
        assert_eq!(h["x-real-ip"], "1.1.1.1");
        // The target's authority names the host before `Host` does.
        let authority = Authority::from_static("front.example");
        let mut h = map(&claims);
        to_upstream(&mut h, &ip, false, false, Some(&authority), &upstream);
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "front.example");
        // Over TLS, serin's scheme is https, whatever the client claims.
        let mut h = map(&[("x-forwarded-proto", "http")]);
        to_upstream(&mut h, &ip, false, true, None, &upstream);
        assert_eq!(h["x-forwarded-proto"], "https");
        // Of TE, only the client's consent to trailers goes on.
        let mut h = map(&[("te", "gzip, Trailers;q=1"), ("connection", "te")]);
        to_upstream(&mut h, &ip, false, false, None, &upstream);
        assert_eq!(h["te"], "trailers");
        let mut h = map(&[("te", "gzip")]);
        to_upstream(&mut h, &ip, false, false, None, &upstream);
        assert!(h.get("te").is_none());
    }

    #[test]
    fn hosts_are_checked_as_each_version_wants() {
        let origin: Uri = "/".parse().unwrap_or_else(|e| panic!("{e}"));
        let h2: Uri = "http://shop.example/"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let valid = |v, uri: &Uri, hosts: &[&str]| {
            let pairs: Vec<_> = hosts.iter().map(|h| ("host", *h)).collect();
            host_is_valid(v, uri, &map(&pairs))
        };
        use Version as V;
        assert!(valid(V::HTTP_11, &origin, &["shop.example"]));
        assert!(valid(V::HTTP_11, &origin, &["shop.example:8080"]));
        assert!(valid(V::HTTP_11, &origin, &["[::1]:8080"]));
        assert!(valid(V::HTTP_11, &origin, &["127.0.0.1"]));
        assert!(valid(V::HTTP_11, &origin, &[""]));
        assert!(!valid(V::HTTP_11, &origin, &[]));
        assert!(!valid(V::HTTP_11, &origin, &["a", "a"]));
        assert!(!valid(V::HTTP_11, &origin, &["a b"]));
        assert!(!valid(V::HTTP_11, &origin, &["user@a"]));
        assert!(!valid(V::HTTP_11, &origin, &["a:port"]));
        assert!(!valid(V::HTTP_11, &origin, &["a/b"]));
        assert!(valid(V::HTTP_10, &origin, &[]));
        assert!(!valid(V::HTTP_10, &origin, &["a", "b"]));
        assert!(valid(V::HTTP_2, &h2, &[]));
        assert!(valid(V::HTTP_2, &origin, &[]));
        assert!(valid(V::HTTP_2, &h2, &["SHOP.example"]));
        assert!(!valid(V::HTTP_2, &h2, &["other.example"]));
        assert!(!valid(V::HTTP_2, &h2, &["shop.example", "shop.example"]));
    }
}
