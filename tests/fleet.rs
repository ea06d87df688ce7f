//! Fleet mode against a real etcd (Debian `etcd-server`) and three dcv-proxy nodes on
//! 127.0.0.2, 127.0.0.3 and 127.0.0.4, sharing one HTTP port and one HTTPS port as edge nodes
//! behind GeoDNS would (and as Pebble's VA, one port for every host, needs).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use common::etcd::{Etcd, EtcdLink};
use common::pebble::{Pebble, PebbleConfig};
use common::{eventually, key_authorization, tls_connect, Node};
use dcv_proxy::testkit::TestCa;

const PREFIX: &str = "/dcv-test";

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A port that is free on every one of `hosts` (127.0.0.<n>) right now.
fn shared_port(hosts: &[u8]) -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind((ip(hosts[0]), 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let others: Vec<_> = hosts[1..]
            .iter()
            .map(|h| TcpListener::bind((ip(*h), port)))
            .collect();
        if others.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no port free on all of {hosts:?}");
}

/// Two different ports (HTTP, HTTPS) free on 127.0.0.2–4, the first also on the `extra` hosts.
fn shared_ports(extra: &[u8]) -> (u16, u16) {
    let mut http_hosts = vec![2, 3, 4];
    http_hosts.extend_from_slice(extra);
    let http = shared_port(&http_hosts);
    loop {
        let https = shared_port(&[2, 3, 4]);
        if https != http {
            return (http, https);
        }
    }
}

/// A fleet key file in `dir`.
fn key_file(dir: &Path) -> PathBuf {
    let path = dir.join("fleet.key");
    let key: [u8; 32] = rand::random();
    std::fs::write(
        &path,
        format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(key)
        ),
    )
    .unwrap();
    path
}

fn fleet_section(endpoint: &str, key: &Path, node_id: &str, public: IpAddr) -> String {
    format!(
        "[fleet]\nbackend = \"etcd\"\nendpoints = [{endpoint:?}]\nprefix = {PREFIX:?}\nnode_id = {node_id:?}\npublic_addresses = [\"{public}\"]\nkey_file = {:?}\nlease_ttl = \"2s\"\nrequest_timeout = \"2s\"\n",
        key.display().to_string()
    )
}

/// Node `node-<n>` on 127.0.0.<n> and `ports`, following etcd at `endpoint`, with `extra`
/// configuration.
async fn fleet_node(endpoint: &str, key: &Path, n: u8, ports: (u16, u16), extra: &str) -> Node {
    Node::builder()
        .listen(
            SocketAddr::new(ip(n), ports.0),
            SocketAddr::new(ip(n), ports.1),
        )
        .extra_config(&format!(
            "{}\n{extra}",
            fleet_section(endpoint, key, &format!("node-{n}"), ip(n))
        ))
        .start()
        .await
}

/// Three nodes on 127.0.0.2–4 sharing `ports`, with `extra` configuration each.
async fn three_nodes(etcd: &Etcd, key: &Path, ports: (u16, u16), extra: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    for n in 2..=4u8 {
        nodes.push(fleet_node(&etcd.endpoint(), key, n, ports, extra).await);
    }
    for node in &nodes {
        connected(node, 3).await;
    }
    nodes
}

/// Waits until `node` follows etcd and sees `members` live members.
async fn connected(node: &Node, members: usize) -> serde_json::Value {
    eventually("the node follows etcd with every member", || async {
        let fleet = node.admin_get("/v1/status").await.json()["fleet"].clone();
        let n = fleet["members"].as_array().map_or(0, Vec::len);
        (fleet["connected"] == true && n == members).then_some(fleet)
    })
    .await
}

async fn token_answer(node: &Node, token: &str) -> (u16, String) {
    let rsp = node
        .http_get(
            "a.fleet.test",
            &format!("/.well-known/acme-challenge/{token}"),
        )
        .await;
    (rsp.status, rsp.text())
}

