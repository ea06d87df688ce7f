//! TLS-ALPN-01 challenge certificates (RFC 8737 §3): self-signed, exactly one DNS name, and a
//! critical acmeIdentifier extension holding SHA-256 of the key authorization. The self-check
//! reads that extension back from what the node presents.
//!
//! The certificate itself is made in [`crate::state::alpn`] (where every node of a fleet can
//! make it); the challenge store hands it to the TLS-ALPN-01 acceptor by SNI.

/// The acmeIdentifier value (the SHA-256 digest) carried by `cert_der`, if any.
pub(super) fn acme_identifier(cert_der: &[u8]) -> Option<Vec<u8>> {
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
        let key = crate::state::challenge_certificate("a.test", "tok.thumb").unwrap();
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
