//! The integration-test harness: a real `dcv-proxy` process on free loopback ports, an in-process
//! origin that records what reaches it, and plain, TLS and HTTP/2 clients that see exactly what
//! the node sends.
//!
//! Every test binary includes this module and uses a different part of it, by role: this file
//! (the node, the origin, the clients, metrics), [`pebble`] (the CA), [`etcd`], [`nginx`],
//! [`dnslab`] (authoritative servers and a recursive resolver), [`hostile`] (misbehaving origins
//! and clients), [`operator`] (the CLI as an operator runs it) and [`probe_harness`] (the
//! blocking harness of the probe scenarios, with challtestsrv as their DNS).

// Each test binary uses a subset of the harness; the rest would be reported as dead code. Items
// are `pub` for the test files that include this module, which are not a library API.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use dcv_proxy::testkit::TestLeaf;

pub mod dnslab;
pub mod etcd;
pub mod hostile;
pub mod nginx;
pub mod operator;
pub mod pebble;
pub mod probe_harness;

/// How long any single wait (start-up, one request) may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

// ---- ports

/// A loopback address with a port that was free a moment ago. pingora cannot report the port of
/// a `:0` bind, so the port is chosen here and the listener dropped before the node binds it.
/// Never the same port twice in one test binary: the kernel may hand a just-released port out
/// again, and two calls in a row (HTTP and HTTPS of one node) then collide.
pub fn free_addr() -> SocketAddr {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of a bound listener");
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

// ---- the origin

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query, as sent on the request line.
    pub path: String,
    pub host: Option<String>,
    pub x_forwarded_for: Option<String>,
    pub x_forwarded_proto: Option<String>,
}

/// An HTTP/1.1 origin on a loopback port. Answers every request with `200` and the body
/// `<name>:<path and query>`, and records each request and each TCP connection. A path
/// `/slow/<ms>` is answered after `ms` milliseconds (an in-flight request across a stop or an
/// upgrade).
pub struct TestOrigin {
    name: String,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    /// Dropped with the origin: its connections close.
    _open: tokio::sync::watch::Sender<()>,
}

impl TestOrigin {
    /// An origin whose answers start with `origin:`.
    pub async fn start() -> Self {
        Self::named("origin").await
    }

    /// An origin whose answers start with `<name>:` (to tell two origins apart).
    pub async fn named(name: &str) -> Self {
        Self::named_on(name, "127.0.0.1:0".parse().expect("an address")).await
    }

