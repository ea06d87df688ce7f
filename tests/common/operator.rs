//! What the operator-facing tests share (tests/status_page.rs, tests/alerts.rs,
//! tests/external_clients.rs, tests/admin.rs): admin requests with a chosen `Host`, the command
//! line, a node started on a configuration the test writes itself, and a "busy" node whose
//! state has a bit of everything an operator looks at — certificates issued by a real CA
//! (Pebble), an order failing with a catalogue cause, a CA problem, uploads that expire soon or
//! are shadowed, probed names, and a fleet of two over a real etcd.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use tokio::net::TcpStream;

use dcv_proxy::testkit::TestCa;

use super::dnslab::{free_dns_port, query_with, RecordType};
use super::etcd::Etcd;
use super::pebble::{Pebble, PebbleConfig};
use super::{eventually, exchange, free_addr, Node, Response, DEADLINE};

/// The busy node's validation zone.
const DNS_ZONE: &str = "dcv.busy.test";
const DAY: Duration = Duration::from_secs(86_400);

/// The admin listener of `node`.
pub fn admin_addr(node: &Node) -> SocketAddr {
    node.admin_url()
        .trim_start_matches("http://")
        .parse()
        .expect("the admin URL is http://<address>")
}

/// One request to the admin listener at `addr` with `Host: host` and `headers`.
pub async fn admin_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "PUT" | "POST") {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let stream = TcpStream::connect(addr).await.expect("connect admin");
    exchange(stream, &bytes).await
}

/// `dcv-proxy --config <config> <args…>` to the end.
pub fn cli(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dcv-proxy"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run dcv-proxy")
}

/// A node on a configuration the test writes whole (the harness's [`Node`] writes its own
/// `[http]`, `[https]` and `[admin]`); killed on drop.
pub struct RawNode {
    child: Child,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RawNode {
    /// Writes `config(state_dir)`, starts the binary, and waits until `GET /healthz` answers
    /// at `admin` (reached over loopback).
    pub async fn start(admin: SocketAddr, config: impl FnOnce(&Path) -> String) -> RawNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).expect("create the state directory");
        let config_path = dir.path().join("dcv-proxy.toml");
        std::fs::write(&config_path, config(&state_dir)).expect("write the configuration");
        let log = dir.path().join("dcv-proxy.log");
        let out = std::fs::File::create(&log).expect("create the log");
        let child = Command::new(env!("CARGO_BIN_EXE_dcv-proxy"))
            .arg("--config")
            .arg(&config_path)
            .arg("run")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log"))
            .stderr(out)
            .spawn()
            .expect("spawn dcv-proxy");
        let mut node = RawNode {
            child,
            admin,
            config: config_path,
            state_dir,
            log,
            _dir: dir,
        };
        let reach = dcv_proxy::config::reachable(&admin);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("dcv-proxy exited with {status}\n{}", node.log());
            }
            if let Ok(stream) = TcpStream::connect(reach).await {
                let rsp = exchange(
                    stream,
                    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                )
                .await;
                if rsp.status == 200 {
                    return node;
                }
            }
            assert!(
                start.elapsed() < DEADLINE,
                "dcv-proxy did not answer /healthz\n{}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RawNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- dcv-proxy log\n{}--- end", self.log());
        }
    }
}

/// A fleet key file in `dir`.
pub fn fleet_key(dir: &Path) -> PathBuf {
    let path = dir.join("fleet.key");
    let key: [u8; 32] = rand::random();
    std::fs::write(
        &path,
        format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(key)
        ),
    )
    .expect("write the fleet key");
    path
}

/// The issuer name of the busy node's soon-expiring upload: markup and quotes, to be shown as
/// text and never run.
pub const HOSTILE_ISSUER: &str = "Legacy <script>alert(1)</script> & \"Sons\" CA";

/// A node with a bit of everything (see the module documentation), its CA, its etcd and the
/// second member of its fleet.
pub struct BusyNode {
    pub node: Node,
    pub peer: Node,
    pub pebble: Pebble,
    pub etcd: Etcd,
    _dir: tempfile::TempDir,
}

/// The names of the busy node: one issued by Pebble, one failing with H1 (it resolves to an
/// address where nothing listens), one Pebble refuses (a CA problem), and the wildcard upload.
pub const ISSUED: &str = "shop.example.test";
pub const FAILING: &str = "api.example.test";
pub const REFUSED: &str = "blocked.example.test";

