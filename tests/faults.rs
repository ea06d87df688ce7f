//! Faults, with nothing lost, against the real binary: the disk full or read-only while a
//! certificate is written, the origin down, and `kill -9` in the middle of certificate writes.
//! (The CA answering 500 or unreachable is in `tests/acme.rs`, etcd down at start and while
//! running in `tests/fleet.rs`, a corrupt certificate file at start in `tests/tls.rs`.)
//!
//! The disk tests mount a small tmpfs, or bind-mount the certificate directory read-only, in
//! the test's own temporary directory: they need root and say so when they skip.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dcv_proxy::testkit::{TestCa, TestLeaf};

use common::{key_authorization, pem_fingerprint, Node, TestOrigin};

const DAY: Duration = Duration::from_secs(24 * 3600);
const TOKEN: &str = "faultToken_0123456789abcdefABCDEF";

/// A mount made by a test, undone when dropped (lazily, so a busy mount never blocks).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Mounts a tmpfs of `size` on `dir` (keeping what was in it); `Err` says why not (not root,
/// no mount permission in this container…).
fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
    let keep = dir.with_extension("before");
    std::fs::rename(dir, &keep).map_err(|e| e.to_string())?;
    std::fs::create_dir(dir).map_err(|e| e.to_string())?;
    let path = dir.to_str().unwrap();
    run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
            path,
        ],
    )?;
    let mount = Mount(dir.to_path_buf());
    for entry in std::fs::read_dir(&keep).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        std::fs::copy(entry.path(), dir.join(entry.file_name())).map_err(|e| e.to_string())?;
    }
    Ok(mount)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Fills the file system holding `dir` up to the last byte.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler.bin");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    filler
}

