//! A real ACME CA for tests: Debian's Pebble with pebble-challtestsrv as its DNS, on free
//! loopback ports, with a TLS certificate for Pebble's own API made at test time.
//!
//! Pebble's VA connects to one fixed port per challenge type on every host (`httpPort`,
//! `tlsPort`), so each test starts its own Pebble pointed at the ports of its own node, and
//! challtestsrv answers every name with `default_ipv4` (one loopback address per test, so
//! tests run in parallel).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dcv_proxy::testkit::TestCa;

use super::{collect, free_addr, get, h1_client, tls_connect, DEADLINE};

/// How Pebble should behave.
pub struct PebbleConfig {
    /// Port Pebble's VA fetches HTTP-01 answers from (the node's HTTP port).
    pub http_port: u16,
    /// Port Pebble's VA does TLS-ALPN-01 handshakes on (the node's HTTPS port).
    pub tls_port: u16,
    /// Address every name resolves to.
    pub default_ipv4: Ipv4Addr,
    /// `certificateValidityPeriod` in seconds (0: Pebble's default of five years).
    pub validity_secs: u64,
    /// Names Pebble refuses (`rejectedIdentifier`).
    pub blocklist: Vec<String>,
    /// `(key id, base64url HMAC key)`: external account binding required.
    pub eab: Option<(String, String)>,
    /// Percentage of good nonces Pebble rejects as `badNonce`.
    pub nonce_reject: u8,
    /// The resolver Pebble's VA (and the node's probe) asks instead of challtestsrv: the DNS
    /// lab's unbound (tests/common/dnslab.rs), where names have real zone cuts.
    pub resolver: Option<SocketAddr>,
}

impl PebbleConfig {
    pub fn for_node(http: SocketAddr, https: SocketAddr) -> Self {
        let default_ipv4 = match http.ip() {
            std::net::IpAddr::V4(ip) => ip,
            std::net::IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
        };
        Self {
            http_port: http.port(),
            tls_port: https.port(),
            default_ipv4,
            validity_secs: 0,
            blocklist: Vec::new(),
            eab: None,
            nonce_reject: 0,
            resolver: None,
        }
    }
}

/// A running Pebble and challtestsrv; both killed on drop.
pub struct Pebble {
    dir: tempfile::TempDir,
    config: PebbleConfig,
    acme: SocketAddr,
    mgmt: SocketAddr,
    dns: SocketAddr,
    cts_mgmt: SocketAddr,
    pebble: Option<Child>,
    challtestsrv: Child,
}

