#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use super::*;
use crate::testkit::{self_signed, TestCa};

const DAY: Duration = Duration::from_secs(86_400);

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn accepts_leaf_with_intermediate_and_reports_details() {
    let ca = TestCa::new("t").unwrap();
    let leaf = ca
        .leaf(&["example.com", "www.example.com"], 90 * DAY)
        .unwrap();
    let cert = validate(
        leaf.chain_pem.as_bytes(),
        leaf.key_pem.as_bytes(),
        &names(&["example.com", "www.example.com"]),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(cert.names, names(&["example.com", "www.example.com"]));
    assert_eq!(cert.key.cert.len(), 2);
    assert!(!cert.self_signed);
    // The canonical PEM re-validates to the same certificate.
    let again = validate(&cert.pem, b"", &[], SystemTime::now()).unwrap();
    assert_eq!(again.fingerprint, cert.fingerprint);
}

#[test]
fn accepts_self_signed_alone() {
    let (cert, key) = self_signed(&["local.test"]).unwrap();
    let v = validate(cert.as_bytes(), key.as_bytes(), &[], SystemTime::now()).unwrap();
    assert!(v.self_signed);
}

#[test]
fn refuses_leaf_without_intermediate_c2() {
    let ca = TestCa::new("t").unwrap();
    let leaf = ca.leaf(&["example.com"], DAY).unwrap();
    let e = validate(
        leaf.leaf_pem.as_bytes(),
        leaf.key_pem.as_bytes(),
        &[],
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(e.reason(), "chain_incomplete", "{e}");
    assert!(e.to_string().contains("t Intermediate"), "{e}");
}

#[test]
fn refuses_wrong_intermediate_c2() {
    let ca = TestCa::new("t").unwrap();
    let other = TestCa::new("other").unwrap();
    let leaf = ca.leaf(&["example.com"], DAY).unwrap();
    let foreign = other.leaf(&["x.test"], DAY).unwrap();
    let foreign_intermediate = foreign.chain_pem.replace(&foreign.leaf_pem, "");
    let chain = format!("{}{}", leaf.leaf_pem, foreign_intermediate);
    let e = validate(
        chain.as_bytes(),
        leaf.key_pem.as_bytes(),
        &[],
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(e.reason(), "chain_broken", "{e}");
}

#[test]
fn refuses_reversed_chain() {
    let ca = TestCa::new("t").unwrap();
    let leaf = ca.leaf(&["example.com"], DAY).unwrap();
    let intermediate = leaf.chain_pem.replace(&leaf.leaf_pem, "");
    let reversed = format!("{intermediate}{}", leaf.leaf_pem);
    let e = validate(
        reversed.as_bytes(),
        leaf.key_pem.as_bytes(),
        &[],
        SystemTime::now(),
    )
    .unwrap_err();
    // The intermediate's key is not the leaf key: the mismatch is found first.
    assert_eq!(e.reason(), "key_mismatch", "{e}");
}

#[test]
fn refuses_foreign_key_c3() {
    let ca = TestCa::new("t").unwrap();
    let a = ca.leaf(&["a.test"], DAY).unwrap();
    let b = ca.leaf(&["a.test"], DAY).unwrap();
    let e = validate(
        a.chain_pem.as_bytes(),
        b.key_pem.as_bytes(),
        &[],
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(e.reason(), "key_mismatch");
}

#[test]
fn refuses_expired_and_not_yet_valid() {
    let ca = TestCa::new("t").unwrap();
    let now = SystemTime::now();
    let old = ca
        .leaf_valid_between(&["a.test"], now - 10 * DAY, now - DAY)
        .unwrap();
    let e = validate(old.chain_pem.as_bytes(), old.key_pem.as_bytes(), &[], now).unwrap_err();
    assert_eq!(e.reason(), "expired");
    let future = ca
        .leaf_valid_between(&["a.test"], now + DAY, now + 10 * DAY)
        .unwrap();
    let e = validate(
        future.chain_pem.as_bytes(),
        future.key_pem.as_bytes(),
        &[],
        now,
    )
    .unwrap_err();
    assert_eq!(e.reason(), "not_yet_valid");
}

#[test]
fn refuses_uncovered_name_c6_and_accepts_wildcard() {
    let ca = TestCa::new("t").unwrap();
    let leaf = ca.leaf(&["*.example.com"], DAY).unwrap();
    let ok = validate(
        leaf.chain_pem.as_bytes(),
        leaf.key_pem.as_bytes(),
        &names(&["www.example.com"]),
        SystemTime::now(),
    );
    assert!(ok.is_ok());
    let e = validate(
        leaf.chain_pem.as_bytes(),
        leaf.key_pem.as_bytes(),
        &names(&["example.com"]),
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(e.reason(), "name_not_covered");
    assert!(e.to_string().contains("example.com"));
}

#[test]
fn refuses_csr_and_missing_key_with_reason() {
    let ca = TestCa::new("t").unwrap();
    let leaf = ca.leaf(&["a.test"], DAY).unwrap();
    let e = validate(leaf.chain_pem.as_bytes(), b"", &[], SystemTime::now()).unwrap_err();
    assert_eq!(e.reason(), "no_key");
    let csr = "-----BEGIN CERTIFICATE REQUEST-----\nAAEC\n-----END CERTIFICATE REQUEST-----\n";
    let e = validate(
        csr.as_bytes(),
        leaf.key_pem.as_bytes(),
        &[],
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(e.reason(), "wrong_marker");
    assert!(e.to_string().contains("CSR"), "{e}");
}

#[test]
fn wildcard_matching_follows_rfc6125() {
    assert!(name_covers("*.example.com", "a.example.com"));
    assert!(!name_covers("*.example.com", "example.com"));
    assert!(!name_covers("*.example.com", "a.b.example.com"));
    assert!(name_covers("Example.COM", "example.com"));
}
