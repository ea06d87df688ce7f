//! ACME against a real CA: Pebble and pebble-challtestsrv from Debian, started per test on
//! loopback. Each test runs the real dcv-proxy binary whose listeners Pebble validates.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use common::pebble::{Pebble, PebbleConfig};
use common::{eventually, free_addr, tls_connect, Node};
use dcv_proxy::catalogue::Cause;

/// A node whose listeners Pebble validates, configured with `extra` (certificates etc.).
async fn node_for(pebble: &Pebble, addrs: (SocketAddr, SocketAddr), extra: &str) -> Node {
    Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!("{}\n{extra}", pebble.acme_config()))
        .start()
        .await
}

fn certificate(names: &[&str], challenge: &str) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!(
        "\n[[certificate]]\nnames = [{}]\nchallenge = {challenge:?}\n",
        names.join(", ")
    )
}

/// The certificate `id` once it was issued over ACME (optionally: other than `previous`) and
/// the renewer has recorded the order that made it: the certificate is served a moment before
/// (state `ordering`, step `install`), and a test reading the status then would race it.
async fn issued(node: &Node, id: &str, previous: Option<&str>) -> serde_json::Value {
    eventually(&format!("certificate {id} issued over ACME"), || async {
        let rsp = node.admin_get(&format!("/v1/certificates/{id}")).await;
        let cert = rsp.json();
        let fresh =
            cert["source"] == "acme" && previous.is_none_or(|p| cert["serial"].as_str() != Some(p));
        let recorded = cert["acme"]["state"] != "ordering";
        (rsp.status == 200 && fresh && recorded).then_some(cert)
    })
    .await
}

async fn acme_status(node: &Node, id: &str) -> serde_json::Value {
    node.admin_get("/v1/status").await.json()["acme"]["certificates"][id].clone()
}

/// `dcv-proxy certs list [--json]` against the node: its standard output.
fn certs_list(node: &Node, json: bool) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dcv-proxy"));
    command
        .arg("--config")
        .arg(node.config_path())
        .args(["certs", "list"]);
    if json {
        command.arg("--json");
    }
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test]
async fn http01_two_names_with_redirect_on_is_served_and_chains_to_pebble() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let started = Instant::now();
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .redirect_to_https()
        .extra_config(&format!(
            "{}\n{}",
            pebble.acme_config(),
            certificate(&["a.example.test", "www.a.example.test"], "http-01")
        ))
        .start()
        .await;
    let cert = issued(&node, "a.example.test", None).await;
    eprintln!("first certificate after {:?} from start", started.elapsed());
    assert_eq!(
        cert["names"],
        serde_json::json!(["a.example.test", "www.a.example.test"])
    );

    let root = pebble.issuer_root().await;
    for name in ["a.example.test", "www.a.example.test"] {
        // The next handshake presents it, and it verifies against Pebble's root for that name.
        let conn = tls_connect(node.https_addr(), Some(name), &["http/1.1"], Some(&root))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            conn.presented.fingerprint(),
            cert["sha256_fingerprint"].as_str().unwrap()
        );
    }
    // The order's record follows the swap by a moment.
    let status = eventually("the order recorded", || async {
        let status = acme_status(&node, "a.example.test").await;
        (status["last_order"]["result"] == "valid").then_some(status)
    })
    .await;
    // Pebble's five-year certificates: renewed with a third of the lifetime left.
    assert_eq!(status["renewal_basis"], "third-left");
    // The order's tokens are gone once it ended.
    let tokens = node.admin_get("/v1/acme/tokens").await.json();
    assert_eq!(tokens["tokens"], serde_json::json!([]));
    let metrics = node.metrics().await;
    assert_eq!(
        metrics.count("dcv_acme_orders_total", &[("result", "valid")]),
        1.0
    );
    // Pebble validated both names over HTTP, through the redirect-everything listener.
    let hits = metrics.count(
        "dcv_challenge_requests_total",
        &[("kind", "acme"), ("scheme", "http"), ("result", "hit")],
    );
    assert!(hits >= 2.0, "{hits}");
    assert!(metrics
        .value(
            "dcv_certificate_renewal_timestamp_seconds",
            &[("certificate", "a.example.test")]
        )
        .is_some());
}

#[tokio::test]
async fn tls_alpn01_issues_without_http() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let node = node_for(
        &pebble,
        addrs,
        &certificate(&["alpn.example.test"], "tls-alpn-01"),
    )
    .await;
    let cert = issued(&node, "alpn.example.test", None).await;
    let root = pebble.issuer_root().await;
    let conn = tls_connect(
        node.https_addr(),
        Some("alpn.example.test"),
        &["h2", "http/1.1"],
        Some(&root),
    )
    .await
    .unwrap();
    assert_eq!(
        conn.presented.fingerprint(),
        cert["sha256_fingerprint"].as_str().unwrap()
    );
    // No HTTP-01 answer was involved.
    let metrics = node.metrics().await;
    let http_hits = metrics.count(
        "dcv_challenge_requests_total",
        &[("kind", "acme"), ("scheme", "http"), ("result", "hit")],
    );
    assert_eq!(http_hits, 0.0);
}

#[tokio::test]
async fn restart_reuses_the_account_and_renews_on_request() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let mut node = node_for(&pebble, addrs, &certificate(&["r.example.test"], "http-01")).await;
    let first = issued(&node, "r.example.test", None).await;
    let acme_dir = node.state_dir().join("acme");
    let accounts = || -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(&acme_dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = accounts();
    assert_eq!(before.len(), 1);

    node.restart().await;
    let renew = node
        .admin_request(
            "POST",
            "/v1/certificates/r.example.test/renew",
            None,
            Some(&node.admin_token()),
        )
        .await;
    assert_eq!(renew.status, 202, "{}", renew.text());
    let second = issued(&node, "r.example.test", first["serial"].as_str()).await;
    assert_ne!(first["sha256_fingerprint"], second["sha256_fingerprint"]);
    assert_eq!(accounts(), before, "the account file is reused as it was");
    assert_eq!(node.log().matches("ACME account created").count(), 1);
    // A fresh key for every order (P7).
    assert_ne!(first["sha256_fingerprint"], second["sha256_fingerprint"]);
}

