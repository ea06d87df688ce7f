//! The node's life as an operator drives it, against the real binary: configuration reload
//! (`SIGHUP`), binary upgrade through pingora's listener hand-over (`run --upgrade` + `SIGQUIT`,
//! and `SIGUSR2` started from inside), graceful stop (`SIGTERM`), systemd's readiness
//! notification, and `dcv-proxy health`. The upgrade tests keep clients busy across the
//! hand-over — a loop of requests on fresh connections on both schemes, and one slow proxied
//! request in flight — and accept no failed request.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use common::{eventually, key_authorization, tls_connect, Node, Response, TestOrigin};

const TOKEN: &str = "lifecycleToken_0123456789abcdefABCDEF";

// ---- clients that never panic: every failure is recorded

/// One request on a fresh connection; `Err` says what went wrong.
async fn request(addr: SocketAddr, tls: bool, host: &str, path: &str) -> Result<Response, String> {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let io = async {
        let buf = if tls {
            let conn = tls_connect(addr, Some(host), &["http/1.1"], None)
                .await
                .map_err(|e| format!("TLS connect: {e}"))?;
            read_all(conn.stream, raw.as_bytes()).await?
        } else {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            read_all(stream, raw.as_bytes()).await?
        };
        common::try_parse_response(&buf)
            .ok_or_else(|| format!("not a response: {:?}", String::from_utf8_lossy(&buf)))
    };
    tokio::time::timeout(Duration::from_secs(20), io)
        .await
        .map_err(|_| "timed out".to_owned())?
}

async fn read_all<S>(mut stream: S, request: &[u8]) -> Result<Vec<u8>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    match stream.read_to_end(&mut buf).await {
        Ok(_) => Ok(buf),
        // A TLS peer may close without close_notify after a complete response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => Ok(buf),
        Err(e) => Err(format!("read: {e} after {} bytes", buf.len())),
    }
}

/// What a client loop saw.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    /// (when, what) for every failed request.
    failed: Vec<(Instant, String)>,
}

/// Requests in a loop on fresh connections, HTTP and HTTPS, answered at the edge and proxied,
/// until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Tally>,
}

impl Load {
    fn start(http: SocketAddr, https: SocketAddr, origin_body: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let challenge = format!("/.well-known/acme-challenge/{TOKEN}");
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let (addr, tls) = if i % 2 == 0 {
                        (http, false)
                    } else {
                        (https, true)
                    };
                    let (path, expected) = if i % 4 < 2 {
                        (challenge.as_str(), key_authorization(TOKEN))
                    } else {
                        ("/p", origin_body.clone())
                    };
                    i += 1;
                    match request(addr, tls, "a.test", path).await {
                        Ok(r) if r.status == 200 && r.text() == expected => tally.ok += 1,
                        Ok(r) => tally.failed.push((
                            Instant::now(),
                            format!("{path} tls={tls}: {} {:?}", r.status, r.text()),
                        )),
                        Err(e) => tally
                            .failed
                            .push((Instant::now(), format!("{path} tls={tls}: {e}"))),
                    }
                }
                tally
            })
        };
        Self { stop, task }
    }

    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

async fn serving_node(origin: &TestOrigin, grace: &str) -> Node {
    let node = Node::builder()
        .grace_period(grace)
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    node
}

// ---- reload

