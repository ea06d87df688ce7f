//! A fresh private key and CSR for every order, so no CSR or key is ever reused across orders
//! (catalogue P7) and a leaked key dies with its certificate.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;

use super::AcmeError;
use crate::config::{DnsName, KeyType};

/// A new key of `kind`.
pub fn generate(kind: KeyType) -> Result<KeyPair, AcmeError> {
    let key = match kind {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => {
            // ring signs with RSA but cannot generate RSA keys: the RustCrypto rsa crate does.
            use rsa::pkcs8::EncodePrivateKey;
            let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .map_err(|e| AcmeError::Key(e.to_string()))?;
            let der = private
                .to_pkcs8_der()
                .map_err(|e| AcmeError::Key(e.to_string()))?;
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der.as_bytes()),
                &rcgen::PKCS_RSA_SHA256,
            )
        }
    };
    key.map_err(|e| AcmeError::Key(e.to_string()))
}

/// A DER CSR for `names` signed by `key`. The first name is also the subject CN (it was checked
/// to fit in 64 characters, P6).
pub fn csr(names: &[DnsName], key: &KeyPair) -> Result<Vec<u8>, AcmeError> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .map_err(|e| AcmeError::Key(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    if let Some(first) = names.first() {
        dn.push(DnType::CommonName, first.as_str());
    }
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(key)
        .map_err(|e| AcmeError::Key(e.to_string()))?;
    Ok(csr.der().to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_kind_makes_a_distinct_key_and_a_csr() {
        let names: Vec<DnsName> = vec!["a.test".parse().unwrap(), "www.a.test".parse().unwrap()];
        for kind in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            let a = generate(kind).unwrap();
            let b = generate(kind).unwrap();
            assert_ne!(
                a.serialize_der(),
                b.serialize_der(),
                "{kind:?} keys must differ"
            );
            let der = csr(&names, &a).unwrap();
            let (_, parsed) =
                x509_parser::certification_request::X509CertificationRequest::from_der(&der)
                    .unwrap();
            parsed.verify_signature().unwrap();
        }
    }

    use x509_parser::prelude::FromDer;
}
