//! Header rewriting between client and upstream: hop-by-hop headers stay on
//! their hop (RFC 9110 §7.6.1), and the upstream learns who the client was.

use http::{
    HeaderMap, HeaderName, HeaderValue,
    header::{
        CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
        UPGRADE,
    },
};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one connection, never the message.
const HOP_BY_HOP: [&HeaderName; 8] = [
    &CONNECTION,
    &KEEP_ALIVE,
    &PROXY_AUTHENTICATE,
    &PROXY_AUTHORIZATION,
    &TE,
    &TRAILER,
    &TRANSFER_ENCODING,
    &UPGRADE,
];

/// Removes hop-by-hop headers: the fixed set, every `Proxy-*` header, and
/// whatever `Connection` names. One pass over the names when there are none
/// (the common case); allocates only when `Connection` or `Proxy-*` is there.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut found = false;
    let mut proxy = false;
    for name in headers.keys() {
        if HOP_BY_HOP.contains(&name) {
            found = true;
        } else if name.as_str().starts_with("proxy-") {
            proxy = true;
        }
    }
    if !found && !proxy {
        return;
    }
    if headers.contains_key(&CONNECTION) {
        let listed: Vec<HeaderValue> = headers.get_all(&CONNECTION).iter().cloned().collect();
        for value in &listed {
            let Ok(value) = value.to_str() else { continue };
            for name in value.split(',') {
                let name = name.trim();
                if !name.is_empty() {
                    headers.remove(name);
                }
            }
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if proxy {
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in names {
            headers.remove(name);
        }
    }
}

/// Prepares a request's headers for the upstream: hop-by-hop removed,
/// `X-Forwarded-For` appended with the client address, `X-Forwarded-Proto`
/// and `X-Forwarded-Host` set unless a proxy in front already set them, and
/// `Host` replaced by the upstream's.
pub(crate) fn to_upstream(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    authority: Option<&http::uri::Authority>,
    upstream_host: &HeaderValue,
) {
    remove_hop_by_hop(headers);
    append_forwarded_for(headers, client_ip);
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    let original_host = headers.remove(HOST);
    if !headers.contains_key(&X_FORWARDED_HOST) {
        // HTTP/1 clients send Host; HTTP/2 clients send :authority instead.
        let host = original_host
            .or_else(|| authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        if let Some(host) = host {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
    }
    headers.insert(HOST, upstream_host.clone());
}

fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    if !headers.contains_key(&X_FORWARDED_FOR) {
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
        ]);
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
        to_upstream(&mut h, &ip, None, &upstream);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert_eq!(h["host"], "127.0.0.1:9001");
        let mut h = HeaderMap::new();
        to_upstream(&mut h, &ip, None, &upstream);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
    }
}
