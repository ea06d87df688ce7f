//! TLS-ALPN-01 (RFC 8737) the way Let's Encrypt validates it: Boulder's `va/tlsalpn.go` (read at
//! commit 2d00c8e), rule for rule.
//!
//! - Addresses (`tryGetChallengeCert`): the first AAAA address; after *any* failure before a
//!   certificate is in hand (connect, handshake, no certificate) the first A address; nothing
//!   else. Failures found after the handshake (protocol, certificate) never fall back. Without
//!   an A address to fall back to: "Unable to contact … no IPv4 addresses to try as fallback".
//! - The handshake (`getChallengeCert`): TCP to the TLS port (`probe.https_port` plays 443,
//!   RFC 8737 §3), TLS 1.2 or newer, SNI the identifier, ALPN offering `acme-tls/1` only, the
//!   certificate not verified (it is self-signed).
//! - The checks (`validateTLSALPN01`, in its order): `acme-tls/1` negotiated; the certificate
//!   self-signed (its signature verifies with its own key and subject = issuer); no extension
//!   twice, subjectAltName and acmeIdentifier present (`checkAcceptableExtensions`); exactly
//!   one dNSName, no IP address, equal to the identifier, and the extension's bytes exactly
//!   `SEQUENCE { [2] identifier }` (`checkExpectedSAN`); acmeIdentifier (id-pe 31,
//!   1.3.6.1.5.5.7.1.31) critical, an OCTET STRING of 32 bytes equal to SHA-256 of the key
//!   authorization (RFC 8737 §3).
//!
//! The probe never calls the serving code (`serve::alpn`, `state::alpn`): it connects to the
//! addresses DNS gives, like the CA. The gate calls [`Prober::probe_tls_alpn`] with the key
//! authorization it published; the full probe (`probe.validation_method = "tls-alpn-01"`)
//! publishes none, so there it judges a challenge certificate only when one is pending and
//! otherwise says that nothing is.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::join_all;
use hickory_resolver::proto::rr::RecordType;
use rustls::ClientConfig;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::causes::Cause;
use super::http::{self, AnyCertificate, Attempt};
use super::report::{Check, CheckKind, Report, Status};
use super::{caa, dns, dnssec, Prober};
use crate::config::DnsName;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737 §6.2; Boulder `ACMETLS1Protocol`).
pub(crate) const ACME_TLS_1: &[u8] = b"acme-tls/1";
/// id-pe-acmeIdentifier (RFC 8737 §6.1; Boulder `IdPeAcmeIdentifier`).
const ID_PE_ACME_IDENTIFIER: &str = "1.3.6.1.5.5.7.1.31";
/// id-ce-subjectAltName (RFC 5280 §4.2.1.6; Boulder `IdCeSubjectAltName`).
const ID_CE_SUBJECT_ALT_NAME: &str = "2.5.29.17";
/// The challenge type as Boulder names it in its messages.
const CHALLENGE: &str = "tls-alpn-01";
/// Boulder's words when `detailedError` (va/va.go) recognises nothing more specific.
const GENERIC: &str = "Error getting validation data";

/// How the handshake with one address ended.
#[derive(Debug)]
pub(crate) enum Handshake {
    /// TCP did not connect (Boulder's words).
    NoConnection(String),
    /// TCP connected, the TLS handshake failed (Boulder's words); whether the server said
    /// `no_application_protocol` (RFC 7301 §3.2), dcv-proxy's answer when no challenge is
    /// pending for the name.
    Refused {
        reason: String,
        no_application_protocol: bool,
    },
    /// The handshake completed.
    Done {
        alpn: Option<Vec<u8>>,
        certificate: Option<Vec<u8>>,
    },
}

/// Makes TLS-ALPN-01 handshakes the way the CA does (`getChallengeCert`).
pub(crate) struct AlpnClient {
    timeout: std::time::Duration,
    port: u16,
    tls: TlsConnector,
}