    /// An origin on `addr` (the address of an origin that went away and comes back).
    pub async fn named_on(name: &str, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind the origin");
        let addr = listener.local_addr().expect("origin address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (open, closed) = tokio::sync::watch::channel(());
        let task = {
            let (seen, connections, name) = (seen.clone(), connections.clone(), name.to_owned());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (seen, name) = (seen.clone(), name.clone());
                    let service = hyper::service::service_fn(move |req| {
                        let (seen, name) = (seen.clone(), name.clone());
                        async move {
                            if let Some(ms) = slow_ms(&req) {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            Ok::<_, std::convert::Infallible>(answer(&name, &seen, req))
                        }
                    });
                    let mut closed = closed.clone();
                    tokio::spawn(async move {
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        // A dropped origin closes its kept-alive connections too.
                        tokio::select! {
                            _ = conn => {}
                            _ = closed.changed() => {}
                        }
                    });
                }
            })
        };
        Self {
            name: name.to_owned(),
            addr,
            seen,
            connections,
            task,
            _open: open,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("origin log").clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The body this origin answers for `path`.
    pub fn body_for(&self, path: &str) -> String {
        format!("{}:{path}", self.name)
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn slow_ms<B>(req: &http::Request<B>) -> Option<u64> {
    req.uri().path().strip_prefix("/slow/")?.parse().ok()
}

fn answer(
    name: &str,
    seen: &Mutex<Vec<SeenRequest>>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    seen.lock().expect("origin log").push(SeenRequest {
        method: req.method().to_string(),
        path: path.clone(),
        host: header("host"),
        x_forwarded_for: header("x-forwarded-for"),
        x_forwarded_proto: header("x-forwarded-proto"),
    });
    http::Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .header("x-origin", name)
        .body(Full::new(Bytes::from(format!("{name}:{path}"))))
        .expect("a valid response")
}

// ---- the node

/// A step run on the state directory before the node starts.
type Prepare = Box<dyn FnOnce(&Path)>;

/// What goes into a node's configuration file.
#[derive(Default)]
pub struct NodeBuilder {
    redirect_to_https: bool,
    redirect_status: Option<u16>,
    redirect_port: Option<u16>,
    unknown_token_origin: bool,
    max_body_bytes: Option<usize>,
    default_origin: Option<String>,
    sites: Vec<(Vec<String>, String)>,
    prepare: Vec<Prepare>,
    listen: Option<(SocketAddr, SocketAddr)>,
    grace_period: Option<String>,
    env: Vec<(String, String)>,
    extra: String,
    tls13_tickets: Option<u8>,
    second_https: Option<SocketAddr>,
    pingora_only: bool,
    head_timeout: Option<String>,
}

impl NodeBuilder {
    /// `proxy.fast_path = false`: every request served by pingora's engine.
    pub fn pingora_only(mut self) -> Self {
        self.pingora_only = true;
        self
    }

    /// `server.head_timeout`.
    pub fn head_timeout(mut self, timeout: &str) -> Self {
        self.head_timeout = Some(timeout.to_owned());
        self
    }

    /// A second HTTPS listener at `addr`.
    pub fn second_https_listener(mut self, addr: SocketAddr) -> Self {
        self.second_https = Some(addr);
        self
    }

    /// `https.tls13_tickets = n`.
    pub fn tls13_tickets(mut self, n: u8) -> Self {
        self.tls13_tickets = Some(n);
        self
    }

    /// `http.redirect_to_https = true`.
    pub fn redirect_to_https(mut self) -> Self {
        self.redirect_to_https = true;
        self
    }

    /// `http.redirect_status = status`.
    pub fn redirect_status(mut self, status: u16) -> Self {
        self.redirect_status = Some(status);
        self
    }

    /// `http.redirect_port = port`.
    pub fn redirect_port(mut self, port: u16) -> Self {
        self.redirect_port = Some(port);
        self
    }

    /// `challenge.unknown_token = "origin"`.
    pub fn unknown_token_to_origin(mut self) -> Self {
        self.unknown_token_origin = true;
        self
    }

    /// `admin.max_body_bytes = n`.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = Some(n);
        self
    }

    /// `proxy.default_origin = "<addr>"`.
    pub fn default_origin(mut self, origin: impl ToString) -> Self {
        self.default_origin = Some(origin.to_string());
        self
    }

    /// A `[[site]]` with `names` served by `origin` (`host:port`).
    pub fn site(mut self, names: &[&str], origin: impl ToString) -> Self {
        self.sites.push((
            names.iter().map(|n| n.to_string()).collect(),
            origin.to_string(),
        ));
        self
    }

    /// Listen on these HTTP and HTTPS addresses instead of fresh ones (a CA must know them).
    pub fn listen(mut self, http: SocketAddr, https: SocketAddr) -> Self {
        self.listen = Some((http, https));
        self
    }

    /// `server.grace_period` (default `"1s"`).
    pub fn grace_period(mut self, period: &str) -> Self {
        self.grace_period = Some(period.to_owned());
        self
    }

    /// Sets an environment variable for the node's process (and its restarts).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Appends `text` (whole TOML sections) to the configuration.
    pub fn extra_config(mut self, text: &str) -> Self {
        self.extra.push('\n');
        self.extra.push_str(text);
        self
    }

    /// Runs `f` on the state directory (already created, empty) before the node starts.
    pub fn prepare(mut self, f: impl FnOnce(&Path) + 'static) -> Self {
        self.prepare.push(Box::new(f));
        self
    }

    /// Writes the configuration and starts the binary, expecting it to refuse to start: returns
    /// its exit status and what it printed.
    pub async fn start_expecting_failure(mut self) -> (std::process::ExitStatus, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).expect("create the state directory");
        for f in std::mem::take(&mut self.prepare) {
            f(&state_dir);
        }
        let (http, https) = self.listen.unwrap_or_else(|| (free_addr(), free_addr()));
        let config = self.config_text(&state_dir, http, https, free_addr());
        let config_path = dir.path().join("dcv-proxy.toml");
        std::fs::write(&config_path, &config).expect("write the configuration");
        let log_path = dir.path().join("dcv-proxy.log");
        let mut child = spawn_with(&config_path, &log_path, &[], &self.env);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return (status, log);
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "dcv-proxy kept running although it should have refused to start\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Writes the configuration, starts the binary and waits until every listener answers.
    pub async fn start(mut self) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).expect("create the state directory");
        for f in std::mem::take(&mut self.prepare) {
            f(&state_dir);
        }
        let (http, https) = self.listen.unwrap_or_else(|| (free_addr(), free_addr()));
        let admin = free_addr();
        let config = self.config_text(&state_dir, http, https, admin);
        let config_path = dir.path().join("dcv-proxy.toml");
        std::fs::write(&config_path, &config).expect("write the configuration");
        let log_path = dir.path().join("dcv-proxy.log");
        let child = spawn_with(&config_path, &log_path, &[], &self.env);
        let mut node = Node {
            child,
            env: std::mem::take(&mut self.env),
            successors: Vec::new(),
            http,
            https,
            admin,
            state_dir,
            config_path,
            log_path,
            config,
            _dir: dir,
        };
        node.wait_ready().await;
        node
    }

