//! TLS on the server's port: https and wss, with a certificate chain and
//! its key from PEM files, read again on [`TlsReload::reload`] (`serve`
//! calls it on SIGHUP) or when either file changes. A reload that fails
//! keeps the certificate in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The certificate file holds no certificate, or the key file no key,
    /// or the key is of a kind TLS cannot use.
    #[error("{0}")]
    Invalid(String),
}

/// The certificate in use and where it comes from.
pub(crate) struct Certs {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times when last read.
    stamp: Mutex<Option<(SystemTime, SystemTime)>>,
    /// Their times when a reload last failed (said once per change).
    failed: Mutex<Option<(SystemTime, SystemTime)>>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads a certificate chain and its key.
fn read(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let bad = |path: &Path, e: &dyn std::fmt::Display| TlsError::Read { path: path.to_owned(), reason: e.to_string() };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, &e))?;
    if chain.is_empty() {
        return Err(TlsError::Invalid(format!("{} holds no certificate", cert.display())));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let signing = aws_lc_rs::sign::any_supported_type(&key_der)
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", key.display())))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Invalid(format!("the key does not match the certificate: {e}")))?;
    Ok(Arc::new(certified))
}

impl Certs {
    /// Reads the files; an error if they cannot be used.
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Arc<Certs>, TlsError> {
        let stamp = modified(cert).zip(modified(key));
        let current = read(cert, key)?;
        Ok(Arc::new(Certs {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(current),
            stamp: Mutex::new(stamp),
            failed: Mutex::new(None),
        }))
    }

    /// Reads the files again and uses them from the next handshake on.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let stamp = modified(&self.cert).zip(modified(&self.key));
        let fresh = read(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        *self.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = stamp;
        tracing::info!(cert = %self.cert.display(), "TLS certificate loaded");
        Ok(())
    }

    /// Reloads when either file changed since it was last read. A reload
    /// that fails (files caught half written, a key that does not match
    /// yet) is tried again at the next look, and reported once per change.
    pub(crate) fn reload_if_changed(&self) {
        let now = modified(&self.cert).zip(modified(&self.key));
        let last = *self.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.is_none() || now == last {
            return;
        }
        if let Err(e) = self.reload() {
            let mut failed = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *failed != now {
                tracing::error!(error = %e, "cannot reload the TLS certificate; keeping the one in use");
                *failed = now;
            }
        }
    }

    /// An acceptor that presents the current certificate (HTTP/1.1).
    pub(crate) fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }
}

/// Reloads a serving server's certificate.
#[derive(Clone, Debug)]
pub struct TlsReload(pub(crate) Arc<Certs>);

impl TlsReload {
    /// Reads the certificate and key files again; the next handshakes use
    /// them. On error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.0.reload()
    }
}