impl Pebble {
    pub async fn start(config: PebbleConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // Pebble's own API certificate, signed by a CA the node is told to trust.
        let ca = TestCa::new("pebble api").expect("test CA");
        let leaf = ca
            .leaf(&["localhost", "127.0.0.1"], Duration::from_secs(86_400))
            .expect("pebble API certificate");
        std::fs::write(dir.path().join("api-chain.pem"), &leaf.chain_pem).expect("write");
        std::fs::write(dir.path().join("api-key.pem"), &leaf.key_pem).expect("write");
        std::fs::write(dir.path().join("api-root.pem"), ca.root_pem()).expect("write");

        let (acme, mgmt, cts_dns, cts_mgmt) = (free_addr(), free_addr(), free_addr(), free_addr());
        let dns = config.resolver.unwrap_or(cts_dns);
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-management", &cts_mgmt.to_string()])
            .args(["-dns01", &cts_dns.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", &config.default_ipv4.to_string()])
            .args(["-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(log_file(dir.path(), "challtestsrv.log"))
            .stderr(log_file(dir.path(), "challtestsrv.log"))
            .spawn()
            .expect("spawn pebble-challtestsrv (Debian package `pebble`)");
        let mut pebble = Pebble {
            dir,
            config,
            acme,
            mgmt,
            dns,
            cts_mgmt,
            pebble: None,
            challtestsrv,
        };
        pebble.write_config();
        pebble.start_pebble().await;
        pebble
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let eab_keys: serde_json::Map<String, serde_json::Value> = self
            .config
            .eab
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
            .collect();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": self.acme.to_string(),
                "managementListenAddress": self.mgmt.to_string(),
                "certificate": d.join("api-chain.pem"),
                "privateKey": d.join("api-key.pem"),
                "httpPort": self.config.http_port,
                "tlsPort": self.config.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": self.config.eab.is_some(),
                "externalAccountMACKeys": eab_keys,
                "domainBlocklist": self.config.blocklist,
                "certificateValidityPeriod": self.config.validity_secs,
            }
        });
        std::fs::write(
            d.join("pebble.json"),
            serde_json::to_vec_pretty(&config).expect("json"),
        )
        .expect("write pebble.json");
    }

    async fn start_pebble(&mut self) {
        let d = self.dir.path();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(d.join("pebble.json"))
            .args(["-dnsserver", &self.dns.to_string()])
            .current_dir(d)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env(
                "PEBBLE_WFE_NONCEREJECT",
                self.config.nonce_reject.to_string(),
            )
            // Authorization reuse would skip the validations the tests want to see.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log_file(d, "pebble.log"))
            .stderr(log_file(d, "pebble.log"))
            .spawn()
            .expect("spawn pebble (Debian package `pebble`)");
        self.pebble = Some(child);
        let start = Instant::now();
        while self.directory_json().await.is_none() {
            assert!(
                start.elapsed() < DEADLINE,
                "pebble did not start\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills Pebble (challtestsrv keeps running): the CA is unreachable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Pebble again on the same ports (a new CA state: accounts and roots are new).
    pub async fn restart(&mut self) {
        self.stop();
        self.start_pebble().await;
    }

    /// Address of Pebble's ACME API.
    pub fn acme_addr(&self) -> SocketAddr {
        self.acme
    }

    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.acme)
    }

    /// The root that signs Pebble's API certificate (`acme.ca_bundle`).
    pub fn api_root(&self) -> PathBuf {
        self.dir.path().join("api-root.pem")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// A `[probe]` section that sees names the way Pebble does: through the DNS Pebble asks
    /// (challtestsrv, or the resolver of [`PebbleConfig::resolver`]), on the node's ports. The ACME self-check (the probe's gate) runs through it.
    pub fn probe_config(&self) -> String {
        format!(
            "[probe]\nresolvers = [{:?}]\nhttp_port = {}\nhttps_port = {}\ntimeout = \"2s\"\n\n",
            self.dns.to_string(),
            self.config.http_port,
            self.config.tls_port
        )
    }

    /// The `[probe]` and `[acme]` sections pointing a node at this Pebble (`[acme]` last, so a
    /// test can append more `[acme]` keys).
    pub fn acme_config(&self) -> String {
        let mut c = self.probe_config();
        c += &format!(
            "[acme]\ndirectory = {:?}\nca_bundle = {:?}\nterms_agreed = true\ncontact = [\"mailto:ops@example.test\"]\nretry_schedule = [\"1s\", \"2s\"]\nrequest_timeout = \"5s\"\nself_check_timeout = \"10s\"\n",
            self.directory_url(),
            self.api_root().display().to_string()
        );
        if let Some((kid, hmac)) = &self.config.eab {
            c.push_str(&format!("eab_key_id = {kid:?}\neab_hmac_key = {hmac:?}\n"));
        }
        c
    }

    /// An `[[acme.ca]]` table for this Pebble named `name` (after `[acme]` keys of one's own).
    pub fn ca_table(&self, name: &str) -> String {
        format!(
            "\n[[acme.ca]]\nname = {name:?}\ndirectory = {:?}\nca_bundle = {:?}\ncontact = [\"mailto:ops@example.test\"]\n",
            self.directory_url(),
            self.api_root().display().to_string()
        )
    }

    /// GET on Pebble's HTTPS API (or management API); `None` when it does not answer 200.
    pub async fn api_get(&self, addr: SocketAddr, path: &str) -> Option<String> {
        let conn = tls_connect(addr, Some("localhost"), &["http/1.1"], None)
            .await
            .ok()?;
        let mut sender = h1_client(conn.stream).await;
        // Pebble builds its URLs from the Host header: keep the address the node will use.
        let host = addr.to_string();
        let rsp = sender.send_request(get(path, Some(&host))).await.ok()?;
        let rsp = collect(rsp).await;
        (rsp.status == 200).then(|| rsp.text())
    }

    async fn directory_json(&self) -> Option<String> {
        self.api_get(self.acme, "/dir").await
    }

    /// Pebble's directory document.
    pub async fn api_get_directory(&self) -> String {
        self.directory_json().await.expect("pebble /dir")
    }

    /// The root of the hierarchy that issues certificates (new at every Pebble start).
    pub async fn issuer_root(&self) -> String {
        self.api_get(self.mgmt, "/roots/0")
            .await
            .expect("pebble management /roots/0")
    }

    /// challtestsrv's management API: `POST /<what>` with a JSON body.
    pub async fn dns(&self, what: &str, body: serde_json::Value) {
        let stream = tokio::net::TcpStream::connect(self.cts_mgmt)
            .await
            .expect("connect challtestsrv");
        let mut sender = h1_client(stream).await;
        let req = http::Request::post(format!("/{what}"))
            .header("host", "challtestsrv")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .expect("request");
        let rsp = collect(
            sender
                .send_request(req)
                .await
                .expect("challtestsrv answers"),
        )
        .await;
        assert_eq!(rsp.status, 200, "challtestsrv /{what}: {}", rsp.text());
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.challtestsrv.kill();
        let _ = self.challtestsrv.wait();
        if std::thread::panicking() {
            eprintln!("--- pebble log\n{}", self.log());
        }
    }
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .expect("open a log file")
}