    fn config_text(
        &self,
        state_dir: &Path,
        http: SocketAddr,
        https: SocketAddr,
        admin: SocketAddr,
    ) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
        let mut c = String::new();
        let _ = writeln!(c, "state_dir = {}", q(&state_dir.display().to_string()));
        let _ = writeln!(c, "\n[http]\nlisten = [{}]", q(&http.to_string()));
        let _ = writeln!(c, "redirect_to_https = {}", self.redirect_to_https);
        if let Some(status) = self.redirect_status {
            let _ = writeln!(c, "redirect_status = {status}");
        }
        if let Some(port) = self.redirect_port {
            let _ = writeln!(c, "redirect_port = {port}");
        }
        let mut https_listen = q(&https.to_string());
        if let Some(second) = self.second_https {
            https_listen = format!("{https_listen}, {}", q(&second.to_string()));
        }
        let _ = writeln!(c, "\n[https]\nlisten = [{https_listen}]");
        if let Some(n) = self.tls13_tickets {
            let _ = writeln!(c, "tls13_tickets = {n}");
        }
        let unknown = if self.unknown_token_origin {
            "origin"
        } else {
            "404"
        };
        let _ = writeln!(c, "\n[challenge]\nunknown_token = {}", q(unknown));
        let _ = writeln!(c, "\n[admin]\nlisten = {}", q(&admin.to_string()));
        if let Some(n) = self.max_body_bytes {
            let _ = writeln!(c, "max_body_bytes = {n}");
        }
        let _ = writeln!(
            c,
            "\n[server]\nthreads = 1\ngrace_period = {}\nlog_level = \"info\"",
            q(self.grace_period.as_deref().unwrap_or("1s"))
        );
        if let Some(t) = &self.head_timeout {
            let _ = writeln!(c, "head_timeout = {}", q(t));
        }
        let _ = writeln!(
            c,
            "\n[proxy]\nconnect_timeout = \"2s\"\nread_timeout = \"10s\"\nfast_path = {}",
            !self.pingora_only
        );
        if let Some(origin) = &self.default_origin {
            let _ = writeln!(c, "default_origin = {}", q(origin));
        }
        for (names, origin) in &self.sites {
            let names: Vec<String> = names.iter().map(|n| q(n)).collect();
            let _ = writeln!(
                c,
                "\n[[site]]\nnames = [{}]\norigin = {}",
                names.join(", "),
                q(origin)
            );
        }
        if !self.extra.contains("[probe]") {
            // Nothing in a test leaves loopback: a node whose test says nothing of the probe
            // does not probe, and its resolver (for `dcv-proxy check`) is a closed loopback port.
            c.push_str("\n[probe]\ninterval = \"0s\"\nresolvers = [\"127.0.0.1:9\"]\n\n");
        }
        c.push_str(&self.extra);
        c
    }
}