impl AlpnClient {
    pub(crate) fn new(timeout: std::time::Duration, port: u16) -> Result<Self, rustls::Error> {
        let provider = http::ring_provider();
        // `MinVersion: tls.VersionTLS12`, `NextProtos: acme-tls/1`, `InsecureSkipVerify`.
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        config.alpn_protocols = vec![ACME_TLS_1.to_vec()];
        Ok(Self {
            timeout,
            port,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// One handshake with `ip` for `name` (SNI).
    pub(crate) async fn handshake(&self, ip: IpAddr, name: &DnsName) -> Handshake {
        let addr = SocketAddr::new(ip, self.port);
        let tcp = match http::connect(self.timeout, addr).await {
            Ok(tcp) => tcp,
            Err(reason) => return Handshake::NoConnection(reason),
        };
        let server_name = match http::tls_server_name(name.as_str()) {
            Ok(n) => n,
            Err(reason) => {
                return Handshake::Refused {
                    reason,
                    no_application_protocol: false,
                }
            }
        };
        let (stream, first) = http::Recorder::new(tcp);
        match tokio::time::timeout(self.timeout, self.tls.connect(server_name, stream)).await {
            Err(_) => Handshake::Refused {
                reason: "Timeout after connect (your server may be slow or overloaded)".into(),
                no_application_protocol: false,
            },
            Ok(Err(e)) => {
                let first = first.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Handshake::Refused {
                    reason: http::tls_words(&e, &first),
                    no_application_protocol: http::is_no_application_protocol(&e),
                }
            }
            Ok(Ok(tls)) => {
                let connection = tls.get_ref().1;
                Handshake::Done {
                    alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
                    certificate: connection
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.to_vec()),
                }
            }
        }
    }
}

/// A failure after the handshake: its cause and Boulder's words.
type Refusal = (Cause, String);

/// Boulder's `badCertErr`: "Incorrect validation certificate for tls-alpn-01 challenge.
/// Requested <name> from <ip:port>. <what>".
fn bad_certificate(name: &str, hostport: &str, what: &str) -> String {
    format!(
        "Incorrect validation certificate for {CHALLENGE} challenge. Requested {name} from {hostport}. {what}"
    )
}

/// The checks of `validateTLSALPN01` after a completed handshake, in its order and its words.
/// `key_authorization` `None` (the full probe, which has none) checks all but the digest.
/// `Ok` says what passed.
pub(crate) fn judge_challenge(
    name: &str,
    hostport: &str,
    alpn: Option<&[u8]>,
    der: &[u8],
    key_authorization: Option<&str>,
) -> Result<String, Refusal> {
    if alpn != Some(ACME_TLS_1) {
        // Something answers TLS on the port but not acme-tls/1: the challenge is not there.
        return Err((
            Cause::H2,
            format!(
                "Cannot negotiate ALPN protocol \"acme-tls/1\" for {CHALLENGE} challenge (negotiated {})",
                alpn.map_or("none".to_owned(), http::go_quote)
            ),
        ));
    }
    let bad = |cause: Cause, what: String| Err((cause, bad_certificate(name, hostport, &what)));
    let cert = match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert,
        // Go's handshake itself fails on a certificate that does not parse ([`judge_address`]
        // takes that as a handshake failure).
        Err(e) => return bad(Cause::H7, format!("The certificate does not parse: {e}.")),
    };
    // "The certificate must be self-signed."
    let self_signed =
        cert.verify_signature(None).is_ok() && cert.subject().as_raw() == cert.issuer().as_raw();
    if !self_signed {
        // An ordinary certificate where the challenge certificate was due: the challenge is
        // not answered there.
        return bad(
            Cause::H2,
            "Received certificate which is not self-signed.".into(),
        );
    }
    // `checkAcceptableExtensions`: no extension twice, both required ones present.
    let mut seen = std::collections::BTreeSet::new();
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if !seen.insert(oid.clone()) {
            return bad(
                Cause::H7,
                format!(
                    "Received certificate with unexpected extensions: {}",
                    http::go_quote(format!("Extension OID {oid} seen twice").as_bytes())
                ),
            );
        }
    }
    for (required, cause) in [
        (ID_PE_ACME_IDENTIFIER, Cause::H2),
        (ID_CE_SUBJECT_ALT_NAME, Cause::H10),
    ] {
        if !seen.contains(required) {
            return bad(
                cause,
                format!(
                    "Received certificate with unexpected extensions: {}",
                    http::go_quote(
                        format!("Required extension OID {required} is not present").as_bytes()
                    )
                ),
            );
        }
    }
    // `checkExpectedSAN`.
    if let Err(why) = expected_san(&cert, name) {
        return bad(
            Cause::H10,
            format!(
                "Received certificate with unexpected identifiers ({}): {}",
                http::go_quote(alt_names(&cert).join(", ").as_bytes()),
                http::go_quote(why.as_bytes())
            ),
        );
    }
    // The acmeIdentifier extension.
    let Some(acme) = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == ID_PE_ACME_IDENTIFIER)
    else {
        return bad(
            Cause::H2,
            "Received certificate with no acmeValidationV1 extension.".into(),
        );
    };
    if !acme.critical {
        return bad(
            Cause::H7,
            "Received certificate with acmeValidationV1 extension that is not Critical.".into(),
        );
    }
    // `asn1.Unmarshal` into `[]byte`, nothing left over, 32 bytes: exactly 04 20 <32 bytes>
    // (DER allows no other length form).
    let value = match acme.value {
        [0x04, 0x20, digest @ ..] if digest.len() == 32 => digest,
        _ => {
            return bad(
                Cause::H7,
                "Received certificate with malformed acmeValidationV1 extension value.".into(),
            )
        }
    };
    let Some(key_authorization) = key_authorization else {
        return Ok(format!(
            "acme-tls/1 negotiated; a challenge certificate for {name} is pending (self-signed, one dNSName, critical acmeIdentifier; its digest is checked by the gate, which knows the key authorization)"
        ));
    };
    let expected = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    if value != expected.as_ref() {
        return bad(
            Cause::H7,
            format!(
                "Received certificate with acmeValidationV1 extension value {} but expected {}.",
                crate::state::certs::hex(value),
                crate::state::certs::hex(expected.as_ref())
            ),
        );
    }
    Ok(format!(
        "acme-tls/1 negotiated; the challenge certificate for {name} holds SHA-256 of the key authorization"
    ))
}

