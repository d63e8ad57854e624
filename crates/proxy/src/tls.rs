//! TLS on the listener (`service.tls`): the user's PEM chain and key,
//! rustls on aws-lc-rs, TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1`.
//!
//! The certificate is re-read when its files change (polled) and on
//! SIGHUP, the way certbot and other ACME clients renew in place: the new
//! pair is checked whole (readable, PEM, chain and key matching) before it
//! replaces the old one, so a bad renewal is refused with a log line and
//! the old certificate keeps serving. Handshakes already done keep their
//! session; only new handshakes see the new certificate, so no connection
//! is dropped.

use arc_swap::ArcSwap;
use rustls::{
    ServerConfig,
    crypto::{CryptoProvider, aws_lc_rs},
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use std::{
    fmt, io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio_rustls::TlsAcceptor;

/// Largest certificate or key file read: a chain of a few certificates is
/// a few KiB; anything past this is not a PEM file meant for serin.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The files of the listener's certificate (`service.tls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM chain, leaf first (`service.tls.certFile`, e.g. certbot's
    /// `fullchain.pem`).
    pub cert_file: PathBuf,
    /// PEM private key of the leaf (`service.tls.keyFile`): PKCS#8, PKCS#1
    /// (RSA) or SEC1 (EC).
    pub key_file: PathBuf,
}

/// Which `service.tls` field a [`TlsError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsField {
    /// `service.tls.certFile`.
    CertFile,
    /// `service.tls.keyFile`.
    KeyFile,
}

/// Why a certificate and key cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (missing, not permitted).
    #[error("cannot read {path:?}: {source}")]
    Read {
        /// Which field named the file.
        field: TlsField,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A file larger than any certificate chain or key.
    #[error("{path:?} is larger than {MAX_FILE_BYTES} bytes; not a PEM certificate or key")]
    TooLarge {
        /// Which field named the file.
        field: TlsField,
        /// The file.
        path: PathBuf,
    },
    /// The certificate file holds no PEM certificate, or a broken one.
    #[error("{path:?} holds no usable PEM certificate: {reason}")]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key file holds no PEM private key, or one rustls cannot sign with.
    #[error("{path:?} holds no usable PEM private key: {reason}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key is not the one of the chain's first certificate.
    #[error("{key:?} is not the private key of the first certificate in {cert:?}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration (should not happen with the fixed
    /// versions and provider serin uses).
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

// === impl TlsField ===

impl TlsField {
    /// The field's name under `service.tls`.
    pub fn name(self) -> &'static str {
        match self {
            TlsField::CertFile => "certFile",
            TlsField::KeyFile => "keyFile",
        }
    }
}

impl fmt::Display for TlsField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// === impl TlsError ===

impl TlsError {
    /// The `service.tls` field the problem is about.
    pub fn field(&self) -> TlsField {
        match self {
            TlsError::Read { field, .. } | TlsError::TooLarge { field, .. } => *field,
            TlsError::BadCertificate { .. } | TlsError::Setup(_) => TlsField::CertFile,
            TlsError::BadKey { .. } | TlsError::Mismatch { .. } => TlsField::KeyFile,
        }
    }
}

// === impl TlsFiles ===

impl TlsFiles {
    /// Checks that the files make a certificate the listener can serve:
    /// readable, a PEM chain and a PEM key, the key the leaf's. What `serin
    /// validate` runs, and what every reload runs before it swaps.
    pub fn check(&self) -> Result<(), TlsError> {
        self.load().map(|_| ())
    }

    fn load(&self) -> Result<(CertifiedKey, Contents), TlsError> {
        let contents = Contents::read(self)?;
        let key = contents.certified_key(self)?;
        Ok((key, contents))
    }
}

/// The bytes of both files, as last read: what the poll compares.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
}

// === impl Contents ===

impl Contents {
    fn read(files: &TlsFiles) -> Result<Contents, TlsError> {
        Ok(Contents {
            cert: read_bounded(&files.cert_file, TlsField::CertFile)?,
            key: read_bounded(&files.key_file, TlsField::KeyFile)?,
        })
    }

    fn certified_key(&self, files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
        let bad_cert = |reason: String| TlsError::BadCertificate {
            path: files.cert_file.clone(),
            reason,
        };
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_cert(e.to_string()))?;
        if chain.is_empty() {
            return Err(bad_cert("no BEGIN CERTIFICATE block".into()));
        }
        let bad_key = |reason: String| TlsError::BadKey {
            path: files.key_file.clone(),
            reason,
        };
        let der = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| bad_key(e.to_string()))?;
        let key = provider()
            .key_provider
            .load_private_key(der)
            .map_err(|e| bad_key(e.to_string()))?;
        let certified = CertifiedKey::new(chain, key);
        match certified.keys_match() {
            Ok(()) => Ok(certified),
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                // The key type cannot tell its public half: rustls checks
                // the pair at the first handshake instead.
                Ok(certified)
            }
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                Err(TlsError::Mismatch {
                    cert: files.cert_file.clone(),
                    key: files.key_file.clone(),
                })
            }
            Err(other) => Err(bad_cert(other.to_string())),
        }
    }
}

