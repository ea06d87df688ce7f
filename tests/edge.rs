//! The edge listeners end to end: validation answers first on HTTP and HTTPS (ACME, pki-validation,
//! webroot), the HTTP→HTTPS redirect, traversal attempts, and proxying to origins.

#![allow(clippy::unwrap_used)]

mod common;

use common::{key_authorization, Node, TestOrigin};

const TOKEN: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";

// ---- ACME HTTP-01

#[tokio::test]
async fn known_token_is_answered_on_http_and_https_before_the_redirect() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .redirect_to_https()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    let key_auth = key_authorization(TOKEN);
    node.put_token(TOKEN, &key_auth, None).await;
    let path = format!("/.well-known/acme-challenge/{TOKEN}");

    let plain = node.http_get("a.test", &path).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(plain.header("content-type"), Some("text/plain"));
    assert_eq!(plain.body, key_auth.as_bytes());

    let (tls, _) = node.https_get("a.test", &path).await;
    assert_eq!(tls.status, 200, "{}", tls.text());
    assert_eq!(tls.header("content-type"), Some("text/plain"));
    assert_eq!(tls.body, key_auth.as_bytes());

    for head in [
        node.http_request("HEAD", "a.test", &path, &[]).await,
        node.https_request("HEAD", "a.test", &path, &[]).await,
    ] {
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-type"), Some("text/plain"));
        assert_eq!(
            head.header("content-length"),
            Some(key_auth.len().to_string().as_str())
        );
        assert!(head.body.is_empty(), "HEAD got a body: {:?}", head.text());
    }

    assert!(
        origin.requests().is_empty(),
        "the origin saw validation traffic: {:?}",
        origin.requests()
    );
}

#[tokio::test]
async fn unknown_token_is_404_at_the_edge() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .redirect_to_https()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;

    for path in [
        "/.well-known/acme-challenge/unknownTOKEN_123",
        // Not a token at all (RFC 8555 §8.1: base64url only).
        "/.well-known/acme-challenge/tok=en",
    ] {
        let plain = node.http_get("a.test", path).await;
        assert_eq!(plain.status, 404, "{path} on http: {}", plain.text());
        assert_eq!(plain.header("location"), None, "{path} was redirected");
        let (tls, _) = node.https_get("a.test", path).await;
        assert_eq!(tls.status, 404, "{path} on https: {}", tls.text());
    }
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
}

#[tokio::test]
async fn unknown_token_reaches_the_origin_when_configured_and_is_not_redirected() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .redirect_to_https()
        .unknown_token_to_origin()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;

    let unknown = "/.well-known/acme-challenge/originOwnsThisToken";
    let resp = node.http_get("a.test", unknown).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("location"), None);
    assert_eq!(resp.text(), origin.body_for(unknown));

    let unknown_file = "/.well-known/pki-validation/origin-file.txt";
    let resp = node.http_get("a.test", unknown_file).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), origin.body_for(unknown_file));

    // A known token is still answered at the edge.
    let known = node
        .http_get("a.test", &format!("/.well-known/acme-challenge/{TOKEN}"))
        .await;
    assert_eq!(known.text(), key_authorization(TOKEN));

    let seen = origin.requests();
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, [unknown, unknown_file]);
    assert!(seen
        .iter()
        .all(|r| r.x_forwarded_proto.as_deref() == Some("http")));
}

