//! Criterion benches for the paths every request or handshake takes: request classification,
//! the ACME answer lookup, and SNI resolution with 10, 1 000 and 10 000 certificates loaded, plus
//! the cost of publishing one more certificate into a 10 000-certificate store.
//!
//! The certificate stores are built once per size, the way the node builds them at start: PEM
//! files in a state directory, loaded by `CertStore::open`.

// Setup failures in a bench are bugs in the bench; unwrap keeps the setup readable.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use dcv_proxy::serve::{classify, normalize_host};
use dcv_proxy::state::certs::{validate, CertId, CertSource, CertStore};
use dcv_proxy::state::AcmeAnswer;
use dcv_proxy::state::ChallengeStore;
use dcv_proxy::testkit::{TestCa, TestLeaf};

const SIZES: [usize; 3] = [10, 1_000, 10_000];
/// One certificate in this many is a wildcard (`*.w<i>.bench.test`) instead of an exact name.
const WILDCARD_EVERY: usize = 10;
const TOKEN: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";

/// A realistic mix: pages and assets, both validation kinds, and a traversal probe.
const PATHS: [&str; 8] = [
    "/",
    "/index.html",
    "/static/js/app.4f2a9c.js",
    "/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
    "/.well-known/pki-validation/fileauth.txt",
    "/.well-known/pki-validation/../../etc/passwd",
    "/.well-known/security.txt",
    "/api/v2/orders/123456/items?page=2",
];

fn classification(c: &mut Criterion) {
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(PATHS.len() as u64));
    group.bench_function("mix_of_8_paths", |b| {
        b.iter(|| {
            for path in PATHS {
                black_box(classify(black_box(path)));
            }
        })
    });
    group.finish();
    let mut group = c.benchmark_group("normalize_host");
    for host in ["example.com", "WWW.Example.COM:443"] {
        group.bench_with_input(BenchmarkId::from_parameter(host), host, |b, host| {
            b.iter(|| black_box(normalize_host(black_box(host))))
        });
    }
    group.finish();
}

fn acme_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (acme, pki) = (dir.path().join("acme"), dir.path().join("pki"));
    std::fs::create_dir_all(&acme).unwrap();
    std::fs::create_dir_all(&pki).unwrap();
    let store = ChallengeStore::new(acme, pki);
    let answer = |token: &str, identifier: Option<&str>| AcmeAnswer {
        key_authorization: Bytes::from(format!(
            "{token}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
        )),
        identifier: identifier.map(Into::into),
        expires: Some(SystemTime::now() + Duration::from_secs(86400)),
        created: SystemTime::now(),
    };
    // A busy node: a thousand pending tokens.
    for i in 0..1_000 {
        let token = format!("pendingToken{i:05}_abcdefghijklmnopqrstuvwxyz");
        store.put_acme(&token, answer(&token, None));
    }
    store.put_acme(TOKEN, answer(TOKEN, None));
    store.put_acme(
        "boundToken_0123456789",
        answer("boundToken_0123456789", Some("a.test")),
    );

    let mut group = c.benchmark_group("acme_answer");
    group.bench_function("hit", |b| {
        b.iter(|| black_box(store.acme_answer(black_box(TOKEN), black_box("a.test"))))
    });
    group.bench_function("hit_bound_identifier", |b| {
        b.iter(|| {
            black_box(store.acme_answer(black_box("boundToken_0123456789"), black_box("a.test")))
        })
    });
    group.bench_function("miss_wrong_host", |b| {
        b.iter(|| {
            black_box(store.acme_answer(black_box("boundToken_0123456789"), black_box("b.test")))
        })
    });
    // An unknown token falls through to the webroot: one failed open(2).
    group.bench_function("miss_webroot_lookup", |b| {
        b.iter(|| black_box(store.acme_answer(black_box("unknownToken_0123456789"), "a.test")))
    });
    group.finish();
}

/// The name certificate `i` covers.
fn bench_name(i: usize) -> String {
    if i % WILDCARD_EVERY == 0 {
        format!("*.w{i}.bench.test")
    } else {
        format!("host{i}.bench.test")
    }
}

/// `count` leaves, one name each; made once and shared by every store size.
fn make_leaves(ca: &TestCa, count: usize) -> Vec<TestLeaf> {
    (0..count)
        .map(|i| {
            ca.leaf(&[bench_name(i).as_str()], Duration::from_secs(90 * 86400))
                .unwrap()
        })
        .collect()
}

/// A store opened from `leaves` written as `<state>/certs/c<i>.pem`, as at start.
fn open_store(dir: &Path, leaves: &[TestLeaf]) -> CertStore {
    std::fs::create_dir_all(dir).unwrap();
    for (i, leaf) in leaves.iter().enumerate() {
        let pem = format!("{}{}", leaf.chain_pem, leaf.key_pem);
        std::fs::write(dir.join(format!("c{i}.pem")), pem).unwrap();
    }
    let (store, failures) = CertStore::open(dir).unwrap();
    assert!(failures.is_empty(), "{} files refused", failures.len());
    assert_eq!(store.snapshot().len(), leaves.len() + 1, "plus the default");
    store
}

fn sni(c: &mut Criterion) {
    let ca = TestCa::new("Bench").unwrap();
    let leaves = make_leaves(&ca, SIZES[SIZES.len() - 1]);
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<(usize, CertStore)> = SIZES
        .iter()
        .map(|&n| (n, open_store(&dir.path().join(n.to_string()), &leaves[..n])))
        .collect();

    let mut group = c.benchmark_group("cert_resolve");
    for (n, store) in &stores {
        let exact = format!("host{}.bench.test", n / 2 + 1);
        let wildcard = format!(
            "x.w{}.bench.test",
            (n / 2 / WILDCARD_EVERY) * WILDCARD_EVERY
        );
        assert!(store.covering(&exact).is_some() && store.covering(&wildcard).is_some());
        let cases = [
            ("exact", Some(exact.as_str())),
            ("wildcard", Some(wildcard.as_str())),
            ("miss_default", Some("nothing.other.test")),
            ("no_sni", None),
        ];
        for (case, name) in cases {
            group.bench_with_input(BenchmarkId::new(case, n), &name, |b, name| {
                b.iter(|| black_box(store.resolve(black_box(*name))))
            });
        }
    }
    group.finish();

    // Publishing copies the snapshot and re-decides the names the certificate touches; the id is
    // the same every time, so the store stays at 10 000 + 1.
    let (n, big) = stores.last().unwrap();
    let extra = ca
        .leaf(&["extra.bench.test"], Duration::from_secs(90 * 86400))
        .unwrap();
    let cert = validate(
        extra.chain_pem.as_bytes(),
        extra.key_pem.as_bytes(),
        &[],
        SystemTime::now(),
    )
    .unwrap();
    let id = CertId::parse("extra").unwrap();
    let mut group = c.benchmark_group("cert_publish");
    group.bench_function(BenchmarkId::new("one_more", n), |b| {
        b.iter(|| black_box(big.publish(&id, cert.clone(), CertSource::Upload)))
    });
    group.finish();
    assert!(big.covering("extra.bench.test").is_some());

    // What an upload costs before it is published: parse, key match, chain, names.
    let mut group = c.benchmark_group("cert_validate");
    group.bench_function("leaf_and_intermediate", |b| {
        b.iter(|| {
            black_box(validate(
                black_box(extra.chain_pem.as_bytes()),
                black_box(extra.key_pem.as_bytes()),
                &["extra.bench.test".to_owned()],
                SystemTime::now(),
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, classification, acme_lookup, sni);
criterion_main!(benches);
