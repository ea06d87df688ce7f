//! HTTP-01 and TLS-ALPN-01 the way Let's Encrypt validates them (Boulder `va/http.go`,
//! `va/tlsalpn.go`): the library's [`Prober`] (and once the real binary, `dcv-proxy check
//! --json`) against raw loopback servers written here, with `pebble-challtestsrv` as the only
//! DNS. Each test asserts the status and the cause id of the check that matters.
//!
//! Nothing leaves loopback: every prober and node is given challtestsrv as its resolver, never
//! `/etc/resolv.conf` (challtestsrv is no authoritative server, so none is configured, as in
//! `tests/common/probe_harness.rs`).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::probe_harness::{
    free_port, http_request, wait_until, CannedReply, Challtestsrv, TestServer, BIN,
};
use dcv_proxy::config::{Config, DnsName, ExpectedTxt};
use dcv_proxy::probe::RegisteredFile;
use dcv_proxy::probe::{Cause, Check, Node, NodeError, Prober, Report, Status};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The probe tokens published, which the test servers answer from.
#[derive(Default, Clone)]
struct Tokens(Arc<Mutex<HashMap<String, String>>>);

impl Tokens {
    /// The key authorization of the token that ends `path`.
    fn for_path(&self, path: &str) -> String {
        let token = path.rsplit('/').next().unwrap_or("");
        self.0
            .lock()
            .unwrap()
            .get(token)
            .cloned()
            .unwrap_or_default()
    }
}

/// The node under probe, reduced to where the probe publishes its token.
struct StubNode(Tokens);

#[async_trait]
impl Node for StubNode {
    async fn put_token(
        &self,
        token: &str,
        key_authorization: &str,
        _identifier: &DnsName,
        _ttl: Duration,
    ) -> Result<(), NodeError> {
        self.0
             .0
            .lock()
            .unwrap()
            .insert(token.to_owned(), key_authorization.to_owned());
        Ok(())
    }

    async fn remove_token(&self, token: &str) -> Result<(), NodeError> {
        self.0 .0.lock().unwrap().remove(token);
        Ok(())
    }

    async fn pki_files(&self, _name: &DnsName) -> Result<Vec<RegisteredFile>, NodeError> {
        Ok(Vec::new())
    }

    async fn expected_txt(&self) -> Result<Vec<ExpectedTxt>, NodeError> {
        Ok(Vec::new())
    }
}

/// Ports the probe plays 80 and 443 on.
#[derive(Clone, Copy)]
struct Ports {
    http: u16,
    https: u16,
}

impl Ports {
    fn new() -> Self {
        Self {
            http: free_port(),
            https: free_port(),
        }
    }
}

/// A prober asking `dns` only, on `ports`, with more `[probe]` keys in `extra`.
fn prober(dns: &Challtestsrv, ports: &Ports, tokens: &Tokens, extra: &str) -> Prober {
    let text = format!(
        "[probe]\nresolvers = [\"{dns}\"]\nauthoritative = []\nhttp_port = {}\nhttps_port = {}\ntimeout = \"1s\"\ndeadline = \"30s\"\n{extra}\n",
        ports.http,
        ports.https,
        dns = dns.dns,
    );
    let config = Config::parse(Path::new("probe_http01.toml"), &text).unwrap();
    Prober::new(config.probe, Arc::new(StubNode(tokens.clone()))).unwrap()
}

/// The check of `kind` whose target starts with `target`.
fn check<'a>(report: &'a Report, kind: &str, target: &str) -> &'a Check {
    report
        .checks
        .iter()
        .find(|c| c.kind.as_str() == kind && c.target.starts_with(target))
        .unwrap_or_else(|| panic!("no {kind} [{target}…] in\n{}", report.render_text()))
}

/// Asserts the status and cause of a check; returns its detail.
fn assert_check(
    report: &Report,
    kind: &str,
    target: &str,
    status: Status,
    cause: Option<Cause>,
) -> String {
    let c = check(report, kind, target);
    assert_eq!(
        (c.status, c.cause),
        (status, cause),
        "{kind} [{target}]: {}\n{}",
        c.detail,
        report.render_text()
    );
    c.detail.clone()
}