#[tokio::test]
async fn a_put_on_one_node_is_answered_by_all_three_and_deletions_propagate() {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let ports = shared_ports(&[]);
    let nodes = three_nodes(&etcd, &key, ports, "").await;

    // Membership: every node sees the three, with their public addresses.
    let fleet = connected(&nodes[0], 3).await;
    let members: Vec<String> = fleet["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}={}", m["node_id"], m["public_addresses"][0]))
        .collect();
    assert_eq!(
        members,
        [
            "\"node-2\"=\"127.0.0.2\"",
            "\"node-3\"=\"127.0.0.3\"",
            "\"node-4\"=\"127.0.0.4\""
        ]
    );

    let token = "fleetToken_1";
    let ka = key_authorization(token);
    nodes[0].put_token(token, &ka, None).await;
    nodes[1]
        .put_pki("www.a.fleet.test", "fileauth.txt", b"fleet-file")
        .await;
    for node in &nodes {
        eventually("the token is answered on every node", || async {
            (token_answer(node, token).await == (200, ka.clone())).then_some(())
        })
        .await;
        eventually("the pki file is answered on every node", || async {
            let rsp = node
                .http_get("a.fleet.test", "/.well-known/pki-validation/fileauth.txt")
                .await;
            (rsp.status == 200 && rsp.text() == "fleet-file").then_some(())
        })
        .await;
    }
    // The local snapshot of a node that did not take the put.
    assert!(nodes[2]
        .state_dir()
        .join("tokens")
        .join(format!("{token}.json"))
        .exists());

    // An ACME client on one node writes into that node's webroot only: every node answers.
    let webroot_token = "webrootOnNode2";
    let webroot = nodes[0]
        .state_dir()
        .join("webroot/.well-known/acme-challenge");
    std::fs::write(webroot.join(webroot_token), "webrootOnNode2.thumb").unwrap();
    for node in &nodes {
        eventually("a webroot token is answered on every node", || async {
            (token_answer(node, webroot_token).await == (200, "webrootOnNode2.thumb".into()))
                .then_some(())
        })
        .await;
    }
    std::fs::remove_file(webroot.join(webroot_token)).unwrap();
    for node in &nodes {
        eventually(
            "a removed webroot token is withdrawn everywhere",
            || async { (token_answer(node, webroot_token).await.0 == 404).then_some(()) },
        )
        .await;
    }

    // A certificate uploaded on one node is presented by all three; its key is sealed in etcd.
    let ca = TestCa::new("fleet").unwrap();
    let leaf = ca
        .leaf(&["c.fleet.test"], Duration::from_secs(86_400))
        .unwrap();
    nodes[2]
        .install_cert("c.fleet.test", &leaf, &["c.fleet.test"])
        .await;
    let fingerprint = common::pem_fingerprint(&leaf.leaf_pem);
    for node in &nodes {
        eventually("the certificate is presented by every node", || async {
            let presented = node.presented(Some("c.fleet.test")).await;
            (presented.fingerprint() == fingerprint).then_some(())
        })
        .await;
    }
    let stored = etcd.get_prefix(&format!("{PREFIX}/certs/")).await;
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8_lossy(&stored[0].1).into_owned();
    assert!(text.contains("BEGIN CERTIFICATE"));
    assert!(
        !text.contains("PRIVATE KEY"),
        "the key must be sealed: {text}"
    );

    // Deletions propagate.
    let rsp = nodes[2]
        .admin_delete(&format!("/v1/acme/tokens/{token}"))
        .await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    let rsp = nodes[0].admin_delete("/v1/certificates/c.fleet.test").await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    for node in &nodes {
        eventually("the deleted token is gone everywhere", || async {
            (token_answer(node, token).await.0 == 404).then_some(())
        })
        .await;
        eventually("the deleted certificate is gone everywhere", || async {
            let list = node.admin_get("/v1/certificates").await.json();
            let ids: Vec<_> = list["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned())
                .collect();
            (!ids.contains(&"c.fleet.test".to_owned())).then_some(())
        })
        .await;
    }

    let metrics = nodes[1].metrics().await;
    assert_eq!(metrics.value("dcv_fleet_connected", &[]), Some(1.0));
    assert!(metrics.value("dcv_fleet_revision", &[]).unwrap() > 0.0);
    assert!(
        metrics.count(
            "dcv_fleet_events_total",
            &[("kind", "token"), ("op", "put")]
        ) >= 1.0
    );
    assert!(
        metrics.count(
            "dcv_fleet_events_total",
            &[("kind", "certificate"), ("op", "delete")]
        ) >= 1.0
    );
}