#[tokio::test]
async fn other_paths_redirect_on_http_and_are_proxied_on_https() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .redirect_to_https()
        .site(&["a.test"], origin.addr())
        .start()
        .await;

    let path = "/shop/cart?item=7&q=a%20b";
    let resp = node.http_get("a.test", path).await;
    assert_eq!(resp.status, 301);
    assert_eq!(
        resp.header("location"),
        Some("https://a.test/shop/cart?item=7&q=a%20b")
    );
    // The port of the Host header is not carried into the HTTPS target.
    let resp = node.http_get("A.test:8080", "/").await;
    assert_eq!(resp.status, 301);
    assert_eq!(resp.header("location"), Some("https://a.test/"));
    // Near misses of the validation prefixes are ordinary paths.
    let resp = node.http_get("a.test", "/.well-known/acme-challenge").await;
    assert_eq!(resp.status, 301);
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());

    let (tls, _) = node.https_get("a.test", path).await;
    assert_eq!(tls.status, 200, "{}", tls.text());
    assert_eq!(tls.text(), origin.body_for(path));
    assert_eq!(origin.requests().len(), 1);
    let metrics = node.metrics().await;
    assert_eq!(
        metrics.value("dcv_https_redirects_total", &[]),
        Some(3.0),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn redirect_status_and_port_are_configurable() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .redirect_to_https()
        .redirect_status(308)
        .redirect_port(8443)
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    let resp = node.http_request("POST", "a.test", "/form?x=1", &[]).await;
    assert_eq!(resp.status, 308);
    assert_eq!(
        resp.header("location"),
        Some("https://a.test:8443/form?x=1")
    );
    let resp = node.http_get("[::1]:80", "/v6").await;
    assert_eq!(resp.header("location"), Some("https://[::1]:8443/v6"));
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
}

#[tokio::test]
async fn redirect_targets_are_valid_urls_for_every_request_form() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .redirect_to_https()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    for raw in [
        &b"GET /p HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"[..],
        b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    ] {
        let resp = node.http_raw(raw).await;
        let shown = String::from_utf8_lossy(raw);
        if !(300..400).contains(&resp.status) {
            continue;
        }
        let location = resp.header("location").expect("a redirect has a Location");
        let uri: http::Uri = location
            .parse()
            .unwrap_or_else(|e| panic!("{shown:?} redirected to {location:?}: {e}"));
        assert_eq!(uri.scheme_str(), Some("https"), "{shown:?}: {location}");
        assert_eq!(uri.host(), Some("a.test"), "{shown:?}: {location}");
        assert!(uri.path().starts_with('/'), "{shown:?}: {location}");
    }
}

#[tokio::test]
async fn token_bound_to_an_identifier_answers_only_for_that_host() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["a.test", "b.test"], origin.addr())
        .start()
        .await;
    let key_auth = key_authorization(TOKEN);
    node.put_token(TOKEN, &key_auth, Some("a.test")).await;
    let path = format!("/.well-known/acme-challenge/{TOKEN}");

    let a = node.http_get("a.test", &path).await;
    assert_eq!((a.status, a.text()), (200, key_auth.clone()));
    let a_upper = node.http_get("A.TEST", &path).await;
    assert_eq!(
        a_upper.status, 200,
        "the Host comparison is case-insensitive"
    );
    let (a_tls, _) = node.https_get("a.test", &path).await;
    assert_eq!((a_tls.status, a_tls.text()), (200, key_auth.clone()));

    let b = node.http_get("b.test", &path).await;
    assert_eq!(b.status, 404, "{}", b.text());
    let (b_tls, _) = node.https_get("b.test", &path).await;
    assert_eq!(b_tls.status, 404, "{}", b_tls.text());
    assert!(!b.text().contains(&key_auth) && !b_tls.text().contains(&key_auth));
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
}

// ---- pki-validation

/// Not UTF-8, with a NUL and CR LF: must come back byte for byte.
const PKI_BYTES: &[u8] = b"\xff\xfe\x00validation\r\n\x80\x81 token-123\n";

