//! The client webhooks and alerts are sent with: http, and https (with the
//! `tls` feature) verified against Mozilla's roots — or, for a webhook that
//! sets Flagger's `disableTLS`, without verification.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::time::Duration;

#[cfg(feature = "tls")]
type Connector = crate::tls::Connector;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// A pooled client for JSON POSTs to receivers.
pub type Outbound = Client<Connector, Full<Bytes>>;

/// How long a pooled connection to a receiver stays open unused.
const IDLE: Duration = Duration::from_secs(30);
/// How long connecting to a receiver may take.
const CONNECT: Duration = Duration::from_secs(10);

/// A client for receivers; `verify: false` accepts any certificate (only
/// for webhooks that ask for it with `disableTLS`).
pub fn client(verify: bool) -> Result<Outbound, String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT));
    #[cfg(feature = "tls")]
    let connector = {
        // The TLS layer dials https through this connector.
        http.enforce_http(false);
        crate::tls::connector(http, None, !verify).map_err(|error| error.to_string())?
    };
    #[cfg(not(feature = "tls"))]
    let connector = {
        let _ = verify;
        http
    };
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE)
        .build(connector))
}

/// Whether this build can call `https://` receivers.
pub const HTTPS: bool = cfg!(feature = "tls");

/// Checks that `uri` is something [`client`] can call, or says why not.
pub fn callable(uri: &http::Uri) -> Result<(), String> {
    match uri.scheme_str() {
        _ if uri.host().is_none() => Err("needs a host".into()),
        Some("http") => Ok(()),
        Some("https") if HTTPS => Ok(()),
        Some("https") => Err(
            "https needs serin built with the `tls` feature (the default); call the receiver over http"
                .into(),
        ),
        _ => Err("must be an absolute http:// or https:// URL".into()),
    }
}