/// Pebble's log lines for new orders.
fn orders_seen_by_the_ca(pebble: &Pebble) -> usize {
    pebble.log().matches("POST /order-plz").count()
}

#[tokio::test]
async fn one_order_for_three_nodes_served_by_all_three() {
    one_order_for_three_nodes("http-01").await;
}

/// TLS-ALPN-01 challenges travel as key authorizations: whichever node the CA reaches makes
/// its own RFC 8737 certificate and answers.
#[tokio::test]
async fn one_tls_alpn01_order_for_three_nodes() {
    one_order_for_three_nodes("tls-alpn-01").await;
}

/// etcd, a fleet key in a temporary directory, the shared ports, and Pebble reaching 127.0.0.2
/// for every name, whichever node ordered.
async fn fleet_and_ca() -> (Etcd, tempfile::TempDir, PathBuf, (u16, u16), Pebble) {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let ports = shared_ports(&[]);
    let pebble = Pebble::start(PebbleConfig::for_node(
        SocketAddr::new(ip(2), ports.0),
        SocketAddr::new(ip(2), ports.1),
    ))
    .await;
    (etcd, dir, key, ports, pebble)
}

async fn one_order_for_three_nodes(challenge: &str) {
    let (etcd, _dir, key, ports, pebble) = fleet_and_ca().await;
    let extra = format!(
        "{}\n[[certificate]]\nnames = [\"o.fleet.test\", \"www.o.fleet.test\"]\nchallenge = {challenge:?}\n",
        pebble.acme_config()
    );
    let nodes = three_nodes(&etcd, &key, ports, &extra).await;

    let root = pebble.issuer_root().await;
    let mut fingerprints = Vec::new();
    for node in &nodes {
        let fp = eventually("every node presents the issued certificate", || async {
            let conn = tls_connect(
                node.https_addr(),
                Some("o.fleet.test"),
                &["http/1.1"],
                Some(&root),
            )
            .await
            .ok()?;
            Some(conn.presented.fingerprint())
        })
        .await;
        fingerprints.push(fp);
    }
    assert!(
        fingerprints.iter().all(|f| *f == fingerprints[0]),
        "{fingerprints:?}"
    );
    // The ordering node counts its order after withdrawing the challenge tokens (etcd deletes),
    // which may come after the other nodes already present the certificate.
    let (valid, failed) = eventually("the order is counted", || async {
        let mut valid = 0.0;
        let mut failed = 0.0;
        for node in &nodes {
            let m = node.metrics().await;
            valid += m.count("dcv_acme_orders_total", &[("result", "valid")]);
            failed += m.count("dcv_acme_orders_total", &[("result", "failed")]);
        }
        (valid + failed > 0.0).then_some((valid, failed))
    })
    .await;
    assert_eq!((valid, failed), (1.0, 0.0));
    assert_eq!(orders_seen_by_the_ca(&pebble), 1, "{}", pebble.log());
    // One account for the fleet.
    assert_eq!(
        pebble.log().matches("POST /sign-me-up").count(),
        1,
        "{}",
        pebble.log()
    );
}