#[tokio::test]
async fn pki_file_answers_on_apex_and_www_with_the_exact_bytes() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["example.com", "www.example.com"], origin.addr())
        .start()
        .await;
    node.put_pki("example.com", "fileauth.txt", PKI_BYTES).await;
    node.put_pki("www.other.test", "ABCDEF0123456789.txt", b"other")
        .await;

    for host in ["example.com", "www.example.com"] {
        let resp = node
            .http_get(host, "/.well-known/pki-validation/fileauth.txt")
            .await;
        assert_eq!(resp.status, 200, "{host}: {}", resp.text());
        assert_eq!(resp.body, PKI_BYTES, "{host}");
        let (tls, _) = node
            .https_get(host, "/.well-known/pki-validation/fileauth.txt")
            .await;
        assert_eq!(tls.status, 200, "{host} over TLS");
        assert_eq!(tls.body, PKI_BYTES, "{host} over TLS");
    }
    // Put for www., answered on the apex too.
    for host in ["other.test", "www.other.test"] {
        let resp = node
            .http_get(host, "/.well-known/pki-validation/ABCDEF0123456789.txt")
            .await;
        assert_eq!(
            (resp.status, resp.text()),
            (200, "other".to_owned()),
            "{host}"
        );
    }
    for host in ["third.test", "mail.example.com", "www.www.example.com"] {
        let resp = node
            .http_get(host, "/.well-known/pki-validation/fileauth.txt")
            .await;
        assert_eq!(resp.status, 404, "{host}: {}", resp.text());
    }
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
}

/// Request targets that try to leave the validation directory or reach another host's file.
/// Sent as raw request lines, because HTTP clients would normalise them.
const TRAVERSALS: &[&str] = &[
    "/.well-known/pki-validation/..",
    "/.well-known/pki-validation/.",
    "/.well-known/pki-validation/../fileauth.txt",
    "/.well-known/pki-validation/../../etc/passwd",
    "/.well-known/pki-validation/../../../admin.token",
    "/.well-known/pki-validation/%2e%2e",
    "/.well-known/pki-validation/%2e%2e/fileauth.txt",
    "/.well-known/pki-validation/%2E%2E%2F%2E%2E%2F%2E%2E%2Fadmin.token",
    "/.well-known/pki-validation/.%2e/.%2e/.%2e/admin.token",
    "/.well-known/pki-validation/..%5c..%5c..%5cadmin.token",
    "/.well-known/pki-validation/x%2Ffileauth.txt",
    "/.well-known/pki-validation/%2Ffileauth.txt",
    "/.well-known/pki-validation//fileauth.txt",
    "/.well-known/pki-validation/sub/fileauth.txt",
    "/.well-known/pki-validation/fileauth.txt/",
    "/.well-known/pki-validation/fileauth.txt/..",
    "/.well-known/pki-validation/fileauth.txt%00",
    "/.well-known/pki-validation/.htaccess",
    "/.well-known/acme-challenge/../../../admin.token",
    "/.well-known/acme-challenge/..%2F..%2F..%2Fadmin.token",
    "/.well-known/acme-challenge/%2e%2e",
    "/.well-known/acme-challenge/a/b",
];

/// `GET target` with `Host: host`, byte for byte.
fn raw_get(target: &str, host: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn traversal_attempts_never_match_and_never_reach_the_origin() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["example.com", "www.example.com", "b.test"], origin.addr())
        .start()
        .await;
    node.put_pki("example.com", "fileauth.txt", PKI_BYTES).await;
    // A webroot file too, so a traversal that escaped the host check would find something.
    std::fs::write(
        node.state_dir()
            .join("webroot/.well-known/pki-validation/webroot-only.txt"),
        b"webroot",
    )
    .unwrap();
    let admin_token = node.admin_token();

    for target in TRAVERSALS {
        let resp = node.http_raw(&raw_get(target, "example.com")).await;
        assert!(
            resp.status == 404,
            "{target}: got {} {:?}",
            resp.status,
            resp.text()
        );
        assert_ne!(resp.body, PKI_BYTES, "{target} matched the file");
        assert!(
            !resp.text().contains(&admin_token),
            "{target} leaked a file"
        );
    }

    // The file exists for example.com; other hosts never get it.
    for host in [
        "b.test",
        "wwwexample.com",
        "example.com.b.test",
        "www.www.example.com",
        "example.com/..",
        "example.com%2f",
    ] {
        let resp = node
            .http_raw(&raw_get("/.well-known/pki-validation/fileauth.txt", host))
            .await;
        assert!(
            resp.status == 404,
            "Host {host}: got {} {:?}",
            resp.status,
            resp.text()
        );
        assert_ne!(resp.body, PKI_BYTES, "Host {host} got example.com's file");
    }
    assert!(
        origin.requests().is_empty(),
        "traversal attempts reached the origin: {:?}",
        origin.requests()
    );
}

