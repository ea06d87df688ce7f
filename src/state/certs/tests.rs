#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;
use crate::testkit::TestCa;

const DAY: Duration = Duration::from_secs(86_400);

fn open() -> (tempfile::TempDir, CertStore) {
    let dir = tempfile::tempdir().unwrap();
    let (store, failures) = CertStore::open(dir.path()).unwrap();
    assert!(failures.is_empty());
    (dir, store)
}

/// Checks PEM input, writes it, publishes it, as the admin upload does (check, then install).
trait InstallPem {
    fn install_pem(
        &self,
        id: &CertId,
        chain_pem: &[u8],
        key_pem: &[u8],
        required_names: &[String],
        source: CertSource,
    ) -> Result<Arc<CertEntry>, InstallError>;
}

impl InstallPem for CertStore {
    fn install_pem(
        &self,
        id: &CertId,
        chain_pem: &[u8],
        key_pem: &[u8],
        required_names: &[String],
        source: CertSource,
    ) -> Result<Arc<CertEntry>, InstallError> {
        let cert = self.check(chain_pem, key_pem, required_names)?;
        self.install(id, cert, source)
    }
}

fn id(s: &str) -> CertId {
    CertId::parse(s).unwrap()
}

#[test]
fn first_open_makes_a_persistent_default() {
    let (dir, store) = open();
    assert!(dir.path().join("default.pem").exists());
    let fp = store
        .snapshot()
        .entry(&id("default"))
        .unwrap()
        .cert
        .fingerprint
        .clone();
    let (again, _) = CertStore::open(dir.path()).unwrap();
    assert_eq!(
        again
            .snapshot()
            .entry(&id("default"))
            .unwrap()
            .cert
            .fingerprint,
        fp
    );
    // No SNI, or an unknown name, gets the default.
    assert!(Arc::ptr_eq(
        &store.resolve(None),
        &store.resolve(Some("nope.test"))
    ));
}

#[test]
fn exact_beats_wildcard_and_wildcard_covers_one_label() {
    let (_d, store) = open();
    let ca = TestCa::new("t").unwrap();
    let wild = ca.leaf(&["*.example.com"], 30 * DAY).unwrap();
    let api = ca.leaf(&["api.example.com"], 30 * DAY).unwrap();
    store
        .install_pem(
            &id("wild"),
            wild.chain_pem.as_bytes(),
            wild.key_pem.as_bytes(),
            &[],
            CertSource::Upload,
        )
        .unwrap();
    store
        .install_pem(
            &id("api"),
            api.chain_pem.as_bytes(),
            api.key_pem.as_bytes(),
            &[],
            CertSource::Upload,
        )
        .unwrap();
    let snap = store.snapshot();
    let wild_key = &snap.entry(&id("wild")).unwrap().cert.key;
    let api_key = &snap.entry(&id("api")).unwrap().cert.key;
    assert!(Arc::ptr_eq(
        &store.resolve(Some("api.example.com")),
        api_key
    ));
    assert!(Arc::ptr_eq(
        &store.resolve(Some("www.example.com")),
        wild_key
    ));
    assert!(store.covering("a.b.example.com").is_none());
    assert!(store.covering("example.com").is_none());
}

#[test]
fn refused_certificate_changes_nothing() {
    let (dir, store) = open();
    let ca = TestCa::new("t").unwrap();
    let good = ca.leaf(&["a.test"], 30 * DAY).unwrap();
    store
        .install_pem(
            &id("a"),
            good.chain_pem.as_bytes(),
            good.key_pem.as_bytes(),
            &[],
            CertSource::Upload,
        )
        .unwrap();
    let before = std::fs::read(dir.path().join("a.pem")).unwrap();
    let other = ca.leaf(&["a.test"], 30 * DAY).unwrap();
    let err = store
        .install_pem(
            &id("a"),
            good.chain_pem.as_bytes(),
            other.key_pem.as_bytes(),
            &[],
            CertSource::Upload,
        )
        .unwrap_err();
    assert!(matches!(
        err,
        InstallError::Refused(CertRefusal::KeyMismatch)
    ));
    assert_eq!(std::fs::read(dir.path().join("a.pem")).unwrap(), before);
    let fp = store
        .snapshot()
        .entry(&id("a"))
        .unwrap()
        .cert
        .fingerprint
        .clone();
    assert_eq!(
        fp,
        validate(&before, b"", &[], SystemTime::now())
            .unwrap()
            .fingerprint
    );
    let refused = store
        .load_counter()
        .with_label_values(&["key_mismatch"])
        .get();
    assert_eq!(refused, 1);
}