/// While etcd is away a node places no order (another node may be ordering the same
/// certificate, and the fleet's count of new orders cannot be read), and its status says why
/// and what to look at, not only when it tries again; once etcd is back it orders, and the
/// reason goes.
#[tokio::test]
async fn without_etcd_no_order_is_placed_and_the_status_says_why() {
    let (mut etcd, _dir, key, ports, pebble) = fleet_and_ca().await;
    let id = "e.fleet.test";
    let extra = format!(
        "{}\n[[certificate]]\nnames = [{id:?}]\n",
        pebble.acme_config()
    );
    let node = fleet_node(&etcd.endpoint(), &key, 2, ports, &extra).await;
    connected(&node, 1).await;
    eventually(
        "the certificate is issued and its order recorded",
        || async {
            let status = node.admin_get("/v1/status").await.json();
            let renewal = &status["acme"]["certificates"][id];
            (renewal["state"] == "waiting" && renewal["last_order"]["result"] == "valid")
                .then_some(())
        },
    )
    .await;
    let orders = orders_seen_by_the_ca(&pebble);

    etcd.stop();
    eventually("the node sees etcd gone", || async {
        let status = node.admin_get("/v1/status").await.json();
        (status["fleet"]["connected"] == false).then_some(())
    })
    .await;
    let rsp = node
        .admin_post(&format!("/v1/certificates/{id}/renew"))
        .await;
    assert_eq!(rsp.status, 202, "{}", rsp.text());
    let why = eventually("the renewal waits for etcd and says why", || async {
        let status = node.admin_get("/v1/status").await.json();
        let renewal = &status["acme"]["certificates"][id];
        let why = renewal["deferred"].as_str()?.to_owned();
        renewal["next_attempt"].as_str()?;
        why.starts_with("the fleet lock cannot be taken")
            .then_some(why)
    })
    .await;
    assert!(
        why.contains("fleet (no catalogue cause): the node cannot reach the fleet's etcd")
            && why.contains("dcv_fleet_connected"),
        "{why}"
    );
    assert_eq!(orders_seen_by_the_ca(&pebble), orders, "{}", pebble.log());

    // etcd back: the renewal is ordered, and the status no longer says it waits.
    etcd.start_again().await;
    eventually("the renewal is ordered once etcd is back", || async {
        let status = node.admin_get("/v1/status").await.json();
        let renewal = &status["acme"]["certificates"][id];
        (orders_seen_by_the_ca(&pebble) > orders
            && renewal["state"] == "waiting"
            && renewal["last_order"]["result"] == "valid"
            && renewal["deferred"].is_null())
        .then_some(())
    })
    .await;
}