#[tokio::test]
async fn malformed_validation_paths_are_not_forwarded_even_when_unknown_tokens_are() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .unknown_token_to_origin()
        .site(&["example.com"], origin.addr())
        .start()
        .await;
    node.put_pki("example.com", "fileauth.txt", PKI_BYTES).await;

    for target in TRAVERSALS {
        let resp = node.http_raw(&raw_get(target, "example.com")).await;
        assert!(
            resp.status == 404,
            "{target}: got {} {:?}",
            resp.status,
            resp.text()
        );
    }
    assert!(
        origin.requests().is_empty(),
        "malformed validation paths reached the origin: {:?}",
        origin.requests()
    );
    // The mode is on: a well-formed unknown file does go to the origin.
    let resp = node
        .http_raw(&raw_get(
            "/.well-known/pki-validation/unknown.txt",
            "example.com",
        ))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(origin.requests().len(), 1);
}

// ---- webroot

#[tokio::test]
async fn webroot_files_answer_the_very_next_request() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .redirect_to_https()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    let token = "webrootTokenWrittenByCertbot_0123456789ab";
    let acme_path = format!("/.well-known/acme-challenge/{token}");
    let pki_path = "/.well-known/pki-validation/DV-check.txt";
    assert_eq!(node.http_get("a.test", &acme_path).await.status, 404);
    assert_eq!(node.http_get("a.test", pki_path).await.status, 404);

    let webroot = node.state_dir().join("webroot/.well-known");
    std::fs::write(
        webroot.join("acme-challenge").join(token),
        key_authorization(token),
    )
    .unwrap();
    std::fs::write(webroot.join("pki-validation/DV-check.txt"), PKI_BYTES).unwrap();

    let acme = node.http_get("a.test", &acme_path).await;
    assert_eq!(acme.status, 200, "{}", acme.text());
    assert_eq!(acme.header("content-type"), Some("text/plain"));
    assert_eq!(acme.text(), key_authorization(token));
    let (acme_tls, _) = node.https_get("a.test", &acme_path).await;
    assert_eq!(acme_tls.text(), key_authorization(token));
    let pki = node.http_get("a.test", pki_path).await;
    assert_eq!((pki.status, pki.body), (200, PKI_BYTES.to_vec()));

    // Removed by the ACME client after validation: gone on the next request too.
    std::fs::remove_file(webroot.join("acme-challenge").join(token)).unwrap();
    assert_eq!(node.http_get("a.test", &acme_path).await.status, 404);

    let metrics = node.metrics().await;
    let webroot_hits = |scheme| {
        metrics.count(
            "dcv_challenge_requests_total",
            &[("kind", "webroot"), ("scheme", scheme), ("result", "hit")],
        )
    };
    assert_eq!(webroot_hits("http"), 2.0, "{}", metrics.text);
    assert_eq!(webroot_hits("https"), 1.0, "{}", metrics.text);
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
}

