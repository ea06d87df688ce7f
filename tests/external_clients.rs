//! ACME clients other than the node's own, against a real CA (Pebble): certbot and lego
//! answer the CA through the node's webroot, then hand the certificate to the node with the
//! shipped deploy hooks (contrib/hooks/), which run `dcv-proxy certs put` against the admin
//! API; the node presents it from the next handshake. certbot's renewal runs the hook again.
//! acme.sh is not in Debian: its hook is run with the environment acme.sh gives it.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::pebble::{Pebble, PebbleConfig};
use common::{free_addr, pem_fingerprint, Node};
use dcv_proxy::testkit::TestCa;

fn hook(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/hooks")
        .join(name)
}

/// What every hook needs: the node's configuration and the binary under test.
fn hook_env(command: &mut Command, node: &Node) {
    command
        .env("DCV_PROXY_CONFIG", node.config_path())
        .env("DCV_PROXY", env!("CARGO_BIN_EXE_dcv-proxy"));
}

fn run(mut command: Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// A node Pebble validates, and that Pebble.
async fn node_and_ca() -> (Node, Pebble) {
    let addrs = (free_addr(), free_addr());
    let pebble = Pebble::start(PebbleConfig::for_node(addrs.0, addrs.1)).await;
    let node = Node::builder().listen(addrs.0, addrs.1).start().await;
    (node, pebble)
}

async fn presented(node: &Node, name: &str) -> String {
    node.presented(Some(name)).await.fingerprint()
}

#[tokio::test]
async fn certbot_webroot_and_deploy_hook_put_the_certificate_on_the_node() {
    let (node, pebble) = node_and_ca().await;
    let dir = tempfile::tempdir().unwrap();
    let webroot = node.state_dir().join("webroot");
    let certbot = |verb: &[&str]| {
        let mut c = Command::new("certbot");
        c.args(verb)
            .args(["--non-interactive", "--agree-tos", "-m", "ops@example.test"])
            .args(["--no-eff-email", "--server", &pebble.directory_url()])
            .arg("--config-dir")
            .arg(dir.path().join("config"))
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            .arg("--logs-dir")
            .arg(dir.path().join("logs"))
            .env("REQUESTS_CA_BUNDLE", pebble.api_root());
        hook_env(&mut c, &node);
        c
    };
    let mut issue = certbot(&["certonly", "--webroot"]);
    issue
        .arg("-w")
        .arg(&webroot)
        .args([
            "-d",
            "certbot.example.test",
            "-d",
            "www.certbot.example.test",
        ])
        .arg("--deploy-hook")
        .arg(hook("certbot-deploy-hook"));
    let out = run(issue, "certbot certonly");
    let live = dir.path().join("config/live/certbot.example.test");
    let leaf = std::fs::read_to_string(live.join("cert.pem")).unwrap();
    assert!(out.contains("Successfully received certificate"), "{out}");

    // The hook put it on the node: presented for both names, an upload under the lineage's name.
    for name in ["certbot.example.test", "www.certbot.example.test"] {
        assert_eq!(
            presented(&node, name).await,
            pem_fingerprint(&leaf),
            "{name}"
        );
    }
    let cert = node
        .admin_get("/v1/certificates/certbot.example.test")
        .await
        .json();
    assert_eq!(cert["source"], "upload", "{cert}");
    assert_eq!(cert["not_served"], serde_json::json!([]), "{cert}");
    // The node answered the CA from the webroot, and left nothing behind there.
    let metrics = node.metrics().await;
    assert!(
        metrics.count(
            "dcv_challenge_requests_total",
            &[("kind", "webroot"), ("scheme", "http"), ("result", "hit")]
        ) >= 2.0,
        "{}",
        metrics.text
    );

    // certbot keeps the hook in the renewal configuration: a renewal reaches the node too.
    let mut renew = certbot(&["renew", "--force-renewal", "--no-random-sleep-on-renew"]);
    renew.arg("--cert-name").arg("certbot.example.test");
    run(renew, "certbot renew");
    let renewed = std::fs::read_to_string(live.join("cert.pem")).unwrap();
    assert_ne!(pem_fingerprint(&renewed), pem_fingerprint(&leaf));
    assert_eq!(
        presented(&node, "certbot.example.test").await,
        pem_fingerprint(&renewed)
    );
}

#[tokio::test]
async fn lego_webroot_and_run_hook_put_the_certificate_on_the_node() {
    let (node, pebble) = node_and_ca().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lego = Command::new("lego");
    lego.args(["--server", &pebble.directory_url()])
        .args(["--accept-tos", "--email", "ops@example.test"])
        .arg("--path")
        .arg(dir.path())
        .args(["--http", "--http.webroot"])
        .arg(node.state_dir().join("webroot"))
        .args([
            "-d",
            "lego.example.test",
            "-d",
            "api.lego.example.test",
            "run",
            "--run-hook",
        ])
        .arg(hook("lego-hook"))
        .env("LEGO_CA_CERTIFICATES", pebble.api_root());
    hook_env(&mut lego, &node);
    run(lego, "lego run");
    let bundle =
        std::fs::read_to_string(dir.path().join("certificates/lego.example.test.crt")).unwrap();
    for name in ["lego.example.test", "api.lego.example.test"] {
        assert_eq!(
            presented(&node, name).await,
            pem_fingerprint(&bundle),
            "{name}"
        );
    }
    let cert = node
        .admin_get("/v1/certificates/lego.example.test")
        .await
        .json();
    assert_eq!(cert["source"], "upload", "{cert}");
    // lego's default bundle: the leaf and Pebble's intermediate.
    assert_eq!(cert["chain_length"], 2, "{cert}");
}

#[tokio::test]
async fn acme_sh_reloadcmd_puts_the_installed_files_on_the_node() {
    let node = Node::builder().start().await;
    let ca = TestCa::new("acme.sh test").unwrap();
    let leaf = ca
        .leaf(&["*.sh.example.test"], Duration::from_secs(60 * 86_400))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fullchain = dir.path().join("fullchain.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&fullchain, &leaf.chain_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    // The variables acme.sh exports to --reloadcmd after --install-cert.
    let mut reload = Command::new(hook("acme.sh-reloadcmd"));
    reload
        .env("Le_Domain", "*.sh.example.test")
        .env("CERT_FULLCHAIN_PATH", &fullchain)
        .env("CERT_KEY_PATH", &key);
    hook_env(&mut reload, &node);
    let out = run(reload, "acme.sh-reloadcmd");
    assert!(
        out.contains("wildcard.sh.example.test: stored and checked"),
        "{out}"
    );
    assert_eq!(
        presented(&node, "a.sh.example.test").await,
        pem_fingerprint(&leaf.chain_pem)
    );

    // Without the variables a hook says what is missing instead of uploading anything.
    let mut bare = Command::new(hook("acme.sh-reloadcmd"));
    bare.env_remove("Le_Domain");
    hook_env(&mut bare, &node);
    let out = bare.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Le_Domain is not set"));
}