#[tokio::test]
async fn ca_outage_backs_off_keeps_serving_and_recovers() {
    let addrs = (free_addr(), free_addr());
    let mut pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let node = node_for(&pebble, addrs, &certificate(&["o.example.test"], "http-01")).await;
    let first = issued(&node, "o.example.test", None).await;

    pebble.stop();
    let token = node.admin_token();
    let renew = node
        .admin_request(
            "POST",
            "/v1/certificates/o.example.test/renew",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(renew.status, 202);
    let failed = eventually("the renewal to fail while the CA is down", || async {
        let st = acme_status(&node, "o.example.test").await;
        (st["consecutive_failures"].as_u64() >= Some(1)).then_some(st)
    })
    .await;
    assert_eq!(failed["state"], "failed");
    assert!(failed["next_attempt"].is_string(), "{failed}");
    assert_eq!(failed["last_order"]["result"], "failed");
    // The old certificate is still the one presented.
    let conn = tls_connect(
        node.https_addr(),
        Some("o.example.test"),
        &["http/1.1"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        conn.presented.fingerprint(),
        first["sha256_fingerprint"].as_str().unwrap()
    );
    assert!(
        node.metrics()
            .await
            .count("dcv_acme_orders_total", &[("result", "failed")])
            >= 1.0
    );

    // Back (as a fresh CA that forgot the account): the retry succeeds on its own.
    pebble.restart().await;
    let second = issued(&node, "o.example.test", first["serial"].as_str()).await;
    let root = pebble.issuer_root().await;
    let conn = tls_connect(
        node.https_addr(),
        Some("o.example.test"),
        &["http/1.1"],
        Some(&root),
    )
    .await
    .unwrap();
    assert_eq!(
        conn.presented.fingerprint(),
        second["sha256_fingerprint"].as_str().unwrap()
    );
    assert_eq!(
        acme_status(&node, "o.example.test").await["consecutive_failures"],
        0
    );
}

#[tokio::test]
async fn rejected_name_records_the_problem() {
    let addrs = (free_addr(), free_addr());
    let mut config = PebbleConfig::for_node(addrs.0, addrs.1);
    config.blocklist = vec!["blocked.example.test".into()];
    let pebble = Pebble::start(config).await;
    let node = node_for(
        &pebble,
        addrs,
        &certificate(&["blocked.example.test"], "http-01"),
    )
    .await;
    let status = eventually("the order to fail", || async {
        let st = acme_status(&node, "blocked.example.test").await;
        st["last_order"]["problem"].is_object().then_some(st)
    })
    .await;
    assert_eq!(
        status["last_order"]["problem"]["type"],
        "urn:ietf:params:acme:error:rejectedIdentifier"
    );
    assert!(status["last_order"]["problem"]["detail"]
        .as_str()
        .unwrap()
        .contains("blocked.example.test"));
    // The catalogue's reading: the CA's policy (P2), with its remedy.
    let error = &status["last_error"];
    assert_eq!(error["cause"], "P2", "{status}");
    assert_eq!(error["remedy"], Cause::P2.remedy());
    assert_eq!(error["ca_type"], "rejectedIdentifier");
    let metrics = node.metrics().await;
    assert!(metrics.count("dcv_acme_problems_total", &[("type", "rejectedIdentifier")]) >= 1.0);
    assert!(
        metrics.count(
            "dcv_acme_order_failures_total",
            &[
                ("certificate", "blocked.example.test"),
                ("cause", "P2"),
                ("type", "rejectedIdentifier")
            ]
        ) >= 1.0
    );
    // `certs list` shows it too.
    let text = certs_list(&node, false);
    assert!(text.contains("rejectedIdentifier"), "{text}");
    assert!(
        text.contains(&format!(
            "blocked.example.test: last order failed: P2: {}",
            Cause::P2.remedy()
        )),
        "{text}"
    );
    // Nothing was issued; the default certificate is still what the name gets.
    assert_eq!(
        node.admin_get("/v1/certificates/blocked.example.test")
            .await
            .json()["issued"],
        false
    );
}

#[tokio::test]
async fn short_lifetime_certificate_renews_by_itself() {
    let addrs = (free_addr(), free_addr());
    let mut config = PebbleConfig::for_node(addrs.0, addrs.1);
    config.validity_secs = 15;
    let pebble = Pebble::start(config).await;
    let node = node_for(
        &pebble,
        addrs,
        &certificate(&["short.example.test"], "http-01"),
    )
    .await;
    let first = issued(&node, "short.example.test", None).await;
    // The renewer plans the next renewal on its pass after the install: on a loaded machine the
    // status can be read before that.
    let planned = eventually("the next renewal is planned", || async {
        let status = acme_status(&node, "short.example.test").await;
        humantime::parse_rfc3339(status["next_renewal"].as_str()?).ok()
    })
    .await;
    let not_after = humantime::parse_rfc3339(first["not_after"].as_str().unwrap()).unwrap();
    assert!(planned < not_after, "renewal planned before expiry");
    // A lifetime under 10 days renews with half of it left, not a third.
    let status = acme_status(&node, "short.example.test").await;
    assert_eq!(status["renewal_basis"], "half-left", "{status}");
    // Renewed without anyone asking, before the first one expired.
    let second = issued(&node, "short.example.test", first["serial"].as_str()).await;
    assert!(SystemTime::now() < not_after + Duration::from_secs(1));
    let conn = tls_connect(
        node.https_addr(),
        Some("short.example.test"),
        &["http/1.1"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        conn.presented.fingerprint(),
        second["sha256_fingerprint"].as_str().unwrap()
    );
}

#[tokio::test]
async fn external_account_binding_is_sent_when_required() {
    const HMAC: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let addrs = (free_addr(), free_addr());
    let mut config = PebbleConfig::for_node(addrs.0, addrs.1);
    config.eab = Some(("kid-1".into(), HMAC.into()));
    let pebble = Pebble::start(config).await;
    let node = node_for(
        &pebble,
        addrs,
        &certificate(&["eab.example.test"], "http-01"),
    )
    .await;
    issued(&node, "eab.example.test", None).await;

    // Without the binding the CA refuses the account, and the status says why.
    let other = (free_addr(), free_addr());
    let acme = pebble
        .acme_config()
        .lines()
        .filter(|l| !l.starts_with("eab_"))
        .collect::<Vec<_>>()
        .join("\n");
    let node = Node::builder()
        .listen(other.0, other.1)
        .extra_config(&format!(
            "{acme}\n{}",
            certificate(&["noeab.example.test"], "http-01")
        ))
        .start()
        .await;
    let account = eventually("the account to be refused", || async {
        let acme = node.admin_get("/v1/status").await.json()["acme"]["account"].clone();
        (acme["state"] == "error").then_some(acme)
    })
    .await;
    assert_eq!(
        account["problem"]["type"],
        "urn:ietf:params:acme:error:externalAccountRequired"
    );
}

#[tokio::test]
async fn bad_nonces_are_retried() {
    let addrs = (free_addr(), free_addr());
    let mut config = PebbleConfig::for_node(addrs.0, addrs.1);
    // Four in ten good nonces refused: an order of a dozen requests meets several.
    config.nonce_reject = 40;
    let pebble = Pebble::start(config).await;
    let node = node_for(
        &pebble,
        addrs,
        &certificate(&["nonce.example.test"], "http-01"),
    )
    .await;
    issued(&node, "nonce.example.test", None).await;
}

#[tokio::test]
async fn rsa_keys_when_configured() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    // `key_type` belongs to [acme], which `node_for` ends with.
    let extra = format!(
        "key_type = \"rsa-2048\"\n{}",
        certificate(&["rsa.example.test"], "http-01")
    );
    let node = node_for(&pebble, addrs, &extra).await;
    issued(&node, "rsa.example.test", None).await;
    let conn = tls_connect(
        node.https_addr(),
        Some("rsa.example.test"),
        &["http/1.1"],
        None,
    )
    .await
    .unwrap();
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, leaf) = X509Certificate::from_der(&conn.presented.chain[0]).unwrap();
    assert_eq!(
        leaf.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.113549.1.1.1",
        "rsaEncryption"
    );
}

#[tokio::test]
async fn stateless_http01_answers_any_token_on_configured_names_only() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let extra = format!(
        "stateless_http01 = true\n{}",
        certificate(&["sl.example.test"], "http-01")
    );
    let node = node_for(&pebble, addrs, &extra).await;
    let thumbprint = eventually("the account", || async {
        let acme = node.admin_get("/v1/status").await.json()["acme"]["account"].clone();
        acme["thumbprint"].as_str().map(str::to_owned)
    })
    .await;
    let token = "NeverSeenByThisNode_0123456789abcdef";
    let rsp = node
        .http_get(
            "sl.example.test",
            &format!("/.well-known/acme-challenge/{token}"),
        )
        .await;
    assert_eq!(rsp.status, 200);
    assert_eq!(rsp.text(), format!("{token}.{thumbprint}"));
    let rsp = node
        .http_get(
            "other.example.test",
            &format!("/.well-known/acme-challenge/{token}"),
        )
        .await;
    assert_eq!(rsp.status, 404);
    // And the real issuance still works alongside.
    issued(&node, "sl.example.test", None).await;
}

#[tokio::test]
async fn lego_with_webroot_gets_its_certificate_through_the_node() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let node = Node::builder().listen(addrs.0, addrs.1).start().await;
    let work = tempfile::tempdir().unwrap();
    let webroot = node.state_dir().join("webroot");
    let out = tokio::process::Command::new("lego")
        .env("LEGO_CA_CERTIFICATES", pebble.api_root())
        .args(["--server", &pebble.directory_url()])
        .args(["--accept-tos", "--email", "lego@example.test"])
        .arg("--path")
        .arg(work.path())
        .args(["--http", "--http.webroot"])
        .arg(&webroot)
        .args(["-d", "lego.example.test", "run"])
        .output()
        .await
        .expect("run lego (Debian package `lego`)");
    assert!(
        out.status.success(),
        "lego failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(work
        .path()
        .join("certificates/lego.example.test.crt")
        .exists());
    let hits = node.metrics().await.count(
        "dcv_challenge_requests_total",
        &[("kind", "webroot"), ("scheme", "http"), ("result", "hit")],
    );
    assert!(
        hits >= 1.0,
        "the CA's fetches were answered from the webroot"
    );
}

/// An HTTPS stand-in in front of Pebble for what Pebble 2.4.0 lacks: it serves Pebble's
/// directory with changes (a `renewalInfo` URL of its own, or `newOrder` pointing at itself),
/// a fixed ARI suggested window for every certificate, and a `rateLimited` problem with
/// `Retry-After` on `/limited`.
struct CaFront {
    addr: SocketAddr,
    root_pem: String,
    task: tokio::task::JoinHandle<()>,
    /// The suggested window answered for every certificate; [`CaFront::set_window`] moves it.
    window: std::sync::Arc<std::sync::Mutex<(SystemTime, SystemTime)>>,
}