#[tokio::test]
async fn webroot_symlinks_do_not_lead_out_of_the_webroot() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    let state = node.state_dir();
    let webroot = state.join("webroot/.well-known");
    let secret = node.admin_token();
    std::os::unix::fs::symlink(
        state.join("admin.token"),
        webroot.join("pki-validation/token.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../../../certs/default.pem",
        webroot.join("pki-validation/key.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../../../admin.token",
        webroot.join("acme-challenge/symlinkedToken"),
    )
    .unwrap();

    for path in [
        "/.well-known/pki-validation/token.txt",
        "/.well-known/pki-validation/key.txt",
        "/.well-known/acme-challenge/symlinkedToken",
    ] {
        let resp = node.http_get("a.test", path).await;
        assert!(
            !resp.text().contains(&secret) && !resp.text().contains("PRIVATE KEY"),
            "{path} served a file from outside the webroot: {:?}",
            resp.text()
        );
        assert_eq!(resp.status, 404, "{path}");
    }
}

// ---- proxying

#[tokio::test]
async fn proxied_requests_keep_host_and_set_forwarded_headers() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["a.test"], origin.addr())
        .start()
        .await;

    let resp = node.http_request("GET", "a.test", "/plain", &[]).await;
    assert_eq!((resp.status, resp.text()), (200, origin.body_for("/plain")));
    let resp = node
        .http_request(
            "GET",
            "a.test",
            "/chained",
            &[
                ("X-Forwarded-For", "203.0.113.7"),
                // A client cannot claim HTTPS over plain HTTP.
                ("X-Forwarded-Proto", "https"),
            ],
        )
        .await;
    assert_eq!(resp.status, 200);
    let resp = node.https_request("POST", "a.test", "/secure", &[]).await;
    assert_eq!(resp.status, 200);

    let seen = origin.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].host.as_deref(), Some("a.test"));
    assert_eq!(seen[0].x_forwarded_for.as_deref(), Some("127.0.0.1"));
    assert_eq!(seen[0].x_forwarded_proto.as_deref(), Some("http"));
    assert_eq!(
        seen[1].x_forwarded_for.as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(seen[1].x_forwarded_proto.as_deref(), Some("http"));
    assert_eq!(seen[2].method, "POST");
    assert_eq!(seen[2].path, "/secure");
    assert_eq!(seen[2].host.as_deref(), Some("a.test"));
    assert_eq!(seen[2].x_forwarded_for.as_deref(), Some("127.0.0.1"));
    assert_eq!(seen[2].x_forwarded_proto.as_deref(), Some("https"));
}

#[tokio::test]
async fn origin_connections_are_kept_alive() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["a.test"], origin.addr())
        .start()
        .await;

    const REQUESTS: usize = 8;
    let stream = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    let mut client = common::h1_client(stream).await;
    for i in 0..REQUESTS {
        let path = format!("/page/{i}");
        let resp = common::collect(
            client
                .send_request(common::get(&path, Some("a.test")))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((resp.status, resp.text()), (200, origin.body_for(&path)));
    }
    assert_eq!(origin.requests().len(), REQUESTS);
    assert!(
        origin.connections() < REQUESTS,
        "{REQUESTS} sequential requests used {} origin connections",
        origin.connections()
    );
}

#[tokio::test]
async fn answers_and_proxied_requests_share_a_keep_alive_connection() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    let known = format!("/.well-known/acme-challenge/{TOKEN}");
    let stream = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    let mut client = common::h1_client(stream).await;
    let steps: [(&str, &str, u16, String); 6] = [
        ("a.test", &known, 200, key_authorization(TOKEN)),
        ("a.test", "/page", 200, origin.body_for("/page")),
        (
            "a.test",
            "/.well-known/acme-challenge/unknownToken1",
            404,
            "not found\n".to_owned(),
        ),
        (
            "nosite.test",
            "/page",
            404,
            "no site is configured for this host\n".to_owned(),
        ),
        ("a.test", "/again", 200, origin.body_for("/again")),
        ("a.test", &known, 200, key_authorization(TOKEN)),
    ];
    for (host, path, status, body) in steps {
        let resp = common::collect(
            client
                .send_request(common::get(path, Some(host)))
                .await
                .unwrap_or_else(|e| panic!("{host}{path} on the reused connection: {e}")),
        )
        .await;
        assert_eq!((resp.status, resp.text()), (status, body), "{host}{path}");
    }
}

