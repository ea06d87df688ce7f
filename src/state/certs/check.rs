//! The checks a certificate passes before it may be served: it parses (C1), its key matches (C3),
//! its chain reaches an intermediate (C2), it is within its validity (C4) and it covers the names
//! it is meant for (C6). The result is a [`ValidCert`], which cannot exist otherwise.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::pem::{self, PemBlock, PemError};

/// A certificate that passed every check, ready to be published.
#[derive(Clone)]
pub struct ValidCert {
    pub key: Arc<CertifiedKey>,
    /// DNS names of the subjectAltName extension, lowercase (`*.x` for wildcards), then its IP
    /// addresses (RFC 8738), IPv6 in RFC 5952 form: the text a handshake's address is looked
    /// up by.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub subject: String,
    pub issuer: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the leaf, lowercase hex.
    pub fingerprint: String,
    pub self_signed: bool,
    /// Chain then key, canonical PEM: what is written to disk.
    pub pem: Vec<u8>,
}

// Hand-written so that the private key (inside `key` and `pem`) can never reach a log line.
impl std::fmt::Debug for ValidCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidCert")
            .field("names", &self.names)
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl ValidCert {
    /// The canonical PEM split into the chain and the private key, so that a shared store can
    /// seal the key alone (the key block is always last, see `encode_pem`).
    pub fn chain_and_key_pem(&self) -> (&[u8], &[u8]) {
        let at = self
            .pem
            .windows(11)
            .rposition(|w| w == b"-----BEGIN ")
            .unwrap_or(self.pem.len());
        self.pem.split_at(at)
    }
}

/// Why a certificate was refused. Nothing is changed by a refusal.
#[derive(Debug, thiserror::Error)]
pub enum CertRefusal {
    /// C1: the text is not well-formed PEM.
    #[error("{0}")]
    Pem(#[from] PemError),
    /// C1: a PEM block of a kind that has no place in a certificate upload.
    #[error("line {line}: a {label} block is not a certificate or private key{hint}")]
    UnexpectedBlock {
        line: usize,
        label: String,
        hint: &'static str,
    },
    /// C1: no CERTIFICATE block.
    #[error("no certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    /// C1: no private key block.
    #[error("no private key found (expected -----BEGIN PRIVATE KEY-----, EC PRIVATE KEY or RSA PRIVATE KEY)")]
    NoKey,
    /// C1: more than one private key.
    #[error("{0} private keys found; upload exactly one")]
    SeveralKeys(usize),
    /// C1: a CERTIFICATE block whose DER is not an X.509 certificate.
    #[error("certificate #{index} does not parse: {detail}")]
    BadCertificate { index: usize, detail: String },
    /// The key is of a type or size rustls cannot sign with.
    #[error("the private key cannot be used: {0}")]
    UnsupportedKey(String),
    /// C3: the private key is not the one of the leaf certificate.
    #[error("the private key does not match the certificate (its public key differs); upload the key generated with this certificate's CSR")]
    KeyMismatch,
    /// C2: the chain order is reversed or a CA certificate comes first.
    #[error("the first certificate is a CA certificate ({subject}); put the server certificate first, then its intermediates")]
    LeafIsCa { subject: String },
    /// C2: a leaf without the intermediate that issued it.
    #[error("the chain is incomplete: the certificate was issued by {issuer} but that intermediate is missing; append the CA bundle after the certificate")]
    ChainIncomplete { issuer: String },
    /// C2: certificate `index + 1` did not issue certificate `index`.
    #[error("the chain is broken: certificate #{next} ({next_subject}) did not issue certificate #{index} (issued by {issuer})")]
    ChainBroken {
        index: usize,
        next: usize,
        issuer: String,
        next_subject: String,
    },
    /// C4: past notAfter.
    #[error("the certificate expired at {}", humantime::format_rfc3339_seconds(*not_after))]
    Expired { not_after: SystemTime },
    /// Before notBefore.
    #[error("the certificate is not valid before {}", humantime::format_rfc3339_seconds(*not_before))]
    NotYetValid { not_before: SystemTime },
    /// C6: no DNS name or IP address at all.
    #[error("the certificate has no DNS names or IP addresses in subjectAltName")]
    NoNames,
    /// C6: a name it is meant for is not covered.
    #[error("the certificate does not cover {name} (it covers {covers})")]
    NameNotCovered { name: String, covers: String },
}

impl CertRefusal {
    /// Short stable name, used as the `result` label of `dcv_certificate_loads_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            CertRefusal::Pem(e) => e.reason(),
            CertRefusal::UnexpectedBlock { .. } => "wrong_marker",
            CertRefusal::NoCertificate => "no_certificate",
            CertRefusal::NoKey | CertRefusal::SeveralKeys(_) => "no_key",
            CertRefusal::BadCertificate { .. } => "bad_der",
            CertRefusal::UnsupportedKey(_) => "unsupported_key",
            CertRefusal::KeyMismatch => "key_mismatch",
            CertRefusal::LeafIsCa { .. } => "chain_order",
            CertRefusal::ChainIncomplete { .. } => "chain_incomplete",
            CertRefusal::ChainBroken { .. } => "chain_broken",
            CertRefusal::Expired { .. } => "expired",
            CertRefusal::NotYetValid { .. } => "not_yet_valid",
            CertRefusal::NoNames => "no_names",
            CertRefusal::NameNotCovered { .. } => "name_not_covered",
        }
    }

    /// Every reason [`Self::reason`] can return, so metrics can show zeros.
    pub const REASONS: &'static [&'static str] = &[
        "not_pem",
        "stray_spaces",
        "wrong_marker",
        "bad_base64",
        "no_certificate",
        "no_key",
        "bad_der",
        "unsupported_key",
        "key_mismatch",
        "chain_order",
        "chain_incomplete",
        "chain_broken",
        "expired",
        "not_yet_valid",
        "no_names",
        "name_not_covered",
    ];
}