/// Starts the binary on `config` with `run_args` after `run` and `env` set, appending its
/// stdout and stderr to `log`.
fn spawn_with(config: &Path, log: &Path, run_args: &[&str], env: &[(String, String)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the log file");
    Command::new(env!("CARGO_BIN_EXE_dcv-proxy"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .args(run_args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log file"))
        .stderr(log)
        .spawn()
        .expect("spawn dcv-proxy")
}

/// A running `dcv-proxy` process. Killed on drop; when the test is failing its log is printed.
pub struct Node {
    child: Child,
    env: Vec<(String, String)>,
    /// Processes that took over from `child` without being its children here (a `SIGUSR2`
    /// upgrade starts the new process from the old one): killed on drop.
    successors: Vec<u32>,
    http: SocketAddr,
    https: SocketAddr,
    admin: SocketAddr,
    state_dir: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    config: String,
    // Last: removed after the child is gone.
    _dir: tempfile::TempDir,
}

impl Node {
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.https
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The bearer token the node created in `<state_dir>/admin.token`.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("admin.token"))
            .expect("read the admin token file")
            .trim()
            .to_owned()
    }

    /// Runs `dcv-proxy --config <this node's configuration> check <args…>` to the end: its
    /// exit code and standard output.
    pub async fn check(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dcv-proxy"));
        command
            .arg("--config")
            .arg(&self.config_path)
            .arg("check")
            .args(args)
            .stdin(Stdio::null());
        let output = tokio::time::timeout(DEADLINE, command.output())
            .await
            .expect("dcv-proxy check ends")
            .expect("run dcv-proxy check");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// Everything the node wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the process (SIGKILL: no clean shutdown, no lease revoked, no lock released).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id of the process started by the harness (before any upgrade).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process id in `<state_dir>/dcv-proxy.pid` (the process serving now).
    pub fn pid_file(&self) -> Option<u32> {
        std::fs::read_to_string(self.state_dir.join("dcv-proxy.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Sends `signal` (`HUP`, `TERM`, `QUIT`, `USR2`…) to process `pid` with kill(1).
    pub fn signal_pid(pid: u32, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// Sends `signal` to the process started by the harness.
    pub fn signal(&self, signal: &str) {
        Self::signal_pid(self.child.id(), signal);
    }

    /// Waits up to `limit` for the process started by the harness to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts `run --upgrade` on the same configuration as pingora's hand-over expects it, and
    /// waits until it listens on the upgrade socket. The new process is this node's from now
    /// on; the old one is returned, to be sent `SIGQUIT`.
    pub async fn start_successor(&mut self) -> Child {
        let sock = self.state_dir.join("upgrade.sock");
        let _ = std::fs::remove_file(&sock);
        let successor = spawn_with(&self.config_path, &self.log_path, &["--upgrade"], &self.env);
        let start = Instant::now();
        while !sock.exists() {
            assert!(
                start.elapsed() < DEADLINE,
                "the successor did not listen on {} in time\n{}",
                sock.display(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::mem::replace(&mut self.child, successor)
    }

    /// Takes over a process that is not a child of the harness (killed on drop).
    pub fn adopt(&mut self, pid: u32) {
        self.successors.push(pid);
    }

    /// Replaces the configuration file (for a reload).
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("write the configuration");
    }

    /// The configuration the node was started with.
    pub fn config_text(&self) -> &str {
        &self.config
    }

    /// Kills the process and starts a new one on the same configuration and state directory.
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_with(&self.config_path, &self.log_path, &[], &self.env);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "dcv-proxy exited during start-up with {status}\n--- config\n{}\n--- log\n{}",
                    self.config,
                    self.log()
                );
            }
            if self.ready().await {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "dcv-proxy did not become ready within {DEADLINE:?}\n--- log\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `/healthz` answers, the HTTP listener accepts connections and the HTTPS one completes a
    /// handshake (a bare TCP connect would be logged as a failed handshake).
    async fn ready(&self) -> bool {
        let health = try_raw(
            self.admin,
            b"GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        )
        .await;
        matches!(health, Some(r) if r.status == 200)
            && TcpStream::connect(self.http).await.is_ok()
            && tls_connect(self.https, None, &["http/1.1"], None)
                .await
                .is_ok()
    }

    // ---- plain HTTP on the edge

    /// `GET path` on the HTTP listener with `Host: host`.
    pub async fn http_get(&self, host: &str, path: &str) -> Response {
        self.http_request("GET", host, path, &[]).await
    }

    /// One request on a fresh connection to the HTTP listener.
    pub async fn http_request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let req = request_bytes(method, host, path, headers);
        self.http_raw(&req).await
    }

    /// Sends `raw` as-is on a fresh connection to the HTTP listener and reads until it closes.
    /// For request targets an HTTP client would normalise.
    pub async fn http_raw(&self, raw: &[u8]) -> Response {
        let stream = TcpStream::connect(self.http).await.expect("connect http");
        exchange(stream, raw).await
    }

    // ---- HTTPS on the edge

    /// `GET path` over TLS with SNI `host` and `Host: host`; also returns what was presented.
    pub async fn https_get(&self, host: &str, path: &str) -> (Response, Presented) {
        let conn = tls_connect(self.https, Some(host), &["http/1.1"], None)
            .await
            .expect("TLS handshake");
        let presented = conn.presented.clone();
        let req = request_bytes("GET", host, path, &[]);
        (exchange(conn.stream, &req).await, presented)
    }

    /// One request over TLS with SNI `host`.
    pub async fn https_request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let conn = tls_connect(self.https, Some(host), &["http/1.1"], None)
            .await
            .expect("TLS handshake");
        exchange(conn.stream, &request_bytes(method, host, path, headers)).await
    }

    /// The certificate chain presented for `sni` (`None`: no SNI extension).
    pub async fn presented(&self, sni: Option<&str>) -> Presented {
        tls_connect(self.https, sni, &["http/1.1"], None)
            .await
            .expect("TLS handshake")
            .presented
    }

    // ---- the admin API

    /// One admin request; `bearer` is sent as `Authorization: Bearer <bearer>` when given.
    pub async fn admin_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        bearer: Option<&str>,
    ) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n");
        if let Some(token) = bearer {
            let _ = write!(req, "Authorization: Bearer {token}\r\n");
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || matches!(method, "PUT" | "POST") {
            let _ = write!(
                req,
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let stream = TcpStream::connect(self.admin).await.expect("connect admin");
        exchange(stream, &bytes).await
    }

    /// Sends `raw` as-is to the admin listener.
    pub async fn admin_raw(&self, raw: &[u8]) -> Response {
        let stream = TcpStream::connect(self.admin).await.expect("connect admin");
        exchange(stream, raw).await
    }

    pub async fn admin_get(&self, path: &str) -> Response {
        let response = self.admin_request("GET", path, None, None).await;
        if path == "/v1/status" && response.status == 200 {
            assert_typed_status(&response.json());
        }
        response
    }

    /// `PUT path` with a JSON body and the right token.
    pub async fn admin_put(&self, path: &str, body: &serde_json::Value) -> Response {
        let body = serde_json::to_vec(body).expect("JSON");
        let token = self.admin_token();
        self.admin_request("PUT", path, Some(&body), Some(&token))
            .await
    }

    /// `POST path` without a body, with the right token.
    pub async fn admin_post(&self, path: &str) -> Response {
        let token = self.admin_token();
        self.admin_request("POST", path, None, Some(&token)).await
    }

    /// `DELETE path` with the right token.
    pub async fn admin_delete(&self, path: &str) -> Response {
        let token = self.admin_token();
        self.admin_request("DELETE", path, None, Some(&token)).await
    }

    /// Puts an ACME answer; panics unless the node accepts it.
    pub async fn put_token(&self, token: &str, key_authorization: &str, identifier: Option<&str>) {
        let mut body = serde_json::json!({ "key_authorization": key_authorization });
        if let Some(id) = identifier {
            body["identifier"] = id.into();
        }
        let resp = self
            .admin_put(&format!("/v1/acme/tokens/{token}"), &body)
            .await;
        assert_eq!(resp.status, 201, "put token {token}: {}", resp.text());
    }

    /// Puts a pki-validation file (as base64, so any bytes); panics unless accepted.
    pub async fn put_pki(&self, host: &str, file: &str, content: &[u8]) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(content);
        let resp = self
            .admin_put(
                &format!("/v1/pki/{host}/{file}"),
                &serde_json::json!({ "content_base64": b64 }),
            )
            .await;
        assert_eq!(resp.status, 201, "put pki {host}/{file}: {}", resp.text());
    }

    /// Uploads a certificate; returns the node's answer whatever it is.
    pub async fn put_cert(
        &self,
        id: &str,
        certificate: &str,
        private_key: &str,
        names: &[&str],
    ) -> Response {
        self.admin_put(
            &format!("/v1/certificates/{id}"),
            &serde_json::json!({
                "certificate": certificate,
                "private_key": private_key,
                "names": names,
            }),
        )
        .await
    }

    /// Uploads `leaf` (chain and key) as `id`; panics unless accepted.
    pub async fn install_cert(&self, id: &str, leaf: &TestLeaf, names: &[&str]) {
        let resp = self
            .put_cert(id, &leaf.chain_pem, &leaf.key_pem, names)
            .await;
        assert_eq!(
            resp.status,
            201,
            "install certificate {id}: {}",
            resp.text()
        );
    }

    /// `GET /metrics`, parsed.
    pub async fn metrics(&self) -> Metrics {
        let resp = self.admin_get("/metrics").await;
        assert_eq!(resp.status, 200, "GET /metrics");
        Metrics::parse(&resp.text())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in &self.successors {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- dcv-proxy configuration\n{}\n--- dcv-proxy log\n{}--- end of dcv-proxy log",
                self.config,
                self.log()
            );
        }
    }
}

// ---- HTTP/1.1 by hand

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// The status document is exactly what its type says: read as `api::Status<acme::AcmeStatus>`
/// (as the CLI reads it) and written back, nothing is lost, renamed or refused. Every test that
/// reads `/v1/status` checks it, in whatever state the node is.
pub fn assert_typed_status(doc: &serde_json::Value) {
    let typed: dcv_proxy::api::Status<dcv_proxy::acme::AcmeStatus> =
        serde_json::from_value(doc.clone())
            .unwrap_or_else(|e| panic!("/v1/status does not read as its type: {e}\n{doc:#}"));
    let back = serde_json::to_value(&typed).expect("status document");
    assert_eq!(
        &back, doc,
        "/v1/status changed when read as its type and written back"
    );
}

/// `METHOD path HTTP/1.1` with `Host`, `Connection: close` and `headers`.
pub fn request_bytes(method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in headers {
        let _ = write!(req, "{n}: {v}\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Writes `request`, reads until the peer closes, parses the response.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Response {
    let io = async {
        stream.write_all(request).await?;
        stream.flush().await?;
        let mut buf = Vec::new();
        // A TLS peer may close without close_notify, and a server that refuses a request before
        // reading its body may reset the connection after answering: what was read is still the
        // response.
        match stream.read_to_end(&mut buf).await {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) && !buf.is_empty() => {}
            Err(e) => return Err(e),
        }
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(DEADLINE, io)
        .await
        .expect("the response did not complete in time")
        .expect("request I/O");
    parse_response(&buf)
}

async fn try_raw(addr: SocketAddr, request: &[u8]) -> Option<Response> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(request).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    try_parse_response(&buf)
}

/// Parses one HTTP/1.1 response: status, headers, body (chunked, or to EOF).
pub fn parse_response(buf: &[u8]) -> Response {
    try_parse_response(buf)
        .unwrap_or_else(|| panic!("not an HTTP response: {:?}", String::from_utf8_lossy(buf)))
}

pub fn try_parse_response(buf: &[u8]) -> Option<Response> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size_text = std::str::from_utf8(&rest[..eol]).unwrap_or("0");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return body;
        }
        let start = eol + 2;
        body.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = rest.get(start + size + 2..).unwrap_or_default();
    }
}

// ---- TLS

/// What the server presented in a handshake.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
}

impl Presented {
    /// SHA-256 of the leaf, lowercase hex (the `sha256_fingerprint` of the admin API).
    pub fn fingerprint(&self) -> String {
        fingerprint(self.chain.first().expect("a certificate was presented"))
    }

    /// DNS names in the leaf's subjectAltName.
    pub fn names(&self) -> Vec<String> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let der = self.chain.first().expect("a certificate was presented");
        let (_, cert) = X509Certificate::from_der(der).expect("the leaf parses");
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(n) = name {
                    names.push(n.to_string());
                }
            }
        }
        names
    }
}