#[tokio::test]
async fn sites_route_by_exact_and_wildcard_names() {
    let (a, b) = (TestOrigin::named("a").await, TestOrigin::named("b").await);
    let node = Node::builder()
        .site(&["a.test", "*.apps.test"], a.addr())
        .site(&["b.test"], b.addr())
        .start()
        .await;

    for (host, origin) in [("a.test", &a), ("x.apps.test", &a), ("b.test", &b)] {
        let resp = node.http_get(host, "/route").await;
        assert_eq!(resp.status, 200, "{host}: {}", resp.text());
        assert_eq!(resp.text(), origin.body_for("/route"), "{host}");
        assert_eq!(
            resp.header("x-origin"),
            Some(resp.text().split(':').next().unwrap())
        );
        let (tls, _) = node.https_get(host, "/route").await;
        assert_eq!(tls.text(), origin.body_for("/route"), "{host} over TLS");
    }
    // The wildcard covers one label only, not the parent itself; unknown hosts go nowhere.
    for host in ["apps.test", "a.b.apps.test", "c.test", "www.a.test"] {
        let resp = node.http_get(host, "/route").await;
        assert_eq!(resp.status, 404, "{host}: {}", resp.text());
    }
    assert_eq!(a.requests().len(), 4, "{:?}", a.requests());
    assert_eq!(b.requests().len(), 2, "{:?}", b.requests());
    let hosts: Vec<_> = a.requests().into_iter().filter_map(|r| r.host).collect();
    assert_eq!(hosts, ["a.test", "a.test", "x.apps.test", "x.apps.test"]);
}

#[tokio::test]
async fn default_origin_serves_hosts_no_site_names() {
    let (site, fallback) = (
        TestOrigin::named("site").await,
        TestOrigin::named("fallback").await,
    );
    let node = Node::builder()
        .site(&["a.test"], site.addr())
        .default_origin(fallback.addr())
        .start()
        .await;
    let resp = node.http_get("a.test", "/x").await;
    assert_eq!(resp.text(), site.body_for("/x"));
    let resp = node.http_get("elsewhere.test", "/y").await;
    assert_eq!(resp.text(), fallback.body_for("/y"));
    assert_eq!(
        fallback.requests()[0].host.as_deref(),
        Some("elsewhere.test")
    );
}

#[tokio::test]
async fn unreachable_origin_gives_502_without_internals() {
    // A port that was free a moment ago: nothing listens there.
    let dead = common::free_addr();
    let node = Node::builder().site(&["down.test"], dead).start().await;

    let plain = node.http_get("down.test", "/anything").await;
    let (tls, _) = node.https_get("down.test", "/anything").await;
    for resp in [&plain, &tls] {
        assert_eq!(resp.status, 502, "{}", resp.text());
        let body = resp.text().to_ascii_lowercase();
        for leak in [
            dead.to_string(),
            dead.port().to_string(),
            "127.0.0.1".to_owned(),
            "refused".to_owned(),
            "error".to_owned(),
            "pingora".to_owned(),
        ] {
            assert!(
                !body.contains(&leak),
                "the 502 body leaks {leak:?}: {body:?}"
            );
        }
        let headers = format!("{:?}", resp.headers).to_ascii_lowercase();
        assert!(!headers.contains(&dead.port().to_string()), "{headers}");
    }

    let metrics = node.metrics().await;
    assert_eq!(
        metrics.count("dcv_proxied_requests_total", &[("class", "5xx")]),
        2.0,
        "{}",
        metrics.text
    );
}

// ---- bad input on every front end

