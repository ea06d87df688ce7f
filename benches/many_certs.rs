//! Start-up with many certificates: `MANY_CERTS` (default 10 000) certificate files in the
//! state directory, each for its own name and issued by one CA (leaf and intermediate in the
//! file, as an ACME CA delivers them). Reports the time from starting the real binary to
//! serving (admin API answering, HTTP listener accepting, a TLS handshake done), its memory
//! (RSS) next to a node with only the default certificate, and what one certificate swap
//! costs with that many loaded. A benchmark, not a test: nothing is asserted about time.
//!
//! `cargo bench --bench many_certs` (figures in docs/operations.md).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Node;
use dcv_proxy::testkit::TestCa;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("MANY_CERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let made = Instant::now();
    let ca = TestCa::new("Many").unwrap();
    let files: Vec<(String, String)> = (0..count)
        .map(|i| {
            let name = format!("site{i}.many.test");
            let leaf = ca.leaf(&[&name], Duration::from_secs(60 * 86_400)).unwrap();
            (
                format!("site{i}.pem"),
                format!("{}{}", leaf.chain_pem, leaf.key_pem),
            )
        })
        .collect();
    let bytes: usize = files.iter().map(|(_, f)| f.len()).sum();
    eprintln!(
        "made {count} certificates ({:.1} MiB of PEM) in {:.1?}",
        bytes as f64 / 1048576.0,
        made.elapsed()
    );

    let started = Instant::now();
    let empty = Node::builder().start().await;
    let empty_start = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let empty_rss = rss_kib(empty.pid());
    drop(empty);

    let started = Instant::now();
    let node = Node::builder()
        .prepare(move |state| {
            let certs = state.join("certs");
            std::fs::create_dir_all(&certs).unwrap();
            for (name, pem) in &files {
                std::fs::write(certs.join(name), pem).unwrap();
            }
        })
        .start()
        .await;
    let full_start = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let full_rss = rss_kib(node.pid());
    let metrics = node.metrics().await;
    let loaded = metrics.count("dcv_certificate_loads_total", &[("result", "ok")]);
    assert_eq!(loaded as usize, count, "every certificate loads");
    let probe = format!("site{}.many.test", count / 2);
    let names = node.presented(Some(&probe)).await.names();
    assert_eq!(names, std::slice::from_ref(&probe));

    // One swap with everything loaded (each publishes a new snapshot of the whole index).
    let replacement = ca
        .leaf(&[&probe], Duration::from_secs(90 * 86_400))
        .unwrap();
    let swaps = 20;
    let swapping = Instant::now();
    for _ in 0..swaps {
        node.install_cert(&format!("site{}", count / 2), &replacement, &[])
            .await;
    }
    let per_swap = swapping.elapsed() / swaps;

    println!("| | start to serving | RSS |");
    println!("|---|---:|---:|");
    println!(
        "| default certificate only | {:.2} s | {:.1} MiB |",
        empty_start.as_secs_f64(),
        empty_rss as f64 / 1024.0
    );
    println!(
        "| {count} certificates | {:.2} s | {:.1} MiB |",
        full_start.as_secs_f64(),
        full_rss as f64 / 1024.0
    );
    println!(
        "\n{:.1} KiB per certificate; one swap (PUT, validate, write, publish) with {count} loaded: {:.1} ms",
        (full_rss.saturating_sub(empty_rss)) as f64 / count as f64,
        per_swap.as_secs_f64() * 1000.0
    );
}
