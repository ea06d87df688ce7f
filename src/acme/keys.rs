//! A fresh private key and CSR for every order, so no CSR or key is ever reused across orders
//! (catalogue P7) and a leaked key dies with its certificate.

use rcgen::string::Ia5String;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls_pki_types::PrivatePkcs8KeyDer;

use super::AcmeError;
use crate::config::{CertName, KeyType};

/// A new key of `kind`.
pub(super) fn generate(kind: KeyType) -> Result<KeyPair, AcmeError> {
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

/// A DER CSR for `names` signed by `key`: a dNSName or iPAddress subjectAltName for each
/// (RFC 8738 §4: an `ip` identifier is finalized with an iPAddress SAN). The first name is also
/// the subject CN when it is a DNS name (it was checked to fit in 64 characters, P6); an
/// address never is, as Let's Encrypt's IP certificates carry no CN and the Baseline
/// Requirements (7.1.4.3) deprecate the CN.
pub(super) fn csr(names: &[CertName], key: &KeyPair) -> Result<Vec<u8>, AcmeError> {
    let mut params = CertificateParams::default();
    for name in names {
        params.subject_alt_names.push(match name {
            CertName::Dns(n) => SanType::DnsName(
                Ia5String::try_from(n.as_str()).map_err(|e| AcmeError::Key(e.to_string()))?,
            ),
            CertName::Ip(ip) => SanType::IpAddress(*ip),
        });
    }
    let mut dn = DistinguishedName::new();
    if let Some(CertName::Dns(first)) = names.first() {
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
        let names: Vec<CertName> = vec![
            CertName::Dns("a.test".parse().unwrap()),
            CertName::Dns("www.a.test".parse().unwrap()),
        ];
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

    #[test]
    fn an_address_is_an_ip_san_and_never_the_common_name() {
        let names = vec![
            CertName::Ip("192.0.2.1".parse().unwrap()),
            CertName::Ip("2001:db8::1".parse().unwrap()),
            CertName::Dns("a.test".parse().unwrap()),
        ];
        let key = generate(KeyType::EcdsaP256).unwrap();
        let der = csr(&names, &key).unwrap();
        let (_, parsed) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        assert_eq!(
            parsed
                .certification_request_info
                .subject
                .iter_common_name()
                .count(),
            0
        );
        let mut ips = Vec::new();
        let mut dns = Vec::new();
        for ext in parsed.requested_extensions().into_iter().flatten() {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        x509_parser::extensions::GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                        x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_string()),
                        _ => {}
                    }
                }
            }
        }
        assert_eq!(
            ips,
            [
                vec![192, 0, 2, 1],
                "2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()
                    .to_vec()
            ]
        );
        assert_eq!(dns, ["a.test"]);
    }

    use x509_parser::prelude::FromDer;
}
