//! TLS-ALPN-01 (RFC 8737) on the HTTPS listeners.
//!
//! A validation handshake offers only `acme-tls/1`. The listeners' rustls configuration offers
//! h2 and http/1.1, and rustls refuses a client that offers none of them before any certificate
//! is chosen (`no_application_protocol`), so such handshakes are taken out of pingora's path:
//! this pre-TLS hook reads the ClientHello, and when it offers only `acme-tls/1` for a name with
//! a pending challenge, completes the handshake itself with the challenge certificate and closes
//! the connection — no HTTP is ever served on it (RFC 8737 §4). Every other connection is
//! rewound untouched; when no challenge is pending, the hook returns before reading anything.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::listeners::PreTlsProcess;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_error::{Error, ErrorType, Result};
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::serve::tls::HandshakeAddresses;
use crate::state::{CertStore, ChallengeStore};

/// The ALPN protocol id of TLS-ALPN-01.
pub(super) const ACME_TLS_1: &[u8] = b"acme-tls/1";

/// How long a client may take to send its ClientHello while a challenge is pending.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The pre-TLS hook of the HTTPS listeners.
pub struct AlpnChallengeAcceptor {
    challenges: Arc<ChallengeStore>,
    config: Arc<ServerConfig>,
    /// While some certificate is for an IP address: where each SNI-less hello arrived
    /// ([`crate::serve::tls`]).
    certs: Option<(Arc<CertStore>, Arc<HandshakeAddresses>)>,
}

/// What the first TLS record of a connection is.
struct Hello {
    record: Vec<u8>,
    /// A TLS-ALPN-01 hello for a name (or an address's reverse-DNS name) with a pending
    /// challenge.
    is_challenge: bool,
    /// A ClientHello without SNI (rustls also reads an address sent as SNI as none).
    without_sni: bool,
}

impl AlpnChallengeAcceptor {
    /// Also notes the local address of SNI-less handshakes for the resolver while `certs` holds
    /// a certificate for an IP address.
    pub fn with_addresses(
        mut self,
        certs: Arc<CertStore>,
        addresses: Arc<HandshakeAddresses>,
    ) -> Self {
        self.certs = Some((certs, addresses));
        self
    }

    pub fn new(challenges: Arc<ChallengeStore>) -> Self {
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map(|b| {
                    b.with_no_client_auth()
                        .with_cert_resolver(Arc::new(ChallengeResolver(challenges.clone())))
                })
                .unwrap_or_else(|_| {
                    ServerConfig::builder()
                        .with_no_client_auth()
                        .with_cert_resolver(Arc::new(ChallengeResolver(challenges.clone())))
                });
        config.alpn_protocols = vec![ACME_TLS_1.to_vec()];
        Self {
            challenges,
            config: Arc::new(config),
            certs: None,
        }
    }

    /// Reads the first TLS record: its bytes, whether it is a TLS-ALPN-01 hello for a name with
    /// a pending challenge, and whether it is a hello without SNI.
    async fn read_hello(&self, stream: &mut L4Stream) -> std::io::Result<Hello> {
        let mut record = vec![0u8; 5];
        stream.read_exact(&mut record).await?;
        let mut hello = Hello {
            record,
            is_challenge: false,
            without_sni: false,
        };
        // A TLS handshake record: type 22, then version, then a length up to 2^14 (RFC 8446 §5.1).
        let len = usize::from(u16::from_be_bytes([hello.record[3], hello.record[4]]));
        if hello.record[0] != 22 || len == 0 || len > 16384 {
            return Ok(hello);
        }
        hello.record.resize(5 + len, 0);
        stream.read_exact(&mut hello.record[5..]).await?;
        let mut acceptor = Acceptor::default();
        let mut cursor = std::io::Cursor::new(&hello.record[..]);
        if acceptor.read_tls(&mut cursor).is_err() {
            return Ok(hello);
        }
        if let Ok(Some(accepted)) = acceptor.accept() {
            let client_hello = accepted.client_hello();
            hello.is_challenge = self.is_challenge(&client_hello);
            hello.without_sni = client_hello.server_name().is_none();
        }
        Ok(hello)
    }

    fn is_challenge(&self, hello: &ClientHello<'_>) -> bool {
        let only_acme = hello
            .alpn()
            .map(|mut protocols| protocols.all(|p| p == ACME_TLS_1))
            .unwrap_or(false);
        only_acme
            && hello
                .server_name()
                .is_some_and(|name| self.challenges.alpn_certificate(name).is_some())
    }
}

#[async_trait]
impl PreTlsProcess for AlpnChallengeAcceptor {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let addresses = self
            .certs
            .as_ref()
            .filter(|(certs, _)| certs.has_addresses())
            .map(|(_, addresses)| addresses);
        if !self.challenges.has_alpn_challenges() && addresses.is_none() {
            return Ok(());
        }
        let read = tokio::time::timeout(HELLO_TIMEOUT, self.read_hello(stream)).await;
        let hello = match read {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                return Error::e_explain(ErrorType::ReadError, format!("reading ClientHello: {e}"))
            }
            Err(_) => return Error::e_explain(ErrorType::ReadTimedout, "ClientHello"),
        };
        stream.rewind(&hello.record);
        if !hello.is_challenge {
            if let Some(addresses) = addresses.filter(|_| hello.without_sni) {
                if let Some(local) = stream.tcp_stream().and_then(|t| t.local_addr().ok()) {
                    addresses.record(local.ip());
                }
            }
            return Ok(());
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        match tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(&mut *stream)).await {
            Ok(Ok(mut tls)) => {
                tracing::debug!("TLS-ALPN-01 handshake answered");
                let _ = tls.shutdown().await;
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "TLS-ALPN-01 handshake failed"),
            Err(_) => tracing::debug!("TLS-ALPN-01 handshake timed out"),
        }
        // The connection ends here: a validation connection never carries HTTP.
        Error::e_explain(
            ErrorType::ConnectionClosed,
            "TLS-ALPN-01 validation answered",
        )
    }
}

/// Hands out the pending challenge certificate for the SNI name.
struct ChallengeResolver(Arc<ChallengeStore>);

impl ResolvesServerCert for ChallengeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.alpn_certificate(hello.server_name()?)
    }
}

impl fmt::Debug for ChallengeResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeResolver")
    }
}