#[test]
fn longest_lived_certificate_wins_and_removal_falls_back() {
    let (_d, store) = open();
    let ca = TestCa::new("t").unwrap();
    let short = ca.leaf(&["a.test"], 10 * DAY).unwrap();
    let long = ca.leaf(&["a.test"], 60 * DAY).unwrap();
    store
        .install_pem(
            &id("long"),
            long.chain_pem.as_bytes(),
            long.key_pem.as_bytes(),
            &[],
            CertSource::Upload,
        )
        .unwrap();
    store
        .install_pem(
            &id("short"),
            short.chain_pem.as_bytes(),
            short.key_pem.as_bytes(),
            &[],
            CertSource::Upload,
        )
        .unwrap();
    let long_key = store
        .snapshot()
        .entry(&id("long"))
        .unwrap()
        .cert
        .key
        .clone();
    assert!(Arc::ptr_eq(&store.resolve(Some("a.test")), &long_key));
    assert!(store.remove(&id("long")).unwrap());
    let short_key = store
        .snapshot()
        .entry(&id("short"))
        .unwrap()
        .cert
        .key
        .clone();
    assert!(Arc::ptr_eq(&store.resolve(Some("a.test")), &short_key));
    assert!(store.remove(&id("short")).unwrap());
    assert!(store.covering("a.test").is_none());
    assert!(matches!(
        store.remove(&id("default")),
        Err(InstallError::RemoveDefault)
    ));
}

#[test]
fn corrupt_file_at_start_is_refused_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("t").unwrap();
    let good = ca.leaf(&["good.test"], 30 * DAY).unwrap();
    std::fs::write(
        dir.path().join("good.pem"),
        format!("{}{}", good.chain_pem, good.key_pem),
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.pem"), "garbage").unwrap();
    // Torn writes: one by a process that is gone (removed), one by a live writer, say the old
    // process of a binary upgrade still writing (left alone).
    std::fs::write(dir.path().join(".x.pem.tmp-4294967295-2"), "torn").unwrap();
    std::fs::write(dir.path().join(".y.pem.tmp-1-2"), "being written").unwrap();
    let (store, failures) = CertStore::open(dir.path()).unwrap();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].path.ends_with("bad.pem"));
    assert!(
        failures[0].error.contains("not PEM"),
        "{}",
        failures[0].error
    );
    assert!(store.covering("good.test").is_some());
    assert!(!dir.path().join(".x.pem.tmp-4294967295-2").exists());
    assert!(dir.path().join(".y.pem.tmp-1-2").exists());
}

#[test]
fn cert_ids_are_file_safe() {
    for bad in ["", "..", "a/b", "A", ".hidden", "a..b", &"x".repeat(65)] {
        assert!(CertId::parse(bad).is_err(), "{bad:?}");
    }
    assert!(CertId::parse("example.com").is_ok());
}

fn install(store: &CertStore, name: &str, leaf: &crate::testkit::TestLeaf) {
    store
        .install_pem(
            &id(name),
            leaf.chain_pem.as_bytes(),
            leaf.key_pem.as_bytes(),
            &[],
            CertSource::Upload,
        )
        .unwrap();
}