/// SHA-256 of `der`, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The fingerprint of the first certificate in `pem`.
pub fn pem_fingerprint(pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate");
    fingerprint(&der)
}

/// A TLS connection and what the server presented on it.
pub struct TlsConn {
    pub stream: TlsStream<TcpStream>,
    pub presented: Presented,
}

impl TlsConn {
    /// The protocol ALPN settled on.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
    }
}

/// Connects to `addr` with SNI `sni` (`None`: no SNI extension) offering `alpn`. With
/// `trust_root` the chain must verify against that root for `sni`; without, any chain is
/// accepted (and recorded), but the handshake signature is still checked against the leaf.
pub async fn tls_connect(
    addr: SocketAddr,
    sni: Option<&str>,
    alpn: &[&str],
    trust_root: Option<&str>,
) -> Result<TlsConn, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = trust_root.map(|pem| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("root PEM")).expect("add the root");
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("a verifier")
    });
    let recorder = Arc::new(Recorder {
        provider: provider.clone(),
        inner,
        seen: Mutex::new(Vec::new()),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // rustls sends no SNI for an IP address.
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_owned()).expect("a DNS name"),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let tcp = TcpStream::connect(addr).await?;
    let stream = tokio::time::timeout(
        DEADLINE,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
    let chain = recorder.seen.lock().expect("recorder").clone();
    Ok(TlsConn {
        stream,
        presented: Presented { chain },
    })
}

/// A verifier that accepts any chain the server presents (its signatures are still checked),
/// for clients that test sessions rather than certificates.
pub fn any_certificate() -> Arc<dyn ServerCertVerifier> {
    Arc::new(Recorder {
        provider: Arc::new(rustls::crypto::ring::default_provider()),
        inner: None,
        seen: Mutex::new(Vec::new()),
    })
}

/// Records the presented chain; verifies it with `inner` when given.
#[derive(Debug)]
struct Recorder {
    provider: Arc<CryptoProvider>,
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    seen: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut seen = vec![end_entity.clone().into_owned()];
        seen.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.seen.lock().expect("recorder") = seen;
        match &self.inner {
            Some(inner) => {
                inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// ---- hyper client connections (keep-alive, HTTP/2)

/// An HTTP/1.1 client connection over `stream` that can carry several requests.
pub async fn h1_client<S>(stream: S) -> http1::SendRequest<Full<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 client handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// An HTTP/2 client connection over `stream`.
pub async fn h2_client<S>(stream: S) -> http2::SendRequest<Full<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("HTTP/2 client handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// `GET uri` with `Host: host` (HTTP/1.1; for HTTP/2 pass an absolute `uri` instead).
pub fn get(uri: &str, host: Option<&str>) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::builder().method("GET").uri(uri);
    if let Some(host) = host {
        req = req.header("host", host);
    }
    req.body(Full::new(Bytes::new())).expect("a valid request")
}

/// Collects a hyper response into a [`Response`].
pub async fn collect(resp: http::Response<hyper::body::Incoming>) -> Response {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = tokio::time::timeout(DEADLINE, resp.into_body().collect())
        .await
        .expect("the body did not complete in time")
        .expect("read the body")
        .to_bytes()
        .to_vec();
    Response {
        status,
        headers,
        body,
    }
}

// ---- metrics

/// A parsed Prometheus text exposition.
pub struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(f64::NAN);
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_owned(), labels, value));
        }
        Self {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of the series `name` whose labels include `labels`; `None` when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        match found.as_slice() {
            [] => None,
            [one] => Some(*one),
            _ => panic!("{name} {labels:?} matches several series"),
        }
    }

    /// Like [`Self::value`], but absent counts as 0.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }
}

fn parse_labels(mut s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while let Some((key, rest)) = s.split_once("=\"") {
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_owned(), value);
        s = &rest[end..];
    }
    labels
}

// ---- small fixtures

/// A key authorization for `token` (RFC 8555 §8.1 shape: `token.thumbprint`).
pub fn key_authorization(token: &str) -> String {
    format!("{token}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI")
}

/// Runs `f` until it returns `Some` or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
