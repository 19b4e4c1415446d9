//! Trust anchors for `turns:` (TURN over TLS): the Mozilla roots built in
//! (webpki-roots, no file or network access) plus any the application adds.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

/// Why the TLS setup for `turns:` failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for turns: servers: {0}")]
pub(crate) struct TlsSetupError(String);

/// A client configuration trusting the built-in roots and `extra` (DER certificates).
pub(crate) fn client_config(extra: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for der in extra {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| TlsSetupError(format!("bad root certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