/// Boulder's `checkExpectedSAN` for a DNS identifier.
fn expected_san(cert: &X509Certificate<'_>, name: &str) -> Result<(), &'static str> {
    let (mut dns_names, mut ips) = (Vec::new(), 0);
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            match general {
                GeneralName::DNSName(n) => dns_names.push(*n),
                GeneralName::IPAddress(_) => ips += 1,
                _ => {}
            }
        }
    }
    if dns_names.len() != 1 || ips != 0 {
        return Err("wrong number of identifiers");
    }
    if !dns_names[0].eq_ignore_ascii_case(name) {
        return Err("identifier does not match expected identifier");
    }
    // `asn1.Marshal([]asn1.RawValue{{Tag: 2, Class: 2, Bytes: name}})`.
    let mut entry = vec![0x82];
    entry.extend(der_length(name.len()));
    entry.extend_from_slice(name.as_bytes());
    let mut expected = vec![0x30];
    expected.extend(der_length(entry.len()));
    expected.extend(entry);
    for ext in cert.extensions() {
        if ext.oid.to_id_string() == ID_CE_SUBJECT_ALT_NAME && ext.value != expected.as_slice() {
            return Err("SAN extension does not match expected bytes");
        }
    }
    Ok(())
}

/// A DER length (X.690 §8.1.3): short form below 128, else long form.
fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// Boulder's `certAltNames`: the common name and every subjectAltName, lowercase, unique,
/// sorted (for its message).
fn alt_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    if let Some(cn) = cert
        .subject()
        .iter_common_name()
        .last()
        .and_then(|cn| cn.as_str().ok())
    {
        names.insert(cn.to_ascii_lowercase());
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            let name = match general {
                GeneralName::DNSName(n) | GeneralName::RFC822Name(n) | GeneralName::URI(n) => {
                    (*n).to_owned()
                }
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes)
                        .map_or_else(|_| String::new(), |b| IpAddr::from(b).to_string()),
                    16 => <[u8; 16]>::try_from(*bytes)
                        .map_or_else(|_| String::new(), |b| IpAddr::from(b).to_string()),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            if !name.is_empty() {
                names.insert(name.to_ascii_lowercase());
            }
        }
    }
    names.into_iter().collect()
}

/// What one address gave, judged.
struct Judged {
    ip: IpAddr,
    tcp: Check,
    challenge: Option<Check>,
    attempt: Attempt,
}