/// Paths that would reach another host's registered file, or a file next to the webroot, if
/// anything decoded or normalised them.
const FOREIGN: &[&str] = &[
    "/.well-known/pki-validation/..%2f..%2fpki%2fexample.com%2ffileauth.txt",
    "/.well-known/pki-validation/../../pki/example.com/fileauth.txt",
    "/.well-known/pki-validation/..%2fsecret.txt",
    "/.well-known/pki-validation/%2e%2e/secret.txt",
    "/.well-known/acme-challenge/..%2fsecret.txt",
    "/.well-known/acme-challenge/%2E%2E%2Fsecret",
];

fn h10_get(target: &str, host: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.0\r\nHost: {host}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn traversals_on_https_http2_and_http10_never_match_and_never_reach_the_origin() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .unknown_token_to_origin()
        .site(&["example.com", "other.test"], origin.addr())
        .start()
        .await;
    node.put_pki("example.com", "fileauth.txt", PKI_BYTES).await;
    std::fs::write(
        node.state_dir().join("webroot/.well-known/secret.txt"),
        b"next to the webroot",
    )
    .unwrap();
    let admin_token = node.admin_token();
    let leaked = |resp: &common::Response| {
        resp.body == PKI_BYTES
            || resp.text().contains("next to the webroot")
            || resp.text().contains(&admin_token)
            || resp.text().contains("PRIVATE KEY")
    };
    let h2_conn = common::tls_connect(node.https_addr(), Some("other.test"), &["h2"], None)
        .await
        .unwrap();
    assert_eq!(h2_conn.alpn().as_deref(), Some(&b"h2"[..]));
    let mut h2 = common::h2_client(h2_conn.stream).await;

    let too_long = format!("/.well-known/acme-challenge/{}", "a".repeat(257));
    let bad_chars = "/.well-known/acme-challenge/tok~en".to_owned();
    let targets: Vec<&str> = TRAVERSALS
        .iter()
        .chain(FOREIGN)
        .copied()
        .chain([too_long.as_str(), bad_chars.as_str()])
        .collect();
    for target in &targets {
        for host in ["example.com", "other.test"] {
            // HTTPS, the fast path over TLS.
            let tls = node.https_request("GET", host, target, &[]).await;
            // HTTP/1.0: handed to pingora's proxy.
            let h10 = node.http_raw(&h10_get(target, host)).await;
            for (front, resp) in [("https", &tls), ("http/1.0", &h10)] {
                assert_eq!(resp.status, 404, "{front} {host}{target}: {}", resp.text());
                assert!(
                    !leaked(resp),
                    "{front} {host}{target} leaked: {}",
                    resp.text()
                );
            }
        }
        // HTTP/2: pingora over TLS (the client may refuse a target it cannot send).
        if let Ok(req) = http::Request::get(format!("https://other.test{target}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
        {
            let resp = common::collect(h2.send_request(req).await.unwrap()).await;
            assert!(
                resp.status == 404 || resp.status == 400,
                "h2 {target}: {} {}",
                resp.status,
                resp.text()
            );
            assert!(!leaked(&resp), "h2 {target} leaked: {}", resp.text());
        }
    }
    assert!(
        origin.requests().is_empty(),
        "malformed validation paths reached the origin: {:?}",
        origin.requests()
    );
    // The longest well-formed token is a token: unknown, so it goes to the origin here.
    let longest = format!("/.well-known/acme-challenge/{}", "a".repeat(256));
    assert_eq!(node.http_get("other.test", &longest).await.status, 200);
    assert_eq!(origin.requests().len(), 1);
}

#[tokio::test]
async fn oversize_request_heads_are_refused_on_every_front_end() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    node.put_token(
        "bigHeadToken_0123456789",
        &key_authorization("bigHeadToken_0123456789"),
        None,
    )
    .await;
    let huge = "x".repeat(70 * 1024);

    // HTTP/1.1, plain and over TLS: 431 from the fast path, then the connection is closed.
    let plain = node
        .http_request("GET", "a.test", "/big", &[("X-Big", &huge)])
        .await;
    let tls = node
        .https_request("GET", "a.test", "/big", &[("X-Big", &huge)])
        .await;
    for resp in [&plain, &tls] {
        assert_eq!(resp.status, 431, "{}", resp.text());
        assert_eq!(resp.header("connection"), Some("close"));
    }
    // Many small headers: within the size limit, past what the fast path reads, so pingora
    // judges them (and refuses more than 256 header lines).
    let many: Vec<(String, String)> = (0..300).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let resp = node.http_request("GET", "a.test", "/many", &many).await;
    eprintln!("300 header lines: {}", resp.status);
    assert!(
        (400..500).contains(&resp.status),
        "300 header lines: {} {}",
        resp.status,
        resp.text()
    );
    // HTTP/2: pingora's 64 KiB header-list limit.
    let conn = common::tls_connect(node.https_addr(), Some("a.test"), &["h2"], None)
        .await
        .unwrap();
    let mut h2 = common::h2_client(conn.stream).await;
    let req = http::Request::get("https://a.test/big-h2")
        .header("x-big", huge.as_str())
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    match h2.send_request(req).await {
        Ok(resp) => {
            let resp = common::collect(resp).await;
            eprintln!("h2 oversize head: {}", resp.status);
            assert!((400..500).contains(&resp.status), "h2: {}", resp.status);
        }
        // Refused at the protocol level (stream reset): refused all the same.
        Err(e) => eprintln!("h2 oversize head refused: {e}"),
    }
    assert!(
        origin.requests().is_empty(),
        "an oversize head reached the origin: {:?}",
        origin.requests().len()
    );

    // Just under the limit is a request like any other; the node is unharmed.
    let big_but_fine = "y".repeat(60 * 1024);
    let resp = node
        .http_request("GET", "a.test", "/fine", &[("X-Big", &big_but_fine)])
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let answer = node
        .http_get(
            "a.test",
            "/.well-known/acme-challenge/bigHeadToken_0123456789",
        )
        .await;
    assert_eq!(answer.status, 200);
}

// ---- idle keep-alive connections

/// Sends one request on a raw connection and reads its answer (a `Content-Length` body).
async fn exchange(stream: &mut tokio::net::TcpStream, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a whole answer: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head[9..12].parse().unwrap();
                return (status, body[..length].to_owned());
            }
        }
    }
}

