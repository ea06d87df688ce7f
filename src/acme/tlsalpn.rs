//! TLS-ALPN-01 challenge certificates (RFC 8737 §3): self-signed, exactly one DNS name, and a
//! critical acmeIdentifier extension holding SHA-256 of the key authorization.
//!
//! rustls' `with_single_cert` and `CertifiedKey::from_der` reject such a certificate (webpki does
//! not know the critical extension), so the key is built with `CertifiedKey::new` and handed to
//! the challenge store, where the TLS-ALPN-01 acceptor finds it by SNI.

use std::sync::Arc;

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::AcmeError;

/// The challenge certificate for `name` and `key_authorization`.
pub fn challenge_certificate(
    name: &str,
    key_authorization: &str,
) -> Result<Arc<CertifiedKey>, AcmeError> {
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let mut params =
        CertificateParams::new(vec![name.to_owned()]).map_err(|e| AcmeError::Key(e.to_string()))?;
    let mut extension = CustomExtension::new_acme_identifier(digest.as_ref());
    extension.set_criticality(true);
    params.custom_extensions = vec![extension];
    let key = KeyPair::generate().map_err(|e| AcmeError::Key(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| AcmeError::Key(e.to_string()))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| AcmeError::Key(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// The acmeIdentifier value (the SHA-256 digest) carried by `cert_der`, if any.
pub fn acme_identifier(cert_der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    const ACME_IDENTIFIER: &str = "1.3.6.1.5.5.7.1.31";
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == ACME_IDENTIFIER)?;
    // The extension value is a DER OCTET STRING of 32 bytes: 0x04 0x20 <digest>.
    match ext.value {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => Some(rest.to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn certificate_carries_the_digest_critically() {
        let key = challenge_certificate("a.test", "tok.thumb").unwrap();
        let der = key.cert[0].as_ref();
        let expected = ring::digest::digest(&ring::digest::SHA256, b"tok.thumb");
        assert_eq!(acme_identifier(der).unwrap(), expected.as_ref());
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .unwrap();
        assert!(ext.critical);
    }
}
