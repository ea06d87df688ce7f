//! The certificate presented over HTTPS (H10, C6, C4: it covers the name and is current), and
//! the verifier that accepts any certificate, as Boulder's HTTP-01 client does, so that the
//! probe judges the certificate itself instead of failing the handshake.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::DEFAULT_CERT_NAME;
use crate::config::DnsName;
use crate::probe::causes::Cause;
use crate::probe::report::{Check, CheckKind};
use crate::state::certs::name_covers;

/// H10, C6, C4: the certificate presented for `name` must cover it and be current.
pub(super) fn certificate_check(
    target: &str,
    name: &DnsName,
    der: &[u8],
    now: SystemTime,
) -> Check {
    let kind = CheckKind::HttpsCertificate;
    let cert = match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            return Check::fail(
                kind,
                target,
                Cause::H10,
                format!("the certificate presented does not parse: {e}"),
            )
        }
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            if let GeneralName::DNSName(n) = general {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    let not_after = cert.validity().not_after.timestamp();
    let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(not_after.max(0) as u64);
    let until = humantime::format_rfc3339_seconds(expires);
    if !names.iter().any(|san| name_covers(san, name.as_str())) {
        if names.iter().any(|n| n == DEFAULT_CERT_NAME) {
            // Not yet issued: HTTP-01 validation does not need it (the CA does not check
            // certificates), browsers do.
            return Check::warn(
                kind,
                target,
                Cause::C6,
                format!("no certificate for {name} yet: the node presents its self-signed default"),
            );
        }
        return Check::fail(
            kind,
            target,
            Cause::H10,
            format!(
                "the certificate presented covers {} (issuer {}), not {name}",
                if names.is_empty() {
                    "no DNS name".to_owned()
                } else {
                    names.join(", ")
                },
                cert.issuer()
            ),
        );
    }
    if expires < now {
        return Check::fail(kind, target, Cause::C4, format!("expired at {until}"));
    }
    Check::pass(
        kind,
        target,
        format!(
            "covers {name} (issuer {}), valid until {until}",
            cert.issuer()
        ),
    )
}

/// Accepts any certificate: Boulder does not verify certificates when it follows a redirect to
/// HTTPS during HTTP-01 (`httpTransport`: `InsecureSkipVerify`), nor the TLS-ALPN-01 challenge
/// certificate, which is self-signed (`getChallengeCert`); the probe judges certificates itself
/// instead of failing the handshake. Handshake signatures are still verified with the
/// certificate's key, as Go's client does with `InsecureSkipVerify`.
#[derive(Debug)]
pub(in crate::probe) struct AnyCertificate(pub(in crate::probe) Arc<CryptoProvider>);

impl AnyCertificate {
    /// The handshake signature checked with the certificate's own public key. Not through
    /// webpki, which refuses to parse a certificate with a critical extension it does not know,
    /// and the TLS-ALPN-01 challenge certificate has one (acmeIdentifier, RFC 8737 §3). TLS 1.3
    /// takes the scheme's first algorithm, TLS 1.2 any of them (as rustls' own
    /// `verify_tls12_signature`/`verify_tls13_signature` do).
    fn verify(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // RFC 8446 §4.2.3: no PKCS #1 v1.5 and no SHA-1 in TLS 1.3 handshake signatures.
        let tls13_scheme = matches!(
            dss.scheme,
            SignatureScheme::ECDSA_NISTP256_SHA256
                | SignatureScheme::ECDSA_NISTP384_SHA384
                | SignatureScheme::ECDSA_NISTP521_SHA512
                | SignatureScheme::RSA_PSS_SHA256
                | SignatureScheme::RSA_PSS_SHA384
                | SignatureScheme::RSA_PSS_SHA512
                | SignatureScheme::ED25519
                | SignatureScheme::ED448
        );
        if tls13 && !tls13_scheme {
            return Err(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
        }
        let (_, parsed) = X509Certificate::from_der(cert.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let key = parsed.public_key().subject_public_key.data.as_ref();
        let candidates = self
            .0
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algorithms)| *algorithms)
            .ok_or(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        let candidates = if tls13 {
            &candidates[..candidates.len().min(1)]
        } else {
            candidates
        };
        if candidates.iter().any(|algorithm| {
            algorithm
                .verify_signature(key, message, dss.signature())
                .is_ok()
        }) {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature,
            ))
        }
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
