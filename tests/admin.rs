//! The admin API, metrics and the command line, against the real binary: authentication, body
//! limits, input refusals, listing and deleting, `/v1/status`, `/metrics`, `config check`, and
//! the advice given when a privileged port cannot be bound.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dcv_proxy::testkit::TestCa;

use common::{key_authorization, pem_fingerprint, Node, TestOrigin};

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
    Before {
        tokens: node.admin_get("/v1/acme/tokens").await.json(),
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

    let tokens = node.admin_get("/v1/acme/tokens").await.json();
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