impl CaFront {
    async fn start_on(
        addr: SocketAddr,
        directory: String,
        window: (SystemTime, SystemTime),
    ) -> Self {
        use std::sync::Arc;
        let (config, root_pem) = localhost_tls_config("ari");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let shared_window = Arc::new(std::sync::Mutex::new(window));
        let windows = shared_window.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, directory, windows) =
                    (acceptor.clone(), directory.clone(), windows.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let fmt =
                                |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
                            let window = *windows.lock().unwrap();
                            let ari_body = serde_json::json!({
                                "suggestedWindow": { "start": fmt(window.0), "end": fmt(window.1) }
                            })
                            .to_string();
                            let directory = directory.clone();
                            async move {
                                let rsp = if req.uri().path() == "/dir" {
                                    http::Response::builder()
                                        .header("content-type", "application/json")
                                        .body(http_body_util::Full::new(bytes::Bytes::from(
                                            directory,
                                        )))
                                } else if req.uri().path() == "/limited" {
                                    http::Response::builder()
                                    .status(429)
                                    .header("content-type", "application/problem+json")
                                    .header("retry-after", "3600")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(
                                        r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates already issued for exact set of domains","status":429}"#,
                                    )))
                                } else if req.uri().path().starts_with("/ari/") {
                                    http::Response::builder()
                                        .header("content-type", "application/json")
                                        .header("retry-after", "3600")
                                        .body(http_body_util::Full::new(bytes::Bytes::from(
                                            ari_body,
                                        )))
                                } else {
                                    http::Response::builder()
                                        .status(404)
                                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                                };
                                Ok::<_, std::convert::Infallible>(rsp.unwrap())
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            root_pem,
            task,
            window: shared_window,
        }
    }

    /// Answers `window` for every certificate from now on.
    fn set_window(&self, window: (SystemTime, SystemTime)) {
        *self.window.lock().unwrap() = window;
    }
}

impl CaFront {
    /// An `[acme]` section using this front's directory, trusting both its root and Pebble's.
    fn acme_config(&self, pebble: &Pebble) -> (String, tempfile::NamedTempFile) {
        let bundle = tempfile::NamedTempFile::new().unwrap();
        let pebble_root = std::fs::read_to_string(pebble.api_root()).unwrap();
        std::fs::write(bundle.path(), format!("{pebble_root}\n{}", self.root_pem)).unwrap();
        let acme = format!(
            "{}[acme]\ndirectory = \"https://{}/dir\"\nca_bundle = {:?}\nterms_agreed = true\nretry_schedule = [\"1s\", \"2s\"]\n",
            pebble.probe_config(),
            self.addr,
            bundle.path().display().to_string()
        );
        (acme, bundle)
    }
}

impl Drop for CaFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn ari_window_from_the_ca_sets_the_renewal_time() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    // Pebble's directory, with a renewalInfo endpoint of our own.
    let directory = pebble.api_get_directory().await;
    let mut directory: serde_json::Value = serde_json::from_str(&directory).unwrap();
    let now = SystemTime::now();
    let window = (
        now + Duration::from_secs(3 * 86_400),
        now + Duration::from_secs(4 * 86_400),
    );
    let ari_addr = free_addr();
    directory["renewalInfo"] = format!("https://{ari_addr}/ari").into();
    let ari = CaFront::start_on(ari_addr, directory.to_string(), window).await;
    let (acme, _bundle) = ari.acme_config(&pebble);
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!(
            "{acme}\n{}",
            certificate(&["ari.example.test"], "http-01")
        ))
        .start()
        .await;
    issued(&node, "ari.example.test", None).await;
    let status = eventually("an ARI-based plan", || async {
        let st = acme_status(&node, "ari.example.test").await;
        (st["renewal_basis"] == "ari").then_some(st)
    })
    .await;
    let planned = humantime::parse_rfc3339(status["next_renewal"].as_str().unwrap()).unwrap();
    let (start, end) = (
        window.0 - Duration::from_secs(1),
        window.1 + Duration::from_secs(1),
    );
    assert!(planned >= start && planned <= end, "{status}");
    assert!(status["ari_window"].is_array());
    let gauge = node
        .metrics()
        .await
        .value(
            "dcv_certificate_renewal_timestamp_seconds",
            &[("certificate", "ari.example.test")],
        )
        .unwrap();
    let planned_unix = planned
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    assert_eq!(gauge, planned_unix);
}

#[tokio::test]
async fn rate_limited_order_waits_for_retry_after() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let mut directory: serde_json::Value =
        serde_json::from_str(&pebble.api_get_directory().await).unwrap();
    let front_addr = free_addr();
    directory["newOrder"] = format!("https://{front_addr}/limited").into();
    let now = SystemTime::now();
    let front = CaFront::start_on(front_addr, directory.to_string(), (now, now)).await;
    let (acme, _bundle) = front.acme_config(&pebble);
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!(
            "{acme}\n{}",
            certificate(&["limited.example.test"], "http-01")
        ))
        .start()
        .await;
    let status = eventually("the order to be rate limited", || async {
        let st = acme_status(&node, "limited.example.test").await;
        st["last_order"]["problem"].is_object().then_some(st)
    })
    .await;
    assert_eq!(
        status["last_order"]["problem"]["type"],
        "urn:ietf:params:acme:error:rateLimited"
    );
    // P4: the next attempt is the CA's Retry-After (an hour), not the 1-2 s backoff.
    let next = humantime::parse_rfc3339(status["next_attempt"].as_str().unwrap()).unwrap();
    let wait = next.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(wait > Duration::from_secs(3000), "{status}");
    assert_eq!(status["last_error"]["cause"], "P4", "{status}");
    assert_eq!(status["last_error"]["remedy"], Cause::P4.remedy());
    let metrics = node.metrics().await;
    assert_eq!(
        metrics.count("dcv_acme_problems_total", &[("type", "rateLimited")]),
        1.0
    );
}

#[tokio::test]
async fn failed_gate_keeps_the_ca_out() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    // The name points somewhere no node listens: the CA's fetch would fail (H1).
    pebble
        .dns(
            "add-a",
            serde_json::json!({"host": "gated.example.test", "addresses": ["127.0.0.99"]}),
        )
        .await;
    let acme = pebble.acme_config().replace(
        "self_check_timeout = \"10s\"",
        "self_check_timeout = \"6s\"",
    );
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!(
            "{acme}\n{}",
            certificate(&["gated.example.test"], "http-01")
        ))
        .start()
        .await;
    // While the gate retries, the order says what it is doing, and where.
    let progress = eventually("the order to be in its self-check", || async {
        let st = acme_status(&node, "gated.example.test").await;
        (st["state"] == "ordering" && st["progress"]["step"] == "self-check")
            .then(|| st["progress"].clone())
    })
    .await;
    assert_eq!(progress["name"], "gated.example.test", "{progress}");
    assert!(humantime::parse_rfc3339(progress["until"].as_str().unwrap()).is_ok());
    let listed = eventually("certs list to show the self-check", || async {
        let text = certs_list(&node, false);
        text.contains("gated.example.test: ordering: gated.example.test: answer published, checking it the way the CA will before telling the CA, gives up in ")
            .then_some(text)
    })
    .await;
    assert!(listed.contains("ordering"), "{listed}");
    let status = eventually("the gate to refuse", || async {
        let st = acme_status(&node, "gated.example.test").await;
        st["last_order"]["error"].as_str().map(str::to_owned)
    })
    .await;
    assert!(status.contains("self-check failed"), "{status}");
    assert!(status.contains("H1"), "the cause is named: {status}");
    let error = eventually("the failure's diagnosis", || async {
        let st = acme_status(&node, "gated.example.test").await;
        st["last_error"]
            .is_object()
            .then(|| st["last_error"].clone())
    })
    .await;
    assert_eq!(error["kind"], "self-check", "{error}");
    assert_eq!(error["identifier"], "gated.example.test", "{error}");
    assert!(error["ca_type"].is_null(), "the CA said nothing: {error}");
    // H1 is named with its remedy: as the cause, or as one of several the gate saw.
    let h1 = std::iter::once(&error)
        .chain(error["subproblems"].as_array().into_iter().flatten())
        .find(|e| e["cause"] == "H1")
        .unwrap_or_else(|| panic!("no H1: {error}"));
    assert_eq!(h1["remedy"], Cause::H1.remedy(), "{error}");
    assert!(
        node.metrics().await.count(
            "dcv_acme_order_failures_total",
            &[
                ("certificate", "gated.example.test"),
                ("cause", error["cause"].as_str().unwrap()),
                ("type", "self-check")
            ]
        ) >= 1.0
    );
    let log = node.log();
    assert!(
        log.contains("gated.example.test: answer published, checking it the way the CA will"),
        "{log}"
    );
    // The challenge was never submitted: Pebble saw no challenge response.
    assert!(!pebble.log().contains("/chalZ/"), "{}", pebble.log());
}

/// Every way a secret could be written: each line of its base64, and 32-character windows of
/// the whole (a JSON string of a PEM has `\n` where the file has line breaks).
fn secret_fragments(base64_text: &str) -> Vec<String> {
    let joined: String = base64_text.split_whitespace().collect();
    let mut fragments: Vec<String> = base64_text
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 24)
        .map(str::to_owned)
        .collect();
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i + 32 <= bytes.len() {
        fragments.push(String::from_utf8_lossy(&bytes[i..i + 32]).into_owned());
        i += 16;
    }
    fragments
}

