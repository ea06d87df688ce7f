//! The node under test: a real `dcv-proxy` process on free loopback ports, built from a
//! configuration the test writes ([`NodeBuilder`]), with its admin API, log and state directory
//! at hand, stopped when dropped.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use dcv_proxy::testkit::TestLeaf;
use tokio::net::TcpStream;

use super::clients::try_raw;
use super::{
    assert_typed_status, exchange, free_addr, request_bytes, tls_connect, Metrics, Presented,
    Response, DEADLINE,
};

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