/// The CA counts new orders per account and the fleet shares one account: with a budget of
/// one new order per hour and two certificates, three nodes place one order between them (each
/// counting its own would have placed two), and the other certificate waits, saying so.
#[tokio::test]
async fn the_budget_of_new_orders_is_counted_once_for_the_whole_fleet() {
    let (etcd, _dir, key, ports, pebble) = fleet_and_ca().await;
    let ids = ["b1.fleet.test", "b2.fleet.test"];
    let extra = format!(
        "{}max_new_orders = 1\nnew_orders_window = \"1h\"\n[[certificate]]\nnames = [{:?}]\n[[certificate]]\nnames = [{:?}]\n",
        pebble.acme_config(),
        ids[0],
        ids[1]
    );
    let nodes = three_nodes(&etcd, &key, ports, &extra).await;

    // Every node has looked at both certificates: one is served, the other waits for the
    // budget on every node (each deferral is set by a node that had it due, so a node placing
    // its own order instead would never get here).
    let deferred = eventually(
        "one certificate issued, the other deferred on every node",
        || async {
            let mut waiting: Vec<(usize, String)> = Vec::new();
            for node in &nodes {
                let status = node.admin_get("/v1/status").await.json();
                let certs = &status["acme"]["certificates"];
                let d: Vec<(usize, String)> = (0..2)
                    .filter_map(|i| Some((i, certs[ids[i]]["deferred"].as_str()?.to_owned())))
                    .collect();
                if d.len() != 1 {
                    return None;
                }
                waiting.push(d[0].clone());
            }
            waiting
                .iter()
                .all(|w| w.0 == waiting[0].0)
                .then_some(waiting)
        },
    )
    .await;
    let issued = 1 - deferred[0].0;
    let root = pebble.issuer_root().await;
    for node in &nodes {
        eventually("every node serves the issued certificate", || async {
            tls_connect(
                node.https_addr(),
                Some(ids[issued]),
                &["http/1.1"],
                Some(&root),
            )
            .await
            .ok()
        })
        .await;
    }
    // A node that placed no order of its own learnt it from the fleet's count.
    assert!(
        deferred.iter().any(|(_, why)| why.starts_with(
            "1 new orders across the fleet in the last 1h (acme.max_new_orders = 1): next at "
        )),
        "{deferred:?}"
    );
    let mut valid = 0.0;
    for node in &nodes {
        valid += node
            .metrics()
            .await
            .count("dcv_acme_orders_total", &[("result", "valid")]);
    }
    assert!(valid <= 1.0, "{valid} orders counted");
    assert_eq!(orders_seen_by_the_ca(&pebble), 1, "{}", pebble.log());
    // The slot is etcd's, under a lease of the window's length.
    let slots = etcd.get_prefix(&format!("{PREFIX}/budget/")).await;
    assert_eq!(slots.len(), 1, "{slots:?}");
}

