//! TLS termination end to end: ALPN (h2 and http/1.1), SNI selection among several certificates,
//! hot swap through the admin API, every refusal reason, and start-up with a corrupt file.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use dcv_proxy::testkit::{TestCa, TestLeaf};

use common::{
    collect, get, h1_client, h2_client, key_authorization, pem_fingerprint, tls_connect, Node,
    TestOrigin,
};

const TOKEN: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The fingerprint of the node's `default` certificate, from the admin API.
async fn default_fingerprint(node: &Node) -> String {
    let resp = node.admin_get("/v1/certificates/default").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["sha256_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn https_offers_h2_and_http11() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    let token = "h2TokenXYZ_0123456789";
    node.put_token(token, &key_authorization(token), None).await;

    let conn = tls_connect(node.https_addr(), Some("a.test"), &["h2", "http/1.1"], None)
        .await
        .unwrap();
    assert_eq!(conn.alpn().as_deref(), Some(&b"h2"[..]));
    let mut h2 = h2_client(conn.stream).await;
    let resp = collect(
        h2.send_request(get("https://a.test/over-h2?x=1", None))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), origin.body_for("/over-h2?x=1"));
    let challenge = collect(
        h2.send_request(get(
            &format!("https://a.test/.well-known/acme-challenge/{token}"),
            None,
        ))
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(challenge.status, 200);
    assert_eq!(challenge.text(), key_authorization(token));

    let conn = tls_connect(node.https_addr(), Some("a.test"), &["http/1.1"], None)
        .await
        .unwrap();
    assert_eq!(conn.alpn().as_deref(), Some(&b"http/1.1"[..]));
    let mut h1 = h1_client(conn.stream).await;
    let resp = collect(
        h1.send_request(get("/over-h1", Some("a.test")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.text(), origin.body_for("/over-h1"));

    let seen = origin.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for r in &seen {
        assert_eq!(r.host.as_deref(), Some("a.test"), "{r:?}");
        assert_eq!(r.x_forwarded_proto.as_deref(), Some("https"), "{r:?}");
    }
}

#[tokio::test]
async fn sni_picks_the_right_certificate_among_several() {
    let node = Node::builder().start().await;
    let ca = TestCa::new("SNI").unwrap();
    let exact = ca.leaf(&["a.test"], 30 * DAY).unwrap();
    let wildcard = ca.leaf(&["*.w.test"], 30 * DAY).unwrap();
    let multi = ca.leaf(&["b.test", "www.b.test"], 30 * DAY).unwrap();
    node.install_cert("a", &exact, &["a.test"]).await;
    node.install_cert("wild", &wildcard, &["*.w.test"]).await;
    node.install_cert("b", &multi, &[]).await;
    let default = default_fingerprint(&node).await;

    let cases: [(Option<&str>, &str); 9] = [
        (Some("a.test"), &exact.leaf_pem),
        (Some("x.w.test"), &wildcard.leaf_pem),
        (Some("other.w.test"), &wildcard.leaf_pem),
        (Some("b.test"), &multi.leaf_pem),
        (Some("www.b.test"), &multi.leaf_pem),
        // A wildcard covers exactly one label.
        (Some("w.test"), ""),
        (Some("deep.x.w.test"), ""),
        (Some("unknown.test"), ""),
        (None, ""),
    ];
    for (sni, leaf) in cases {
        let want = if leaf.is_empty() {
            default.clone()
        } else {
            pem_fingerprint(leaf)
        };
        let presented = node.presented(sni).await;
        assert_eq!(presented.fingerprint(), want, "SNI {sni:?}");
    }
    assert_eq!(
        node.presented(None).await.names(),
        ["dcv-proxy.invalid"],
        "no SNI gets the self-signed default"
    );

    // The chains presented are complete: a client that trusts only the root accepts them.
    for sni in ["a.test", "x.w.test", "www.b.test"] {
        let conn = tls_connect(node.https_addr(), Some(sni), &[], Some(&ca.root_pem()))
            .await
            .unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert_eq!(
            conn.presented.chain.len(),
            2,
            "{sni}: leaf and intermediate"
        );
    }
    assert!(
        tls_connect(
            node.https_addr(),
            Some("unknown.test"),
            &[],
            Some(&ca.root_pem())
        )
        .await
        .is_err(),
        "the default certificate must not verify for an unknown name"
    );
}

#[tokio::test]
async fn swap_is_seen_by_the_next_handshake_while_an_open_connection_keeps_working() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    let ca = TestCa::new("Swap").unwrap();
    let first = ca.leaf(&["a.test"], 30 * DAY).unwrap();
    let second = ca.leaf(&["a.test"], 60 * DAY).unwrap();
    node.install_cert("a", &first, &["a.test"]).await;

    let conn = tls_connect(node.https_addr(), Some("a.test"), &["http/1.1"], None)
        .await
        .unwrap();
    assert_eq!(
        conn.presented.fingerprint(),
        pem_fingerprint(&first.leaf_pem)
    );
    let mut open = h1_client(conn.stream).await;
    let resp = collect(
        open.send_request(get("/before", Some("a.test")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.text(), origin.body_for("/before"));

    node.install_cert("a", &second, &["a.test"]).await;
    assert_eq!(
        node.presented(Some("a.test")).await.fingerprint(),
        pem_fingerprint(&second.leaf_pem),
        "the next handshake gets the new certificate"
    );

    let resp = collect(
        open.send_request(get("/after", Some("a.test")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), origin.body_for("/after"));
    let paths: Vec<_> = origin.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/before", "/after"]);
}

#[tokio::test]
async fn exact_beats_wildcard_the_longest_lived_wins_and_deletion_falls_back() {
    let node = Node::builder().start().await;
    let ca = TestCa::new("Precedence").unwrap();
    let wildcard = ca.leaf(&["*.p.test"], 60 * DAY).unwrap();
    let exact = ca.leaf(&["x.p.test"], 10 * DAY).unwrap();
    node.install_cert("wild", &wildcard, &[]).await;
    node.install_cert("exact", &exact, &[]).await;
    let fp = |leaf: &TestLeaf| pem_fingerprint(&leaf.leaf_pem);
    assert_eq!(
        node.presented(Some("x.p.test")).await.fingerprint(),
        fp(&exact)
    );
    assert_eq!(
        node.presented(Some("y.p.test")).await.fingerprint(),
        fp(&wildcard)
    );

    // A renewal uploaded under a new id wins; an older one uploaded later does not shadow it.
    let renewed = ca.leaf(&["x.p.test"], 90 * DAY).unwrap();
    let stale = ca.leaf(&["x.p.test"], 5 * DAY).unwrap();
    node.install_cert("exact-renewed", &renewed, &[]).await;
    node.install_cert("exact-stale", &stale, &[]).await;
    assert_eq!(
        node.presented(Some("x.p.test")).await.fingerprint(),
        fp(&renewed)
    );

    // Deleting falls back to what is left: the other exact ones, then the wildcard.
    for (id, then) in [
        ("exact-renewed", fp(&exact)),
        ("exact", fp(&stale)),
        ("exact-stale", fp(&wildcard)),
    ] {
        let resp = node.admin_delete(&format!("/v1/certificates/{id}")).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            node.presented(Some("x.p.test")).await.fingerprint(),
            then,
            "after deleting {id}"
        );
    }
    assert_eq!(
        node.admin_delete("/v1/certificates/exact").await.status,
        404
    );
    assert!(!node.state_dir().join("certs/exact.pem").exists());

    // The default can be replaced (not removed); no SNI then gets the replacement.
    let replacement = ca.leaf(&["edge.p.test"], 30 * DAY).unwrap();
    node.install_cert("default", &replacement, &[]).await;
    assert_eq!(node.presented(None).await.fingerprint(), fp(&replacement));
    assert_eq!(
        node.presented(Some("unknown.test")).await.fingerprint(),
        fp(&replacement)
    );
}

/// One refused upload: what it sends and the reason it must get.
struct Refused {
    reason: &'static str,
    certificate: String,
    private_key: String,
    names: Vec<&'static str>,
}

fn refusals(ca: &TestCa, good: &TestLeaf) -> Vec<Refused> {
    let other_ca = TestCa::new("Other").unwrap();
    let other = other_ca.leaf(&["x.test"], 30 * DAY).unwrap();
    let other_intermediate = other.chain_pem.strip_prefix(&other.leaf_pem).unwrap();
    let now = SystemTime::now();
    let expired = ca
        .leaf_valid_between(&["r.test"], now - 60 * DAY, now - DAY)
        .unwrap();
    let future = ca
        .leaf_valid_between(&["r.test"], now + DAY, now + 60 * DAY)
        .unwrap();
    let nameless = ca.leaf(&[], 30 * DAY).unwrap();
    // A CA certificate first, with its own key: the chain is upside down.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec!["r.test".to_owned()]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_first = ca_params.self_signed(&ca_key).unwrap();

    let r = |reason, certificate: String, private_key: &str, names: &[&'static str]| Refused {
        reason,
        certificate,
        private_key: private_key.to_owned(),
        names: names.to_vec(),
    };
    let key = good.key_pem.as_str();
    vec![
        r("not_pem", "this is not a certificate".into(), key, &[]),
        r("not_pem", "r.test.crt".into(), key, &[]),
        r("stray_spaces", format!("  {}", good.chain_pem), key, &[]),
        r(
            "wrong_marker",
            good.chain_pem
                .replacen("-----END CERTIFICATE-----", "-----END PRIVATE KEY-----", 1),
            key,
            &[],
        ),
        r(
            "wrong_marker",
            good.chain_pem.replacen("-----BEGIN", "----BEGIN", 1),
            key,
            &[],
        ),
        r(
            "bad_base64",
            good.chain_pem.replacen("\nMII", "\nM*I", 1),
            key,
            &[],
        ),
        r("no_certificate", good.key_pem.clone(), "", &[]),
        r("no_key", good.chain_pem.clone(), "", &[]),
        r(
            "bad_der",
            format!(
                "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n{}",
                good.chain_pem
            ),
            key,
            &[],
        ),
        r(
            "unsupported_key",
            good.chain_pem.clone(),
            "-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n",
            &[],
        ),
        r("key_mismatch", good.chain_pem.clone(), &other.key_pem, &[]),
        r(
            "chain_order",
            format!("{}{}", ca_first.pem(), good.leaf_pem),
            &ca_key.serialize_pem(),
            &[],
        ),
        r("chain_incomplete", good.leaf_pem.clone(), key, &[]),
        r(
            "chain_broken",
            format!("{}{other_intermediate}", good.leaf_pem),
            key,
            &[],
        ),
        r("expired", expired.chain_pem, &expired.key_pem, &[]),
        r("not_yet_valid", future.chain_pem, &future.key_pem, &[]),
        r("no_names", nameless.chain_pem, &nameless.key_pem, &[]),
        r(
            "name_not_covered",
            other.chain_pem.clone(),
            &other.key_pem,
            &["r.test"],
        ),
    ]
}

#[tokio::test]
async fn each_refusal_reason_is_a_422_and_the_served_certificate_stays() {
    let node = Node::builder().start().await;
    let ca = TestCa::new("Refusals").unwrap();
    let good = ca.leaf(&["r.test"], 30 * DAY).unwrap();
    node.install_cert("site", &good, &["r.test"]).await;
    let served = pem_fingerprint(&good.leaf_pem);
    assert_eq!(node.presented(Some("r.test")).await.fingerprint(), served);

    let cases = refusals(&ca, &good);
    for case in &cases {
        let resp = node
            .put_cert("site", &case.certificate, &case.private_key, &case.names)
            .await;
        assert_eq!(resp.status, 422, "{}: {}", case.reason, resp.text());
        let body = resp.json();
        assert_eq!(body["reason"], case.reason, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
        assert_eq!(
            node.presented(Some("r.test")).await.fingerprint(),
            served,
            "after a refused {} upload",
            case.reason
        );
    }

    let listed = node.admin_get("/v1/certificates/site").await.json();
    assert_eq!(listed["sha256_fingerprint"], served.as_str());
    let metrics = node.metrics().await;
    for case in &cases {
        let expected = cases.iter().filter(|c| c.reason == case.reason).count() as f64;
        assert_eq!(
            metrics.value("dcv_certificate_loads_total", &[("result", case.reason)]),
            Some(expected),
            "{}\n{}",
            case.reason,
            metrics.text
        );
    }
    assert_eq!(
        metrics.value("dcv_certificate_loads_total", &[("result", "ok")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_corrupt_certificate_file_at_start_is_skipped_and_the_others_load() {
    let ca = TestCa::new("Start").unwrap();
    let good = ca.leaf(&["good.test"], 30 * DAY).unwrap();
    let now = SystemTime::now();
    let expired = ca
        .leaf_valid_between(&["old.test"], now - 60 * DAY, now - DAY)
        .unwrap();
    let good_file = format!("{}{}", good.chain_pem, good.key_pem);
    let expired_file = format!("{}{}", expired.chain_pem, expired.key_pem);
    let node = Node::builder()
        .prepare(move |state| {
            let certs = state.join("certs");
            std::fs::create_dir_all(&certs).unwrap();
            std::fs::write(certs.join("good.pem"), good_file).unwrap();
            std::fs::write(certs.join("broken.pem"), b"\x00\x01 not a certificate").unwrap();
            std::fs::write(certs.join("old.pem"), expired_file).unwrap();
        })
        .start()
        .await;

    assert_eq!(
        node.presented(Some("good.test")).await.fingerprint(),
        pem_fingerprint(&good.leaf_pem)
    );
    let default = default_fingerprint(&node).await;
    assert_eq!(
        node.presented(Some("old.test")).await.fingerprint(),
        default
    );

    let list = node.admin_get("/v1/certificates").await.json();
    let mut ids: Vec<&str> = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["default", "good"]);

    let metrics = node.metrics().await;
    let loads = |result| metrics.value("dcv_certificate_loads_total", &[("result", result)]);
    assert_eq!(loads("ok"), Some(1.0), "{}", metrics.text);
    assert_eq!(loads("not_pem"), Some(1.0), "{}", metrics.text);
    assert_eq!(loads("expired"), Some(1.0), "{}", metrics.text);
    let log = node.log();
    assert!(
        log.contains("broken.pem") && log.contains("old.pem"),
        "the refused files are named in the log:\n{log}"
    );
}

// ---- session resumption

/// A client session store that counts the TLS 1.3 tickets it is given.
#[derive(Debug)]
struct CountingStore {
    inner: rustls::client::ClientSessionMemoryCache,
    tickets: std::sync::atomic::AtomicUsize,
}

impl CountingStore {
    fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            inner: rustls::client::ClientSessionMemoryCache::new(64),
            tickets: std::sync::atomic::AtomicUsize::new(0),
        })
    }
    fn tickets(&self) -> usize {
        self.tickets.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl rustls::client::ClientSessionStore for CountingStore {
    fn set_kx_hint(
        &self,
        server_name: rustls::pki_types::ServerName<'static>,
        group: rustls::NamedGroup,
    ) {
        self.inner.set_kx_hint(server_name, group)
    }
    fn kx_hint(
        &self,
        server_name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(server_name)
    }
    fn set_tls12_session(
        &self,
        server_name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value)
    }
    fn tls12_session(
        &self,
        server_name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }
    fn remove_tls12_session(&self, server_name: &rustls::pki_types::ServerName<'static>) {
        self.inner.remove_tls12_session(server_name)
    }
    fn insert_tls13_ticket(
        &self,
        server_name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.tickets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.insert_tls13_ticket(server_name, value)
    }
    fn take_tls13_ticket(
        &self,
        server_name: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}

/// A TLS 1.3 client remembering its sessions in its own store. rustls resumes only with the
/// configuration (the certificate verifier) that made the session: one per client.
struct Client {
    config: std::sync::Arc<rustls::ClientConfig>,
    store: std::sync::Arc<CountingStore>,
    /// The cipher suite of each connection.
    suites: std::sync::Mutex<Vec<Option<rustls::CipherSuite>>>,
}

impl Client {
    fn new() -> Self {
        Self::with_provider(rustls::crypto::ring::default_provider())
    }

    fn with_provider(provider: rustls::crypto::CryptoProvider) -> Self {
        let store = CountingStore::new();
        let provider = std::sync::Arc::new(provider);
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(common::any_certificate())
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::store(store.clone());
        Self {
            config: std::sync::Arc::new(config),
            store,
            suites: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn tickets(&self) -> usize {
        self.store.tickets()
    }
}

/// One HTTP/1.1 request over a new connection of `client`; whether the handshake was a
/// resumption.
async fn resumes(node: &Node, client: &Client) -> bool {
    resumes_at(node.https_addr(), client).await
}

/// [`resumes`] on the HTTPS listener at `addr`.
async fn resumes_at(addr: std::net::SocketAddr, client: &Client) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client.config.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    client
        .suites
        .lock()
        .unwrap()
        .push(tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite()));
    let path = format!("/.well-known/acme-challenge/{TOKEN}");
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    // Reading the answer reads the tickets sent before it.
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    resumed
}

#[tokio::test]
async fn one_stateless_ticket_per_handshake_resumes_past_any_session_cache() {
    let node = Node::builder().start().await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    let first = Client::new();
    assert!(
        !resumes(&node, &first).await,
        "the first handshake is a full one"
    );
    assert_eq!(first.tickets(), 1);
    // More clients than rustls's default session cache holds (256 sessions).
    for _ in 0..300 {
        resumes(&node, &Client::new()).await;
    }
    assert!(resumes(&node, &first).await, "the first client resumes");
    assert_eq!(first.tickets(), 2, "and gets one new ticket");
    assert!(resumes(&node, &first).await, "and again");
}

#[tokio::test]
async fn a_ticket_from_one_https_listener_resumes_on_another() {
    let second = common::free_addr();
    let node = Node::builder().second_https_listener(second).start().await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    let client = Client::new();
    assert!(!resumes(&node, &client).await);
    assert!(
        resumes_at(second, &client).await,
        "one ticket key for all listeners"
    );
}

#[tokio::test]
async fn tickets_are_configurable_and_zero_turns_resumption_off() {
    let node = Node::builder().tls13_tickets(0).start().await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    let store = Client::new();
    assert!(!resumes(&node, &store).await);
    assert!(!resumes(&node, &store).await, "no ticket, no resumption");
    assert_eq!(store.tickets(), 0);
    drop(node);
    let node = Node::builder().tls13_tickets(3).start().await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    let store = Client::new();
    assert!(!resumes(&node, &store).await);
    assert_eq!(store.tickets(), 3);
}

#[tokio::test]
async fn the_servers_suite_order_decides_for_openssl_ordered_clients() {
    use rustls::crypto::ring::cipher_suite as cs;
    let node = Node::builder().start().await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    // OpenSSL's TLS 1.3 order: AES-256-GCM, ChaCha20, AES-128-GCM.
    let openssl_order = Client::with_provider(rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS13_AES_128_GCM_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    });
    resumes(&node, &openssl_order).await;
    // A client without AES-128-GCM still gets ChaCha20.
    let chacha_only = Client::with_provider(rustls::crypto::CryptoProvider {
        cipher_suites: vec![cs::TLS13_CHACHA20_POLY1305_SHA256],
        ..rustls::crypto::ring::default_provider()
    });
    resumes(&node, &chacha_only).await;
    assert_eq!(
        *openssl_order.suites.lock().unwrap(),
        [Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)]
    );
    assert_eq!(
        *chacha_only.suites.lock().unwrap(),
        [Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)]
    );
}