fn read_bounded(path: &Path, field: TlsField) -> Result<Vec<u8>, TlsError> {
    use std::io::Read as _;
    let read = |source| TlsError::Read {
        field,
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(TlsError::TooLarge {
            field,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// aws-lc-rs, serin's one provider.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// The listener's TLS: the acceptor, and the certificate it serves, which
/// reloads replace.
#[derive(Clone)]
pub(crate) struct ServerTls {
    pub(crate) acceptor: TlsAcceptor,
    reloader: Arc<Reloader>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.reloader.files)
            .finish_non_exhaustive()
    }
}

/// The certificate in force, and what its files held when it was read.
#[derive(Debug)]
struct Reloader {
    files: TlsFiles,
    current: Arc<Current>,
    /// The files' contents last tried (served or refused), so an unchanged
    /// bad file is refused (and logged) once, not at every poll.
    last_tried: Mutex<Contents>,
    /// An unreadable file was warned about since the last good read.
    warned_unreadable: AtomicBool,
}

/// Hands every handshake the certificate in force.
#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// SIGHUP, as the certificate watcher receives it.
pub(crate) type Hangup = tokio::signal::unix::Signal;

/// Registers for SIGHUP (the daemon's own reload signal too: both follow
/// it). Must be called within a Tokio runtime.
pub(crate) fn hangup() -> Option<Hangup> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot follow SIGHUP; certificates reload on file changes only");
            None
        }
    }
}

/// What a reload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The files hold what is served already.
    Unchanged,
    /// The new certificate serves from the next handshake on.
    Replaced,
}

// === impl ServerTls ===

impl ServerTls {
    /// Loads the certificate and builds the acceptor.
    pub(crate) fn new(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        let (key, contents) = files.load()?;
        let current = Arc::new(Current(ArcSwap::from_pointee(key)));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            reloader: Arc::new(Reloader {
                files: files.clone(),
                current,
                last_tried: Mutex::new(contents),
                warned_unreadable: AtomicBool::new(false),
            }),
        })
    }

    /// Re-reads the files; a pair that differs from the last one tried and
    /// checks out replaces the certificate. With `force` (SIGHUP) the files
    /// are checked again even when unchanged.
    pub(crate) fn reload(&self, force: bool) -> Result<Reloaded, TlsError> {
        let r = &self.reloader;
        let contents = Contents::read(&r.files)?;
        {
            let mut last = r.last_tried.lock().unwrap_or_else(|p| p.into_inner());
            if *last == contents && !force {
                return Ok(Reloaded::Unchanged);
            }
            *last = contents.clone();
        }
        let key = contents.certified_key(&r.files)?;
        let unchanged = {
            let served = r.current.0.load();
            served.cert == key.cert
        };
        r.current.0.store(Arc::new(key));
        Ok(if unchanged {
            Reloaded::Unchanged
        } else {
            Reloaded::Replaced
        })
    }

    /// Follows the files until the proxy ends: polls them every `every`
    /// and reloads on `hangup` (SIGHUP, registered by the caller before
    /// serving so a signal sent once the proxy serves is never the
    /// default's, which ends the process), logging each replacement and
    /// each refusal (once per content).
    pub(crate) async fn watch(self, every: Duration, mut hangup: Option<Hangup>) {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let force = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            self.reload_logged(force);
        }
    }

    /// [`ServerTls::reload`], with what happened logged.
    pub(crate) fn reload_logged(&self, force: bool) -> Option<Reloaded> {
        let files = &self.reloader.files;
        let result = self.reload(force);
        let unreadable = matches!(result, Err(TlsError::Read { .. }));
        let warned_before = self
            .reloader
            .warned_unreadable
            .swap(unreadable, Ordering::Relaxed);
        match result {
            Ok(Reloaded::Replaced) => {
                tracing::info!(cert = ?files.cert_file, "TLS certificate reloaded");
                Some(Reloaded::Replaced)
            }
            Ok(Reloaded::Unchanged) => Some(Reloaded::Unchanged),
            Err(error) => {
                // A renewal caught halfway (the chain written, the key not
                // yet) is refused too; the next poll sees the whole pair.
                // Unreadable files (a renewal moving them) are retried at
                // every poll and warned about once, or when asked (SIGHUP).
                if force || !unreadable || !warned_before {
                    tracing::warn!(
                        field = %format_args!("service.tls.{}", error.field()),
                        %error,
                        "new TLS certificate refused; the previous one keeps serving"
                    );
                }
                None
            }
        }
    }
}