/// Checks `chain_pem` (leaf first, then intermediates; may also hold the key) and `key_pem`
/// (may be empty when the key is in `chain_pem`) against `required_names` at `now`.
pub fn validate(
    chain_pem: &[u8],
    key_pem: &[u8],
    required_names: &[String],
    now: SystemTime,
) -> Result<ValidCert, CertRefusal> {
    let mut blocks = pem::parse(chain_pem)?;
    if !key_pem.is_empty() {
        blocks.extend(pem::parse(key_pem)?);
    }
    let (certs, keys) = split_blocks(blocks)?;
    if certs.is_empty() {
        return Err(CertRefusal::NoCertificate);
    }
    let key_der = match keys.len() {
        0 => return Err(CertRefusal::NoKey),
        1 => keys.into_iter().next().ok_or(CertRefusal::NoKey)?,
        n => return Err(CertRefusal::SeveralKeys(n)),
    };

    let parsed: Vec<X509Certificate<'_>> = certs
        .iter()
        .enumerate()
        .map(|(i, der)| {
            X509Certificate::from_der(der).map(|(_, c)| c).map_err(|e| {
                CertRefusal::BadCertificate {
                    index: i + 1,
                    detail: e.to_string(),
                }
            })
        })
        .collect::<Result<_, _>>()?;
    let leaf = &parsed[0];

    let signing_key = crate::crypto::signing_key(key_der.clone_key())
        .map_err(|e| CertRefusal::UnsupportedKey(e.to_string()))?;
    let key_spki = signing_key
        .public_key()
        .ok_or_else(|| CertRefusal::UnsupportedKey("its public key cannot be derived".into()))?;
    if key_spki.as_ref() != leaf.tbs_certificate.subject_pki.raw {
        return Err(CertRefusal::KeyMismatch);
    }

    if leaf.is_ca() && parsed.len() > 1 {
        return Err(CertRefusal::LeafIsCa {
            subject: leaf.subject().to_string(),
        });
    }
    check_chain(&parsed)?;

    let not_before = to_system_time(leaf.validity().not_before.timestamp());
    let not_after = to_system_time(leaf.validity().not_after.timestamp());
    if now >= not_after {
        return Err(CertRefusal::Expired { not_after });
    }
    // A small allowance: a certificate issued a moment ago by a CA whose clock is ahead.
    if not_before > now + Duration::from_secs(300) {
        return Err(CertRefusal::NotYetValid { not_before });
    }

    let names = dns_names(leaf);
    if names.is_empty() {
        return Err(CertRefusal::NoNames);
    }
    for required in required_names {
        if !names.iter().any(|n| name_covers(n, required)) {
            return Err(CertRefusal::NameNotCovered {
                name: required.clone(),
                covers: names.join(", "),
            });
        }
    }

    let fingerprint = hex(ring::digest::digest(&ring::digest::SHA256, &certs[0]).as_ref());
    let subject = leaf.subject().to_string();
    let issuer = leaf.issuer().to_string();
    let self_signed = leaf.subject().as_raw() == leaf.issuer().as_raw();
    let serial = hex(leaf.raw_serial());
    let pem = encode_pem(&certs, &key_der);
    let chain: Vec<CertificateDer<'static>> = certs.into_iter().map(CertificateDer::from).collect();
    Ok(ValidCert {
        key: Arc::new(CertifiedKey::new(chain, signing_key)),
        names,
        not_before,
        not_after,
        subject,
        issuer,
        serial,
        fingerprint,
        self_signed,
        pem,
    })
}

