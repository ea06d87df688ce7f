//! TLS termination: the certificate for each handshake comes from the [`CertStore`] snapshot
//! (SNI exact, then wildcard, then the default), so a swap is seen by the next handshake and
//! never by one in flight.
//!
//! A handshake without SNI gets the certificate of the local address it arrived at, when one is
//! for that address (RFC 8738 IP-address certificates: a client connecting to an address sends
//! no SNI, RFC 6066 §3 — and rustls ignores an address sent as SNI anyway). rustls's resolver
//! sees only the ClientHello, not the socket, so the pre-TLS hook, which sees the socket
//! ([`crate::serve::alpn::AlpnChallengeAcceptor`]), notes the local address of each SNI-less
//! hello in [`HandshakeAddresses`] under the connection's task, and the resolver, called while
//! that same task polls the handshake, takes it back.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora_core::listeners::tls::TlsSettings;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::state::CertStore;

/// rustls certificate resolver over the certificate store.
pub struct CertResolver {
    certs: Arc<CertStore>,
    addresses: Arc<HandshakeAddresses>,
}

impl CertResolver {
    pub fn new(certs: Arc<CertStore>, addresses: Arc<HandshakeAddresses>) -> Self {
        Self { certs, addresses }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands over the SNI already lowercased and without a trailing dot.
        match hello.server_name() {
            Some(name) => Some(self.certs.resolve(Some(name))),
            // The noted addresses (a mutex) only while a certificate is for an address: every
            // other SNI-less handshake reads the snapshot alone.
            None => match self
                .certs
                .has_addresses()
                .then(|| self.addresses.take())
                .flatten()
            {
                Some(local) => Some(self.certs.resolve_for_address(local)),
                None => Some(self.certs.resolve(None)),
            },
        }
    }
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

/// The local address of each handshake in progress that came without SNI, by the tokio task
/// running it (pingora runs each accepted connection's handshake in a task of its own, the
/// pre-TLS hook first, then the TLS accept whose poll calls the resolver).
///
/// Only filled while some certificate is for an IP address. An entry the resolver never takes
/// (the client left before its hello was answered, or resumed a session, which needs no
/// certificate) is dropped once older than the handshake's own limit.
#[derive(Default)]
pub struct HandshakeAddresses {
    pending: Mutex<HashMap<tokio::task::Id, (IpAddr, Instant)>>,
}

/// pingora gives a downstream handshake 60 seconds (`services::listening`).
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(60);
/// Stale entries are looked for when the map is this large.
const PRUNE_AT: usize = 1024;

impl HandshakeAddresses {
    /// Notes `local` for the handshake the current task runs; nothing outside a task.
    pub fn record(&self, local: IpAddr) {
        let Some(task) = tokio::task::try_id() else {
            return;
        };
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= PRUNE_AT {
            let now = Instant::now();
            pending.retain(|_, (_, at)| now.duration_since(*at) < HANDSHAKE_LIMIT);
        }
        pending.insert(task, (local.to_canonical(), Instant::now()));
    }

    /// Takes the address noted for the current task's handshake.
    pub fn take(&self) -> Option<IpAddr> {
        let task = tokio::task::try_id()?;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_empty() {
            return None;
        }
        pending.remove(&task).map(|(ip, _)| ip)
    }

    /// Handshakes noted and not taken yet.
    pub fn len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
pub(super) fn ticketer(
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
pub(super) fn tls_settings(
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn an_address_is_taken_back_by_the_task_that_noted_it_only() {
        let addresses = Arc::new(HandshakeAddresses::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = addresses.clone();
        let other = tokio::spawn(async move {
            a.record(ip);
            tokio::task::yield_now().await;
            a.take()
        });
        assert_eq!(other.await.unwrap(), Some(ip));
        let a = addresses.clone();
        tokio::spawn(async move { a.record(ip) }).await.unwrap();
        // Another task's entry is not this one's.
        let a = addresses.clone();
        assert_eq!(tokio::spawn(async move { a.take() }).await.unwrap(), None);
        assert_eq!(addresses.len(), 1);
        // IPv4-mapped IPv6 (a dual-stack listener) is the IPv4 address.
        let a = addresses.clone();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let got = tokio::spawn(async move {
            a.record(mapped);
            a.take()
        });
        assert_eq!(got.await.unwrap(), Some(ip));
    }
}