impl Prober {
    /// The checks that decide a TLS-ALPN-01 validation of `name`, whose challenge certificate
    /// for `key_authorization` the caller already serves (the ACME gate): DNS and CAA as the CA
    /// resolves them (CAA with `validationmethods` compared to `tls-alpn-01`, RFC 8657 §4),
    /// DNSSEC, then port 443 of every address with Boulder's TLS-ALPN-01 rules. The verdict is
    /// that of [`Prober::probe_token`]: `fail` iff the CA would fail.
    pub async fn probe_tls_alpn(&self, name: &DnsName, key_authorization: &str) -> Report {
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut checks = Vec::new();
        let work = async {
            let mut config = self.config.clone();
            config.validation_method = CHALLENGE.to_owned();
            let mut address_checks = Vec::new();
            let (findings, caa, dnssec) = tokio::join!(
                dns::check_addresses(&self.dns, name, &config, &mut address_checks),
                caa::check(&self.dns, name, false, &config),
                dnssec::check(&self.dns, name.as_str(), RecordType::A, &self.anchors),
            );
            checks.extend(address_checks);
            checks.push(dnssec);
            checks.extend(caa);
            let alpn = self
                .tls_alpn_checks(name, &findings.addresses, Some(key_authorization))
                .await;
            checks.extend(alpn);
        };
        let cut_short = self.within_deadline(clock, work).await;
        checks.extend(cut_short);
        Report {
            name: name.to_string(),
            started,
            duration: clock.elapsed(),
            checks,
        }
    }

    /// TLS-ALPN-01 on the HTTPS port of every address: `tcp.connect` (H1) and the challenge
    /// handshake (`https.certificate`, target `<ip:port> (acme-tls/1)`), each address taken as
    /// possibly the first of its family and judged by [`http::ca_tolerates`] with Boulder's
    /// TLS-ALPN-01 fallback (any failure before a certificate is in hand).
    pub(crate) async fn tls_alpn_checks(
        &self,
        name: &DnsName,
        addresses: &[IpAddr],
        key_authorization: Option<&str>,
    ) -> Vec<Check> {
        if addresses.is_empty() {
            return vec![Check::skip(
                CheckKind::TcpConnect,
                "",
                "no address to connect to",
            )];
        }
        let port = self.config.https_port;
        let client = match AlpnClient::new(self.config.timeout, port) {
            Ok(client) => client,
            Err(e) => {
                return vec![Check::error(
                    CheckKind::HttpsCertificate,
                    "",
                    format!("TLS client configuration: {e}"),
                )]
            }
        };
        let client = &client;
        let judged = join_all(addresses.iter().map(|&ip| async move {
            let handshake = client.handshake(ip, name).await;
            judge_address(ip, port, name, key_authorization, handshake)
        }))
        .await;
        let attempts: Vec<(IpAddr, Attempt)> = judged.iter().map(|j| (j.ip, j.attempt)).collect();
        // Boulder's fallback is a fresh handshake with the first A address.
        let v4: Vec<IpAddr> = addresses.iter().copied().filter(IpAddr::is_ipv4).collect();
        let a_validates = !v4.is_empty()
            && attempts
                .iter()
                .filter(|(ip, _)| ip.is_ipv4())
                .all(|(_, a)| *a == Attempt::Validates);
        let mut tcp_checks = Vec::new();
        let mut challenge_checks = Vec::new();
        for j in judged {
            let why = http::ca_tolerates(j.ip, j.attempt, &attempts, a_validates);
            let adjust = |mut check: Check| {
                if let Some(why) = &why {
                    return http::tolerate(check, why);
                }
                if check.status == Status::Fail && j.ip.is_ipv6() && v4.is_empty() {
                    check.detail = format!(
                        "{} (Unable to contact {:?} at {:?}, no IPv4 addresses to try as fallback)",
                        check.detail,
                        name.as_str(),
                        j.ip.to_string()
                    );
                }
                check
            };
            tcp_checks.push(adjust(j.tcp));
            if let Some(check) = j.challenge {
                challenge_checks.push(adjust(check));
            }
        }
        tcp_checks.extend(challenge_checks);
        tcp_checks
    }
}

