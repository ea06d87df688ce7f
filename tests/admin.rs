//! The admin API, metrics and the command line, against the real binary: authentication, body
//! limits, input refusals, listing and deleting, `/v1/status`, `/metrics`, `config check`, and
//! the advice given when a privileged port cannot be bound.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dcv_proxy::testkit::TestCa;

use common::{key_authorization, operator, pem_fingerprint, Node, TestOrigin};

const TOKEN: &str = "adminTestToken_0123456789abcdefABCDEF";
const DAY: Duration = Duration::from_secs(24 * 3600);

/// What every refusal of a state-changing request must leave untouched.
struct Before {
    tokens: serde_json::Value,
    pki: serde_json::Value,
    certificates: Vec<(String, String)>,
}

async fn before(node: &Node) -> Before {
    let certs = node.admin_get("/v1/certificates").await.json();
    let mut certificates: Vec<(String, String)> = certs["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["sha256_fingerprint"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    certificates.sort();
    let token = node.admin_token();
    Before {
        tokens: node
            .admin_request("GET", "/v1/acme/tokens", None, Some(&token))
            .await
            .json(),
        pki: node.admin_get("/v1/pki").await.json(),
        certificates,
    }
}

async fn assert_unchanged(node: &Node, was: &Before, after: &str) {
    let now = before(node).await;
    assert_eq!(now.tokens, was.tokens, "tokens changed after {after}");
    assert_eq!(now.pki, was.pki, "pki files changed after {after}");
    assert_eq!(
        now.certificates, was.certificates,
        "certificates changed after {after}"
    );
}

#[tokio::test]
async fn state_changes_need_the_bearer_token() {
    let node = Node::builder().start().await;
    let ca = TestCa::new("Auth").unwrap();
    let cert = ca.leaf(&["a.test"], 30 * DAY).unwrap();
    let replacement = ca.leaf(&["a.test"], 60 * DAY).unwrap();
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    node.put_pki("a.test", "kept.txt", b"kept").await;
    node.install_cert("a", &cert, &[]).await;
    let was = before(&node).await;

    let other = "otherToken_0123456789";
    let token_body = serde_json::to_vec(&serde_json::json!({
        "key_authorization": key_authorization(other)
    }))
    .unwrap();
    let pki_body = br#"{"content": "planted"}"#.to_vec();
    let cert_body = serde_json::to_vec(&serde_json::json!({
        "certificate": replacement.chain_pem,
        "private_key": replacement.key_pem,
    }))
    .unwrap();
    let real = node.admin_token();
    let wrong_same_length: String = real
        .chars()
        .map(|c| if c == 'A' { 'B' } else { 'A' })
        .collect();
    let txt_body = br#"{"values": ["planted"]}"#.to_vec();
    let requests: [(&str, String, &[u8]); 10] = [
        ("PUT", format!("/v1/acme/tokens/{other}"), &token_body),
        ("DELETE", format!("/v1/acme/tokens/{TOKEN}"), b""),
        ("PUT", "/v1/pki/a.test/planted.txt".to_owned(), &pki_body),
        ("DELETE", "/v1/pki/a.test/kept.txt".to_owned(), b""),
        ("PUT", "/v1/certificates/a".to_owned(), &cert_body),
        ("DELETE", "/v1/certificates/a".to_owned(), b""),
        ("POST", "/v1/certificates/a/renew".to_owned(), b""),
        ("POST", "/v1/probe/a.test".to_owned(), b""),
        (
            "PUT",
            "/v1/probe/txt/_acme-challenge.a.test".to_owned(),
            &txt_body,
        ),
        (
            "DELETE",
            "/v1/probe/txt/_acme-challenge.a.test".to_owned(),
            b"",
        ),
    ];
    for (method, path, body) in &requests {
        let wrong_prefix = format!("{real}x");
        for bearer in [
            None,
            Some("wrong-token-of-some-length"),
            Some(wrong_same_length.as_str()),
            Some(wrong_prefix.as_str()),
            Some(""),
        ] {
            let resp = node.admin_request(method, path, Some(body), bearer).await;
            assert_eq!(resp.status, 401, "{method} {path} with {bearer:?}");
            assert!(resp.json()["error"].is_string());
        }
        // The right token under another scheme is no bearer token.
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\
             Authorization: Basic {real}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut raw = raw.into_bytes();
        raw.extend_from_slice(body);
        assert_eq!(node.admin_raw(&raw).await.status, 401, "{method} {path}");
        assert_unchanged(&node, &was, &format!("unauthorized {method} {path}")).await;
    }

    // Nor did the probe's registered TXT records.
    assert_eq!(
        node.admin_get("/v1/probe/txt").await.json()["records"],
        serde_json::json!([])
    );

    // Nothing changed on the edge either.
    let answer = node
        .http_get("a.test", &format!("/.well-known/acme-challenge/{TOKEN}"))
        .await;
    assert_eq!(answer.text(), key_authorization(TOKEN));
    let planted = node
        .http_get("a.test", &format!("/.well-known/acme-challenge/{other}"))
        .await;
    assert_eq!(planted.status, 404);
    assert_eq!(
        node.presented(Some("a.test")).await.fingerprint(),
        pem_fingerprint(&cert.leaf_pem)
    );

    // Reads are open; the right token works.
    assert_eq!(node.admin_get("/v1/status").await.status, 200);
    let resp = node.admin_delete(&format!("/v1/acme/tokens/{TOKEN}")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test]
async fn bodies_above_the_limit_get_413_and_change_nothing() {
    const LIMIT: usize = 512;
    let node = Node::builder().max_body_bytes(LIMIT).start().await;
    let was = before(&node).await;
    let token = node.admin_token();

    // Valid JSON padded past the limit with whitespace.
    let padded = |json: serde_json::Value, len: usize| {
        let mut body = serde_json::to_vec(&json).unwrap();
        assert!(body.len() <= len);
        body.resize(len, b' ');
        body
    };
    let token_json = serde_json::json!({ "key_authorization": key_authorization(TOKEN) });
    let path = format!("/v1/acme/tokens/{TOKEN}");
    let resp = node
        .admin_request(
            "PUT",
            &path,
            Some(&padded(token_json.clone(), LIMIT + 1)),
            Some(&token),
        )
        .await;
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert!(resp.json()["error"].is_string());
    let ca = TestCa::new("Big").unwrap();
    let cert = ca.leaf(&["a.test"], 30 * DAY).unwrap();
    let cert_json = serde_json::json!({
        "certificate": cert.chain_pem,
        "private_key": cert.key_pem,
    });
    let resp = node
        .admin_request(
            "PUT",
            "/v1/certificates/a",
            Some(&serde_json::to_vec(&cert_json).unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(resp.status, 413, "{}", resp.text());

    // Without a Content-Length the limit holds while the body streams in.
    let chunk = padded(token_json.clone(), 2 * LIMIT);
    let mut raw = format!(
        "PUT {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    raw.extend_from_slice(&chunk);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let resp = node.admin_raw(&raw).await;
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert_unchanged(&node, &was, "oversize bodies").await;
    assert_eq!(
        node.http_get("a.test", &format!("/.well-known/acme-challenge/{TOKEN}"))
            .await
            .status,
        404
    );

    // Exactly at the limit is accepted.
    let resp = node
        .admin_request("PUT", &path, Some(&padded(token_json, LIMIT)), Some(&token))
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_reason_and_changes_nothing() {
    let node = Node::builder().start().await;
    let was = before(&node).await;
    let ka = key_authorization(TOKEN);
    let token_path = format!("/v1/acme/tokens/{TOKEN}");
    let long_token = "a".repeat(257);
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "PUT",
            token_path.clone(),
            "{not json".into(),
            400,
            "invalid JSON",
        ),
        (
            "PUT",
            token_path.clone(),
            String::new(),
            400,
            "JSON body is required",
        ),
        (
            "PUT",
            token_path.clone(),
            format!(r#"{{"key_authorization": "{ka}", "extra": 1}}"#),
            400,
            "unknown field",
        ),
        (
            "PUT",
            token_path.clone(),
            r#"{"identifier": "a.test"}"#.into(),
            400,
            "key_authorization",
        ),
        (
            "PUT",
            "/v1/acme/tokens/bad.token".into(),
            r#"{"key_authorization": "bad.token.x"}"#.into(),
            400,
            "not an ACME token",
        ),
        (
            "PUT",
            format!("/v1/acme/tokens/{long_token}"),
            format!(r#"{{"key_authorization": "{long_token}.abc"}}"#),
            400,
            "not an ACME token",
        ),
        (
            "PUT",
            token_path.clone(),
            r#"{"key_authorization": "someOtherToken.abc"}"#.into(),
            422,
            "key_authorization must be",
        ),
        (
            "PUT",
            token_path.clone(),
            format!(r#"{{"key_authorization": "{TOKEN}."}}"#),
            422,
            "key_authorization must be",
        ),
        (
            "PUT",
            token_path.clone(),
            format!(r#"{{"key_authorization": "{TOKEN}.abc def"}}"#),
            422,
            "key_authorization must be",
        ),
        (
            "PUT",
            token_path.clone(),
            format!(r#"{{"key_authorization": "{ka}", "identifier": "not a host!"}}"#),
            422,
            "identifier",
        ),
        (
            "PUT",
            token_path.clone(),
            format!(r#"{{"key_authorization": "{ka}", "ttl_seconds": 0}}"#),
            422,
            "ttl_seconds",
        ),
        (
            "PUT",
            "/v1/pki/a.test/.htaccess".into(),
            r#"{"content": "x"}"#.into(),
            400,
            "not a validation file name",
        ),
        (
            "PUT",
            "/v1/pki/a.test/..".into(),
            r#"{"content": "x"}"#.into(),
            400,
            "not a validation file name",
        ),
        (
            "PUT",
            "/v1/pki/bad_host!/f.txt".into(),
            r#"{"content": "x"}"#.into(),
            400,
            "host",
        ),
        (
            "PUT",
            "/v1/pki/a.test/f.txt".into(),
            r#"{"content": "x", "content_base64": "eA=="}"#.into(),
            422,
            "exactly one",
        ),
        (
            "PUT",
            "/v1/pki/a.test/f.txt".into(),
            r#"{"content_base64": "!!not base64!!"}"#.into(),
            422,
            "not base64",
        ),
        (
            "PUT",
            "/v1/pki/a.test/f.txt".into(),
            r#"{"content": ""}"#.into(),
            422,
            "bytes",
        ),
        (
            "PUT",
            "/v1/certificates/Bad_ID".into(),
            r#"{"certificate": "x"}"#.into(),
            400,
            "not a certificate id",
        ),
        (
            "PUT",
            "/v1/certificates/a".into(),
            r#"{"certificate": "x", "names": ["not a name!"]}"#.into(),
            422,
            "names",
        ),
        (
            "DELETE",
            "/v1/certificates/default".into(),
            String::new(),
            409,
            "default",
        ),
        (
            "DELETE",
            format!("/v1/acme/tokens/{TOKEN}"),
            String::new(),
            404,
            TOKEN,
        ),
        (
            "DELETE",
            "/v1/pki/a.test/f.txt".into(),
            String::new(),
            404,
            "f.txt",
        ),
        (
            "POST",
            "/v1/status".into(),
            String::new(),
            405,
            "not allowed",
        ),
        (
            "GET",
            "/v1/nothing-here".into(),
            String::new(),
            404,
            "no endpoint",
        ),
    ];
    let token = node.admin_token();
    for (method, path, body, status, reason) in &cases {
        let resp = node
            .admin_request(method, path, Some(body.as_bytes()), Some(&token))
            .await;
        let shown = format!("{method} {path} {body:?}: {} {}", resp.status, resp.text());
        assert_eq!(resp.status, *status, "{shown}");
        assert_eq!(
            resp.header("content-type"),
            Some("application/json"),
            "{shown}"
        );
        let error = resp.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(
            error.contains(reason),
            "{shown}: error should mention {reason:?}"
        );
    }
    assert_unchanged(&node, &was, "refused input").await;
}

#[tokio::test]
async fn tokens_and_pki_files_are_listed_and_deleted() {
    let node = Node::builder().start().await;
    node.put_token(TOKEN, &key_authorization(TOKEN), Some("a.test"))
        .await;
    node.put_pki("www.example.com", "fileauth.txt", b"abc")
        .await;

    // Without the bearer token the list says what is pending, not the answers (a token is
    // all it takes to fetch its key authorization from port 80).
    let open = node.admin_get("/v1/acme/tokens").await;
    assert_eq!(open.status, 200);
    assert!(!open.text().contains(TOKEN), "{}", open.text());
    assert_eq!(open.json()["tokens"][0]["identifier"], "a.test");
    assert!(open.json()["redacted"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));

    let token = node.admin_token();
    let tokens = node
        .admin_request("GET", "/v1/acme/tokens", None, Some(&token))
        .await
        .json();
    let listed = &tokens["tokens"][0];
    assert_eq!(listed["token"], TOKEN);
    assert_eq!(
        listed["key_authorization"],
        key_authorization(TOKEN).as_str()
    );
    assert_eq!(listed["identifier"], "a.test");
    assert!(listed["expires"].is_string(), "{tokens}");
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 1);

    let files = node.admin_get("/v1/pki/example.com").await.json();
    let file = &files["files"][0];
    assert_eq!(file["file"], "fileauth.txt");
    assert_eq!(file["size"], 3);
    assert_eq!(
        file["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        file["answers_on"],
        serde_json::json!(["example.com", "www.example.com"])
    );

    let path = format!("/v1/acme/tokens/{TOKEN}");
    assert_eq!(node.admin_delete(&path).await.status, 200);
    assert_eq!(node.admin_delete(&path).await.status, 404);
    let edge = node
        .http_get("a.test", &format!("/.well-known/acme-challenge/{TOKEN}"))
        .await;
    assert_eq!(edge.status, 404);
    // Put for www., deleted through the apex.
    assert_eq!(
        node.admin_delete("/v1/pki/example.com/fileauth.txt")
            .await
            .status,
        200
    );
    let edge = node
        .http_get(
            "www.example.com",
            "/.well-known/pki-validation/fileauth.txt",
        )
        .await;
    assert_eq!(edge.status, 404);
    assert_eq!(
        node.admin_get("/v1/pki").await.json()["files"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn uploaded_state_survives_a_restart_in_private_files() {
    use std::os::unix::fs::PermissionsExt;

    let mut node = Node::builder().start().await;
    let ca = TestCa::new("Restart").unwrap();
    let leaf = ca.leaf(&["a.test"], 30 * DAY).unwrap();
    // Certificate and key in one field, as some tools export them.
    let resp = node
        .put_cert("a", &format!("{}{}", leaf.chain_pem, leaf.key_pem), "", &[])
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    node.put_token(TOKEN, &key_authorization(TOKEN), Some("a.test"))
        .await;
    node.put_pki("www.example.com", "fileauth.txt", b"persisted")
        .await;
    let token = node.admin_token();
    let default = node.presented(None).await.fingerprint();

    let mode = |rel: &str| {
        std::fs::metadata(node.state_dir().join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    for private in ["certs/a.pem", "certs/default.pem", "admin.token"] {
        assert_eq!(mode(private), 0o600, "{private}");
    }

    node.restart().await;
    assert_eq!(node.admin_token(), token, "the admin token is kept");
    assert_eq!(
        node.presented(Some("a.test")).await.fingerprint(),
        pem_fingerprint(&leaf.leaf_pem)
    );
    assert_eq!(
        node.presented(None).await.fingerprint(),
        default,
        "the self-signed default is made once"
    );
    let acme = format!("/.well-known/acme-challenge/{TOKEN}");
    assert_eq!(
        node.http_get("a.test", &acme).await.text(),
        key_authorization(TOKEN)
    );
    assert_eq!(
        node.http_get("b.test", &acme).await.status,
        404,
        "the identifier binding survives too"
    );
    let pki = node
        .http_get("example.com", "/.well-known/pki-validation/fileauth.txt")
        .await;
    assert_eq!((pki.status, pki.text()), (200, "persisted".to_owned()));
    // The old token still authenticates.
    assert_eq!(
        node.admin_delete(&format!("/v1/acme/tokens/{TOKEN}"))
            .await
            .status,
        200
    );
}

/// A certificate whose notAfter is exactly `not_after` seconds after the epoch.
fn leaf_expiring_at(ca: &TestCa, names: &[&str], not_after: u64) -> dcv_proxy::testkit::TestLeaf {
    let now = SystemTime::now();
    ca.leaf_valid_between(
        names,
        now - DAY,
        UNIX_EPOCH + Duration::from_secs(not_after),
    )
    .unwrap()
}

fn in_days(days: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now + days * 24 * 3600
}

#[tokio::test]
async fn status_lists_certificates_with_names_and_expiry() {
    let node = Node::builder().start().await;
    let ca = TestCa::new("Status").unwrap();
    let not_after = in_days(45);
    let leaf = leaf_expiring_at(&ca, &["a.test", "www.a.test"], not_after);
    node.install_cert("a", &leaf, &["a.test"]).await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    node.put_pki("a.test", "f.txt", b"x").await;

    let status = node.admin_get("/v1/status").await;
    assert_eq!(status.status, 200);
    let status = status.json();
    assert!(status["version"].is_string(), "{status}");
    let certs = status["certificates"].as_array().unwrap();
    let a = certs
        .iter()
        .find(|c| c["id"] == "a")
        .expect("certificate a");
    assert_eq!(a["names"], serde_json::json!(["a.test", "www.a.test"]));
    assert_eq!(a["not_after_unix"], not_after);
    assert!(a["not_after"].as_str().unwrap().ends_with('Z'), "{a}");
    assert_eq!(a["source"], "upload");
    assert_eq!(
        a["sha256_fingerprint"],
        pem_fingerprint(&leaf.leaf_pem).as_str()
    );
    let default = certs
        .iter()
        .find(|c| c["id"] == "default")
        .expect("the default certificate");
    assert_eq!(default["names"], serde_json::json!(["dcv-proxy.invalid"]));
    assert_eq!(default["self_signed"], true);
    assert!(default["not_after_unix"].as_u64().unwrap() > in_days(365));
    assert_eq!(status["challenges"]["acme_tokens"], 1);
    assert_eq!(status["challenges"]["pki_files"], 1);
}

#[tokio::test]
async fn metrics_count_challenges_proxied_requests_and_expiry() {
    let origin = TestOrigin::start().await;
    let node = Node::builder()
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    let ca = TestCa::new("Metrics").unwrap();
    let not_after = in_days(20);
    node.install_cert("a", &leaf_expiring_at(&ca, &["a.test"], not_after), &[])
        .await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    node.put_pki("a.test", "f.txt", b"x").await;

    let acme = format!("/.well-known/acme-challenge/{TOKEN}");
    let unknown = "/.well-known/acme-challenge/unknownToken123";
    assert_eq!(node.http_get("a.test", &acme).await.status, 200);
    assert_eq!(node.http_get("a.test", &acme).await.status, 200);
    assert_eq!(node.https_get("a.test", &acme).await.0.status, 200);
    assert_eq!(node.http_get("a.test", unknown).await.status, 404);
    assert_eq!(
        node.https_get("a.test", "/.well-known/pki-validation/f.txt")
            .await
            .0
            .status,
        200
    );
    assert_eq!(
        node.http_get("a.test", "/.well-known/pki-validation/nope.txt")
            .await
            .status,
        404
    );
    for path in ["/one", "/two"] {
        assert_eq!(node.http_get("a.test", path).await.status, 200);
    }
    assert_eq!(node.https_get("a.test", "/three").await.0.status, 200);

    let m = node.metrics().await;
    let challenge = |kind, scheme, result| {
        m.value(
            "dcv_challenge_requests_total",
            &[("kind", kind), ("scheme", scheme), ("result", result)],
        )
    };
    assert_eq!(challenge("acme", "http", "hit"), Some(2.0), "{}", m.text);
    assert_eq!(challenge("acme", "https", "hit"), Some(1.0), "{}", m.text);
    assert_eq!(challenge("acme", "http", "miss"), Some(1.0), "{}", m.text);
    assert_eq!(challenge("acme", "https", "miss"), Some(0.0), "{}", m.text);
    assert_eq!(challenge("pki", "https", "hit"), Some(1.0), "{}", m.text);
    assert_eq!(challenge("pki", "http", "miss"), Some(1.0), "{}", m.text);
    assert_eq!(challenge("pki", "http", "hit"), Some(0.0), "{}", m.text);
    assert_eq!(
        m.value("dcv_proxied_requests_total", &[("class", "2xx")]),
        Some(3.0),
        "{}",
        m.text
    );
    assert_eq!(
        m.value("dcv_proxied_requests_total", &[("class", "5xx")]),
        Some(0.0),
        "{}",
        m.text
    );
    assert_eq!(
        m.value(
            "dcv_certificate_expiry_timestamp_seconds",
            &[("certificate", "a"), ("source", "upload")]
        ),
        Some(not_after as f64),
        "{}",
        m.text
    );
    assert!(
        m.value(
            "dcv_certificate_expiry_timestamp_seconds",
            &[("certificate", "default"), ("source", "self-signed")]
        )
        .is_some_and(|t| t > in_days(365) as f64),
        "{}",
        m.text
    );
    assert_eq!(
        m.value("dcv_challenge_answers", &[("kind", "acme")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("dcv_challenge_answers", &[("kind", "pki")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("dcv_certificate_loads_total", &[("result", "ok")]),
        Some(1.0)
    );
}

// ---- the command line

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_dcv-proxy")
}

fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/dcv-proxy.toml")
}

#[test]
fn config_check_accepts_the_shipped_config() {
    let out = Command::new(binary())
        .args(["config", "check", "--config"])
        .arg(shipped_config())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

#[test]
fn config_check_names_file_line_column_and_key_of_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "state_dir = \"state\"\n\n[http]\nredirect = true\n",
            ":4:1: http.redirect: ",
            "unknown field `redirect`",
        ),
        (
            "[https]\nlisten = [\"0.0.0.0:443\", \"not-an-address\"]\n",
            ":2:26: https.listen[1]: ",
            "",
        ),
        (
            "[admin]\nmax_body_bytes = 1\nfoo = 2\n",
            ":3:1: admin.foo: ",
            "unknown field `foo`",
        ),
    ];
    for (i, (text, place_and_key, message)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&file, text).unwrap();
        for args in [&["config", "check"][..], &["run"][..]] {
            let out = Command::new(binary())
                .args(args)
                .arg("--config")
                .arg(&file)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{args:?} {text:?}: {stderr}");
            let expected = format!("{}{place_and_key}", file.display());
            assert!(
                stderr.starts_with(&expected),
                "{args:?}: expected {expected:?} at the start of {stderr:?}"
            );
            assert!(stderr.contains(message), "{stderr}");
        }
    }
}

/// The effective uid of this process.
fn euid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// A privileged loopback port nothing listens on (root can bind it, so it is free).
fn free_privileged_port() -> Option<u16> {
    (600..1000).find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
}

#[test]
fn privileged_port_without_the_capability_is_refused_with_advice() {
    const NOBODY: u32 = 65534;
    let unprivileged_start: u16 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1024);
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let (Some(setpriv), Some(port)) = (setpriv, free_privileged_port()) else {
        eprintln!("skipped: needs setpriv and a free port below 1024");
        return;
    };
    if euid() != 0 || port >= unprivileged_start {
        eprintln!("skipped: needs root to drop to an unprivileged user, and ports below {port} privileged");
        return;
    }
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new(setpriv);
        cmd.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--inh-caps=-all",
            binary(),
        ])
        .args(args)
        .stdin(Stdio::null());
        cmd
    };
    if !as_nobody(&["--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipped: the built binary cannot be run as an unprivileged user here");
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = dir.path().join("dcv-proxy.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {}\n[http]\nlisten = [\"127.0.0.1:{port}\"]\n[https]\nlisten = [\"{}\"]\n[admin]\nlisten = \"{}\"\n",
            serde_json::to_string(&state.display().to_string()).unwrap(),
            common::free_addr(),
            common::free_addr(),
        ),
    )
    .unwrap();
    for path in [dir.path(), &state, &config] {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    }

    let mut child = as_nobody(&["--config", config.to_str().unwrap(), "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("dcv-proxy kept running on a privileged port without the capability");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("CAP_NET_BIND_SERVICE"),
        "the refusal names the address and the capability: {stderr}"
    );
    assert!(
        stderr.contains("setcap"),
        "and says how to grant it: {stderr}"
    );
}

// ---- hardening: Host (DNS rebinding) and the bearer scheme

#[tokio::test]
async fn admin_requests_must_name_the_listener_not_a_rebound_domain() {
    let mut node = Node::builder().start().await;
    let admin = operator::admin_addr(&node);
    let port = admin.port();
    let token = node.admin_token();
    let bearer = format!("Bearer {token}");
    let own = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut fine = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "LOCALHOST".to_owned(),
        "admin".to_owned(),
    ];
    if !own.trim().is_empty() {
        fine.push(format!("{}:{port}", own.trim()));
    }
    for host in &fine {
        for path in ["/", "/v1/status", "/metrics", "/healthz"] {
            let rsp = operator::admin_as(admin, "GET", path, host, &[], b"").await;
            assert_eq!(
                rsp.status,
                200,
                "GET {path} with Host {host}: {}",
                rsp.text()
            );
        }
    }

    // What a page served from a rebound name sends: its own name in Host.
    let body = serde_json::to_vec(&serde_json::json!({
        "key_authorization": key_authorization(TOKEN)
    }))
    .unwrap();
    for host in [
        format!("rebind.attacker.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        "localhost.attacker.example".to_owned(),
    ] {
        for path in ["/", "/v1/status", "/v1/acme/tokens", "/metrics", "/healthz"] {
            let rsp = operator::admin_as(
                admin,
                "GET",
                path,
                &host,
                &[("Authorization", &bearer)],
                b"",
            )
            .await;
            assert_eq!(
                rsp.status,
                421,
                "GET {path} with Host {host}: {}",
                rsp.text()
            );
            let error = rsp.json()["error"].as_str().unwrap().to_owned();
            assert!(
                error.contains("DNS rebinding") && error.contains("admin.hosts"),
                "{error}"
            );
            assert!(!rsp.text().contains(&token));
        }
        // Not even with the right token does anything change.
        let path = format!("/v1/acme/tokens/{TOKEN}");
        let rsp = operator::admin_as(
            admin,
            "PUT",
            &path,
            &host,
            &[("Authorization", &bearer)],
            &body,
        )
        .await;
        assert_eq!(rsp.status, 421, "{}", rsp.text());
    }
    let listed = node
        .admin_request("GET", "/v1/acme/tokens", None, Some(&token))
        .await
        .json();
    assert_eq!(listed["tokens"], serde_json::json!([]), "{listed}");
    let rsp = operator::admin_as(admin, "GET", "/v1/status", "a b", &[], b"").await;
    assert_eq!(rsp.status, 400, "{}", rsp.text());

    // admin.hosts adds a name (a restart applies admin.*).
    let config = node
        .config_text()
        .replace("[admin]\n", "[admin]\nhosts = [\"edge-1.example.net\"]\n");
    assert!(config.contains("hosts = "), "{config}");
    node.write_config(&config);
    node.restart().await;
    let named = format!("edge-1.example.net:{port}");
    assert_eq!(
        operator::admin_as(admin, "GET", "/v1/status", &named, &[], b"")
            .await
            .status,
        200
    );
    let rsp = operator::admin_as(admin, "GET", "/v1/status", "edge-2.example.net", &[], b"").await;
    assert_eq!(rsp.status, 421);
    assert!(rsp.json()["error"]
        .as_str()
        .unwrap()
        .contains("edge-1.example.net"));
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_a_401_names_it() {
    let node = Node::builder().start().await;
    let admin = operator::admin_addr(&node);
    let token = node.admin_token();
    for (i, scheme) in ["Bearer", "bearer", "BEARER", "bEaReR"].iter().enumerate() {
        let t = format!("caseToken{i}_0123456789");
        let body =
            serde_json::to_vec(&serde_json::json!({"key_authorization": key_authorization(&t)}))
                .unwrap();
        let auth = format!("{scheme}  {token}");
        let rsp = operator::admin_as(
            admin,
            "PUT",
            &format!("/v1/acme/tokens/{t}"),
            "localhost",
            &[("Authorization", &auth)],
            &body,
        )
        .await;
        assert_eq!(rsp.status, 201, "{scheme}: {}", rsp.text());
    }
    let rsp = operator::admin_as(
        admin,
        "DELETE",
        "/v1/acme/tokens/caseToken0_0123456789",
        "localhost",
        &[],
        b"",
    )
    .await;
    assert_eq!(rsp.status, 401);
    assert_eq!(
        rsp.header("www-authenticate"),
        Some("Bearer realm=\"dcv-proxy admin\""),
        "{:?}",
        rsp.headers
    );
}

// ---- certificate precedence

#[tokio::test]
async fn an_upload_another_certificate_shadows_answers_201_with_a_warning() {
    let node = Node::builder().start().await;
    let ca = TestCa::new("Precedence").unwrap();
    let long = ca.leaf(&["a.test", "b.test"], 60 * DAY).unwrap();
    let short = ca.leaf(&["a.test"], 10 * DAY).unwrap();
    let rsp = node
        .put_cert("long", &long.chain_pem, &long.key_pem, &[])
        .await;
    assert_eq!(rsp.status, 201);
    assert_eq!(rsp.json()["warnings"], serde_json::json!([]));

    // The second upload is stored (it takes over when "long" goes) but not presented: it says so.
    let rsp = node
        .put_cert("short", &short.chain_pem, &short.key_pem, &[])
        .await;
    assert_eq!(rsp.status, 201, "{}", rsp.text());
    let answer = rsp.json();
    let warnings = answer["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{answer}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.starts_with("a.test is not served by short: long is presented for it (it expires before the certificate presented)"),
        "{warning}"
    );
    assert!(
        warning.contains("DELETE /v1/certificates/long"),
        "{warning}"
    );
    assert_eq!(
        answer["not_served"],
        serde_json::json!([{"name": "a.test", "served_by": "long", "reason": "expires_earlier"}])
    );
    let presented = node.presented(Some("a.test")).await;
    assert_eq!(presented.fingerprint(), pem_fingerprint(&long.chain_pem));

    // The status says who serves each name, and certs list shows it.
    let status = node.admin_get("/v1/status").await.json();
    let a = status["names"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "a.test")
        .unwrap()
        .clone();
    assert_eq!(
        a,
        serde_json::json!({"name": "a.test", "served_by": "long", "not_served_by": [
            {"certificate": "short", "reason": "expires_earlier"}
        ]})
    );
    let out = operator::cli(node.config_path(), &["certs", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = text.lines().find(|l| l.starts_with("a.test ")).unwrap();
    assert!(
        line.contains(" long ") && line.ends_with("short (expires earlier)"),
        "{text}"
    );

    // An exact name wins over a longer-lived wildcard, and an upload of the wildcard says so.
    let api = ca.leaf(&["api.w.test"], 5 * DAY).unwrap();
    let wild = ca.leaf(&["*.w.test"], 80 * DAY).unwrap();
    node.install_cert("api", &api, &[]).await;
    let rsp = node
        .put_cert("wild", &wild.chain_pem, &wild.key_pem, &[])
        .await;
    assert_eq!(rsp.status, 201);
    let warning = rsp.json()["warnings"][0].as_str().unwrap().to_owned();
    assert!(
        warning.starts_with("api.w.test is not served by wild: api is presented for it (it covers the name by a wildcard, and another certificate has the exact name)"),
        "{warning}"
    );
    assert_eq!(
        node.presented(Some("api.w.test")).await.fingerprint(),
        pem_fingerprint(&api.chain_pem)
    );
    assert_eq!(
        node.presented(Some("www.w.test")).await.fingerprint(),
        pem_fingerprint(&wild.chain_pem)
    );

    // Removing the winner hands the name to the next one, without a restart.
    assert_eq!(node.admin_delete("/v1/certificates/long").await.status, 200);
    assert_eq!(
        node.presented(Some("a.test")).await.fingerprint(),
        pem_fingerprint(&short.chain_pem)
    );
}

#[tokio::test]
async fn certs_put_uploads_an_acme_clients_files_through_the_admin_api() {
    let node = Node::builder().start().await;
    let ca = TestCa::new("Client").unwrap();
    let leaf = ca.leaf(&["up.test", "www.up.test"], 60 * DAY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let fullchain = write("fullchain.pem", &leaf.chain_pem);
    let key = write("privkey.pem", &leaf.key_pem);
    let config = node.config_path();

    let out = operator::cli(
        config,
        &[
            "certs", "put", "up.test", "--cert", &fullchain, "--key", &key, "--name", "up.test",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("up.test: stored and checked (up.test, www.up.test), expires "),
        "{stdout}"
    );
    assert_eq!(
        node.presented(Some("www.up.test")).await.fingerprint(),
        pem_fingerprint(&leaf.chain_pem)
    );

    // The leaf alone plus --chain (certbot's cert.pem and chain.pem) is the same upload.
    let cert_only = write("cert.pem", &leaf.leaf_pem);
    let chain = write(
        "chain.pem",
        leaf.chain_pem.trim_start_matches(&leaf.leaf_pem),
    );
    let out = operator::cli(
        config,
        &[
            "certs", "put", "up-split", "--cert", &cert_only, "--chain", &chain, "--key", &key,
        ],
    );
    // Same certificate, published later: it serves every name, so no warning.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = node.admin_get("/v1/status").await.json();
    let up = status["names"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "up.test")
        .unwrap()
        .clone();
    assert_eq!(up["served_by"], "up-split", "{up}");
    assert_eq!(
        up["not_served_by"][0]["reason"], "published_earlier",
        "{up}"
    );

    // Refused by the node: the reason, exit 1, nothing changed.
    let other = ca.leaf(&["up.test"], 60 * DAY).unwrap();
    let wrong_key = write("wrong.pem", &other.key_pem);
    let out = operator::cli(
        config,
        &[
            "certs", "put", "up.test", "--cert", &fullchain, "--key", &wrong_key,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("admin API answered 422") && stderr.contains("key"),
        "{stderr}"
    );

    // Shadowed: stored, but exit 3 and the warning.
    let short = ca.leaf(&["up.test"], 5 * DAY).unwrap();
    let short_cert = write("short.pem", &short.chain_pem);
    let short_key = write("short-key.pem", &short.key_pem);
    let out = operator::cli(
        config,
        &[
            "certs",
            "put",
            "up-short",
            "--cert",
            &short_cert,
            "--key",
            &short_key,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("warning: up.test is not served by up-short"),
        "{stderr}"
    );
    assert_eq!(
        node.presented(Some("up.test")).await.fingerprint(),
        pem_fingerprint(&leaf.chain_pem)
    );

    // Bad usage: a file that is not there.
    let out = operator::cli(
        config,
        &[
            "certs",
            "put",
            "x",
            "--cert",
            "/nonexistent.pem",
            "--key",
            &key,
        ],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read the certificate (--cert) /nonexistent.pem"));
}

// ---- failed handshakes: counted by reason, logged at WARN at most once a minute

#[tokio::test]
async fn failed_handshakes_are_counted_by_reason_and_logged_once_a_minute_at_warn() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = Node::builder().start().await;
    let https = node.https_addr();
    // Plain HTTP to the HTTPS port.
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(https).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    }
    // Only acme-tls/1 offered, and no TLS-ALPN-01 challenge pending.
    for _ in 0..5 {
        assert!(
            common::tls_connect(https, Some("a.test"), &["acme-tls/1"], None)
                .await
                .is_err()
        );
    }
    // Clients that do not trust the certificate presented (the self-signed default).
    let other = TestCa::new("Elsewhere").unwrap();
    for _ in 0..3 {
        assert!(common::tls_connect(
            https,
            Some("a.test"),
            &["http/1.1"],
            Some(&other.root_pem())
        )
        .await
        .is_err());
    }
    // Connections closed before any byte (port scanners, TCP health checks).
    for _ in 0..4 {
        drop(tokio::net::TcpStream::connect(https).await.unwrap());
    }
    let expected = [
        ("not_tls", 20.0),
        ("no_alpn", 5.0),
        ("certificate_rejected", 3.0),
        ("closed", 4.0),
    ];
    let metrics = common::eventually("every failure counted", || async {
        let m = node.metrics().await;
        expected
            .iter()
            .all(|(reason, n)| {
                m.count("dcv_tls_handshake_failures_total", &[("reason", reason)]) == *n
            })
            .then_some(m)
    })
    .await;
    assert_eq!(
        metrics.value("dcv_tls_handshake_failures_total", &[("reason", "timeout")]),
        Some(0.0),
        "every reason is there from the start"
    );
    let log = node.log();
    assert!(!log.contains("Downstream handshake error"), "{log}");
    for line in log.lines().filter(|l| l.contains("handshake")) {
        assert!(!line.contains("ERROR"), "{line}");
    }
    for (reason, n) in expected {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("TLS handshake failed") && l.contains(&format!("reason=\"{reason}\""))
            })
            .collect();
        assert_eq!(lines.len(), 1, "one line for {n} {reason} failures:\n{log}");
        assert!(lines[0].contains(" WARN "), "{}", lines[0]);
        assert!(lines[0].contains("remedy="), "{}", lines[0]);
    }
    let rejected = log
        .lines()
        .find(|l| l.contains("reason=\"certificate_rejected\""))
        .unwrap();
    assert!(
        rejected.contains("UnknownCA") && rejected.contains("dcv-proxy certs list"),
        "{rejected}"
    );
}

// ---- start-up warnings and the metrics every node has

#[tokio::test]
async fn risky_settings_are_warned_about_at_start() {
    let admin: std::net::SocketAddr = format!("0.0.0.0:{}", common::free_addr().port())
        .parse()
        .unwrap();
    let node = operator::RawNode::start(admin, |state| {
        format!(
            "state_dir = {:?}\n[http]\nlisten = []\n[https]\nlisten = []\n[admin]\nlisten = \"{admin}\"\n[probe]\ninterval = \"0s\"\nresolvers = [\"127.0.0.1:9\"]\n",
            state.display().to_string()
        )
    })
    .await;
    let log = node.log();
    let warns: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    for needle in [
        "the admin API listens beyond loopback",
        "its token was only just made",
        "http.listen is empty",
        "https.listen is empty",
    ] {
        assert!(
            warns.iter().any(|l| l.contains(needle)),
            "no warning {needle:?}:\n{log}"
        );
    }
    drop(node);

    // A node on loopback with listeners and a private token file is not warned about.
    let quiet = Node::builder().start().await;
    let log = quiet.log();
    assert!(!log.contains(" WARN "), "{log}");
}

#[tokio::test]
async fn every_node_exports_build_process_and_catalogue_series() {
    let node = Node::builder().start().await;
    let m = node.metrics().await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        m.value("dcv_build_info", &[("version", version)]),
        Some(1.0),
        "{}",
        m.text
    );
    // Whole CPU seconds (the crate's counter is an integer): there, maybe 0 this early.
    assert!(
        m.value("process_cpu_seconds_total", &[]).is_some(),
        "{}",
        m.text
    );
    for family in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            m.value(family, &[]).is_some_and(|v| v > 0.0),
            "{family}: {}",
            m.text
        );
    }
    let h1 = dcv_proxy::catalogue::Cause::H1;
    assert_eq!(
        m.value(
            "dcv_catalogue_cause_info",
            &[
                ("cause", "H1"),
                ("summary", h1.summary()),
                ("remedy", h1.remedy())
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("dcv_catalogue_cause_info", &[("cause", "none")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("dcv_probe_interval_seconds", &[]),
        Some(0.0),
        "the harness turns the probe off"
    );
    // One label name for the certificate id everywhere.
    for line in m
        .text
        .lines()
        .filter(|l| l.starts_with("dcv_certificate") || l.starts_with("dcv_acme"))
    {
        assert!(!line.contains("name=\""), "{line}");
    }
}
