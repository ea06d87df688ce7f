//! Scenarios of the self-probe against real DNS (pebble-challtestsrv) and the real binary: each
//! reproduces a cause of the catalogue and asserts the id `dcv-proxy check` prints, as text and
//! as JSON, and for some the metric of the running server.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::probe_harness::*;
use serde_json::json;

const DAY: Duration = Duration::from_secs(86_400);

fn node_with_dns(dns: &Challtestsrv) -> Node {
    Node::start(&NodeConfig::with_dns(dns.dns))
}

/// Uploads a certificate for `names` under `id` (signed by a test CA).
fn upload_certificate(node: &Node, id: &str, names: &[&str]) {
    let ca = dcv_proxy::testkit::TestCa::new("probe tests").unwrap();
    let leaf = ca.leaf(names, DAY).unwrap();
    let (status, body) = node.admin(
        "PUT",
        &format!("/v1/certificates/{id}"),
        Some(json!({"certificate": leaf.chain_pem, "private_key": leaf.key_pem})),
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_healthy_name_passes_every_check_and_leaves_no_token_behind() {
    let dns = Challtestsrv::start();
    let node = node_with_dns(&dns);
    let name = "shop.dcvcheck.net";
    upload_certificate(&node, "shop", &[name]);

    let out = node.check(&[name]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("verdict shop.dcvcheck.net: PASS"),
        "{}",
        out.stdout
    );
    for line in [
        "PASS  dns.resolve",
        "PASS  dns.caa",
        "PASS  tcp.connect",
        "PASS  http.token",
        "PASS  https.certificate",
        "PASS  https.token",
    ] {
        assert!(out.stdout.contains(line), "{line} missing:\n{}", out.stdout);
    }

    let doc = json(&node.check(&[name, "--json"]));
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["verdict"], "pass");
    assert_eq!(doc["reports"][0]["name"], name);
    assert!(doc["reports"][0]["duration_ms"].is_u64());

    let (status, tokens) = node.admin("GET", "/v1/acme/tokens", None);
    assert_eq!(status, 200);
    let tokens: serde_json::Value = serde_json::from_str(&tokens).unwrap();
    assert_eq!(tokens["tokens"], json!([]), "probe tokens are removed");
}

#[test]
fn d1_nxdomain() {
    let nx = NxDomainServer::start();
    let node = Node::start(&NodeConfig {
        resolvers: vec![nx.addr],
        public_addresses: vec!["127.0.0.1".into()],
        ..NodeConfig::default()
    });
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.resolve", "fail", "D1");
    assert!(
        text.contains("NXDOMAIN looking up A for shop.dcvcheck.net"),
        "{text}"
    );
}

#[test]
fn d2_servfail() {
    let dns = Challtestsrv::start();
    dns.set_servfail("shop.dcvcheck.net");
    let node = node_with_dns(&dns);
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.resolve", "fail", "D2");
    assert!(
        text.contains("SERVFAIL looking up A for shop.dcvcheck.net"),
        "{text}"
    );
}

#[test]
fn d3_servfail_on_caa_at_a_parent() {
    let dns = Challtestsrv::start();
    // The name itself answers; the CAA climb reaches the broken parent.
    dns.set_servfail("dcvcheck.net");
    let node = node_with_dns(&dns);
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.caa", "fail", "D3");
    assert!(
        text.contains("SERVFAIL looking up CAA for dcvcheck.net"),
        "{text}"
    );
    assert!(text.contains("PASS  dns.resolve"), "{text}");
}

#[test]
fn d4_resolver_that_never_answers() {
    let silent = silent_udp();
    let node = Node::start(&NodeConfig {
        resolvers: vec![silent.local_addr().unwrap()],
        public_addresses: vec!["127.0.0.1".into()],
        ..NodeConfig::default()
    });
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.resolve", "fail", "D4");
    assert!(
        text.contains("DNS problem: query timed out looking up A for shop.dcvcheck.net"),
        "{text}"
    );
}

#[test]
fn a_probe_is_bounded_by_its_deadline() {
    let silent = silent_udp();
    // Every query takes the 1s timeout (twice): a 1s deadline cuts the probe short.
    let node = Node::start(&NodeConfig {
        resolvers: vec![silent.local_addr().unwrap()],
        deadline: "1s".into(),
        ..NodeConfig::default()
    });
    let out = node.check(&["shop.dcvcheck.net"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("ERROR probe")
            && out.stdout.contains("did not finish within probe.deadline"),
        "{}",
        out.stdout
    );
}

#[test]
fn d5_no_address_and_cname_to_nowhere() {
    let dns = Challtestsrv::start();
    dns.no_address("shop.dcvcheck.net");
    dns.set_cname("blog.dcvcheck.net", "gone.edge-cdn.net");
    dns.no_address("gone.edge-cdn.net");
    let node = node_with_dns(&dns);
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.resolve", "fail", "D5");
    assert!(text.contains("No valid IP addresses found"), "{text}");
    let text = assert_cause(&node, "blog.dcvcheck.net", "dns.resolve", "fail", "D5");
    assert!(
        text.contains("CNAME blog.dcvcheck.net -> gone.edge-cdn.net"),
        "{text}"
    );
}

#[test]
fn d6_name_points_elsewhere() {
    let dns = Challtestsrv::start();
    dns.add_a("shop.dcvcheck.net", &["127.0.0.2"]);
    let node = node_with_dns(&dns);
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.points_here", "fail", "D6");
    assert!(
        text.contains("resolves to 127.0.0.2, not to this node (127.0.0.1)"),
        "{text}"
    );
}

#[test]
fn d7_resolvers_that_disagree() {
    let one = Challtestsrv::start();
    let two = Challtestsrv::start();
    two.add_a("shop.dcvcheck.net", &["127.0.0.2"]);
    let node = Node::start(&NodeConfig {
        resolvers: vec![one.dns, two.dns],
        public_addresses: vec!["127.0.0.1".into(), "127.0.0.2".into()],
        ..NodeConfig::default()
    });
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.agree", "fail", "D7");
    assert!(text.contains("127.0.0.2"), "{text}");
}

#[test]
fn d8_caa_for_another_ca_and_the_metric() {
    let dns = Challtestsrv::start();
    dns.add_caa("shop.dcvcheck.net", &[("issue", "digicert.com")]);
    let node = node_with_dns(&dns);
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.caa", "fail", "D8");
    assert!(text.contains("digicert.com"), "{text}");

    // The running server's probe says the same, and exports it; running it needs the token.
    let (status, _) =
        http_request(node.admin, "POST", "/v1/probe/shop.dcvcheck.net", &[], b"").unwrap();
    assert_eq!(status, 401);
    let (status, body) = node.admin("POST", "/v1/probe/shop.dcvcheck.net", None);
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["verdict"], "fail");
    // D8 fails; C6 (no certificate yet) is a warning.
    assert_eq!(report["causes"], json!(["D8", "C6"]));
    let metrics = node.metrics();
    assert_eq!(
        metric(
            &metrics,
            r#"dcv_probe_cause{cause="D8",name="shop.dcvcheck.net"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            r#"dcv_probe_ok{check="dns.caa",name="shop.dcvcheck.net"}"#
        ),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            r#"dcv_probe_ok{check="http.token",name="shop.dcvcheck.net"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn d8_caa_inherited_through_a_cname() {
    let dns = Challtestsrv::start();
    dns.set_cname("blog.dcvcheck.net", "pages.hosted-sites.net");
    dns.add_caa("pages.hosted-sites.net", &[("issue", "digicert.com")]);
    let node = node_with_dns(&dns);
    let text = assert_cause(&node, "blog.dcvcheck.net", "dns.caa", "fail", "D8");
    assert!(
        text.contains("CNAME blog.dcvcheck.net -> pages.hosted-sites.net"),
        "{text}"
    );
}

#[test]
fn d8_caa_bound_to_another_account() {
    let dns = Challtestsrv::start();
    dns.add_caa(
        "dcvcheck.net",
        &[(
            "issue",
            "letsencrypt.org; accounturi=https://acme.dcvcheck.net/acct/2",
        )],
    );
    let node = Node::start(&NodeConfig {
        probe_extra: r#"account_uri = "https://acme.dcvcheck.net/acct/1""#.into(),
        ..NodeConfig::with_dns(dns.dns)
    });
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.caa", "fail", "D8");
    assert!(
        text.contains("binds issuance to account https://acme.dcvcheck.net/acct/2"),
        "{text}"
    );
}

#[test]
fn d9_missing_and_d10_stale_txt_records() {
    let dns = Challtestsrv::start();
    let node = Node::start(&NodeConfig {
        probe_extra: "[[probe.txt]]\nname = \"_acme-challenge.shop.dcvcheck.net\"\nvalue = \"expected-value\"\n".into(),
        ..NodeConfig::with_dns(dns.dns)
    });
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.txt", "fail", "D9");
    assert!(
        text.contains("no TXT record at _acme-challenge.shop.dcvcheck.net"),
        "{text}"
    );

    dns.set_txt("_acme-challenge.shop.dcvcheck.net", "stale-value");
    let text = assert_cause(&node, "shop.dcvcheck.net", "dns.txt", "fail", "D10");
    assert!(text.contains("\"stale-value\" (TTL 0s"), "{text}");

    // Registered through the admin API instead of the configuration.
    let (status, body) = node.admin(
        "PUT",
        "/v1/probe/txt/_dnsauth.cart.dcvcheck.net",
        Some(json!({"values": ["dnsauth-value"]})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = node.admin("GET", "/v1/probe/txt", None);
    assert_eq!(status, 200);
    assert!(body.contains("dnsauth-value"), "{body}");
    assert_cause(&node, "cart.dcvcheck.net", "dns.txt", "fail", "D9");
    dns.set_txt("_dnsauth.cart.dcvcheck.net", "dnsauth-value");
    let out = node.check(&["cart.dcvcheck.net"]);
    assert!(out.stdout.contains("PASS  dns.txt"), "{}", out.stdout);
}

#[test]
fn h1_port_closed() {
    let dns = Challtestsrv::start();
    // Nothing listens on 127.0.0.2.
    dns.add_a("shop.dcvcheck.net", &["127.0.0.2"]);
    let node = Node::start(&NodeConfig {
        public_addresses: vec!["127.0.0.1".into(), "127.0.0.2".into()],
        ..NodeConfig::with_dns(dns.dns)
    });
    let text = assert_cause(&node, "shop.dcvcheck.net", "tcp.connect", "fail", "H1");
    assert!(text.contains("[127.0.0.2:"), "{text}");
}

#[test]
fn h2_another_server_without_the_token() {
    let dns = Challtestsrv::start();
    dns.add_a("shop.dcvcheck.net", &["127.0.0.3"]);
    let node = Node::start(&NodeConfig {
        public_addresses: vec!["127.0.0.3".into()],
        ..NodeConfig::with_dns(dns.dns)
    });
    let _server = TestServer::start("127.0.0.3", node.http_port, |_| CannedReply {
        status: 404,
        location: None,
        body: "not found".into(),
    });
    let text = assert_cause(&node, "shop.dcvcheck.net", "http.token", "fail", "H2");
    // Boulder's words (va/http.go): the URL, then the status.
    assert!(
        text.contains("Invalid response from http://shop.dcvcheck.net:") && text.contains(": 404"),
        "{text}"
    );
}

#[test]
fn h4_redirects_the_ca_would_not_follow() {
    let dns = Challtestsrv::start();
    dns.add_a("moved.dcvcheck.net", &["127.0.0.4"]);
    dns.add_a("loop.dcvcheck.net", &["127.0.0.4"]);
    let node = Node::start(&NodeConfig {
        public_addresses: vec!["127.0.0.4".into()],
        ..NodeConfig::with_dns(dns.dns)
    });
    let _server = TestServer::start("127.0.0.4", node.http_port, |req| {
        let location = if req.host == "moved.dcvcheck.net" {
            format!("http://{}:8080{}", req.host, req.path)
        } else {
            "/.well-known/acme-challenge/again".to_owned()
        };
        CannedReply {
            status: 301,
            location: Some(location),
            body: String::new(),
        }
    });
    let text = assert_cause(&node, "moved.dcvcheck.net", "http.token", "fail", "H4");
    assert!(text.contains("Invalid port in redirect target"), "{text}");
    assert!(text.contains("not 8080"), "{text}");
    let text = assert_cause(&node, "loop.dcvcheck.net", "http.token", "fail", "H4");
    assert!(text.contains("Redirect loop detected"), "{text}");
}

#[test]
fn h7_stale_content_and_the_metric() {
    let dns = Challtestsrv::start();
    dns.add_a("shop.dcvcheck.net", &["127.0.0.5"]);
    let node = Node::start(&NodeConfig {
        public_addresses: vec!["127.0.0.5".into()],
        ..NodeConfig::with_dns(dns.dns)
    });
    let _server = TestServer::start("127.0.0.5", node.http_port, |_| CannedReply {
        status: 200,
        location: None,
        body: "old-token.old-thumbprint\n".into(),
    });
    let text = assert_cause(&node, "shop.dcvcheck.net", "http.token", "fail", "H7");
    assert!(text.contains("\"old-token.old-thumbprint\""), "{text}");

    let (status, _) = node.admin("POST", "/v1/probe/shop.dcvcheck.net", None);
    assert_eq!(status, 200);
    let metrics = node.metrics();
    assert_eq!(
        metric(
            &metrics,
            r#"dcv_probe_cause{cause="H7",name="shop.dcvcheck.net"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn h8_file_served_on_the_apex_but_not_on_www() {
    let dns = Challtestsrv::start();
    dns.add_a("www.filecheck.net", &["127.0.0.6"]);
    let node = Node::start(&NodeConfig {
        public_addresses: vec!["127.0.0.1".into(), "127.0.0.6".into()],
        ..NodeConfig::with_dns(dns.dns)
    });
    let _server = TestServer::start("127.0.0.6", node.http_port, |_| CannedReply {
        status: 404,
        location: None,
        body: String::new(),
    });
    let (status, body) = node.admin(
        "PUT",
        "/v1/pki/filecheck.net/fileauth.txt",
        Some(json!({"content": "202611240000001abcdef"})),
    );
    assert_eq!(status, 201, "{body}");
    let text = assert_cause(&node, "filecheck.net", "pki.file", "fail", "H8");
    assert!(
        text.contains("PASS  pki.file                 [http://filecheck.net:"),
        "{text}"
    );
    assert!(text.contains("PASS  pki.age"), "{text}");
}

#[test]
fn h9_validation_file_too_old() {
    let dns = Challtestsrv::start();
    let node = Node::start(&NodeConfig {
        state_files: vec![aged(
            "pki/oldfile.net/fileauth.txt",
            "202609010000001abcdef",
            60 * DAY,
        )],
        ..NodeConfig::with_dns(dns.dns)
    });
    let text = assert_cause(&node, "oldfile.net", "pki.age", "fail", "H9");
    assert!(text.contains("registered 60 days ago"), "{text}");
    assert!(text.contains("PASS  pki.file"), "{text}");
}

#[test]
fn h10_another_sites_certificate_and_c6_without_one() {
    let dns = Challtestsrv::start();
    let node = node_with_dns(&dns);
    // No certificate for the name yet: the self-signed default, a warning (C6).
    assert_cause(
        &node,
        "shop.dcvcheck.net",
        "https.certificate",
        "warn",
        "C6",
    );
    // Another site's certificate presented for every name (the default replaced): H10, a
    // warning only — HTTP-01 never looks at a certificate (RFC 8555 §8.3).
    upload_certificate(&node, "default", &["other-site.net"]);
    let text = assert_cause(
        &node,
        "shop.dcvcheck.net",
        "https.certificate",
        "warn",
        "H10",
    );
    assert!(text.contains("covers other-site.net"), "{text}");
}

#[test]
fn p1_p5_p6_lints() {
    let dns = Challtestsrv::start();
    let node = node_with_dns(&dns);
    let text = assert_cause(
        &node,
        "shop.notasuffixzz",
        "lint.public_suffix",
        "fail",
        "P1",
    );
    assert!(text.contains("not a public suffix"), "{text}");
    assert_cause(&node, "co.uk", "lint.public_suffix", "fail", "P1");
    let text = assert_cause(
        &node,
        "paypal-login.net",
        "lint.sensitive_words",
        "warn",
        "P5",
    );
    assert!(text.contains("paypal"), "{text}");
    let text = assert_cause(&node, "bad_name.dcvcheck.net", "lint.syntax", "fail", "P6");
    assert!(text.contains("'_'"), "{text}");
    let long = format!("{}.dcvcheck.net", "a".repeat(60));
    assert_cause(&node, &long, "lint.syntax", "warn", "P6");
}

#[test]
fn check_exits_2_without_the_node_and_64_on_a_bad_configuration() {
    let dns = Challtestsrv::start();
    let stopped = Node::configure(&NodeConfig::with_dns(dns.dns));
    std::fs::create_dir_all(stopped.state_dir()).unwrap();
    std::fs::write(
        stopped.state_dir().join("admin.token"),
        "0123456789abcdef0123\n",
    )
    .unwrap();
    let out = stopped.check(&["shop.dcvcheck.net"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("admin API"), "{}", out.stderr);

    std::fs::write(&stopped.config_path, "[probe]\nresolvers = [\"nowhere\"]\n").unwrap();
    let out = stopped.check(&["shop.dcvcheck.net"]);
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(out.stderr.contains("probe.resolvers[0]"), "{}", out.stderr);
}

#[test]
fn running_server_probes_its_sites_on_an_interval() {
    let dns = Challtestsrv::start();
    dns.add_caa("caa.dcvcheck.net", &[("issue", "sectigo.com")]);
    let node = Node::start(&NodeConfig {
        sites: vec!["caa.dcvcheck.net".into(), "shop.dcvcheck.net".into()],
        interval: "1s".into(),
        ..NodeConfig::with_dns(dns.dns)
    });
    wait_until(
        "the periodic probe's metrics",
        Duration::from_secs(30),
        || {
            let metrics = node.metrics();
            metric(
                &metrics,
                r#"dcv_probe_cause{cause="D8",name="caa.dcvcheck.net"}"#,
            ) == Some(1.0)
                && metric(
                    &metrics,
                    r#"dcv_probe_last_run_timestamp_seconds{name="shop.dcvcheck.net"}"#,
                )
                .is_some()
        },
    );
    let metrics = node.metrics();
    assert!(
        metrics.contains("dcv_probe_duration_seconds_count"),
        "{metrics}"
    );
    let (status, body) = node.admin("GET", "/v1/status", None);
    assert_eq!(status, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["probe"]["caa.dcvcheck.net"]["verdict"], "fail",
        "{body}"
    );
    assert_eq!(
        status["probe"]["caa.dcvcheck.net"]["causes"],
        json!(["D8", "C6"])
    );
    let (code, body) = node.admin("GET", "/v1/probe/caa.dcvcheck.net", None);
    assert_eq!(code, 200);
    assert!(body.contains("sectigo.com"), "{body}");
    // `check` without names probes the configured sites.
    let out = node.check(&[]);
    assert!(
        out.stdout.contains("verdict caa.dcvcheck.net: FAIL"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("verdict shop.dcvcheck.net:"),
        "{}",
        out.stdout
    );
}

mod gate {
    use std::sync::Arc;

    use dcv_proxy::api::AdminClient;
    use dcv_proxy::config::{Config, DnsName};
    use dcv_proxy::probe::{gate, AdminNode, Cause, Prober};

    use super::*;

    fn prober(node: &Node) -> Prober {
        let config = Config::load(&node.config_path).unwrap();
        let token = std::fs::read_to_string(node.state_dir().join("admin.token")).unwrap();
        let admin = AdminNode::new(AdminClient::new(
            config.admin.listen,
            Some(token.trim().to_owned()),
            Duration::from_secs(2),
        ));
        Prober::new(config.probe, Arc::new(admin)).unwrap()
    }

    fn publish(node: &Node, token: &str, name: &str) -> String {
        let key_authorization = format!("{token}.thumbprint");
        let (status, body) = node.admin(
            "PUT",
            &format!("/v1/acme/tokens/{token}"),
            Some(json!({"key_authorization": key_authorization, "identifier": name})),
        );
        assert_eq!(status, 201, "{body}");
        key_authorization
    }

    fn misses(node: &Node) -> f64 {
        metric(
            &node.metrics(),
            r#"dcv_challenge_requests_total{kind="acme",result="miss",scheme="http"}"#,
        )
        .unwrap_or(0.0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gate_opens_for_a_published_token_and_names_the_cause_otherwise() {
        let dns = Challtestsrv::start();
        let node = node_with_dns(&dns);
        let prober = prober(&node);
        let name: DnsName = "shop.dcvcheck.net".parse().unwrap();

        let token = "gateTokenAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let key_authorization = publish(&node, token, name.as_str());
        let report = gate(
            &prober,
            &name,
            token,
            &key_authorization,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert!(report
            .checks
            .iter()
            .any(|c| c.kind.as_str() == "http.token"));

        let missing = "gateTokenBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
        let failure = gate(
            &prober,
            &name,
            missing,
            &format!("{missing}.thumbprint"),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        assert_eq!(failure.causes, vec![Cause::H2], "{failure}");
        assert!(failure.attempts >= 2, "{failure}");
        assert!(failure.to_string().contains("H2"), "{failure}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gate_waits_until_the_token_is_served() {
        let dns = Challtestsrv::start();
        let node = node_with_dns(&dns);
        let prober = prober(&node);
        let name: DnsName = "shop.dcvcheck.net".parse().unwrap();
        let token = "gateTokenCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC";
        let key_authorization = format!("{token}.thumbprint");

        let before = misses(&node);
        let waiting = {
            let key_authorization = key_authorization.clone();
            let name = name.clone();
            tokio::spawn(async move {
                gate(
                    &prober,
                    &name,
                    token,
                    &key_authorization,
                    Duration::from_secs(30),
                )
                .await
            })
        };
        // Publish only once the gate has seen the token missing.
        let _node = tokio::task::spawn_blocking({
            move || {
                wait_until("the gate's first attempt", Duration::from_secs(20), || {
                    misses(&node) > before
                });
                publish(&node, token, "shop.dcvcheck.net");
                node
            }
        })
        .await
        .unwrap();
        let report = waiting.await.unwrap().unwrap();
        assert_ne!(report.verdict().as_str(), "fail");
    }
}