/// What is on disk for certificate `id` and what the node presents for `name`.
async fn served(node: &Node, id: &str, name: &str) -> (String, String) {
    let file = std::fs::read_to_string(node.state_dir().join(format!("certs/{id}.pem"))).unwrap();
    (
        pem_fingerprint(&file),
        node.presented(Some(name)).await.fingerprint(),
    )
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// An upload on a full or read-only disk is refused with the reason; the file and the served
/// certificate stay the old ones; no temp file is left; once the disk is back the same upload
/// works.
async fn write_fault(kind: &str) {
    if !is_root() {
        eprintln!("skipped: mounting a {kind} file system needs root");
        return;
    }
    let ca = TestCa::new("Disk").unwrap();
    let old = ca.leaf(&["disk.test"], 30 * DAY).unwrap();
    let new = ca.leaf(&["disk.test"], 60 * DAY).unwrap();
    let node = Node::builder().start().await;
    node.install_cert("disk", &old, &[]).await;
    let certs = node.state_dir().join("certs");

    let (mount, undo): (Mount, Box<dyn Fn()>) = match kind {
        "full" => match tmpfs(&certs, "256k") {
            Ok(m) => {
                let filler = fill(&certs);
                (m, Box::new(move || std::fs::remove_file(&filler).unwrap()))
            }
            Err(e) => {
                eprintln!("skipped: cannot mount a tmpfs: {e}");
                return;
            }
        },
        _ => {
            let path = certs.to_str().unwrap().to_owned();
            if let Err(e) = run("mount", &["--bind", &path, &path]) {
                eprintln!("skipped: cannot bind-mount: {e}");
                return;
            }
            let m = Mount(certs.clone());
            run("mount", &["-o", "remount,bind,ro", &path, &path]).unwrap();
            (
                m,
                Box::new(move || run("mount", &["-o", "remount,bind,rw", &path, &path]).unwrap()),
            )
        }
    };

    let resp = node
        .put_cert("disk", &new.chain_pem, &new.key_pem, &[])
        .await;
    let reason = resp.json()["error"].as_str().unwrap_or_default().to_owned();
    match kind {
        "full" => {
            assert_eq!(resp.status, 507, "{}", resp.text());
            assert!(reason.contains("No space left on device"), "{reason}");
        }
        _ => {
            assert_eq!(resp.status, 503, "{}", resp.text());
            assert!(reason.contains("Read-only file system"), "{reason}");
        }
    }
    assert!(reason.contains("nothing changed"), "{reason}");
    let (file, presented) = served(&node, "disk", "disk.test").await;
    assert_eq!(
        file,
        pem_fingerprint(&old.leaf_pem),
        "the file on disk changed"
    );
    assert_eq!(
        presented,
        pem_fingerprint(&old.leaf_pem),
        "the served certificate changed"
    );
    assert_eq!(temp_files(&certs), Vec::<String>::new());
    let listed = node.admin_get("/v1/certificates/disk").await.json();
    assert_eq!(listed["sha256_fingerprint"], pem_fingerprint(&old.leaf_pem));
    // Challenges are answered all the while (they are in memory; writing them may fail too).
    node.put_token(TOKEN, &key_authorization(TOKEN), None).await;
    let answer = node
        .http_get("disk.test", &format!("/.well-known/acme-challenge/{TOKEN}"))
        .await;
    assert_eq!(answer.status, 200);

    undo();
    node.install_cert("disk", &new, &[]).await;
    let (file, presented) = served(&node, "disk", "disk.test").await;
    assert_eq!(file, pem_fingerprint(&new.leaf_pem));
    assert_eq!(presented, pem_fingerprint(&new.leaf_pem));
    drop(mount);
}

#[tokio::test]
async fn disk_full_while_writing_a_certificate_changes_nothing() {
    write_fault("full").await;
}

#[tokio::test]
async fn read_only_state_while_writing_a_certificate_changes_nothing() {
    write_fault("read-only").await;
}

#[tokio::test]
async fn origin_down_gives_502_and_validation_is_still_answered() {
    let origin = TestOrigin::start().await;
    let addr = origin.addr();
    let node = Node::builder()
        .redirect_to_https()
        .site(&["shop.test", "www.shop.test"], addr)
        .start()
        .await;
    node.put_token(TOKEN, &key_authorization(TOKEN), Some("shop.test"))
        .await;
    node.put_pki("shop.test", "fileauth.txt", b"pki-body").await;
    std::fs::write(
        node.state_dir()
            .join("webroot/.well-known/acme-challenge/webrootToken_0123456789"),
        "webrootToken_0123456789.thumb",
    )
    .unwrap();
    assert_eq!(node.https_get("shop.test", "/").await.0.status, 200);

    drop(origin);
    let (proxied, _) = node.https_get("shop.test", "/page").await;
    assert_eq!(proxied.status, 502, "{}", proxied.text());
    for (host, path, body) in [
        (
            "shop.test",
            format!("/.well-known/acme-challenge/{TOKEN}"),
            key_authorization(TOKEN),
        ),
        (
            "www.shop.test",
            "/.well-known/pki-validation/fileauth.txt".to_owned(),
            "pki-body".to_owned(),
        ),
        (
            "shop.test",
            "/.well-known/acme-challenge/webrootToken_0123456789".to_owned(),
            "webrootToken_0123456789.thumb".to_owned(),
        ),
    ] {
        let plain = node.http_get(host, &path).await;
        let (tls, _) = node.https_get(host, &path).await;
        for resp in [plain, tls] {
            assert_eq!(resp.status, 200, "{host}{path}: {}", resp.text());
            assert_eq!(resp.text(), body);
        }
    }
    // Other HTTP requests still get the redirect; HTTPS ones the 502 until the origin is back.
    assert_eq!(node.http_get("shop.test", "/page").await.status, 301);
    let back = TestOrigin::named_on("origin", addr).await;
    let (resp, _) = node.https_get("shop.test", "/page").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), back.body_for("/page"));
}

