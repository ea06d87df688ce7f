//! The check run before the CA is told a challenge is ready: fetch the node's own answer the way
//! the CA will, so a broken answer costs a retry here instead of a failed authorization (and a
//! dead order) at the CA.
//!
//! [`SelfCheck`] is the seam: [`LocalSelfCheck`] asks this node's own listeners; the self-probe
//! gate (DNS, every address, redirects) plugs in through the same trait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::net::TcpStream;

use crate::config::{reachable, reverse_dns_name, CertName, ChallengeType};
use crate::state::FleetHandle;

/// Verifies that a challenge is answered correctly before the CA is asked to validate it.
#[async_trait]
pub trait SelfCheck: Send + Sync {
    /// `Ok` once `name` answers `key_authorization` for `token` over `challenge`; `Err` with a
    /// cause sentence when it still does not after the check's own time limit. `name` is a DNS
    /// name (`*.base` for a wildcard) or an IP address (RFC 8738), which is checked at the
    /// address itself, without DNS or CAA. The sentence
    /// names its catalogue cause as `ID (summary)` (the self-probe gate's `GateFailure`) or
    /// `(ID)` (the local check): that is how the order's `last_error` gets a cause and remedy
    /// ([`crate::catalogue::Cause::named_in`]).
    async fn ready(
        &self,
        name: &CertName,
        challenge: ChallengeType,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), String>;
}

/// Fetches the answer from this node's own HTTP and HTTPS listeners.
pub struct LocalSelfCheck {
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    limit: Duration,
    fleet: Option<FleetHandle>,
    /// The DNS listener and its zones, for DNS-01.
    dns: Option<super::dns01::LocalDns>,
}

/// Longest wait for the other members of a fleet to answer before the CA is told anyway.
const FLEET_WAIT: Duration = Duration::from_secs(10);

impl LocalSelfCheck {
    /// Uses the first listener of each kind; wildcard binds are reached over loopback.
    pub fn new(http: &[SocketAddr], https: &[SocketAddr], limit: Duration) -> Self {
        Self {
            http: http.first().map(reachable),
            https: https.first().map(reachable),
            limit,
            fleet: None,
            dns: None,
        }
    }

    /// DNS-01 is checked at the node's own DNS listener (`[dns]`), and in a fleet at every
    /// member's.
    pub fn with_dns(mut self, dns: Option<&crate::config::DnsConfig>) -> Self {
        self.dns = dns.map(super::dns01::LocalDns::new);
        self
    }

    /// In a fleet, also waits (a bounded time) until every other live member answers on its
    /// public address: the CA may reach any of them, and the change travels through etcd.
    pub fn with_fleet(mut self, fleet: Option<FleetHandle>) -> Self {
        self.fleet = fleet;
        self
    }

