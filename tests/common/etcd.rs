//! A real etcd for fleet tests: Debian's `etcd-server` (3.4), one member on free loopback
//! ports with its data in a temporary directory, stopped and started again on the same ports
//! and data when a test needs etcd to go away and come back; and [`EtcdLink`], a link between
//! one node and etcd that a test cuts to take that node alone off the fleet store.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

use super::{free_addr, h1_client, DEADLINE};

/// A running etcd; killed on drop (its log printed when the test is failing).
pub struct Etcd {
    dir: tempfile::TempDir,
    client: SocketAddr,
    peer: SocketAddr,
    metrics: SocketAddr,
    child: Option<Child>,
}

impl Etcd {
    /// Starts etcd and waits until `/health` says it is healthy.
    pub async fn start() -> Self {
        let mut etcd = Etcd {
            dir: tempfile::tempdir().expect("tempdir"),
            client: free_addr(),
            peer: free_addr(),
            metrics: free_addr(),
            child: None,
        };
        etcd.spawn().await;
        etcd
    }

    async fn spawn(&mut self) {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("etcd.log"))
            .expect("open the etcd log");
        let client = format!("http://{}", self.client);
        let peer = format!("http://{}", self.peer);
        let child = Command::new("etcd")
            .args(["--name", "t1"])
            .arg("--data-dir")
            .arg(d.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t1={peer}")])
            .args(["--listen-metrics-urls", &format!("http://{}", self.metrics)])
            .args(["--logger=zap", "--log-outputs=stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd (Debian package `etcd-server`)");
        self.child = Some(child);
        let start = Instant::now();
        while !self.healthy().await {
            assert!(
                start.elapsed() < DEADLINE,
                "etcd did not become healthy\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.client)
    }

    /// Kills etcd (SIGKILL): the fleet store is gone until [`Self::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub async fn start_again(&mut self) {
        self.stop();
        self.spawn().await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    async fn healthy(&self) -> bool {
        let Ok(stream) = tokio::net::TcpStream::connect(self.client).await else {
            return false;
        };
        let mut sender = h1_client(stream).await;
        let req = super::get("/health", Some("etcd"));
        match tokio::time::timeout(Duration::from_secs(2), sender.send_request(req)).await {
            Ok(Ok(rsp)) => super::collect(rsp).await.text().contains("true"),
            _ => false,
        }
    }

    /// Writes `key` = `value`, as a node of the fleet would (no lease).
    pub async fn put(&self, key: &str, value: &[u8]) {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.call(
            "/v3/kv/put",
            serde_json::json!({ "key": b64.encode(key), "value": b64.encode(value) }),
        )
        .await;
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.call(
            "/v3/kv/deleterange",
            serde_json::json!({ "key": b64.encode(key) }),
        )
        .await;
    }

    /// One call of etcd's JSON gateway that must succeed.
    async fn call(&self, path: &str, body: serde_json::Value) {
        let stream = tokio::net::TcpStream::connect(self.client)
            .await
            .expect("connect etcd");
        let mut sender = h1_client(stream).await;
        let req = http::Request::post(path)
            .header("host", "etcd")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .expect("request");
        let rsp = super::collect(sender.send_request(req).await.expect("etcd answers")).await;
        assert_eq!(rsp.status, 200, "{path}: {}", rsp.text());
    }

    /// Keys under `prefix` with their values, read through etcd's JSON gateway.
    pub async fn get_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let body = serde_json::json!({
            "key": b64.encode(prefix),
            "range_end": b64.encode(&end),
        });
        let stream = tokio::net::TcpStream::connect(self.client)
            .await
            .expect("connect etcd");
        let mut sender = h1_client(stream).await;
        let req = http::Request::post("/v3/kv/range")
            .header("host", "etcd")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .expect("request");
        let rsp = super::collect(sender.send_request(req).await.expect("etcd answers")).await;
        let json = rsp.json();
        json["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| {
                        let key = b64
                            .decode(kv["key"].as_str().unwrap_or_default())
                            .unwrap_or_default();
                        let value = b64
                            .decode(kv["value"].as_str().unwrap_or_default())
                            .unwrap_or_default();
                        (String::from_utf8_lossy(&key).into_owned(), value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- etcd log (tail)\n{}", tail(&self.log(), 40));
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A TCP relay between one node and etcd: the node's `fleet.endpoints` names the relay, and
/// [`Self::cut`] closes its connections and refuses new ones (the node loses etcd, the others
/// do not) until [`Self::mend`].
pub struct EtcdLink {
    addr: SocketAddr,
    state: Arc<Mutex<LinkState>>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct LinkState {
    cut: bool,
    open: Vec<tokio::task::AbortHandle>,
}

impl EtcdLink {
    pub async fn start(etcd: &Etcd) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the etcd link");
        let addr = listener.local_addr().expect("the link's address");
        let target = etcd.client;
        let state = Arc::new(Mutex::new(LinkState::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                // Under the lock: a connection is either refused or known to `cut`.
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                if state.cut {
                    continue;
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                state.open.push(relay.abort_handle());
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// `http://127.0.0.1:<port>` of the relay, for the node's `fleet.endpoints`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every connection through the link and refuses new ones.
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.cut = true;
        for relay in state.open.drain(..) {
            relay.abort();
        }
    }

    /// Lets connections through again.
    pub fn mend(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).cut = false;
    }
}

impl Drop for EtcdLink {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