/// Uploads certificates as fast as it can until stopped, ignoring failures (the node is being
/// killed under it).
fn upload_loop(
    http_admin: String,
    token: String,
    leaves: Arc<Vec<TestLeaf>>,
    stop: Arc<AtomicBool>,
    lane: usize,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let addr: std::net::SocketAddr = http_admin.trim_start_matches("http://").parse().unwrap();
        let mut sent = 0;
        let mut i = lane;
        while !stop.load(Ordering::SeqCst) {
            let leaf = &leaves[i % leaves.len()];
            let id = format!("kill{}", i % 3);
            let body = serde_json::to_vec(&serde_json::json!({
                "certificate": leaf.chain_pem,
                "private_key": leaf.key_pem,
            }))
            .unwrap();
            let mut req = format!(
                "PUT /v1/certificates/{id} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\
                 Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(&body);
            if let Ok(Ok(mut stream)) =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await
            {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                if stream.write_all(&req).await.is_ok() {
                    let mut buf = Vec::new();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buf))
                            .await;
                    sent += 1;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            i += 1;
        }
        sent
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_certificate_writes_leaves_the_old_or_the_new_file_never_a_torn_one() {
    let ca = TestCa::new("Kill").unwrap();
    // Two certificates of different sizes per name, so a torn file could not pass for either.
    let leaves: Vec<TestLeaf> = (0..6)
        .map(|i| {
            let names: Vec<String> = (0..=i).map(|n| format!("n{n}.kill.test")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            ca.leaf(&names, DAY * (30 + i)).unwrap()
        })
        .collect();
    let known: Vec<String> = leaves
        .iter()
        .map(|l| pem_fingerprint(&l.leaf_pem))
        .collect();
    let leaves = Arc::new(leaves);
    let mut node = Node::builder().start().await;
    let certs = node.state_dir().join("certs");
    let mut uploads = 0;
    let mut interrupted = 0;
    let rounds = 15;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let token = node.admin_token();
        let lanes: Vec<_> = (0..4)
            .map(|lane| {
                upload_loop(
                    node.admin_url(),
                    token.clone(),
                    leaves.clone(),
                    stop.clone(),
                    lane,
                )
            })
            .collect();
        // A random moment in the middle of the writes.
        let pause = 50
            + (SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
                % 400);
        tokio::time::sleep(Duration::from_millis(pause.into())).await;
        // Then the first write seen in progress (its temp file exists) is cut short.
        let dir = certs.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let start = std::time::Instant::now();
            while temp_files(&dir).is_empty() && start.elapsed() < Duration::from_secs(2) {}
        })
        .await;
        node.kill(); // SIGKILL
                     // Writes cut short leave their temp files (never a served name): evidence that the
                     // kill landed in the middle of one.
        interrupted += temp_files(&certs).len();
        node.restart().await; // on the same state directory
        stop.store(true, Ordering::SeqCst);
        for lane in lanes {
            uploads += lane.await.unwrap();
        }

        // Every file is whole: it passes every check and is one of the certificates sent.
        let now = SystemTime::now();
        for entry in std::fs::read_dir(&certs).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                !name.contains(".tmp-"),
                "round {round}: temp file {name} left after restart"
            );
            let bytes = std::fs::read(&path).unwrap();
            let cert = dcv_proxy::state::certs::validate(&bytes, b"", &[], now)
                .unwrap_or_else(|e| panic!("round {round}: {name} is torn: {e}"));
            if name != "default.pem" {
                let fp = pem_fingerprint(&String::from_utf8_lossy(&bytes));
                assert!(
                    known.contains(&fp),
                    "round {round}: {name} is none of the uploads"
                );
                assert_eq!(cert.fingerprint, fp);
            }
        }
        // The node loaded every file at start, refusing none.
        let metrics = node.metrics().await;
        let refused: f64 = metrics
            .text
            .lines()
            .filter(|l| {
                l.starts_with("dcv_certificate_loads_total{") && !l.contains("result=\"ok\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(refused, 0.0, "round {round}: {}", metrics.text);
    }
    eprintln!(
        "{rounds} kill -9 rounds, {uploads} uploads sent, {interrupted} writes cut short, every file whole"
    );
    assert!(uploads > rounds * 4, "only {uploads} uploads were sent");
    assert!(interrupted > 0, "no kill landed in the middle of a write");
}
