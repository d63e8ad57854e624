//! https for metric providers: rustls with the `aws-lc-rs` provider; Mozilla's
//! roots built in, or the CA of `spec.provider.caFile`; `insecureSkipVerify`
//! (Flagger's field) turns certificate checks off, for test setups only.

use crate::metric_http::SetupError;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, aws_lc_rs},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use std::sync::Arc;

/// A connector speaking http and https.
pub type Connector = HttpsConnector<HttpConnector>;

/// Wraps `http` (which must allow non-http schemes) with TLS as the
/// provider's fields ask.
pub fn connector(
    http: HttpConnector,
    ca_file: Option<&str>,
    insecure_skip_verify: bool,
) -> Result<Connector, SetupError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let tls = |reason: String| SetupError::Tls { reason };
    if ca_file.is_none() && !insecure_skip_verify {
        return Ok(HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http));
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?;
    let config = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if let Some(path) = ca_file {
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls(format!("spec.provider.caFile: cannot read {path:?}: {e}")))?;
            for certificate in certificates {
                let certificate = certificate
                    .map_err(|e| tls(format!("spec.provider.caFile: {path:?} is not PEM: {e}")))?;
                roots.add(certificate).map_err(|e| {
                    tls(format!(
                        "spec.provider.caFile: {path:?}: unusable certificate: {e}"
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(tls(format!(
                    "spec.provider.caFile: {path:?} holds no certificate"
                )));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// `insecureSkipVerify`: any certificate is accepted, signatures are still
/// checked so the handshake is well-formed.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