/// The base64 bodies of every PRIVATE KEY block in `pem`.
fn private_key_bodies(pem: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY") {
            current = Some(String::new());
        } else if line.starts_with("-----END") {
            if let Some(body) = current.take() {
                bodies.push(body);
            }
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    bodies
}

#[tokio::test]
async fn private_keys_and_the_account_key_are_never_logged_or_returned() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let node = node_for(
        &pebble,
        addrs,
        &certificate(&["secret.example.test"], "http-01"),
    )
    .await;
    issued(&node, "secret.example.test", None).await;
    let ca = dcv_proxy::testkit::TestCa::new("Secrets").unwrap();
    let leaf = ca
        .leaf(&["upload.example.test"], Duration::from_secs(30 * 86_400))
        .unwrap();
    let mut answers = vec![
        node.put_cert("uploaded", &leaf.chain_pem, &leaf.key_pem, &[])
            .await,
    ];
    assert_eq!(answers[0].status, 201, "{}", answers[0].text());

    // The secrets as they are on disk.
    let mut fragments = Vec::new();
    for entry in std::fs::read_dir(node.state_dir().join("certs")).unwrap() {
        let pem = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for body in private_key_bodies(&pem) {
            fragments.extend(secret_fragments(&body));
        }
    }
    for body in private_key_bodies(&leaf.key_pem) {
        fragments.extend(secret_fragments(&body));
    }
    let mut accounts = 0;
    for entry in std::fs::read_dir(node.state_dir().join("acme")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let account: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let key = account["credentials"]["key_pkcs8"].as_str().unwrap();
            fragments.extend(secret_fragments(key));
            accounts += 1;
        }
    }
    assert_eq!(accounts, 1);
    assert!(fragments.len() > 20, "{}", fragments.len());
    let admin_token = node.admin_token();

    // Every read of the admin API, and the CLI.
    for path in [
        "/healthz",
        "/metrics",
        "/v1/status",
        "/v1/certificates",
        "/v1/certificates/default",
        "/v1/certificates/uploaded",
        "/v1/certificates/secret.example.test",
        "/v1/acme/tokens",
        "/v1/pki",
        "/v1/probe",
        "/v1/probe/txt",
    ] {
        answers.push(node.admin_get(path).await);
    }
    let token = node.admin_token();
    answers.push(
        node.admin_request(
            "POST",
            "/v1/certificates/secret.example.test/renew",
            None,
            Some(&token),
        )
        .await,
    );
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_dcv-proxy"))
        .arg("--config")
        .arg(node.config_path())
        .args(["certs", "list", "--json"])
        .output()
        .unwrap();
    assert!(cli.status.success());
    // The renewal just asked for runs through, logging as it goes.
    issued(
        &node,
        "secret.example.test",
        node.admin_get("/v1/certificates/secret.example.test")
            .await
            .json()["serial"]
            .as_str(),
    )
    .await;

    let log = node.log();
    let mut outputs: Vec<(String, String)> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("admin answer {i}"), a.text()))
        .collect();
    outputs.push((
        "certs list".into(),
        String::from_utf8_lossy(&cli.stdout).into(),
    ));
    outputs.push(("log".into(), log));
    for (what, text) in &outputs {
        assert!(!text.contains("PRIVATE KEY"), "{what} shows a private key");
        assert!(!text.contains(&admin_token), "{what} shows the admin token");
        for fragment in &fragments {
            assert!(
                !text.contains(fragment.as_str()),
                "{what} contains a fragment of a private key: {fragment}"
            );
        }
    }
}

/// A TLS reverse proxy in front of Pebble's whole ACME API: the CA as the node sees it, which a
/// test can make answer `500` to everything, or take away altogether. The `Host` header is
/// kept, so Pebble builds every URL (and checks every JWS `url`) with the proxy's address.
struct CaProxy {
    addr: SocketAddr,
    root_pem: String,
    /// 0: forward everything; 1: 500 to everything; 2: 500 to every POST (the nonce works).
    failing: std::sync::Arc<std::sync::atomic::AtomicU8>,
    /// Until then, Pebble's `valid` authorizations are passed on as `pending`: the CA seems
    /// to take its time validating.
    hold_authz: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
    /// What Pebble 2.4.0 lacks, played in front of it: certificate profiles applied (the
    /// new-order answer names the profile asked for) and names paused after failures.
    ca_rules: std::sync::Arc<std::sync::Mutex<CaRules>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Dropped to close every open connection (the node's client keeps them alive).
    open: Option<tokio::sync::watch::Sender<()>>,
    pebble: SocketAddr,
    pebble_root: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl CaProxy {
    async fn start(pebble: &Pebble) -> Self {
        use std::sync::Arc;
        let (config, root_pem) = localhost_tls_config("proxy");
        let mut proxy = Self {
            addr: free_addr(),
            root_pem,
            failing: Arc::new(std::sync::atomic::AtomicU8::new(0)),
            hold_authz: Arc::new(std::sync::Mutex::new(None)),
            ca_rules: Arc::new(std::sync::Mutex::new(CaRules::default())),
            task: None,
            open: None,
            pebble: pebble.acme_addr(),
            pebble_root: std::fs::read_to_string(pebble.api_root()).unwrap(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        proxy.resume().await;
        proxy
    }

    /// Answers `500 serverInternal`: 0 never, 1 to everything, 2 to every POST.
    fn fail(&self, mode: u8) {
        self.failing
            .store(mode, std::sync::atomic::Ordering::SeqCst);
    }

    /// For `how_long` from now, authorizations Pebble has validated are shown as `pending`.
    fn hold_authorizations(&self, how_long: Duration) {
        *self.hold_authz.lock().unwrap() = Some(Instant::now() + how_long);
    }

    /// Stops listening: the CA is unreachable (connection refused).
    fn take_away(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.open = None;
    }

    /// Listens again on the same address.
    async fn resume(&mut self) {
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let (open, closed) = tokio::sync::watch::channel(());
        self.open = Some(open);
        let (acceptor, failing, pebble, root, hold, rules) = (
            self.acceptor.clone(),
            self.failing.clone(),
            self.pebble,
            self.pebble_root.clone(),
            self.hold_authz.clone(),
            self.ca_rules.clone(),
        );
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, failing, root, hold, rules) = (
                    acceptor.clone(),
                    failing.clone(),
                    root.clone(),
                    hold.clone(),
                    rules.clone(),
                );
                let mut closed = closed.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (failing, root, rules) =
                                (failing.clone(), root.clone(), rules.clone());
                            let holding = hold
                                .lock()
                                .unwrap()
                                .is_some_and(|until| Instant::now() < until);
                            async move {
                                let mode = failing.load(std::sync::atomic::Ordering::SeqCst);
                                let fail =
                                    mode == 1 || (mode == 2 && req.method() == http::Method::POST);
                                let rsp = if fail {
                                    http::Response::builder()
                                        .status(500)
                                        .header("content-type", "application/problem+json")
                                        .body(http_body_util::Full::new(bytes::Bytes::from(
                                            r#"{"type":"urn:ietf:params:acme:error:serverInternal","detail":"the CA is having a bad day","status":500}"#,
                                        )))
                                        .unwrap()
                                } else if holding && req.uri().path().starts_with("/authZ/") {
                                    as_pending(forward(pebble, &root, req).await).await
                                } else if req.uri().path() == "/order-plz" {
                                    new_order(pebble, &root, req, &rules).await
                                } else {
                                    forward(pebble, &root, req).await
                                };
                                Ok::<_, std::convert::Infallible>(rsp)
                            }
                        },
                    );
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = closed.changed() => {}
                    }
                });
            }
        }));
    }

    /// An `[acme]` section using the proxy, trusting its root.
    fn acme_config(&self, pebble: &Pebble) -> (String, tempfile::NamedTempFile) {
        let bundle = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(bundle.path(), &self.root_pem).unwrap();
        let acme = format!(
            "{}[acme]\ndirectory = \"https://{}/dir\"\nca_bundle = {:?}\nterms_agreed = true\nretry_schedule = [\"1s\", \"2s\"]\nrequest_timeout = \"5s\"\n",
            pebble.probe_config(),
            self.addr,
            bundle.path().display().to_string()
        );
        (acme, bundle)
    }
}

impl Drop for CaProxy {
    fn drop(&mut self) {
        self.take_away();
    }
}

/// The CA rules [`CaProxy`] plays for what Pebble 2.4.0 lacks.
#[derive(Default)]
struct CaRules {
    /// Name the profile asked for in the new-order answer (a CA with profiles); `false`: the
    /// answer names none (a CA that ignores the request).
    apply_profiles: bool,
    /// Answer every new order with Let's Encrypt's "paused" problem.
    paused: bool,
    /// The `profile` of every new-order request seen, in order.
    profiles_asked: Vec<Option<String>>,
    new_orders: usize,
}

