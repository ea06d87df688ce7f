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

/// Most tickets a client may ask for (RFC 9149 `ticket_request`).
const MAX_REQUESTED_TICKETS: usize = 8;

/// The session ticketer shared by every HTTPS listener, so that a client resumes on any of
/// them (an IPv4 and an IPv6 listener, say); `None` when `tls13_tickets` is 0.
///
/// Stateless because rustls's default session cache holds 256 sessions: an edge with more
/// clients than that would forget most of them and make them pay a full handshake again.
/// The ticket key is this process's own and rotates (rustls: every 6 hours), so tickets do not
/// survive a restart or move between nodes — a client then makes one full handshake.
pub fn ticketer(
    tls13_tickets: usize,
) -> pingora_error::Result<Option<Arc<dyn rustls::server::ProducesTickets>>> {
    if tls13_tickets == 0 {
        return Ok(None);
    }
    rustls::crypto::aws_lc_rs::Ticketer::new()
        .map(Some)
        .map_err(|e| {
            pingora_error::Error::explain(
                pingora_error::ErrorType::InternalError,
                format!("TLS session tickets: {e}"),
            )
        })
}

/// pingora TLS settings for an HTTPS listener: our resolver, ALPN h2 then http/1.1, and
/// `tls13_tickets` tickets from `ticketer` after each handshake.
///
/// One ticket, not rustls's and OpenSSL's two, by default: a client connecting again and again
/// needs one (it gets a new one with each resumption), and each ticket costs both sides an
/// encryption and a message (`docs/performance.md`, resumed handshakes).
pub fn tls_settings(
    resolver: Arc<CertResolver>,
    tls13_tickets: usize,
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
) -> pingora_error::Result<TlsSettings> {
    // Paths are ignored once a resolver is set (pingora-core 0.9.1 TlsSettings::build).
    let mut settings = TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(resolver);
    settings.enable_h2();
    settings.set_server_config_hook(Box::new(move |config| {
        config.send_tls13_tickets = tls13_tickets;
        // The provider's suite order decides (`crate::crypto`), not the client's: OpenSSL
        // clients list AES-256-GCM (not offered, for its SHA-384) then ChaCha20 first, and would
        // get ChaCha20, which costs both sides more per byte than AES-128-GCM where AES has
        // CPU instructions (resume-https p99 2.08 → 1.80 ms from the same client).
        config.ignore_client_order = true;
        if let Some(ticketer) = ticketer {
            config.ticketer = ticketer;
            config.max_tls13_tickets = MAX_REQUESTED_TICKETS;
        }
    }));
    Ok(settings)
}
