//! The integration-test harness: a real `dcv-proxy` process on free loopback ports, an in-process
//! origin that records what reaches it, and plain, TLS and HTTP/2 clients that see exactly what
//! the node sends.
//!
//! Every test binary includes this module and uses a different part of it, one file per role:
//!
//! | role | file |
//! |---|---|
//! | the node under test | `node.rs` ([`Node`], [`NodeBuilder`]) |
//! | the origin behind it | `origin.rs` ([`TestOrigin`]) |
//! | clients: HTTP/1.1 by hand, hyper keep-alive and HTTP/2 | `clients.rs` |
//! | TLS client that records what was presented | `tls.rs` |
//! | metrics | `metrics.rs` ([`Metrics`]) |
//! | the CA | [`pebble`] (Pebble and challtestsrv) |
//! | the fleet store | [`etcd`] |
//! | a reference server | [`nginx`] |
//! | DNS: authoritative servers with delegations and a recursive resolver | [`dnslab`] |
//! | misbehaving origins and clients | [`hostile`] |
//! | the CLI as an operator runs it | [`operator`] |
//! | the probe scenarios' blocking harness, challtestsrv as their DNS | [`probe_harness`] |
//!
//! This file keeps what every role shares: free ports, the one deadline, `eventually`.

// Each test binary uses a subset of the harness; the rest would be reported as dead code. Items
// are `pub` for the test files that include this module, which are not a library API.
#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod clients;
pub mod dnslab;
pub mod etcd;
pub mod hostile;
mod metrics;
pub mod nginx;
mod node;
pub mod operator;
mod origin;
pub mod pebble;
pub mod probe_harness;
mod tls;

// The harness's surface, by role; each test binary uses part of it.
#[allow(unused_imports)]
pub use clients::{
    assert_typed_status, collect, exchange, get, h1_client, h2_client, parse_response,
    request_bytes, try_parse_response, Response,
};
#[allow(unused_imports)]
pub use metrics::Metrics;
#[allow(unused_imports)]
pub use node::{Node, NodeBuilder};
#[allow(unused_imports)]
pub use origin::{SeenRequest, TestOrigin};
#[allow(unused_imports)]
pub use tls::{any_certificate, fingerprint, pem_fingerprint, tls_connect, Presented, TlsConn};

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