/// A new-order request: recorded, answered as paused, or passed to Pebble with the profile
/// asked for added to the answer when profiles are applied.
async fn new_order(
    pebble: SocketAddr,
    root: &str,
    req: http::Request<hyper::body::Incoming>,
    rules: &std::sync::Mutex<CaRules>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    use base64::Engine;
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // The JWS payload (RFC 8555 §6.2): base64url JSON of the new order.
    let payload = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|jws| jws["payload"].as_str().map(str::to_owned))
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
        .unwrap_or_default();
    let asked = payload["profile"].as_str().map(str::to_owned);
    let (apply, paused) = {
        let mut r = rules.lock().unwrap();
        r.profiles_asked.push(asked.clone());
        r.new_orders += 1;
        (r.apply_profiles, r.paused)
    };
    if paused {
        return http::Response::builder()
            .status(429)
            .header("content-type", "application/problem+json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"Your account is temporarily prevented from requesting certificates for paused.example.test and possibly others. Please visit: https://portal.example.test/sfe/v1/unpause?jwt=x","status":429}"#,
            )))
            .unwrap();
    }
    let req = http::Request::from_parts(parts, http_body_util::Full::new(bytes));
    let rsp = forward_full(pebble, root, req).await;
    if !apply {
        return rsp;
    }
    let (mut parts, body) = rsp.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut doc: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(doc) => doc,
        Err(_) => return http::Response::from_parts(parts, http_body_util::Full::new(bytes)),
    };
    if let Some(asked) = asked {
        doc["profile"] = asked.into();
    }
    parts.headers.remove(http::header::CONTENT_LENGTH);
    http::Response::from_parts(parts, http_body_util::Full::new(doc.to_string().into()))
}

/// An authorization answer with `"status": "valid"` turned into `"pending"` (the CA has not
/// validated yet, RFC 8555 §7.1.6); anything else unchanged.
async fn as_pending(
    rsp: http::Response<http_body_util::Full<bytes::Bytes>>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let (mut parts, body) = rsp.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut doc: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(doc) => doc,
        Err(_) => return http::Response::from_parts(parts, http_body_util::Full::new(bytes)),
    };
    if doc["status"] == "valid" {
        doc["status"] = "pending".into();
    }
    parts.headers.remove(http::header::CONTENT_LENGTH);
    http::Response::from_parts(parts, http_body_util::Full::new(doc.to_string().into()))
}

/// `req` as it came, to Pebble (its `Host` kept), and Pebble's answer; a `502` when Pebble
/// cannot be reached.
async fn forward(
    pebble: SocketAddr,
    root: &str,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    forward_full(
        pebble,
        root,
        http::Request::from_parts(parts, http_body_util::Full::new(body)),
    )
    .await
}

/// [`forward`] for a request whose body was read already.
async fn forward_full(
    pebble: SocketAddr,
    root: &str,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let answer = async {
        let conn = tls_connect(pebble, Some("localhost"), &["http/1.1"], Some(root))
            .await
            .ok()?;
        let mut sender = common::h1_client(conn.stream).await;
        let mut out = http::Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        for (name, value) in &parts.headers {
            out = out.header(name, value);
        }
        let out = out.body(http_body_util::Full::new(body)).ok()?;
        let rsp = sender.send_request(out).await.ok()?;
        let (parts, body) = rsp.into_parts();
        let body = body.collect().await.ok()?.to_bytes();
        Some(http::Response::from_parts(
            parts,
            http_body_util::Full::new(body),
        ))
    };
    answer.await.unwrap_or_else(|| {
        http::Response::builder()
            .status(502)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    })
}

#[tokio::test]
async fn ca_answering_500_then_unreachable_backs_off_keeps_serving_and_recovers() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let mut proxy = CaProxy::start(&pebble).await;
    let (acme, _bundle) = proxy.acme_config(&pebble);
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!(
            "{acme}\n{}",
            certificate(&["flaky.example.test"], "http-01")
        ))
        .start()
        .await;
    let first = issued(&node, "flaky.example.test", None).await;
    let presented = || async {
        tls_connect(
            node.https_addr(),
            Some("flaky.example.test"),
            &["http/1.1"],
            None,
        )
        .await
        .unwrap()
        .presented
        .fingerprint()
    };
    let token = node.admin_token();
    let renew = || async {
        let resp = node
            .admin_request(
                "POST",
                "/v1/certificates/flaky.example.test/renew",
                None,
                Some(&token),
            )
            .await;
        assert_eq!(resp.status, 202, "{}", resp.text());
    };

    // The CA answers 500 to everything: the renewal fails at the first request (a nonce) and
    // backs off; nothing changes.
    proxy.fail(1);
    renew().await;
    let failed = eventually("the renewal to fail on the CA's 500", || async {
        let st = acme_status(&node, "flaky.example.test").await;
        st["last_order"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("error response"))
            .then_some(st)
    })
    .await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(
        presented().await,
        first["sha256_fingerprint"].as_str().unwrap()
    );

    // 500 with a problem document to every POST: the problem is recorded and counted.
    proxy.fail(2);
    let failed = eventually(
        "the renewal to fail with the CA's problem document",
        || async {
            let st = acme_status(&node, "flaky.example.test").await;
            (st["last_order"]["problem"]["type"] == "urn:ietf:params:acme:error:serverInternal")
                .then_some(st)
        },
    )
    .await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["next_attempt"].is_string(), "{failed}");
    assert_eq!(
        presented().await,
        first["sha256_fingerprint"].as_str().unwrap()
    );
    // Not a catalogue cause: shown by its ACME type, with no cause forced on it.
    assert_eq!(
        failed["last_error"]["ca_type"], "serverInternal",
        "{failed}"
    );
    assert!(failed["last_error"]["cause"].is_null(), "{failed}");
    assert!(failed["last_error"]["remedy"].is_null(), "{failed}");
    let metrics = node.metrics().await;
    assert!(metrics.count("dcv_acme_problems_total", &[("type", "serverInternal")]) >= 1.0);
    assert!(
        metrics.count(
            "dcv_acme_order_failures_total",
            &[
                ("certificate", "flaky.example.test"),
                ("cause", "none"),
                ("type", "serverInternal")
            ]
        ) >= 1.0
    );

    // Then it is gone altogether: still backing off, still the old certificate.
    proxy.take_away();
    let before = acme_status(&node, "flaky.example.test").await["consecutive_failures"]
        .as_u64()
        .unwrap();
    let unreachable = eventually("a failure while the CA is unreachable", || async {
        let st = acme_status(&node, "flaky.example.test").await;
        (st["consecutive_failures"].as_u64() > Some(before)
            && st["last_order"]["problem"].is_null())
        .then_some(st)
    })
    .await;
    assert_eq!(unreachable["state"], "failed", "{unreachable}");
    assert_eq!(
        presented().await,
        first["sha256_fingerprint"].as_str().unwrap()
    );
    assert_eq!(
        node.admin_get("/v1/certificates/flaky.example.test")
            .await
            .json()["serial"],
        first["serial"]
    );

    // Back and healthy: the next retry succeeds on its own, and the new certificate is served.
    proxy.fail(0);
    proxy.resume().await;
    let second = issued(&node, "flaky.example.test", first["serial"].as_str()).await;
    assert_eq!(
        presented().await,
        second["sha256_fingerprint"].as_str().unwrap()
    );
    assert_eq!(
        acme_status(&node, "flaky.example.test").await["consecutive_failures"],
        0
    );
}

/// A TLS server configuration for `localhost` and `127.0.0.1`, from a CA of its own: the CA
/// stand-ins in front of Pebble. Returns it with the CA's root (PEM).
fn localhost_tls_config(ca_name: &str) -> (rustls::ServerConfig, String) {
    use rustls::pki_types::pem::PemObject;
    let ca = dcv_proxy::testkit::TestCa::new(ca_name).unwrap();
    let leaf = ca
        .leaf(&["localhost", "127.0.0.1"], Duration::from_secs(86_400))
        .unwrap();
    let chain: Vec<_> =
        rustls::pki_types::CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
            .map(|c| c.unwrap())
            .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    (config, ca.root_pem())
}

