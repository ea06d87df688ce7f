//! Propagation time in a fleet: from the moment a token is put on one node (the admin `PUT` is
//! sent) to the moment all three nodes answer it on their HTTP listeners. A benchmark, not a
//! test: it starts a real etcd and three dcv-proxy nodes on 127.0.0.2–4, puts
//! `FLEET_BENCH_PUTS` tokens (default 300) round-robin on the three nodes, and prints the
//! distribution. No assertion on time is made.
//!
//! `cargo bench --bench fleet_propagation` (needs `etcd` from Debian's `etcd-server`).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use base64::Engine;
use common::etcd::Etcd;
use common::{key_authorization, Node};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn shared_port() -> u16 {
    loop {
        let first = TcpListener::bind((ip(2), 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        if [3, 4]
            .iter()
            .all(|h| TcpListener::bind((ip(*h), port)).is_ok())
        {
            return port;
        }
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; anything else (e.g. a filter) is ignored.
    let puts: usize = std::env::var("FLEET_BENCH_PUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("fleet.key");
    let key: [u8; 32] = rand::random();
    std::fs::write(
        &key_path,
        base64::engine::general_purpose::STANDARD.encode(key),
    )
    .unwrap();
    let http = shared_port();
    let https = loop {
        let p = shared_port();
        if p != http {
            break p;
        }
    };
    let mut nodes = Vec::new();
    for n in 2..=4u8 {
        let fleet = format!(
            "[fleet]\nbackend = \"etcd\"\nendpoints = [{:?}]\nprefix = \"/bench\"\nnode_id = \"node-{n}\"\npublic_addresses = [\"{}\"]\nkey_file = {:?}\nlease_ttl = \"5s\"\n",
            etcd.endpoint(),
            ip(n),
            key_path.display().to_string()
        );
        let node = Node::builder()
            .listen(SocketAddr::new(ip(n), http), SocketAddr::new(ip(n), https))
            .extra_config(&fleet)
            .start()
            .await;
        nodes.push(node);
    }
    // Every node follows etcd before the clock starts.
    for node in &nodes {
        let start = Instant::now();
        while node.admin_get("/v1/status").await.json()["fleet"]["connected"] != true {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "node never connected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let mut put_latency = Vec::with_capacity(puts);
    let mut everywhere = Vec::with_capacity(puts);
    for i in 0..puts {
        let token = format!("bench{i}");
        let ka = key_authorization(&token);
        let path = format!("/.well-known/acme-challenge/{token}");
        let start = Instant::now();
        nodes[i % 3].put_token(&token, &ka, None).await;
        put_latency.push(start.elapsed());
        for node in &nodes {
            loop {
                let rsp = node.http_get("bench.test", &path).await;
                if rsp.status == 200 && rsp.text() == ka {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "token {token} never reached {}",
                    node.http_url()
                );
                tokio::task::yield_now().await;
            }
        }
        everywhere.push(start.elapsed());
    }
    report(
        "admin PUT answered (etcd put + local write)",
        &mut put_latency,
    );
    report("put on one node -> answered by all three", &mut everywhere);
    drop(nodes);
    drop(etcd);
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    println!(
        "{what}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}