pub async fn busy_node() -> BusyNode {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = fleet_key(dir.path());
    let addrs = (free_addr(), free_addr());
    let mut config = PebbleConfig::for_node(addrs.0, addrs.1);
    config.validity_secs = 90 * 86_400;
    config.blocklist = vec![REFUSED.to_owned()];
    let pebble = Pebble::start(config).await;
    pebble
        .dns(
            "add-a",
            serde_json::json!({"host": FAILING, "addresses": ["127.0.0.66"]}),
        )
        .await;
    // Retries a little apart, as in production, so a failure's "next attempt" is seen.
    let acme = pebble
        .acme_config()
        .replace(
            "self_check_timeout = \"10s\"",
            "self_check_timeout = \"4s\"",
        )
        .replace(
            "retry_schedule = [\"1s\", \"2s\"]",
            "retry_schedule = [\"30s\", \"5m\"]",
        );
    let fleet = |node_id: &str| {
        format!(
            "[fleet]\nbackend = \"etcd\"\nendpoints = [{:?}]\nprefix = \"/busy\"\nnode_id = {node_id:?}\npublic_addresses = [\"127.0.0.1\"]\nkey_file = {:?}\nlease_ttl = \"2s\"\nrequest_timeout = \"2s\"\n",
            etcd.endpoint(),
            key.display().to_string()
        )
    };
    let certificates = format!(
        "\n[[certificate]]\nnames = [{ISSUED:?}, \"www.{ISSUED}\"]\n\n[[certificate]]\nnames = [{FAILING:?}]\n\n[[certificate]]\nnames = [{REFUSED:?}]\n"
    );
    // A validation zone of its own (delegated DNS validation), for the dcv_dns_* series.
    let dns = SocketAddr::from((
        std::net::Ipv4Addr::LOCALHOST,
        free_dns_port(&[std::net::Ipv4Addr::LOCALHOST.into()]),
    ));
    let dns_config = format!(
        "\n[dns]\nlisten = [\"{dns}\"]\n\n[[dns.zone]]\nname = \"{DNS_ZONE}\"\nname_servers = [\"ns1.{DNS_ZONE}\"]\naddresses = {{ \"ns1.{DNS_ZONE}\" = [\"192.0.2.53\"] }}\n"
    );
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .site(&[ISSUED, FAILING], "127.0.0.1:9")
        .extra_config(&format!(
            "{acme}\n{certificates}\n{}{dns_config}",
            fleet("edge-fra-1")
        ))
        .start()
        .await;
    // The second member of the fleet: it only follows.
    let peer = Node::builder()
        .extra_config(&fleet("edge-fra-2"))
        .start()
        .await;

    // Uploads: one expiring soon from a CA with a hostile name, one shadowed by the ACME one.
    let hostile = TestCa::new(HOSTILE_ISSUER).expect("test CA");
    let now = SystemTime::now();
    let soon = hostile
        .leaf_valid_between(&["*.static.example.test"], now - 70 * DAY, now + 20 * DAY)
        .expect("leaf");
    node.install_cert("static-wildcard", &soon, &[]).await;
    let old = TestCa::new("Old Reseller CA")
        .expect("test CA")
        .leaf(&[ISSUED], 30 * DAY)
        .expect("leaf");
    // Put before the ACME certificate is there: it serves until the ACME one, which lasts
    // longer, takes the name.
    let rsp = node
        .put_cert("legacy-shop", &old.chain_pem, &old.key_pem, &[])
        .await;
    assert_eq!(rsp.status, 201, "{}", rsp.text());

    eventually("the ACME certificate issued", || async {
        let cert = node
            .admin_get(&format!("/v1/certificates/{ISSUED}"))
            .await
            .json();
        (cert["source"] == "acme").then_some(())
    })
    .await;
    eventually("the failing order's diagnosis", || async {
        let status = node.admin_get("/v1/status").await.json();
        let acme = &status["acme"]["certificates"];
        (acme[FAILING]["last_error"]["cause"] == "H1" && acme[REFUSED]["last_error"].is_object())
            .then_some(())
    })
    .await;
    // A probe of every site name, now rather than at the next interval.
    let token = node.admin_token();
    for name in [ISSUED, FAILING] {
        let rsp = node
            .admin_request("POST", &format!("/v1/probe/{name}"), None, Some(&token))
            .await;
        assert_eq!(rsp.status, 200, "probe {name}: {}", rsp.text());
    }
    eventually("both fleet members listed", || async {
        let fleet = node.admin_get("/v1/status").await.json()["fleet"].clone();
        (fleet["connected"] == true && fleet["members"].as_array().map_or(0, Vec::len) == 2)
            .then_some(())
    })
    .await;
    // A DNS-01 value in flight, as the ordering node writes it, answered by the listener.
    let expires = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        + 600;
    let record = serde_json::json!({ "value": "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", "expires_unix": expires });
    etcd.put(
        "/busy/dns01/shop.customer.test/tok-1",
        record.to_string().as_bytes(),
    )
    .await;
    let txt_name = format!("shop.customer.test.{DNS_ZONE}");
    eventually("the listener answers the DNS-01 value", || async {
        query_with(
            dns,
            &txt_name,
            RecordType::TXT,
            false,
            Duration::from_secs(1),
        )
        .await
        .ok()
        .filter(|r| !r.txt().is_empty())
    })
    .await;
    // And a malformed message, which is dropped and counted.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a UDP socket");
    socket
        .send_to(b"\x00\x01\xff", dns)
        .await
        .expect("send to the listener");
    BusyNode {
        node,
        peer,
        pebble,
        etcd,
        _dir: dir,
    }
}