#[tokio::test]
async fn etcd_stopped_and_restarted_nodes_keep_answering_and_catch_up() {
    let mut etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let ports = shared_ports(&[]);
    let nodes = three_nodes(&etcd, &key, ports, "").await;

    let before = "beforeOutage";
    nodes[0]
        .put_token(before, &key_authorization(before), None)
        .await;
    for node in &nodes {
        eventually("answered before the outage", || async {
            (token_answer(node, before).await.0 == 200).then_some(())
        })
        .await;
    }

    etcd.stop();
    for node in &nodes {
        eventually("the node notices etcd is gone", || async {
            let m = node.metrics().await;
            (m.value("dcv_fleet_connected", &[]) == Some(0.0)).then_some(())
        })
        .await;
        assert_eq!(token_answer(node, before).await.0, 200);
    }
    // A change that cannot be shared is refused, not half made.
    let body = serde_json::json!({ "key_authorization": key_authorization("duringOutage") });
    let rsp = nodes[1]
        .admin_put("/v1/acme/tokens/duringOutage", &body)
        .await;
    assert_eq!(rsp.status, 503, "{}", rsp.text());

    etcd.start_again().await;
    for node in &nodes {
        connected(node, 3).await;
        assert_eq!(token_answer(node, before).await.0, 200);
    }
    let after = "afterOutage";
    nodes[1]
        .put_token(after, &key_authorization(after), None)
        .await;
    for node in &nodes {
        eventually("a put after the restart reaches every node", || async {
            (token_answer(node, after).await.0 == 200).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn a_node_killed_holding_the_order_lock_is_replaced_after_its_lease() {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    // 127.0.0.9 takes the CA's connections and never answers: the first order hangs there, so
    // the node holding the lock is killed mid-order.
    let ports = shared_ports(&[9]);
    let black_hole = tokio::net::TcpListener::bind((ip(9), ports.0))
        .await
        .unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = black_hole.accept().await {
            open.push(stream);
        }
    });
    let pebble = Pebble::start(PebbleConfig::for_node(
        SocketAddr::new(ip(9), ports.0),
        SocketAddr::new(ip(9), ports.1),
    ))
    .await;
    let id = "k.fleet.test";
    let extra = format!(
        "{}\n[[certificate]]\nnames = [{id:?}]\n",
        pebble.acme_config()
    );
    let mut nodes = three_nodes(&etcd, &key, ports, &extra).await;

    let holder = eventually("one node is ordering (holding the lock)", || async {
        for (i, node) in nodes.iter().enumerate() {
            let status = node.admin_get("/v1/status").await.json();
            if status["acme"]["certificates"][id]["state"] == "ordering" {
                return Some(i);
            }
        }
        None
    })
    .await;
    nodes[holder].kill();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != holder).collect();
    // From now on the CA reaches a live node.
    let live = ip(2 + survivors[0] as u8);
    pebble
        .dns(
            "add-a",
            serde_json::json!({ "host": id, "addresses": [live.to_string()] }),
        )
        .await;

    let root = pebble.issuer_root().await;
    let mut fingerprints = Vec::new();
    for &i in &survivors {
        let node = &nodes[i];
        let fp = eventually("a survivor took over and every survivor serves", || async {
            let conn = tls_connect(node.https_addr(), Some(id), &["http/1.1"], Some(&root))
                .await
                .ok()?;
            Some(conn.presented.fingerprint())
        })
        .await;
        fingerprints.push(fp);
    }
    assert_eq!(fingerprints[0], fingerprints[1]);
    // Counted after the challenge tokens are withdrawn: possibly after the others serve it.
    let valid = eventually("the order is counted", || async {
        let mut valid = 0.0;
        for &i in &survivors {
            valid += nodes[i]
                .metrics()
                .await
                .count("dcv_acme_orders_total", &[("result", "valid")]);
        }
        (valid > 0.0).then_some(valid)
    })
    .await;
    assert_eq!(valid, 1.0);
    // The killed node's order and the one that replaced it.
    assert_eq!(orders_seen_by_the_ca(&pebble), 2, "{}", pebble.log());
    held.abort();
}

#[tokio::test]
async fn a_node_without_the_fleet_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.key");
    let (status, log) = Node::builder()
        .extra_config(&fleet_section(
            "http://127.0.0.1:1",
            &missing,
            "lonely",
            ip(1),
        ))
        .start_expecting_failure()
        .await;
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("fleet key file"), "{log}");
    assert!(log.contains("head -c 32 /dev/urandom"), "{log}");

    let short = dir.path().join("short.key");
    std::fs::write(&short, "c2hvcnQ=\n").unwrap();
    let (status, log) = Node::builder()
        .extra_config(&fleet_section(
            "http://127.0.0.1:1",
            &short,
            "lonely",
            ip(1),
        ))
        .start_expecting_failure()
        .await;
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("expected 32 bytes"), "{log}");
}

#[tokio::test]
async fn etcd_down_at_start_the_node_serves_its_local_snapshot() {
    let mut etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let mut node = Node::builder()
        .extra_config(&fleet_section(&etcd.endpoint(), &key, "solo", ip(1)))
        .start()
        .await;
    connected(&node, 1).await;
    let token = "snapshotToken";
    node.put_token(token, &key_authorization(token), None).await;
    node.put_pki("a.fleet.test", "fileauth.txt", b"snap").await;
    let ca = TestCa::new("snapshot").unwrap();
    let leaf = ca
        .leaf(&["s.fleet.test"], Duration::from_secs(86_400))
        .unwrap();
    node.install_cert("s.fleet.test", &leaf, &["s.fleet.test"])
        .await;

    etcd.stop();
    node.restart().await;
    let status = node.admin_get("/v1/status").await.json();
    assert_eq!(status["fleet"]["connected"], false);
    assert_eq!(token_answer(&node, token).await.0, 200);
    let rsp = node
        .http_get("a.fleet.test", "/.well-known/pki-validation/fileauth.txt")
        .await;
    assert_eq!(rsp.text(), "snap");
    assert_eq!(
        node.presented(Some("s.fleet.test")).await.fingerprint(),
        common::pem_fingerprint(&leaf.leaf_pem)
    );

    // etcd comes back: the node follows it again, and still serves what etcd holds.
    etcd.start_again().await;
    connected(&node, 1).await;
    assert_eq!(token_answer(&node, token).await.0, 200);
    assert_eq!(
        node.presented(Some("s.fleet.test")).await.fingerprint(),
        common::pem_fingerprint(&leaf.leaf_pem)
    );
}

