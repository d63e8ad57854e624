//! Sending a request to an upstream over the shared keep-alive pool, and
//! naming what went wrong when it fails (the status the user sees).

use crate::{
    Limits,
    body::{BodyTooLarge, RequestBody},
    routes::Upstream,
};
use http::{
    Request, Response, StatusCode, Uri,
    uri::{PathAndQuery, Scheme},
};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use std::{error::Error as _, io, time::Duration};

pub(crate) type HttpClient = Client<HttpConnector, RequestBody>;

/// One pool for both upstreams: connections are keyed by authority, so
/// stable and canary each keep their own idle connections.
pub(crate) fn client(limits: &Limits) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(limits.connect_timeout));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(limits.upstream_idle_timeout)
        .pool_max_idle_per_host(limits.upstream_max_idle)
        .pool_timer(TokioTimer::new())
        .http1_read_buf_exact_size(4096)
        .timer(TokioTimer::new())
        // The proxy sets Host itself (the upstream's authority).
        .set_host(false)
        .build(connector)
}

/// The upstream URI for a request: the upstream's base path joined with the
/// request's path and query. Without a base path nothing is copied.
pub(crate) fn upstream_uri(upstream: &Upstream, original: &Uri) -> Result<Uri, http::Error> {
    let path_and_query = match (&upstream.base_path, original.path_and_query()) {
        (None, Some(pq)) => pq.clone(),
        (None, None) => PathAndQuery::from_static("/"),
        (Some(base), pq) => {
            let path = pq.map_or("/", |pq| pq.path());
            let mut joined = String::with_capacity(base.len() + path.len() + 32);
            joined.push_str(base);
            if !path.starts_with('/') {
                joined.push('/');
            }
            // `*` (OPTIONS *) becomes the base path itself.
            if path != "*" {
                joined.push_str(path);
            }
            if let Some(q) = pq.and_then(|pq| pq.query()) {
                joined.push('?');
                joined.push_str(q);
            }
            PathAndQuery::try_from(joined)?
        }
    };
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
}

/// Why forwarding failed, and so what the client is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The upstream refused or could not be reached: 502.
    Connect,
    /// Connecting or waiting for response headers took too long: 504.
    Timeout,
    /// The client's body crossed `max_request_body_bytes`: 413.
    BodyTooLarge,
    /// Anything else (reset, malformed response): 502.
    Other,
}

// === impl Failure ===

impl Failure {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Failure::Connect | Failure::Other => StatusCode::BAD_GATEWAY,
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// Whether the failure is the upstream's (recorded as that version's
    /// error) rather than the client's.
    pub(crate) fn is_upstream(self) -> bool {
        !matches!(self, Failure::BodyTooLarge)
    }

    fn classify(error: &hyper_util::client::legacy::Error) -> Failure {
        let mut source = error.source();
        while let Some(e) = source {
            if e.is::<BodyTooLarge>() {
                return Failure::BodyTooLarge;
            }
            if let Some(io) = e.downcast_ref::<io::Error>()
                && io.kind() == io::ErrorKind::TimedOut
            {
                return Failure::Timeout;
            }
            source = e.source();
        }
        if error.is_connect() {
            Failure::Connect
        } else {
            Failure::Other
        }
    }
}

/// Sends `req` and waits at most `header_timeout` for the response headers.
pub(crate) async fn send(
    client: &HttpClient,
    req: Request<RequestBody>,
    header_timeout: Duration,
) -> Result<Response<Incoming>, Failure> {
    match tokio::time::timeout(header_timeout, client.request(req)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => {
            let failure = Failure::classify(&e);
            tracing::debug!(error = %e, source = ?e.source(), ?failure, "upstream request failed");
            Err(failure)
        }
        Err(_elapsed) => Err(Failure::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Version;
    use http::HeaderValue;

    fn upstream(base: Option<&str>) -> Upstream {
        Upstream {
            version: Version::Stable,
            authority: http::uri::Authority::from_static("127.0.0.1:9001"),
            base_path: base.map(str::to_owned),
            host: HeaderValue::from_static("127.0.0.1:9001"),
        }
    }

    fn join(base: Option<&str>, uri: &str) -> String {
        let uri: Uri = uri.parse().unwrap_or_else(|e| panic!("{e}"));
        upstream_uri(&upstream(base), &uri)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string()
    }

    #[test]
    fn paths_join_onto_the_base() {
        assert_eq!(join(None, "/a/b?x=1"), "http://127.0.0.1:9001/a/b?x=1");
        assert_eq!(
            join(Some("/app"), "/a?x=1&y"),
            "http://127.0.0.1:9001/app/a?x=1&y"
        );
        assert_eq!(join(Some("/app"), "/"), "http://127.0.0.1:9001/app/");
        assert_eq!(
            join(Some("/app"), "http://front.example/z?q"),
            "http://127.0.0.1:9001/app/z?q"
        );
    }
}