fn reply(status: u16, location: Option<String>, body: impl Into<String>) -> CannedReply {
    CannedReply {
        status,
        location,
        body: body.into(),
    }
}

/// One name on one loopback address, answered by `server(request, tokens)`; the full probe's
/// report.
async fn probe_one(
    name: &str,
    ip: &str,
    server: impl Fn(&common::probe_harness::SeenRequest, &Tokens, &Ports) -> CannedReply
        + Send
        + 'static,
) -> Report {
    let dns = Challtestsrv::start();
    dns.add_a(name, &[ip]);
    let ports = Ports::new();
    let tokens = Tokens::default();
    let (served, at) = (tokens.clone(), ports);
    let _server = TestServer::start(ip, ports.http, move |req| server(req, &served, &at));
    prober(&dns, &ports, &tokens, "").probe(name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_303_is_not_followed() {
    let report = probe_one("see-other.dcvcheck.net", "127.0.0.21", |req, tokens, _| {
        if req.path.starts_with("/ok/") {
            reply(200, None, tokens.for_path(&req.path))
        } else {
            let token = req.path.rsplit('/').next().unwrap_or("");
            reply(303, Some(format!("/ok/{token}")), "")
        }
    })
    .await;
    let detail = assert_check(
        &report,
        "http.token",
        "127.0.0.21:",
        Status::Fail,
        Some(Cause::H4),
    );
    assert!(
        detail.starts_with("127.0.0.21: Fetching /ok/")
            && detail.contains(": received disallowed redirect status code"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_301_to_an_ip_address_is_refused() {
    let report = probe_one("to-ip.dcvcheck.net", "127.0.0.22", |req, tokens, ports| {
        if req.path.starts_with("/ok/") {
            reply(200, None, tokens.for_path(&req.path))
        } else {
            let token = req.path.rsplit('/').next().unwrap_or("");
            let to = format!("http://127.0.0.22:{}/ok/{token}", ports.http);
            reply(301, Some(to), "")
        }
    })
    .await;
    let detail = assert_check(
        &report,
        "http.token",
        "127.0.0.22:",
        Status::Fail,
        Some(Cause::H4),
    );
    assert!(
        detail.contains(": Invalid host in redirect target: IP address is in a reserved address block: [RFC1122], Section 3.2.1.3: Loopback"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_301_to_port_8080_is_refused() {
    let name = "to-8080.dcvcheck.net";
    let report = probe_one(name, "127.0.0.23", move |req, _, _| {
        reply(301, Some(format!("http://{name}:8080{}", req.path)), "")
    })
    .await;
    let detail = assert_check(
        &report,
        "http.token",
        "127.0.0.23:",
        Status::Fail,
        Some(Cause::H4),
    );
    assert!(
        detail.contains("Invalid port in redirect target. Only ports ")
            && detail.contains(" are supported, not 8080"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_is_detected() {
    let report = probe_one("loop.dcvcheck.net", "127.0.0.24", |req, _, _| {
        match req.path.as_str() {
            "/a" => reply(302, Some("/b".into()), ""),
            "/b" => reply(307, Some("/a".into()), ""),
            _ => reply(301, Some("/a".into()), ""),
        }
    })
    .await;
    let detail = assert_check(
        &report,
        "http.token",
        "127.0.0.24:",
        Status::Fail,
        Some(Cause::H4),
    );
    assert!(
        detail.starts_with("127.0.0.24: Fetching /a: Redirect loop detected"),
        "{detail}"
    );
}

/// `/.well-known/acme-challenge/T` → `/hop/1/T` → … → `/hop/N/T`, which answers.
fn chain(
    n: usize,
) -> impl Fn(&common::probe_harness::SeenRequest, &Tokens, &Ports) -> CannedReply + Send + 'static {
    move |req, tokens, _| {
        let token = req.path.rsplit('/').next().unwrap_or("").to_owned();
        let hop: usize = req
            .path
            .strip_prefix("/hop/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        if hop < n {
            reply(301, Some(format!("/hop/{}/{token}", hop + 1)), "")
        } else {
            reply(200, None, tokens.for_path(&req.path))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_redirects_are_followed_and_twelve_are_too_many() {
    // Boulder checks `numRedirects > maxRedirect` (10) before counting: the 11th redirect is
    // still followed, the 12th is refused.
    let report = probe_one("eleven.dcvcheck.net", "127.0.0.25", chain(11)).await;
    let detail = assert_check(
        &report,
        "http.token",
        "127.0.0.25:",
        Status::Warn,
        Some(Cause::H4),
    );
    assert!(
        detail.starts_with("200 with the right content, but redirected from"),
        "{detail}"
    );
    let report = probe_one("twelve.dcvcheck.net", "127.0.0.26", chain(12)).await;
    let detail = assert_check(
        &report,
        "http.token",
        "127.0.0.26:",
        Status::Fail,
        Some(Cause::H4),
    );
    assert!(
        detail.starts_with("127.0.0.26: Fetching /hop/12/")
            && detail.contains(": Too many redirects"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_status_200_validates() {
    let report = probe_one("created.dcvcheck.net", "127.0.0.27", |req, tokens, _| {
        reply(201, None, tokens.for_path(&req.path))
    })
    .await;
    let detail = assert_check(
        &report,
        "http.token",
        "127.0.0.27:",
        Status::Fail,
        Some(Cause::H3),
    );
    assert!(
        detail.starts_with("127.0.0.27: Invalid response from http://created.dcvcheck.net:")
            && detail.ends_with(": 201"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_128_bytes_is_refused_and_127_pass() {
    let padded = |n: usize| {
        move |req: &common::probe_harness::SeenRequest, tokens: &Tokens, _: &Ports| {
            let ka = tokens.for_path(&req.path);
            let pad = n.saturating_sub(ka.len());
            reply(200, None, format!("{ka}{}", " ".repeat(pad)))
        }
    };
    let report = probe_one("big.dcvcheck.net", "127.0.0.28", padded(128)).await;
    let detail = assert_check(
        &report,
        "http.token",
        "127.0.0.28:",
        Status::Fail,
        Some(Cause::H7),
    );
    assert!(
        detail.starts_with("127.0.0.28: Invalid response from http://big.dcvcheck.net:"),
        "{detail}"
    );
    let report = probe_one("fits.dcvcheck.net", "127.0.0.29", padded(127)).await;
    assert_check(&report, "http.token", "127.0.0.29:", Status::Pass, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_crlf_tab_and_space_are_trimmed() {
    let report = probe_one("trimmed.dcvcheck.net", "127.0.0.30", |req, tokens, _| {
        reply(200, None, format!("{}\r\n\t ", tokens.for_path(&req.path)))
    })
    .await;
    assert_check(&report, "http.token", "127.0.0.30:", Status::Pass, None);
    // Leading white space is not.
    let report = probe_one("leading.dcvcheck.net", "127.0.0.31", |req, tokens, _| {
        reply(200, None, format!(" {}", tokens.for_path(&req.path)))
    })
    .await;
    let detail = assert_check(
        &report,
        "http.token",
        "127.0.0.31:",
        Status::Fail,
        Some(Cause::H7),
    );
    assert!(
        detail.starts_with(
            "The key authorization file from the server did not match this challenge. Expected \""
        ),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_aaaa_is_a_warning_when_the_first_a_validates() {
    let name = "dual.dcvcheck.net";
    let dns = Challtestsrv::start();
    dns.add_a(name, &["127.0.0.32"]);
    dns.add_aaaa(name, &["::1"]);
    let ports = Ports::new();
    let tokens = Tokens::default();
    let served = tokens.clone();
    // Nothing listens on [::1] at the HTTP port.
    let _v4 = TestServer::start("127.0.0.32", ports.http, move |req| {
        reply(200, None, served.for_path(&req.path))
    });
    let report = prober(&dns, &ports, &tokens, "").probe(name).await;
    let detail = assert_check(
        &report,
        "tcp.connect",
        &format!("[::1]:{}", ports.http),
        Status::Warn,
        Some(Cause::H1),
    );
    assert!(
        detail
            .starts_with("::1: Connection refused (tolerated: the CA tries the first AAAA address"),
        "{detail}"
    );
    assert_check(
        &report,
        "tcp.connect",
        &format!("127.0.0.32:{}", ports.http),
        Status::Pass,
        None,
    );
    assert_check(&report, "http.token", "127.0.0.32:", Status::Pass, None);
    // Nothing listens for HTTPS either: HTTP-01 never needs it.
    assert_check(
        &report,
        "tcp.connect",
        &format!("127.0.0.32:{}", ports.https),
        Status::Warn,
        Some(Cause::C5),
    );
    assert_no_fail_on_the_ports(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aaaa_that_answers_does_not_fall_back_to_the_a() {
    let name = "dual404.dcvcheck.net";
    let dns = Challtestsrv::start();
    dns.add_a(name, &["127.0.0.33"]);
    dns.add_aaaa(name, &["::1"]);
    let ports = Ports::new();
    let tokens = Tokens::default();
    let served = tokens.clone();
    let _v4 = TestServer::start("127.0.0.33", ports.http, move |req| {
        reply(200, None, served.for_path(&req.path))
    });
    let _v6 = TestServer::start("::1", ports.http, |_| reply(404, None, "not here"));
    let report = prober(&dns, &ports, &tokens, "").probe(name).await;
    let detail = assert_check(
        &report,
        "http.token",
        "[::1]:",
        Status::Fail,
        Some(Cause::H2),
    );
    assert!(
        detail.starts_with("::1: Invalid response from http://dual404.dcvcheck.net:"),
        "{detail}"
    );
    assert_check(&report, "http.token", "127.0.0.33:", Status::Pass, None);
}

/// No tcp.connect, http.token or https.* check fails.
fn assert_no_fail_on_the_ports(report: &Report) {
    for c in &report.checks {
        let kind = c.kind.as_str();
        if kind == "tcp.connect" || kind.starts_with("http") {
            assert_ne!(
                c.status,
                Status::Fail,
                "{kind} [{}]: {}",
                c.target,
                c.detail
            );
        }
    }
}

#[test]
fn a_node_without_an_https_listener_does_not_fail_http01() {
    let dns = Challtestsrv::start();
    let dir = tempfile::tempdir().unwrap();
    let (http_port, https_port, admin_port) = (free_port(), free_port(), free_port());
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let config = dir.path().join("dcv-proxy.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "state"
[http]
listen = ["127.0.0.1:{http_port}"]
[https]
listen = []
[admin]
listen = "{admin}"
[server]
log_level = "warn"
grace_period = "1s"
[probe]
resolvers = ["{dns}"]
authoritative = []
public_addresses = ["127.0.0.1"]
http_port = {http_port}
https_port = {https_port}
timeout = "1s"
deadline = "30s"
interval = "0s"
"#,
            dns = dns.dns
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut node = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let http: SocketAddr = ([127, 0, 0, 1], http_port).into();
    wait_until("dcv-proxy to serve", Duration::from_secs(20), || {
        if let Ok(Some(status)) = node.try_wait() {
            panic!(
                "dcv-proxy exited with {status}:\n{}",
                std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
            );
        }
        matches!(
            http_request(admin, "GET", "/healthz", &[], b""),
            Ok((200, _))
        ) && std::net::TcpStream::connect(http).is_ok()
    });
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["check", "shop.dcvcheck.net", "--json"])
        .output()
        .unwrap();
    let _ = node.kill();
    let _ = node.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = doc["reports"][0]["checks"].as_array().unwrap();
    let find = |kind: &str, target: &str| {
        checks
            .iter()
            .find(|c| c["check"] == kind && c["target"] == target)
            .unwrap_or_else(|| panic!("no {kind} [{target}] in {doc:#}"))
    };
    let https = find("tcp.connect", &format!("127.0.0.1:{https_port}"));
    assert_eq!(https["status"], "warn", "{https:#}");
    assert_eq!(https["cause"]["id"], "C5", "{https:#}");
    let token = find("http.token", &format!("127.0.0.1:{http_port}"));
    assert_eq!(token["status"], "pass", "{token:#}");
    for c in checks {
        let kind = c["check"].as_str().unwrap();
        if kind == "tcp.connect" || kind.starts_with("http") {
            assert_ne!(c["status"], "fail", "{c:#}");
        }
    }
    // A warning is no failure: `check` exits 0.
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["verdict"], "warn", "{doc:#}");
}

// --- TLS-ALPN-01 -------------------------------------------------------------------------------

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A TLS server at `addr` presenting `key` and offering `alpn`, stopped with the runtime.
async fn tls_server(addr: SocketAddr, key: Arc<CertifiedKey>, alpn: Vec<Vec<u8>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(key)));
    config.alpn_protocols = alpn;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    use tokio::io::AsyncWriteExt;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
}

/// The node's own TLS-ALPN-01 certificate (`state::alpn`, what its listeners present).
fn challenge(name: &str, key_authorization: &str) -> Arc<CertifiedKey> {
    dcv_proxy::state::challenge_certificate(name, key_authorization).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_as_the_gate_checks_it() {
    let name = "alpn.dcvcheck.net";
    let ka = "alpnToken.thumbprint";
    let dns = Challtestsrv::start();
    dns.add_a(name, &["127.0.0.34"]);
    dns.add_aaaa(name, &["::1"]);
    let ports = Ports::new();
    tls_server(
        ([127, 0, 0, 34], ports.https).into(),
        challenge(name, ka),
        vec![b"acme-tls/1".to_vec()],
    )
    .await;
    let prober = prober(&dns, &ports, &Tokens::default(), "");
    let name: DnsName = name.parse().unwrap();
    let report = prober.probe_tls_alpn(&name, ka).await;
    let target = format!("127.0.0.34:{} (acme-tls/1)", ports.https);
    let detail = assert_check(&report, "https.certificate", &target, Status::Pass, None);
    assert!(
        detail.contains("holds SHA-256 of the key authorization"),
        "{detail}"
    );
    // Nothing on [::1]: Boulder falls back to the first A after any failure before the
    // certificate, and the A validates.
    assert_check(
        &report,
        "tcp.connect",
        &format!("[::1]:{}", ports.https),
        Status::Warn,
        Some(Cause::H1),
    );
    // Another key authorization: the digest differs (H7), whichever address.
    let report = prober.probe_tls_alpn(&name, "other.thumbprint").await;
    let detail = assert_check(
        &report,
        "https.certificate",
        &target,
        Status::Fail,
        Some(Cause::H7),
    );
    assert!(
        detail.starts_with(&format!(
            "Incorrect validation certificate for tls-alpn-01 challenge. Requested alpn.dcvcheck.net from 127.0.0.34:{}. Received certificate with acmeValidationV1 extension value",
            ports.https
        )),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_in_the_full_probe() {
    let name = "alpn-full.dcvcheck.net";
    let dns = Challtestsrv::start();
    dns.add_a(name, &["127.0.0.35"]);
    let ports = Ports::new();
    // A listener that knows no acme-tls/1 (dcv-proxy with no challenge pending): it refuses
    // with no_application_protocol. Nothing listens on the HTTP port.
    tls_server(
        ([127, 0, 0, 35], ports.https).into(),
        challenge(name, "unused.thumbprint"),
        vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    )
    .await;
    let report = prober(
        &dns,
        &ports,
        &Tokens::default(),
        "validation_method = \"tls-alpn-01\"",
    )
    .probe(name)
    .await;
    let target = format!("127.0.0.35:{} (acme-tls/1)", ports.https);
    let detail = assert_check(&report, "https.certificate", &target, Status::Skip, None);
    assert!(
        detail.contains("no TLS-ALPN-01 challenge is pending"),
        "{detail}"
    );
    assert_check(
        &report,
        "tcp.connect",
        &format!("127.0.0.35:{}", ports.https),
        Status::Pass,
        None,
    );
    // Port 80 is not used by TLS-ALPN-01: closed, it is a warning.
    let detail = assert_check(
        &report,
        "tcp.connect",
        &format!("127.0.0.35:{}", ports.http),
        Status::Warn,
        Some(Cause::H1),
    );
    assert!(
        detail.contains("TLS-ALPN-01 is validated on port 443 only"),
        "{detail}"
    );
}
