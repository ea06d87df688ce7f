//! TLS termination: the certificate for each handshake comes from the [`CertStore`] snapshot
//! (SNI exact, then wildcard, then the default), so a swap is seen by the next handshake and
//! never by one in flight.

use std::fmt;
use std::sync::Arc;

use pingora_core::listeners::tls::TlsSettings;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::state::CertStore;

/// rustls certificate resolver over the certificate store.
pub struct CertResolver {
    certs: Arc<CertStore>,
}

impl CertResolver {
    pub fn new(certs: Arc<CertStore>) -> Self {
        Self { certs }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands over the SNI already lowercased and without a trailing dot.
        Some(self.certs.resolve(hello.server_name()))
    }
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

/// pingora TLS settings for the HTTPS listeners: our resolver, ALPN h2 then http/1.1.
pub fn tls_settings(resolver: Arc<CertResolver>) -> pingora_error::Result<TlsSettings> {
    // Paths are ignored once a resolver is set (pingora-core 0.9.1 TlsSettings::build).
    let mut settings = TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(resolver);
    settings.enable_h2();
    Ok(settings)
}