/// The CA's validation fails because the name resolves where nothing listens (catalogue H1):
/// the node's self-check only looks at its own listener (`self_check = "local"`), so the CA is
/// asked, and its challenge `error` comes back. The cause and remedy are in `/v1/status`, in
/// `certs list` (text and JSON), in the log line and in the per-certificate failure counter.
#[tokio::test]
async fn ca_validation_failure_names_its_cause_and_remedy_everywhere() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    pebble
        .dns(
            "add-a",
            serde_json::json!({"host": "h1.example.test", "addresses": ["127.0.0.99"]}),
        )
        .await;
    let node = node_for(
        &pebble,
        addrs,
        &format!(
            "self_check = \"local\"\n{}",
            certificate(&["h1.example.test"], "http-01")
        ),
    )
    .await;
    let status = eventually("the CA to fail the validation", || async {
        let st = acme_status(&node, "h1.example.test").await;
        (st["last_error"]["kind"] == "problem").then_some(st)
    })
    .await;
    let error = &status["last_error"];
    assert_eq!(error["cause"], "H1", "{status}");
    assert_eq!(error["summary"], Cause::H1.summary());
    assert_eq!(error["remedy"], Cause::H1.remedy());
    assert_eq!(error["ca_type"], "connection", "{status}");
    assert_eq!(error["identifier"], "h1.example.test", "{status}");
    assert!(
        error["detail"].as_str().unwrap().contains("127.0.0.99"),
        "the CA's own words: {status}"
    );
    // The CA's document is kept as it came, with the failed challenge's identifier.
    assert_eq!(
        status["last_order"]["problem"]["type"], "urn:ietf:params:acme:error:connection",
        "{status}"
    );
    assert_eq!(status["state"], "failed", "{status}");
    assert!(status["next_attempt"].is_string(), "{status}");

    let json: serde_json::Value = serde_json::from_str(&certs_list(&node, true)).unwrap();
    let listed = &json["acme"]["certificates"]["h1.example.test"]["last_error"];
    for field in [
        "cause",
        "summary",
        "remedy",
        "ca_type",
        "identifier",
        "kind",
    ] {
        assert_eq!(
            listed[field], error[field],
            "certs list --json {field}: {json}"
        );
    }
    let text = certs_list(&node, false);
    assert!(
        text.contains(&format!(
            "  h1.example.test: last order failed: H1: {}\n",
            Cause::H1.remedy()
        )),
        "{text}"
    );
    assert!(
        text.contains("      connection: h1.example.test: "),
        "{text}"
    );
    // The next attempt is shown while the renewer backs off (not during a retry).
    eventually("certs list to show the next attempt", || async {
        certs_list(&node, false)
            .contains("      next attempt in ")
            .then_some(())
    })
    .await;

    let metrics = node.metrics().await;
    assert!(
        metrics.count(
            "dcv_acme_order_failures_total",
            &[
                ("certificate", "h1.example.test"),
                ("cause", "H1"),
                ("type", "connection")
            ]
        ) >= 1.0,
        "{}",
        metrics.text
    );
    let log = node.log();
    let line = log
        .lines()
        .find(|l| l.contains("order failed") && l.contains("h1.example.test"))
        .unwrap_or_else(|| panic!("no failure line: {log}"));
    assert!(line.contains("cause=\"H1\""), "{line}");
    assert!(
        line.contains(&format!("remedy=\"{}\"", Cause::H1.remedy())),
        "{line}"
    );
    // Every step was logged as it began, not only the end.
    for step in [
        "new-order",
        "self-check",
        "challenge-ready",
        "polling-authorization",
    ] {
        assert!(
            log.contains(&format!("step=\"{step}\"")),
            "no {step} line: {log}"
        );
    }
}

/// While the CA takes its time validating, the order says which name it waits for, how many
/// polls it made and when the next one is — in `/v1/status`, `certs list` and the log — and
/// then completes.
#[tokio::test]
async fn order_in_flight_shows_its_polls() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let proxy = CaProxy::start(&pebble).await;
    proxy.hold_authorizations(Duration::from_secs(10));
    let (acme, _bundle) = proxy.acme_config(&pebble);
    // The local self-check: this test is about the CA's side of the order.
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!(
            "{acme}self_check = \"local\"\n{}",
            certificate(&["slow.example.test"], "http-01")
        ))
        .start()
        .await;
    let progress = eventually("the order to poll the authorization", || async {
        let st = acme_status(&node, "slow.example.test").await;
        let p = &st["progress"];
        (st["state"] == "ordering"
            && p["step"] == "polling-authorization"
            && p["attempt"].as_u64() >= Some(2))
        .then(|| p.clone())
    })
    .await;
    assert_eq!(progress["name"], "slow.example.test", "{progress}");
    let next = humantime::parse_rfc3339(progress["next_poll"].as_str().unwrap()).unwrap();
    let since = humantime::parse_rfc3339(progress["since"].as_str().unwrap()).unwrap();
    assert!(next > since, "{progress}");
    assert!(
        progress["text"]
            .as_str()
            .unwrap()
            .starts_with("slow.example.test: waiting for the CA to validate (poll "),
        "{progress}"
    );
    let text = eventually("certs list to show the polls", || async {
        let text = certs_list(&node, false);
        text.contains(
            "  slow.example.test: ordering: slow.example.test: waiting for the CA to validate (poll ",
        )
        .then_some(text)
    })
    .await;
    assert!(text.contains(", next poll in "), "{text}");

    issued(&node, "slow.example.test", None).await;
    let status = eventually("the order to end", || async {
        let st = acme_status(&node, "slow.example.test").await;
        (st["state"] == "waiting").then_some(st)
    })
    .await;
    assert!(status["progress"].is_null(), "{status}");
    assert!(status["last_error"].is_null(), "{status}");
    let log = node.log();
    assert!(
        log.contains("slow.example.test: waiting for the CA to validate (poll 2), next poll in"),
        "{log}"
    );
    assert!(log.contains("the CA validated the name"), "{log}");
    for step in ["finalize", "download", "install"] {
        assert!(
            log.contains(&format!("step=\"{step}\"")),
            "no {step} line: {log}"
        );
    }
}

/// A node on [`CaProxy`] in front of Pebble, with `extra` after its `[acme]` keys.
async fn node_on_proxy(
    pebble: &Pebble,
    proxy: &CaProxy,
    addrs: (SocketAddr, SocketAddr),
    extra: &str,
) -> (Node, tempfile::NamedTempFile) {
    let (acme, bundle) = proxy.acme_config(pebble);
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!("{acme}{extra}"))
        .start()
        .await;
    (node, bundle)
}

#[tokio::test]
async fn the_profile_is_sent_on_every_order_and_what_the_ca_applied_is_shown() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let proxy = CaProxy::start(&pebble).await;
    proxy.ca_rules.lock().unwrap().apply_profiles = true;
    let (node, _bundle) = node_on_proxy(
        &pebble,
        &proxy,
        addrs,
        "profile = \"tlsserver\"\n\n[[certificate]]\nnames = [\"prof.example.test\"]\nprofile = \"shortlived\"\n",
    )
    .await;
    let first = issued(&node, "prof.example.test", None).await;
    // The order's record follows the swap by a moment.
    let status = eventually("the order recorded", || async {
        let status = acme_status(&node, "prof.example.test").await;
        (status["last_order"]["result"] == "valid").then_some(status)
    })
    .await;
    assert_eq!(status["profile"], "shortlived", "{status}");
    assert_eq!(
        status["last_order"]["profile_received"], "shortlived",
        "{status}"
    );
    assert!(
        status["last_order"].get("profile_ignored").is_none(),
        "{status}"
    );
    // A renewal asks for it again (a renewal without it would get the CA's default).
    let rsp = node
        .admin_post("/v1/certificates/prof.example.test/renew")
        .await;
    assert_eq!(rsp.status, 202, "{}", rsp.text());
    issued(&node, "prof.example.test", first["serial"].as_str()).await;
    let asked = proxy.ca_rules.lock().unwrap().profiles_asked.clone();
    assert_eq!(
        asked,
        [Some("shortlived".to_owned()), Some("shortlived".to_owned())]
    );
}

#[tokio::test]
async fn a_ca_that_ignores_the_profile_is_reported() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let proxy = CaProxy::start(&pebble).await;
    let (node, _bundle) = node_on_proxy(
        &pebble,
        &proxy,
        addrs,
        "\n[[certificate]]\nnames = [\"ignored.example.test\"]\nprofile = \"shortlived\"\n",
    )
    .await;
    issued(&node, "ignored.example.test", None).await;
    // The order's record follows the swap by a moment.
    let status = eventually("the order recorded", || async {
        let status = acme_status(&node, "ignored.example.test").await;
        (status["last_order"]["result"] == "valid").then_some(status)
    })
    .await;
    assert_eq!(status["last_order"]["profile_ignored"], true, "{status}");
    assert!(
        status["last_order"].get("profile_received").is_none(),
        "{status}"
    );
    assert!(
        node.log()
            .contains("the CA did not apply the profile asked for"),
        "{}",
        node.log()
    );
}