#[tokio::test]
async fn sighup_applies_sites_certificates_and_probe_names_and_refuses_a_bad_file() {
    let first = TestOrigin::named("first").await;
    let second = TestOrigin::named("second").await;
    let node = Node::builder()
        .site(&["a.test"], first.addr())
        .start()
        .await;
    let original = node.config_text().to_owned();

    // A keep-alive connection opened before the reload.
    let stream = TcpStream::connect(node.http_addr()).await.unwrap();
    let mut kept = common::h1_client(stream).await;
    let resp = common::collect(
        kept.send_request(common::get("/before", Some("a.test")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.text(), first.body_for("/before"));

    // a.test moves to the second origin, b.test appears, a certificate and a log level change.
    let reloaded = original.replace(
        &format!("names = [\"a.test\"]\norigin = \"{}\"", first.addr()),
        &format!(
            "names = [\"a.test\"]\norigin = \"{}\"\n\n[[site]]\nnames = [\"b.test\"]\norigin = \"{}\"",
            second.addr(),
            first.addr()
        ),
    ) + "\n[acme]\ndirectory = \"https://127.0.0.1:9/dir\"\nterms_agreed = true\n\n[[certificate]]\nnames = [\"reloaded.test\"]\n";
    let reloaded = reloaded.replace("log_level = \"info\"", "log_level = \"debug\"");
    assert_ne!(reloaded, original);
    node.write_config(&reloaded);
    node.signal("HUP");
    eventually("a.test served by the second origin", || async {
        let r = node.http_get("a.test", "/after").await;
        (r.text() == second.body_for("/after")).then_some(())
    })
    .await;
    assert_eq!(
        node.http_get("b.test", "/b").await.text(),
        first.body_for("/b")
    );
    // The connection opened before the reload carries on, with the new routing.
    let resp = common::collect(
        kept.send_request(common::get("/again", Some("a.test")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), second.body_for("/again"));
    // The renewer has the new certificate; the probe the new names.
    let status = node.admin_get("/v1/status").await.json();
    assert!(
        status["acme"]["certificates"]["reloaded.test"].is_object(),
        "{status}"
    );
    let probe = node.admin_get("/v1/probe").await.json();
    assert!(probe.get("b.test").is_some(), "{probe}");
    let metrics = node.metrics().await;
    assert_eq!(
        metrics.count("dcv_config_reloads_total", &[("result", "applied")]),
        1.0
    );
    // [acme] is bound at start: the log says a restart applies it.
    assert!(
        node.log().contains("configuration reloaded"),
        "{}",
        node.log()
    );
    assert!(node.log().contains("key=\"acme\""), "{}", node.log());

    // A bad file is refused whole, with the reason, and nothing changes.
    let bad = reloaded.replace("[http]", "[http]\nredirect = true")
        + &format!(
            "\n[[site]]\nnames = [\"c.test\"]\norigin = \"{}\"\n",
            first.addr()
        );
    node.write_config(&bad);
    node.signal("HUP");
    eventually("the refusal in the log", || async {
        node.log()
            .contains("configuration reload refused")
            .then_some(())
    })
    .await;
    let log = node.log();
    let refusal = log
        .lines()
        .find(|l| l.contains("configuration reload refused"))
        .unwrap();
    assert!(
        refusal.contains("dcv-proxy.toml:") && refusal.contains("unknown field `redirect`"),
        "{refusal}"
    );
    assert_eq!(node.http_get("c.test", "/c").await.status, 404);
    assert_eq!(
        node.http_get("a.test", "/still").await.text(),
        second.body_for("/still")
    );
    let metrics = node.metrics().await;
    assert_eq!(
        metrics.count("dcv_config_reloads_total", &[("result", "refused")]),
        1.0
    );

    // Listeners need a restart: the log names the key, the old listener keeps serving.
    let moved = reloaded.replace(
        &format!("listen = [\"{}\"]", node.http_addr()),
        &format!("listen = [\"{}\"]", common::free_addr()),
    );
    node.write_config(&moved);
    node.signal("HUP");
    eventually("the restart warning", || async {
        node.log().contains("key=\"http.listen\"").then_some(())
    })
    .await;
    assert_eq!(
        node.http_get("a.test", "/old-listener").await.text(),
        second.body_for("/old-listener")
    );
}

// ---- upgrade and stop

/// Keeps clients busy, starts a slow proxied request, upgrades with `how`, and checks that no
/// request failed and that the new process serves.
async fn upgrade_under_load(how: &str) {
    let origin = TestOrigin::start().await;
    let mut node = serving_node(&origin, "20s").await;
    let old_pid = node.pid();
    let load = Load::start(node.http_addr(), node.https_addr(), origin.body_for("/p"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // In flight across the hand-over and past the moment the old process stops accepting
    // (pingora keeps accepting for 5 s after sending the sockets).
    let slow = {
        let https = node.https_addr();
        tokio::spawn(async move { request(https, true, "a.test", "/slow/7000").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut old = match how {
        "QUIT" => {
            let old = node.start_successor().await;
            Node::signal_pid(old.id(), "QUIT");
            Some(old)
        }
        "USR2" => {
            node.signal("USR2");
            None
        }
        _ => unreachable!(),
    };
    let new_pid = eventually("the new process to announce itself", || async {
        node.pid_file().filter(|&p| p != old_pid)
    })
    .await;
    if how == "USR2" {
        node.adopt(new_pid);
    }

    // The old process drains and exits on its own once the slow request is answered.
    let exited = async {
        let start = Instant::now();
        loop {
            let gone = match &mut old {
                Some(child) => matches!(child.try_wait(), Ok(Some(_))),
                None => node.wait_exit(Duration::ZERO).await.is_some(),
            };
            if gone {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the old process did not exit\n{}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    .await;
    let slow = slow.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tally = load.finish().await;

    let slow = slow.unwrap_or_else(|e| panic!("the slow request failed: {e}\n{}", node.log()));
    assert_eq!(slow.status, 200, "{}", slow.text());
    assert_eq!(slow.text(), origin.body_for("/slow/7000"));
    assert!(
        tally.failed.is_empty(),
        "{} of {} requests failed across the upgrade: {:?}\n{}",
        tally.failed.len(),
        tally.ok + tally.failed.len(),
        tally.failed,
        node.log()
    );
    assert!(tally.ok > 20, "only {} requests were made", tally.ok);
    eprintln!(
        "upgrade by {how}: {} requests, none failed; old process exited {exited:?} after the new one was ready",
        tally.ok
    );

    // The new process serves everything, admin API included, and drains like the old one.
    let answer = node
        .http_get("a.test", &format!("/.well-known/acme-challenge/{TOKEN}"))
        .await;
    assert_eq!(answer.text(), key_authorization(TOKEN));
    assert_eq!(node.admin_get("/healthz").await.status, 200);
    assert!(node.log().contains("drained"), "{}", node.log());
}

#[tokio::test]
async fn upgrade_with_run_upgrade_and_sigquit_fails_no_request() {
    upgrade_under_load("QUIT").await;
}

#[tokio::test]
async fn upgrade_with_sigusr2_fails_no_request() {
    upgrade_under_load("USR2").await;
}

#[tokio::test]
async fn sigusr2_with_a_bad_configuration_keeps_the_old_process() {
    let origin = TestOrigin::start().await;
    let mut node = serving_node(&origin, "1s").await;
    let pid = node.pid();
    node.write_config(&format!("{}\n[bogus]\n", node.config_text()));
    node.signal("USR2");
    eventually("the failed upgrade in the log", || async {
        node.log().contains("binary upgrade failed").then_some(())
    })
    .await;
    assert!(node.running());
    assert_eq!(node.pid_file(), Some(pid));
    let answer = node
        .http_get("a.test", &format!("/.well-known/acme-challenge/{TOKEN}"))
        .await;
    assert_eq!(answer.text(), key_authorization(TOKEN));
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_early() {
    let origin = TestOrigin::start().await;
    let mut node = serving_node(&origin, "20s").await;
    // An idle keep-alive connection, parked off its task by the time of the stop.
    let mut idle = TcpStream::connect(node.http_addr()).await.unwrap();
    idle.write_all(b"GET /idle HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    eventually("the idle connection parked", || async {
        let parked = node.metrics().await.value("dcv_parked_connections", &[]);
        (parked >= Some(1.0)).then_some(())
    })
    .await;
    let load = Load::start(node.http_addr(), node.https_addr(), origin.body_for("/p"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let slow = {
        let http = node.http_addr();
        tokio::spawn(async move { request(http, false, "a.test", "/slow/2000").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped_at = Instant::now();
    node.signal("TERM");
    // The parked connection is closed by the stop itself, while the slow request still keeps
    // the process draining (its unread answer's rest comes first).
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), idle.read_to_end(&mut rest))
        .await
        .expect("the parked connection closed at the stop")
        .unwrap();
    assert!(node.running(), "closed by the stop, not by the exit");
    let status = node
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("still running 15 s after SIGTERM\n{}", node.log()));
    let took = stopped_at.elapsed();
    let tally = load.finish().await;
    let slow = slow.await.unwrap().expect("the in-flight request");
    assert_eq!(slow.status, 200);
    assert_eq!(slow.text(), origin.body_for("/slow/2000"));
    assert!(status.success(), "{status}");
    // Drained, not the whole 20 s grace period.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // Requests sent before the stop all succeeded; after it, new connections are refused.
    let before: Vec<_> = tally
        .failed
        .iter()
        .filter(|(at, _)| *at < stopped_at)
        .collect();
    assert!(before.is_empty(), "{before:?}");
    assert!(node.log().contains("drained"), "{}", node.log());
    assert_eq!(node.pid_file(), None, "the pid file is removed at exit");
}

// ---- systemd and the health check

#[tokio::test]
async fn systemd_is_told_ready_and_the_main_pid_follows_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let origin = TestOrigin::start().await;
    let mut node = Node::builder()
        .env("NOTIFY_SOCKET", &socket_path.display().to_string())
        .site(&["a.test"], origin.addr())
        .start()
        .await;
    let receive = |socket: &UnixDatagram| {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = receive(&socket);
    assert!(first.contains("READY=1"), "{first}");
    assert!(
        first.contains(&format!("MAINPID={}", node.pid())),
        "{first}"
    );

    node.signal("USR2");
    let second = receive(&socket);
    let new_pid = node.pid_file().unwrap();
    node.adopt(new_pid);
    assert_ne!(new_pid, node.pid());
    assert!(second.contains(&format!("MAINPID={new_pid}")), "{second}");
    assert!(second.contains("READY=1"), "{second}");
}

#[tokio::test]
async fn health_command_asks_the_admin_api() {
    let node = Node::builder().start().await;
    let health = |config: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dcv-proxy"))
            .arg("--config")
            .arg(config)
            .arg("health")
            .output()
            .unwrap()
    };
    let out = health(node.config_path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");

    // A node that is not running is not healthy.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("down.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[admin]\nlisten = \"{}\"\n",
            dir.path().display().to_string(),
            common::free_addr()
        ),
    )
    .unwrap();
    let out = health(&config);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the admin API"),
        "{out:?}"
    );
}