/// One address's handshake as checks, with its [`Attempt`].
fn judge_address(
    ip: IpAddr,
    port: u16,
    name: &DnsName,
    key_authorization: Option<&str>,
    handshake: Handshake,
) -> Judged {
    let hostport = SocketAddr::new(ip, port).to_string();
    let target = format!("{hostport} (acme-tls/1)");
    let connected = || Check::pass(CheckKind::TcpConnect, &hostport, "connection accepted");
    let kind = CheckKind::HttpsCertificate;
    match handshake {
        Handshake::NoConnection(reason) => Judged {
            ip,
            tcp: Check::fail(
                CheckKind::TcpConnect,
                &hostport,
                Cause::H1,
                format!("{ip}: {reason}"),
            ),
            challenge: None,
            attempt: Attempt::FallsBack,
        },
        Handshake::Refused {
            reason,
            no_application_protocol,
        } => {
            let challenge = match (no_application_protocol, key_authorization) {
                // dcv-proxy's answer to acme-tls/1 while no challenge is pending: nothing to
                // judge without one (and the CA would not come now).
                (true, None) => Check::skip(
                    kind,
                    &target,
                    format!("{ip}: {reason}: no TLS-ALPN-01 challenge is pending for {name} (dcv-proxy answers acme-tls/1 only while one is; the ACME gate checks it with the key authorization)"),
                ),
                // The server knows no acme-tls/1 for this name: the challenge is not there.
                (true, Some(_)) => Check::fail(kind, &target, Cause::H2, format!("{ip}: {reason}")),
                (false, _) => Check::fail(kind, &target, Cause::C5, format!("{ip}: {reason}")),
            };
            Judged {
                ip,
                tcp: connected(),
                challenge: Some(challenge),
                // A handshake the server completes with the challenge certificate in a real
                // validation: the CA would not fall back from it.
                attempt: if no_application_protocol && key_authorization.is_none() {
                    Attempt::Validates
                } else {
                    Attempt::FallsBack
                },
            }
        }
        Handshake::Done {
            alpn: _,
            certificate: None,
        } => Judged {
            ip,
            tcp: connected(),
            challenge: Some(Check::fail(
                kind,
                &target,
                Cause::C5,
                format!("{ip}: No certs presented for {CHALLENGE} challenge"),
            )),
            attempt: Attempt::FallsBack,
        },
        // Go's handshake fails on a certificate that does not parse: an error before a
        // certificate is in hand, which falls back.
        Handshake::Done {
            alpn: _,
            certificate: Some(der),
        } if X509Certificate::from_der(&der).is_err() => Judged {
            ip,
            tcp: connected(),
            challenge: Some(Check::fail(
                kind,
                &target,
                Cause::H7,
                format!("{ip}: {GENERIC} (the certificate presented does not parse)"),
            )),
            attempt: Attempt::FallsBack,
        },
        Handshake::Done {
            alpn,
            certificate: Some(der),
        } => match judge_challenge(
            name.as_str(),
            &hostport,
            alpn.as_deref(),
            &der,
            key_authorization,
        ) {
            Ok(detail) => Judged {
                ip,
                tcp: connected(),
                challenge: Some(Check::pass(kind, &target, detail)),
                attempt: Attempt::Validates,
            },
            Err((cause, detail)) => Judged {
                ip,
                tcp: connected(),
                challenge: Some(Check::fail(kind, &target, cause, detail)),
                attempt: Attempt::Fails,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;
    use tokio::net::TcpListener;

    use super::*;
    use crate::config::ExpectedTxt;
    use crate::probe::node::{Node, RegisteredFile};
    use crate::probe::NodeError;

    const NAME: &str = "shop.dcvcheck.com";
    const KA: &str = "tok.thumbprint";
    const HOSTPORT: &str = "192.0.2.1:443";

    fn digest(ka: &str) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, ka.as_bytes())
            .as_ref()
            .to_vec()
    }

    /// The node's own challenge certificate (`state::alpn`, what `serve::alpn` presents).
    fn fixture(name: &str, ka: &str) -> Arc<CertifiedKey> {
        crate::state::challenge_certificate(name, ka).unwrap()
    }

    fn der_of(key: &CertifiedKey) -> Vec<u8> {
        key.cert[0].to_vec()
    }

    /// A self-signed certificate for `params` with `extensions`.
    fn made(mut params: CertificateParams, extensions: Vec<CustomExtension>) -> Vec<u8> {
        params.custom_extensions = extensions;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn acme(ka: &str, critical: bool) -> CustomExtension {
        let mut ext = CustomExtension::new_acme_identifier(&digest(ka));
        ext.set_criticality(critical);
        ext
    }

    fn judged(der: &[u8], ka: Option<&str>) -> Result<String, (Cause, String)> {
        judge_challenge(NAME, HOSTPORT, Some(ACME_TLS_1), der, ka)
    }

    fn refused(der: &[u8]) -> (Cause, String) {
        judged(der, Some(KA)).unwrap_err()
    }

    #[test]
    fn the_nodes_challenge_certificate_passes_with_its_key_authorization() {
        let der = der_of(&fixture(NAME, KA));
        assert!(judged(&der, Some(KA)).is_ok());
        assert!(judged(&der, None).unwrap().contains("pending"));
        let (cause, detail) = refused(&der_of(&fixture(NAME, "other.thumbprint")));
        assert_eq!(cause, Cause::H7);
        assert_eq!(
            detail,
            format!(
                "Incorrect validation certificate for tls-alpn-01 challenge. Requested {NAME} from {HOSTPORT}. Received certificate with acmeValidationV1 extension value {} but expected {}.",
                crate::state::certs::hex(&digest("other.thumbprint")),
                crate::state::certs::hex(&digest(KA))
            )
        );
    }

    #[test]
    fn acme_tls_1_must_be_negotiated() {
        let der = der_of(&fixture(NAME, KA));
        for alpn in [None, Some(&b"h2"[..])] {
            let (cause, detail) =
                judge_challenge(NAME, HOSTPORT, alpn, &der, Some(KA)).unwrap_err();
            assert_eq!(cause, Cause::H2);
            assert!(
                detail.starts_with(
                    "Cannot negotiate ALPN protocol \"acme-tls/1\" for tls-alpn-01 challenge"
                ),
                "{detail}"
            );
        }
    }

    #[test]
    fn the_certificate_must_be_self_signed() {
        let ca = crate::testkit::TestCa::new("alpn").unwrap();
        let leaf = ca.leaf(&[NAME], Duration::from_secs(3600)).unwrap();
        let block: String = leaf
            .leaf_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(block)
            .unwrap();
        let (cause, detail) = refused(&der);
        assert_eq!(cause, Cause::H2);
        assert!(
            detail.ends_with("Received certificate which is not self-signed."),
            "{detail}"
        );
    }

    #[test]
    fn extensions_are_required_once_each() {
        let params = || CertificateParams::new(vec![NAME.to_owned()]).unwrap();
        let (cause, detail) = refused(&made(params(), vec![]));
        assert_eq!(cause, Cause::H2);
        assert!(
            detail.ends_with("Received certificate with unexpected extensions: \"Required extension OID 1.3.6.1.5.5.7.1.31 is not present\""),
            "{detail}"
        );
        let (cause, detail) = refused(&made(params(), vec![acme(KA, true), acme(KA, true)]));
        assert_eq!(cause, Cause::H7);
        assert!(
            detail.contains("Extension OID 1.3.6.1.5.5.7.1.31 seen twice"),
            "{detail}"
        );
        let mut none = params();
        none.subject_alt_names.clear();
        let (cause, detail) = refused(&made(none, vec![acme(KA, true)]));
        assert_eq!(cause, Cause::H10);
        assert!(
            detail.contains("Required extension OID 2.5.29.17 is not present"),
            "{detail}"
        );
    }

    #[test]
    fn exactly_one_dns_name_equal_to_the_identifier() {
        let with = |names: Vec<SanType>| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.subject_alt_names = names;
            made(params, vec![acme(KA, true)])
        };
        let dns = |n: &str| SanType::DnsName(n.try_into().unwrap());
        assert!(judged(&with(vec![dns(NAME)]), Some(KA)).is_ok());
        for (names, why) in [
            (
                vec![dns(NAME), dns("www.dcvcheck.com")],
                "wrong number of identifiers",
            ),
            (
                vec![dns(NAME), SanType::IpAddress("192.0.2.1".parse().unwrap())],
                "wrong number of identifiers",
            ),
            (
                vec![dns("other.dcvcheck.com")],
                "identifier does not match expected identifier",
            ),
            // Equal ignoring case, but not the bytes Boulder expects.
            (
                vec![dns("SHOP.dcvcheck.com")],
                "SAN extension does not match expected bytes",
            ),
            (
                vec![
                    dns(NAME),
                    SanType::Rfc822Name("ops@dcvcheck.com".try_into().unwrap()),
                ],
                "SAN extension does not match expected bytes",
            ),
        ] {
            let (cause, detail) = refused(&with(names));
            assert_eq!(cause, Cause::H10, "{detail}");
            assert!(
                detail.contains("Received certificate with unexpected identifiers ("),
                "{detail}"
            );
            assert!(
                detail.ends_with(&http::go_quote(why.as_bytes())),
                "{detail}"
            );
        }
    }

    #[test]
    fn the_acme_identifier_must_be_critical_and_well_formed() {
        let params = || CertificateParams::new(vec![NAME.to_owned()]).unwrap();
        let (cause, detail) = refused(&made(params(), vec![acme(KA, false)]));
        assert_eq!(cause, Cause::H7);
        assert!(
            detail.ends_with("acmeValidationV1 extension that is not Critical."),
            "{detail}"
        );
        let oid = [1, 3, 6, 1, 5, 5, 7, 1, 31];
        for content in [
            digest(KA),                                             // not an OCTET STRING
            [vec![0x04, 0x10], digest(KA)[..16].to_vec()].concat(), // 16 bytes
            [vec![0x04, 0x81, 0x20], digest(KA)].concat(),          // not DER
            [vec![0x04, 0x20], digest(KA), vec![0]].concat(),       // trailing data
        ] {
            let mut ext = CustomExtension::from_oid_content(&oid, content);
            ext.set_criticality(true);
            let (cause, detail) = refused(&made(params(), vec![ext]));
            assert_eq!(cause, Cause::H7);
            assert!(
                detail.ends_with("malformed acmeValidationV1 extension value."),
                "{detail}"
            );
        }
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_length(5), [5]);
        assert_eq!(der_length(127), [127]);
        assert_eq!(der_length(128), [0x81, 128]);
        assert_eq!(der_length(300), [0x82, 1, 44]);
    }

    // --- handshakes with loopback servers -----------------------------------------------------

    #[derive(Debug)]
    struct Fixed(Arc<CertifiedKey>);

    impl ResolvesServerCert for Fixed {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    /// A TLS server on `listener` presenting `key` and offering `alpn`.
    fn tls_server(listener: TcpListener, key: Arc<CertifiedKey>, alpn: Vec<Vec<u8>>) {
        let mut config = rustls::ServerConfig::builder_with_provider(http::ring_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(key)));
        config.alpn_protocols = alpn;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        use tokio::io::AsyncWriteExt;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
    }

    struct NoNode;

    #[async_trait::async_trait]
    impl Node for NoNode {
        async fn put_token(
            &self,
            _: &str,
            _: &str,
            _: &DnsName,
            _: Duration,
        ) -> Result<(), NodeError> {
            Ok(())
        }
        async fn remove_token(&self, _: &str) -> Result<(), NodeError> {
            Ok(())
        }
        async fn pki_files(&self, _: &DnsName) -> Result<Vec<RegisteredFile>, NodeError> {
            Ok(Vec::new())
        }
        async fn expected_txt(&self) -> Result<Vec<ExpectedTxt>, NodeError> {
            Ok(Vec::new())
        }
    }

    /// A prober whose HTTPS port is `port`; its resolver (never asked here) is a dead loopback
    /// port, never /etc/resolv.conf.
    fn prober_on(port: u16) -> Prober {
        let text = format!(
            "[probe]\nresolvers = [\"127.0.0.1:9\"]\ntimeout = \"2s\"\nhttps_port = {port}\nhttp_port = 9\n"
        );
        let config = crate::config::Config::parse(std::path::Path::new("x.toml"), &text)
            .unwrap()
            .probe;
        Prober::new(config, Arc::new(NoNode)).unwrap()
    }

    /// A port with a listener on 127.0.0.1 and nothing on ::1.
    async fn v4_listener() -> (u16, TcpListener) {
        loop {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            if std::net::TcpListener::bind(("::1", port)).is_ok() {
                return (port, l);
            }
        }
    }

    fn outcomes(checks: &[Check]) -> Vec<(String, Status, Option<Cause>)> {
        checks
            .iter()
            .map(|c| (c.kind.as_str().to_owned(), c.status, c.cause))
            .collect()
    }

    #[tokio::test]
    async fn a_pending_challenge_passes_and_a_refused_aaaa_falls_back() {
        let (port, listener) = v4_listener().await;
        tls_server(listener, fixture(NAME, KA), vec![ACME_TLS_1.to_vec()]);
        let prober = prober_on(port);
        let name: DnsName = NAME.parse().unwrap();
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        let checks = prober.tls_alpn_checks(&name, &[v4], Some(KA)).await;
        assert_eq!(
            outcomes(&checks),
            [
                ("tcp.connect".into(), Status::Pass, None),
                ("https.certificate".into(), Status::Pass, None)
            ],
            "{checks:?}"
        );
        // Nothing on ::1: the CA falls back to the A address, which validates.
        let checks = prober.tls_alpn_checks(&name, &[v4, v6], Some(KA)).await;
        let six = checks
            .iter()
            .find(|c| c.target.starts_with("[::1]"))
            .unwrap();
        assert_eq!(
            (six.status, six.cause),
            (Status::Warn, Some(Cause::H1)),
            "{}",
            six.detail
        );
        assert!(
            six.detail.starts_with("::1: Connection refused (tolerated"),
            "{}",
            six.detail
        );
        // ::1 alone: nothing to fall back to.
        let checks = prober.tls_alpn_checks(&name, &[v6], Some(KA)).await;
        assert_eq!(
            (checks[0].status, checks[0].cause),
            (Status::Fail, Some(Cause::H1))
        );
        assert!(
            checks[0].detail.ends_with("(Unable to contact \"shop.dcvcheck.com\" at \"::1\", no IPv4 addresses to try as fallback)"),
            "{}",
            checks[0].detail
        );
        // The wrong key authorization: no fallback can help, it is the content.
        let checks = prober
            .tls_alpn_checks(&name, &[v4], Some("other.thumbprint"))
            .await;
        assert_eq!(
            (checks[1].status, checks[1].cause),
            (Status::Fail, Some(Cause::H7))
        );
    }

    #[tokio::test]
    async fn a_server_without_acme_tls_1() {
        let name: DnsName = NAME.parse().unwrap();
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        // Offers h2 only: refuses acme-tls/1 with no_application_protocol, as dcv-proxy does
        // without a pending challenge.
        let (port, listener) = v4_listener().await;
        tls_server(listener, fixture(NAME, KA), vec![b"h2".to_vec()]);
        let prober = prober_on(port);
        let checks = prober.tls_alpn_checks(&name, &[v4], Some(KA)).await;
        assert_eq!(
            (checks[1].status, checks[1].cause),
            (Status::Fail, Some(Cause::H2))
        );
        assert_eq!(
            checks[1].detail,
            "127.0.0.1: remote error: tls: no application protocol"
        );
        let checks = prober.tls_alpn_checks(&name, &[v4], None).await;
        assert_eq!(checks[1].status, Status::Skip, "{}", checks[1].detail);
        // No ALPN at all: the handshake completes without acme-tls/1.
        let (port, listener) = v4_listener().await;
        tls_server(listener, fixture(NAME, KA), vec![]);
        let prober = prober_on(port);
        for ka in [Some(KA), None] {
            let checks = prober.tls_alpn_checks(&name, &[v4], ka).await;
            assert_eq!(
                (checks[1].status, checks[1].cause),
                (Status::Fail, Some(Cause::H2))
            );
            assert!(
                checks[1]
                    .detail
                    .starts_with("Cannot negotiate ALPN protocol"),
                "{}",
                checks[1].detail
            );
        }
    }

    #[test]
    fn failures_before_a_certificate_fall_back_and_after_it_do_not() {
        let name: DnsName = NAME.parse().unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let attempt = |h| judge_address(ip, 443, &name, Some(KA), h).attempt;
        assert_eq!(
            attempt(Handshake::NoConnection("Connection refused".into())),
            Attempt::FallsBack
        );
        assert_eq!(
            attempt(Handshake::Refused {
                reason: "remote error: tls: handshake failure".into(),
                no_application_protocol: false
            }),
            Attempt::FallsBack
        );
        assert_eq!(
            attempt(Handshake::Done {
                alpn: Some(ACME_TLS_1.to_vec()),
                certificate: None
            }),
            Attempt::FallsBack
        );
        assert_eq!(
            attempt(Handshake::Done {
                alpn: Some(ACME_TLS_1.to_vec()),
                certificate: Some(vec![1, 2, 3])
            }),
            Attempt::FallsBack
        );
        let der = der_of(&fixture(NAME, KA));
        assert_eq!(
            attempt(Handshake::Done {
                alpn: None,
                certificate: Some(der.clone())
            }),
            Attempt::Fails
        );
        assert_eq!(
            attempt(Handshake::Done {
                alpn: Some(ACME_TLS_1.to_vec()),
                certificate: Some(der)
            }),
            Attempt::Validates
        );
    }
}