#[tokio::test]
async fn a_paused_name_is_not_ordered_again_until_renewed_by_hand() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let proxy = CaProxy::start(&pebble).await;
    proxy.ca_rules.lock().unwrap().paused = true;
    let (node, _bundle) = node_on_proxy(
        &pebble,
        &proxy,
        addrs,
        "\n[[certificate]]\nnames = [\"paused.example.test\"]\n",
    )
    .await;
    let status = eventually("the order to be refused as paused", || async {
        let st = acme_status(&node, "paused.example.test").await;
        (st["paused"] == true).then_some(st)
    })
    .await;
    assert_eq!(status["last_error"]["cause"], "P10", "{status}");
    assert_eq!(status["last_error"]["remedy"], Cause::P10.remedy());
    assert!(status.get("next_attempt").is_none(), "{status}");
    // The retry schedule is 1 s, 2 s: with no pause, several orders would have followed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(proxy.ca_rules.lock().unwrap().new_orders, 1);
    // Unpaused by hand at the CA, then asked for: ordered and issued.
    proxy.ca_rules.lock().unwrap().paused = false;
    let rsp = node
        .admin_post("/v1/certificates/paused.example.test/renew")
        .await;
    assert_eq!(rsp.status, 202, "{}", rsp.text());
    issued(&node, "paused.example.test", None).await;
}

#[tokio::test]
async fn new_orders_beyond_the_budget_wait_and_the_first_to_expire_goes_first() {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let node = node_for(
        &pebble,
        addrs,
        &format!(
            "max_new_orders = 1\nnew_orders_window = \"1h\"\n{}{}",
            certificate(&["one.example.test"], "http-01"),
            certificate(&["two.example.test"], "http-01")
        ),
    )
    .await;
    issued(&node, "one.example.test", None).await;
    let status = eventually("the second certificate deferred", || async {
        let st = acme_status(&node, "two.example.test").await;
        st["deferred"].is_string().then_some(st)
    })
    .await;
    let deferred = status["deferred"].as_str().unwrap();
    assert!(
        deferred.starts_with("1 new orders in the last 1h (acme.max_new_orders = 1)"),
        "{deferred}"
    );
    let next = humantime::parse_rfc3339(status["next_attempt"].as_str().unwrap()).unwrap();
    assert!(
        next > SystemTime::now() + Duration::from_secs(3000),
        "{status}"
    );
    let metrics = node.metrics().await;
    assert_eq!(
        metrics.count("dcv_acme_orders_total", &[("result", "valid")]),
        1.0
    );
}

/// RFC 8738: a certificate for the node's own address, validated by `challenge`, is presented
/// to a client that connects to the address without SNI and verifies the address against
/// Pebble's root; a handshake with SNI for another name still gets the default.
async fn ip_certificate_is_issued_and_served_without_sni(challenge: &str) {
    ip_certificate_at(challenge, (free_addr(), free_addr())).await;
}

/// [`ip_certificate_is_issued_and_served_without_sni`] on the node's listeners `addrs`, whose
/// HTTPS address is the one certified.
async fn ip_certificate_at(challenge: &str, addrs: (SocketAddr, SocketAddr)) {
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let ip = addrs.1.ip().to_string();
    // The default id: the address, `ip6-` and dashes for IPv6 (an id is a file name).
    let id = match addrs.1.ip() {
        std::net::IpAddr::V4(_) => ip.clone(),
        std::net::IpAddr::V6(_) => format!("ip6-{}", ip.replace(':', "-")),
    };
    let node = node_for(&pebble, addrs, &certificate(&[&ip], challenge)).await;
    let cert = issued(&node, &id, None).await;
    assert_eq!(cert["names"], serde_json::json!([ip]), "{cert}");
    let status = acme_status(&node, &id).await;
    assert_eq!(status["last_order"]["result"], "valid", "{status}");
    assert_eq!(status["challenge"], challenge, "{status}");

    let root = pebble.issuer_root().await;
    // `None`: rustls sends no SNI and checks the certificate's iPAddress SAN.
    let conn = tls_connect(node.https_addr(), None, &["http/1.1"], Some(&root))
        .await
        .unwrap_or_else(|e| panic!("a client connecting to {ip} without SNI: {e}"));
    assert_eq!(
        conn.presented.fingerprint(),
        cert["sha256_fingerprint"].as_str().unwrap()
    );
    let other = tls_connect(
        node.https_addr(),
        Some("other.example.test"),
        &["http/1.1"],
        None,
    )
    .await
    .unwrap();
    assert_ne!(
        other.presented.fingerprint(),
        cert["sha256_fingerprint"].as_str().unwrap()
    );
    // Pebble validated the address itself (RFC 8738 §5, §6): over HTTP at the address for
    // HTTP-01, and not over HTTP at all for TLS-ALPN-01.
    let http_hits = node.metrics().await.count(
        "dcv_challenge_requests_total",
        &[("kind", "acme"), ("scheme", "http"), ("result", "hit")],
    );
    if challenge == "http-01" {
        let log = pebble.log();
        let url = format!("http://{}/.well-known/acme-challenge/", addrs.0);
        assert!(log.contains(&url), "{log}");
        assert!(http_hits >= 1.0, "{http_hits}");
    } else {
        assert_eq!(http_hits, 0.0);
    }
}

#[tokio::test]
async fn ip_address_certificate_by_http01_is_served_to_clients_without_sni() {
    ip_certificate_is_issued_and_served_without_sni("http-01").await;
}

#[tokio::test]
async fn ip_address_certificate_by_tls_alpn01_answers_the_reverse_name() {
    ip_certificate_is_issued_and_served_without_sni("tls-alpn-01").await;
}

/// IPv6: the SNI Pebble sends is the `ip6.arpa` name of `::1` (RFC 8738 §6).
#[tokio::test]
async fn ipv6_address_certificate_by_tls_alpn01_and_http01() {
    let v6 = |a: SocketAddr| SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), a.port());
    ip_certificate_at("tls-alpn-01", (v6(free_addr()), v6(free_addr()))).await;
    ip_certificate_at("http-01", (v6(free_addr()), v6(free_addr()))).await;
}

/// `[acme]` keys of the tests, without a CA: the CAs come as `[[acme.ca]]` tables.
fn acme_keys(pebble: &Pebble, extra: &str) -> String {
    format!(
        "{}[acme]\nterms_agreed = true\nretry_schedule = [\"1s\", \"2s\"]\nrequest_timeout = \"5s\"\nself_check_timeout = \"10s\"\n{extra}",
        pebble.probe_config()
    )
}

#[tokio::test]
async fn a_name_the_first_ca_refuses_is_issued_by_the_second_and_status_says_why() {
    let addrs = (free_addr(), free_addr());
    let mut refusing = PebbleConfig::for_node(addrs.0, addrs.1);
    refusing.blocklist = vec!["fb.example.test".into()];
    let first = Pebble::start(refusing).await;
    let second = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let mut node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!(
            "{}{}{}{}",
            acme_keys(&first, ""),
            first.ca_table("first"),
            second.ca_table("second"),
            certificate(&["fb.example.test"], "http-01")
        ))
        .start()
        .await;
    let cert = issued(&node, "fb.example.test", None).await;
    // Chains to the second CA.
    let root = second.issuer_root().await;
    let conn = tls_connect(
        node.https_addr(),
        Some("fb.example.test"),
        &["http/1.1"],
        Some(&root),
    )
    .await
    .unwrap();
    assert_eq!(
        conn.presented.fingerprint(),
        cert["sha256_fingerprint"].as_str().unwrap()
    );
    let status = acme_status(&node, "fb.example.test").await;
    assert_eq!(status["ca"], "second", "{status}");
    assert_eq!(status["last_order"]["ca"], "second", "{status}");
    let skip = &status["skipped"][0];
    assert_eq!(skip["ca"], "first", "{status}");
    assert_eq!(skip["reason"], "policy", "{status}");
    assert_eq!(skip["cause"], "P2", "{status}");
    assert_eq!(skip["remedy"], Cause::P2.remedy());
    assert!(
        skip["detail"].as_str().unwrap().contains("fb.example.test"),
        "{status}"
    );
    let full = node.admin_get("/v1/status").await.json();
    let cas: Vec<&str> = full["acme"]["cas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cas, ["first", "second"]);
    let metrics = node.metrics().await;
    assert_eq!(
        metrics.count(
            "dcv_acme_ca_fallbacks_total",
            &[
                ("certificate", "fb.example.test"),
                ("ca", "first"),
                ("reason", "policy"),
                ("cause", "P2")
            ]
        ),
        1.0
    );
    assert_eq!(
        metrics.count(
            "dcv_certificate_ca_info",
            &[("certificate", "fb.example.test"), ("ca", "second")]
        ),
        1.0
    );
    assert_eq!(
        metrics.count(
            "dcv_acme_orders_total",
            &[("ca", "first"), ("result", "failed")]
        ),
        1.0
    );
    assert_eq!(
        metrics.count(
            "dcv_acme_orders_total",
            &[("ca", "second"), ("result", "valid")]
        ),
        1.0
    );
    let text = certs_list(&node, false);
    assert!(
        text.contains("fb.example.test: issued by CA second"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "fb.example.test: CA first passed over (policy): P2: {}",
            Cause::P2.remedy()
        )),
        "{text}"
    );
    assert!(node.log().contains("CA passed over"), "{}", node.log());
    // After a restart the node still knows which CA issued it.
    node.restart().await;
    let status = eventually("the issuer read back", || async {
        let st = acme_status(&node, "fb.example.test").await;
        st["ca"].is_string().then_some(st)
    })
    .await;
    assert_eq!(status["ca"], "second", "{status}");
}

