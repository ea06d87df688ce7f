//! Harness of the probe scenarios (`tests/probe.rs`, `tests/probe_http01.rs`): real child
//! processes driven from blocking code, on loopback, each test with its own.
//!
//! - [`Challtestsrv`]: `pebble-challtestsrv` as the authoritative DNS (and resolver) whose
//!   management API sets A/AAAA/CNAME/CAA/TXT records and SERVFAIL;
//! - [`Node`]: the real `dcv-proxy` binary on free ports, its probe pointed at that DNS and at
//!   its own ports, with `check` run as a child process;
//! - [`TestServer`]: a small HTTP server on another loopback address (127.0.0.x) that plays the
//!   wrong server a name points at (404, redirects, stale content);
//! - [`NxDomainServer`] and [`silent_udp`]: DNS answers challtestsrv cannot give (NXDOMAIN,
//!   nothing at all).
//!
//! Every wait polls with a deadline; nothing sleeps for a fixed time hoping it is enough.

// The harness is a module of the test binary: `pub` is its interface to the tests, and not
// every test binary uses every helper.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_dcv-proxy");
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Polls `ready` every 20 ms until it holds, or panics with `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port free for TCP and UDP at the time of the call.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A minimal HTTP/1.1 exchange (`Connection: close`); returns status and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A child process killed and reaped on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `pebble-challtestsrv` with its own DNS and management ports; only its DNS server runs.
pub struct Challtestsrv {
    _process: Process,
    pub dns: SocketAddr,
    management: SocketAddr,
}

impl Challtestsrv {
    pub fn start() -> Self {
        let (dns_port, mgmt_port) = (free_port(), free_port());
        let dns: SocketAddr = ([127, 0, 0, 1], dns_port).into();
        let management: SocketAddr = ([127, 0, 0, 1], mgmt_port).into();
        let child = Command::new("pebble-challtestsrv")
            .args(["-management", &management.to_string()])
            .args(["-dns01", &dns.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble) must be installed: scripts/install-deps test");
        let cts = Self {
            _process: Process(child),
            dns,
            management,
        };
        // A GET without a body gets 400 once the management API is up.
        wait_until("challtestsrv management API", READY_WITHIN, || {
            http_request(management, "GET", "/", &[], b"").is_ok()
        });
        cts
    }

    fn post(&self, path: &str, body: serde_json::Value) {
        let (status, text) = http_request(
            self.management,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 200, "challtestsrv {path} {body}: {text}");
    }

    pub fn add_a(&self, host: &str, addresses: &[&str]) {
        self.post(
            "/add-a",
            serde_json::json!({"host": host, "addresses": addresses}),
        );
    }

    pub fn add_aaaa(&self, host: &str, addresses: &[&str]) {
        self.post(
            "/add-aaaa",
            serde_json::json!({"host": host, "addresses": addresses}),
        );
    }

    /// No A record at all (challtestsrv skips invalid addresses).
    pub fn no_address(&self, host: &str) {
        self.add_a(host, &["none"]);
    }

    pub fn set_cname(&self, host: &str, target: &str) {
        self.post(
            "/set-cname",
            serde_json::json!({"host": host, "target": format!("{target}.")}),
        );
    }

    pub fn add_caa(&self, host: &str, policies: &[(&str, &str)]) {
        let policies: Vec<_> = policies
            .iter()
            .map(|(tag, value)| serde_json::json!({"tag": tag, "value": value}))
            .collect();
        self.post(
            "/add-caa",
            serde_json::json!({"host": host, "policies": policies}),
        );
    }

    pub fn set_servfail(&self, host: &str) {
        self.post("/set-servfail", serde_json::json!({"host": host}));
    }

    pub fn set_txt(&self, host: &str, value: &str) {
        self.post(
            "/set-txt",
            serde_json::json!({"host": format!("{host}."), "value": value}),
        );
    }
}

/// How a [`Node`] is configured; `Default` probes through nothing: set `resolvers`.
#[derive(Default, Clone)]
pub struct NodeConfig {
    pub resolvers: Vec<SocketAddr>,
    pub authoritative: Vec<SocketAddr>,
    pub public_addresses: Vec<String>,
    /// TOML lines appended to `[probe]` (keys first, then `[[probe.txt]]` tables).
    pub probe_extra: String,
    /// Exact names of one `[[site]]` (probed by the running server).
    pub sites: Vec<String>,
    /// `probe.interval`; `"0s"` (off) when empty.
    pub interval: String,
    /// `probe.deadline`; `"30s"` when empty.
    pub deadline: String,
    /// Files written under the state directory before start: (relative path, content, age).
    pub state_files: Vec<(String, String, Duration)>,
}

impl NodeConfig {
    /// Resolving through `dns`, the node's public address being 127.0.0.1. challtestsrv is no
    /// authoritative server (no AA bit, no zone cuts): the authoritative checks are judged on
    /// the DNS lab (tests/probe_dns.rs), not here.
    pub fn with_dns(dns: SocketAddr) -> Self {
        Self {
            resolvers: vec![dns],
            authoritative: vec![],
            public_addresses: vec!["127.0.0.1".into()],
            ..Self::default()
        }
    }
}

/// A running `dcv-proxy`.
pub struct Node {
    process: Option<Process>,
    dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub http_port: u16,
    pub https_port: u16,
    pub admin: SocketAddr,
}

/// What `dcv-proxy check` printed.
pub struct CheckOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Node {
    /// Writes the configuration, starts the binary and waits until it serves.
    pub fn start(config: &NodeConfig) -> Self {
        let node = Self::configure(config);
        node.spawn()
    }

    /// Writes the configuration only (for `check` against a node that is not running).
    pub fn configure(config: &NodeConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (http_port, https_port, admin_port) = (free_port(), free_port(), free_port());
        let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
        let list = |items: &[String]| {
            items
                .iter()
                .map(|i| format!("{i:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let addrs =
            |items: &[SocketAddr]| list(&items.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let or = |value: &str, default: &'static str| {
            if value.is_empty() {
                default.to_owned()
            } else {
                value.to_owned()
            }
        };
        let interval = or(&config.interval, "0s");
        let deadline = or(&config.deadline, "30s");
        let mut text = format!(
            r#"state_dir = "state"
[http]
listen = ["127.0.0.1:{http_port}"]
[https]
listen = ["127.0.0.1:{https_port}"]
[admin]
listen = "{admin}"
[server]
log_level = "warn"
grace_period = "1s"
[probe]
resolvers = [{resolvers}]
authoritative = [{authoritative}]
public_addresses = [{public}]
http_port = {http_port}
https_port = {https_port}
timeout = "1s"
deadline = "{deadline}"
interval = "{interval}"
{extra}
"#,
            resolvers = addrs(&config.resolvers),
            authoritative = addrs(&config.authoritative),
            public = list(&config.public_addresses),
            extra = config.probe_extra,
        );
        if !config.sites.is_empty() {
            text.push_str(&format!(
                "[[site]]\nnames = [{}]\norigin = \"127.0.0.1:9\"\n",
                list(&config.sites)
            ));
        }
        let config_path = dir.path().join("dcv-proxy.toml");
        std::fs::write(&config_path, text).unwrap();
        for (relative, content, age) in &config.state_files {
            let path = dir.path().join("state").join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(std::time::SystemTime::now() - *age)
                .unwrap();
        }
        Self {
            process: None,
            dir,
            config_path,
            http_port,
            https_port,
            admin,
        }
    }

    fn spawn(mut self) -> Self {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&self.config_path)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.process = Some(Process(child));
        let admin = self.admin;
        let http: SocketAddr = ([127, 0, 0, 1], self.http_port).into();
        let https: SocketAddr = ([127, 0, 0, 1], self.https_port).into();
        wait_until("dcv-proxy to serve", READY_WITHIN, || {
            if let Some(Process(child)) = self.process.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("dcv-proxy exited with {status}:\n{}", self.log());
                }
            }
            matches!(
                http_request(admin, "GET", "/healthz", &[], b""),
                Ok((200, _))
            ) && TcpStream::connect(http).is_ok()
                && TcpStream::connect(https).is_ok()
        });
        self
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `dcv-proxy --config … check ARGS…`
    pub fn check(&self, args: &[&str]) -> CheckOutput {
        let output: Output = Command::new(BIN)
            .arg("--config")
            .arg(&self.config_path)
            .arg("check")
            .args(args)
            .output()
            .unwrap();
        CheckOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// An admin API call with the bearer token.
    pub fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, String) {
        let auth = format!("Bearer {}", self.token());
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        http_request(
            self.admin,
            method,
            path,
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .unwrap()
    }

    pub fn metrics(&self) -> String {
        http_request(self.admin, "GET", "/metrics", &[], b"")
            .unwrap()
            .1
    }
}

/// An HTTP server on another loopback address that answers every request with `reply`.
pub struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A request as the test server saw it.
pub struct SeenRequest {
    pub path: String,
    pub host: String,
}

/// What the test server sends back.
pub struct CannedReply {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl TestServer {
    pub fn start(
        ip: &str,
        port: u16,
        reply: impl Fn(&SeenRequest) -> CannedReply + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind((ip, port)).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let host = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("Host: ")
                            .or_else(|| l.strip_prefix("host: "))
                    })
                    .unwrap_or("")
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let canned = reply(&SeenRequest { path, host });
                let mut response = format!(
                    "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    canned.status,
                    canned.body.len()
                );
                if let Some(location) = canned.location {
                    response.push_str(&format!("Location: {location}\r\n"));
                }
                response.push_str("\r\n");
                response.push_str(&canned.body);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A UDP socket that receives DNS queries and never answers (a dead or filtered resolver).
pub fn silent_udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// A DNS server that answers NXDOMAIN to every query (challtestsrv never does).
pub struct NxDomainServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NxDomainServer {
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::SeqCst) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = nxdomain(&buf[..n]) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NxDomainServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The NXDOMAIN answer to `query` (RFC 1035 §4.1): its header with QR, AA, RA and RCODE 3,
/// its question, nothing else.
fn nxdomain(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let mut end = 12;
    loop {
        let len = *query.get(end)? as usize;
        end += 1;
        if len == 0 {
            break;
        }
        end += len;
    }
    end += 4;
    let mut reply = query.get(..end)?.to_vec();
    reply[2] = 0x80 | (query[2] & 0x79) | 0x04;
    reply[3] = 0x80 | 0x03;
    reply[4..6].copy_from_slice(&[0, 1]);
    reply[6..12].copy_from_slice(&[0; 6]);
    Some(reply)
}

/// The JSON document of `check --json`.
pub fn json(out: &CheckOutput) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", out.stdout, out.stderr))
}

/// Every `(check, status, cause)` of the first report of a `--json` document.
pub fn findings(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    doc["reports"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["cause"]["id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Runs `check NAME` as text and as JSON and asserts both name `cause` on a `status`
/// (`"fail"` or `"warn"`) line of kind `check`; returns the text output.
pub fn assert_cause(node: &Node, name: &str, check: &str, status: &str, cause: &str) -> String {
    let text = node.check(&[name]);
    let marker = format!(" {cause}: ");
    let upper = status.to_ascii_uppercase();
    assert!(
        text.stdout
            .lines()
            .any(|l| l.trim_start().starts_with(&upper)
                && l.contains(check)
                && l.contains(&marker)),
        "no {upper} {check} line with {cause} in:\n{}\n{}",
        text.stdout,
        text.stderr
    );
    let doc = json(&node.check(&[name, "--json"]));
    let all = findings(&doc);
    assert!(
        all.iter()
            .any(|(c, s, id)| c == check && s == status && id == cause),
        "no {status} {check} with {cause} in the JSON: {all:?}"
    );
    if status == "fail" {
        assert_eq!(text.code, 1, "{}", text.stdout);
        assert_eq!(doc["verdict"], "fail");
    }
    text.stdout
}

/// The value of the metric line that starts with `series` (labels in Prometheus' order).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

/// A file under the state directory, aged.
pub fn aged(relative: &str, content: &str, age: Duration) -> (String, String, Duration) {
    (relative.to_owned(), content.to_owned(), age)
}
