//! TLS-ALPN-01 challenge certificates (RFC 8737 §3): self-signed, exactly one DNS name, and a
//! critical acmeIdentifier extension holding SHA-256 of the key authorization.
//!
//! They live in `state` rather than `acme` because any node of a fleet makes one from a shared
//! key authorization: the CA checks the digest and the name, not which key signed it, so the
//! private key never has to leave the node.
//!
//! rustls' `with_single_cert` and `CertifiedKey::from_der` reject such a certificate (webpki does
//! not know the critical extension), so the key is built with `CertifiedKey::new`.

use std::sync::Arc;

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The challenge certificate for `name` and `key_authorization`; `Err` says why not.
pub fn challenge_certificate(
    name: &str,
    key_authorization: &str,
) -> Result<Arc<CertifiedKey>, String> {
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
    let mut extension = CustomExtension::new_acme_identifier(digest.as_ref());
    extension.set_criticality(true);
    params.custom_extensions = vec![extension];
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}