/// Whether SAN entry `san` (maybe `*.parent`) covers `name` (RFC 6125 §6.4.3: the wildcard is
/// the whole leftmost label and matches exactly one label).
pub fn name_covers(san: &str, name: &str) -> bool {
    if san.eq_ignore_ascii_case(name) {
        return true;
    }
    match (san.strip_prefix("*."), name.split_once('.')) {
        (Some(parent), Some((label, rest))) => {
            !label.is_empty() && label != "*" && rest.eq_ignore_ascii_case(parent)
        }
        _ => false,
    }
}

fn split_blocks(
    blocks: Vec<PemBlock>,
) -> Result<(Vec<Vec<u8>>, Vec<PrivateKeyDer<'static>>), CertRefusal> {
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    for block in blocks {
        let key = match block.label.as_str() {
            "CERTIFICATE" => {
                certs.push(block.der);
                continue;
            }
            "PRIVATE KEY" => PrivateKeyDer::Pkcs8(block.der.into()),
            "EC PRIVATE KEY" => PrivateKeyDer::Sec1(block.der.into()),
            "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(block.der.into()),
            // Parameters that `openssl ecparam -genkey` writes before the key: harmless.
            "EC PARAMETERS" => continue,
            other => {
                let hint = match other {
                    "ENCRYPTED PRIVATE KEY" => "; it is encrypted: decrypt it first (openssl pkey -in key.pem -out plain.pem)",
                    "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => "; this is the CSR: upload the certificate the CA issued for it",
                    "PUBLIC KEY" | "RSA PUBLIC KEY" => "; this is a public key: upload the private key",
                    "TRUSTED CERTIFICATE" => "; convert it: openssl x509 -in cert.pem -out plain.pem",
                    "PKCS7" => "; convert the bundle: openssl pkcs7 -print_certs -in chain.p7b -out chain.pem",
                    _ => "",
                };
                return Err(CertRefusal::UnexpectedBlock {
                    line: block.line,
                    label: other.to_owned(),
                    hint,
                });
            }
        };
        keys.push(key);
    }
    Ok((certs, keys))
}

/// Each certificate must be issued (name and signature) by the next one. The last one may be a
/// root or an intermediate; a lone leaf must be self-signed (C2).
fn check_chain(chain: &[X509Certificate<'_>]) -> Result<(), CertRefusal> {
    for (i, pair) in chain.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        let issued = child.issuer().as_raw() == parent.subject().as_raw()
            && child.verify_signature(Some(parent.public_key())).is_ok();
        if !issued {
            return Err(CertRefusal::ChainBroken {
                index: i + 1,
                next: i + 2,
                issuer: child.issuer().to_string(),
                next_subject: parent.subject().to_string(),
            });
        }
    }
    let leaf = &chain[0];
    if chain.len() == 1 && leaf.subject().as_raw() != leaf.issuer().as_raw() {
        return Err(CertRefusal::ChainIncomplete {
            issuer: leaf.issuer().to_string(),
        });
    }
    Ok(())
}

/// The dNSName entries, lowercase, then the iPAddress entries as text (RFC 5280 §4.2.1.6: four
/// octets for IPv4, sixteen for IPv6; anything else is no address and is skipped).
fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    let mut addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            let text = match name {
                GeneralName::DNSName(n) => n.to_ascii_lowercase(),
                GeneralName::IPAddress(bytes) => match ip_of_san(bytes) {
                    Some(ip) => {
                        let text = ip.to_string();
                        if !addresses.contains(&text) {
                            addresses.push(text);
                        }
                        continue;
                    }
                    None => continue,
                },
                _ => continue,
            };
            if !names.contains(&text) {
                names.push(text);
            }
        }
    }
    names.extend(addresses);
    names
}

fn ip_of_san(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).into()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).into()),
        _ => None,
    }
}

fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn encode_pem(certs: &[Vec<u8>], key: &PrivateKeyDer<'_>) -> Vec<u8> {
    let mut out = String::new();
    for der in certs {
        push_pem(&mut out, "CERTIFICATE", der);
    }
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    push_pem(&mut out, label, key.secret_der());
    out.into_bytes()
}

fn push_pem(out: &mut String, label: &str, der: &[u8]) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let _ = writeln!(out, "-----BEGIN {label}-----");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
}

#[cfg(test)]
mod tests;
