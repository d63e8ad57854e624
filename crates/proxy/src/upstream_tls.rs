//! TLS to `https://` upstreams: rustls on aws-lc-rs, TLS 1.2 and 1.3,
//! HTTP/1.1 by ALPN, the upstream's certificate verified for its host
//! against Mozilla's roots (built in, as browsers ship them, so a host
//! without a CA bundle verifies alike) or, with `upstreams.caFile`, against
//! the CAs in that file alone (a private CA).

use crate::tls::provider;
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};
use std::{path::Path, sync::Arc};
use tokio_rustls::TlsConnector;

/// The connector every worker's pool dials `https://` upstreams with.
#[derive(Clone)]
pub(crate) struct UpstreamTls(pub(crate) TlsConnector);

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").finish_non_exhaustive()
    }
}

/// Builds the connector from `upstreams.caFile`, or Mozilla's roots.
pub(crate) fn connector(ca_file: Option<&Path>) -> Result<UpstreamTls, String> {
    let roots = match ca_file {
        Some(path) => roots_from(path)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The pool speaks HTTP/1.1 to upstreams.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(UpstreamTls(TlsConnector::from(Arc::new(config))))
}

/// Checks `upstreams.caFile`: readable PEM with at least one usable CA
/// certificate. What `serin validate` runs.
pub fn check_upstream_ca_file(path: &Path) -> Result<(), String> {
    roots_from(path).map(|_| ())
}

fn roots_from(path: &Path) -> Result<RootCertStore, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&bytes) {
        let certificate = certificate.map_err(|e| format!("{path:?} is not PEM: {e}"))?;
        roots
            .add(certificate)
            .map_err(|e| format!("{path:?}: unusable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{path:?} holds no PEM certificate"));
    }
    Ok(roots)
}
