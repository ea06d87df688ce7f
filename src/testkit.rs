//! Fixtures for tests and benches: a small CA hierarchy made with rcgen, so tests exercise real
//! X.509 and real signatures instead of canned files. Not part of the supported API.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A root and an intermediate that issue leaf certificates.
pub struct TestCa {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf with its chain, as PEM.
pub struct TestLeaf {
    /// Leaf then intermediate.
    pub chain_pem: String,
    pub leaf_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let root = CertifiedIssuer::self_signed(
            ca_params(&format!("{name} Root"))?,
            KeyPair::generate()?,
        )?;
        let intermediate = CertifiedIssuer::signed_by(
            ca_params(&format!("{name} Intermediate"))?,
            KeyPair::generate()?,
            &root,
        )?;
        Ok(Self { root, intermediate })
    }

    /// The root certificate (what a client trusts).
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// A leaf for `names`, valid from an hour ago for `valid_for`.
    pub fn leaf(&self, names: &[&str], valid_for: Duration) -> Result<TestLeaf, rcgen::Error> {
        let now = SystemTime::now();
        self.leaf_valid_between(names, now - Duration::from_secs(3600), now + valid_for)
    }

    /// A leaf for `names` valid between `not_before` and `not_after`.
    pub fn leaf_valid_between(
        &self,
        names: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<TestLeaf, rcgen::Error> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let key = KeyPair::generate()?;
        let leaf = params.signed_by(&key, &self.intermediate)?;
        Ok(TestLeaf {
            chain_pem: format!("{}{}", leaf.pem(), self.intermediate.pem()),
            leaf_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A self-signed certificate for `names` and its key, as PEM.
pub fn self_signed(names: &[&str]) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn ca_params(cn: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}