const PROBED: &str = "p.fleet.test";

/// `POST /v1/probe/<name>` on `node`: the report.
async fn probe_now(node: &Node, name: &str) -> serde_json::Value {
    let rsp = node.admin_post(&format!("/v1/probe/{name}")).await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    rsp.json()
}

/// The checks of `kind` in `report`: (target, status, cause id or "", detail).
fn checks_of(report: &serde_json::Value, kind: &str) -> Vec<(String, String, String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == kind)
        .map(|c| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&c["target"]),
                text(&c["status"]),
                text(&c["cause"]["id"]),
                text(&c["detail"]),
            )
        })
        .collect()
}

/// (target, status, cause) of each check of `kind`.
fn outcomes(report: &serde_json::Value, kind: &str) -> Vec<(String, String, String)> {
    checks_of(report, kind)
        .into_iter()
        .map(|(target, status, cause, _)| (target, status, cause))
        .collect()
}

/// Catalogue H6: node-4 is still a live member (its membership lease has not run out) but has
/// lost etcd, so the probe token a healthy node publishes never reaches it. The probe on node-2
/// asks every member at its public address and names node-4; once node-4 follows etcd again,
/// the H6 check passes.
#[tokio::test]
async fn the_probe_names_a_member_that_did_not_get_the_token() {
    let etcd = Etcd::start().await;
    // node-4 reaches etcd through a link the test cuts; its lease (60 s) outlives the cut, as a
    // node's does in the first `lease_ttl` of an outage.
    let link = EtcdLink::start(&etcd).await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let ports = shared_ports(&[]);
    // Only for challtestsrv: every name resolves to 127.0.0.2, node-2.
    let dns = Pebble::start(PebbleConfig::for_node(
        SocketAddr::new(ip(2), ports.0),
        SocketAddr::new(ip(2), ports.1),
    ))
    .await;
    let mut nodes = Vec::new();
    for n in 2..=3u8 {
        nodes.push(fleet_node(&etcd.endpoint(), &key, n, ports, &dns.probe_config()).await);
    }
    nodes.push(
        Node::builder()
            .listen(
                SocketAddr::new(ip(4), ports.0),
                SocketAddr::new(ip(4), ports.1),
            )
            .extra_config(&format!(
                "{}\n{}",
                fleet_section(&link.endpoint(), &key, "node-4", ip(4))
                    .replace("lease_ttl = \"2s\"", "lease_ttl = \"60s\""),
                dns.probe_config()
            ))
            .start()
            .await,
    );
    for node in &nodes {
        connected(node, 3).await;
    }
    let at = |n: u8| format!("node-{n} at {}:{}", ip(n), ports.0);
    let file = "/.well-known/pki-validation/synced.txt";
    nodes[1]
        .put_pki(PROBED, "synced.txt", b"on every node")
        .await;

    // All synced: every member answers the token and the file.
    let report = probe_now(&nodes[0], PROBED).await;
    let pass = |target: String| (target, "pass".to_owned(), String::new());
    assert_eq!(
        outcomes(&report, "fleet.token"),
        [pass(at(2)), pass(at(3)), pass(at(4))],
        "{report:#}"
    );
    assert_eq!(
        outcomes(&report, "fleet.pki_file"),
        [2, 3, 4].map(|n| pass(format!("{file} on {}", at(n)))),
        "{report:#}"
    );
    assert_eq!(
        outcomes(&report, "http.token"),
        [pass(format!("{}:{}", ip(2), ports.0))]
    );
    assert!(
        !report["causes"].as_array().unwrap().contains(&"H6".into()),
        "{report:#}"
    );
    let metrics = nodes[0].metrics().await;
    let labels = [("name", PROBED), ("check", "fleet.token")];
    assert_eq!(metrics.value("dcv_probe_ok", &labels), Some(1.0));
    let h6 = [("name", PROBED), ("cause", "H6")];
    assert_eq!(metrics.value("dcv_probe_cause", &h6), None);

    // node-4 loses etcd but stays a member until its lease runs out.
    link.cut();
    eventually("node-4 notices it lost etcd", || async {
        let m = nodes[2].metrics().await;
        (m.value("dcv_fleet_connected", &[]) == Some(0.0)).then_some(())
    })
    .await;
    assert_eq!(
        connected(&nodes[0], 3).await["members"][2]["node_id"],
        "node-4"
    );
    nodes[0]
        .put_pki(PROBED, "unsynced.txt", b"not on node-4")
        .await;
    let unsynced = "/.well-known/pki-validation/unsynced.txt";

    let report = probe_now(&nodes[0], PROBED).await;
    let token = checks_of(&report, "fleet.token");
    assert_eq!(
        outcomes(&report, "fleet.token"),
        [
            pass(at(2)),
            pass(at(3)),
            (at(4), "fail".into(), "H6".into())
        ],
        "{report:#}"
    );
    let detail = &token[2].3;
    assert!(
        detail.starts_with("node-4 does not have it (127.0.0.4: Invalid response from http://")
            && detail.contains(": 404), while node-2, node-3 have it"),
        "{detail}"
    );
    let remedy = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cause"]["id"] == "H6")
        .map(|c| c["cause"]["remedy"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(remedy.contains("dcv_fleet_connected"), "{remedy}");
    let files = outcomes(&report, "fleet.pki_file");
    assert!(
        files.contains(&(
            format!("{unsynced} on {}", at(4)),
            "fail".into(),
            "H6".into()
        )),
        "{files:?}"
    );
    assert!(
        files.contains(&pass(format!("{unsynced} on {}", at(3)))),
        "{files:?}"
    );
    // What the CA reaches through DNS (node-2) is fine: only the fleet check sees node-4.
    assert_eq!(
        outcomes(&report, "http.token"),
        [pass(format!("{}:{}", ip(2), ports.0))]
    );
    assert!(report["causes"].as_array().unwrap().contains(&"H6".into()));
    let metrics = nodes[0].metrics().await;
    assert_eq!(metrics.value("dcv_probe_cause", &h6), Some(1.0));
    assert_eq!(metrics.value("dcv_probe_ok", &labels), Some(0.0));

    // `dcv-proxy check` on node-2 sees the same, through the admin API's member list.
    let (code, out) = nodes[0].check(&[PROBED]).await;
    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("FAIL  fleet.token"))
        .unwrap_or_else(|| panic!("no failing fleet.token line:\n{out}"));
    assert!(
        line.contains(&format!("[{}] H6: node-4 does not have it", at(4))),
        "{line}"
    );
    assert!(line.contains("Remedy: in a dcv-proxy fleet"), "{line}");
    println!("{line}");

    // node-4 follows etcd again and catches up: the H6 check passes.
    link.mend();
    connected(&nodes[2], 3).await;
    eventually(
        "node-4 caught up with the file put while it was cut off",
        || async {
            let rsp = nodes[2].http_get(PROBED, unsynced).await;
            (rsp.status == 200).then_some(())
        },
    )
    .await;
    let report = probe_now(&nodes[0], PROBED).await;
    assert_eq!(
        outcomes(&report, "fleet.token"),
        [pass(at(2)), pass(at(3)), pass(at(4))],
        "{report:#}"
    );
    assert!(
        !report["causes"].as_array().unwrap().contains(&"H6".into()),
        "{report:#}"
    );
    let metrics = nodes[0].metrics().await;
    assert_eq!(metrics.value("dcv_probe_cause", &h6), Some(0.0));
    assert_eq!(metrics.value("dcv_probe_ok", &labels), Some(1.0));
}