#[test]
fn precedence_names_the_longer_lived_certificate_and_why_the_other_is_not_served() {
    let (_d, store) = open();
    let ca = TestCa::new("t").unwrap();
    install(
        &store,
        "long",
        &ca.leaf(&["a.test", "b.test"], 60 * DAY).unwrap(),
    );
    install(&store, "short", &ca.leaf(&["a.test"], 10 * DAY).unwrap());
    let snap = store.snapshot();
    let owner = snap.owner("a.test").unwrap();
    assert_eq!(owner.served_by, id("long"));
    assert_eq!(
        owner.passed_over,
        vec![(id("short"), PassedOver::ExpiresEarlier)]
    );
    assert_eq!(
        snap.not_served(&id("short")),
        vec![("a.test".to_owned(), id("long"), PassedOver::ExpiresEarlier)]
    );
    assert!(snap.not_served(&id("long")).is_empty());
    // What `precedence` reports is what a handshake gets.
    for owner in snap.precedence() {
        let served = &snap.entry(&owner.served_by).unwrap().cert.key;
        if !owner.name.starts_with("*.") {
            assert!(
                Arc::ptr_eq(&store.resolve(Some(&owner.name)), served),
                "{}",
                owner.name
            );
        }
    }
    let names: Vec<String> = snap.precedence().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["a.test", "b.test", "dcv-proxy.invalid"]);
}

#[test]
fn precedence_an_exact_name_shadows_a_longer_lived_wildcard() {
    let (_d, store) = open();
    let ca = TestCa::new("t").unwrap();
    install(
        &store,
        "wild",
        &ca.leaf(&["*.example.com"], 60 * DAY).unwrap(),
    );
    install(
        &store,
        "api",
        &ca.leaf(&["api.example.com"], 10 * DAY).unwrap(),
    );
    let snap = store.snapshot();
    let owner = snap.owner("api.example.com").unwrap();
    assert_eq!(owner.served_by, id("api"));
    assert_eq!(
        owner.passed_over,
        vec![(id("wild"), PassedOver::ExactNameWins)]
    );
    assert_eq!(
        snap.not_served(&id("wild")),
        vec![(
            "api.example.com".to_owned(),
            id("api"),
            PassedOver::ExactNameWins
        )]
    );
    assert!(snap.not_served(&id("api")).is_empty());
    assert_eq!(snap.owner("*.example.com").unwrap().served_by, id("wild"));
    assert!(snap.owner("nothing.test").is_none());
}

#[test]
fn an_address_certificate_serves_its_local_address_only() {
    let (_d, store) = open();
    assert!(!store.has_addresses());
    let ca = TestCa::new("t").unwrap();
    let ip = ca.leaf(&["192.0.2.10", "2001:db8::10"], 7 * DAY).unwrap();
    let entry = store
        .install_pem(
            &id("192.0.2.10"),
            ip.chain_pem.as_bytes(),
            ip.key_pem.as_bytes(),
            &["192.0.2.10".to_owned(), "2001:db8::10".to_owned()],
            CertSource::Upload,
        )
        .unwrap();
    assert_eq!(entry.cert.names, ["192.0.2.10", "2001:db8::10"]);
    assert!(store.has_addresses());
    let default = store.resolve(None);
    for local in ["192.0.2.10", "2001:db8::10", "::ffff:192.0.2.10"] {
        let got = store.resolve_for_address(local.parse().unwrap());
        assert!(Arc::ptr_eq(&got, &entry.cert.key), "{local}");
    }
    // Another local address, and a handshake with SNI, are not the address's.
    assert!(Arc::ptr_eq(
        &store.resolve_for_address("192.0.2.11".parse().unwrap()),
        &default
    ));
    assert!(Arc::ptr_eq(&store.resolve(Some("a.example.com")), &default));
    // The address as a name (a client that sends it as SNI against RFC 6066) finds it too.
    assert!(Arc::ptr_eq(
        &store.resolve(Some("192.0.2.10")),
        &entry.cert.key
    ));
    store.remove(&id("192.0.2.10")).unwrap();
    assert!(!store.has_addresses());
}