async fn parked(node: &Node) -> f64 {
    node.metrics()
        .await
        .value("dcv_parked_connections", &[])
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn idle_connections_are_parked_and_their_next_requests_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    let challenge =
        format!("GET /.well-known/acme-challenge/{TOKEN} HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let mut served = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    assert_eq!(
        exchange(&mut served, &challenge).await,
        (200, key_authorization(TOKEN))
    );
    // Connected, nothing sent yet.
    let mut silent = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    let closing = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    // Half a head: still being read, never parked.
    let mut partial = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    partial
        .write_all(b"GET /.well-known/acme-challenge/")
        .await
        .unwrap();
    common::eventually("three idle connections parked", || async {
        (parked(&node).await == 3.0).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(parked(&node).await, 3.0, "the partial head is not parked");

    // Each parked connection's next request is answered, validation and proxied alike, with
    // the client's address intact.
    assert_eq!(
        exchange(&mut served, &challenge).await,
        (200, key_authorization(TOKEN))
    );
    assert_eq!(
        exchange(&mut served, "GET /after HTTP/1.1\r\nHost: a.test\r\n\r\n").await,
        (200, origin.body_for("/after"))
    );
    assert_eq!(
        exchange(&mut silent, "GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n").await,
        (200, origin.body_for("/first"))
    );
    let seen = origin.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen
        .iter()
        .all(|r| r.x_forwarded_for.as_deref() == Some("127.0.0.1")));
    // A client closing a parked connection takes it out of the lot.
    drop(closing);
    common::eventually("the closed one gone, the others parked again", || async {
        (parked(&node).await == 2.0).then_some(())
    })
    .await;
    partial
        .write_all(format!("{TOKEN} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 12];
    partial.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}
