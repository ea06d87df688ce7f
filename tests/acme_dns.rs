//! Issuance end to end on real DNS: the DNS lab's nsd servers and unbound
//! (tests/common/dnslab.rs) answer for Pebble's VA and for the node's probe alike, so the gate in
//! front of the order judges the name as the CA's resolver sees it — through zone cuts, with
//! DNSSEC validated — not as challtestsrv's one-server world shows it.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};

use common::dnslab::{DnsLab, Zone};
use common::pebble::{Pebble, PebbleConfig};
use common::{eventually, free_addr, Node};

/// The node's own address (every name the test orders points at it).
fn node_ip(addrs: &(SocketAddr, SocketAddr)) -> IpAddr {
    addrs.0.ip()
}

/// The everyday CDN set-up: the customer's name at its own provider is a CNAME to the CDN's
/// name, in the CDN's zone on other servers. The gate passes (each name is asked of its own
/// zone's servers) and Pebble, validating through the same resolver, issues.
#[tokio::test]
async fn a_name_that_cnames_into_the_cdn_zone_is_issued_through_the_gate() {
    let addrs = (free_addr(), free_addr());
    let lab = DnsLab::builder()
        .zone(Zone::new("test.").signed())
        .zone(Zone::new("customer.test.").cname("shop", "edge.cdn.test."))
        .zone(Zone::new("customer.test.").cname("shop", "edge.cdn.test."))
        .zone(Zone::new("cdn.test.").signed().ip("edge", node_ip(&addrs)))
        .start()
        .await;
    let mut config = PebbleConfig::for_node(addrs.0, addrs.1);
    config.resolver = Some(lab.resolver());
    let pebble = Pebble::start(config).await;
    let node = Node::builder()
        .listen(addrs.0, addrs.1)
        .extra_config(&format!(
            "{}\n[[certificate]]\nnames = [\"shop.customer.test\"]\nchallenge = \"http-01\"\n",
            pebble.acme_config()
        ))
        .start()
        .await;
    let cert = eventually("shop.customer.test issued over ACME", || async {
        let rsp = node.admin_get("/v1/certificates/shop.customer.test").await;
        let cert = rsp.json();
        (rsp.status == 200 && cert["source"] == "acme").then_some(cert)
    })
    .await;
    assert_eq!(cert["names"], serde_json::json!(["shop.customer.test"]));
    // The gate judged it on the lab: the node's log has no refusal.
    assert!(!node.log().contains("self-check failed"), "{}", node.log());
}
