//! Test certificates made by the openssl CLI (a test CA and leaves it
//! signs for `localhost` and 127.0.0.1), and a rustls client that trusts
//! the test CA and tells which certificate a handshake got.

use crate::support::must;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};
use tokio_rustls::TlsConnector;

/// A test CA in a directory of its own.
pub struct Ca {
    pub dir: PathBuf,
    pub cert: PathBuf,
    key: PathBuf,
}

/// A leaf certificate and its key.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = must(Command::new("openssl").args(args).output());
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {path:?}"))
}

// === impl Ca ===

impl Ca {
    /// A new CA (EC P-256) in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let cert = dir.join(format!("{name}-ca.pem"));
        let key = dir.join(format!("{name}-ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=serin test CA {name}"),
            "-keyout",
            s(&key),
            "-out",
            s(&cert),
        ]);
        Ca {
            dir: dir.to_owned(),
            cert,
            key,
        }
    }

    /// A leaf for `localhost` and 127.0.0.1 named `cn`, signed by this CA:
    /// its chain file holds the leaf then the CA (as certbot's
    /// `fullchain.pem`). `rsa` makes an RSA key (PKCS#8), else EC.
    pub fn leaf(&self, cn: &str, rsa: bool) -> Leaf {
        let key = self.dir.join(format!("{cn}.key"));
        let csr = self.dir.join(format!("{cn}.csr"));
        let cert = self.dir.join(format!("{cn}.pem"));
        let ext = self.dir.join(format!("{cn}.ext"));
        must(std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        ));
        let newkey: &[&str] = if rsa {
            &["-newkey", "rsa:2048"]
        } else {
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        };
        let mut args = vec!["req", "-new", "-nodes"];
        args.extend_from_slice(newkey);
        let subj = format!("/CN={cn}");
        args.extend_from_slice(&["-subj", &subj, "-keyout", s(&key), "-out", s(&csr)]);
        openssl(&args);
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&self.cert),
            "-CAkey",
            s(&self.key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            s(&ext),
            "-out",
            s(&cert),
        ]);
        let mut chain = must(std::fs::read(&cert));
        chain.extend(must(std::fs::read(&self.cert)));
        must(std::fs::write(&cert, chain));
        Leaf { cert, key }
    }

    /// A rustls client trusting only this CA, offering `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        for cert in must(CertificateDer::pem_file_iter(&self.cert)) {
            must(roots.add(must(cert)));
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let config = config.as_mut().unwrap_or_else(|e| panic!("{e}"));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Every handshake a full one: a resumed session would not show
        // the certificate the server presents now.
        config.resumption = rustls::client::Resumption::disabled();
        TlsConnector::from(Arc::new(config.clone()))
    }
}

// === impl Leaf ===

impl Leaf {
    /// The DER of the leaf (the chain's first certificate).
    pub fn der(&self) -> Vec<u8> {
        let first = must(CertificateDer::pem_file_iter(&self.cert))
            .next()
            .unwrap_or_else(|| panic!("no certificate in {:?}", self.cert));
        must(first).to_vec()
    }

    /// Writes this pair over `into` (key first, as a renewal that replaces
    /// files one at a time).
    pub fn install(&self, into: &Leaf) {
        must(std::fs::write(&into.key, must(std::fs::read(&self.key))));
        must(std::fs::write(&into.cert, must(std::fs::read(&self.cert))));
    }
}

/// What one HTTPS request over a fresh connection got.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub body: String,
    /// The leaf the server presented.
    pub leaf: Vec<u8>,
}

/// One GET over a new TLS connection (HTTP/1.1) to `addr` as `localhost`.
pub async fn https_get(
    connector: &TlsConnector,
    addr: SocketAddr,
    path: &str,
) -> Result<Got, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Got {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        leaf,
    })
}