#[tokio::test]
async fn an_unreachable_first_ca_is_passed_over_after_fallback_after() {
    let addrs = (free_addr(), free_addr());
    let second = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    // Nothing listens there: every request to the first CA is refused.
    let nowhere = free_addr();
    let started = Instant::now();
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!(
            "{}\n[[acme.ca]]\nname = \"down\"\ndirectory = \"https://{nowhere}/dir\"\n{}{}",
            acme_keys(&second, "fallback_after = \"3s\"\n"),
            second.ca_table("second"),
            certificate(&["out.example.test"], "http-01")
        ))
        .start()
        .await;
    issued(&node, "out.example.test", None).await;
    // Not before the first CA had been out for fallback_after.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let status = acme_status(&node, "out.example.test").await;
    assert_eq!(status["ca"], "second", "{status}");
    let skip = &status["skipped"][0];
    assert_eq!(
        (
            skip["ca"].as_str(),
            skip["reason"].as_str(),
            skip["cause"].as_str()
        ),
        (Some("down"), Some("outage"), Some("P11")),
        "{status}"
    );
    assert_eq!(skip["remedy"], Cause::P11.remedy());
    let full = node.admin_get("/v1/status").await.json();
    assert!(full["acme"]["cas"][0]["out_since"].is_string(), "{full}");
    assert_eq!(
        full["acme"]["cas"][0]["account"]["state"], "error",
        "{full}"
    );
}

#[tokio::test]
async fn a_rate_limit_beyond_the_margin_sends_the_order_to_the_second_ca() {
    let addrs = (free_addr(), free_addr());
    let first = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let second = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    // The first CA answers every new order `rateLimited` with `Retry-After: 3600`.
    let mut directory: serde_json::Value =
        serde_json::from_str(&first.api_get_directory().await).unwrap();
    let front_addr = free_addr();
    directory["newOrder"] = format!("https://{front_addr}/limited").into();
    let now = SystemTime::now();
    let front = CaFront::start_on(front_addr, directory.to_string(), (now, now)).await;
    let bundle = tempfile::NamedTempFile::new().unwrap();
    let first_root = std::fs::read_to_string(first.api_root()).unwrap();
    std::fs::write(bundle.path(), format!("{first_root}\n{}", front.root_pem)).unwrap();
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!(
            "{}\n[[acme.ca]]\nname = \"limited\"\ndirectory = \"https://{front_addr}/dir\"\nca_bundle = {:?}\n{}{}",
            acme_keys(&second, "fallback_after = \"10m\"\n"),
            bundle.path().display().to_string(),
            second.ca_table("second"),
            certificate(&["rl.example.test"], "http-01")
        ))
        .start()
        .await;
    issued(&node, "rl.example.test", None).await;
    let status = acme_status(&node, "rl.example.test").await;
    assert_eq!(status["ca"], "second", "{status}");
    let skip = &status["skipped"][0];
    assert_eq!(
        (
            skip["ca"].as_str(),
            skip["reason"].as_str(),
            skip["cause"].as_str()
        ),
        (Some("limited"), Some("rate-limited"), Some("P4")),
        "{status}"
    );
    // Passed over until the CA's Retry-After.
    let until = humantime::parse_rfc3339(skip["until"].as_str().unwrap()).unwrap();
    assert!(
        until > SystemTime::now() + Duration::from_secs(3000),
        "{status}"
    );
}

/// The certificate served for `name` now, by fingerprint.
async fn served(node: &Node, name: &str) -> String {
    tls_connect(node.https_addr(), Some(name), &["http/1.1"], None)
        .await
        .unwrap()
        .presented
        .fingerprint()
}

#[tokio::test]
async fn a_backup_from_the_second_ca_is_swapped_in_when_the_ari_window_moves_into_the_past() {
    let addrs = (free_addr(), free_addr());
    let first = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let second = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    // The first CA offers ARI (the stand-in in front of Pebble), its window days ahead.
    let mut directory: serde_json::Value =
        serde_json::from_str(&first.api_get_directory().await).unwrap();
    let ari_addr = free_addr();
    directory["renewalInfo"] = format!("https://{ari_addr}/ari").into();
    let now = SystemTime::now();
    let ahead = (
        now + Duration::from_secs(3 * 86_400),
        now + Duration::from_secs(4 * 86_400),
    );
    let ari = CaFront::start_on(ari_addr, directory.to_string(), ahead).await;
    let bundle = tempfile::NamedTempFile::new().unwrap();
    let first_root = std::fs::read_to_string(first.api_root()).unwrap();
    std::fs::write(bundle.path(), format!("{first_root}\n{}", ari.root_pem)).unwrap();
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!(
            "{}\n[[acme.ca]]\nname = \"first\"\ndirectory = \"https://{ari_addr}/dir\"\nca_bundle = {:?}\n{}{}backup = true\n",
            acme_keys(&second, "check_interval = \"1s\"\n"),
            bundle.path().display().to_string(),
            second.ca_table("second"),
            certificate(&["bk.example.test"], "http-01")
        ))
        .start()
        .await;
    let primary = issued(&node, "bk.example.test", None).await;
    let primary_fp = primary["sha256_fingerprint"].as_str().unwrap().to_owned();
    let status = eventually("a backup kept", || async {
        let st = acme_status(&node, "bk.example.test").await;
        (st["backup"]["state"] == "ready").then_some(st)
    })
    .await;
    assert_eq!(status["ca"], "first", "{status}");
    assert_eq!(status["backup"]["ca"], "second", "{status}");
    let backup_fp = status["backup"]["sha256_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let backup_serial = status["backup"]["serial"].as_str().unwrap().to_owned();
    assert_ne!(backup_fp, primary_fp);
    // Kept, not served.
    assert_eq!(served(&node, "bk.example.test").await, primary_fp);
    let keys: Vec<String> = std::fs::read_dir(node.state_dir().join("certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !keys.iter().any(|k| k.contains("backup")),
        "the backup is not in the certificate store: {keys:?}"
    );

    // The CA moves the window into the past (it is about to revoke the certificate).
    let moved = Instant::now();
    ari.set_window((
        now - Duration::from_secs(2 * 86_400),
        now - Duration::from_secs(86_400),
    ));
    eventually("the backup served", || async {
        (served(&node, "bk.example.test").await == backup_fp).then_some(())
    })
    .await;
    eprintln!("backup served {:?} after the window moved", moved.elapsed());
    // The new certificate's window is an ordinary one again.
    ari.set_window(ahead);
    let status = eventually("a new certificate from the first CA", || async {
        let st = acme_status(&node, "bk.example.test").await;
        let fresh = st["ca"] == "first"
            && st["last_order"]["result"] == "valid"
            && st["last_order"]["serial"].as_str() != primary["serial"].as_str();
        fresh.then_some(st)
    })
    .await;
    let now_served = served(&node, "bk.example.test").await;
    assert_ne!(now_served, primary_fp);
    assert_ne!(now_served, backup_fp, "{status}");
    let swap = &status["backup"]["swapped_in"];
    assert_eq!(swap["reason"], "ari-window-past", "{status}");
    assert_eq!(swap["serial"], backup_serial.as_str(), "{status}");
    assert_eq!(swap["ca"], "second", "{status}");
    assert_eq!(
        node.metrics().await.count(
            "dcv_acme_backup_swaps_total",
            &[
                ("certificate", "bk.example.test"),
                ("reason", "ari-window-past")
            ]
        ),
        1.0
    );
    assert!(
        node.log().contains("backup certificate swapped in"),
        "{}",
        node.log()
    );
    // And a new backup is kept again.
    let again = eventually("a new backup", || async {
        let st = acme_status(&node, "bk.example.test").await;
        let fresh = st["backup"]["state"] == "ready"
            && st["backup"]["serial"].as_str() != Some(backup_serial.as_str());
        fresh.then_some(st)
    })
    .await;
    assert_eq!(again["backup"]["ca"], "second", "{again}");
    let text = certs_list(&node, false);
    assert!(
        text.contains("bk.example.test: backup from CA second (serial "),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "(ari-window-past), serial {backup_serial} from CA second"
        )),
        "{text}"
    );
}