    /// Waits until each other member answers on one of its public addresses, up to
    /// [`FLEET_WAIT`]. Never fails the check: a member that cannot be reached from here may
    /// well be reachable by the CA; it is named in the log (H6) instead.
    ///
    /// Runs for TLS-ALPN-01 and with `acme.self_check = "local"`; with the self-probe's gate,
    /// HTTP-01 members are asked by the gate itself (`probe::fleet`).
    ///
    /// An IP identifier has no barrier: the CA connects to that address (RFC 8738 §5, §6), so
    /// whichever node holds it answers, and the others' answers do not matter.
    pub async fn fleet_barrier(
        &self,
        name: &CertName,
        challenge: ChallengeType,
        token: &str,
        key_authorization: &str,
    ) {
        let Some(fleet) = &self.fleet else { return };
        let CertName::Dns(dns_name) = name else {
            return;
        };
        let deadline = Instant::now() + FLEET_WAIT.min(self.limit);
        if challenge == ChallengeType::Dns01 {
            if let Some(dns) = &self.dns {
                dns.barrier(fleet, dns_name, key_authorization, deadline)
                    .await;
            }
            return;
        }
        for member in fleet.members() {
            if member.node_id == fleet.node_id() {
                continue;
            }
            let port = match challenge {
                ChallengeType::Http01 => member.http_port,
                ChallengeType::TlsAlpn01 => member.https_port,
                ChallengeType::Dns01 => None,
            };
            let (Some(port), Some(ip)) = (port, member.public_addresses.first()) else {
                continue;
            };
            let addr = SocketAddr::new(*ip, port);
            loop {
                let attempt = tokio::time::timeout(
                    Duration::from_secs(2),
                    check_at(addr, name, challenge, token, key_authorization),
                )
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
                match attempt {
                    Ok(()) => break,
                    Err(e) if Instant::now() >= deadline => {
                        tracing::warn!(member = %member.node_id, %addr, error = %e, "fleet member does not answer the challenge yet; telling the CA anyway (H6)");
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    }

    async fn check_once(
        &self,
        name: &CertName,
        challenge: ChallengeType,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), String> {
        let addr = match challenge {
            ChallengeType::Http01 => self
                .http
                .ok_or("no HTTP listener is configured (http.listen)")?,
            ChallengeType::TlsAlpn01 => self
                .https
                .ok_or("no HTTPS listener is configured (https.listen)")?,
            ChallengeType::Dns01 => {
                let dns = self
                    .dns
                    .as_ref()
                    .ok_or("no DNS listener is configured ([dns])")?;
                let CertName::Dns(name) = name else {
                    return Err(format!(
                        "{name} is an IP address: not validated over DNS-01"
                    ));
                };
                return dns.check_own(name, key_authorization).await;
            }
        };
        check_at(addr, name, challenge, token, key_authorization).await
    }
}

/// One check of the answer at `addr`, the way the CA does it: for an IP identifier, with the
/// address as the `Host` (RFC 8738 §5) or its reverse-DNS name as the SNI (RFC 8738 §6).
pub(super) async fn check_at(
    addr: SocketAddr,
    name: &CertName,
    challenge: ChallengeType,
    token: &str,
    key_authorization: &str,
) -> Result<(), String> {
    match challenge {
        ChallengeType::Http01 => {
            let host = match name {
                CertName::Ip(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
                other => other.text(),
            };
            let (status, body) = fetch(addr, &host, token).await?;
            if status != 200 {
                return Err(format!(
                    "http://{name}/.well-known/acme-challenge/{token} answered {status} on {addr} (H2)"
                ));
            }
            // The CA trims trailing whitespace before comparing (RFC 8555 §8.3).
            if body.trim_ascii_end() != key_authorization.as_bytes() {
                return Err(format!(
                    "http://{name}/.well-known/acme-challenge/{token} answered other content on {addr} (H7)"
                ));
            }
            Ok(())
        }
        ChallengeType::TlsAlpn01 => {
            let sni = match name {
                CertName::Ip(ip) => reverse_dns_name(*ip),
                CertName::Dns(n) => n.to_string(),
            };
            alpn_handshake(addr, &sni, key_authorization).await
        }
        // Asked of the DNS listeners by `dns01::LocalDns`, never at an HTTP address.
        ChallengeType::Dns01 => Err(format!("DNS-01 is not checked at {addr}")),
    }
}

#[async_trait]
impl SelfCheck for LocalSelfCheck {
    async fn ready(
        &self,
        name: &CertName,
        challenge: ChallengeType,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), String> {
        let deadline = Instant::now() + self.limit;
        let mut delay = Duration::from_millis(100);
        loop {
            let attempt = tokio::time::timeout(
                Duration::from_secs(10),
                self.check_once(name, challenge, token, key_authorization),
            )
            .await
            .unwrap_or_else(|_| Err("the self-check timed out".into()));
            match attempt {
                Ok(()) => {
                    self.fleet_barrier(name, challenge, token, key_authorization)
                        .await;
                    return Ok(());
                }
                Err(e) if Instant::now() + delay >= deadline => return Err(e),
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// The gate of an IP identifier (RFC 8738): the CA connects to the address itself, so there is
/// no DNS to resolve and no CAA to read (CAA lives in DNS names, RFC 8659 §3; Let's Encrypt does
/// not check CAA for addresses). The answer is fetched at `ip:port` — the port the CA connects
/// to, the probe's `http_port` or `https_port` — the way the CA does, with backoff, until it
/// passes or `limit` runs out. The failure sentence names its catalogue cause (`(H1)`,
/// `(H2)`, `(H7)`), as the other checks' do.
pub async fn gate_address(
    ip: std::net::IpAddr,
    port: u16,
    challenge: ChallengeType,
    token: &str,
    key_authorization: &str,
    limit: Duration,
) -> Result<(), String> {
    let name = CertName::Ip(ip);
    let addr = SocketAddr::new(ip, port);
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let attempt = tokio::time::timeout(
            Duration::from_secs(10).min(limit),
            check_at(addr, &name, challenge, token, key_authorization),
        )
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer from {addr} within the check's time (H1)"
            ))
        });
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() + delay >= limit => {
                return Err(format!(
                    "self-check of {ip} failed {attempts} time(s) in {:.1}s: {e}",
                    start.elapsed().as_secs_f64()
                ))
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
        }
    }
}

/// `GET /.well-known/acme-challenge/<token>` with `Host: <name>`: status and body (the first
/// 64 KiB: a key authorization is a hundred bytes or so).
async fn fetch(addr: SocketAddr, name: &str, token: &str) -> Result<(u16, Vec<u8>), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e} (H1)"))?;
    let req = http::Request::get(format!("/.well-known/acme-challenge/{token}"))
        .header(http::header::HOST, name)
        .header(http::header::USER_AGENT, "dcv-proxy-selfcheck")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let answer = crate::http1::send(stream, req)
        .await
        .map_err(|e| format!("request to {addr}: {e}"))?;
    let status = answer.head.status.as_u16();
    let body = answer
        .body(64 << 10)
        .await
        .map_err(|e| format!("reading the answer from {addr}: {e}"))?;
    Ok((status, body.to_vec()))
}

/// A TLS handshake offering only `acme-tls/1`, as the CA does; the presented certificate must
/// carry the digest of `key_authorization` (RFC 8737 §3).
async fn alpn_handshake(
    addr: SocketAddr,
    name: &str,
    key_authorization: &str,
) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let server_name = rustls_pki_types::ServerName::try_from(name.to_owned())
        .map_err(|e| format!("{name}: {e}"))?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e} (H1)"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, stream)
        .await
        .map_err(|e| format!("TLS-ALPN-01 handshake with {addr} for {name}: {e}"))?;
    let (_, conn) = tls.get_ref();
    if conn.alpn_protocol() != Some(b"acme-tls/1") {
        return Err(format!("{addr} did not negotiate acme-tls/1 for {name}"));
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| format!("{addr} presented no certificate for {name}"))?;
    let expected = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    match super::tlsalpn::acme_identifier(leaf.as_ref()) {
        Some(found) if found == expected.as_ref() => Ok(()),
        Some(_) => Err(format!(
            "{addr} presented a TLS-ALPN-01 certificate for another key authorization (H7)"
        )),
        None => Err(format!(
            "{addr} presented a certificate without the acmeIdentifier extension for {name}"
        )),
    }
}

/// The challenge certificate is self-signed and carries a critical extension webpki does not
/// know, so neither the chain nor the handshake signature can go through webpki (it refuses to
/// parse the certificate). The check is of our own listener over loopback and looks at the
/// certificate's content instead.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls_pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls_pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
